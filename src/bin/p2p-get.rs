// A C main, so that Rust's start-up is skipped: see p2p::output::c_main.
// Under `cargo test` the harness brings its own main.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_: std::ffi::c_int, _: *const *const std::ffi::c_char) -> std::ffi::c_int {
    p2p::output::c_main(
        || p2p::cmd::get::run(p2p::cli::parse_with_where_hint::<p2p::cli::GetCli>()),
    )
}

fn main() {
    std::process::exit(p2p::daemon::main(std::env::args_os().collect()));
}

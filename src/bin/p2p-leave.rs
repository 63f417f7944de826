use clap::Parser;

fn main() {
    std::process::exit(p2p::cmd::leave::run(p2p::cli::LeaveCli::parse()));
}

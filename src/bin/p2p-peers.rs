use clap::Parser;

fn main() {
    std::process::exit(p2p::cmd::peers::run(p2p::cli::PeersCli::parse()));
}

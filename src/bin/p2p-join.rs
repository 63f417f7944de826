use clap::Parser;

fn main() {
    std::process::exit(p2p::cmd::join::run(p2p::cli::JoinCli::parse()));
}

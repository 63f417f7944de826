use clap::Parser;

fn main() {
    std::process::exit(p2p::cmd::sha256::run(p2p::cli::ShaCli::parse()));
}

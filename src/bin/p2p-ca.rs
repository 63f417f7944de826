use clap::Parser;

fn main() {
    std::process::exit(p2p::cmd::ca::run(p2p::cli::CaCli::parse()));
}

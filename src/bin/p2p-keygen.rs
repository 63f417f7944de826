use clap::Parser;

fn main() {
    std::process::exit(p2p::cmd::keygen::run(p2p::cli::KeygenCli::parse()));
}

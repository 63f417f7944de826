use clap::Parser;

fn main() {
    std::process::exit(p2p::cmd::count::run(p2p::cli::CountCli::parse()));
}

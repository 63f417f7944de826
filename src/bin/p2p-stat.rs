use clap::Parser;

fn main() {
    std::process::exit(p2p::cmd::stat::run(p2p::cli::StatCli::parse()));
}

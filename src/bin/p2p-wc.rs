use clap::Parser;

fn main() {
    std::process::exit(p2p::cmd::wc::run(p2p::cli::WcCli::parse()));
}

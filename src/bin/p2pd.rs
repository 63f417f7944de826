use clap::Parser;

fn main() {
    std::process::exit(p2p::daemon::main(p2p::cli::DaemonCli::parse()));
}

use clap::Parser;

fn main() {
    std::process::exit(p2p::cmd::revoke::run(p2p::cli::RevokeCli::parse()));
}

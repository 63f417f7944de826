fn main() {
    let cli = p2p::cli::parse_as_gnu::<p2p::cli::ShaCli>();
    std::process::exit(p2p::cmd::sha256::run(cli));
}

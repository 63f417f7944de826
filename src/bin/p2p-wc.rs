fn main() {
    let cli = p2p::cli::parse_as_gnu::<p2p::cli::WcCli>();
    std::process::exit(p2p::cmd::wc::run(cli));
}

fn main() {
    let cli = p2p::cli::parse_with_where_hint::<p2p::cli::PeersCli>();
    std::process::exit(p2p::cmd::peers::run(cli));
}

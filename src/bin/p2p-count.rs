fn main() {
    let cli = p2p::cli::parse_with_where_hint::<p2p::cli::CountCli>();
    std::process::exit(p2p::cmd::count::run(cli));
}

fn main() {
    let cli = p2p::cli::parse_with_where_hint::<p2p::cli::StatusCli>();
    std::process::exit(p2p::cmd::status::run(cli));
}

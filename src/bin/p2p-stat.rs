fn main() {
    let cli = p2p::cli::parse_with_where_hint::<p2p::cli::StatCli>();
    std::process::exit(p2p::cmd::stat::run(cli));
}

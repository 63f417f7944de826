fn main() {
    let cli = <p2p::cli::UiCli as clap::Parser>::parse();
    std::process::exit(p2p::cmd::ui::run(cli));
}

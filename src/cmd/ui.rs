//! `p2p-ui`: serves the web dashboard ([`crate::ui`]) and prints its URL.

use crate::cli::UiCli;
use std::io::Write;

const NAME: &str = "p2p-ui";

/// Runs `p2p-ui`; returns the exit status.
pub fn run(cli: UiCli) -> i32 {
    if !cli.listen.ip().is_loopback() {
        eprintln!(
            "{NAME}: warning: listening on {}, not loopback: anyone who can reach it and \
             learns the token can run queries with your rights, over plain HTTP",
            cli.listen
        );
        if cli.listen.ip().is_unspecified() && cli.hosts.is_empty() {
            eprintln!(
                "{NAME}: warning: it answers only to loopback names as Host; give the name \
                 others use for this machine with --host NAME"
            );
        }
    }
    let open = cli.open;
    let served = crate::ui::serve(cli.listen, &cli.hosts, cli.connection, |url| {
        let mut out = std::io::stdout().lock();
        // Our standard output may be gone (`p2p-ui | head -1`): the
        // dashboard serves on regardless.
        let _ = writeln!(out, "{url}").and_then(|_| out.flush());
        eprintln!("{NAME}: serving the dashboard; open the URL above (Ctrl-C to stop)");
        if open {
            open_browser(url);
        }
    });
    match served {
        Ok(()) => crate::output::EXIT_OK,
        Err(f) => {
            eprintln!("{NAME}: {}", f.message);
            f.status
        }
    }
}

/// Opens `url` with xdg-open, best effort. The token is not put on a
/// command line (other users can read those in /proc): xdg-open gets a
/// file only we can read, which sends the browser on to `url`.
fn open_browser(url: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") else {
        eprintln!(
            "{NAME}: --open needs XDG_RUNTIME_DIR (a directory of yours); open the URL by hand"
        );
        return;
    };
    let file = std::path::Path::new(&dir).join(format!("p2p-ui-{}.html", std::process::id()));
    let page = format!(
        "<!DOCTYPE html><meta charset=utf-8><meta http-equiv=refresh content=\"0;url={url}\">\
         <title>p2p-ui</title><a href=\"{url}\">p2p-ui</a>\n"
    );
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| f.write_all(page.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "{NAME}: --open: {}: {e}; open the URL by hand",
            file.display()
        );
        return;
    }
    let mut cmd = std::process::Command::new("xdg-open");
    cmd.arg(&file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    crate::ui::unblock_signals_in_child(&mut cmd);
    match cmd.spawn() {
        Ok(mut child) => {
            std::thread::spawn(move || {
                let _ = child.wait();
                // The browser has had it; it is of no use once read.
                std::thread::sleep(std::time::Duration::from_secs(30));
                let _ = std::fs::remove_file(&file);
            });
        }
        Err(e) => {
            let _ = std::fs::remove_file(&file);
            eprintln!("{NAME}: --open: cannot run xdg-open: {e}; open the URL by hand");
        }
    }
}

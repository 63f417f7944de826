//! `p2p-join`: join the cluster through known members, at run time.

use crate::cli::{Format, JoinCli};
use crate::client::{Fatal, request};
use crate::output::{EXIT_FAILED, Printer, quiet_on_closed_pipe};
use crate::proto::{JoinResult, Request, RequestFailed, Summary};

const NAME: &str = "p2p-join";

/// Runs `p2p-join`; returns the exit status.
pub fn run(cli: JoinCli) -> i32 {
    quiet_on_closed_pipe();
    let mut printer = Printer::new(NAME, super::style(cli.format == Format::Text));
    let result = join(&cli, &mut printer);
    super::finish(NAME, result, &mut printer)
}

fn join(cli: &JoinCli, printer: &mut Printer) -> Result<(), Fatal> {
    let mut reader = request(
        &cli.connection,
        &Request::Join {
            addrs: cli.addrs.clone(),
        },
    )?;
    let mut answered = 0;
    while let Ok(Some(line)) = reader.next_line() {
        if let Ok(r) = serde_json::from_slice::<JoinResult>(&line) {
            answered += 1;
            match (&r.error, cli.format) {
                (Some(e), _) => {
                    printer.failed += 1;
                    if cli.format == Format::Json {
                        printer.json(&r);
                    }
                    printer.flush();
                    eprintln!("{NAME}: {}: {}", r.addr, e.message);
                }
                (None, Format::Json) => printer.json(&r),
                (None, Format::Text) => printer.raw(&format!(
                    "joined through {}: {} members\n",
                    r.addr,
                    r.members.unwrap_or(0)
                )),
            }
            printer.flush();
        } else if serde_json::from_slice::<Summary>(&line).is_ok() {
            return Ok(());
        } else if let Ok(f) = serde_json::from_slice::<RequestFailed>(&line) {
            return Err(Fatal {
                status: EXIT_FAILED,
                message: format!("p2pd refused the request: {}", f.error.message),
            });
        }
    }
    if answered < cli.addrs.len() {
        return Err(Fatal {
            status: EXIT_FAILED,
            message: "the daemon closed the connection before answering".into(),
        });
    }
    Ok(())
}

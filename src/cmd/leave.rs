//! `p2p-leave`: the local daemon leaves the cluster and exits.

use crate::cli::{Format, LeaveCli};
use crate::client::{Fatal, request};
use crate::output::{EXIT_FAILED, Printer, quiet_on_closed_pipe};
use crate::proto::{LeaveReply, Request, RequestFailed};

const NAME: &str = "p2p-leave";

/// Runs `p2p-leave`; returns the exit status.
pub fn run(cli: LeaveCli) -> i32 {
    quiet_on_closed_pipe();
    let mut printer = Printer::new(NAME, super::style(cli.format == Format::Text));
    let result = leave(&cli, &mut printer);
    super::finish(NAME, result, &mut printer)
}

fn leave(cli: &LeaveCli, printer: &mut Printer) -> Result<(), Fatal> {
    let mut reader = request(&cli.connection, &Request::Leave)?;
    let line = reader.next_line().ok().flatten().ok_or_else(|| Fatal {
        status: EXIT_FAILED,
        message: "p2pd closed the connection without answering".into(),
    })?;
    let reply: LeaveReply = serde_json::from_slice(&line).map_err(|_| {
        let why = serde_json::from_slice::<RequestFailed>(&line)
            .map(|r| r.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&line).into_owned());
        Fatal {
            status: EXIT_FAILED,
            message: format!("p2pd refused: {why}"),
        }
    })?;
    // The daemon closes the connection as it exits: wait for that, so a
    // script can start another daemon right after.
    while let Ok(Some(_)) = reader.next_line() {}
    match cli.format {
        Format::Json => printer.json(&reply),
        Format::Text => printer.raw(&format!("{} left the cluster\n", reply.peer)),
    }
    Ok(())
}

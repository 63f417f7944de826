//! `p2p-leave`: the local daemon leaves the cluster and exits.

use crate::cli::{Format, LeaveCli};
use crate::client::{Fatal, one_reply};
use crate::output::{Printer, quiet_on_closed_pipe};
use crate::proto::{LeaveReply, Request};

const NAME: &str = "p2p-leave";

/// Runs `p2p-leave`; returns the exit status.
pub fn run(cli: LeaveCli) -> i32 {
    quiet_on_closed_pipe();
    let mut printer = Printer::new(NAME, super::style(cli.format == Format::Text));
    let result = leave(&cli, &mut printer);
    super::finish(NAME, result, &mut printer)
}

fn leave(cli: &LeaveCli, printer: &mut Printer) -> Result<(), Fatal> {
    let (reply, _, mut reader): (LeaveReply, _, _) =
        one_reply(&cli.connection, &Request::Leave, "")?;
    // The daemon closes the connection as it exits: wait for that, so a
    // script can start another daemon right after.
    while let Ok(Some(_)) = reader.next_line() {}
    match cli.format {
        Format::Json => printer.json(&reply),
        Format::Text => printer.raw(&format!("{} left the cluster\n", reply.peer)),
    }
    Ok(())
}

//! `p2p-status`: the local daemon's counters, as one JSON object or in the
//! Prometheus text format.

use crate::cli::{StatusCli, StatusFormat};
use crate::client::{Fatal, one_reply};
use crate::daemon::counters::Status;
use crate::output::{Printer, Style, quiet_on_closed_pipe};
use crate::proto::Request;

const NAME: &str = "p2p-status";

/// Runs `p2p-status`; returns the exit status.
pub fn run(cli: StatusCli) -> i32 {
    quiet_on_closed_pipe();
    let mut printer = Printer::new(NAME, Style::Json);
    let result = status(&cli, &mut printer);
    super::finish(NAME, result, &mut printer)
}

fn status(cli: &StatusCli, printer: &mut Printer) -> Result<(), Fatal> {
    let (status, line, _): (Status, _, _) = one_reply(
        &cli.connection,
        &Request::Status,
        " (a p2pd older than p2p-status?)",
    )?;
    match cli.format {
        // The daemon's own object, fields this command does not know included.
        StatusFormat::Json => match serde_json::from_slice::<serde_json::Value>(&line) {
            Ok(v) => printer.json(&v),
            Err(_) => printer.json(&status),
        },
        StatusFormat::Prometheus => printer.raw(&status.prometheus()),
    }
    Ok(())
}

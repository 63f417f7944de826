//! `p2p-status`: the local daemon's counters, as one JSON object or in the
//! Prometheus text format.

use crate::cli::{StatusCli, StatusFormat};
use crate::client::{Fatal, request};
use crate::daemon::counters::Status;
use crate::output::{EXIT_FAILED, Printer, Style, quiet_on_closed_pipe};
use crate::proto::{Request, RequestFailed};

const NAME: &str = "p2p-status";

/// Runs `p2p-status`; returns the exit status.
pub fn run(cli: StatusCli) -> i32 {
    quiet_on_closed_pipe();
    let mut printer = Printer::new(NAME, Style::Json);
    let result = status(&cli, &mut printer);
    super::finish(NAME, result, &mut printer)
}

fn status(cli: &StatusCli, printer: &mut Printer) -> Result<(), Fatal> {
    let mut reader = request(&cli.connection, &Request::Status)?;
    let line = reader.next_line().ok().flatten().ok_or_else(|| Fatal {
        status: EXIT_FAILED,
        message: "p2pd closed the connection without answering".into(),
    })?;
    let refused = |line: &[u8]| {
        let why = serde_json::from_slice::<RequestFailed>(line)
            .map(|r| r.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(line).into_owned());
        Fatal {
            status: EXIT_FAILED,
            message: format!("p2pd refused: {why} (a p2pd older than p2p-status?)"),
        }
    };
    if serde_json::from_slice::<RequestFailed>(&line).is_ok() {
        return Err(refused(&line));
    }
    let status: Status = serde_json::from_slice(&line).map_err(|_| refused(&line))?;
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

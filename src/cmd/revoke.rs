//! `p2p-revoke`: hand the CA's revocation list to the local daemon.

use crate::cli::{Format, RevokeCli};
use crate::client::{Fatal, request};
use crate::output::{EXIT_FAILED, Printer, quiet_on_closed_pipe};
use crate::proto::{Request, RequestFailed, RevokeReply};

const NAME: &str = "p2p-revoke";

/// Runs `p2p-revoke`; returns the exit status.
pub fn run(cli: RevokeCli) -> i32 {
    quiet_on_closed_pipe();
    let mut printer = Printer::new(NAME, super::style(cli.format == Format::Text));
    let result = revoke(&cli, &mut printer);
    super::finish(NAME, result, &mut printer)
}

fn revoke(cli: &RevokeCli, printer: &mut Printer) -> Result<(), Fatal> {
    let list = std::fs::read_to_string(&cli.file).map_err(|e| Fatal {
        status: EXIT_FAILED,
        message: format!(
            "{}: {}",
            cli.file.display(),
            crate::error::Error::from_io(&e).message
        ),
    })?;
    let mut reader = request(&cli.connection, &Request::Revoke { list })?;
    let line = reader.next_line().ok().flatten().ok_or_else(|| Fatal {
        status: EXIT_FAILED,
        message: "p2pd closed the connection without answering".into(),
    })?;
    let reply: RevokeReply = serde_json::from_slice(&line).map_err(|_| {
        let why = serde_json::from_slice::<RequestFailed>(&line)
            .map(|r| r.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&line).into_owned());
        Fatal {
            status: EXIT_FAILED,
            message: format!("p2pd refused: {why}"),
        }
    })?;
    match cli.format {
        Format::Json => printer.json(&reply),
        Format::Text => printer.raw(&format!(
            "{} now refuses {} revoked certificate(s)\n",
            reply.peer, reply.revoked
        )),
    }
    Ok(())
}

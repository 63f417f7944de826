//! `p2p-revoke`: hand the CA's revocation list to the local daemon.

use crate::cli::{Format, RevokeCli};
use crate::client::{Fatal, one_reply};
use crate::output::{EXIT_FAILED, Printer, quiet_on_closed_pipe};
use crate::proto::{Request, RevokeReply};

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
    let (reply, _, _): (RevokeReply, _, _) =
        one_reply(&cli.connection, &Request::Revoke { list }, "")?;
    match cli.format {
        Format::Json => printer.json(&reply),
        Format::Text => printer.raw(&format!(
            "{} now refuses {} revoked certificate(s)\n",
            reply.peer, reply.revoked
        )),
    }
    Ok(())
}

//! `p2p-peers`: the member list, or a stream of its changes.

use crate::cli::{Format, PeersCli};
use crate::client::{Fatal, request};
use crate::membership::{MemberEvent, MemberInfo};
use crate::output::{Printer, quiet_on_closed_pipe};
use crate::proto::{Request, RequestFailed, Summary};

const NAME: &str = "p2p-peers";

/// Runs `p2p-peers`; returns the exit status.
pub fn run(cli: PeersCli) -> i32 {
    quiet_on_closed_pipe();
    let mut printer = Printer::new(NAME, super::style(cli.format == Format::Text));
    let result = if cli.watch {
        watch(&cli, &mut printer)
    } else {
        list(&cli, &mut printer)
    };
    super::finish(NAME, result, &mut printer)
}

fn wanted(cli: &PeersCli, m: &MemberInfo) -> bool {
    (cli.state.is_empty() || cli.state.iter().any(|s| s == m.state.as_str()))
        && cli.tags.iter().all(|(k, v)| m.tags.get(k) == Some(v))
}

fn tags_text(m: &MemberInfo) -> String {
    let t: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if t.is_empty() {
        "-".into()
    } else {
        t.join(",")
    }
}

fn list(cli: &PeersCli, printer: &mut Printer) -> Result<(), Fatal> {
    let mut reader = request(&cli.connection, &Request::Peers { watch: false })?;
    let mut members = Vec::new();
    while let Ok(Some(line)) = reader.next_line() {
        if let Ok(m) = serde_json::from_slice::<MemberInfo>(&line) {
            members.push(m);
        } else if serde_json::from_slice::<Summary>(&line).is_ok() {
            break;
        } else {
            return Err(refused(&line));
        }
    }
    members.retain(|m| wanted(cli, m));
    if cli.format == Format::Json {
        for m in &members {
            printer.json(m);
        }
        return Ok(());
    }
    let rows: Vec<[String; 5]> = members
        .iter()
        .map(|m| {
            let name = if m.is_self {
                format!("{} *", m.name)
            } else {
                m.name.clone()
            };
            [
                name,
                m.addr.to_string(),
                m.state.as_str().into(),
                m.incarnation.to_string(),
                tags_text(m),
            ]
        })
        .collect();
    let header = ["NAME", "ADDR", "STATE", "INCARNATION", "TAGS"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        printer.raw(&format!("{}\n", line.join("  ").trim_end()));
    }
    Ok(())
}

fn watch(cli: &PeersCli, printer: &mut Printer) -> Result<(), Fatal> {
    let mut reader = request(&cli.connection, &Request::Peers { watch: true })?;
    while let Ok(Some(line)) = reader.next_line() {
        let Ok(e) = serde_json::from_slice::<MemberEvent>(&line) else {
            return Err(refused(&line));
        };
        if !wanted(cli, &e.member) {
            continue;
        }
        match cli.format {
            Format::Json => printer.json(&e),
            Format::Text => printer.raw(&format!(
                "{} {} {} {} {}\n",
                e.event,
                e.member.name,
                e.member.addr,
                e.member.state.as_str(),
                tags_text(&e.member)
            )),
        }
        printer.flush();
    }
    Err(Fatal {
        status: crate::output::EXIT_UNREACHABLE,
        message: "the daemon closed the connection".into(),
    })
}

fn refused(line: &[u8]) -> Fatal {
    let why = serde_json::from_slice::<RequestFailed>(line)
        .map(|r| r.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(line).into_owned());
    Fatal {
        status: crate::output::EXIT_FAILED,
        message: format!("p2pd refused the request: {why}"),
    }
}

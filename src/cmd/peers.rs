//! `p2p-peers`: the member list, or a stream of its changes.

use crate::cli::{Format, PeersCli};
use crate::client::{Fatal, request};
use crate::membership::{MemberEvent, MemberInfo};
use crate::output::{Printer, quiet_on_closed_pipe};
use crate::proto::{Listed, Request, RequestFailed, Summary};

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

/// The groups column: `ops,web`, `-` without a verified certificate or groups.
fn groups_text(m: &Listed) -> String {
    match &m.groups {
        Some(g) if !g.is_empty() => printable(&g.join(",")),
        _ => "-".into(),
    }
}

fn tags_text(m: &MemberInfo) -> String {
    let t: Vec<String> = m
        .tags
        .iter()
        .map(|(k, v)| format!("{}={}", printable(k), printable(v)))
        .collect();
    if t.is_empty() {
        "-".into()
    } else {
        t.join(",")
    }
}

/// A string from the member list for a terminal: the daemon refuses
/// control characters in names and tags, and this makes sure of it.
fn printable(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        s.to_string()
    }
}

/// The table of `p2p-peers --format text`: columns padded to their widest
/// cell, counted in chars. (Padding by hand: a `{:<w$}` width over 65,535
/// panics.)
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let width = |c: &String| c.chars().count();
    let mut widths: Vec<usize> = header.iter().map(width).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(c));
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (c, &w) in r.iter().zip(&widths) {
            line.push_str(c);
            line.extend(std::iter::repeat_n(' ', w - width(c) + 2));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn list(cli: &PeersCli, printer: &mut Printer) -> Result<(), Fatal> {
    let mut reader = request(&cli.connection, &Request::Peers { watch: false })?;
    let mut members = Vec::new();
    while let Ok(Some(line)) = reader.next_line() {
        if let Ok(m) = serde_json::from_slice::<Listed>(&line) {
            members.push(m);
        } else if serde_json::from_slice::<Summary>(&line).is_ok() {
            break;
        } else {
            return Err(refused(&line));
        }
    }
    members.retain(|m| wanted(cli, &m.member));
    if cli.format == Format::Json {
        for m in &members {
            printer.json(m);
        }
        return Ok(());
    }
    // With a CA, the certificates' groups and expiry (of members whose
    // certificate the daemon verified; "-" for the others).
    let certified = members.iter().any(|m| m.cert_expires.is_some());
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|listed| {
            let m = &listed.member;
            let name = if m.is_self {
                format!("{} *", printable(&m.name))
            } else {
                printable(&m.name)
            };
            let mut row = vec![
                name,
                m.addr.to_string(),
                m.state.as_str().into(),
                m.incarnation.to_string(),
                tags_text(m),
            ];
            if certified {
                row.push(groups_text(listed));
                row.push(listed.cert_expires.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    let mut header = vec!["NAME", "ADDR", "STATE", "INCARNATION", "TAGS"];
    if certified {
        header.extend(["GROUPS", "CERT_EXPIRES"]);
    }
    printer.raw(&table(&header, &rows));
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
                printable(&e.member.name),
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [&str; 5] = ["NAME", "ADDR", "STATE", "INCARNATION", "TAGS"];

    fn row(name: &str, tags: &str) -> Vec<String> {
        vec![
            name.into(),
            "127.0.0.1:1".into(),
            "alive".into(),
            "7".into(),
            tags.into(),
        ]
    }

    #[test]
    fn the_table_pads_columns_and_survives_cells_of_any_width() {
        let t = table(&HEADER, &[row("a", "-"), row("bbbbbbb", "role=db")]);
        assert_eq!(
            t,
            "NAME     ADDR         STATE  INCARNATION  TAGS\n\
             a        127.0.0.1:1  alive  7            -\n\
             bbbbbbb  127.0.0.1:1  alive  7            role=db\n"
        );
        // What issue 11 found: a 560 KB cell made `{:<w$}` panic.
        let huge = "x".repeat(600_000);
        let t = table(&HEADER, &[row(&huge, &huge), row("a", "-")]);
        assert_eq!(t.lines().count(), 3);
        // Widths count chars, not bytes.
        let t = table(&HEADER, &[row("zürich", "-"), row("abcdef", "-")]);
        let starts: Vec<usize> = t
            .lines()
            .skip(1)
            .map(|l| l.chars().position(|c| c == '1').unwrap())
            .collect();
        assert_eq!(starts[0], starts[1]);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\nb\u{1b}"), "a\\nb\\u{1b}");
        assert_eq!(printable("Zürich 4"), "Zürich 4");
    }
}

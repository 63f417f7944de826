//! One module per command: its flags come from [`crate::cli`], its run
//! function turns them into a query and prints the results.

pub mod ca;
pub mod count;
pub mod get;
pub mod join;
pub mod keygen;
pub mod leave;
pub mod peers;
pub mod revoke;
pub mod sha256;
pub mod stat;
pub mod status;
pub mod ui;
pub mod wc;

use crate::cli::{Connection, Job, Placement};
use crate::client::{Fatal, Watch};
use crate::output::{EXIT_USAGE, Printer, Style};
use crate::progress::Progress;
use crate::proto::{QueryKind, Target};
use crate::resume::Done;

/// Ends a command: reports a fatal error if there was one, flushes, and
/// returns the exit status.
fn finish(cmd: &str, result: Result<(), Fatal>, printer: &mut Printer) -> i32 {
    printer.flush();
    match result {
        Ok(()) => printer.status(),
        Err(f) => {
            eprintln!("{cmd}: {}", f.message);
            f.status
        }
    }
}

fn style(text: bool) -> Style {
    if text { Style::Text } else { Style::Json }
}

/// Where the query runs, checked; text lines name their member when several
/// members may answer (unless `plain`, for formats other tools read).
fn target(p: &Placement, printer: &mut Printer, plain: bool) -> Result<Option<Target>, Fatal> {
    if !(p.tags.is_empty() || p.all || p.spread) {
        return Err(Fatal {
            status: EXIT_USAGE,
            message: "--where selects members for --all or --spread; add one of them".into(),
        });
    }
    printer.several_members(p.target().is_some(), plain);
    Ok(p.target())
}

/// What `--resume` and the progress line make of a query: the paths to
/// skip and to count, and the line (started once FILE is read).
fn job(
    cmd: &str,
    job: &Job,
    conn: &Connection,
    p: &Placement,
    json: bool,
    kind: QueryKind,
    printer: &mut Printer,
) -> Result<(Watch, Option<Progress>), Fatal> {
    let done = resumed(cmd, job, p, json, kind, printer)?;
    let progress =
        crate::progress::mode(job, p).map(|mode| Progress::start(mode, answers_per_path(conn, p)));
    if let Some(aside) = progress.as_ref().and_then(Progress::aside) {
        printer.share_terminal(aside);
    }
    let listed = progress.as_ref().map(Progress::listed);
    Ok((Watch { done, listed }, progress))
}

/// How many answers each path gets: one per member asked. For `--all`
/// that is every member that has not left (and has the `--where` tags), as
/// the daemon's member list has it now; 1 when it cannot say.
fn answers_per_path(conn: &Connection, p: &Placement) -> u64 {
    use crate::membership::MemberInfo;
    use crate::proto::Request;
    if !p.all {
        let named: std::collections::HashSet<&String> = p.peers.iter().collect();
        return named.len().max(1) as u64;
    }
    let Ok(mut reader) = crate::client::request(conn, &Request::Peers { watch: false }) else {
        return 1;
    };
    let mut n = 0u64;
    while let Ok(Some(line)) = reader.next_line() {
        let Ok(m) = serde_json::from_slice::<MemberInfo>(&line) else {
            break;
        };
        let tagged = p.tags.iter().all(|(k, v)| m.tags.get(k) == Some(v));
        if m.state.as_str() != "left" && tagged {
            n += 1;
        }
    }
    n.max(1)
}

/// With `--resume FILE`, the paths FILE already answers, read whole before
/// anything is printed (FILE may be our own standard output, appended to);
/// `json` when the output is JSON lines, as FILE must be.
fn resumed(
    cmd: &str,
    job: &Job,
    p: &Placement,
    json: bool,
    kind: QueryKind,
    printer: &mut Printer,
) -> Result<Option<Done>, Fatal> {
    let Some(file) = &job.resume else {
        return Ok(None);
    };
    let usage = |message: String| Fatal {
        status: EXIT_USAGE,
        message,
    };
    if p.all || p.peers.len() > 1 || p.group {
        return Err(usage(
            "--resume finishes a job of one line per path: on this host, on one --peer or with --spread, \
             not with --all, several --peer or --group"
                .into(),
        ));
    }
    if !json {
        return Err(usage(
            "--resume reads and continues JSON lines: drop --format".into(),
        ));
    }
    let done = Done::read(file, kind).map_err(usage)?;
    if done.torn > 0 {
        eprintln!(
            "{cmd}: --resume {}: skipped {} torn line(s) left by a crash; their paths are done again",
            file.display(),
            done.torn
        );
    }
    if done.ends_mid_line && is_our_stdout(file) {
        // What we append starts on a line of its own, after the torn one.
        printer.bytes(b"\n");
    }
    Ok(Some(done))
}

/// True when `file` is the very file our standard output writes to.
fn is_our_stdout(file: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(ours), Ok(theirs)) = (
        nix::sys::stat::fstat(std::io::stdout()),
        std::fs::metadata(file),
    ) else {
        return false;
    };
    ours.st_dev == theirs.dev() && ours.st_ino == theirs.ino()
}

/// What a query's results go through before they are printed: with
/// `--group` they are gathered and printed folded when the query ends; in
/// the text formats of a query on `--all` or `--peer` the members are
/// counted, for the summary on stderr at the end.
pub(crate) struct Fold<T> {
    grouper: Option<crate::group::Grouper<T>>,
    roster: Option<crate::group::Roster>,
}

impl<T: serde::Serialize> Fold<T> {
    /// From the placement; `text` when the output is not JSON.
    pub(crate) fn new(p: &Placement, text: bool) -> Fold<T> {
        Fold {
            grouper: p.group.then(Default::default),
            roster: (text && (p.all || !p.peers.is_empty())).then(Default::default),
        }
    }

    /// True with `--group`.
    pub(crate) fn grouping(&self) -> bool {
        self.grouper.is_some()
    }

    /// Takes one result: back when it is to be printed now, kept for its
    /// group otherwise.
    pub(crate) fn take(&mut self, item: crate::proto::Item<T>) -> Option<crate::proto::Item<T>> {
        if let Some(r) = &mut self.roster {
            let error = match &item.outcome {
                crate::proto::Outcome::Failed { error } => Some(error),
                crate::proto::Outcome::Ok(_) => None,
            };
            r.see(&item.peer, error);
        }
        match &mut self.grouper {
            // A line about no member (a name that cannot be sent, a daemon
            // gone) belongs to no group: it prints as it is.
            Some(_) if item.peer.is_empty() => Some(item),
            Some(g) => {
                g.add(item);
                None
            }
            None => Some(item),
        }
    }

    /// Prints the groups (in the printer's style; `text` renders an answer
    /// as the command's text format does) and the summary; true when the
    /// groups make the exit status 1 (members disagree, or some failed).
    pub(crate) fn finish(
        self,
        cmd: &str,
        printer: &mut Printer,
        text: &dyn Fn(&T, &[u8]) -> Vec<u8>,
    ) -> bool {
        let mut bad = false;
        if let Some(g) = self.grouper {
            let paths = g.finish();
            bad = crate::group::disagree(&paths);
            let out = if printer.style() == Style::Json {
                crate::group::json_lines(&paths)
            } else {
                let shown = |name: &[u8]| printer.shown(name).into_owned();
                crate::group::text_blocks(&paths, text, &shown)
            };
            printer.bytes(&out);
        }
        if let Some(r) = self.roster {
            printer.flush();
            eprintln!("{cmd}: {}", r.summary());
        }
        bad
    }
}

/// The exit status of a command whose groups said `bad` (see [`Fold::finish`]).
fn with_groups(status: i32, bad: bool) -> i32 {
    if bad && status == crate::output::EXIT_OK {
        crate::output::EXIT_FAILED
    } else {
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, ErrorCode};
    use crate::proto::{Item, Outcome, PathBytes, ShaFields};

    fn item(peer: &str) -> Item<ShaFields> {
        Item {
            id: None,
            peer: peer.into(),
            path: PathBytes(b"/f".to_vec()),
            outcome: Outcome::Failed {
                error: Error::new(ErrorCode::Unreachable, "down"),
            },
        }
    }

    #[test]
    fn grouping_keeps_member_lines_and_passes_lines_about_no_member() {
        let p = Placement {
            all: true,
            group: true,
            ..Placement::default()
        };
        let mut fold = Fold::new(&p, false);
        assert!(fold.take(item("node1")).is_none());
        assert_eq!(fold.take(item("")).map(|i| i.peer), Some(String::new()));
        // Without --group every line prints at once.
        let mut plain: Fold<ShaFields> = Fold::new(&Placement::default(), true);
        assert!(plain.take(item("node1")).is_some());
        assert!(plain.roster.is_none(), "no roll call on this host");
    }
}

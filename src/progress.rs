//! The progress line of a long `--spread` or `--all` job, on stderr:
//! paths done of the total (known once the list is read to its end), bytes,
//! rate, ETA, and the members working and failed, as the result lines tell
//! them (the `peer` of each answer, and the errors that are about a member
//! rather than a file: unreachable, timeout, unauthorized).
//!
//! Drawing is indicatif's: on a terminal one line redrawn in place; forced
//! with `--progress` onto anything else (a pipe, a log file), the same line
//! written whole at most once a second, so a log reads as a history. The
//! line never goes to stdout.

use crate::cli::{Job, Placement};
use crate::error::{Error, ErrorCode};
use crate::proto::{Item, Outcome};
use indicatif::{
    HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike,
};
use std::collections::{BTreeSet, HashSet};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the list of paths has given so far, counted as it is read (on the
/// sending thread), for the printing thread's line.
#[derive(Debug, Default)]
pub struct Listed {
    read: AtomicU64,
    skipped: AtomicU64,
    ended: AtomicBool,
}

impl Listed {
    /// One more path read (`some`; else the list has ended), skipped if
    /// `skipped` (`--resume` found it done).
    pub fn saw(&self, some: bool, skipped: bool) {
        if !some {
            self.ended.store(true, Ordering::Release);
        } else if skipped {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.read.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Paths to do, and whether that is all of them.
    pub fn total(&self) -> (u64, bool) {
        let ended = self.ended.load(Ordering::Acquire);
        (self.read.load(Ordering::Relaxed), ended)
    }

    /// Paths skipped as already done.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

/// Where the line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stderr is a terminal: one line, redrawn in place.
    Terminal,
    /// `--progress` to something else: whole lines, at most one a second.
    Log,
}

/// Whether to show the line: `--no-progress` never, `--progress` always,
/// else for `--all` and `--spread` when stderr is a terminal.
pub fn mode(job: &Job, p: &Placement) -> Option<Mode> {
    if job.no_progress || !(job.progress || p.all || p.spread) {
        // No system call for the common short query.
        return None;
    }
    mode_for(job, p, std::io::stderr().is_terminal())
}

fn mode_for(job: &Job, p: &Placement, terminal: bool) -> Option<Mode> {
    let wanted = if job.no_progress {
        false
    } else {
        job.progress || p.all || p.spread
    };
    match (wanted, terminal) {
        (false, _) => None,
        (true, true) => Some(Mode::Terminal),
        (true, false) if job.progress => Some(Mode::Log),
        (true, false) => None,
    }
}

/// The counts behind the line, kept by the printing thread.
#[derive(Debug, Default)]
struct Tally {
    /// Answers each path gets (one per member, with `--all`).
    per_path: u64,
    /// Answers so far.
    done: u64,
    failed: u64,
    bytes: u64,
    /// Bytes of the item in progress so far (`p2p-get`'s file on its way).
    partial: u64,
    /// Members that answered and have not failed since.
    working: BTreeSet<String>,
    /// Members an answer said were unreachable, silent or of another key.
    failed_members: HashSet<String>,
}

impl Tally {
    fn see(&mut self, peer: &str, bytes: Option<u64>, error: Option<&Error>) {
        self.done += 1;
        self.partial = 0;
        self.bytes = self.bytes.saturating_add(bytes.unwrap_or(0));
        match error {
            None => {
                if !peer.is_empty() && !self.failed_members.contains(peer) {
                    self.working.insert(peer.to_string());
                }
            }
            Some(e) => {
                self.failed += 1;
                let about_member = matches!(
                    e.code,
                    ErrorCode::Unreachable | ErrorCode::Timeout | ErrorCode::Unauthorized
                );
                if about_member && !peer.is_empty() {
                    self.working.remove(peer);
                    self.failed_members.insert(peer.to_string());
                }
            }
        }
    }

    /// The line, given the list's count, the time so far and the ETA.
    fn line(
        &self,
        (total, ended): (u64, bool),
        skipped: u64,
        elapsed: Duration,
        eta: Option<Duration>,
    ) -> String {
        let plus = if ended { "" } else { "+" };
        let of = match self.per_path {
            0 | 1 => format!("{} of {total}{plus} paths", self.done),
            m => format!(
                "{} of {}{plus} answers ({total}{plus} paths, {m} members each)",
                self.done,
                total.saturating_mul(m)
            ),
        };
        let secs = elapsed.as_secs_f64();
        let bytes = self.bytes.saturating_add(self.partial);
        let rate = if secs > 0.0 {
            (bytes as f64 / secs) as u64
        } else {
            0
        };
        let mut line = format!("{of}, {}, {}/s", HumanBytes(bytes), HumanBytes(rate));
        match eta {
            Some(eta) if ended && self.done < total => {
                line.push_str(&format!(", ETA {}", HumanDuration(eta)))
            }
            _ => {}
        }
        line.push_str(&format!(
            ", {} member{} working, {} failed",
            self.working.len(),
            if self.working.len() == 1 { "" } else { "s" },
            self.failed_members.len()
        ));
        if self.failed > 0 {
            let s = if self.failed == 1 { "" } else { "s" };
            line.push_str(&format!(" ({} path{s} failed)", self.failed));
        }
        if skipped > 0 {
            line.push_str(&format!(" ({skipped} done before, skipped)"));
        }
        line
    }
}

/// The progress line of one query.
pub struct Progress {
    mode: Mode,
    bar: ProgressBar,
    listed: Arc<Listed>,
    tally: Tally,
    start: Instant,
    /// When the message was last rebuilt: at most ten times a second on a
    /// terminal, once a second in a log.
    shown: Option<Instant>,
}

impl Progress {
    /// Starts the line in `mode`; the paths read are counted in what
    /// [`Progress::listed`] returns.
    pub fn start(mode: Mode, per_path: u64) -> Progress {
        let target = match mode {
            Mode::Terminal => ProgressDrawTarget::stderr_with_hz(4),
            Mode::Log => ProgressDrawTarget::term_like_with_hz(Box::new(Lines::default()), 1),
        };
        let style =
            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::with_draw_target(None, target).with_style(style);
        if mode == Mode::Terminal {
            // Rate and ETA move while one large file is being read.
            bar.enable_steady_tick(Duration::from_secs(1));
        }
        let p = Progress {
            mode,
            bar,
            listed: Arc::default(),
            tally: Tally {
                per_path: per_path.max(1),
                ..Tally::default()
            },
            start: Instant::now(),
            shown: None,
        };
        if mode == Mode::Terminal {
            p.redraw();
        }
        p
    }

    /// Where the list's paths are to be counted.
    pub fn listed(&self) -> Arc<Listed> {
        Arc::clone(&self.listed)
    }

    /// Counts one result line; `bytes` is what the command's fields say was read.
    pub fn item<T>(&mut self, item: &Item<T>, bytes: impl Fn(&T) -> Option<u64>) {
        match &item.outcome {
            Outcome::Ok(f) => self.tally.see(&item.peer, bytes(f), None),
            Outcome::Failed { error } => self.tally.see(&item.peer, None, Some(error)),
        }
        self.redraw_now_and_then();
    }

    /// The item in progress has moved `bytes` so far (a file being fetched).
    pub fn partial(&mut self, bytes: u64) {
        self.tally.partial = bytes;
        self.redraw_now_and_then();
    }

    fn redraw_now_and_then(&mut self) {
        let now = Instant::now();
        let every = match self.mode {
            Mode::Terminal => Duration::from_millis(100),
            Mode::Log => Duration::from_secs(1),
        };
        if self.shown.is_none_or(|t| now.duration_since(t) >= every) {
            self.shown = Some(now);
            self.redraw();
        }
    }

    /// On a terminal, what runs a write to it with the line out of the way.
    pub fn aside(&self) -> Option<crate::output::Aside> {
        let bar = self.bar.clone();
        (self.mode == Mode::Terminal)
            .then(|| Box::new(move |f: &mut dyn FnMut()| bar.suspend(f)) as crate::output::Aside)
    }

    fn redraw(&self) {
        let total = self.listed.total();
        if total.1 {
            self.bar
                .set_length(total.0.saturating_mul(self.tally.per_path));
        }
        self.bar.set_position(self.tally.done);
        let eta = total.1.then(|| self.bar.eta());
        self.bar.set_message(self.tally.line(
            total,
            self.listed.skipped(),
            self.start.elapsed(),
            eta,
        ));
    }

    /// Draws the final figures and leaves them.
    pub fn finish(self) {
        self.redraw();
        self.bar.finish();
    }
}

/// Indicatif's terminal, for a stream that is none: each drawing of the
/// line is written whole, with a newline, and cursor moves are dropped.
#[derive(Debug, Default)]
struct Lines {
    line: Mutex<String>,
    /// The line last written: a drawing that changes nothing adds nothing.
    last: Mutex<String>,
}

impl Lines {
    fn with_line(&self, f: impl FnOnce(&mut String)) {
        let mut line = self.line.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut line);
    }
}

impl TermLike for Lines {
    fn width(&self) -> u16 {
        // Wide enough that indicatif never cuts the line; padding is trimmed.
        u16::MAX
    }

    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)?;
        self.flush()
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.with_line(|l| l.push_str(s.trim_start_matches('\r')));
        Ok(())
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.with_line(String::clear);
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        let mut whole = String::new();
        self.with_line(|l| {
            whole = l.trim_end().to_string();
            l.clear();
        });
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if whole.is_empty() || whole == *last {
            return Ok(());
        }
        let line = format!("{whole}\n");
        *last = whole;
        std::io::stderr().write_all(line.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_for_long_placements_on_a_terminal_or_when_forced() {
        let spread = Placement {
            spread: true,
            ..Placement::default()
        };
        let here = Placement::default();
        let plain = Job::default();
        let forced = Job {
            progress: true,
            ..Job::default()
        };
        let silenced = Job {
            no_progress: true,
            ..Job::default()
        };
        assert_eq!(mode_for(&plain, &spread, true), Some(Mode::Terminal));
        assert_eq!(
            mode_for(&plain, &spread, false),
            None,
            "never to a pipe unasked"
        );
        assert_eq!(
            mode_for(&plain, &here, true),
            None,
            "a query on this host is short"
        );
        assert_eq!(mode_for(&forced, &here, false), Some(Mode::Log));
        assert_eq!(mode_for(&forced, &spread, true), Some(Mode::Terminal));
        assert_eq!(mode_for(&silenced, &spread, true), None);
    }

    #[test]
    fn the_line_counts_paths_bytes_and_members() {
        let mut t = Tally {
            per_path: 1,
            ..Tally::default()
        };
        t.see("n1", Some(1024), None);
        t.see("n2", Some(1024), None);
        let down = Error::new(ErrorCode::Unreachable, "gone");
        t.see("n2", None, Some(&down));
        let missing = Error::new(ErrorCode::NotFound, "no such file");
        t.see("n1", None, Some(&missing));
        let line = t.line((10, false), 0, Duration::from_secs(2), None);
        assert_eq!(
            line,
            "4 of 10+ paths, 2.00 KiB, 1.00 KiB/s, 1 member working, 1 failed (2 paths failed)"
        );
        let mut all = Tally {
            per_path: 3,
            ..Tally::default()
        };
        all.see("n1", Some(1), None);
        assert!(
            all.line((2, true), 0, Duration::from_secs(1), None)
                .starts_with("1 of 6 answers (2 paths, 3 members each), ")
        );
        let mut one = Tally::default();
        one.see("n1", None, Some(&missing));
        assert_eq!(
            one.line((1, true), 0, Duration::from_secs(1), Some(Duration::ZERO)),
            "1 of 1 paths, 0 B, 0 B/s, 0 members working, 0 failed (1 path failed)"
        );
        let line = t.line(
            (10, true),
            5,
            Duration::from_secs(2),
            Some(Duration::from_secs(3)),
        );
        assert!(line.starts_with("4 of 10 paths,"), "{line}");
        assert!(line.contains("ETA 3 seconds"), "{line}");
        assert!(line.ends_with("(5 done before, skipped)"), "{line}");
    }

    #[test]
    fn a_log_gets_whole_lines() {
        let l = Lines::default();
        l.write_str("\r").unwrap();
        l.write_str("3 of 9 paths").unwrap();
        l.write_str("      ").unwrap();
        let mut got = String::new();
        l.with_line(|s| got = s.trim_end().to_string());
        assert_eq!(got, "3 of 9 paths");
        l.clear_line().unwrap();
        l.with_line(|s| assert!(s.is_empty()));
    }
}

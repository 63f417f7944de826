//! The daemon's log: env_logger on stderr, whose filter can be replaced
//! while running (SIGHUP), which env_logger alone cannot do once installed.
//!
//! Lines about hostile or broken input (datagrams that fail to open,
//! handshakes without the key, malformed frames and requests) go through
//! [`hostile`]: the first of each kind is logged at once, then at most one
//! line per [`HOSTILE_EVERY`] with the count of those left out, at every
//! level, so a flood cannot fill the disk. What an operator needs at debug
//! level to follow joins and queries (sessions, queries and their fan-out,
//! joins through us) goes through [`trail`]: routine, but set off by others,
//! so bounded too, more loosely. Strings a peer or a local caller
//! chose (member names, messages, paths) are logged through [`untrusted`],
//! escaped and cut short, so they cannot forge lines or colour a terminal.

use log::{Level, Log, Metadata, Record};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// How often a kind of hostile input may be logged.
pub const HOSTILE_EVERY: Duration = Duration::from_secs(10);

/// How many [`trail`] lines of one kind may be logged per [`TRAIL_EVERY`].
pub const TRAIL_BURST: u32 = 50;

/// The interval of [`TRAIL_BURST`].
pub const TRAIL_EVERY: Duration = Duration::from_secs(1);

/// Per kind of line: when its current interval began, how many lines it let
/// through in it, and how many were held back since the last one let
/// through. Up to `burst` lines per interval, the first at once; the first
/// line of a later interval carries the count of those held back.
#[derive(Debug)]
pub struct Limiter {
    every: Duration,
    burst: u32,
    kinds: HashMap<&'static str, (Instant, u32, u64)>,
}

impl Limiter {
    /// One line per interval.
    pub fn new(every: Duration) -> Limiter {
        Limiter::with_burst(every, 1)
    }

    /// `burst` lines per interval (at least one).
    pub fn with_burst(every: Duration, burst: u32) -> Limiter {
        Limiter {
            every,
            burst: burst.max(1),
            kinds: HashMap::new(),
        }
    }

    /// Whether a line of `kind` may be logged at `now`; if so, how many of
    /// that kind were held back since the last one let through.
    pub fn admit(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
        match self.kinds.get_mut(kind) {
            Some((start, sent, held)) if now.saturating_duration_since(*start) < self.every => {
                if *sent < self.burst {
                    *sent += 1;
                    Some(std::mem::take(held))
                } else {
                    *held += 1;
                    None
                }
            }
            Some((start, sent, held)) => {
                *start = now;
                *sent = 1;
                Some(std::mem::take(held))
            }
            None => {
                self.kinds.insert(kind, (now, 1, 0));
                Some(0)
            }
        }
    }
}

static HOSTILE: OnceLock<Mutex<Limiter>> = OnceLock::new();

/// Logs a line about hostile input of `kind` (a short fixed name, such as
/// `"datagram"`), rate-limited per kind; see the module doc.
pub fn hostile(level: Level, kind: &'static str, line: fmt::Arguments<'_>) {
    if !log::log_enabled!(level) {
        return;
    }
    let limiter = HOSTILE.get_or_init(|| Mutex::new(Limiter::new(HOSTILE_EVERY)));
    let admitted = match limiter.lock() {
        Ok(mut l) => l.admit(kind, Instant::now()),
        Err(poisoned) => poisoned.into_inner().admit(kind, Instant::now()),
    };
    match admitted {
        None => {}
        Some(0) => log::log!(level, "{line}"),
        Some(held) => log::log!(
            level,
            "{line} (and {held} more like it in the last {} s, not logged)",
            HOSTILE_EVERY.as_secs()
        ),
    }
}

static TRAIL: OnceLock<Mutex<Limiter>> = OnceLock::new();

/// Logs at debug level a line about routine work that others set off (a
/// session a peer opened, a local user's query, a member's query, a join
/// through us), rate-limited per `kind`: [`TRAIL_BURST`] lines per
/// [`TRAIL_EVERY`], then a count of those left out.
pub fn trail(kind: &'static str, line: fmt::Arguments<'_>) {
    if !log::log_enabled!(Level::Debug) {
        return;
    }
    let limiter = TRAIL.get_or_init(|| Mutex::new(Limiter::with_burst(TRAIL_EVERY, TRAIL_BURST)));
    let admitted = match limiter.lock() {
        Ok(mut l) => l.admit(kind, Instant::now()),
        Err(poisoned) => poisoned.into_inner().admit(kind, Instant::now()),
    };
    match admitted {
        None => {}
        Some(0) => log::debug!("{line}"),
        Some(held) => log::debug!("{line} (and {held} more {kind} lines before it, not logged)"),
    }
}

/// A query's kind as the protocol spells it, for log lines.
pub fn kind_name(kind: crate::proto::QueryKind) -> &'static str {
    match kind {
        crate::proto::QueryKind::Wc => "wc",
        crate::proto::QueryKind::Sha256 => "sha256",
        crate::proto::QueryKind::Count => "count",
        crate::proto::QueryKind::Stat => "stat",
    }
}

/// Where a query runs, for log lines: `this host`, `--all`, `--spread`, or
/// `--peer a,b`, with its tag filter; names escaped.
pub fn describe_target(target: Option<&crate::proto::Target>) -> String {
    let Some(t) = target else {
        return "this host".into();
    };
    let mut s = if t.spread {
        "--spread".to_string()
    } else if t.all {
        "--all".to_string()
    } else {
        let peers: Vec<String> = t.peers.iter().map(|p| untrusted(p).to_string()).collect();
        format!("--peer {}", peers.join(","))
    };
    for (k, v) in &t.tags {
        s.push_str(&format!(" where {}={}", untrusted(k), untrusted(v)));
    }
    s
}

/// A duration in milliseconds, for log lines.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Longest untrusted string logged, in chars.
const UNTRUSTED_MAX: usize = 128;

/// A string someone else chose, for a log line: control characters,
/// newlines and quotes escaped, cut at 128 chars.
pub struct Untrusted<'a>(&'a str);

/// See [`Untrusted`].
pub fn untrusted(s: &str) -> Untrusted<'_> {
    Untrusted(s)
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(UNTRUSTED_MAX) {
            fmt::Display::fmt(&c.escape_debug(), f)?;
        }
        if chars.next().is_some() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// The installed logger; its inner env_logger is swapped on reload.
struct Reloadable {
    inner: RwLock<env_logger::Logger>,
}

static LOGGER: OnceLock<Reloadable> = OnceLock::new();

fn build(spec: &str) -> env_logger::Logger {
    let mut b = env_logger::Builder::new();
    b.parse_filters(spec);
    // The journal stamps each line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        b.format_timestamp(None);
    }
    b.build()
}

impl Log for Reloadable {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner
            .read()
            .map(|l| l.enabled(metadata))
            .unwrap_or(false)
    }

    fn log(&self, record: &Record<'_>) {
        if let Ok(l) = self.inner.read() {
            l.log(record);
        }
    }

    fn flush(&self) {
        if let Ok(l) = self.inner.read() {
            l.flush();
        }
    }
}

/// Installs the logger with a filter such as `info` or `p2p=debug,warn`.
pub fn init(spec: &str) {
    let logger = build(spec);
    let max = logger.filter();
    let installed = LOGGER.get_or_init(|| Reloadable {
        inner: RwLock::new(logger),
    });
    if log::set_logger(installed).is_ok() {
        log::set_max_level(max);
    }
}

/// Replaces the filter of the installed logger.
pub fn set_filter(spec: &str) {
    let Some(installed) = LOGGER.get() else {
        return init(spec);
    };
    let logger = build(spec);
    log::set_max_level(logger.filter());
    if let Ok(mut l) = installed.inner.write() {
        *l = logger;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_lets_the_first_through_then_one_per_interval_with_the_count() {
        let mut l = Limiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.admit("datagram", t0), Some(0));
        for i in 1..20_000u64 {
            let at = t0 + Duration::from_micros(i * 100);
            assert_eq!(l.admit("datagram", at), None, "{i}");
        }
        // Another kind is limited on its own.
        assert_eq!(l.admit("handshake", t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(l.admit("handshake", t0 + Duration::from_secs(2)), None);
        assert_eq!(
            l.admit("datagram", t0 + Duration::from_secs(10)),
            Some(19_999)
        );
        assert_eq!(l.admit("datagram", t0 + Duration::from_secs(11)), None);
        assert_eq!(l.admit("datagram", t0 + Duration::from_secs(21)), Some(1));
    }

    #[test]
    fn a_burst_limiter_lets_that_many_through_per_interval_then_counts() {
        let mut l = Limiter::with_burst(Duration::from_secs(1), 3);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(l.admit("query", at(0)), Some(0));
        assert_eq!(l.admit("query", at(1)), Some(0));
        assert_eq!(l.admit("query", at(2)), Some(0));
        for i in 3..10 {
            assert_eq!(l.admit("query", at(i)), None, "{i}");
        }
        assert_eq!(l.admit("session", at(5)), Some(0));
        // A new interval: the first line says how many were left out.
        assert_eq!(l.admit("query", at(1000)), Some(7));
        assert_eq!(l.admit("query", at(1001)), Some(0));
    }

    #[test]
    fn targets_are_described_with_escaped_names() {
        use crate::proto::Target;
        assert_eq!(describe_target(None), "this host");
        let t = Target {
            peers: vec!["a".into(), "b\nINFO forged".into()],
            ..Default::default()
        };
        assert_eq!(describe_target(Some(&t)), r"--peer a,b\nINFO forged");
        let mut t = Target {
            all: true,
            ..Default::default()
        };
        t.tags.insert("role".into(), "db".into());
        assert_eq!(describe_target(Some(&t)), "--all where role=db");
    }

    #[test]
    fn untrusted_strings_are_escaped_and_cut_short() {
        let s = untrusted("evil\nINFO forged line\u{1b}[31m\"").to_string();
        assert_eq!(s, r#"evil\nINFO forged line\u{1b}[31m\""#);
        assert!(!s.contains('\n') && !s.contains('\u{1b}'));
        let long = untrusted(&"x".repeat(1000)).to_string();
        assert_eq!(long.chars().count(), UNTRUSTED_MAX + 1);
        assert_eq!(untrusted("node-1:65432").to_string(), "node-1:65432");
    }
}

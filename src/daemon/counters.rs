//! The daemon's counters, for `p2p-status`: plain atomics added to with
//! relaxed ordering (one add per item, per read chunk or per event, never
//! a lock on a hot path), and read together into a [`Status`] when asked.
//! Gauges that already live under a lock (the pool's queues, the member
//! list) are read there at that moment instead of being kept here.
//!
//! The field names of [`Status`] and of its Prometheus rendering are part
//! of the interface: p2p-status(1) lists each of them.

use crate::membership::{MemberInfo, MemberState};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

/// Why a gossip datagram was dropped, as the counters tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// No installed key authenticates it.
    Authentication,
    /// Its stamp was seen already, is below the window, or is of an earlier run.
    Replay,
    /// Sealed for another member.
    Misaddressed,
    /// Too short, of an unknown version.
    Malformed,
    /// Authentic, but carrying a member identity out of bounds (an
    /// oversized name or tags): dropped by the membership. Records of a
    /// full sync count here too.
    Identity,
    /// From a member whose certificate the CA revoked.
    Revoked,
    /// Revocation news refused: not signed by our CA, malformed, or a list
    /// older than the one in force (from gossip, a sync or a join reply).
    Revocation,
}

/// What became of a datagram on the LAN discovery port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beacon {
    /// A beacon of this cluster, opened.
    Heard,
    /// A join tried through the member it named.
    Joined,
    /// Dropped: no key of ours opens it (another cluster, or noise).
    Authentication,
    /// Dropped: opened before, or from an earlier run of its sender.
    Replay,
    /// Dropped: not a beacon, or naming another host than its sender.
    Malformed,
}

/// Why a connection to the peer port was refused before any request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The initiator does not hold our cluster key.
    Authentication,
    /// The handshake broke off, timed out or was malformed.
    Handshake,
}

/// Where a query or an item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A command on this host's socket.
    Local,
    /// A member, over the peer port.
    Remote,
}

/// Every counter of one daemon.
#[derive(Debug)]
pub struct Counters {
    started: Instant,
    queries_local: AtomicU64,
    queries_remote: AtomicU64,
    items_local: AtomicU64,
    items_remote: AtomicU64,
    bytes_read: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    queries_cancelled: AtomicU64,
    /// Gauge: authenticated sessions on the peer port being served.
    sessions_in: AtomicI64,
    /// Gauge: the membership's local health score
    /// ([`crate::membership::Membership::health`]).
    health: AtomicU64,
    datagrams: [AtomicU64; 7],
    connections: [AtomicU64; 2],
    beacons: [AtomicU64; 5],
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            started: Instant::now(),
            queries_local: AtomicU64::new(0),
            queries_remote: AtomicU64::new(0),
            items_local: AtomicU64::new(0),
            items_remote: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            queries_cancelled: AtomicU64::new(0),
            sessions_in: AtomicI64::new(0),
            health: AtomicU64::new(0),
            datagrams: Default::default(),
            connections: Default::default(),
            beacons: Default::default(),
        }
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn query(&self, origin: Origin) {
        add(
            match origin {
                Origin::Local => &self.queries_local,
                Origin::Remote => &self.queries_remote,
            },
            1,
        );
    }

    /// `n` items answered (computed, or failed before they could be).
    pub fn items(&self, origin: Origin, n: u64) {
        add(
            match origin {
                Origin::Local => &self.items_local,
                Origin::Remote => &self.items_remote,
            },
            n,
        );
    }

    /// File content read for an answer.
    pub fn read(&self, bytes: u64) {
        add(&self.bytes_read, bytes);
    }

    /// A file's answer came from the cache (`hit`), or had to be read.
    pub fn cache(&self, hit: bool) {
        add(
            if hit {
                &self.cache_hits
            } else {
                &self.cache_misses
            },
            1,
        );
    }

    /// The membership's local health score, as it is now.
    pub fn set_health(&self, score: u32) {
        self.health.store(u64::from(score), Ordering::Relaxed);
    }

    /// A query whose asker went away while its work was in progress.
    pub fn cancelled(&self) {
        add(&self.queries_cancelled, 1);
    }

    pub fn rejected(&self, why: Rejected) {
        add(&self.datagrams[why as usize], 1);
    }

    /// Counts a datagram on the discovery port, or a join it led to.
    pub fn beacon(&self, what: Beacon) {
        add(&self.beacons[what as usize], 1);
    }

    /// Counts a refused peer connection; returns how many were refused for
    /// that reason so far (for the log line).
    pub fn refused(&self, why: Refused) -> u64 {
        self.connections[why as usize].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A session on the peer port, counted open until the guard drops.
    pub fn session_in(&self) -> SessionGuard<'_> {
        self.sessions_in.fetch_add(1, Ordering::Relaxed);
        SessionGuard(self)
    }

    /// The counters as of now, with what the caller read elsewhere: the
    /// members, and the pool's busy workers and queued jobs.
    pub fn snapshot(&self, members: &[MemberInfo], pool: PoolLoad) -> Status {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut by_state = MembersByState::default();
        for m in members {
            match m.state {
                MemberState::Alive => by_state.alive += 1,
                MemberState::Suspect => by_state.suspect += 1,
                MemberState::Down => by_state.down += 1,
                MemberState::Left => by_state.left += 1,
                MemberState::Revoked => by_state.revoked += 1,
            }
        }
        Status {
            name: String::new(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            members: by_state,
            queries_local: get(&self.queries_local),
            queries_remote: get(&self.queries_remote),
            queries_cancelled: get(&self.queries_cancelled),
            items_local: get(&self.items_local),
            items_remote: get(&self.items_remote),
            bytes_read: get(&self.bytes_read),
            cache_hits: get(&self.cache_hits),
            cache_misses: get(&self.cache_misses),
            workers: pool.workers as u64,
            workers_busy: pool.busy as u64,
            jobs_queued: pool.queued as u64,
            sessions_in: self.sessions_in.load(Ordering::Relaxed).max(0) as u64,
            sessions_kept: 0,
            watchers: 0,
            local_health: get(&self.health),
            datagrams_rejected: DatagramsRejected {
                authentication: get(&self.datagrams[Rejected::Authentication as usize]),
                replay: get(&self.datagrams[Rejected::Replay as usize]),
                misaddressed: get(&self.datagrams[Rejected::Misaddressed as usize]),
                malformed: get(&self.datagrams[Rejected::Malformed as usize]),
                identity: get(&self.datagrams[Rejected::Identity as usize]),
                revoked: get(&self.datagrams[Rejected::Revoked as usize]),
                revocation: get(&self.datagrams[Rejected::Revocation as usize]),
            },
            connections_rejected: ConnectionsRejected {
                authentication: get(&self.connections[Refused::Authentication as usize]),
                handshake: get(&self.connections[Refused::Handshake as usize]),
            },
            beacons: Beacons {
                heard: get(&self.beacons[Beacon::Heard as usize]),
                joined: get(&self.beacons[Beacon::Joined as usize]),
                authentication: get(&self.beacons[Beacon::Authentication as usize]),
                replay: get(&self.beacons[Beacon::Replay as usize]),
                malformed: get(&self.beacons[Beacon::Malformed as usize]),
            },
        }
    }
}

/// Keeps one peer session counted as open.
pub struct SessionGuard<'a>(&'a Counters);

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.0.sessions_in.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The worker pool at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolLoad {
    pub workers: usize,
    pub busy: usize,
    pub queued: usize,
}

/// Members known, by state, this daemon included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MembersByState {
    pub alive: u64,
    pub suspect: u64,
    pub down: u64,
    pub left: u64,
    pub revoked: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatagramsRejected {
    pub authentication: u64,
    pub replay: u64,
    pub misaddressed: u64,
    pub malformed: u64,
    pub identity: u64,
    pub revoked: u64,
    pub revocation: u64,
}

/// LAN discovery: beacons heard, joins tried, and datagrams dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Beacons {
    pub heard: u64,
    pub joined: u64,
    pub authentication: u64,
    pub replay: u64,
    pub malformed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionsRejected {
    pub authentication: u64,
    pub handshake: u64,
}

/// The reply to `Request::Status`: one JSON object, documented field by
/// field in p2p-status(1). Fields are only ever added: a field an older
/// daemon does not send reads as 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub name: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub members: MembersByState,
    pub queries_local: u64,
    pub queries_remote: u64,
    pub queries_cancelled: u64,
    pub items_local: u64,
    pub items_remote: u64,
    pub bytes_read: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub workers: u64,
    pub workers_busy: u64,
    pub jobs_queued: u64,
    pub sessions_in: u64,
    /// Sessions to members kept for the next query; filled in by the
    /// daemon, whose session pool keeps them.
    pub sessions_kept: u64,
    /// Membership watchers (`p2p-peers --watch`) connected now; filled in
    /// by the daemon, which keeps them.
    pub watchers: u64,
    /// How late this daemon finds itself running, 0 (on time) to
    /// [`crate::membership::MAX_HEALTH`]: what it times of failure
    /// detection takes `1 + local_health` times as long.
    pub local_health: u64,
    pub datagrams_rejected: DatagramsRejected,
    pub connections_rejected: ConnectionsRejected,
    pub beacons: Beacons,
}

/// One metric of the Prometheus text format.
struct Metric<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    /// (labels, value); labels already rendered as `{k="v"}` or empty.
    samples: Vec<(String, u64)>,
}

impl Status {
    /// The counters in the Prometheus text exposition format (version
    /// 0.0.4), as node_exporter's textfile collector reads them: names
    /// start with `p2p_`, counters end in `_total`.
    pub fn prometheus(&self) -> String {
        let one = |v: u64| vec![(String::new(), v)];
        let by = |label: &str, pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(k, v)| (format!("{{{label}=\"{k}\"}}"), *v))
                .collect::<Vec<_>>()
        };
        let origin = |l: u64, r: u64| by("origin", &[("local", l), ("remote", r)]);
        let m = &self.members;
        let d = &self.datagrams_rejected;
        let c = &self.connections_rejected;
        let b = &self.beacons;
        let metrics = [
            Metric {
                name: "p2p_uptime_seconds",
                kind: "gauge",
                help: "Seconds since p2pd started.",
                samples: one(self.uptime_seconds),
            },
            Metric {
                name: "p2p_members",
                kind: "gauge",
                help: "Members known, this daemon included, by state.",
                samples: by(
                    "state",
                    &[
                        ("alive", m.alive),
                        ("suspect", m.suspect),
                        ("down", m.down),
                        ("left", m.left),
                        ("revoked", m.revoked),
                    ],
                ),
            },
            Metric {
                name: "p2p_queries_total",
                kind: "counter",
                help: "Queries served, from local commands and from members.",
                samples: origin(self.queries_local, self.queries_remote),
            },
            Metric {
                name: "p2p_queries_cancelled_total",
                kind: "counter",
                help: "Queries whose asker went away while their work was in progress.",
                samples: one(self.queries_cancelled),
            },
            Metric {
                name: "p2p_items_total",
                kind: "counter",
                help: "Items answered by this daemon, for local commands and for members.",
                samples: origin(self.items_local, self.items_remote),
            },
            Metric {
                name: "p2p_read_bytes_total",
                kind: "counter",
                help: "Bytes of file content read for answers.",
                samples: one(self.bytes_read),
            },
            Metric {
                name: "p2p_cache_hits_total",
                kind: "counter",
                help: "File answers found in the result cache.",
                samples: one(self.cache_hits),
            },
            Metric {
                name: "p2p_cache_misses_total",
                kind: "counter",
                help: "File answers that had to be read.",
                samples: one(self.cache_misses),
            },
            Metric {
                name: "p2p_workers",
                kind: "gauge",
                help: "Worker threads.",
                samples: one(self.workers),
            },
            Metric {
                name: "p2p_workers_busy",
                kind: "gauge",
                help: "Worker threads running a job.",
                samples: one(self.workers_busy),
            },
            Metric {
                name: "p2p_jobs_queued",
                kind: "gauge",
                help: "Jobs waiting for a worker.",
                samples: one(self.jobs_queued),
            },
            Metric {
                name: "p2p_sessions_in",
                kind: "gauge",
                help: "Authenticated sessions from members being served on the peer port.",
                samples: one(self.sessions_in),
            },
            Metric {
                name: "p2p_sessions_kept",
                kind: "gauge",
                help: "Sessions to members kept open for the next cluster query.",
                samples: one(self.sessions_kept),
            },
            Metric {
                name: "p2p_watchers",
                kind: "gauge",
                help: "Membership watchers (p2p-peers --watch) connected.",
                samples: one(self.watchers),
            },
            Metric {
                name: "p2p_local_health",
                kind: "gauge",
                help: "How late this daemon runs its failure detection (0 on time, at most 8).",
                samples: one(self.local_health),
            },
            Metric {
                name: "p2p_datagrams_rejected_total",
                kind: "counter",
                help: "Gossip datagrams dropped, by reason.",
                samples: by(
                    "reason",
                    &[
                        ("authentication", d.authentication),
                        ("replay", d.replay),
                        ("misaddressed", d.misaddressed),
                        ("malformed", d.malformed),
                        ("identity", d.identity),
                        ("revoked", d.revoked),
                        ("revocation", d.revocation),
                    ],
                ),
            },
            Metric {
                name: "p2p_connections_rejected_total",
                kind: "counter",
                help: "Connections to the peer port refused before any request, by reason.",
                samples: by(
                    "reason",
                    &[
                        ("authentication", c.authentication),
                        ("handshake", c.handshake),
                    ],
                ),
            },
            Metric {
                name: "p2p_beacons_total",
                kind: "counter",
                help: "LAN discovery: beacons heard, joins tried, datagrams dropped by reason.",
                samples: by(
                    "result",
                    &[
                        ("heard", b.heard),
                        ("joined", b.joined),
                        ("authentication", b.authentication),
                        ("replay", b.replay),
                        ("malformed", b.malformed),
                    ],
                ),
            },
        ];
        let mut out = String::new();
        for m in &metrics {
            let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
            let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind);
            for (labels, v) in &m.samples {
                let _ = writeln!(out, "{}{labels} {v}", m.name);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_in_the_snapshot() {
        let c = Counters::default();
        c.query(Origin::Local);
        c.query(Origin::Remote);
        c.query(Origin::Remote);
        c.items(Origin::Local, 3);
        c.read(100);
        c.read(23);
        c.cache(true);
        c.cache(false);
        c.cache(false);
        c.cancelled();
        c.rejected(Rejected::Replay);
        assert_eq!(c.refused(Refused::Authentication), 1);
        assert_eq!(c.refused(Refused::Authentication), 2);
        let guard = c.session_in();
        let pool = PoolLoad {
            workers: 4,
            busy: 1,
            queued: 2,
        };
        let s = c.snapshot(&[], pool);
        assert_eq!((s.queries_local, s.queries_remote), (1, 2));
        assert_eq!((s.items_local, s.items_remote), (3, 0));
        assert_eq!(s.bytes_read, 123);
        assert_eq!((s.cache_hits, s.cache_misses), (1, 2));
        assert_eq!(s.queries_cancelled, 1);
        assert_eq!(s.datagrams_rejected.replay, 1);
        assert_eq!(s.datagrams_rejected.authentication, 0);
        assert_eq!(s.connections_rejected.authentication, 2);
        assert_eq!(s.sessions_in, 1);
        drop(guard);
        assert_eq!(c.snapshot(&[], pool).sessions_in, 0);
        assert_eq!((s.workers, s.workers_busy, s.jobs_queued), (4, 1, 2));
    }

    #[test]
    fn prometheus_lines_are_comments_or_samples() {
        let s = Status {
            queries_local: 7,
            ..Status::default()
        };
        let text = s.prometheus();
        assert!(text.contains("p2p_queries_total{origin=\"local\"} 7\n"));
        assert!(text.contains("# TYPE p2p_read_bytes_total counter\n"));
        for line in text.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("p2p_"), "{line}");
            value.parse::<u64>().unwrap();
        }
        // Every counter's name ends in _total, and each metric is typed once.
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let parts: Vec<&str> = line.split(' ').collect();
            if parts[3] == "counter" {
                assert!(parts[2].ends_with("_total"), "{line}");
            }
        }
    }
}

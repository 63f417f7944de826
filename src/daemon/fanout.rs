//! Queries that run on other members (`--peer`, `--all`, `--spread`): the
//! local daemon opens one encrypted session per chosen member, feeds each
//! its paths in batches, and streams every result to the client as it
//! arrives.
//!
//! A session kept from an earlier query ([`SessionPool`]) is used without
//! a round trip first: the query, its first paths and, when there are no
//! more, the end go out in one write, and the member's acceptance is read
//! with the results. If the member had closed that session (it restarted,
//! or let it go), the same frames go again on a fresh session, once.
//!
//! One thread per member link. Which link answers which path is decided by
//! [`Distributor`] (see there). A member that cannot be reached, refuses us,
//! stays silent longer than the query's timeout, or says it is working for
//! [`STALL_FACTOR`] times that without a result fails its link: with
//! `--spread` its unfinished paths go to the others, otherwise each of its
//! paths gets an error line. Every path thus gets exactly its lines, whatever
//! happens to the members.
//!
//! This node may be among the members asked. Its exports let remote members
//! read with the daemon's rights, but a local caller must never learn about
//! a file they could not open themselves, whatever placement they choose. So
//! for a caller foreign to the daemon (neither its user nor root) this
//! node's answers are computed here, in-process ([`run_here`]): the path is
//! resolved below the exports exactly as for a remote member, and answered
//! only if the caller passed their own descriptor of that very file, open for
//! reading. A directory count is not walked here at all: its answer is the
//! count the caller's command took itself on that descriptor.
//!
//! Bounds against amplification: a target naming one member several times
//! (by name or by address) gets one link; a `--peer` list may name at most
//! [`MAX_PEERS`] members; and this daemon holds at most
//! [`LINKS_PER_MEMBER`] links to one member at once, over all queries (the
//! others wait for a free one).

use super::Shared;
use super::batch::{Batches, Done};
use super::caller::Caller;
use super::cancel::Cancel;
use super::distribute::{Distributor, Mode};
use super::engine::Fields;
use super::logging;
use crate::crypto::session::{Session, SessionError};
use crate::error::{Error, ErrorCode};
use crate::exports::Asker;
use crate::membership::{MemberInfo, MemberState};
use crate::ops::count::DirCounts;
use crate::ops::ranges::RangeCount;
use crate::proto::peer::{self, ByteRange, PeerItem, PeerReply, PeerRequest};
use crate::proto::{Outcome, PathBytes, Query, QueryKind, Summary, Target};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Items handed to a member in one frame.
const BATCH: usize = 64;

/// Items a member may hold at once: two batches, so it has the next one
/// while its results travel back.
const WINDOW: usize = 2 * BATCH;

/// Bytes a member may hold at once with `--spread`, as far as the sizes
/// are known (one file of any size all the same): large files go one or
/// two at a time, so each member gets its share of them.
const WINDOW_BYTES: u64 = 128 << 20;

/// The largest range a split file is cut into (`p2pd --split-above` sets
/// the size from which a file is split, and smaller ranges with it).
const MAX_PART: u64 = 64 << 20;

/// Paths held for members that have not taken them yet; past this the
/// client is not read until they catch up.
const MAX_BACKLOG: u64 = 8192;

/// Caller's descriptors held for this node's own answers; past this the
/// client is not read until some are used.
const MAX_HELD_FILES: usize = 256;

/// The longest a connection attempt may take, whatever the query's timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default silence allowed to a member.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The query timeouts accepted, in milliseconds (as `--timeout` accepts them).
pub const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 50..=86_400_000;

/// A member that only says "working" is given up after this many times the
/// query's timeout without a result (10 minutes by default): room for one
/// long file, not for a member that never finishes.
pub const STALL_FACTOR: u32 = 60;

/// Members one `--peer` list may name (after duplicates collapse).
pub const MAX_PEERS: usize = 64;

/// Links this daemon holds to one member at once, over all queries.
pub const LINKS_PER_MEMBER: usize = 4;

/// Sessions to members left open after a query, for the next one: a query
/// on a member already asked within 20 s skips the TCP and Noise
/// handshakes, which are most of what asking a member costs. So that a
/// second `--all` over a large cluster finds a session to every member,
/// the sessions kept are bounded by the descriptor limit ([`keep_cap`]),
/// not by `--max-links`.
/// It also counts the links open to each member, to hold them to
/// [`LINKS_PER_MEMBER`], and the links open in all, to hold them to the
/// daemon's `--max-links` ([`SessionPool::acquire`]).
pub struct SessionPool {
    idle: Mutex<Idle>,
    busy: Mutex<HashMap<SocketAddr, usize>>,
    freed: Condvar,
    /// The most member links open at once, over all queries, as
    /// configured (`--max-links`); what the descriptor limit allows may be
    /// less ([`SessionPool::max_links`]).
    configured: usize,
    /// The bound last in force, to log a change.
    in_force: AtomicUsize,
    places: Mutex<Places>,
    place_freed: Condvar,
}

impl Default for SessionPool {
    fn default() -> Self {
        SessionPool::new(DEFAULT_MAX_LINKS)
    }
}

/// The default of `p2pd --max-links`.
pub const DEFAULT_MAX_LINKS: usize = 64;

/// The most member links a descriptor limit of `nofile` allows: each link
/// needs one descriptor while open and may keep one more (a session kept
/// for the next query), and a quarter of the limit (at least 24) stays for
/// everything else: the listeners, local clients, members' sessions to
/// us, and the files being read.
pub fn link_cap(nofile: u64) -> usize {
    let reserve = (nofile / 4).max(24);
    let cap = nofile.saturating_sub(reserve) / 2;
    usize::try_from(cap).unwrap_or(usize::MAX).max(1)
}

/// The most sessions kept for the next query, in all, under a descriptor
/// limit of `nofile` with `links` member links open at once: the room
/// [`link_cap`] leaves beside those links (kept sessions and open links
/// together stay within half of what is not reserved), and never fewer
/// than `links`.
pub fn keep_cap(nofile: u64, links: usize) -> usize {
    let reserve = (nofile / 4).max(24);
    let room = nofile.saturating_sub(reserve) / 2;
    let links = u64::try_from(links).unwrap_or(u64::MAX);
    let cap = room.saturating_sub(links).max(links);
    usize::try_from(cap).unwrap_or(usize::MAX).max(1)
}

/// This process's soft limit on open descriptors.
pub fn descriptor_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_cur
}

/// Who holds and who waits for the `--max-links` places.
#[derive(Default)]
struct Places {
    in_use: usize,
    /// Tickets of the waiters, first come first served.
    queue: VecDeque<u64>,
    next_ticket: u64,
}

/// One of the `--max-links` places; dropping it frees the place.
pub struct Place<'a> {
    pool: &'a SessionPool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut p = self.pool.places();
        p.in_use = p.in_use.saturating_sub(1);
        drop(p);
        self.pool.place_freed.notify_all();
    }
}

/// A link's place among those to one member; dropping it frees the place.
pub struct LinkSlot<'a> {
    pool: &'a SessionPool,
    addr: SocketAddr,
}

impl Drop for LinkSlot<'_> {
    fn drop(&mut self) {
        let mut busy = self.pool.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = busy.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                busy.remove(&self.addr);
            }
        }
        drop(busy);
        self.pool.freed.notify_all();
    }
}

/// A session, since when it has been unused, and the name the member
/// gave when it accepted a query on it.
type Kept = (std::time::Instant, Session<Conn>, String);

/// The sessions kept, by member address, and how many there are.
#[derive(Default)]
struct Idle {
    by_addr: HashMap<SocketAddr, Vec<Kept>>,
    count: usize,
    /// When sessions unused for [`KEEP_IDLE`] were last closed.
    swept: Option<Instant>,
}

impl Idle {
    /// Closes the sessions unused for [`KEEP_IDLE`], at most once a
    /// second: with thousands kept, a sweep on every query's every link
    /// would cost more than the sessions save.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.swept = Some(now);
        let mut count = 0;
        self.by_addr.retain(|_, l| {
            l.retain(|(since, ..)| now.duration_since(*since) < KEEP_IDLE);
            count += l.len();
            !l.is_empty()
        });
        self.count = count;
    }

    /// Closes the session kept longest, to make room.
    fn drop_oldest(&mut self) {
        let oldest = self
            .by_addr
            .iter()
            .filter_map(|(a, l)| l.first().map(|(since, ..)| (*since, *a)))
            .min();
        if let Some((_, a)) = oldest
            && let Some(l) = self.by_addr.get_mut(&a)
        {
            l.remove(0);
            self.count -= 1;
            if l.is_empty() {
                self.by_addr.remove(&a);
            }
        }
    }
}

/// A member connection shared between its link and the query, which may
/// shut it down from another thread ([`Feeder::cancel`]) to end a read
/// that would otherwise wait out the query's timeout.
pub struct Conn(Arc<TcpStream>);

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn(Arc::new(stream))
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.0
    }
}

impl io::Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl io::Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

/// How long an unused session is kept (members close theirs after 60 s).
const KEEP_IDLE: Duration = Duration::from_secs(20);

/// Sessions kept per member; more are closed.
const KEEP_PER_MEMBER: usize = 2;

impl SessionPool {
    /// A pool holding at most `max_links` member links open at once (and
    /// keeping at most as many sessions).
    pub fn new(max_links: usize) -> SessionPool {
        SessionPool {
            idle: Mutex::default(),
            busy: Mutex::default(),
            freed: Condvar::new(),
            configured: max_links.max(1),
            in_force: AtomicUsize::new(0),
            places: Mutex::default(),
            place_freed: Condvar::new(),
        }
    }

    /// The most member links open at once: `--max-links`, or less if the
    /// descriptor limit (read now, so a limit lowered while running counts
    /// too) allows fewer ([`link_cap`]).
    pub fn max_links(&self) -> usize {
        let cap = link_cap(descriptor_limit());
        let n = self.configured.min(cap);
        let before = self.in_force.swap(n, Ordering::Relaxed);
        if before != n && (before != 0 || n < self.configured) {
            if n < self.configured {
                log::info!(
                    "cluster queries hold at most {n} member links at once: the descriptor \
                     limit ({}) allows no more than that, not the {} of --max-links",
                    descriptor_limit(),
                    self.configured
                );
            } else {
                log::info!("cluster queries hold at most {n} member links at once");
            }
        }
        n
    }

    fn places(&self) -> MutexGuard<'_, Places> {
        self.places.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for one of the `--max-links` places, first come first served;
    /// `None` once `give_up` says so (asked every 200 ms while waiting).
    pub fn acquire(&self, give_up: impl Fn() -> bool) -> Option<Place<'_>> {
        let max = self.max_links();
        let mut p = self.places();
        let ticket = p.next_ticket;
        p.next_ticket += 1;
        p.queue.push_back(ticket);
        loop {
            if p.queue.front() == Some(&ticket) && p.in_use < max {
                p.queue.pop_front();
                p.in_use += 1;
                drop(p);
                // The next in line may fit too.
                self.place_freed.notify_all();
                return Some(Place { pool: self });
            }
            if give_up() {
                p.queue.retain(|t| *t != ticket);
                drop(p);
                self.place_freed.notify_all();
                return None;
            }
            p = self
                .place_freed
                .wait_timeout(p, Duration::from_millis(200))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Whether some link waits for a place now.
    pub fn contended(&self) -> bool {
        !self.places().queue.is_empty()
    }

    /// Waits for a place among the links to `addr`; `None` once `give_up`
    /// says so (asked every 200 ms while waiting).
    pub fn reserve(&self, addr: SocketAddr, give_up: impl Fn() -> bool) -> Option<LinkSlot<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let n = busy.entry(addr).or_default();
            if *n < LINKS_PER_MEMBER {
                *n += 1;
                return Some(LinkSlot { pool: self, addr });
            }
            if give_up() {
                return None;
            }
            busy = self
                .freed
                .wait_timeout(busy, Duration::from_millis(200))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// A kept session to `addr`, if a fresh enough one is there, with the
    /// member's name.
    pub fn take(&self, addr: SocketAddr) -> Option<(Session<Conn>, String)> {
        let mut idle = self.idle.lock().ok()?;
        let idle = &mut *idle;
        let list = idle.by_addr.get_mut(&addr)?;
        let mut found = None;
        while let Some((since, s, name)) = list.pop() {
            idle.count -= 1;
            if since.elapsed() < KEEP_IDLE {
                found = Some((s, name));
                break;
            }
        }
        if list.is_empty() {
            idle.by_addr.remove(&addr);
        }
        found
    }

    /// Closes the kept sessions `refused` picks (their peers' certificates
    /// are revoked).
    pub fn drop_refused(&self, refused: impl Fn(&Session<Conn>) -> bool) {
        if let Ok(mut idle) = self.idle.lock() {
            let mut count = 0;
            idle.by_addr.retain(|_, l| {
                l.retain(|(_, s, _)| !refused(s));
                count += l.len();
                !l.is_empty()
            });
            idle.count = count;
        }
    }

    /// Keeps a session that ended its query cleanly, with the name the
    /// member accepted it under.
    pub fn give(&self, addr: SocketAddr, s: Session<Conn>, name: String) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        idle.sweep(Instant::now());
        if idle.by_addr.get(&addr).map_or(0, Vec::len) >= KEEP_PER_MEMBER {
            return;
        }
        let links = self.in_force.load(Ordering::Relaxed).max(1);
        if idle.count >= keep_cap(descriptor_limit(), links) {
            idle.drop_oldest();
        }
        idle.by_addr
            .entry(addr)
            .or_default()
            .push((Instant::now(), s, name));
        idle.count += 1;
    }

    /// How many sessions are kept now.
    pub fn kept(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.count)
    }
}

/// A member to ask, as chosen from the target.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    /// How results name it until it tells its own name.
    pub label: String,
    /// Where it is, or why it cannot be asked.
    pub addr: Result<SocketAddr, Error>,
}

/// The members a target names, each once (a member named twice, or by name
/// and by address, is one link). An empty list means none matched.
///
/// `--all` names every member that has not left (with `--tag`, every such
/// member with those tags): alive and suspect ones are asked, and a down
/// one is a link that fails at once, with an `unreachable` error saying
/// since when it is down. `--spread` names only the alive and suspect
/// members: a down one is given nothing to do.
///
/// `raw_allowed` (the daemon's owner and root) lets a `--peer` be any
/// HOST:PORT; others may name members only, by name or by the address the
/// member has in the member list, so they cannot make the daemon connect
/// anywhere else. A request beyond the bounds is refused whole.
pub fn links_for(
    target: &Target,
    members: &[MemberInfo],
    raw_allowed: bool,
) -> Result<Vec<LinkSpec>, Error> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    links_at(target, members, raw_allowed, now_ms)
}

/// [`links_for`] at the wall-clock time `now_ms` (ms since the epoch).
fn links_at(
    target: &Target,
    members: &[MemberInfo],
    raw_allowed: bool,
    now_ms: u64,
) -> Result<Vec<LinkSpec>, Error> {
    if let Some(ms) = target.timeout_ms {
        if !TIMEOUT_MS.contains(&ms) {
            return Err(Error::new(
                ErrorCode::InvalidRequest,
                format!(
                    "timeout_ms must be from {} to {}, got {ms}",
                    TIMEOUT_MS.start(),
                    TIMEOUT_MS.end()
                ),
            ));
        }
    }
    let up = |m: &MemberInfo| matches!(m.state, MemberState::Alive | MemberState::Suspect);
    let mut seen_addrs = HashSet::new();
    let mut seen_labels = HashSet::new();
    let mut once = |spec: &LinkSpec| match &spec.addr {
        Ok(a) => seen_addrs.insert(*a),
        Err(_) => seen_labels.insert(spec.label.clone()),
    };
    if target.all || target.spread {
        let asked = |m: &MemberInfo| {
            if target.spread {
                up(m)
            } else {
                m.state != MemberState::Left
            }
        };
        return Ok(members
            .iter()
            .filter(|m| asked(m) && target.tags.iter().all(|(k, v)| m.tags.get(k) == Some(v)))
            .map(|m| LinkSpec {
                label: m.name.clone(),
                addr: address_of(m, now_ms),
            })
            .filter(|l| once(l))
            .collect());
    }
    let mut links = Vec::new();
    for spec in &target.peers {
        let link = link_for(spec, members, raw_allowed, now_ms)?;
        if once(&link) {
            links.push(link);
        }
        if links.len() > MAX_PEERS {
            return Err(Error::new(
                ErrorCode::InvalidRequest,
                format!(
                    "a query may name at most {MAX_PEERS} members with --peer; use --all or --spread (with --tag) for more"
                ),
            ));
        }
    }
    Ok(links)
}

/// The member one `--peer` names.
fn link_for(
    spec: &str,
    members: &[MemberInfo],
    raw_allowed: bool,
    now_ms: u64,
) -> Result<LinkSpec, Error> {
    let literal = spec.parse::<SocketAddr>().ok();
    let member = members
        .iter()
        .find(|m| m.name == spec)
        .or_else(|| members.iter().find(|m| Some(m.addr) == literal));
    if let Some(m) = member {
        return Ok(LinkSpec {
            label: m.name.clone(),
            addr: address_of(m, now_ms),
        });
    }
    let looks_raw = spec
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !raw_allowed {
        if looks_raw {
            return Err(Error::new(
                ErrorCode::PermissionDenied,
                format!(
                    "--peer {spec}: no member has that address, and only the daemon's own user \
                     or root may send queries to other addresses; name members as p2p-peers lists them"
                ),
            ));
        }
        return Ok(LinkSpec {
            label: spec.to_string(),
            addr: Err(no_such()),
        });
    }
    let addr = match spec.to_socket_addrs() {
        Ok(mut a) => a.next().ok_or_else(no_such),
        Err(_) => Err(no_such()),
    };
    Ok(LinkSpec {
        label: spec.to_string(),
        addr,
    })
}

/// Where to ask a member: its address while it is alive or suspect, else
/// why it cannot be asked, and since when.
fn address_of(m: &MemberInfo, now_ms: u64) -> Result<SocketAddr, Error> {
    if matches!(m.state, MemberState::Alive | MemberState::Suspect) {
        return Ok(m.addr);
    }
    let since = match m.since {
        Some(ms) => format!(
            " since {} ({} ago)",
            crate::membership::rfc3339_of(ms),
            ago(now_ms.saturating_sub(ms))
        ),
        None => String::new(),
    };
    if m.state == MemberState::Revoked {
        return Err(Error::new(
            ErrorCode::Unauthorized,
            format!("the member's certificate is revoked (seen{since})"),
        ));
    }
    Err(Error::new(
        ErrorCode::Unreachable,
        format!("the member is {}{since}", m.state.as_str()),
    ))
}

/// A duration in ms, roughly, for messages: `12 s`, `5 min`, `3 h`, `2 d`.
fn ago(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

fn no_such() -> Error {
    Error::new(
        ErrorCode::Unreachable,
        "no member has this name, and it is not a HOST:PORT (see p2p-peers)",
    )
}

/// One path of the query.
struct Entry {
    /// The client's number for it.
    client_id: u64,
    /// As the user wrote it, for the result line.
    shown: PathBytes,
    /// As the members open it.
    absolute: PathBytes,
    /// Answers still owed.
    owed: usize,
    /// The caller's own descriptor of the file, for this node's answer.
    file: Option<Result<File, Error>>,
    /// For a count: what the caller's command counted on that descriptor.
    counted: Option<Outcome<DirCounts>>,
    /// A byte range of a huge file counted by many members (see [`Whole`]).
    part: Option<Part>,
}

/// Which range of which split file an item is.
#[derive(Debug, Clone, Copy)]
struct Part {
    range: ByteRange,
    /// The key of its [`Whole`].
    whole: u64,
    /// Its place among the file's ranges.
    index: usize,
}

/// A file split into ranges (`p2p-wc --spread`): its line is sent once
/// every range is answered, with the counts joined in order.
struct Whole {
    client_id: u64,
    shown: PathBytes,
    parts: Vec<Option<RangeCount>>,
    left: usize,
    /// The first range that failed: the file's line is that error.
    error: Option<Map<String, Value>>,
    /// The members that counted its ranges.
    peers: Vec<String>,
}

/// What the link threads share.
struct State {
    dist: Distributor,
    entries: HashMap<u64, Entry>,
    ok: u64,
    failed: u64,
    /// The client went away; links stop.
    cancelled: bool,
    /// Entries holding a caller's descriptor.
    files_held: usize,
    /// The feeder waits for the links to take what it holds: running links
    /// that caught up make way for waiting ones.
    feeder_waiting: bool,
    /// The failed links: whom their lines name, and the error.
    failures: HashMap<usize, (String, Error)>,
    /// Files split into ranges, not fully answered yet.
    wholes: HashMap<u64, Whole>,
    /// Links cut off because their members only worked on copies others
    /// had answered first: their sessions were shut down on purpose.
    cut: HashSet<usize>,
    /// The links answered in-process by this node ([`run_here`]).
    local: HashSet<usize>,
}

struct Ctx {
    state: Mutex<State>,
    changed: Condvar,
    query: Query,
    timeout: Duration,
    out: Sender<Vec<u8>>,
    shared: Arc<Shared>,
    /// Answers owed per path: one with `--spread`, one per member otherwise.
    owed_per_path: usize,
    /// `--spread`: paths are weighed by their size.
    spread: bool,
    /// A `wc` file larger than this is split into ranges (0: never).
    split_above: u64,
    /// True for a caller foreign to the daemon, whose answers from this
    /// node are given in-process on their own descriptors; false for its
    /// own user and root, whom it answers as a member like any other.
    here: bool,
    /// Whose share of the workers this node's own answers take.
    who: super::pool::Who,
    /// The query's number in the log.
    number: u64,
    /// The connections of the links now talking to members, so that a
    /// cancellation can shut them down at once.
    open: Mutex<HashMap<usize, Arc<TcpStream>>>,
    /// Set by a cancellation, or when this node's own link is cut off
    /// ([`Ctx::cut_losers`]): this node's own answers stop too (see
    /// [`super::cancel`]).
    cancel: Cancel,
    /// `State::cancelled`, readable without the state's lock.
    stop: AtomicBool,
    /// The member of each link.
    specs: Vec<LinkSpec>,
}

impl Ctx {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_conns(&self) -> MutexGuard<'_, HashMap<usize, Arc<TcpStream>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the query: no more lines, no more paths, and every link's
    /// connection shut down so that no read waits for its timeout.
    fn cancel(&self) {
        self.lock().cancelled = true;
        self.cancel.cancel();
        self.stop.store(true, Ordering::Release);
        self.changed.notify_all();
        self.shut_all();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn shut_all(&self) {
        for conn in self.open_conns().values() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }

    /// `link` talks to a member over `conn` until the guard is dropped.
    fn register(&self, link: usize, conn: &Conn) -> Registered<'_> {
        self.open_conns().insert(link, Arc::clone(&conn.0));
        // A cancellation that came before the insertion did not see it.
        if self.lock().cancelled {
            let _ = conn.tcp().shutdown(std::net::Shutdown::Both);
        }
        Registered { ctx: self, link }
    }

    /// Sends one result line to the client and settles the entry (a
    /// range of a split file: the file's line once all are in).
    fn emit(&self, st: &mut State, id: u64, peer: &str, fields: Map<String, Value>) {
        if st.cancelled {
            return;
        }
        let Some(e) = st.entries.get_mut(&id) else {
            return;
        };
        if let Some(part) = e.part {
            st.entries.remove(&id);
            self.emit_part(st, part, peer, fields);
            return;
        }
        let client_id = e.client_id;
        let line_path = path_keys(&e.shown);
        e.owed -= 1;
        if e.owed == 0
            && let Some(done) = st.entries.remove(&id)
            && done.file.is_some()
        {
            st.files_held -= 1;
        }
        self.send_line(st, client_id, line_path, peer, fields);
    }

    /// One range of a split file answered: joined in, and the file's line
    /// sent once it was the last.
    fn emit_part(&self, st: &mut State, part: Part, peer: &str, fields: Map<String, Value>) {
        let Some(w) = st.wholes.get_mut(&part.whole) else {
            return;
        };
        if !w.peers.iter().any(|p| p == peer) {
            w.peers.push(peer.to_string());
        }
        if fields.contains_key("error") {
            w.error.get_or_insert(fields);
        } else {
            match serde_json::from_value::<RangeCount>(Value::Object(fields)) {
                Ok(c) => {
                    if let Some(slot) = w.parts.get_mut(part.index) {
                        *slot = Some(c);
                    }
                }
                Err(_) => {
                    w.error.get_or_insert(error_fields(&Error::new(
                        ErrorCode::Internal,
                        "the member answered a range with something unexpected",
                    )));
                }
            }
        }
        w.left -= 1;
        if w.left > 0 {
            return;
        }
        let Some(w) = st.wholes.remove(&part.whole) else {
            return;
        };
        let fields = match w.error {
            Some(e) => e,
            None => {
                let total = w
                    .parts
                    .iter()
                    .flatten()
                    .fold(RangeCount::default(), |a, &b| a.then(b))
                    .counts();
                let full = !self.query.lines_only;
                let wc = crate::proto::WcFields {
                    lines: Some(total.lines),
                    words: full.then_some(total.words),
                    bytes: Some(total.bytes),
                    chars: full.then_some(total.chars),
                    ..Default::default()
                };
                match serde_json::to_value(wc) {
                    Ok(Value::Object(m)) => m,
                    _ => Map::new(),
                }
            }
        };
        let peers = crate::nodeset::fold(&w.peers);
        self.send_line(st, w.client_id, path_keys(&w.shown), &peers, fields);
    }

    /// Sends one line to the client, counted as it succeeded or failed.
    fn send_line(
        &self,
        st: &mut State,
        client_id: u64,
        path: Map<String, Value>,
        peer: &str,
        fields: Map<String, Value>,
    ) {
        if fields.contains_key("error") {
            st.failed += 1;
        } else {
            st.ok += 1;
        }
        let mut line = Map::new();
        line.insert("id".into(), Value::from(client_id));
        line.insert("peer".into(), Value::from(peer));
        line.extend(path);
        line.extend(fields);
        let mut bytes = serde_json::to_vec(&Value::Object(line)).unwrap_or_default();
        bytes.push(b'\n');
        if self.out.send(bytes).is_err() {
            // The client is gone: stop asking members.
            st.cancelled = true;
            self.cancel.cancel();
            self.stop.store(true, Ordering::Release);
            self.changed.notify_all();
            self.shut_all();
        }
    }

    /// Cuts off the links whose members hold nothing but copies others
    /// answered first, now that nothing is left to hand out: their
    /// sessions are shut down, which makes each member give that work up
    /// (it sees its asker go), and their threads end quietly.
    fn cut_losers(&self, st: &mut State) {
        for link in st.dist.cuttable() {
            if !st.dist.retire(link) {
                continue;
            }
            st.cut.insert(link);
            log::info!(
                "query {}: {}: what it still works on was answered by other members; \
                 its session is closed",
                self.number,
                logging::untrusted(&self.specs[link].label)
            );
            if let Some(conn) = self.open_conns().get(&link) {
                let _ = conn.shutdown(std::net::Shutdown::Both);
            }
            if st.local.contains(&link) {
                // This node's own reads of the lost copies stop within a
                // chunk: `cancel` governs nothing but them.
                self.cancel.cancel();
            }
        }
        self.changed.notify_all();
    }

    /// Takes up to `max` items for `link` (copies of late ones at the end
    /// of a `--spread` job, see [`Distributor`]), logged when they are
    /// copies.
    fn take(&self, st: &mut State, link: usize, max: usize) -> Vec<u64> {
        st.dist.tick(Instant::now());
        let ids = st.dist.take(link, max, WINDOW_BYTES);
        if ids.first().is_some_and(|&id| st.dist.is_copied(id)) {
            logging::trail(
                "fanout",
                format_args!(
                    "query {}: {} takes copies of {} late item(s)",
                    self.number,
                    place_of(self, link),
                    ids.len()
                ),
            );
        }
        ids
    }

    /// `link`'s answers to items, each passed on if it is the first good
    /// one (or the only answer left); returns how many were.
    fn answers(
        &self,
        st: &mut State,
        link: usize,
        peer: &str,
        results: impl IntoIterator<Item = (u64, Map<String, Value>)>,
    ) -> usize {
        st.dist.tick(Instant::now());
        let mut passed = 0;
        for (id, fields) in results {
            if st.dist.answer_with(link, id, !fields.contains_key("error")) {
                passed += 1;
                self.emit(st, id, peer, fields);
            }
        }
        self.cut_losers(st);
        passed
    }

    /// The lines of the members that failed (or are down) for a new item,
    /// at once.
    fn answer_failed(&self, st: &mut State, id: u64, failed: Vec<usize>) {
        for link in failed {
            if let Some((peer, error)) = st.failures.get(&link).cloned() {
                self.emit(st, id, &peer, error_fields(&error));
            }
        }
    }

    /// `link` failed with `error`: every path it has not answered gets an
    /// error line naming `peer` (with `--spread`, while other members can
    /// take them, they go to those instead), and so does every path pushed
    /// from now on.
    fn fail_link(&self, st: &mut State, link: usize, peer: &str, error: &Error) {
        let ids = st.dist.fail(link);
        st.failures.insert(link, (peer.to_string(), error.clone()));
        for id in ids {
            self.emit(st, id, peer, error_fields(error));
        }
        self.changed.notify_all();
    }
}

/// A link's connection known to [`Ctx::cancel`]; dropping it forgets it.
struct Registered<'a> {
    ctx: &'a Ctx,
    link: usize,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.ctx.open_conns().remove(&self.link);
    }
}

/// Feeds paths into a running cluster query; dropping it tells the links
/// that no more will come.
pub struct Feeder {
    ctx: Arc<Ctx>,
    links: Vec<thread::JoinHandle<()>>,
    cwd: Option<PathBytes>,
    /// Whether this node answers here and so needs the caller's descriptors.
    keep_files: bool,
}

impl Feeder {
    /// Adds one path (as the client numbered and wrote it), with the
    /// caller's descriptor of it if they passed one. Waits while the members
    /// are far behind.
    pub fn push(
        &self,
        client_id: u64,
        shown: PathBytes,
        file: Option<Result<File, Error>>,
        counted: Option<Outcome<DirCounts>>,
    ) {
        let file = file.filter(|_| self.keep_files);
        let counted = counted.filter(|_| self.keep_files);
        let absolute = match absolute(&shown, self.cwd.as_ref()) {
            Ok(a) => a,
            Err(e) => {
                let mut st = self.ctx.lock();
                st.failed += 1;
                drop(st);
                let mut line = Map::new();
                line.insert("id".into(), Value::from(client_id));
                line.insert("peer".into(), Value::from(self.ctx.shared.name.clone()));
                line.extend(path_keys(&shown));
                line.insert(
                    "error".into(),
                    serde_json::to_value(&e).unwrap_or(Value::Null),
                );
                let mut bytes = serde_json::to_vec(&Value::Object(line)).unwrap_or_default();
                bytes.push(b'\n');
                let _ = self.ctx.out.send(bytes);
                return;
            }
        };
        let size = self.size_of(&absolute, file.as_ref());
        let mut st = self.ctx.lock();
        while !st.cancelled
            && (st.dist.backlog() >= MAX_BACKLOG
                || (file.is_some() && st.files_held >= MAX_HELD_FILES))
        {
            if !st.feeder_waiting {
                st.feeder_waiting = true;
                self.ctx.changed.notify_all();
            }
            st = self.ctx.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.feeder_waiting = false;
        if st.cancelled {
            return;
        }
        if file.is_some() {
            st.files_held += 1;
        }
        let split = self.ctx.split_above;
        if split > 0 && size > split {
            // Ranges for many members; the file's line comes once all are in.
            let cuts = crate::ops::ranges::cuts(size, split.min(MAX_PART));
            let first = st.dist.pushed();
            st.wholes.insert(
                first,
                Whole {
                    client_id,
                    shown: shown.clone(),
                    parts: vec![None; cuts.len()],
                    left: cuts.len(),
                    error: None,
                    peers: Vec::new(),
                },
            );
            for (index, (offset, length)) in cuts.into_iter().enumerate() {
                let (id, failed) = st.dist.push_sized(length);
                let part = Part {
                    range: ByteRange { offset, length },
                    whole: first,
                    index,
                };
                st.entries.insert(
                    id,
                    Entry {
                        client_id,
                        shown: shown.clone(),
                        absolute: absolute.clone(),
                        owed: 1,
                        file: None,
                        counted: None,
                        part: Some(part),
                    },
                );
                self.ctx.answer_failed(&mut st, id, failed);
            }
            drop(st);
            self.ctx.changed.notify_all();
            return;
        }
        let (id, failed) = st.dist.push_sized(size);
        st.entries.insert(
            id,
            Entry {
                client_id,
                shown,
                absolute,
                owed: self.ctx.owed_per_path,
                file,
                counted,
                part: None,
            },
        );
        self.ctx.answer_failed(&mut st, id, failed);
        drop(st);
        self.ctx.changed.notify_all();
    }

    /// The size of a `--spread` path, to bound the members' batches by
    /// bytes: the caller's descriptor tells it, else (for the daemon's own
    /// user and root, whose view is the daemon's) a stat of the path; 0
    /// when unknown, or for `--all` and `--peer`, where it changes nothing.
    fn size_of(&self, absolute: &PathBytes, file: Option<&Result<File, Error>>) -> u64 {
        if !self.ctx.spread || self.ctx.query.kind == QueryKind::Count {
            return 0;
        }
        let meta = match file {
            Some(Ok(f)) => f.metadata().ok(),
            // A foreign caller learns nothing through the daemon's rights,
            // not even by how its batches are cut.
            _ if self.ctx.here => None,
            _ => std::fs::metadata(std::ffi::OsStr::from_bytes(absolute.as_bytes())).ok(),
        };
        meta.filter(|m| m.is_file()).map_or(0, |m| m.len())
    }

    /// Cancels the query (the client is gone, or was interrupted): the
    /// links stop, shut their member connections down at once (a member
    /// sees its session end and stops working for us), and keep none of
    /// them for later; no more lines are sent, and paths pushed from now
    /// on are ignored. [`Feeder::finish`] then returns within moments.
    pub fn cancel(&self) {
        self.ctx.cancel();
    }

    /// Whether the query was cancelled, by [`Feeder::cancel`] or because
    /// the client stopped reading its results.
    pub fn is_cancelled(&self) -> bool {
        self.ctx.lock().cancelled
    }

    /// True while some path pushed is not fully answered yet.
    pub fn in_progress(&self) -> bool {
        !self.ctx.lock().entries.is_empty()
    }

    /// A handle that cancels the query from another thread, as
    /// [`Feeder::cancel`] does, while [`Feeder::finish`] waits.
    pub fn canceller(&self) -> Canceller {
        Canceller(Arc::clone(&self.ctx))
    }

    /// No more paths: waits for every answer and returns the totals.
    pub fn finish(self) -> Summary {
        self.ctx.lock().dist.close();
        self.ctx.changed.notify_all();
        for l in self.links {
            let _ = l.join();
        }
        let st = self.ctx.lock();
        Summary {
            done: true,
            ok: st.ok,
            failed: st.failed,
        }
    }
}

/// Cancels a running cluster query; see [`Feeder::cancel`].
#[derive(Clone)]
pub struct Canceller(Arc<Ctx>);

impl Canceller {
    /// Cancels the query if some path pushed is not fully answered yet and
    /// it was not cancelled before; returns whether it did (to count it).
    pub fn cancel(&self) -> bool {
        let ctx = &self.0;
        {
            let st = ctx.lock();
            if st.cancelled || st.entries.is_empty() {
                return false;
            }
        }
        ctx.cancel();
        true
    }
}

/// The fields of an error line.
fn error_fields(error: &Error) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert(
        "error".into(),
        serde_json::to_value(error).unwrap_or(Value::Null),
    );
    fields
}

/// The `path` (and `path_b64`) keys of a result line.
fn path_keys(path: &PathBytes) -> Map<String, Value> {
    match serde_json::to_value(path) {
        Ok(Value::Object(keys)) => keys,
        _ => Map::new(),
    }
}

/// A path as members should open it: absolute, against the caller's
/// directory when relative (lexically; members resolve the rest).
fn absolute(path: &PathBytes, cwd: Option<&PathBytes>) -> Result<PathBytes, Error> {
    let path = path.as_bytes();
    if path.starts_with(b"/") {
        return Ok(path.into());
    }
    match cwd.map(PathBytes::as_bytes) {
        Some(c) if c.starts_with(b"/") => {
            let mut full = c.to_vec();
            while full.last() == Some(&b'/') {
                full.pop();
            }
            full.push(b'/');
            full.extend_from_slice(path);
            Ok(full.into())
        }
        _ => Err(Error::new(
            ErrorCode::InvalidRequest,
            "relative path without the caller's directory",
        )),
    }
}

/// Starts a cluster query of `caller` over `links`; results go to `out` as
/// JSON lines. `number` names the query in log lines.
///
/// Links that cannot be asked (a member known to be down, a name that is
/// no member) fail at once: every path gets their error line as it comes.
/// This node's own answers for a foreign caller run on a thread of their
/// own. The other members are asked by at most `--max-links` worker
/// threads, each holding one of the daemon's `--max-links` places while it
/// talks to a member, then moving on to the next member waiting; with
/// `--spread` the members are shuffled first, so that queries spread their
/// load, and the members beyond the first are spares for failing ones.
pub fn start(
    shared: &Arc<Shared>,
    query: Query,
    target: &Target,
    mut links: Vec<LinkSpec>,
    out: Sender<Vec<u8>>,
    caller: &Caller,
    number: u64,
) -> Feeder {
    let mode = if target.spread {
        Mode::Once
    } else {
        Mode::Every
    };
    if mode == Mode::Once {
        shuffle(&mut links);
    }
    let timeout = target
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT);
    let cwd = query.cwd.clone();
    let here = !caller.is_trusted(shared.euid);
    let members = shared.cluster.members();
    let ours = members
        .iter()
        .find(|m| m.name == shared.name)
        .map(|m| m.addr);
    let at_here: Vec<bool> = links
        .iter()
        .map(|spec| {
            here && spec.addr.is_ok()
                && (spec.label == shared.name || spec.addr.as_ref().ok() == ours.as_ref())
        })
        .collect();
    // A raw address may turn out to be this node too (see run_link).
    let raw = |spec: &LinkSpec| !members.iter().any(|m| m.name == spec.label);
    let keep_files = here && (at_here.contains(&true) || links.iter().any(raw));
    // Only the daemon's own user and root: the size comes from its stat.
    let split_above =
        if mode == Mode::Once && !here && query.kind == QueryKind::Wc && !query.max_line_length {
            shared.split_above
        } else {
            0
        };
    let mut dist = Distributor::new(mode, links.len());
    let mut failures = HashMap::new();
    for (i, spec) in links.iter().enumerate() {
        if let Err(e) = &spec.addr {
            dist.fail(i);
            failures.insert(i, (spec.label.clone(), e.clone()));
        }
    }
    let here_links: Vec<usize> = (0..links.len())
        .filter(|&i| at_here[i] && dist.start_now(i))
        .collect();
    let remote = dist.waiting();
    let ctx = Arc::new(Ctx {
        state: Mutex::new(State {
            dist,
            entries: HashMap::new(),
            ok: 0,
            failed: 0,
            cancelled: false,
            files_held: 0,
            feeder_waiting: false,
            failures,
            wholes: HashMap::new(),
            cut: HashSet::new(),
            local: HashSet::new(),
        }),
        changed: Condvar::new(),
        query,
        timeout,
        out,
        shared: Arc::clone(shared),
        owed_per_path: if mode == Mode::Once { 1 } else { links.len() },
        spread: mode == Mode::Once,
        split_above,
        here,
        who: super::pool::Who::User(caller.uid),
        number,
        open: Mutex::new(HashMap::new()),
        cancel: Cancel::new(),
        stop: AtomicBool::new(false),
        specs: links,
    });
    let mut handles = Vec::new();
    for link in here_links {
        let c = Arc::clone(&ctx);
        let spawned = thread::Builder::new()
            .name("link-here".into())
            .spawn(move || {
                let started = Instant::now();
                let answered = run_here(&c, link);
                trail_gave(&c, link, answered, started);
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                let e = Error::new(ErrorCode::Internal, format!("cannot start a thread: {e}"));
                let mut st = ctx.lock();
                let name = shared.name.clone();
                ctx.fail_link(&mut st, link, &name, &e);
            }
        }
    }
    let workers = remote.min(shared.sessions.max_links());
    for _ in 0..workers {
        let c = Arc::clone(&ctx);
        if let Ok(h) = thread::Builder::new()
            .name("link".into())
            .spawn(move || worker(&c))
        {
            handles.push(h);
        }
    }
    if workers > 0 && handles.is_empty() {
        // Not one thread: every member waiting fails.
        let e = Error::new(ErrorCode::Internal, "cannot start a thread for the query");
        let mut st = ctx.lock();
        while let Some(link) = st.dist.start() {
            let label = ctx.specs[link].label.clone();
            ctx.fail_link(&mut st, link, &label, &e);
        }
    }
    Feeder {
        ctx,
        links: handles,
        cwd,
        keep_files,
    }
}

/// Shuffles the members of a `--spread`, so that which are asked first
/// varies from query to query.
fn shuffle(links: &mut [LinkSpec]) {
    use rand::{RngExt, SeedableRng};
    let mut seed = [0u8; 32];
    let _ = crate::crypto::random_bytes(&mut seed);
    let mut rng = rand::rngs::SmallRng::from_seed(seed);
    for i in (1..links.len()).rev() {
        let j = rng.random_range(0..=i);
        links.swap(i, j);
    }
}

/// How a link's turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Everything answered (or reported failed): the member is done.
    Done,
    /// It made way for a waiting member, and waits again itself.
    Parked,
}

/// One worker of a query: takes one of the daemon's link places, asks the
/// next member waiting, and so on until no member waits.
fn worker(ctx: &Ctx) {
    loop {
        let Some(place) = ctx.shared.sessions.acquire(|| ctx.stopped()) else {
            return;
        };
        let link = {
            let mut st = ctx.lock();
            if st.cancelled {
                return;
            }
            match st.dist.start() {
                Some(l) => l,
                None => return,
            }
        };
        let started = Instant::now();
        logging::trail(
            "fanout",
            format_args!("query {}: asking {}", ctx.number, place_of(ctx, link)),
        );
        let (answered, turn) = run_link(ctx, link);
        drop(place);
        if turn == Turn::Parked {
            logging::trail(
                "fanout",
                format_args!(
                    "query {}: {} made way for another member after {answered} answer(s)",
                    ctx.number,
                    place_of(ctx, link)
                ),
            );
            ctx.changed.notify_all();
            continue;
        }
        trail_gave(ctx, link, answered, started);
    }
}

/// A link's member for the log.
fn place_of(ctx: &Ctx, link: usize) -> String {
    let spec = &ctx.specs[link];
    let label = logging::untrusted(&spec.label).to_string();
    match &spec.addr {
        Ok(a) => format!("{label} at {a}"),
        Err(_) => label,
    }
}

fn trail_gave(ctx: &Ctx, link: usize, answered: usize, started: Instant) {
    logging::trail(
        "fanout",
        format_args!(
            "query {}: {} gave {answered} answer(s) in {}",
            ctx.number,
            place_of(ctx, link),
            logging::ms(started.elapsed())
        ),
    );
}

/// Opens the session to a member (`label` in the results), or takes one
/// kept from an earlier query, and starts the query; returns the session
/// and the member's name.
/// A session to a member, ready for the query's items.
struct Opened {
    session: Session<Conn>,
    /// The member's name, as it said when it accepted a query on this
    /// session.
    name: String,
    /// Kept from an earlier query: the query has not been sent on it yet.
    /// It goes with the first items, in one write, without waiting for the
    /// member to accept it (the member's name is known already).
    reused: bool,
}

/// " at ADDR" for messages about a member, or nothing when its label is
/// that address already.
fn at_of(label: &str, addr: SocketAddr) -> String {
    if label == addr.to_string() {
        String::new()
    } else {
        format!(" at {addr}")
    }
}

fn open(ctx: &Ctx, label: &str, addr: SocketAddr) -> Result<Opened, Error> {
    let at = at_of(label, addr);
    if let Some((session, name)) = ctx
        .shared
        .sessions
        .take(addr)
        .filter(|(s, _)| ctx.shared.cluster.admit(s.peer()).is_ok())
    {
        let _ = session.stream().tcp().set_read_timeout(Some(ctx.timeout));
        let _ = session.stream().tcp().set_write_timeout(Some(ctx.timeout));
        logging::trail(
            "fanout",
            format_args!("query {}: reusing a session to {addr}", ctx.number),
        );
        return Ok(Opened {
            session,
            name,
            reused: true,
        });
    }
    let s = connect(ctx, &at, addr)?;
    let (session, name) = start_query(ctx, &at, s)?;
    Ok(Opened {
        session,
        name,
        reused: false,
    })
}

/// A new session to `addr`.
fn connect(ctx: &Ctx, at: &str, addr: SocketAddr) -> Result<Session<Conn>, Error> {
    let s = dial(&ctx.shared, at, addr, ctx.timeout)?;
    logging::trail(
        "fanout",
        format_args!("query {}: session to {addr} opened", ctx.number),
    );
    Ok(s)
}

/// A new session to the member at `addr`, whose certificate (if any) this
/// node admits; `timeout` bounds the connect, each read and each write.
/// `at` is " at ADDR" or empty, for messages.
pub fn dial(
    shared: &Shared,
    at: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Session<Conn>, Error> {
    let mut refused = None;
    let dial = || {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(timeout))
            .inspect_err(|e| refused = Some(link_error(at, e, timeout)))?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(timeout));
        let _ = stream.set_write_timeout(Some(timeout));
        Ok(Conn::new(stream))
    };
    let opened = shared.cluster.open_session(dial);
    let s = match (opened, refused) {
        (Ok(s), _) => s,
        // The connection itself failed: worded as such.
        (Err(_), Some(e)) => return Err(e),
        (Err(e), None) => return Err(session_failed(at, e, timeout)),
    };
    shared
        .cluster
        .admit_certificate(s.peer_certificate())
        .map_err(|e| session_failed(at, SessionError::Certificate(e), timeout))?;
    Ok(s)
}

/// Whether a session failed because the member had closed it (a kept
/// session it let go, or a restart), not because it is slow or refuses.
fn closed_by_member(e: &SessionError) -> bool {
    matches!(e, SessionError::Io(io) if matches!(
        io.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    ))
}

/// The request that starts the query on a member.
fn query_frame(ctx: &Ctx) -> Vec<u8> {
    let q = &ctx.query;
    peer::encode(&PeerRequest::Query {
        kind: q.kind,
        lines_only: q.lines_only,
        max_line_length: q.max_line_length,
        recursive: q.recursive,
        dereference: q.dereference,
        posixly_correct: q.posixly_correct,
        ranges: ctx.split_above > 0,
    })
}

/// Starts the query on a session; `at` is " at ADDR" or empty, for messages.
fn start_query(
    ctx: &Ctx,
    at: &str,
    mut s: Session<Conn>,
) -> Result<(Session<Conn>, String), Error> {
    s.send(&query_frame(ctx))
        .map_err(|e| session_error(at, e, ctx))?;
    let reply = s
        .recv(peer::MAX_FRAME)
        .map_err(|e| session_error(at, e, ctx))?;
    match serde_json::from_slice::<PeerReply>(&reply) {
        Ok(PeerReply::Accepted { peer, .. }) => Ok((s, peer)),
        Ok(PeerReply::Failed { error }) => Err(error),
        _ => Err(Error::new(
            ErrorCode::Internal,
            format!("the member{at} answered the query with something unexpected"),
        )),
    }
}

// The messages below do not name the member: every result line (and the
// command's message on stderr) starts with it already. `at` is " at ADDR"
// when the member goes by a name, else empty.

fn link_error(at: &str, e: &io::Error, timeout: Duration) -> Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::new(
            ErrorCode::Timeout,
            format!("no answer{at} within {}", seconds(timeout)),
        ),
        _ => Error::new(
            ErrorCode::Unreachable,
            format!("cannot be reached{at}: {}", Error::from_io(e).message),
        ),
    }
}

/// The documented error for a session that failed.
fn session_error(at: &str, e: SessionError, ctx: &Ctx) -> Error {
    session_failed(at, e, ctx.timeout)
}

/// The documented error for a session that failed, whose reads and
/// writes time out after `timeout`.
pub fn session_failed(at: &str, e: SessionError, timeout: Duration) -> Error {
    match e {
        SessionError::Unauthorized => Error::new(
            ErrorCode::Unauthorized,
            format!("the member{at} does not hold our cluster key"),
        ),
        SessionError::Io(io) => link_error(at, &io, timeout),
        SessionError::Certificate(e) => Error::new(
            ErrorCode::Unauthorized,
            format!("the member{at} was refused: its certificate: {e}"),
        ),
        other => Error::new(
            ErrorCode::Unreachable,
            format!("session{at} failed: {other}"),
        ),
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

/// A running link that caught up (nothing held, nothing to take) makes
/// way for links waiting for a place after this long idle.
const PARK_AFTER: Duration = Duration::from_millis(200);

/// One member's turn, from connecting to its last answer or until it makes
/// way for another (see [`Distributor`]); returns how many answers the
/// member gave, and how the turn ended. A failure is reported here.
fn run_link(ctx: &Ctx, link: usize) -> (usize, Turn) {
    let spec = &ctx.specs[link];
    // Held until the link ends, so one member never has more than
    // LINKS_PER_MEMBER of ours; a query that waits here keeps its paths.
    let slot = match &spec.addr {
        Ok(addr) => ctx.shared.sessions.reserve(*addr, || ctx.stopped()),
        Err(_) => None,
    };
    let opened = match (&spec.addr, &slot) {
        (Ok(addr), Some(_)) => open(ctx, &spec.label, *addr),
        (Ok(_), None) => Err(gone()),
        (Err(e), _) => Err(e.clone()),
    };
    let Opened {
        mut session,
        name,
        reused,
    } = match opened {
        Ok(s) => s,
        Err(e) => {
            logging::trail(
                "fanout",
                format_args!(
                    "query {}: {}: {}",
                    ctx.number,
                    logging::untrusted(&spec.label),
                    logging::untrusted(&e.message)
                ),
            );
            let mut st = ctx.lock();
            if !st.cancelled {
                ctx.fail_link(&mut st, link, &spec.label, &e);
            }
            return (0, Turn::Done);
        }
    };
    if name == ctx.shared.name && ctx.here {
        // An address that leads back to this node: a foreign caller's
        // answers from here are never read with the daemon's rights.
        drop(session);
        return (run_here(ctx, link), Turn::Done);
    }
    let mut registered = ctx.register(link, session.stream());
    // What to send before the next read, written at once.
    let mut pending: Vec<Vec<u8>> = Vec::new();
    // On a kept session the query goes ahead of the first items. Until the
    // member accepts it, what was sent is kept: if the member had closed
    // the session meanwhile, it all goes again, once, on a fresh one.
    let mut unaccepted: Option<Vec<Vec<u8>>> = None;
    if reused {
        pending.push(query_frame(ctx));
        unaccepted = Some(Vec::new());
    }
    let mut retried = false;
    let mut held = 0usize;
    let mut answered = 0usize;
    let mut ended = false;
    let mut parking = false;
    // Since when the link has had nothing to do.
    let mut idle_since: Option<Instant> = None;
    // The last sign of progress: a result, or work handed to an idle member.
    let mut progress = Instant::now();
    let stall = ctx.timeout.saturating_mul(STALL_FACTOR);
    let failure = 'link: loop {
        // Keep the member supplied: up to two batches in its hands.
        while !ended && held < WINDOW {
            let was_idle = held == 0;
            let next = {
                let mut st = ctx.lock();
                loop {
                    if st.cancelled {
                        break Next::Cancelled;
                    }
                    if st.dist.cuttable().contains(&link) {
                        ctx.cut_losers(&mut st);
                    }
                    if st.cut.contains(&link) {
                        break Next::Cut;
                    }
                    let ids = ctx.take(&mut st, link, BATCH.min(WINDOW - held));
                    held = st.dist.held(link);
                    if !ids.is_empty() {
                        let items: Vec<PeerItem> = ids
                            .iter()
                            .filter_map(|id| {
                                st.entries.get(id).map(|e| PeerItem {
                                    id: *id,
                                    path: e.absolute.clone(),
                                    range: e.part.map(|p| p.range),
                                })
                            })
                            .collect();
                        break Next::Send(PeerRequest::Items { items });
                    }
                    if st.dist.finished(link) {
                        break Next::Send(PeerRequest::End {});
                    }
                    if held > 0 {
                        break Next::Receive;
                    }
                    let idle = *idle_since.get_or_insert_with(Instant::now);
                    // Caught up: make way for members waiting, if the
                    // feeder waits for them or other links wait for a place.
                    if (st.feeder_waiting && st.dist.waiting() > 0)
                        || (idle.elapsed() >= PARK_AFTER && ctx.shared.sessions.contended())
                    {
                        break Next::Park;
                    }
                    // Idle: wait for paths, a failing member's leftovers, or the end.
                    st = ctx
                        .changed
                        .wait_timeout(st, Duration::from_millis(200))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            };
            match next {
                Next::Cancelled | Next::Cut => break 'link Some(gone()),
                Next::Park => {
                    pending.push(peer::encode(&PeerRequest::End {}));
                    ended = true;
                    parking = true;
                }
                Next::Send(PeerRequest::Items { items }) => {
                    idle_since = None;
                    if was_idle {
                        progress = Instant::now();
                    }
                    pending.push(peer::encode(&PeerRequest::Items { items }));
                }
                Next::Send(end) => {
                    pending.push(peer::encode(&end));
                    ended = true;
                }
                Next::Receive => break,
            }
        }
        let mut sent = Ok(());
        if !pending.is_empty() {
            sent = session.send_all(&pending);
            match &mut unaccepted {
                Some(kept) => kept.append(&mut pending),
                None => pending.clear(),
            }
        }
        let received = sent.and_then(|()| session.recv(peer::MAX_FRAME));
        let frame = match received {
            Ok(f) => f,
            Err(e) => {
                // A kept session the member had closed (it restarted, or let
                // it go): everything again on a fresh one.
                if let (Some(frames), false, Ok(addr)) = (&unaccepted, retried, &spec.addr)
                    && closed_by_member(&e)
                    && !ctx.lock().cut.contains(&link)
                {
                    retried = true;
                    let at = at_of(&spec.label, *addr);
                    let again = connect(ctx, &at, *addr).and_then(|mut s| {
                        s.send_all(frames)
                            .map(|()| s)
                            .map_err(|e| session_error(&at, e, ctx))
                    });
                    match again {
                        Ok(s) => {
                            session = s;
                            drop(registered);
                            registered = ctx.register(link, session.stream());
                            continue 'link;
                        }
                        Err(e) => break 'link Some(e),
                    }
                }
                break 'link Some(session_error("", e, ctx));
            }
        };
        let reply = serde_json::from_slice::<PeerReply>(&frame);
        if unaccepted.is_some() {
            match reply {
                Ok(PeerReply::Accepted { peer, workers }) if peer == name => {
                    unaccepted = None;
                    if let Ok(mut st) = ctx.state.lock() {
                        st.dist.set_workers(link, workers);
                    }
                    continue 'link;
                }
                Ok(PeerReply::Accepted { .. }) => {
                    break 'link Some(Error::new(
                        ErrorCode::Unreachable,
                        "another member answers at its address now; giving up on it",
                    ));
                }
                Ok(PeerReply::Failed { error }) => break 'link Some(error),
                _ => {
                    break 'link Some(Error::new(
                        ErrorCode::Internal,
                        "the member answered the query with something unexpected",
                    ));
                }
            }
        }
        match reply {
            Ok(PeerReply::Results { results }) => {
                let mut st = ctx.lock();
                if st.cancelled {
                    break 'link Some(gone());
                }
                let before = st.dist.held(link);
                answered += ctx.answers(
                    &mut st,
                    link,
                    &name,
                    results.into_iter().map(|r| (r.id, r.fields)),
                );
                // Only an answer to one of our paths is progress (a copy
                // another member answered first too), not an empty frame
                // or one about paths never asked.
                held = st.dist.held(link);
                if held < before {
                    progress = Instant::now();
                }
                drop(st);
                ctx.changed.notify_all();
            }
            Ok(PeerReply::Working) => {}
            Ok(PeerReply::Done) if ended => {
                if let Ok(addr) = spec.addr
                    && !ctx.stopped()
                {
                    drop(registered);
                    ctx.shared.sessions.give(addr, session, name);
                }
                if parking && ctx.lock().dist.park(link) {
                    return (answered, Turn::Parked);
                }
                return (answered, Turn::Done);
            }
            Ok(PeerReply::Failed { error }) => break 'link Some(error),
            _ => {
                break 'link Some(Error::new(
                    ErrorCode::Internal,
                    "the member sent something unexpected; giving up on it",
                ));
            }
        }
        // Heartbeats (or empty frames) alone keep a link alive this long.
        if progress.elapsed() > stall {
            break 'link Some(Error::new(
                ErrorCode::Timeout,
                format!(
                    "the member said it was working for {} without a result; giving up on it",
                    seconds(stall)
                ),
            ));
        }
    };
    if let Some(e) = failure {
        let mut st = ctx.lock();
        if st.cancelled || st.cut.contains(&link) {
            return (answered, Turn::Done);
        }
        if parking && st.dist.park(link) {
            // It had nothing of ours; it is asked again in its next turn.
            return (answered, Turn::Parked);
        }
        log::info!(
            "query on {}: {}",
            crate::daemon::logging::untrusted(&name),
            crate::daemon::logging::untrusted(&e.message)
        );
        ctx.fail_link(&mut st, link, &name, &e);
    }
    (answered, Turn::Done)
}

/// What a link sends next.
enum Next {
    Send(PeerRequest),
    /// Nothing to send now: read what the member says.
    Receive,
    /// Make way for another member.
    Park,
    /// Cut off: its member works only on copies others answered.
    Cut,
    Cancelled,
}

/// The error of a link stopped by a cancelled query (never shown: a
/// cancelled query sends no more lines).
fn gone() -> Error {
    Error::new(ErrorCode::Internal, "the query was cancelled")
}

/// This node's own answers for a caller foreign to the daemon, computed
/// in-process: each path is opened below the exports as a remote member's
/// query would be (same refusals), then answered only if the caller's
/// descriptor is open for reading and is that same file, and computed on
/// the caller's descriptor (a count: taken from what the caller's command
/// counted itself on it). Returns how many answers it gave.
fn run_here(ctx: &Ctx, link: usize) -> usize {
    let name = ctx.shared.name.clone();
    if !ctx.here {
        let e = Error::new(ErrorCode::Internal, "no caller to answer for");
        let mut st = ctx.lock();
        ctx.fail_link(&mut st, link, &name, &e);
        return 0;
    }
    let (slot_tx, slot_rx) = sync_channel::<()>(WINDOW);
    let (done_tx, done_rx) = channel::<Vec<Done>>();
    let mut batches = Batches::new(
        Arc::clone(&ctx.shared),
        ctx.who,
        Arc::new(ctx.query.clone()),
        done_tx,
        slot_tx,
    );
    batches.cancel_with(ctx.cancel.clone());
    ctx.lock().local.insert(link);
    let exports = ctx.shared.exports();
    let mut held = 0usize;
    let mut answered = 0usize;
    loop {
        if held < WINDOW {
            let mut st = ctx.lock();
            if st.cancelled {
                return answered;
            }
            let ids = ctx.take(&mut st, link, BATCH.min(WINDOW - held));
            held = st.dist.held(link) - ids.len();
            if ids.is_empty() && held == 0 {
                if st.dist.finished(link) {
                    return answered;
                }
                // Idle: wait for paths or the end.
                let _ = ctx
                    .changed
                    .wait_timeout(st, Duration::from_millis(200))
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let mut items = Vec::with_capacity(ids.len());
            for id in ids {
                let st = &mut *st;
                if let Some(e) = st.entries.get_mut(&id) {
                    let file = e.file.take();
                    if file.is_some() {
                        st.files_held -= 1;
                    }
                    items.push((id, e.absolute.clone(), file, e.counted.take()));
                }
            }
            drop(st);
            ctx.changed.notify_all();
            let n = items.len();
            for (k, (id, path, file, counted)) in items.into_iter().enumerate() {
                let file = caller_file(&exports, &path, file);
                held += 1;
                if ctx.query.kind == QueryKind::Count {
                    // Walked by the caller's own process: this daemon reads
                    // no directory for another user.
                    let answer = file.and_then(|_| match counted {
                        Some(Outcome::Ok(c)) => Ok(c),
                        Some(Outcome::Failed { error }) => Err(error),
                        None => Err(Error::new(
                            ErrorCode::InvalidRequest,
                            "a count of this node for another user than the daemon's \
                             comes with the counts the command took itself (p2p-count does so)",
                        )),
                    });
                    batches.answered(id, path, answer.map(Fields::Count));
                    continue;
                }
                // The caller reached the link's target through the path, so
                // they may look at the link itself.
                if file.is_ok()
                    && let Some(link) =
                        super::remote::symlink_stat(&ctx.query, &exports, &Asker::local(), &path)
                {
                    batches.answered(id, path, Ok(link));
                    continue;
                }
                batches.add(id, path, file, k + 1 < n);
            }
            batches.flush();
            if held == 0 {
                continue;
            }
        }
        let Ok(done) = done_rx.recv() else {
            return answered;
        };
        let mut st = ctx.lock();
        let results: Vec<_> = done
            .into_iter()
            .map(|d| {
                let _ = slot_rx.try_recv();
                let r = super::remote::result_of(d);
                (r.id, r.fields)
            })
            .collect();
        answered += ctx.answers(&mut st, link, &name, results);
        held = st.dist.held(link);
        drop(st);
        ctx.changed.notify_all();
    }
}

/// The caller's descriptor of `path`, if the path is one a remote member may
/// ask about and the descriptor is open for reading and is that very file.
fn caller_file(
    exports: &crate::exports::Exports,
    path: &PathBytes,
    file: Option<Result<File, Error>>,
) -> Result<File, Error> {
    // A user of this host: the descriptor they opened decides, below.
    let ours = exports.open(&Asker::local(), path)?;
    let theirs = file.ok_or_else(|| {
        Error::new(
            ErrorCode::PermissionDenied,
            "you cannot open it here (this member tells its local users only about files \
             they can open themselves)",
        )
    })??;
    let (a, b) = (ours.metadata()?, theirs.metadata()?);
    if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
        return Err(Error::new(
            ErrorCode::PermissionDenied,
            "the descriptor you passed is not the file this path names here",
        ));
    }
    Ok(theirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, port: u16) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            state: MemberState::Alive,
            incarnation: 1,
            tags: Default::default(),
            is_self: false,
            since: None,
        }
    }

    fn in_state(name: &str, port: u16, state: MemberState, since: u64) -> MemberInfo {
        MemberInfo {
            state,
            since: Some(since),
            ..member(name, port)
        }
    }

    #[test]
    fn all_names_down_members_with_their_state_and_since_when_and_skips_left_ones() {
        // 2026-12-02T04:10:03Z, and 12 s later.
        let down_at = 1_796_184_603_000;
        let now = down_at + 12_400;
        let members = [
            member("a", 41401),
            in_state("b", 41402, MemberState::Down, down_at),
            in_state("c", 41403, MemberState::Left, down_at),
            in_state("d", 41404, MemberState::Suspect, down_at),
        ];
        let all = Target {
            all: true,
            ..Default::default()
        };
        let links = links_at(&all, &members, false, now).unwrap();
        let labels: Vec<&str> = links.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["a", "b", "d"], "left members are not asked");
        assert!(links[0].addr.is_ok() && links[2].addr.is_ok());
        let e = links[1].addr.as_ref().unwrap_err();
        assert_eq!(e.code, ErrorCode::Unreachable);
        assert_eq!(
            e.message,
            "the member is down since 2026-12-02T04:10:03Z (12 s ago)"
        );
        // --tag narrows the same way.
        let mut tagged = members.clone();
        tagged[1].tags.insert("role".into(), "db".into());
        tagged[3].tags.insert("role".into(), "db".into());
        let db = Target {
            all: true,
            tags: [("role".to_string(), "db".to_string())].into(),
            ..Default::default()
        };
        let links = links_at(&db, &tagged, false, now).unwrap();
        let labels: Vec<&str> = links.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["b", "d"]);
        assert!(links[0].addr.is_err());
        // --spread gives a down member nothing to do.
        let spread = Target {
            spread: true,
            ..Default::default()
        };
        let links = links_at(&spread, &members, false, now).unwrap();
        let labels: Vec<&str> = links.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["a", "d"]);
        // --peer naming it says the same.
        let links = links_at(&peers(&["b"]), &members, false, now).unwrap();
        assert_eq!(
            links[0].addr.as_ref().unwrap_err().message,
            "the member is down since 2026-12-02T04:10:03Z (12 s ago)"
        );
        assert_eq!(ago(3_600_000), "60 min");
        assert_eq!(ago(7_200_000), "2 h");
    }

    #[test]
    fn the_descriptor_limit_caps_the_links() {
        assert_eq!(link_cap(1024), 384);
        assert_eq!(link_cap(32), 4);
        assert_eq!(link_cap(20), 1, "never none");
        assert!(link_cap(1024) >= DEFAULT_MAX_LINKS);
        // Open links and kept sessions fit with the reserve.
        for n in [32u64, 64, 256, 1024, 65536] {
            assert!(2 * link_cap(n) as u64 + (n / 4).max(24) <= n.max(26), "{n}");
        }
    }

    #[test]
    fn sessions_are_kept_for_a_whole_large_cluster_within_the_descriptor_limit() {
        // Under systemd's usual soft limit, a 64-link daemon keeps sessions
        // to 320 members; with the limit p2pd raises itself to, thousands.
        assert_eq!(keep_cap(1024, DEFAULT_MAX_LINKS), 320);
        assert!(keep_cap(20_000, DEFAULT_MAX_LINKS) >= 5000);
        // Never fewer than the links, which the descriptor limit allows.
        assert_eq!(keep_cap(1024, link_cap(1024)), link_cap(1024));
        assert_eq!(keep_cap(20, 1), 1);
        // Kept sessions and open links fit with the reserve.
        for n in [32u64, 64, 256, 1024, 20_000, 65_536] {
            for links in [1, DEFAULT_MAX_LINKS.min(link_cap(n)), link_cap(n)] {
                let used = keep_cap(n, links) as u64 + links as u64;
                assert!(used + (n / 4).max(24) <= n.max(26), "{n} {links}");
            }
        }
    }

    #[test]
    fn link_places_are_bounded_and_served_first_come_first_served() {
        let pool = SessionPool::new(2);
        let a = pool.acquire(|| true).unwrap();
        let b = pool.acquire(|| true).unwrap();
        assert!(!pool.contended());
        assert!(pool.acquire(|| true).is_none(), "both places taken");
        std::thread::scope(|s| {
            // The waiter keeps the place it gets until the newcomer has
            // tried: else the place could be free again by then.
            let waiter = s.spawn(|| pool.acquire(|| false));
            while !pool.contended() {
                std::thread::yield_now();
            }
            drop(a);
            // A newcomer does not overtake the one waiting for the place.
            assert!(pool.acquire(|| true).is_none());
            let got = waiter.join().unwrap();
            assert!(got.is_some(), "the waiter got the place");
        });
        drop(b);
        let _c = pool.acquire(|| true).unwrap();
        assert!(
            pool.acquire(|| true).is_some(),
            "the waiter's place came back"
        );
    }

    fn peers(list: &[&str]) -> Target {
        Target {
            peers: list.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_member_named_many_times_or_by_address_is_one_link() {
        let members = [member("a", 41401), member("b", 41402)];
        let mut list = vec!["a"; 300];
        list.push("127.0.0.1:41401");
        list.push("b");
        let links = links_for(&peers(&list), &members, false).unwrap();
        let labels: Vec<&str> = links.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["a", "b"]);
        let links = links_for(&peers(&["127.0.0.1:41499"; 5]), &members, true).unwrap();
        assert_eq!(links.len(), 1);
    }

    #[test]
    fn only_the_owner_and_root_may_name_other_addresses() {
        let members = [member("a", 41401)];
        let e = links_for(&peers(&["127.0.0.1:41403"]), &members, false).unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        // A plain unknown name is not an address: an unreachable line, no lookup.
        let links = links_for(&peers(&["nosuch"]), &members, false).unwrap();
        assert!(links[0].addr.is_err());
        let links = links_for(&peers(&["127.0.0.1:41403"]), &members, true).unwrap();
        assert!(links[0].addr.is_ok());
    }

    #[test]
    fn a_long_peer_list_and_a_zero_timeout_are_refused() {
        let names: Vec<String> = (0..=MAX_PEERS as u16)
            .map(|i| format!("127.0.0.1:{}", 41400 + i))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let e = links_for(&peers(&refs), &[], true).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(links_for(&peers(&refs[..MAX_PEERS]), &[], true).is_ok());
        let mut t = peers(&["127.0.0.1:41401"]);
        t.timeout_ms = Some(0);
        let e = links_for(&t, &[], true).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains("timeout_ms"), "{}", e.message);
    }

    #[test]
    fn relative_paths_join_the_callers_directory_byte_for_byte() {
        let cwd = PathBytes(b"/home/d\xe9/".to_vec());
        let got = absolute(&PathBytes(b"f\xff".to_vec()), Some(&cwd)).unwrap();
        assert_eq!(got.as_bytes(), b"/home/d\xe9/f\xff");
        let got = absolute(&"x".into(), Some(&"/".into())).unwrap();
        assert_eq!(got.as_bytes(), b"/x");
        let kept = absolute(&PathBytes(b"/abs\x80".to_vec()), None).unwrap();
        assert_eq!(kept.as_bytes(), b"/abs\x80");
        let e = absolute(&"rel".into(), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(absolute(&"rel".into(), Some(&"not/absolute".into())).is_err());
    }

    #[test]
    fn links_to_one_member_are_capped_and_freed() {
        let pool = SessionPool::default();
        let addr = SocketAddr::from(([127, 0, 0, 1], 41401));
        let held: Vec<_> = (0..LINKS_PER_MEMBER)
            .map(|_| pool.reserve(addr, || true).unwrap())
            .collect();
        assert!(pool.reserve(addr, || true).is_none(), "all places taken");
        let other = SocketAddr::from(([127, 0, 0, 1], 41402));
        assert!(pool.reserve(other, || true).is_some());
        drop(held);
        assert!(pool.reserve(addr, || true).is_some());
    }
}

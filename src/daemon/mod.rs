//! `p2pd`: binds the local socket and the peer port, runs the worker pool
//! and the gossip loop, and serves queries until SIGINT or SIGTERM; SIGHUP
//! reads the configuration again.
//!
//! - [`local`]: the Unix socket: one thread per command connection.
//! - [`spare`]: connection threads kept a moment for the next connection.
//! - [`caller`]: who is asking on it (ids from the socket).
//! - [`engine`], [`batch`], [`pool`]: computing items on the worker pool, with the cache;
//!   the workers are shared fairly between callers, and large files are read in slices.
//! - [`counters`]: the daemon's atomic counters, read by `p2p-status`.
//! - [`cancel`]: a query's cancellation flag, and noticing that its asker hung up.
//! - [`cluster`]: the gossip thread, joining, and the periodic full sync.
//! - [`discover`]: LAN discovery's socket and thread (`--discover`): beacons out, joins of the members heard.
//! - [`peer`]: the TCP port: handshakes, then joins, syncs and queries from members.
//! - [`peer_port`]: binding TCP and UDP on one port number (port 0: one the kernel picks), and `--port-file`.
//! - [`remote`]: a member's side of a query from a peer, confined to the exports.
//! - [`fanout`], [`distribute`]: the asking side of `--peer`, `--all` and `--spread`.
//! - [`transfer`]: `p2p-get`: a member sends a file, a range or a manifest; the asking side of one member.
//! - [`any`]: `p2p-get --any`: the asking side of one file from several members at once.
//! - [`limits`]: how many connections each listener serves, per user, and who makes room.
//! - [`watch`]: `p2p-peers --watch`: one thread serves every watcher, in a bounded pool.
//! - [`logging`]: the log, whose filter SIGHUP can change; hostile input rate-limited, peer strings escaped.

pub mod any;
pub mod batch;
pub mod caller;
pub mod cancel;
pub mod certified;
pub mod cluster;
pub mod counters;
pub mod discover;
pub mod distribute;
pub mod engine;
pub mod fanout;
pub mod limits;
pub mod local;
pub mod logging;
pub mod peer;
pub mod peer_port;
pub mod pool;
pub mod remote;
pub mod spare;
pub mod transfer;
pub mod watch;

use crate::cli::DaemonCli;
use crate::crypto::keys::{KeyRing, default_key_path};
use crate::exports::Exports;
use crate::membership::{MemberInfo, MemberState, Node, Timings};
use crate::{config, paths, state, systemd};
use cluster::Cluster;
use engine::Engine;
use limits::Admission;
use nix::sys::signal::{SigSet, Signal};
use pool::Pool;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::thread;
use std::time::Duration;

/// Everything `p2pd` needs to start, resolved from flags and defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub name: String,
    pub socket: PathBuf,
    pub workers: usize,
    pub cache_entries: usize,
    pub max_local_connections: usize,
    /// Local connections one user other than the owner and root may hold.
    pub connections_per_user: usize,
    /// How long a local client may stay silent while nothing of its is in progress.
    pub idle_timeout: Duration,
    /// Where peers and gossip are served, with the port actually bound.
    pub bind: SocketAddr,
    /// Where to write the port bound, once serving (`--port-file`).
    pub port_file: Option<PathBuf>,
    /// Where other members reach us.
    pub advertise: SocketAddr,
    pub tags: BTreeMap<String, String>,
    pub ring: KeyRing,
    /// Where the keys came from, to read them again on SIGHUP.
    pub key_source: KeySource,
    pub timings: Timings,
    /// Members to join through at start.
    pub join: Vec<String>,
    /// Directories peers may read below.
    pub exports: Exports,
    /// Where identity and last known members are kept across restarts.
    pub state_dir: Option<PathBuf>,
    /// The command line, to read the configuration again on SIGHUP.
    pub args: Vec<OsString>,
    /// An incarnation above any this node had before.
    pub incarnation: u64,
    /// Member links cluster queries may hold open at once (`--max-links`).
    pub max_links: usize,
    /// With a CA: this member's certificate and key (see [`certified`]).
    pub identity: Option<Arc<crate::crypto::session::Identity>>,
    /// `p2p-wc --spread` splits files larger than this (`--split-above`; 0: never).
    pub split_above: u64,
    /// LAN discovery's port, when it is on (`--discover`).
    pub discover: Option<u16>,
}

/// State every connection shares.
pub struct Shared {
    pub name: String,
    pub euid: u32,
    pub engine: Engine,
    pub pool: Pool,
    pub cluster: Arc<Cluster>,
    /// Sessions to members kept between cluster queries.
    pub sessions: fanout::SessionPool,
    /// `p2p-peers --watch` connections.
    pub watchers: watch::Watchers,
    /// How long a local client may stay silent while nothing of its is in progress.
    pub idle_timeout: Duration,
    /// `p2p-wc --spread` splits files larger than this into byte ranges
    /// counted by many members (0: never).
    pub split_above: u64,
    exports: RwLock<Arc<Exports>>,
    /// What `p2p-status` reports (see [`counters`]).
    pub counters: Arc<counters::Counters>,
}

impl Shared {
    /// The directories peers may read below, as of now.
    pub fn exports(&self) -> Arc<Exports> {
        match self.exports.read() {
            Ok(e) => Arc::clone(&e),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn set_exports(&self, exports: Exports) {
        match self.exports.write() {
            Ok(mut e) => *e = Arc::new(exports),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(exports),
        }
    }
}

/// Exit status for a configuration or start-up error.
pub const EXIT_CONFIG: i32 = 2;

/// The default node name: host name and port, unique among daemons of one host.
pub fn default_name(port: u16) -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{port}")
}

/// Runs the daemon on the peer port bound for `cfg.bind`; returns the
/// process exit status.
pub fn run(cfg: Config, peer_port: peer_port::PeerPort) -> i32 {
    raise_descriptor_limit();
    // Signals are taken by one thread with sigwait; every other thread
    // inherits this mask, so none is interrupted.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGHUP);
    if let Err(e) = signals.thread_block() {
        log::error!("cannot block signals: {e}");
        return EXIT_CONFIG;
    }

    // Under socket activation systemd owns the socket file; else we bind it.
    let activated = systemd::listen_fds().into_iter().next();
    let socket_activated = activated.is_some();
    let listener = match activated {
        Some(fd) => UnixListener::from(fd),
        None => match bind_socket(&cfg.socket) {
            Ok(l) => l,
            Err(e) => {
                log::error!("{e}");
                return EXIT_CONFIG;
            }
        },
    };
    let me = Node {
        name: cfg.name.clone(),
        addr: cfg.advertise,
        incarnation: cfg.incarnation,
        tags: cfg.tags.clone(),
    };
    let counters = Arc::new(counters::Counters::default());
    let (cluster, peer_listener) = match Cluster::start(
        me,
        peer_port,
        cfg.ring.clone(),
        cfg.identity.clone(),
        cfg.timings.clone(),
        Arc::clone(&counters),
    ) {
        Ok(c) => c,
        Err(e) => {
            if !socket_activated {
                let _ = std::fs::remove_file(&cfg.socket);
            }
            log::error!("cannot start gossip: {e}");
            return EXIT_CONFIG;
        }
    };
    if let Some(dir) = &cfg.state_dir
        && let Err(e) = cluster.keep_revocations_in(dir)
    {
        log::error!("revocations: {e}");
        return EXIT_CONFIG;
    }
    {
        let c = Arc::clone(&cluster);
        let _ = thread::Builder::new()
            .name("sync".into())
            .spawn(move || cluster::sync_loop(c));
    }
    if let Some(port) = cfg.discover {
        match discover::start(
            Arc::clone(&cluster),
            Arc::clone(&counters),
            cfg.bind.ip(),
            port,
        ) {
            Ok(group) => log::info!("LAN discovery: beacons to {group}, joining the members heard"),
            // Not fatal: members still meet by --join.
            Err(e) => log::warn!(
                "LAN discovery is off: its socket on port {port} for --bind {}: {e}",
                cfg.bind.ip()
            ),
        }
    }
    if !cfg.join.is_empty() {
        let c = Arc::clone(&cluster);
        let addrs = cfg.join.clone();
        let _ = thread::Builder::new()
            .name("join".into())
            .spawn(move || cluster::join_with_retry(c, addrs));
    }
    let shared = Arc::new(Shared {
        name: cfg.name.clone(),
        euid: nix::unistd::geteuid().as_raw(),
        engine: Engine::new(cfg.cache_entries, Arc::clone(&counters)),
        pool: Pool::new(cfg.workers, cfg.workers * 64),
        cluster: Arc::clone(&cluster),
        sessions: fanout::SessionPool::new(cfg.max_links),
        watchers: watch::Watchers::new(nix::unistd::geteuid().as_raw()),
        idle_timeout: cfg.idle_timeout,
        split_above: cfg.split_above,
        exports: RwLock::new(Arc::new(cfg.exports.clone())),
        counters,
    });
    {
        // A revocation closes the sessions kept for the next query too.
        let weak = Arc::downgrade(&shared);
        cluster.on_revoke(Box::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared
                    .sessions
                    .drop_refused(|s| shared.cluster.admit(s.peer()).is_err());
            }
        }));
    }
    let peers = Arc::clone(&shared);
    if let Err(e) = thread::Builder::new()
        .name("peer-accept".into())
        .spawn(move || peer::accept_loop(peers, peer_listener))
    {
        log::error!("cannot start the peer thread: {e}");
        return EXIT_CONFIG;
    }
    if cfg.exports.is_empty() {
        log::info!("exporting nothing: peers may not read files here (add --export DIR)");
    } else {
        log::info!("peers may read below {}", describe_exports(&cfg.exports));
    }

    if let Some(dir) = cfg.state_dir.clone() {
        let c = Arc::clone(&cluster);
        let _ = thread::Builder::new()
            .name("state".into())
            .spawn(move || keep_state(&c, &dir));
    }
    if let Some(every) = systemd::watchdog_interval() {
        let _ = thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                loop {
                    let _ = systemd::notify("WATCHDOG=1");
                    thread::sleep(every / 2);
                }
            });
    }

    let admission = Admission::shared_by_users(
        cfg.max_local_connections,
        limits::Shares {
            per_user: cfg.connections_per_user,
            reserved: LOCAL_RESERVED,
            owner: shared.euid,
        },
    );
    let stop = Stop {
        shared: Arc::clone(&shared),
        key_source: cfg.key_source.clone(),
        args: cfg.args.clone(),
        socket: (!socket_activated).then(|| cfg.socket.clone()),
        port_file: cfg.port_file.clone(),
        state_dir: cfg.state_dir.clone(),
        local: Arc::clone(&admission),
    };
    let waiter = thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let sig = loop {
                match signals.wait() {
                    Ok(Signal::SIGHUP) => stop.reload(),
                    Ok(s) => break s.as_str(),
                    Err(_) => break "signal",
                }
            };
            stop.shutdown(sig)
        });
    if let Err(e) = waiter {
        log::error!("cannot start the signal thread: {e}");
        return EXIT_CONFIG;
    }

    // Logs the bound in force, and why when it is below --max-links.
    let _ = shared.sessions.max_links();
    log::info!(
        "p2pd {} ({}) serving {}, peers on {} (advertised as {}), {} workers",
        env!("CARGO_PKG_VERSION"),
        cfg.name,
        cfg.socket.display(),
        cfg.bind,
        cfg.advertise,
        cfg.workers
    );
    // Written last, so whoever waits for the file finds every socket bound.
    if let Some(path) = &cfg.port_file {
        if let Err(e) = peer_port::write_port_file(path, cfg.bind.port()) {
            log::error!("{e}");
            if !socket_activated {
                let _ = std::fs::remove_file(&cfg.socket);
            }
            return EXIT_CONFIG;
        }
    }
    let status = format!(
        "STATUS=serving {} as {}, peers on port {}",
        cfg.socket.display(),
        cfg.name,
        cfg.bind.port()
    );
    let _ = systemd::notify(&format!("READY=1\n{status}"));
    accept_loop(listener, shared, &admission);
    EXIT_CONFIG
}

/// Who asked for a leave on the local socket (`p2p-leave`), once asked.
static LEAVE_REQUEST: OnceLock<String> = OnceLock::new();

/// Leaves the cluster and exits as on SIGTERM (the signal thread does it),
/// with `why` (who asked) in the log instead of the signal's name.
pub(crate) fn request_leave(why: String) {
    let _ = LEAVE_REQUEST.set(why);
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGTERM);
}

/// What the signal thread needs to reload or to stop.
struct Stop {
    shared: Arc<Shared>,
    key_source: KeySource,
    args: Vec<OsString>,
    /// The socket file to remove at exit (not under socket activation).
    socket: Option<PathBuf>,
    /// The `--port-file` to remove at exit.
    port_file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    /// Local connections being served.
    local: Arc<Admission>,
}

impl Stop {
    /// SIGHUP: reads flags and config file again and applies what can
    /// change while running: the certificate (CA, certificate, node key,
    /// --accept-uncertified), exports, tags, log filter and keys. The
    /// members known stay; a configuration that no longer parses changes
    /// nothing, and a part that is refused keeps what is in force.
    fn reload(&self) {
        let cli = match config::load_daemon_cli(self.args.clone()) {
            Ok(c) => c,
            Err(e) => {
                log::error!("SIGHUP: keeping the running configuration: {e}");
                return;
            }
        };
        logging::set_filter(&cli.log_level);
        self.reload_identity(&cli);
        let certified = self.shared.cluster.identity().is_some();
        match exports_of(&cli.exports, certified) {
            Ok(e) => {
                log::info!("SIGHUP: exports {}", describe_exports(&e));
                self.shared.set_exports(e);
            }
            Err(e) => log::error!("SIGHUP: keeping the exports in force: {e}"),
        }
        let tags: BTreeMap<String, String> = cli.tags.into_iter().collect();
        if let Err(e) = crate::membership::check_tags(&tags) {
            log::error!("SIGHUP: keeping the tags in force: {e}");
        } else if tags != self.shared.cluster.me().tags {
            log::info!("SIGHUP: tags {}", describe_tags(&tags));
            self.shared.cluster.set_tags(tags);
        }
        reload_keys(&self.shared.cluster, &self.key_source);
    }

    /// SIGHUP, the certificate: a member moves to certificates, renews
    /// its certificate, stops accepting members without one, or goes back
    /// to the shared key alone, without a restart.
    fn reload_identity(&self, cli: &crate::cli::DaemonCli) {
        let cluster = &self.shared.cluster;
        let read = certified::read_identity(
            cli.ca.as_deref(),
            cli.cert.as_deref(),
            cli.node_key.as_deref(),
            cli.accept_uncertified,
        );
        let (id, from) = match read {
            Ok(Some((id, from))) => (Some(id), Some(from)),
            Ok(None) => (None, None),
            Err(e) => {
                log::error!("SIGHUP: keeping the certificate in force: {e}");
                return;
            }
        };
        let shown = match (&id, &from) {
            (Some(id), Some(from)) => certified::describe(id, from),
            _ => "no certificate: every holder of the cluster key is accepted".to_string(),
        };
        let dropping = id.is_none() && cluster.identity().is_some();
        match cluster.set_identity(id) {
            Ok(true) if dropping => log::warn!(
                "SIGHUP: no --ca, --cert and --node-key any more: this member is back to the \
                 shared key alone and accepts every holder of the cluster key again, revoked \
                 members included"
            ),
            Ok(true) => log::info!("SIGHUP: {shown}"),
            Ok(false) => {}
            Err(e) => log::error!("SIGHUP: keeping the certificate in force: {e}"),
        }
    }

    /// SIGINT or SIGTERM: says goodbye to the cluster, lets queries in
    /// flight finish for a moment, saves state, removes the socket, exits 0
    /// (within 2 s).
    fn shutdown(&self, sig: &str) -> ! {
        // A leave asked for on the local socket is logged as such, not as
        // the signal that carries it to this thread.
        let why = LEAVE_REQUEST.get().map_or(sig, String::as_str);
        log::info!("{why}: leaving the cluster and shutting down");
        let _ = systemd::notify("STOPPING=1");
        self.shared.cluster.leave(Duration::from_millis(500));
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while self.local.active() > 0 && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let busy = self.local.active();
        if busy > 0 {
            log::info!("{busy} local connection(s) cut short");
        }
        if let Some(dir) = &self.state_dir {
            save_state(&self.shared.cluster, dir);
        }
        if let Some(socket) = &self.socket {
            let _ = std::fs::remove_file(socket);
        }
        if let Some(path) = &self.port_file {
            let _ = std::fs::remove_file(path);
        }
        let _ = io::stderr().flush();
        std::process::exit(0);
    }
}

/// Whether LAN discovery runs: only when asked, since its beacons show
/// every holder of the cluster key on the link who the members are.
fn discovery(on: bool, off: bool) -> bool {
    on && !off
}

fn describe_exports(e: &Exports) -> String {
    if e.is_empty() {
        return "none".into();
    }
    let roots: Vec<String> = e
        .roots()
        .iter()
        .zip(e.groups())
        .map(|(r, g)| match g.is_empty() {
            true => r.display().to_string(),
            false => format!("{} (groups {})", r.display(), g.join(",")),
        })
        .collect();
    roots.join(", ")
}

/// The exports of the `--export` values; one that names groups needs a CA
/// (`certified`), since only certificates carry groups: without them no
/// member could ever read there, which is surely not what was meant.
fn exports_of(values: &[PathBuf], certified: bool) -> Result<Exports, String> {
    let exports = Exports::new(values)?;
    if !certified && let Some(i) = exports.groups().iter().position(|g| !g.is_empty()) {
        return Err(format!(
            "--export {}:groups={}: groups need certificates, and this daemon has no --ca \
             (in shared-key mode no member carries a group); configure --ca, --cert and \
             --node-key, or export without :groups=",
            exports.roots()[i].display(),
            exports.groups()[i].join(",")
        ));
    }
    Ok(exports)
}

fn describe_tags(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "none".into();
    }
    let t: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    t.join(", ")
}

/// The members worth remembering: those up, other than us.
fn known_nodes(members: &[MemberInfo]) -> Vec<Node> {
    members
        .iter()
        .filter(|m| !m.is_self && matches!(m.state, MemberState::Alive | MemberState::Suspect))
        .map(|m| Node {
            name: m.name.clone(),
            addr: m.addr,
            incarnation: m.incarnation,
            tags: m.tags.clone(),
        })
        .collect()
}

fn save_state(cluster: &Cluster, dir: &Path) {
    let st = state::State::new(cluster.me(), known_nodes(&cluster.members()));
    if let Err(e) = state::save(dir, &st) {
        log::warn!("cannot save state in {}: {e}", dir.display());
    }
}

/// Saves the member list as soon as it changes, then at most once a second
/// while changes keep coming.
fn keep_state(cluster: &Cluster, dir: &Path) {
    let events = cluster.watch();
    save_state(cluster, dir);
    while events.recv().is_ok() {
        while events.try_recv().is_ok() {}
        save_state(cluster, dir);
        thread::sleep(Duration::from_secs(1));
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>, admission: &Arc<Admission>) {
    let spare = Arc::new(spare::Spare::default());
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept on the local socket: {e}");
                // Out of descriptors or memory: give the others time to finish.
                thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        // Who connected is read once, here, from the socket itself.
        let caller = match caller::Caller::of_stream(&stream) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("local connection without peer credentials: {e}");
                continue;
            }
        };
        let uid = caller.uid;
        let ticket = match admission.admit_user(&stream, uid) {
            Ok(t) => t,
            Err(why) => {
                logging::hostile(
                    log::Level::Warn,
                    "local-full",
                    format_args!("refusing a local connection of uid {uid}: {why}"),
                );
                refuse_busy(stream, why);
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let spawned = spare.run(
            "local",
            Box::new(move || local::serve(stream, caller, shared, &ticket)),
        );
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}");
        }
    }
}

fn refuse_busy(mut stream: UnixStream, why: limits::Refused) {
    let error = crate::error::Error::new(
        crate::error::ErrorCode::Internal,
        format!("too many local connections ({why}); try again"),
    );
    if let Ok(mut line) = serde_json::to_vec(&crate::proto::RequestFailed { error }) {
        line.push(b'\n');
        let _ = stream.write_all(&line);
    }
}

/// Local places only the daemon's owner and root may take.
const LOCAL_RESERVED: usize = 32;

/// Binds the local socket, replacing a stale one but never a live daemon's.
fn bind_socket(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        paths::prepare_socket_dir(dir).map_err(|e| {
            io::Error::new(e.kind(), format!("socket directory {}: {e}", dir.display()))
        })?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another p2pd is already serving {}; give this one another port or --socket",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Where the cluster keys came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A key file (`--secret-file` or the per-user default), read again on SIGHUP.
    File(PathBuf),
    /// `P2PD_SECRET`, fixed for the life of the process.
    Env,
}

/// SIGHUP: reads the keys again, so a key can be rotated without a restart.
/// A file that no longer parses leaves the keys in force as they were.
fn reload_keys(cluster: &cluster::Cluster, source: &KeySource) {
    match source {
        KeySource::File(path) => match KeyRing::load(path) {
            Ok(ring) => {
                let names: Vec<String> = ring.keys().iter().map(|k| k.fingerprint()).collect();
                log::info!(
                    "SIGHUP: {} key(s) from {}, {} sends",
                    names.len(),
                    path.display(),
                    names[0]
                );
                cluster.set_ring(ring);
            }
            Err(e) => log::error!("SIGHUP: keeping the keys in force: {e}"),
        },
        KeySource::Env => {
            log::info!("SIGHUP: keys come from P2PD_SECRET and stay as they are")
        }
    }
}

fn describe_ring(ring: &KeyRing) -> String {
    match ring.keys().len() {
        1 => format!("cluster key {}", ring.primary().fingerprint()),
        n => format!("{n} cluster keys, {} sends", ring.primary().fingerprint()),
    }
}

/// The key ring: `--secret-file`, else `P2PD_SECRET`, else the per-user
/// default file, created with a new random key on first use.
fn resolve_keys(secret_file: Option<&Path>) -> Result<(KeyRing, KeySource), String> {
    if let Some(f) = secret_file {
        let ring = KeyRing::load(f).map_err(|e| format!("--secret-file {}: {e}", f.display()))?;
        log::info!("{} from {}", describe_ring(&ring), f.display());
        return Ok((ring, KeySource::File(f.to_path_buf())));
    }
    if let Some(ring) = KeyRing::take_env("P2PD_SECRET") {
        let ring = ring.map_err(|e| format!("P2PD_SECRET: {e}"))?;
        log::info!("{} from P2PD_SECRET", describe_ring(&ring));
        return Ok((ring, KeySource::Env));
    }
    if let Some(cred) = systemd::credential("cluster.key") {
        let ring =
            KeyRing::load(&cred).map_err(|e| format!("credential {}: {e}", cred.display()))?;
        log::info!(
            "{} from the systemd credential {}",
            describe_ring(&ring),
            cred.display()
        );
        return Ok((ring, KeySource::File(cred)));
    }
    let path = default_key_path();
    let (ring, created) = KeyRing::load_or_create(&path).map_err(|e| e.to_string())?;
    if created {
        log::info!(
            "created a new cluster key {} in {}; other hosts need a copy of this file to join",
            ring.primary().fingerprint(),
            path.display()
        );
    } else {
        log::info!("{} from {}", describe_ring(&ring), path.display());
    }
    Ok((ring, KeySource::File(path)))
}

/// `p2pd`'s entry point: reads flags, environment and config file into a
/// [`Config`] and runs.
pub fn main(args: Vec<OsString>) -> i32 {
    // Before any key is read.
    let no_dumps = forbid_core_dumps();
    let cli = match config::load_daemon_cli(args.clone()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    logging::init(&cli.log_level);
    if let Err(e) = no_dumps {
        log::warn!("the cluster key could reach a core dump: {e}");
    }
    start(cli, args)
}

/// Keeps the key out of core dumps and out of reach of our user's other
/// processes: not dumpable (no core file, no ptrace, `/proc/PID/mem` and
/// `environ` root's only), and a core size limit of 0 as well.
fn forbid_core_dumps() -> io::Result<()> {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on this process, with valid arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setrlimit(libc::RLIMIT_CORE, &none) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises the soft limit on open descriptors to the hard limit (systemd's
/// default soft limit is 1,024, its hard one far higher) and logs the limit
/// the daemon runs with.
fn raise_descriptor_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on this process, with valid arguments.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            log::warn!(
                "cannot read the descriptor limit: {}",
                io::Error::last_os_error()
            );
            return;
        }
        let before = lim.rlim_cur;
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                log::warn!(
                    "cannot raise the descriptor limit from {before} to {}: {}",
                    lim.rlim_max,
                    io::Error::last_os_error()
                );
                lim.rlim_cur = before;
            }
        }
        if lim.rlim_cur == before {
            log::info!("descriptor limit {before}");
        } else {
            log::info!("descriptor limit {} (raised from {before})", lim.rlim_cur);
        }
    }
}

fn start(cli: DaemonCli, args: Vec<OsString>) -> i32 {
    let (ring, key_source) = match resolve_keys(cli.secret_file.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            log::error!("{e}");
            return EXIT_CONFIG;
        }
    };
    if cli.advertise.is_none() && cli.bind.is_unspecified() {
        log::error!(
            "--bind {} needs --advertise IP:PORT, the address other members should use",
            cli.bind
        );
        return EXIT_CONFIG;
    }
    // Bound now, so port 0 has its number before names and paths that
    // carry it are made.
    let peer_port = match peer_port::PeerPort::bind(SocketAddr::new(cli.bind, cli.port)) {
        Ok(p) => p,
        Err(e) => {
            log::error!("{e}; is another p2pd using port {}?", cli.port);
            return EXIT_CONFIG;
        }
    };
    let bind = match peer_port.local_addr() {
        Ok(a) => a,
        Err(e) => {
            log::error!("cannot read the address of the peer port: {e}");
            return EXIT_CONFIG;
        }
    };
    let port = bind.port();
    let advertise = match cli.advertise {
        // An advertised port 0 is the port bound.
        Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), port),
        Some(a) => a,
        None => bind,
    };
    let timings = Timings {
        gossip_interval: std::time::Duration::from_millis(cli.gossip_interval),
        probe_interval: std::time::Duration::from_millis(cli.probe_interval),
        probe_timeout: std::time::Duration::from_millis(cli.probe_interval / 2),
        suspicion: std::time::Duration::from_millis(cli.suspicion_timeout),
        ..Timings::default()
    };
    let mut join: Vec<String> = cli.seed.into_iter().collect();
    join.extend(cli.join);
    let saved = cli
        .state_dir
        .as_deref()
        .and_then(|dir| match state::load(dir) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("state in {}: {e}; starting afresh", dir.display());
                None
            }
        });
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    let mut incarnation = now_ms;
    let identity = match certified::resolve(
        cli.ca.as_deref(),
        cli.cert.as_deref(),
        cli.node_key.as_deref(),
        cli.accept_uncertified,
    ) {
        Ok(i) => i.map(Arc::new),
        Err(e) => {
            log::error!("{e}");
            return EXIT_CONFIG;
        }
    };
    let mut name = cli.name;
    if let Some(id) = &identity {
        let certified = &id.cert.body().name;
        match &name {
            Some(n) if n != certified => {
                log::error!(
                    "--name {n}: the certificate is for {certified}; a certified member goes by the name in its certificate"
                );
                return EXIT_CONFIG;
            }
            _ => name = Some(certified.clone()),
        }
    }
    if let Some(saved) = &saved {
        // Above every incarnation we had, even if the clock went back.
        incarnation = incarnation.max(saved.node.incarnation + 1);
        name = name.or_else(|| Some(saved.node.name.clone()));
        let known: Vec<String> = saved
            .rejoin_addrs()
            .into_iter()
            .filter(|a| *a != advertise)
            .map(|a| a.to_string())
            .filter(|a| !join.contains(a))
            .collect();
        if !known.is_empty() {
            log::info!(
                "rejoining {} member(s) known before the restart",
                known.len()
            );
        }
        join.extend(known);
    }
    let workers = cli
        .workers
        .map(usize::from)
        .unwrap_or_else(crate::ops::cores);
    let exports = match exports_of(&cli.exports, identity.is_some()) {
        Ok(e) => e,
        Err(e) => {
            log::error!("{e}");
            return EXIT_CONFIG;
        }
    };
    let cfg = Config {
        port,
        name: name.unwrap_or_else(|| default_name(port)),
        socket: cli.socket.unwrap_or_else(|| paths::default_socket(port)),
        workers,
        cache_entries: cli.cache_entries,
        max_local_connections: 256,
        connections_per_user: usize::from(cli.connections_per_user),
        idle_timeout: Duration::from_secs_f64(cli.idle_timeout),
        max_links: usize::from(cli.max_links),
        identity,
        split_above: cli.split_above,
        discover: discovery(cli.discover, cli.no_discover).then_some(cli.discover_port),
        bind,
        port_file: cli.port_file,
        advertise,
        tags: cli.tags.into_iter().collect(),
        ring,
        key_source,
        timings,
        join,
        exports,
        state_dir: cli.state_dir,
        args,
        incarnation,
    };
    // The flag was checked as it was parsed; a name from the host name or
    // the state file only here.
    if let Err(e) = crate::membership::check_name(&cfg.name) {
        log::error!("{e}; give this node a --name");
        return EXIT_CONFIG;
    }
    run(cfg, peer_port)
}

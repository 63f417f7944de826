//! `p2pd`: binds the local socket, runs the worker pool and serves queries
//! until SIGINT or SIGTERM.

pub mod batch;
pub mod cluster;
pub mod distribute;
pub mod engine;
pub mod fanout;
pub mod local;
pub mod peer;
pub mod pool;
pub mod remote;

use crate::crypto::keys::{KeyRing, default_key_path};
use crate::exports::Exports;
use crate::membership::{Node, Timings};
use crate::paths;
use cluster::Cluster;
use engine::Engine;
use nix::sys::signal::{SigSet, Signal};
use pool::Pool;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;

/// Everything `p2pd` needs to start, resolved from flags and defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub name: String,
    pub socket: PathBuf,
    pub workers: usize,
    pub cache_entries: usize,
    pub max_local_connections: usize,
    /// Where peers and gossip are served.
    pub bind: SocketAddr,
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
}

/// State every connection shares.
pub struct Shared {
    pub name: String,
    pub euid: u32,
    pub engine: Engine,
    pub pool: Pool,
    pub cluster: Arc<Cluster>,
    exports: RwLock<Arc<Exports>>,
}

impl Shared {
    /// The directories peers may read below, as of now.
    pub fn exports(&self) -> Arc<Exports> {
        match self.exports.read() {
            Ok(e) => Arc::clone(&e),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// Exit status for a configuration or start-up error.
pub const EXIT_CONFIG: i32 = 2;

/// Sets up logging for a daemon: `RUST_LOG` (default `info`), and no
/// timestamps when stderr goes to the journal, which adds its own.
pub fn init_logging() {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        b.format_timestamp(None);
    }
    let _ = b.try_init();
}

/// The default node name: host name and port, unique among daemons of one host.
pub fn default_name(port: u16) -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{port}")
}

/// Runs the daemon; returns the process exit status.
pub fn run(cfg: Config) -> i32 {
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

    let listener = match bind_socket(&cfg.socket) {
        Ok(l) => l,
        Err(e) => {
            log::error!("{e}");
            return EXIT_CONFIG;
        }
    };
    let me = Node {
        name: cfg.name.clone(),
        addr: cfg.advertise,
        incarnation: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64),
        tags: cfg.tags.clone(),
    };
    let (cluster, peer_listener) =
        match Cluster::start(me, cfg.bind, cfg.ring.clone(), cfg.timings.clone()) {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&cfg.socket);
                log::error!("{e}; is another p2pd using port {}?", cfg.port);
                return EXIT_CONFIG;
            }
        };
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
        engine: Engine::new(cfg.cache_entries),
        pool: Pool::new(cfg.workers, cfg.workers * 64),
        cluster: Arc::clone(&cluster),
        exports: RwLock::new(Arc::new(cfg.exports.clone())),
    });
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
        let roots: Vec<String> = cfg
            .exports
            .roots()
            .iter()
            .map(|r| r.display().to_string())
            .collect();
        log::info!("peers may read below {}", roots.join(", "));
    }

    let socket = cfg.socket.clone();
    let key_source = cfg.key_source.clone();
    let waiter = thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let sig = loop {
                match signals.wait() {
                    Ok(Signal::SIGHUP) => reload(&cluster, &key_source),
                    Ok(s) => break s.as_str(),
                    Err(_) => break "signal",
                }
            };
            log::info!("{sig}: leaving the cluster and shutting down");
            cluster.leave(std::time::Duration::from_millis(500));
            let _ = std::fs::remove_file(&socket);
            let _ = io::stderr().flush();
            std::process::exit(0);
        });
    if let Err(e) = waiter {
        log::error!("cannot start the signal thread: {e}");
        return EXIT_CONFIG;
    }

    log::info!(
        "p2pd {} ({}) serving {}, peers on {} (advertised as {}), {} workers",
        env!("CARGO_PKG_VERSION"),
        cfg.name,
        cfg.socket.display(),
        cfg.bind,
        cfg.advertise,
        cfg.workers
    );
    accept_loop(listener, shared, cfg.max_local_connections);
    EXIT_CONFIG
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>, max: usize) {
    let active = Arc::new(AtomicUsize::new(0));
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
        if active.load(Ordering::Relaxed) >= max {
            log::warn!("refusing a local connection: {max} already open");
            refuse_busy(stream);
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        let active2 = Arc::clone(&active);
        let spawned = thread::Builder::new().name("local".into()).spawn(move || {
            local::serve(stream, shared);
            active2.fetch_sub(1, Ordering::Relaxed);
        });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::Relaxed);
            log::warn!("cannot start a connection thread: {e}");
        }
    }
}

fn refuse_busy(mut stream: UnixStream) {
    let _ = stream.write_all(
        b"{\"error\":{\"code\":\"internal\",\"message\":\"too many local connections; try again\"}}\n",
    );
}

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
fn reload(cluster: &cluster::Cluster, source: &KeySource) {
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
    if let Ok(text) = std::env::var("P2PD_SECRET") {
        let ring = KeyRing::parse(&text).map_err(|e| format!("P2PD_SECRET: {e}"))?;
        log::info!("{} from P2PD_SECRET", describe_ring(&ring));
        return Ok((ring, KeySource::Env));
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

/// `p2pd`'s entry point: resolves the flags into a [`Config`] and runs.
pub fn main(cli: crate::cli::DaemonCli) -> i32 {
    init_logging();
    let (ring, key_source) = match resolve_keys(cli.secret_file.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            log::error!("{e}");
            return EXIT_CONFIG;
        }
    };
    let bind = SocketAddr::new(cli.bind, cli.port);
    let advertise = match cli.advertise {
        Some(a) => a,
        None if cli.bind.is_unspecified() => {
            log::error!(
                "--bind {} needs --advertise IP:PORT, the address other members should use",
                cli.bind
            );
            return EXIT_CONFIG;
        }
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
    let workers = cli.workers.map(usize::from).unwrap_or_else(|| {
        thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let exports = match Exports::new(&cli.exports) {
        Ok(e) => e,
        Err(e) => {
            log::error!("{e}");
            return EXIT_CONFIG;
        }
    };
    let cfg = Config {
        port: cli.port,
        name: cli.name.unwrap_or_else(|| default_name(cli.port)),
        socket: cli
            .socket
            .unwrap_or_else(|| paths::default_socket(cli.port)),
        workers,
        cache_entries: cli.cache_entries,
        max_local_connections: 128,
        bind,
        advertise,
        tags: cli.tags.into_iter().collect(),
        ring,
        key_source,
        timings,
        join,
        exports,
    };
    run(cfg)
}

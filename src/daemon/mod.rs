//! `p2pd`: binds the local socket, runs the worker pool and serves queries
//! until SIGINT or SIGTERM.

pub mod engine;
pub mod local;
pub mod pool;

use crate::paths;
use engine::Engine;
use nix::sys::signal::{SigSet, Signal};
use pool::Pool;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
}

/// State every connection shares.
pub struct Shared {
    pub name: String,
    pub euid: u32,
    pub engine: Engine,
    pub pool: Pool,
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
    let shared = Arc::new(Shared {
        name: cfg.name.clone(),
        euid: nix::unistd::geteuid().as_raw(),
        engine: Engine::new(cfg.cache_entries),
        pool: Pool::new(cfg.workers, cfg.workers * 64),
    });

    let socket = cfg.socket.clone();
    let waiter = thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let sig = signals.wait();
            log::info!(
                "{}: shutting down",
                sig.map(|s| s.as_str()).unwrap_or("signal")
            );
            let _ = std::fs::remove_file(&socket);
            let _ = io::stderr().flush();
            std::process::exit(0);
        });
    if let Err(e) = waiter {
        log::error!("cannot start the signal thread: {e}");
        return EXIT_CONFIG;
    }

    log::info!(
        "p2pd {} ({}) serving on {} with {} workers",
        env!("CARGO_PKG_VERSION"),
        cfg.name,
        cfg.socket.display(),
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

/// `p2pd`'s entry point: resolves the flags into a [`Config`] and runs.
pub fn main(cli: crate::cli::DaemonCli) -> i32 {
    init_logging();
    let workers = cli.workers.map(usize::from).unwrap_or_else(|| {
        thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let cfg = Config {
        port: cli.port,
        name: cli.name.unwrap_or_else(|| default_name(cli.port)),
        socket: cli
            .socket
            .unwrap_or_else(|| paths::default_socket(cli.port)),
        workers,
        cache_entries: cli.cache_entries,
        max_local_connections: 128,
    };
    run(cfg)
}

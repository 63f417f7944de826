//! `p2p-ui`: a web dashboard of the local daemon, served on loopback.
//!
//! It is one more client of the daemon, running as the user who starts it:
//! members and counters come through [`crate::client`] as `p2p-peers` and
//! `p2p-status` get them, and a query runs the query command itself, so
//! files are opened with that user's rights and the lines shown are the
//! command's own. Rooms: [`auth`] (token, Host and Origin, pure),
//! [`api`] (what the endpoints answer), [`http`] (requests read whole on
//! the dashboard's own sockets, bounded), [`server`] (what each request
//! gets); the
//! page (HTML, CSS, JavaScript) is embedded from `assets/`.

pub mod api;
pub mod auth;
pub mod http;
pub mod server;

use crate::cli::Connection;
use nix::sys::signal::{SigSet, Signal};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::thread;

/// What the serving threads share.
pub struct Ui {
    pub guard: auth::Guard,
    pub members: Arc<api::Members>,
    pub counters: Arc<api::Counters>,
    pub conn: Connection,
    /// Streams and queries being served ([`server::MAX_STREAMS`]).
    pub streams: AtomicUsize,
    pub children: Children,
}

/// The commands running for the page, interrupted when we stop.
#[derive(Default)]
pub struct Children(Mutex<Vec<u32>>);

impl Children {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, pid: u32) {
        self.lock().push(pid);
    }

    pub fn remove(&self, pid: u32) {
        self.lock().retain(|&p| p != pid);
    }

    /// Interrupts every command still running, as Ctrl-C would.
    fn interrupt(&self) {
        for &pid in self.lock().iter() {
            // SAFETY: a signal to a child we have not reaped yet.
            unsafe {
                libc::kill(pid as i32, libc::SIGINT);
            }
        }
    }
}

/// The signals that stop the dashboard, blocked in every thread and
/// taken by the main one.
fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set
}

/// A command started for the page gets the signals back (a blocked mask
/// is inherited across exec).
pub fn unblock_signals_in_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: pthread_sigmask is async-signal-safe; nothing else runs
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Where a browser reaches `addr`: an unspecified address through loopback.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        a => a,
    }
}

/// A failure before the dashboard serves.
pub struct Failed {
    pub status: i32,
    pub message: String,
}

/// Serves the dashboard on `listen`, also known as `names` (`--host`),
/// until SIGINT or SIGTERM; `ready` gets the URL to open (with the token
/// in its fragment, which the browser keeps and never sends) once the
/// port is bound.
pub fn serve(
    listen: SocketAddr,
    names: &[String],
    conn: Connection,
    ready: impl FnOnce(&str),
) -> Result<(), Failed> {
    let signals = stop_signals();
    // Before any thread starts, so that all inherit it.
    let _ = signals.thread_block();
    // Said now rather than on the page: the daemon must be there to start.
    crate::client::connect(&conn).map_err(|f| Failed {
        status: f.status,
        message: f.message,
    })?;
    let usage = |message: String| Failed {
        status: crate::output::EXIT_USAGE,
        message,
    };
    let listener =
        TcpListener::bind(listen).map_err(|e| usage(format!("cannot listen on {listen}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| usage(format!("cannot listen on {listen}: {e}")))?;
    let token = auth::Token::random().map_err(|e| usage(format!("no random token: {e}")))?;
    let url = format!("http://{}/#token={}", reachable(bound), token.as_str());
    let ui = Arc::new(Ui {
        guard: auth::Guard::new(token, bound, names),
        members: Arc::default(),
        counters: Arc::default(),
        conn: conn.clone(),
        streams: AtomicUsize::new(0),
        children: Children::default(),
    });
    let members = Arc::clone(&ui.members);
    let c = conn.clone();
    thread::Builder::new()
        .name("p2p-ui-members".into())
        .spawn(move || members.follow(c))
        .map_err(|e| usage(format!("cannot start a thread: {e}")))?;
    let counters = Arc::clone(&ui.counters);
    thread::Builder::new()
        .name("p2p-ui-status".into())
        .spawn(move || counters.sample(conn))
        .map_err(|e| usage(format!("cannot start a thread: {e}")))?;
    let own = Arc::clone(&ui);
    let serve: Arc<dyn Fn(std::net::TcpStream) + Send + Sync> =
        Arc::new(move |stream| server::connection(&own, stream));
    thread::Builder::new()
        .name("p2p-ui-accept".into())
        .spawn(move || http::accept(listener, serve))
        .map_err(|e| usage(format!("cannot start a thread: {e}")))?;
    ready(&url);
    loop {
        match signals.wait() {
            Ok(Signal::SIGINT | Signal::SIGTERM) => break,
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    ui.children.interrupt();
    Ok(())
}

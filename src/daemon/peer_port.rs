//! The peer port: one number for TCP (peers) and UDP (gossip), bound
//! together, port 0 letting the kernel choose; and `--port-file`, how a
//! harness, a script or a unit learns the number that was chosen.
//!
//! With a fixed port both sockets are bound on it or p2pd does not start.
//! With port 0, TCP is bound on a port the kernel picks, then UDP on the
//! same number; when that number is taken for UDP, both are let go and
//! another is tried, up to [`ATTEMPTS`] times. Nothing is ever handed from
//! one process to another between "free" and "bound", so nothing can race.

use std::fs;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How many ports a bind on port 0 tries before giving up.
pub const ATTEMPTS: usize = 64;

/// The two sockets of the peer port, bound on one port number.
#[derive(Debug)]
pub struct PeerPort {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl PeerPort {
    /// Binds TCP and UDP on `addr`; with port 0, on one port the kernel
    /// picks that is free for both.
    pub fn bind(addr: SocketAddr) -> io::Result<PeerPort> {
        if addr.port() != 0 {
            return Self::bind_fixed(addr);
        }
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let tcp = TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind TCP {addr}: {e}")))?;
            let chosen = tcp.local_addr()?;
            match UdpSocket::bind(chosen) {
                Ok(udp) => return Ok(PeerPort { udp, tcp }),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot bind UDP {chosen}: {e}"),
                    ));
                }
            }
        }
        let e = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse));
        Err(io::Error::new(
            e.kind(),
            format!(
                "no port free for both TCP and UDP on {} after {ATTEMPTS} tries: {e}",
                addr.ip()
            ),
        ))
    }

    fn bind_fixed(addr: SocketAddr) -> io::Result<PeerPort> {
        let udp = UdpSocket::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {addr}: {e}")))?;
        let tcp = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind TCP {addr}: {e}")))?;
        Ok(PeerPort { udp, tcp })
    }

    /// The address both sockets are bound to, with the port actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Writes `port` and a newline to `path` atomically: a reader sees no file
/// or the whole number, never a part (a temporary file in the same
/// directory, renamed over `path`). Mode 0644: the number is no secret.
pub fn write_port_file(path: &Path, port: u16) -> io::Result<()> {
    let tmp = temporary_name(path);
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(format!("{port}\n").as_bytes())?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot write --port-file {}: {e}", path.display()),
        )
    })
}

/// `DIR/.NAME.tmp-PID`, next to `path` so the rename stays in one filesystem.
fn temporary_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn port_zero_binds_both_on_one_chosen_number() {
        let p = PeerPort::bind(loopback(0)).unwrap();
        let addr = p.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(p.udp.local_addr().unwrap(), addr);
        // Both are really taken: neither can be bound again.
        assert!(UdpSocket::bind(addr).is_err());
        assert!(TcpListener::bind(addr).is_err());
    }

    #[test]
    fn a_fixed_port_in_use_is_an_error_naming_it() {
        let p = PeerPort::bind(loopback(0)).unwrap();
        let addr = p.local_addr().unwrap();
        let e = PeerPort::bind(addr).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }

    #[test]
    fn the_port_file_holds_the_number_and_a_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p2pd.port");
        write_port_file(&path, 41234).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "41234\n");
        // Rewritten in place, with no temporary file left behind.
        write_port_file(&path, 41235).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "41235\n");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn an_unwritable_port_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("p2pd.port");
        let e = write_port_file(&path, 1).unwrap_err();
        assert!(e.to_string().contains("--port-file"), "{e}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
}

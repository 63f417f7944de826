//! Replay from outside, with no key (issue 11, finding 7): traffic of real
//! daemons is captured on its way, then sent again, verbatim, by a party
//! that holds no key. A replayed first handshake message must not hold a
//! place on the peer port; replayed gossip must not keep a killed member
//! alive.

mod common;

use common::{Daemon, FAST, TEST_KEY, Vacant, eventually, peers, run, write};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A TCP proxy on 127.0.0.1 to `to` that records what its first client sends.
fn recording_proxy(to: SocketAddr) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&sent);
    thread::spawn(move || {
        let Ok((mut client, _)) = listener.accept() else {
            return;
        };
        let Ok(mut server) = TcpStream::connect(to) else {
            return;
        };
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        thread::spawn(move || {
            let _ = std::io::copy(&mut s2, &mut c2);
            let _ = c2.shutdown(Shutdown::Write);
        });
        let mut buf = [0u8; 65536];
        while let Ok(n) = client.read(&mut buf) {
            if n == 0 || server.write_all(&buf[..n]).is_err() {
                break;
            }
            record.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        let _ = server.shutdown(Shutdown::Write);
    });
    (port, sent)
}

/// Keeps `want` connections to `to` open, each having sent `replay` and
/// been answered, opening new ones as the daemon closes old ones; counts
/// the answered ones open now.
struct ReplayFlood {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
}

impl ReplayFlood {
    fn start(to: SocketAddr, replay: Vec<u8>, want: usize) -> ReplayFlood {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let (s, a) = (Arc::clone(&stop), Arc::clone(&answered));
        thread::spawn(move || {
            let mut open: Vec<TcpStream> = Vec::new();
            while !s.load(Ordering::Relaxed) {
                // Drop the connections the daemon has closed.
                open.retain(|c| {
                    let mut b = [0u8; 1];
                    matches!(c.peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                });
                while open.len() < want && !s.load(Ordering::Relaxed) {
                    let Ok(mut c) = TcpStream::connect(to) else {
                        break;
                    };
                    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut len = [0u8; 2];
                    let answered = c.write_all(&replay).is_ok()
                        && c.read_exact(&mut len).is_ok()
                        && len != [0, 0];
                    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if !answered
                        || c.read_exact(&mut answer).is_err()
                        || c.set_nonblocking(true).is_err()
                    {
                        // Refused: every place is taken. Try again later.
                        break;
                    }
                    open.push(c);
                    a.store(open.len(), Ordering::Relaxed);
                }
                a.store(open.len(), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        });
        ReplayFlood { stop, answered }
    }
}

impl Drop for ReplayFlood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn replayed_first_handshake_messages_do_not_lock_members_out() {
    common::raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "f.txt", b"one\ntwo\n");
    let file = file.to_str().unwrap();
    let target = Daemon::start(&["--name", "target", "--export", dir.path().to_str().unwrap()]);
    // A real member's query to the target, captured on its way.
    let asker = Daemon::start(&["--name", "asker"]);
    let (proxy, captured) = recording_proxy(local(target.port));
    let r = run(asker
        .cmd("p2p-wc")
        .args(["--peer", &format!("127.0.0.1:{proxy}"), file]));
    assert_eq!(r.status, 0, "{} {}", r.stdout, r.stderr);
    let captured = captured.lock().unwrap().clone();
    assert!(captured.len() > 2, "nothing captured");
    let first = 2 + usize::from(u16::from_be_bytes([captured[0], captured[1]]));
    let replay = captured[..first].to_vec();

    // More replays than the peer port has places, kept open and renewed.
    let flood = ReplayFlood::start(local(target.port), replay, 300);
    eventually(30, "the daemon answered 256 replays at once", || {
        flood.answered.load(Ordering::Relaxed) >= 256
    });

    // A member that was never connected still joins, and queries.
    let newcomer = Daemon::start(&[
        FAST[0],
        FAST[1],
        FAST[2],
        FAST[3],
        "--name",
        "newcomer",
        "--join",
        &format!("127.0.0.1:{}", target.port),
    ]);
    eventually(15, "the newcomer joined the target", || {
        peers(&target)
            .iter()
            .any(|m| m["name"] == "newcomer" && m["state"] == "alive")
    });
    for _ in 0..3 {
        let r = run(newcomer.cmd("p2p-wc").args([
            "--peer",
            &format!("127.0.0.1:{}", target.port),
            file,
        ]));
        assert_eq!(r.status, 0, "{} {}", r.stdout, r.stderr);
        assert_eq!(r.json()[0]["lines"], 2, "{}", r.stdout);
    }
    drop(flood);
    let log = target.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// A UDP relay on 127.0.0.1 in front of the daemon on port `to` (set once
/// that daemon has started; nothing is forwarded before): it forwards what
/// comes to its port, and hands each datagram to `seen` first; once
/// `killed` is set it forwards nothing. Its port stays held for TCP too
/// while the relay lives, so no other test's daemon answers there.
fn relay(
    to: Arc<AtomicU16>,
    killed: Arc<AtomicBool>,
    mut seen: impl FnMut(&[u8], SocketAddr) + Send + 'static,
) -> Vacant {
    let held = Vacant::new();
    let socket = held.udp.try_clone().unwrap();
    thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            seen(&buf[..n], from);
            let port = to.load(Ordering::Relaxed);
            if !killed.load(Ordering::Relaxed) && port != 0 {
                let _ = socket.send_to(&buf[..n], local(port));
            }
        }
    });
    held
}

/// A datagram of `a` to `x`, when it passed, and what `x` sent right after.
type Exchange = (Instant, Vec<Vec<u8>>);

/// Recorded acks, by the number of the probe they answered.
struct AckTape {
    start: Instant,
    period: Duration,
    by_number: Vec<Option<Vec<u8>>>,
}

impl AckTape {
    /// From probes and their answers (the first answer of each is its ack).
    fn new(exchanges: &[Exchange]) -> AckTape {
        let probes: Vec<(Instant, &Vec<u8>)> = exchanges
            .iter()
            .filter_map(|(at, answers)| answers.first().map(|a| (*at, a)))
            .collect();
        let mut gaps: Vec<Duration> = probes
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .filter(|g| *g < Duration::from_millis(150))
            .collect();
        gaps.sort();
        let mut tape = AckTape {
            start: probes[0].0,
            period: gaps[gaps.len() / 2],
            by_number: vec![None; 256],
        };
        for (at, ack) in probes {
            let n = tape.number(at);
            tape.by_number[n] = Some(ack.clone());
        }
        tape
    }

    /// The probe number (mod 256, from the first recorded) of a probe at `at`.
    fn number(&self, at: Instant) -> usize {
        let periods = (at - self.start).as_secs_f64() / self.period.as_secs_f64();
        (periods.round() as i64).rem_euclid(256) as usize
    }

    /// Whether every probe number has its ack.
    fn is_whole(&self) -> bool {
        self.by_number.iter().all(Option::is_some)
    }

    /// The acks recorded for the probe at `at` and 3 around it.
    fn around(&self, at: Instant) -> Vec<&Vec<u8>> {
        let n = self.number(at) as i64;
        (-3..=3)
            .filter_map(|d| self.by_number[(n + d).rem_euclid(256) as usize].as_ref())
            .collect()
    }
}

#[test]
fn replayed_gossip_does_not_keep_a_killed_member_alive() {
    // Members `a` and `x` each advertise a relay in front of them, so what
    // they send each other passes through the test. Every 100 ms `a` probes
    // `x`, and `x` acknowledges at once; the ack carries the probe's
    // number, one byte. The relays record what `x` sends right after a
    // datagram from `a` (its acks, found by timing alone, as an attacker
    // without the key would), until there is one for every probe number:
    // later, every probe of `a` has a recorded ack with its number.
    // Their ports, once they have started on port 0.
    let (a_port, x_port) = (Arc::new(AtomicU16::new(0)), Arc::new(AtomicU16::new(0)));
    let killed = Arc::new(AtomicBool::new(false));
    // What `a` sent `x`, each with what `x` sent back within 1.5 ms.
    let exchanges: Arc<Mutex<Vec<Exchange>>> = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&exchanges);
    let from_x = Arc::clone(&x_port);
    let relay_a = relay(Arc::clone(&a_port), Arc::clone(&killed), move |d, from| {
        if from != local(from_x.load(Ordering::Relaxed)) {
            return;
        }
        if let Some((at, answers)) = e.lock().unwrap().last_mut() {
            if at.elapsed() < Duration::from_millis(5) {
                answers.push(d.to_vec());
            }
        }
    });
    // The recorded acks, by probe number (mod 256): probes come at a fixed
    // period, so a probe's number follows from its time. A datagram of `a`
    // that got an answer was a probe (its acks to `x`'s probes get none).
    let acks: Arc<Mutex<Option<AckTape>>> = Arc::new(Mutex::new(None));
    // Once `x` is dead, each probe of `a` is answered with the recorded
    // acks, verbatim, straight to `a`: the one whose number this probe has
    // again, and 3 on either side of it, in case a probe was late.
    let (e, r, k, to_a) = (
        Arc::clone(&exchanges),
        Arc::clone(&acks),
        Arc::clone(&killed),
        Arc::clone(&a_port),
    );
    let replayer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let replays = Arc::new(AtomicUsize::new(0));
    let sent = Arc::clone(&replays);
    let mut last_probe = Instant::now();
    let relay_x = relay(Arc::clone(&x_port), Arc::clone(&killed), move |_, _| {
        if !k.load(Ordering::Relaxed) {
            e.lock().unwrap().push((Instant::now(), Vec::new()));
            return;
        }
        // A probe every 100 ms; acks to replayed probes of `x` (if an
        // answer recorded was one) come right after one.
        if last_probe.elapsed() < Duration::from_millis(60) {
            return;
        }
        last_probe = Instant::now();
        if let Some(tape) = r.lock().unwrap().as_ref() {
            for d in tape.around(last_probe) {
                let _ = replayer.send_to(d, local(to_a.load(Ordering::Relaxed)));
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let timings = ["--gossip-interval", "100", "--probe-interval", "100"];
    let (a_adv, x_adv) = (relay_a.addr(), relay_x.addr());
    let mut a_args = timings.to_vec();
    a_args.extend(["--name", "a", "--advertise", &a_adv]);
    // At debug level `a` would log every replayed datagram it drops.
    let a = Daemon::start_on(
        0,
        &a_args,
        &[("P2PD_SECRET", TEST_KEY), ("RUST_LOG", "info")],
    );
    a_port.store(a.port, Ordering::Relaxed);
    let a_direct = format!("127.0.0.1:{}", a.port);
    let mut x_args = timings.to_vec();
    x_args.extend(["--name", "x", "--advertise", &x_adv, "--join", &a_direct]);
    let x = Daemon::start_on(0, &x_args, &[("P2PD_SECRET", TEST_KEY)]);
    x_port.store(x.port, Ordering::Relaxed);
    eventually(15, "a and x see each other alive", || {
        [&a, &x].iter().all(|d| {
            let p = peers(d);
            p.len() == 2 && p.iter().all(|m| m["state"] == "alive")
        })
    });
    exchanges.lock().unwrap().clear();
    let answered = || {
        exchanges
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, answers)| answers.first().cloned())
            .collect::<Vec<_>>()
    };
    eventually(120, "an ack recorded for every probe number", || {
        answered().len() >= 256 && AckTape::new(&exchanges.lock().unwrap()).is_whole()
    });
    *acks.lock().unwrap() = Some(AckTape::new(&exchanges.lock().unwrap()));
    killed.store(true, Ordering::Relaxed);
    drop(x);
    // As fast as without the replays: about two seconds at these timings.
    eventually(10, "a marks the killed x down", || {
        peers(&a)
            .iter()
            .any(|m| m["name"] == "x" && m["state"] == "down")
    });
    assert!(replays.load(Ordering::Relaxed) > 0, "nothing was replayed");
    // And the replays were dropped as such, not taken in (the daemon logs
    // the first dropped datagram at once, at warning level).
    eventually(5, "a dropped the replayed datagrams", || {
        a.log().contains("dropped")
    });
    let log = a.log();
    assert!(!log.contains("panicked"), "{log}");
}

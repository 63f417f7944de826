//! The decoders of `p2p` that take bytes from outside, each driven by one
//! byte slice. The fuzz targets in `fuzz_targets/` call these functions,
//! and `tests/decoders.rs` includes this file as a module and runs them on
//! the committed seeds and on mutations of them, in the normal test suite.
//!
//! A panic here is a finding: either `p2p` panicked on hostile input, which
//! SPEC.md's security model forbids, or one of the checks below caught a
//! decoder breaking a promise (a line split wrongly, a frame altered, a
//! value that does not survive its own encoding, wc's classifiers
//! disagreeing).
//!
//! Only `p2p` and its own dependencies are used, so that the test suite can
//! include this file without new dependencies.

use p2p::crypto::cert::{CaPublic, CaSecret, Cert, CertBody, NodeSecret, Revocations};
use p2p::crypto::gossip::{Endpoint, GossipCipher, MAX_DATAGRAM, MAX_PLAINTEXT, OVERHEAD};
use p2p::crypto::keys::{Key, KeyRing};
use p2p::crypto::replay::{Senders, Stamp, Verdict, WINDOW_BITS};
use p2p::crypto::session::{self, SessionError};
use p2p::fdpass::{LineReader, send_with_fds};
use p2p::membership::{MemberEvent, MemberInfo, Membership, Node, Timings};
use p2p::proto::peer::{self, JoinReply, PeerReply, PeerRequest};
use p2p::proto::{
    Accepted, CountFields, End, HelloReply, Item, ItemRequest, JoinResult, LeaveReply, Request,
    RequestFailed, ShaFields, StatFields, Summary, WcFields,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A fuzz target: its name, as in `Cargo.toml` and `corpus/`, and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    ("local_lines", local_lines),
    ("peer_frames", peer_frames),
    ("session_wire", session_wire),
    ("session_proof", session_proof),
    ("gossip_open", gossip_open),
    ("replay_window", replay_window),
    ("membership_payload", membership_payload),
    ("signed_membership", signed_membership),
    ("config_toml", config_toml),
    ("key_text", key_text),
    ("wc_bytes", wc_bytes),
    ("sha256sum_lines", sha256sum_lines),
    ("gnu_quote", gnu_quote),
    ("export_paths", export_paths),
    ("certificate", certificate),
    ("revocation_list", revocation_list),
];

/// The cluster keys of every target: a member holding them is trusted to
/// be in the cluster, not to send well-formed data.
pub fn test_ring() -> KeyRing {
    let keys = vec![Key::from_bytes([0x5a; 32]), Key::from_bytes([0xa5; 32])];
    KeyRing::new(keys).expect("two keys")
}

/// Reads a fuzz input front to back; past the end everything is zero or empty.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> usize {
        usize::from(u16::from_le_bytes([self.byte(), self.byte()]))
    }

    fn u24(&mut self) -> usize {
        usize::from(self.byte()) | usize::from(self.byte()) << 8 | usize::from(self.byte()) << 16
    }

    /// Up to `n` bytes.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// Asserts that `value` survives its own JSON encoding.
fn round_trips<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_vec(value).expect("encodes");
    let again: T = serde_json::from_slice(&text).expect("its own encoding parses");
    assert_eq!(
        &again,
        value,
        "changed by encoding: {}",
        String::from_utf8_lossy(&text)
    );
}

// ---------------------------------------------------------------------------
// The local JSON-lines protocol.

/// How much `LineReader` reads at a time: a line it returns may be up to
/// this much longer than its `max_line`, when line and newline came in one read.
const READ_SIZE: usize = 64 * 1024;

/// Descriptors one connection may pass before its lines claim them.
const LOCAL_MAX_FDS: usize = 4;

/// A byte stream on the local socket, read as the daemon reads it.
///
/// Layout: one knob byte (bits 0-1: `max_line` of 16, 100, 4096 or the
/// daemon's [`p2p::proto::MAX_LINE`]; bits 2-3: the size of the writes the
/// client makes; bits 4-6: how many descriptors ride on the first write, 0
/// to 253), then the stream. Each line is parsed as every request and
/// reply type of [`p2p::proto`], and an item line with `"fd":true` claims
/// a descriptor, as the daemon does. Checks: lines are exactly the
/// stream's newline-separated pieces; a descriptor is there for a line
/// while any is left; the only errors are a line over `max_line` and more
/// than [`LOCAL_MAX_FDS`] descriptors passed.
pub fn local_lines(data: &[u8]) {
    let Some((&knobs, stream)) = data.split_first() else {
        return;
    };
    let max_line = [16, 100, 4096, p2p::proto::MAX_LINE][usize::from(knobs & 3)];
    let write_size = [1, 7, 64, usize::MAX][usize::from(knobs >> 2 & 3)];
    let passed = [0, 0, 0, 1, 2, 5, 16, 253][usize::from(knobs >> 4 & 7)];
    let passed = if stream.is_empty() { 0 } else { passed };
    let (client, daemon) = UnixStream::pair().expect("socketpair");
    let sent = stream.to_vec();
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    let writer = std::thread::spawn(move || {
        let fds = vec![null.as_raw_fd(); passed];
        for (i, piece) in sent.chunks(write_size.min(sent.len().max(1))).enumerate() {
            let fds: &[std::os::fd::RawFd] = if i == 0 { &fds } else { &[] };
            // Fails once the reader has given up and closed its end.
            if send_with_fds(&client, piece, fds).is_err() {
                break;
            }
        }
    });
    let mut reader = LineReader::new(daemon, max_line, LOCAL_MAX_FDS);
    let mut at = 0;
    let mut claimed = 0;
    loop {
        match reader.next_line() {
            Ok(Some(line)) => {
                assert!(stream[at..].starts_with(&line), "a line that was not sent");
                at += line.len();
                if at < stream.len() {
                    assert_eq!(stream[at], b'\n', "a line cut before its newline");
                    at += 1;
                }
                assert!(line.len() <= max_line + READ_SIZE, "{} bytes", line.len());
                local_line(&line);
                if serde_json::from_slice::<ItemRequest>(&line).is_ok_and(|i| i.fd) {
                    // They came with the first byte, which has been read.
                    let fd = reader.take_fd();
                    assert_eq!(
                        fd.is_some(),
                        claimed < passed,
                        "descriptor {claimed} of {passed}"
                    );
                    claimed += 1;
                }
            }
            Ok(None) => {
                assert_eq!(at, stream.len(), "end of stream before its end");
                break;
            }
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
                let run = stream[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(stream.len() - at);
                assert!(
                    run > max_line || passed > LOCAL_MAX_FDS,
                    "refused a line of {run} bytes: {e}"
                );
                break;
            }
        }
    }
    drop(reader);
    writer.join().expect("writer thread");
}

/// One line, as every side of the local protocol would take it.
fn local_line(line: &[u8]) {
    // What the daemon reads: a request, then items and the end.
    if let Ok(r) = serde_json::from_slice::<Request>(line) {
        round_trips(&r);
    }
    if let Ok(i) = serde_json::from_slice::<ItemRequest>(line) {
        round_trips(&i);
    }
    let _ = serde_json::from_slice::<End>(line);
    // What the commands read back.
    let _ = serde_json::from_slice::<Accepted>(line);
    let _ = serde_json::from_slice::<RequestFailed>(line);
    let _ = serde_json::from_slice::<Summary>(line);
    let _ = serde_json::from_slice::<HelloReply>(line);
    let _ = serde_json::from_slice::<LeaveReply>(line);
    let _ = serde_json::from_slice::<JoinResult>(line);
    let _ = serde_json::from_slice::<Item<WcFields>>(line);
    let _ = serde_json::from_slice::<Item<ShaFields>>(line);
    let _ = serde_json::from_slice::<Item<CountFields>>(line);
    let _ = serde_json::from_slice::<Item<StatFields>>(line);
    let _ = serde_json::from_slice::<MemberInfo>(line);
    let _ = serde_json::from_slice::<MemberEvent>(line);
}

// ---------------------------------------------------------------------------
// The peer protocol.

/// One decrypted peer frame, parsed as each side of the peer protocol
/// would. Checks: whatever parses survives its own encoding (a reply's
/// floating-point numbers to within a few units in the last place: without
/// its `float_roundtrip` feature serde_json parses them that closely, not
/// exactly, and the protocol's own numbers are all integers).
pub fn peer_frames(data: &[u8]) {
    if let Ok(r) = serde_json::from_slice::<PeerRequest>(data) {
        let again: PeerRequest =
            serde_json::from_slice(&peer::encode(&r)).expect("an encoded request parses");
        assert_eq!(again, r);
    }
    if let Ok(r) = serde_json::from_slice::<PeerReply>(data) {
        let again: PeerReply =
            serde_json::from_slice(&peer::encode(&r)).expect("an encoded reply parses");
        let (a, b) = (json(&again), json(&r));
        assert!(nearly_equal(&a, &b), "changed by encoding: {a} != {b}");
    }
    if let Ok(r) = serde_json::from_slice::<JoinReply>(data) {
        round_trips(&r);
    }
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("encodes")
}

/// Equal JSON, floats within a few units in the last place.
fn nearly_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= 8.0 * f64::EPSILON * x.abs(),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| nearly_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| nearly_equal(v, w)))
        }
        _ => a == b,
    }
}

/// The Noise parameters of `p2p::crypto::session`, repeated here so that the
/// fuzzer can play a peer that holds the key but seals whatever it likes
/// (a wrong frame header, a bad continuation), which `Session::send` never
/// would. If the session changes these, `session_wire` fails loudly: the
/// handshake below no longer succeeds.
const NOISE_PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";
const NOISE_PROLOGUE: &[u8] = b"p2p session v2";
const NOISE_PSK_LABEL: &[u8] = b"p2p noise psk v1";
/// Plaintext one Noise message carries: 65535 bytes less the 16-byte tag.
const NOISE_PIECE: usize = 65535 - 16;

fn noise_initiator(key: &Key) -> snow::HandshakeState {
    let mut psk = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(None, key.bytes())
        .expand(NOISE_PSK_LABEL, &mut psk)
        .expect("32 bytes");
    snow::Builder::new(NOISE_PATTERN.parse().expect("pattern"))
        .psk(0, &psk)
        .and_then(|b| b.prologue(NOISE_PROLOGUE))
        .and_then(|b| b.build_initiator())
        .expect("initiator")
}

/// An in-memory connection: reads what the test put in, keeps what was written.
#[derive(Clone, Default)]
struct Pipe(Rc<RefCell<PipeState>>);

/// What the other end sends once it has read everything so far: given
/// what was written to it, the bytes it answers with.
type Answer = Box<dyn FnMut(&[u8]) -> Vec<u8>>;

#[derive(Default)]
struct PipeState {
    input: Vec<u8>,
    read: usize,
    output: Vec<u8>,
    /// Called once, when a read finds the input used up.
    answer: Option<Answer>,
}

impl Pipe {
    fn with_input(bytes: &[u8]) -> Pipe {
        let p = Pipe::default();
        p.push(bytes);
        p
    }

    fn push(&self, bytes: &[u8]) {
        self.0.borrow_mut().input.extend_from_slice(bytes);
    }

    fn take_output(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.borrow_mut().output)
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let answer = {
            let mut s = self.0.borrow_mut();
            if s.read == s.input.len() {
                s.answer.take().map(|f| (f, s.output.clone()))
            } else {
                None
            }
        };
        if let Some((mut f, written)) = answer {
            let more = f(&written);
            self.push(&more);
        }
        let mut s = self.0.borrow_mut();
        let at = s.read;
        let n = buf.len().min(s.input.len() - at);
        buf[..n].copy_from_slice(&s.input[at..at + n]);
        s.read += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn with_length(msg: &[u8]) -> Vec<u8> {
    let mut wire = (msg.len() as u16).to_be_bytes().to_vec();
    wire.extend_from_slice(msg);
    wire
}

/// The frame sizes a receiver may allow: around the header, a Noise
/// message, and the peer protocol's limit.
const SESSION_MAX: [usize; 8] = [
    0,
    3,
    4,
    100,
    NOISE_PIECE - 4,
    NOISE_PIECE - 3,
    65536,
    peer::MAX_FRAME,
];

/// Raw bytes on a peer's TCP connection, as the daemon reads them.
///
/// Layout: a mode byte. Mode 0 (`% 3`): the rest is what the responder
/// reads as the handshake. Mode 1: the rest is the responder's answer, as
/// the initiator reads it. Mode 2: a real handshake (bit 2 of the mode
/// byte: with the second key of the ring), then a receive limit byte (an
/// index into `SESSION_MAX`) and a script of what a peer holding the key
/// sends, one op byte (`% 4`) each:
///
/// - 0: a proper frame: a 3-byte length, a pattern length byte and the
///   pattern, repeated to fill the frame (at most three Noise messages; a
///   frame over the limit is cut after its first message, as the receiver
///   must refuse it on its header);
/// - 1: one sealed Noise message of any plaintext: 2-byte length, bytes;
/// - 2: raw bytes on the wire: a length byte, bytes;
/// - 3: tampering with the next byte: replay the last message, skip a
///   nonce, or flip a bit of the last message (at the byte after).
///
/// Checks: frames sent properly before any other op arrive unchanged, or as
/// `FrameTooLarge` when over the limit; nothing arrives that was not sent
/// while the script is clean; a failed session stays failed.
pub fn session_wire(data: &[u8]) {
    let mut input = Input(data);
    let mode = input.byte();
    let ring = test_ring();
    match mode % 3 {
        0 => {
            // Not even a replayed genuine first message gets a session: the
            // proof that must follow it depends on the responder's answer.
            assert!(
                session::accept(Pipe::with_input(input.0), &ring).is_err(),
                "a session from bytes that never saw the answer"
            );
        }
        1 => {
            let _ = session::connect(Pipe::with_input(input.0), &ring);
        }
        _ => session_script(mode, input, &ring),
    }
}

fn session_script(mode: u8, mut input: Input<'_>, ring: &KeyRing) {
    let key = &ring.keys()[usize::from(mode >> 2 & 1)];
    let mut hs = noise_initiator(key);
    let mut buf = vec![0u8; 1024];
    let n = hs.write_message(&[], &mut buf).expect("first message");
    let pipe = Pipe::with_input(&with_length(&buf[..n]));
    // Once the daemon has answered, the initiator reads the answer and sends
    // its proof, an empty message under nonce 0.
    let transport = Rc::new(RefCell::new(None));
    let t = Rc::clone(&transport);
    let mut hs = Some(hs);
    pipe.0.borrow_mut().answer = Some(Box::new(move |reply: &[u8]| {
        let mut buf = vec![0u8; 1024];
        let Some(mut hs) = hs.take() else {
            return Vec::new();
        };
        hs.read_message(reply.get(2..).unwrap_or_default(), &mut buf)
            .expect("the daemon's handshake answer");
        let noise = hs.into_stateless_transport_mode().expect("transport");
        let n = noise.write_message(0, &[], &mut buf).expect("proof");
        *t.borrow_mut() = Some(noise);
        with_length(&buf[..n])
    }));
    let mut daemon = session::accept(pipe.clone(), ring).expect("handshake with a ring key");
    let _ = pipe.take_output();
    let noise = transport.borrow_mut().take().expect("the proof was sent");

    let max = SESSION_MAX[usize::from(input.byte() & 7)];
    let mut nonce = 1u64;
    let mut wire = Vec::new();
    let mut last: Option<std::ops::Range<usize>> = None;
    let seal = |wire: &mut Vec<u8>, nonce: &mut u64, plain: &[u8]| {
        let mut out = vec![0u8; plain.len() + 16];
        let n = noise.write_message(*nonce, plain, &mut out).expect("seal");
        *nonce += 1;
        let start = wire.len();
        wire.extend_from_slice(&with_length(&out[..n]));
        start..wire.len()
    };
    // Frames sent properly before anything else, with where their bytes
    // end on the wire; after that, anything goes.
    let mut expected: Vec<(usize, Vec<u8>, usize)> = Vec::new();
    let mut clean = true;
    while !input.is_empty() {
        match input.byte() % 4 {
            0 => {
                // Frames up to a few Noise messages are as good as any;
                // one over the limit is refused on its header, so only its
                // first message is sent, whatever length it announces.
                let len = input.u24();
                let len = if len > max {
                    len
                } else {
                    len.min(3 * NOISE_PIECE)
                };
                let k = usize::from(input.byte());
                let pattern = input.take(k);
                let sent = if len > max {
                    len.min(NOISE_PIECE - 4)
                } else {
                    len
                };
                let mut body = if pattern.is_empty() {
                    vec![0; sent]
                } else {
                    pattern.repeat(sent / pattern.len() + 1)
                };
                body.truncate(sent);
                let mut plain = (len as u32).to_be_bytes().to_vec();
                plain.extend_from_slice(&body);
                for piece in plain.chunks(NOISE_PIECE) {
                    last = Some(seal(&mut wire, &mut nonce, piece));
                }
                if clean {
                    expected.push((len, body, wire.len()));
                }
            }
            1 => {
                let len = input.u16().min(NOISE_PIECE);
                let plain = input.take(len);
                last = Some(seal(&mut wire, &mut nonce, plain));
                clean = false;
            }
            2 => {
                let len = usize::from(input.byte());
                wire.extend_from_slice(input.take(len));
                clean = false;
            }
            _ => {
                let how = input.byte();
                match (how % 3, last.clone()) {
                    (0, Some(r)) => {
                        let again = wire[r].to_vec();
                        wire.extend_from_slice(&again);
                    }
                    (1, _) => nonce += 1,
                    (_, Some(r)) if !r.is_empty() => {
                        let at = r.start + usize::from(input.byte()) % r.len();
                        wire[at] ^= 1 << (how % 8);
                        // That message may belong to a frame sent properly.
                        expected.retain(|(_, _, end)| *end <= r.start);
                    }
                    _ => {}
                }
                clean = false;
            }
        }
    }
    pipe.push(&wire);

    let mut got = 0;
    loop {
        match daemon.recv(max) {
            Ok(frame) => {
                assert!(
                    frame.len() <= max,
                    "{} bytes over a limit of {max}",
                    frame.len()
                );
                match expected.get(got) {
                    Some((_, want, _)) => assert!(frame == *want, "frame {got} changed on the way"),
                    None => assert!(!clean, "frame {got} was never sent"),
                }
                got += 1;
                peer_frames(&frame);
            }
            Err(e) => {
                match expected.get(got).map(|(len, _, _)| *len) {
                    Some(len) if len > max => assert!(
                        matches!(e, SessionError::FrameTooLarge(n) if n == len as u64),
                        "frame {got} of {len} bytes over {max}: {e}"
                    ),
                    Some(_) => panic!("frame {got}, sent properly, failed: {e}"),
                    None if clean => assert!(
                        matches!(&e, SessionError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof),
                        "after the last frame: {e}"
                    ),
                    None => {}
                }
                assert!(daemon.recv(max).is_err(), "a failed session works again");
                break;
            }
        }
    }
}

/// What follows a genuine first handshake message, as the responder reads
/// it for the initiator's proof.
///
/// Layout: a byte whose bit 0 picks the ring key of the first message, then
/// the bytes that follow it on the wire (where a proof belongs). Check: no
/// session comes of them. Only the initiator that made the first message
/// can seal the proof, under keys that depend on the responder's answer;
/// these bytes were fixed before that answer existed, as a replay's are.
pub fn session_proof(data: &[u8]) {
    let mut input = Input(data);
    let ring = test_ring();
    let key = &ring.keys()[usize::from(input.byte() & 1)];
    let mut buf = vec![0u8; 1024];
    let n = noise_initiator(key)
        .write_message(&[], &mut buf)
        .expect("first message");
    let pipe = Pipe::with_input(&with_length(&buf[..n]));
    pipe.push(input.0);
    assert!(
        session::accept(pipe, &ring).is_err(),
        "a session without the initiator's proof"
    );
}

// ---------------------------------------------------------------------------
// Paths that peers ask for.

/// A directory tree for `export_paths`, made once per process and removed
/// at exit: `top/root` is exported, and so is `top/root/a` (nested) and
/// `top/alias`, a symlink to `top/root`; `top/root/a/b` only to group ops;
/// `top/outside` is not.
struct ExportTree {
    top: String,
    exports: p2p::exports::Exports,
    /// (device, inode) of everything below the exported roots, the roots included.
    inside: std::collections::HashSet<(u64, u64)>,
    /// Those below `top/root/a/b`, the export of group ops, itself included.
    closed: std::collections::HashSet<(u64, u64)>,
}

fn export_tree() -> &'static ExportTree {
    use std::os::unix::fs::{MetadataExt, symlink};
    use std::path::{Path, PathBuf};
    static TREE: std::sync::OnceLock<ExportTree> = std::sync::OnceLock::new();
    static TOP: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    extern "C" fn remove_tree() {
        if let Some(top) = TOP.get() {
            let _ = std::fs::remove_dir_all(top);
        }
    }
    TREE.get_or_init(|| {
        let top = std::env::temp_dir().join(format!("p2p-fuzz-exports-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        let top = TOP.get_or_init(|| top);
        // SAFETY: registers a plain function to run at exit.
        unsafe { libc::atexit(remove_tree) };
        let root = top.join("root");
        let made: io::Result<()> = (|| {
            std::fs::create_dir_all(root.join("a/b"))?;
            std::fs::create_dir_all(top.join("outside"))?;
            std::fs::write(root.join("f"), "inside")?;
            std::fs::write(root.join("a/b/g"), "nested")?;
            std::fs::write(top.join("outside/secret"), "secret")?;
            symlink("../f", root.join("a/in"))?;
            symlink(top.join("outside/secret"), root.join("abs"))?;
            symlink("../outside/secret", root.join("rel"))?;
            symlink(top.join("outside"), root.join("absdir"))?;
            symlink("..", root.join("up"))?;
            symlink("loop", root.join("loop"))?;
            symlink("/proc/self/root/etc", root.join("magic"))?;
            symlink(&root, top.join("alias"))?;
            let fifo =
                std::ffi::CString::new(root.join("fifo").into_os_string().into_encoded_bytes())
                    .map_err(io::Error::other)?;
            // SAFETY: a valid C string; mkfifo only creates a file.
            if unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })();
        made.expect("export tree");
        let exports = p2p::exports::Exports::new(&[
            root.clone(),
            root.join("a"),
            top.join("alias"),
            PathBuf::from(format!("{}:groups=ops", root.join("a/b").display())),
        ])
        .expect("exports");
        let mut inside = std::collections::HashSet::new();
        fn walk(dir: &Path, inside: &mut std::collections::HashSet<(u64, u64)>) {
            let md = std::fs::symlink_metadata(dir).expect("stat");
            inside.insert((md.dev(), md.ino()));
            for entry in std::fs::read_dir(dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                let md = std::fs::symlink_metadata(&path).expect("stat");
                if md.is_dir() {
                    walk(&path, inside);
                } else if !md.file_type().is_symlink() {
                    inside.insert((md.dev(), md.ino()));
                }
            }
        }
        walk(&root, &mut inside);
        let mut closed = std::collections::HashSet::new();
        walk(&root.join("a/b"), &mut closed);
        ExportTree {
            top: top.to_string_lossy().into_owned(),
            exports,
            inside,
            closed,
        }
    })
}

/// A path in a peer's `Items` frame, opened as the daemon opens it below
/// its `--export` roots. Layout: the path's bytes; one not starting with `/` is
/// taken relative to the tree's top directory (`root/f`, `alias/a/b/g`).
/// Checks: whatever opens is below an exported root, never `outside/secret`
/// nor anything else outside; a FIFO does not block. Opened for a member of
/// group ops, and for one without groups, who never opens anything below
/// `root/a/b` (however the path gets there), and cannot walk above it.
pub fn export_paths(data: &[u8]) {
    use std::os::unix::fs::MetadataExt;
    let tree = export_tree();
    let path = if data.starts_with(b"/") {
        data.to_vec()
    } else {
        [tree.top.as_bytes(), b"/", data].concat()
    };
    use p2p::exports::Asker;
    let shown = || path.escape_ascii().to_string();
    if let Ok(file) = tree.exports.open(&Asker::in_groups(&["ops"], false), &path) {
        let md = file.metadata().expect("fstat");
        let at = (md.dev(), md.ino());
        assert!(
            tree.inside.contains(&at),
            "{:?} opened something outside the exports",
            shown()
        );
    }
    for walks in [false, true] {
        let Ok(file) = tree.exports.open(&Asker::member(None, walks), &path) else {
            continue;
        };
        let md = file.metadata().expect("fstat");
        let at = (md.dev(), md.ino());
        assert!(
            tree.inside.contains(&at),
            "{:?} opened something outside the exports",
            shown()
        );
        assert!(
            !tree.closed.contains(&at),
            "{:?} opened, without group ops, something of its export",
            shown()
        );
        // A walk from root or root/a would enter root/a/b.
        let above = [
            tree.exports.roots()[0].clone(),
            tree.exports.roots()[1].clone(),
        ];
        if walks {
            for dir in above {
                let d = std::fs::metadata(&dir).expect("stat");
                assert_ne!(at, (d.dev(), d.ino()), "{:?} walks into root/a/b", shown());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Gossip.

/// The advertised addresses of the gossip targets' endpoints.
fn gossip_addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 30000 + i))
}

/// A UDP datagram, opened as the daemon opens every datagram it receives,
/// by the endpoint at `gossip_addr(0)`.
///
/// Checks: an opened payload is the datagram less the overhead, and the
/// same datagram never opens twice; anything sealed for the endpoint
/// under the ring opens once, unchanged, and not under another key nor at
/// another endpoint.
pub fn gossip_open(data: &[u8]) {
    let ring = test_ring();
    let cipher = GossipCipher::new(&ring);
    let mut me = Endpoint::new(gossip_addr(0), 1, 1);
    if let Ok(payload) = cipher.open(&mut me, data) {
        assert_eq!(payload.len() + OVERHEAD, data.len());
        assert!(cipher.open(&mut me, data).is_err(), "opened twice");
    }
    let plain = &data[..data.len().min(MAX_PLAINTEXT)];
    // Not the seeds' sender (`gossip_addr(1)`), whose stamps may have
    // opened above.
    let mut sender = Endpoint::new(gossip_addr(3), 1, 2);
    let sealed = cipher.seal(&mut sender, &gossip_addr(0), plain);
    assert!(sealed.len() <= MAX_DATAGRAM);
    let mut other = Endpoint::new(gossip_addr(2), 1, 3);
    assert!(
        cipher.open(&mut other, &sealed).is_err(),
        "opened elsewhere"
    );
    let stranger = GossipCipher::new(&KeyRing::new(vec![Key::from_bytes([7; 32])]).expect("key"));
    assert!(
        stranger.open(&mut me, &sealed).is_err(),
        "opened without the key"
    );
    assert_eq!(
        cipher.open(&mut me, &sealed).expect("opens what it sealed"),
        plain
    );
    assert!(cipher.open(&mut me, &sealed).is_err(), "opened twice");
}

/// The reference for `replay_window`: every stamp ever accepted, and per
/// sender the epoch and the highest counter.
#[derive(Default)]
struct ReplayModel {
    seen: std::collections::HashSet<Stamp>,
    top: std::collections::HashMap<u64, (u64, u64)>,
}

impl ReplayModel {
    fn verdict(&self, s: &Stamp) -> Verdict {
        match self.top.get(&s.sender) {
            None => Verdict::Fresh,
            Some(&(epoch, _)) if s.epoch < epoch => Verdict::OldEpoch,
            Some(&(epoch, _)) if s.epoch > epoch => Verdict::Fresh,
            Some(&(_, top)) if s.counter > top => Verdict::Fresh,
            Some(&(_, top)) if top - s.counter >= WINDOW_BITS - 64 => Verdict::TooOld,
            Some(_) if self.seen.contains(s) => Verdict::Duplicate,
            Some(_) => Verdict::Fresh,
        }
    }

    fn accept(&mut self, s: &Stamp) {
        let e = self.top.entry(s.sender).or_insert((s.epoch, s.counter));
        if s.epoch > e.0 {
            *e = (s.epoch, s.counter);
        }
        e.1 = e.1.max(s.counter);
        self.seen.insert(*s);
    }
}

/// Stamps fed to a replay table, checked against a plain model that keeps
/// every stamp it accepted.
///
/// Layout: a script, 4 bytes an op: a sender (of 4: bits 0-1 of byte 0),
/// how its stamp moves (bits 2-4 of byte 0: 0-3 the counter goes forward
/// by bytes 1-2 times a step of 1, 64, 1024 or 2^40; 4 the counter goes
/// back by bytes 1-2; 5 the epoch goes forward, counter from byte 1; 6 the
/// epoch goes back; 7 a stamp seen before, by index byte 1), and whether
/// it is only checked or accepted (bit 7 of byte 0). Check: the table's
/// verdicts, of `check` and `accept`, are the model's; a table of 2
/// senders (bit 5 of byte 0 of the first op) never says seen of a stamp
/// the model has never accepted.
pub fn replay_window(data: &[u8]) {
    let mut input = Input(data);
    let small = input.0.first().is_some_and(|b| b & 0x20 != 0);
    let mut table = Senders::new(if small { 2 } else { 64 }, 7);
    let mut model = ReplayModel::default();
    let mut current = [Stamp {
        sender: 0,
        epoch: 1000,
        counter: 1000,
    }; 4];
    for (i, c) in current.iter_mut().enumerate() {
        c.sender = i as u64;
    }
    let mut history: Vec<Stamp> = Vec::new();
    while !input.is_empty() {
        let (op, a, b, _) = (input.byte(), input.byte(), input.byte(), input.byte());
        let who = usize::from(op & 3);
        let n = u64::from(u16::from_le_bytes([a, b]));
        let s = &mut current[who];
        let stamp = match op >> 2 & 7 {
            step @ 0..=3 => {
                s.counter = s
                    .counter
                    .saturating_add(n * [1, 64, 1024, 1 << 40][usize::from(step)]);
                *s
            }
            4 => {
                s.counter = s.counter.saturating_sub(n);
                *s
            }
            5 => {
                s.epoch = s.epoch.saturating_add(1 + u64::from(a & 3));
                s.counter = u64::from(b);
                *s
            }
            6 => Stamp {
                epoch: s.epoch.saturating_sub(1 + u64::from(a & 3)),
                ..*s
            },
            _ if history.is_empty() => *s,
            _ => history[usize::from(a) % history.len()],
        };
        let checked = table.check(&stamp);
        if small {
            // Forgotten senders are new again: nothing is called seen that
            // was never accepted, and nothing accepted twice is fresh twice
            // while its sender is remembered (not checkable here).
            if checked == Verdict::Duplicate {
                assert!(
                    model.seen.contains(&stamp),
                    "{stamp:?} seen but never accepted"
                );
            }
            if op & 0x80 != 0 && table.accept(&stamp) == Verdict::Fresh {
                model.accept(&stamp);
                history.push(stamp);
            }
            continue;
        }
        let want = model.verdict(&stamp);
        assert_eq!(checked, want, "check of {stamp:?}");
        if op & 0x80 != 0 {
            assert_eq!(table.accept(&stamp), want, "accept of {stamp:?}");
            if want == Verdict::Fresh {
                model.accept(&stamp);
                history.push(stamp);
            }
        }
        assert_eq!(
            table.check(&stamp),
            model.verdict(&stamp),
            "after {stamp:?}"
        );
    }
    assert!(table.len() <= if small { 2 } else { 64 });
}

/// Node `i` of the simulated cluster; the fuzzed node is node 0.
pub fn sim_node(i: u16) -> Node {
    Node {
        name: format!("n{i}"),
        addr: SocketAddr::from(([127, 0, 0, 1], 20000 + i)),
        incarnation: 1,
        tags: BTreeMap::new(),
    }
}

/// Membership script ops (the op byte `% 8`).
const OP_PAYLOADS: u8 = 4;
const OP_TIME: u8 = 4;
const OP_ALIVE: u8 = 5;
const OP_CHANGES: u8 = 6;
const OP_LEAVE: u8 = 7;

/// What authenticated datagrams (a member holding the key may send
/// garbage) and TCP join answers do to node 0's membership state.
///
/// Layout: a script, one op byte (`% 8`) each: 0-3 a datagram payload
/// (2-byte length, bytes); 4 time passes (a byte of 10 ms ticks) and the
/// timers run; 5 members learned over TCP (2-byte length, a JSON list of
/// nodes, as in a `JoinReply`); 6 read the changes and the member list; 7
/// leave. Afterwards an hour passes in steps. Checks: what node 0 sends
/// fits in a datagram; it always lists itself, once, as alive.
pub fn membership_payload(data: &[u8]) {
    let mut input = Input(data);
    let me = sim_node(0);
    let mut now = Instant::now();
    let mut m = Membership::new(me.clone(), &Timings::default(), [0; 32]);
    while !input.is_empty() {
        match input.byte() % 8 {
            op if op < OP_PAYLOADS => {
                let len = input.u16();
                m.handle_payload(input.take(len), now);
            }
            OP_TIME => {
                now += Duration::from_millis(10) * u32::from(input.byte());
                m.handle_timers(now);
            }
            OP_ALIVE => {
                let len = input.u16();
                if let Ok(nodes) = serde_json::from_slice::<Vec<Node>>(input.take(len)) {
                    m.apply_alive(nodes, now);
                }
            }
            OP_CHANGES => {
                let _ = m.changes(now);
                check_members(&m, &me);
            }
            _ => m.leave(now),
        }
        check_outbox(&mut m);
    }
    for step in [1, 1, 1, 2, 5, 10, 30, 60, 600, 3600] {
        now += Duration::from_secs(step);
        m.handle_timers(now);
        check_outbox(&mut m);
    }
    let _ = m.next_deadline();
    let _ = m.live_nodes();
    let _ = m.changes(now);
    check_members(&m, &me);
}

/// The same script for a certified member: each payload comes with the
/// name its datagram's signature gives (`Membership::handle_signed`), and
/// node 0 takes only identities their owners showed.
///
/// Layout: as [`membership_payload`]; the signer of ops 0 to 2 is the name
/// the payload's foca header starts with (postcard: a length byte, the
/// bytes), so genuine traffic is signed by its sender, and op 3 signs as
/// n1 whatever it carries (an insider). Checks: as there, with payloads
/// that leave room for the signature trailer; and no member but node 0 is
/// listed under a name that no signer or TCP answer ever gave.
pub fn signed_membership(data: &[u8]) {
    let mut input = Input(data);
    let me = sim_node(0);
    let mut now = Instant::now();
    let mut m = Membership::new_certified(me.clone(), &Timings::default(), [0; 32]);
    let mut heard: Vec<String> = vec![me.name.clone()];
    while !input.is_empty() {
        match input.byte() % 8 {
            op if op < OP_PAYLOADS => {
                let len = input.u16();
                let payload = input.take(len);
                let named = match payload {
                    [0, n, rest @ ..] if op < 3 && usize::from(*n) <= rest.len() => {
                        String::from_utf8_lossy(&rest[..usize::from(*n)]).into_owned()
                    }
                    _ => "n1".to_string(),
                };
                heard.push(named.clone());
                m.handle_signed(payload, &named, now);
            }
            OP_TIME => {
                now += Duration::from_millis(10) * u32::from(input.byte());
                m.handle_timers(now);
            }
            OP_ALIVE => {
                let len = input.u16();
                if let Ok(nodes) = serde_json::from_slice::<Vec<Node>>(input.take(len)) {
                    // Hints only: node 0 asks their owners, who never answer here.
                    m.apply_alive(nodes, now);
                }
            }
            OP_CHANGES => {
                let _ = m.changes(now);
                check_members(&m, &me);
            }
            _ => m.leave(now),
        }
        check_signed_outbox(&mut m);
    }
    for step in [1, 1, 1, 2, 5, 10, 30, 60, 600, 3600] {
        now += Duration::from_secs(step);
        m.handle_timers(now);
        check_signed_outbox(&mut m);
    }
    let _ = m.changes(now);
    check_members(&m, &me);
    for i in m.members() {
        assert!(heard.contains(&i.name), "{} was never a signer", i.name);
    }
}

fn check_signed_outbox(m: &mut Membership) {
    for (_, payload) in m.take_outbox() {
        assert!(
            !payload.is_empty() && payload.len() <= MAX_PLAINTEXT - p2p::crypto::signed::OVERHEAD,
            "a payload of {} bytes",
            payload.len()
        );
    }
}

fn check_outbox(m: &mut Membership) {
    for (_, payload) in m.take_outbox() {
        assert!(
            !payload.is_empty() && payload.len() <= MAX_PLAINTEXT,
            "a payload of {} bytes",
            payload.len()
        );
    }
}

fn check_members(m: &Membership, me: &Node) {
    let members = m.members();
    let selves: Vec<&MemberInfo> = members.iter().filter(|i| i.is_self).collect();
    assert_eq!(selves.len(), 1, "{members:?}");
    assert_eq!(selves[0].name, me.name);
    // Whatever arrived, only identities within the bounds are listed.
    for i in &members {
        assert!(p2p::membership::check_name(&i.name).is_ok(), "{members:?}");
        assert!(p2p::membership::check_tags(&i.tags).is_ok(), "{members:?}");
    }
}

// ---------------------------------------------------------------------------
// Files the daemon and the commands read.

/// A config file, parsed by `p2pd`'s own entry point: once alone, once
/// under a command line with positionals and a flag the file also sets.
/// The file is a memfd, so nothing is left on disk.
pub fn config_toml(data: &[u8]) {
    // SAFETY: a plain system call with a valid C string; the descriptor it
    // returns is ours alone and owned by the File from here on.
    let fd = unsafe { libc::memfd_create(c"p2p-fuzz-config".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
    // SAFETY: see above.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(data).expect("write to memfd");
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let lines: [&[&str]; 2] = [
        &["p2pd", "--config", &path],
        &[
            "p2pd",
            "--config",
            &path,
            "7000",
            "10.0.0.1:7000",
            "--join",
            "h:1",
        ],
    ];
    for args in lines {
        let args = args.iter().map(OsString::from);
        if let Err(e) = p2p::config::load_daemon_cli(args) {
            let _ = e.to_string();
        }
    }
}

/// Key text, as in a `--secret-file`, `P2PD_SECRET` or a systemd credential.
/// Checks: parsed keys survive their own encoding; any 32 bytes do too.
pub fn key_text(data: &[u8]) {
    if let Ok(ring) = KeyRing::parse(&String::from_utf8_lossy(data)) {
        let text: String = ring.keys().iter().map(|k| k.encode() + "\n").collect();
        assert_eq!(KeyRing::parse(&text).expect("encoded keys parse"), ring);
    }
    if let Some(bytes) = data.first_chunk::<32>() {
        let key = Key::from_bytes(*bytes);
        let ring = KeyRing::parse(&format!("# a comment\n {} ,\n", key.encode())).expect("parses");
        assert_eq!(ring.keys(), [key]);
    }
}

/// The CA of the certificate targets.
fn test_ca() -> CaSecret {
    CaSecret::from_seed(&[0x3c; 32])
}

/// A certificate of `ca` for `name`, with a serial and two groups.
fn test_cert(ca: &CaSecret, name: &str, serial: u64) -> Cert {
    ca.issue(CertBody {
        serial,
        not_before: 1_800_000_000,
        not_after: 1_800_086_400,
        key: NodeSecret::from_seed(&[serial as u8; 64]).public(),
        name: name.into(),
        groups: vec!["ops".into(), "web".into()],
    })
    .expect("a good body")
}

/// A node certificate as a member sends it in its handshake (first byte
/// 0), or as a `--cert` file's text (anything else), then the certificate.
/// Checks: a decoded certificate has one encoding, its input (its text
/// decodes back to it); when the test CA's signature verifies, the CA
/// signing the same body makes the very same bytes (Ed25519 signs
/// deterministically), so nothing but what it signed passes.
pub fn certificate(data: &[u8]) {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    let cert = if form == 0 {
        match Cert::from_bytes(rest) {
            Ok(c) => {
                assert_eq!(c.to_bytes(), rest, "one encoding");
                c
            }
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    } else {
        match Cert::decode(&String::from_utf8_lossy(rest)) {
            Ok(c) => c,
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    };
    assert_eq!(Cert::decode(&cert.encode()).as_ref(), Ok(&cert));
    let ca = test_ca();
    let verdict = cert.verify(&ca.public(), 1_800_000_100);
    if let Ok(body) = cert.verify_signature(&ca.public()) {
        let again = ca.issue(body.clone()).expect("a decoded body is issuable");
        assert_eq!(
            again.to_bytes(),
            cert.to_bytes(),
            "verified, yet not what the CA signs"
        );
    } else {
        assert!(verdict.is_err());
    }
    let _ = cert.body().check_name("beta");
}

/// A revocation list or the news that carries it, its first byte picking
/// what the rest is: 0, a list as bytes; 1, a list file's text; else,
/// news ([`p2p::revocation`]) heard by a member that holds a list of the
/// test CA (issued at 1,000, revoking serial 2) and the certificate of
/// "beta" with that serial.
/// Checks: a decoded list has one encoding (its input; its text decodes
/// back to it) and ascending serials, and verifies only if it is what the
/// CA signs for its time and serials; after news, the list in force is the
/// CA's and not older than before, a revoked name is one the CA certified,
/// and the member's own news decodes again.
pub fn revocation_list(data: &[u8]) {
    use p2p::revocation::{Heard, Revocation, decode_news};
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    let ca = test_ca();
    let check_list = |list: &Revocations| {
        assert!(list.serials.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Revocations::decode(&list.encode()).as_ref(), Ok(list));
        if list.verify(&ca.public()).is_ok() {
            let again =
                Revocations::issue(&ca, list.issued, list.serials.clone()).expect("issuable");
            assert_eq!(
                again.to_bytes(),
                list.to_bytes(),
                "verified, yet not what the CA signs"
            );
        }
    };
    match form {
        0 => {
            if let Ok(list) = Revocations::from_bytes(rest) {
                assert_eq!(list.to_bytes(), rest, "one encoding");
                check_list(&list);
            }
        }
        1 => {
            if let Ok(list) = Revocations::decode(&String::from_utf8_lossy(rest)) {
                check_list(&list);
            }
        }
        _ => {
            if let Ok((list, certs)) = decode_news(rest) {
                check_list(&list);
                for c in &certs {
                    assert_eq!(Cert::from_bytes(&c.to_bytes()).as_ref(), Ok(c));
                }
            }
            let public: CaPublic = ca.public();
            let mut member = Revocation::new(public.clone());
            let held = Revocations::issue(&ca, 1000, vec![2]).expect("a list");
            assert_eq!(member.install(held), Ok(Heard::Newer));
            member.learn(&test_cert(&ca, "beta", 2)).expect("the CA's");
            let heard = member.hear(rest);
            let list = member.list().expect("a list stays in force");
            list.verify(&public)
                .expect("only the CA's list is in force");
            match heard {
                Ok(Heard::Newer) => assert!(list.issued > 1000),
                _ => assert_eq!(list.issued, 1000),
            }
            for name in member.revoked_names() {
                let c = member
                    .known(&name)
                    .expect("a revoked name has a certificate");
                c.verify_signature(&public).expect("of the CA");
                assert_eq!(c.body().name, name);
            }
            let news = member.news(usize::MAX).expect("news of the list");
            decode_news(&news).expect("our own news decodes");
        }
    }
}

/// Bytes counted by `p2p-wc`. Checks: every classifier agrees with the
/// byte-at-a-time reference, fed whole and in pieces; lines and bytes are
/// plain counts; valid UTF-8 has as many characters as Rust sees; plain
/// ASCII has the words a simple loop finds (runs of anything but white space).
pub fn wc_bytes(data: &[u8]) {
    use p2p::ops::wc::{WcCounter, count_newlines, count_slice, count_with_each_backend};
    let counts = count_slice(data);
    let step = 1 + usize::from(data.first().copied().unwrap_or(0)) % 70;
    for each in [
        count_with_each_backend(data, data.len()),
        count_with_each_backend(data, step),
    ] {
        for (i, c) in each.iter().enumerate() {
            assert_eq!(*c, each[0], "classifier {i} of {each:?}");
        }
        assert_eq!(each[0], counts);
    }
    let mut pieces = WcCounter::new();
    let cut = usize::from(data.last().copied().unwrap_or(0)) % (data.len() + 1);
    pieces.update(&data[..cut]);
    pieces.update(&data[cut..]);
    assert_eq!(pieces.finish(), counts, "cut at {cut}");

    let newlines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(counts.lines, newlines);
    assert_eq!(count_newlines(data), newlines);
    assert_eq!(counts.bytes, data.len() as u64);
    assert!(counts.chars <= counts.bytes);
    assert!(counts.words <= counts.bytes.div_ceil(2));
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(counts.chars, text.chars().count() as u64);
    }
    if data.is_ascii() {
        let (mut words, mut inside) = (0, false);
        for &b in data {
            match b {
                b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => inside = false,
                // Controls, NUL and DEL too are parts of words (coreutils 9.5+).
                _ => {
                    words += u64::from(!inside);
                    inside = true;
                }
            }
        }
        assert_eq!(counts.words, words);
    }
}

/// A check file, as `p2p-sha256 --check` reads it: the first byte's low bit
/// says whether it comes from standard input, the rest is the file, read
/// line by line by one `checkfile::Parser`. Checks: every entry, written
/// back by `p2p-sha256 --format sha256sum` (plain, binary and `--tag`
/// lines), reads back the same in a fresh parser; its digest is one GNU
/// accepts; and its name, quoted as messages show it, passes `gnu_quote`'s
/// checks.
pub fn sha256sum_lines(data: &[u8]) {
    use p2p::checkfile::{Expected, Line, LineStyle, Parser, line, split_lines};
    let mut input = Input(data);
    let from_stdin = input.byte() & 1 == 1;
    let mut parser = Parser::new();
    for (_, text) in split_lines(input.0) {
        let Line::Entry(entry) = parser.line(text, from_stdin) else {
            continue;
        };
        let hex = match &entry.expected {
            Expected::Hex(h) => {
                assert!(h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
                h.clone()
            }
            Expected::Base64(b) => {
                assert_eq!(b.len(), 44, "{b:?}");
                "0".repeat(64)
            }
        };
        assert!(!(from_stdin && entry.name == b"-"));
        gnu_quote(&entry.name);
        // GNU cannot write an empty name either (`SHA256 () = ...` reads as one).
        if entry.name.is_empty() {
            continue;
        }
        for style in [
            LineStyle::default(),
            LineStyle {
                binary: true,
                ..LineStyle::default()
            },
            LineStyle {
                tag: true,
                ..LineStyle::default()
            },
        ] {
            let written = line(&hex, &entry.name, style);
            let (body, end) = written.split_at(written.len() - 1);
            assert_eq!(end, b"\n");
            assert!(!body.contains(&b'\n'), "{written:?}");
            let again = Parser::new().line(&written, false);
            let Line::Entry(again) = again else {
                panic!("{written:?} reads as {again:?}");
            };
            assert_eq!(again.name, entry.name, "{written:?}");
            assert_eq!(again.expected, Expected::Hex(hex.clone()), "{written:?}");
        }
    }
}

/// A file name, quoted as GNU's messages quote it (`quote::quote`). Checks:
/// the result is UTF-8 without control characters (so it stays one line and
/// cannot drive a terminal), a name that needs no quotes is left as it is,
/// and a POSIX shell reading the result gets the name's bytes back.
pub fn gnu_quote(name: &[u8]) {
    let quoted = p2p::quote::quote(name);
    let text = std::str::from_utf8(&quoted).expect("quoted names are UTF-8");
    assert!(!text.chars().any(char::is_control), "{text:?}");
    if matches!(quoted, std::borrow::Cow::Borrowed(_)) {
        assert!(!name.is_empty());
        return;
    }
    assert_eq!(shell_word(&quoted).as_deref(), Some(name), "{text:?}");
}

/// What a POSIX shell (with bash's `$'...'`) makes of one word made of
/// '...', "..." (no expansions inside) and $'...' (C escapes and octal)
/// pieces; `None` for anything else.
fn shell_word(mut s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        if let Some(rest) = s.strip_prefix(b"$'") {
            let mut i = 0;
            loop {
                match *rest.get(i)? {
                    b'\'' => break,
                    b'\\' => {
                        let c = *rest.get(i + 1)?;
                        i += 2;
                        out.push(match c {
                            b'a' => 7,
                            b'b' => 8,
                            b'f' => 12,
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'v' => 11,
                            b'0'..=b'7' => {
                                let d = |k: usize| {
                                    rest.get(k)
                                        .filter(|&&b| b.is_ascii_digit() && b < b'8')
                                        .map(|b| b - b'0')
                                };
                                let (x, y) = (d(i)?, d(i + 1)?);
                                i += 2;
                                (c - b'0') * 64 + x * 8 + y
                            }
                            _ => return None,
                        });
                    }
                    b => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            s = &rest[i + 1..];
        } else if let Some(rest) = s.strip_prefix(b"'") {
            let end = rest.iter().position(|&b| b == b'\'')?;
            out.extend_from_slice(&rest[..end]);
            s = &rest[end + 1..];
        } else if let Some(rest) = s.strip_prefix(b"\"") {
            let end = rest.iter().position(|&b| b == b'"')?;
            let inner = &rest[..end];
            if inner.iter().any(|b| b"$`\\!".contains(b)) {
                return None;
            }
            out.extend_from_slice(inner);
            s = &rest[end + 1..];
        } else if let Some(rest) = s.strip_prefix(b"\\") {
            out.push(*rest.first()?);
            s = &rest[1..];
        } else {
            return None;
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Seeds.

/// The seed inputs committed under `corpus/<target>/`, as (target, file
/// name, bytes): real request lines and frames, real handshakes and sealed
/// datagrams under [`test_ring`], the membership traffic of a simulated
/// cluster, real config and key files, text. `tests/decoders.rs` writes
/// them (an ignored test); datagrams and handshakes take fresh random
/// nonces and keys each time.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, name.to_string(), bytes));
    };
    for (name, bytes) in local_seeds() {
        add("local_lines", name, bytes);
    }
    for (name, bytes) in frame_seeds() {
        add("peer_frames", name, bytes);
    }
    for (name, bytes) in session_seeds() {
        add("session_wire", name, bytes);
    }
    for (name, bytes) in proof_seeds() {
        add("session_proof", name, bytes);
    }
    let traffic = simulated_traffic();
    let ring = test_ring();
    let primary = GossipCipher::new(&ring);
    let second = GossipCipher::new(&KeyRing::new(vec![ring.keys()[1].clone()]).expect("key"));
    let mut sender = Endpoint::new(gossip_addr(1), 1, 2);
    let me = gossip_addr(0);
    let payloads: Vec<&Vec<u8>> = traffic.payloads.iter().take(200).step_by(40).collect();
    for (i, p) in payloads.iter().enumerate() {
        add(
            "gossip_open",
            &format!("foca-{i}"),
            primary.seal(&mut sender, &me, p),
        );
    }
    add(
        "gossip_open",
        "second-key",
        second.seal(&mut sender, &me, payloads[0]),
    );
    add(
        "gossip_open",
        "leave-notice",
        primary.seal(&mut sender, &me, &traffic.leave_notice),
    );
    add(
        "gossip_open",
        "for-another",
        primary.seal(&mut sender, &gossip_addr(2), payloads[0]),
    );
    add("gossip_open", "too-short", vec![2; OVERHEAD - 1]);
    add("gossip_open", "version-1", {
        let mut d = primary.seal(&mut sender, &me, b"x");
        d[0] = 1;
        d
    });
    for (name, bytes) in REPLAY_SEEDS {
        add("replay_window", name, bytes.to_vec());
    }
    for (name, script) in &traffic.scripts {
        add("membership_payload", name, script.clone());
        add("signed_membership", name, script.clone());
    }
    for (name, text) in CONFIG_SEEDS {
        add("config_toml", name, text.as_bytes().to_vec());
    }
    add("key_text", "two-keys", {
        let ks = ring.keys();
        format!("# cluster keys\n{}\n{}\n", ks[0].encode(), ks[1].encode()).into_bytes()
    });
    add("key_text", "p2pd-secret", {
        let ks = ring.keys();
        format!("{},{}", ks[0].encode(), ks[1].encode()).into_bytes()
    });
    add("key_text", "short", b"c2hvcnQ=\n".to_vec());
    for (name, text) in WC_SEEDS {
        add("wc_bytes", name, text.to_vec());
    }
    for (name, bytes) in cert_seeds() {
        add("certificate", name, bytes);
    }
    for (name, bytes) in revocation_seeds() {
        add("revocation_list", name, bytes);
    }
    add(
        "wc_bytes",
        "binary",
        (0..=255u8).chain((0..=255u8).rev()).collect(),
    );
    add(
        "sha256sum_lines",
        "sha256sum-file",
        [b"\0", SHA256SUM_SEED].concat(),
    );
    add(
        "sha256sum_lines",
        "gnu-forms",
        [b"\0", SHA256SUM_FORMS].concat(),
    );
    add(
        "sha256sum_lines",
        "bsd-reversed",
        [b"\x01", SHA256SUM_REVERSED].concat(),
    );
    for (i, name) in QUOTE_SEEDS.iter().enumerate() {
        add("gnu_quote", &format!("{i:02}"), name.to_vec());
    }
    for (i, path) in EXPORT_SEEDS.iter().enumerate() {
        add("export_paths", &format!("{i:02}"), path.as_bytes().to_vec());
    }
    out
}

fn line<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec(value).expect("encodes");
    v.push(b'\n');
    v
}

/// Certificates of the test CA and of another, as bytes and as text.
fn cert_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let ca = test_ca();
    let other = CaSecret::from_seed(&[0x11; 32]);
    let beta = test_cert(&ca, "beta", 2);
    let mut no_groups = beta.body().clone();
    no_groups.groups.clear();
    no_groups.name = "web01.example.com".into();
    let bare = ca.issue(no_groups).expect("a good body");
    vec![
        ("bytes", [&[0u8][..], &beta.to_bytes()].concat()),
        ("text", [b"t", beta.encode().as_bytes()].concat()),
        ("no-groups", [&[0u8][..], &bare.to_bytes()].concat()),
        (
            "other-ca",
            [&[0u8][..], &test_cert(&other, "beta", 2).to_bytes()].concat(),
        ),
    ]
}

/// Revocation lists and news: the test CA's (newer than the held one,
/// older, the same), another CA's, with and without certificates.
fn revocation_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use p2p::revocation::Revocation;
    let ca = test_ca();
    let other = CaSecret::from_seed(&[0x11; 32]);
    let list = |ca: &CaSecret, issued: i64, serials: Vec<u64>| {
        Revocations::issue(ca, issued, serials).expect("a list")
    };
    let news = |ca: &CaSecret, issued: i64, serials: Vec<u64>, certs: &[Cert]| {
        let mut r = Revocation::new(ca.public());
        r.install(list(ca, issued, serials)).expect("the CA's");
        for c in certs {
            r.learn(c).expect("the CA's");
        }
        [&[2u8][..], &r.news(usize::MAX).expect("news")].concat()
    };
    let beta = test_cert(&ca, "beta", 2);
    let gamma = test_cert(&ca, "gamma", 3);
    vec![
        (
            "bytes",
            [&[0u8][..], &list(&ca, 2000, vec![2, 3, 9]).to_bytes()].concat(),
        ),
        (
            "empty",
            [&[0u8][..], &list(&ca, 2000, vec![]).to_bytes()].concat(),
        ),
        (
            "text",
            [b"", list(&ca, 2000, vec![7]).encode().as_bytes()].concat(),
        ),
        (
            "news-newer",
            news(&ca, 2000, vec![2, 3], &[beta.clone(), gamma.clone()]),
        ),
        (
            "news-same",
            news(&ca, 1000, vec![2], std::slice::from_ref(&beta)),
        ),
        ("news-older", news(&ca, 10, vec![3], &[gamma])),
        ("news-lifted", news(&ca, 3000, vec![], &[])),
        (
            "news-other-ca",
            news(&other, 4000, vec![2], &[test_cert(&other, "alpha", 2)]),
        ),
    ]
}

fn local_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use p2p::error::{Error, ErrorCode};
    use p2p::proto::{Outcome, Query, QueryKind, Target};
    // Knob bytes: the daemon's MAX_LINE, whole writes; with one descriptor
    // passed; with six (too many); a 16-byte limit and 7-byte writes.
    const WHOLE: u8 = 0b000_1111;
    const ONE_FD: u8 = 0b011_1111;
    const SIX_FDS: u8 = 0b101_1111;
    const SHORT: u8 = 0b000_0100;
    let query = |kind, paths: Option<Vec<String>>, target| {
        Request::Query(Query {
            kind,
            lines_only: false,
            bytes_only: false,
            max_line_length: false,
            recursive: kind == QueryKind::Count,
            dereference: false,
            posixly_correct: false,
            cwd: Some("/home/u".into()),
            paths: paths.map(|list| list.into_iter().map(Into::into).collect()),
            target,
        })
    };
    let with = |knob: u8, lines: Vec<Vec<u8>>| {
        let mut v = vec![knob];
        lines.into_iter().for_each(|l| v.extend(l));
        v
    };
    let item = |id, path: &str, fd| {
        line(&ItemRequest {
            id,
            path: path.into(),
            fd,
            own: fd,
            counted: None,
        })
    };
    let end = line(&End { end: true });
    let all = Target {
        all: true,
        tags: [("role".to_string(), "db".to_string())].into(),
        timeout_ms: Some(5000),
        ..Default::default()
    };
    let peers = Target {
        peers: vec!["n1".into(), "10.0.0.2:65432".into()],
        spread: true,
        ..Default::default()
    };
    vec![
        ("hello", with(WHOLE, vec![line(&Request::Hello)])),
        (
            "inline-query",
            with(
                WHOLE,
                vec![line(&query(
                    QueryKind::Wc,
                    Some(vec!["/etc/hosts".into(), "rel/a b".into()]),
                    None,
                ))],
            ),
        ),
        (
            "streamed-query",
            with(
                ONE_FD,
                vec![
                    line(&query(QueryKind::Sha256, None, None)),
                    item(0, "a.txt", true),
                    item(1, "/srv/b", false),
                    end.clone(),
                ],
            ),
        ),
        (
            "cluster-query",
            with(
                WHOLE,
                vec![
                    line(&query(QueryKind::Count, None, Some(all))),
                    item(0, "/srv", false),
                    end.clone(),
                ],
            ),
        ),
        (
            "spread-query",
            with(
                WHOLE,
                vec![
                    line(&query(QueryKind::Stat, None, Some(peers))),
                    item(7, "x\ny\"z\\", false),
                    end,
                ],
            ),
        ),
        (
            "peers-join-leave",
            with(
                WHOLE,
                vec![
                    line(&Request::Peers { watch: true }),
                    line(&Request::Join {
                        addrs: vec!["10.0.0.5:65432".into()],
                    }),
                    line(&Request::Leave),
                ],
            ),
        ),
        (
            "replies",
            with(
                WHOLE,
                vec![
                    line(&Accepted {
                        accepted: true,
                        peer: "n0".into(),
                    }),
                    line(&Item {
                        id: Some(0),
                        peer: "n0".into(),
                        path: "a".into(),
                        outcome: Outcome::Ok(WcFields {
                            lines: Some(1),
                            words: Some(2),
                            bytes: Some(3),
                            chars: Some(3),
                            max_line_length: None,
                            changed: false,
                        }),
                    }),
                    line(&Item::<ShaFields> {
                        id: Some(1),
                        peer: "n0".into(),
                        path: "b".into(),
                        outcome: Outcome::Failed {
                            error: Error::new(ErrorCode::NotFound, "gone"),
                        },
                    }),
                    line(&Summary {
                        done: true,
                        ok: 1,
                        failed: 1,
                    }),
                ],
            ),
        ),
        (
            "too-many-descriptors",
            with(
                SIX_FDS,
                vec![line(&query(QueryKind::Wc, None, None)), item(0, "a", true)],
            ),
        ),
        (
            "overlong-line",
            with(
                SHORT,
                vec![b"{\"op\":\"hello\"}\n".to_vec(), vec![b'x'; 40]],
            ),
        ),
    ]
}

fn frame_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use p2p::error::{Error, ErrorCode};
    use p2p::proto::QueryKind;
    use p2p::proto::peer::{PeerItem, PeerResult};
    let mut tagged = sim_node(1);
    tagged.tags.insert("role".into(), "db".into());
    let fields = |v: serde_json::Value| match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("an object"),
    };
    vec![
        (
            "join",
            peer::encode(&PeerRequest::Join {
                node: tagged.clone(),
            }),
        ),
        (
            "query",
            peer::encode(&PeerRequest::Query {
                kind: QueryKind::Wc,
                lines_only: true,
                max_line_length: false,
                recursive: false,
                dereference: false,
                posixly_correct: false,
                ranges: false,
            }),
        ),
        (
            "items",
            peer::encode(&PeerRequest::Items {
                items: vec![
                    PeerItem {
                        id: 1,
                        path: "/srv/a".into(),
                        range: None,
                    },
                    PeerItem {
                        id: 2,
                        path: "/srv/../etc/passwd".into(),
                        range: None,
                    },
                ],
            }),
        ),
        ("end", peer::encode(&PeerRequest::End {})),
        (
            "accepted",
            peer::encode(&PeerReply::Accepted {
                peer: "n1".into(),
                workers: 2,
            }),
        ),
        (
            "results",
            peer::encode(&PeerReply::Results {
                results: vec![
                    PeerResult {
                        id: 1,
                        fields: fields(serde_json::json!({"lines": 3, "bytes": 9})),
                    },
                    PeerResult {
                        id: 2,
                        fields: fields(
                            serde_json::json!({"error": {"code": "not_found", "message": "gone"}}),
                        ),
                    },
                ],
            }),
        ),
        ("working", peer::encode(&PeerReply::Working)),
        ("done", peer::encode(&PeerReply::Done)),
        (
            "failed",
            peer::encode(&PeerReply::Failed {
                error: Error::new(ErrorCode::InvalidRequest, "items or end without a query"),
            }),
        ),
        (
            "join-reply",
            peer::encode(&JoinReply {
                members: vec![sim_node(0), tagged],
                error: None,
                revoked: None,
                retry: false,
            }),
        ),
    ]
}

/// A session script op that sends `frame` properly (`frame` of at most
/// 255 bytes).
fn script_frame(frame: &[u8]) -> Vec<u8> {
    let len = frame.len();
    let mut v = vec![0, len as u8, (len >> 8) as u8, (len >> 16) as u8, len as u8];
    v.extend_from_slice(frame);
    v
}

fn session_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let ring = test_ring();
    let mut buf = vec![0u8; 1024];
    let n = noise_initiator(ring.primary())
        .write_message(&[], &mut buf)
        .expect("first message");
    let mut genuine = vec![0];
    genuine.extend(with_length(&buf[..n]));
    genuine.extend([0, 20]);
    genuine.extend([0xab; 20]);

    let script = |mode: u8, max: u8, ops: Vec<Vec<u8>>| {
        let mut v = vec![mode, max];
        ops.into_iter().for_each(|op| v.extend(op));
        v
    };
    let frames: Vec<Vec<u8>> = frame_seeds()
        .into_iter()
        .filter(|(_, f)| f.len() <= 255)
        .map(|(_, f)| script_frame(&f))
        .collect();
    let sealed = |plain: &[u8]| {
        let mut v = vec![1, plain.len() as u8, (plain.len() >> 8) as u8];
        v.extend_from_slice(plain);
        v
    };
    vec![
        ("handshake-genuine", genuine),
        ("handshake-garbage", {
            let mut v = vec![0, 0, 48];
            v.extend([0xab; 48]);
            v
        }),
        ("handshake-oversized", vec![0, 0x10, 0x00, 1, 2, 3]),
        ("answer-garbage", {
            let mut v = vec![1, 0, 48];
            v.extend([0xcd; 48]);
            v
        }),
        ("frames", script(2, 7, frames)),
        (
            "frames-second-key",
            script(6, 7, vec![script_frame(b"{\"op\":\"end\"}")]),
        ),
        (
            "frame-of-two-messages",
            // 70,000 bytes of "ab", then an empty frame.
            script(
                2,
                7,
                vec![vec![0, 0x70, 0x11, 0x01, 2, b'a', b'b'], script_frame(b"")],
            ),
        ),
        (
            "frame-over-limit",
            script(
                2,
                3,
                vec![script_frame(b"0123456789"), script_frame(&[b'y'; 101])],
            ),
        ),
        (
            "header-lies",
            script(
                2,
                7,
                vec![sealed(&[0, 0, 0, 10, b'a', b'b', b'c']), sealed(&[0, 0])],
            ),
        ),
        (
            "replay-skip-flip",
            script(
                2,
                7,
                vec![
                    script_frame(b"one"),
                    vec![3, 0],
                    script_frame(b"two"),
                    vec![3, 1],
                    script_frame(b"three"),
                    vec![3, 2, 9],
                ],
            ),
        ),
        (
            "raw-junk",
            script(
                2,
                7,
                vec![script_frame(b"ok"), vec![2, 4, 0xff, 0xff, 0, 1]],
            ),
        ),
    ]
}

/// What follows a first handshake message: nothing, a proof sealed under
/// another handshake (as a replay would carry), garbage of a proof's size,
/// an oversized one.
fn proof_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let ring = test_ring();
    // A whole genuine session's proof, replayed after a new first message.
    let mut hs = noise_initiator(ring.primary());
    let mut buf = vec![0u8; 1024];
    let n = hs.write_message(&[], &mut buf).expect("first message");
    let pipe = Pipe::with_input(&with_length(&buf[..n]));
    let _ = session::accept(pipe.clone(), &ring);
    let reply = pipe.take_output();
    hs.read_message(reply.get(2..).unwrap_or_default(), &mut buf)
        .expect("answer");
    let noise = hs.into_stateless_transport_mode().expect("transport");
    let n = noise.write_message(0, &[], &mut buf).expect("proof");
    let mut old_proof = vec![0];
    old_proof.extend(with_length(&buf[..n]));
    vec![
        ("nothing", vec![0]),
        ("old-proof", old_proof),
        ("second-key-garbage", {
            let mut v = vec![1, 0, 16];
            v.extend([0xab; 16]);
            v
        }),
        ("oversized", vec![0, 0xff, 0xff, 1, 2, 3]),
    ]
}

/// Scripts for `replay_window` (4 bytes an op; see there).
const REPLAY_SEEDS: &[(&str, &[u8])] = &[
    // In order, then each again.
    (
        "in-order-then-again",
        &[
            0x80, 1, 0, 0, 0x80, 1, 0, 0, 0x80, 1, 0, 0, 0x9c, 0, 0, 0, 0x9c, 1, 0, 0, 0x9c, 2, 0,
            0,
        ],
    ),
    // Forward a lot, back within and below the window, two senders.
    (
        "reorder",
        &[
            0x80, 0xe8, 3, 0, 0x90, 100, 0, 0, 0x90, 0, 8, 0, 0x81, 5, 0, 0, 0x91, 5, 0, 0, 0x80,
            1, 0, 0,
        ],
    ),
    // A jump of 2^40, then what came before.
    ("jump", &[0x80, 1, 0, 0, 0x8c, 1, 0, 0, 0x9c, 0, 0, 0]),
    // New epoch, old epoch, replay from before the restart.
    (
        "epochs",
        &[
            0x80, 3, 0, 0, 0x94, 1, 7, 0, 0x98, 0, 0, 0, 0x9c, 0, 0, 0, 0x18, 2, 0, 0,
        ],
    ),
    // A table of two, four senders.
    (
        "small-table",
        &[
            0xa0, 1, 0, 0, 0x81, 1, 0, 0, 0x82, 1, 0, 0, 0x83, 1, 0, 0, 0x9c, 0, 0, 0, 0x9c, 1, 0,
            0, 0x9c, 3, 0, 0,
        ],
    ),
];

/// Membership traffic of a simulated five-node cluster, as node 0 sees it.
struct Traffic {
    /// Whole scripts for `membership_payload`, by seed name.
    scripts: Vec<(&'static str, Vec<u8>)>,
    /// Every payload node 0 received.
    payloads: Vec<Vec<u8>>,
    /// The leave notice of a node that leaves gracefully.
    leave_notice: Vec<u8>,
}

/// Runs nodes 0 to 4 in memory in 10 ms steps (1 to 4 join through 0; at
/// 3 s node 4 crashes; at 8 s node 3 leaves) and records node 0's inputs
/// as a script, which replays exactly: node 0 of `membership_payload` has
/// the same identity and random seed.
fn simulated_traffic() -> Traffic {
    let start = Instant::now();
    let mut now = start;
    let mut nodes: Vec<Option<Membership>> = (0..5)
        .map(|i| {
            Some(Membership::new(
                sim_node(i),
                &Timings::default(),
                [i as u8; 32],
            ))
        })
        .collect();
    for n in nodes.iter_mut().skip(1).flatten() {
        n.announce(sim_node(0), now);
    }
    let mut script = Vec::new();
    let mut cuts = Vec::new();
    let mut payloads = Vec::new();
    let mut leave_notice = Vec::new();
    for tick in 1..=1000 {
        now += Duration::from_millis(10);
        script.extend([OP_TIME, 1]);
        for n in nodes.iter_mut().flatten() {
            n.handle_timers(now);
        }
        if tick == 300 {
            nodes[4] = None;
        }
        if tick == 800 {
            if let Some(n) = nodes[3].as_mut() {
                n.leave(now);
            }
        }
        loop {
            let mut mail = Vec::new();
            for n in nodes.iter_mut().flatten() {
                mail.extend(n.take_outbox());
            }
            if mail.is_empty() {
                break;
            }
            for (to, payload) in mail {
                let i = usize::from(to.port() - 20000);
                if i == 0 {
                    script.push(0);
                    script.extend((payload.len() as u16).to_le_bytes());
                    script.extend_from_slice(&payload);
                    if payload.first() == Some(&1) {
                        leave_notice = payload.clone();
                    }
                    payloads.push(payload.clone());
                }
                if let Some(n) = nodes[i].as_mut() {
                    n.handle_payload(&payload, now);
                }
            }
        }
        if tick == 100 || tick == 300 || tick == 1000 {
            cuts.push(script.len());
        }
        if tick == 800 {
            nodes[3] = None;
        }
    }
    let alive = serde_json::to_vec(&[sim_node(1), sim_node(2)]).expect("encodes");
    let mut learned = vec![OP_ALIVE];
    learned.extend((alive.len() as u16).to_le_bytes());
    learned.extend(alive);
    learned.extend([
        OP_TIME, 100, OP_CHANGES, OP_TIME, 255, OP_LEAVE, OP_TIME, 10,
    ]);
    Traffic {
        scripts: vec![
            ("join-1s", script[..cuts[0]].to_vec()),
            ("join-3s", script[..cuts[1]].to_vec()),
            ("crash-and-leave-10s", script.clone()),
            ("learned-over-tcp", learned),
        ],
        payloads,
        leave_notice,
    }
}

const CONFIG_SEEDS: &[(&str, &str)] = &[
    (
        "example",
        "# /etc/p2pd/p2pd.toml\nport = 65432\nbind = \"0.0.0.0\"\n\
         advertise = \"10.0.0.4:65432\"\njoin = [\"10.0.0.5:65432\", \"10.0.0.6:65432\"]\n\
         tag = [\"role=db\", \"dc=west\"]\ngossip-interval = 200\n",
    ),
    (
        "every-key",
        "port = 7000\nseed = \"10.0.0.1:7000\"\njoin = \"10.0.0.2:7000\"\n\
         bind = \"127.0.0.1\"\nadvertise = \"127.0.0.1:7000\"\ntag = \"k=v\"\n\
         secret-file = \"cluster.key\"\nlog-level = \"p2p=debug,warn\"\n\
         export = [\"/srv\", \"data\"]\ngossip-interval = 0x10\nprobe-interval = 1_000\n\
         suspicion-timeout = 2000\nsocket = \"/run/p2p/p2pd.sock\"\nname = \"n\u{e9}\"\n\
         workers = 4\ncache-entries = 0\nstate-dir = \"state\"\n",
    ),
    (
        "errors",
        "port = 70000\ngossip-intervall = 5\nbind = [\"a\"]\nworkers = \"x\"\n",
    ),
    ("syntax", "[table]\nkey = \"unterminated\n"),
];

const WC_SEEDS: &[(&str, &[u8])] = &[
    (
        "prose",
        b"The quick brown fox jumps over the lazy dog.\n\tTabs,  spaces\r\nand\x0bvertical\x0cfeeds.\n",
    ),
    (
        "unicode",
        "na\u{ef}ve caf\u{e9} \u{6771}\u{4eac} \u{1f642} \u{d55c}\u{3000}x\u{a0}y \u{2003}z \
         \u{85}\u{2028} \u{201c}q\u{201d}\u{2014}\n"
            .as_bytes(),
    ),
    (
        "invalid",
        b"a\xffb \xe2\x82 \xed\xa0\x80 \xc0\xaf \xf0\x80\x80\x80 \xf4\x90\x80\x80\n",
    ),
    (
        "long-forms",
        b"\xf7\xbf\xbf\xbf \xf8\x88\x80\x80\x80 \xfc\x84\x80\x80\x80\x80 \xf8\x87\xbf\xbf\xbf\n",
    ),
];

const EXPORT_SEEDS: &[&str] = &[
    "root/f",
    "root/a/b/g",
    "root/./a//b/.",
    "root/a/b/",
    "alias/a/in",
    "root/abs",
    "root/rel",
    "root/absdir/secret",
    "root/up/outside/secret",
    "root/a/../../outside/secret",
    "root/loop",
    "root/magic/passwd",
    "root/fifo",
    "outside/secret",
    "/proc/self/root/etc/passwd",
    "root",
];

/// Every form GNU's check accepts, and some it refuses.
const SHA256SUM_FORMS: &[u8] = b"# a comment\n\
SHA256 (bsd) = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
SHA256(openssl)= e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
 \t\\SHA256 (a\\nb (c) = d) = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n\
47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=  base64\n\
SHA256 (b64) = 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  \xff\xfe not utf-8\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  -\n\
SHA256 () = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
MD5 (f) = d41d8cd98f00b204e9800998ecf8427e\n\
\\e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  bad\\escape\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\0 nul\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// BSD's one-space form, which then holds for the lines after it.
const SHA256SUM_REVERSED: &[u8] =
    b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 a\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  b\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 *c\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  \n";

/// Names with every kind of trouble for `quote`.
const QUOTE_SEEDS: &[&[u8]] = &[
    b"plain.txt",
    b"",
    b"a b:c",
    b"it's",
    b"it's $HOME",
    b"'\n'",
    b"\na\x01b\x7f",
    b"caf\xc3\xa9 \xc2\x85 \xff\xe2\x82",
    b"#~{}",
    b"{",
    b"back\\slash",
];

const SHA256SUM_SEED: &[u8] =
    b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  empty\n\
9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08 *bin/test\n\
\\e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a\\nb\\\\c\\rd\n\
not a digest line\n\
\n";

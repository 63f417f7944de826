//! The encrypted TCP session between daemons.
//!
//! A Noise `NNpsk0` handshake (`Noise_NNpsk0_25519_ChaChaPoly_SHA256`, through
//! `snow`) with a subkey of the cluster key as the pre-shared key: both ends
//! prove they hold the key without sending it, and fresh ephemeral keys give
//! forward secrecy. The responder tries each key of its ring on the first
//! message, whose authentication tag tells whether the key matches.
//!
//! The first handshake message proves nothing by itself: anyone who captured
//! one can send it again, and the responder cannot tell the copy from the
//! original. So the initiator follows the handshake at once with a proof, an
//! empty transport message (its nonce 0), which only the holder of the key
//! and of the ephemeral key behind that first message can seal; [`accept`]
//! returns a session only once the proof has opened. A replayed first
//! message gets the handshake answer and nothing more: the caller's deadline
//! for the handshake ends it.
//!
//! Certified members ([`connect_as`], [`accept_as`] with an [`Identity`]) run
//! `Noise_XXpsk0_25519_ChaChaPoly_SHA256` instead: the pre-shared key still
//! opens the first message (so the key ring is tried as above), the
//! responder's static key and certificate ride in the second, the
//! initiator's in the third, each encrypted. Each end checks the other's
//! certificate against its CA, the clock, and the static key the handshake
//! proved; [`Session::peer`] then names the peer.
//!
//! During a move to certificates, a certified responder that accepts
//! uncertified peers ([`Identity::accept_uncertified`]) tries the `NNpsk0`
//! pattern after its own, and a responder without a CA tells a certified
//! initiator holding the key ([`SessionError::Uncertified`]) from a stranger;
//! the initiator then meets it on a second connection without a certificate.
//!
//! After the handshake, an application frame of up to a caller-given size is
//! sent as one or more Noise messages, each on the wire as a 2-byte
//! big-endian length and the ciphertext; the first message's plaintext starts
//! with the frame's 4-byte big-endian length. Noise's per-message nonces make
//! every tampered, truncated, replayed or reordered message fail; after any
//! failure the session is unusable.

use super::cert::{CaPublic, Cert, CertBody, CertError, NodeSecret};
use super::derive;
use super::keys::KeyRing;
use snow::{HandshakeState, StatelessTransportState};
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

const PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";
/// v2: the initiator's proof follows the handshake (v1 had none).
const PROLOGUE: &[u8] = b"p2p session v2";
/// With certificates: both static keys travel, encrypted, and each end's
/// certificate rides in the payload of the message that carries its key.
const CERTIFIED_PATTERN: &str = "Noise_XXpsk0_25519_ChaChaPoly_SHA256";
const CERTIFIED_PROLOGUE: &[u8] = b"p2p certified session v1";
/// Handshake messages are small; a certificate is at most about 2.3 KiB.
const MAX_HANDSHAKE: usize = 4096;

/// What a certified member shows and checks: the CA it trusts, its own
/// certificate, and the secret key the certificate is for.
pub struct Identity {
    pub ca: CaPublic,
    pub cert: Cert,
    pub key: NodeSecret,
    /// During a move to certificates: peers that hold only the cluster key
    /// are still accepted (as uncertified sessions, [`Session::peer`]
    /// `None`), and a peer that cannot run a certified session is met in
    /// an uncertified one.
    pub accept_uncertified: bool,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.cert.body();
        write!(f, "Identity({} serial {:016x})", b.name, b.serial)
    }
}

impl Identity {
    /// Puts the three together, refusing a certificate that is not for
    /// `key`, or that `ca` did not sign, or that is not valid at `now`.
    pub fn new(ca: CaPublic, cert: Cert, key: NodeSecret, now: i64) -> Result<Identity, CertError> {
        cert.verify_peer(&ca, now, &key.public().x25519)?;
        if cert.body().key.ed25519 != key.public().ed25519 {
            return Err(CertError::WrongKey);
        }
        Ok(Identity {
            ca,
            cert,
            key,
            accept_uncertified: false,
        })
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}
const MAX_WIRE: usize = 65535;
const TAG: usize = 16;
/// Plaintext carried by one Noise message.
const PIECE: usize = MAX_WIRE - TAG;

/// Why a session failed.
#[derive(Debug)]
pub enum SessionError {
    /// The other end does not hold any of our keys.
    Unauthorized,
    /// Malformed, tampered, replayed or out-of-order data.
    Protocol(String),
    /// A frame announced more than the caller allows.
    FrameTooLarge(u64),
    /// The peer holds the key but its certificate was refused.
    Certificate(CertError),
    /// The peer holds the key and asks for a certified session, but this
    /// member has no CA.
    Uncertified,
    Io(io::Error),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Unauthorized => write!(f, "peer does not hold the cluster key"),
            SessionError::Protocol(m) => write!(f, "protocol error: {m}"),
            SessionError::FrameTooLarge(n) => write!(f, "frame of {n} bytes is over the limit"),
            SessionError::Certificate(e) => write!(f, "its certificate was refused: {e}"),
            SessionError::Uncertified => write!(
                f,
                "it holds the cluster key and shows a certificate, but this member has no CA \
                 (--ca) to check it with"
            ),
            SessionError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<io::Error> for SessionError {
    fn from(e: io::Error) -> Self {
        SessionError::Io(e)
    }
}

fn protocol(e: impl fmt::Display) -> SessionError {
    SessionError::Protocol(e.to_string())
}

fn handshake(
    psk: &[u8; 32],
    initiator: bool,
    me: Option<&Identity>,
) -> Result<HandshakeState, SessionError> {
    let (pattern, prologue) = match me {
        Some(_) => (CERTIFIED_PATTERN, CERTIFIED_PROLOGUE),
        None => (PATTERN, PROLOGUE),
    };
    let params = pattern.parse().map_err(protocol)?;
    let mut b = snow::Builder::new(params)
        .psk(0, psk)
        .map_err(protocol)?
        .prologue(prologue)
        .map_err(protocol)?;
    if let Some(id) = me {
        b = b.local_private_key(id.key.x25519()).map_err(protocol)?;
    }
    if initiator {
        b.build_initiator().map_err(protocol)
    } else {
        b.build_responder().map_err(protocol)
    }
}

fn psk_of(key: &super::keys::Key) -> zeroize::Zeroizing<[u8; 32]> {
    derive(key.bytes(), b"p2p noise psk v1")
}

fn write_msg<S: Write>(stream: &mut S, msg: &[u8]) -> io::Result<()> {
    let mut wire = Vec::with_capacity(2 + msg.len());
    wire.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    wire.extend_from_slice(msg);
    stream.write_all(&wire)
}

fn read_msg<S: Read>(stream: &mut S, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    buf.resize(u16::from_be_bytes(len) as usize, 0);
    stream.read_exact(buf)
}

/// An established session over a stream.
pub struct Session<S> {
    stream: S,
    sealer: Sealer,
    opener: Opener,
    peer: Option<Arc<Cert>>,
}

/// The sending direction: our nonce counter and the cipher. Nonces are kept
/// here rather than in snow so that the two directions can live on two
/// threads (see [`Session::split`]).
struct Sealer {
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    broken: bool,
    /// The wire bytes of the last write, kept for the next one: a bulk
    /// transfer then allocates nothing per frame.
    wire: Vec<u8>,
}

/// The receiving direction; a message opens only under the next nonce, so a
/// replayed, dropped or reordered message fails.
struct Opener {
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    broken: bool,
    /// Bytes read from the stream ahead of the message being opened: one
    /// read takes in as many small messages as have arrived, instead of
    /// two reads for each.
    ahead: ReadAhead,
    /// The last message read, kept for the next one.
    msg: Vec<u8>,
}

/// What one read took in beyond the message it was for.
#[derive(Default)]
struct ReadAhead {
    /// [`READ_AHEAD`] bytes once the first read has been made; filled up
    /// to `end`, taken up to `at`.
    buf: Vec<u8>,
    at: usize,
    end: usize,
}

/// How much one read may take in ahead: a few small frames (a session
/// kept for every member holds this much each).
const READ_AHEAD: usize = 4 << 10;

impl ReadAhead {
    /// Fills `out` from what is ahead, then from the stream: small reads
    /// go through the buffer, large ones straight into `out`.
    fn read_exact<R: Read>(&mut self, stream: &mut R, out: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < out.len() {
            if self.at < self.end {
                let n = (self.end - self.at).min(out.len() - done);
                out[done..done + n].copy_from_slice(&self.buf[self.at..self.at + n]);
                self.at += n;
                done += n;
                continue;
            }
            let direct = out.len() - done >= READ_AHEAD;
            if self.buf.is_empty() && !direct {
                self.buf = vec![0; READ_AHEAD];
            }
            let into = if direct {
                &mut out[done..]
            } else {
                (self.at, self.end) = (0, 0);
                &mut self.buf[..]
            };
            match stream.read(into) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) if direct => done += n,
                Ok(n) => self.end = n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A message: its two length bytes, then that many.
    fn read_msg<R: Read>(&mut self, stream: &mut R, msg: &mut Vec<u8>) -> io::Result<()> {
        let mut len = [0u8; 2];
        self.read_exact(stream, &mut len)?;
        msg.resize(u16::from_be_bytes(len) as usize, 0);
        self.read_exact(stream, msg)
    }
}

/// snow keeps a copy of the pre-shared key and never wipes it; once the
/// handshake has used it, overwrite it.
fn forget_psk(hs: &mut HandshakeState) {
    let _ = hs.set_psk(0, &[0; 32]);
}

fn established<S>(
    stream: S,
    mut hs: HandshakeState,
    peer: Option<Cert>,
) -> Result<Session<S>, SessionError> {
    forget_psk(&mut hs);
    let transport = Arc::new(hs.into_stateless_transport_mode().map_err(protocol)?);
    Ok(Session {
        peer: peer.map(Arc::new),
        stream,
        sealer: Sealer {
            transport: Arc::clone(&transport),
            nonce: 0,
            broken: false,
            wire: Vec::new(),
        },
        opener: Opener {
            transport,
            nonce: 0,
            broken: false,
            ahead: ReadAhead::default(),
            msg: Vec::new(),
        },
    })
}

/// Opens a session as the initiator, with the ring's primary key, and sends
/// the proof that makes the responder count it.
pub fn connect<S: Read + Write>(stream: S, ring: &KeyRing) -> Result<Session<S>, SessionError> {
    connect_as(stream, ring, None)
}

/// Reads one handshake message and opens it; the payload goes to `payload`.
fn read_handshake<S: Read>(
    stream: &mut S,
    hs: &mut HandshakeState,
    payload: &mut Vec<u8>,
) -> Result<(), SessionError> {
    let mut msg = Vec::new();
    read_msg(stream, &mut msg)?;
    if msg.len() > MAX_HANDSHAKE {
        return Err(SessionError::Protocol("oversized handshake".into()));
    }
    payload.resize(MAX_HANDSHAKE, 0);
    let n = hs
        .read_message(&msg, payload)
        .map_err(|_| SessionError::Unauthorized)?;
    payload.truncate(n);
    Ok(())
}

fn write_handshake<S: Write>(
    stream: &mut S,
    hs: &mut HandshakeState,
    payload: &[u8],
) -> Result<(), SessionError> {
    let mut buf = vec![0u8; MAX_HANDSHAKE];
    let n = hs.write_message(payload, &mut buf).map_err(protocol)?;
    write_msg(stream, &buf[..n])?;
    Ok(())
}

/// The peer's certificate from a handshake payload, checked against our CA,
/// the clock and the static key the peer has just proven it holds.
fn peer_cert(me: &Identity, hs: &HandshakeState, payload: &[u8]) -> Result<Cert, SessionError> {
    let Some(key) = hs.get_remote_static() else {
        return Err(SessionError::Protocol(
            "no static key in the handshake".into(),
        ));
    };
    let cert = Cert::from_bytes(payload).map_err(SessionError::Certificate)?;
    cert.verify_peer(&me.ca, now(), key)
        .map_err(SessionError::Certificate)?;
    Ok(cert)
}

/// [`connect`], as the certified member `me` when given: the responder's
/// certificate is then checked (see [`Session::peer`]) and ours sent.
pub fn connect_as<S: Read + Write>(
    mut stream: S,
    ring: &KeyRing,
    me: Option<&Identity>,
) -> Result<Session<S>, SessionError> {
    let mut hs = handshake(&psk_of(ring.primary()), true, me)?;
    write_handshake(&mut stream, &mut hs, &[])?;
    let mut payload = Vec::new();
    read_handshake(&mut stream, &mut hs, &mut payload)?;
    let peer = match me {
        Some(id) => {
            let peer = peer_cert(id, &hs, &payload)?;
            write_handshake(&mut stream, &mut hs, &id.cert.to_bytes())?;
            Some(peer)
        }
        None => None,
    };
    let mut s = established(stream, hs, peer)?;
    s.sealer.prove(&mut s.stream)?;
    Ok(s)
}

/// Accepts a session as the responder, with whichever key of the ring the
/// initiator used. Returns only once the initiator's proof has arrived: a
/// replayed first message never yields a session (give `stream` a deadline,
/// or a replay waits for a proof that never comes).
pub fn accept<S: Read + Write>(stream: S, ring: &KeyRing) -> Result<Session<S>, SessionError> {
    accept_as(stream, ring, None)
}

/// [`accept`], as the certified member `me` when given: the initiator must
/// then show a certificate of our CA for the static key it proves it holds.
pub fn accept_as<S: Read + Write>(
    mut stream: S,
    ring: &KeyRing,
    me: Option<&Identity>,
) -> Result<Session<S>, SessionError> {
    let mut msg = Vec::new();
    read_msg(&mut stream, &mut msg)?;
    if msg.len() > MAX_HANDSHAKE {
        return Err(SessionError::Protocol("oversized handshake".into()));
    }
    let mut buf = vec![0u8; MAX_HANDSHAKE];
    // A certified member tries its own pattern first; one that still
    // accepts uncertified peers then tries theirs.
    let mut chosen = opened_by(ring, &msg, &mut buf, me)?.map(|hs| (hs, me));
    if chosen.is_none() && me.is_some_and(|id| id.accept_uncertified) {
        chosen = opened_by(ring, &msg, &mut buf, None)?.map(|hs| (hs, None));
    }
    let Some((mut hs, as_whom)) = chosen else {
        // An empty message says "not your cluster" and nothing more: the
        // initiator learns that we hold another key, not which.
        let _ = write_msg(&mut stream, &[]);
        // Without a CA: a certified member holding our key says so in
        // its first message, and is told apart for the log.
        if me.is_none() && opened_by(ring, &msg, &mut buf, Some(stand_in()?))?.is_some() {
            return Err(SessionError::Uncertified);
        }
        return Err(SessionError::Unauthorized);
    };
    let peer = match as_whom {
        Some(id) => {
            write_handshake(&mut stream, &mut hs, &id.cert.to_bytes())?;
            let mut payload = Vec::new();
            read_handshake(&mut stream, &mut hs, &mut payload)?;
            Some(peer_cert(id, &hs, &payload)?)
        }
        None => {
            write_handshake(&mut stream, &mut hs, &[])?;
            None
        }
    };
    let mut s = established(stream, hs, peer)?;
    s.opener.proof(&mut s.stream)?;
    Ok(s)
}

/// The responder's handshake, for the pattern of `me`, whose key of the
/// ring opens the initiator's first message `msg`, if any.
fn opened_by(
    ring: &KeyRing,
    msg: &[u8],
    buf: &mut [u8],
    me: Option<&Identity>,
) -> Result<Option<HandshakeState>, SessionError> {
    for key in ring.keys() {
        let mut hs = handshake(&psk_of(key), false, me)?;
        if hs.read_message(msg, buf).is_ok() {
            return Ok(Some(hs));
        }
        forget_psk(&mut hs);
    }
    Ok(None)
}

/// An identity to read a certified first message with, by a member that has
/// none: that message uses only the pre-shared and ephemeral keys, so the
/// static key here is never used, and no session is ever made with it.
fn stand_in() -> Result<&'static Identity, SessionError> {
    static STAND_IN: std::sync::OnceLock<Identity> = std::sync::OnceLock::new();
    if let Some(id) = STAND_IN.get() {
        return Ok(id);
    }
    let key = NodeSecret::from_seed(&[0x5a; 64]);
    let ca = super::cert::CaSecret::from_seed(&[0xa5; 32]);
    let cert = ca
        .issue(CertBody {
            serial: 0,
            not_before: 0,
            not_after: i64::MAX,
            key: key.public(),
            name: "stand-in".into(),
            groups: Vec::new(),
        })
        .map_err(SessionError::Certificate)?;
    Ok(STAND_IN.get_or_init(|| Identity {
        ca: ca.public(),
        cert,
        key,
        accept_uncertified: false,
    }))
}

impl Sealer {
    /// Sends the initiator's proof: an empty transport message.
    fn prove<W: Write>(&mut self, stream: &mut W) -> Result<(), SessionError> {
        let mut tag = [0u8; TAG];
        let n = self
            .transport
            .write_message(self.nonce, &[], &mut tag)
            .map_err(protocol)?;
        self.nonce += 1;
        write_msg(stream, &tag[..n])?;
        stream.flush()?;
        Ok(())
    }

    fn send<W: Write>(&mut self, stream: &mut W, frame: &[u8]) -> Result<(), SessionError> {
        self.send_all(stream, &[frame])
    }

    /// Seals the frames in order and writes them with one write.
    fn send_all<W: Write, F: AsRef<[u8]>>(
        &mut self,
        stream: &mut W,
        frames: &[F],
    ) -> Result<(), SessionError> {
        if self.broken {
            return Err(SessionError::Protocol("session already failed".into()));
        }
        let r = self.seal_and_write(stream, frames);
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    fn seal_and_write<W: Write, F: AsRef<[u8]>>(
        &mut self,
        stream: &mut W,
        frames: &[F],
    ) -> Result<(), SessionError> {
        let mut wire = std::mem::take(&mut self.wire);
        wire.clear();
        for frame in frames {
            self.seal_into(frame.as_ref(), &mut wire)?;
        }
        stream.write_all(&wire)?;
        stream.flush()?;
        // A large buffer is kept only while frames that large come.
        if wire.capacity() <= 4 * MAX_WIRE {
            self.wire = wire;
        }
        Ok(())
    }

    /// Appends one sealed frame to `wire`: the 4-byte length, then the
    /// frame, cut into Noise messages. Each piece is sealed straight from
    /// the frame into its place on the wire (the first piece, which also
    /// holds the length, through a small copy).
    fn seal_into(&mut self, frame: &[u8], wire: &mut Vec<u8>) -> Result<(), SessionError> {
        let len = u32::try_from(frame.len())
            .map_err(|_| SessionError::FrameTooLarge(frame.len() as u64))?;
        let total = 4 + frame.len();
        wire.reserve(total + total / PIECE * (2 + TAG) + 2 + TAG);
        let first = frame.len().min(PIECE - 4);
        let mut head = Vec::with_capacity(4 + first);
        head.extend_from_slice(&len.to_be_bytes());
        head.extend_from_slice(&frame[..first]);
        self.seal_piece(&head, wire)?;
        for piece in frame[first..].chunks(PIECE) {
            self.seal_piece(piece, wire)?;
        }
        Ok(())
    }

    /// Appends one Noise message of `piece` to `wire`.
    fn seal_piece(&mut self, piece: &[u8], wire: &mut Vec<u8>) -> Result<(), SessionError> {
        let at = wire.len();
        wire.resize(at + 2 + piece.len() + TAG, 0);
        let n = self
            .transport
            .write_message(self.nonce, piece, &mut wire[at + 2..])
            .map_err(protocol)?;
        self.nonce += 1;
        wire.truncate(at + 2 + n);
        wire[at..at + 2].copy_from_slice(&(n as u16).to_be_bytes());
        Ok(())
    }
}

impl Opener {
    /// Reads and checks the initiator's proof; anything else fails.
    fn proof<R: Read>(&mut self, stream: &mut R) -> Result<(), SessionError> {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len)?;
        if usize::from(u16::from_be_bytes(len)) != TAG {
            return Err(SessionError::Protocol(
                "no proof after the handshake".into(),
            ));
        }
        let mut msg = [0u8; TAG];
        stream.read_exact(&mut msg)?;
        let mut none = [0u8; TAG];
        self.transport
            .read_message(self.nonce, &msg, &mut none)
            .map_err(|_| SessionError::Protocol("the handshake's proof failed".into()))?;
        self.nonce += 1;
        Ok(())
    }

    fn recv<R: Read>(&mut self, stream: &mut R, max: usize) -> Result<Vec<u8>, SessionError> {
        if self.broken {
            return Err(SessionError::Protocol("session already failed".into()));
        }
        let r = self.read_and_open(stream, max);
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    /// Opens one transport message, appending its plaintext to `out`.
    fn open_into(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<(), SessionError> {
        let at = out.len();
        out.resize(at + msg.len(), 0);
        let n = self
            .transport
            .read_message(self.nonce, msg, &mut out[at..])
            .map_err(protocol)?;
        self.nonce += 1;
        out.truncate(at + n);
        Ok(())
    }

    fn read_and_open<R: Read>(
        &mut self,
        stream: &mut R,
        max: usize,
    ) -> Result<Vec<u8>, SessionError> {
        let mut frame = Vec::new();
        self.read_and_open_into(stream, max, &mut frame)?;
        frame.drain(..4);
        Ok(frame)
    }

    /// Opens one frame into `out`, after its 4-byte length (so no piece is
    /// copied twice): `out` is the length and the frame.
    fn read_and_open_into<R: Read>(
        &mut self,
        stream: &mut R,
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), SessionError> {
        let mut msg = std::mem::take(&mut self.msg);
        out.clear();
        self.ahead.read_msg(stream, &mut msg)?;
        self.open_into(&msg, out)?;
        let Some(header) = out.first_chunk::<4>() else {
            return Err(SessionError::Protocol("frame header cut short".into()));
        };
        let total = u32::from_be_bytes(*header) as u64;
        if total > max as u64 {
            return Err(SessionError::FrameTooLarge(total));
        }
        let total = total as usize + 4;
        // Each piece is opened in place at the end of the frame, which
        // briefly needs room for its tag too.
        out.reserve(total + TAG - out.len());
        while out.len() < total {
            self.ahead.read_msg(stream, &mut msg)?;
            self.open_into(&msg, out)?;
        }
        if out.len() != total {
            return Err(SessionError::Protocol("frame longer than announced".into()));
        }
        if msg.capacity() <= MAX_WIRE {
            self.msg = msg;
        }
        Ok(())
    }

    /// [`Opener::recv`] into `out`, reused: the frame is `out[4..]`.
    fn recv_into<R: Read>(
        &mut self,
        stream: &mut R,
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), SessionError> {
        if self.broken {
            return Err(SessionError::Protocol("session already failed".into()));
        }
        let r = self.read_and_open_into(stream, max, out);
        if r.is_err() {
            self.broken = true;
        }
        r
    }
}

impl<S: Read + Write> Session<S> {
    /// Sends one frame.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SessionError> {
        self.sealer.send(&mut self.stream, frame)
    }

    /// Sends several frames in order, with one write: the peer reads them
    /// as if each had been sent alone.
    pub fn send_all<F: AsRef<[u8]>>(&mut self, frames: &[F]) -> Result<(), SessionError> {
        self.sealer.send_all(&mut self.stream, frames)
    }

    /// Receives one frame of at most `max` bytes. After any failure the
    /// session is unusable.
    pub fn recv(&mut self, max: usize) -> Result<Vec<u8>, SessionError> {
        self.opener.recv(&mut self.stream, max)
    }

    /// [`Session::recv`] into a buffer that is reused from frame to frame
    /// (a bulk transfer): returns the frame, which is `buf[4..]`.
    pub fn recv_into<'b>(
        &mut self,
        max: usize,
        buf: &'b mut Vec<u8>,
    ) -> Result<&'b [u8], SessionError> {
        self.opener.recv_into(&mut self.stream, max, buf)?;
        Ok(&buf[4..])
    }

    /// The underlying stream, e.g. to set timeouts.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Whether bytes of the peer's next frame have been read already: it
    /// sent more without waiting for an answer.
    pub fn read_ahead(&self) -> bool {
        self.opener.ahead.at < self.opener.ahead.end
    }

    /// The peer's verified certificate, in a certified session.
    pub fn peer(&self) -> Option<&CertBody> {
        self.peer.as_deref().map(Cert::body)
    }

    /// The whole of the peer's verified certificate, signature included
    /// (to pass on as proof of the name its serial belongs to).
    pub fn peer_certificate(&self) -> Option<&Cert> {
        self.peer.as_deref()
    }

    /// The same session over another handle to the same connection (for
    /// example without a handshake deadline wrapper).
    pub fn map_stream<T>(self, f: impl FnOnce(S) -> T) -> Session<T> {
        Session {
            stream: f(self.stream),
            sealer: self.sealer,
            opener: self.opener,
            peer: self.peer,
        }
    }
}

/// A stream that can be duplicated, so a session can be split in two.
pub trait CloneStream: Sized {
    fn clone_stream(&self) -> io::Result<Self>;
}

impl CloneStream for std::net::TcpStream {
    fn clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
}

impl CloneStream for std::os::unix::net::UnixStream {
    fn clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
}

impl<S: Read + Write + CloneStream> Session<S> {
    /// Splits the session into a sending and a receiving half that may be
    /// used from two threads at once.
    pub fn split(self) -> io::Result<(SessionWriter<S>, SessionReader<S>)> {
        let other = self.stream.clone_stream()?;
        Ok((
            SessionWriter {
                stream: self.stream,
                sealer: self.sealer,
                peer: self.peer,
            },
            SessionReader {
                stream: other,
                opener: self.opener,
            },
        ))
    }
}

/// Puts a split session back together, for the next request on the same
/// connection. The halves must come from one [`Session::split`].
pub fn rejoin<S>(writer: SessionWriter<S>, reader: SessionReader<S>) -> Session<S> {
    Session {
        stream: writer.stream,
        sealer: writer.sealer,
        opener: reader.opener,
        peer: writer.peer,
    }
}

/// The sending half of a split session.
pub struct SessionWriter<S> {
    stream: S,
    sealer: Sealer,
    /// Kept for [`rejoin`].
    peer: Option<Arc<Cert>>,
}

impl<S: Write> SessionWriter<S> {
    /// Sends one frame.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SessionError> {
        self.sealer.send(&mut self.stream, frame)
    }

    /// Sends several frames in order, with one write.
    pub fn send_all<F: AsRef<[u8]>>(&mut self, frames: &[F]) -> Result<(), SessionError> {
        self.sealer.send_all(&mut self.stream, frames)
    }

    pub fn stream(&self) -> &S {
        &self.stream
    }
}

/// The receiving half of a split session.
pub struct SessionReader<S> {
    stream: S,
    opener: Opener,
}

impl<S: Read> SessionReader<S> {
    /// Receives one frame of at most `max` bytes.
    pub fn recv(&mut self, max: usize) -> Result<Vec<u8>, SessionError> {
        self.opener.recv(&mut self.stream, max)
    }

    pub fn stream(&self) -> &S {
        &self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::Key;
    use std::os::unix::net::UnixStream;
    use std::thread;

    fn ring(keys: &[&Key]) -> KeyRing {
        KeyRing::new(keys.iter().map(|k| (*k).clone()).collect()).unwrap()
    }

    fn pair(
        client: KeyRing,
        server: KeyRing,
    ) -> (
        Result<Session<UnixStream>, SessionError>,
        Result<Session<UnixStream>, SessionError>,
    ) {
        let (a, b) = UnixStream::pair().unwrap();
        let t = thread::spawn(move || accept(b, &server));
        let c = connect(a, &client);
        (c, t.join().unwrap())
    }

    #[test]
    fn frames_sent_together_arrive_one_by_one_across_a_split() {
        let k = Key::generate().unwrap();
        let (c, s) = pair(ring(&[&k]), ring(&[&k]));
        let (mut c, mut s) = (c.unwrap(), s.unwrap());
        let big: Vec<u8> = (0..200_000).map(|i| (i % 253) as u8).collect();
        let frames: Vec<&[u8]> = vec![b"one", b"", &big, b"four", b"five"];
        c.send_all(&frames).unwrap();
        // What one read took in ahead stays with the receiving half, through
        // a split and back.
        assert_eq!(s.recv(1 << 20).unwrap(), b"one");
        let (w, mut r) = s.split().unwrap();
        assert_eq!(r.recv(1 << 20).unwrap(), b"");
        assert_eq!(r.recv(1 << 20).unwrap(), big);
        assert_eq!(r.recv(1 << 20).unwrap(), b"four");
        let mut s = rejoin(w, r);
        assert_eq!(s.recv(1 << 20).unwrap(), b"five");
        // And the nonces still agree both ways.
        s.send(b"back").unwrap();
        assert_eq!(c.recv(16).unwrap(), b"back");
    }

    #[test]
    fn frames_of_every_size_round_trip() {
        let k = Key::generate().unwrap();
        let (c, s) = pair(ring(&[&k]), ring(&[&k]));
        let (mut c, mut s) = (c.unwrap(), s.unwrap());
        let sizes = [0usize, 1, PIECE - 4, PIECE - 3, 65536, 3 << 20];
        let t = thread::spawn(move || {
            for _ in sizes {
                let f = s.recv(4 << 20).unwrap();
                s.send(&f).unwrap();
            }
        });
        for n in sizes {
            let frame: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            c.send(&frame).unwrap();
            assert_eq!(c.recv(4 << 20).unwrap(), frame, "{n} bytes");
        }
        t.join().unwrap();
    }

    #[test]
    fn split_halves_work_from_two_threads_at_once() {
        let k = Key::generate().unwrap();
        let (c, s) = pair(ring(&[&k]), ring(&[&k]));
        let (mut cw, mut cr) = c.unwrap().split().unwrap();
        let (mut sw, mut sr) = s.unwrap().split().unwrap();
        // Both ends send 200 frames while receiving the other's 200.
        let a = thread::spawn(move || {
            for i in 0..200u32 {
                cw.send(&i.to_be_bytes()).unwrap();
            }
        });
        let b = thread::spawn(move || {
            for i in 0..200u32 {
                sw.send(&(i + 1000).to_be_bytes()).unwrap();
            }
        });
        for i in 0..200u32 {
            assert_eq!(sr.recv(16).unwrap(), i.to_be_bytes());
            assert_eq!(cr.recv(16).unwrap(), (i + 1000).to_be_bytes());
        }
        a.join().unwrap();
        b.join().unwrap();
    }

    #[test]
    fn reordered_messages_fail() {
        let k = Key::generate().unwrap();
        let (c, s) = pair(ring(&[&k]), ring(&[&k]));
        let (mut c, mut s) = (c.unwrap(), s.unwrap());
        let first = wire_frame(&mut c, b"one", 3);
        let second = wire_frame(&mut c, b"two", 3);
        c.stream.write_all(&second).unwrap();
        c.stream.write_all(&first).unwrap();
        assert!(matches!(s.recv(1024), Err(SessionError::Protocol(_))));
    }

    #[test]
    fn wrong_key_is_unauthorized_on_both_sides() {
        let (k1, k2) = (Key::generate().unwrap(), Key::generate().unwrap());
        let (c, s) = pair(ring(&[&k1]), ring(&[&k2]));
        assert!(matches!(s, Err(SessionError::Unauthorized)));
        assert!(matches!(c, Err(SessionError::Unauthorized)));
    }

    #[test]
    fn rotation_accepts_either_key() {
        let (old, new) = (Key::generate().unwrap(), Key::generate().unwrap());
        for client in [ring(&[&old]), ring(&[&new, &old])] {
            let (c, s) = pair(client, ring(&[&old, &new]));
            assert!(c.is_ok() && s.is_ok());
        }
    }

    /// One transport message carrying a frame, built with the client's own
    /// transport state, as it would go on the wire.
    fn wire_frame(c: &mut Session<UnixStream>, frame: &[u8], claimed_len: u32) -> Vec<u8> {
        let mut plain = claimed_len.to_be_bytes().to_vec();
        plain.extend_from_slice(frame);
        let mut out = vec![0u8; MAX_WIRE];
        let n = c
            .sealer
            .transport
            .write_message(c.sealer.nonce, &plain, &mut out)
            .unwrap();
        c.sealer.nonce += 1;
        let mut wire = (n as u16).to_be_bytes().to_vec();
        wire.extend_from_slice(&out[..n]);
        wire
    }

    #[test]
    fn replayed_and_flipped_messages_fail() {
        let k = Key::generate().unwrap();
        // Replay: the same message twice; the second has a stale nonce.
        let (c, s) = pair(ring(&[&k]), ring(&[&k]));
        let (mut c, mut s) = (c.unwrap(), s.unwrap());
        let wire = wire_frame(&mut c, b"hello", 5);
        c.stream.write_all(&wire).unwrap();
        c.stream.write_all(&wire).unwrap();
        assert_eq!(s.recv(1024).unwrap(), b"hello");
        assert!(matches!(s.recv(1024), Err(SessionError::Protocol(_))));
        assert!(s.recv(1024).is_err(), "a failed session stays failed");

        // Tampering: one flipped bit anywhere in the ciphertext.
        for bit in [16, 40, 100] {
            let (c, s) = pair(ring(&[&k]), ring(&[&k]));
            let (mut c, mut s) = (c.unwrap(), s.unwrap());
            let mut wire = wire_frame(&mut c, b"hello world", 11);
            wire[2 + bit / 8] ^= 1 << (bit % 8);
            c.stream.write_all(&wire).unwrap();
            assert!(s.recv(1024).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn announced_giant_frame_is_refused_without_allocating() {
        let k = Key::generate().unwrap();
        let (c, s) = pair(ring(&[&k]), ring(&[&k]));
        let (mut c, mut s) = (c.unwrap(), s.unwrap());
        // A genuine message whose header claims 1 GiB.
        let wire = wire_frame(&mut c, b"tiny", 1 << 30);
        c.stream.write_all(&wire).unwrap();
        assert!(matches!(
            s.recv(16 << 20),
            Err(SessionError::FrameTooLarge(_))
        ));
    }

    /// A stream that keeps a copy of everything written to it.
    struct Tap {
        inner: UnixStream,
        sent: Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Read for Tap {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.inner.read(buf)
        }
    }

    impl Write for Tap {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = self.inner.write(buf)?;
            self.sent.lock().unwrap().extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }

    #[test]
    fn a_replayed_first_message_never_yields_a_session() {
        let k = Key::generate().unwrap();
        // A genuine session, its initiator's bytes recorded as they went out.
        let (a, b) = UnixStream::pair().unwrap();
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tap = Tap {
            inner: a,
            sent: Arc::clone(&sent),
        };
        let server = ring(&[&k]);
        let t = thread::spawn(move || accept(b, &server).map(|mut s| s.recv(64).unwrap()));
        let mut c = connect(tap, &ring(&[&k])).unwrap();
        c.send(b"a request").unwrap();
        assert_eq!(t.join().unwrap().unwrap(), b"a request");
        let captured = sent.lock().unwrap().clone();
        let first = 2 + usize::from(u16::from_be_bytes([captured[0], captured[1]]));

        // Replayed alone, the first message is answered, but no session
        // comes of it: the responder waits for a proof until its deadline.
        // Replayed with everything else the initiator sent, the old proof
        // does not open under the new handshake.
        for replay in [&captured[..first], &captured[..]] {
            let (mut attacker, b) = UnixStream::pair().unwrap();
            b.set_read_timeout(Some(std::time::Duration::from_millis(300)))
                .unwrap();
            let server = ring(&[&k]);
            let t = thread::spawn(move || accept(b, &server).map(|_| ()));
            attacker.write_all(replay).unwrap();
            let mut len = [0u8; 2];
            attacker.read_exact(&mut len).unwrap();
            assert_ne!(len, [0, 0], "the replay is answered as a handshake");
            let r = t.join().unwrap();
            assert!(
                r.is_err(),
                "a replay of {} bytes was accepted",
                replay.len()
            );
            drop(attacker);
        }
    }

    #[test]
    fn garbage_handshake_is_an_error_not_a_panic() {
        let k = Key::generate().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let server = ring(&[&k]);
        let t = thread::spawn(move || accept(b, &server).map(|_| ()));
        a.write_all(&[0, 48]).unwrap();
        a.write_all(&[0xAB; 48]).unwrap();
        assert!(t.join().unwrap().is_err());
    }

    mod certified {
        use super::*;
        use crate::crypto::cert::{CaSecret, CertBody, NodeSecret};

        fn identity(ca: &CaSecret, trusted: &CaSecret, n: u8, name: &str, until: i64) -> Identity {
            let key = NodeSecret::from_seed(&[n; 64]);
            let cert = ca
                .issue(CertBody {
                    serial: u64::from(n),
                    not_before: 0,
                    not_after: until,
                    key: key.public(),
                    name: name.into(),
                    groups: vec![],
                })
                .unwrap();
            Identity {
                ca: trusted.public(),
                cert,
                key,
                accept_uncertified: false,
            }
        }

        fn pair(
            client: Option<Identity>,
            server: Option<Identity>,
        ) -> (
            Result<Session<UnixStream>, SessionError>,
            Result<Session<UnixStream>, SessionError>,
        ) {
            let k = Key::generate().unwrap();
            let (a, b) = UnixStream::pair().unwrap();
            let ring_s = ring(&[&k]);
            let t = thread::spawn(move || accept_as(b, &ring_s, server.as_ref()));
            let c = connect_as(a, &ring(&[&k]), client.as_ref());
            (c, t.join().unwrap())
        }

        const FAR: i64 = i64::MAX;

        #[test]
        fn certified_members_learn_each_others_names() {
            let ca = CaSecret::from_seed(&[1; 32]);
            let (c, s) = pair(
                Some(identity(&ca, &ca, 2, "a", FAR)),
                Some(identity(&ca, &ca, 3, "b", FAR)),
            );
            let (mut c, mut s) = (c.unwrap(), s.unwrap());
            assert_eq!(c.peer().unwrap().name, "b");
            assert_eq!(s.peer().unwrap().name, "a");
            c.send(b"hi").unwrap();
            assert_eq!(s.recv(16).unwrap(), b"hi");
        }

        #[test]
        fn a_certificate_of_another_ca_is_refused_by_either_end() {
            let ca = CaSecret::from_seed(&[1; 32]);
            let other = CaSecret::from_seed(&[9; 32]);
            let (_, s) = pair(
                Some(identity(&other, &ca, 2, "a", FAR)),
                Some(identity(&ca, &ca, 3, "b", FAR)),
            );
            assert!(matches!(
                s,
                Err(SessionError::Certificate(CertError::BadSignature))
            ));
            let (c, _) = pair(
                Some(identity(&ca, &ca, 2, "a", FAR)),
                Some(identity(&other, &ca, 3, "b", FAR)),
            );
            assert!(matches!(
                c,
                Err(SessionError::Certificate(CertError::BadSignature))
            ));
        }

        #[test]
        fn an_expired_certificate_is_refused() {
            let ca = CaSecret::from_seed(&[1; 32]);
            let (_, s) = pair(
                Some(identity(&ca, &ca, 2, "a", 1)),
                Some(identity(&ca, &ca, 3, "b", FAR)),
            );
            assert!(matches!(
                s,
                Err(SessionError::Certificate(CertError::Expired(_)))
            ));
        }

        #[test]
        fn a_stolen_certificate_without_its_key_is_refused() {
            let ca = CaSecret::from_seed(&[1; 32]);
            let mut thief = identity(&ca, &ca, 2, "a", FAR);
            // The victim's certificate, shown with the thief's own key.
            thief.cert = identity(&ca, &ca, 4, "victim", FAR).cert;
            let (_, s) = pair(Some(thief), Some(identity(&ca, &ca, 3, "b", FAR)));
            assert!(matches!(
                s,
                Err(SessionError::Certificate(CertError::WrongKey))
            ));
        }

        #[test]
        fn certified_and_shared_key_members_do_not_mix() {
            let ca = CaSecret::from_seed(&[1; 32]);
            let (c, s) = pair(None, Some(identity(&ca, &ca, 3, "b", FAR)));
            assert!(c.is_err() && s.is_err());
            let (c, s) = pair(Some(identity(&ca, &ca, 2, "a", FAR)), None);
            assert!(c.is_err() && s.is_err());
        }

        /// During a move to certificates: a member that accepts uncertified
        /// peers meets a shared-key member in an uncertified session, and a
        /// certified one in a certified session.
        #[test]
        fn a_member_accepting_uncertified_peers_meets_both_kinds() {
            let ca = CaSecret::from_seed(&[1; 32]);
            let moving = |n, name| {
                let mut id = identity(&ca, &ca, n, name, FAR);
                id.accept_uncertified = true;
                id
            };
            let (c, s) = pair(None, Some(moving(3, "b")));
            let (mut c, mut s) = (c.unwrap(), s.unwrap());
            assert!(c.peer().is_none() && s.peer().is_none());
            c.send(b"hi").unwrap();
            assert_eq!(s.recv(16).unwrap(), b"hi");
            let (c, s) = pair(Some(identity(&ca, &ca, 2, "a", FAR)), Some(moving(3, "b")));
            assert_eq!(c.unwrap().peer().unwrap().name, "b");
            assert_eq!(s.unwrap().peer().unwrap().name, "a");
            // It still checks the certificates it is shown.
            let other = CaSecret::from_seed(&[9; 32]);
            let (_, s) = pair(
                Some(identity(&other, &ca, 2, "a", FAR)),
                Some(moving(3, "b")),
            );
            assert!(matches!(
                s,
                Err(SessionError::Certificate(CertError::BadSignature))
            ));
        }

        /// A member without a CA tells a certified member holding the key
        /// from a stranger, and refuses both.
        #[test]
        fn a_member_without_a_ca_tells_a_certified_peer_from_a_stranger() {
            let ca = CaSecret::from_seed(&[1; 32]);
            let (c, s) = pair(Some(identity(&ca, &ca, 2, "a", FAR)), None);
            assert!(matches!(c, Err(SessionError::Unauthorized)));
            assert!(matches!(s, Err(SessionError::Uncertified)));
            let (a, b) = UnixStream::pair().unwrap();
            let server = ring(&[&Key::generate().unwrap()]);
            let t = thread::spawn(move || accept_as(b, &server, None));
            let stranger = ring(&[&Key::generate().unwrap()]);
            let id = identity(&ca, &ca, 2, "a", FAR);
            assert!(connect_as(a, &stranger, Some(&id)).is_err());
            assert!(matches!(t.join().unwrap(), Err(SessionError::Unauthorized)));
        }
    }
}

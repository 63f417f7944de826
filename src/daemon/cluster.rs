//! The daemon's side of the cluster: the UDP gossip loop around
//! [`Membership`], the TCP listener for peers, and joining.
//!
//! One thread owns the membership state and the UDP socket; others talk to
//! it through a command channel and read the member list from a shared
//! snapshot. TCP connections carry a Noise session (see [`crate::crypto::session`])
//! in which a joining node sends its identity and gets the full member list.

use crate::crypto::cert::{Cert, CertBody, CertError, Revocations};
use crate::crypto::gossip::{Endpoint, GossipCipher, MAX_DATAGRAM, OpenError, SIGNED_VERSION};
use crate::crypto::keys::KeyRing;
use crate::crypto::keys::{base64_decode, base64_encode};
use crate::crypto::session::{self, Identity, SessionError};
use crate::crypto::signed::{self, Certs, Signer};
use crate::daemon::counters::{Counters, Rejected};
use crate::daemon::logging::{self, untrusted};
use crate::membership::{
    self, Alarm, MemberEvent, MemberInfo, MemberState, Membership, Node, Record, Timings,
    max_incarnation,
};
use crate::proto::peer::{self, JoinReply, PeerRequest, SyncReply};
use crate::revocation::{Heard, Revocation};
use log::Level;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread;
use std::time::{Duration, Instant};

/// The revocation list's file in `--state-dir`.
pub const REVOKED_FILE: &str = "revoked";

/// How often a member exchanges its whole member list with another.
const SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// How often the member list is compared for changes to report.
const CHANGES_EVERY: Duration = Duration::from_millis(20);

/// Read and write timeout of the join exchange.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

enum Command {
    /// Members learned by a join exchange; announce to the first.
    Joined(Vec<Node>),
    /// A node joined through us.
    Add(Node),
    /// Leave the cluster, then acknowledge.
    Leave(Sender<()>),
    /// Carry these tags from now on.
    SetTags(std::collections::BTreeMap<String, String>),
    /// Send what we know of every member.
    Records(Sender<Vec<Record>>),
    /// Take what another member knows (and that it is alive).
    ApplyRecords(Vec<Record>, Node),
    /// These names are revoked from now on (all of them); send this news
    /// to every member (`true`) or to a few.
    Revoked(Vec<String>, Option<(Vec<u8>, bool)>),
}

/// How long the old address of a member that joins from a new one has to
/// answer before the move is accepted.
const MOVE_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where revocation news came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `p2p-revoke` on this host: told to every member.
    Local,
    /// `--state-dir`, read at start: in force, not sent.
    Saved,
    /// Another member (gossip, sync, join): passed on to a few if new.
    Member,
}

/// Called after a revocation changed who is cut off, to close what the
/// cluster does not see itself (the sessions kept for the next query).
pub type OnRevoke = Box<dyn Fn() + Send + Sync>;

/// Why a join failed. The messages do not name the address: whoever
/// shows one (a log line, `p2p-join`'s `addr`) puts it in front.
#[derive(Debug)]
pub enum JoinError {
    /// The address could not be reached or did not answer.
    Unreachable(String),
    /// It does not hold our key.
    Unauthorized,
    /// It refused us (a duplicate name).
    Refused(String),
    /// Its certificate was refused (another CA's, expired, revoked...).
    Certificate(CertError),
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Unreachable(m) => write!(f, "{m}"),
            JoinError::Unauthorized => write!(f, "the peer does not hold our cluster key"),
            JoinError::Refused(m) => write!(f, "refused: {m}"),
            JoinError::Certificate(e) => write!(f, "its certificate was refused: {e}"),
        }
    }
}

/// The cluster as the rest of the daemon sees it.
pub struct Cluster {
    /// This node's identity; its tags and incarnation change on reload.
    me: RwLock<Node>,
    /// The installed keys; replaced whole on reload (SIGHUP).
    ring: RwLock<Arc<KeyRing>>,
    /// Bumped on every reload, so the gossip loop rebuilds its ciphers.
    ring_generation: AtomicU64,
    commands: Mutex<Sender<Command>>,
    /// Wakes the gossip loop when a command or a new key ring is waiting:
    /// it otherwise sleeps until its next timer.
    wake: UnixDatagram,
    members: RwLock<Vec<MemberInfo>>,
    watchers: Mutex<Vec<Sender<MemberEvent>>>,
    /// The daemon's counters, datagrams and connections refused among them.
    pub counters: Arc<Counters>,
    /// With a CA: our certificate, shown and required in every TCP session.
    /// A SIGHUP may bring it in, renew it or take it out.
    identity: RwLock<Option<Arc<Identity>>>,
    /// Bumped when the identity changes, so the gossip loop signs (or not)
    /// with the new one and changes its membership's mode.
    identity_generation: AtomicU64,
    /// The CA's latest revocation list and the certificates naming its
    /// serials, and the file the list is kept in. Set once the daemon
    /// runs with a CA, and kept: the CA does not change while running.
    revocation: OnceLock<RwLock<Revocation>>,
    revoked_file: RwLock<Option<std::path::PathBuf>>,
    /// The names last given to the gossip loop as revoked (see
    /// [`Cluster::admit`]).
    cut: RwLock<Vec<String>>,
    /// With a CA: the certificates of members verified so far (TCP
    /// sessions' peers, and those that came with datagrams), to check the
    /// signatures of gossip datagrams. Set with `revocation`.
    certs: OnceLock<Mutex<Certs>>,
    /// With a CA: members that asked who we are when our certificate was
    /// too large to ride with the answer, to meet over TCP instead (see
    /// [`introduce_loop`]).
    introduce: Mutex<Option<Sender<SocketAddr>>>,
    /// Sessions members opened to us, by a number of ours: their
    /// certificates' serials and a handle to shut them with.
    open: Mutex<OpenSessions>,
    on_revoke: RwLock<Option<OnRevoke>>,
}

/// The last number given, and each open session's serial (`None` for a
/// member without a certificate) and handle.
type OpenSessions = (
    u64,
    std::collections::HashMap<u64, (Option<u64>, TcpStream)>,
);

/// A member's session to us, listed until dropped so that a revocation
/// can shut it at once (see [`Cluster::hold_session`]).
pub struct Held<'a> {
    cluster: &'a Cluster,
    id: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Ok(mut open) = self.cluster.open.lock() {
            open.1.remove(&self.id);
        }
    }
}

impl Cluster {
    /// Starts the gossip thread on the peer port's UDP socket; the caller
    /// serves peers on the returned listener (see `daemon::peer`).
    pub fn start(
        me: Node,
        port: super::peer_port::PeerPort,
        ring: KeyRing,
        identity: Option<Arc<Identity>>,
        timings: Timings,
        counters: Arc<Counters>,
    ) -> io::Result<(Arc<Cluster>, TcpListener)> {
        let super::peer_port::PeerPort { udp, tcp } = port;
        let (tx, rx) = channel();
        let (wake, woken) = UnixDatagram::pair()?;
        wake.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        udp.set_nonblocking(true)?;
        let mut seed = [0u8; 32];
        crate::crypto::random_bytes(&mut seed)?;
        let mut membership = match &identity {
            Some(_) => Membership::new_certified(me.clone(), &timings, seed),
            None => Membership::new(me.clone(), &timings, seed),
        };
        if identity.as_ref().is_some_and(|id| id.accept_uncertified) {
            membership.accept_unsigned();
        }
        membership.set_clock(unix_ms(), Instant::now());
        let cluster = Arc::new(Cluster {
            me: RwLock::new(me),
            ring: RwLock::new(Arc::new(ring)),
            ring_generation: AtomicU64::new(0),
            commands: Mutex::new(tx),
            wake,
            members: RwLock::new(membership.members()),
            watchers: Mutex::new(Vec::new()),
            counters,
            revocation: OnceLock::new(),
            identity: RwLock::new(None),
            identity_generation: AtomicU64::new(0),
            revoked_file: RwLock::new(None),
            cut: RwLock::new(Vec::new()),
            certs: OnceLock::new(),
            introduce: Mutex::new(None),
            open: Mutex::new((0, std::collections::HashMap::new())),
            on_revoke: RwLock::new(None),
        });
        if let Some(id) = identity {
            cluster.certify(&id)?;
            *cluster
                .identity
                .write()
                .map_err(|_| io::Error::other("poisoned"))? = Some(id);
        }
        let c = Arc::clone(&cluster);
        thread::Builder::new()
            .name("gossip".into())
            .spawn(move || gossip_loop(&c, membership, udp, rx, woken))?;
        Ok((cluster, tcp))
    }

    /// What a certified member needs besides its identity, made the first
    /// time it has one (at start, or on the SIGHUP that brings it in): the
    /// revocation state and the certificates verified, for `id`'s CA, and
    /// the thread that shows our certificate over TCP when it is too large
    /// for a datagram. Keeps `id`'s certificate.
    fn certify(self: &Arc<Self>, id: &Identity) -> io::Result<()> {
        if self.revocation.get().is_none() {
            let _ = self
                .revocation
                .set(RwLock::new(Revocation::new(id.ca.clone())));
            let _ = self.certs.set(Mutex::new(Certs::new(id.ca.clone())));
            let (tx, rx) = channel();
            if let Ok(mut slot) = self.introduce.lock() {
                *slot = Some(tx);
            }
            let c = Arc::clone(self);
            thread::Builder::new()
                .name("introduce".into())
                .spawn(move || introduce_loop(&c, &rx))?;
            if let Err(e) = self.load_revocations() {
                log::error!("revocations: {e}");
            }
        }
        if let Some(certs) = self.certs.get()
            && let Ok(mut c) = certs.lock()
        {
            c.keep(id.cert.body());
        }
        Ok(())
    }

    /// Changes this member's identity while running (SIGHUP): brings a
    /// certificate in, renews it, starts or stops accepting members
    /// without one, or goes back to the shared key alone. The name stays
    /// (a certified member goes by its certificate's), and so does the CA
    /// once there was one: either needs a restart. Returns whether
    /// anything changed. Sessions of members without a certificate are
    /// shut when they are no longer accepted.
    pub fn set_identity(self: &Arc<Self>, id: Option<Identity>) -> Result<bool, String> {
        let current = self.identity();
        let same = match (&current, &id) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.ca == b.ca
                    && a.cert.body() == b.cert.body()
                    && a.accept_uncertified == b.accept_uncertified
            }
            _ => false,
        };
        if same {
            return Ok(false);
        }
        if let Some(new) = &id {
            let name = self.me().name;
            if new.cert.body().name != name {
                return Err(format!(
                    "the certificate is for {}, and this member runs as {name}: a certified member \
                     goes by the name in its certificate, and a new name needs a restart",
                    new.cert.body().name
                ));
            }
            if let Some(r) = self.revocation.get()
                && r.read().is_ok_and(|r| *r.ca() != new.ca)
            {
                return Err(
                    "the CA is not the one this member has run with; a new CA needs a restart"
                        .into(),
                );
            }
            self.certify(new).map_err(|e| e.to_string())?;
        }
        let id = id.map(Arc::new);
        match self.identity.write() {
            Ok(mut slot) => *slot = id,
            Err(poisoned) => *poisoned.into_inner() = id,
        }
        self.identity_generation.fetch_add(1, Ordering::Release);
        self.wake_gossip();
        self.cut_refused();
        Ok(true)
    }

    /// This node's identity as of now.
    pub fn me(&self) -> Node {
        match self.me.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Gives this node new tags; the other members see an update.
    pub fn set_tags(&self, tags: std::collections::BTreeMap<String, String>) {
        self.command(Command::SetTags(tags));
    }

    /// The key ring in force now.
    pub fn ring(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Our certified identity, when a CA is configured.
    pub fn identity(&self) -> Option<Arc<Identity>> {
        match self.identity.read() {
            Ok(id) => id.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether peers holding only the cluster key are still accepted
    /// beside certified ones (`--accept-uncertified`, during a move to
    /// certificates).
    pub fn accepts_uncertified(&self) -> bool {
        self.identity().is_some_and(|id| id.accept_uncertified)
    }

    /// Whether only certified peers are accepted: a CA, and no move to
    /// certificates under way.
    fn certified_only(&self) -> bool {
        self.identity().is_some_and(|id| !id.accept_uncertified)
    }

    /// Opens a session as this member, on a stream from `dial`: certified
    /// when we are. A member that still accepts uncertified peers meets one
    /// that cannot run a certified session (it has no CA) in an uncertified
    /// session, on a second connection.
    pub fn open_session<S: io::Read + io::Write>(
        &self,
        mut dial: impl FnMut() -> Result<S, SessionError>,
    ) -> Result<session::Session<S>, SessionError> {
        let ring = self.ring();
        let identity = self.identity();
        match session::connect_as(dial()?, &ring, identity.as_deref()) {
            Err(SessionError::Unauthorized) if self.accepts_uncertified() => {
                session::connect_as(dial()?, &ring, None)
            }
            other => other,
        }
    }

    /// Checks that the peer of a certified session is certified as `claimed`
    /// (in shared-key mode, anyone with the key may claim any name).
    pub fn check_claim(
        &self,
        peer: Option<&crate::crypto::cert::CertBody>,
        claimed: &str,
    ) -> Result<(), crate::crypto::cert::CertError> {
        let identity = self.identity();
        match (identity.is_some(), peer) {
            (false, _) => Ok(()),
            (true, Some(p)) => p.check_name(claimed),
            // Moving to certificates: a key holder without one, as before.
            (true, None) if self.accepts_uncertified() => Ok(()),
            // A session opened before this member had its certificate, or
            // while it still accepted members without one.
            (true, None) => Err(crate::crypto::cert::CertError::Missing),
        }
    }

    /// Whether a peer may be served: its certificate is not revoked, or
    /// it has none and this member accepts such peers (always so in
    /// shared-key mode).
    pub fn admit(&self, peer: Option<&CertBody>) -> Result<(), CertError> {
        if peer.is_none() && self.certified_only() {
            return Err(CertError::Missing);
        }
        let (Some(peer), Some(r)) = (peer, self.revocation.get()) else {
            return Ok(());
        };
        let verdict = match r.read() {
            Ok(r) => r.check(peer),
            Err(poisoned) => poisoned.into_inner().check(peer),
        };
        // A session's peer certificate was verified in the handshake: kept
        // to check that member's datagrams.
        if verdict.is_ok()
            && let Some(certs) = self.certs.get()
            && let Ok(mut c) = certs.lock()
        {
            c.keep(peer);
        }
        // A member cut off under a revoked certificate: only one issued
        // after every revoked certificate of its name lets it back (a
        // renewal); an older one that was never revoked does not.
        if verdict.is_ok() && self.cut.read().is_ok_and(|cut| cut.contains(&peer.name)) {
            // Under the lock, so that no newer list's names are overtaken.
            let r = r.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            let names = self.revoked_now(&r);
            if names.contains(&peer.name) {
                return Err(CertError::Superseded);
            }
            log::info!(
                "member {} shows a certificate issued after its revoked one (serial {:016x}): no longer cut off",
                untrusted(&peer.name),
                peer.serial
            );
            self.tell_revoked(names.into_iter().collect(), None);
        }
        verdict
    }

    /// Tells the gossip loop the names revoked now, and news to spread.
    fn tell_revoked(&self, names: Vec<String>, spread: Option<(Vec<u8>, bool)>) {
        match self.cut.write() {
            Ok(mut cut) => cut.clone_from(&names),
            Err(poisoned) => poisoned.into_inner().clone_from(&names),
        }
        self.command(Command::Revoked(names, spread));
    }

    /// The names the list in force revokes, as far as we know them: those
    /// whose every certificate we hold is revoked (a member whose revoked
    /// certificate was renewed is not cut off).
    fn revoked_now(&self, r: &Revocation) -> std::collections::BTreeSet<String> {
        let mut names = r.revoked_names();
        if !names.is_empty()
            && let Some(certs) = self.certs.get()
            && let Ok(c) = certs.lock()
        {
            // Strictly later in time: of two issued within one second,
            // neither lets the other's name back.
            let issued = |b: &CertBody| b.not_before;
            names.retain(|n| {
                let held = c.all_named(n);
                let revoked: Vec<_> = held
                    .iter()
                    .filter(|b| r.check(b).is_err())
                    .map(|b| issued(b))
                    .chain(
                        r.known(n)
                            .filter(|k| r.check(k.body()).is_err())
                            .map(|k| issued(k.body())),
                    )
                    .collect();
                // Let back only by a certificate issued after every
                // revoked one of the name (a renewal).
                !held
                    .iter()
                    .any(|b| r.check(b).is_ok() && revoked.iter().all(|v| issued(b) > *v))
            });
        }
        names
    }

    /// [`Cluster::admit`] for a session's peer, after learning its
    /// certificate: it ties the certificate's serial to its name, so that a
    /// revocation names the member and passes the proof on.
    pub fn admit_certificate(&self, cert: Option<&Cert>) -> Result<(), CertError> {
        if let Some(c) = cert.filter(|_| self.revocation.get().is_some()) {
            let known = self.revocation.get().is_some_and(|r| {
                r.read().is_ok_and(|r| {
                    r.known(&c.body().name)
                        .is_some_and(|k| k.body().serial == c.body().serial)
                })
            });
            if !known {
                let _ = self.revise(Source::Member, |r| {
                    r.learn(c)?;
                    Ok(Heard::Same)
                });
            }
        }
        self.admit(cert.map(Cert::body))
    }

    /// Lists a session a member opened to us until the guard drops: a
    /// revocation of its certificate shuts it at once.
    pub fn hold_session(&self, peer: Option<&CertBody>, stream: &TcpStream) -> Option<Held<'_>> {
        let serial = peer.map(|p| p.serial);
        let handle = stream.try_clone().ok()?;
        let mut open = self.open.lock().ok()?;
        open.0 += 1;
        let id = open.0;
        open.1.insert(id, (serial, handle));
        Some(Held { cluster: self, id })
    }

    /// What to call after a revocation (see [`OnRevoke`]).
    pub fn on_revoke(&self, f: OnRevoke) {
        if let Ok(mut slot) = self.on_revoke.write() {
            *slot = Some(f);
        }
    }

    /// Shuts the members' sessions to us that are no longer accepted:
    /// those whose certificates are revoked, and those of members without
    /// one when only certified members are; and has the daemon drop its
    /// own kept sessions to them.
    fn cut_refused(&self) {
        let certified_only = self.certified_only();
        let revoked = |serial: &u64| {
            self.revocation.get().is_some_and(|r| {
                r.read().is_ok_and(|r| {
                    r.list()
                        .is_some_and(|l| l.serials.binary_search(serial).is_ok())
                })
            })
        };
        if let Ok(open) = self.open.lock() {
            for (serial, stream) in open.1.values() {
                let refused = match serial {
                    Some(s) => revoked(s),
                    None => certified_only,
                };
                if refused {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                }
            }
        }
        if let Ok(f) = self.on_revoke.read()
            && let Some(f) = f.as_ref()
        {
            f();
        }
    }

    /// The revocation news in force, base64, for a sync or a join reply.
    fn news_b64(&self) -> Option<String> {
        let r = self.revocation.get()?.read().ok()?;
        r.news(usize::MAX).map(|n| base64_encode(&n))
    }

    /// Takes news a member sent in a sync or a join reply.
    fn hear_b64(&self, news: Option<&str>) {
        let Some(text) = news else {
            return;
        };
        let verdict = match base64_decode(text) {
            Some(bytes) => self.revise(Source::Member, |r| r.hear(&bytes)),
            None => Err("bad base64".into()),
        };
        self.count_news(verdict);
    }

    /// Counts news from a member that was refused or older than ours.
    fn count_news(&self, verdict: Result<Heard, String>) {
        match verdict {
            Ok(Heard::Newer | Heard::Same) => {}
            Ok(Heard::Older) => self.counters.rejected(Rejected::Revocation),
            Err(e) => {
                self.counters.rejected(Rejected::Revocation);
                logging::hostile(
                    Level::Warn,
                    "revocation",
                    format_args!("dropped a revocation list a member sent: {e}"),
                );
            }
        }
    }

    /// Changes the revocation state with `f`; when that installs a newer
    /// list or changes who is revoked, keeps the list (from a member or
    /// `p2p-revoke`), tells the gossip loop, and cuts the revoked off.
    fn revise(
        &self,
        source: Source,
        f: impl FnOnce(&mut Revocation) -> Result<Heard, CertError>,
    ) -> Result<Heard, String> {
        let Some(r) = self.revocation.get() else {
            return Err("this daemon has no CA (--ca), so nothing to revoke".into());
        };
        let mut r = r.write().map_err(|_| "poisoned lock".to_string())?;
        let before = self.revoked_now(&r);
        let heard = f(&mut r).map_err(|e| e.to_string())?;
        let names = self.revoked_now(&r);
        if heard != Heard::Newer && names == before {
            return Ok(heard);
        }
        if heard == Heard::Newer
            && source != Source::Saved
            && let Some(list) = r.list()
        {
            let file = self.revoked_file.read().ok().and_then(|f| f.clone());
            if let Some(file) = file
                && let Err(e) =
                    crate::cmd::keygen::write_private(&file, list.encode().as_bytes(), true)
            {
                log::error!("keeping the revocation list in {}: {e}", file.display());
            }
        }
        if heard == Heard::Newer
            && let Some(list) = r.list()
        {
            log::info!(
                "a revocation list issued at {} is in force: {} serial(s), revoking {}",
                crate::crypto::cert::show_time(list.issued),
                list.serials.len(),
                if names.is_empty() {
                    "no member we know of".to_string()
                } else {
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                }
            );
        } else if names != before {
            log::info!(
                "revoked members now: {}",
                names.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        let spread = match source {
            Source::Saved => None,
            _ => r
                .news(crate::membership::MAX_NEWS_BYTES)
                .map(|n| (n, source == Source::Local)),
        };
        // Sent under the lock: a later change cannot be overtaken by this one.
        self.tell_revoked(names.into_iter().collect(), spread);
        drop(r);
        self.cut_refused();
        Ok(heard)
    }

    /// Keeps revocation lists in `dir/revoked` from now on, and installs the
    /// one kept there, if any (now, or once this member has a CA).
    pub fn keep_revocations_in(&self, dir: &std::path::Path) -> Result<(), String> {
        let file = dir.join(REVOKED_FILE);
        if let Ok(mut f) = self.revoked_file.write() {
            *f = Some(file);
        }
        self.load_revocations()
    }

    /// Installs the revocation list kept in the state directory, if any,
    /// once this member has a CA.
    fn load_revocations(&self) -> Result<(), String> {
        let Some(file) = self.revoked_file.read().ok().and_then(|f| f.clone()) else {
            return Ok(());
        };
        if self.revocation.get().is_none() {
            return Ok(());
        }
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let n = self
                    .install_revocations(&text, Source::Saved)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                log::info!("{n} revoked certificate(s) from {}", file.display());
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", file.display())),
        }
    }

    /// Installs a revocation list of our CA that is not older than the one
    /// held; from `p2p-revoke`, it is kept in the state directory and sent
    /// to every member. Returns how many serials it revokes.
    pub fn install_revocations(&self, text: &str, source: Source) -> Result<usize, String> {
        let list = Revocations::decode(text).map_err(|e| e.to_string())?;
        let issued = list.issued;
        let mut held_issued = None;
        let heard = self.revise(source, |r| {
            held_issued = r.list().map(|l| l.issued);
            r.install(list)
        })?;
        if heard == Heard::Older {
            let held = held_issued.unwrap_or(issued);
            return Err(if held == issued {
                format!(
                    "this list was issued at {}, as the one in force, with other serials; it was not installed",
                    crate::crypto::cert::show_time(issued)
                )
            } else {
                format!(
                    "this list was issued at {}, before the one in force ({}); it was not installed",
                    crate::crypto::cert::show_time(issued),
                    crate::crypto::cert::show_time(held)
                )
            });
        }
        // Sent again even when it is the list in force: a member may have
        // missed it.
        if heard == Heard::Same
            && source == Source::Local
            && let Some(news) = self.revocation.get().and_then(|r| {
                r.read()
                    .ok()
                    .and_then(|r| r.news(crate::membership::MAX_NEWS_BYTES))
            })
        {
            let names = self.revoked_names();
            self.tell_revoked(names, Some((news, true)));
        }
        Ok(self
            .revocation
            .get()
            .and_then(|r| {
                r.read()
                    .ok()
                    .and_then(|r| r.list().map(|l| l.serials.len()))
            })
            .unwrap_or(0))
    }

    /// The names the list in force revokes, as far as we know them.
    pub fn revoked_names(&self) -> Vec<String> {
        self.revocation
            .get()
            .and_then(|r| {
                r.read()
                    .ok()
                    .map(|r| self.revoked_now(&r).into_iter().collect())
            })
            .unwrap_or_default()
    }

    /// Installs a new key ring: what is sent from now on is sealed with its
    /// primary key, and only its keys are accepted.
    pub fn set_ring(&self, ring: KeyRing) {
        match self.ring.write() {
            Ok(mut r) => *r = Arc::new(ring),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
        }
        self.ring_generation.fetch_add(1, Ordering::Release);
        self.wake_gossip();
    }

    fn command(&self, cmd: Command) {
        if let Ok(tx) = self.commands.lock() {
            let _ = tx.send(cmd);
        }
        self.wake_gossip();
    }

    /// One byte on the wake socket; when it is full, the loop is awake
    /// already.
    fn wake_gossip(&self) {
        let _ = self.wake.send(&[0]);
    }

    /// The certificate of member `name` this node verified (the member's
    /// session, or a datagram it signed); `None` in shared-key mode.
    /// Of several, one not revoked, the one lasting longest.
    pub fn certificate_of(&self, name: &str) -> Option<Arc<CertBody>> {
        let held = match self.certs.get()?.lock() {
            Ok(c) => c.all_named(name),
            Err(poisoned) => poisoned.into_inner().all_named(name),
        };
        let revoked = |b: &CertBody| {
            self.revocation
                .get()
                .is_some_and(|r| r.read().is_ok_and(|r| r.check(b).is_err()))
        };
        held.into_iter()
            .max_by_key(|b| (!revoked(b), b.not_after, b.serial))
    }

    /// The member list, as of the last gossip event.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.members.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// A stream of membership changes, until the receiver is dropped.
    pub fn watch(&self) -> Receiver<MemberEvent> {
        let (tx, rx) = channel();
        if let Ok(mut w) = self.watchers.lock() {
            w.push(tx);
        }
        rx
    }

    /// One request and its reply over a fresh session to `addr`.
    fn ask<R: serde::de::DeserializeOwned>(
        &self,
        addr: SocketAddr,
        request: &PeerRequest,
    ) -> Result<R, JoinError> {
        let dial = || {
            let stream = TcpStream::connect_timeout(&addr, PEER_TIMEOUT)?;
            let _ = stream.set_read_timeout(Some(PEER_TIMEOUT));
            let _ = stream.set_write_timeout(Some(PEER_TIMEOUT));
            Ok(stream)
        };
        let mut s = self.open_session(dial).map_err(|e| match e {
            SessionError::Unauthorized => JoinError::Unauthorized,
            SessionError::Certificate(e) => JoinError::Certificate(e),
            other => JoinError::Unreachable(session_message(other)),
        })?;
        self.admit_certificate(s.peer_certificate())
            .map_err(JoinError::Certificate)?;
        log::debug!("session to {addr} opened for a {}", request.op());
        let io = |e: SessionError| JoinError::Unreachable(session_message(e));
        s.send(&peer::encode(request)).map_err(io)?;
        serde_json::from_slice(&s.recv(peer::MAX_FRAME).map_err(io)?).map_err(|e| {
            let e = untrusted(&e.to_string()).to_string();
            JoinError::Unreachable(format!("bad reply: {e}"))
        })
    }

    /// Joins through `addr`: the member list is exchanged over an encrypted
    /// session, then gossip takes over. Returns how many members we know of.
    pub fn join(&self, addr: &str) -> Result<usize, JoinError> {
        let shown = untrusted(addr);
        log::debug!("joining through {shown}");
        let target = addr
            .to_socket_addrs()
            .map_err(|e| JoinError::Unreachable(e.to_string()))?
            .next()
            .ok_or_else(|| JoinError::Unreachable("the name has no address".into()))?;
        let me_name = self.me().name;
        let reply: JoinReply = self.ask(target, &PeerRequest::Join { node: self.me() })?;
        if let Some(e) = reply.error {
            let e = untrusted(&e).to_string();
            return Err(if reply.retry {
                JoinError::Unreachable(e)
            } else {
                JoinError::Refused(e)
            });
        }
        self.hear_b64(reply.revoked.as_deref());
        // The members it knows, and us.
        let known = reply.members.iter().filter(|n| n.name != me_name).count() + 1;
        let resolved = if target.to_string() == addr {
            String::new()
        } else {
            format!(" ({target})")
        };
        log::debug!(
            "joined through {shown}{resolved}: it sent {} member(s): {}",
            reply.members.len(),
            reply
                .members
                .iter()
                .take(16)
                .map(|n| format!("{} at {}", untrusted(&n.name), n.addr))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.command(Command::Joined(reply.members));
        Ok(known)
    }

    /// What we know of every member, as of the gossip thread's last turn.
    pub fn records(&self) -> Vec<Record> {
        let (tx, rx) = channel();
        self.command(Command::Records(tx));
        rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default()
    }

    /// Answers a sync from `from`: takes what it knows, returns what we know.
    pub(crate) fn sync_reply(
        &self,
        from: Node,
        theirs: Vec<Record>,
        revoked: Option<&str>,
    ) -> SyncReply {
        self.hear_b64(revoked);
        let members = self.records();
        self.command(Command::ApplyRecords(theirs, from));
        SyncReply {
            members,
            revoked: self.news_b64(),
        }
    }

    /// A full exchange of member states with the member at `addr`.
    pub fn sync_with(&self, addr: SocketAddr) -> Result<usize, JoinError> {
        let request = PeerRequest::Sync {
            node: self.me(),
            members: self.records(),
            revoked: self.news_b64(),
        };
        let reply: SyncReply = self.ask(addr, &request)?;
        self.hear_b64(reply.revoked.as_deref());
        let n = reply.members.len();
        // The member answering is alive, whatever its list says of itself.
        let from = self
            .members()
            .into_iter()
            .find(|m| m.addr == addr)
            .map(|m| Node {
                name: m.name,
                addr: m.addr,
                incarnation: m.incarnation,
                tags: m.tags,
            });
        match from {
            Some(node) => self.command(Command::ApplyRecords(reply.members, node)),
            None => self.command(Command::ApplyRecords(reply.members, self.me())),
        }
        Ok(n)
    }

    /// Tells the cluster we leave, and waits (briefly) until it is sent.
    pub fn leave(&self, within: Duration) {
        let (tx, rx) = channel();
        self.command(Command::Leave(tx));
        let _ = rx.recv_timeout(within);
    }
}

/// A failed session's error, without the OS's "(os error N)".
fn session_message(e: SessionError) -> String {
    match e {
        SessionError::Io(io) => crate::error::Error::from_io(&io).message,
        other => other.to_string(),
    }
}

/// Joins through each address in turn, retrying with back-off until one
/// answers. A refusal (duplicate name) ends the daemon: it cannot be a member.
pub fn join_with_retry(cluster: Arc<Cluster>, addrs: Vec<String>) {
    let mut delay = Duration::from_millis(200);
    loop {
        for addr in &addrs {
            match cluster.join(addr) {
                Ok(n) => {
                    log::info!(
                        "joined the cluster through {}: {n} members",
                        untrusted(addr)
                    );
                    return;
                }
                Err(JoinError::Refused(why)) => {
                    log::error!("joining through {}: {why}", untrusted(addr));
                    std::process::exit(2);
                }
                Err(e) => log::warn!(
                    "joining through {}: {e}; retrying in {delay:?}",
                    untrusted(addr)
                ),
            }
        }
        thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Every 30 s (with jitter), a full state exchange with one
/// random live member, as Serf's push/pull does: whatever an update's
/// gossip missed is repaired within one interval.
pub fn sync_loop(cluster: Arc<Cluster>) {
    loop {
        let mut r = [0u8; 2];
        let _ = crate::crypto::random_bytes(&mut r);
        let jitter = u64::from(u16::from_le_bytes(r)) % 5000;
        thread::sleep(SYNC_INTERVAL + Duration::from_millis(jitter));
        let candidates: Vec<SocketAddr> = cluster
            .members()
            .into_iter()
            .filter(|m| !m.is_self && matches!(m.state, MemberState::Alive | MemberState::Suspect))
            .map(|m| m.addr)
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let pick = usize::from(u16::from_le_bytes(r)) % candidates.len();
        match cluster.sync_with(candidates[pick]) {
            Ok(n) => log::debug!("synced with {}: {n} members", candidates[pick]),
            Err(e) => log::debug!("sync with {}: {e}", candidates[pick]),
        }
    }
}

/// This node's end of gossip. Its epoch is its first incarnation, which is
/// above every earlier run's (the start time in milliseconds, and above the
/// state file's), so what an earlier run sent is refused as a replay.
fn gossip_endpoint(me: &Node) -> Endpoint {
    let mut seed = [0u8; 8];
    let _ = crate::crypto::random_bytes(&mut seed);
    Endpoint::new(me.addr, me.incarnation, u64::from_le_bytes(seed))
}

/// How long before our certificate expires p2pd starts to warn.
pub const EXPIRY_WARNING: i64 = 14 * 86_400;

/// How often the gossip loop looks at our certificate's expiry.
const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(86_400);

/// The warning to log when our certificate, valid until `not_after`, ends
/// within [`EXPIRY_WARNING`] of `now` (or has ended); seconds since the epoch.
pub fn expiry_warning(not_after: i64, now: i64) -> Option<String> {
    if now < not_after.saturating_sub(EXPIRY_WARNING) {
        return None;
    }
    let when = crate::crypto::cert::show_time(not_after);
    Some(if now >= not_after {
        format!(
            "our certificate expired at {when}: members refuse us; have the CA sign a new one (p2p-ca sign), put it in place and send p2pd SIGHUP"
        )
    } else {
        let days = (not_after - now) / 86_400;
        format!(
            "our certificate expires at {when} (in {days} day(s)): have the CA sign a new one (p2p-ca sign), put it in place and send p2pd SIGHUP"
        )
    })
}

fn gossip_loop(
    cluster: &Cluster,
    mut m: Membership,
    udp: UdpSocket,
    commands: Receiver<Command>,
    woken: UnixDatagram,
) {
    let mut identity = cluster.identity();
    let mut identity_generation = cluster.identity_generation.load(Ordering::Acquire);
    let mut signer = signer_of(identity.as_ref());
    let mut generation = cluster.ring_generation.load(Ordering::Acquire);
    let mut cipher = GossipCipher::new(&cluster.ring());
    let mut endpoint = gossip_endpoint(m.me());
    let mut buf = vec![0u8; 65536];
    let mut last_changes = Instant::now();
    // Our certificate's expiry is looked at now and once a day.
    let mut expiry_checked: Option<Instant> = None;
    loop {
        let current = cluster.identity_generation.load(Ordering::Acquire);
        if current != identity_generation {
            // A SIGHUP changed who we are: sign with the new certificate
            // (or not at all), and take gossip as its mode says.
            identity_generation = current;
            identity = cluster.identity();
            signer = signer_of(identity.as_ref());
            m.set_mode(
                identity.is_some(),
                identity.as_ref().is_some_and(|id| id.accept_uncertified),
            );
            expiry_checked = None;
        }
        if let Some(id) = &identity
            && expiry_checked.is_none_or(|t| t.elapsed() >= EXPIRY_CHECK_EVERY)
        {
            expiry_checked = Some(Instant::now());
            let now_s = jiff::Timestamp::now().as_second();
            if let Some(warning) = expiry_warning(id.cert.body().not_after, now_s) {
                log::warn!("{warning}");
            }
        }
        let current = cluster.ring_generation.load(Ordering::Acquire);
        if current != generation {
            generation = current;
            cipher = GossipCipher::new(&cluster.ring());
        }
        // Asleep until the next timer, a datagram or a command; changes
        // heard are reported within CHANGES_EVERY.
        let now = Instant::now();
        let mut until = m.next_deadline().unwrap_or(now + IDLE_WAKE);
        if m.has_news() {
            until = until.min(last_changes + CHANGES_EVERY);
        }
        let readable = wait_readable(&udp, &woken, until.saturating_duration_since(now));
        if readable.1 {
            while woken.recv(&mut buf).is_ok() {}
        }
        // A burst is taken whole before the timers run, a bounded one.
        for _ in 0..if readable.0 { DATAGRAMS_PER_WAKE } else { 0 } {
            let (n, from) = match udp.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::debug!("gossip socket: {e}");
                    break;
                }
            };
            let unsigned = buf.first() != Some(&SIGNED_VERSION);
            let opened = match (&signer, cluster.certs.get()) {
                // Moving to certificates: members without one still gossip
                // unsigned, as key holders (see Membership::accept_unsigned).
                (Some(_), Some(_))
                    if unsigned && identity.as_ref().is_some_and(|id| id.accept_uncertified) =>
                {
                    cipher.open(&mut endpoint, &buf[..n]).map(|p| (p, None))
                }
                (Some(_), Some(certs)) => {
                    let now_s = jiff::Timestamp::now().as_second();
                    match certs.lock() {
                        Ok(mut c) => signed::open(&cipher, &mut endpoint, &buf[..n], &mut c, now_s),
                        Err(_) => Err(OpenError::UnknownSigner),
                    }
                    .map(|s| (s.payload, Some(s.signer)))
                }
                // Without a CA, a member that has one is a key holder like
                // any other: its signature is not ours to check.
                _ if !unsigned => {
                    signed::open_unverified(&cipher, &mut endpoint, &buf[..n]).map(|p| (p, None))
                }
                _ => cipher.open(&mut endpoint, &buf[..n]).map(|p| (p, None)),
            };
            match opened {
                Ok((_, Some(signer))) if cluster.admit(Some(&signer)).is_err() => {
                    // Signed by a certificate the CA revoked: whatever it
                    // says, from whatever name, is dropped.
                    cluster.counters.rejected(Rejected::Revoked);
                    logging::hostile(
                        Level::Warn,
                        "revoked",
                        format_args!(
                            "dropped a datagram from {from} signed by {} (serial {:016x}), whose certificate is revoked",
                            untrusted(&signer.name),
                            signer.serial
                        ),
                    );
                }
                Ok((payload, Some(signer))) => {
                    m.handle_signed(&payload, &signer.name, Instant::now());
                }
                Ok((payload, None)) => m.handle_payload(&payload, Instant::now()),
                Err(OpenError::UnknownSigner) => {
                    // A member we have not met: our question carries our
                    // certificate, its answer its own.
                    cluster.counters.rejected(Rejected::Authentication);
                    log::debug!(
                        "a datagram from {from} is signed by a member we do not know yet; asking it"
                    );
                    m.ask(from, Instant::now());
                }
                Err(e) => {
                    cluster.counters.rejected(match e {
                        OpenError::Unauthenticated
                        | OpenError::UnknownSigner
                        | OpenError::BadSignature => Rejected::Authentication,
                        OpenError::Replayed(_) => Rejected::Replay,
                        OpenError::NotForUs => Rejected::Misaddressed,
                        OpenError::TooShort | OpenError::UnknownVersion => Rejected::Malformed,
                    });
                    logging::hostile(
                        Level::Warn,
                        "datagram",
                        format_args!(
                            "dropped a datagram from {from} that failed authentication: {e}"
                        ),
                    );
                }
            }
        }
        for news in m.take_news() {
            let verdict = cluster.revise(Source::Member, |r| r.hear(&news));
            cluster.count_news(verdict);
        }
        m.handle_timers(Instant::now());
        cluster.counters.set_health(m.health());
        let mut leave_ack = None;
        while let Ok(cmd) = commands.try_recv() {
            let now = Instant::now();
            match cmd {
                Command::Joined(nodes) => {
                    let first = nodes.first().cloned();
                    m.apply_alive(nodes, now);
                    if let Some(f) = first {
                        m.announce(f, now);
                    }
                }
                Command::Add(node) => m.apply_alive(vec![node], now),
                Command::Leave(ack) => {
                    m.leave(now);
                    leave_ack = Some(ack);
                }
                Command::Records(reply) => {
                    let _ = reply.send(m.records());
                }
                Command::ApplyRecords(records, from) => {
                    m.apply_alive(vec![from], now);
                    m.apply_records(records, now);
                }
                Command::Revoked(names, spread) => {
                    m.set_revoked(names, now);
                    if let Some((news, all)) = spread {
                        m.spread(&news, all);
                    }
                }
                Command::SetTags(tags) => {
                    m.set_tags(tags, now);
                    if let Ok(mut me) = cluster.me.write() {
                        *me = m.me().clone();
                    }
                }
            }
        }
        for (to, payload) in m.take_outbox() {
            if let Some(s) = &signer
                && membership::wants_certificate(&payload)
                && !s.fits_with(payload.len())
                && let Ok(slot) = cluster.introduce.lock()
                && let Some(tx) = slot.as_ref()
            {
                let _ = tx.send(to);
            }
            let sealed = match &signer {
                Some(s) => signed::seal(
                    &cipher,
                    &mut endpoint,
                    &to,
                    &payload,
                    s,
                    membership::wants_certificate(&payload),
                ),
                None => cipher.seal(&mut endpoint, &to, &payload),
            };
            if !sealed.is_empty() && sealed.len() <= MAX_DATAGRAM {
                send_datagram(&udp, &sealed, to);
            }
        }
        if let Some(ack) = leave_ack {
            let _ = ack.send(());
        }
        for alarm in m.take_alarms() {
            match alarm {
                Alarm::Refused(_) | Alarm::Impersonation { .. } => {
                    cluster.counters.rejected(Rejected::Identity)
                }
                Alarm::Revoked(_) => cluster.counters.rejected(Rejected::Revoked),
                Alarm::Refuted { .. } => {}
            }
            log_alarm(&alarm);
        }
        // Comparing member lists costs O(members); once per tick is plenty,
        // not once per datagram.
        if last_changes.elapsed() < CHANGES_EVERY {
            continue;
        }
        last_changes = Instant::now();
        let events = m.changes(Instant::now());
        let forgotten = m.take_forgotten();
        if !forgotten.is_empty()
            && let Ok(mut members) = cluster.members.write()
        {
            membership::follow(&mut members, &[], &forgotten);
        }
        if !events.is_empty() {
            for e in &events {
                log::info!(
                    "member {} {} ({})",
                    untrusted(&e.member.name),
                    e.event,
                    e.member.addr
                );
                logging::trail(
                    "member",
                    format_args!(
                        "member {} at {} is now {}, incarnation {}, {} tag(s)",
                        untrusted(&e.member.name),
                        e.member.addr,
                        e.member.state.as_str(),
                        e.member.incarnation,
                        e.member.tags.len()
                    ),
                );
            }
            if let Ok(mut members) = cluster.members.write() {
                membership::follow(&mut members, &events, &[]);
            }
            // Our own identity may have moved on (new tags, or a new
            // incarnation after being declared down).
            if let Ok(mut me) = cluster.me.write() {
                if *me != *m.me() {
                    *me = m.me().clone();
                }
            }
            if let Ok(mut watchers) = cluster.watchers.lock() {
                watchers.retain(|w| events.iter().all(|e| w.send(e.clone()).is_ok()));
            }
        }
    }
}

/// What signs our datagrams with `identity`'s key, if we have one.
fn signer_of(identity: Option<&Arc<Identity>>) -> Option<Signer> {
    let signer = Signer::new(Arc::clone(identity?));
    if !signer.fits_with(ANSWER_ROOM) {
        log::warn!(
            "our certificate is too large to ride along with gossip datagrams (too many groups): \
             members that ask who we are learn it from a TCP session with us instead"
        );
    }
    Some(signer)
}

/// Room for our identity in a who/self datagram: a certificate that does
/// not fit beside it is shown over TCP instead.
const ANSWER_ROOM: usize = 1 + 512;

/// How often one member is met over TCP to show it our certificate.
const INTRODUCE_EVERY: Duration = Duration::from_secs(10);

/// Shows our certificate, too large for gossip, to the members that asked
/// who we are: a sync with each (its handshake carries the certificates both
/// ways), at most every [`INTRODUCE_EVERY`] per member.
fn introduce_loop(cluster: &Arc<Cluster>, asked: &Receiver<SocketAddr>) {
    let mut last: std::collections::HashMap<SocketAddr, Instant> = std::collections::HashMap::new();
    while let Ok(addr) = asked.recv() {
        let now = Instant::now();
        last.retain(|_, t| now.saturating_duration_since(*t) < INTRODUCE_EVERY);
        if last.contains_key(&addr) {
            continue;
        }
        last.insert(addr, now);
        match cluster.sync_with(addr) {
            Ok(_) => log::debug!("showed our certificate to {addr} over TCP"),
            Err(e) => log::debug!("showing our certificate to {addr}: {e}"),
        }
    }
}

/// The longest the gossip loop sleeps with no timer set (after a leave).
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// The most datagrams taken in one turn of the gossip loop.
const DATAGRAMS_PER_WAKE: usize = 64;

/// Waits up to `timeout` for the gossip socket or the wake socket to be
/// readable: (gossip, wake). An error or a signal counts as neither.
fn wait_readable(udp: &UdpSocket, woken: &UnixDatagram, timeout: Duration) -> (bool, bool) {
    let mut fds = [udp.as_raw_fd(), woken.as_raw_fd()].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // Rounded up, so that a timer is not polled for in a busy loop just
    // before it is due.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid array of two pollfd for the whole call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n <= 0 {
        return (false, false);
    }
    let ready = |p: &libc::pollfd| p.revents & (libc::POLLIN | libc::POLLERR) != 0;
    (ready(&fds[0]), ready(&fds[1]))
}

/// Sends one datagram on the non-blocking gossip socket. A full send
/// buffer (a leave notice to every member at once) is waited out briefly,
/// as a blocking send would; after that the datagram is lost, as UDP's are.
fn send_datagram(udp: &UdpSocket, datagram: &[u8], to: SocketAddr) {
    for _ in 0..2 {
        match udp.send_to(datagram, to) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut fd = libc::pollfd {
                    fd: udp.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the whole call.
                unsafe { libc::poll(&mut fd, 1, 50) };
            }
            _ => return,
        }
    }
}

/// The wall clock in ms since the Unix epoch, as incarnations count.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn log_alarm(alarm: &Alarm) {
    match alarm {
        Alarm::Refused(e) => logging::hostile(
            Level::Warn,
            "identity",
            format_args!("dropped what a member sent: an identity out of bounds: {e}"),
        ),
        Alarm::Revoked(name) => logging::hostile(
            Level::Warn,
            "revoked",
            format_args!(
                "dropped a datagram from {}, whose certificate is revoked",
                untrusted(name)
            ),
        ),
        Alarm::Refuted { claim, incarnation } => logging::hostile(
            Level::Warn,
            "claim",
            format_args!(
                "another identity claims our name or address: {} at {} with incarnation {}; \
                 we took incarnation {incarnation} to win it back",
                untrusted(&claim.name),
                claim.addr,
                claim.incarnation
            ),
        ),
        Alarm::Impersonation { signer, claimed } => logging::hostile(
            Level::Warn,
            "impersonation",
            format_args!(
                "dropped a datagram that the member certified as {} sent in the name of {}",
                untrusted(signer),
                untrusted(claimed)
            ),
        ),
    }
}

impl Cluster {
    /// Whether member `m` still answers at its address: a session opens
    /// there within [`MOVE_PROBE_TIMEOUT`] (and, certified, its peer's
    /// certificate names `m`).
    fn still_answers(&self, m: &MemberInfo) -> bool {
        let dial = || {
            let stream = TcpStream::connect_timeout(&m.addr, MOVE_PROBE_TIMEOUT)?;
            let _ = stream.set_read_timeout(Some(MOVE_PROBE_TIMEOUT));
            let _ = stream.set_write_timeout(Some(MOVE_PROBE_TIMEOUT));
            Ok(stream)
        };
        match self.open_session(dial) {
            Ok(s) => s.peer().is_none_or(|p| p.name == m.name),
            Err(e) => {
                log::debug!(
                    "{} at {}: {}",
                    untrusted(&m.name),
                    m.addr,
                    session_message(e)
                );
                false
            }
        }
    }

    /// Answers a node joining through us: the member list, or a refusal
    /// when its identity is out of bounds or its name is taken by another
    /// live member.
    pub(crate) fn join_reply(&self, node: Node) -> JoinReply {
        let cluster = self;
        if let Err(e) = node.check(max_incarnation(unix_ms())) {
            logging::hostile(
                Level::Warn,
                "join",
                format_args!(
                    "refused a join from {} at {}: {e}",
                    untrusted(&node.name),
                    node.addr
                ),
            );
            return JoinReply::refusal(format!("this identity is refused: {e}"), false);
        }
        let members = cluster.members();
        let clash = members.iter().find(|m| {
            m.name == node.name
                && m.addr != node.addr
                && matches!(m.state, MemberState::Alive | MemberState::Suspect)
        });
        if let Some(m) = clash
            && !self.still_answers(m)
        {
            // A host back under its name at another address (a new DHCP
            // lease)? Its old address is silent, but SWIM has not found it
            // down yet: a member only stalled for a moment must not lose
            // its name. The joiner tries again, and gets in once it is.
            log::info!(
                "{} at {} joins under the name of the member at {}, which does not answer; \
                 it may once that member is found down",
                untrusted(&node.name),
                node.addr,
                m.addr
            );
            return JoinReply::refusal(
                format!(
                    "the name {} is held by the member at {}, which does not answer: \
                     this node gets in once the cluster finds that member down",
                    node.name, m.addr
                ),
                true,
            );
        }
        if let Some(m) = clash {
            logging::hostile(
                Level::Warn,
                "join",
                format_args!(
                    "refused {} at {}: the name is taken by {}",
                    untrusted(&node.name),
                    node.addr,
                    m.addr
                ),
            );
            return JoinReply::refusal(
                format!(
                    "the name {} is already used by the member at {}; give this node another --name",
                    node.name, m.addr
                ),
                false,
            );
        }
        let mut list: Vec<Node> = vec![cluster.me()];
        list.extend(
            members
                .into_iter()
                // Revoked members too: the joiner learns them from the
                // news in this reply, and lists them so.
                .filter(|m| {
                    !m.is_self
                        && matches!(
                            m.state,
                            MemberState::Alive | MemberState::Suspect | MemberState::Revoked
                        )
                })
                .map(|m| Node {
                    name: m.name,
                    addr: m.addr,
                    incarnation: m.incarnation,
                    tags: m.tags,
                }),
        );
        logging::trail(
            "join",
            format_args!(
                "{} at {} joins through us; sending it {} member(s)",
                untrusted(&node.name),
                node.addr,
                list.len()
            ),
        );
        cluster.command(Command::Add(node));
        JoinReply {
            members: list,
            error: None,
            revoked: self.news_b64(),
            retry: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_warning_starts_two_weeks_before() {
        let end = 1_800_000_000;
        assert_eq!(expiry_warning(end, end - EXPIRY_WARNING - 1), None);
        assert_eq!(expiry_warning(end, end - 365 * 86_400), None);
        let w = expiry_warning(end, end - EXPIRY_WARNING).unwrap();
        assert!(w.contains("in 14 day(s)"), "{w}");
        assert!(w.contains("2027-01-15T08:00:00Z"), "{w}");
        let w = expiry_warning(end, end - 3600).unwrap();
        assert!(w.contains("in 0 day(s)"), "{w}");
        let w = expiry_warning(end, end).unwrap();
        assert!(w.contains("expired at"), "{w}");
        // Far-off or odd dates never overflow.
        assert_eq!(expiry_warning(i64::MAX, 0), None);
        assert!(expiry_warning(i64::MIN, 0).is_some());
    }
}

//! Gossip membership: SWIM through `foca`, kept free of sockets and clocks.
//!
//! [`Membership`] owns the foca state machine and its timers. The caller
//! feeds it datagram payloads and the current time and takes back what to
//! send and when to wake up; the daemon's event loop does the I/O (see
//! `daemon::cluster`), and the tests drive several nodes in memory.
//!
//! A node's identity is its name, advertised address, tags and an
//! incarnation taken from the wall clock at start, so a restarted node always
//! comes back with a higher incarnation and wins over its old self. Besides
//! foca's messages, a node about to leave sends a short leave notice to every
//! member, so the others can show it as `left` rather than `down`; each
//! member passes a notice on, once, to a few others, so one lost datagram
//! does not leave a member showing the departure as a failure.
//!
//! Every identity heard is checked against the bounds of [`identity`]; a
//! datagram or record carrying one out of bounds is dropped. A member that
//! hears another identity claim its name or address with an incarnation not
//! below its own (a forged join, or a copy of itself) takes an incarnation
//! above the claim at once, which wins its name back everywhere.
//!
//! With a cluster CA ([`Membership::certify`]), every payload comes with
//! the certified name that signed its datagram, and a member asserts only
//! its own identity: see [`proof`].
//! Members the CA has revoked (by name, as [`crate::revocation`] finds
//! them) are shown `revoked` and kept out: what they send is dropped, any
//! identity of theirs heard alive is declared down at once, and neither a
//! join nor a sync brings them back. The revocation news itself rides in
//! datagrams of its own kind, which the daemon verifies and has passed on.

mod identity;
mod proof;

pub use identity::{
    IdentityError, MAX_AHEAD_MS, MAX_NAME, MAX_TAG_BYTES, MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS,
    Node, check_name, check_tag, check_tags, max_incarnation,
};

use foca::{
    AccumulatingRuntime, Codec, Config, Foca, Member, Message, NoCustomBroadcast,
    OwnedNotification, PeriodicParams, PostcardCodec, State, Timer,
};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::hash::Hash;
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::{Duration, Instant};

/// A member's state as `p2p-peers` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    Alive,
    Suspect,
    Down,
    Left,
    /// Its certificate is revoked by the CA: cut off, whatever it says.
    Revoked,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
            MemberState::Revoked => "revoked",
        }
    }
}

/// One line of `p2p-peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub name: String,
    pub addr: SocketAddr,
    pub state: MemberState,
    pub incarnation: u64,
    pub tags: BTreeMap<String, String>,
    #[serde(rename = "self")]
    pub is_self: bool,
    /// Since when (ms since the Unix epoch, by this node's clock) this node
    /// has seen the member in its current state; shown as RFC 3339, UTC,
    /// to the second. None until this node has compared its member list
    /// once after hearing of it (see [`Membership::changes`]).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339")]
    pub since: Option<u64>,
}

/// `since` on the wire: `2026-12-02T04:10:03Z`.
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&super::rfc3339_of(*ms)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let t: jiff::Timestamp = text.parse().map_err(serde::de::Error::custom)?;
        Ok(u64::try_from(t.as_millisecond()).ok())
    }
}

/// A time in ms since the Unix epoch as RFC 3339, UTC, to the second.
pub fn rfc3339_of(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.to_string(),
        Err(_) => format!("@{secs}"),
    }
}

/// A change in the member list, for `p2p-peers --watch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEvent {
    /// `join`, `leave`, `fail`, `revoke` or `update`.
    pub event: String,
    #[serde(flatten)]
    pub member: MemberInfo,
}

/// Timings. The defaults are Serf's LAN profile (memberlist's) except the
/// gossip round, 100 ms rather than 200: foca gossips only while it has
/// updates to pass on, so the shorter round costs nothing in a quiet
/// cluster and halves how long a join, leave or failure takes to reach
/// everyone (measured in bench/SIMULATION.md), for the same number of
/// datagrams per update.
#[derive(Debug, Clone)]
pub struct Timings {
    pub gossip_interval: Duration,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    /// How long a suspect has to refute before it is declared down.
    pub suspicion: Duration,
    /// How often a node announces itself to a random member, healing partitions.
    pub announce_interval: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            gossip_interval: Duration::from_millis(100),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            suspicion: Duration::from_secs(2),
            announce_interval: Duration::from_secs(30),
        }
    }
}

/// Kinds of payload inside a sealed datagram.
const KIND_FOCA: u8 = 0;
const KIND_LEAVE: u8 = 1;
/// Certified mode: "who are you?", carrying the asker's own identity.
const KIND_WHO: u8 = 2;
/// Certified mode: the answer, the sender's own identity.
const KIND_SELF: u8 = 3;

/// Whether a payload should carry its sender's certificate: the question
/// and the answer of [`proof`], which are how two certified members that
/// have not met learn each other's certificates.
pub fn wants_certificate(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(&KIND_WHO | &KIND_SELF))
}
/// Revocation news ([`crate::revocation`]), for the daemon to verify.
const KIND_REVOKED: u8 = 4;

/// How many members a member passes news it heard first on to.
const NEWS_RELAY: usize = 3;

/// Most pieces of revocation news kept until the daemon takes them.
const MAX_NEWS: usize = 16;

/// How many times each update is passed on: foca's LAN rule, 4·log10(N+1),
/// for N = 1,024 members, the large clusters SPEC aims at. Sized for 64
/// (7 sends), one member in a hundred missed an update now and then
/// (bench/cluster.sh), while the extra sends cost little in small clusters.
pub const MAX_TRANSMISSIONS: u8 = 12;

/// How many members a node passes a newly heard leave notice on to.
const LEAVE_RELAY: usize = 3;

/// The most a node's own ill health ([`Membership::health`]) stretches
/// what it times: probes and suspicions take up to `1 + MAX_HEALTH` times
/// as long (Lifeguard's bound on its local health multiplier).
pub const MAX_HEALTH: u32 = 8;

/// foca's settings: its LAN profile (memberlist's) with our timings. Written
/// out rather than taken from `Config::new_lan`, whose size-derived fields
/// are the only users of libm's `log10` in the daemon: without them the
/// binary does not load libm at all (0.4 MiB less resident per daemon).
fn swim_config(timings: &Timings) -> Config {
    let n = |v: usize| NonZeroUsize::new(v).unwrap_or(NonZeroUsize::MIN);
    Config {
        probe_period: timings.probe_interval,
        probe_rtt: timings.probe_timeout,
        num_indirect_probes: n(3),
        max_transmissions: NonZeroU8::new(MAX_TRANSMISSIONS).unwrap_or(NonZeroU8::MIN),
        suspect_to_down_after: timings.suspicion,
        remove_down_after: Some(Duration::from_secs(3600)),
        // Room for a signature in every mode: a member may become certified
        // while running (SIGHUP), and foca's datagram size cannot change
        // once it is made.
        max_packet_size: n(MAX_SIGNED_PAYLOAD),
        notify_down_members: true,
        periodic_announce: Some(PeriodicParams {
            frequency: timings.announce_interval,
            num_members: n(1),
        }),
        periodic_announce_to_down_members: Some(PeriodicParams {
            frequency: Duration::from_secs(65),
            num_members: n(2),
        }),
        // Gossip rounds are run by `Membership` itself, only while there
        // are updates to pass on: foca's own timer would wake every idle
        // member ten times a second for nothing.
        periodic_gossip: None,
    }
}

/// The largest payload foca may put in one datagram.
pub const MAX_PAYLOAD: usize = crate::crypto::gossip::MAX_PLAINTEXT - 1;

/// The same when datagrams are signed ([`crate::crypto::signed`]); foca's
/// datagrams are this large at most in every mode.
pub const MAX_SIGNED_PAYLOAD: usize = MAX_PAYLOAD - crate::crypto::signed::OVERHEAD;

/// The largest revocation news one datagram carries, signed.
pub const MAX_NEWS_BYTES: usize = MAX_SIGNED_PAYLOAD - 1;

type Swim = Foca<Node, PostcardCodec, SmallRng, NoCustomBroadcast>;

/// The membership state machine of one node.
pub struct Membership {
    foca: Swim,
    runtime: AccumulatingRuntime<Node>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_events: HashMap<u64, Timer<Node>>,
    next_timer: u64,
    /// Identities (name, incarnation) that announced a graceful leave.
    left: HashSet<(String, u64)>,
    /// The last snapshot, to tell what changed.
    last: BTreeMap<String, MemberInfo>,
    /// foca's member list, in foca's order, as [`Membership::changes`]
    /// last saw it: compared entry by entry (foca moves entries only when
    /// one joins or a probe round ends), so that only the members that
    /// changed are listed again, whatever the size of the cluster.
    seen: Vec<Seen>,
    /// Our own identity as `changes` last saw it.
    seen_me: Option<Node>,
    /// Members whose leave notice was heard since `changes` last looked.
    left_news: Vec<String>,
    /// Members foca forgot, found by `changes`, until taken.
    forgotten: Vec<String>,
    /// Something may have changed since [`Membership::changes`] last
    /// looked: a datagram, a timer that can change a state, or a call
    /// from the daemon. A quiet member list is then not compared at all,
    /// which keeps an idle member's cost from growing with the cluster.
    news: bool,
    /// How long between two gossip rounds.
    gossip_every: Duration,
    /// When the next gossip round is due: set while foca has updates to
    /// pass on (the first round at once), none while it has none.
    next_gossip: Option<Instant>,
    outbox: Vec<(SocketAddr, Vec<u8>)>,
    /// Picks whom to pass leave notices on to.
    rng: SmallRng,
    /// The wall clock, in ms since the Unix epoch, as it read at an
    /// instant (none: at creation, read from our own first incarnation).
    clock: (u64, Option<Instant>),
    /// What went wrong with what we heard, for the log; bounded.
    alarms: Vec<Alarm>,
    /// When we last refuted a claim on our name from another address.
    last_name_refute: Option<Instant>,
    /// Since when (wall-clock ms) each member has been in the state we last
    /// saw it in, by name; kept by [`Membership::changes`].
    since: HashMap<String, (MemberState, u64)>,
    /// This node has left the cluster: it takes part in nothing more. (A
    /// daemon takes a moment to exit, and meanwhile the others tell it
    /// that it is down; foca would then have it come back under a new
    /// incarnation, and the others would see a rejoin and then a failure
    /// instead of a leave.)
    gone: bool,
    /// Certified mode: the identities their owners showed (none in
    /// shared-key mode, where any key holder may assert anything).
    proven: Option<proof::Proven>,
    /// Certified mode, while moving to certificates: unsigned payloads,
    /// from members without a certificate yet, are taken as in shared-key
    /// mode, and what they name counts as shown.
    unsigned_too: bool,
    /// Names the CA has revoked: shown `revoked`, kept down.
    revoked: HashSet<String>,
    /// Revocation news heard, until the daemon takes it.
    news_heard: Vec<Vec<u8>>,
    /// How unwell this node finds itself, 0 to [`MAX_HEALTH`]: see
    /// [`Membership::health`].
    health: u32,
    /// How late a probe timer may run and still count as on time.
    late_after: Duration,
}

/// Something wrong in what the cluster told us, for the daemon's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alarm {
    /// A datagram or a record carried an identity out of bounds; dropped.
    Refused(IdentityError),
    /// Another identity claimed our name or address with an incarnation
    /// not below ours; we took `incarnation`, above it.
    Refuted { claim: Node, incarnation: u64 },
    /// Certified mode: the member certified as `signer` sent a datagram
    /// in the name of `claimed`; dropped.
    Impersonation { signer: String, claimed: String },
    /// A datagram from a revoked member (by the name it sends as); dropped.
    Revoked(String),
}

/// Most alarms kept until the daemon takes them; more are dropped (the log
/// is rate-limited anyway).
const MAX_ALARMS: usize = 64;

/// How often a claim on our name from another address is answered. Such a
/// claim may be a second daemon given our name by mistake: refuting at
/// once each time would have the two outbid each other without end.
const NAME_REFUTE_EVERY: Duration = Duration::from_secs(1);

/// One member's state as two members exchange it in a full sync (push/pull),
/// which repairs whatever gossip failed to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub node: Node,
    /// foca's refutation counter for this identity.
    pub refuted: u16,
    pub state: MemberState,
}

impl Membership {
    pub fn new(me: Node, timings: &Timings, seed: [u8; 32]) -> Membership {
        Membership::with_config(me, swim_config(timings), timings, seed)
    }

    fn with_config(me: Node, config: Config, timings: &Timings, seed: [u8; 32]) -> Membership {
        let clock = (me.incarnation, None);
        let foca = Foca::new(me, config, SmallRng::from_seed(seed), PostcardCodec);
        let mut relay_seed = seed;
        relay_seed[0] ^= 0x5a;
        let mut m = Membership {
            foca,
            runtime: AccumulatingRuntime::new(),
            timers: BinaryHeap::new(),
            timer_events: HashMap::new(),
            next_timer: 0,
            left: HashSet::new(),
            last: BTreeMap::new(),
            seen: Vec::new(),
            seen_me: None,
            left_news: Vec::new(),
            forgotten: Vec::new(),
            news: false,
            gossip_every: timings.gossip_interval,
            next_gossip: None,
            outbox: Vec::new(),
            rng: SmallRng::from_seed(relay_seed),
            clock,
            alarms: Vec::new(),
            last_name_refute: None,
            since: HashMap::new(),
            gone: false,
            proven: None,
            unsigned_too: false,
            revoked: HashSet::new(),
            news_heard: Vec::new(),
            health: 0,
            late_after: timings.probe_timeout / 2,
        };
        let me = m.me().name.clone();
        m.since.insert(me, (MemberState::Alive, m.clock.0));
        m.last = m.snapshot_map();
        m.seen = m.foca.iter_membership_state().map(Seen::of).collect();
        m.seen_me = Some(m.me().clone());
        m
    }

    /// A member of a certified cluster: payloads are taken only with the
    /// name of their signer ([`Membership::handle_signed`]), each member
    /// asserts only its own identity ([`proof`]), and foca's datagrams
    /// leave room for the signature.
    pub fn new_certified(me: Node, timings: &Timings, seed: [u8; 32]) -> Membership {
        let mut m = Membership::new(me, timings, seed);
        m.proven = Some(proof::Proven::default());
        m
    }

    /// Certified mode, while the cluster moves to certificates: takes
    /// unsigned payloads too ([`Membership::handle_payload`]), from members
    /// that hold the key but no certificate yet. What they say is taken as
    /// in shared-key mode, so the identities they name count as shown, and
    /// the rule that a member asserts only its own identity holds only once
    /// this is off again.
    pub fn accept_unsigned(&mut self) {
        self.unsigned_too = self.proven.is_some();
    }

    /// Changes mode while running (a SIGHUP that brings a certificate in
    /// or takes it out): `certified` as [`Membership::new_certified`], and
    /// `unsigned_too` as [`Membership::accept_unsigned`]. Becoming
    /// certified while still taking unsigned payloads, the identities
    /// known so far count as shown, as they would if they came again
    /// unsigned; becoming strictly certified, each is taken only once its
    /// owner shows it. The members known and their states stay.
    pub fn set_mode(&mut self, certified: bool, unsigned_too: bool) {
        match (certified, self.proven.is_some()) {
            (true, false) => {
                let mut p = proof::Proven::default();
                if unsigned_too {
                    for n in self.foca.iter_membership_state() {
                        p.prove(n.id());
                    }
                }
                self.proven = Some(p);
            }
            (false, true) => self.proven = None,
            _ => {}
        }
        self.unsigned_too = certified && unsigned_too;
    }

    /// Whether this member is one of a certified cluster.
    pub fn is_certified(&self) -> bool {
        self.proven.is_some()
    }

    /// This node's identity.
    pub fn me(&self) -> &Node {
        self.foca.identity()
    }

    /// Sets the wall clock: it read `unix_ms` at `now`. Incarnations more
    /// than [`MAX_AHEAD_MS`] ahead of it are refused. Without it, the clock
    /// is taken to stand still at our own first incarnation.
    pub fn set_clock(&mut self, unix_ms: u64, now: Instant) {
        if self.clock.1.is_none() {
            // We have been alive since the clock was first set.
            let me = self.me().name.clone();
            if let Some(shown) = self.last.get_mut(&me) {
                shown.since = Some(unix_ms);
            }
            self.since.insert(me, (MemberState::Alive, unix_ms));
        }
        self.clock = (unix_ms, Some(now));
    }

    /// The wall clock at `now`, in ms since the Unix epoch.
    fn wall_ms(&self, now: Instant) -> u64 {
        let (ms, at) = self.clock;
        let elapsed = at.map_or(0, |at| {
            u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX)
        });
        ms.saturating_add(elapsed)
    }

    /// The highest incarnation we accept now.
    pub fn max_incarnation(&self, now: Instant) -> u64 {
        max_incarnation(self.wall_ms(now))
    }

    /// What went wrong since the last call.
    pub fn take_alarms(&mut self) -> Vec<Alarm> {
        std::mem::take(&mut self.alarms)
    }

    fn alarm(&mut self, a: Alarm) {
        if self.alarms.len() < MAX_ALARMS {
            self.alarms.push(a);
        }
    }

    /// Checks identities heard: an error if one is out of bounds, else the
    /// highest claim on our name or address not below our incarnation.
    fn screen<'a>(
        &self,
        nodes: impl IntoIterator<Item = &'a Node>,
        now: Instant,
    ) -> Result<Option<Node>, IdentityError> {
        let me = self.me();
        let max = self.max_incarnation(now);
        let mut claim: Option<&Node> = None;
        for n in nodes {
            let about_me = n != me && (n.name == me.name || n.addr == me.addr);
            // A claim on us is seen up to a clock skew further ahead, so we
            // answer it even when the member that accepted it runs ahead of us.
            n.check(if about_me {
                max.saturating_add(MAX_AHEAD_MS)
            } else {
                max
            })?;
            if about_me
                && n.incarnation >= me.incarnation
                && claim.is_none_or(|c| n.incarnation > c.incarnation)
            {
                claim = Some(n);
            }
        }
        Ok(claim.cloned())
    }

    /// Answers a claim on our name or address: an incarnation above it,
    /// announced to the cluster at once (foca gossips an identity change).
    fn refute(&mut self, claim: Node, now: Instant) {
        if self.gone {
            return;
        }
        let me = self.me().clone();
        if claim.addr != me.addr {
            if self
                .last_name_refute
                .is_some_and(|t| now.saturating_duration_since(t) < NAME_REFUTE_EVERY)
            {
                return;
            }
            self.last_name_refute = Some(now);
        }
        let Some(incarnation) = claim.incarnation.max(me.incarnation).checked_add(1) else {
            return;
        };
        let new = Node { incarnation, ..me };
        if self.foca.change_identity(new, &mut self.runtime).is_ok() {
            self.alarm(Alarm::Refuted { claim, incarnation });
        }
    }

    /// The identities a foca datagram names: sender, receiver, the one in
    /// the message and those of its updates. None if it does not decode
    /// (foca then drops it itself).
    fn identities(data: &[u8]) -> Option<Vec<Node>> {
        let mut rest = data;
        let mut codec = PostcardCodec;
        let header: foca::Header<Node> = codec.decode_header(&mut rest).ok()?;
        let mut out = vec![header.src, header.dst];
        match header.message {
            Message::PingReq { target: n, .. }
            | Message::IndirectPing { origin: n, .. }
            | Message::IndirectAck { target: n, .. }
            | Message::ForwardedAck { origin: n, .. } => out.push(n),
            _ => {}
        }
        if let [hi, lo, tail @ ..] = rest {
            rest = tail;
            for _ in 0..u16::from_be_bytes([*hi, *lo]) {
                let m: Member<Node> = codec.decode_member(&mut rest).ok()?;
                out.push(m.id().clone());
            }
        }
        Some(out)
    }

    /// Starts joining through a known member.
    pub fn announce(&mut self, to: Node, now: Instant) {
        if self.gone {
            return;
        }
        if let Err(e) = to.check(self.max_incarnation(now)) {
            self.alarm(Alarm::Refused(e));
            return;
        }
        let _ = self.foca.announce(to, &mut self.runtime);
        self.drain(now);
    }

    /// Adds members learned elsewhere (the TCP join exchange) as alive.
    pub fn apply_alive(&mut self, nodes: Vec<Node>, now: Instant) {
        self.apply_alive_with(nodes, true, now);
    }

    /// Adds members as alive without gossiping them: for knowledge the
    /// others already share (a saved member list, a simulation's seeding),
    /// where gossiping every member to everyone would be a flood.
    /// In certified mode these are our own earlier knowledge, taken as shown.
    pub fn restore_alive(&mut self, nodes: Vec<Node>, now: Instant) {
        if let Some(p) = self.proven.as_mut() {
            nodes.iter().for_each(|n| p.prove(n));
        }
        self.apply_alive_with(nodes, false, now);
    }

    fn apply_alive_with(&mut self, nodes: Vec<Node>, broadcast: bool, now: Instant) {
        if self.gone {
            return;
        }
        let me = self.me().clone();
        let mut claim = None;
        let mut updates = Vec::with_capacity(nodes.len());
        let nodes: Vec<Node> = nodes.into_iter().filter(|n| *n != me).collect();
        for n in nodes {
            if !self.revoked.contains(&n.name) && !self.shown(&n, now) {
                continue;
            }
            match self.screen([&n], now) {
                // A revoked member is known, as down (so it is listed
                // revoked), never alive.
                Ok(_) if self.revoked.contains(&n.name) => {
                    updates.push(Member::new(n, 0, State::Down));
                }
                Ok(c) => {
                    claim = higher(claim, c);
                    updates.push(Member::alive(n));
                }
                Err(e) => self.alarm(Alarm::Refused(e)),
            }
        }
        let _ = self
            .foca
            .apply_many(updates.into_iter(), broadcast, &mut self.runtime);
        if let Some(c) = claim {
            self.refute(c, now);
        }
        self.drain(now);
    }

    /// Changes this node's tags: the node takes a new incarnation carrying
    /// them, and the others see an update.
    pub fn set_tags(&mut self, tags: BTreeMap<String, String>, now: Instant) {
        if self.gone {
            return;
        }
        let me = self.me();
        if me.tags == tags {
            return;
        }
        let Some(incarnation) = me.incarnation.checked_add(1) else {
            return;
        };
        let new = Node {
            incarnation,
            tags,
            ..me.clone()
        };
        let _ = self.foca.change_identity(new, &mut self.runtime);
        self.drain(now);
    }

    /// Takes one datagram's opened payload (shared-key mode; a certified
    /// member takes only [`Membership::handle_signed`], unless it
    /// [accepts unsigned ones](Membership::accept_unsigned) too).
    pub fn handle_payload(&mut self, payload: &[u8], now: Instant) {
        if self.gone || (self.proven.is_some() && !self.unsigned_too) {
            return;
        }
        match payload.split_first() {
            Some((&KIND_FOCA, rest)) => {
                let ids = Membership::identities(rest);
                let screened = match &ids {
                    Some(ids) => self.screen(ids, now),
                    None => Ok(None),
                };
                match screened {
                    Ok(claim) => {
                        if let (Some(p), Some(ids)) = (self.proven.as_mut(), &ids) {
                            for n in ids {
                                p.prove(n);
                            }
                        }
                        let _ = self.foca.handle_data(rest, &mut self.runtime);
                        if !self.revoked.is_empty()
                            && ids.is_some_and(|ids| {
                                ids.iter().any(|n| self.revoked.contains(&n.name))
                            })
                        {
                            self.keep_revoked_down();
                        }
                        if let Some(c) = claim {
                            self.refute(c, now);
                        }
                    }
                    Err(e) => self.alarm(Alarm::Refused(e)),
                }
            }
            Some((&KIND_LEAVE, rest)) => {
                if let Ok((name, incarnation)) = serde_json::from_slice::<(String, u64)>(rest) {
                    let leaver = (name, incarnation);
                    // Only notices about members we know are kept and
                    // passed on: made-up ones would pile up and be relayed.
                    let known = self
                        .foca
                        .iter_membership_state()
                        .any(|m| m.id().name == leaver.0 && m.id().incarnation == leaver.1);
                    if known && !self.left.contains(&leaver) {
                        // A certified member signs what it sends: it passes
                        // on no one else's notice.
                        if self.proven.is_none() {
                            self.relay_leave(&leaver, payload);
                        }
                        self.left_news.push(leaver.0.clone());
                        self.left.insert(leaver);
                    }
                }
            }
            _ => {}
        }
        self.drain(now);
    }

    /// Certified mode: whether `node` was shown by its owner (always so in
    /// shared-key mode, and for our own identity). If not, its owner is
    /// asked who it is, and the caller drops it.
    fn shown(&mut self, node: &Node, now: Instant) -> bool {
        let me = self.foca.identity();
        let Some(p) = self.proven.as_mut() else {
            return true;
        };
        if node == me || p.holds(node) {
            return true;
        }
        // Another identity of our own name, or at our address: we know
        // who we are.
        if node.name == me.name || node.addr == me.addr {
            return false;
        }
        let asks = p.addresses_to_ask(node, now);
        let who = self.own_payload(KIND_WHO);
        for addr in asks {
            self.outbox.push((addr, who.clone()));
        }
        false
    }

    /// Our identity as a payload of `kind` (a question or an answer).
    fn own_payload(&self, kind: u8) -> Vec<u8> {
        let mut p = vec![kind];
        p.extend(serde_json::to_vec(self.me()).unwrap_or_default());
        p
    }

    /// Certified mode: asks the member at `addr` who it is (its datagram
    /// was signed with a certificate we do not hold yet: our question
    /// carries ours, its answer its own).
    pub fn ask(&mut self, addr: SocketAddr, now: Instant) {
        if self.gone {
            return;
        }
        let Some(p) = self.proven.as_mut() else {
            return;
        };
        let probe = Node {
            name: String::new(),
            addr,
            incarnation: 0,
            tags: BTreeMap::new(),
        };
        if !p.addresses_to_ask(&probe, now).is_empty() {
            let who = self.own_payload(KIND_WHO);
            self.outbox.push((addr, who));
        }
    }

    /// Certified mode: takes one datagram's opened payload, signed by the
    /// member certified as `signer`. It may speak only for itself: a
    /// datagram in another name is dropped, and so is every update about
    /// an identity its owner has not shown us (whose owner we then ask).
    pub fn handle_signed(&mut self, payload: &[u8], signer: &str, now: Instant) {
        if self.gone || self.proven.is_none() {
            return;
        }
        if self.revoked.contains(signer) {
            self.alarm(Alarm::Revoked(signer.to_string()));
            return;
        }
        match payload.split_first() {
            Some((&KIND_FOCA, rest)) => self.handle_signed_foca(rest, signer, now),
            Some((&KIND_REVOKED, rest)) if self.news_heard.len() < MAX_NEWS => {
                self.news_heard.push(rest.to_vec());
            }
            Some((&KIND_LEAVE, rest)) => {
                // Only the leaver's own notice; relayed ones cannot be
                // told from made-up ones, so none is relayed.
                if let Ok((name, incarnation)) = serde_json::from_slice::<(String, u64)>(rest) {
                    if name != signer {
                        self.alarm(Alarm::Impersonation {
                            signer: signer.to_string(),
                            claimed: name,
                        });
                    } else {
                        let leaver = (name, incarnation);
                        let known = self
                            .foca
                            .iter_membership_state()
                            .any(|m| m.id().name == leaver.0 && m.id().incarnation == leaver.1);
                        if known && !self.left.contains(&leaver) {
                            self.left_news.push(leaver.0.clone());
                            self.left.insert(leaver);
                        }
                    }
                }
            }
            Some((&kind @ (KIND_WHO | KIND_SELF), rest)) => {
                let Ok(node) = serde_json::from_slice::<Node>(rest) else {
                    return;
                };
                if node.name != signer {
                    self.alarm(Alarm::Impersonation {
                        signer: signer.to_string(),
                        claimed: node.name,
                    });
                    return;
                }
                if node == *self.me() || node.addr == self.me().addr {
                    return;
                }
                if let Err(e) = self.screen([&node], now) {
                    self.alarm(Alarm::Refused(e));
                    return;
                }
                let answer = match self.proven.as_mut() {
                    Some(p) => {
                        p.prove(&node);
                        kind == KIND_WHO && p.may_answer(node.addr, now)
                    }
                    None => false,
                };
                if answer {
                    let mine = self.own_payload(KIND_SELF);
                    self.outbox.push((node.addr, mine));
                }
                self.apply_alive_with(vec![node], true, now);
            }
            _ => {}
        }
        self.drain(now);
    }

    fn handle_signed_foca(&mut self, data: &[u8], signer: &str, now: Instant) {
        let mut rest = data;
        let mut codec = PostcardCodec;
        let Ok(header) = codec.decode_header(&mut rest) else {
            return;
        };
        let header: foca::Header<Node> = header;
        if header.src.name != signer {
            self.alarm(Alarm::Impersonation {
                signer: signer.to_string(),
                claimed: header.src.name,
            });
            return;
        }
        // Bounds first, on everything named, as in shared-key mode.
        let claim = match Membership::identities(data).map(|ids| self.screen(&ids, now)) {
            Some(Ok(claim)) => claim,
            Some(Err(e)) => {
                self.alarm(Alarm::Refused(e));
                return;
            }
            None => return,
        };
        if let Some(p) = self.proven.as_mut() {
            p.prove(&header.src);
        }
        let header_len = data.len() - rest.len();
        let mut filtered = None;
        if let [hi, lo, tail @ ..] = rest {
            let mut tail = tail;
            let count = u16::from_be_bytes([*hi, *lo]);
            let mut kept = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                let Ok(m) = codec.decode_member(&mut tail) else {
                    return;
                };
                let m: Member<Node> = m;
                if self.shown(m.id(), now) {
                    kept.push(m);
                }
            }
            if kept.len() < usize::from(count) {
                let mut out = data[..header_len].to_vec();
                out.extend_from_slice(&u16::try_from(kept.len()).unwrap_or(0).to_be_bytes());
                for m in &kept {
                    if codec.encode_member(m, &mut out).is_err() {
                        return;
                    }
                }
                out.extend_from_slice(tail);
                filtered = Some(out);
            }
        }
        let _ = self
            .foca
            .handle_data(filtered.as_deref().unwrap_or(data), &mut self.runtime);
        // Another member, not told yet, may vouch for a revoked one: it
        // stays down here.
        if !self.revoked.is_empty()
            && Membership::identities(data)
                .is_some_and(|ids| ids.iter().any(|n| self.revoked.contains(&n.name)))
        {
            self.keep_revoked_down();
        }
        // Only a claim its owner showed is answered (a member that gives
        // its own identity our address); the others were dropped.
        if let Some(c) = claim
            && self.proven.as_ref().is_some_and(|p| p.holds(&c))
        {
            self.refute(c, now);
        }
    }

    /// Runs the timers that are due.
    pub fn handle_timers(&mut self, now: Instant) {
        if self.gone {
            return;
        }
        let news = self.news;
        let mut may_change = false;
        if let Some(at) = self.next_gossip
            && at <= now
        {
            self.next_gossip = if self.foca.updates_backlog() > 0 {
                let _ = self.foca.gossip(&mut self.runtime);
                Some(now + self.gossip_every)
            } else {
                None
            };
        }
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(t) = self.timer_events.remove(&id) {
                if let Timer::ProbeRandomMember(_) = t {
                    self.sense(now.saturating_duration_since(at));
                }
                // The periodic rounds only send; probes, suspicions and
                // removals change states.
                may_change |= !matches!(
                    t,
                    Timer::PeriodicGossip(_)
                        | Timer::PeriodicAnnounce(_)
                        | Timer::PeriodicAnnounceDown(_)
                );
                // foca 2.0.0 sends TurnUndead when this timer fires even if
                // the suspicion was refuted meanwhile, and the member then
                // rejoins under a new identity (a false fail + join for
                // everyone; bench/SIMULATION.md). Run it only while the
                // suspicion stands, which is foca's own intended condition.
                if let Timer::ChangeSuspectToDown {
                    member_id,
                    incarnation,
                    ..
                } = &t
                {
                    let stands = self.foca.iter_membership_state().any(|m| {
                        m.id() == member_id
                            && m.state() == State::Suspect
                            && m.incarnation() == *incarnation
                    });
                    if !stands {
                        continue;
                    }
                }
                let _ = self.foca.handle_timer(t, &mut self.runtime);
            }
        }
        self.drain(now);
        self.news = news || may_change;
    }

    /// How unwell this node finds itself, from 0 (well) to [`MAX_HEALTH`]:
    /// Lifeguard's local health (Dadgar et al., "Lifeguard: Local Health
    /// Awareness for More Accurate Failure Detection", 2018), as far as
    /// foca lets it be kept from outside. A node starved of CPU runs its
    /// timers late and reads its datagrams late; its probes then time out
    /// on members that did answer, and its refutations come too late, and
    /// SWIM turns that into false failures which, gossiped and refuted,
    /// load every member further. So each probe timer that runs more than
    /// half a probe timeout late raises the score by one, each that runs on
    /// time lowers it by one, and being declared down raises it by one;
    /// the probes and suspicions this node times then wait `1 + health`
    /// times as long (see [`Membership::stretch`]).
    pub fn health(&self) -> u32 {
        self.health
    }

    /// One probe timer ran `late` after it was due.
    fn sense(&mut self, late: Duration) {
        self.health = if late > self.late_after {
            (self.health + 1).min(MAX_HEALTH)
        } else {
            self.health.saturating_sub(1)
        };
    }

    /// How long foca's timer `timer`, asked for `after`, is really given:
    /// the probe period, the wait for a direct answer and the suspicion
    /// take `1 + health` times as long ([`Membership::health`]). A well
    /// node keeps the timings as set: SWIM's detection time, which SPEC
    /// bounds, is that of a cluster with time to spare. (memberlist also
    /// grows the suspicion with log10 of the cluster's size; at 1,000
    /// members that would be 1.5 times ours, past the 5 s bound on a
    /// crash seen by all, and bench/SIMULATION.md finds no false downs at
    /// 1,000 with ours while members run on time.)
    fn stretch(&self, timer: &Timer<Node>, after: Duration) -> Duration {
        match timer {
            Timer::ProbeRandomMember(_)
            | Timer::SendIndirectProbe { .. }
            | Timer::ChangeSuspectToDown { .. } => after * (1 + self.health),
            _ => after,
        }
    }

    /// Whether [`Membership::changes`] may have something to report.
    pub fn has_news(&self) -> bool {
        self.news
    }

    /// When the next timer is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        match (timer, self.next_gossip) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Leaves gracefully: a leave notice to every known member, then foca's leave.
    pub fn leave(&mut self, now: Instant) {
        if self.gone {
            return;
        }
        let me = self.me().clone();
        let mut notice = vec![KIND_LEAVE];
        notice.extend(serde_json::to_vec(&(&me.name, me.incarnation)).unwrap_or_default());
        for m in self.foca.iter_members() {
            self.outbox.push((m.id().addr, notice.clone()));
        }
        let _ = self.foca.leave_cluster(&mut self.runtime);
        // foca reports itself defunct on leaving; `drain` must not revive it.
        self.gone = true;
        self.drain(now);
        self.timers.clear();
        self.timer_events.clear();
        self.next_gossip = None;
    }

    /// Passes a leave notice heard for the first time on to a few random
    /// live members other than the leaver.
    fn relay_leave(&mut self, leaver: &(String, u64), notice: &[u8]) {
        let mut others: Vec<SocketAddr> = self
            .foca
            .iter_members()
            .map(|m| m.id())
            .filter(|n| n.name != leaver.0)
            .map(|n| n.addr)
            .collect();
        for i in 0..others.len().min(LEAVE_RELAY) {
            let j = self.rng.random_range(i..others.len());
            others.swap(i, j);
            self.outbox.push((others[i], notice.to_vec()));
        }
    }

    /// The members the CA has revoked from now on, by name (the whole set:
    /// a name left out is no longer revoked). Their identities heard alive
    /// are declared down at once, and their listings change to `revoked`.
    pub fn set_revoked(&mut self, names: impl IntoIterator<Item = String>, now: Instant) {
        let names: HashSet<String> = names.into_iter().collect();
        if names == self.revoked {
            return;
        }
        self.left_news
            .extend(names.symmetric_difference(&self.revoked).cloned());
        // A member no longer revoked (it showed a renewed certificate) was
        // held down here and, its datagrams dropped, may hold us down too:
        // an announce to it has each side learn it was declared down and
        // come back under a new incarnation.
        let back: Vec<Node> = self
            .foca
            .iter_membership_state()
            .map(|m| m.id())
            .filter(|n| self.revoked.contains(&n.name) && !names.contains(&n.name))
            .cloned()
            .collect();
        self.revoked = names;
        self.keep_revoked_down();
        for n in back {
            let _ = self.foca.announce(n, &mut self.runtime);
        }
        self.drain(now);
    }

    /// Whether `name` is revoked.
    pub fn is_revoked(&self, name: &str) -> bool {
        self.revoked.contains(name)
    }

    /// Declares down every identity of a revoked name that foca holds as
    /// up. Not gossiped: every member learns the revocation itself.
    fn keep_revoked_down(&mut self) {
        let up: Vec<Member<Node>> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() != State::Down && self.revoked.contains(&m.id().name))
            .map(|m| Member::new(m.id().clone(), m.incarnation(), State::Down))
            .collect();
        if !up.is_empty() {
            let _ = self
                .foca
                .apply_many(up.into_iter(), false, &mut self.runtime);
            self.news = true;
        }
    }

    /// Revocation news heard since the last call, for the daemon to verify
    /// (and to pass on with [`Membership::spread`] if it is news to us).
    pub fn take_news(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.news_heard)
    }

    /// Sends revocation news: to every live member not revoked (`all`, from
    /// the member that installed it), else to a few picked at random (news
    /// heard for the first time, passed on).
    pub fn spread(&mut self, news: &[u8], all: bool) {
        if self.gone {
            return;
        }
        let mut payload = Vec::with_capacity(news.len() + 1);
        payload.push(KIND_REVOKED);
        payload.extend_from_slice(news);
        let mut to: Vec<SocketAddr> = self
            .foca
            .iter_members()
            .map(|m| m.id())
            .filter(|n| !self.revoked.contains(&n.name))
            .map(|n| n.addr)
            .collect();
        if !all {
            let keep = to.len().min(NEWS_RELAY);
            for i in 0..keep {
                let j = self.rng.random_range(i..to.len());
                to.swap(i, j);
            }
            to.truncate(keep);
        }
        for addr in to {
            self.outbox.push((addr, payload.clone()));
        }
    }

    /// Datagram payloads to seal and send.
    pub fn take_outbox(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }

    /// What we know of every other member, for a full sync.
    pub fn records(&self) -> Vec<Record> {
        self.foca
            .iter_membership_state()
            .map(|m| {
                let n = m.id();
                let state = match m.state() {
                    State::Alive => MemberState::Alive,
                    State::Suspect => MemberState::Suspect,
                    State::Down if self.left.contains(&(n.name.clone(), n.incarnation)) => {
                        MemberState::Left
                    }
                    State::Down => MemberState::Down,
                };
                Record {
                    node: n.clone(),
                    refuted: m.incarnation(),
                    state,
                }
            })
            .collect()
    }

    /// Takes what another member knows, by foca's usual rules: newer
    /// news wins, a down identity stays down.
    pub fn apply_records(&mut self, records: Vec<Record>, now: Instant) {
        if self.gone {
            return;
        }
        let mut updates = Vec::with_capacity(records.len());
        let mut claim = None;
        let me = self.me().clone();
        for r in records {
            if self.revoked.contains(&r.node.name) && r.state != MemberState::Down {
                continue;
            }
            if r.node != me && !self.shown(&r.node, now) {
                continue;
            }
            if r.node == me {
                // What others think of us: foca's own business (a
                // suspicion to refute, a verdict to come back from).
            } else {
                match self.screen([&r.node], now) {
                    Ok(c) => claim = higher(claim, c),
                    Err(e) => {
                        self.alarm(Alarm::Refused(e));
                        continue;
                    }
                }
            }
            let state = match r.state {
                MemberState::Alive => State::Alive,
                MemberState::Suspect => State::Suspect,
                // Only the CA's own news revokes; from a member, it is down.
                MemberState::Down | MemberState::Revoked => State::Down,
                MemberState::Left => {
                    if self.left.insert((r.node.name.clone(), r.node.incarnation)) {
                        self.left_news.push(r.node.name.clone());
                    }
                    State::Down
                }
            };
            updates.push(Member::new(r.node, r.refuted, state));
        }
        let _ = self
            .foca
            .apply_many(updates.into_iter(), true, &mut self.runtime);
        if let Some(c) = claim {
            self.refute(c, now);
        }
        self.drain(now);
    }

    /// Every known member, by name.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.snapshot_map().into_values().collect()
    }

    /// One member's state as [`Membership::members`] would show it, found
    /// without building the whole list: cheap enough to poll on every node
    /// of a simulated cluster of thousands.
    pub fn state_of(&self, name: &str) -> Option<MemberState> {
        if self.revoked.contains(name) {
            return Some(MemberState::Revoked);
        }
        if self.me().name == name {
            return Some(MemberState::Alive);
        }
        self.foca
            .iter_membership_state()
            .filter(|m| m.id().name == name)
            .max_by_key(|m| m.id().incarnation)
            .map(|m| self.state(m))
    }

    /// Members known to be up, to send to a joining node.
    pub fn live_nodes(&self) -> Vec<Node> {
        let mut v = vec![self.me().clone()];
        v.extend(self.foca.iter_members().map(|m| m.id().clone()));
        v
    }

    /// The changes since the last call, as watch events; `now` is when it
    /// is called, and becomes the `since` of every member whose state
    /// changed (or that is new). The daemon calls it every few tens of
    /// milliseconds, so `since` is that close to when the news arrived.
    pub fn changes(&mut self, at: Instant) -> Vec<MemberEvent> {
        if !std::mem::take(&mut self.news) {
            return Vec::new();
        }
        let touched = self.touched();
        if touched.is_empty() {
            return Vec::new();
        }
        let wall = self.wall_ms(at);
        let mut now = self.listing_of(&touched);
        let mut events = Vec::new();
        for name in touched {
            let Some(mut m) = now.remove(&name) else {
                // Members foca forgot are forgotten here too.
                self.since.remove(&name);
                if self.last.remove(&name).is_some() {
                    self.forgotten.push(name);
                }
                continue;
            };
            let entry = self.since.entry(name.clone()).or_insert((m.state, wall));
            if entry.0 != m.state {
                *entry = (m.state, wall);
            }
            m.since = Some(entry.1);
            let event = match self.last.get(&name) {
                None => "join",
                Some(old) if *old == m => continue,
                Some(old) if old.state != m.state => match m.state {
                    MemberState::Down => "fail",
                    MemberState::Left => "leave",
                    MemberState::Revoked => "revoke",
                    MemberState::Alive if old.incarnation != m.incarnation => "join",
                    _ => "update",
                },
                Some(_) => "update",
            };
            events.push(MemberEvent {
                event: event.to_string(),
                member: m.clone(),
            });
            self.last.insert(name, m);
        }
        events
    }

    /// The members [`Membership::changes`] found foca had forgotten (long
    /// down), to drop from a listing kept up to date by its events.
    pub fn take_forgotten(&mut self) -> Vec<String> {
        std::mem::take(&mut self.forgotten)
    }

    /// The names whose listing may have changed since the last look, sorted:
    /// those of foca's entries that differ from what was seen at the same
    /// place, of entries gone, of leave notices heard, and ours when our
    /// identity moved on. An unchanged list costs one pass and no allocation.
    fn touched(&mut self) -> Vec<String> {
        let mut touched = std::mem::take(&mut self.left_news);
        let mut count = 0;
        for (i, m) in self.foca.iter_membership_state().enumerate() {
            count = i + 1;
            match self.seen.get_mut(i) {
                Some(s) if s.is(m) => {}
                Some(s) => {
                    touched.push(std::mem::replace(s, Seen::of(m)).name);
                    touched.push(m.id().name.clone());
                }
                None => {
                    self.seen.push(Seen::of(m));
                    touched.push(m.id().name.clone());
                }
            }
        }
        touched.extend(self.seen.drain(count..).map(|s| s.name));
        let me = self.foca.identity();
        if self.seen_me.as_ref() != Some(me) {
            touched.push(me.name.clone());
            self.seen_me = Some(me.clone());
        }
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    /// The listings of the named members (sorted names) that foca still
    /// knows, as [`Membership::members`] shows them.
    fn listing_of(&self, names: &[String]) -> BTreeMap<String, MemberInfo> {
        let wanted = |name: &str| names.binary_search_by(|n| n.as_str().cmp(name)).is_ok();
        let mut map = BTreeMap::new();
        for m in self.foca.iter_membership_state() {
            let n = m.id();
            if !wanted(&n.name) {
                continue;
            }
            self.list_newest(&mut map, m);
        }
        let me = self.me();
        if wanted(&me.name) {
            map.insert(me.name.clone(), self.my_listing());
        }
        map
    }

    /// Puts `m`'s listing in `map` unless a newer identity of its name is
    /// there already (several identities of one name: restarts).
    fn list_newest(&self, map: &mut BTreeMap<String, MemberInfo>, m: &Member<Node>) {
        let n = m.id();
        match map.get(&n.name) {
            Some(MemberInfo { incarnation, .. }) if *incarnation > n.incarnation => {}
            _ => {
                let mut info = info(n, self.state(m), false);
                info.since = self.since_of(&n.name, info.state);
                map.insert(n.name.clone(), info);
            }
        }
    }

    fn my_listing(&self) -> MemberInfo {
        let me = self.me();
        let state = if self.revoked.contains(&me.name) {
            MemberState::Revoked
        } else {
            MemberState::Alive
        };
        let mut mine = info(me, state, true);
        mine.since = self.since_of(&me.name, state);
        mine
    }

    fn snapshot_map(&self) -> BTreeMap<String, MemberInfo> {
        let mut map = BTreeMap::new();
        for m in self.foca.iter_membership_state() {
            self.list_newest(&mut map, m);
        }
        map.insert(self.me().name.clone(), self.my_listing());
        map
    }

    /// Since when `name` has been in `state`, if that is the state we
    /// recorded for it.
    fn since_of(&self, name: &str, state: MemberState) -> Option<u64> {
        self.since
            .get(name)
            .filter(|(s, _)| *s == state)
            .map(|(_, ms)| *ms)
    }

    fn state(&self, m: &Member<Node>) -> MemberState {
        let n = m.id();
        if self.revoked.contains(&n.name) {
            return MemberState::Revoked;
        }
        let state = match m.state() {
            State::Alive => MemberState::Alive,
            State::Suspect => MemberState::Suspect,
            State::Down => MemberState::Down,
        };
        if state != MemberState::Alive && self.left.contains(&(n.name.clone(), n.incarnation)) {
            MemberState::Left
        } else {
            state
        }
    }

    fn drain(&mut self, now: Instant) {
        self.news = true;
        if self.next_gossip.is_none() && !self.gone && self.foca.updates_backlog() > 0 {
            self.next_gossip = Some(now);
        }
        while let Some((to, data)) = self.runtime.to_send() {
            let mut payload = Vec::with_capacity(data.len() + 1);
            payload.push(KIND_FOCA);
            payload.extend_from_slice(&data);
            self.outbox.push((to.addr, payload));
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let id = self.next_timer;
            self.next_timer += 1;
            let after = self.stretch(&timer, after);
            self.timer_events.insert(id, timer);
            self.timers.push(Reverse((now + after, id)));
        }
        while let Some(n) = self.runtime.to_notify() {
            if let OwnedNotification::Defunct = n
                && !self.gone
            {
                // Declared down by the others (frozen, cut off, or too
                // slow to refute a suspicion): come back; foca refutes the
                // verdict with a higher incarnation. Not having answered in
                // time is a sign of ill health too.
                self.health = (self.health + 1).min(MAX_HEALTH);
                let _ = self.foca.reuse_down_identity();
            }
        }
    }
}

/// Brings a member list (sorted by name, as [`Membership::members`]) up
/// to date with the events of [`Membership::changes`] and the members it
/// forgot: the cost is that of the changes, not of the cluster's size.
pub fn follow(members: &mut Vec<MemberInfo>, events: &[MemberEvent], forgotten: &[String]) {
    for e in events {
        match members.binary_search_by(|m| m.name.cmp(&e.member.name)) {
            Ok(i) => members[i] = e.member.clone(),
            Err(i) => members.insert(i, e.member.clone()),
        }
    }
    if !forgotten.is_empty() {
        members.retain(|m| !forgotten.contains(&m.name));
    }
}

/// One entry of foca's member list: what a member's listing is made of,
/// but its tags, which change only with a new incarnation.
struct Seen {
    name: String,
    addr: SocketAddr,
    incarnation: u64,
    refuted: u16,
    state: State,
}

impl Seen {
    fn of(m: &Member<Node>) -> Seen {
        let n = m.id();
        Seen {
            name: n.name.clone(),
            addr: n.addr,
            incarnation: n.incarnation,
            refuted: m.incarnation(),
            state: m.state(),
        }
    }

    fn is(&self, m: &Member<Node>) -> bool {
        let n = m.id();
        self.incarnation == n.incarnation
            && self.refuted == m.incarnation()
            && self.state == m.state()
            && self.addr == n.addr
            && self.name == n.name
    }
}

/// The claim with the higher incarnation.
fn higher(a: Option<Node>, b: Option<Node>) -> Option<Node> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.incarnation > a.incarnation { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn info(n: &Node, state: MemberState, is_self: bool) -> MemberInfo {
    MemberInfo {
        name: n.name.clone(),
        addr: n.addr,
        state,
        incarnation: n.incarnation,
        tags: n.tags.clone(),
        is_self,
        since: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_foca_lan_profile_for_1024_members_with_our_timings() {
        let t = Timings::default();
        let ours = swim_config(&t);
        let lan = Config::new_lan(std::num::NonZeroU32::new(1024).unwrap());
        assert_eq!(ours.max_transmissions, lan.max_transmissions);
        assert_eq!(ours.num_indirect_probes, lan.num_indirect_probes);
        // Our gossip rounds (`Foca::gossip`) go to num_indirect_probes
        // members: as many as the LAN profile's periodic gossip.
        assert!(ours.periodic_gossip.is_none());
        assert_eq!(
            Some(ours.num_indirect_probes),
            lan.periodic_gossip.as_ref().map(|g| g.num_members)
        );
        assert_eq!(
            ours.periodic_announce_to_down_members
                .as_ref()
                .map(|g| (g.frequency, g.num_members)),
            lan.periodic_announce_to_down_members
                .as_ref()
                .map(|g| (g.frequency, g.num_members))
        );
        assert_eq!(ours.probe_period, t.probe_interval);
        assert_eq!(ours.suspect_to_down_after, t.suspicion);
        assert_eq!(ours.max_packet_size.get(), MAX_SIGNED_PAYLOAD);
    }

    fn node(i: u16) -> Node {
        Node {
            name: format!("n{i}"),
            addr: SocketAddr::from(([127, 0, 0, 1], 20000 + i)),
            incarnation: 1,
            tags: BTreeMap::new(),
        }
    }

    /// Nodes wired together in memory with a simulated clock.
    /// In certified mode, each payload is delivered with its sender's
    /// name, as a verified signature gives it.
    struct Net {
        nodes: Vec<Option<Membership>>,
        now: Instant,
        certified: bool,
    }

    impl Net {
        fn new(n: u16) -> Net {
            let nodes = (0..n)
                .map(|i| Some(Membership::new(node(i), &Timings::default(), [i as u8; 32])))
                .collect();
            Net {
                nodes,
                now: Instant::now(),
                certified: false,
            }
        }

        fn new_certified(n: u16) -> Net {
            let nodes = (0..n)
                .map(|i| {
                    Some(Membership::new_certified(
                        node(i),
                        &Timings::default(),
                        [i as u8; 32],
                    ))
                })
                .collect();
            Net {
                nodes,
                now: Instant::now(),
                certified: true,
            }
        }

        /// `n` certified nodes that joined through node 0 and settled.
        fn joined_certified(n: u16) -> Net {
            Net::new_certified(n).settled()
        }

        /// Delivers one payload from the member named `from` to `to`.
        fn deliver(&mut self, from: &str, to: SocketAddr, payload: &[u8]) {
            let certified = self.certified;
            self.deliver_as(from, certified, to, payload);
        }

        /// Delivers one payload from `from`, signed if `signed`, as the
        /// daemon does: a member without a CA takes a signed payload unchecked.
        fn deliver_as(&mut self, from: &str, signed: bool, to: SocketAddr, payload: &[u8]) {
            let now = self.now;
            if let Some(Some(m)) = self.nodes.get_mut(Net::index(to)) {
                if signed && m.is_certified() {
                    m.handle_signed(payload, from, now);
                } else {
                    m.handle_payload(payload, now);
                }
            }
        }

        /// `n` nodes that joined through node 0 and settled.
        fn joined(n: u16) -> Net {
            Net::new(n).settled()
        }

        /// Every node but node 0 joins through it; then 3 s pass.
        fn settled(mut self) -> Net {
            for i in 1..self.nodes.len() {
                let now = self.now;
                self.nodes[i].as_mut().unwrap().announce(node(0), now);
            }
            self.run(Duration::from_secs(3));
            self
        }

        fn index(addr: SocketAddr) -> usize {
            (addr.port() - 20000) as usize
        }

        /// Advances time in 10 ms steps, delivering datagrams at once.
        fn run(&mut self, dur: Duration) {
            let end = self.now + dur;
            while self.now < end {
                self.now += Duration::from_millis(10);
                for i in 0..self.nodes.len() {
                    if let Some(m) = self.nodes[i].as_mut() {
                        m.handle_timers(self.now);
                    }
                }
                for round in 0.. {
                    // Members that answer each other without end, in no
                    // time (as under a forged identity), are a failure.
                    assert!(round < 1000, "a datagram storm at {:?}", self.now);
                    let mut mail = Vec::new();
                    for m in self.nodes.iter_mut().flatten() {
                        let (from, signed) = (m.me().name.clone(), m.is_certified());
                        mail.extend(
                            m.take_outbox()
                                .into_iter()
                                .map(|o| (from.clone(), signed, o)),
                        );
                    }
                    if mail.is_empty() {
                        break;
                    }
                    for (from, signed, (to, payload)) in mail {
                        self.deliver_as(&from, signed, to, &payload);
                    }
                }
            }
        }

        /// Advances time in 10 ms steps with every node starved of CPU, as
        /// a thousand daemons on two cores are: each runs only at random
        /// moments 0 to `gap` apart, and then reads what was sent to it
        /// since, runs its timers and sends. Returns how many times a node
        /// saw a member fail.
        fn run_starved(&mut self, dur: Duration, gap: Duration, seed: u64) -> usize {
            let mut rng = SmallRng::seed_from_u64(seed);
            let gap_ms = gap.as_millis() as u64;
            let mut pause = move || Duration::from_millis(rng.random_range(0..=gap_ms));
            let n = self.nodes.len();
            let mut next: Vec<Instant> = (0..n).map(|_| self.now + pause()).collect();
            let mut inbox: Vec<Vec<(String, bool, Vec<u8>)>> = vec![Vec::new(); n];
            let end = self.now + dur;
            let mut fails = 0;
            while self.now < end {
                self.now += Duration::from_millis(10);
                let now = self.now;
                for i in 0..n {
                    if next[i] > now {
                        continue;
                    }
                    next[i] = now + pause();
                    let mail = std::mem::take(&mut inbox[i]);
                    let Some(m) = self.nodes[i].as_mut() else {
                        continue;
                    };
                    for (from, signed, payload) in mail {
                        if signed && m.is_certified() {
                            m.handle_signed(&payload, &from, now);
                        } else {
                            m.handle_payload(&payload, now);
                        }
                    }
                    m.handle_timers(now);
                    fails += m.changes(now).iter().filter(|e| e.event == "fail").count();
                    let (from, signed) = (m.me().name.clone(), m.is_certified());
                    for (to, payload) in m.take_outbox() {
                        if let Some(b) = inbox.get_mut(Net::index(to)) {
                            b.push((from.clone(), signed, payload));
                        }
                    }
                }
            }
            fails
        }

        fn states(&self, of: usize) -> BTreeMap<String, MemberState> {
            self.nodes[of]
                .as_ref()
                .unwrap()
                .members()
                .into_iter()
                .map(|m| (m.name, m.state))
                .collect()
        }
    }

    #[test]
    fn a_leave_notice_lost_on_the_way_to_one_member_reaches_it_through_the_others() {
        let mut net = Net::joined(6);
        for i in 0..6 {
            assert_eq!(net.states(i).len(), 6, "node {i}");
        }
        // Node 5 leaves; its own notice to node 1 is lost, and so is
        // everything else it sends (it is gone before foca's part counts).
        let now = net.now;
        let mut leaving = net.nodes[5].take().unwrap();
        leaving.leave(now);
        let mut reached = 0;
        for (to, payload) in leaving.take_outbox() {
            if payload.first() != Some(&KIND_LEAVE) || Net::index(to) == 1 {
                continue;
            }
            reached += 1;
            net.nodes[Net::index(to)]
                .as_mut()
                .unwrap()
                .handle_payload(&payload, now);
        }
        assert_eq!(reached, 4);
        assert!(net.nodes[1].as_ref().unwrap().left.is_empty());
        net.run(Duration::from_millis(100));
        assert!(
            net.nodes[1]
                .as_ref()
                .unwrap()
                .left
                .contains(&("n5".to_string(), 1)),
            "relayed notice did not arrive"
        );
        // Once probes find it gone, every member shows a departure, not a failure.
        net.run(Duration::from_secs(10));
        for i in 0..5 {
            assert_eq!(net.states(i)["n5"], MemberState::Left, "node {i}");
        }
    }

    /// Whether node `of` holds any identity of `name` as up in foca.
    fn up_in_foca(net: &Net, of: usize, name: &str) -> bool {
        net.nodes[of]
            .as_ref()
            .unwrap()
            .foca
            .iter_membership_state()
            .any(|m| m.id().name == name && m.state() != State::Down)
    }

    #[test]
    fn a_revoked_member_is_listed_revoked_and_kept_out_while_it_keeps_gossiping() {
        let mut net = Net::joined_certified(5);
        assert!(up_in_foca(&net, 0, "n4"));
        // Every member but n4 learns that n4 is revoked; n4 runs on.
        let now = net.now;
        for i in 0..4 {
            net.nodes[i].as_mut().unwrap().changes(now);
            net.nodes[i]
                .as_mut()
                .unwrap()
                .set_revoked(["n4".to_string()], now);
            let events = net.nodes[i].as_mut().unwrap().changes(now);
            assert!(
                events
                    .iter()
                    .any(|e| e.event == "revoke" && e.member.name == "n4"),
                "node {i}: {events:?}"
            );
        }
        net.run(Duration::from_secs(10));
        // n4 comes back as a new identity (a restart) and announces itself
        // to every member, and one member learns it over TCP as well.
        let mut again = node(4);
        again.incarnation = 2;
        net.nodes[4] = Some(Membership::new_certified(
            again.clone(),
            &Timings::default(),
            [9; 32],
        ));
        let now = net.now;
        for i in 0..4 {
            net.nodes[4].as_mut().unwrap().announce(node(i as u16), now);
        }
        net.nodes[1]
            .as_mut()
            .unwrap()
            .apply_alive(vec![again.clone()], now);
        net.nodes[2].as_mut().unwrap().apply_records(
            vec![Record {
                node: again,
                refuted: 0,
                state: MemberState::Alive,
            }],
            now,
        );
        net.run(Duration::from_secs(10));
        for i in 0..4 {
            assert_eq!(net.states(i)["n4"], MemberState::Revoked, "node {i}");
            assert!(!up_in_foca(&net, i, "n4"), "node {i} took n4 back");
            let alarms = net.nodes[i].as_mut().unwrap().take_alarms();
            assert!(
                alarms.contains(&Alarm::Revoked("n4".into())),
                "node {i} did not drop n4's datagrams: {alarms:?}"
            );
        }
        // The others still see each other alive.
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(net.states(i)[&format!("n{j}")], MemberState::Alive);
            }
        }
        // A member that learns of n4 only now (joining through a member
        // that lists it) lists it revoked.
        let mut late = Membership::new_certified(node(9), &Timings::default(), [7; 32]);
        late.set_revoked(["n4".to_string()], now);
        late.apply_alive(vec![node(0), node(4)], now);
        assert_eq!(late.state_of("n4"), Some(MemberState::Revoked));
        assert!(
            late.members()
                .iter()
                .any(|m| m.name == "n4" && m.state == MemberState::Revoked)
        );
        // Lifting the revocation lists n4 as foca knows it again.
        let now = net.now;
        net.nodes[0].as_mut().unwrap().set_revoked([], now);
        assert_ne!(net.states(0)["n4"], MemberState::Revoked);
    }

    #[test]
    fn revocation_news_goes_to_every_member_or_to_a_few() {
        let mut net = Net::joined_certified(8);
        let now = net.now;
        let m = net.nodes[0].as_mut().unwrap();
        m.set_revoked(["n7".to_string()], now);
        m.take_outbox();
        m.spread(b"news", true);
        let all = m.take_outbox();
        // Every member but the revoked one, once each.
        let mut to: Vec<usize> = all.iter().map(|(a, _)| Net::index(*a)).collect();
        to.sort_unstable();
        assert_eq!(to, [1, 2, 3, 4, 5, 6]);
        m.spread(b"news", false);
        let few = m.take_outbox();
        assert_eq!(few.len(), NEWS_RELAY);
        assert!(few.iter().all(|(a, _)| Net::index(*a) != 7));
        // Whoever receives it holds it for the daemon to verify.
        let (addr, payload) = &all[0];
        let r = net.nodes[Net::index(*addr)].as_mut().unwrap();
        r.handle_signed(payload, "n0", now);
        assert_eq!(r.take_news(), [b"news".to_vec()]);
        assert!(r.take_news().is_empty());
    }

    #[test]
    fn a_node_that_left_stays_gone_while_it_still_hears_the_others() {
        let mut net = Net::joined(4);
        let before = net.nodes[3].as_ref().unwrap().me().clone();
        let now = net.now;
        net.nodes[3].as_mut().unwrap().leave(now);
        // Only the leave notices get through; foca's own goodbye is lost,
        // so the others go on probing the leaver as if it were there.
        for (to, payload) in net.nodes[3].as_mut().unwrap().take_outbox() {
            if payload.first() == Some(&KIND_LEAVE) {
                net.nodes[Net::index(to)]
                    .as_mut()
                    .unwrap()
                    .handle_payload(&payload, now);
            }
        }
        // The leaver keeps running (a daemon takes a moment to exit) and
        // keeps receiving what the others send it. It must not answer:
        // the others then find it gone, and show it as left.
        net.run(Duration::from_secs(10));
        assert_eq!(
            net.nodes[3].as_ref().unwrap().me(),
            &before,
            "renewed itself"
        );
        for i in 0..3 {
            assert_eq!(net.states(i)["n3"], MemberState::Left, "node {i}");
        }
    }

    #[test]
    fn changes_are_reported_once_and_quiet_lists_report_nothing() {
        let mut net = Net::joined(3);
        let first = net.nodes[0].as_mut().unwrap().changes(net.now);
        assert_eq!(first.iter().filter(|e| e.event == "join").count(), 2);
        net.run(Duration::from_secs(2));
        assert!(net.nodes[0].as_mut().unwrap().changes(net.now).is_empty());
        let now = net.now;
        let tags = BTreeMap::from([("role".to_string(), "db".to_string())]);
        net.nodes[2].as_mut().unwrap().set_tags(tags.clone(), now);
        net.run(Duration::from_secs(1));
        let events = net.nodes[0].as_mut().unwrap().changes(net.now);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].event, "update");
        assert_eq!(events[0].member.tags, tags);
        assert!(net.nodes[0].as_mut().unwrap().changes(net.now).is_empty());
    }

    #[test]
    fn a_listing_kept_by_the_changes_alone_stays_equal_to_the_members() {
        let mut net = Net::new(8);
        let mut listing = net.nodes[0].as_ref().unwrap().members();
        let mut check = |net: &mut Net, what: &str| {
            for _ in 0..20 {
                net.run(Duration::from_millis(50));
                let m = net.nodes[0].as_mut().unwrap();
                let events = m.changes(net.now);
                follow(&mut listing, &events, &m.take_forgotten());
                assert_eq!(listing, m.members(), "after {what}");
            }
        };
        for i in 1..8 {
            let now = net.now;
            net.nodes[i].as_mut().unwrap().announce(node(0), now);
            check(&mut net, "a join");
        }
        check(&mut net, "settling");
        let now = net.now;
        let tags = BTreeMap::from([("role".to_string(), "db".to_string())]);
        net.nodes[3].as_mut().unwrap().set_tags(tags, now);
        check(&mut net, "new tags");
        net.nodes[5] = None;
        for _ in 0..5 {
            check(&mut net, "a crash");
        }
        let now = net.now;
        net.nodes[6].as_mut().unwrap().leave(now);
        check(&mut net, "a leave");
        let mut again = node(5);
        again.incarnation = 7;
        let mut m = Membership::new(again, &Timings::default(), [9; 32]);
        m.announce(node(0), net.now);
        net.nodes[5] = Some(m);
        check(&mut net, "a restart");
        let states = net.states(0);
        assert_eq!(states["n5"], MemberState::Alive);
        assert_eq!(states["n6"], MemberState::Left);
        assert_eq!(listing.len(), 8);
    }

    #[test]
    fn since_is_when_a_member_was_seen_entering_its_state() {
        let mut net = Net::joined(3);
        let start = net.now;
        net.nodes[0].as_mut().unwrap().set_clock(1_000_000, start);
        let events = net.nodes[0].as_mut().unwrap().changes(net.now);
        assert!(
            events.iter().all(|e| e.member.name != "n0"),
            "setting the clock is no change of ours: {events:?}"
        );
        assert_eq!(member(&net, 0, "n2").since, Some(1_000_000));
        assert_eq!(member(&net, 0, "n0").since, Some(1_000_000), "ourselves");
        net.run(Duration::from_secs(1));
        let killed = 1_000_000 + 1000;
        net.nodes[2] = None;
        let mut seen = None;
        for step in 1..=200u64 {
            net.run(Duration::from_millis(50));
            let events = net.nodes[0].as_mut().unwrap().changes(net.now);
            if events
                .iter()
                .any(|e| e.member.name == "n2" && e.event == "fail")
            {
                seen = Some(killed + step * 50);
                break;
            }
        }
        let seen = seen.expect("n2 seen as down");
        let down = member(&net, 0, "n2");
        assert_eq!(down.state, MemberState::Down);
        let since = down.since.expect("a since for the down member");
        assert!(
            since > killed && since <= seen,
            "down since {since}, killed at {killed}, seen at {seen}"
        );
        assert_eq!(
            member(&net, 0, "n1").since,
            Some(1_000_000),
            "unchanged members keep theirs"
        );
        let shown = serde_json::to_value(&down).unwrap();
        assert_eq!(shown["since"], rfc3339_of(since));
        let back: MemberInfo = serde_json::from_value(shown).unwrap();
        assert_eq!(back.since, Some(since / 1000 * 1000), "to the second");
        assert_eq!(rfc3339_of(1_796_184_603_999), "2026-12-02T04:10:03Z");
    }

    #[test]
    fn nodes_join_through_one_and_see_failure_and_leave() {
        let mut net = Net::joined(5);
        for i in 0..5 {
            let s = net.states(i);
            assert_eq!(s.len(), 5, "node {i} sees {s:?}");
            assert!(
                s.values().all(|st| *st == MemberState::Alive),
                "node {i}: {s:?}"
            );
        }
        let _ = net.nodes[0].as_mut().unwrap().changes(net.now);

        // A crash: node 4 stops answering.
        net.nodes[4] = None;
        net.run(Duration::from_secs(10));
        for i in 0..4 {
            assert_eq!(net.states(i)["n4"], MemberState::Down, "node {i}");
        }
        let events = net.nodes[0].as_mut().unwrap().changes(net.now);
        assert!(
            events
                .iter()
                .any(|e| e.event == "fail" && e.member.name == "n4"),
            "{events:?}"
        );

        // A graceful leave: node 3 says goodbye.
        let now = net.now;
        let mut leaving = net.nodes[3].take().unwrap();
        leaving.leave(now);
        for (to, payload) in leaving.take_outbox() {
            if let Some(m) = net.nodes[Net::index(to)].as_mut() {
                m.handle_payload(&payload, now);
            }
        }
        net.run(Duration::from_secs(1));
        for i in 0..3 {
            assert_eq!(net.states(i)["n3"], MemberState::Left, "node {i}");
        }
        let events = net.nodes[0].as_mut().unwrap().changes(net.now);
        assert!(
            events
                .iter()
                .any(|e| e.event == "leave" && e.member.name == "n3"),
            "{events:?}"
        );
    }

    /// Members starved of CPU (each runs at random moments up to 3 s
    /// apart, as under a load average of a thousand) find themselves
    /// running late and wait longer before they suspect and declare down:
    /// nobody is declared down in two minutes, while every member stays
    /// alive for all. A member that really stops is still found down.
    #[test]
    fn starved_members_wait_longer_and_declare_nobody_down_falsely() {
        let mut net = Net::joined(12);
        assert!(net.nodes.iter().flatten().all(|m| m.health() == 0));
        let gap = Duration::from_secs(3);
        let fails = net.run_starved(Duration::from_secs(120), gap, 7);
        assert_eq!(fails, 0, "false failures under starvation");
        assert!(
            net.nodes.iter().flatten().all(|m| m.health() > 0),
            "every member found itself late"
        );
        for i in 0..12 {
            let s = net.states(i);
            assert!(
                s.len() == 12 && s.values().all(|st| *st == MemberState::Alive),
                "node {i}: {s:?}"
            );
        }
        net.nodes[11] = None;
        net.run_starved(Duration::from_secs(180), gap, 8);
        for i in 0..11 {
            assert_eq!(net.states(i)["n11"], MemberState::Down, "node {i}");
        }
        // Fed again, they are soon well and quick again.
        net.run(Duration::from_secs(60));
        assert!(net.nodes.iter().flatten().all(|m| m.health() == 0));
    }

    /// What a member times of probes and suspicions grows with its own
    /// ill health, bounded, and nothing else does.
    #[test]
    fn probes_and_suspicions_take_longer_while_a_member_runs_late() {
        let mut m = Membership::new(node(0), &Timings::default(), [0; 32]);
        let suspect = Timer::ChangeSuspectToDown {
            member_id: node(1),
            incarnation: 0,
            token: 0,
        };
        let probe = Timer::ProbeRandomMember(0);
        let announce = Timer::PeriodicAnnounce(0);
        let two = Duration::from_secs(2);
        assert_eq!(m.stretch(&suspect, two), two);
        assert_eq!(m.stretch(&probe, two), two);
        m.sense(Duration::from_millis(250));
        assert_eq!(m.health(), 0, "a quarter of a probe period late is on time");
        m.sense(Duration::from_millis(251));
        assert_eq!(m.health(), 1);
        assert_eq!(m.stretch(&probe, two), two * 2);
        for _ in 0..20 {
            m.sense(Duration::from_secs(1));
        }
        assert_eq!(m.health(), MAX_HEALTH, "bounded");
        assert_eq!(m.stretch(&probe, two), two * (1 + MAX_HEALTH));
        assert_eq!(m.stretch(&suspect, two), two * (1 + MAX_HEALTH));
        assert_eq!(m.stretch(&announce, two), two, "not a probe");
        m.sense(Duration::ZERO);
        assert_eq!(m.health(), MAX_HEALTH - 1, "on time: better by one");
    }

    #[test]
    fn a_frozen_node_declared_down_comes_back_by_itself() {
        let mut net = Net::joined(4);
        // Frozen, as by SIGSTOP: it neither runs nor hears anything.
        let frozen = net.nodes[3].take().unwrap();
        net.run(Duration::from_secs(10));
        assert_eq!(net.states(0)["n3"], MemberState::Down);
        net.nodes[3] = Some(frozen);
        net.run(Duration::from_secs(2));
        for i in 0..4 {
            let s = net.states(i);
            assert!(
                s.len() == 4 && s.values().all(|st| *st == MemberState::Alive),
                "node {i}: {s:?}"
            );
        }
    }

    #[test]
    fn a_full_sync_brings_what_gossip_missed() {
        let t0 = Instant::now();
        let mut a = Membership::new(node(0), &Timings::default(), [1; 32]);
        a.apply_alive(vec![node(1), node(2)], t0);
        a.handle_payload(
            &[
                &[KIND_LEAVE][..],
                &serde_json::to_vec(&("n2", 1u64)).unwrap(),
            ]
            .concat(),
            t0,
        );
        a.apply_records(
            vec![Record {
                node: node(2),
                refuted: 0,
                state: MemberState::Down,
            }],
            t0,
        );
        let mut b = Membership::new(node(3), &Timings::default(), [2; 32]);
        b.apply_records(a.records(), t0);
        let states: BTreeMap<String, MemberState> =
            b.members().into_iter().map(|m| (m.name, m.state)).collect();
        assert_eq!(states["n1"], MemberState::Alive);
        assert_eq!(states["n2"], MemberState::Left);
    }

    #[test]
    fn state_of_agrees_with_members_and_restore_stays_quiet() {
        let mut net = Net::new(3);
        let now = net.now;
        for i in 0..3u16 {
            let others = (0..3).filter(|&j| j != i).map(node).collect();
            net.nodes[i as usize]
                .as_mut()
                .unwrap()
                .restore_alive(others, now);
            assert!(
                net.nodes[i as usize]
                    .as_mut()
                    .unwrap()
                    .take_outbox()
                    .is_empty()
            );
        }
        net.nodes[2] = None;
        net.run(Duration::from_secs(10));
        let m = net.nodes[0].as_ref().unwrap();
        for info in m.members() {
            assert_eq!(m.state_of(&info.name), Some(info.state), "{}", info.name);
        }
        assert_eq!(m.state_of("n2"), Some(MemberState::Down));
        assert_eq!(m.state_of("nobody"), None);
    }

    #[test]
    fn changed_tags_reach_the_others_as_an_update() {
        let mut net = Net::joined(3);
        let _ = net.nodes[0].as_mut().unwrap().changes(net.now);
        let now = net.now;
        let tags: BTreeMap<String, String> = [("role".to_string(), "db".to_string())].into();
        net.nodes[2].as_mut().unwrap().set_tags(tags.clone(), now);
        net.run(Duration::from_secs(3));
        for i in 0..2 {
            let members = net.nodes[i].as_ref().unwrap().members();
            let n2 = members.iter().find(|m| m.name == "n2").unwrap();
            assert_eq!(
                (n2.state, &n2.tags),
                (MemberState::Alive, &tags),
                "node {i}"
            );
        }
        let events = net.nodes[0].as_mut().unwrap().changes(net.now);
        assert!(
            events
                .iter()
                .all(|e| e.event != "fail" && e.event != "leave"),
            "{events:?}"
        );
        assert!(
            events
                .iter()
                .any(|e| e.event == "update" && e.member.name == "n2"),
            "{events:?}"
        );
    }

    #[test]
    fn a_restarted_node_returns_with_a_higher_incarnation() {
        let mut net = Net::joined(3);
        net.nodes[2] = None;
        net.run(Duration::from_secs(10));
        assert_eq!(net.states(0)["n2"], MemberState::Down);
        let mut again = node(2);
        again.incarnation = 2;
        let mut m = Membership::new(again, &Timings::default(), [9; 32]);
        m.announce(node(0), net.now);
        net.nodes[2] = Some(m);
        net.run(Duration::from_secs(3));
        let members = net.nodes[0].as_ref().unwrap().members();
        let n2 = members.iter().find(|m| m.name == "n2").unwrap();
        assert_eq!((n2.state, n2.incarnation), (MemberState::Alive, 2));
    }

    /// Sets every node's wall clock to one reading now.
    fn set_clocks(net: &mut Net, unix_ms: u64) {
        let now = net.now;
        for m in net.nodes.iter_mut().flatten() {
            m.set_clock(unix_ms, now);
        }
    }

    fn member(net: &Net, of: usize, name: &str) -> MemberInfo {
        let members = net.nodes[of].as_ref().unwrap().members();
        members.into_iter().find(|m| m.name == name).unwrap()
    }

    /// The attack of issue 11, finding 11: a join that claims a live
    /// member's name and address with the highest incarnation accepted.
    #[test]
    fn a_forged_claim_on_a_members_identity_is_refuted_at_once() {
        let mut net = Net::joined(4);
        set_clocks(&mut net, 1_800_000_000_000);
        let now = net.now;
        let forged = Node {
            incarnation: net.nodes[0].as_ref().unwrap().max_incarnation(now),
            ..node(1)
        };
        // What a join through node 0 does with the joiner's identity.
        net.nodes[0]
            .as_mut()
            .unwrap()
            .apply_alive(vec![forged.clone()], now);
        net.run(Duration::from_millis(500));
        let real = net.nodes[1].as_ref().unwrap().me().clone();
        assert!(real.incarnation > forged.incarnation, "{real:?}");
        for i in 0..4 {
            let n1 = member(&net, i, "n1");
            assert_eq!(
                (n1.state, n1.incarnation, n1.addr),
                (MemberState::Alive, real.incarnation, real.addr),
                "node {i}"
            );
        }
        let alarms = net.nodes[1].as_mut().unwrap().take_alarms();
        assert!(
            alarms
                .iter()
                .any(|a| matches!(a, Alarm::Refuted { claim, .. } if *claim == forged)),
            "{alarms:?}"
        );
        // And it stays so: nobody marks the real member down later.
        net.run(Duration::from_secs(10));
        for i in 0..4 {
            assert_eq!(member(&net, i, "n1").state, MemberState::Alive, "node {i}");
        }
    }

    #[test]
    fn a_claim_near_u64_max_is_refused_and_changes_nothing() {
        let mut net = Net::joined(3);
        set_clocks(&mut net, 1_800_000_000_000);
        let now = net.now;
        for incarnation in [u64::MAX, u64::MAX - 1, 1 << 62] {
            let forged = Node {
                incarnation,
                ..node(1)
            };
            net.nodes[0]
                .as_mut()
                .unwrap()
                .apply_alive(vec![forged.clone()], now);
            // Also as a record of a full sync, and inside gossip.
            net.nodes[2].as_mut().unwrap().apply_records(
                vec![Record {
                    node: forged.clone(),
                    refuted: 0,
                    state: MemberState::Alive,
                }],
                now,
            );
            let mut data = Vec::new();
            let header = foca::Header {
                src: forged.clone(),
                src_incarnation: 0,
                dst: node(0),
                message: Message::<Node>::Gossip,
            };
            PostcardCodec.encode_header(&header, &mut data).unwrap();
            let payload = [&[KIND_FOCA][..], &data].concat();
            net.nodes[0].as_mut().unwrap().handle_payload(&payload, now);
            for i in [0, 2] {
                let alarms = net.nodes[i].as_mut().unwrap().take_alarms();
                assert!(
                    alarms
                        .iter()
                        .all(|a| matches!(a, Alarm::Refused(IdentityError::Incarnation { .. })))
                        && !alarms.is_empty(),
                    "node {i}: {alarms:?}"
                );
            }
        }
        net.run(Duration::from_secs(5));
        assert_eq!(net.nodes[1].as_ref().unwrap().me().incarnation, 1);
        for i in 0..3 {
            let n1 = member(&net, i, "n1");
            assert_eq!(
                (n1.state, n1.incarnation),
                (MemberState::Alive, 1),
                "node {i}"
            );
        }
    }

    #[test]
    fn a_claim_on_a_name_from_another_address_is_outbid_too() {
        let mut net = Net::joined(3);
        let now = net.now;
        let forged = Node {
            addr: SocketAddr::from(([127, 0, 0, 1], 20999)),
            incarnation: 1_000,
            ..node(1)
        };
        net.nodes[0]
            .as_mut()
            .unwrap()
            .apply_alive(vec![forged.clone()], now);
        net.run(Duration::from_secs(1));
        for i in 0..3 {
            let n1 = member(&net, i, "n1");
            assert_eq!(
                (n1.state, n1.addr),
                (MemberState::Alive, node(1).addr),
                "node {i}"
            );
            assert!(n1.incarnation > 1_000, "node {i}");
        }
    }

    #[test]
    fn oversized_identities_in_gossip_joins_and_syncs_are_dropped() {
        let mut net = Net::joined(2);
        let now = net.now;
        let mut huge = node(7);
        huge.name = "n".repeat(1000);
        huge.tags = (0..5000)
            .map(|i| (format!("t{i}"), "v".repeat(100)))
            .collect();
        let m = net.nodes[0].as_mut().unwrap();
        m.apply_alive(vec![huge.clone()], now);
        m.apply_records(
            vec![Record {
                node: huge.clone(),
                refuted: 0,
                state: MemberState::Alive,
            }],
            now,
        );
        let mut tagged = node(8);
        tagged.tags = (0..=MAX_TAGS)
            .map(|i| (format!("t{i}"), "v".into()))
            .collect();
        let mut data = Vec::new();
        let header = foca::Header {
            src: tagged,
            src_incarnation: 0,
            dst: node(0),
            message: Message::<Node>::Gossip,
        };
        PostcardCodec.encode_header(&header, &mut data).unwrap();
        m.handle_payload(&[&[KIND_FOCA][..], &data].concat(), now);
        let alarms = m.take_alarms();
        assert_eq!(alarms.len(), 3, "{alarms:?}");
        assert!(alarms.iter().all(|a| matches!(a, Alarm::Refused(_))));
        assert_eq!(net.states(0).len(), 2);
        // The largest identity the bounds allow is taken.
        let big = identity::tests::largest(5);
        let m = net.nodes[0].as_mut().unwrap();
        m.apply_alive(vec![big.clone()], now);
        assert!(m.take_alarms().is_empty());
        assert!(net.states(0).contains_key(&big.name));
    }

    #[test]
    fn made_up_leave_notices_are_neither_kept_nor_relayed() {
        let mut net = Net::joined(3);
        let now = net.now;
        let m = net.nodes[0].as_mut().unwrap();
        let _ = m.take_outbox();
        for i in 0..100u64 {
            let notice = [
                &[KIND_LEAVE][..],
                &serde_json::to_vec(&(format!("ghost{i}"), i)).unwrap(),
            ]
            .concat();
            m.handle_payload(&notice, now);
        }
        assert!(m.left.is_empty());
        assert!(
            m.take_outbox()
                .iter()
                .all(|(_, p)| p.first() != Some(&KIND_LEAVE))
        );
    }

    /// What a certified insider (`signer`) sends: foca gossip in its own
    /// name (`src`), carrying `updates`.
    fn insider_gossip(src: &Node, dst: &Node, updates: &[Member<Node>]) -> Vec<u8> {
        let mut data = vec![KIND_FOCA];
        let header = foca::Header {
            src: src.clone(),
            src_incarnation: 0,
            dst: dst.clone(),
            message: Message::<Node>::Gossip,
        };
        PostcardCodec.encode_header(&header, &mut data).unwrap();
        data.extend_from_slice(&u16::try_from(updates.len()).unwrap().to_be_bytes());
        for m in updates {
            PostcardCodec.encode_member(m, &mut data).unwrap();
        }
        data
    }

    #[test]
    fn certified_members_join_fail_change_tags_and_leave() {
        let mut net = Net::joined_certified(5);
        for i in 0..5 {
            let s = net.states(i);
            assert!(
                s.len() == 5 && s.values().all(|st| *st == MemberState::Alive),
                "node {i}: {s:?}"
            );
        }
        let now = net.now;
        let tags: BTreeMap<String, String> = [("role".to_string(), "db".to_string())].into();
        net.nodes[2].as_mut().unwrap().set_tags(tags.clone(), now);
        net.run(Duration::from_secs(2));
        for i in 0..5 {
            assert_eq!(member(&net, i, "n2").tags, tags, "node {i}");
        }
        net.nodes[4] = None;
        net.run(Duration::from_secs(10));
        let now = net.now;
        let mut leaving = net.nodes[3].take().unwrap();
        leaving.leave(now);
        for (to, payload) in leaving.take_outbox() {
            net.deliver("n3", to, &payload);
        }
        net.run(Duration::from_secs(2));
        for i in 0..3 {
            let s = net.states(i);
            assert_eq!(
                (s["n4"], s["n3"], s["n2"]),
                (MemberState::Down, MemberState::Left, MemberState::Alive),
                "node {i}"
            );
        }
    }

    /// The insider attack of issue 11 (there on the shared key), now by a
    /// certified member: it gossips another member's name with a forged
    /// incarnation, address and tags. Nobody takes it, and the victim need
    /// not even answer.
    #[test]
    fn a_certified_insider_cannot_assert_another_members_identity() {
        let mut net = Net::joined_certified(4);
        set_clocks(&mut net, 1_800_000_000_000);
        let now = net.now;
        let insider = net.nodes[3].as_ref().unwrap().me().clone();
        let real = net.nodes[1].as_ref().unwrap().me().clone();
        let mut forged = Node {
            addr: SocketAddr::from(([127, 0, 0, 1], 20999)),
            incarnation: real.incarnation + 1000,
            ..real.clone()
        };
        forged.tags.insert("role".into(), "evil".into());
        let same_addr = Node {
            incarnation: real.incarnation + 1,
            ..real.clone()
        };
        for target in [0usize, 2] {
            let dst = net.nodes[target].as_ref().unwrap().me().clone();
            let updates = [
                Member::alive(forged.clone()),
                Member::alive(same_addr.clone()),
            ];
            net.deliver("n3", dst.addr, &insider_gossip(&insider, &dst, &updates));
            // In the victim's name outright: refused as an impersonation.
            net.deliver("n3", dst.addr, &insider_gossip(&forged, &dst, &[]));
            let alarms = net.nodes[target].as_mut().unwrap().take_alarms();
            assert!(
                alarms.iter().any(|a| matches!(a,
                    Alarm::Impersonation { signer, claimed } if signer == "n3" && claimed == "n1")),
                "{alarms:?}"
            );
        }
        // The forged records, and a full sync carrying them, too.
        net.nodes[0].as_mut().unwrap().apply_records(
            vec![Record {
                node: forged.clone(),
                refuted: 0,
                state: MemberState::Alive,
            }],
            now,
        );
        net.nodes[2]
            .as_mut()
            .unwrap()
            .apply_alive(vec![forged.clone()], now);
        net.run(Duration::from_secs(5));
        for i in 0..4 {
            let n1 = member(&net, i, "n1");
            assert_eq!(
                (n1.state, n1.incarnation, n1.addr, &n1.tags),
                (MemberState::Alive, real.incarnation, real.addr, &real.tags),
                "node {i}"
            );
            let listed = net.nodes[i]
                .as_ref()
                .unwrap()
                .foca
                .iter_membership_state()
                .filter(|m| m.id().name == "n1")
                .count();
            assert!(listed <= 1, "node {i} holds {listed} identities of n1");
        }
        // The victim kept its identity: nothing forced it to outbid.
        assert_eq!(net.nodes[1].as_ref().unwrap().me(), &real);
    }

    #[test]
    fn a_certified_insiders_oversized_identity_is_refused() {
        let mut net = Net::joined_certified(3);
        let mut huge = net.nodes[2].as_ref().unwrap().me().clone();
        huge.tags = (0..5000)
            .map(|i| (format!("t{i}"), "v".repeat(100)))
            .collect();
        let dst = node(0);
        // In its own name: out of bounds, so dropped; and as a who.
        net.deliver("n2", dst.addr, &insider_gossip(&huge, &dst, &[]));
        let mut who = vec![KIND_WHO];
        who.extend(serde_json::to_vec(&huge).unwrap());
        net.deliver("n2", dst.addr, &who);
        let alarms = net.nodes[0].as_mut().unwrap().take_alarms();
        assert_eq!(alarms.len(), 2, "{alarms:?}");
        assert!(alarms.iter().all(|a| matches!(a, Alarm::Refused(_))));
        assert!(member(&net, 0, "n2").tags.is_empty());
    }

    /// Suspicion stays SWIM's: anyone may report a member suspect, and it
    /// refutes as foca does, with its own counter, keeping its identity.
    #[test]
    fn a_certified_member_reported_suspect_refutes_it() {
        let mut net = Net::joined_certified(4);
        let insider = net.nodes[3].as_ref().unwrap().me().clone();
        let real = net.nodes[1].as_ref().unwrap().me().clone();
        for target in [0usize, 1, 2] {
            let dst = net.nodes[target].as_ref().unwrap().me().clone();
            let updates = [Member::new(real.clone(), 0, State::Suspect)];
            net.deliver("n3", dst.addr, &insider_gossip(&insider, &dst, &updates));
        }
        assert_eq!(
            net.nodes[0].as_ref().unwrap().state_of("n1"),
            Some(MemberState::Suspect),
            "a proven identity's state is SWIM's to report"
        );
        net.run(Duration::from_secs(10));
        for i in 0..4 {
            assert_eq!(member(&net, i, "n1").state, MemberState::Alive, "node {i}");
        }
        assert_eq!(net.nodes[1].as_ref().unwrap().me(), &real);
    }

    #[test]
    fn a_certified_leave_notice_counts_only_from_the_leaver() {
        let mut net = Net::joined_certified(3);
        let n1 = net.nodes[1].as_ref().unwrap().me().clone();
        let notice = [
            &[KIND_LEAVE][..],
            &serde_json::to_vec(&(&n1.name, n1.incarnation)).unwrap(),
        ]
        .concat();
        net.deliver("n2", node(0).addr, &notice);
        let m = net.nodes[0].as_mut().unwrap();
        assert!(m.left.is_empty());
        assert!(matches!(
            m.take_alarms().as_slice(),
            [Alarm::Impersonation { .. }]
        ));
        // Unsigned payloads are not taken at all by a certified member.
        m.handle_payload(&notice, net.now);
        assert!(m.left.is_empty());
        net.deliver("n1", node(0).addr, &notice);
        assert!(
            net.nodes[0]
                .as_ref()
                .unwrap()
                .left
                .contains(&(n1.name, n1.incarnation))
        );
    }

    /// Nodes 0 and 1 hold only the key; 2 and 3 are certified, and take
    /// unsigned payloads too when `moving`.
    fn mixed(moving: bool) -> Net {
        let mut net = Net::new(4);
        for i in [2u16, 3] {
            let mut m = Membership::new_certified(node(i), &Timings::default(), [i as u8; 32]);
            if moving {
                m.accept_unsigned();
            }
            net.nodes[usize::from(i)] = Some(m);
        }
        net.settled()
    }

    /// During a move to certificates, members with and without one form
    /// one cluster: each sees all four alive.
    #[test]
    fn members_with_and_without_certificates_form_one_cluster_while_moving() {
        let net = mixed(true);
        for i in 0..4 {
            let states = net.states(i);
            assert_eq!(states.len(), 4, "node {i}: {states:?}");
            assert!(
                states.values().all(|s| *s == MemberState::Alive),
                "node {i}: {states:?}"
            );
        }
    }

    /// The move to certificates done in place, as SIGHUP does it: four
    /// shared-key members become certified one at a time while taking
    /// unsigned payloads too, then stop taking them one at a time. After
    /// every step each member sees all four alive; at the end, unsigned
    /// gossip is taken by none.
    #[test]
    fn members_move_to_certificates_in_place_without_losing_each_other() {
        let mut net = Net::joined(4);
        let all_alive = |net: &Net, step: &str| {
            for i in 0..4 {
                let states = net.states(i);
                assert_eq!(states.len(), 4, "{step}, node {i}: {states:?}");
                assert!(
                    states.values().all(|s| *s == MemberState::Alive),
                    "{step}, node {i}: {states:?}"
                );
            }
        };
        all_alive(&net, "before");
        for (certified, unsigned_too) in [(true, true), (true, false)] {
            for i in 0..4 {
                net.nodes[i]
                    .as_mut()
                    .unwrap()
                    .set_mode(certified, unsigned_too);
                net.run(Duration::from_secs(10));
                all_alive(
                    &net,
                    &format!("node {i} in mode {certified}/{unsigned_too}"),
                );
            }
        }
        assert!(net.nodes.iter().flatten().all(|m| m.is_certified()));
        // A key holder's unsigned word is now taken by no one: a stranger
        // announcing itself to node 0 stays unknown.
        let stranger = node(9);
        let mut outsider = Membership::new(stranger, &Timings::default(), [9; 32]);
        outsider.announce(node(0), net.now);
        for (to, payload) in outsider.take_outbox() {
            net.deliver_as("n9", false, to, &payload);
        }
        net.run(Duration::from_secs(2));
        assert!(!net.states(0).contains_key("n9"), "{:?}", net.states(0));
    }

    /// Without the move, a certified member takes nothing unsigned: the
    /// members without a certificate stay strangers to it.
    #[test]
    fn a_certified_member_not_moving_ignores_members_without_certificates() {
        let net = mixed(false);
        for i in [2, 3] {
            let states = net.states(i);
            assert!(
                !states.contains_key("n0") && !states.contains_key("n1"),
                "node {i}: {states:?}"
            );
        }
    }
}

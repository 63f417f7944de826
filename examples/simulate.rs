//! A deterministic, in-process simulation of the membership layer at the
//! scale of thousands of members.
//!
//! Every member is a real [`Membership`] (SWIM through foca, sans-IO); only
//! the network and the clock are simulated. Datagrams go through an
//! in-memory queue with seeded loss and delay, and time jumps from event to
//! event (a datagram's arrival or a member's next timer), so a run is exactly
//! repeatable: two runs with the same arguments print the same stdout
//! (wall-clock figures go to stderr).
//!
//! It measures, in simulated seconds and probe periods, how long the cluster
//! takes to learn of a join, a crash and a graceful leave, and how often a
//! live member is wrongly suspected or declared down under packet loss, with
//! the SWIM paper's expectations printed next to the figures. How to run it
//! and what the figures show: bench/SIMULATION.md.
//!
//! ```text
//! cargo run --release --example simulate -- --nodes 1000 --loss 0,0.01
//! ```

use clap::{Parser, ValueEnum};
use foca::{Codec, Message, PostcardCodec, State};
use p2p::membership::{MAX_PAYLOAD, MemberState, Membership, Node, Timings};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// What `Membership::new` configures in foca and the simulation cannot read
/// back: members picked per gossip round and per indirect probe. How often
/// each member passes an update on is foca's LAN rule for 1,024 members
/// (4 * log10(1025)), exported by the membership module; the run also
/// prints the transmissions it observed.
const FANOUT: f64 = 3.0;
const INDIRECT_PROBES: i32 = 3;
const MAX_TRANSMISSIONS: f64 = p2p::membership::MAX_TRANSMISSIONS as f64;

/// Seeded in chunks: foca queues a notification per new member, and the
/// runtime's buffer keeps its peak size for the life of the node.
const SEED_CHUNK: usize = 512;

/// Views read for the health line after each block (all of them up to this).
const VIEWS_READ: usize = 1000;

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

#[derive(Parser, Debug)]
#[command(about = "Deterministic simulation of p2p's SWIM membership at scale")]
struct Args {
    /// Members in the cluster.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Seed of every random choice: loss, delays, foca's own RNGs, victims.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Loss rates for the join, failure and leave measurements (comma list;
    /// none skips them).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "0,0.01")]
    loss: Vec<f64>,
    /// Loss rates for the false-positive stretches (comma list; none skips
    /// them).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "0.01,0.05")]
    fp_loss: Vec<f64>,
    /// Length of each false-positive stretch, simulated seconds.
    #[arg(long, default_value_t = 300.0)]
    fp_secs: f64,
    /// How the cluster forms.
    #[arg(long, value_enum, default_value_t = Bootstrap::Seed)]
    bootstrap: Bootstrap,
    /// Members joining per wave (join and announce bootstraps).
    #[arg(long, default_value_t = 50)]
    wave: usize,
    /// Time between waves, milliseconds; each member starts at a random
    /// moment within its wave.
    #[arg(long, default_value_t = 500)]
    wave_ms: u64,
    /// Longest wait for every member to know every other, simulated seconds.
    #[arg(long, default_value_t = 300.0)]
    bootstrap_max: f64,
    /// How the measured newcomer joins.
    #[arg(long, value_enum, default_value_t = JoinMode::Announce)]
    join_mode: JoinMode,
    /// Joins, crashes and leaves measured at each loss rate.
    #[arg(long, default_value_t = 1)]
    events: usize,
    /// Longest wait for one event to reach every member, simulated seconds.
    #[arg(long, default_value_t = 120.0)]
    max_wait: f64,
    /// Quiet time before each measurement, simulated seconds.
    #[arg(long, default_value_t = 10.0)]
    settle: f64,
    /// How often the members' views are read, milliseconds: the resolution
    /// of the measured times.
    #[arg(long, default_value_t = 50)]
    sample_ms: u64,
    /// Shortest one-way delay, milliseconds.
    #[arg(long, default_value_t = 0.1)]
    delay_min_ms: f64,
    /// Longest usual one-way delay, milliseconds.
    #[arg(long, default_value_t = 2.0)]
    delay_max_ms: f64,
    /// Share of datagrams delayed longer (a queueing tail).
    #[arg(long, default_value_t = 0.01)]
    tail: f64,
    /// Longest delay in the tail, milliseconds.
    #[arg(long, default_value_t = 50.0)]
    tail_max_ms: f64,
    /// Suspicion timeout in seconds instead of Timings::default()'s, to see
    /// how it trades detection time for false downs.
    #[arg(long)]
    suspicion: Option<f64>,
    /// Threads that fill the member lists (the simulation itself runs on one).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Bootstrap {
    /// Every member's list is filled directly (no traffic), as if the
    /// cluster had been up for a while.
    Seed,
    /// Waves of members join through n0 as p2pd does: the member list over
    /// TCP (`apply_alive`), then foca's announce.
    Join,
    /// Waves of members send foca's announce to n0 and nothing else.
    Announce,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum JoinMode {
    /// The newcomer announces to one random member.
    Announce,
    /// It also takes that member's list first, as p2pd's TCP join does.
    Daemon,
}

/// splitmix64: tiny, fast and good enough to drive a simulation; written out
/// here so that a run depends on nothing but its seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in [lo, hi).
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + (self.unit() * hi.saturating_sub(lo) as f64) as u64
    }

    fn seed32(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        for chunk in s.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        s
    }
}

/// The seed of member `i`'s own RNG (foca picks probe and gossip targets
/// with it), independent of the order in which members are created.
fn member_seed(seed: u64, i: usize) -> [u8; 32] {
    Rng(seed ^ (i as u64).wrapping_mul(0xa076_1d64_78bd_642f)).seed32()
}

/// Member `i` is `n{i}` at 10.x.y.z, its index in the address, so that a
/// destination maps back to a member without a lookup table.
fn identity(i: usize) -> Node {
    let [_, b, c, d] = (i as u32).to_be_bytes();
    Node {
        name: format!("n{i}"),
        addr: SocketAddr::from(([10, b, c, d], 7946)),
        incarnation: 1,
        tags: BTreeMap::new(),
    }
}

fn index_of(addr: SocketAddr) -> Option<usize> {
    match addr.ip() {
        IpAddr::V4(ip) if ip.octets()[0] == 10 => {
            let [_, b, c, d] = ip.octets();
            Some(u32::from_be_bytes([0, b, c, d]) as usize)
        }
        _ => None,
    }
}

/// The simulated network: independent loss per datagram, and a one-way
/// delay uniform in a small range with a rare longer tail.
struct Net {
    loss: f64,
    delay: (u64, u64),
    tail: f64,
    tail_max: u64,
    rng: Rng,
}

impl Net {
    /// The delay of one datagram, or `None` when it is lost.
    fn fate(&mut self) -> Option<u64> {
        if self.rng.unit() < self.loss {
            return None;
        }
        if self.rng.unit() < self.tail {
            Some(self.rng.between(self.delay.1, self.tail_max))
        } else {
            Some(self.rng.between(self.delay.0, self.delay.1))
        }
    }
}

/// One false suspicion or false down: the member, its identity's
/// incarnation and foca's incarnation of it.
type Episode = (usize, u64, u16);

/// What the simulation reads off the wire. foca reports no suspicions, so
/// they are counted here, from the member states the nodes gossip.
#[derive(Default)]
struct Tap {
    datagrams: u64,
    bytes: u64,
    lost: u64,
    /// Datagrams for members that crashed or left.
    undeliverable: u64,
    /// Datagrams that carry cluster updates (not counting feeds to newcomers).
    with_updates: u64,
    updates: u64,
    max_updates: usize,
    /// Datagrams with no room left for one more update.
    full: u64,
    /// The most datagrams one call of `take_outbox` returned.
    max_burst: usize,
    /// Suspicions of live members, and the nodes that passed each on.
    suspicions: HashMap<Episode, HashSet<usize>>,
    /// Identities of live members declared down (an identity dies once).
    downs: HashSet<(usize, u64)>,
    /// The highest incarnation foca gave each identity on the wire: a
    /// suspicion of a lower one has been refuted.
    refuted_up_to: HashMap<(usize, u64), u16>,
    /// The member whose updates are counted per sender, to see how often
    /// each node passes one update on.
    watched: Option<usize>,
    watched_tx: HashMap<(usize, u8, u16), u32>,
}

impl Tap {
    fn reset(&mut self, watched: Option<usize>) {
        *self = Tap {
            watched,
            ..Tap::default()
        };
    }

    fn observe(&mut self, from: usize, payload: &[u8], nodes: &[Option<Membership>]) {
        self.datagrams += 1;
        self.bytes += payload.len() as u64;
        // The first byte tells foca's datagrams (0) from leave notices.
        let Some((&0, mut rest)) = payload.split_first() else {
            return;
        };
        let mut codec = PostcardCodec;
        let Ok(header) = <PostcardCodec as Codec<Node>>::decode_header(&mut codec, &mut rest)
        else {
            return;
        };
        let [hi, lo, tail @ ..] = rest else {
            return;
        };
        let count = usize::from(u16::from_be_bytes([*hi, *lo]));
        let mut rest = tail;
        if let Some(src) = index_of(header.src.addr) {
            let best = self
                .refuted_up_to
                .entry((src, header.src.incarnation))
                .or_default();
            *best = (*best).max(header.src_incarnation);
        }
        let feed = matches!(header.message, Message::Feed);
        if !feed && count > 0 {
            self.with_updates += 1;
            self.updates += count as u64;
            self.max_updates = self.max_updates.max(count);
            // An update of a member with a short name takes about 20 bytes.
            if payload.len() + 20 > MAX_PAYLOAD {
                self.full += 1;
            }
        }
        for _ in 0..count {
            let Ok(m) = <PostcardCodec as Codec<Node>>::decode_member(&mut codec, &mut rest) else {
                break;
            };
            let Some(who) = index_of(m.id().addr) else {
                continue;
            };
            if !feed && self.watched == Some(who) {
                *self
                    .watched_tx
                    .entry((from, m.state() as u8, m.incarnation()))
                    .or_default() += 1;
            }
            // Members that crashed or left are down for good reason.
            if !matches!(nodes.get(who), Some(Some(_))) {
                continue;
            }
            let episode = (who, m.id().incarnation, m.incarnation());
            match m.state() {
                State::Suspect => {
                    self.suspicions.entry(episode).or_default().insert(from);
                }
                State::Down => {
                    self.downs.insert((who, m.id().incarnation));
                }
                State::Alive => {}
            }
        }
    }

    /// Suspicions the suspect answered with a higher incarnation.
    fn refuted(&self) -> usize {
        self.suspicions
            .keys()
            .filter(|(who, id, inc)| {
                self.refuted_up_to
                    .get(&(*who, *id))
                    .is_some_and(|best| best > inc)
            })
            .count()
    }

    /// The most times one node sent one update about the watched member.
    fn max_watched_tx(&self) -> u32 {
        self.watched_tx.values().copied().max().unwrap_or(0)
    }
}

type Datagram = Reverse<(u64, u64, u32, Vec<u8>)>;

/// The cluster, the network and the clock.
struct Sim {
    base: Instant,
    /// Simulated nanoseconds since `base`.
    now: u64,
    nodes: Vec<Option<Membership>>,
    /// The earliest timer entry queued for each node.
    armed: Vec<Option<u64>>,
    /// Whether a node did anything since its view was last read.
    dirty: Vec<bool>,
    /// In flight: (arrival, sequence, destination, payload). The sequence
    /// number keeps the order of simultaneous arrivals repeatable.
    datagrams: BinaryHeap<Datagram>,
    timers: BinaryHeap<Reverse<(u64, u32)>>,
    seq: u64,
    net: Net,
    tap: Tap,
    events: u64,
}

fn nanos(base: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
}

impl Sim {
    fn new(base: Instant, net: Net) -> Sim {
        Sim {
            base,
            now: 0,
            nodes: Vec::new(),
            armed: Vec::new(),
            dirty: Vec::new(),
            datagrams: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            net,
            tap: Tap::default(),
            events: 0,
        }
    }

    fn instant(&self, t: u64) -> Instant {
        self.base + Duration::from_nanos(t)
    }

    /// Puts a member on the network, at the slot its address names.
    fn add(&mut self, m: Membership) {
        let Some(i) = index_of(m.me().addr) else {
            return;
        };
        if i >= self.nodes.len() {
            self.nodes.resize_with(i + 1, || None);
            self.armed.resize(i + 1, None);
            self.dirty.resize(i + 1, false);
        }
        self.nodes[i] = Some(m);
        self.after(i);
    }

    /// Takes a member out of the network, as a crash would.
    fn remove(&mut self, i: usize) -> Option<Membership> {
        self.armed[i] = None;
        self.nodes[i].take()
    }

    fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some())
            .collect()
    }

    /// After node `i` did anything: send what it queued and queue its next
    /// timer.
    fn after(&mut self, i: usize) {
        let base = self.base;
        let Some(m) = self.nodes[i].as_mut() else {
            return;
        };
        let out = m.take_outbox();
        let next = m.next_deadline().map(|d| nanos(base, d));
        self.dirty[i] = true;
        if let Some(t) = next {
            if self.armed[i].is_none_or(|a| t < a) {
                self.armed[i] = Some(t);
                self.timers.push(Reverse((t, i as u32)));
            }
        }
        self.send(i, out);
    }

    fn send(&mut self, from: usize, out: Vec<(SocketAddr, Vec<u8>)>) {
        self.tap.max_burst = self.tap.max_burst.max(out.len());
        for (addr, payload) in out {
            self.tap.observe(from, &payload, &self.nodes);
            let Some(to) = index_of(addr) else {
                self.tap.undeliverable += 1;
                continue;
            };
            match self.net.fate() {
                None => self.tap.lost += 1,
                Some(delay) => {
                    self.seq += 1;
                    self.datagrams
                        .push(Reverse((self.now + delay, self.seq, to as u32, payload)));
                }
            }
        }
    }

    /// Runs every event due up to `end`, in time order.
    fn run_until(&mut self, end: u64) {
        loop {
            let datagram = self.datagrams.peek().map(|Reverse((t, ..))| *t);
            let timer = self.timers.peek().map(|Reverse((t, _))| *t);
            let Some(t) = datagram.into_iter().chain(timer).min() else {
                break;
            };
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.events += 1;
            let now = self.instant(self.now);
            if timer == Some(t) {
                let Some(Reverse((at, i))) = self.timers.pop() else {
                    break;
                };
                let i = i as usize;
                // Superseded by an earlier deadline that has run since.
                if self.armed[i] != Some(at) {
                    continue;
                }
                self.armed[i] = None;
                if let Some(m) = self.nodes[i].as_mut() {
                    m.handle_timers(now);
                    self.after(i);
                }
            } else {
                let Some(Reverse((_, _, to, payload))) = self.datagrams.pop() else {
                    break;
                };
                let to = to as usize;
                match self.nodes.get_mut(to) {
                    Some(Some(m)) => {
                        m.handle_payload(&payload, now);
                        self.after(to);
                    }
                    _ => self.tap.undeliverable += 1,
                }
            }
        }
        self.now = self.now.max(end);
    }

    /// Runs until every observer lists `subject` in a settled state (or
    /// `max_wait` passes), reading the views every `sample`.
    fn watch(&mut self, w: &Watch, observers: &[usize], max_wait: u64, sample: u64) -> Spread {
        let start = self.now;
        let mut pending = observers.to_vec();
        let mut spread = Spread {
            observers: observers.len(),
            noticed: None,
            reached: Vec::new(),
            waited: 0,
            timed_out: false,
            last_states: BTreeMap::new(),
        };
        self.dirty.fill(true);
        let mut t = start;
        while !pending.is_empty() && t - start < max_wait {
            t += sample;
            self.run_until(t);
            let since = t - start;
            pending.retain(|&i| {
                // A view changes only when its node handles something.
                if !self.dirty[i] {
                    return true;
                }
                let state = self.nodes[i].as_ref().and_then(|m| m.state_of(&w.subject));
                if spread.noticed.is_none() && (w.noticed)(state) {
                    spread.noticed = Some(since);
                }
                if (w.goal)(state) {
                    spread.reached.push(since);
                }
                !(w.settled)(state)
            });
            self.dirty.fill(false);
        }
        spread.waited = t - start;
        spread.timed_out = !pending.is_empty();
        for &i in observers {
            let state = self.nodes[i].as_ref().and_then(|m| m.state_of(&w.subject));
            *spread.last_states.entry(state_name(state)).or_default() += 1;
        }
        spread
    }
}

fn state_name(s: Option<MemberState>) -> &'static str {
    s.map_or("unknown", MemberState::as_str)
}

/// What to wait for in every observer's view of one member.
struct Watch {
    subject: String,
    /// The first observer in this state marks the first reaction.
    noticed: fn(Option<MemberState>) -> bool,
    /// The state whose spread is measured.
    goal: fn(Option<MemberState>) -> bool,
    /// The observer's view will not change any more.
    settled: fn(Option<MemberState>) -> bool,
}

/// How one event spread: when observers reached the goal state.
struct Spread {
    observers: usize,
    noticed: Option<u64>,
    /// When each observer reached the goal, in order.
    reached: Vec<u64>,
    waited: u64,
    /// Some observers had not settled when the wait ended.
    timed_out: bool,
    last_states: BTreeMap<&'static str, usize>,
}

impl Spread {
    /// When the share `q` of observers had reached the goal.
    fn at(&self, q: f64) -> Option<u64> {
        let k = ((q * self.observers as f64).ceil() as usize).max(1);
        self.reached.get(k - 1).copied()
    }

    fn row(&self, label: &str, expected: &str) -> String {
        let cell = |t: Option<u64>| match t {
            Some(t) => format!("{:7.2}", secs(t)),
            None if self.timed_out => format!("{:>7}", format!(">{:.0}", secs(self.waited))),
            // Every view settled, some short of the goal (see final views).
            None => format!("{:>7}", "never"),
        };
        let mut row = format!("{label:<22}{}", cell(self.noticed));
        for q in [0.5, 0.9, 0.99, 1.0] {
            row.push_str(&cell(self.at(q)));
        }
        format!("{row}   {expected}")
    }

    fn states(&self) -> String {
        let parts: Vec<String> = self
            .last_states
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        parts.join(", ")
    }
}

fn secs(t: u64) -> f64 {
    t as f64 / SEC as f64
}

/// The push-gossip estimate: every informed member tells `FANOUT` random
/// others per gossip round, so the informed set grows (1 + b)-fold per round
/// until the last members are reached at a rate of b per round: about
/// log_{1+b} N + ln N / b rounds (Pittel's estimate for b = 1, generalised).
fn gossip_estimate(n: f64, t: &Timings) -> f64 {
    (n.ln() / (1.0 + FANOUT).ln() + n.ln() / FANOUT) * t.gossip_interval.as_secs_f64()
}

/// SWIM's probability that one probe of a live member fails: the ping or its
/// ack is lost, and so is one of the four datagrams of each indirect probe.
fn false_probe(loss: f64) -> f64 {
    let ok = 1.0 - loss;
    (1.0 - ok.powi(2)) * (1.0 - ok.powi(4)).powi(INDIRECT_PROBES)
}

/// SWIM's expected time to the first probe of a crashed member, in whole
/// protocol periods when all members probe in lockstep.
const SWIM_FIRST_DETECTION: f64 = std::f64::consts::E / (std::f64::consts::E - 1.0);

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// Fills each member's list with every member, on several threads; each
/// member starts at a random moment within the first probe period, so
/// their probes are not in lockstep.
fn seeded(
    n: usize,
    seed: u64,
    timings: &Timings,
    threads: usize,
    base: Instant,
) -> Vec<Membership> {
    let all: Vec<Node> = (0..n).map(identity).collect();
    let period = nanos(base, base + timings.probe_interval);
    let per = n.div_ceil(threads.max(1));
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|w| {
                let all = &all;
                s.spawn(move || {
                    (w * per..((w + 1) * per).min(n))
                        .map(|i| {
                            let mut m =
                                Membership::new(all[i].clone(), timings, member_seed(seed, i));
                            let offset = Rng(seed ^ i as u64).between(0, period);
                            let at = base + Duration::from_nanos(offset);
                            for chunk in all.chunks(SEED_CHUNK) {
                                m.restore_alive(chunk.to_vec(), at);
                            }
                            m
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn main() {
    let args = Args::parse();
    if let Err(e) = check(&args) {
        eprintln!("simulate: {e}");
        std::process::exit(2);
    }
    let wall = Instant::now();
    let mut timings = Timings::default();
    if let Some(s) = args.suspicion {
        timings.suspicion = Duration::from_secs_f64(s);
    }
    let n = args.nodes;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let base = Instant::now();
    let mut rng = Rng(args.seed ^ 0x5151_5151);
    let mut sim = Sim::new(
        base,
        Net {
            loss: 0.0,
            delay: (ms(args.delay_min_ms), ms(args.delay_max_ms)),
            tail: args.tail,
            tail_max: ms(args.tail_max_ms),
            rng: Rng(args.seed),
        },
    );

    println!(
        "p2p membership simulation: N = {n}, seed {}, one-way delay {}-{} ms ({} of datagrams up to {} ms)",
        args.seed,
        args.delay_min_ms,
        args.delay_max_ms,
        pct(args.tail),
        args.tail_max_ms
    );
    println!(
        "timings ({}): probe every {:?}, probe timeout {:?}, \
         suspicion {:?}, gossip every {:?} to {FANOUT} members, {INDIRECT_PROBES} indirect probes, \
         {MAX_TRANSMISSIONS} transmissions per update, announce every {:?}",
        if args.suspicion.is_some() {
            "Timings::default with --suspicion"
        } else {
            "Timings::default"
        },
        timings.probe_interval,
        timings.probe_timeout,
        timings.suspicion,
        timings.gossip_interval,
        timings.announce_interval
    );
    println!(
        "times are simulated seconds after the event, read every {} ms; 1 probe period = {:?}",
        args.sample_ms, timings.probe_interval
    );

    bootstrap(&mut sim, &args, &timings, threads);
    eprintln!(
        "[{:6.1}s wall] bootstrap done: {} events",
        wall.elapsed().as_secs_f64(),
        sim.events
    );

    for &loss in &args.loss {
        measure(&mut sim, &args, &timings, &mut rng, loss);
    }

    for &loss in &args.fp_loss {
        quiet(&mut sim, &args, &timings, loss);
        eprintln!(
            "[{:6.1}s wall] quiet stretch at {} loss done",
            wall.elapsed().as_secs_f64(),
            pct(loss)
        );
    }

    wrapper_costs(&mut sim);
    eprintln!(
        "[{:6.1}s wall] done: {:.0} simulated seconds, {} events",
        wall.elapsed().as_secs_f64(),
        secs(sim.now),
        sim.events
    );
}

/// One measured event: how it spread, and what to say under the table.
struct Measured {
    label: String,
    spread: Spread,
    note: String,
}

impl Measured {
    /// One event's row, `EVENT: listed GOAL`, after saying how long it took.
    fn new(event: String, goal: &str, spread: Spread, note: String, wall: Instant) -> Measured {
        eprintln!(
            "  {event} measured in {:.1} s",
            wall.elapsed().as_secs_f64()
        );
        Measured {
            label: format!("{event}: listed {goal}"),
            spread,
            note,
        }
    }
}

/// Joins, crashes and leaves at one loss rate, each after a quiet settle,
/// printed as one table.
fn measure(sim: &mut Sim, args: &Args, timings: &Timings, rng: &mut Rng, loss: f64) {
    sim.net.loss = loss;
    let n = sim.live().len();
    let dissemination = gossip_estimate(n as f64, timings);
    let period = timings.probe_interval.as_secs_f64();
    let mut joins = Vec::new();
    let mut crashes = Vec::new();
    let mut leaves = Vec::new();
    for k in 1..=args.events {
        let tag = if args.events > 1 {
            format!(" #{k}")
        } else {
            String::new()
        };
        joins.push(join(sim, args, timings, rng, &tag));
        crashes.push(crash(sim, args, rng, &tag));
        leaves.push(leave(sim, args, rng, &tag));
    }

    println!();
    println!(
        "N = {n}, loss {}        first     50%     90%     99%    100%   expected",
        pct(loss)
    );
    let expected = [
        format!(
            "all in ~{dissemination:.2} s (push gossip, fan-out {FANOUT} per {:?}); SWIM: O(log N) periods",
            timings.gossip_interval
        ),
        format!(
            "first suspect {SWIM_FIRST_DETECTION:.2} periods (SWIM), ~2 unsynchronised; \
             all down ~{:.2} s (~2 + {:?} suspicion + {dissemination:.2})",
            2.0 * period + timings.suspicion.as_secs_f64() + dissemination,
            timings.suspicion
        ),
        format!("all in ~{dissemination:.2} s (notice direct and relayed, down by gossip)"),
    ];
    for (rows, expected) in [&joins, &crashes, &leaves].into_iter().zip(&expected) {
        for (i, m) in rows.iter().enumerate() {
            let expected = if i == 0 { expected.as_str() } else { "" };
            println!("{}", m.spread.row(&m.label, expected));
        }
    }
    println!(
        "  first: the first view to reach the goal (for a crash, the first suspicion); \
         a probe period is {:?}, so seconds are periods; a gossip round is {:?}",
        timings.probe_interval, timings.gossip_interval
    );
    println!(
        "  gossip passes each update on {MAX_TRANSMISSIONS} times: expected views it misses N*e^-{MAX_TRANSMISSIONS} = {:.1}",
        n as f64 * (-MAX_TRANSMISSIONS).exp()
    );
    for m in joins.iter().chain(&crashes).chain(&leaves) {
        println!("  {}", m.note);
    }
    println!("  views now: {}", views(sim, VIEWS_READ));
}

fn settle(sim: &mut Sim, args: &Args) {
    sim.run_until(sim.now + (args.settle * SEC as f64) as u64);
}

/// A newcomer announces itself to one random member.
fn join(sim: &mut Sim, args: &Args, timings: &Timings, rng: &mut Rng, tag: &str) -> Measured {
    settle(sim, args);
    let wall = Instant::now();
    let observers = sim.live();
    let contact = observers[rng.below(observers.len())];
    let newcomer = sim.nodes.len();
    let mut m = Membership::new(
        identity(newcomer),
        timings,
        member_seed(args.seed, newcomer),
    );
    let now = sim.instant(sim.now);
    if let Some(c) = sim.nodes[contact].as_ref() {
        if args.join_mode == JoinMode::Daemon {
            m.apply_alive(c.live_nodes(), now);
        }
        m.announce(c.me().clone(), now);
    }
    sim.tap.reset(Some(newcomer));
    sim.add(m);
    let spread = sim.watch(
        &Watch {
            subject: format!("n{newcomer}"),
            noticed: |s| s == Some(MemberState::Alive),
            goal: |s| s == Some(MemberState::Alive),
            settled: |s| s == Some(MemberState::Alive),
        },
        &observers,
        (args.max_wait * SEC as f64) as u64,
        args.sample_ms * MS,
    );
    let knows = sim.nodes[newcomer]
        .as_ref()
        .map_or(0, |m| m.members().len());
    let note = format!(
        "join{tag}: n{newcomer} announced to n{contact} ({:?} mode), knows {knows} of {} members \
         at the end; one node sent its alive at most {} times; views [{}]; per member {}",
        args.join_mode,
        observers.len() + 1,
        sim.tap.max_watched_tx(),
        spread.states(),
        traffic(sim, observers.len() + 1, spread.waited)
    );
    Measured::new(format!("join{tag}"), "alive", spread, note, wall)
}

/// A member crashes: it simply stops answering.
fn crash(sim: &mut Sim, args: &Args, rng: &mut Rng, tag: &str) -> Measured {
    settle(sim, args);
    let wall = Instant::now();
    let live = sim.live();
    let victim = live[rng.below(live.len())];
    sim.remove(victim);
    let observers = sim.live();
    sim.tap.reset(Some(victim));
    let spread = sim.watch(
        &Watch {
            subject: format!("n{victim}"),
            noticed: |s| matches!(s, Some(MemberState::Suspect | MemberState::Down)),
            goal: |s| s == Some(MemberState::Down),
            settled: |s| s == Some(MemberState::Down),
        },
        &observers,
        (args.max_wait * SEC as f64) as u64,
        args.sample_ms * MS,
    );
    let note = format!(
        "crash{tag} of n{victim}: views [{}]; per member {}",
        spread.states(),
        traffic(sim, observers.len(), spread.waited)
    );
    Measured::new(format!("crash{tag}"), "down", spread, note, wall)
}

/// A member leaves gracefully.
fn leave(sim: &mut Sim, args: &Args, rng: &mut Rng, tag: &str) -> Measured {
    settle(sim, args);
    let wall = Instant::now();
    let live = sim.live();
    let leaver = live[rng.below(live.len())];
    let observers: Vec<usize> = live.into_iter().filter(|&i| i != leaver).collect();
    sim.tap.reset(Some(leaver));
    if let Some(mut m) = sim.remove(leaver) {
        m.leave(sim.instant(sim.now));
        let out = m.take_outbox();
        sim.send(leaver, out);
    }
    let spread = sim.watch(
        &Watch {
            subject: format!("n{leaver}"),
            noticed: |s| matches!(s, Some(MemberState::Left | MemberState::Down)),
            goal: |s| s == Some(MemberState::Left),
            // Without the notice (lost) foca's down is final: it shows `down`.
            settled: |s| matches!(s, Some(MemberState::Left | MemberState::Down)),
        },
        &observers,
        (args.max_wait * SEC as f64) as u64,
        args.sample_ms * MS,
    );
    let note = format!(
        "leave{tag} of n{leaver}: views [{}]; per member {}",
        spread.states(),
        traffic(sim, observers.len(), spread.waited)
    );
    Measured::new(format!("leave{tag}"), "left", spread, note, wall)
}

fn check(args: &Args) -> Result<(), String> {
    if args.nodes < 5 || args.nodes > 1 << 20 {
        return Err("--nodes must be between 5 and 1048576".into());
    }
    let rate = |x: f64| (0.0..1.0).contains(&x);
    if !args.loss.iter().chain(&args.fp_loss).all(|&l| rate(l)) || !rate(args.tail) {
        return Err("loss rates and --tail must be in [0, 1)".into());
    }
    if !(args.delay_min_ms >= 0.0
        && args.delay_min_ms <= args.delay_max_ms
        && args.delay_max_ms <= args.tail_max_ms)
    {
        return Err(
            "delays must satisfy 0 <= --delay-min-ms <= --delay-max-ms <= --tail-max-ms".into(),
        );
    }
    if args
        .suspicion
        .is_some_and(|s| !(0.001..=3600.0).contains(&s))
    {
        return Err("--suspicion must be between 0.001 and 3600 seconds".into());
    }
    if args.sample_ms == 0 || args.wave == 0 || args.wave_ms == 0 || args.events == 0 {
        return Err("--sample-ms, --wave, --wave-ms and --events must be positive".into());
    }
    Ok(())
}

fn ms(x: f64) -> u64 {
    (x * MS as f64) as u64
}

/// Datagrams and bytes each member sent per second, and how full they were.
fn traffic(sim: &Sim, members: usize, over: u64) -> String {
    let tap = &sim.tap;
    let per = (members.max(1) as f64) * secs(over).max(1e-9);
    format!(
        "{:.1} datagrams/s, {:.0} B/s; {:.1} updates per gossip datagram (max {}), {} full; \
         {} lost, {} to members gone, largest outbox {}",
        tap.datagrams as f64 / per,
        tap.bytes as f64 / per,
        tap.updates as f64 / tap.with_updates.max(1) as f64,
        tap.max_updates,
        tap.full,
        tap.lost,
        tap.undeliverable,
        tap.max_burst
    )
}

/// Forms the cluster, then lets it settle.
fn bootstrap(sim: &mut Sim, args: &Args, timings: &Timings, threads: usize) {
    let n = args.nodes;
    let wall = Instant::now();
    if args.bootstrap == Bootstrap::Seed {
        for m in seeded(n, args.seed, timings, threads, sim.base) {
            sim.add(m);
        }
        println!("bootstrap: member lists filled directly (restore_alive, no gossip), {n} members");
        eprintln!(
            "[{:6.1}s wall] seeded {n} members on {threads} threads",
            wall.elapsed().as_secs_f64()
        );
        return;
    }

    // Waves of members join through n0.
    let mut rng = Rng(args.seed ^ 0xb007);
    let mut schedule: Vec<(u64, usize)> = (1..n)
        .map(|i| {
            let wave = ((i - 1) / args.wave) as u64;
            let at = wave * args.wave_ms * MS + rng.between(0, args.wave_ms * MS);
            (at, i)
        })
        .collect();
    schedule.sort_unstable();
    sim.add(Membership::new(
        identity(0),
        timings,
        member_seed(args.seed, 0),
    ));
    for (at, i) in schedule {
        sim.run_until(at);
        let now = sim.instant(sim.now);
        let mut m = Membership::new(identity(i), timings, member_seed(args.seed, i));
        if let Some(first) = sim.nodes[0].as_ref() {
            if args.bootstrap == Bootstrap::Join {
                m.apply_alive(first.live_nodes(), now);
            }
            m.announce(first.me().clone(), now);
        }
        sim.add(m);
    }
    let last_join = sim.now;

    // Until every member lists all N alive. Whole lists are costly to read,
    // so once a period, and only those that can have changed; times are
    // counted from the last member's start.
    let mut full = Spread {
        observers: n,
        noticed: None,
        reached: Vec::new(),
        waited: 0,
        timed_out: false,
        last_states: BTreeMap::new(),
    };
    let mut complete = vec![false; n];
    let limit = (args.bootstrap_max * SEC as f64) as u64;
    while full.reached.len() < n && sim.now - last_join < limit {
        sim.run_until(sim.now + SEC);
        for (i, done) in complete.iter_mut().enumerate() {
            if *done || !sim.dirty[i] {
                continue;
            }
            let Some(m) = sim.nodes[i].as_ref() else {
                continue;
            };
            let alive = m
                .members()
                .iter()
                .filter(|m| m.state == MemberState::Alive)
                .count();
            if alive == n {
                *done = true;
                full.reached.push(sim.now - last_join);
            }
        }
        sim.dirty.fill(false);
    }
    full.waited = sim.now - last_join;
    full.noticed = full.reached.first().copied();
    full.timed_out = full.reached.len() < n;
    let how = match args.bootstrap {
        Bootstrap::Join => "member list from n0, then announce",
        _ => "announce to n0 only",
    };
    println!(
        "bootstrap: {n} members joined through n0 ({how}), {} every {} ms; the last started at {:.1} s",
        args.wave,
        args.wave_ms,
        secs(last_join)
    );
    println!("after the last start       first     50%     90%     99%    100%");
    println!(
        "{}",
        full.row(
            "bootstrap: full view",
            "(members listing all N alive, read once a period)"
        )
    );
    println!("  views now: {}", views(sim, VIEWS_READ));
    eprintln!(
        "[{:6.1}s wall] bootstrap ({:?}) simulated",
        wall.elapsed().as_secs_f64(),
        args.bootstrap
    );
}

/// A long stretch with nothing happening but packet loss: every suspicion
/// or down of a live member is a false positive.
fn quiet(sim: &mut Sim, args: &Args, timings: &Timings, loss: f64) {
    sim.net.loss = loss;
    sim.run_until(sim.now + (args.settle * SEC as f64) as u64);
    let live = sim.live();
    let before: Vec<u64> = live.iter().map(|&i| incarnation(sim, i)).collect();
    sim.tap.reset(None);
    let length = (args.fp_secs * SEC as f64) as u64;
    let end = sim.now + length;
    let wall = Instant::now();
    while sim.now < end {
        sim.run_until((sim.now + 10 * SEC).min(end));
        eprintln!(
            "  quiet at {}: {:.0} of {:.0} s after {:.0} s wall",
            pct(loss),
            secs(length - (end - sim.now)),
            secs(length),
            wall.elapsed().as_secs_f64()
        );
    }
    let rejoins: u64 = live
        .iter()
        .zip(&before)
        .map(|(&i, b)| incarnation(sim, i).saturating_sub(*b))
        .sum();
    let hours = live.len() as f64 * secs(length) / 3600.0;
    let suspicions = sim.tap.suspicions.len();
    let reach = sim.tap.suspicions.values().map(HashSet::len).sum::<usize>() as f64
        / suspicions.max(1) as f64;
    let downs = sim.tap.downs.len();
    let expected = 3600.0 / timings.probe_interval.as_secs_f64() * false_probe(loss);
    println!();
    println!(
        "false positives, N = {}, loss {}, {:.0} s quiet ({:.1} member-hours)",
        live.len(),
        pct(loss),
        secs(length),
        hours
    );
    println!(
        "  suspicions of live members: {suspicions} ({:.3} per member-hour; SWIM expects {expected:.3}: \
         (1-(1-p)^2)(1-(1-p)^4)^{INDIRECT_PROBES} per probe); each passed on by {reach:.0} members on average; \
         {} refuted by the suspect",
        suspicions as f64 / hours,
        sim.tap.refuted()
    );
    println!(
        "  live members declared down: {downs} ({:.3} per member-hour; SWIM expects ~0 when the \
         {:?} suspicion outlasts a refutation's spread), rejoins with a new incarnation: {rejoins}",
        downs as f64 / hours,
        timings.suspicion
    );
    println!("  traffic per member: {}", traffic(sim, live.len(), length));
    println!("  views now: {}", views(sim, VIEWS_READ));
}

/// How far the live members' views are from the truth: live members
/// missing from a view or listed as not alive. Whole lists are costly to
/// build at 10,000 members, so at most `limit` views, spread evenly.
fn views(sim: &Sim, limit: usize) -> String {
    let live = sim.live();
    let names: HashSet<String> = live.iter().map(|&i| format!("n{i}")).collect();
    let step = live.len().div_ceil(limit.max(1)).max(1);
    let (mut read, mut missing) = (0, 0);
    let mut wrong: BTreeMap<&'static str, usize> = BTreeMap::new();
    for &i in live.iter().step_by(step) {
        let Some(m) = sim.nodes[i].as_ref() else {
            continue;
        };
        read += 1;
        let mut listed = 0;
        for info in m.members() {
            if names.contains(&info.name) {
                listed += 1;
                if info.state != MemberState::Alive {
                    *wrong.entry(info.state.as_str()).or_default() += 1;
                }
            }
        }
        missing += names.len() - listed;
    }
    let wrong: Vec<String> = wrong.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!(
        "{read} views read; live members missing from them {missing} times, listed not alive: {}",
        if wrong.is_empty() {
            "none".to_string()
        } else {
            wrong.join(", ")
        }
    )
}

fn incarnation(sim: &Sim, i: usize) -> u64 {
    sim.nodes[i].as_ref().map_or(0, |m| m.me().incarnation)
}

/// What the wrapper's whole-list calls cost at this size: p2pd calls
/// `changes()` on every turn of its loop and `members()` on every change.
fn wrapper_costs(sim: &mut Sim) {
    let Some(m) = sim.nodes.iter_mut().flatten().next() else {
        return;
    };
    let t = Instant::now();
    let listed = m.members().len();
    let members = t.elapsed();
    let t = Instant::now();
    let _ = m.changes(Instant::now());
    let first = t.elapsed();
    let t = Instant::now();
    let _ = m.changes(Instant::now());
    let again = t.elapsed();
    let t = Instant::now();
    let _ = m.state_of("n1");
    let one = t.elapsed();
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_default();
    eprintln!(
        "wrapper at {listed} members: members() {members:?}, changes() {first:?} (first) / {again:?} \
         (nothing changed), state_of() {one:?}; peak RSS {rss} for {} members",
        sim.nodes.iter().flatten().count()
    );
}

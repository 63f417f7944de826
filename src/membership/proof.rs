//! Certified mode's rule for gossip: a member asserts only its own
//! identity.
//!
//! With a cluster CA every datagram is signed by its sender
//! ([`crate::crypto::signed`]), so the membership knows which certified
//! name sent it. An identity (name, address, incarnation, tags) is taken
//! only once its owner has shown it: as the sender of a signed datagram,
//! or in answer to a question. [`Proven`] holds the identities so shown;
//! an update about any other identity, heard from a third member over
//! gossip or a sync, is dropped, and its owner is asked who it is (a
//! `who` datagram, answered by a `self` one): its answer is what is
//! taken. States stay SWIM's: anyone may report a proven identity
//! suspect or down, and its owner refutes as usual.

use super::Node;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Identities kept per name: the highest incarnations shown.
const PER_NAME: usize = 4;

/// How often one address is asked who it is, or answered.
pub(super) const ASK_EVERY: Duration = Duration::from_millis(500);

/// Most addresses whose last question or answer is remembered.
const MAX_ASKED: usize = 4096;

/// The identities their owners have shown, and whom we asked.
#[derive(Default)]
pub(super) struct Proven {
    by_name: HashMap<String, Vec<Node>>,
    asked: HashMap<SocketAddr, Instant>,
    answered: HashMap<SocketAddr, Instant>,
}

impl Proven {
    /// Takes `node` as shown by its owner.
    pub(super) fn prove(&mut self, node: &Node) {
        let held = self.by_name.entry(node.name.clone()).or_default();
        if held.contains(node) {
            return;
        }
        held.push(node.clone());
        held.sort_by_key(|n| std::cmp::Reverse(n.incarnation));
        held.truncate(PER_NAME);
    }

    /// Whether its owner showed exactly this identity.
    pub(super) fn holds(&self, node: &Node) -> bool {
        self.by_name
            .get(&node.name)
            .is_some_and(|h| h.contains(node))
    }

    /// The addresses to ask about `node`: the one its owner last showed,
    /// and the one claimed, each at most once per [`ASK_EVERY`].
    pub(super) fn addresses_to_ask(&mut self, node: &Node, now: Instant) -> Vec<SocketAddr> {
        let mut out = Vec::with_capacity(2);
        let known = self
            .by_name
            .get(&node.name)
            .and_then(|h| h.first())
            .map(|n| n.addr);
        for addr in known.into_iter().chain([node.addr]) {
            if !out.contains(&addr) && due(&mut self.asked, addr, now) {
                out.push(addr);
            }
        }
        out
    }

    /// Whether a question from `addr` is answered now.
    pub(super) fn may_answer(&mut self, addr: SocketAddr, now: Instant) -> bool {
        due(&mut self.answered, addr, now)
    }
}

/// Whether `addr` was not served within [`ASK_EVERY`]; if so, it is now.
fn due(table: &mut HashMap<SocketAddr, Instant>, addr: SocketAddr, now: Instant) -> bool {
    if table
        .get(&addr)
        .is_some_and(|t| now.saturating_duration_since(*t) < ASK_EVERY)
    {
        return false;
    }
    if table.len() >= MAX_ASKED {
        table.retain(|_, t| now.saturating_duration_since(*t) < ASK_EVERY);
        if table.len() >= MAX_ASKED {
            return false;
        }
    }
    table.insert(addr, now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn n(name: &str, port: u16, incarnation: u64) -> Node {
        Node {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            incarnation,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn only_what_was_shown_is_held_and_the_newest_are_kept() {
        let mut p = Proven::default();
        p.prove(&n("a", 1, 5));
        assert!(p.holds(&n("a", 1, 5)));
        assert!(!p.holds(&n("a", 1, 6)), "another incarnation");
        assert!(!p.holds(&n("a", 2, 5)), "another address");
        let mut tagged = n("a", 1, 5);
        tagged.tags.insert("role".into(), "db".into());
        assert!(!p.holds(&tagged), "other tags");
        for i in 6..20 {
            p.prove(&n("a", 1, i));
        }
        assert!(p.holds(&n("a", 1, 19)) && p.holds(&n("a", 1, 16)));
        assert!(!p.holds(&n("a", 1, 15)), "only {PER_NAME} kept");
    }

    #[test]
    fn an_address_is_asked_at_most_once_per_interval() {
        let mut p = Proven::default();
        let t = Instant::now();
        p.prove(&n("a", 1, 5));
        // The address shown and the one claimed.
        assert_eq!(p.addresses_to_ask(&n("a", 9, 6), t).len(), 2);
        assert!(p.addresses_to_ask(&n("a", 9, 7), t).is_empty());
        assert_eq!(p.addresses_to_ask(&n("a", 9, 7), t + ASK_EVERY).len(), 2);
        assert!(p.may_answer(n("b", 3, 1).addr, t));
        assert!(!p.may_answer(n("b", 3, 1).addr, t + ASK_EVERY / 2));
        assert!(p.may_answer(n("b", 3, 1).addr, t + ASK_EVERY));
    }
}

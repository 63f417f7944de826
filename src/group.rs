//! `--group`: the answers of many members folded, as `dshbak -c` and
//! `clush -b` fold identical output, and the end-of-query roll call of the
//! members (asked, answered, failed by reason). Sans-IO: result items in,
//! lines (bytes) out.
//!
//! For each path, members whose answers are identical (the same JSON
//! fields, byte for byte) form one group; failed members form one group per
//! error code, whatever their messages say (one sample is kept: the message
//! of the first member in natural order). Paths come out sorted by their
//! bytes; within a path the largest group comes first, and groups of the
//! same size are ordered results before failures, then by their first
//! member's name ([`crate::nodeset::natural_cmp`]).

use crate::error::{Error, ErrorCode};
use crate::nodeset::{fold, natural_cmp};
use crate::proto::{Item, Outcome, PathBytes};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The line above and below a `clush -b` header.
const RULE: &str = "---------------";

/// Members that gave one answer for one path.
#[derive(Debug, Clone, PartialEq)]
pub struct Group<T> {
    /// The answer; for a failure, the error code and one member's message.
    pub outcome: Outcome<T>,
    /// The members, sorted in natural order.
    pub peers: Vec<String>,
}

/// The groups of one path, largest first.
#[derive(Debug, Clone, PartialEq)]
pub struct PathGroups<T> {
    pub path: PathBytes,
    pub groups: Vec<Group<T>>,
}

/// One JSON line of `--group` output: the path, the answer's fields (or its
/// error), how many members gave it and which.
#[derive(Serialize)]
pub struct GroupLine<'a, T> {
    #[serde(flatten)]
    pub path: &'a PathBytes,
    #[serde(flatten)]
    pub outcome: &'a Outcome<T>,
    pub count: usize,
    pub peers: &'a [String],
}

/// A group being gathered: its answer, and the member whose message a
/// failure group shows (the first in natural order).
struct Gathering<T> {
    outcome: Outcome<T>,
    peers: Vec<String>,
}

/// Gathers result items, then gives their groups.
pub struct Grouper<T> {
    paths: BTreeMap<PathBytes, Vec<Gathering<T>>>,
    /// Where the group of (path, answer) is in its path's list.
    index: HashMap<(PathBytes, String), usize>,
}

impl<T> Default for Grouper<T> {
    fn default() -> Self {
        Grouper {
            paths: BTreeMap::new(),
            index: HashMap::new(),
        }
    }
}

impl<T: Serialize> Grouper<T> {
    /// Takes one member's answer for one path.
    pub fn add(&mut self, item: Item<T>) {
        let key = match &item.outcome {
            // Fields that cannot be serialized cannot be printed either;
            // each such answer stays alone.
            Outcome::Ok(fields) => serde_json::to_string(fields)
                .map(|s| format!("ok {s}"))
                .unwrap_or_else(|_| format!("alone {}", self.index.len())),
            Outcome::Failed { error } => format!("error {}", error.code),
        };
        let groups = self.paths.entry(item.path.clone()).or_default();
        match self.index.get(&(item.path.clone(), key.clone())) {
            Some(&i) => {
                let g = &mut groups[i];
                if let (Outcome::Failed { error: kept }, Outcome::Failed { error }) =
                    (&mut g.outcome, item.outcome)
                    && g.peers.iter().all(|p| natural_cmp(&item.peer, p).is_lt())
                {
                    kept.message = error.message;
                }
                g.peers.push(item.peer);
            }
            None => {
                self.index.insert((item.path, key), groups.len());
                groups.push(Gathering {
                    outcome: item.outcome,
                    peers: vec![item.peer],
                });
            }
        }
    }

    /// The groups, paths in byte order, each path's largest group first.
    pub fn finish(self) -> Vec<PathGroups<T>> {
        self.paths
            .into_iter()
            .map(|(path, gathered)| {
                let mut groups: Vec<Group<T>> = gathered
                    .into_iter()
                    .map(|g| {
                        let mut peers = g.peers;
                        peers.sort_by(|a, b| natural_cmp(a, b));
                        Group {
                            outcome: g.outcome,
                            peers,
                        }
                    })
                    .collect();
                groups.sort_by(|a, b| {
                    let failed = |g: &Group<T>| matches!(g.outcome, Outcome::Failed { .. });
                    b.peers
                        .len()
                        .cmp(&a.peers.len())
                        .then(failed(a).cmp(&failed(b)))
                        .then_with(|| match (a.peers.first(), b.peers.first()) {
                            (Some(x), Some(y)) => natural_cmp(x, y),
                            _ => std::cmp::Ordering::Equal,
                        })
                });
                PathGroups { path, groups }
            })
            .collect()
    }
}

/// True when the members disagree about some path (more than one group)
/// or some member failed: the exit status is then 1.
pub fn disagree<T>(paths: &[PathGroups<T>]) -> bool {
    paths.iter().any(|p| {
        p.groups.len() > 1
            || p.groups
                .iter()
                .any(|g| matches!(g.outcome, Outcome::Failed { .. }))
    })
}

/// The groups as JSON lines.
pub fn json_lines<T: Serialize>(paths: &[PathGroups<T>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in paths {
        for g in &p.groups {
            let line = GroupLine {
                path: &p.path,
                outcome: &g.outcome,
                count: g.peers.len(),
                peers: &g.peers,
            };
            // Our own types always serialize; a failure would only drop a line.
            if serde_json::to_writer(&mut out, &line).is_ok() {
                out.push(b'\n');
            }
        }
    }
    out
}

/// The `clush -b` header of a group: a rule, the folded names and their
/// number, a rule.
pub fn header(peers: &[String]) -> String {
    format!("{RULE}\n{} ({})\n{RULE}\n", fold(peers), peers.len())
}

/// The groups as `clush -b` prints them: each group's header, then its
/// answer in the command's text form (`text`, given the raw name), or for
/// a failure the name as `shown` shows it, the sample message and the code.
pub fn text_blocks<T>(
    paths: &[PathGroups<T>],
    text: &dyn Fn(&T, &[u8]) -> Vec<u8>,
    shown: &dyn Fn(&[u8]) -> String,
) -> Vec<u8> {
    let mut out = Vec::new();
    for p in paths {
        for g in &p.groups {
            out.extend_from_slice(header(&g.peers).as_bytes());
            match &g.outcome {
                Outcome::Ok(fields) => out.extend_from_slice(&text(fields, p.path.as_bytes())),
                Outcome::Failed { error } => out.extend_from_slice(
                    format!(
                        "{}: {} ({})\n",
                        shown(p.path.as_bytes()),
                        error.message,
                        error.code
                    )
                    .as_bytes(),
                ),
            }
        }
    }
    out
}

/// True for the codes that say a member's link failed, not its file.
pub fn is_link_failure(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Unreachable | ErrorCode::Timeout | ErrorCode::Unauthorized
    )
}

/// The members seen in the result lines of a query: each answered, or
/// failed for the first link failure it got.
#[derive(Debug, Default)]
pub struct Roster {
    members: HashMap<String, Option<ErrorCode>>,
}

impl Roster {
    /// Takes one result line of `peer` (lines without a member are not
    /// about one, and are left out).
    pub fn see(&mut self, peer: &str, error: Option<&Error>) {
        if peer.is_empty() {
            return;
        }
        let link = error.map(|e| e.code).filter(|&c| is_link_failure(c));
        let entry = self.members.entry(peer.to_string()).or_insert(None);
        if entry.is_none() {
            *entry = link;
        }
    }

    /// `asked 5 members (node[0-4]): 3 answered, 2 failed (timeout:
    /// node2; unreachable: node[3-4])`, reasons in the order of their codes.
    pub fn summary(&self) -> String {
        let names: Vec<&String> = self.members.keys().collect();
        let mut by_reason: BTreeMap<&'static str, Vec<&String>> = BTreeMap::new();
        for (name, failed) in &self.members {
            if let Some(code) = failed {
                by_reason.entry(code.as_str()).or_default().push(name);
            }
        }
        let failed: usize = by_reason.values().map(Vec::len).sum();
        let n = names.len();
        let mut s = format!(
            "asked {n} member{} ({}): {} answered",
            if n == 1 { "" } else { "s" },
            fold(&names),
            n - failed
        );
        if failed > 0 {
            let reasons: Vec<String> = by_reason
                .iter()
                .map(|(code, names)| format!("{code}: {}", fold(names)))
                .collect();
            s.push_str(&format!(", {failed} failed ({})", reasons.join("; ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ShaFields;

    fn sha(peer: &str, path: &str, digest: &str) -> Item<ShaFields> {
        Item {
            id: None,
            peer: peer.into(),
            path: PathBytes(path.as_bytes().to_vec()),
            outcome: Outcome::Ok(ShaFields {
                sha256: digest.into(),
                bytes: 3,
                changed: false,
            }),
        }
    }

    fn failed(peer: &str, path: &str, code: ErrorCode, msg: &str) -> Item<ShaFields> {
        Item {
            id: None,
            peer: peer.into(),
            path: PathBytes(path.as_bytes().to_vec()),
            outcome: Outcome::Failed {
                error: Error::new(code, msg),
            },
        }
    }

    fn grouped(items: Vec<Item<ShaFields>>) -> Vec<PathGroups<ShaFields>> {
        let mut g = Grouper::default();
        items.into_iter().for_each(|i| g.add(i));
        g.finish()
    }

    #[test]
    fn identical_answers_fold_and_the_largest_group_comes_first() {
        let p = grouped(vec![
            sha("web2", "/f", "bb"),
            sha("web10", "/f", "aa"),
            sha("web1", "/f", "aa"),
            sha("web3", "/f", "aa"),
        ]);
        assert_eq!(p.len(), 1);
        let peers: Vec<&[String]> = p[0].groups.iter().map(|g| &g.peers[..]).collect();
        assert_eq!(peers, [&["web1", "web3", "web10"][..], &["web2"][..]]);
        assert!(disagree(&p));
        let lines = String::from_utf8(json_lines(&p)).unwrap();
        let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
        assert_eq!(
            first,
            serde_json::json!({"path": "/f", "sha256": "aa", "bytes": 3, "count": 3,
                               "peers": ["web1", "web3", "web10"]})
        );
    }

    #[test]
    fn agreeing_members_make_one_group_and_no_disagreement() {
        let p = grouped(vec![sha("a", "/f", "aa"), sha("b", "/f", "aa")]);
        assert_eq!(p[0].groups.len(), 1);
        assert!(!disagree(&p));
    }

    #[test]
    fn failures_group_by_code_with_the_first_members_message() {
        let p = grouped(vec![
            failed("n3", "/f", ErrorCode::Unreachable, "cannot reach n3"),
            failed("n2", "/f", ErrorCode::Unreachable, "cannot reach n2"),
            failed("n4", "/f", ErrorCode::Timeout, "n4 is silent"),
            sha("n1", "/f", "aa"),
        ]);
        let g = &p[0].groups;
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].peers, ["n2", "n3"]);
        match &g[0].outcome {
            Outcome::Failed { error } => {
                assert_eq!(error.code, ErrorCode::Unreachable);
                assert_eq!(error.message, "cannot reach n2");
            }
            _ => panic!("not a failure group"),
        }
        // Ties: results first, then by first member.
        assert_eq!(g[1].peers, ["n1"]);
        assert_eq!(g[2].peers, ["n4"]);
        assert!(disagree(&p));
        // One failure alone is a disagreement too.
        assert!(disagree(&grouped(vec![failed(
            "a",
            "/f",
            ErrorCode::NotFound,
            "x"
        )])));
    }

    #[test]
    fn ties_are_ordered_by_first_member() {
        let p = grouped(vec![sha("b", "/f", "22"), sha("a", "/f", "11")]);
        assert_eq!(p[0].groups[0].peers, ["a"]);
        assert_eq!(p[0].groups[1].peers, ["b"]);
    }

    #[test]
    fn paths_are_grouped_apart_in_byte_order() {
        let p = grouped(vec![
            sha("a", "/z", "11"),
            sha("a", "/b", "11"),
            sha("b", "/b", "11"),
        ]);
        let paths: Vec<&[u8]> = p.iter().map(|p| p.path.as_bytes()).collect();
        assert_eq!(paths, [&b"/b"[..], &b"/z"[..]]);
        assert_eq!(p[0].groups[0].peers.len(), 2);
    }

    #[test]
    fn text_blocks_are_clush_b_headers_and_the_commands_text() {
        let names: Vec<String> = (1..=3).map(|i| format!("web{i:02}")).collect();
        let mut items: Vec<_> = names.iter().map(|n| sha(n, "/f", "aa")).collect();
        items.push(sha("db3", "/f", "bb"));
        items.push(failed("db4", "/f", ErrorCode::NotFound, "No such file"));
        let p = grouped(items);
        let text = |f: &ShaFields, name: &[u8]| {
            format!("{}  {}\n", f.sha256, String::from_utf8_lossy(name)).into_bytes()
        };
        let out = text_blocks(&p, &text, &|n| String::from_utf8_lossy(n).into_owned());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "---------------\nweb[01-03] (3)\n---------------\naa  /f\n\
             ---------------\ndb3 (1)\n---------------\nbb  /f\n\
             ---------------\ndb4 (1)\n---------------\n/f: No such file (not_found)\n"
        );
    }

    #[test]
    fn the_roster_counts_members_by_their_link_failures() {
        let mut r = Roster::default();
        r.see("node0", None);
        r.see("node1", Some(&Error::new(ErrorCode::NotFound, "gone")));
        r.see("node2", Some(&Error::new(ErrorCode::Timeout, "silent")));
        r.see("node3", Some(&Error::new(ErrorCode::Unreachable, "down")));
        r.see("node4", Some(&Error::new(ErrorCode::Unreachable, "down")));
        r.see("node4", None);
        r.see("", Some(&Error::new(ErrorCode::Internal, "closed")));
        assert_eq!(
            r.summary(),
            "asked 5 members (node[0-4]): 2 answered, 3 failed \
             (timeout: node2; unreachable: node[3-4])"
        );
        let mut one = Roster::default();
        one.see("a", None);
        assert_eq!(one.summary(), "asked 1 member (a): 1 answered");
    }
}

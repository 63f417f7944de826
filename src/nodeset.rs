//! Member names folded into ranges, as ClusterShell's `nodeset -f` folds
//! them: `web01,web02,web03,db3` is `db3,web[01-03]`.
//!
//! A name is cut into text and runs of digits. Names alike but for their
//! numbers (same text parts, as many numbers) are folded on **one** numeric
//! part: the last one whose value differs among them, so `web01:65432` and
//! `web02:65432` fold to `web[01-02]:65432` and `r1n1,r1n2,r2n1` to
//! `r1n[1-2],r2n1`; the other numeric parts stay as they are (ClusterShell
//! folds several dimensions at once; we fold one). A number keeps its
//! digits as written: a range takes the width of its first number, and the
//! next value joins it only when written at that width (`09,10` is `[09-10]`,
//! `1,02` stays `[1,02]`). Names without digits stay as they are. The result
//! is sorted by the names' natural order (text bytewise, numbers by value)
//! and has no duplicates. Member names hold no `[`, `]` or `,`, so the
//! folded form is unambiguous.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One piece of a name: text, or a run of ASCII digits as written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<'a> {
    Text(&'a str),
    Number(&'a str),
}

fn parts(name: &str) -> Vec<Part<'_>> {
    let mut out = Vec::new();
    let bytes = name.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let digit = bytes[start].is_ascii_digit();
        let end = bytes[start..]
            .iter()
            .position(|b| b.is_ascii_digit() != digit)
            .map_or(bytes.len(), |n| start + n);
        let s = &name[start..end];
        out.push(if digit {
            Part::Number(s)
        } else {
            Part::Text(s)
        });
        start = end;
    }
    out
}

/// The value of a run of digits; a run too long for u128 counts as the
/// largest value (such names are compared, never folded, by their text).
fn value(digits: &str) -> u128 {
    digits.parse().unwrap_or(u128::MAX)
}

/// Natural order of two names: text bytewise, numbers by value, then by
/// how many digits they are written with (`1` before `01`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x, y) {
            (Part::Text(x), Part::Text(y)) => x.cmp(y),
            (Part::Number(x), Part::Number(y)) => value(x)
                .cmp(&value(y))
                .then(x.len().cmp(&y.len()))
                .then(x.cmp(y)),
            // A number sorts before text at the same place.
            (Part::Number(_), Part::Text(_)) => Ordering::Less,
            (Part::Text(_), Part::Number(_)) => Ordering::Greater,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len()).then(a.cmp(b))
}

/// Folds `names` into one string: `web[01-03],db3` sorted as described in
/// the module's documentation; an empty list gives an empty string.
pub fn fold<S: AsRef<str>>(names: &[S]) -> String {
    let mut names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    names.sort_by(|a, b| natural_cmp(a, b));
    names.dedup();
    // Names alike but for their numbers: the text parts, and where numbers are.
    let mut alike: BTreeMap<Vec<Option<&str>>, Vec<Vec<Part<'_>>>> = BTreeMap::new();
    for name in &names {
        let p = parts(name);
        let shape = p
            .iter()
            .map(|part| match part {
                Part::Text(t) => Some(*t),
                Part::Number(_) => None,
            })
            .collect();
        alike.entry(shape).or_default().push(p);
    }
    // Each folded piece, with the first name it stands for (to sort by).
    let mut pieces: Vec<(String, String)> = Vec::new();
    for members in alike.values() {
        let numbers: Vec<usize> = members[0]
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p, Part::Number(_)))
            .map(|(i, _)| i)
            .collect();
        let Some(&last) = numbers.last() else {
            // No digits: the names as they are.
            for m in members {
                let name = join(m, None);
                pieces.push((name.clone(), name));
            }
            continue;
        };
        let number = |m: &Vec<Part<'_>>, i: usize| match m[i] {
            Part::Number(n) => value(n),
            Part::Text(_) => 0,
        };
        let varies = |i: &usize| {
            members
                .iter()
                .any(|m| number(m, *i) != number(&members[0], *i))
        };
        let at = numbers.iter().rev().copied().find(varies).unwrap_or(last);
        // The names that differ only at `at`: the first of them (natural
        // order, as `members` is), and the digits found there.
        let mut rest: BTreeMap<Vec<&str>, (usize, Vec<&str>)> = BTreeMap::new();
        for (k, m) in members.iter().enumerate() {
            let key: Vec<&str> = m
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != at)
                .map(|(_, p)| match p {
                    Part::Text(t) | Part::Number(t) => *t,
                })
                .collect();
            if let Part::Number(n) = m[at] {
                rest.entry(key).or_insert((k, Vec::new())).1.push(n);
            }
        }
        for (first, digits) in rest.into_values() {
            let template = &members[first];
            let shown = if digits.len() == 1 {
                join(template, None)
            } else {
                join(template, Some((at, ranges(&digits))))
            };
            pieces.push((join(template, None), shown));
        }
    }
    pieces.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    let shown: Vec<String> = pieces.into_iter().map(|(_, s)| s).collect();
    shown.join(",")
}

/// A name again from its parts, with the part at `.0` replaced by `[.1]`.
fn join(parts: &[Part<'_>], replace: Option<(usize, String)>) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        match (&replace, p) {
            (Some((at, r)), _) if *at == i => {
                out.push('[');
                out.push_str(r);
                out.push(']');
            }
            (_, Part::Text(t) | Part::Number(t)) => out.push_str(t),
        }
    }
    out
}

/// Numbers as written (sorted by value, no duplicates) folded into ranges:
/// `1-3,7,09-10`. A range is written at the width of its first number; the
/// next value joins it only when it is written at that width.
fn ranges(digits: &[&str]) -> String {
    let mut sorted: Vec<&str> = digits.to_vec();
    sorted.sort_by(|a, b| natural_cmp(a, b));
    sorted.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let width = start.len();
        let mut end = i;
        while end + 1 < sorted.len() {
            let (prev, next) = (value(sorted[end]), sorted[end + 1]);
            let joins = prev != u128::MAX
                && value(next) == prev + 1
                && format!("{:0width$}", prev + 1) == next;
            if !joins {
                break;
            }
            end += 1;
        }
        if end == i {
            out.push(start.to_string());
        } else {
            out.push(format!("{start}-{}", sorted[end]));
        }
        i = end + 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(names: &[&str]) -> String {
        fold(names)
    }

    #[test]
    fn consecutive_numbers_fold_into_a_range() {
        assert_eq!(f(&["node0", "node1", "node2"]), "node[0-2]");
        assert_eq!(f(&["node2", "node0", "node1"]), "node[0-2]");
        assert_eq!(f(&["node7"]), "node7");
        assert_eq!(f(&[] as &[&str]), "");
    }

    #[test]
    fn zero_padding_is_kept() {
        let web: Vec<String> = (1..=40).map(|i| format!("web{i:02}")).collect();
        assert_eq!(fold(&web), "web[01-40]");
        // A range takes its first number's width; 10 is written so at width 2.
        assert_eq!(f(&["n08", "n09", "n10"]), "n[08-10]");
        assert_eq!(f(&["n9", "n10"]), "n[9-10]");
        // 1 and 01 are different names; 02 does not continue 1.
        assert_eq!(f(&["n1", "n01", "n02"]), "n[1,01-02]");
        assert_eq!(f(&["n099", "n100"]), "n[099-100]");
    }

    #[test]
    fn gaps_split_ranges() {
        assert_eq!(f(&["n1", "n2", "n3", "n5", "n7", "n8"]), "n[1-3,5,7-8]");
    }

    #[test]
    fn names_without_digits_stay_and_sort_with_the_rest() {
        assert_eq!(
            f(&["web02", "db3", "web01", "alpha", "web03"]),
            "alpha,db3,web[01-03]"
        );
        assert_eq!(f(&["b", "a", "a"]), "a,b");
    }

    #[test]
    fn the_last_numeric_part_that_differs_is_folded() {
        // The port is the same: the host number is folded.
        assert_eq!(
            f(&["web01:65432", "web02:65432", "web03:65432"]),
            "web[01-03]:65432"
        );
        // Both differ: the last part is folded, the others kept.
        assert_eq!(f(&["r1n1", "r1n2", "r2n1", "r2n2"]), "r1n[1-2],r2n[1-2]");
        assert_eq!(f(&["r1n1", "r1n2", "r2n1"]), "r1n[1-2],r2n1");
        // Only the first differs.
        assert_eq!(f(&["r1n5", "r2n5", "r3n5"]), "r[1-3]n5");
    }

    #[test]
    fn different_texts_are_different_sets_sorted_naturally() {
        assert_eq!(
            f(&["node10", "node9", "db1", "node-x", "db2"]),
            "db[1-2],node[9-10],node-x"
        );
        assert_eq!(natural_cmp("node9", "node10"), Ordering::Less);
        assert_eq!(natural_cmp("n1", "n01"), Ordering::Less);
        assert_eq!(natural_cmp("a", "a1"), Ordering::Less);
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let big = "n999999999999999999999999999999999999999999";
        assert_eq!(f(&[big, "n1"]), format!("n[1,{}]", &big[1..]));
    }
}

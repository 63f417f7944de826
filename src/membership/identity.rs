//! Who a member is, and the bounds every identity keeps wherever it comes
//! from: the command line, a join or sync over TCP, or gossip.
//!
//! The bounds keep each identity small enough that a datagram's header
//! (sender and receiver) and a member update still fit in one datagram,
//! keep every name and tag printable on one line, and keep incarnations far
//! from `u64::MAX`, so a member can always take one above any claim that
//! another member accepts (see [`max_incarnation`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

/// Who a member is, as every member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    /// The wall-clock time of the daemon's start in ms, plus one for every
    /// change since (new tags, a rejoin, refuting a claim).
    pub incarnation: u64,
    pub tags: BTreeMap<String, String>,
}

impl foca::Identity for Node {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Node {
            incarnation: self.incarnation.checked_add(1)?,
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

/// Longest member name, in bytes.
pub const MAX_NAME: usize = 64;
/// Most tags on one member.
pub const MAX_TAGS: usize = 16;
/// Longest tag key, in bytes.
pub const MAX_TAG_KEY: usize = 32;
/// Longest tag value, in bytes.
pub const MAX_TAG_VALUE: usize = 64;
/// Most bytes of all of one member's tag keys and values together.
pub const MAX_TAG_BYTES: usize = 160;
/// How far ahead of the receiving member's clock an incarnation may be.
pub const MAX_AHEAD_MS: u64 = 30 * 24 * 3600 * 1000;

/// The highest incarnation a member accepts when its clock reads
/// `clock_ms` (ms since the Unix epoch). Incarnations start from the wall
/// clock, so a real member's is never far ahead; one claimed further ahead
/// is forged or the mark of a clock gone wrong. The bound moves with the
/// clock, so the member a claim is about can always answer it with one
/// higher, and others accept that answer within a millisecond.
pub fn max_incarnation(clock_ms: u64) -> u64 {
    clock_ms.saturating_add(MAX_AHEAD_MS)
}

/// Why an identity is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    Name(String),
    Tag(String),
    Incarnation { incarnation: u64, max: u64 },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Name(m) | IdentityError::Tag(m) => f.write_str(m),
            IdentityError::Incarnation { incarnation, max } => write!(
                f,
                "incarnation {incarnation} is more than {} days ahead of our clock (at most {max})",
                MAX_AHEAD_MS / (24 * 3600 * 1000)
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

/// At most `max` chars of `s`, escaped, for a message about a bad value.
fn shown(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .collect::<String>()
        .escape_debug()
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    format!("\"{out}\"")
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@')
}

/// A member name: 1 to 64 ASCII letters, digits and `.` `_` `-` `:` `@`.
pub fn check_name(name: &str) -> Result<(), IdentityError> {
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(name_char) {
        return Err(IdentityError::Name(format!(
            "the member name {} is not 1 to {MAX_NAME} ASCII letters, digits, '.', '_', '-', ':' or '@'",
            shown(name, MAX_NAME)
        )));
    }
    Ok(())
}

/// One tag: a key of 1 to 32 ASCII letters, digits and `.` `_` `-` `/`,
/// and a value of at most 64 bytes without control characters or `,`.
pub fn check_tag(key: &str, value: &str) -> Result<(), IdentityError> {
    let key_ok = !key.is_empty()
        && key.len() <= MAX_TAG_KEY
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if !key_ok {
        return Err(IdentityError::Tag(format!(
            "the tag key {} is not 1 to {MAX_TAG_KEY} ASCII letters, digits, '.', '_', '-' or '/'",
            shown(key, MAX_TAG_KEY)
        )));
    }
    if value.len() > MAX_TAG_VALUE || value.chars().any(|c| c.is_control() || c == ',') {
        return Err(IdentityError::Tag(format!(
            "the value of tag {key}, {}, is over {MAX_TAG_VALUE} bytes or holds a control character or ','",
            shown(value, MAX_TAG_VALUE)
        )));
    }
    Ok(())
}

/// A member's tags: each as [`check_tag`], at most 16, 160 bytes in all.
pub fn check_tags<'a>(
    tags: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), IdentityError> {
    let (mut count, mut bytes) = (0usize, 0usize);
    for (k, v) in tags {
        check_tag(k, v)?;
        count += 1;
        bytes += k.len() + v.len();
    }
    if count > MAX_TAGS || bytes > MAX_TAG_BYTES {
        return Err(IdentityError::Tag(format!(
            "{count} tags of {bytes} bytes: a member may have at most {MAX_TAGS} tags of \
             {MAX_TAG_BYTES} bytes in all"
        )));
    }
    Ok(())
}

impl Node {
    /// Checks every field against the bounds, the incarnation against `max`
    /// (see [`max_incarnation`]).
    pub fn check(&self, max: u64) -> Result<(), IdentityError> {
        check_name(&self.name)?;
        check_tags(&self.tags)?;
        if self.incarnation > max {
            return Err(IdentityError::Incarnation {
                incarnation: self.incarnation,
                max,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use foca::{Codec, Header, Member, Message, PostcardCodec};

    /// The largest identity the bounds accept.
    pub(crate) fn largest(incarnation: u64) -> Node {
        let mut tags = BTreeMap::new();
        // 16 tags of 16 bytes each: all of MAX_TAG_BYTES, in as many
        // entries (each costs length prefixes) as allowed.
        for i in 0..MAX_TAGS {
            tags.insert(
                format!("k{i:0>5}"),
                "v".repeat(MAX_TAG_BYTES / MAX_TAGS - 6),
            );
        }
        Node {
            name: "n".repeat(MAX_NAME),
            addr: "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
                .parse()
                .unwrap(),
            incarnation,
            tags,
        }
    }

    #[test]
    fn the_largest_identity_is_accepted_and_fits_a_datagram_with_an_update() {
        let big = largest(u64::MAX);
        assert_eq!(big.check(u64::MAX), Ok(()));
        let bytes: usize = big.tags.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!((big.tags.len(), bytes), (MAX_TAGS, MAX_TAG_BYTES));
        let mut codec = PostcardCodec;
        let mut buf = Vec::new();
        let header = Header {
            src: big.clone(),
            src_incarnation: u16::MAX,
            dst: big.clone(),
            message: Message::<Node>::IndirectPing {
                origin: big.clone(),
                probe_number: u8::MAX,
            },
        };
        codec.encode_header(&header, &mut buf).unwrap();
        buf.extend_from_slice(&1u16.to_be_bytes());
        codec
            .encode_member(&Member::new(big, u16::MAX, foca::State::Suspect), &mut buf)
            .unwrap();
        assert!(
            // Room to spare for a datagram header that grows (replay protection).
            buf.len() + 128 <= super::super::MAX_PAYLOAD,
            "{} bytes",
            buf.len()
        );
    }

    #[test]
    fn names_are_bounded_in_length_and_characters() {
        assert!(check_name("node-1.example.com:65432").is_ok());
        assert!(check_name("user@host").is_ok());
        assert!(check_name(&"a".repeat(MAX_NAME)).is_ok());
        assert!(check_name(&"a".repeat(MAX_NAME + 1)).is_err());
        assert!(check_name(&"n".repeat(1000)).is_err());
        for bad in ["", "a b", "a\nb", "a\u{1b}[31m", "é", "a,b", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let e = check_name("evil\nline").unwrap_err().to_string();
        assert!(e.contains("\\n") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn tags_are_bounded_one_by_one_and_in_all() {
        assert!(check_tag("role", "db").is_ok());
        assert!(check_tag("dc/rack", "Zürich 4").is_ok());
        assert!(check_tag("k", "").is_ok());
        assert!(check_tag("", "v").is_err());
        assert!(check_tag(&"k".repeat(MAX_TAG_KEY + 1), "v").is_err());
        assert!(check_tag("k", &"v".repeat(MAX_TAG_VALUE + 1)).is_err());
        assert!(check_tag("k", "a\nb").is_err());
        assert!(check_tag("k", "a,b").is_err());
        assert!(check_tag("k=", "v").is_err());
        let many: BTreeMap<String, String> = (0..=MAX_TAGS)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert!(check_tags(&many).is_err());
        let heavy: BTreeMap<String, String> =
            (0..5).map(|i| (format!("k{i}"), "v".repeat(60))).collect();
        assert!(check_tags(&heavy).is_err());
        // What the attack of issue 11 sent: 5,000 tags.
        let flood: BTreeMap<String, String> = (0..5000)
            .map(|i| (format!("tag{i}"), "x".repeat(100)))
            .collect();
        assert!(check_tags(&flood).is_err());
    }

    #[test]
    fn incarnations_are_bounded_by_the_clock_and_renewal_never_overflows() {
        let now = 1_800_000_000_000;
        let mut n = largest(now);
        assert!(n.check(max_incarnation(now)).is_ok());
        n.incarnation = max_incarnation(now) + 1;
        assert!(matches!(
            n.check(max_incarnation(now)),
            Err(IdentityError::Incarnation { .. })
        ));
        assert_eq!(max_incarnation(u64::MAX), u64::MAX);
        n.incarnation = u64::MAX;
        assert_eq!(foca::Identity::renew(&n), None);
    }
}

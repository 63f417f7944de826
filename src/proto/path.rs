//! A path as both protocols carry it: the exact bytes of the name, which
//! Linux lets be anything but NUL (and `/` between names), UTF-8 or not.
//!
//! In JSON a path that is valid UTF-8 is a plain string, as before. One that
//! is not still gets a readable `path` (each invalid sequence shown as U+FFFD,
//! the replacement character) and, beside it, `path_b64`: the raw bytes in
//! base64 (standard alphabet, padded). A reader that finds `path_b64` takes
//! the name from it and treats `path` as a label only. Result and item lines
//! carry the pair as two keys of the line ([`PathBytes`] under
//! `#[serde(flatten)]`); where a path is a value of its own (the inline
//! `paths` list, `cwd`) it is a string or the object `{"path", "path_b64"}`
//! (see [`value`] and [`list`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserializer};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

/// The bytes of a path, exactly as the user or the filesystem spelled them.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathBytes(pub Vec<u8>);

impl PathBytes {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The path for the file system calls of this host.
    pub fn as_os_str(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }

    /// The bytes, when they are valid UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The readable `path` of the JSON form: the name itself when it is
    /// UTF-8, else each invalid sequence replaced by U+FFFD.
    pub fn lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// The `path_b64` of the JSON form: `None` when `path` alone is exact.
    pub fn b64(&self) -> Option<String> {
        self.to_str().is_none().then(|| STANDARD.encode(&self.0))
    }

    /// The path from its JSON keys: `path_b64` when present (it is exact),
    /// else `path`.
    pub fn from_json(path: Option<String>, b64: Option<&str>) -> Result<PathBytes, String> {
        match (b64, path) {
            (Some(b), _) => STANDARD
                .decode(b)
                .map(PathBytes)
                .map_err(|e| format!("path_b64 is not base64: {e}")),
            (None, Some(p)) => Ok(PathBytes(p.into_bytes())),
            (None, None) => Err("missing field `path` (or `path_b64`)".into()),
        }
    }
}

impl From<&[u8]> for PathBytes {
    fn from(b: &[u8]) -> Self {
        PathBytes(b.to_vec())
    }
}

impl From<Vec<u8>> for PathBytes {
    fn from(b: Vec<u8>) -> Self {
        PathBytes(b)
    }
}

impl From<&str> for PathBytes {
    fn from(s: &str) -> Self {
        PathBytes(s.as_bytes().to_vec())
    }
}

impl From<String> for PathBytes {
    fn from(s: String) -> Self {
        PathBytes(s.into_bytes())
    }
}

impl From<&OsStr> for PathBytes {
    fn from(s: &OsStr) -> Self {
        PathBytes(s.as_bytes().to_vec())
    }
}

impl From<&std::path::Path> for PathBytes {
    fn from(p: &std::path::Path) -> Self {
        p.as_os_str().into()
    }
}

impl From<std::path::PathBuf> for PathBytes {
    fn from(p: std::path::PathBuf) -> Self {
        use std::os::unix::ffi::OsStringExt;
        PathBytes(p.into_os_string().into_vec())
    }
}

/// The bytes, so a `&PathBytes` goes wherever a `&[u8]` name is taken.
impl std::ops::Deref for PathBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<str> for PathBytes {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for PathBytes {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl AsRef<[u8]> for PathBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<std::path::Path> for PathBytes {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(self.as_os_str())
    }
}

impl fmt::Debug for PathBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathBytes(\"{}\")", self.0.escape_ascii())
    }
}

/// The path for a message to a person: see [`readable`].
impl fmt::Display for PathBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&readable(&self.0))
    }
}

/// A name on one line for a message to a person. A printable UTF-8 name is
/// shown as it is; any other gets C-style escapes: `\n`, `\t`, `\r`, `\\`,
/// and `\xHH` for each byte of a control character or of an invalid
/// sequence. Every byte sequence has a form, so no name makes a message
/// fail or span lines.
pub fn readable(name: &[u8]) -> Cow<'_, str> {
    let plain = std::str::from_utf8(name)
        .ok()
        .filter(|s| !s.chars().any(char::is_control));
    if let Some(s) = plain {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02X}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// The two keys as serde sees them when reading.
#[derive(Deserialize)]
struct Keys {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    path_b64: Option<String>,
}

/// `path`, and `path_b64` when needed: two keys of the enclosing object
/// (use it under `#[serde(flatten)]`), or an object of its own.
impl Serialize for PathBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // One UTF-8 check: a name that passes is `path` alone.
        if let Some(text) = self.to_str() {
            let mut st = s.serialize_struct("PathBytes", 1)?;
            st.serialize_field("path", text)?;
            st.skip_field("path_b64")?;
            return st.end();
        }
        let mut st = s.serialize_struct("PathBytes", 2)?;
        st.serialize_field("path", &self.lossy())?;
        st.serialize_field("path_b64", &STANDARD.encode(&self.0))?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for PathBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let k = Keys::deserialize(d)?;
        PathBytes::from_json(k.path, k.path_b64.as_deref()).map_err(de::Error::custom)
    }
}

/// A path as one JSON value: a string, or `{"path", "path_b64"}` when it
/// is not UTF-8 (and, read back, either of those shapes).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Value<'a> {
    Text(Cow<'a, str>),
    Object(Cow<'a, PathBytes>),
}

impl<'a> Value<'a> {
    fn of(p: &'a PathBytes) -> Value<'a> {
        match p.to_str() {
            Some(s) => Value::Text(Cow::Borrowed(s)),
            None => Value::Object(Cow::Borrowed(p)),
        }
    }

    fn into_path(self) -> PathBytes {
        match self {
            Value::Text(s) => PathBytes::from(s.into_owned()),
            Value::Object(p) => p.into_owned(),
        }
    }
}

/// `#[serde(with = "path::value")]` for an `Option<PathBytes>` field: the
/// path as one value (a string, or the object form).
pub mod value {
    use super::{PathBytes, Value};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Option<PathBytes>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_some(&Value::of(p)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBytes>, D::Error> {
        Ok(Option::<Value>::deserialize(d)?.map(Value::into_path))
    }
}

/// `#[serde(with = "path::one")]` for a `PathBytes` field: the path as
/// one value (a string, or the object form), as [`value`] without the option.
pub mod one {
    use super::{PathBytes, Value};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(p: &PathBytes, s: S) -> Result<S::Ok, S::Error> {
        Value::of(p).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBytes, D::Error> {
        Ok(Value::deserialize(d)?.into_path())
    }
}

/// `#[serde(with = "path::list")]` for an `Option<Vec<PathBytes>>` field:
/// each path as one value (a string, or the object form).
pub mod list {
    use super::{PathBytes, Value};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Option<Vec<PathBytes>>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(list) => s.collect_seq(list.iter().map(Value::of)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<PathBytes>>, D::Error> {
        Ok(Option::<Vec<Value>>::deserialize(d)?
            .map(|list| list.into_iter().map(Value::into_path).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        id: u64,
        #[serde(flatten)]
        path: PathBytes,
    }

    #[test]
    fn utf8_names_stay_plain_strings() {
        let line = Line {
            id: 1,
            path: "dir/naïve\nname\\".into(),
        };
        let s = serde_json::to_string(&line).unwrap();
        assert_eq!(s, r#"{"id":1,"path":"dir/naïve\nname\\"}"#);
        assert_eq!(serde_json::from_str::<Line>(&s).unwrap(), line);
    }

    #[test]
    fn other_names_add_path_b64_with_the_exact_bytes() {
        let line = Line {
            id: 2,
            path: PathBytes(b"caf\xe9-\xff.txt".to_vec()),
        };
        let s = serde_json::to_string(&line).unwrap();
        assert_eq!(
            s,
            r#"{"id":2,"path":"caf\ufffd-\ufffd.txt","path_b64":"Y2Fm6S3/LnR4dA=="}"#
                .replace("\\ufffd", "\u{fffd}")
        );
        assert_eq!(serde_json::from_str::<Line>(&s).unwrap(), line);
    }

    #[test]
    fn requests_may_give_path_b64_alone_and_it_wins_over_path() {
        let l: Line = serde_json::from_str(r#"{"id":3,"path_b64":"/w=="}"#).unwrap();
        assert_eq!(l.path.as_bytes(), b"\xff");
        let l: Line = serde_json::from_str(r#"{"id":3,"path":"x","path_b64":"eQ=="}"#).unwrap();
        assert_eq!(l.path.as_bytes(), b"y");
    }

    #[test]
    fn bad_or_missing_paths_and_unknown_keys_are_refused() {
        for bad in [
            r#"{"id":4}"#,
            r#"{"id":4,"path_b64":"not base64!"}"#,
            r#"{"id":4,"path_b64":"/w"}"#,
            r#"{"id":4,"path":7}"#,
            r#"{"id":4,"path":"a","evil":1}"#,
        ] {
            assert!(serde_json::from_str::<Line>(bad).is_err(), "{bad}");
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Values {
        #[serde(default, with = "value")]
        cwd: Option<PathBytes>,
        #[serde(default, with = "list")]
        paths: Option<Vec<PathBytes>>,
    }

    #[test]
    fn a_path_as_a_value_is_a_string_or_the_object_form() {
        let v = Values {
            cwd: Some(PathBytes(b"/tmp/\x80".to_vec())),
            paths: Some(vec!["a".into(), PathBytes(b"b\xfe".to_vec())]),
        };
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(
            s,
            "{\"cwd\":{\"path\":\"/tmp/\u{fffd}\",\"path_b64\":\"L3RtcC+A\"},\
             \"paths\":[\"a\",{\"path\":\"b\u{fffd}\",\"path_b64\":\"Yv4=\"}]}"
        );
        assert_eq!(serde_json::from_str::<Values>(&s).unwrap(), v);
        let hand: Values =
            serde_json::from_str(r#"{"cwd":"/srv","paths":["x",{"path_b64":"/w=="}]}"#).unwrap();
        assert_eq!(hand.cwd, Some("/srv".into()));
        assert_eq!(hand.paths, Some(vec!["x".into(), PathBytes(vec![0xff])]));
        let none: Values = serde_json::from_str("{}").unwrap();
        assert_eq!(none.cwd, None);
    }

    #[test]
    fn readable_keeps_printable_names_and_escapes_the_rest_on_one_line() {
        assert_eq!(readable(b"plain name.txt"), "plain name.txt");
        assert_eq!(readable("back\\slash é".as_bytes()), "back\\slash é");
        assert_eq!(readable(b"a\nb\\c"), "a\\nb\\\\c");
        assert_eq!(readable(b"caf\xe9\x1b\t"), "caf\\xE9\\x1B\\t");
        assert_eq!(readable("\u{85}".as_bytes()), "\\xC2\\x85");
        let all: Vec<u8> = (0..=255).collect();
        assert!(!readable(&all).contains('\n'));
        assert_eq!(PathBytes(b"x\xff".to_vec()).to_string(), "x\\xFF");
    }
}

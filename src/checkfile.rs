//! The `sha256sum` line format, both ways, over bytes: the lines
//! `p2p-sha256 --format sha256sum` writes, and the parser of the check files
//! `p2p-sha256 --check` reads, which accepts whatever GNU `sha256sum -c`
//! (coreutils 9.11) accepts, line by line, so that one odd line is counted
//! as improperly formatted and never makes the whole file refused.
//!
//! Accepted lines: `DIGEST  NAME` (text) and `DIGEST *NAME` (binary);
//! `DIGEST NAME` with one space (BSD's reversed form, which then holds for
//! every later line); BSD tags `SHA256 (NAME) = DIGEST` and OpenSSL's
//! `SHA256(NAME)= DIGEST`; leading blanks; a leading `\` that marks `\\`,
//! `\n` and `\r` escapes in the name; CRLF line ends; `#` comments; and, as
//! `cksum --base64` writes them, base64 digests. Names are bytes.

/// How digest lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineStyle {
    /// BSD form, `SHA256 (NAME) = DIGEST` (`--tag`).
    pub tag: bool,
    /// The `*` marker of binary mode (`-b`) instead of a space.
    pub binary: bool,
    /// End lines with NUL instead of newline and escape nothing (`-z`).
    pub zero: bool,
}

/// Appends one digest line for `name`, as GNU `sha256sum` writes it: when
/// lines end with a newline and the name holds a backslash, newline or
/// carriage return, the line starts with a backslash and those are escaped
/// as `\\`, `\n`, `\r`.
pub fn write_line(out: &mut Vec<u8>, hex: &str, name: &[u8], style: LineStyle) {
    let escape = !style.zero && name.iter().any(|b| matches!(b, b'\\' | b'\n' | b'\r'));
    if escape {
        out.push(b'\\');
    }
    let put_name = |out: &mut Vec<u8>| {
        if escape {
            for &b in name {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
        } else {
            out.extend_from_slice(name);
        }
    };
    if style.tag {
        out.extend_from_slice(b"SHA256 (");
        put_name(out);
        out.extend_from_slice(b") = ");
        out.extend_from_slice(hex.as_bytes());
    } else {
        out.extend_from_slice(hex.as_bytes());
        out.push(b' ');
        out.push(if style.binary { b'*' } else { b' ' });
        put_name(out);
    }
    out.push(if style.zero { 0 } else { b'\n' });
}

/// [`write_line`] into a new buffer.
pub fn line(hex: &str, name: &[u8], style: LineStyle) -> Vec<u8> {
    let mut out = Vec::with_capacity(hex.len() + name.len() + 16);
    write_line(&mut out, hex, name, style);
    out
}

/// A digest as a check line gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// 64 hex digits, lower-cased (GNU compares hex without regard to case).
    Hex(String),
    /// 44 base64 characters, compared exactly.
    Base64(String),
}

impl Expected {
    /// True when `hex` (a computed digest, lower-case hex) is this digest.
    pub fn matches(&self, hex: &str) -> bool {
        match self {
            Expected::Hex(h) => h.eq_ignore_ascii_case(hex),
            Expected::Base64(b) => hex_to_bytes(hex).is_some_and(|d| base64(&d) == *b),
        }
    }

    /// The digest as written in the check file (hex lower-cased).
    pub fn as_str(&self) -> &str {
        match self {
            Expected::Hex(s) | Expected::Base64(s) => s,
        }
    }
}

/// One properly formatted line: the digest and the name it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub expected: Expected,
    pub name: Vec<u8>,
}

/// What one line of a check file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A comment or an empty line: not counted.
    Skip,
    Entry(Entry),
    /// Not a digest line: counted, and named with `--warn`.
    Malformed,
}

/// Reads check lines in turn. It carries one fact from line to line, as
/// GNU's does across all the check files of a run: once a line has been read
/// in the one-space BSD form, every later line is; once in the two-character
/// form, no later line may use one space (so that a name with a leading
/// space or `*` cannot be read two ways).
#[derive(Debug, Default)]
pub struct Parser {
    reversed: Option<bool>,
}

/// The lines of a check file as GNU's `getline` loop sees them, with their
/// 1-based numbers: split at newlines, the last line with or without one.
pub fn split_lines(data: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut rest = data;
    let mut number = 0u64;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        number += 1;
        Some((number, line))
    })
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Reads one line as [`split_lines`] gives it (its newline included or
    /// not). `from_stdin`: the check file is standard input, so a line
    /// naming `-` cannot be read and is malformed.
    pub fn line(&mut self, line: &[u8], from_stdin: bool) -> Line {
        if line.first() == Some(&b'#') {
            return Line::Skip;
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Line::Skip;
        }
        match self.split(line) {
            Some(e) if !(from_stdin && e.name == b"-") => Line::Entry(e),
            _ => Line::Malformed,
        }
    }

    /// GNU's `split_3`: digest and name of a line without its line end.
    fn split(&mut self, s: &[u8]) -> Option<Entry> {
        let at = |i: usize| s.get(i).copied().unwrap_or(0);
        let mut i = 0;
        while is_blank(at(i)) {
            i += 1;
        }
        let escaped = at(i) == b'\\';
        if escaped {
            i += 1;
        }
        if s[i..].starts_with(b"SHA256") {
            let mut j = i + 6;
            if at(j) == b' ' {
                j += 1;
            }
            if at(j) == b'(' {
                return bsd_split(&s[j + 1..], escaped);
            }
        }
        // DIGEST, one blank, then the name (its first byte maybe a marker).
        let start = i;
        while at(i) != 0 && !is_blank(at(i)) {
            i += 1;
        }
        if i >= s.len() {
            return None;
        }
        let expected = digest(&s[start..i])?;
        i += 1;
        let rest = &s[i..];
        // The digest, a blank and at least one more byte.
        if rest.is_empty() {
            return None;
        }
        let name = if rest.len() == 1 || !matches!(rest[0], b' ' | b'*') {
            if self.reversed == Some(false) {
                return None;
            }
            self.reversed = Some(true);
            rest
        } else if self.reversed == Some(true) {
            rest
        } else {
            self.reversed = Some(false);
            &rest[1..]
        };
        Some(Entry {
            expected,
            name: file_name(name, escaped)?,
        })
    }
}

/// The part after `SHA256 (` or `SHA256(`: the name runs to the last `)`,
/// then `=` between optional blanks, then the digest to the end.
fn bsd_split(s: &[u8], escaped: bool) -> Option<Entry> {
    let close = s.iter().rposition(|&b| b == b')')?;
    let name = file_name(&s[..close], escaped)?;
    let mut i = close + 1;
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    while is_blank(at(i)) {
        i += 1;
    }
    if at(i) != b'=' {
        return None;
    }
    i += 1;
    while is_blank(at(i)) {
        i += 1;
    }
    Some(Entry {
        expected: digest(&s[i.min(s.len())..])?,
        name,
    })
}

/// The name as the line holds it: unescaped after a leading backslash (where
/// only `\\`, `\n` and `\r` may appear, and no NUL); otherwise up to a NUL,
/// as GNU's C string ends there.
fn file_name(raw: &[u8], escaped: bool) -> Option<Vec<u8>> {
    if !escaped {
        let end = memchr::memchr(0, raw).unwrap_or(raw.len());
        return Some(raw[..end].to_vec());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.push(match bytes.next()? {
                b'\\' => b'\\',
                b'n' => b'\n',
                b'r' => b'\r',
                _ => return None,
            }),
            0 => return None,
            _ => out.push(b),
        }
    }
    Some(out)
}

/// A SHA-256 digest in hex (64 digits, any case) or base64 (43 characters
/// and one `=`).
fn digest(s: &[u8]) -> Option<Expected> {
    if s.len() == 64 && s.iter().all(u8::is_ascii_hexdigit) {
        let hex = String::from_utf8(s.to_ascii_lowercase()).ok()?;
        return Some(Expected::Hex(hex));
    }
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/');
    if s.len() == 44 && s[..43].iter().all(is_b64) && s[43] == b'=' {
        return Some(Expected::Base64(String::from_utf8(s.to_vec()).ok()?));
    }
    None
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn hex_to_bytes(hex: &str) -> Option<Vec<u8>> {
    let h = hex.as_bytes();
    if h.len() % 2 != 0 {
        return None;
    }
    h.chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// A digest in base64, as `cksum --base64` writes it.
pub fn base64(digest: &[u8]) -> String {
    crate::crypto::keys::base64_encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const B64: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    fn entry(name: &[u8]) -> Line {
        Line::Entry(Entry {
            expected: Expected::Hex(H.into()),
            name: name.to_vec(),
        })
    }

    fn parse(line: &str) -> Line {
        Parser::new().line(line.as_bytes(), false)
    }

    #[test]
    fn writes_what_gnu_writes() {
        let text = LineStyle::default();
        assert_eq!(line(H, b"f", text), format!("{H}  f\n").into_bytes());
        let binary = LineStyle {
            binary: true,
            ..text
        };
        assert_eq!(line(H, b"f", binary), format!("{H} *f\n").into_bytes());
        let tag = LineStyle { tag: true, ..text };
        assert_eq!(
            line(H, b"f", tag),
            format!("SHA256 (f) = {H}\n").into_bytes()
        );
        // md5sum.pl backslash-1..3, md5sum-bsd.sh's tagged example.
        assert_eq!(
            line(H, b".\nfoo", text),
            format!("\\{H}  .\\nfoo\n").into_bytes()
        );
        assert_eq!(
            line(H, b".\\foo", text),
            format!("\\{H}  .\\\\foo\n").into_bytes()
        );
        assert_eq!(
            line(H, b".\rfoo", text),
            format!("\\{H}  .\\rfoo\n").into_bytes()
        );
        assert_eq!(
            line(H, b"test\n\\\\file", tag),
            format!("\\SHA256 (test\\n\\\\\\\\file) = {H}\n").into_bytes()
        );
        // -z: NUL ends the line and nothing is escaped (md5sum-newline.pl).
        let zero = LineStyle { zero: true, ..text };
        assert_eq!(line(H, b"a\nb", zero), format!("{H}  a\nb\0").into_bytes());
        assert_eq!(
            line(H, b"\xff\xfe", text),
            [format!("{H}  ").as_bytes(), b"\xff\xfe\n"].concat()
        );
    }

    #[test]
    fn reads_every_form() {
        assert_eq!(parse(&format!("{H}  f\n")), entry(b"f"));
        assert_eq!(parse(&format!("{H} *f")), entry(b"f"));
        assert_eq!(parse(&format!("{H}  f\r\n")), entry(b"f"));
        assert_eq!(parse(&format!("SHA256 (f) = {H}")), entry(b"f"));
        assert_eq!(parse(&format!("SHA256(f)= {H}")), entry(b"f"));
        assert_eq!(parse(&format!("SHA256 (f)={H}")), entry(b"f"));
        assert_eq!(parse(&format!(" \t {H}  f")), entry(b"f"));
        assert_eq!(parse(&format!(" \\SHA256 (a\\nb) = {H}")), entry(b"a\nb"));
        assert_eq!(parse(&format!("{}  f", H.to_uppercase())), entry(b"f"));
        assert_eq!(
            parse(&format!("{H}  name with  spaces ")),
            entry(b"name with  spaces ")
        );
        assert_eq!(
            parse(&format!("SHA256 (abc (f) = abc) = {H}")),
            entry(b"abc (f) = abc")
        );
        assert_eq!(
            parse(&format!("\\{H}  a\\\\b\\rc\\nd")),
            entry(b"a\\b\rc\nd")
        );
        assert_eq!(
            parse(&format!("{B64}  f")),
            Line::Entry(Entry {
                expected: Expected::Base64(B64.into()),
                name: b"f".to_vec()
            })
        );
        assert_eq!(
            parse(&format!("SHA256 (f) = {B64}")),
            Line::Entry(Entry {
                expected: Expected::Base64(B64.into()),
                name: b"f".to_vec()
            })
        );
        assert_eq!(parse("# a comment"), Line::Skip);
        assert_eq!(parse("\r\n"), Line::Skip);
        assert_eq!(parse(""), Line::Skip);
    }

    #[test]
    fn names_are_bytes() {
        let line = [format!("{H}  ").as_bytes(), b"\xff\xfe name\n"].concat();
        assert_eq!(Parser::new().line(&line, false), entry(b"\xff\xfe name"));
        let bsd = [b"SHA256 (\xc3(".as_slice(), format!(") = {H}").as_bytes()].concat();
        assert_eq!(Parser::new().line(&bsd, false), entry(b"\xc3("));
    }

    #[test]
    fn refuses_what_gnu_refuses() {
        for bad in [
            "invalid".to_string(),
            "MD5 (".into(),
            H.to_string(),
            format!("{H} "),
            format!("{}  f", &H[1..]),
            format!("{H}0  f"),
            format!("SHA1 (f) = {H}"),
            format!("SHA256 (f) {H}"),
            format!("SHA256 (f) = {H} "),
            format!("\\{H}  a\\b"),
            format!("\\{H}  a\\"),
            format!("{}  f", "\0".repeat(64)),
            format!("{}  f", &B64[..43]),
        ] {
            assert_eq!(parse(&bad), Line::Malformed, "{bad:?}");
        }
        assert_eq!(
            Parser::new().line(format!("{H}  -").as_bytes(), true),
            Line::Malformed
        );
        assert_eq!(
            Parser::new().line(format!("{H}  -").as_bytes(), false),
            entry(b"-")
        );
    }

    /// md5sum-bsd.sh: one space before the name is BSD's reversed form, and
    /// the first line decides for the rest of the run.
    #[test]
    fn one_space_form_holds_from_its_first_line() {
        let mut p = Parser::new();
        assert_eq!(p.line(format!("{H} a").as_bytes(), false), entry(b"a"));
        assert_eq!(p.line(format!("{H}  b").as_bytes(), false), entry(b" b"));
        assert_eq!(p.line(format!("{H} *c").as_bytes(), false), entry(b"*c"));
        assert_eq!(p.line(format!("{H}  ").as_bytes(), false), entry(b" "));
        let mut p = Parser::new();
        assert_eq!(p.line(format!("{H}  b").as_bytes(), false), entry(b"b"));
        assert_eq!(p.line(format!("{H} a").as_bytes(), false), Line::Malformed);
        assert_eq!(p.line(format!("{H} *c").as_bytes(), false), entry(b"c"));
        // A name of one byte after the blank is the one-space form too.
        let mut p = Parser::new();
        assert_eq!(p.line(format!("{H}  ").as_bytes(), false), entry(b" "));
    }

    #[test]
    fn lines_split_as_getline_does() {
        let got: Vec<(u64, &[u8])> = split_lines(b"a\n\nb\r\nc").collect();
        assert_eq!(
            got,
            vec![(1, &b"a\n"[..]), (2, b"\n"), (3, b"b\r\n"), (4, b"c")]
        );
    }

    #[test]
    fn digests_compare_as_gnu_compares() {
        assert!(Expected::Hex(H.into()).matches(H));
        assert!(!Expected::Hex(H.into()).matches(&H.replace('e', "f")));
        assert!(Expected::Base64(B64.into()).matches(H));
        assert_eq!(base64(&hex_to_bytes(H).unwrap()), B64);
        // Same bits, another spelling of the last character: no match.
        let other = format!("{}V=", &B64[..42]);
        assert!(!Expected::Base64(other).matches(H));
    }
}

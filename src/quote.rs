//! File names in messages, quoted as GNU tools quote them (gnulib's
//! `quotef`: the shell-escape style, with `:` also quoted) in a UTF-8
//! locale, so that what `sha256sum -c` or an error line shows can be pasted
//! back into a POSIX shell and names the same bytes.
//!
//! A name made only of letters, digits, `%+,-./]_@` and printable
//! non-ASCII characters is shown as it is. Anything else is put in single
//! quotes; bytes a shell cannot hold inside single quotes (control
//! characters, bytes that are not UTF-8, unprintable characters) become
//! `$'\n'`-style escapes, and a `'` becomes `'\''`. A name whose only
//! trouble is a `'` (with spaces, `:` and plain characters) is put in
//! double quotes instead: `"it's"`.

use crate::ops::unicode_tables::NON_PRINTABLE;
use std::borrow::Cow;

/// A name as GNU's messages show it.
pub fn quote(name: &[u8]) -> Cow<'_, [u8]> {
    let units = units(name);
    if !name.is_empty() && !units.iter().any(|u| needs_quotes(u, name.len())) {
        return Cow::Borrowed(name);
    }
    let has_single_quote = name.contains(&b'\'');
    if has_single_quote && units.iter().all(|u| double_quotable(u, name.len())) {
        let mut out = Vec::with_capacity(name.len() + 2);
        out.push(b'"');
        out.extend_from_slice(name);
        out.push(b'"');
        return Cow::Owned(out);
    }
    Cow::Owned(single_quoted(&units))
}

/// [`quote`] as text, for messages (the name's bytes are UTF-8 or escaped).
pub fn quote_str(name: &[u8]) -> String {
    String::from_utf8_lossy(&quote(name)).into_owned()
}

/// One piece of a name: an ASCII byte, or the bytes of one non-ASCII
/// character (`printable` false for an unprintable character, or a single
/// byte that starts no valid UTF-8 sequence).
#[derive(Debug)]
enum Unit<'a> {
    Ascii { byte: u8, at: usize },
    Wide { bytes: &'a [u8], printable: bool },
}

fn units(name: &[u8]) -> Vec<Unit<'_>> {
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if b.is_ascii() {
            out.push(Unit::Ascii { byte: b, at: i });
            i += 1;
            continue;
        }
        match decode(&name[i..]) {
            Some((cp, len)) => {
                out.push(Unit::Wide {
                    bytes: &name[i..i + len],
                    printable: printable(cp),
                });
                i += len;
            }
            None => {
                out.push(Unit::Wide {
                    bytes: &name[i..i + 1],
                    printable: false,
                });
                i += 1;
            }
        }
    }
    out
}

/// The first UTF-8 character of `s` (which starts with a non-ASCII byte) and
/// its length, or `None` when the first byte starts no valid sequence.
fn decode(s: &[u8]) -> Option<(u32, usize)> {
    let len = match s[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(s.get(..len)?).ok()?.chars().next()?;
    Some((u32::from(c), len))
}

fn printable(cp: u32) -> bool {
    !crate::ops::width::within(NON_PRINTABLE, cp)
}

/// Bytes that never need quoting, wherever they are.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"%+,-./]_@".contains(&b)
}

/// True when this piece of a name of `len` bytes makes quotes necessary.
fn needs_quotes(u: &Unit, len: usize) -> bool {
    match *u {
        Unit::Wide { printable, .. } => !printable,
        // `#` and `~` matter only first; `{` and `}` only alone.
        Unit::Ascii {
            byte: b'#' | b'~',
            at,
        } => at == 0,
        Unit::Ascii {
            byte: b'{' | b'}', ..
        } => len == 1,
        Unit::Ascii { byte, .. } => !plain(byte),
    }
}

/// True when this piece may stand inside double quotes as it is, so that a
/// name with a `'` can be shown as `"it's"` rather than `'it'\''s'`.
fn double_quotable(u: &Unit, len: usize) -> bool {
    match *u {
        Unit::Wide { printable, .. } => printable,
        Unit::Ascii {
            byte: b'#' | b'~',
            at,
        } => at == 0,
        Unit::Ascii {
            byte: b'{' | b'}', ..
        } => len == 1,
        Unit::Ascii { byte, .. } => plain(byte) || b" ':".contains(&byte),
    }
}

/// The name in single quotes, with `$'...'` escapes for what cannot stand
/// there.
fn single_quoted(units: &[Unit]) -> Vec<u8> {
    let mut out = vec![b'\''];
    // Inside a `$'...'` opened for the previous escape.
    let mut escaping = false;
    let escape = |out: &mut Vec<u8>, escaping: &mut bool, text: &[u8]| {
        if !*escaping {
            out.extend_from_slice(b"'$'");
            *escaping = true;
        }
        out.push(b'\\');
        out.extend_from_slice(text);
    };
    for u in units {
        match *u {
            Unit::Ascii { byte, .. } => {
                let letter = match byte {
                    b'\x07' => Some(b'a'),
                    b'\x08' => Some(b'b'),
                    b'\x0c' => Some(b'f'),
                    b'\n' => Some(b'n'),
                    b'\r' => Some(b'r'),
                    b'\t' => Some(b't'),
                    b'\x0b' => Some(b'v'),
                    _ => None,
                };
                if let Some(l) = letter {
                    escape(&mut out, &mut escaping, &[l]);
                } else if byte < 0x20 || byte == 0x7f {
                    escape(&mut out, &mut escaping, &octal(byte));
                } else if byte == b'\'' {
                    // Closes the quotes (or the `$'...'`), an escaped quote,
                    // and opens plain quotes again.
                    out.extend_from_slice(b"'\\''");
                    escaping = false;
                } else {
                    close(&mut out, &mut escaping);
                    out.push(byte);
                }
            }
            Unit::Wide { bytes, printable } => {
                if printable {
                    close(&mut out, &mut escaping);
                    out.extend_from_slice(bytes);
                } else {
                    for &b in bytes {
                        escape(&mut out, &mut escaping, &octal(b));
                    }
                }
            }
        }
    }
    out.push(b'\'');
    out
}

/// Ends a `$'...'` before plain text, opening single quotes again.
fn close(out: &mut Vec<u8>, escaping: &mut bool) {
    if *escaping {
        out.extend_from_slice(b"''");
        *escaping = false;
    }
}

fn octal(b: u8) -> [u8; 3] {
    [b'0' + (b >> 6), b'0' + ((b >> 3) & 7), b'0' + (b & 7)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &[u8]) -> String {
        String::from_utf8(quote(name).into_owned()).unwrap()
    }

    #[test]
    fn plain_names_stay() {
        for name in [
            "f",
            "a.txt",
            "dir/sub-1/x_y%+,",
            "caf\u{e9}",
            "@home",
            "a#b",
            "a~",
            "{}",
        ] {
            assert_eq!(q(name.as_bytes()), name);
        }
    }

    #[test]
    fn specials_take_single_quotes() {
        assert_eq!(q(b"a b"), "'a b'");
        assert_eq!(q(b"a:b"), "'a:b'");
        assert_eq!(q(b""), "''");
        assert_eq!(q(b"#a"), "'#a'");
        assert_eq!(q(b"~"), "'~'");
        assert_eq!(q(b"{"), "'{'");
        assert_eq!(q(b"a\\b"), "'a\\b'");
        assert_eq!(q(b"a\\"), "'a\\'");
        assert_eq!(q(b"x$y*?"), "'x$y*?'");
    }

    /// The cases of coreutils' tests/cksum/md5sum-bsd.sh.
    #[test]
    fn controls_are_escaped() {
        assert_eq!(q(b"a\nb"), "'a'$'\\n''b'");
        assert_eq!(q(b"a\tb"), "'a'$'\\t''b'");
        assert_eq!(q(b"\nb"), "''$'\\n''b'");
        assert_eq!(q(b"a\n"), "'a'$'\\n'");
        assert_eq!(q(b"a\n\rb"), "'a'$'\\n\\r''b'");
        assert_eq!(q(b"a\x01b"), "'a'$'\\001''b'");
        assert_eq!(q(b"a\x7f"), "'a'$'\\177'");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_escaped() {
        assert_eq!(q(b"a\xffb"), "'a'$'\\377''b'");
        assert_eq!(q(b"\xe2\x82"), "''$'\\342\\202'");
        // A C1 control is valid UTF-8 but unprintable: each byte escaped.
        assert_eq!(q("a\u{85}".as_bytes()), "'a'$'\\302\\205'");
    }

    #[test]
    fn single_quotes() {
        assert_eq!(q(b"it's"), "\"it's\"");
        assert_eq!(q(b"it's here: now"), "\"it's here: now\"");
        assert_eq!(q(b"it's$"), "'it'\\''s$'");
        assert_eq!(q(b"'\n'"), "''\\'''$'\\n'\\'''");
    }
}

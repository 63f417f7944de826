//! What a command's names mean, by GNU `wc`'s rules: `-` and no operand at
//! all are standard input, an empty name is an error of its own, and a list
//! of names (`--files-from`, `--files0-from`) may name standard input too,
//! unless it is standard input itself.
//!
//! [`crate::client::PathSource`] reads the names; [`Names`] turns each into
//! an [`Entry`], and an entry opens as the descriptor the daemon is given.

use crate::error::{Error, ErrorCode};
use crate::ops::open_for_query;
use crate::proto::PathBytes;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

/// One name of the input, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A path to open with the caller's rights.
    Path(PathBuf),
    /// Standard input, under this name in results: `-` when the user wrote
    /// it, else the command's [`Stdin::implicit`] name.
    Stdin(String),
    /// A name that cannot be queried; the message says which and where.
    Invalid(String),
}

impl Entry {
    /// The name results carry, byte for byte.
    pub fn shown(&self) -> PathBytes {
        match self {
            Entry::Path(p) => PathBytes::from(p.as_path()),
            Entry::Stdin(name) => PathBytes::from(name.as_str()),
            Entry::Invalid(_) => PathBytes::default(),
        }
    }

    /// The descriptor to hand to the daemon.
    pub fn open(&self) -> Result<File, Error> {
        match self {
            Entry::Path(p) => open_for_query(p).map_err(|e| Error::from_io(&e)),
            Entry::Stdin(name) => open_stdin().map_err(|e| {
                let mut e = Error::from_io(&e);
                if name.is_empty() {
                    e.message = format!("standard input: {}", e.message);
                }
                e
            }),
            Entry::Invalid(msg) => Err(Error::new(ErrorCode::InvalidRequest, msg.clone())),
        }
    }
}

/// Our standard input as a descriptor of its own (close-on-exec), whatever
/// it is: a pipe, a terminal, a file at some offset, a socket.
fn open_stdin() -> std::io::Result<File> {
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor number only creates a new one.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `dup` was just created and is owned by nobody else.
    let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(dup) };
    // Said here, where the name "standard input" is known (`p2p-wc < /`).
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
    }
    Ok(file)
}

/// How a command treats standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stdin {
    /// `-` names standard input (else it is a file called `-`).
    pub dash: bool,
    /// With no operand and no list, standard input is read under this name;
    /// `None`: a name is required.
    pub implicit: Option<&'static str>,
}

impl Stdin {
    /// `p2p-wc`: as GNU wc, whose output names no file for an implicit stdin.
    pub const WC: Stdin = Stdin {
        dash: true,
        implicit: Some(""),
    };
    /// `p2p-sha256`: as GNU sha256sum, which names it `-`.
    pub const SHA256: Stdin = Stdin {
        dash: true,
        implicit: Some("-"),
    };
    /// `p2p-stat`: as GNU stat, `-` is standard input and a name is required.
    pub const STAT: Stdin = Stdin {
        dash: true,
        implicit: None,
    };
    /// `p2p-count`: a directory count has no standard input, as find has none.
    pub const COUNT: Stdin = Stdin {
        dash: false,
        implicit: None,
    };
}

/// Turns raw names into entries, counting them for messages.
#[derive(Debug, Clone)]
pub struct Names {
    stdin: Stdin,
    /// The list's name as messages show it, when names come from a list.
    list: Option<String>,
    /// The list is standard input, so `-` cannot also be data.
    list_is_stdin: bool,
    /// An empty name is skipped (a blank line of a newline list), not an error.
    skip_empty: bool,
    /// Names seen so far.
    n: u64,
}

impl Names {
    /// Names given as operands.
    pub fn operands(stdin: Stdin) -> Names {
        Names {
            stdin,
            list: None,
            list_is_stdin: false,
            skip_empty: false,
            n: 0,
        }
    }

    /// Names read from the list `file` (`-` is standard input); with
    /// `skip_empty`, empty names (blank lines) are passed over.
    pub fn list(stdin: Stdin, file: &std::path::Path, skip_empty: bool) -> Names {
        Names {
            stdin,
            list: Some(file.to_string_lossy().into_owned()),
            list_is_stdin: file.as_os_str() == "-",
            skip_empty,
            n: 0,
        }
    }

    /// Standard input, once, when no operand was given and the command
    /// reads it then; `None` afterwards or otherwise.
    pub fn implicit_stdin(&mut self) -> Option<Entry> {
        if self.n > 0 || self.list.is_some() {
            return None;
        }
        self.n = 1;
        self.stdin
            .implicit
            .map(|name| Entry::Stdin(name.to_string()))
    }

    /// The entry for one more name; `None` for a name that is skipped.
    pub fn entry(&mut self, name: PathBuf) -> Option<Entry> {
        self.n += 1;
        let bytes = name.as_os_str().as_encoded_bytes();
        if bytes.is_empty() {
            if self.skip_empty {
                return None;
            }
            return Some(Entry::Invalid(match &self.list {
                Some(list) => format!("{list}:{}: invalid zero-length file name", self.n),
                None => "invalid zero-length file name".to_string(),
            }));
        }
        if bytes == b"-" && self.stdin.dash {
            if self.list_is_stdin {
                return Some(Entry::Invalid(
                    "when reading file names from standard input, no file name of '-' allowed"
                        .to_string(),
                ));
            }
            return Some(Entry::Stdin("-".to_string()));
        }
        Some(Entry::Path(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_is_stdin_where_the_command_says_so() {
        let mut n = Names::operands(Stdin::WC);
        assert_eq!(n.entry("-".into()), Some(Entry::Stdin("-".into())));
        assert_eq!(n.entry("./-".into()), Some(Entry::Path("./-".into())));
        let mut n = Names::operands(Stdin::COUNT);
        assert_eq!(n.entry("-".into()), Some(Entry::Path("-".into())));
    }

    #[test]
    fn empty_names_are_errors_with_their_place_in_a_list() {
        let mut n = Names::operands(Stdin::WC);
        assert_eq!(
            n.entry("".into()),
            Some(Entry::Invalid("invalid zero-length file name".into()))
        );
        let mut n = Names::list(Stdin::WC, std::path::Path::new("names"), false);
        assert!(matches!(n.entry("a".into()), Some(Entry::Path(_))));
        assert_eq!(
            n.entry("".into()),
            Some(Entry::Invalid(
                "names:2: invalid zero-length file name".into()
            ))
        );
        let mut n = Names::list(Stdin::WC, std::path::Path::new("names"), true);
        assert_eq!(n.entry("".into()), None);
    }

    #[test]
    fn a_list_on_stdin_cannot_name_stdin() {
        let mut n = Names::list(Stdin::WC, std::path::Path::new("-"), false);
        assert!(matches!(n.entry("-".into()), Some(Entry::Invalid(m)) if m.contains("'-'")));
        let mut n = Names::list(Stdin::WC, std::path::Path::new("list"), false);
        assert_eq!(n.entry("-".into()), Some(Entry::Stdin("-".into())));
    }
}

//! Cluster keys: 32 random bytes, written as base64, one per line.
//!
//! A key ring holds one or more keys. The first is primary: it seals what we
//! send. Every key in the ring is accepted on what we receive. Rotating a key
//! is therefore: add the new key second everywhere, move it first everywhere,
//! then remove the old one.
//!
//! Key bytes, and the text they are read from, are wiped when dropped
//! ([`Zeroizing`]); each key lives in one heap box, so moving it copies no
//! key bytes. A key file must be its reader's or root's, and private to its
//! owner, as ssh asks of a private key.

use super::derive;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// Length of a cluster key in bytes.
pub const KEY_LEN: usize = 32;

/// One cluster key. Its bytes are wiped when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Box<[u8; KEY_LEN]>);

impl Key {
    /// A new random key.
    pub fn generate() -> io::Result<Key> {
        let mut k = Key(Box::new([0u8; KEY_LEN]));
        super::random_bytes(&mut k.0[..])?;
        Ok(k)
    }

    /// A key of these bytes; the argument's copy is wiped.
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> Key {
        let k = Key(Box::new(bytes));
        bytes.zeroize();
        k
    }

    fn from_slice(bytes: &[u8]) -> Option<Key> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let mut k = Key(Box::new([0u8; KEY_LEN]));
        k.0.copy_from_slice(bytes);
        Some(k)
    }

    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as written in key files and `P2PD_SECRET`; wrap what you keep
    /// of it in [`Zeroizing`].
    pub fn encode(&self) -> String {
        base64_encode(&self.0[..])
    }

    /// A short public name for logs: says which key, reveals nothing of it.
    pub fn fingerprint(&self) -> String {
        super::super::ops::sha::hex(&derive(&self.0, b"p2p key fingerprint v1")[..4])
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.fingerprint())
    }
}

/// Why keys could not be read.
#[derive(Debug)]
pub enum KeyError {
    /// A line that is not a base64-encoded 32-byte key (1-based line number).
    Malformed {
        line: usize,
        reason: String,
    },
    /// No key at all.
    Empty,
    /// The key file may be read by others.
    Exposed {
        path: PathBuf,
        mode: u32,
    },
    /// The key file belongs to another user, who could choose our key.
    Foreign {
        path: PathBuf,
        uid: u32,
        me: u32,
    },
    Io {
        path: PathBuf,
        error: io::Error,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Malformed { line, reason } => write!(f, "line {line}: {reason}"),
            KeyError::Empty => write!(f, "no key found"),
            KeyError::Exposed { path, mode } => write!(
                f,
                "{} has mode {:04o}: others may read the secret key in it; run chmod 600 {}",
                path.display(),
                mode,
                path.display()
            ),
            KeyError::Foreign { path, uid, me } => write!(
                f,
                "{} belongs to {}: a key file must be owned by the daemon's user ({}) \
                 or root, or its owner could choose the key; run chown {me} {}",
                path.display(),
                crate::trust::describe_user(*uid),
                crate::trust::describe_user(*me),
                path.display()
            ),
            KeyError::Io { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for KeyError {}

/// The installed keys; the first is primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRing {
    keys: Vec<Key>,
}

impl KeyRing {
    pub fn new(keys: Vec<Key>) -> Result<KeyRing, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(KeyRing { keys })
    }

    /// Parses key-file text: one key per line, `#` comments and blank lines
    /// ignored. Commas also separate keys, for `P2PD_SECRET=k1,k2`.
    pub fn parse(text: &str) -> Result<KeyRing, KeyError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            for word in line.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                let bytes = base64_decode(word).ok_or_else(|| KeyError::Malformed {
                    line: n + 1,
                    reason: "not base64".into(),
                })?;
                let key = Key::from_slice(&bytes).ok_or_else(|| KeyError::Malformed {
                    line: n + 1,
                    reason: format!("a key is {KEY_LEN} bytes, this is {}", bytes.len()),
                })?;
                keys.push(key);
            }
        }
        KeyRing::new(keys)
    }

    /// Reads a key file, refusing one that others may read or that belongs
    /// to another user than us or root.
    pub fn load(path: &Path) -> Result<KeyRing, KeyError> {
        KeyRing::parse(&read_private(path)?)
    }

    /// Reads the keys in the environment variable `var` (as `P2PD_SECRET`),
    /// then wipes its value from the process's environment, where
    /// `/proc/PID/environ` would show it. Call it before other threads start.
    pub fn take_env(var: &str) -> Option<Result<KeyRing, KeyError>> {
        let text = Zeroizing::new(std::env::var(var).ok()?);
        let name = std::ffi::CString::new(var).ok()?;
        // SAFETY: getenv returns the value inside the environment block (or
        // null), a NUL-terminated string we may overwrite in place: no other
        // thread reads or changes the environment this early in start-up.
        unsafe {
            let value = libc::getenv(name.as_ptr());
            if !value.is_null() {
                std::slice::from_raw_parts_mut(value.cast::<u8>(), libc::strlen(value)).zeroize();
            }
        }
        Some(KeyRing::parse(&text))
    }

    /// Loads the key file at `path`, creating it with one new random key
    /// (mode 0600, written atomically) when it does not exist. Returns the
    /// ring and whether the file was created.
    pub fn load_or_create(path: &Path) -> Result<(KeyRing, bool), KeyError> {
        if path.exists() {
            return Ok((KeyRing::load(path)?, false));
        }
        let io_err = |error| KeyError::Io {
            path: path.to_path_buf(),
            error,
        };
        let key = Key::generate().map_err(io_err)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err)?;
        let tmp = dir.join(format!(".cluster.key.{}", std::process::id()));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        let text = Zeroizing::new(key.encode());
        let written = writeln!(f, "{}", *text)
            .and_then(|_| f.sync_all())
            .and_then(|_| fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok((KeyRing { keys: vec![key] }, true))
    }

    /// The key that seals what we send.
    pub fn primary(&self) -> &Key {
        &self.keys[0]
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }
}

/// The per-user default key file: `$XDG_CONFIG_HOME/p2p/cluster.key`, else
/// `~/.config/p2p/cluster.key`.
pub fn default_key_path() -> PathBuf {
    crate::paths::user_config_dir()
        .unwrap_or_else(|| PathBuf::from("/etc/p2p"))
        .join("cluster.key")
}

/// Reads a file of secrets, refusing one that others may read or that
/// belongs to another user than us or root; the text is wiped when dropped.
pub(crate) fn read_private(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let io_err = |error| KeyError::Io {
        path: path.to_path_buf(),
        error,
    };
    // Checked on the open file, so what is read is what was checked.
    let mut file = fs::File::open(path).map_err(io_err)?;
    let md = file.metadata().map_err(io_err)?;
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me && md.uid() != 0 {
        return Err(KeyError::Foreign {
            path: path.to_path_buf(),
            uid: md.uid(),
            me,
        });
    }
    let mode = md.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    // Room for all of it up front: a buffer that grows leaves copies behind.
    let room = usize::try_from(md.len()).unwrap_or(0).saturating_add(1);
    let mut text = Zeroizing::new(String::with_capacity(room));
    file.read_to_string(&mut text).map_err(io_err)?;
    Ok(text)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648), as key files and `cksum --base64` write it.
pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes into a buffer of its final size, wiped when dropped (also when
/// decoding stops half-way).
pub(crate) fn base64_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() / 4 * 3));
    for (ci, chunk) in bytes.chunks(4).enumerate() {
        let last = ci == bytes.len() / 4 - 1;
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = match c {
                b'=' if last && i >= 2 => {
                    pad += 1;
                    0
                }
                _ if pad > 0 => return None,
                _ => B64.iter().position(|&x| x == c)? as u32,
            };
            n = n << 6 | v;
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(*base64_decode(&base64_encode(&data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert!(base64_decode("Zm9").is_none());
        assert!(base64_decode("Z=9v").is_none());
    }

    #[test]
    fn ring_parses_lines_comments_and_commas() {
        let a = Key::generate().unwrap();
        let b = Key::generate().unwrap();
        let text = format!("# keys\n{}\n\n  {}  # old\n", a.encode(), b.encode());
        let ring = KeyRing::parse(&text).unwrap();
        assert_eq!(ring.keys(), &[a.clone(), b.clone()]);
        assert_eq!(ring.primary(), &a);
        let ring = KeyRing::parse(&format!("{},{}", b.encode(), a.encode())).unwrap();
        assert_eq!(ring.primary(), &b);
    }

    #[test]
    fn bad_keys_say_which_line() {
        let e = KeyRing::parse("# c\nnot-a-key!\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2:"), "{e}");
        let e = KeyRing::parse("Zm9vYmFy\n").unwrap_err();
        assert!(e.to_string().contains("32 bytes"), "{e}");
        assert!(matches!(
            KeyRing::parse("# nothing\n"),
            Err(KeyError::Empty)
        ));
    }

    #[test]
    fn default_file_is_created_private_and_reused() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("sub/cluster.key");
        let (ring, created) = KeyRing::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (again, created) = KeyRing::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again, ring);
    }

    #[test]
    fn exposed_key_file_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("k");
        fs::write(&path, Key::generate().unwrap().encode()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = KeyRing::load(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    #[test]
    fn key_file_of_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("k");
        fs::write(&path, Key::generate().unwrap().encode()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let e = KeyRing::load(&path).unwrap_err();
        assert!(matches!(e, KeyError::Foreign { uid: 65534, .. }), "{e}");
        assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
        // Root's own is fine, whoever reads it.
        std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
        assert!(KeyRing::load(&path).is_ok());
    }

    #[test]
    fn debug_and_fingerprint_hide_the_key() {
        let k = Key::generate().unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains(&k.encode()));
        assert_eq!(k.fingerprint().len(), 8);
    }
}

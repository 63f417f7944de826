//! `p2p-keygen`: print a new random cluster key, or write it to a file that
//! is private from its first byte; with `--node`, make a node key pair for
//! a certificate (see [`crate::crypto::cert`]).

use crate::cli::KeygenCli;
use crate::crypto::cert::NodeSecret;
use crate::crypto::keys::Key;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const NAME: &str = "p2p-keygen";

/// Runs `p2p-keygen`; returns the exit status.
pub fn run(cli: KeygenCli) -> i32 {
    if cli.node {
        return match &cli.output {
            Some(path) => node(path, cli.force),
            None => 2,
        };
    }
    let key = match Key::generate() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{NAME}: no randomness available: {e}");
            return 1;
        }
    };
    let mut line = Zeroizing::new(key.encode());
    line.push('\n');
    let Some(path) = &cli.output else {
        let mut out = io::stdout().lock();
        return match out.write_all(line.as_bytes()).and_then(|_| out.flush()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{NAME}: {}", crate::error::Error::from_io(&e).message);
                1
            }
        };
    };
    match write_private(path, line.as_bytes(), cli.force) {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            eprintln!(
                "{NAME}: {}: the file exists; it was left as it is (add --force to replace it)",
                path.display()
            );
            1
        }
        Err(e) => {
            eprintln!(
                "{NAME}: {}: {}",
                path.display(),
                crate::error::Error::from_io(&e).message
            );
            1
        }
    }
}

/// Writes a new node key pair: the secret to `path`, the public half to
/// `path` with the extension `.pub`.
fn node(path: &Path, force: bool) -> i32 {
    let public_path = path.with_extension("pub");
    if public_path == path {
        eprintln!(
            "{NAME}: {}: the node's secret key file cannot end in .pub, where its public half goes",
            path.display()
        );
        return 2;
    }
    // Checked first, so that a refusal leaves no new secret file behind.
    if !force && fs::symlink_metadata(&public_path).is_ok() {
        eprintln!(
            "{NAME}: {}: the file exists; it was left as it is (add --force to replace it)",
            public_path.display()
        );
        return 1;
    }
    let mut seed = Zeroizing::new([0u8; 64]);
    if let Err(e) = crate::crypto::random_bytes(&mut seed[..]) {
        eprintln!("{NAME}: no randomness available: {e}");
        return 1;
    }
    let secret = NodeSecret::from_seed(&seed);
    let written = write_private(path, secret.encode().as_bytes(), force).and_then(|()| {
        let text = secret.public().encode();
        if force {
            fs::write(&public_path, text)
        } else {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&public_path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
        }
    });
    match written {
        Ok(()) => {
            eprintln!(
                "{NAME}: node key in {}; have the CA sign {} (p2p-ca sign --name NAME {})",
                path.display(),
                public_path.display(),
                public_path.display()
            );
            0
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            eprintln!(
                "{NAME}: {} or {} exists; it was left as it is (add --force to replace them)",
                path.display(),
                public_path.display()
            );
            1
        }
        Err(e) => {
            eprintln!("{NAME}: {}", crate::error::Error::from_io(&e).message);
            1
        }
    }
}

/// Writes `text` to a new file at `path` that is mode 0600 from the moment
/// it exists (O_CREAT|O_EXCL, so an existing file, or a symlink planted
/// there, is refused with `AlreadyExists`). With `replace`, an existing
/// file is instead replaced whole: the text goes to a new private file
/// beside it, which is then renamed over it.
pub fn write_private(path: &Path, text: &[u8], replace: bool) -> io::Result<()> {
    if !replace {
        return create_private(path, text);
    }
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp: PathBuf = dir.join(tmp_name);
    create_private(&tmp, text)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A new file of mode 0600 holding `text`, on disk; removed again if writing fails.
fn create_private(path: &Path, text: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    if let Err(e) = f.write_all(text).and_then(|_| f.sync_all()) {
        drop(f);
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

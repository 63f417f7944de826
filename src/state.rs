//! What `p2pd` keeps in `--state-dir` across restarts: this node's identity
//! and the members it last knew, so that a restarted node rejoins them
//! without any `--join`.
//!
//! One file, `DIR/state.json`, replaced whole on every save: written to a
//! temporary file in the same directory, flushed to disk, renamed over the
//! old one, and the directory flushed too. A `kill -9` (or a power cut) at
//! any moment leaves the old file or the new one, never a mix. A file that is
//! cut short, garbage or of another format anyway (a disk fault, a hand edit)
//! is renamed `state.json.corrupt-UNIXTIME` with a warning and the node starts
//! as new: losing this file loses nothing that `--join` cannot give back.
//!
//! The cluster keys are not kept here: they come from `--secret-file`,
//! `P2PD_SECRET` or a systemd credential, and copying secrets into a second
//! place would only widen who can read them.

use crate::membership::Node;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The state file's name inside the state directory.
pub const FILE: &str = "state.json";

/// Temporary files start so; any found at start are left from a crash.
const TMP_PREFIX: &str = ".state.json.tmp-";

/// Written into the file, so that another program's JSON is not misread.
const FORMAT: &str = "p2pd-state";
const VERSION: u32 = 1;

/// Far above any real cluster's state (5,000 members is about 1 MiB); a
/// larger file is not ours and is not read into memory.
const MAX_LEN: u64 = 64 << 20;

/// What survives a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// This node as it last announced itself: name, address, incarnation, tags.
    pub node: Node,
    /// The other members it last knew.
    pub members: Vec<Node>,
    /// When this was saved, in seconds since the Unix epoch.
    pub saved_at: u64,
}

impl State {
    /// The state as of now.
    pub fn new(node: Node, members: Vec<Node>) -> State {
        State {
            node,
            members,
            saved_at: unix_now(),
        }
    }

    /// Where to rejoin after a restart: every remembered member's address
    /// but our own, each once.
    pub fn rejoin_addrs(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        for m in &self.members {
            if m.name != self.node.name && m.addr != self.node.addr && !out.contains(&m.addr) {
                out.push(m.addr);
            }
        }
        out
    }
}

/// The file as written: the state behind a format marker and version.
#[derive(Serialize)]
struct Envelope<'a> {
    format: &'a str,
    version: u32,
    state: &'a State,
}

#[derive(Deserialize)]
struct ReadEnvelope {
    format: String,
    version: u32,
    state: State,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Makes each temporary name unique within the process, should two threads
/// save at once.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Replaces the state in `dir` atomically, creating `dir` (mode 0700) when
/// missing. The file is mode 0600.
pub fn save(dir: &Path, state: &State) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut bytes = serde_json::to_vec_pretty(&Envelope {
        format: FORMAT,
        version: VERSION,
        state,
    })
    .map_err(io::Error::other)?;
    bytes.push(b'\n');
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}-{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_new(&tmp, &bytes)
        // Without this rename the new file would not be visible; with it,
        // readers see the old file or the whole new one.
        .and_then(|_| fs::rename(&tmp, dir.join(FILE)))
        // The rename lives in the directory; flush it so it survives a crash.
        .and_then(|_| fs::File::open(dir)?.sync_all());
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    // On disk before the rename, or a crash could leave an empty new file.
    f.sync_all()
}

/// Reads the state in `dir`: `None` when there is none, or when the file
/// was unusable (it is then set aside with a warning). Errors are only for
/// a directory or file that cannot be read at all.
pub fn load(dir: &Path) -> io::Result<Option<State>> {
    remove_leftovers(dir);
    let path = dir.join(FILE);
    let bytes = match read_bounded(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let why = match serde_json::from_slice::<ReadEnvelope>(&bytes) {
        Ok(env) if env.format == FORMAT && env.version == VERSION => return Ok(Some(env.state)),
        Ok(env) if env.format == FORMAT => format!(
            "written in format version {}, this p2pd reads {VERSION}",
            env.version
        ),
        Ok(env) => format!("not a p2pd state file (format {:?})", env.format),
        Err(e) if e.is_eof() => format!("cut short ({e})"),
        Err(e) => format!("unreadable ({e})"),
    };
    match set_aside(&path) {
        Ok(to) => log::warn!(
            "state file {} is {why}; moved it to {} and starting without remembered members",
            path.display(),
            to.display()
        ),
        Err(e) => log::warn!(
            "state file {} is {why}, and could not be set aside ({e}); starting without \
             remembered members, and the next save replaces it",
            path.display()
        ),
    }
    Ok(None)
}

fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let f = fs::File::open(path)?;
    let mut bytes = Vec::new();
    f.take(MAX_LEN + 1).read_to_end(&mut bytes)?;
    // Past the limit the file is truncated in memory and so fails to parse.
    Ok(bytes)
}

/// Renames a bad state file to `state.json.corrupt-UNIXTIME`, keeping it for
/// a post-mortem, never overwriting an earlier one.
fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let base = format!("{FILE}.corrupt-{}", unix_now());
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut to = dir.join(&base);
    let mut n = 1;
    while to.exists() {
        to = dir.join(format!("{base}.{n}"));
        n += 1;
    }
    fs::rename(path, &to)?;
    Ok(to)
}

/// Removes temporary files left by a save that was interrupted. Only one
/// daemon uses a state directory, so none of them is being written.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            if let Err(err) = fs::remove_file(e.path()) {
                log::warn!("cannot remove {}: {err}", e.path().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    fn node(name: &str, port: u16) -> Node {
        Node {
            name: name.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            incarnation: 7,
            tags: BTreeMap::from([("role".to_string(), "db".to_string())]),
        }
    }

    fn sample(members: usize) -> State {
        State::new(
            node("me", 1),
            (0..members)
                .map(|i| node(&format!("m{i}"), 2 + i as u16))
                .collect(),
        )
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn round_trip_creates_a_private_dir_and_file() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        assert_eq!(load(&dir).unwrap(), None, "no directory yet");
        let s = sample(3);
        save(&dir, &s).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(s));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(FILE)), 0o600);
        assert_eq!(names(&dir), vec![FILE], "no temporary file left behind");
        let newer = sample(5);
        save(&dir, &newer).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(newer));
    }

    fn assert_set_aside(dir: &Path) {
        assert_eq!(load(dir).unwrap(), None);
        let files = names(dir);
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].starts_with("state.json.corrupt-"), "{files:?}");
        // Set aside, so the next start is clean and the next save works.
        assert_eq!(load(dir).unwrap(), None);
        save(dir, &sample(1)).unwrap();
        assert_eq!(load(dir).unwrap().map(|s| s.members.len()), Some(1));
    }

    #[test]
    fn a_file_cut_short_is_set_aside() {
        let t = tempfile::tempdir().unwrap();
        save(t.path(), &sample(4)).unwrap();
        let path = t.path().join(FILE);
        let len = fs::metadata(&path).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        assert_set_aside(t.path());
    }

    #[test]
    fn garbage_is_set_aside() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join(FILE), b"\x00\xff\xfegarbage{{").unwrap();
        assert_set_aside(t.path());
    }

    #[test]
    fn another_format_is_set_aside() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join(FILE), br#"{"members": []}"#).unwrap();
        assert_set_aside(t.path());
        let t = tempfile::tempdir().unwrap();
        let future = serde_json::json!({
            "format": FORMAT, "version": 99, "state": sample(0),
        });
        fs::write(t.path().join(FILE), future.to_string()).unwrap();
        assert_set_aside(t.path());
    }

    #[test]
    fn earlier_corrupt_files_are_kept() {
        let t = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            fs::write(t.path().join(FILE), b"nonsense").unwrap();
            assert_eq!(load(t.path()).unwrap(), None);
        }
        assert_eq!(names(t.path()).len(), 3, "{:?}", names(t.path()));
    }

    #[test]
    fn leftover_temporary_files_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let s = sample(2);
        save(t.path(), &s).unwrap();
        fs::write(t.path().join(format!("{TMP_PREFIX}999-0")), b"{\"form").unwrap();
        assert_eq!(load(t.path()).unwrap(), Some(s));
        assert_eq!(names(t.path()), vec![FILE]);
    }

    #[test]
    fn a_failed_save_leaves_the_old_file() {
        let t = tempfile::tempdir().unwrap();
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let dir = t.path().join("state");
        let old = sample(2);
        save(&dir, &old).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
        let dir2 = dir.clone();
        let failed = std::thread::spawn(move || {
            // Root writes anywhere; a file-system uid is per thread on
            // Linux, and giving up uid 0 there drops the override.
            if nix::unistd::geteuid().is_root() {
                nix::unistd::setfsuid(nix::unistd::Uid::from_raw(65534));
            }
            save(&dir2, &sample(9))
        })
        .join()
        .unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let e = failed.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        assert_eq!(load(&dir).unwrap(), Some(old));
        assert_eq!(names(&dir), vec![FILE]);
    }

    #[test]
    fn an_unreadable_state_is_an_error_not_a_reset() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join(FILE)).unwrap();
        assert!(load(t.path()).is_err());
    }

    #[test]
    fn rejoin_skips_ourselves_and_repeats() {
        let mut s = sample(2);
        s.members.push(node("me", 1));
        s.members.push(node("again", 2));
        assert_eq!(
            s.rejoin_addrs(),
            vec![
                SocketAddr::from(([127, 0, 0, 1], 2)),
                SocketAddr::from(([127, 0, 0, 1], 3))
            ]
        );
    }

    /// Set in the environment of the child that `kill_9_never_tears_the_file`
    /// starts: the directory it saves into.
    const CHILD: &str = "P2P_STATE_TEST_DIR";

    /// A process saving over and over is read meanwhile, then killed at a
    /// different moment each round: every read and the file left behind are
    /// whole.
    #[test]
    fn kill_9_never_tears_the_file() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join(FILE);
        for round in 0..4u64 {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "state::tests::saving_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, t.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let start = std::time::Instant::now();
            while !path.exists() {
                assert!(start.elapsed().as_secs() < 20, "the child never saved");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            // Not through load(), which would remove the child's temporary
            // files from under it.
            let reading = std::time::Instant::now();
            let mut reads = 0;
            while reading.elapsed().as_millis() < u128::from(40 + round * 13) {
                let bytes = read_bounded(&path).unwrap();
                if let Err(e) = serde_json::from_slice::<ReadEnvelope>(&bytes) {
                    let _ = child.kill();
                    panic!("round {round}, read {reads}: a torn file ({e})");
                }
                reads += 1;
            }
            child.kill().unwrap();
            child.wait().unwrap();
            assert!(load(t.path()).unwrap().is_some(), "round {round}");
            assert_eq!(names(t.path()), vec![FILE], "round {round}");
        }
    }

    /// Runs only as the child of `kill_9_never_tears_the_file`: saves until killed.
    #[test]
    fn saving_child() {
        let Some(dir) = std::env::var_os(CHILD) else {
            return;
        };
        for i in 0.. {
            save(Path::new(&dir), &sample(i % 300)).unwrap();
        }
    }
}

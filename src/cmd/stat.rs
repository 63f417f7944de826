//! `p2p-stat`: metadata plus wc counts and SHA-256, from one read.
//!
//! As stat(1), a symlink is described as itself unless `-L` is given. On
//! this host the command looks at a link itself (lstat and readlink need no
//! more than the caller's search rights, and the daemon takes no `O_PATH`
//! descriptor), and at anything else that has no content to read
//! (directories, FIFOs, devices, sockets), which it therefore never opens,
//! as stat(1) never does. A regular file goes to the daemon as an open
//! descriptor, for its counts and digest.

use crate::cli::{Format, StatCli};
use crate::client::{Here, PathSource, run_query_here};
use crate::error::Error;
use crate::input::Stdin;
use crate::ops::stat::{link_target_at, meta_at};
use crate::output::{Printer, quiet_on_closed_pipe};
use crate::proto::{Item, Outcome, PathBytes, Query, QueryKind, StatFields};
use std::ffi::CString;
use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

const NAME: &str = "p2p-stat";

/// Runs `p2p-stat`; returns the exit status.
pub fn run(cli: StatCli) -> i32 {
    quiet_on_closed_pipe();
    let mut printer = Printer::new(NAME, super::style(cli.format == Format::Text));
    let source =
        match PathSource::from_input(&cli.input, Stdin::STAT, cli.placement.target().is_some()) {
            Ok(s) => s,
            Err(f) => return super::finish(NAME, Err(f), &mut printer),
        };
    let target = match super::target(&cli.placement, &mut printer, false) {
        Ok(t) => t,
        Err(f) => return super::finish(NAME, Err(f), &mut printer),
    };
    let (watch, mut progress) = match super::job(
        NAME,
        &cli.job,
        &cli.connection,
        &cli.placement,
        cli.format != Format::Text,
        QueryKind::Stat,
        &mut printer,
    ) {
        Ok(j) => j,
        Err(f) => return super::finish(NAME, Err(f), &mut printer),
    };
    let source = source.watched(watch);
    let query = Query {
        kind: QueryKind::Stat,
        lines_only: false,
        bytes_only: false,
        max_line_length: false,
        recursive: false,
        dereference: cli.dereference,
        posixly_correct: false,
        cwd: None,
        paths: None,
        target,
    };
    let mut fold = super::Fold::new(&cli.placement, cli.format == Format::Text);
    let follow = cli.dereference;
    let here: Here<StatFields> = Arc::new(move |path: &Path| without_content(path, follow));
    let result = run_query_here(
        &cli.connection,
        query,
        source,
        &mut printer,
        &mut |printer, item: Item<StatFields>| {
            if let Some(p) = progress.as_mut() {
                p.item(&item, |f| Some(f.size));
            }
            let Some(item) = fold.take(item) else { return };
            if let Outcome::Ok(f) = &item.outcome
                && f.changed
            {
                printer.changed(&item.peer, &item.path);
            }
            printer.item(&item, &text)
        },
        Some(here),
    );
    if let Some(p) = progress {
        p.finish();
    }
    let bad = fold.finish(NAME, &mut printer, &text);
    super::with_groups(super::finish(NAME, result, &mut printer), bad)
}

/// The fields of `path` when it has no content to read: a symlink (unless
/// `follow`), a directory, a FIFO, a device or a socket; `None` for a
/// regular file (and for what cannot be looked at, which the open then
/// reports in its own words).
pub fn without_content(path: &Path, follow: bool) -> Option<Result<StatFields, Error>> {
    let name = CString::new(path.as_os_str().as_bytes()).ok()?;
    let meta = meta_at(libc::AT_FDCWD, &name, follow).ok()?;
    if meta.is_symlink() {
        return Some(
            link_target_at(libc::AT_FDCWD, &name)
                .map(|target| StatFields::header(&meta, Some(&target)))
                .map_err(|e| Error::from_io(&e)),
        );
    }
    (meta.mode & libc::S_IFMT != libc::S_IFREG).then(|| Ok(StatFields::header(&meta, None)))
}

/// A block per file, in the manner of stat(1), with the raw bytes of the name.
fn text(s: &StatFields, path: &[u8]) -> Vec<u8> {
    let mut file = [b"  File: ", path].concat();
    if let Some(t) = &s.target {
        let exact = PathBytes::from_json(Some(t.clone()), s.target_b64.as_deref());
        file.extend_from_slice(b" -> ");
        file.extend_from_slice(exact.as_ref().map_or(t.as_bytes(), |p| p.as_bytes()));
    }
    file.push(b'\n');
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  Type: {}  Size: {}  Mode: {}",
        s.file_type, s.size, s.mode
    );
    if let (Some(ino), Some(links)) = (s.inode, s.nlink) {
        let _ = writeln!(out, " Inode: {ino}  Links: {links}");
    }
    if let (Some(uid), Some(gid)) = (s.uid, s.gid) {
        let name = |n: &Option<String>| n.clone().unwrap_or_else(|| "UNKNOWN".into());
        let _ = writeln!(
            out,
            "   Uid: ({uid}/{})  Gid: ({gid}/{})",
            name(&s.user),
            name(&s.group)
        );
    }
    if let Some(a) = &s.atime {
        let _ = writeln!(out, "Access: {a}");
    }
    let _ = writeln!(out, "Modify: {}", s.mtime);
    if let Some(c) = &s.ctime {
        let _ = writeln!(out, "Change: {c}");
    }
    let _ = writeln!(out, " Birth: {}", s.birth.as_deref().unwrap_or("-"));
    if let (Some(l), Some(w), Some(c), Some(b)) = (s.lines, s.words, s.chars, s.bytes) {
        let _ = writeln!(out, " Lines: {l}  Words: {w}  Chars: {c}  Bytes: {b}");
    }
    if let Some(h) = &s.sha256 {
        let _ = writeln!(out, "SHA256: {h}");
    }
    file.extend_from_slice(out.as_bytes());
    file
}

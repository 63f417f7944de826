//! A file's metadata as `stat` shows it, and its counts and digest in one read.
//!
//! Metadata comes from one `statx(2)`, which also gives the birth time where
//! the filesystem keeps one. A symlink is described as itself (its own
//! owner, times and target) unless the caller asks to follow it.
//!
//! The content is read once, on its own thread; each chunk goes to a counting
//! thread and is hashed here, so the whole runs at about the speed of the
//! slower of the two rather than their sum.

use super::sha::{Digest, Hasher};
use super::wc::{WcCounter, WcCounts};
use crate::proto::StatFields;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::mpsc::sync_channel;

/// A file's metadata, from `statx(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The `S_IFMT` bits and the permission bits.
    pub mode: u32,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    pub inode: u64,
    pub nlink: u64,
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    /// Creation time, when the filesystem records one.
    pub birth: Option<(i64, u32)>,
}

impl Meta {
    /// `file`, `directory`, `symlink`, `fifo`, `socket`, `char_device` or `block_device`.
    pub fn type_name(&self) -> &'static str {
        match self.mode & libc::S_IFMT {
            libc::S_IFREG => "file",
            libc::S_IFDIR => "directory",
            libc::S_IFLNK => "symlink",
            libc::S_IFIFO => "fifo",
            libc::S_IFSOCK => "socket",
            libc::S_IFCHR => "char_device",
            libc::S_IFBLK => "block_device",
            _ => "unknown",
        }
    }

    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
}

/// The metadata of an open file.
pub fn meta_of(file: BorrowedFd<'_>) -> io::Result<Meta> {
    statx(file.as_raw_fd(), c"", libc::AT_EMPTY_PATH)
}

/// The metadata of `name` in directory `dir` (`AT_FDCWD` for a path), of
/// the symlink itself unless `follow`.
pub fn meta_at(dir: RawFd, name: &CStr, follow: bool) -> io::Result<Meta> {
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    statx(dir, name, flags)
}

fn statx(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<Meta> {
    let mut buf = std::mem::MaybeUninit::<libc::statx>::uninit();
    let mask = libc::STATX_BASIC_STATS | libc::STATX_BTIME;
    // SAFETY: a valid C string and a buffer statx fills when it returns 0.
    let r = unsafe { libc::statx(dir, name.as_ptr(), flags, mask, buf.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialized by the successful call above.
    let x = unsafe { buf.assume_init() };
    let t = |ts: libc::statx_timestamp| (ts.tv_sec, ts.tv_nsec);
    Ok(Meta {
        mode: u32::from(x.stx_mode),
        size: x.stx_size,
        uid: x.stx_uid,
        gid: x.stx_gid,
        inode: x.stx_ino,
        nlink: u64::from(x.stx_nlink),
        atime: t(x.stx_atime),
        mtime: t(x.stx_mtime),
        ctime: t(x.stx_ctime),
        birth: (x.stx_mask & libc::STATX_BTIME != 0).then(|| t(x.stx_btime)),
    })
}

/// The target of symlink `name` in `dir` (`AT_FDCWD` for a path), as bytes.
pub fn link_target_at(dir: RawFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: the buffer holds `buf.len()` bytes; readlinkat writes at most that.
        let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        // Perhaps cut short: try again with room to spare (PATH_MAX at most
        // matters, but a link may be longer on some filesystems).
        if buf.len() >= 1 << 20 {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        buf.resize(buf.len() * 4, 0);
    }
}

impl StatFields {
    /// The fields that need no reading of the content; `target` for a
    /// symlink. User and group names are this host's, absent when unknown.
    pub fn header(m: &Meta, target: Option<&[u8]>) -> StatFields {
        StatFields {
            file_type: m.type_name().to_string(),
            size: m.size,
            mode: format!("{:04o}", m.mode & 0o7777),
            mtime: rfc3339_utc(m.mtime.0, m.mtime.1),
            target: target.map(|t| String::from_utf8_lossy(t).into_owned()),
            target_b64: target.and_then(|t| crate::proto::PathBytes::from(t).b64()),
            uid: Some(m.uid),
            gid: Some(m.gid),
            user: user_name(m.uid),
            group: group_name(m.gid),
            inode: Some(m.inode),
            nlink: Some(m.nlink),
            atime: Some(rfc3339_utc(m.atime.0, m.atime.1)),
            ctime: Some(rfc3339_utc(m.ctime.0, m.ctime.1)),
            birth: m.birth.map(|(s, ns)| rfc3339_utc(s, ns)),
            lines: None,
            words: None,
            bytes: None,
            chars: None,
            sha256: None,
            changed: false,
        }
    }
}

/// Before a user or group lookup: in a statically linked binary (the
/// `p2p-*` commands, see build/static-cc), glibc's NSS is told to use its
/// built-in `files` service only. Any other (`systemd`, `sss`) would be
/// loaded with dlopen, and in a static binary that crashes (SIGSEGV, with
/// the usual `passwd: files systemd` and a uid /etc/passwd lacks). A
/// dynamically linked binary (p2pd) keeps every service nsswitch.conf names.
pub fn nss_ready() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            unsafe extern "C" {
                fn __nss_configure_lookup(
                    db: *const std::ffi::c_char,
                    service: *const std::ffi::c_char,
                ) -> std::ffi::c_int;
            }
            // SAFETY: getauxval only reads the auxiliary vector; AT_BASE,
            // the dynamic loader's address, is 0 in a static executable.
            if unsafe { libc::getauxval(libc::AT_BASE) } != 0 {
                return;
            }
            for db in [c"passwd", c"group"] {
                // SAFETY: two constant NUL-terminated strings; glibc copies
                // the setting before any lookup of this process, all of
                // which come after this call (the Once).
                unsafe { __nss_configure_lookup(db.as_ptr(), c"files".as_ptr()) };
            }
        });
    }
}

/// The name of user `uid` in this host's user database.
pub fn user_name(uid: u32) -> Option<String> {
    nss_ready();
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid));
    user.ok().flatten().map(|u| u.name)
}

/// The name of group `gid` in this host's group database.
fn group_name(gid: u32) -> Option<String> {
    nss_ready();
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid));
    group.ok().flatten().map(|g| g.name)
}

/// Formats a Unix time as RFC 3339 in UTC, with nanoseconds when there are any.
pub fn rfc3339_utc(secs: i64, nsec: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    if nsec > 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{nsec:09}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Reads the file once and returns both its `wc` counts and its SHA-256.
pub fn wc_and_sha256(file: &File) -> io::Result<(WcCounts, Digest)> {
    let (mut c, mut h) = (WcCounter::new(), Hasher::default());
    both_into(
        file,
        &mut c,
        &mut h,
        super::NO_LIMIT,
        super::Place::of(file)?,
    )?;
    Ok((c.finish(), h.finish()))
}

/// Adds at most `limit` bytes of `file`, from its offset (at `place`, for a
/// regular file), to the counter and to the hash.
pub(crate) fn both_into(
    file: &File,
    c: &mut WcCounter,
    h: &mut Hasher,
    limit: u64,
    place: Option<super::Place>,
) -> io::Result<()> {
    if super::span(place, limit) < super::PIPE_MIN {
        return super::read_all(file, limit, super::Place::read_at(place), |chunk| {
            c.update(chunk);
            h.update(chunk);
        });
    }
    let (tx, rx) = sync_channel::<Arc<Vec<u8>>>(2);
    std::thread::scope(|scope| {
        let counter = scope.spawn(move || {
            for chunk in rx {
                c.update(&chunk);
            }
        });
        let read = super::pipelined(file, limit, |chunk| {
            // If the counter died, its join below reports it.
            let _ = tx.send(Arc::clone(chunk));
            h.update(chunk);
        });
        drop(tx);
        counter
            .join()
            .map_err(|_| io::Error::other("counting thread failed"))?;
        read
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_utc(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339_utc(1_700_000_000, 5),
            "2023-11-14T22:13:20.000000005Z"
        );
        assert_eq!(rfc3339_utc(-1, 0), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn meta_agrees_with_std_and_a_symlink_is_itself() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        let link = t.path().join("l");
        std::os::unix::fs::symlink("f", &link).unwrap();
        let file = File::open(&f).unwrap();
        let m = meta_of(file.as_fd()).unwrap();
        let md = std::fs::metadata(&f).unwrap();
        assert_eq!((m.size, m.inode, m.nlink), (5, md.ino(), 1));
        assert_eq!((m.uid, m.gid, m.mode), (md.uid(), md.gid(), md.mode()));
        assert_eq!(m.mtime, (md.mtime(), md.mtime_nsec() as u32));
        assert_eq!(m.ctime, (md.ctime(), md.ctime_nsec() as u32));
        assert_eq!(m.type_name(), "file");
        let c = std::ffi::CString::new(link.as_os_str().as_encoded_bytes()).unwrap();
        let l = meta_at(libc::AT_FDCWD, &c, false).unwrap();
        assert!(l.is_symlink());
        assert_eq!((l.type_name(), l.size), ("symlink", 1));
        assert_eq!(meta_at(libc::AT_FDCWD, &c, true).unwrap().inode, md.ino());
        assert_eq!(link_target_at(libc::AT_FDCWD, &c).unwrap(), b"f");
        let h = StatFields::header(&l, Some(b"f"));
        assert_eq!(h.target.as_deref(), Some("f"));
        assert_eq!(h.uid, Some(md.uid()));
        if md.uid() == 0 {
            assert_eq!(h.user.as_deref(), Some("root"));
        }
    }

    #[test]
    fn a_long_link_target_is_read_whole() {
        let t = tempfile::tempdir().unwrap();
        let target = "x/".repeat(700);
        let link = t.path().join("long");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let c = std::ffi::CString::new(link.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(
            link_target_at(libc::AT_FDCWD, &c).unwrap(),
            target.as_bytes()
        );
    }

    #[test]
    fn same_as_separate_passes() {
        let data = "line one\nzwei wörter\n\u{3000}三\n".repeat(100_000);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data.as_bytes()).unwrap();
        f.rewind().unwrap();
        let (c, d) = wc_and_sha256(&f).unwrap();
        assert_eq!(c, super::super::wc::count_slice(data.as_bytes()));
        f.rewind().unwrap();
        assert_eq!(d, super::super::sha::sha256_file(&f).unwrap());
    }
}

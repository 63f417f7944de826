//! What kind of input an open file is, and how to read the kinds whose size
//! means nothing.
//!
//! A regular file on an ordinary filesystem is *sized*: its `st_size` is its
//! length, so a cached result can be keyed by it, `wc -c` can answer from
//! it, and the reading can be split into ranges. Everything else is a
//! *stream*, read from its offset to its end and never cached: pipes and
//! FIFOs, sockets, character and block devices, and the regular files of
//! kernel pseudo-filesystems (procfs, sysfs, debugfs, tracefs, cgroupfs,
//! configfs, securityfs, bpffs, efivarfs, pstore, selinuxfs, smackfs), known
//! by `fstatfs(2)`'s `f_type`, whose `st_size` is 0, a page, or a guess.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// How an open file can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file whose size can be trusted.
    Sized,
    /// Read to the end, whatever its size says; never cached.
    Stream,
}

/// The kind of `file`, whose metadata is `md`. A directory is neither;
/// the caller deals with it first.
pub fn kind(file: &File, md: &Metadata) -> Kind {
    if md.is_file() && (on_block_device(md) || !on_pseudo_fs(file)) {
        Kind::Sized
    } else {
        Kind::Stream
    }
}

/// True when the filesystem of the file whose metadata is `md` is backed by
/// a block device (its device number has a major): ext4, XFS and the like,
/// whose sizes are exact. Kernel pseudo-filesystems, like every filesystem
/// without a device (tmpfs, overlay, FUSE, NFS), get an anonymous device
/// number of major 0, so that one `fstat` spares the `fstatfs` for most
/// files.
pub fn on_block_device(md: &Metadata) -> bool {
    libc::major(md.dev()) != 0
}

/// True when `file` lives on a filesystem whose sizes are made up by the
/// kernel, or when that cannot be told (then trusting the size is the risk).
fn on_pseudo_fs(file: &File) -> bool {
    use nix::sys::statfs::{self, FsType};
    const PSEUDO: [FsType; 12] = [
        statfs::PROC_SUPER_MAGIC,
        statfs::SYSFS_MAGIC,
        statfs::DEBUGFS_MAGIC,
        statfs::TRACEFS_MAGIC,
        statfs::CGROUP_SUPER_MAGIC,
        statfs::CGROUP2_SUPER_MAGIC,
        statfs::SECURITYFS_MAGIC,
        statfs::BPF_FS_MAGIC,
        statfs::SELINUX_MAGIC,
        statfs::SMACK_MAGIC,
        // configfs, efivarfs and pstore have no constant in nix.
        FsType(0x6265_6570),
        FsType(0xde5e_81e4),
    ];
    const PSTORE: FsType = FsType(0x6165_676c);
    match statfs::fstatfs(file.as_fd()) {
        Ok(s) => {
            let t = s.filesystem_type();
            t == PSTORE || PSEUDO.contains(&t)
        }
        Err(_) => true,
    }
}

/// The bytes from the offset of a sized `file` to its end, told by its size
/// without reading it, as GNU `wc -c` does: when the size is not a multiple
/// of the page size it is taken as is; when it is (as pseudo-files that we
/// do not know of report), only the part below the last `st_blksize + 1`
/// boundary is, and the rest is read. The offset is left at the end, as a
/// read would leave it.
pub fn bytes_from_size(file: &File, md: &Metadata) -> io::Result<u64> {
    let mut f = file;
    let size = md.size();
    let at = f.stream_position()?;
    // SAFETY: sysconf only reads a system constant.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as u64,
        _ => 4096,
    };
    if size % page != 0 {
        let bytes = size.saturating_sub(at);
        f.seek(SeekFrom::Current(bytes as i64))?;
        return Ok(bytes);
    }
    let high = size - size % (md.blksize() + 1);
    let mut bytes = 0;
    if at < high {
        f.seek(SeekFrom::Start(high))?;
        bytes = high - at;
    }
    let mut rest = 0u64;
    super::read_all(file, super::NO_LIMIT, None, |buf| rest += buf.len() as u64)?;
    Ok(bytes + rest)
}

/// How long a stream read waits for data before it gives its worker back
/// (the item is resumed at its next turn).
const WAIT: Duration = Duration::from_millis(50);

/// Bytes asked for by one read of a stream.
const STREAM_CHUNK: usize = 128 * 1024;

/// Reads at most `budget` bytes of a stream from its offset into `consume`,
/// waiting for data at most [`WAIT`] at a time. Returns true at the end of
/// the stream, false when the budget is spent or no data came in time (a
/// pipe whose writer is slow): call again. A descriptor in non-blocking
/// mode is waited for like any other.
pub fn read_stream(file: &File, budget: u64, consume: &mut dyn FnMut(&[u8])) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; STREAM_CHUNK];
    let mut left = budget;
    let mut reader = file;
    while left > 0 {
        let mut fds = [libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one pollfd, valid for the call; the descriptor is ours.
        match unsafe { libc::poll(fds.as_mut_ptr(), 1, WAIT.as_millis() as libc::c_int) } {
            0 => return Ok(false),
            n if n > 0 => {}
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match reader.read(&mut buf[..want]) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                left -= n as u64;
                consume(&buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn regular_files_are_sized_and_proc_files_are_streams() {
        let f = tempfile::tempfile().unwrap();
        assert_eq!(kind(&f, &f.metadata().unwrap()), Kind::Sized);
        let p = File::open("/proc/uptime").unwrap();
        assert_eq!(kind(&p, &p.metadata().unwrap()), Kind::Stream);
        let n = File::open("/dev/null").unwrap();
        assert_eq!(kind(&n, &n.metadata().unwrap()), Kind::Stream);
    }

    #[test]
    fn pseudo_filesystems_have_no_block_device() {
        for path in [
            "/proc/uptime",
            "/sys/kernel/mm/transparent_hugepage/enabled",
        ] {
            if let Ok(f) = File::open(path) {
                assert!(!on_block_device(&f.metadata().unwrap()), "{path}");
            }
        }
    }

    #[test]
    fn size_answers_from_the_offset_and_leaves_it_at_the_end() {
        for len in [0usize, 1, 4095, 4096, 8192, 10_000] {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(&vec![b'x'; len]).unwrap();
            for from in [0u64, 3, 5000] {
                f.seek(SeekFrom::Start(from)).unwrap();
                let md = f.metadata().unwrap();
                let got = bytes_from_size(&f, &md).unwrap();
                assert_eq!(got, (len as u64).saturating_sub(from), "{len} from {from}");
                let end = f.stream_position().unwrap();
                assert_eq!(end, from.max(len as u64), "{len} from {from}");
            }
        }
    }

    #[test]
    fn a_sparse_terabyte_is_sized_without_reading_it() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(1 << 40).unwrap();
        let md = f.metadata().unwrap();
        assert_eq!(bytes_from_size(&f, &md).unwrap(), 1 << 40);
    }

    #[test]
    fn a_pipe_is_read_to_its_end() {
        let (r, mut w) = std::io::pipe().unwrap();
        let writer = std::thread::spawn(move || {
            for _ in 0..100 {
                w.write_all(&[7u8; 1000]).unwrap();
            }
        });
        let r = File::from(std::os::fd::OwnedFd::from(r));
        let mut got = 0u64;
        while !read_stream(&r, 4096, &mut |b| got += b.len() as u64).unwrap() {}
        writer.join().unwrap();
        assert_eq!(got, 100_000);
    }
}

//! The file computations: pure functions over bytes, a reader or an open file.
//!
//! Nothing here knows about sockets, clients or peers; the daemon calls these
//! from its worker pool and the tests call them directly.

pub mod count;
pub mod pass;
pub mod ranges;
pub mod sha;
pub mod source;
pub mod stat;
pub mod unicode_tables;
pub mod wc;
pub mod width;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens a path for a query, for reading. `O_NONBLOCK` keeps a FIFO from
/// blocking the open: its reader waits for data with poll(2) instead (see
/// [`source::read_stream`]), and a FIFO no writer has opened yet shows no
/// end until one has; on regular files and directories it changes nothing.
pub fn open_for_query(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
}

/// Read size for whole-file passes.
const PIPE_CHUNK: usize = 1 << 20;

/// The `limit` of a read that goes to the end of the file.
pub(crate) const NO_LIMIT: u64 = u64::MAX;

/// Files smaller than this are read on the calling thread: a second thread
/// costs more than it saves.
pub const PIPE_MIN: u64 = 4 << 20;

/// Where a read of a regular file starts and how large the file is, as the
/// caller found them with its one `fstat` and `lseek`: the readers below take
/// it instead of asking the kernel again for each decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub at: u64,
    pub size: u64,
    /// The size is exact (see [`source::on_block_device`]): reading the
    /// bytes it leaves reaches the end, with no read that returns nothing.
    pub exact: bool,
    /// The descriptor's offset is nobody's (the command opened it for this
    /// read alone): read at `at` by pread(2), its offset neither asked nor
    /// moved. A file of [`PIPE_MIN`] bytes or more is read by its offset.
    pub positional: bool,
}

impl Place {
    /// Asks the kernel: `None` unless `file` is a regular file.
    pub fn of(file: &File) -> io::Result<Option<Place>> {
        use std::io::Seek;
        let md = file.metadata()?;
        if !md.is_file() {
            return Ok(None);
        }
        let at = (&*file).stream_position()?;
        Ok(Some(Place {
            at,
            size: md.len(),
            exact: source::on_block_device(&md),
            positional: false,
        }))
    }

    /// Where a read of the small-file path starts by explicit offset, if it does.
    pub(crate) fn read_at(place: Option<Place>) -> Option<u64> {
        place.filter(|p| p.positional).map(|p| p.at)
    }

    /// The bytes from the offset to the end, by the size.
    pub fn left(&self) -> u64 {
        self.size.saturating_sub(self.at)
    }
}

/// How many bytes a read of at most `limit` bytes from `place` finds, as
/// far as the size tells (0 when it is not a regular file's place).
pub(crate) fn span(place: Option<Place>, limit: u64) -> u64 {
    place.map_or(0, |p| p.left().min(limit))
}

/// Number of CPUs we may use, looked up once (the lookup reads cgroup files).
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

thread_local! {
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads at most `limit` bytes of `file` from its offset, or from `at` by
/// explicit offsets when given ([`NO_LIMIT`]: to its end), in this thread,
/// through a buffer kept per thread so that small files cost no allocation.
pub(crate) fn read_all(
    file: &File,
    limit: u64,
    mut at: Option<u64>,
    mut consume: impl FnMut(&[u8]),
) -> io::Result<()> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    BUFFER.with(|cell| {
        let mut owned;
        let mut borrowed = cell.try_borrow_mut();
        let buf: &mut Vec<u8> = match borrowed.as_mut() {
            Ok(b) => b,
            Err(_) => {
                owned = Vec::new();
                &mut owned
            }
        };
        if buf.len() < PIPE_CHUNK {
            buf.resize(PIPE_CHUNK, 0);
        }
        let mut reader = file;
        let mut left = limit;
        loop {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            if want == 0 {
                return Ok(());
            }
            let got = match at {
                Some(pos) => reader.read_at(&mut buf[..want], pos),
                None => reader.read(&mut buf[..want]),
            };
            match got {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    left -= n as u64;
                    if let Some(pos) = at.as_mut() {
                        *pos += n as u64;
                    }
                    consume(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    })
}

/// Reads at most `limit` bytes of `file` from its offset ([`NO_LIMIT`]: to its
/// end) on a second thread while `consume`
/// works on the previous chunk here, so the copy out of the page cache
/// overlaps the computation. Chunks are shared (`Arc`) so `consume` may hand
/// them to further threads; buffers come back to the reader for reuse.
pub(crate) fn pipelined(
    file: &File,
    limit: u64,
    mut consume: impl FnMut(&std::sync::Arc<Vec<u8>>),
) -> io::Result<()> {
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::mpsc::{channel, sync_channel};
    let (full_tx, full_rx) = sync_channel::<io::Result<Arc<Vec<u8>>>>(2);
    let (empty_tx, empty_rx) = channel::<Arc<Vec<u8>>>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut reader = file;
            let mut left = limit;
            loop {
                let mut buf = empty_rx
                    .try_recv()
                    .ok()
                    .and_then(|a| Arc::try_unwrap(a).ok())
                    .unwrap_or_default();
                let want = PIPE_CHUNK.min(usize::try_from(left).unwrap_or(usize::MAX));
                buf.resize(want, 0);
                let mut filled = 0;
                while filled < buf.len() {
                    match reader.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = full_tx.send(Err(e));
                            return;
                        }
                    }
                }
                if filled == 0 {
                    return;
                }
                buf.truncate(filled);
                left -= filled as u64;
                if full_tx.send(Ok(Arc::new(buf))).is_err() {
                    return;
                }
                if filled < PIPE_CHUNK || left == 0 {
                    return;
                }
            }
        });
        for chunk in full_rx {
            let chunk = chunk?;
            consume(&chunk);
            let _ = empty_tx.send(chunk);
        }
        Ok(())
    })
}

//! Passing open descriptors over the local Unix socket (SCM_RIGHTS).
//!
//! The commands open each file with the caller's own rights and hand the
//! descriptor to the daemon, so a daemon running as root or as a service user
//! never reads what the caller could not. Descriptors travel attached to the
//! bytes of the line that names them; the receiver queues them in arrival order
//! and each line that says `"fd":true` takes the next one. The kernel delivers
//! a descriptor no later than the first byte it was sent with, so by the time a
//! whole line has been read its descriptor is already in the queue.
//!
//! A descriptor proves what its holder may read only if it was opened for
//! reading: an `O_PATH` descriptor needs no more than search permission on the
//! directories above the file, and a write-only one says nothing about reading.
//! The daemon answers for a passed descriptor only after [`readable`] accepts
//! it, before the cache or any computation sees it.

use crate::error::{Error, ErrorCode};
use nix::cmsg_space;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// The most descriptors one `sendmsg` may carry (the kernel's SCM_MAX_FD).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// Writes all of `data`, attaching `fds` to its first byte. Never raises SIGPIPE.
pub fn send_with_fds(sock: &UnixStream, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut sent = 0;
    while sent < data.len() {
        let attach = if sent == 0 { fds } else { &[] };
        sent += send_once(sock, &data[sent..], attach, MsgFlags::MSG_NOSIGNAL)?;
    }
    Ok(())
}

/// Sends what the socket takes of `data` now, without waiting: the number of
/// bytes sent (at least one), or `WouldBlock` when its buffer is full. `fds`
/// go with the first byte sent, so give them only with a message's start.
/// Never raises SIGPIPE.
pub fn send_some(sock: &UnixStream, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    send_once(
        sock,
        data,
        fds,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    )
}

/// One `sendmsg` of `data` with `fds` attached (retried if interrupted).
fn send_once(sock: &UnixStream, data: &[u8], fds: &[RawFd], flags: MsgFlags) -> io::Result<usize> {
    debug_assert!(fds.len() <= MAX_FDS_PER_MESSAGE);
    let iov = [IoSlice::new(data)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, flags, None) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(n) => return Ok(n),
        }
    }
}

/// Closes `files`: in one `close_range` when their descriptors are
/// consecutive numbers (as a batch opened one after another usually is),
/// else one by one. Only our own descriptors are in such a range: owned
/// descriptors are distinct, so as many of them as the range is wide fill it.
pub fn close_all(files: Vec<File>) {
    let (Some(low), Some(high)) = (
        files.iter().map(AsRawFd::as_raw_fd).min(),
        files.iter().map(AsRawFd::as_raw_fd).max(),
    ) else {
        return;
    };
    if files.len() < 2 || usize::try_from(high - low).ok() != Some(files.len() - 1) {
        return drop(files);
    }
    let fds: Vec<RawFd> = files.into_iter().map(IntoRawFd::into_raw_fd).collect();
    // SAFETY: every descriptor in low..=high is one of `fds`, which we own
    // and no longer use.
    if unsafe { libc::close_range(low as libc::c_uint, high as libc::c_uint, 0) } != 0 {
        for fd in fds {
            // SAFETY: as above; close_range failed before closing any.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
}

/// A passed descriptor as a file to answer for, only if it is open for
/// reading (not `O_PATH`, not write-only).
pub fn readable(fd: OwnedFd) -> Result<File, Error> {
    // SAFETY: F_GETFL only reads the flags of a descriptor we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(Error::from_io(&io::Error::last_os_error()));
    }
    let mode = flags & libc::O_ACCMODE;
    if flags & libc::O_PATH != 0 || (mode != libc::O_RDONLY && mode != libc::O_RDWR) {
        return Err(Error::new(
            ErrorCode::PermissionDenied,
            "the passed descriptor is not open for reading (O_PATH or write-only); \
             pass one opened for reading",
        ));
    }
    Ok(File::from(fd))
}

/// The line buffer's first size; it doubles while a line does not fit, up to
/// `READ_CHUNK` plus the line limit.
const FIRST_BUFFER: usize = 4 * 1024;

/// The most bytes one read asks for once the buffer has grown.
const READ_CHUNK: usize = 64 * 1024;

/// Reads newline-terminated lines from a Unix stream, queueing passed descriptors.
pub struct LineReader {
    sock: UnixStream,
    /// Received bytes live in `buf[start..end]`; `buf` is zeroed only when it
    /// grows (doubling from a few KiB), never per read.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    fds: VecDeque<OwnedFd>,
    max_line: usize,
    max_fds: usize,
    eof: bool,
}

impl LineReader {
    /// `max_line` bounds one line; `max_fds` bounds descriptors held before use.
    pub fn new(sock: UnixStream, max_line: usize, max_fds: usize) -> Self {
        LineReader {
            sock,
            buf: vec![0; FIRST_BUFFER],
            start: 0,
            end: 0,
            fds: VecDeque::new(),
            max_line,
            max_fds,
            eof: false,
        }
    }

    /// The next line without its newline, or `None` at end of stream.
    /// A final line without a newline is returned as a line.
    pub fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(pos) = memchr::memchr(b'\n', pending) {
                if pos > self.max_line {
                    return Err(self.too_long());
                }
                let line = pending[..pos].to_vec();
                self.start += pos + 1;
                return Ok(Some(line));
            }
            if pending.len() > self.max_line {
                return Err(self.too_long());
            }
            if self.eof {
                if !pending.is_empty() {
                    let line = pending.to_vec();
                    self.start = self.end;
                    return Ok(Some(line));
                }
                return Ok(None);
            }
            self.fill()?;
        }
    }

    fn too_long(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line longer than {} bytes", self.max_line),
        )
    }

    /// True once the other side has closed the stream (what is buffered is
    /// still there to read).
    pub fn at_end(&self) -> bool {
        self.eof
    }

    /// Reads once from the socket (one `recvmsg`, which waits if nothing has
    /// come): for a caller that polled the socket and reads lines only while
    /// [`has_line`](Self::has_line) or [`at_end`](Self::at_end) say so.
    pub fn read_more(&mut self) -> io::Result<()> {
        if self.eof {
            return Ok(());
        }
        if self.end - self.start > self.max_line {
            return Err(self.too_long());
        }
        self.fill()
    }

    /// True when a whole line is already buffered, so reading it will not block.
    pub fn has_line(&self) -> bool {
        memchr::memchr(b'\n', &self.buf[self.start..self.end]).is_some()
    }

    /// Sets the timeout of reads from the socket (`None`: wait for ever).
    pub fn set_read_timeout(&self, timeout: Option<std::time::Duration>) {
        let _ = self.sock.set_read_timeout(timeout);
    }

    /// The socket, to wait on with other descriptors.
    pub fn socket(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.sock)
    }

    /// Shuts the connection down both ways, waking any thread blocked on it.
    pub fn shutdown(&self) -> io::Result<()> {
        self.sock.shutdown(std::net::Shutdown::Both)
    }

    /// Takes the oldest received descriptor not yet claimed by a line.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Full of one unfinished line (at most max_line bytes, checked
            // by the caller): make room for the rest of it.
            let grown = (self.buf.len() * 2).min(self.max_line.saturating_add(READ_CHUNK));
            self.buf.resize(grown.max(self.end + 1), 0);
        }
        let room = (self.buf.len() - self.end).min(READ_CHUNK);
        let old_len = self.end;
        let mut cmsg = cmsg_space!([RawFd; MAX_FDS_PER_MESSAGE]);
        let result = loop {
            let mut iov = [IoSliceMut::new(&mut self.buf[old_len..old_len + room])];
            match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => break Err(io::Error::from(e)),
                Ok(msg) => {
                    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
                    let n = msg.bytes;
                    let mut got = Vec::new();
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(fds) = c {
                                // SAFETY: the kernel just installed these descriptors
                                // in our table for us; nothing else owns them.
                                got.extend(
                                    fds.into_iter()
                                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                                );
                            }
                        }
                    }
                    break Ok((n, truncated, got));
                }
            }
        };
        let (n, truncated, got) = result?;
        self.end = old_len + n;
        if n == room && self.buf.len() < READ_CHUNK {
            // The sender is ahead of us: read more per call from now on.
            self.buf.resize((self.buf.len() * 2).min(READ_CHUNK), 0);
        }
        self.fds.extend(got);
        if truncated {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "passed descriptors were truncated",
            ));
        }
        if self.fds.len() > self.max_fds {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than {} unclaimed descriptors", self.max_fds),
            ));
        }
        if n == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn descriptors_follow_their_lines() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut f1 = tempfile::tempfile().unwrap();
        f1.write_all(b"one").unwrap();
        let mut f2 = tempfile::tempfile().unwrap();
        f2.write_all(b"two").unwrap();
        send_with_fds(
            &a,
            b"{\"fd\":true}\n{\"fd\":true}\n",
            &[f1.as_raw_fd(), f2.as_raw_fd()],
        )
        .unwrap();
        send_with_fds(&a, b"last", &[]).unwrap();
        drop(a);
        let mut r = LineReader::new(b, 1024, 16);
        assert_eq!(r.next_line().unwrap().unwrap(), b"{\"fd\":true}");
        let mut got = std::fs::File::from(r.take_fd().unwrap());
        got.rewind().unwrap();
        let mut s = String::new();
        got.read_to_string(&mut s).unwrap();
        assert_eq!(s, "one");
        assert_eq!(r.next_line().unwrap().unwrap(), b"{\"fd\":true}");
        assert!(r.take_fd().is_some());
        assert!(r.take_fd().is_none());
        assert_eq!(r.next_line().unwrap().unwrap(), b"last");
        assert!(r.next_line().unwrap().is_none());
    }

    #[test]
    fn only_descriptors_open_for_reading_are_answered() {
        use std::os::unix::fs::OpenOptionsExt;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let open = |o: &mut std::fs::OpenOptions| OwnedFd::from(o.open(&p).unwrap());
        assert!(readable(open(std::fs::OpenOptions::new().read(true))).is_ok());
        assert!(readable(open(std::fs::OpenOptions::new().read(true).write(true))).is_ok());
        for refused in [
            open(std::fs::OpenOptions::new().write(true)),
            open(
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_PATH),
            ),
            OwnedFd::from(
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                    .open(t.path())
                    .unwrap(),
            ),
        ] {
            let e = readable(refused).unwrap_err();
            assert_eq!(e.code, ErrorCode::PermissionDenied);
        }
    }

    #[test]
    fn overlong_line_is_an_error() {
        let (a, b) = UnixStream::pair().unwrap();
        send_with_fds(&a, &[b'x'; 5000], &[]).unwrap();
        drop(a);
        let mut r = LineReader::new(b, 100, 16);
        assert!(r.next_line().is_err());
    }

    #[test]
    fn a_line_over_the_limit_is_refused_even_when_it_arrives_whole() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut data = vec![b'y'; 100];
        data.push(b'\n');
        data.extend_from_slice(&[b'z'; 101]);
        data.push(b'\n');
        send_with_fds(&a, &data, &[]).unwrap();
        drop(a);
        let mut r = LineReader::new(b, 100, 16);
        assert_eq!(r.next_line().unwrap().unwrap(), vec![b'y'; 100]);
        let err = r.next_line().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn lines_of_every_size_survive_buffer_growth_and_refills() {
        let (a, b) = UnixStream::pair().unwrap();
        // Lengths around the first buffer size, the read chunk, and one
        // line far longer than both, interleaved with short ones.
        let lens = [
            0, 1, 4095, 4096, 4097, 10, 65535, 65536, 3, 300_000, 7, 8191, 0,
        ];
        let writer = std::thread::spawn(move || {
            let mut a = a;
            for (i, &n) in lens.iter().enumerate() {
                let mut line = vec![b'a' + i as u8; n];
                line.push(b'\n');
                a.write_all(&line).unwrap();
            }
        });
        let mut r = LineReader::new(b, 1 << 20, 16);
        for (i, &n) in lens.iter().enumerate() {
            assert_eq!(
                r.next_line().unwrap().unwrap(),
                vec![b'a' + i as u8; n],
                "line {i}"
            );
        }
        assert!(r.next_line().unwrap().is_none());
        writer.join().unwrap();
    }

    /// A file holding `text`, read from its start.
    fn holding(text: &str) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn content(f: &mut File) -> String {
        let mut s = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn close_all_closes_only_the_files_it_is_given() {
        // A gap in the numbers: the file kept between them must stay open
        // (a range from the lowest to the highest would close it too).
        let (a, mut kept, c) = (holding("a"), holding("kept"), holding("c"));
        close_all(vec![c, a]);
        assert_eq!(content(&mut kept), "kept");
        // Consecutive numbers (one close_range), with files on both sides.
        let mut before = holding("before");
        let batch: Vec<File> = (0..8).map(|i| holding(&i.to_string())).collect();
        let mut after = holding("after");
        close_all(batch);
        assert_eq!(content(&mut before), "before");
        assert_eq!(content(&mut after), "after");
        assert_eq!(content(&mut kept), "kept");
    }

    #[test]
    fn send_some_says_would_block_on_a_full_socket_and_keeps_the_descriptors_with_the_first_byte() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = holding("passed");
        let first = send_some(&a, b"{\"fd\":true}\n", &[f.as_raw_fd()]).unwrap();
        assert_eq!(first, 12);
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0usize;
        let full = loop {
            match send_some(&a, &chunk, &[]) {
                Ok(n) => sent += n,
                Err(e) => break e,
            }
            assert!(sent < 64 << 20, "the socket never filled");
        };
        assert_eq!(full.kind(), io::ErrorKind::WouldBlock);
        let mut r = LineReader::new(b, 1024, 4);
        assert_eq!(r.next_line().unwrap().unwrap(), b"{\"fd\":true}");
        let mut got = File::from(r.take_fd().unwrap());
        assert_eq!(content(&mut got), "passed");
    }
}

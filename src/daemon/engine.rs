//! Answers one query item on an open file: checks its type, consults the
//! cache, runs the computation and fills the cache.
//!
//! A file's content is read in slices of [`SLICE`] bytes: [`Engine::start`]
//! reads the first and [`Engine::resume`] each next one, so that the worker
//! pool can serve others between slices. [`Engine::execute`] does all the
//! slices at once.

use super::cancel::Cancel;
use super::counters::Counters;
use crate::cache::{FileKey, Known, ResultCache};
use crate::error::{Error, ErrorCode};
use crate::ops::Place;
use crate::ops::count::{DirCounts, LISTED_ON_WIRE, count_dir};
use crate::ops::pass::{Found, Pass, Want, Watch};
use crate::ops::source::{self, Kind};
use crate::ops::stat::{Meta, meta_of};
use crate::proto::{Query, QueryKind, ShaFields, StatFields, WcFields};
use serde::Serialize;
use std::fs::{File, Metadata};
use std::io::{Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;

/// Bytes of a file read in one turn on a worker: about 0.1 s of `wc` on two
/// cores or 0.2 s of SHA-256 on one, what a small query may wait for a
/// worker. Each slice restarts the reading threads; at this size that costs
/// a few percent of a cached file's speed on a busy machine.
pub const SLICE: u64 = 256 << 20;

/// The fields of one successful item, whichever the query.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Fields {
    Wc(WcFields),
    Sha256(ShaFields),
    Count(DirCounts),
    /// Boxed: a stat's strings make it several times larger than the others.
    Stat(Box<StatFields>),
    /// A byte range of a `wc`, to be joined with the file's other ranges.
    Range(crate::ops::ranges::RangeCount),
}

/// An open file and its metadata, taken with one `fstat` when it came in and
/// passed along to everything that decides by its type or size.
pub struct Opened {
    pub file: File,
    pub md: Metadata,
    /// Opened by the command for this item alone: at offset 0, shared with
    /// nobody (see [`crate::proto::ItemRequest::own`]).
    pub own: bool,
}

impl Opened {
    pub fn new(file: File) -> Result<Opened, Error> {
        let md = file.metadata()?;
        Ok(Opened {
            file,
            md,
            own: false,
        })
    }

    /// This file, `own` or not.
    pub fn own(self, own: bool) -> Opened {
        Opened { own, ..self }
    }

    /// A regular file of [`crate::ops::PIPE_MIN`] bytes or more, or anything
    /// else but a regular file (a directory, a stream): work for a job of its own.
    pub fn heavy(&self) -> bool {
        !self.md.is_file() || self.md.len() >= crate::ops::PIPE_MIN
    }
}

/// Runs queries against open files; shared by every connection.
pub struct Engine {
    cache: ResultCache,
    counters: Arc<Counters>,
}

/// What a read tells between its chunks: the bytes, to the counters, and
/// whether its query is still wanted.
struct Watched<'a> {
    counters: &'a Counters,
    cancel: Option<&'a Cancel>,
}

impl Watch for Watched<'_> {
    fn read(&self, bytes: u64) -> bool {
        self.counters.read(bytes);
        #[cfg(debug_assertions)]
        if let Some(pause) = test_read_delay() {
            std::thread::sleep(pause);
        }
        !self.cancel.is_some_and(Cancel::is_cancelled)
    }
}

/// A debug build reads `P2PD_TEST_READ_DELAY_MS`, if set, and pauses that
/// long after each chunk it reads, so that a test can make this node the
/// slow member of a query; a release build has no such knob.
#[cfg(debug_assertions)]
fn test_read_delay() -> Option<std::time::Duration> {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        std::env::var("P2PD_TEST_READ_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(std::time::Duration::from_millis)
    })
}

/// How far one item got: answered, or a file being read.
pub enum Step {
    Done(Result<Fields, Error>),
    /// More slices to read: hand it to [`Engine::resume`].
    More(Box<Work>),
}

/// An item whose file is being read, between two slices.
pub struct Work {
    file: File,
    md: Metadata,
    /// For a stat: the metadata it reports, taken before the read.
    meta: Option<Meta>,
    shape: Shape,
    reading: Progress,
    /// Stops the read between two chunks once set.
    cancel: Option<Cancel>,
}

/// How an item's content is being read.
// Unboxed: it lives in a boxed `Work` already.
#[allow(clippy::large_enum_variant)]
enum Progress {
    /// A sized file: through the cache, checked for changes.
    Sized(Reading),
    /// A stream (see [`source`]): to its end, once, never cached.
    Stream(Pass),
}

/// What content a query needs read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Lines,
    Wc,
    /// The counts and the longest line's width.
    WcWidth,
    Sha,
    WcSha,
}

/// What the answer of a query on a regular file looks like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Sha,
    Lines,
    /// `wc -c` alone.
    Bytes,
    Wc,
    /// The counts and `max_line_length` (`wc -L`).
    WcWidth,
    Stat,
}

impl Need {
    /// Whether the answer has a word count (which POSIXLY_CORRECT changes).
    fn counts_words(self) -> bool {
        matches!(self, Need::Wc | Need::WcWidth | Need::WcSha)
    }
}

impl Shape {
    fn need(self) -> Need {
        match self {
            Shape::Sha => Need::Sha,
            Shape::Lines | Shape::Bytes => Need::Lines,
            Shape::Wc => Need::Wc,
            Shape::WcWidth => Need::WcWidth,
            Shape::Stat => Need::WcSha,
        }
    }

    /// What a read of a stream computes.
    fn want(self) -> Want {
        match self {
            Shape::Sha => Want::Sha256,
            Shape::Lines => Want::Lines,
            Shape::Bytes => Want::Bytes,
            Shape::Wc => Want::Wc,
            Shape::WcWidth => Want::WcWidth,
            Shape::Stat => Want::WcSha256,
        }
    }

    /// The answer from what is known; `read` is how many bytes a read that
    /// just ended found (a stream's or an offset's length is not its size).
    fn fields(
        self,
        file: &File,
        md: &Metadata,
        meta: Option<&Meta>,
        known: Known,
        changed: bool,
        read: Option<u64>,
    ) -> Result<Fields, Error> {
        Ok(match self {
            Shape::Sha => {
                let d = known.sha256.ok_or_else(missing)?;
                Fields::Sha256(ShaFields {
                    sha256: d.hex(),
                    bytes: d.bytes,
                    changed,
                })
            }
            Shape::Lines => {
                let lines = known.lines.ok_or_else(missing)?;
                let bytes = match read {
                    Some(n) => n,
                    None if changed => file.metadata()?.len(),
                    None => md.len(),
                };
                Fields::Wc(WcFields {
                    lines: Some(lines),
                    bytes: Some(bytes),
                    changed,
                    ..Default::default()
                })
            }
            Shape::Bytes => Fields::Wc(WcFields {
                bytes: Some(read.ok_or_else(missing)?),
                changed,
                ..Default::default()
            }),
            Shape::Wc => Fields::Wc(WcFields {
                changed,
                ..WcFields::all(&known.wc.ok_or_else(missing)?)
            }),
            Shape::WcWidth => Fields::Wc(WcFields {
                changed,
                max_line_length: Some(known.max_line_length.ok_or_else(missing)?),
                ..WcFields::all(&known.wc.ok_or_else(missing)?)
            }),
            Shape::Stat => {
                let mut f = StatFields::header(meta.ok_or_else(missing)?, None);
                f.changed = changed;
                let c = known.wc.ok_or_else(missing)?;
                let d = known.sha256.ok_or_else(missing)?;
                f.lines = Some(c.lines);
                f.words = Some(c.words);
                f.bytes = Some(c.bytes);
                f.chars = Some(c.chars);
                f.sha256 = Some(d.hex());
                Fields::Stat(Box::new(f))
            }
        })
    }
}

impl Engine {
    pub fn new(cache_entries: usize, counters: Arc<Counters>) -> Engine {
        Engine {
            cache: ResultCache::new(cache_entries),
            counters,
        }
    }

    /// Answers `query` for one open file, all slices at once. A directory
    /// count walks with the daemon's own rights: it is asked only by members
    /// (below the exports) and by the daemon's own user and root.
    pub fn execute(&self, query: &Query, file: File) -> Result<Fields, Error> {
        let mut step = self.start(query, Opened::new(file)?, true, None);
        loop {
            match step {
                Step::Done(result) => return result,
                Step::More(work) => step = self.resume(work),
            }
        }
    }

    /// Starts answering `query` for one open file: answers it, or reads the
    /// first slice of its content. A directory count is done in one go.
    /// Without `streams`, only regular files are read (pseudo-files too):
    /// a pipe, device or socket is refused. Once `cancel` is set, a read
    /// stops within a chunk (see [`crate::ops::pass::CHUNK`]).
    pub fn start(
        &self,
        query: &Query,
        opened: Opened,
        streams: bool,
        cancel: Option<&Cancel>,
    ) -> Step {
        match self.begin(query, opened, streams, cancel) {
            Ok(step) => step,
            Err(e) => Step::Done(Err(e)),
        }
    }

    /// Reads the next slice of an item's content, or answers it.
    pub fn resume(&self, mut work: Box<Work>) -> Step {
        let watch = Watched {
            counters: &self.counters,
            cancel: work.cancel.as_ref(),
        };
        let reading = match &mut work.reading {
            Progress::Sized(r) => r
                .advance(self, &work.file, SLICE, &watch)
                .map(|done| done.map(|(known, changed)| (known, changed, r.read))),
            Progress::Stream(pass) => match pass.step_stream_watched(&work.file, SLICE, &watch) {
                Err(e) => Err(e.into()),
                Ok(false) => Ok(None),
                Ok(true) => {
                    let found = std::mem::replace(pass, Pass::new(Want::Bytes)).finish();
                    Ok(Some((known_of(found), false, found.bytes)))
                }
            },
        };
        match reading {
            Err(e) => Step::Done(Err(e)),
            Ok(None) => Step::More(work),
            Ok(Some((known, changed, read))) => Step::Done(work.shape.fields(
                &work.file,
                &work.md,
                work.meta.as_ref(),
                known,
                changed,
                read,
            )),
        }
    }

    fn begin(
        &self,
        query: &Query,
        opened: Opened,
        streams: bool,
        cancel: Option<&Cancel>,
    ) -> Result<Step, Error> {
        let Opened { file, md, own } = opened;
        let mut meta = None;
        let shape = match query.kind {
            QueryKind::Count => {
                if !md.is_dir() {
                    return Err(Error::new(ErrorCode::NotADirectory, "Not a directory"));
                }
                let counts = count_dir(OwnedFd::from(file), query.recursive, LISTED_ON_WIRE)?;
                return Ok(Step::Done(Ok(Fields::Count(counts))));
            }
            QueryKind::Stat => {
                let m = meta_of(file.as_fd())?;
                if !md.is_file() {
                    let header = StatFields::header(&m, None);
                    return Ok(Step::Done(Ok(Fields::Stat(Box::new(header)))));
                }
                meta = Some(m);
                Shape::Stat
            }
            QueryKind::Wc | QueryKind::Sha256 => {
                if md.is_dir() {
                    return Err(Error::new(ErrorCode::IsDirectory, "Is a directory"));
                }
                if !streams && !md.is_file() {
                    return Err(Error::new(
                        ErrorCode::InvalidRequest,
                        format!("not a regular file ({})", type_name(&md).replace('_', " ")),
                    ));
                }
                if query.kind == QueryKind::Sha256 {
                    Shape::Sha
                } else if query.bytes_only {
                    Shape::Bytes
                } else if query.max_line_length {
                    Shape::WcWidth
                } else if query.lines_only {
                    Shape::Lines
                } else {
                    Shape::Wc
                }
            }
        };
        let reading = match source::kind(&file, &md) {
            Kind::Stream => {
                Progress::Stream(Pass::new(shape.want()).posixly_correct(query.posixly_correct))
            }
            Kind::Sized if shape == Shape::Bytes => {
                // GNU wc -c: the size tells, even of a sparse terabyte.
                let bytes = source::bytes_from_size(&file, &md)?;
                return Ok(Step::Done(Ok(Fields::Wc(WcFields {
                    bytes: Some(bytes),
                    ..Default::default()
                }))));
            }
            Kind::Sized => {
                // A small file the command opened for this item is read at
                // explicit offsets from 0, its offset not asked: one system
                // call less per file, and a descriptor that was not at 0
                // after all is still read whole (what the cache may keep).
                // A larger one is read from its offset, found as for any.
                let positional = own && md.len() < crate::ops::PIPE_MIN;
                let from = if positional {
                    0
                } else {
                    (&file).stream_position()?
                };
                let need = shape.need();
                let posix = query.posixly_correct && need.counts_words();
                Progress::Sized(Reading::new(
                    &self.cache,
                    &md,
                    need,
                    Start { from, positional },
                    posix,
                ))
            }
        };
        Ok(self.resume(Box::new(Work {
            file,
            md,
            meta,
            shape,
            reading,
            cancel: cancel.cloned(),
        })))
    }
}

/// What the cache knows about a file, completed by reading it if needed,
/// slice by slice. A file that changes under us is read again from the
/// start (a few times at most), so a result belongs to one version of the
/// file whenever possible; only such a result is remembered.
struct Reading {
    need: Need,
    /// The version being read: what the file was when this attempt began.
    key: FileKey,
    known: Known,
    /// Where reading starts. The cache holds whole files: it is asked and
    /// filled only when this is 0 (standard input may come at an offset).
    from: u64,
    attempt: u32,
    /// The read of this attempt, once begun.
    pass: Option<Pass>,
    /// Words by the POSIXLY_CORRECT rule: the cache's counts (by the other
    /// rule) are neither used nor replaced.
    posix: bool,
    /// When this attempt began to read, by the clock file times come from.
    began: Option<Instant>,
    /// The bytes the finished read found, when it read.
    read: Option<u64>,
    /// The offset and size for the next slice, when known without asking:
    /// those of the metadata the attempt began with, for its first slice.
    place: Option<Place>,
    /// Read at explicit offsets (see [`Start`]).
    positional: bool,
}

/// Where a read of a sized file starts, and whether it goes by explicit
/// offsets (pread) rather than the descriptor's own: only for a file that
/// fits one slice, since a slice after the first asks the offset.
#[derive(Clone, Copy)]
struct Start {
    from: u64,
    positional: bool,
}

impl Reading {
    fn new(cache: &ResultCache, md: &Metadata, need: Need, start: Start, posix: bool) -> Reading {
        let Start { from, positional } = start;
        let key = FileKey::from_metadata(md);
        let mut known = if from == 0 { cache.get(&key) } else { None }.unwrap_or_default();
        if posix {
            known.wc = None;
        }
        Reading {
            need,
            key,
            known,
            posix,
            from,
            attempt: 0,
            pass: None,
            began: None,
            read: None,
            place: Some(place_of(md, from, positional)),
            positional,
        }
    }

    /// What this attempt must read, given what is known; `None` if nothing.
    fn want(&self) -> Option<Want> {
        let known = &self.known;
        let have_lines = known.lines.is_some() || known.wc.is_some();
        let missing_wc = match self.need {
            Need::Lines => !have_lines,
            Need::Wc | Need::WcSha => known.wc.is_none(),
            Need::WcWidth => known.wc.is_none() || known.max_line_length.is_none(),
            Need::Sha => false,
        };
        let missing_sha = matches!(self.need, Need::Sha | Need::WcSha) && known.sha256.is_none();
        match (missing_wc, missing_sha) {
            (false, false) => None,
            (true, true) => Some(Want::WcSha256),
            (true, false) if self.need == Need::Lines => Some(Want::Lines),
            (true, false) if self.need == Need::WcWidth => Some(Want::WcWidth),
            (true, false) => Some(Want::Wc),
            (false, true) => Some(Want::Sha256),
        }
    }

    /// Reads one slice of `budget` bytes; returns the content and whether
    /// the file kept changing, once known, and `None` while slices remain.
    fn advance(
        &mut self,
        engine: &Engine,
        file: &File,
        budget: u64,
        watch: &dyn Watch,
    ) -> Result<Option<(Known, bool)>, Error> {
        let cache = &engine.cache;
        if self.pass.is_none() {
            let want = self.want();
            if self.attempt == 0 && self.began.is_none() && self.from == 0 {
                engine.counters.cache(want.is_none());
            }
            let Some(want) = want else {
                let mut known = self.known;
                if known.lines.is_none() {
                    known.lines = known.wc.map(|c| c.lines);
                }
                return Ok(Some((known, false)));
            };
            self.began = Some(Instant::now_coarse());
            self.pass = Some(Pass::new(want).posixly_correct(self.posix));
        }
        let Some(pass) = self.pass.as_mut() else {
            return Err(missing());
        };
        let end = pass.step_watched(file, budget, self.place.take(), watch)?;
        let md = file.metadata()?;
        let now = FileKey::from_metadata(&md);
        if now != self.key && self.attempt < CHANGE_RETRIES {
            // Read the new version from the start, trusting nothing cached.
            self.attempt += 1;
            (&*file).seek(SeekFrom::Start(self.from))?;
            self.place = Some(place_of(&md, self.from, self.positional));
            self.key = now;
            self.known = Known::default();
            self.pass = None;
            return Ok(None);
        }
        if !end {
            return Ok(None);
        }
        let Some(pass) = self.pass.take() else {
            return Err(missing());
        };
        let found = pass.finish();
        self.read = found.bytes;
        let fresh = known_of(found);
        let combined = Known {
            lines: fresh.lines.or(self.known.lines),
            wc: fresh.wc.or(self.known.wc),
            sha256: fresh.sha256.or(self.known.sha256),
            max_line_length: fresh.max_line_length.or(self.known.max_line_length),
        };
        if now == self.key {
            if self.from == 0 && self.began.is_some_and(|t| t.settled(&self.key)) {
                let kept = if self.posix {
                    Known { wc: None, ..fresh }
                } else {
                    fresh
                };
                cache.merge(self.key, kept);
            }
            return Ok(Some((combined, false)));
        }
        Ok(Some((combined, true)))
    }
}

/// Where a read from offset `from` of a sized file whose metadata is `md`
/// starts; `positional`: by explicit offsets.
fn place_of(md: &Metadata, from: u64, positional: bool) -> Place {
    Place {
        at: from,
        size: md.len(),
        exact: source::on_block_device(md),
        positional,
    }
}

/// Times a file that changed while being read is read again.
const CHANGE_RETRIES: u32 = 2;

/// What a finished read tells the cache.
fn known_of(found: Found) -> Known {
    let Found {
        lines,
        wc,
        sha256,
        max_line_length,
        ..
    } = found;
    Known {
        lines,
        wc,
        sha256,
        max_line_length,
    }
}

/// A reading of `CLOCK_REALTIME_COARSE`, the clock the kernel stamps file
/// changes with (a finer stamp is never earlier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Instant(i64, i64);

impl Instant {
    fn now_coarse() -> Instant {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        Instant(ts.tv_sec, ts.tv_nsec)
    }

    /// True when a file whose version is `key` cannot change after this
    /// instant without its key changing: its mtime and ctime are before it.
    /// A file changed at this instant or later may change again within the
    /// same clock tick with the same times (git's "racily clean" entries),
    /// so its result is not remembered. Times with no nanoseconds may come
    /// from a filesystem that keeps whole seconds (or two, as FAT): the two
    /// seconds they may stand for must be over.
    fn settled(&self, key: &FileKey) -> bool {
        let coarse = key.mtime_nsec == 0 && key.ctime_nsec == 0;
        let slack = if coarse { 2 } else { 0 };
        let before = |sec: i64, nsec: i64| Instant(sec.saturating_add(slack), nsec) < *self;
        before(key.mtime_sec, key.mtime_nsec) && before(key.ctime_sec, key.ctime_nsec)
    }
}

fn missing() -> Error {
    Error::new(ErrorCode::Internal, "computation returned no result")
}

fn type_name(md: &Metadata) -> &'static str {
    let t = md.file_type();
    if t.is_file() {
        "file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "char_device"
    } else if t.is_block_device() {
        "block_device"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_at(sec: i64, nsec: i64) -> FileKey {
        FileKey {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_sec: sec,
            mtime_nsec: nsec,
            ctime_sec: sec,
            ctime_nsec: nsec,
        }
    }

    #[test]
    fn racily_clean_results_are_not_remembered() {
        let began = Instant(1000, 500);
        // Changed before the read began: a later change gets later times.
        assert!(began.settled(&key_at(1000, 499)));
        assert!(began.settled(&key_at(999, 999_999_999)));
        // Changed in the very tick the read began, or after: it may change
        // again with the same times.
        assert!(!began.settled(&key_at(1000, 500)));
        assert!(!began.settled(&key_at(1001, 0)));
        // Whole seconds may be a coarse filesystem's (FAT keeps two): the
        // stamp's whole span must be over before the read began.
        assert!(!began.settled(&key_at(1000, 0)));
        assert!(!began.settled(&key_at(999, 0)));
        assert!(began.settled(&key_at(998, 0)));
        // mtime set back by touch -d does not help: ctime is recent.
        let mut k = key_at(1000, 600);
        k.mtime_sec = 10;
        assert!(!began.settled(&k));
    }

    #[test]
    fn a_descriptor_said_to_be_own_is_read_whole_whatever_its_offset() {
        use std::io::Write;
        let engine = Engine::new(16, Arc::default());
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"one two three\n").unwrap();
        let path = f.path().to_path_buf();
        let query: Query = serde_json::from_str(r#"{"kind":"wc"}"#).unwrap();
        // A command that lies: the descriptor is at offset 4, not 0.
        let mut at = File::open(&path).unwrap();
        at.seek(SeekFrom::Start(4)).unwrap();
        // The file must be older than the read for its result to be kept.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let opened = Opened::new(at).unwrap().own(true);
        let lied = match engine.start(&query, opened, true, None) {
            Step::Done(r) => r.unwrap(),
            Step::More(_) => panic!("a small file is read in one step"),
        };
        // Read whole from 0, so what the cache keeps is the whole file's,
        // and an honest query after it gets that.
        let honest = engine.execute(&query, File::open(&path).unwrap()).unwrap();
        for got in [lied, honest] {
            match got {
                Fields::Wc(w) => assert_eq!((w.words, w.bytes), (Some(3), Some(14))),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_file_read_from_an_offset_is_not_answered_from_the_cache() {
        use std::io::Write;
        let engine = Engine::new(16, Arc::default());
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"one two three\n").unwrap();
        let path = f.path().to_path_buf();
        let query: Query = serde_json::from_str(r#"{"kind":"wc"}"#).unwrap();
        let whole = engine.execute(&query, File::open(&path).unwrap()).unwrap();
        let mut at = File::open(&path).unwrap();
        at.seek(SeekFrom::Start(4)).unwrap();
        let rest = engine.execute(&query, at).unwrap();
        match (whole, rest) {
            (Fields::Wc(w), Fields::Wc(r)) => {
                assert_eq!((w.words, w.bytes), (Some(3), Some(14)));
                assert_eq!((r.words, r.bytes), (Some(2), Some(10)));
            }
            other => panic!("{other:?}"),
        }
    }
}

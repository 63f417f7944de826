//! Answers one query item on an open file: checks its type, consults the
//! cache, runs the computation and fills the cache.
//!
//! A file's content is read in slices of [`SLICE`] bytes: [`Engine::start`]
//! reads the first and [`Engine::resume`] each next one, so that the worker
//! pool can serve others between slices. [`Engine::execute`] does all the
//! slices at once.

use crate::cache::{FileKey, Known, ResultCache};
use crate::error::{Error, ErrorCode};
use crate::ops::count::{Descend, DirCounts, count_dir};
use crate::ops::pass::{Found, Pass, Want};
use crate::proto::{Query, QueryKind, ShaFields, StatFields, WcFields};
use serde::Serialize;
use std::fs::{File, Metadata};
use std::io::{Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

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
    Stat(StatFields),
}

/// Runs queries against open files; shared by every connection.
pub struct Engine {
    cache: ResultCache,
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
    shape: Shape,
    reading: Reading,
}

/// What content a query needs read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Lines,
    Wc,
    Sha,
    WcSha,
}

/// What the answer of a query on a regular file looks like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Sha,
    Lines,
    Wc,
    Stat,
}

impl Shape {
    fn need(self) -> Need {
        match self {
            Shape::Sha => Need::Sha,
            Shape::Lines => Need::Lines,
            Shape::Wc => Need::Wc,
            Shape::Stat => Need::WcSha,
        }
    }

    fn fields(
        self,
        file: &File,
        md: &Metadata,
        known: Known,
        changed: bool,
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
                let bytes = if changed {
                    file.metadata()?.len()
                } else {
                    md.len()
                };
                Fields::Wc(WcFields {
                    lines: Some(lines),
                    bytes: Some(bytes),
                    changed,
                    ..Default::default()
                })
            }
            Shape::Wc => Fields::Wc(WcFields {
                changed,
                ..WcFields::all(&known.wc.ok_or_else(missing)?)
            }),
            Shape::Stat => {
                let mut f = stat_header(md);
                f.changed = changed;
                let c = known.wc.ok_or_else(missing)?;
                let d = known.sha256.ok_or_else(missing)?;
                f.lines = Some(c.lines);
                f.words = Some(c.words);
                f.bytes = Some(c.bytes);
                f.chars = Some(c.chars);
                f.sha256 = Some(d.hex());
                Fields::Stat(f)
            }
        })
    }
}

impl Engine {
    pub fn new(cache_entries: usize) -> Engine {
        Engine {
            cache: ResultCache::new(cache_entries),
        }
    }

    /// Answers `query` for one open file, all slices at once. `descend`
    /// limits a recursive count to the directories the asking user may enter.
    pub fn execute(
        &self,
        query: &Query,
        file: File,
        descend: &dyn Descend,
    ) -> Result<Fields, Error> {
        let mut step = self.start(query, file, descend);
        loop {
            match step {
                Step::Done(result) => return result,
                Step::More(work) => step = self.resume(work),
            }
        }
    }

    /// Starts answering `query` for one open file: answers it, or reads the
    /// first slice of its content. A directory count is done in one go.
    pub fn start(&self, query: &Query, file: File, descend: &dyn Descend) -> Step {
        match self.begin(query, file, descend) {
            Ok(step) => step,
            Err(e) => Step::Done(Err(e)),
        }
    }

    /// Reads the next slice of an item's content, or answers it.
    pub fn resume(&self, mut work: Box<Work>) -> Step {
        match work.reading.advance(&self.cache, &work.file, SLICE) {
            Err(e) => Step::Done(Err(e)),
            Ok(None) => Step::More(work),
            Ok(Some((known, changed))) => {
                Step::Done(work.shape.fields(&work.file, &work.md, known, changed))
            }
        }
    }

    fn begin(&self, query: &Query, file: File, descend: &dyn Descend) -> Result<Step, Error> {
        let md = file.metadata()?;
        let shape = match query.kind {
            QueryKind::Count => {
                if !md.is_dir() {
                    return Err(Error::new(ErrorCode::NotADirectory, "Not a directory"));
                }
                let counts = count_dir(OwnedFd::from(file), query.recursive, descend)?;
                return Ok(Step::Done(Ok(Fields::Count(counts))));
            }
            QueryKind::Stat if !md.is_file() => {
                return Ok(Step::Done(Ok(Fields::Stat(stat_header(&md)))));
            }
            QueryKind::Stat => Shape::Stat,
            QueryKind::Wc | QueryKind::Sha256 => {
                regular_file(&md)?;
                if query.kind == QueryKind::Sha256 {
                    Shape::Sha
                } else if query.lines_only {
                    Shape::Lines
                } else {
                    Shape::Wc
                }
            }
        };
        let reading = Reading::new(&self.cache, &md, shape.need());
        Ok(self.resume(Box::new(Work {
            file,
            md,
            shape,
            reading,
        })))
    }
}

/// The stat fields that need no reading.
fn stat_header(md: &Metadata) -> StatFields {
    StatFields {
        file_type: type_name(md).to_string(),
        size: md.size(),
        mode: format!("{:04o}", md.mode() & 0o7777),
        mtime: rfc3339_utc(md.mtime(), md.mtime_nsec()),
        lines: None,
        words: None,
        bytes: None,
        chars: None,
        sha256: None,
        changed: false,
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
    /// Where reading starts, asked only when the cache cannot answer.
    from: Option<u64>,
    attempt: u32,
    /// The read of this attempt, once begun.
    pass: Option<Pass>,
}

impl Reading {
    fn new(cache: &ResultCache, md: &Metadata, need: Need) -> Reading {
        let key = FileKey::from_metadata(md);
        Reading {
            need,
            key,
            known: cache.get(&key).unwrap_or_default(),
            from: None,
            attempt: 0,
            pass: None,
        }
    }

    /// What this attempt must read, given what is known; `None` if nothing.
    fn want(&self) -> Option<Want> {
        let known = &self.known;
        let have_lines = known.lines.is_some() || known.wc.is_some();
        let missing_wc = match self.need {
            Need::Lines => !have_lines,
            Need::Wc | Need::WcSha => known.wc.is_none(),
            Need::Sha => false,
        };
        let missing_sha = matches!(self.need, Need::Sha | Need::WcSha) && known.sha256.is_none();
        match (missing_wc, missing_sha) {
            (false, false) => None,
            (true, true) => Some(Want::WcSha256),
            (true, false) if self.need == Need::Lines => Some(Want::Lines),
            (true, false) => Some(Want::Wc),
            (false, true) => Some(Want::Sha256),
        }
    }

    /// Reads one slice of `budget` bytes; returns the content and whether
    /// the file kept changing, once known, and `None` while slices remain.
    fn advance(
        &mut self,
        cache: &ResultCache,
        file: &File,
        budget: u64,
    ) -> Result<Option<(Known, bool)>, Error> {
        if self.pass.is_none() {
            let Some(want) = self.want() else {
                let mut known = self.known;
                if known.lines.is_none() {
                    known.lines = known.wc.map(|c| c.lines);
                }
                return Ok(Some((known, false)));
            };
            if self.from.is_none() {
                self.from = Some((&*file).stream_position()?);
            }
            self.pass = Some(Pass::new(want));
        }
        let Some(pass) = self.pass.as_mut() else {
            return Err(missing());
        };
        let end = pass.step(file, budget)?;
        let now = FileKey::from_metadata(&file.metadata()?);
        if now != self.key && self.attempt < CHANGE_RETRIES {
            // Read the new version from the start, trusting nothing cached.
            self.attempt += 1;
            (&*file).seek(SeekFrom::Start(self.from.unwrap_or(0)))?;
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
        let Found { lines, wc, sha256 } = pass.finish();
        let fresh = Known { lines, wc, sha256 };
        let combined = Known {
            lines: fresh.lines.or(self.known.lines),
            wc: fresh.wc.or(self.known.wc),
            sha256: fresh.sha256.or(self.known.sha256),
        };
        if now == self.key {
            cache.merge(self.key, fresh);
            return Ok(Some((combined, false)));
        }
        Ok(Some((combined, true)))
    }
}

/// Times a file that changed while being read is read again.
const CHANGE_RETRIES: u32 = 2;

fn missing() -> Error {
    Error::new(ErrorCode::Internal, "computation returned no result")
}

fn regular_file(md: &Metadata) -> Result<(), Error> {
    if md.is_dir() {
        return Err(Error::new(ErrorCode::IsDirectory, "Is a directory"));
    }
    if !md.is_file() {
        return Err(Error::new(
            ErrorCode::InvalidRequest,
            format!("not a regular file ({})", type_name(md).replace('_', " ")),
        ));
    }
    Ok(())
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

/// Formats a Unix time as RFC 3339 in UTC, with nanoseconds when there are any.
pub fn rfc3339_utc(secs: i64, nsec: i64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

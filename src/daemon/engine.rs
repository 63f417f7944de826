//! Answers one query item on an open file: checks its type, consults the
//! cache, runs the computation and fills the cache.

use crate::cache::{FileKey, Known, ResultCache};
use crate::error::{Error, ErrorCode};
use crate::ops::count::{Descend, DirCounts, count_dir};
use crate::ops::{sha, stat, wc};
use crate::proto::{Query, QueryKind, ShaFields, StatFields, WcFields};
use serde::Serialize;
use std::fs::{File, Metadata};
use std::io::{Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

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

/// What content a query needs read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Lines,
    Wc,
    Sha,
    WcSha,
}

impl Engine {
    pub fn new(cache_entries: usize) -> Engine {
        Engine {
            cache: ResultCache::new(cache_entries),
        }
    }

    /// Answers `query` for one open file. `descend` limits a recursive count
    /// to the directories the asking user may enter.
    pub fn execute(
        &self,
        query: &Query,
        file: File,
        descend: &dyn Descend,
    ) -> Result<Fields, Error> {
        let md = file.metadata()?;
        match query.kind {
            QueryKind::Count => {
                if !md.is_dir() {
                    return Err(Error::new(ErrorCode::NotADirectory, "Not a directory"));
                }
                count_dir(OwnedFd::from(file), query.recursive, descend).map(Fields::Count)
            }
            QueryKind::Wc | QueryKind::Sha256 => {
                regular_file(&md)?;
                if query.kind == QueryKind::Sha256 {
                    let (known, changed) = self.content(&file, &md, Need::Sha)?;
                    let d = known.sha256.ok_or_else(missing)?;
                    return Ok(Fields::Sha256(ShaFields {
                        sha256: d.hex(),
                        bytes: d.bytes,
                        changed,
                    }));
                }
                if query.lines_only {
                    let (known, changed) = self.content(&file, &md, Need::Lines)?;
                    let lines = known.lines.ok_or_else(missing)?;
                    let bytes = if changed {
                        file.metadata()?.len()
                    } else {
                        md.len()
                    };
                    return Ok(Fields::Wc(WcFields {
                        lines: Some(lines),
                        bytes: Some(bytes),
                        changed,
                        ..Default::default()
                    }));
                }
                let (known, changed) = self.content(&file, &md, Need::Wc)?;
                Ok(Fields::Wc(WcFields {
                    changed,
                    ..WcFields::all(&known.wc.ok_or_else(missing)?)
                }))
            }
            QueryKind::Stat => {
                let mut f = StatFields {
                    file_type: type_name(&md).to_string(),
                    size: md.size(),
                    mode: format!("{:04o}", md.mode() & 0o7777),
                    mtime: rfc3339_utc(md.mtime(), md.mtime_nsec()),
                    lines: None,
                    words: None,
                    bytes: None,
                    chars: None,
                    sha256: None,
                    changed: false,
                };
                if md.is_file() {
                    let (known, changed) = self.content(&file, &md, Need::WcSha)?;
                    f.changed = changed;
                    let c = known.wc.ok_or_else(missing)?;
                    let d = known.sha256.ok_or_else(missing)?;
                    f.lines = Some(c.lines);
                    f.words = Some(c.words);
                    f.bytes = Some(c.bytes);
                    f.chars = Some(c.chars);
                    f.sha256 = Some(d.hex());
                }
                Ok(Fields::Stat(f))
            }
        }
    }

    /// What the cache knows, completed by reading the file if needed, and
    /// whether the file kept changing while it was read. A file that
    /// changes under us is read again from the start (a few times at most),
    /// so a result belongs to one version of the file whenever possible.
    fn content(&self, file: &File, md: &Metadata, need: Need) -> Result<(Known, bool), Error> {
        let mut key = FileKey::from_metadata(md);
        let mut known = self.cache.get(&key).unwrap_or_default();
        // Where reading starts, asked only when the cache cannot answer.
        let mut start = None;
        let mut attempt = 0;
        loop {
            let have_lines = known.lines.is_some() || known.wc.is_some();
            let missing_wc = match need {
                Need::Lines => !have_lines,
                Need::Wc | Need::WcSha => known.wc.is_none(),
                Need::Sha => false,
            };
            let missing_sha = matches!(need, Need::Sha | Need::WcSha) && known.sha256.is_none();
            if !missing_wc && !missing_sha {
                if known.lines.is_none() {
                    known.lines = known.wc.map(|c| c.lines);
                }
                return Ok((known, false));
            }
            let from = match start {
                Some(at) => at,
                None => *start.insert((&*file).stream_position()?),
            };
            let mut fresh = Known::default();
            match (missing_wc, missing_sha) {
                (true, true) => {
                    let (c, d) = stat::wc_and_sha256(file)?;
                    fresh.wc = Some(c);
                    fresh.sha256 = Some(d);
                }
                (true, false) if need == Need::Lines => {
                    fresh.lines = Some(wc::wc_file(file, true)?.lines);
                }
                (true, false) => fresh.wc = Some(wc::wc_file(file, false)?),
                (false, _) => fresh.sha256 = Some(sha::sha256_file(file)?),
            }
            if let Some(c) = fresh.wc {
                fresh.lines = Some(c.lines);
            }
            let combined = Known {
                lines: fresh.lines.or(known.lines),
                wc: fresh.wc.or(known.wc),
                sha256: fresh.sha256.or(known.sha256),
            };
            let after = FileKey::from_metadata(&file.metadata()?);
            if after == key {
                // Only a file that did not change while we read it is remembered.
                self.cache.merge(key, fresh);
                return Ok((combined, false));
            }
            attempt += 1;
            if attempt > CHANGE_RETRIES {
                return Ok((combined, true));
            }
            // Read the new version from the start, trusting nothing cached.
            (&*file).seek(SeekFrom::Start(from))?;
            key = after;
            known = Known::default();
        }
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

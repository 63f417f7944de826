//! A bounded result cache keyed by file identity and change times.
//!
//! A file version is identified by device, inode, size, mtime and ctime: a
//! write changes mtime and ctime, a rename or chmod changes ctime, a
//! replacement changes the inode. The engine re-checks the key after reading
//! and stores only results of files that did not change meanwhile, whose
//! size can be trusted (no pipe, device or /proc file), read from offset 0,
//! and whose mtime and ctime are before the read began by the coarse clock
//! the kernel stamps files with: a change in that very tick could be
//! followed by another with the same times (git's "racily clean" entries).
//!
//! Eviction is least-recently-used with O(1) get and merge: a hash map from
//! key to slot, and the slots linked in recency order by index.

use crate::ops::sha::Digest;
use crate::ops::wc::WcCounts;
use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

/// Identifies one version of one file: equal keys mean unchanged content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
    pub ctime_sec: i64,
    pub ctime_nsec: i64,
}

impl FileKey {
    pub fn from_metadata(md: &Metadata) -> FileKey {
        FileKey {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime_sec: md.mtime(),
            mtime_nsec: md.mtime_nsec(),
            ctime_sec: md.ctime(),
            ctime_nsec: md.ctime_nsec(),
        }
    }
}

/// What is known about one file version; fields fill in as queries ask.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub lines: Option<u64>,
    pub wc: Option<WcCounts>,
    pub sha256: Option<Digest>,
    /// The longest line's display width (`wc -L`).
    pub max_line_length: Option<u64>,
}

const NIL: usize = usize::MAX;

struct Slot {
    key: FileKey,
    known: Known,
    prev: usize,
    next: usize,
}

/// Slots in a vector, linked from most (`head`) to least (`tail`) recent.
struct Lru {
    map: HashMap<FileKey, usize>,
    slots: Vec<Slot>,
    head: usize,
    tail: usize,
    capacity: usize,
}

impl Lru {
    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slots[i].prev, self.slots[i].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next].prev = prev;
        }
    }

    fn push_front(&mut self, i: usize) {
        self.slots[i].prev = NIL;
        self.slots[i].next = self.head;
        if self.head != NIL {
            self.slots[self.head].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    fn touch(&mut self, i: usize) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }
}

/// Least-recently-used map from [`FileKey`] to [`Known`], safe to share between threads.
pub struct ResultCache {
    inner: Mutex<Lru>,
}

impl ResultCache {
    /// A cache that holds at most `capacity` file versions (0 disables it).
    pub fn new(capacity: usize) -> Self {
        ResultCache {
            inner: Mutex::new(Lru {
                map: HashMap::new(),
                slots: Vec::new(),
                head: NIL,
                tail: NIL,
                capacity,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // A panic while holding the lock cannot leave the links half-updated
        // in a way that matters more than losing the cache; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &FileKey) -> Option<Known> {
        let mut lru = self.lock();
        let i = *lru.map.get(key)?;
        lru.touch(i);
        Some(lru.slots[i].known)
    }

    /// Merges `known` into the entry for `key`, evicting the least recently used entry when full.
    pub fn merge(&self, key: FileKey, known: Known) {
        let mut lru = self.lock();
        if lru.capacity == 0 {
            return;
        }
        if let Some(&i) = lru.map.get(&key) {
            let k = &mut lru.slots[i].known;
            k.lines = known.lines.or(k.lines);
            k.wc = known.wc.or(k.wc);
            k.sha256 = known.sha256.or(k.sha256);
            k.max_line_length = known.max_line_length.or(k.max_line_length);
            lru.touch(i);
            return;
        }
        let i = if lru.slots.len() < lru.capacity {
            lru.slots.push(Slot {
                key,
                known,
                prev: NIL,
                next: NIL,
            });
            lru.slots.len() - 1
        } else {
            let i = lru.tail;
            lru.unlink(i);
            let old = lru.slots[i].key;
            lru.map.remove(&old);
            lru.slots[i].key = key;
            lru.slots[i].known = known;
            i
        };
        lru.map.insert(key, i);
        lru.push_front(i);
    }

    /// How many file versions are remembered.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> FileKey {
        FileKey {
            dev: 1,
            ino: n,
            size: 10,
            mtime_sec: 0,
            mtime_nsec: 0,
            ctime_sec: 0,
            ctime_nsec: 0,
        }
    }

    fn lines(n: u64) -> Known {
        Known {
            lines: Some(n),
            ..Default::default()
        }
    }

    #[test]
    fn evicts_least_recently_used() {
        let c = ResultCache::new(2);
        c.merge(key(1), lines(1));
        c.merge(key(2), lines(2));
        assert!(c.get(&key(1)).is_some()); // 1 is now the most recent
        c.merge(key(3), lines(3));
        assert!(c.get(&key(2)).is_none());
        assert_eq!(c.get(&key(1)).unwrap().lines, Some(1));
        assert_eq!(c.get(&key(3)).unwrap().lines, Some(3));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn merge_fills_in_and_keeps_fields() {
        let c = ResultCache::new(4);
        c.merge(key(1), lines(7));
        let d = Digest {
            sha256: [9; 32],
            bytes: 10,
        };
        c.merge(
            key(1),
            Known {
                sha256: Some(d),
                ..Default::default()
            },
        );
        let k = c.get(&key(1)).unwrap();
        assert_eq!(k.lines, Some(7));
        assert_eq!(k.sha256, Some(d));
    }

    #[test]
    fn a_changed_key_misses() {
        let c = ResultCache::new(4);
        c.merge(key(1), lines(1));
        let mut changed = key(1);
        changed.mtime_nsec = 1;
        assert!(c.get(&changed).is_none());
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let c = ResultCache::new(0);
        c.merge(key(1), lines(1));
        assert!(c.get(&key(1)).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn shared_between_threads() {
        let c = std::sync::Arc::new(ResultCache::new(64));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        c.merge(key(t * 1000 + i), lines(i));
                        let _ = c.get(&key(t * 1000 + i / 2));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(c.len(), 64);
    }
}

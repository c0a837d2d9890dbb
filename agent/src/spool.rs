//! A small bounded spool of undelivered reports: one gzip file per report in a directory,
//! named by the time it was spooled so that a listing is oldest first. When a bound (count
//! or bytes) is passed, the oldest reports go first: the newest say most about the host.
//!
//! Files are written under a temporary name and renamed, so a crash never leaves half a
//! report under a spool name. Only this agent's file names are touched.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;

const PREFIX: &str = "report-";
const SUFFIX: &str = ".json.gz";

/// Distinguishes reports spooled within the same microsecond.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A spooled report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The spool directory and its bounds.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    max_reports: usize,
    max_bytes: u64,
}

impl Spool {
    /// Opens (creating it, mode 0700) the spool directory.
    pub fn open(dir: &Path, max_reports: usize, max_bytes: u64) -> Result<Spool, Error> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| Error::Spool {
                path: dir.to_owned(),
                error: source,
            })?;
        Ok(Spool {
            dir: dir.to_owned(),
            max_reports: max_reports.max(1),
            max_bytes,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The spooled reports, oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>, Error> {
        let listing = fs::read_dir(&self.dir).map_err(|source| self.error(&self.dir, source))?;
        let mut entries: Vec<Entry> = listing
            .filter_map(|entry| entry.ok())
            .filter(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.starts_with(PREFIX) && name.ends_with(SUFFIX)
            })
            .filter_map(|entry| {
                let metadata = entry.metadata().ok()?;
                metadata.is_file().then(|| Entry {
                    path: entry.path(),
                    bytes: metadata.len(),
                })
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// Adds a report, then drops the oldest until the bounds hold; on a full disk the
    /// oldest are dropped to make room. Returns how many were dropped. A report larger than
    /// the byte bound alone is refused.
    pub fn push(&self, gzip: &[u8]) -> Result<usize, Error> {
        if gzip.len() as u64 > self.max_bytes {
            let source = std::io::Error::other("report larger than spool_max_bytes");
            return Err(self.error(&self.dir, source));
        }
        // A full disk is one more bound: the oldest reports make room for the newest, as
        // they do for `spool_max_reports` and `spool_max_bytes`.
        let mut dropped = 0;
        let path = loop {
            match self.write(gzip) {
                Ok(path) => break path,
                Err((path, source)) if is_disk_full(&source) => {
                    let entries = self.entries()?;
                    let Some(oldest) = entries.first() else {
                        return Err(self.error(&path, source));
                    };
                    self.remove(oldest)?;
                    dropped += 1;
                }
                Err((path, source)) => return Err(self.error(&path, source)),
            }
        };
        Ok(dropped + self.enforce_bounds(&path)?)
    }

    /// Writes a report under a temporary name and renames it; its spool name, or the name
    /// it was to have and why it could not be written (nothing is left behind).
    fn write(&self, gzip: &[u8]) -> Result<PathBuf, (PathBuf, std::io::Error)> {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default();
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        let name = format!("{PREFIX}{micros:020}-{sequence:06}{SUFFIX}");
        let path = self.dir.join(&name);
        let temporary = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut file| {
                file.write_all(gzip)?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temporary, &path));
        match written {
            Ok(()) => Ok(path),
            Err(source) => {
                let _ = fs::remove_file(&temporary);
                Err((path, source))
            }
        }
    }

    /// Removes a delivered (or refused) report.
    pub fn remove(&self, entry: &Entry) -> Result<(), Error> {
        match fs::remove_file(&entry.path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(self.error(&entry.path, source)),
        }
    }

    /// Reads a spooled report.
    pub fn read(&self, entry: &Entry) -> Result<Vec<u8>, Error> {
        fs::read(&entry.path).map_err(|source| self.error(&entry.path, source))
    }

    fn enforce_bounds(&self, newest: &Path) -> Result<usize, Error> {
        let entries = self.entries()?;
        let mut count = entries.len();
        let mut bytes: u64 = entries.iter().map(|entry| entry.bytes).sum();
        let mut dropped = 0;
        for entry in &entries {
            if count <= self.max_reports && bytes <= self.max_bytes {
                break;
            }
            if entry.path == newest {
                continue;
            }
            self.remove(entry)?;
            count -= 1;
            bytes = bytes.saturating_sub(entry.bytes);
            dropped += 1;
        }
        Ok(dropped)
    }

    fn error(&self, path: &Path, source: std::io::Error) -> Error {
        Error::Spool {
            path: path.to_owned(),
            error: source,
        }
    }
}

/// ENOSPC or EDQUOT: the file system (or the user's quota) has no room left.
fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_come_back_oldest_first_and_the_oldest_go_when_full() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(&dir.path().join("spool"), 3, 1_000).expect("open");
        for n in 0..5u8 {
            let dropped = spool.push(&[n; 10]).expect("push");
            assert_eq!(dropped, usize::from(n >= 3));
        }
        let kept: Vec<u8> = spool
            .entries()
            .expect("list")
            .iter()
            .map(|entry| spool.read(entry).expect("read")[0])
            .collect();
        assert_eq!(kept, vec![2, 3, 4]);
    }

    #[test]
    fn the_byte_bound_holds_and_oversized_reports_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(dir.path(), 100, 25).expect("open");
        spool.push(&[1; 10]).expect("push");
        spool.push(&[2; 10]).expect("push");
        assert_eq!(spool.push(&[3; 10]).expect("push"), 1);
        let total: u64 = spool.entries().expect("list").iter().map(|e| e.bytes).sum();
        assert!(total <= 25);
        assert!(spool.push(&[4; 26]).is_err());
    }

    #[test]
    fn foreign_files_are_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
        std::fs::write(dir.path().join(".report-1.json.gz.9.tmp"), "half").expect("write");
        let spool = Spool::open(dir.path(), 1, 100).expect("open");
        spool.push(b"a").expect("push");
        spool.push(b"b").expect("push");
        assert_eq!(spool.entries().expect("list").len(), 1);
        assert!(dir.path().join("notes.txt").exists());
    }
}

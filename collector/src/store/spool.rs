//! The disk spool: batches a writer could not write to ClickHouse wait here until they are.
//!
//! One file per spooled batch group, named `<sequence>.<table>.seg`, written to a temporary name,
//! synced and then renamed, so a file that exists is whole. Each file holds a magic header, a
//! CRC-32 and the length of its payload; a file that fails the check is set aside as `.bad`
//! (and counted), never replayed; so is a batch ClickHouse refuses for good (the writer sets it
//! aside, or saves it straight as `.bad`), so the files behind it are still written. `.bad` files
//! keep the same format, for an operator to look at; they do not count against the limit. The
//! spool holds at most `max_bytes`; past that, saving fails and the writer keeps the batch in
//! memory instead, which pushes back on the receivers. Files are replayed oldest first per table
//! and removed only after their write succeeded.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8; 6] = b"PLSP1\n";
const HEADER: usize = MAGIC.len() + 4 + 8;

/// Why the spool could not take or give back a batch.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpoolError {
    /// Saving would pass the size limit.
    #[error("the spool is full: {used} of {max} bytes used")]
    Full {
        /// Bytes in the spool.
        used: u64,
        /// The limit.
        max: u64,
    },
    /// A file could not be written or read.
    #[error("spool file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file failed its checksum; it was renamed to `.bad`.
    #[error("spool file {0} is damaged and was set aside")]
    Damaged(PathBuf),
}

/// A spooled file, oldest first by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SpoolFile {
    path: PathBuf,
    size: u64,
}

impl SpoolFile {
    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The spool directory.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    used: AtomicU64,
    next: AtomicU64,
    /// Serialises the size check and the write, so the limit holds with several writers.
    saving: Mutex<()>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, counting what it already holds.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (mut used, mut next) = (0, 0);
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // A save that never finished: it was not acknowledged as spooled.
                let _ = std::fs::remove_file(entry.path());
            } else if name.ends_with(".seg") || name.ends_with(".bad") {
                if name.ends_with(".seg") {
                    used += entry.metadata().map_err(io(&entry.path()))?.len();
                }
                // Set-aside files keep their numbers, so a new file never takes one's name.
                let sequence = name.split('.').next().and_then(|s| s.parse::<u64>().ok());
                next = next.max(sequence.map_or(0, |s| s + 1));
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            used: AtomicU64::new(used),
            next: AtomicU64::new(next),
            saving: Mutex::new(()),
        })
    }

    /// Bytes held.
    pub(crate) fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Saves one payload for `table`, synced to disk before this returns.
    pub(crate) fn save(&self, table: &str, payload: &[u8]) -> Result<(), SpoolError> {
        let _guard = self
            .saving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let size = (HEADER + payload.len()) as u64;
        let used = self.used.load(Ordering::Relaxed);
        if used + size > self.max_bytes {
            return Err(SpoolError::Full {
                used,
                max: self.max_bytes,
            });
        }
        self.write_file(table, "seg", payload)?;
        self.used.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    /// Saves one payload for `table` straight as a set-aside (`.bad`) file, outside the limit;
    /// returns its path.
    pub(crate) fn save_aside(&self, table: &str, payload: &[u8]) -> Result<PathBuf, SpoolError> {
        self.write_file(table, "bad", payload)
    }

    /// Writes `<sequence>.<table>.<extension>` whole (temporary name, sync, rename, sync the
    /// folder).
    fn write_file(
        &self,
        table: &str,
        extension: &str,
        payload: &[u8],
    ) -> Result<PathBuf, SpoolError> {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{sequence:020}.{table}.{extension}"));
        let tmp = path.with_extension("tmp");
        let mut bytes = Vec::with_capacity(HEADER + payload.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(payload);
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            file.write_all(&bytes).map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(path)
    }

    /// The oldest file spooled for `table`.
    pub(crate) fn oldest(&self, table: &str) -> Option<SpoolFile> {
        let suffix = format!(".{table}.seg");
        let entries = std::fs::read_dir(&self.dir).ok()?;
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix))
            .map(|e| SpoolFile {
                size: e.metadata().map_or(0, |m| m.len()),
                path: e.path(),
            })
            .min_by(|a, b| a.path.cmp(&b.path))
    }

    /// The payload of `file`, checked; a damaged file is renamed to `.bad` and reported.
    pub(crate) fn read(&self, file: &SpoolFile) -> Result<Vec<u8>, SpoolError> {
        let bytes = std::fs::read(&file.path).map_err(io(&file.path))?;
        let whole = bytes.len() >= HEADER
            && &bytes[..MAGIC.len()] == MAGIC
            && u64::from_le_bytes(bytes[MAGIC.len() + 4..HEADER].try_into().unwrap_or([0; 8]))
                == (bytes.len() - HEADER) as u64
            && u32::from_le_bytes(
                bytes[MAGIC.len()..MAGIC.len() + 4]
                    .try_into()
                    .unwrap_or([0; 4]),
            ) == crc32fast::hash(&bytes[HEADER..]);
        if whole {
            return Ok(bytes[HEADER..].to_vec());
        }
        self.set_aside(file);
        Err(SpoolError::Damaged(file.path.clone()))
    }

    /// Renames a file that cannot be replayed to `.bad`, out of the way.
    pub(crate) fn set_aside(&self, file: &SpoolFile) {
        if std::fs::rename(&file.path, file.path.with_extension("bad")).is_ok() {
            self.used
                .fetch_sub(file.size.min(self.used_bytes()), Ordering::Relaxed);
        }
    }

    /// Removes a file whose batch was written.
    pub(crate) fn remove(&self, file: &SpoolFile) {
        if std::fs::remove_file(&file.path).is_ok() {
            self.used
                .fetch_sub(file.size.min(self.used_bytes()), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_back_in_order_whole_and_within_the_limit() {
        let dir = tempfile::tempdir().expect("dir");
        let spool = Spool::open(dir.path(), 200).expect("open");
        spool.save("spans", b"first").expect("save");
        spool.save("metrics", b"other table").expect("save");
        spool.save("spans", b"second").expect("save");
        let full = spool.save("spans", &[0; 200]).expect_err("over the limit");
        assert!(matches!(full, SpoolError::Full { .. }), "{full}");

        // Reopened (as after a restart): same content, same order, same size.
        let used = spool.used_bytes();
        let spool = Spool::open(dir.path(), 200).expect("reopen");
        assert_eq!(spool.used_bytes(), used);
        let first = spool.oldest("spans").expect("file");
        assert_eq!(spool.read(&first).expect("whole"), b"first");
        spool.remove(&first);
        let second = spool.oldest("spans").expect("file");
        assert_eq!(spool.read(&second).expect("whole"), b"second");
        spool.remove(&second);
        assert_eq!(spool.oldest("spans"), None);
        assert!(spool.oldest("metrics").is_some());
    }

    #[test]
    fn a_damaged_file_is_set_aside() {
        let dir = tempfile::tempdir().expect("dir");
        let spool = Spool::open(dir.path(), 1000).expect("open");
        spool.save("spans", b"payload").expect("save");
        let file = spool.oldest("spans").expect("file");
        let mut bytes = std::fs::read(&file.path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file.path, bytes).expect("write");
        assert!(matches!(spool.read(&file), Err(SpoolError::Damaged(_))));
        assert_eq!(spool.oldest("spans"), None);
        assert!(file.path.with_extension("bad").exists());
    }
}

//! The journal: a write-ahead log of accepted requests, so that a crash (`kill -9`, a power cut)
//! loses nothing acknowledged before the last sync.
//!
//! Every accepted request is appended (its protobuf bytes, a kind, a length and a CRC-32 of the
//! generation's number and the bytes) before it is acknowledged, and the file is synced to disk
//! every `--journal-sync`. The journal is cut into generations, one segment file
//! `<generation>.wal` each, and a generation ends exactly when
//! the latency flusher takes the aggregates: appends hold a shared lock while they also aggregate
//! and queue their rows, the cut holds it exclusively, so the rows a flush takes are those of
//! exactly one generation, and that flush carries an id made from the generation.
//!
//! Each record's rows go to a writer queue with an acknowledgement (`ack::Ack`) naming the
//! record; once they are written to ClickHouse or the spool, the writer settles it and the
//! journal adds the record to the generation's `<generation>.rows` file. A generation's files are
//! removed once all its records' rows are safe and its flush is written or spooled; up to
//! [`SPARE_SEGMENTS`] removed segments are kept as `<generation>.spare` and written over by the
//! next generations, whose pages are then already in the page cache and whose blocks are already
//! allocated. Generation numbers never repeat (a run starts at the clock's milliseconds), so a
//! record left over from an earlier use of the file fails its CRC and ends the segment, as a torn
//! tail does. The journal knows nothing of ClickHouse: it appends, cuts, hears acknowledgements
//! (it implements `ack::RowAcks` and `ack::Cut`) and hands what a previous run left
//! ([`Leftover`], read with [`Leftover::records`]) to the start-up recovery (`recovery`), which
//! writes it.

use crate::ack::{Cut, CutId, RecordRef, RowAcks};
use crate::telemetry::Telemetry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

/// What a journal record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    /// An encoded `ExportTraceServiceRequest`.
    Spans = 1,
    /// An encoded `ExportMetricsServiceRequest`.
    Metrics = 2,
}

/// Why a request could not be appended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppendError {
    /// The journal holds its limit: the writers are behind.
    #[error("the journal is full ({used} of {max} bytes): ClickHouse is behind")]
    Full {
        /// Bytes in the journal.
        used: u64,
        /// The limit (`--journal-max-bytes`).
        max: u64,
    },
    /// The disk failed (full, or an error).
    #[error("the collector cannot write its journal: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes before each record's payload: kind, length, CRC-32.
const RECORD_HEADER: usize = 1 + 4 + 4;

/// Most removed segment files kept to be written over.
const SPARE_SEGMENTS: usize = 2;

/// A record's CRC-32: of its generation's number and its payload, so that a record of another
/// generation (what an earlier use of a recycled file left) never passes.
fn record_crc(generation: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&generation.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// What the journal knows of a generation that still has a file.
#[derive(Debug, Default)]
struct Generation {
    /// Its number of records, once it has ended.
    records: Option<u32>,
    /// Bytes in its file, once it has ended.
    bytes: u64,
    /// Records whose rows are written or spooled.
    rows_safe: u32,
    /// Its flush is written or spooled.
    flushed: bool,
}

/// The segment being appended to.
#[derive(Debug)]
struct Segment {
    generation: u64,
    file: File,
    /// Bytes of whole records in the file.
    len: u64,
    /// Records in the file.
    records: u32,
}

/// A leftover generation found at start-up, to be replayed.
#[derive(Debug)]
pub(crate) struct Leftover {
    /// Its number.
    pub(crate) generation: u64,
    /// Its segment file.
    pub(crate) path: PathBuf,
    /// Indexes of the records whose rows were written before the stop (only their histograms
    /// need writing).
    pub(crate) rows_written: std::collections::HashSet<u32>,
}

impl Leftover {
    /// Its whole records, up to the first incomplete or damaged one.
    pub(crate) fn records(&self) -> std::io::Result<Records> {
        read_records(&self.path, self.generation)
    }
}

/// The journal's own metrics.
#[derive(Debug, Default)]
pub(crate) struct JournalTelemetry {
    /// Syncs to disk.
    pub(crate) syncs: Counter,
    /// Bytes in the journal.
    pub(crate) bytes: Gauge,
    /// Requests read back at start-up and written again.
    pub(crate) requests_replayed: Counter,
}

impl JournalTelemetry {
    /// Creates the metrics, registered in `telemetry`.
    pub(crate) fn registered(telemetry: &mut Telemetry) -> Arc<Self> {
        let this = Self::default();
        let registry = telemetry.registry();
        registry.register(
            "journal_syncs",
            "Syncs of the journal to disk",
            this.syncs.clone(),
        );
        registry.register(
            "journal_bytes",
            "Bytes in the journal (requests not yet safe in ClickHouse or the spool)",
            this.bytes.clone(),
        );
        registry.register(
            "journal_requests_replayed",
            "Requests read back from the journal at start-up and written again",
            this.requests_replayed.clone(),
        );
        Arc::new(this)
    }
}

/// The journal directory and the generation being written.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    id: u64,
    /// Shared by appends (with their aggregation and queueing), exclusive for a cut.
    epoch: RwLock<()>,
    segment: Mutex<Segment>,
    generations: Mutex<BTreeMap<u64, Generation>>,
    /// Removed segment files kept to be written over, at most [`SPARE_SEGMENTS`].
    spares: Mutex<Vec<PathBuf>>,
    /// The last sync failed: appends are refused until one succeeds.
    failing: AtomicBool,
    /// Bytes in the files of this run's generations.
    bytes: AtomicU64,
    /// Most bytes the journal may hold.
    max_bytes: u64,
}

/// Proof that a record was appended; while it is held, the generation cannot end, so the caller
/// aggregates and queues the request's rows inside the same generation.
pub(crate) struct Appended<'a> {
    _epoch: RwLockReadGuard<'a, ()>,
    /// Where the record went.
    pub(crate) id: RecordRef,
}

fn segment_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:020}.wal"))
}

fn rows_file(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:020}.rows"))
}

fn spare_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:020}.spare"))
}

/// Starts the segment of `generation`, in `spare` (a removed segment's file, written over from
/// its start) when there is one, else in a new file.
fn create_segment(dir: &Path, generation: u64, spare: Option<PathBuf>) -> std::io::Result<Segment> {
    let path = segment_path(dir, generation);
    let reused = spare.and_then(|spare| {
        std::fs::rename(&spare, &path).ok()?;
        std::fs::OpenOptions::new().write(true).open(&path).ok()
    });
    let file = match reused {
        Some(file) => file,
        None => File::create(&path)?,
    };
    File::open(dir)?.sync_all()?;
    Ok(Segment {
        generation,
        file,
        len: 0,
        records: 0,
    })
}

/// Reads the journal's id (made on first use), which keeps flush ids apart between collectors.
fn journal_id(dir: &Path) -> std::io::Result<u64> {
    let path = dir.join("id");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(id) = u64::from_str_radix(text.trim(), 16)
    {
        return Ok(id);
    }
    let id = crate::clock::now_unix_ns() ^ (u64::from(std::process::id()) << 40);
    std::fs::write(&path, format!("{id:016x}\n"))?;
    Ok(id)
}

impl Journal {
    /// Opens the journal in `dir`, to hold at most `max_bytes`; returns it with the generations a
    /// previous run left, oldest first, which must be replayed before new requests are taken.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> std::io::Result<(Self, Vec<Leftover>)> {
        std::fs::create_dir_all(dir)?;
        let id = journal_id(dir)?;
        let mut leftovers = Vec::new();
        let mut spares = Vec::new();
        // The highest generation a spare's name says was used (0 when none).
        let mut last_spare = 0;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(generation) = name.strip_suffix(".spare") {
                last_spare = last_spare.max(generation.parse::<u64>().unwrap_or(0));
                spares.push(entry.path());
            } else if let Some(generation) = name
                .strip_suffix(".wal")
                .and_then(|n| n.parse::<u64>().ok())
            {
                leftovers.push(Leftover {
                    generation,
                    path: segment_path(dir, generation),
                    rows_written: read_rows_written(&rows_file(dir, generation)),
                });
            }
        }
        leftovers.sort_by_key(|l| l.generation);
        // Numbers never repeat: a run starts at the clock's milliseconds, which outrun its
        // generations (one per flush interval), or after what the last run left, segments and
        // spares alike (a run reopened within the millisecond its spare was numbered in).
        let next = leftovers
            .last()
            .map_or(0, |l| l.generation + 1)
            .max(last_spare.saturating_add(1))
            .max(crate::clock::now_unix_ns() / 1_000_000);
        for extra in spares.split_off(spares.len().min(SPARE_SEGMENTS)) {
            if let Err(e) = std::fs::remove_file(&extra) {
                tracing::warn!(error = %e, "could not remove a spare journal segment");
            }
        }
        let first = create_segment(dir, next, spares.pop())?;
        let journal = Self {
            dir: dir.to_owned(),
            id,
            epoch: RwLock::new(()),
            segment: Mutex::new(first),
            generations: Mutex::new(BTreeMap::from([(next, Generation::default())])),
            spares: Mutex::new(spares),
            failing: AtomicBool::new(false),
            bytes: AtomicU64::new(0),
            max_bytes,
        };
        Ok((journal, leftovers))
    }

    /// The name of the cut that ended `generation` (the flush holding its records carries it).
    pub(crate) fn cut_id(&self, generation: u64) -> CutId {
        CutId {
            origin: self.id,
            sequence: generation,
        }
    }

    /// Appends one request. The caller aggregates and queues its rows while holding the result.
    /// Refused when the journal holds its limit, and while the disk fails (since the last sync
    /// failed), so nothing is acknowledged that cannot be kept.
    pub(crate) fn append(
        &self,
        kind: RecordKind,
        payload: &[u8],
    ) -> Result<Appended<'_>, AppendError> {
        if self.failing.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the last journal sync failed").into());
        }
        let record = (RECORD_HEADER + payload.len()) as u64;
        let used = self.bytes.load(Ordering::Relaxed);
        if used + record > self.max_bytes {
            return Err(AppendError::Full {
                used,
                max: self.max_bytes,
            });
        }
        let epoch = self.epoch.read().unwrap_or_else(PoisonError::into_inner);
        let len = u32::try_from(payload.len())
            .map_err(|_| std::io::Error::other("request too large for the journal"))?;
        let mut header = [0u8; RECORD_HEADER];
        header[0] = kind as u8;
        header[1..5].copy_from_slice(&len.to_le_bytes());
        let mut segment = self.segment.lock().unwrap_or_else(PoisonError::into_inner);
        header[5..9].copy_from_slice(&record_crc(segment.generation, payload).to_le_bytes());
        let written = write_record(&mut segment.file, &header, payload);
        if let Err(e) = written {
            // Cut a partly written record off, so that the records after it can be read back,
            // and give the spares' room back (the disk may be full).
            let whole = segment.len;
            segment.file.set_len(whole)?;
            segment.file.seek(SeekFrom::Start(whole))?;
            self.remove_spares();
            return Err(e.into());
        }
        segment.len += record;
        let id = RecordRef {
            segment: segment.generation,
            index: segment.records,
        };
        segment.records += 1;
        self.bytes.fetch_add(record, Ordering::Relaxed);
        Ok(Appended { _epoch: epoch, id })
    }

    /// Writes what was appended to the file and syncs it: everything appended before this call
    /// survives a crash. While this fails, appends are refused.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        let synced = (|| {
            let file = self
                .segment
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .file
                .try_clone()?;
            file.sync_data()
        })();
        self.failing.store(synced.is_err(), Ordering::Relaxed);
        synced
    }

    /// Removes the files of generations that are safe elsewhere.
    pub(crate) fn collect(&self) {
        let mut generations = self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        generations.retain(|generation, g| {
            let safe = g.flushed && g.records.is_some_and(|n| g.rows_safe >= n);
            if safe {
                self.remove(*generation);
                self.bytes.fetch_sub(g.bytes, Ordering::Relaxed);
            }
            !safe
        });
    }

    /// Bytes in the files of this run's generations.
    pub(crate) fn used_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Removes the spare segment files.
    fn remove_spares(&self) {
        let spares =
            std::mem::take(&mut *self.spares.lock().unwrap_or_else(PoisonError::into_inner));
        for spare in spares {
            if let Err(e) = std::fs::remove_file(&spare) {
                tracing::warn!(error = %e, "could not remove a spare journal segment");
            }
        }
    }

    /// Removes a generation's segment and `.rows` files; the segment's file is kept as a spare
    /// while there are fewer than [`SPARE_SEGMENTS`].
    pub(crate) fn remove(&self, generation: u64) {
        let segment = segment_path(&self.dir, generation);
        let mut spares = self.spares.lock().unwrap_or_else(PoisonError::into_inner);
        let spare = spare_path(&self.dir, generation);
        let removed = if spares.len() < SPARE_SEGMENTS {
            std::fs::rename(&segment, &spare).map(|()| spares.push(spare))
        } else {
            std::fs::remove_file(&segment)
        };
        drop(spares);
        if let Err(e) = removed {
            tracing::warn!(generation, error = %e, "could not remove a journal segment");
        }
        let _ = std::fs::remove_file(rows_file(&self.dir, generation));
    }
}

impl RowAcks for Journal {
    /// Records that the rows of these records are written to ClickHouse or spooled, in their
    /// generations' `.rows` files at once (a crash right after loses nothing of it; a power cut
    /// before the next sync can, and then those rows are written again at replay).
    fn rows_safe(&self, records: &[RecordRef]) {
        let mut generations = self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut start = 0;
        while start < records.len() {
            let generation = records[start].segment;
            let end = records[start..]
                .iter()
                .position(|r| r.segment != generation)
                .map_or(records.len(), |n| start + n);
            let indexes: Vec<u8> = records[start..end]
                .iter()
                .flat_map(|r| r.index.to_le_bytes())
                .collect();
            let noted = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(rows_file(&self.dir, generation))
                .and_then(|mut f| f.write_all(&indexes));
            if let Err(e) = noted {
                tracing::warn!(error = %e, "could not note written rows in the journal; a replay would write them again");
            }
            if let Some(g) = generations.get_mut(&generation) {
                g.rows_safe += (end - start) as u32;
            }
            start = end;
        }
    }
}

impl Cut for Journal {
    fn cut(&self, take: &mut dyn FnMut()) -> std::io::Result<CutId> {
        let next_generation = {
            let segment = self.segment.lock().unwrap_or_else(PoisonError::into_inner);
            segment.generation + 1
        };
        let spare = self
            .spares
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let next = create_segment(&self.dir, next_generation, spare)?;
        let old = {
            let _exclusive = self.epoch.write().unwrap_or_else(PoisonError::into_inner);
            let old = std::mem::replace(
                &mut *self.segment.lock().unwrap_or_else(PoisonError::into_inner),
                next,
            );
            let mut generations = self
                .generations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let ended = generations.entry(old.generation).or_default();
            ended.records = Some(old.records);
            ended.bytes = old.len;
            generations.insert(next_generation, Generation::default());
            drop(generations);
            take();
            old
        };
        old.file.sync_data()?;
        Ok(self.cut_id(old.generation))
    }

    fn flush_safe(&self, id: CutId) {
        if let Some(ended) = self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&id.sequence)
        {
            ended.flushed = true;
        }
    }
}

/// The indexes listed in a `.rows` file (none if it is missing; a torn last entry is left out).
fn read_rows_written(path: &Path) -> std::collections::HashSet<u32> {
    std::fs::read(path)
        .unwrap_or_default()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A segment file read back: its bytes and where its whole records are in them.
#[derive(Debug)]
pub(crate) struct Records {
    bytes: Vec<u8>,
    records: Vec<(RecordKind, std::ops::Range<usize>)>,
}

impl Records {
    /// The records, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (RecordKind, &[u8])> {
        self.records
            .iter()
            .map(|(kind, range)| (*kind, &self.bytes[range.clone()]))
    }

    /// How many records there are.
    pub(crate) fn count(&self) -> usize {
        self.records.len()
    }
}

/// The records of `generation`'s segment file, in order, up to the first incomplete or damaged
/// one (the tail a crash cut off, or what an earlier use of the file left after it).
fn read_records(path: &Path, generation: u64) -> std::io::Result<Records> {
    use std::io::Read;
    // Read record by record: a reused file's old tail after the last record is never loaded.
    let mut file = std::io::BufReader::new(File::open(path)?);
    let mut left = file.get_ref().metadata()?.len();
    let mut bytes = Vec::new();
    let mut records = Vec::new();
    let mut header = [0u8; RECORD_HEADER];
    while left >= RECORD_HEADER as u64 && file.read_exact(&mut header).is_ok() {
        left -= RECORD_HEADER as u64;
        let kind = match header[0] {
            1 => RecordKind::Spans,
            2 => RecordKind::Metrics,
            _ => break,
        };
        let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
        let crc = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
        if u64::from(len) > left {
            break;
        }
        let start = bytes.len();
        bytes.resize(start + len as usize, 0);
        if file.read_exact(&mut bytes[start..]).is_err()
            || record_crc(generation, &bytes[start..]) != crc
        {
            bytes.truncate(start);
            break;
        }
        left -= u64::from(len);
        records.push((kind, start..bytes.len()));
    }
    Ok(Records { bytes, records })
}

/// Syncs the journal every `every` and removes what is safe elsewhere, until `stop` is
/// cancelled; then once more.
pub(crate) async fn run_syncer(
    journal: Arc<Journal>,
    every: std::time::Duration,
    telemetry: Arc<JournalTelemetry>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(every) => false,
            () = stop.cancelled() => true,
        };
        let j = Arc::clone(&journal);
        match tokio::task::spawn_blocking(move || {
            let synced = j.sync();
            j.collect();
            synced
        })
        .await
        {
            Ok(Ok(())) => {
                telemetry.syncs.inc();
                telemetry.bytes.set(journal.used_bytes() as i64);
            }
            Ok(Err(e)) => tracing::error!(error = %e, "journal sync failed"),
            Err(e) => tracing::error!(error = %e, "journal sync task failed"),
        }
        if stopping {
            return;
        }
    }
}

/// Writes one record, header and payload, in one system call where the file takes it whole
/// instead of one for each.
fn write_record(file: &mut File, header: &[u8], payload: &[u8]) -> std::io::Result<()> {
    let mut parts = [IoSlice::new(header), IoSlice::new(payload)];
    let mut left = &mut parts[..];
    while !left.is_empty() {
        match file.write_vectored(left) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut left, written),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_up_to_a_torn_tail() {
        let dir = tempfile::tempdir().expect("dir");
        let (journal, leftovers) = Journal::open(dir.path(), u64::MAX).expect("open");
        assert!(leftovers.is_empty());
        let first = appended(&journal, RecordKind::Spans, b"first");
        let second = appended(&journal, RecordKind::Metrics, b"second");
        assert_eq!((first.index, second.index), (0, 1));
        RowAcks::rows_safe(&journal, &[second]);
        journal.sync().expect("sync");
        journal.collect();
        let generation = first.segment;
        let path = segment_path(dir.path(), generation);
        // A crash in the middle of a record: the whole ones before it come back.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend_from_slice(&[1, 200, 0, 0, 0, 1, 2]);
        std::fs::write(&path, &bytes).expect("write");
        let records = read_records(&path, generation).expect("records");
        assert_eq!(
            records.iter().collect::<Vec<_>>(),
            vec![
                (RecordKind::Spans, &b"first"[..]),
                (RecordKind::Metrics, &b"second"[..])
            ]
        );
        drop(journal);
        let (reopened, leftovers) = Journal::open(dir.path(), u64::MAX).expect("reopen");
        assert_eq!(leftovers.len(), 1, "the segment written before the reopen");
        assert_eq!(leftovers[0].generation, generation);
        assert_eq!(
            leftovers[0].rows_written,
            [1].into(),
            "the second record's rows were written"
        );
        let next = appended(&reopened, RecordKind::Spans, b"next");
        assert!(next.segment > generation, "generation numbers never repeat");
    }

    #[test]
    fn a_generation_goes_once_its_rows_and_flush_are_safe() {
        let (dir, journal) = opened();
        let id = appended(&journal, RecordKind::Spans, b"spans");
        let mut taken = 0;
        let cut = journal.cut(&mut || taken += 1).expect("cut");
        assert_eq!((cut.sequence, taken), (id.segment, 1));
        journal.flush_safe(cut);
        journal.collect();
        assert!(
            segment_path(dir.path(), id.segment).exists(),
            "rows not yet written"
        );
        RowAcks::rows_safe(&journal, &[id]);
        journal.collect();
        assert!(!segment_path(dir.path(), id.segment).exists());
        assert!(!rows_file(dir.path(), id.segment).exists());
        assert!(
            segment_path(dir.path(), id.segment + 1).exists(),
            "the current generation"
        );
        assert_eq!(journal.used_bytes(), 0);
    }

    /// Appends `payload` (not holding the generation open after); returns where it went.
    fn appended(journal: &Journal, kind: RecordKind, payload: &[u8]) -> RecordRef {
        journal.append(kind, payload).expect("append").id
    }

    /// A new journal in a folder of its own, with no limit.
    fn opened() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().expect("dir");
        let (journal, _) = Journal::open(dir.path(), u64::MAX).expect("open");
        (dir, journal)
    }

    /// Ends the current generation and makes it safe at once (its flush and its rows).
    fn end_generation(journal: &Journal, appended: &[RecordRef]) {
        let cut = journal.cut(&mut || ()).expect("cut");
        journal.flush_safe(cut);
        RowAcks::rows_safe(journal, appended);
        journal.collect();
    }

    #[test]
    fn with_its_segments_removed_by_hand_a_journal_still_numbers_past_its_spares() {
        let (dir, journal) = opened();
        let old = appended(&journal, RecordKind::Spans, b"old");
        end_generation(&journal, &[old]);
        assert!(spare_path(dir.path(), old.segment).exists());
        drop(journal);
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "wal") {
                std::fs::remove_file(path).expect("remove");
            }
        }
        // Nothing is left over to number after: the spare is taken by a later generation all
        // the same, and its old record does not read back under the new number.
        let (journal, leftovers) = Journal::open(dir.path(), u64::MAX).expect("reopen");
        assert!(leftovers.is_empty());
        let new = appended(&journal, RecordKind::Spans, b"new");
        assert!(new.segment > old.segment, "{new:?} after {old:?}");
        journal.sync().expect("sync");
        drop(journal);
        let (_, leftovers) = Journal::open(dir.path(), u64::MAX).expect("reopen");
        let records = leftovers[0].records().expect("records");
        assert_eq!(
            records.iter().collect::<Vec<_>>(),
            vec![(RecordKind::Spans, &b"new"[..])]
        );
    }

    #[test]
    fn a_removed_segment_is_written_over_and_its_old_records_never_come_back() {
        let (dir, journal) = opened();
        let long = vec![7u8; 4096];
        let old: Vec<RecordRef> = (0..3)
            .map(|_| appended(&journal, RecordKind::Spans, &long))
            .collect();
        let old_generation = old[0].segment;
        end_generation(&journal, &old);
        assert!(
            spare_path(dir.path(), old_generation).exists(),
            "the removed segment is kept as a spare"
        );
        // The generation after next takes the spare: its file still holds the second and third
        // old records after the new one written over the first (the same length, so an old
        // record starts where the new one ends).
        let current = appended(&journal, RecordKind::Spans, b"x");
        end_generation(&journal, &[current]);
        let new = vec![8u8; 4096];
        let recycled = appended(&journal, RecordKind::Metrics, &new);
        assert!(!spare_path(dir.path(), old_generation).exists());
        let path = segment_path(dir.path(), recycled.segment);
        assert!(
            std::fs::metadata(&path).expect("segment").len() >= 3 * 4096,
            "the old file, written over from its start"
        );
        journal.sync().expect("sync");
        drop(journal);
        // A crash now: the restart reads the new record and nothing of the old ones.
        let (_, leftovers) = Journal::open(dir.path(), u64::MAX).expect("reopen");
        let leftover = leftovers
            .iter()
            .find(|l| l.generation == recycled.segment)
            .expect("the recycled segment is left over");
        let records = leftover.records().expect("records");
        assert_eq!(
            records.iter().collect::<Vec<_>>(),
            vec![(RecordKind::Metrics, &new[..])]
        );
        assert_eq!(records.bytes.len(), new.len(), "the old tail is not loaded");
        let spares = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".spare"))
            })
            .count();
        assert!(spares <= SPARE_SEGMENTS, "{spares} spares");
    }
}

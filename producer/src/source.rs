//! Where flow records come from: a dataset streamed from disk (sequential), a
//! dataset held in memory and shuffled per pass (random), or synthetic traffic
//! drawn from a model artifact's per-class statistics.
//!
//! Every record leaves here with a `flow_id`. Rows that have none in the source
//! (NSL-KDD, the MachineLearningCVE layout) get `<file name>#<line>`, with the
//! 1-based line of the row in its file, so a test or an analyst can map a
//! verdict back to the exact input row. Synthetic flows get `synthetic#<n>`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

use ids_models::datasets::{self, DatasetFormat, FlowReader};
use ids_schemas::FlowRecord;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::ProducerError;

/// How many rejected rows are logged individually (all are counted).
const LOGGED_ROW_ERRORS: u64 = 5;

pub(crate) enum Source {
    Stream(Box<StreamSource>),
    Memory(Box<MemorySource>),
    Synthetic(Box<SyntheticSource>),
}

impl Source {
    /// Writes the next record to send into `out` (a dataset streamed from
    /// disk reuses `out`'s buffers); `false` at the end (never, when looping
    /// with data).
    pub(crate) fn next_into(&mut self, out: &mut FlowRecord) -> Result<bool, ProducerError> {
        match self {
            Source::Stream(s) => s.next_into(out),
            Source::Memory(s) => Ok(s.next().map(|r| out.clone_from(r)).is_some()),
            Source::Synthetic(s) => {
                s.next_into(out);
                Ok(true)
            }
        }
    }

    /// Rows that could not be parsed so far.
    pub(crate) fn rejected(&self) -> u64 {
        match self {
            Source::Stream(s) => s.rejected,
            Source::Memory(s) => s.rejected,
            Source::Synthetic(_) => 0,
        }
    }

    /// Number of records in one pass, when known cheaply (for the progress bar).
    pub(crate) fn pass_len(&self) -> Option<u64> {
        match self {
            Source::Stream(s) => s.estimated_rows,
            Source::Memory(s) => Some(s.records.len() as u64),
            Source::Synthetic(_) => None,
        }
    }

    /// A human description for logs and the demo banner.
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Stream(s) => format!("dataset {} (sequential)", s.path.display()),
            Source::Memory(s) => format!(
                "dataset {} (random order, {} rows)",
                s.path.display(),
                s.records.len()
            ),
            Source::Synthetic(s) => format!(
                "SYNTHETIC traffic from model artifact {}",
                s.model_path.display()
            ),
        }
    }
}

/// Writes `<file name>#<line>` into `rec.flow_id` when it has none. `spare`
/// is a buffer to write it into (the previous record's id, so a stream of
/// rows reuses one allocation); `names` caches the file name of the reader's
/// current file, keyed by its index.
fn assign_row_id(
    rec: &mut FlowRecord,
    reader: &FlowReader,
    spare: Option<String>,
    names: &mut (usize, String),
) {
    if rec.flow_id.is_some() {
        return;
    }
    let files = &reader.report().files;
    let Some(file) = files.last() else {
        return;
    };
    if names.0 != files.len() {
        *names = (
            files.len(),
            file.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    // `rows_read` counts data rows of this file, including this one; CIC files
    // have a header line, NSL-KDD files do not.
    let header = u64::from(file.format != DatasetFormat::NslKdd);
    let line = file.rows_read + header;
    let mut id = spare.unwrap_or_default();
    id.clear();
    let _ = write!(id, "{}#{line}", names.1);
    rec.flow_id = Some(id);
}

fn log_rejected(rejected: u64, e: &datasets::RowError) {
    if rejected <= LOGGED_ROW_ERRORS {
        tracing::warn!(error = %e, "dataset row rejected");
    } else if rejected == LOGGED_ROW_ERRORS + 1 {
        tracing::warn!("more dataset rows rejected; the count is in the summary");
    }
}

/// Rough number of data rows: newline count of every input file. Used only for
/// the progress bar's length and ETA.
fn estimate_rows(path: &Path) -> Option<u64> {
    use std::io::Read;
    let files = datasets::input_files(path).ok()?;
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    for f in files {
        let mut file = std::fs::File::open(&f).ok()?;
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            total += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
    }
    Some(total)
}

pub(crate) struct StreamSource {
    path: PathBuf,
    reader: FlowReader,
    looping: bool,
    /// File name of the reader's current file, keyed by its index.
    file_name: (usize, String),
    sent_this_pass: u64,
    rejected: u64,
    estimated_rows: Option<u64>,
}

impl StreamSource {
    pub(crate) fn open(path: &Path, looping: bool) -> Result<Self, ProducerError> {
        let reader = datasets::open(path).map_err(|e| ProducerError::Dataset(e.to_string()))?;
        Ok(StreamSource {
            path: path.to_path_buf(),
            reader,
            looping,
            file_name: (0, String::new()),
            sent_this_pass: 0,
            rejected: 0,
            estimated_rows: estimate_rows(path),
        })
    }

    fn next_into(&mut self, out: &mut FlowRecord) -> Result<bool, ProducerError> {
        loop {
            let spare = out.flow_id.take();
            match self.reader.read_into(out) {
                Some(Ok(())) => {
                    assign_row_id(out, &self.reader, spare, &mut self.file_name);
                    self.sent_this_pass += 1;
                    return Ok(true);
                }
                Some(Err(e)) => {
                    self.rejected += 1;
                    log_rejected(self.rejected, &e);
                }
                None => {
                    if !self.looping || self.sent_this_pass == 0 {
                        return Ok(false);
                    }
                    self.reader = datasets::open(&self.path)
                        .map_err(|e| ProducerError::Dataset(e.to_string()))?;
                    self.file_name = (0, String::new());
                    self.sent_this_pass = 0;
                }
            }
        }
    }
}

pub(crate) struct MemorySource {
    path: PathBuf,
    records: Vec<FlowRecord>,
    order: Vec<u32>,
    pos: usize,
    rng: ChaCha8Rng,
    looping: bool,
    rejected: u64,
}

impl MemorySource {
    pub(crate) fn load(path: &Path, looping: bool, seed: u64) -> Result<Self, ProducerError> {
        let mut reader = datasets::open(path).map_err(|e| ProducerError::Dataset(e.to_string()))?;
        let mut records = Vec::new();
        let mut rejected = 0;
        let mut file_name = (0, String::new());
        while let Some(item) = reader.next() {
            match item {
                Ok(mut rec) => {
                    assign_row_id(&mut rec, &reader, None, &mut file_name);
                    records.push(rec);
                }
                Err(e) => {
                    rejected += 1;
                    log_rejected(rejected, &e);
                }
            }
        }
        if records.len() > u32::MAX as usize {
            return Err(ProducerError::Dataset(
                "random mode holds at most 2^32 rows in memory".into(),
            ));
        }
        let order: Vec<u32> = (0..records.len() as u32).collect();
        let mut s = MemorySource {
            path: path.to_path_buf(),
            records,
            order,
            pos: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            looping,
            rejected,
        };
        s.order.shuffle(&mut s.rng);
        Ok(s)
    }

    fn next(&mut self) -> Option<&FlowRecord> {
        if self.records.is_empty() {
            return None;
        }
        if self.pos == self.order.len() {
            if !self.looping {
                return None;
            }
            self.order.shuffle(&mut self.rng);
            self.pos = 0;
        }
        let i = self.order[self.pos] as usize;
        self.pos += 1;
        Some(&self.records[i])
    }
}

pub(crate) struct SyntheticSource {
    model_path: PathBuf,
    artifact: ids_models::artifact::ModelArtifact,
    rng: ChaCha8Rng,
    n: u64,
}

impl SyntheticSource {
    pub(crate) fn new(model_path: &Path, seed: u64) -> Result<Self, ProducerError> {
        let artifact = ids_models::artifact::ModelArtifact::load(model_path)
            .map_err(|e| ProducerError::Model(format!("{}: {e}", model_path.display())))?;
        Ok(SyntheticSource {
            model_path: model_path.to_path_buf(),
            artifact,
            rng: ChaCha8Rng::seed_from_u64(seed),
            n: 0,
        })
    }

    fn next_into(&mut self, out: &mut FlowRecord) {
        self.n += 1;
        let mut id = out.flow_id.take().unwrap_or_default();
        *out = ids_models::synth::synthesize(&self.artifact, &mut self.rng);
        id.clear();
        let _ = write!(id, "synthetic#{}", self.n);
        out.flow_id = Some(id);
    }
}

/// Records per hand-over from the reading thread.
const READ_AHEAD_BATCH: usize = 256;
/// Batches the reading thread may be ahead of the send loop.
const READ_AHEAD_DEPTH: usize = 4;

/// A [`Source`] read on its own thread, so that reading and parsing rows
/// overlap with encoding and sending them: on one thread, parsing (about
/// 2 µs per NSL-KDD row) capped the producer at ~0.7x a raw produce of
/// pre-encoded bytes. The thread stays at most `READ_AHEAD_DEPTH` batches
/// ahead, and stops when this is dropped or finished.
///
/// Batches travel back once sent, and the reading thread parses into the
/// records they hold: a record's strings are allocated once, not once per
/// row (allocation was a fifth of the reading thread's time).
pub(crate) struct ReadAhead {
    rx: Option<Receiver<Result<Vec<FlowRecord>, ProducerError>>>,
    /// Sent batches, back to the reading thread for reuse.
    recycle: SyncSender<Vec<FlowRecord>>,
    batch: Vec<FlowRecord>,
    pos: usize,
    reader: Option<std::thread::JoinHandle<Source>>,
}

impl ReadAhead {
    /// Starts reading at most `limit` records from `source`.
    pub(crate) fn spawn(mut source: Source, limit: u64) -> Result<ReadAhead, ProducerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(READ_AHEAD_DEPTH);
        // One more than can be in flight, so a hand-back never blocks.
        let (recycle, recycled) = std::sync::mpsc::sync_channel(READ_AHEAD_DEPTH + 2);
        let reader = std::thread::Builder::new()
            .name("ids-producer-read".into())
            .spawn(move || {
                let mut left = limit;
                while left > 0 {
                    let mut batch: Vec<FlowRecord> = recycled.try_recv().unwrap_or_default();
                    let mut n = 0;
                    let mut end = None;
                    while n < READ_AHEAD_BATCH && left > 0 {
                        if n == batch.len() {
                            batch.push(FlowRecord::default());
                        }
                        match source.next_into(&mut batch[n]) {
                            Ok(true) => {
                                n += 1;
                                left -= 1;
                            }
                            Ok(false) => {
                                end = Some(Ok(()));
                                break;
                            }
                            Err(e) => {
                                end = Some(Err(e));
                                break;
                            }
                        }
                    }
                    batch.truncate(n);
                    // A closed channel: the send loop stopped; so do we.
                    if (!batch.is_empty() && tx.send(Ok(batch)).is_err()) || end.is_some() {
                        if let Some(Err(e)) = end {
                            let _ = tx.send(Err(e));
                        }
                        break;
                    }
                }
                source
            })
            .map_err(|e| ProducerError::Task(format!("starting the reading thread: {e}")))?;
        Ok(ReadAhead {
            rx: Some(rx),
            recycle,
            batch: Vec::new(),
            pos: 0,
            reader: Some(reader),
        })
    }

    /// Next record; `None` once the source (or the limit) is exhausted.
    pub(crate) fn next(&mut self) -> Result<Option<&FlowRecord>, ProducerError> {
        while self.pos >= self.batch.len() {
            let Some(rx) = &self.rx else {
                return Ok(None);
            };
            match rx.recv() {
                Ok(Ok(batch)) => {
                    let sent = std::mem::replace(&mut self.batch, batch);
                    if sent.capacity() > 0 {
                        // Full or gone: the reading thread allocates anew.
                        let _ = self.recycle.try_send(sent);
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The reading thread is done and everything it read is taken.
                Err(_) => {
                    self.rx = None;
                    return Ok(None);
                }
            }
        }
        self.pos += 1;
        Ok(self.batch.get(self.pos - 1))
    }

    /// Stops the reading thread; the rows the source rejected.
    pub(crate) fn finish(&mut self) -> u64 {
        self.rx = None;
        self.reader
            .take()
            .and_then(|h| h.join().ok())
            .map_or(0, |s| s.rejected())
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn kdd_file(rows: usize) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .prefix("mini")
            .suffix(".txt")
            .tempfile()
            .unwrap();
        for i in 0..rows {
            writeln!(
                f,
                "0,tcp,http,SF,{},100,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,1,1,0.00,0.00,0.00,0.00,1.00,0.00,0.00,9,9,1.00,0.00,0.11,0.00,0.00,0.00,0.00,0.00,normal,21",
                1000 + i
            )
            .unwrap();
        }
        f
    }

    fn name(f: &tempfile::NamedTempFile) -> String {
        f.path().file_name().unwrap().to_string_lossy().into_owned()
    }

    /// `Source::next_into` into a fresh record.
    fn next_of(s: &mut Source) -> Option<FlowRecord> {
        let mut rec = FlowRecord::default();
        s.next_into(&mut rec).unwrap().then_some(rec)
    }

    #[test]
    fn read_ahead_yields_the_same_records_up_to_the_limit_and_counts_rejects() {
        let mut f = kdd_file(3000);
        writeln!(f, "not,a,row").unwrap();
        let n = name(&f);
        // Many hand-over batches, so records are parsed into recycled ones;
        // the bad row is the 3001st.
        let mut all = ReadAhead::spawn(
            Source::Stream(Box::new(StreamSource::open(f.path(), false).unwrap())),
            u64::MAX,
        )
        .unwrap();
        let mut seen = Vec::new();
        while let Some(r) = all.next().unwrap() {
            let bytes = r.nsl_kdd.as_ref().unwrap().src_bytes;
            seen.push((r.flow_id.clone().unwrap(), bytes));
        }
        assert_eq!(seen.len(), 3000);
        for (i, (id, bytes)) in seen.iter().enumerate() {
            assert_eq!(id, &format!("{n}#{}", i + 1));
            assert_eq!(*bytes, 1000 + i as i64);
        }
        assert_eq!(all.finish(), 1);

        let mut limited = ReadAhead::spawn(
            Source::Stream(Box::new(StreamSource::open(f.path(), true).unwrap())),
            300,
        )
        .unwrap();
        let mut count = 0;
        while limited.next().unwrap().is_some() {
            count += 1;
        }
        assert_eq!(count, 300);
    }

    #[test]
    fn read_ahead_stops_its_thread_when_dropped_mid_stream() {
        let f = kdd_file(10);
        // Looping with no limit: endless unless the reader stops on drop.
        let mut s = ReadAhead::spawn(
            Source::Stream(Box::new(StreamSource::open(f.path(), true).unwrap())),
            u64::MAX,
        )
        .unwrap();
        assert!(s.next().unwrap().is_some());
        assert_eq!(s.finish(), 0, "joined, nothing rejected");
    }

    #[test]
    fn sequential_rows_get_file_and_line_ids() {
        let f = kdd_file(5);
        let mut s = Source::Stream(Box::new(StreamSource::open(f.path(), false).unwrap()));
        let mut seen = Vec::new();
        while let Some(r) = next_of(&mut s) {
            let feats = r.nsl_kdd.as_ref().unwrap();
            seen.push((r.flow_id.clone().unwrap(), feats.src_bytes));
        }
        let n = name(&f);
        assert_eq!(seen.len(), 5);
        for (i, (id, bytes)) in seen.iter().enumerate() {
            assert_eq!(id, &format!("{n}#{}", i + 1));
            assert_eq!(*bytes, 1000 + i as i64);
        }
        assert_eq!(s.pass_len(), Some(5));
    }

    #[test]
    fn sequential_loop_starts_over_and_bad_rows_are_counted() {
        let mut f = kdd_file(2);
        writeln!(f, "not,a,valid,row").unwrap();
        let mut s = Source::Stream(Box::new(StreamSource::open(f.path(), true).unwrap()));
        let ids: Vec<String> = (0..5)
            .map(|_| next_of(&mut s).unwrap().flow_id.unwrap())
            .collect();
        let n = name(&f);
        assert_eq!(ids, [1, 2, 1, 2, 1].map(|l| format!("{n}#{l}")).to_vec());
        assert!(s.rejected() >= 2, "the bad row is rejected on every pass");
    }

    #[test]
    fn random_mode_is_a_seeded_permutation() {
        let f = kdd_file(50);
        let order = |seed| {
            let mut s =
                Source::Memory(Box::new(MemorySource::load(f.path(), false, seed).unwrap()));
            let mut ids = Vec::new();
            while let Some(r) = next_of(&mut s) {
                ids.push(r.flow_id.unwrap());
            }
            ids
        };
        let a = order(7);
        assert_eq!(a, order(7), "same seed, same order");
        assert_ne!(a, order(8), "another seed, another order");
        let mut sorted = a.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 50, "every row exactly once per pass");
    }
}

//! Dataset loaders: NSL-KDD and CIC-IDS2017 CSV files into [`FlowRecord`]s.
//!
//! The format of each file is detected from its content, not its name, because
//! users rename files: a headerless first row of 42/43 fields whose second field
//! is a protocol name is NSL-KDD; otherwise the first row is a CICFlowMeter
//! header and the columns present tell the layout apart (improved CIC-IDS2017
//! has `Attempted Category`/`id`, TrafficLabelling has `Flow ID`/`Source IP` in
//! front, MachineLearningCVE has neither).
//!
//! Columns are found by name through the alias lists of
//! [`ids_schemas::flow::CIC_FEATURES`], so the three CIC layouts load into the
//! same [`CicFeatures`]. The quirks of the public originals are absorbed here,
//! once, rather than in every consumer:
//! - column names are trimmed and compared case-insensitively (` Flow Duration`);
//! - duplicated columns (`Fwd Header Length` twice, or `Fwd Header Length.1`)
//!   are ignored after the first;
//! - `NaN`, `Infinity`, `inf` are parsed into the record as they are (the
//!   trainer skips and counts such rows, inference rejects them by name);
//! - integer columns written as `35.0` are accepted when integral;
//! - bytes that are not UTF-8 (the Windows-1252 en dash of `Web Attack – XSS`
//!   in the originals) are decoded lossily; label normalisation lives in
//!   [`crate::labels`].
//!
//! A row that cannot be parsed is never dropped silently: the iterator yields a
//! [`RowError`] with file and 1-based line, and the [`LoadReport`] counts it.
//! A file that lacks required columns is rejected up front with an error that
//! names every missing column.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use csv::ByteRecord;
use ids_schemas::flow::{
    CicFeatures, FlowRecord, NslKddFeatures, SourceDataset, CIC_FEATURES, NSL_KDD_FEATURE_COUNT,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How many row errors a [`LoadReport`] keeps verbatim (all are counted).
pub const MAX_KEPT_ERRORS: usize = 100;

/// The layout of one input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetFormat {
    /// Headerless NSL-KDD rows (41 features, label, optional difficulty).
    NslKdd,
    /// CIC-IDS2017 MachineLearningCVE layout (`Destination Port` first).
    CicOriginal,
    /// CIC-IDS2017 TrafficLabelling layout (Flow ID, IPs, ports, Timestamp in front).
    CicTrafficLabelling,
    /// Improved CIC-IDS2017 (Engelen et al.), `id, Flow ID, Src IP, ...`.
    CicImproved,
}

impl DatasetFormat {
    /// The `source` written into records of this format.
    pub fn source(self) -> SourceDataset {
        match self {
            DatasetFormat::NslKdd => SourceDataset::NslKdd,
            DatasetFormat::CicOriginal | DatasetFormat::CicTrafficLabelling => {
                SourceDataset::CicIds2017
            }
            DatasetFormat::CicImproved => SourceDataset::CicIds2017Improved,
        }
    }
}

/// A whole file (or folder) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Csv { path: PathBuf, message: String },
    #[error("{path}: file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: unrecognised format: {reason}")]
    UnknownFormat { path: PathBuf, reason: String },
    #[error("{path}: missing required columns: {}", missing.join(", "))]
    MissingColumns { path: PathBuf, missing: Vec<String> },
    #[error("{path}: no .csv or .txt files in folder")]
    EmptyFolder { path: PathBuf },
}

/// One row that could not be parsed.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct RowError {
    pub file: PathBuf,
    /// 1-based line number in the file.
    pub line: u64,
    pub message: String,
}

/// Per-file accounting.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub format: DatasetFormat,
    /// Data rows seen (parsed + rejected).
    pub rows_read: u64,
    pub rows_rejected: u64,
    /// Rows whose `Timestamp` could not be parsed (the record is kept, `event_time` left empty).
    pub unparsed_timestamps: u64,
}

/// Accounting for a load: what was read, what was rejected and why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub files: Vec<FileReport>,
    pub rows_read: u64,
    pub rows_rejected: u64,
    /// The first [`MAX_KEPT_ERRORS`] row errors.
    pub errors: Vec<RowError>,
}

impl LoadReport {
    fn record_error(&mut self, e: &RowError) {
        self.rows_rejected += 1;
        if let Some(f) = self.files.last_mut() {
            f.rows_rejected += 1;
        }
        if self.errors.len() < MAX_KEPT_ERRORS {
            self.errors.push(e.clone());
        }
    }
}

/// A fully loaded dataset.
#[derive(Debug, Clone)]
pub struct LoadedDataset {
    pub records: Vec<FlowRecord>,
    /// Raw label spellings with their counts.
    pub labels: BTreeMap<String, u64>,
    pub report: LoadReport,
}

/// Lists the files `path` stands for: the file itself, or every `.csv`/`.txt`
/// in a folder, sorted by name so loads are reproducible.
pub fn input_files(path: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let meta = std::fs::metadata(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let rd = std::fs::read_dir(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let p = entry.path();
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        if p.is_file() && matches!(ext.as_deref(), Some("csv") | Some("txt")) {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(DatasetError::EmptyFolder {
            path: path.to_path_buf(),
        });
    }
    files.sort();
    Ok(files)
}

/// sha256 (hex) of a file's bytes, streamed.
pub fn sha256_file(path: &Path) -> Result<String, DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Opens a file or folder as a streaming iterator of records.
///
/// Every file is checked up front (format, required columns), so a bad file in
/// a folder fails the open instead of failing halfway through a long load.
pub fn open(path: &Path) -> Result<FlowReader, DatasetError> {
    let files = input_files(path)?;
    for f in &files {
        FileReader::open(f)?;
    }
    Ok(FlowReader {
        pending: files.into_iter().rev().collect(),
        current: None,
        report: LoadReport::default(),
    })
}

/// Loads a file or folder into memory. Rejected rows are in the report.
pub fn load(path: &Path) -> Result<LoadedDataset, DatasetError> {
    let mut reader = open(path)?;
    let mut records = Vec::new();
    let mut labels = BTreeMap::new();
    let mut warned = 0usize;
    for item in reader.by_ref() {
        match item {
            Ok(rec) => {
                if let Some(l) = &rec.label {
                    *labels.entry(l.clone()).or_insert(0) += 1;
                }
                records.push(rec);
            }
            Err(e) => {
                if warned < 10 {
                    warned += 1;
                    tracing::warn!(error = %e, "row rejected");
                }
            }
        }
    }
    Ok(LoadedDataset {
        records,
        labels,
        report: reader.report,
    })
}

/// Streaming reader over one or more files. Yields `Err(RowError)` for rows
/// that cannot be parsed (and counts them in [`FlowReader::report`]); an I/O
/// error while opening a later file is reported as a row error on line 0.
pub struct FlowReader {
    pending: Vec<PathBuf>,
    current: Option<FileReader>,
    report: LoadReport,
}

impl FlowReader {
    /// Accounting so far.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// Consumes the reader, returning its accounting.
    pub fn into_report(self) -> LoadReport {
        self.report
    }
}

impl FlowReader {
    /// Reads the next row into `out`, reusing its string buffers: the
    /// allocation-free form of [`Iterator::next`], for callers that stream
    /// millions of rows (the producer). On `Some(Ok(()))` every field of
    /// `out` is the row's; after a row error `out` holds a partial row and
    /// must not be used. `None` at the end of the last file.
    pub fn read_into(&mut self, out: &mut FlowRecord) -> Option<Result<(), RowError>> {
        loop {
            if self.current.is_none() {
                let path = self.pending.pop()?;
                match FileReader::open(&path) {
                    Ok(r) => {
                        self.report.files.push(FileReport {
                            path: path.clone(),
                            format: r.format,
                            rows_read: 0,
                            rows_rejected: 0,
                            unparsed_timestamps: 0,
                        });
                        self.current = Some(r);
                    }
                    Err(e) => {
                        let err = RowError {
                            file: path,
                            line: 0,
                            message: e.to_string(),
                        };
                        self.report.record_error(&err);
                        return Some(Err(err));
                    }
                }
            }
            let reader = self.current.as_mut()?;
            match reader.next_row_into(out) {
                None => {
                    self.current = None;
                    continue;
                }
                Some(res) => {
                    self.report.rows_read += 1;
                    if let Some(f) = self.report.files.last_mut() {
                        f.rows_read += 1;
                        f.unparsed_timestamps = reader.unparsed_timestamps;
                    }
                    if let Err(e) = &res {
                        self.report.record_error(e);
                    }
                    return Some(res);
                }
            }
        }
    }
}

impl Iterator for FlowReader {
    type Item = Result<FlowRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut rec = FlowRecord::default();
        self.read_into(&mut rec).map(|res| res.map(|()| rec))
    }
}

/// Column positions of a CIC file.
#[derive(Debug, Clone)]
struct CicColumns {
    features: [usize; CIC_FEATURES.len()],
    label: usize,
    flow_id: Option<usize>,
    src_ip: Option<usize>,
    src_port: Option<usize>,
    dst_ip: Option<usize>,
    protocol: Option<usize>,
    timestamp: Option<usize>,
    width: usize,
}

fn norm_col(name: &str) -> String {
    name.trim()
        .trim_start_matches('\u{feff}')
        .trim()
        .to_ascii_lowercase()
}

impl CicColumns {
    fn resolve(path: &Path, header: &[String]) -> Result<Self, DatasetError> {
        // First occurrence wins: later duplicates (and pandas' `.1` copies,
        // which do not match any alias) are ignored.
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for (i, h) in header.iter().enumerate() {
            index.entry(norm_col(h)).or_insert(i);
        }
        let find = |aliases: &[&str]| {
            aliases
                .iter()
                .find_map(|a| index.get(&a.to_ascii_lowercase()).copied())
        };
        let mut missing = Vec::new();
        let mut features = [0usize; CIC_FEATURES.len()];
        for (slot, spec) in features.iter_mut().zip(CIC_FEATURES) {
            match find(spec.aliases) {
                Some(i) => *slot = i,
                None => missing.push(spec.aliases[0].to_string()),
            }
        }
        let label = find(&["Label"]);
        if label.is_none() {
            missing.push("Label".to_string());
        }
        if !missing.is_empty() {
            return Err(DatasetError::MissingColumns {
                path: path.to_path_buf(),
                missing,
            });
        }
        Ok(CicColumns {
            features,
            label: label.unwrap_or_default(),
            flow_id: find(&["Flow ID"]),
            src_ip: find(&["Source IP", "Src IP"]),
            src_port: find(&["Source Port", "Src Port"]),
            dst_ip: find(&["Destination IP", "Dst IP"]),
            protocol: find(&["Protocol"]),
            timestamp: find(&["Timestamp"]),
            width: header.len(),
        })
    }
}

enum Layout {
    NslKdd,
    Cic(Box<CicColumns>),
}

/// Reader for one file.
struct FileReader {
    path: PathBuf,
    format: DatasetFormat,
    layout: Layout,
    csv: csv::Reader<BufReader<File>>,
    row: ByteRecord,
    /// A first row that is data (NSL-KDD has no header) and still has to be yielded.
    first_data_row: Option<ByteRecord>,
    unparsed_timestamps: u64,
}

fn field_str(rec: &ByteRecord, i: usize) -> std::borrow::Cow<'_, str> {
    let bytes = rec.get(i).unwrap_or_default();
    // The plain check is several times faster than the lossy decoder's
    // chunk iterator, and every field of a well-formed file passes it.
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Sets `dst` to `s` (trimmed), reusing `dst`'s buffer.
fn set_string(dst: &mut String, s: &str) {
    dst.clear();
    dst.push_str(s.trim());
}

/// Sets `dst` to `s` (trimmed) or to `None` when that is empty, reusing the
/// buffer `dst` already holds.
fn set_opt_string(dst: &mut Option<String>, s: &str) {
    let s = s.trim();
    if s.is_empty() {
        *dst = None;
    } else {
        set_string(dst.get_or_insert_with(String::new), s);
    }
}

impl FileReader {
    fn open(path: &Path) -> Result<Self, DatasetError> {
        let file = File::open(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(BufReader::with_capacity(1 << 16, file));
        let mut first = ByteRecord::new();
        let got = csv
            .read_byte_record(&mut first)
            .map_err(|e| DatasetError::Csv {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if !got {
            return Err(DatasetError::Empty {
                path: path.to_path_buf(),
            });
        }
        let fields: Vec<String> = first
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        let is_protocol = |s: &str| {
            let s = s.trim().to_ascii_lowercase();
            !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic())
        };
        if (fields.len() == NSL_KDD_FEATURE_COUNT + 1 || fields.len() == NSL_KDD_FEATURE_COUNT + 2)
            && fields[0].trim().parse::<f64>().is_ok()
            && is_protocol(&fields[1])
        {
            return Ok(FileReader {
                path: path.to_path_buf(),
                format: DatasetFormat::NslKdd,
                layout: Layout::NslKdd,
                csv,
                row: ByteRecord::new(),
                first_data_row: Some(first),
                unparsed_timestamps: 0,
            });
        }
        let names: Vec<String> = fields.iter().map(|f| norm_col(f)).collect();
        let has = |n: &str| names.iter().any(|x| x == n);
        let format = if has("attempted category") || (has("id") && has("src ip")) {
            DatasetFormat::CicImproved
        } else if has("flow id") || has("source ip") || has("src ip") {
            DatasetFormat::CicTrafficLabelling
        } else if has("destination port") || has("dst port") || has("label") {
            DatasetFormat::CicOriginal
        } else {
            return Err(DatasetError::UnknownFormat {
                path: path.to_path_buf(),
                reason: format!(
                    "first row has {} fields and is neither an NSL-KDD row nor a CICFlowMeter header",
                    fields.len()
                ),
            });
        };
        let cols = CicColumns::resolve(path, &fields)?;
        Ok(FileReader {
            path: path.to_path_buf(),
            format,
            layout: Layout::Cic(Box::new(cols)),
            csv,
            row: ByteRecord::new(),
            first_data_row: None,
            unparsed_timestamps: 0,
        })
    }

    fn next_row_into(&mut self, out: &mut FlowRecord) -> Option<Result<(), RowError>> {
        let rec = match self.first_data_row.take() {
            Some(r) => r,
            None => match self.csv.read_byte_record(&mut self.row) {
                Ok(true) => std::mem::take(&mut self.row),
                Ok(false) => return None,
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    return Some(Err(RowError {
                        file: self.path.clone(),
                        line,
                        message: format!("csv: {e}"),
                    }));
                }
            },
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let res = match &self.layout {
            Layout::NslKdd => parse_nsl_kdd(&rec, out),
            Layout::Cic(cols) => parse_cic(
                &rec,
                out,
                cols,
                self.format.source(),
                &mut self.unparsed_timestamps,
            ),
        };
        // Give the buffer back so the next read reuses its allocation.
        self.row = rec;
        Some(res.map_err(|message| RowError {
            file: self.path.clone(),
            line,
            message,
        }))
    }
}

/// Parses one field into a typed value; the error names the problem, the
/// caller adds the column name.
pub(crate) trait ParseField: Sized {
    fn parse_field(s: &str) -> Result<Self, String>;

    /// Parses into `self`; strings override it to reuse their buffer.
    fn parse_into(&mut self, s: &str) -> Result<(), String> {
        *self = Self::parse_field(s)?;
        Ok(())
    }
}

fn parse_integral(s: &str) -> Result<i64, String> {
    if let Ok(v) = s.parse::<i64>() {
        return Ok(v);
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        Ok(f) if !f.is_finite() => Err(format!("non-finite value {s:?} in an integer column")),
        _ => Err(format!("invalid integer {s:?}")),
    }
}

impl ParseField for i64 {
    fn parse_field(s: &str) -> Result<Self, String> {
        parse_integral(s.trim())
    }
}
impl ParseField for i32 {
    fn parse_field(s: &str) -> Result<Self, String> {
        let v = parse_integral(s.trim())?;
        i32::try_from(v).map_err(|_| format!("integer {v} out of range"))
    }
}
impl ParseField for f64 {
    fn parse_field(s: &str) -> Result<Self, String> {
        let t = s.trim();
        // Rust accepts `NaN`, `inf`, `Infinity` (any case) already; the
        // originals also contain `+Infinity` on some exports.
        t.trim_start_matches('+')
            .parse::<f64>()
            .or_else(|_| t.parse::<f64>())
            .map_err(|_| format!("invalid number {t:?}"))
    }
}
impl ParseField for bool {
    fn parse_field(s: &str) -> Result<Self, String> {
        match parse_integral(s.trim())? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(format!("invalid flag {v} (expected 0 or 1)")),
        }
    }
}
impl ParseField for String {
    fn parse_field(s: &str) -> Result<Self, String> {
        Ok(s.trim().to_string())
    }

    fn parse_into(&mut self, s: &str) -> Result<(), String> {
        set_string(self, s);
        Ok(())
    }
}

/// Converts a model-space `f64` back into a typed field (used by synthesis).
pub(crate) trait FromF64 {
    fn from_f64(v: f64) -> Self;
}
impl FromF64 for i64 {
    fn from_f64(v: f64) -> Self {
        v.round() as i64
    }
}
impl FromF64 for i32 {
    fn from_f64(v: f64) -> Self {
        v.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32
    }
}
impl FromF64 for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}
impl FromF64 for bool {
    fn from_f64(v: f64) -> Self {
        v >= 0.5
    }
}
impl FromF64 for String {
    fn from_f64(_: f64) -> Self {
        String::new()
    }
}

/// Declares the field list of a feature struct once and derives the CSV
/// parser and the numeric builder from it, so the two cannot disagree.
macro_rules! field_list {
    ($names:ident, $parse:ident, $build:ident, $ty:ty, [$($field:ident),+ $(,)?]) => {
        /// Field names in the order the macro handles them (checked against the
        /// schema's feature table by a test).
        #[allow(dead_code)]
        pub(crate) const $names: &[&str] = &[$(stringify!($field)),+];

        /// Parses every field into `out` (reusing its string buffers) from
        /// `get(i)` for the i-th field of the list. On error `out` is partial.
        pub(crate) fn $parse<'a>(
            out: &mut $ty,
            get: impl Fn(usize) -> (&'a str, std::borrow::Cow<'a, str>),
        ) -> Result<(), String> {
            let mut i = 0usize;
            $(
                {
                    let (col, raw) = get(i);
                    ParseField::parse_into(&mut out.$field, &raw)
                        .map_err(|e| format!("column {:?}: {}", col, e))?;
                    i += 1;
                }
            )+
            let _ = i;
            Ok(())
        }

        /// Builds the struct from numeric values in feature-table order
        /// (categorical fields are left empty for the caller to fill).
        pub(crate) fn $build(vals: &[f64]) -> $ty {
            let mut out = <$ty>::default();
            let mut i = 0usize;
            $(
                out.$field = FromF64::from_f64(vals[i]);
                i += 1;
            )+
            let _ = i;
            out
        }
    };
}

field_list!(
    NSL_FIELDS,
    parse_nsl_fields,
    nsl_from_values,
    NslKddFeatures,
    [
        duration,
        protocol_type,
        service,
        flag,
        src_bytes,
        dst_bytes,
        land,
        wrong_fragment,
        urgent,
        hot,
        num_failed_logins,
        logged_in,
        num_compromised,
        root_shell,
        su_attempted,
        num_root,
        num_file_creations,
        num_shells,
        num_access_files,
        num_outbound_cmds,
        is_host_login,
        is_guest_login,
        count,
        srv_count,
        serror_rate,
        srv_serror_rate,
        rerror_rate,
        srv_rerror_rate,
        same_srv_rate,
        diff_srv_rate,
        srv_diff_host_rate,
        dst_host_count,
        dst_host_srv_count,
        dst_host_same_srv_rate,
        dst_host_diff_srv_rate,
        dst_host_same_src_port_rate,
        dst_host_srv_diff_host_rate,
        dst_host_serror_rate,
        dst_host_srv_serror_rate,
        dst_host_rerror_rate,
        dst_host_srv_rerror_rate,
    ]
);

field_list!(
    CIC_FIELDS,
    parse_cic_fields,
    cic_from_values,
    CicFeatures,
    [
        destination_port,
        flow_duration,
        total_fwd_packets,
        total_backward_packets,
        total_length_fwd_packets,
        total_length_bwd_packets,
        fwd_packet_length_max,
        fwd_packet_length_min,
        fwd_packet_length_mean,
        fwd_packet_length_std,
        bwd_packet_length_max,
        bwd_packet_length_min,
        bwd_packet_length_mean,
        bwd_packet_length_std,
        flow_bytes_per_s,
        flow_packets_per_s,
        flow_iat_mean,
        flow_iat_std,
        flow_iat_max,
        flow_iat_min,
        fwd_iat_total,
        fwd_iat_mean,
        fwd_iat_std,
        fwd_iat_max,
        fwd_iat_min,
        bwd_iat_total,
        bwd_iat_mean,
        bwd_iat_std,
        bwd_iat_max,
        bwd_iat_min,
        fwd_psh_flags,
        bwd_psh_flags,
        fwd_urg_flags,
        bwd_urg_flags,
        fwd_header_length,
        bwd_header_length,
        fwd_packets_per_s,
        bwd_packets_per_s,
        min_packet_length,
        max_packet_length,
        packet_length_mean,
        packet_length_std,
        packet_length_variance,
        fin_flag_count,
        syn_flag_count,
        rst_flag_count,
        psh_flag_count,
        ack_flag_count,
        urg_flag_count,
        cwr_flag_count,
        ece_flag_count,
        down_up_ratio,
        average_packet_size,
        avg_fwd_segment_size,
        avg_bwd_segment_size,
        fwd_avg_bytes_per_bulk,
        fwd_avg_packets_per_bulk,
        fwd_avg_bulk_rate,
        bwd_avg_bytes_per_bulk,
        bwd_avg_packets_per_bulk,
        bwd_avg_bulk_rate,
        subflow_fwd_packets,
        subflow_fwd_bytes,
        subflow_bwd_packets,
        subflow_bwd_bytes,
        init_win_bytes_forward,
        init_win_bytes_backward,
        act_data_pkt_fwd,
        min_seg_size_forward,
        active_mean,
        active_std,
        active_max,
        active_min,
        idle_mean,
        idle_std,
        idle_max,
        idle_min,
    ]
);

/// Fills `out` from an NSL-KDD row, reusing its buffers. Every field of
/// `out` is written (those NSL-KDD lacks are set to `None`).
fn parse_nsl_kdd(rec: &ByteRecord, out: &mut FlowRecord) -> Result<(), String> {
    let n = rec.len();
    if n != NSL_KDD_FEATURE_COUNT + 1 && n != NSL_KDD_FEATURE_COUNT + 2 {
        return Err(format!(
            "expected {} or {} fields, found {n}",
            NSL_KDD_FEATURE_COUNT + 1,
            NSL_KDD_FEATURE_COUNT + 2
        ));
    }
    let feats = out.nsl_kdd.get_or_insert_with(Default::default);
    parse_nsl_fields(feats, |i| (NSL_FIELDS[i], field_str(rec, i)))?;
    let label = field_str(rec, NSL_KDD_FEATURE_COUNT);
    let label = label.trim().trim_end_matches('.');
    if label.is_empty() {
        return Err("empty label".to_string());
    }
    set_string(out.label.get_or_insert_with(String::new), label);
    let protocol = &feats.protocol_type;
    match ["tcp", "udp", "icmp"]
        .into_iter()
        .find(|t| protocol.eq_ignore_ascii_case(t))
    {
        Some(t) => set_string(out.transport.get_or_insert_with(String::new), t),
        None => out.transport = None,
    }
    out.flow_id = None;
    out.event_time = None;
    out.src_ip = None;
    out.src_port = None;
    out.dst_ip = None;
    out.dst_port = None;
    out.source = SourceDataset::NslKdd;
    out.cic = None;
    Ok(())
}

fn protocol_name(num: i64) -> Option<&'static str> {
    match num {
        6 => Some("tcp"),
        17 => Some("udp"),
        1 => Some("icmp"),
        _ => None,
    }
}

/// Fills `out` from a CICFlowMeter row, reusing its buffers. Every field of
/// `out` is written.
fn parse_cic(
    rec: &ByteRecord,
    out: &mut FlowRecord,
    cols: &CicColumns,
    source: SourceDataset,
    unparsed_timestamps: &mut u64,
) -> Result<(), String> {
    if rec.len() < cols.width {
        return Err(format!(
            "expected {} fields, found {}",
            cols.width,
            rec.len()
        ));
    }
    let feats = out.cic.get_or_insert_with(Default::default);
    parse_cic_fields(feats, |i| {
        (CIC_FEATURES[i].aliases[0], field_str(rec, cols.features[i]))
    })?;
    out.dst_port = Some(feats.destination_port);
    let label = field_str(rec, cols.label);
    if label.trim().is_empty() {
        return Err("empty label".to_string());
    }
    set_string(out.label.get_or_insert_with(String::new), &label);
    let set_opt = |dst: &mut Option<String>, c: Option<usize>| match c {
        Some(i) => set_opt_string(dst, &field_str(rec, i)),
        None => *dst = None,
    };
    out.src_port = match cols.src_port {
        Some(i) => Some(
            i32::parse_field(&field_str(rec, i))
                .map_err(|e| format!("column \"Source Port\": {e}"))?,
        ),
        None => None,
    };
    let transport = match cols.protocol {
        Some(i) => protocol_name(
            i64::parse_field(&field_str(rec, i))
                .map_err(|e| format!("column \"Protocol\": {e}"))?,
        ),
        None => None,
    };
    match transport {
        Some(t) => set_string(out.transport.get_or_insert_with(String::new), t),
        None => out.transport = None,
    }
    out.event_time = match cols.timestamp {
        Some(i) => {
            let ts = field_str(rec, i);
            if ts.trim().is_empty() {
                None
            } else {
                let t = parse_timestamp_micros(&ts);
                if t.is_none() {
                    *unparsed_timestamps += 1;
                }
                t
            }
        }
        None => None,
    };
    set_opt(&mut out.flow_id, cols.flow_id);
    set_opt(&mut out.src_ip, cols.src_ip);
    set_opt(&mut out.dst_ip, cols.dst_ip);
    out.source = source;
    out.nsl_kdd = None;
    Ok(())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses the timestamp spellings of the CIC files into microseconds since
/// the epoch. The files carry no zone; the value is taken as UTC as written
/// (the capture's local time), which keeps replays deterministic.
///
/// Accepted: `2017-07-06 12:39:06.818901` (improved, `T` also accepted) and
/// `6/7/2017 8:59[:SS][ AM|PM]` (TrafficLabelling, day/month/year).
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once([' ', 'T'])?;
    let (y, m, d) = if date.contains('-') {
        let mut it = date.split('-');
        let y: i64 = it.next()?.parse().ok()?;
        let m: u32 = it.next()?.parse().ok()?;
        let d: u32 = it.next()?.parse().ok()?;
        (y, m, d)
    } else {
        let mut it = date.split('/');
        let d: u32 = it.next()?.parse().ok()?;
        let m: u32 = it.next()?.parse().ok()?;
        let y: i64 = it.next()?.parse().ok()?;
        (y, m, d)
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let rest = rest.trim();
    let (time, ampm) = match rest.rsplit_once(' ') {
        Some((t, ap)) => (t.trim(), Some(ap.trim().to_ascii_uppercase())),
        None => (rest, None),
    };
    let mut it = time.split(':');
    let mut h: i64 = it.next()?.parse().ok()?;
    let mi: i64 = it.next()?.parse().ok()?;
    let (sec, micros) = match it.next() {
        Some(sec) => match sec.split_once('.') {
            Some((s, frac)) => {
                let mut digits: String = frac.chars().take(6).collect();
                while digits.len() < 6 {
                    digits.push('0');
                }
                (s.parse::<i64>().ok()?, digits.parse::<i64>().ok()?)
            }
            None => (sec.parse::<i64>().ok()?, 0),
        },
        None => (0, 0),
    };
    match ampm.as_deref() {
        Some("PM") if h < 12 => h += 12,
        Some("AM") if h == 12 => h = 0,
        Some("AM") | Some("PM") | None => {}
        Some(_) => return None,
    }
    if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..61).contains(&sec) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    Some(((days * 86_400 + h * 3_600 + mi * 60 + sec) * 1_000_000) + micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ids_schemas::flow::NSL_KDD_FEATURES;
    use std::io::Write;

    fn names_of(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn macro_field_lists_match_schema_tables() {
        let nsl: Vec<String> = NSL_KDD_FEATURES
            .iter()
            .map(|f| f.name.to_string())
            .collect();
        assert_eq!(names_of(NSL_FIELDS), nsl);
        let cic: Vec<String> = CIC_FEATURES.iter().map(|f| f.name.to_string()).collect();
        assert_eq!(names_of(CIC_FIELDS), cic);
    }

    fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
        let p = dir.join(name);
        let mut f = File::create(&p).expect("create");
        f.write_all(content).expect("write");
        p
    }

    const NSL_ROW: &str = "0,tcp,ftp_data,SF,491,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,0.00,0.00,0.00,0.00,1.00,0.00,0.00,150,25,0.17,0.03,0.17,0.00,0.00,0.00,0.05,0.00,normal,20";

    #[test]
    fn nsl_kdd_rows_and_bad_rows_with_line_numbers() {
        let dir = tempfile::tempdir().expect("tmp");
        let bad = NSL_ROW.replace("491", "abc");
        let attack = NSL_ROW
            .replace("normal,20", "neptune,19")
            .replace(",tcp,", ",udp,");
        let body = format!("{NSL_ROW}\n{bad}\n{attack}\n1,2,3\n");
        let p = write(dir.path(), "kdd.txt", body.as_bytes());
        let mut reader = open(&p).expect("open");
        let items: Vec<_> = reader.by_ref().collect();
        assert_eq!(items.len(), 4);
        let first = items[0].as_ref().expect("row 1");
        assert_eq!(first.source, SourceDataset::NslKdd);
        assert_eq!(first.label.as_deref(), Some("normal"));
        assert_eq!(first.transport.as_deref(), Some("tcp"));
        let f = first.nsl_kdd.as_ref().expect("features");
        assert_eq!(f.src_bytes, 491);
        assert_eq!(f.service, "ftp_data");
        assert_eq!(f.dst_host_count, 150);
        assert!((f.dst_host_same_srv_rate - 0.17).abs() < 1e-12);
        let e = items[1].as_ref().expect_err("bad row");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("src_bytes"), "{}", e.message);
        assert!(e.to_string().contains("kdd.txt:2"), "{e}");
        assert_eq!(
            items[2].as_ref().expect("row 3").transport.as_deref(),
            Some("udp")
        );
        assert_eq!(items[3].as_ref().expect_err("short").line, 4);
        let rep = reader.into_report();
        assert_eq!(rep.rows_read, 4);
        assert_eq!(rep.rows_rejected, 2);
        assert_eq!(rep.files[0].format, DatasetFormat::NslKdd);
        assert_eq!(rep.errors.len(), 2);
    }

    /// Builds a CIC header in the given spelling (alias index, clamped).
    fn cic_header(alias: usize, leading_space: bool) -> Vec<String> {
        CIC_FEATURES
            .iter()
            .map(|s| {
                let a = s.aliases[alias.min(s.aliases.len() - 1)];
                if leading_space {
                    format!(" {a}")
                } else {
                    a.to_string()
                }
            })
            .collect()
    }

    fn cic_values(flow_bytes: &str) -> Vec<String> {
        (0..CIC_FEATURES.len())
            .map(|i| match i {
                0 => "80".to_string(),
                2 => "35.0".to_string(), // integer column written as float
                14 => flow_bytes.to_string(),
                15 => "Infinity".to_string(),
                _ => format!("{i}"),
            })
            .collect()
    }

    #[test]
    fn cic_original_with_users_quirks() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut header = cic_header(0, true);
        // The duplicated column of the originals, right after Bwd Header Length.
        header.insert(36, " Fwd Header Length".to_string());
        header.push(" Fwd Header Length.1".to_string());
        header.push(" Label ".to_string()); // leading and trailing spaces
        let mut content = header.join(",").into_bytes();
        content.push(b'\n');
        for (fb, label) in [
            ("NaN", "BENIGN".as_bytes().to_vec()),
            ("inf", "Web Attack \u{2013} XSS".as_bytes().to_vec()),
            // Windows-1252 en dash, as in the UNB originals.
            ("1.5", b"Web Attack \x96 Sql Injection".to_vec()),
        ] {
            let mut vals = cic_values(fb);
            vals.insert(36, "999".to_string());
            vals.push("777".to_string());
            content.extend(vals.join(",").into_bytes());
            content.push(b',');
            content.extend(label);
            content.push(b'\n');
        }
        let p = write(dir.path(), "Wednesday.csv", &content);
        let data = load(&p).expect("load");
        assert_eq!(data.report.rows_rejected, 0, "{:?}", data.report.errors);
        assert_eq!(data.records.len(), 3);
        assert_eq!(data.report.files[0].format, DatasetFormat::CicOriginal);
        let r0 = &data.records[0];
        assert_eq!(r0.source, SourceDataset::CicIds2017);
        assert_eq!(r0.dst_port, Some(80));
        let c = r0.cic.as_ref().expect("cic");
        assert_eq!(c.total_fwd_packets, 35);
        assert!(c.flow_bytes_per_s.is_nan());
        assert!(c.flow_packets_per_s.is_infinite());
        // First "Fwd Header Length" wins; the duplicate and ".1" are ignored.
        assert_eq!(c.fwd_header_length, 34);
        let r1 = &data.records[1];
        assert!(r1.cic.as_ref().expect("cic").flow_bytes_per_s.is_infinite());
        assert_eq!(
            crate::labels::cic_family(r1.label.as_deref().unwrap_or_default()),
            Some(crate::labels::Family::WebAttack)
        );
        let r2 = &data.records[2];
        assert_eq!(
            crate::labels::cic_family(r2.label.as_deref().unwrap_or_default()),
            Some(crate::labels::Family::WebAttack)
        );
    }

    #[test]
    fn cic_traffic_labelling_fills_identity() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut header = vec![
            "Flow ID".to_string(),
            " Source IP".to_string(),
            " Source Port".to_string(),
            " Destination IP".to_string(),
        ];
        let feats = cic_header(0, true);
        header.push(feats[0].clone());
        header.push(" Protocol".to_string());
        header.push(" Timestamp".to_string());
        header.extend(feats[1..].iter().cloned());
        header.push(" Label".to_string());
        let vals = cic_values("2.0");
        let mut row = vec![
            "192.168.10.5-8.8.8.8-5353-53-17".to_string(),
            "192.168.10.5".to_string(),
            "5353".to_string(),
            "8.8.8.8".to_string(),
            vals[0].clone(),
            "17".to_string(),
            "7/7/2017 3:30".to_string(),
        ];
        row.extend(vals[1..].iter().cloned());
        row.push("DDoS".to_string());
        let content = format!("{}\n{}\n", header.join(","), row.join(","));
        let p = write(dir.path(), "Friday.pcap_ISCX.csv", content.as_bytes());
        let data = load(&p).expect("load");
        assert_eq!(
            data.report.files[0].format,
            DatasetFormat::CicTrafficLabelling
        );
        let r = &data.records[0];
        assert_eq!(
            r.flow_id.as_deref(),
            Some("192.168.10.5-8.8.8.8-5353-53-17")
        );
        assert_eq!(r.src_ip.as_deref(), Some("192.168.10.5"));
        assert_eq!(r.src_port, Some(5353));
        assert_eq!(r.dst_ip.as_deref(), Some("8.8.8.8"));
        assert_eq!(r.dst_port, Some(80));
        assert_eq!(r.transport.as_deref(), Some("udp"));
        // 2017-07-07 03:30:00 UTC
        assert_eq!(r.event_time, Some(1_499_398_200_000_000));
        assert_eq!(r.label.as_deref(), Some("DDoS"));
    }

    #[test]
    fn cic_improved_layout_and_folder_load() {
        let dir = tempfile::tempdir().expect("tmp");
        let feats = cic_header(1, false);
        let mut header = vec![
            "id",
            "Flow ID",
            "Src IP",
            "Src Port",
            "Dst IP",
            "Dst Port",
            "Protocol",
            "Timestamp",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        header.extend(feats[1..].iter().cloned());
        header.push("ICMP Code".to_string());
        header.push("Label".to_string());
        header.push("Attempted Category".to_string());
        let vals = cic_values("3.0");
        let mk = |label: &str, proto: &str| {
            let mut row = vec![
                "1".to_string(),
                "a-b-1-2-6".to_string(),
                "10.0.0.1".to_string(),
                "1234.0".to_string(),
                "10.0.0.2".to_string(),
                "80".to_string(),
                proto.to_string(),
                "2017-07-06 12:39:06.818901".to_string(),
            ];
            row.extend(vals[1..].iter().cloned());
            row.push("-1".to_string());
            row.push(label.to_string());
            row.push("-1".to_string());
            row.join(",")
        };
        write(
            dir.path(),
            "b_Portscan.csv",
            format!(
                "{}\n{}\n",
                header.join(","),
                mk("Infiltration - Portscan", "6")
            )
            .as_bytes(),
        );
        write(
            dir.path(),
            "a_BENIGN.csv",
            format!(
                "{}\n{}\n{}\n",
                header.join(","),
                mk("BENIGN", "1"),
                mk("BENIGN", "x")
            )
            .as_bytes(),
        );
        write(dir.path(), "notes.md", b"ignored");
        let data = load(dir.path()).expect("load folder");
        assert_eq!(data.report.files.len(), 2);
        assert!(data.report.files[0].path.ends_with("a_BENIGN.csv"));
        assert_eq!(data.report.files[0].format, DatasetFormat::CicImproved);
        assert_eq!(data.records.len(), 2);
        assert_eq!(data.report.rows_rejected, 1);
        assert_eq!(data.report.errors[0].line, 3);
        assert!(data.report.errors[0].message.contains("Protocol"));
        let r = &data.records[0];
        assert_eq!(r.source, SourceDataset::CicIds2017Improved);
        assert_eq!(r.transport.as_deref(), Some("icmp"));
        assert_eq!(r.src_port, Some(1234));
        assert_eq!(r.event_time, Some(1_499_344_746_818_901));
        assert_eq!(data.records[1].transport.as_deref(), Some("tcp"));
        assert_eq!(data.labels.get("BENIGN"), Some(&1));
    }

    /// The producer streams with `read_into` into one reused record; it must
    /// yield exactly what the allocating iterator yields, also across a
    /// switch between NSL-KDD and CIC files and after a rejected row (whose
    /// partial parse must not leak into the next row).
    #[test]
    fn read_into_one_reused_record_matches_the_iterator() {
        let dir = tempfile::tempdir().expect("tmp");
        let bad = NSL_ROW.replace("491", "abc");
        let udp = NSL_ROW
            .replace(",tcp,", ",UDP,")
            .replace("normal,20", "smurf.,20");
        write(
            dir.path(),
            "a_kdd.txt",
            format!("{NSL_ROW}\n{bad}\n{udp}\n").as_bytes(),
        );
        let mut header = vec![
            "Flow ID",
            "Source IP",
            "Source Port",
            "Destination IP",
            "Protocol",
            "Timestamp",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        header.extend(cic_header(0, false));
        header.push("Label".to_string());
        let row = |id: &str, proto: &str, label: &str| {
            let mut r = vec![id, "10.0.0.1", "1234", "10.0.0.2", proto, "6/7/2017 8:59"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            r.extend(cic_values("3.0"));
            r.push(label.to_string());
            r.join(",")
        };
        write(
            dir.path(),
            "b_cic.csv",
            format!(
                "{}\n{}\n{}\n{}\n",
                header.join(","),
                row("f-1", "6", "DDoS"),
                row("", "99", "BENIGN"),
                row("f-3", "17", "")
            )
            .as_bytes(),
        );
        let expected: Vec<_> = open(dir.path()).expect("open").collect();
        let mut reader = open(dir.path()).expect("open");
        let mut rec = FlowRecord::default();
        let mut got = Vec::new();
        while let Some(res) = reader.read_into(&mut rec) {
            got.push(res.map(|()| rec.clone()));
        }
        assert_eq!(got.len(), 6);
        assert_eq!(got, expected);
        let kinds: Vec<_> = got
            .iter()
            .map(|r| {
                r.as_ref()
                    .map(|r| (r.source, r.transport.clone(), r.flow_id.clone()))
            })
            .collect();
        assert_eq!(
            kinds[0],
            Ok((SourceDataset::NslKdd, Some("tcp".into()), None))
        );
        assert!(kinds[1].is_err());
        assert_eq!(
            kinds[2],
            Ok((SourceDataset::NslKdd, Some("udp".into()), None))
        );
        assert_eq!(
            kinds[3],
            Ok((
                SourceDataset::CicIds2017,
                Some("tcp".into()),
                Some("f-1".into())
            ))
        );
        assert_eq!(kinds[4], Ok((SourceDataset::CicIds2017, None, None)));
        assert!(kinds[5].is_err(), "empty label");
        let smurf = got[2].as_ref().expect("row 3");
        assert_eq!(smurf.label.as_deref(), Some("smurf"));
        assert!(smurf.cic.is_none() && smurf.src_ip.is_none());
        let cic = got[3].as_ref().expect("cic row");
        assert!(cic.nsl_kdd.is_none());
        assert_eq!(cic.src_port, Some(1234));
    }

    #[test]
    fn missing_columns_are_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut header = cic_header(0, false);
        header.retain(|h| h != "Flow Bytes/s" && h != "Idle Min");
        let p = write(
            dir.path(),
            "x.csv",
            format!("{}\n", header.join(",")).as_bytes(),
        );
        let err = open(&p).err().expect("must fail");
        let msg = err.to_string();
        assert!(
            msg.contains("Flow Bytes/s") && msg.contains("Idle Min") && msg.contains("Label"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_and_empty_files_fail() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = write(dir.path(), "x.csv", b"a,b,c\n1,2,3\n");
        assert!(matches!(open(&p), Err(DatasetError::UnknownFormat { .. })));
        let p = write(dir.path(), "e.csv", b"");
        assert!(matches!(open(&p), Err(DatasetError::Empty { .. })));
        let empty = tempfile::tempdir().expect("tmp");
        assert!(matches!(
            open(empty.path()),
            Err(DatasetError::EmptyFolder { .. })
        ));
    }

    #[test]
    fn numbers_and_timestamps() {
        assert_eq!(i64::parse_field("35.0"), Ok(35));
        assert!(i64::parse_field("35.5").is_err());
        assert!(i64::parse_field("Infinity").is_err());
        assert!(f64::parse_field("Infinity").expect("inf").is_infinite());
        assert!(f64::parse_field("inf").expect("inf").is_infinite());
        assert!(f64::parse_field("-Infinity").expect("inf").is_infinite());
        assert!(f64::parse_field("+Infinity").expect("inf").is_infinite());
        assert!(f64::parse_field("NaN").expect("nan").is_nan());
        assert!(i32::parse_field("3000000000").is_err());
        assert_eq!(
            parse_timestamp_micros("1970-01-01 00:00:01"),
            Some(1_000_000)
        );
        assert_eq!(
            parse_timestamp_micros("7/7/2017 3:30:00 PM"),
            Some(1_499_441_400_000_000)
        );
        assert_eq!(parse_timestamp_micros("garbage"), None);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn sha256_of_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = write(dir.path(), "a.txt", b"abc");
        assert_eq!(
            sha256_file(&p).expect("hash"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

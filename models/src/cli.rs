//! The `ids-model` command line: `train`, `evaluate`, `inspect`.
//!
//! It lives in the library (the binary's `main` is one line) so that tests
//! drive exactly the code users run.
//!
//! Configuration is layered with the `config` crate, like every IDS Stream
//! binary: built-in defaults → `--config FILE` (TOML, flat keys named like the
//! long options with `_`, e.g. `max_depth = 12`, `data = ["a.csv"]`) →
//! environment `IDS_MODEL_<KEY>` (e.g. `IDS_MODEL_MAX_DEPTH=12`) → command-line
//! flags. The environment prefix is `IDS_MODEL_` rather than bare `IDS_` so
//! that the services' variables (`IDS_SEED`, `IDS_DATASET`, ...) and the test
//! suite's `IDS_DATASETS` cannot silently change how a model is trained.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error
//! (the message names the offending option or key).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use config::{Config, Environment, File as ConfigFile, FileFormat};
use serde::{Deserialize, Serialize};

use crate::artifact::{DataFileDigest, ModelArtifact};
use crate::datasets::{self, LoadedDataset};
use crate::labels::LabelScheme;
use crate::train::{self, ClassWeight, Criterion, TrainMeta, TrainParams};

/// IDS Stream model tool: train, evaluate and inspect decision-tree intrusion detectors.
#[derive(Debug, Parser)]
#[command(name = "ids-model", version, about, long_about = None)]
pub struct Cli {
    /// TOML file with defaults for the options (keys like the long options, `_` for `-`).
    #[arg(long, global = true, env = "IDS_MODEL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Do not show progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a decision tree on dataset files/folders and write a model artifact.
    Train(TrainArgs),
    /// Score a model artifact on a labelled dataset (table, JSON and SVG report).
    Evaluate(EvaluateArgs),
    /// Print a summary of a model artifact.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training data: NSL-KDD or CIC-IDS2017 CSV files, or folders (every .csv/.txt inside).
    #[arg(value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// Label scheme: `binary` (benign/attack) or `family` (attack families). [default: family]
    #[arg(long, value_parser = ["binary", "family"])]
    pub scheme: Option<String>,
    /// Split quality criterion: `gini` or `entropy`. [default: entropy]
    #[arg(long, value_parser = ["gini", "entropy"])]
    pub criterion: Option<String>,
    /// Maximum tree depth; 0 = unlimited. [default: 12]
    #[arg(long, value_name = "N")]
    pub max_depth: Option<usize>,
    /// Minimum number of rows in a node for it to be split. [default: 2]
    #[arg(long, value_name = "N")]
    pub min_samples_split: Option<usize>,
    /// Minimum size of a leaf in rows (with --class-weight balanced: in weight, counted in average rows). [default: 1]
    #[arg(long, value_name = "W")]
    pub min_samples_leaf: Option<f64>,
    /// Minimum impurity decrease for a split (must be > 0). [default: 0.00001]
    #[arg(long, value_name = "X")]
    pub min_impurity_decrease: Option<f64>,
    /// Class weighting: `none` or `balanced` (n / (k · n_class)). [default: balanced]
    #[arg(long, value_parser = ["none", "balanced"])]
    pub class_weight: Option<String>,
    /// Seed of the stratified validation split. [default: 42]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Fraction held out (stratified) for validation when no --test is given; 0 = none. [default: 0.2]
    #[arg(long, value_name = "F")]
    pub validation_split: Option<f64>,
    /// Score on this file/folder (e.g. the official KDDTest+.txt) instead of a validation split.
    #[arg(long, value_name = "PATH")]
    pub test: Option<PathBuf>,
    /// Where to write the model artifact. [default: model.json]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Folder for the evaluation report (<out stem>.report.json/.svg). [default: the artifact's folder]
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Model name (alerts' rule.ruleset). [default: derived from the data and scheme]
    #[arg(long)]
    pub name: Option<String>,
    /// Model version label stored in the artifact. [default: 1]
    #[arg(long = "model-version", value_name = "VERSION")]
    pub model_version: Option<String>,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Model artifact to score.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Labelled data files or folders.
    #[arg(value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// Folder for the report (<model stem>.eval.json/.svg). [default: reports]
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Model artifact.
    #[arg(value_name = "FILE")]
    pub model: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Effective `train` settings after layering.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSettings {
    pub data: Vec<PathBuf>,
    pub scheme: LabelScheme,
    pub criterion: Criterion,
    pub max_depth: usize,
    pub min_samples_split: usize,
    pub min_samples_leaf: f64,
    pub min_impurity_decrease: f64,
    pub class_weight: ClassWeight,
    pub seed: u64,
    pub validation_split: f64,
    pub test: Option<PathBuf>,
    pub out: PathBuf,
    pub report_dir: Option<PathBuf>,
    pub name: Option<String>,
    pub model_version: String,
    /// Keys of the other subcommands, accepted so one file can serve all.
    pub model: Option<PathBuf>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        let p = TrainParams::default();
        TrainSettings {
            data: Vec::new(),
            scheme: p.scheme,
            criterion: p.criterion,
            max_depth: p.max_depth.unwrap_or(0),
            min_samples_split: p.min_samples_split,
            min_samples_leaf: p.min_samples_leaf,
            min_impurity_decrease: p.min_impurity_decrease,
            class_weight: p.class_weight,
            seed: p.seed,
            validation_split: p.validation_split,
            test: None,
            out: PathBuf::from("model.json"),
            report_dir: None,
            name: None,
            model_version: "1".to_string(),
            model: None,
        }
    }
}

/// Effective `evaluate` settings after layering.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EvaluateSettings {
    pub model: Option<PathBuf>,
    pub data: Vec<PathBuf>,
    pub report_dir: PathBuf,
}

impl Default for EvaluateSettings {
    fn default() -> Self {
        EvaluateSettings {
            model: None,
            data: Vec::new(),
            report_dir: PathBuf::from("reports"),
        }
    }
}

/// A configuration problem (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct UsageError(pub String);

fn layered<T: Serialize + for<'de> Deserialize<'de> + Default>(
    file: Option<&Path>,
    overrides: Vec<(&str, config::Value)>,
) -> Result<T, UsageError> {
    let defaults = Config::try_from(&T::default()).map_err(|e| UsageError(e.to_string()))?;
    let mut b = Config::builder().add_source(defaults);
    if let Some(f) = file {
        if !f.exists() {
            return Err(UsageError(format!(
                "--config: file {} does not exist",
                f.display()
            )));
        }
        b = b.add_source(ConfigFile::from(f).format(FileFormat::Toml));
    }
    // Only variables naming a known key are passed on: `IDS_MODEL_CONFIG`
    // (read by clap) or another service's `IDS_MODEL_PATH` must not trip the
    // unknown-key check that catches typos in config files.
    let known: Vec<String> = match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let env: config::Map<String, String> = std::env::vars()
        .filter(|(k, _)| {
            k.strip_prefix("IDS_MODEL_")
                .is_some_and(|rest| known.contains(&rest.to_ascii_lowercase()))
        })
        .collect();
    b = b.add_source(
        Environment::with_prefix("IDS_MODEL")
            .prefix_separator("_")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("data")
            .source(Some(env)),
    );
    for (k, v) in overrides {
        b = b
            .set_override(k, v)
            .map_err(|e| UsageError(format!("{k}: {e}")))?;
    }
    let cfg = b.build().map_err(|e| UsageError(e.to_string()))?;
    cfg.try_deserialize::<T>()
        .map_err(|e| UsageError(e.to_string()))
}

fn paths_value(p: &[PathBuf]) -> config::Value {
    config::Value::from(
        p.iter()
            .map(|x| config::Value::from(x.display().to_string()))
            .collect::<Vec<_>>(),
    )
}

impl TrainArgs {
    fn settings(&self, file: Option<&Path>) -> Result<TrainSettings, UsageError> {
        let mut o: Vec<(&str, config::Value)> = Vec::new();
        if !self.data.is_empty() {
            o.push(("data", paths_value(&self.data)));
        }
        macro_rules! put {
            ($key:literal, $v:expr) => {
                if let Some(v) = $v {
                    o.push(($key, config::Value::from(v)));
                }
            };
        }
        put!("scheme", self.scheme.clone());
        put!("criterion", self.criterion.clone());
        put!("max_depth", self.max_depth.map(|v| v as u64));
        put!(
            "min_samples_split",
            self.min_samples_split.map(|v| v as u64)
        );
        put!("min_samples_leaf", self.min_samples_leaf);
        put!("min_impurity_decrease", self.min_impurity_decrease);
        put!("class_weight", self.class_weight.clone());
        put!("seed", self.seed);
        put!("validation_split", self.validation_split);
        put!("test", self.test.as_ref().map(|p| p.display().to_string()));
        put!("out", self.out.as_ref().map(|p| p.display().to_string()));
        put!(
            "report_dir",
            self.report_dir.as_ref().map(|p| p.display().to_string())
        );
        put!("name", self.name.clone());
        put!("model_version", self.model_version.clone());
        let s: TrainSettings = layered(file, o)?;
        if s.data.is_empty() {
            return Err(UsageError(
                "train: no training data (give PATH arguments or `data` in the config)".into(),
            ));
        }
        if !(0.0..1.0).contains(&s.validation_split) {
            return Err(UsageError(format!(
                "--validation-split must be in [0, 1), got {}",
                s.validation_split
            )));
        }
        if s.min_samples_leaf < 0.0 || !s.min_samples_leaf.is_finite() {
            return Err(UsageError(format!(
                "--min-samples-leaf must be ≥ 0, got {}",
                s.min_samples_leaf
            )));
        }
        if s.min_impurity_decrease <= 0.0 || !s.min_impurity_decrease.is_finite() {
            return Err(UsageError(format!(
                "--min-impurity-decrease must be > 0, got {}",
                s.min_impurity_decrease
            )));
        }
        Ok(s)
    }
}

/// Parses arguments and runs; returns the process exit code.
pub fn main_with<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            if let Some(u) = e.downcast_ref::<UsageError>() {
                eprintln!("error: {u}");
                2
            } else {
                eprintln!("error: {e:#}");
                1
            }
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let progress = !cli.no_progress;
    match cli.command {
        Command::Train(a) => {
            let s = a.settings(cli.config.as_deref())?;
            run_train(&s, progress)
        }
        Command::Evaluate(a) => {
            let mut o: Vec<(&str, config::Value)> = Vec::new();
            if let Some(m) = &a.model {
                o.push(("model", config::Value::from(m.display().to_string())));
            }
            if !a.data.is_empty() {
                o.push(("data", paths_value(&a.data)));
            }
            if let Some(r) = &a.report_dir {
                o.push(("report_dir", config::Value::from(r.display().to_string())));
            }
            let s: EvaluateSettings = layered(cli.config.as_deref(), o)?;
            let Some(model) = s.model.clone() else {
                return Err(UsageError("evaluate: --model is required".into()).into());
            };
            if s.data.is_empty() {
                return Err(UsageError("evaluate: no data (give PATH arguments)".into()).into());
            }
            run_evaluate(&model, &s.data, &s.report_dir)
        }
        Command::Inspect(a) => run_inspect(&a.model, a.json),
    }
}

/// Loads several paths into one dataset (reports merged).
pub fn load_all(paths: &[PathBuf]) -> anyhow::Result<LoadedDataset> {
    let mut all: Option<LoadedDataset> = None;
    for p in paths {
        let d = datasets::load(p).with_context(|| format!("loading {}", p.display()))?;
        tracing::info!(
            path = %p.display(),
            rows = d.records.len(),
            rejected = d.report.rows_rejected,
            "loaded"
        );
        match &mut all {
            None => all = Some(d),
            Some(acc) => {
                acc.records.extend(d.records);
                for (k, v) in d.labels {
                    *acc.labels.entry(k).or_insert(0) += v;
                }
                acc.report.files.extend(d.report.files);
                acc.report.rows_read += d.report.rows_read;
                acc.report.rows_rejected += d.report.rows_rejected;
                acc.report.errors.extend(d.report.errors);
            }
        }
    }
    let all = all.context("no data paths given")?;
    if all.report.rows_rejected > 0 {
        eprintln!(
            "warning: {} rows rejected while loading; first ones:",
            all.report.rows_rejected
        );
        for e in all.report.errors.iter().take(5) {
            eprintln!("  {e}");
        }
    }
    Ok(all)
}

fn default_name(s: &TrainSettings, fs: &str) -> String {
    let base = match fs {
        "nsl_kdd" => "nsl-kdd",
        _ => "cic-ids2017",
    };
    format!("{base}-{}-tree", s.scheme)
}

/// `train` with effective settings.
pub fn run_train(s: &TrainSettings, progress: bool) -> anyhow::Result<()> {
    let data = load_all(&s.data)?;
    let mut files = Vec::new();
    for f in &data.report.files {
        files.push(DataFileDigest {
            file: f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: datasets::sha256_file(&f.path)?,
        });
    }
    let test = match &s.test {
        Some(t) => Some(load_all(std::slice::from_ref(t))?),
        None => None,
    };
    let params = TrainParams {
        scheme: s.scheme,
        criterion: s.criterion,
        max_depth: (s.max_depth > 0).then_some(s.max_depth),
        min_samples_split: s.min_samples_split,
        min_samples_leaf: s.min_samples_leaf,
        min_impurity_decrease: s.min_impurity_decrease,
        class_weight: s.class_weight,
        seed: s.seed,
        validation_split: if s.test.is_some() {
            0.0
        } else {
            s.validation_split
        },
    };
    let fs = data
        .records
        .iter()
        .find_map(crate::features::FeatureSet::of_record)
        .map(|f| f.as_str())
        .unwrap_or("cic");
    let meta = TrainMeta {
        name: s.name.clone().unwrap_or_else(|| default_name(s, fs)),
        version: s.model_version.clone(),
        files,
        rows_rejected: data.report.rows_rejected,
        test_description: s.test.as_ref().map(|t| {
            format!(
                "test data {}",
                t.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )
        }),
        progress,
    };
    let started = std::time::Instant::now();
    let out = train::train(
        &data.records,
        test.as_ref().map(|t| t.records.as_slice()),
        &params,
        &meta,
    )?;
    let a = &out.artifact;
    a.save(&s.out)?;
    println!(
        "model {} ({}) written to {} in {:.1}s (fit {:.1}s): {} classes, {} nodes, depth {}",
        a.id,
        a.name,
        s.out.display(),
        started.elapsed().as_secs_f64(),
        a.training.fit_seconds,
        a.classes.len(),
        a.tree.len(),
        a.tree.depth()
    );
    if let Some(m) = &a.metrics {
        println!("evaluated on {}", m.evaluated_on);
        print!("{}", m.report.table());
        let dir = s
            .report_dir
            .clone()
            .or_else(|| s.out.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let stem = format!("{}.report", file_stem(&s.out));
        m.report
            .write_files(&dir, &stem, &format!("{} — {}", a.name, m.evaluated_on))
            .map_err(anyhow::Error::msg)?;
        println!(
            "report: {}/{stem}.json, {}/{stem}.svg",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

fn file_stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_string())
}

/// `evaluate`.
pub fn run_evaluate(model: &Path, data: &[PathBuf], report_dir: &Path) -> anyhow::Result<()> {
    let a = ModelArtifact::load(model)?;
    let d = load_all(data)?;
    let report = train::evaluate(&a, &d.records).map_err(anyhow::Error::msg)?;
    println!("model {} ({}) on {} rows", a.id, a.name, d.records.len());
    print!("{}", report.table());
    let stem = format!("{}.eval", file_stem(model));
    report
        .write_files(report_dir, &stem, &format!("{} ({})", a.name, a.id))
        .map_err(anyhow::Error::msg)?;
    println!(
        "report: {}/{stem}.json, {}/{stem}.svg",
        report_dir.display(),
        report_dir.display()
    );
    Ok(())
}

/// Summary printed by `inspect`.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    pub format_version: u32,
    pub created_at: &'a str,
    pub feature_set: &'a str,
    pub label_scheme: &'a str,
    pub classes: Vec<(String, bool, u64)>,
    pub features: usize,
    pub vocabularies: Vec<(String, usize)>,
    pub params: &'a TrainParams,
    pub training_files: &'a [DataFileDigest],
    pub rows_fitted: u64,
    pub fit_seconds: f64,
    pub tree_nodes: usize,
    pub tree_leaves: usize,
    pub tree_depth: usize,
    pub evaluated_on: Option<&'a str>,
    pub accuracy: Option<f64>,
    pub macro_f1: Option<f64>,
    pub binary_accuracy: Option<f64>,
}

/// `inspect`.
pub fn run_inspect(model: &Path, json: bool) -> anyhow::Result<()> {
    let a = ModelArtifact::load(model)?;
    let counts = |c: &str| {
        a.training
            .class_counts
            .iter()
            .find(|(n, _)| n == c)
            .map(|(_, k)| *k)
            .unwrap_or(0)
    };
    let s = Summary {
        id: &a.id,
        name: &a.name,
        version: &a.version,
        format_version: a.format_version,
        created_at: &a.created_at,
        feature_set: a.feature_set.as_str(),
        label_scheme: a.label_scheme.as_str(),
        classes: a
            .classes
            .iter()
            .zip(&a.benign)
            .map(|(c, b)| (c.clone(), *b, counts(c)))
            .collect(),
        features: a.schema.names.len(),
        vocabularies: a
            .schema
            .vocabularies
            .iter()
            .map(|v| (v.feature.clone(), v.values.len()))
            .collect(),
        params: &a.params,
        training_files: &a.training.files,
        rows_fitted: a.training.rows_fitted,
        fit_seconds: a.training.fit_seconds,
        tree_nodes: a.tree.len(),
        tree_leaves: a.tree.leaves(),
        tree_depth: a.tree.depth(),
        evaluated_on: a.metrics.as_ref().map(|m| m.evaluated_on.as_str()),
        accuracy: a.metrics.as_ref().map(|m| m.report.accuracy),
        macro_f1: a.metrics.as_ref().map(|m| m.report.macro_f1),
        binary_accuracy: a.metrics.as_ref().map(|m| m.report.binary.accuracy),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("model        {} ({} v{})", s.id, s.name, s.version);
    println!(
        "format       {} (created {})",
        s.format_version, s.created_at
    );
    println!("features     {} ({} features)", s.feature_set, s.features);
    for (f, n) in &s.vocabularies {
        println!("  vocabulary {f}: {n} values (+ other)");
    }
    println!("scheme       {}", s.label_scheme);
    println!("classes");
    for (c, b, n) in &s.classes {
        println!(
            "  {c:<14} {:<7} {n} training rows",
            if *b { "benign" } else { "attack" }
        );
    }
    let p = s.params;
    println!(
        "params       criterion {:?}, max_depth {}, min_samples_split {}, min_samples_leaf {}, class_weight {:?}, seed {}, validation_split {}",
        p.criterion,
        p.max_depth.map(|d| d.to_string()).unwrap_or_else(|| "unlimited".into()),
        p.min_samples_split,
        p.min_samples_leaf,
        p.class_weight,
        p.seed,
        p.validation_split
    );
    println!(
        "training     {} rows fitted in {:.2}s",
        s.rows_fitted, s.fit_seconds
    );
    for f in s.training_files {
        println!("  {}  {}", f.sha256, f.file);
    }
    println!(
        "tree         {} nodes, {} leaves, depth {}",
        s.tree_nodes, s.tree_leaves, s.tree_depth
    );
    if let Some(m) = &a.metrics {
        println!("metrics      on {}", m.evaluated_on);
        print!("{}", m.report.table());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_option_exits_2_naming_it() {
        let e = Cli::try_parse_from(["ids-model", "train", "--criterion", "bogus", "x"])
            .expect_err("bad");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--criterion"), "{e}");
        let e = Cli::try_parse_from(["ids-model", "train", "--max-depth", "deep", "x"])
            .expect_err("bad");
        assert!(e.to_string().contains("--max-depth"), "{e}");
        assert_eq!(main_with(["ids-model", "train", "--nope"]), 2);
    }

    #[test]
    fn layering_file_then_flags() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = dir.path().join("m.toml");
        std::fs::write(
            &cfg,
            "max_depth = 7\ncriterion = \"gini\"\ndata = [\"a.csv\"]\nseed = 5\n",
        )
        .expect("write");
        let cli = Cli::try_parse_from(["ids-model", "train", "--seed", "9"]).expect("parse");
        let Command::Train(a) = cli.command else {
            panic!("train expected")
        };
        let s = a.settings(Some(&cfg)).expect("settings");
        assert_eq!(s.max_depth, 7);
        assert_eq!(s.criterion, Criterion::Gini);
        assert_eq!(s.seed, 9, "flag beats file");
        assert_eq!(s.data, vec![PathBuf::from("a.csv")]);

        std::fs::write(&cfg, "max_depth = \"deep\"\n").expect("write");
        let e = a.settings(Some(&cfg)).expect_err("bad type");
        assert!(e.to_string().contains("max_depth"), "{e}");
        std::fs::write(&cfg, "max_dept = 3\n").expect("write");
        let e = a.settings(Some(&cfg)).expect_err("unknown key");
        assert!(e.to_string().contains("max_dept"), "{e}");
    }

    #[test]
    fn train_evaluate_inspect_end_to_end() {
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("train.txt");
        let mut lines = String::new();
        for r in crate::train::tests::toy_nsl(400) {
            let f = r.nsl_kdd.expect("nsl");
            let mut v = vec![
                f.duration.to_string(),
                f.protocol_type.clone(),
                f.service.clone(),
                f.flag.clone(),
                f.src_bytes.to_string(),
            ];
            v.extend(std::iter::repeat_n("0".to_string(), 17));
            v.push(f.count.to_string());
            v.push("0".into());
            v.push(f.serror_rate.to_string());
            v.extend(std::iter::repeat_n("0".to_string(), 16));
            v.push(r.label.expect("label"));
            v.push("20".into());
            lines.push_str(&v.join(","));
            lines.push('\n');
        }
        std::fs::write(&data, lines).expect("write");
        let out = dir.path().join("m.json");
        let code = main_with([
            "ids-model".into(),
            "--no-progress".into(),
            "train".into(),
            data.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--max-depth".into(),
            "6".into(),
        ]);
        assert_eq!(code, 0);
        assert!(dir.path().join("m.report.json").exists());
        assert!(dir.path().join("m.report.svg").exists());
        let a = ModelArtifact::load(&out).expect("artifact");
        assert_eq!(a.params.max_depth, Some(6));
        assert_eq!(a.training.files[0].file, "train.txt");
        let reports = dir.path().join("rep");
        let code = main_with([
            "ids-model".into(),
            "evaluate".into(),
            "--model".into(),
            out.display().to_string(),
            data.display().to_string(),
            "--report-dir".into(),
            reports.display().to_string(),
        ]);
        assert_eq!(code, 0);
        assert!(reports.join("m.eval.json").exists());
        assert_eq!(
            main_with([
                "ids-model".into(),
                "inspect".into(),
                out.display().to_string()
            ]),
            0
        );
        assert_eq!(
            main_with(["ids-model", "inspect", "/nonexistent/model.json"]),
            1
        );
    }
}

//! Test harness for the end-to-end tests: a real Kafka-protocol broker (Tansu)
//! on loopback, the real binaries as child processes, and topic helpers.
//!
//! * [`Tansu`] starts `tansu broker` on a free loopback port with memory or
//!   durable (SQLite via libsql) storage in a temporary directory, waits until
//!   it answers a metadata request, and can be stopped and restarted on the same
//!   port and storage. It is killed on drop.
//! * [`binary`] finds `target/<profile>/<name>` next to the running test
//!   executable (building it with cargo if it is missing); [`spawn`] starts it
//!   with a clean `IDS_*`/`OTEL_*` environment and captures its output in a log.
//! * [`create_topic`], [`read_topic`] and [`topic_message_count`] talk to the
//!   broker with rdkafka.
//!
//! The Tansu binary is `$TANSU_BIN`, else
//! `~/.cache/ids-stream/tansu-0.6.0/bin/tansu` (where `scripts/install-tansu.sh`
//! puts it), else `tansu` on `PATH`.

use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

pub use rdkafka;

/// How long [`Tansu::start`] waits for the broker to answer.
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Storage engine of a test broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// `memory://tansu/`: fast; lost when the broker stops.
    Memory,
    /// `sqlite://tansu.db` in the broker's directory: survives [`Tansu::restart`].
    Durable,
}

/// Path of the Tansu binary (see the crate docs).
pub fn tansu_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("TANSU_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!(
            "TANSU_BIN={} does not exist; run scripts/install-tansu.sh",
            p.display()
        );
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".cache/ids-stream/tansu-0.6.0/bin/tansu");
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("tansu");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!("tansu not found: run scripts/install-tansu.sh (or set TANSU_BIN)")
}

/// A free TCP port on 127.0.0.1 (bound and released; a tiny race is accepted).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

/// A Tansu broker process on loopback. Killed on drop.
pub struct Tansu {
    bin: PathBuf,
    port: u16,
    storage: Storage,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
}

impl Tansu {
    /// Starts a broker with in-memory storage.
    pub fn start_memory() -> anyhow::Result<Tansu> {
        Self::start(Storage::Memory)
    }

    /// Starts a broker with durable (SQLite) storage, for restart tests.
    pub fn start_durable() -> anyhow::Result<Tansu> {
        Self::start(Storage::Durable)
    }

    /// Starts a broker on a free loopback port and waits until it answers
    /// metadata requests.
    pub fn start(storage: Storage) -> anyhow::Result<Tansu> {
        let mut t = Tansu {
            bin: tansu_bin()?,
            port: free_port()?,
            storage,
            dir: tempfile::Builder::new().prefix("ids-e2e-tansu").tempdir()?,
            child: None,
            starts: 0,
        };
        t.launch()?;
        Ok(t)
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// The broker's log (all starts), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    /// Whether the broker process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let engine = match self.storage {
            Storage::Memory => "memory://tansu/".to_string(),
            // Tansu resolves a sqlite URL's host+path relative to its working
            // directory, so the file lands in our temporary directory.
            Storage::Durable => "sqlite://tansu.db".to_string(),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("broker")
            .arg("--listener-url")
            .arg(&url)
            .arg("--advertised-listener-url")
            .arg(&url)
            .arg("--storage-engine")
            .arg(&engine)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Tansu reads these from the environment too; the test's own values
        // (e.g. an OTLP endpoint meant for our binaries) must not leak into it.
        for var in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "CLUSTER_ID",
            "LISTENER_URL",
            "ADVERTISED_LISTENER_URL",
            "STORAGE_ENGINE",
            "SCHEMA_REGISTRY",
            "DATA_LAKE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
        );
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        self.starts += 1;
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        let brokers = self.brokers();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    bail!(
                        "tansu exited during start-up ({status}); log:\n{}",
                        self.log()
                    );
                }
            }
            let ok = std::panic::catch_unwind(|| metadata_ok(&brokers)).unwrap_or(false);
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "tansu did not answer metadata on {brokers} within {:?}; log:\n{}",
                    BROKER_START_TIMEOUT,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the broker: SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(10));
        }
    }

    /// Kills the broker with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same port with the same storage
    /// (stopping it first if it is running).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        // The port was just released; wait until it can be bound again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind(("127.0.0.1", self.port)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.launch()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One metadata round trip (blocking, 2 s).
fn metadata_ok(brokers: &str) -> bool {
    let consumer: Result<BaseConsumer, _> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("log_level", "0")
        .create();
    match consumer {
        Ok(c) => c.fetch_metadata(None, Duration::from_secs(2)).is_ok(),
        Err(_) => false,
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Creates a topic (replication 1) and waits until its metadata shows all
/// partitions. An existing topic is not an error.
pub async fn create_topic(brokers: &str, name: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating admin client")?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .with_context(|| format!("creating topic {name}"))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("creating topic {t}: {e}"),
        }
    }
    let brokers = brokers.to_string();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        wait_for_partitions(&brokers, &name, partitions, Duration::from_secs(30))
    })
    .await??;
    Ok(())
}

fn wait_for_partitions(
    brokers: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                if t.error().is_none() && t.partitions().len() as i32 >= partitions {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("topic {topic} did not show {partitions} partitions within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Partition ids of a topic.
pub fn topic_partitions(brokers: &str, topic: &str) -> anyhow::Result<Vec<i32>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("metadata for {topic}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| anyhow!("topic {topic} not in metadata"))?;
    if let Some(e) = t.error() {
        bail!("topic {topic}: {e:?}");
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// Number of records in a topic (sum of high minus low watermarks).
pub fn topic_message_count(brokers: &str, topic: &str) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let mut total = 0;
    for p in topic_partitions(brokers, topic)? {
        let (lo, hi) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .with_context(|| format!("watermarks of {topic}/{p}"))?;
        total += hi - lo;
    }
    Ok(total)
}

static GROUP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A consumer group id that no other reader uses.
pub fn fresh_group(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        GROUP_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Reads `topic` from the beginning of every partition until `expected`
/// messages were read or no message arrived for `idle_timeout`. Pass
/// `usize::MAX` to read until idle (to see late duplicates). Partitions are
/// assigned directly (no group rebalance), with a fresh group id and no commits.
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    expected: usize,
    idle_timeout: Duration,
) -> anyhow::Result<Vec<OwnedMessage>> {
    let partitions = {
        let (b, t) = (brokers.to_string(), topic.to_string());
        tokio::task::spawn_blocking(move || topic_partitions(&b, &t)).await??
    };
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", fresh_group("ids-e2e-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating reader")?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    while out.len() < expected {
        match tokio::time::timeout(idle_timeout, consumer.recv()).await {
            Err(_) => break,
            Ok(Ok(m)) => out.push(m.detach()),
            Ok(Err(e)) => bail!("reading {topic}: {e}"),
        }
    }
    Ok(out)
}

/// Header value of a message as UTF-8, if present.
pub fn header_str<'a>(m: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    use rdkafka::message::Headers as _;
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Root of the workspace (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Outcome of the one `cargo build` this test process runs.
static BUILD: Mutex<Option<Result<(), String>>> = Mutex::new(None);

/// `target/<profile>/<name>` of the running test build.
///
/// The first call in a test process runs `cargo build --workspace --bins`
/// (a no-op when `scripts/test.sh` has just built them), so a test never runs a
/// stale binary. The whole workspace is built rather than one package because
/// cargo unifies dependency features per invocation: `-p <pkg>` would build the
/// binary with other features than `scripts/test.sh` does, and the two builds
/// would keep replacing each other. Set `IDS_E2E_NO_BUILD=1` to skip the build
/// when the binaries exist.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    binary_in(name, name)
}

/// As [`binary`]; `package` is informational (every workspace binary is built).
pub fn binary_in(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("cannot locate target dir from {}", exe.display()))?;
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut build = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if build.is_none() {
        let skip = std::env::var_os("IDS_E2E_NO_BUILD").is_some() && path.is_file();
        *build = Some(if skip {
            Ok(())
        } else {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(workspace_root())
                .args(["build", "--quiet", "--workspace", "--bins"]);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            match cmd.status() {
                Ok(st) if st.success() => Ok(()),
                Ok(st) => Err(format!("cargo build --workspace --bins failed ({st})")),
                Err(e) => Err(format!("cannot run cargo: {e}")),
            }
        });
    }
    if let Some(Err(e)) = build.as_ref() {
        bail!("building the binaries for {package}/{name}: {e}");
    }
    if !path.is_file() {
        bail!("{name} not found at {}", path.display());
    }
    Ok(path)
}

/// A child process started by [`spawn`]; its stdout and stderr go to a log
/// file. Killed (SIGKILL) on drop.
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: tempfile::NamedTempFile,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = self.log.reopen() {
            let _ = f.seek(SeekFrom::Start(0));
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                Ok(Some(st)) => {
                    self.status = Some(st);
                    false
                }
                Err(_) => false,
            },
            None => false,
        }
    }

    /// kill -9: no chance to flush, commit or leave the group.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            self.status = c.wait().ok();
        }
    }

    /// SIGTERM (graceful shutdown), waiting up to `grace` before SIGKILL.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(mut c) = self.child.take() {
            self.status = terminate(&mut c, grace);
        }
        self.status
    }

    /// Waits for the process to exit on its own, up to `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while let Some(c) = self.child.as_mut() {
            match c.try_wait() {
                Ok(Some(st)) => {
                    self.status = Some(st);
                    self.child = None;
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => return None,
            }
        }
        self.status
    }

    /// Async form of [`Self::wait_timeout`] that does not block the runtime.
    pub async fn wait_timeout_async(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                self.child = None;
                return self.status;
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Exit status, once the process has exited.
    pub fn status(&mut self) -> Option<ExitStatus> {
        let _ = self.is_running();
        self.status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("----- log of {} -----\n{}", self.name, self.log());
        }
    }
}

/// Starts binary `name` (see [`binary`]) with `args` and `env`. The child does
/// not inherit `IDS_*` or `OTEL_*` variables from the test process, only those
/// given; `RUST_LOG` defaults to `info`.
pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Proc> {
    let bin = binary(name)?;
    spawn_path(name, &bin, args, env)
}

/// As [`spawn`], with an explicit executable path.
pub fn spawn_path(
    name: &str,
    bin: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<Proc> {
    let log = tempfile::Builder::new()
        .prefix(&format!("ids-e2e-{name}-"))
        .suffix(".log")
        .tempfile()?;
    // One append-mode file description for both streams, so stdout and stderr
    // interleave instead of overwriting each other.
    let out = std::fs::OpenOptions::new().append(true).open(log.path())?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("IDS_") || k.starts_with("OTEL_") {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd.env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Proc {
        name: name.to_string(),
        child: Some(child),
        log,
        status: None,
    })
}

/// Starts `ids-producer` against `brokers` with extra arguments.
pub fn spawn_producer(brokers: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Proc> {
    let mut all = vec!["--brokers", brokers, "--no-progress"];
    all.extend_from_slice(args);
    spawn("ids-producer", &all, env)
}

/// Starts `ids-processor` against `brokers`; configuration is passed through
/// `IDS_*` variables in `env` (e.g. `IDS_GROUP_ID`, `IDS_EMIT_BENIGN`) and `args`.
pub fn spawn_processor(brokers: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Proc> {
    let mut all_env = vec![("IDS_BROKERS", brokers)];
    all_env.extend_from_slice(env);
    spawn("ids-processor", args, &all_env)
}

/// The machine-readable summary `ids-producer --summary-json` prints as the
/// last line of its stdout.
pub fn producer_summary(p: &Proc) -> anyhow::Result<serde_json::Value> {
    let log = p.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"summary\""))
        .ok_or_else(|| anyhow!("no summary line in producer output:\n{log}"))?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    Ok(v["summary"].clone())
}

/// `$IDS_DATASETS` as a path, or `None` (print "skipped: IDS_DATASETS not set").
/// When it is set but `relative` is missing under it, this fails loudly.
pub fn dataset(relative: &str) -> Option<PathBuf> {
    let Some(root) = std::env::var_os("IDS_DATASETS").filter(|v| !v.is_empty()) else {
        eprintln!("skipped: IDS_DATASETS not set");
        return None;
    };
    let p = PathBuf::from(root).join(relative);
    assert!(
        p.exists(),
        "IDS_DATASETS is set but {} does not exist",
        p.display()
    );
    Some(p)
}

/// Helpers of the processor end-to-end tests (owned by the processor engineer).
pub mod pipeline;

/// In-process OTLP trace receiver of the observability tests.
pub mod otlp;

//! IDS Stream processor: a Kafka consumer-group member that classifies flow
//! records with a model artifact and writes SIEM-ready alerts.
//!
//! ```text
//!   flows ──poll batch──▶ decode ──▶ classify ──▶ alerts (attacks; benign if emit_benign)
//!                           │            │
//!                           └────────────┴──▶ flows.dlq (undecodable / unclassifiable)
//!   ... every alert and dead letter acknowledged ──▶ commit offsets (last + 1)
//! ```
//!
//! * `at_least_once` (default): offsets are committed only after the broker
//!   acknowledged every record the batch produced. A redelivered flow yields
//!   the byte-identical alert with the same deterministic `event.id`.
//! * `exactly_once`: each batch is one Kafka transaction with its offsets sent
//!   to it. Needs a broker with a transaction coordinator (Tansu 0.6.0 has
//!   none; librdkafka's mock cluster and Apache Kafka do).
//!
//! The binary (`ids-processor`) only parses configuration and calls [`run`];
//! the demo and the tests drive the same function.

pub mod alert;
pub mod config;
mod http;
mod kafka;
pub mod metrics;
mod otel;
mod pipeline;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ids_models::artifact::ModelArtifact;
use ids_models::inference::Classifier;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::{AlertFormatOption, AssignmentStrategy, Delivery, InvalidConfig, ProcessorConfig};

/// Why the processor stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// A setting is invalid (the message names the key). Exit code 2.
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    /// The librdkafka settings are inconsistent (names the key). Exit code 2.
    #[error(transparent)]
    KafkaConfig(ids_runtime::config::ConfigError),
    /// The model artifact could not be loaded.
    #[error("cannot load the model artifact {path}: {message}")]
    Model { path: String, message: String },
    /// The HTTP listener could not be bound.
    #[error("cannot listen on http_addr {addr}: {source}")]
    Http {
        addr: String,
        source: std::io::Error,
    },
    /// A Kafka client could not be created or subscribed.
    #[error("kafka: {0}")]
    Kafka(rdkafka::error::KafkaError),
    /// The pipeline thread panicked or could not be joined.
    #[error("pipeline thread failed: {0}")]
    Pipeline(String),
}

impl ProcessorError {
    /// Whether this is a configuration error (the binary exits with code 2).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            ProcessorError::Config(_) | ProcessorError::KafkaConfig(_)
        )
    }
}

/// Runs the processor until `shutdown` is cancelled (or a fatal error):
/// loads the model, serves HTTP on `http_addr`, joins the consumer group and
/// processes batches. On cancellation it finishes (or aborts) the batch in
/// flight, commits, leaves the group and returns `Ok(())`.
pub async fn run(cfg: ProcessorConfig, shutdown: CancellationToken) -> Result<(), ProcessorError> {
    cfg.validate()?;
    let addr = cfg.http_socket_addr()?;

    let model_path = cfg.model_path.clone();
    let artifact = tokio::task::spawn_blocking(move || ModelArtifact::load(&model_path))
        .await
        .map_err(|e| ProcessorError::Pipeline(e.to_string()))?
        .map_err(|e| ProcessorError::Model {
            path: cfg.model_path.display().to_string(),
            message: e.to_string(),
        })?;
    let classifier = Arc::new(Classifier::new(&artifact));
    let class_names: Vec<String> = artifact
        .class_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let metrics = Arc::new(metrics::Metrics::new(
        &class_names,
        artifact.id(),
        artifact.version(),
        artifact.feature_set().as_str(),
    ));
    info!(
        model_id = %artifact.id(),
        model_version = %artifact.version(),
        path = %cfg.model_path.display(),
        "model loaded"
    );
    drop(artifact);
    let shared = Arc::new(kafka::Shared {
        metrics,
        joined: AtomicBool::new(false),
        model_loaded: AtomicBool::new(true),
        stopping: AtomicBool::new(false),
    });

    // HTTP first, so that /healthz answers while the group is joined.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ProcessorError::Http {
            addr: cfg.http_addr.clone(),
            source,
        })?;
    info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "http listening");
    let http_stop = CancellationToken::new();
    let app = http::router(http::HttpState {
        shared: shared.clone(),
        classifier: classifier.clone(),
    });
    let http_task = tokio::spawn({
        let stop = http_stop.clone();
        async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "http server stopped");
            }
        }
    });

    // The pipeline runs on its own thread: librdkafka's calls block.
    let deps = pipeline::PipelineDeps {
        cfg,
        classifier,
        shared: shared.clone(),
        shutdown: shutdown.clone(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("ids-pipeline".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pipeline::run_blocking(deps)
            }))
            .unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                Err(ProcessorError::Pipeline(msg))
            });
            let _ = tx.send(r);
        })
        .map_err(|e| ProcessorError::Pipeline(e.to_string()))?;
    let result = rx
        .await
        .unwrap_or_else(|_| Err(ProcessorError::Pipeline("pipeline thread vanished".into())));

    shared.stopping.store(true, Ordering::Release);
    http_stop.cancel();
    let _ = http_task.await;
    if result.is_ok() {
        info!("processor stopped cleanly");
    }
    result
}

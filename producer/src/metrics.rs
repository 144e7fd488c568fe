//! Optional Prometheus endpoint (`http_addr`) for long producer runs:
//! `GET /metrics` in the Prometheus text format and `GET /healthz`.
//!
//! The counters are the same atomics the delivery callback updates, rendered on
//! scrape, so serving metrics adds nothing to the per-record path.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::{ProducerError, ProducerStats};

/// Renders the counters in the Prometheus text exposition format.
pub fn render(stats: &ProducerStats, topic: &str) -> String {
    let mut out = String::with_capacity(768);
    let counters = [
        (
            "ids_producer_records_sent_total",
            "Flow records handed to the Kafka client.",
            stats.sent.load(Ordering::Relaxed),
        ),
        (
            "ids_producer_records_acknowledged_total",
            "Flow records acknowledged by the broker.",
            stats.acknowledged.load(Ordering::Relaxed),
        ),
        (
            "ids_producer_records_failed_total",
            "Flow records whose delivery failed.",
            stats.failed.load(Ordering::Relaxed),
        ),
    ];
    let topic = topic.replace('\\', "\\\\").replace('"', "\\\"");
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name}{{topic=\"{topic}\"}} {value}");
    }
    out
}

/// Binds `addr` and serves until `stop` is cancelled.
pub(crate) async fn serve(
    addr: &str,
    stats: Arc<ProducerStats>,
    topic: String,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ProducerError> {
    let addr: SocketAddr = addr.parse().map_err(|e| {
        ProducerError::Config(ids_runtime::ConfigError::Invalid {
            key: "http_addr".into(),
            message: format!("`{addr}` is not a socket address: {e}"),
        })
    })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ProducerError::Task(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "metrics on /metrics");
    let topic = Arc::new(topic);
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let (stats, topic) = (stats.clone(), topic.clone());
                async move {
                    (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        render(&stats, &topic),
                    )
                        .into_response()
                }
            }),
        );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let stats = ProducerStats::default();
        stats.sent.store(5, Ordering::Relaxed);
        stats.acknowledged.store(4, Ordering::Relaxed);
        stats.failed.store(1, Ordering::Relaxed);
        let text = render(&stats, "flows");
        assert!(text.contains("# TYPE ids_producer_records_sent_total counter"));
        assert!(text.contains("ids_producer_records_sent_total{topic=\"flows\"} 5"));
        assert!(text.contains("ids_producer_records_acknowledged_total{topic=\"flows\"} 4"));
        assert!(text.contains("ids_producer_records_failed_total{topic=\"flows\"} 1"));
    }
}

//! HTTP endpoints: liveness, readiness, Prometheus metrics and on-demand
//! prediction. One port (`http_addr`), served on the async runtime; nothing
//! here touches Kafka.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ids_models::inference::Classifier;
use ids_schemas::FlowRecord;
use serde::Serialize;

use crate::kafka::Shared;

/// State of the HTTP handlers.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub shared: Arc<Shared>,
    pub classifier: Arc<Classifier>,
}

/// The router with every endpoint.
pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/predict", post(predict))
        .with_state(state)
}

/// Liveness: the process is up and serving.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the model is loaded and the member has received its first
/// assignment from the group (false again once shutdown starts).
async fn readyz(State(s): State<HttpState>) -> Response {
    if s.shared.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let why = if !s
            .shared
            .model_loaded
            .load(std::sync::atomic::Ordering::Acquire)
        {
            "not ready: model not loaded\n"
        } else if s.shared.stopping.load(std::sync::atomic::Ordering::Acquire) {
            "not ready: shutting down\n"
        } else {
            "not ready: no partition assignment from the consumer group yet\n"
        };
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

async fn metrics(State(s): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.shared.metrics.encode(),
    )
        .into_response()
}

/// Verdict returned by `POST /predict`.
#[derive(Debug, Serialize)]
pub(crate) struct PredictResponse<'a> {
    pub class: &'a str,
    pub attack: bool,
    pub confidence: f32,
    pub severity: u8,
    pub model: ModelRef<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ModelRef<'a> {
    pub id: &'a str,
    pub version: &'a str,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

fn bad_request(s: &HttpState, error: &'static str, message: String) -> Response {
    s.shared
        .metrics
        .predict_requests
        .get_or_create(&vec![("outcome", "bad_request".to_string())])
        .inc();
    (StatusCode::BAD_REQUEST, Json(ErrorBody { error, message })).into_response()
}

/// A JSON `FlowRecord` in, a JSON verdict out; 400 with a message on
/// malformed JSON or on features the model cannot use.
async fn predict(State(s): State<HttpState>, body: Bytes) -> Response {
    let rec: FlowRecord = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad_request(
                &s,
                "invalid_json",
                format!("request body is not a JSON FlowRecord: {e}"),
            )
        }
    };
    let c = &*s.classifier;
    match c.classify(&rec) {
        Ok(v) => {
            s.shared
                .metrics
                .predict_requests
                .get_or_create(&vec![("outcome", "ok".to_string())])
                .inc();
            Json(PredictResponse {
                class: c.class_name(v.class),
                attack: c.is_attack(v.class),
                confidence: v.confidence,
                severity: c.severity(&v),
                model: ModelRef {
                    id: c.model_id(),
                    version: c.model_version(),
                },
            })
            .into_response()
        }
        Err(e) => bad_request(&s, e.kind(), e.to_string()),
    }
}

//! `anomaly-detector`: an HTTP service that finds anomalies in numeric series.
//!
//! Routes (see README.md): `POST /detect`, `POST /detect/batch`, `GET /health`,
//! `GET /metrics`. Every error is `{"error": {"code", "message"}}` with a 4xx status;
//! the formulas are in [`stats`].

pub mod stats;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::stats::{Detection, Method};

/// Default request body limit: 16 MiB.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 16 * 1024 * 1024;
/// Default `threshold` when the request has none.
pub const DEFAULT_THRESHOLD: f64 = 2.0;
/// Above this many values a request is computed on the blocking pool.
const BLOCKING_VALUES: usize = 50_000;

/// Service configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub body_limit_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
        }
    }
}

/// An API error: status + `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => ApiError::invalid("invalid_body", message),
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a request with `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
            }
            other => ApiError::new(other.status(), "bad_request", message),
        }
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::from(rejection)),
        }
    }
}

/// `POST /detect` body.
#[derive(Debug, Deserialize)]
pub struct DetectRequest {
    pub values: Vec<f64>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub method: Option<String>,
}

/// One series of `POST /detect/batch`.
#[derive(Debug, Deserialize)]
pub struct SeriesIn {
    pub id: String,
    pub values: Vec<f64>,
}

/// `POST /detect/batch` body.
#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    pub series: Vec<SeriesIn>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SeriesResult {
    pub id: String,
    #[serde(flatten)]
    pub detection: Detection,
}

#[derive(Debug, Serialize)]
pub struct BatchResponse {
    pub results: Vec<SeriesResult>,
}

fn parse_params(threshold: Option<f64>, method: Option<&str>) -> Result<(f64, Method), ApiError> {
    let threshold = threshold.unwrap_or(DEFAULT_THRESHOLD);
    if !threshold.is_finite() || threshold < 0.0 {
        return Err(ApiError::invalid(
            "invalid_threshold",
            format!("threshold must be a finite number >= 0, got {threshold}"),
        ));
    }
    let method = match method {
        None => Method::ZScore,
        Some(m) => Method::parse(m).ok_or_else(|| {
            ApiError::invalid(
                "unknown_method",
                format!("method must be \"zscore\" or \"mad\", got {m:?}"),
            )
        })?,
    };
    Ok((threshold, method))
}

fn check_values(what: &str, values: &[f64]) -> Result<(), ApiError> {
    if values.is_empty() {
        return Err(ApiError::invalid(
            "empty_values",
            format!("{what} must not be empty"),
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ApiError::invalid(
            "non_finite_value",
            format!("{what}[{i}] is not a finite number"),
        ));
    }
    Ok(())
}

/// Run a CPU-bound closure inline for small inputs, on the blocking pool for large ones.
async fn compute<T, F>(size: usize, f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if size < BLOCKING_VALUES {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "detection task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "detection failed",
        )
    })
}

/// Counters exposed on `GET /metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    values_analysed: AtomicU64,
    series_analysed: AtomicU64,
    anomalies_found: AtomicU64,
}

impl Metrics {
    fn record_request(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((route.to_owned(), status)).or_insert(0) += 1;
    }

    fn record_detection(&self, values: usize, detection: &Detection) {
        self.values_analysed
            .fetch_add(values as u64, Ordering::Relaxed);
        self.series_analysed.fetch_add(1, Ordering::Relaxed);
        self.anomalies_found
            .fetch_add(detection.anomalies.len() as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        out.push_str("# HELP anomaly_detector_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE anomaly_detector_requests_total counter\n");
        {
            let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            for ((route, status), n) in map.iter() {
                let route = route.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(
                    out,
                    "anomaly_detector_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        for (name, help, v) in [
            (
                "anomaly_detector_values_analysed_total",
                "Values analysed.",
                &self.values_analysed,
            ),
            (
                "anomaly_detector_series_analysed_total",
                "Series analysed.",
                &self.series_analysed,
            ),
            (
                "anomaly_detector_anomalies_total",
                "Anomalies found.",
                &self.anomalies_found,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
}

async fn detect_handler(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DetectRequest>,
) -> Result<Json<Detection>, ApiError> {
    let (threshold, method) = parse_params(req.threshold, req.method.as_deref())?;
    check_values("values", &req.values)?;
    let n = req.values.len();
    let detection = compute(n, move || stats::detect(&req.values, threshold, method)).await?;
    state.metrics.record_detection(n, &detection);
    Ok(Json(detection))
}

async fn batch_handler(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let (threshold, method) = parse_params(req.threshold, req.method.as_deref())?;
    let mut total = 0;
    for (i, s) in req.series.iter().enumerate() {
        check_values(&format!("series[{i}] (id {:?}).values", s.id), &s.values)?;
        total += s.values.len();
    }
    let results = compute(total, move || {
        req.series
            .into_iter()
            .map(|s| SeriesResult {
                detection: stats::detect(&s.values, threshold, method),
                id: s.id,
            })
            .collect::<Vec<_>>()
    })
    .await?;
    for r in &results {
        state
            .metrics
            .record_detection(r.detection.statistics.count, &r.detection);
    }
    Ok(Json(BatchResponse { results }))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    state.metrics.record_request(&route, status.as_u16());
    tracing::info!(
        %method,
        route = %route,
        status = status.as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    response
}

/// The router with all routes and layers.
pub fn app(config: Config) -> Router {
    let state = AppState {
        metrics: Arc::new(Metrics::default()),
    };
    Router::new()
        .route("/detect", post(detect_handler))
        .route("/detect/batch", post(batch_handler))
        .route("/health", get(health))
        .route("/metrics", get(metrics_handler))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

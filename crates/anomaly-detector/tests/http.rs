//! Handler tests (`oneshot`), statistics properties, and the real binary on port 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anomaly_detector::stats::{self, Method};
use anomaly_detector::{app, Config};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn call(router: Router, req: Request<Body>) -> (StatusCode, Value, String) {
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, value, text)
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn post_json(path: &str, v: Value) -> Request<Body> {
    post(path, v.to_string())
}

fn default_app() -> Router {
    app(Config::default())
}

#[tokio::test]
async fn health_ok() {
    let req = Request::get("/health").body(Body::empty()).unwrap();
    let (status, body, _) = call(default_app(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn detect_zscore_default() {
    let mut values = vec![10.0; 20];
    values[5] = 50.0;
    let (status, body, _) = call(
        default_app(),
        post_json("/detect", json!({"values": values})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["statistics"]["count"], 20);
    assert!(body["statistics"]["mean"].as_f64().unwrap() > 10.0);
    assert!(body["statistics"]["std_dev"].as_f64().unwrap() > 0.0);
    let anomalies = body["anomalies"].as_array().unwrap();
    assert_eq!(anomalies.len(), 1);
    assert_eq!(anomalies[0]["index"], 5);
    assert_eq!(anomalies[0]["value"], 50.0);
    assert!(anomalies[0]["z_score"].as_f64().unwrap() > 2.0);
}

#[tokio::test]
async fn detect_mad_and_constant_series() {
    let (status, body, _) = call(
        default_app(),
        post_json(
            "/detect",
            json!({"values": [1, 1.1, 0.9, 1, 1e9, 1.05, 3], "threshold": 3.5, "method": "mad"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let idx: Vec<u64> = body["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, [4, 6]);
    assert!(body["statistics"]["median"].is_number());

    let (status, body, text) = call(
        default_app(),
        post_json("/detect", json!({"values": [7, 7, 7]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["statistics"]["std_dev"], 0.0);
    assert_eq!(body["anomalies"], json!([]));
    assert!(!text.contains("NaN") && !text.contains("null"));
}

#[tokio::test]
async fn batch() {
    let req = post_json(
        "/detect/batch",
        json!({"series": [
            {"id": "a", "values": [1, 1, 1, 1, 1, 1, 1, 1, 1, 100]},
            {"id": "b", "values": [5]}
        ], "threshold": 2.0}),
    );
    let (status, body, _) = call(default_app(), req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["id"], "a");
    assert_eq!(results[0]["anomalies"][0]["index"], 9);
    assert_eq!(results[1]["id"], "b");
    assert_eq!(results[1]["statistics"]["count"], 1);
    assert_eq!(results[1]["anomalies"], json!([]));
}

async fn expect_error(req: Request<Body>, status: StatusCode, code: &str) {
    let (got, body, text) = call(default_app(), req).await;
    assert_eq!(got, status, "{text}");
    assert_eq!(body["error"]["code"], code, "{text}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn bad_bodies_are_json_errors() {
    use StatusCode as S;
    expect_error(post("/detect", "{not json"), S::BAD_REQUEST, "invalid_json").await;
    expect_error(post("/detect", ""), S::BAD_REQUEST, "invalid_json").await;
    expect_error(
        post_json("/detect", json!({"values": "x"})),
        S::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    expect_error(
        post_json("/detect", json!({"values": [1, null]})),
        S::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    expect_error(
        post_json("/detect", json!({})),
        S::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    expect_error(
        post_json("/detect", json!([1, 2])),
        S::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    expect_error(
        post_json("/detect", json!({"values": []})),
        S::UNPROCESSABLE_ENTITY,
        "empty_values",
    )
    .await;
    expect_error(
        post("/detect", r#"{"values": [1, 1e999]}"#),
        S::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    expect_error(
        post("/detect", r#"{"values": [1, NaN]}"#),
        S::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    expect_error(
        post_json("/detect", json!({"values": [1], "threshold": -1})),
        S::UNPROCESSABLE_ENTITY,
        "invalid_threshold",
    )
    .await;
    expect_error(
        post_json("/detect", json!({"values": [1], "method": "iforest"})),
        S::UNPROCESSABLE_ENTITY,
        "unknown_method",
    )
    .await;
    expect_error(
        post_json(
            "/detect/batch",
            json!({"series": [{"id": "a", "values": [1]}, {"id": "b", "values": []}]}),
        ),
        S::UNPROCESSABLE_ENTITY,
        "empty_values",
    )
    .await;
    let no_ct = Request::post("/detect")
        .body(Body::from(r#"{"values":[1]}"#))
        .unwrap();
    expect_error(no_ct, S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    expect_error(
        Request::get("/nope").body(Body::empty()).unwrap(),
        S::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        Request::get("/detect").body(Body::empty()).unwrap(),
        S::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn body_too_large_is_413() {
    let router = app(Config {
        body_limit_bytes: 64,
    });
    let big = json!({"values": vec![1.0; 100]}).to_string();
    let (status, body, _) = call(router, post("/detect", big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn metrics_count_requests_and_values() {
    let router = default_app();
    let _ = call(
        router.clone(),
        post_json("/detect", json!({"values": [1, 2, 3]})),
    )
    .await;
    let _ = call(router.clone(), post_json("/detect", json!({"values": []}))).await;
    let (status, _, text) = call(
        router,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(r#"anomaly_detector_requests_total{route="/detect",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"anomaly_detector_requests_total{route="/detect",status="422"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("anomaly_detector_values_analysed_total 3"),
        "{text}"
    );
}

// --- properties against a straightforward reference ------------------------------------

fn reference(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-9 * scale.max(1.0)
}

proptest! {
    #[test]
    fn statistics_match_reference(values in prop::collection::vec(-1e6f64..1e6, 1..200)) {
        let s = stats::statistics(&values);
        let (mean, std) = reference(&values);
        let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        prop_assert_eq!(s.count, values.len());
        prop_assert!(close(s.mean, mean, scale), "mean {} vs {}", s.mean, mean);
        prop_assert!(close(s.std_dev, std, scale), "std {} vs {}", s.std_dev, std);
    }

    #[test]
    fn zscore_anomalies_match_reference(
        values in prop::collection::vec(-1e3f64..1e3, 1..100),
        threshold in 0.5f64..4.0,
    ) {
        let d = stats::detect(&values, threshold, Method::ZScore);
        let (mean, std) = reference(&values);
        for a in &d.anomalies {
            prop_assert!(a.z_score.is_finite());
            prop_assert!(a.z_score.abs() > threshold);
            prop_assert!(close(a.z_score, (a.value - mean) / std, 1.0));
        }
        // Everything clearly past the threshold is reported (margin for rounding).
        if std > 0.0 {
            for (i, v) in values.iter().enumerate() {
                if ((v - mean) / std).abs() > threshold + 1e-9 {
                    prop_assert!(d.anomalies.iter().any(|a| a.index == i));
                }
            }
        }
    }

    #[test]
    fn never_nan(values in prop::collection::vec(prop::num::f64::NORMAL | prop::num::f64::ZERO, 1..50),
                 mad in any::<bool>()) {
        let method = if mad { Method::Mad } else { Method::ZScore };
        let d = stats::detect(&values, 2.0, method);
        prop_assert!(d.statistics.mean.is_finite() && d.statistics.std_dev.is_finite());
        prop_assert!(d.anomalies.iter().all(|a| a.z_score.is_finite()));
    }

    #[test]
    fn mad_spike_is_found(base in prop::collection::vec(0.0f64..1.0, 10..60), at in any::<prop::sample::Index>()) {
        let mut values = base;
        let i = at.index(values.len());
        values[i] = 1e9;
        let d = stats::detect(&values, 3.5, Method::Mad);
        prop_assert!(d.anomalies.iter().any(|a| a.index == i));
    }
}

// --- the real binary ---------------------------------------------------------------------

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_anomaly-detector"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn anomaly-detector");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, addr }
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn real_server_on_port_0_and_sigterm() {
    let mut server = start_server();
    let health = http(&server.addr, "GET", "/health", "");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with(r#"{"status":"ok"}"#), "{health}");
    let detect = http(
        &server.addr,
        "POST",
        "/detect",
        r#"{"values":[1,1,1,1,1,1,1,1,1,50]}"#,
    );
    assert!(detect.starts_with("HTTP/1.1 200"), "{detect}");
    assert!(detect.contains(r#""index":9"#), "{detect}");
    let bad = http(&server.addr, "POST", "/detect", "{");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(bad.contains(r#""code":"invalid_json""#), "{bad}");

    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no graceful exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bind_failure_is_a_clean_error() {
    let server = start_server();
    let out = Command::new(env!("CARGO_BIN_EXE_anomaly-detector"))
        .args(["--listen", &server.addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot bind"));
}

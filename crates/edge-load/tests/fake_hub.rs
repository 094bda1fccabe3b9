//! The gateway task against a scripted hub on a loopback port: which batches are sent again
//! (same seqs) and which are not, and how each outcome is counted.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edge_load::fleet::{self, FleetConfig};
use edge_load::http::{ingest_uri, HubClient};
use edge_load::stats::Report;
use edge_load::tokens::Gateway;
use flate2::read::GzDecoder;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the fake hub does with one request.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16, Option<&'static str>),
    /// Store the batch but answer only after this long (past the client's timeout).
    StoreThenStall(Duration),
}

#[derive(Default)]
struct Hub {
    script: VecDeque<Answer>,
    /// The seqs of every request, in arrival order.
    requests: Vec<Vec<u64>>,
    /// (token, seq): what the real hub keys on, (gateway, seq).
    stored: std::collections::BTreeSet<(String, u64)>,
    tokens: Vec<String>,
}

fn seqs(body: &[u8]) -> Vec<u64> {
    let mut json = Vec::new();
    GzDecoder::new(body).read_to_end(&mut json).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_u64().unwrap())
        .collect()
}

async fn handle(
    hub: Arc<Mutex<Hub>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let token = req.headers()["authorization"].to_str().unwrap().to_owned();
    let body = req.into_body().collect().await?.to_bytes();
    let seqs = seqs(&body);
    let answer = {
        let mut h = hub.lock().unwrap();
        h.tokens.push(token.clone());
        h.requests.push(seqs.clone());
        h.script.pop_front().unwrap_or(Answer::Status(200, None))
    };
    let store = |hub: &Arc<Mutex<Hub>>| {
        let mut h = hub.lock().unwrap();
        let before = h.stored.len();
        h.stored.extend(seqs.iter().map(|s| (token.clone(), *s)));
        let accepted = h.stored.len() - before;
        format!(
            r#"{{"data":{{"accepted":{accepted},"duplicates":{},"config_version":1}},"meta":{{}}}}"#,
            seqs.len() - accepted
        )
    };
    let (code, retry_after, body) = match answer {
        Answer::Status(200, _) => (200, None, store(&hub)),
        Answer::Status(code, retry_after) => (
            code,
            retry_after,
            r#"{"error":{"code":"x","message":"scripted"}}"#.to_owned(),
        ),
        Answer::StoreThenStall(d) => {
            let body = store(&hub);
            tokio::time::sleep(d).await;
            (200, None, body)
        }
    };
    let mut resp = Response::builder().status(code);
    if let Some(s) = retry_after {
        resp = resp.header("retry-after", s);
    }
    Ok(resp.body(Full::new(Bytes::from(body))).unwrap())
}

async fn serve(hub: Arc<Mutex<Hub>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let hub = hub.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(hub.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    url
}

async fn run(
    script: Vec<Answer>,
    gateways: usize,
    duration_ms: u64,
    rate: Option<f64>,
) -> (Report, Hub) {
    let hub = Arc::new(Mutex::new(Hub {
        script: script.into(),
        ..Hub::default()
    }));
    let url = serve(hub.clone()).await;
    let cfg = FleetConfig {
        gateways: (0..gateways)
            .map(|i| Gateway {
                id: format!("gw-{i}"),
                token: format!("tok-{i}"),
            })
            .collect(),
        batch: 10,
        duration: Duration::from_millis(duration_ms),
        rate,
        concurrency: None,
        sensors: 3,
        seq_start: 1,
        gzip_level: Some(1),
    };
    let client = HubClient::new(ingest_uri(&url).unwrap(), Duration::from_millis(300), true);
    let report = fleet::run(cfg, client).await;
    let hub = std::mem::take(&mut *hub.lock().unwrap());
    (report, hub)
}

#[tokio::test]
async fn a_busy_answer_sends_the_same_seqs_again_a_refusal_does_not() {
    let script = vec![
        Answer::Status(503, None),
        Answer::Status(429, Some("0")),
        Answer::Status(422, None),
    ];
    let (report, hub) = run(script, 1, 400, None).await;
    let first: Vec<u64> = (1..=10).collect();
    // 503 and 429: the same batch again; 422: dropped, the next batch has new seqs.
    assert_eq!(hub.requests[0], first);
    assert_eq!(hub.requests[1], first);
    assert_eq!(hub.requests[2], first);
    assert_eq!(hub.requests[3], (11..=20).collect::<Vec<_>>());
    assert!(hub.tokens.iter().all(|t| t == "Bearer tok-0"));
    assert_eq!(report.non_2xx.len(), 3);
    assert_eq!(report.readings_rejected, 10);
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.readings_unconfirmed, 0);
    // Everything the hub stored was acked, and everything sent was acked or refused.
    assert_eq!(report.accepted, hub.stored.len() as u64);
    assert_eq!(
        report.readings_sent,
        report.readings_acked + report.readings_rejected
    );
    assert_eq!(report.requests, hub.requests.len() as u64);
    assert!(report.error_samples["422"].contains("scripted"));
}

#[tokio::test]
async fn an_answer_lost_to_the_timeout_comes_back_as_duplicates() {
    let script = vec![Answer::StoreThenStall(Duration::from_millis(800))];
    let (report, hub) = run(script, 1, 700, None).await;
    assert_eq!(
        hub.requests[0], hub.requests[1],
        "the timed-out batch is sent again"
    );
    assert_eq!(report.transport_errors["timeout"], 1);
    assert_eq!(report.duplicates, 10);
    assert_eq!(report.readings_acked, hub.stored.len() as u64);
    assert_eq!(report.readings_unconfirmed, 0);
}

#[tokio::test]
async fn a_paced_fleet_keeps_to_its_slots() {
    // 2 gateways x 10 readings at 50/s: each has a slot every 0.4 s, the second 0.2 s after
    // the first; before the 0.9 s deadline that is 0, 0.4, 0.8 and 0.2, 0.6 (100 ms margins).
    let (report, hub) = run(vec![], 2, 900, Some(50.0)).await;
    assert_eq!(report.requests, 5, "{report:?}");
    assert_eq!(hub.stored.len(), 50, "each gateway's batches stored once");
    assert_eq!((report.accepted, report.duplicates), (50, 0));
    assert_eq!(report.rate_target, Some(50.0));
    let per_gateway = |t: &str| hub.stored.iter().filter(|(tok, _)| tok == t).count();
    assert_eq!(
        (per_gateway("Bearer tok-0"), per_gateway("Bearer tok-1")),
        (30, 20)
    );
}

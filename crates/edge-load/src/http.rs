//! The HTTP side: one pooled HTTP/1.1 client shared by every simulated gateway.
//!
//! A pooled keep-alive client opens as many connections as there are requests in flight, so
//! the hub sees what a fleet of agents (one keep-alive httpx client each) gives it: one
//! connection per busy gateway.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{
    HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT,
};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::stats::Outcome;
use crate::wire;

/// The ingest URL for a hub base URL such as `http://127.0.0.1:8080` (a path prefix is kept).
pub fn ingest_uri(hub: &str) -> Result<Uri, String> {
    let base = hub.trim_end_matches('/');
    if base.starts_with("https://") {
        return Err(format!(
            "{hub}: https is not supported; point --hub at the hub's own listen address"
        ));
    }
    if !base.starts_with("http://") {
        return Err(format!("{hub}: --hub must be an http:// URL"));
    }
    format!("{base}/api/v1/ingest")
        .parse()
        .map_err(|e| format!("{hub}: not a URL: {e}"))
}

#[derive(Clone)]
pub struct HubClient {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    timeout: Duration,
    gzip: bool,
}

impl HubClient {
    pub fn new(uri: Uri, timeout: Duration, gzip: bool) -> Self {
        let mut connector = HttpConnector::new();
        // Small requests and answers: without it Nagle + delayed ACK add up to 40 ms.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        HubClient {
            client,
            uri,
            timeout,
            gzip,
        }
    }

    /// POST one encoded batch with `token` (a ready `Bearer ...` header value).
    pub async fn post(&self, token: &HeaderValue, body: Bytes) -> Outcome {
        match tokio::time::timeout(self.timeout, self.send(token, body)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Transport {
                kind: "timeout",
                detail: format!("no answer within {:?}", self.timeout),
            },
        }
    }

    async fn send(&self, token: &HeaderValue, body: Bytes) -> Outcome {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(AUTHORIZATION, token.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("edge-load/", env!("CARGO_PKG_VERSION")));
        if self.gzip {
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        let req = req
            .body(Full::new(body))
            .expect("method, uri and headers are valid");
        let resp = match self.client.request(req).await {
            Ok(resp) => resp,
            Err(e) => {
                let kind = if e.is_connect() { "connect" } else { "io" };
                return Outcome::Transport {
                    kind,
                    detail: error_chain(&e),
                };
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .and_then(|s| Duration::try_from_secs_f64(s).ok());
        let bytes = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return Outcome::Transport {
                    kind: "io",
                    detail: error_chain(&e),
                }
            }
        };
        if status.is_success() {
            match wire::decode_response(&bytes) {
                Ok(r) => Outcome::Acked {
                    accepted: r.accepted,
                    duplicates: r.duplicates,
                },
                // A 2xx we cannot read is not an ack we can count on.
                Err(e) => Outcome::Status {
                    code: status.as_u16(),
                    body: format!(
                        "unreadable 2xx body ({e}): {}",
                        String::from_utf8_lossy(&bytes)
                    ),
                    retry: Some(Duration::ZERO),
                },
            }
        } else {
            let code = status.as_u16();
            Outcome::Status {
                code,
                body: String::from_utf8_lossy(&bytes).into_owned(),
                // As the agent does: busy or broken hubs get the batch again, a refusal does not.
                retry: (code == 429 || code == 408 || status.is_server_error())
                    .then(|| retry_after.unwrap_or(Duration::ZERO)),
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_uri_from_a_base_url() {
        assert_eq!(
            ingest_uri("http://127.0.0.1:8080/").unwrap().to_string(),
            "http://127.0.0.1:8080/api/v1/ingest"
        );
        assert_eq!(
            ingest_uri("http://h:1/prefix").unwrap().path(),
            "/prefix/api/v1/ingest"
        );
        assert!(ingest_uri("https://h").unwrap_err().contains("https"));
        assert!(ingest_uri("h:8080").is_err());
    }
}

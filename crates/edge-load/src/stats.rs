//! Counters and latency histograms. Each gateway task owns one `Stats` (no locks on the hot
//! path); the runner merges them when the tasks end and turns the sum into a `Report`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, from 1 µs to one hour, 3 significant digits.
const MAX_MICROS: u64 = 3_600_000_000;
/// Error bodies kept per status code, so a report says why, not only how often.
const SAMPLE_CHARS: usize = 300;

#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    pub fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS);
        // Saturate instead of failing: one absurd sample must not lose the others.
        self.0.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub fn merge(&mut self, other: &Latency) {
        self.0
            .add(&other.0)
            .expect("histograms with the same bounds add");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if self.0.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            p50: ms(self.0.value_at_quantile(0.50)),
            p90: ms(self.0.value_at_quantile(0.90)),
            p99: ms(self.0.value_at_quantile(0.99)),
            max: ms(self.0.max()),
            mean: self.0.mean().round() / 1000.0,
        }
    }
}

/// Milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// What one request came to, from the gateway's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx with the hub's counts.
    Acked { accepted: u64, duplicates: u64 },
    /// A non-2xx answer. `retry`: the batch is sent again after at least this pause (429 with
    /// its Retry-After, 5xx); `None`: refused for good (other 4xx), as the agent treats them.
    Status {
        code: u16,
        body: String,
        retry: Option<Duration>,
    },
    /// No answer (connect refused, reset, timeout): the hub may or may not hold the batch.
    Transport { kind: &'static str, detail: String },
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// From the time a request was due to its answer: in `--rate` mode this includes any
    /// wait behind a slow hub (no coordinated omission), otherwise it equals `service`.
    pub latency: Latency,
    /// From the first byte sent to the answer.
    pub service: Latency,
    pub requests: u64,
    pub ok: u64,
    /// Distinct readings put on the wire (a retried batch counts once).
    pub readings_sent: u64,
    /// Readings in batches the hub answered 2xx: `accepted + duplicates`.
    pub readings_acked: u64,
    pub accepted: u64,
    pub duplicates: u64,
    /// Readings in batches the hub refused for good (4xx other than 429), or still refused
    /// (429, 5xx) when the run ended. A hub that answers has applied nothing of such a batch.
    pub readings_rejected: u64,
    /// Readings whose last attempt got no definite answer when the run ended.
    pub readings_unconfirmed: u64,
    pub non_2xx: BTreeMap<u16, u64>,
    pub transport_errors: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
}

impl Stats {
    /// Count one answered (or failed) request of a batch of `n` readings.
    pub fn record(&mut self, n: u64, outcome: &Outcome, latency: Duration, service: Duration) {
        self.requests += 1;
        self.latency.record(latency);
        self.service.record(service);
        match outcome {
            Outcome::Acked {
                accepted,
                duplicates,
            } => {
                self.ok += 1;
                self.readings_acked += n;
                self.accepted += accepted;
                self.duplicates += duplicates;
            }
            Outcome::Status { code, body, retry } => {
                *self.non_2xx.entry(*code).or_default() += 1;
                self.error_samples
                    .entry(code.to_string())
                    .or_insert_with(|| body.chars().take(SAMPLE_CHARS).collect());
                if retry.is_none() {
                    self.readings_rejected += n;
                }
            }
            Outcome::Transport { kind, detail } => {
                *self.transport_errors.entry((*kind).to_owned()).or_default() += 1;
                self.error_samples
                    .entry((*kind).to_owned())
                    .or_insert_with(|| detail.chars().take(SAMPLE_CHARS).collect());
            }
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.latency.merge(&other.latency);
        self.service.merge(&other.service);
        self.requests += other.requests;
        self.ok += other.ok;
        self.readings_sent += other.readings_sent;
        self.readings_acked += other.readings_acked;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.readings_rejected += other.readings_rejected;
        self.readings_unconfirmed += other.readings_unconfirmed;
        for (k, v) in &other.non_2xx {
            *self.non_2xx.entry(*k).or_default() += v;
        }
        for (k, v) in &other.transport_errors {
            *self.transport_errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.error_samples {
            self.error_samples
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
}

/// One run's result: printed as text, or as one JSON object with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub gateways: usize,
    pub batch: usize,
    pub duration_s: f64,
    /// From the first request to the last answer.
    pub elapsed_s: f64,
    /// Offered load with `--rate`, readings/s; null when sending as fast as the hub takes it.
    pub rate_target: Option<f64>,
    /// Readings the hub acknowledged (2xx) per second of `elapsed_s`.
    pub readings_per_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub readings_sent: u64,
    pub readings_acked: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub readings_rejected: u64,
    pub readings_unconfirmed: u64,
    pub latency_ms: LatencySummary,
    pub service_ms: LatencySummary,
    pub non_2xx: BTreeMap<u16, u64>,
    pub transport_errors: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
}

impl Report {
    pub fn new(
        stats: &Stats,
        gateways: usize,
        batch: usize,
        duration: Duration,
        elapsed: Duration,
        rate_target: Option<f64>,
    ) -> Self {
        let secs = elapsed.as_secs_f64();
        Report {
            gateways,
            batch,
            duration_s: duration.as_secs_f64(),
            elapsed_s: (secs * 1000.0).round() / 1000.0,
            rate_target,
            readings_per_s: if secs > 0.0 {
                (stats.readings_acked as f64 / secs * 10.0).round() / 10.0
            } else {
                0.0
            },
            requests: stats.requests,
            ok: stats.ok,
            readings_sent: stats.readings_sent,
            readings_acked: stats.readings_acked,
            accepted: stats.accepted,
            duplicates: stats.duplicates,
            readings_rejected: stats.readings_rejected,
            readings_unconfirmed: stats.readings_unconfirmed,
            latency_ms: stats.latency.summary(),
            service_ms: stats.service.summary(),
            non_2xx: stats.non_2xx.clone(),
            transport_errors: stats.transport_errors.clone(),
            error_samples: stats.error_samples.clone(),
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let rate = match self.rate_target {
            Some(r) => format!("at {r:.0} readings/s offered"),
            None => "as fast as the hub takes them".to_owned(),
        };
        let _ = writeln!(
            s,
            "{} gateways x {}-reading batches, {rate}, {:.1} s",
            self.gateways, self.batch, self.elapsed_s
        );
        let _ = writeln!(
            s,
            "readings/s:  {:.0}  ({} acked: {} accepted, {} duplicates; {} sent, {} rejected, {} unconfirmed)",
            self.readings_per_s,
            self.readings_acked,
            self.accepted,
            self.duplicates,
            self.readings_sent,
            self.readings_rejected,
            self.readings_unconfirmed
        );
        let _ = writeln!(s, "requests:    {} ({} ok)", self.requests, self.ok);
        for (name, l) in [("latency", &self.latency_ms), ("service", &self.service_ms)] {
            let _ = writeln!(
                s,
                "{name:8} ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  mean {:.1}",
                l.p50, l.p90, l.p99, l.max, l.mean
            );
        }
        if self.non_2xx.is_empty() && self.transport_errors.is_empty() {
            let _ = writeln!(s, "errors:      none");
        }
        for (code, n) in &self.non_2xx {
            let sample = self.error_samples.get(&code.to_string());
            let _ = writeln!(s, "HTTP {code}:    {n}  {}", sample.map_or("", |v| v));
        }
        for (kind, n) in &self.transport_errors {
            let sample = self.error_samples.get(kind);
            let _ = writeln!(s, "{kind}:  {n}  {}", sample.map_or("", |v| v));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut l = Latency::default();
        for i in 1..=1000 {
            l.record(ms(i));
        }
        let s = l.summary();
        // 3 significant digits: within 0.1% of the exact order statistic.
        assert!((s.p50 - 500.0).abs() <= 0.5, "{s:?}");
        assert!((s.p90 - 900.0).abs() <= 0.9, "{s:?}");
        assert!((s.p99 - 990.0).abs() <= 1.0, "{s:?}");
        assert!((s.max - 1000.0).abs() <= 1.0, "{s:?}");
        assert!((s.mean - 500.5).abs() <= 0.5, "{s:?}");
    }

    #[test]
    fn empty_and_out_of_range_samples() {
        assert_eq!(Latency::default().summary(), LatencySummary::default());
        let mut l = Latency::default();
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(10 * 3600));
        assert_eq!(l.count(), 2);
        assert!(l.summary().max >= 3_599_000.0);
    }

    #[test]
    fn counts_outcomes_and_merges() {
        let mut a = Stats {
            readings_sent: 300,
            ..Stats::default()
        };
        a.record(
            100,
            &Outcome::Acked {
                accepted: 90,
                duplicates: 10,
            },
            ms(5),
            ms(4),
        );
        a.record(
            100,
            &Outcome::Status {
                code: 503,
                body: "busy".into(),
                retry: Some(Duration::ZERO),
            },
            ms(7),
            ms(7),
        );
        a.record(
            100,
            &Outcome::Status {
                code: 422,
                body: "bad ts".into(),
                retry: None,
            },
            ms(1),
            ms(1),
        );
        let mut b = Stats {
            readings_sent: 100,
            readings_unconfirmed: 100,
            ..Stats::default()
        };
        b.record(
            100,
            &Outcome::Transport {
                kind: "timeout",
                detail: "no answer in 10 s".into(),
            },
            ms(10_000),
            ms(10_000),
        );
        b.record(
            100,
            &Outcome::Status {
                code: 503,
                body: "other".into(),
                retry: Some(Duration::ZERO),
            },
            ms(2),
            ms(2),
        );
        a.merge(&b);
        assert_eq!((a.requests, a.ok), (5, 1));
        assert_eq!((a.readings_sent, a.readings_acked), (400, 100));
        assert_eq!((a.accepted, a.duplicates), (90, 10));
        assert_eq!((a.readings_rejected, a.readings_unconfirmed), (100, 100));
        assert_eq!(a.non_2xx, BTreeMap::from([(422, 1), (503, 2)]));
        assert_eq!(a.transport_errors, BTreeMap::from([("timeout".into(), 1)]));
        assert_eq!(a.error_samples["503"], "busy");
        assert_eq!(a.latency.count(), 5);

        let r = Report::new(&a, 2, 100, ms(2000), ms(2000), None);
        assert_eq!(r.readings_per_s, 50.0);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["non_2xx"]["503"], 2);
        assert_eq!(json["rate_target"], serde_json::Value::Null);
        let text = r.to_text();
        assert!(text.contains("HTTP 503:    2  busy"), "{text}");
        assert!(text.contains("timeout:  1"), "{text}");
    }
}

//! One simulated gateway: builds batches with real, increasing seqs and posts them like the
//! agent does, retrying the same batch (same seqs) after a busy answer or a lost connection, so
//! the hub's idempotence is exercised and every reading is counted exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

use crate::http::HubClient;
use crate::stats::{Outcome, Stats};
use crate::tokens::Gateway;
use crate::wire::{self, Batch, Reading};

/// Pause before re-sending after a failure when not paced by `--rate`, so a hub that refuses
/// everything is not spun against at full speed.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

pub fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Makes one gateway's readings: `sensors` keys, seqs from `seq_start` up, values from a
/// small deterministic generator (the hub stores whatever is finite).
pub struct Generator {
    gateway_id: String,
    keys: Vec<String>,
    next_seq: u64,
    next_key: usize,
    rng: u64,
    level: Option<u32>,
}

impl Generator {
    pub fn new(gateway_id: &str, sensors: usize, seq_start: u64, level: Option<u32>) -> Self {
        // The key's first level is the gateway id, so every gateway has sensors of its own
        // (keys are per factory at the hub); a `/` in an id would add a level.
        let line = gateway_id.replace('/', "_");
        let keys = (0..sensors.max(1))
            .map(|j| format!("{line}/m{}/s{j}", j / 10))
            .collect();
        let seed = gateway_id.bytes().fold(0x9E37_79B9_7F4A_7C15_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        });
        Generator {
            gateway_id: gateway_id.to_owned(),
            keys,
            next_seq: seq_start.max(1),
            next_key: 0,
            rng: seed | 1,
            level,
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The next batch of `n` readings stamped around `now` (epoch seconds), encoded for the
    /// wire, or `None` once the seqs would pass the hub's 40-bit limit.
    pub fn next_batch(&mut self, n: usize, now: f64) -> Option<Bytes> {
        if self.next_seq + n as u64 > wire::MAX_SEQ {
            return None;
        }
        let mut readings = Vec::with_capacity(n);
        for i in 0..n {
            let value = sample(&mut self.rng);
            let key = self.next_key;
            self.next_key = (self.next_key + 1) % self.keys.len();
            // Spread over the last few ms, oldest first, as a buffer would send them.
            let ts = now - (n - 1 - i) as f64 * 0.001;
            readings.push(Reading(
                self.next_seq + i as u64,
                &self.keys[key],
                ts,
                value,
                Some("C"),
            ));
        }
        let batch = Batch::new(&self.gateway_id, readings, now);
        let body = wire::encode(&batch, self.level);
        self.next_seq += n as u64;
        Some(Bytes::from(body))
    }
}

/// A value in 20.00..120.00 from a xorshift64 state: cheap, and enough to make values vary.
pub fn sample(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    // k / 100 is written back as two decimals (20 + k / 100 would not always be).
    (2_000 + *state % 10_000) as f64 / 100.0
}

/// How one gateway paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub start: Instant,
    /// Stop starting requests at this instant (one in flight then finishes).
    pub deadline: Instant,
    /// With `--rate`: this gateway's batch interval and its first slot after `start`.
    pub every: Option<(Duration, Duration)>,
}

pub struct Task {
    pub client: HubClient,
    pub gateway: Gateway,
    pub generator: Generator,
    pub batch: usize,
    pub pace: Pace,
    /// `--concurrency`: the fleet's bound on requests in flight.
    pub limit: Option<Arc<Semaphore>>,
}

impl Task {
    pub async fn run(mut self) -> (Stats, Option<Instant>) {
        let mut stats = Stats::default();
        let mut last_answer = None;
        let token = HeaderValue::try_from(format!("Bearer {}", self.gateway.token))
            .expect("tokens::parse admits only visible ASCII tokens");
        let mut slot = self.pace.every.map(|(_, first)| self.pace.start + first);
        // A batch the hub has not definitely answered: sent again, same seqs.
        let mut pending: Option<Bytes> = None;
        // Whether the hub answered the pending batch's last attempt (so holds none of it).
        let mut pending_answered = false;
        let n = self.batch as u64;
        loop {
            let due = match slot {
                Some(at) => {
                    if at >= self.pace.deadline {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    at
                }
                None => Instant::now(),
            };
            if Instant::now() >= self.pace.deadline {
                break;
            }
            if let (Some(at), Some((every, _))) = (slot.as_mut(), self.pace.every) {
                *at += every;
            }
            let body = match pending.take() {
                Some(b) => b,
                None => match self.generator.next_batch(self.batch, epoch_now()) {
                    Some(b) => {
                        stats.readings_sent += n;
                        b
                    }
                    None => break,
                },
            };
            let _permit = match &self.limit {
                Some(sem) => Some(sem.acquire().await.expect("the semaphore is never closed")),
                None => None,
            };
            let sent = Instant::now();
            let outcome = self.client.post(&token, body.clone()).await;
            let done = Instant::now();
            stats.record(n, &outcome, done - due, done - sent);
            last_answer = Some(done);
            match outcome {
                Outcome::Acked { .. } | Outcome::Status { retry: None, .. } => {
                    pending_answered = false;
                }
                Outcome::Status {
                    retry: Some(after), ..
                } => {
                    pending = Some(body);
                    pending_answered = true;
                    // Paced gateways keep their slots; the others wait a little at least.
                    let pause = if slot.is_none() {
                        after.max(RETRY_PAUSE)
                    } else {
                        after
                    };
                    let until = (Instant::now() + pause).min(self.pace.deadline);
                    tokio::time::sleep_until(until.into()).await;
                }
                Outcome::Transport { .. } => {
                    pending = Some(body);
                    pending_answered = false;
                    if slot.is_none() {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            }
        }
        if pending.is_some() {
            if pending_answered {
                stats.readings_rejected += n;
            } else {
                stats.readings_unconfirmed += n;
            }
        }
        (stats, last_answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn decode(body: &[u8]) -> serde_json::Value {
        let mut out = Vec::new();
        GzDecoder::new(body).read_to_end(&mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn batches_carry_increasing_seqs_and_valid_keys() {
        let mut g = Generator::new("gw/1", 3, 10, Some(1));
        let a = decode(&g.next_batch(4, 1000.0).unwrap());
        let b = decode(&g.next_batch(4, 1001.0).unwrap());
        let seqs: Vec<u64> = [&a, &b]
            .iter()
            .flat_map(|v| v["readings"].as_array().unwrap().clone())
            .map(|r| r[0].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (10..18).collect::<Vec<_>>());
        assert_eq!(g.next_seq(), 18);
        assert_eq!(a["gateway_id"], "gw/1");
        let keys: Vec<&str> = a["readings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[1].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["gw_1/m0/s0", "gw_1/m0/s1", "gw_1/m0/s2", "gw_1/m0/s0"]
        );
        let last = &a["readings"][3];
        assert_eq!(last[2].as_f64().unwrap(), 1000.0);
        assert!(a["readings"][0][2].as_f64().unwrap() < 1000.0);
    }

    #[test]
    fn stops_before_the_seq_limit() {
        let mut g = Generator::new("gw", 1, wire::MAX_SEQ - 3, None);
        // Seqs MAX-3 .. MAX-1 are the last valid ones; one more would pass 2^40 - 1.
        assert!(g.next_batch(4, 1.0).is_none());
        assert!(g.next_batch(3, 1.0).is_some());
        assert!(g.next_batch(1, 1.0).is_none());
    }
}

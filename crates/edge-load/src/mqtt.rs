//! `edge-load mqtt`: simulated sensors publishing `{"value": .., "ts": ..}` at QoS 1, at a
//! rate, from one or more client connections, counting the broker's PUBACKs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::gateway::{epoch_now, sample};

const REQUIRED: [&str; 3] = ["line", "machine", "sensor"];

/// A topic template such as `factory/{line}/{machine}/{sensor}`, as `shared/topics.py` reads
/// it: each level a literal or one `{name}`; other names than the three get `_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate(Vec<Level>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(String),
    Field(String),
}

impl TopicTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut levels = Vec::new();
        for level in template.split('/') {
            let name = level.strip_prefix('{').and_then(|l| l.strip_suffix('}'));
            match name {
                Some(n)
                    if !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c == '_') =>
                {
                    if levels.contains(&Level::Field(n.to_owned())) {
                        return Err(format!(
                            "topic template {template:?}: {{{n}}} appears twice"
                        ));
                    }
                    levels.push(Level::Field(n.to_owned()));
                }
                _ if level.contains(['{', '}', '+', '#']) || level.is_empty() => {
                    return Err(format!(
                        "topic template {template:?}: level {level:?} must be a literal or exactly one {{placeholder}}"
                    ));
                }
                _ => levels.push(Level::Literal(level.to_owned())),
            }
        }
        for need in REQUIRED {
            if !levels.contains(&Level::Field(need.to_owned())) {
                return Err(format!("topic template {template:?} lacks {{{need}}}"));
            }
        }
        Ok(TopicTemplate(levels))
    }

    pub fn topic(&self, line: &str, machine: &str, sensor: &str) -> String {
        self.0
            .iter()
            .map(|l| match l {
                Level::Literal(s) => s.as_str(),
                Level::Field(n) => match n.as_str() {
                    "line" => line,
                    "machine" => machine,
                    "sensor" => sensor,
                    _ => "_",
                },
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The topic of simulated sensor `k`: distinct for every k.
    pub fn sensor_topic(&self, k: usize) -> String {
        self.topic(
            &format!("line{}", k / 100),
            &format!("m{}", k / 10 % 10),
            &format!("s{}", k % 10),
        )
    }
}

#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    /// Messages/s over all clients; `None`: as fast as the broker acknowledges.
    pub rate: Option<f64>,
    pub count: u64,
    pub template: TopicTemplate,
    pub sensors: usize,
    pub clients: usize,
    pub inflight: u16,
    pub client_id: String,
    /// How long to wait for the broker's acks once everything is handed over.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct MqttReport {
    pub count: u64,
    pub published: u64,
    /// PUBACKs received (QoS 1: the broker has the message).
    pub acked: u64,
    pub clients: usize,
    pub sensors: usize,
    pub rate_target: Option<f64>,
    /// From the first publish to the last ack.
    pub elapsed_s: f64,
    pub messages_per_s: f64,
    pub errors: BTreeMap<String, u64>,
    pub error_sample: Option<String>,
}

impl MqttReport {
    pub fn complete(&self) -> bool {
        self.acked >= self.count
    }

    pub fn to_text(&self) -> String {
        let target = self.rate_target.map_or("as fast as acked".to_owned(), |r| {
            format!("{r:.0}/s offered")
        });
        let mut s = format!(
            "mqtt: {} of {} messages acked (QoS 1) from {} client(s), {} sensors, {target}, {:.2} s\nmessages/s:  {:.0}\n",
            self.acked, self.count, self.clients, self.sensors, self.elapsed_s, self.messages_per_s
        );
        for (kind, n) in &self.errors {
            s.push_str(&format!("{kind}: {n}\n"));
        }
        if let Some(e) = &self.error_sample {
            s.push_str(&format!("first error: {e}\n"));
        }
        s
    }
}

#[derive(Default)]
struct Shared {
    acked: AtomicU64,
    published: AtomicU64,
    errors: Mutex<(BTreeMap<String, u64>, Option<String>)>,
}

/// Messages client `c` of `clients` sends out of `count`: the fleet's messages round-robin.
pub fn share(count: u64, clients: usize, c: usize) -> u64 {
    let clients = clients as u64;
    count / clients + u64::from((c as u64) < count % clients)
}

pub async fn run(cfg: MqttConfig) -> MqttReport {
    let shared = Arc::new(Shared::default());
    let topics: Arc<Vec<String>> = Arc::new(
        (0..cfg.sensors.max(1))
            .map(|k| cfg.template.sensor_topic(k))
            .collect(),
    );
    let start = Instant::now();
    let clients = cfg.clients.max(1);
    let mut handles = Vec::new();
    for c in 0..clients {
        let n = share(cfg.count, clients, c);
        let per_client_rate = cfg.rate.map(|r| r / clients as f64);
        handles.push(tokio::spawn(client(
            cfg.clone(),
            c,
            n,
            per_client_rate,
            topics.clone(),
            shared.clone(),
            start,
        )));
    }
    let mut last = start;
    for h in handles {
        if let Ok(Some(t)) = h.await {
            last = last.max(t);
        }
    }
    let elapsed = (last - start).as_secs_f64();
    let acked = shared.acked.load(Ordering::Relaxed);
    let (errors, error_sample) = shared.errors.lock().await.clone();
    MqttReport {
        count: cfg.count,
        published: shared.published.load(Ordering::Relaxed),
        acked,
        clients,
        sensors: topics.len(),
        rate_target: cfg.rate,
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        messages_per_s: if elapsed > 0.0 {
            (acked as f64 / elapsed * 10.0).round() / 10.0
        } else {
            0.0
        },
        errors,
        error_sample,
    }
}

/// One connection: publishes its share, paced, and returns when the broker has acked it all
/// (the instant of the last ack), or `None` when it gave up.
async fn client(
    cfg: MqttConfig,
    c: usize,
    n: u64,
    rate: Option<f64>,
    topics: Arc<Vec<String>>,
    shared: Arc<Shared>,
    start: Instant,
) -> Option<Instant> {
    let mut opts = MqttOptions::new(format!("{}-{c}", cfg.client_id), &cfg.host, cfg.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    opts.set_inflight(cfg.inflight.max(1));
    let (client, mut eventloop) = AsyncClient::new(opts, usize::from(cfg.inflight.max(1)) * 4);
    let clients = cfg.clients.max(1);
    // When the publisher last handed a message over, in ns since `start`.
    let progress = Arc::new(AtomicU64::new(0));
    let publisher = {
        let client = client.clone();
        let shared = shared.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut rng: u64 = 0x2545_F491_4F6C_DD1D ^ (c as u64 + 1);
            for j in 0..n {
                if let Some(r) = rate {
                    let due = start + Duration::from_secs_f64(j as f64 / r);
                    if due > Instant::now() {
                        tokio::time::sleep_until(due.into()).await;
                    }
                }
                let value = sample(&mut rng);
                let global = j * clients as u64 + c as u64;
                let topic = &topics[(global % topics.len() as u64) as usize];
                let payload = format!("{{\"value\":{value},\"ts\":{:.3}}}", epoch_now());
                if client
                    .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    // The event loop is gone: nothing more can be sent.
                    return;
                }
                shared.published.fetch_add(1, Ordering::Relaxed);
                let since = u64::try_from((Instant::now() - start).as_nanos()).unwrap_or(u64::MAX);
                progress.store(since, Ordering::Relaxed);
            }
        })
    };
    let mut acked = 0u64;
    let mut last_ack = None;
    loop {
        if acked >= n {
            break;
        }
        // Give up after `timeout` without progress (no publish handed over, no ack): a broker
        // that never answers must not hold the run forever, a slow rate must not end it.
        let idle_since = start
            + Duration::from_nanos(progress.load(Ordering::Relaxed))
                .max(last_ack.map_or(Duration::ZERO, |t: Instant| t - start));
        let give_up = idle_since + cfg.timeout;
        if Instant::now() >= give_up {
            break;
        }
        match tokio::time::timeout_at(give_up.into(), eventloop.poll()).await {
            Err(_) => continue,
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                acked += 1;
                shared.acked.fetch_add(1, Ordering::Relaxed);
                last_ack = Some(Instant::now());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let mut errs = shared.errors.lock().await;
                *errs.0.entry("connection".to_owned()).or_default() += 1;
                errs.1.get_or_insert_with(|| e.to_string());
                drop(errs);
                // The event loop reconnects on the next poll and re-sends what was unacked.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    publisher.abort();
    if acked == n {
        // A clean DISCONNECT, so the broker does not log a dropped client.
        if client.disconnect().await.is_ok() {
            let until = Instant::now() + Duration::from_secs(1);
            while let Ok(Ok(ev)) = tokio::time::timeout_at(until.into(), eventloop.poll()).await {
                if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        }
        Some(last_ack.unwrap_or(start))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_makes_distinct_topics() {
        let t = TopicTemplate::parse("factory/{line}/{machine}/{sensor}").unwrap();
        assert_eq!(t.sensor_topic(0), "factory/line0/m0/s0");
        assert_eq!(t.sensor_topic(123), "factory/line1/m2/s3");
        let all: std::collections::HashSet<String> = (0..1000).map(|k| t.sensor_topic(k)).collect();
        assert_eq!(all.len(), 1000);
        let t = TopicTemplate::parse("{site}/x/{sensor}/{machine}/{line}").unwrap();
        assert_eq!(t.topic("l", "m", "s"), "_/x/s/m/l");
    }

    #[test]
    fn template_errors() {
        assert!(TopicTemplate::parse("factory/{line}/{machine}")
            .unwrap_err()
            .contains("lacks {sensor}"));
        assert!(TopicTemplate::parse("f/{line}/{line}/{machine}/{sensor}")
            .unwrap_err()
            .contains("twice"));
        assert!(TopicTemplate::parse("f/+/{line}/{machine}/{sensor}").is_err());
        assert!(TopicTemplate::parse("f/a{line}/{machine}/{sensor}").is_err());
    }

    #[test]
    fn shares_add_up() {
        for (count, clients) in [(10, 3), (2, 4), (0, 1), (1_000_001, 7)] {
            let total: u64 = (0..clients).map(|c| share(count, clients, c)).sum();
            assert_eq!(total, count);
        }
        assert_eq!(
            (0..3).map(|c| share(10, 3, c)).collect::<Vec<_>>(),
            [4, 3, 3]
        );
    }
}

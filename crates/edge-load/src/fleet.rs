//! The fleet: one task per gateway of the tokens file, paced by `--rate` or unbounded, all
//! ended by `--duration`; their stats are merged into one report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::gateway::{Generator, Pace, Task};
use crate::http::HubClient;
use crate::stats::{Report, Stats};
use crate::tokens::Gateway;

#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub gateways: Vec<Gateway>,
    pub batch: usize,
    pub duration: Duration,
    /// Offered readings/s over the whole fleet; `None`: as fast as the hub answers.
    pub rate: Option<f64>,
    pub concurrency: Option<usize>,
    pub sensors: usize,
    pub seq_start: u64,
    pub gzip_level: Option<u32>,
}

/// Each gateway's batch interval and first slot for an offered `rate`: the fleet's batches
/// spread evenly over one interval, so the hub sees a steady stream, not a synchronized burst.
pub fn schedule(gateways: usize, batch: usize, rate: f64) -> (Duration, Vec<Duration>) {
    let every = Duration::from_secs_f64(batch as f64 * gateways as f64 / rate);
    let offsets = (0..gateways)
        .map(|i| every.mul_f64(i as f64 / gateways as f64))
        .collect();
    (every, offsets)
}

pub async fn run(cfg: FleetConfig, client: HubClient) -> Report {
    let limit = cfg.concurrency.map(|c| Arc::new(Semaphore::new(c.max(1))));
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let slots = cfg.rate.map(|r| schedule(cfg.gateways.len(), cfg.batch, r));
    let mut handles = Vec::with_capacity(cfg.gateways.len());
    for (i, gw) in cfg.gateways.iter().enumerate() {
        let task = Task {
            client: client.clone(),
            generator: Generator::new(&gw.id, cfg.sensors, cfg.seq_start, cfg.gzip_level),
            gateway: gw.clone(),
            batch: cfg.batch,
            pace: Pace {
                start,
                deadline,
                every: slots.as_ref().map(|(every, offs)| (*every, offs[i])),
            },
            limit: limit.clone(),
        };
        handles.push(tokio::spawn(task.run()));
    }
    let mut total = Stats::default();
    let mut last = start;
    for h in handles {
        // A gateway task never panics on bad input; if one did, the run is broken.
        let (stats, answered) = h.await.expect("gateway task panicked");
        total.merge(&stats);
        if let Some(t) = answered {
            last = last.max(t);
        }
    }
    Report::new(
        &total,
        cfg.gateways.len(),
        cfg.batch,
        cfg.duration,
        last - start,
        cfg.rate,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_spreads_the_fleet_over_one_interval() {
        // 4 gateways x 100 readings at 800 readings/s: each sends every 0.5 s.
        let (every, offsets) = schedule(4, 100, 800.0);
        assert_eq!(every, Duration::from_millis(500));
        let ms: Vec<u128> = offsets.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 125, 250, 375]);
    }
}

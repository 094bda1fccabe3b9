//! Command line: `edge-load --hub URL --tokens FILE ...` (the fleet) and `edge-load mqtt ...`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::fleet::FleetConfig;
use crate::mqtt::{MqttConfig, TopicTemplate};
use crate::tokens;
use crate::wire::MAX_READINGS_PER_BATCH;

#[derive(Debug, Parser)]
#[command(
    name = "edge-load",
    version,
    about = "Simulated gateways posting sync batches to edge-hub (or, with `mqtt`, sensors publishing on MQTT)",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish sensor messages ({"value": .., "ts": ..}) at QoS 1, at a rate.
    Mqtt(MqttArgs),
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The hub's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, required = true)]
    pub hub: Option<String>,
    /// One `ID TOKEN` line per gateway, as `edge-hub gateway add ID1 ID2 ...` prints.
    #[arg(long, required = true)]
    pub tokens: Option<PathBuf>,
    /// Readings per batch.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=MAX_READINGS_PER_BATCH as i64))]
    pub batch: u32,
    /// Seconds to run; requests in flight at the end get their answer (up to --timeout).
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Offered load in readings/s over the whole fleet; without it, as fast as the hub answers.
    #[arg(long)]
    pub rate: Option<f64>,
    /// At most this many requests in flight over the fleet (default: one per gateway).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Use only the first N gateways of the tokens file.
    #[arg(long)]
    pub gateways: Option<usize>,
    /// Sensors per gateway (keys GATEWAY/mN/sK).
    #[arg(long, default_value_t = 10)]
    pub sensors: usize,
    /// First seq of every gateway; raise it to run again against the same hub without
    /// sending seqs it already holds (those would come back as duplicates).
    #[arg(long, default_value_t = 1)]
    pub seq_start: u64,
    /// gzip level (the agent uses 1); 0 sends plain JSON without Content-Encoding.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub gzip_level: u32,
    /// Seconds to wait for one answer.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Runtime worker threads (1 leaves the other cores to the hub under test).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print the report as one JSON object (exit status 1 when no batch was acknowledged).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MqttArgs {
    /// The broker's address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Messages/s over all clients; 0: as fast as the broker acknowledges.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Messages to publish in all.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    #[arg(long, default_value = "factory/{line}/{machine}/{sensor}")]
    pub topic_template: String,
    /// Distinct sensors (topics); messages go round-robin over them.
    #[arg(long, default_value_t = 10)]
    pub sensors: usize,
    /// MQTT connections sharing the load.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Unacknowledged QoS 1 messages per connection.
    #[arg(long, default_value_t = 100)]
    pub inflight: u16,
    /// Client id prefix; connection N is PREFIX-N.
    #[arg(long, default_value = "edge-load")]
    pub client_id: String,
    /// Seconds to wait for the broker's acks after the last publish.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn seconds(name: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("--{name} must be a positive number of seconds, got {v}"))
}

fn positive_rate(v: f64) -> Result<f64, String> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("--rate must be a positive number, got {v}"))
    }
}

impl FleetArgs {
    pub fn config(&self) -> Result<(FleetConfig, String, Duration), String> {
        let hub = self.hub.clone().ok_or("--hub is required")?;
        let path = self.tokens.as_ref().ok_or("--tokens is required")?;
        let mut gateways = tokens::load(path).map_err(|e| e.to_string())?;
        if let Some(n) = self.gateways {
            if n == 0 || n > gateways.len() {
                return Err(format!(
                    "--gateways {n}: {} has {} gateway(s)",
                    path.display(),
                    gateways.len()
                ));
            }
            gateways.truncate(n);
        }
        if self.concurrency == Some(0) {
            return Err("--concurrency must be at least 1".into());
        }
        if self.sensors == 0 {
            return Err("--sensors must be at least 1".into());
        }
        let cfg = FleetConfig {
            gateways,
            batch: self.batch as usize,
            duration: seconds("duration", self.duration)?,
            rate: self.rate.map(positive_rate).transpose()?,
            concurrency: self.concurrency,
            sensors: self.sensors,
            seq_start: self.seq_start.max(1),
            gzip_level: (self.gzip_level > 0).then_some(self.gzip_level),
        };
        Ok((cfg, hub, seconds("timeout", self.timeout)?))
    }
}

impl MqttArgs {
    pub fn config(&self) -> Result<MqttConfig, String> {
        if self.sensors == 0 || self.clients == 0 {
            return Err("--sensors and --clients must be at least 1".into());
        }
        let rate = if self.rate == 0.0 {
            None
        } else {
            Some(positive_rate(self.rate)?)
        };
        Ok(MqttConfig {
            host: self.host.clone(),
            port: self.port,
            rate,
            count: self.count,
            template: TopicTemplate::parse(&self.topic_template)?,
            sensors: self.sensors,
            clients: self.clients,
            inflight: self.inflight,
            client_id: self.client_id.clone(),
            timeout: seconds("timeout", self.timeout)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn mqtt_needs_no_hub() {
        let cli =
            Cli::try_parse_from(["edge-load", "mqtt", "--port", "1884", "--rate", "0"]).unwrap();
        let Some(Command::Mqtt(m)) = cli.command else {
            panic!("not the mqtt subcommand")
        };
        let cfg = m.config().unwrap();
        assert_eq!((cfg.port, cfg.rate), (1884, None));
    }

    #[test]
    fn fleet_needs_hub_and_tokens() {
        assert!(Cli::try_parse_from(["edge-load", "--duration", "1"]).is_err());
        let parse = |tokens: &str, extra: &[&str]| {
            let mut argv = vec!["edge-load", "--hub", "http://h:1", "--tokens", tokens];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).unwrap().fleet.config()
        };
        assert!(parse("/nonexistent", &[])
            .unwrap_err()
            .contains("/nonexistent"));
        let path = std::env::temp_dir().join(format!("edge-load-cli-{}.txt", std::process::id()));
        std::fs::write(&path, "gw-1 t1\ngw-2 t2\n").unwrap();
        let file = path.to_str().unwrap();
        let (cfg, hub, _) = parse(file, &["--gateways", "1", "--gzip-level", "0"]).unwrap();
        assert_eq!(
            (cfg.gateways.len(), cfg.gzip_level, hub.as_str()),
            (1, None, "http://h:1")
        );
        assert!(parse(file, &["--rate=-1"]).unwrap_err().contains("--rate"));
        assert!(parse(file, &["--gateways", "3"])
            .unwrap_err()
            .contains("has 2"));
        assert!(parse(file, &["--duration", "0"])
            .unwrap_err()
            .contains("--duration"));
        std::fs::remove_file(path).unwrap();
    }
}

//! edge-load: a fleet of simulated gateways posting sync batches to edge-hub, with real seqs
//! and gzip as the agent sends them, and simulated MQTT sensors for agent benchmarks.

pub mod cli;
pub mod fleet;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod mqtt;
pub mod stats;
pub mod tokens;
pub mod wire;

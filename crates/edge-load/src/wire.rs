//! The sync batch, byte for byte as the agent sends it (`shared/wire.py`).
//!
//! msgspec encodes a `Batch` struct as a JSON object with every field in declaration order
//! (defaults included) and each reading as an array `[seq, key, ts, value, unit]`. Its floats
//! are the shortest text that reads back to the same double, laid out as ryu lays them out
//! (`1e16`, `0.00001`, `1e-6`); serde_json now writes `1e+16`, so the batch is written here by
//! hand with ryu. The golden test in `tests/wire_golden.rs` holds the two encoders together.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Deserialize;

/// The wire version the hub accepts (`WIRE_VERSION`).
pub const WIRE_VERSION: u32 = 1;
/// The hub packs (gateway, seq) into one 64-bit id with 40 bits of seq: seqs are 1..2^40.
pub const MAX_SEQ: u64 = 1 << 40;
/// The hub refuses batches with more readings than this (`MAX_READINGS_PER_BATCH`).
pub const MAX_READINGS_PER_BATCH: usize = 50_000;

/// One reading: `[seq, key, ts, value, unit]`.
#[derive(Debug, Clone)]
pub struct Reading<'a>(pub u64, pub &'a str, pub f64, pub f64, pub Option<&'a str>);

/// Field order matters: it is msgspec's declaration order in `shared.wire.Batch`.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    pub gateway_id: &'a str,
    pub readings: Vec<Reading<'a>>,
    pub v: u32,
    pub sent_at: f64,
    pub backlog: u64,
    pub dropped: u64,
    pub dead_letters: u64,
    pub agent_version: &'a str,
}

impl<'a> Batch<'a> {
    pub fn new(gateway_id: &'a str, readings: Vec<Reading<'a>>, sent_at: f64) -> Self {
        Batch {
            gateway_id,
            readings,
            v: WIRE_VERSION,
            sent_at,
            backlog: 0,
            dropped: 0,
            dead_letters: 0,
            agent_version: concat!("edge-load/", env!("CARGO_PKG_VERSION")),
        }
    }
}

fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        // msgspec writes NaN and infinities as null (the hub then refuses the reading).
        out.extend_from_slice(b"null");
    }
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes strings exactly as msgspec does: `"`, `\\` and control characters;
    // everything else, non-ASCII included, stays as UTF-8.
    serde_json::to_writer(&mut *out, s).expect("writing into a Vec cannot fail");
}

/// The batch as JSON (what `encode_batch(batch, compress=False)` returns).
pub fn to_json(batch: &Batch<'_>) -> Vec<u8> {
    // ~40 bytes a reading plus the envelope.
    let mut out = Vec::with_capacity(160 + batch.readings.len() * (48 + batch.gateway_id.len()));
    out.extend_from_slice(b"{\"gateway_id\":");
    push_str(&mut out, batch.gateway_id);
    out.extend_from_slice(b",\"readings\":[");
    for (i, Reading(seq, key, ts, value, unit)) in batch.readings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        push_u64(&mut out, *seq);
        out.push(b',');
        push_str(&mut out, key);
        out.push(b',');
        push_f64(&mut out, *ts);
        out.push(b',');
        push_f64(&mut out, *value);
        out.push(b',');
        match unit {
            Some(u) => push_str(&mut out, u),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b']');
    }
    // Edge alerts and Sparkplug marks: a load generator raises none, the agent always sends both.
    out.extend_from_slice(b"],\"alerts\":[],\"marks\":[],\"v\":");
    push_u64(&mut out, u64::from(batch.v));
    out.extend_from_slice(b",\"sent_at\":");
    push_f64(&mut out, batch.sent_at);
    for (name, v) in [
        ("backlog", batch.backlog),
        ("dropped", batch.dropped),
        ("dead_letters", batch.dead_letters),
    ] {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        push_u64(&mut out, v);
    }
    out.extend_from_slice(b",\"agent_version\":");
    push_str(&mut out, batch.agent_version);
    out.push(b'}');
    out
}

/// gzip at `level` (the agent uses 1: CPU is scarcer than bandwidth on a gateway).
pub fn gzip(body: &[u8], level: u32) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 3), Compression::new(level));
    enc.write_all(body).expect("writing into a Vec cannot fail");
    enc.finish().expect("writing into a Vec cannot fail")
}

/// The body to POST: JSON, gzip-compressed at `level` unless `level` is `None`.
pub fn encode(batch: &Batch<'_>, level: Option<u32>) -> Vec<u8> {
    let json = to_json(batch);
    match level {
        Some(level) => gzip(&json, level),
        None => json,
    }
}

/// What the hub answers to an accepted batch, inside `{"data": ..., "meta": ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct IngestResult {
    pub accepted: u64,
    pub duplicates: u64,
    #[serde(default)]
    pub config_version: i64,
}

#[derive(Deserialize)]
struct IngestResponse {
    data: IngestResult,
}

/// The 2xx body of `POST /api/v1/ingest` -> its result.
pub fn decode_response(body: &[u8]) -> Result<IngestResult, serde_json::Error> {
    serde_json::from_slice::<IngestResponse>(body).map(|r| r.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    #[test]
    fn reading_is_an_array_with_null_unit() {
        let batch = Batch::new("g", vec![Reading(7, "l/m/s", 1.5, -2.0, None)], 0.0);
        let json = String::from_utf8(to_json(&batch)).unwrap();
        assert!(
            json.contains(r#""readings":[[7,"l/m/s",1.5,-2.0,null]]"#),
            "{json}"
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["alerts"], serde_json::json!([]));
    }

    #[test]
    fn floats_as_msgspec_writes_them() {
        // What msgspec.json.encode writes for the same doubles.
        let cases = [
            (1e15, "1000000000000000.0"),
            (1e16, "1e16"),
            (1.2345678901234568e17, "1.2345678901234568e17"),
            (1e-5, "0.00001"),
            (1e-6, "1e-6"),
            (5e-324, "5e-324"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
        ];
        for (v, want) in cases {
            let mut out = Vec::new();
            push_f64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{v:e}");
        }
    }

    #[test]
    fn gzip_round_trips() {
        let batch = Batch::new("gw", vec![Reading(1, "a/b/c", 1.0, 2.0, Some("C"))], 3.0);
        let json = to_json(&batch);
        let mut out = Vec::new();
        GzDecoder::new(&encode(&batch, Some(1))[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, json);
        assert_eq!(encode(&batch, None), json);
    }

    #[test]
    fn decodes_the_hub_envelope() {
        let body = br#"{"data":{"accepted":90,"duplicates":10,"config_version":3},"meta":{}}"#;
        let got = decode_response(body).unwrap();
        assert_eq!(
            got,
            IngestResult {
                accepted: 90,
                duplicates: 10,
                config_version: 3
            }
        );
        assert!(decode_response(br#"{"error":{"code":"x"}}"#).is_err());
    }
}

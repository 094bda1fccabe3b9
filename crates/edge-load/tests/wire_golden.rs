//! The Rust encoder against the agent's: `fixtures/golden_batch.json` is what
//! `shared.wire.encode_batch(..., compress=False)` writes for this batch (regenerate with
//! `.venv/bin/python crates/edge-load/tests/fixtures/golden_batch.py`).

use std::io::Read;

use edge_load::wire::{self, Batch, Reading};
use flate2::read::GzDecoder;

const GOLDEN: &[u8] = include_bytes!("fixtures/golden_batch.json");

fn golden_batch() -> Batch<'static> {
    let mut batch = Batch::new(
        "gw-01",
        vec![
            Reading(1, "line1/press4/temp", 1732270000.123, 23.5, Some("C")),
            Reading(2, "line1/press4/temp", 1732270000.0, -0.0001, None),
            Reading(3, "gw_2/m0/s9", 1e16, 1e-7, Some("µ\"\\")),
            Reading(
                (1 << 40) - 1,
                "a/b/c",
                1764600000.000001,
                57.309999999999995,
                Some("kPa"),
            ),
            Reading(
                4,
                "a/b/c",
                1.2345678901234568e17,
                1e-5,
                Some("\n\t\u{1}\u{1f}\u{7f}\u{2028}/"),
            ),
        ],
        1732270000.5,
    );
    batch.agent_version = "edge-load/0.1.0";
    batch
}

#[test]
fn json_is_byte_identical_to_shared_wire() {
    let got = wire::to_json(&golden_batch());
    assert_eq!(
        String::from_utf8(got).unwrap(),
        String::from_utf8(GOLDEN.to_vec()).unwrap()
    );
}

#[test]
fn gzip_body_inflates_to_the_same_bytes() {
    let body = wire::encode(&golden_batch(), Some(1));
    assert_eq!(&body[..2], b"\x1f\x8b", "the hub sniffs gzip by its magic");
    let mut out = Vec::new();
    GzDecoder::new(&body[..]).read_to_end(&mut out).unwrap();
    assert_eq!(out, GOLDEN);
}

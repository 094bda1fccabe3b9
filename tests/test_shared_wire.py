"""The sync batch format and the config loader."""

from __future__ import annotations

import gzip
from pathlib import Path
from unittest import mock

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import AgentConfig
from hub.config import HubSettings
from shared.config import ConfigError, load_settings
from shared.payload import TsWindow
from shared.wire import (
    Batch,
    IngestResult,
    WireError,
    WireReading,
    decode_batch,
    decode_response,
    encode_batch,
    encode_result,
    validate_batch,
)


def _batch(**kw: object) -> Batch:
    readings = [WireReading(i, "l1/m1/temp", 1000.0 + i, float(i), "C") for i in range(1, 6)]
    return Batch(gateway_id="gw-01", readings=readings, backlog=3, dropped=1, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("compress", [True, False])
def test_batch_round_trip(compress: bool) -> None:
    batch = _batch()
    body = encode_batch(batch, compress=compress)
    assert (body[:2] == b"\x1f\x8b") is compress
    assert decode_batch(body, "gzip" if compress else None) == batch


def test_reading_is_compact_on_the_wire() -> None:
    body = encode_batch(_batch(), compress=False)
    assert b'[1,"l1/m1/temp",1001.0,1.0,"C"]' in body


def test_bad_batch_names_every_bad_reading() -> None:
    raw = msgspec.json.encode(
        {
            "gateway_id": "gw-01",
            "readings": [
                [1, "l1/m1/t", 1.0, 1.0, None],
                [2, "nokey", 1.0, 2.0, None],
                [2, "a/b/c", 1.0, 3.0, None],
            ],
        }
    )
    with pytest.raises(WireError) as info:
        decode_batch(raw)
    fields = [(d.get("seq"), d["field"]) for d in info.value.details]
    assert fields == [(2, "key"), (2, "seq")]
    assert info.value.status == 422


@pytest.mark.parametrize(
    ("body", "encoding", "status", "code"),
    [
        (b"", None, 400, "invalid_json"),
        (b"{", None, 400, "invalid_json"),
        (b'{"gateway_id": "g"}', None, 422, "validation_error"),
        (
            b'{"gateway_id": "g", "readings": [[1, "a/b/c", 1.0, "x", null]]}',
            None,
            422,
            "validation_error",
        ),
        (b"\x1f\x8bnot really gzip", "gzip", 400, "bad_encoding"),
        (b"{}", "br", 400, "bad_encoding"),
    ],
)
def test_decode_errors(body: bytes, encoding: str | None, status: int, code: str) -> None:
    with pytest.raises(WireError) as info:
        decode_batch(body, encoding)
    assert (info.value.status, info.value.code) == (status, code)


def test_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(b" " * 2_000_000)
    with pytest.raises(WireError) as info:
        decode_batch(bomb, "gzip", max_decompressed=1_000_000)
    assert info.value.status == 413


def test_nan_values_cannot_cross_the_wire() -> None:
    raw = b'{"gateway_id": "g", "readings": [[1, "a/b/c", 1.0, NaN, null]]}'
    with pytest.raises(WireError):
        decode_batch(raw)


def test_a_value_past_the_bound_is_named_by_its_seq() -> None:
    # 1e308 and -1e308 are finite, but two of them overflow a rollup bucket's sum.
    readings = [
        WireReading(1, "l/m/s", 1.0, 1e308),
        WireReading(2, "l/m/s", 2.0, 1e15),
        WireReading(3, "l/m/s", 3.0, -1e308),
    ]
    with pytest.raises(WireError) as info:
        decode_batch(encode_batch(Batch(gateway_id="gw", readings=readings)))
    assert [(d["seq"], d["field"]) for d in info.value.details] == [(1, "value"), (3, "value")]
    assert "within ±1e+15" in info.value.details[0]["message"]


def test_response_envelope() -> None:
    body = msgspec.json.encode(
        {"data": msgspec.to_builtins(IngestResult(accepted=3, duplicates=2)), "meta": {}}
    )
    assert decode_response(body) == IngestResult(accepted=3, duplicates=2)
    assert b'"accepted":1' in encode_result(IngestResult(accepted=1, duplicates=0))


def test_config_file_env_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('gateway_id = "gw-01"\n[mqtt]\nport = 1884\n[buffer]\nwhen_full = "block"\n')
    cfg = load_settings(AgentConfig, path)
    assert (cfg.mqtt.port, cfg.buffer.when_full, cfg.client_id) == (
        1884,
        "block",
        "edge-agent-gw-01",
    )

    monkeypatch.setenv("EDGE_AGENT_MQTT__PORT", "1999")
    assert load_settings(AgentConfig, path).mqtt.port == 1999

    path.write_text('gateway_id = "gw-01"\n[buffer]\nwhen_full = "explode"\nmax_byte = 5\n')
    with pytest.raises(ConfigError) as info:
        load_settings(AgentConfig, path)
    message = str(info.value)
    assert "buffer.when_full" in message and "'explode'" in message
    assert "buffer.max_byte: unknown key" in message

    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(AgentConfig, tmp_path / "nope.toml")
    path.write_text("gateway_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(AgentConfig, path)


def test_hub_settings(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('listen = "0.0.0.0:9000"\ndatabase = "sqlite:////var/lib/x/hub.db"\n')
    hub = load_settings(HubSettings, path)
    assert (hub.host, hub.port, hub.database_path) == ("0.0.0.0", 9000, "/var/lib/x/hub.db")
    path.write_text('listen = "nope"\n')
    with pytest.raises(ConfigError, match="listen"):
        load_settings(HubSettings, path)


def test_alerts_ride_along_and_are_validated() -> None:
    from shared.wire import WireAlert

    ok = WireAlert(
        id=1,
        key="l1/m1/t",
        rule="threshold",
        breach_type="above_maximum",
        severity="high",
        threshold_value=80.0,
        value=91.0,
        opened_at=1000.0,
        reading_seq=5,
    )
    batch = Batch(gateway_id="gw", readings=[], alerts=[ok])
    assert decode_batch(encode_batch(batch)) == batch
    bad = msgspec.structs.replace(ok, severity="apocalyptic", key="nokey")
    with pytest.raises(WireError) as info:
        decode_batch(encode_batch(Batch(gateway_id="gw", readings=[], alerts=[bad])))
    assert {d["field"] for d in info.value.details} == {"alerts.severity", "alerts.key"}


_NOW = 1_800_000_000.0
_readings = st.lists(
    st.builds(
        WireReading,
        seq=st.integers(min_value=-2, max_value=12) | st.sampled_from([1 << 40, (1 << 40) - 1]),
        key=st.sampled_from(["l/m/s", "l/m/t", "l//s", "l/m", "a/b/c/d"]),
        ts=st.sampled_from([_NOW, _NOW - 10, _NOW + 10, _NOW - 1e6, _NOW + 1e6, -1.0, 0.0])
        | st.floats(allow_nan=True, allow_infinity=True),
        value=st.floats(allow_nan=True, allow_infinity=True)
        | st.sampled_from([1e15, -1e15, 1.0000000000000002e15, -1e308, 1e308]),
        unit=st.none() | st.sampled_from(["C", "x" * 32, "x" * 33]),
    ),
    max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(readings=_readings, windowed=st.booleans())
def test_the_fast_check_accepts_exactly_what_the_reading_loop_accepts(
    readings: list[WireReading], windowed: bool
) -> None:
    """validate_batch checks a batch column-wise first and walks it reading by reading only
    when that fails: the two must agree on which batches are clean."""
    import shared.wire as wire

    window = TsWindow(max_future_s=300, max_past_s=86400) if windowed else TsWindow()
    batch = Batch(gateway_id="gw", readings=readings)
    problems: list[dict[str, object]] = []
    wire._reading_problems(readings, window, _NOW, problems)
    rejected = False
    with mock.patch("shared.wire.time.time", return_value=_NOW):
        try:
            validate_batch(batch, window)
        except WireError as exc:
            rejected = True
            assert exc.details == problems
    assert rejected == bool(problems)
    if wire._readings_clean(readings, window, _NOW):
        assert not problems

"""Sparkplug B decoding and the host application's session rules (agent.sparkplug)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import SparkplugConfig
from agent.sparkplug.decode import SparkplugDecodeError, decode_payload, reading_value
from agent.sparkplug.encode import MetricSpec, encode_payload, rebirth_command
from agent.sparkplug.host import SparkplugHost
from agent.sparkplug.marks import MarkStore
from agent.sparkplug.metrics import EVENTS, REBIRTHS, SKIPPED
from agent.sparkplug.schema import DataType, Payload
from agent.sparkplug.session import Mark, Sessions, sensor_key
from agent.sparkplug.topic import SparkplugTopicError, parse_topic
from shared.payload import TsWindow

T0 = 1_764_000_000_000  # ms
NOW = T0 / 1000 + 1.0
G, N = "plant1", "edge7"


def topic(mtype: str, device: str | None = None) -> str:
    return f"spBv1.0/{G}/{mtype}/{N}" + (f"/{device}" if device else "")


def nbirth(seq: int = 0, bdseq: int = 3, extra: list[MetricSpec] | None = None) -> bytes:
    return encode_payload(
        [
            MetricSpec("bdSeq", bdseq, DataType.Int64),
            MetricSpec("Node Control/Rebirth", False, DataType.Boolean),
            MetricSpec("temp", 21.5, DataType.Double, alias=1, unit="C"),
            MetricSpec("Line/speed", 7, DataType.Int32, alias=2),
            MetricSpec("running", True, DataType.Boolean, alias=3),
            MetricSpec("label", "press", DataType.String, alias=4),
            *(extra or []),
        ],
        seq=seq,
        timestamp_ms=T0,
    )


def ndata(seq: int, *metrics: MetricSpec) -> bytes:
    return encode_payload(metrics, seq=seq, timestamp_ms=T0 + 1000)


def ndeath(bdseq: int) -> bytes:
    return encode_payload([MetricSpec("bdSeq", bdseq, DataType.Int64)], timestamp_ms=T0)


def born(s: Sessions, bdseq: int = 3) -> None:
    out = s.handle(topic("NBIRTH"), nbirth(bdseq=bdseq), NOW)
    assert out.dead is None


# -- topics and decoding -------------------------------------------------------------------


def test_topic_parts() -> None:
    t = parse_topic("spBv1.0/g/DDATA/n/d")
    assert (t.group_id, t.message_type, t.edge_node_id, t.device_id) == ("g", "DDATA", "n", "d")
    assert parse_topic("spBv1.0/g/NDATA/n").device_id is None
    for bad in (
        "spBv1.0/g/NDATA",
        "spBv1.0/g/NDATA/n/d",
        "spBv1.0/g/DDATA/n",
        "spBv1.0/g/XDATA/n",
        "spBv1.0//NDATA/n",
    ):
        with pytest.raises(SparkplugTopicError):
            parse_topic(bad)


def test_decode_round_trip_keeps_timestamps_and_flags() -> None:
    body = encode_payload(
        [MetricSpec("t", 1.25, DataType.Float, timestamp_ms=T0 - 5, is_historical=True)],
        seq=9,
        timestamp_ms=T0,
    )
    p = decode_payload(body)
    assert (p.seq, p.timestamp_ms) == (9, T0)
    (m,) = p.metrics
    assert (m.name, m.timestamp_ms, m.is_historical, m.kind, m.raw) == (
        "t",
        T0 - 5,
        True,
        "float_value",
        1.25,
    )


@pytest.mark.parametrize(
    "body", [b'{"value": 1}', b"23.5", b"\xff\xff\xff", b"\x0a\x05ab"], ids=repr
)
def test_undecodable_payload_is_an_error_with_reason(body: bytes) -> None:
    with pytest.raises(SparkplugDecodeError, match="not a Sparkplug B payload"):
        decode_payload(body)


def test_declared_field_with_wrong_wire_type_is_not_a_payload() -> None:
    # field 3 (seq, a varint) sent as length-delimited bytes: parses, but is not Sparkplug.
    with pytest.raises(SparkplugDecodeError, match="wrong wire type"):
        decode_payload(b"\x1a\x01x")


@pytest.mark.parametrize(
    ("datatype", "value", "expected"),
    [
        (DataType.Int8, -5, -5.0),
        (DataType.Int16, -300, -300.0),
        (DataType.Int32, -(2**31), float(-(2**31))),
        (DataType.Int64, -(2**40), float(-(2**40))),
        (DataType.UInt32, 2**32 - 1, float(2**32 - 1)),
        (DataType.UInt64, 2**49, float(2**49)),
        (DataType.UInt64, 2**63, "out_of_range"),
        (DataType.Float, 0.5, 0.5),
        (DataType.Double, -1e15, -1e15),
        (DataType.Double, -1e300, "out_of_range"),
        (DataType.Boolean, True, 1.0),
        (DataType.Boolean, False, 0.0),
    ],
)
def test_numeric_and_boolean_values(
    datatype: DataType, value: object, expected: float | str
) -> None:
    body = encode_payload([MetricSpec("m", value, datatype)])  # type: ignore[arg-type]
    (m,) = decode_payload(body).metrics
    assert reading_value(datatype, m.kind, m.raw) == expected


def test_int8_as_tahu_sends_it_sign_extended_to_32_bits() -> None:
    msg = Payload()
    m = msg.metrics.add()
    m.name, m.datatype, m.int_value = "m", DataType.Int8, 2**32 - 1  # -1 sign-extended
    (d,) = decode_payload(msg.SerializeToString()).metrics
    assert reading_value(DataType.Int8, d.kind, d.raw) == -1.0
    m.int_value = 0xFF  # -1 in 8 bits only
    (d,) = decode_payload(msg.SerializeToString()).metrics
    assert reading_value(DataType.Int8, d.kind, d.raw) == -1.0


def test_non_numeric_values_give_reasons() -> None:
    assert reading_value(DataType.String, "string_value", "x") == "type_String"
    assert reading_value(DataType.Double, "string_value", "x") == "value_mismatch"
    assert reading_value(DataType.Double, "double_value", math.nan) == "not_finite"
    # Finite but past the bound both ends keep (shared.values): skipped, never sent.
    assert reading_value(DataType.Double, "double_value", 1e308) == "out_of_range"
    assert reading_value(DataType.Double, "double_value", -1e15) == -1e15
    assert reading_value(DataType.Int64, "long_value", 2**62) == "out_of_range"
    assert reading_value(DataType.UInt64, "long_value", 2**64 - 1) == "out_of_range"
    assert reading_value(99, None, None) == "type_unknown"


def test_rebirth_command_payload() -> None:
    (m,) = decode_payload(rebirth_command()).metrics
    assert (m.name, m.datatype, m.raw) == ("Node Control/Rebirth", DataType.Boolean, True)


# -- births and data -----------------------------------------------------------------------


def test_birth_values_are_readings_and_protocol_and_strings_are_skipped() -> None:
    s = Sessions()
    out = s.handle(topic("NBIRTH"), nbirth(), NOW)
    assert out.dead is None and out.rebirth is None
    got = {(r.key, r.ts, r.value, r.unit) for r in out.readings}
    assert got == {
        (f"{G}/{N}/temp", T0 / 1000, 21.5, "C"),
        (f"{G}/{N}/Line.speed", T0 / 1000, 7.0, None),
        (f"{G}/{N}/running", T0 / 1000, 1.0, None),
    }
    assert s.skipped == {"protocol": 2, "type_String": 1}
    # A birth makes its sensors fresh at the hub.
    assert out.marks == [
        Mark((f"{G}/{N}/Line.speed", f"{G}/{N}/running", f"{G}/{N}/temp"), False, NOW)
    ]


def test_aliases_resolve_from_the_last_birth_and_metric_timestamps_are_kept() -> None:
    s = Sessions()
    born(s)
    out = s.handle(
        topic("NDATA"),
        ndata(
            1,
            MetricSpec(alias=1, value=22.0, datatype=DataType.Double, timestamp_ms=T0 + 10),
            MetricSpec(
                alias=2, value=-3, datatype=DataType.Int32, omit_datatype=True, timestamp_ms=T0 + 20
            ),
        ),
        NOW,
    )
    assert out.rebirth is None and out.dead is None
    # Alias 2 carries no datatype: the birth's Int32 decodes the two's complement.
    assert [(r.key, r.ts, r.value, r.unit) for r in out.readings] == [
        (f"{G}/{N}/temp", (T0 + 10) / 1000, 22.0, "C"),
        (f"{G}/{N}/Line.speed", (T0 + 20) / 1000, -3.0, None),
    ]


def test_metric_without_timestamp_takes_the_payload_timestamp() -> None:
    s = Sessions()
    born(s)
    out = s.handle(topic("NDATA"), ndata(1, MetricSpec(alias=1, value=1.0)), NOW)
    assert out.readings[0].ts == (T0 + 1000) / 1000


def test_historical_metrics_are_stored_like_the_rest() -> None:
    s = Sessions()
    born(s)
    old = T0 - 3_600_000
    out = s.handle(
        topic("NDATA"),
        ndata(1, MetricSpec(alias=1, value=5.0, timestamp_ms=old, is_historical=True)),
        NOW,
    )
    assert [(r.key, r.ts, r.value) for r in out.readings] == [(f"{G}/{N}/temp", old / 1000, 5.0)]


def test_unknown_alias_is_skipped_and_asks_for_a_rebirth() -> None:
    s = Sessions()
    born(s)
    out = s.handle(
        topic("NDATA"),
        ndata(1, MetricSpec(alias=1, value=1.0), MetricSpec(alias=77, value=2.0)),
        NOW,
    )
    assert [r.value for r in out.readings] == [1.0]
    assert out.rebirth == (G, N)
    assert s.skipped["unknown_alias"] == 1


def test_data_before_birth_asks_for_a_rebirth_rate_limited_per_node() -> None:
    now = [100.0]
    s = Sessions(rebirth_min_interval_s=5.0, clock=lambda: now[0])
    body = ndata(4, MetricSpec("temp", 1.0, DataType.Double))
    assert s.handle(topic("NDATA"), body, NOW).rebirth == (G, N)
    now[0] += 1
    out = s.handle(topic("NDATA"), body, NOW)
    assert out.rebirth is None and out.readings == []
    # Another node is not held back by this one's limit.
    assert s.handle(f"spBv1.0/{G}/NDATA/other", body, NOW).rebirth == (G, "other")
    now[0] += 5
    assert s.handle(topic("NDATA"), body, NOW).rebirth == (G, N)
    assert s.rebirths_requested == 3 and s.events["rebirth_suppressed"] == 1
    assert s.skipped["before_birth"] == 4


def test_a_seq_gap_asks_for_a_rebirth_and_still_stores_the_message() -> None:
    s = Sessions()
    born(s)
    assert s.handle(topic("NDATA"), ndata(1, MetricSpec(alias=1, value=1.0)), NOW).rebirth is None
    out = s.handle(topic("NDATA"), ndata(3, MetricSpec(alias=1, value=3.0)), NOW)
    assert out.rebirth == (G, N)
    assert [r.value for r in out.readings] == [3.0]
    # Resynchronised on the message after the gap: no second request for seq 4.
    assert s.handle(topic("NDATA"), ndata(4, MetricSpec(alias=1, value=4.0)), NOW).rebirth is None


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 255), steps=st.lists(st.integers(1, 3), min_size=1, max_size=600))
def test_seq_wraps_at_256_and_every_gap_is_seen(start: int, steps: list[int]) -> None:
    """Any run of seq increments: +1 (mod 256) is in order, anything else is a gap."""
    s = Sessions(rebirth_min_interval_s=0.0)
    s.handle(topic("NBIRTH"), nbirth(seq=start), NOW)
    seq = start
    for step in steps:
        seq += step
        out = s.handle(topic("NDATA"), ndata(seq % 256, MetricSpec(alias=1, value=1.0)), NOW)
        assert (out.rebirth is not None) == (step != 1)
        assert len(out.readings) == 1
    assert s.events["seq_gap"] == sum(1 for x in steps if x != 1)


def test_device_birth_data_and_death() -> None:
    s = Sessions(rebirth_min_interval_s=0.0)
    born(s)
    dbirth = encode_payload(
        [MetricSpec("pressure", 2.5, DataType.Float, alias=10)], seq=1, timestamp_ms=T0
    )
    out = s.handle(topic("DBIRTH", "pump1"), dbirth, NOW)
    assert [(r.key, r.value) for r in out.readings] == [(f"{G}/pump1/pressure", 2.5)]
    assert out.marks == [Mark((f"{G}/pump1/pressure",), False, NOW)]
    out = s.handle(topic("DDATA", "pump1"), ndata(2, MetricSpec(alias=10, value=3.5)), NOW)
    assert [(r.key, r.value) for r in out.readings] == [(f"{G}/pump1/pressure", 3.5)]
    # Device aliases are the device's: the node's alias 1 means nothing here.
    out = s.handle(topic("DDATA", "pump1"), ndata(3, MetricSpec(alias=1, value=1.0)), NOW)
    assert out.readings == [] and out.rebirth == (G, N)
    # A device that never had a birth asks for the node's rebirth.
    out = s.handle(topic("DDATA", "pump9"), ndata(4, MetricSpec(alias=10, value=1.0)), NOW)
    assert out.readings == [] and out.rebirth == (G, N)
    out = s.handle(topic("DDEATH", "pump1"), encode_payload([], seq=5), NOW)
    assert out.marks == [Mark((f"{G}/pump1/pressure",), True, NOW)] and out.rebirth is None


def test_ndeath_with_the_births_bdseq_marks_every_sensor_of_the_node_stale() -> None:
    s = Sessions()
    born(s, bdseq=3)
    dbirth = encode_payload([MetricSpec("pressure", 2.5, DataType.Float)], seq=1)
    s.handle(topic("DBIRTH", "pump1"), dbirth, NOW)
    # A late NDEATH from the session before (bdSeq 2) changes nothing.
    assert s.handle(topic("NDEATH"), ndeath(2), NOW).marks == []
    assert s.handle(topic("NDATA"), ndata(2, MetricSpec(alias=1, value=1.0)), NOW).readings
    out = s.handle(topic("NDEATH"), ndeath(3), NOW + 1)
    assert out.marks == [
        Mark(
            (f"{G}/{N}/Line.speed", f"{G}/{N}/running", f"{G}/{N}/temp", f"{G}/pump1/pressure"),
            True,
            NOW + 1,
        )
    ]
    # The session is over: data now is data before a birth.
    after = s.handle(topic("NDATA"), ndata(3, MetricSpec(alias=1, value=1.0)), NOW)
    assert after.readings == [] and after.rebirth == (G, N)
    # The next birth makes them fresh again.
    out = s.handle(topic("NBIRTH"), nbirth(bdseq=4), NOW + 2)
    assert out.marks and out.marks[0].stale is False


def test_ndeath_of_a_node_never_seen_born_changes_nothing() -> None:
    s = Sessions()
    assert s.handle(topic("NDEATH"), ndeath(0), NOW).marks == []
    assert s.events["ndeath_other_session"] == 1


def test_undecodable_payload_and_bad_topic_are_dead_letters() -> None:
    s = Sessions()
    out = s.handle(topic("NDATA"), b'{"value": 1}', NOW)
    assert out.readings == [] and out.dead and "not a Sparkplug B payload" in out.dead
    out = s.handle(f"spBv1.0/{G}/NDATA/{N}/dev", nbirth(), NOW)
    assert out.dead and "takes no device_id" in out.dead


def test_commands_and_their_echo_are_ignored() -> None:
    s = Sessions()
    out = s.handle(f"spBv1.0/{G}/NCMD/{N}", rebirth_command(), NOW)
    assert out.readings == [] and out.dead is None and out.rebirth is None


def test_metric_outside_the_ts_window_dead_letters_the_message() -> None:
    s = Sessions()
    born(s)
    body = ndata(1, MetricSpec(alias=1, value=1.0, timestamp_ms=0))
    out = s.handle(topic("NDATA"), body, NOW, TsWindow(300.0, 86400.0))
    assert out.readings == [] and out.dead and "alias 1" in out.dead


def test_named_data_metric_without_a_birth_definition_needs_a_datatype() -> None:
    s = Sessions()
    born(s)
    out = s.handle(
        topic("NDATA"),
        ndata(1, MetricSpec("new", 1.0, DataType.Double), MetricSpec("other", value=2.0)),
        NOW,
    )
    assert [(r.key, r.value) for r in out.readings] == [(f"{G}/{N}/new", 1.0)]
    assert s.skipped["no_datatype"] == 1


def test_sensor_key_replaces_slashes_in_metric_names() -> None:
    assert sensor_key("g", "m", "a/b/c") == "g/m/a.b.c"


def test_a_rebirth_does_not_store_the_current_values_twice() -> None:
    s = Sessions()
    born(s)
    s.handle(topic("NDATA"), ndata(1, MetricSpec(alias=1, value=30.0, timestamp_ms=T0 + 5)), NOW)
    # The rebirth republishes temp's last sample (same ts): not a new reading. Line.speed and
    # running repeat the first birth's samples; only a changed sample is stored.
    rebirth = encode_payload(
        [
            MetricSpec("bdSeq", 3, DataType.Int64),
            MetricSpec("temp", 30.0, DataType.Double, alias=1, timestamp_ms=T0 + 5),
            MetricSpec("Line/speed", 7, DataType.Int32, alias=2, timestamp_ms=T0),
            MetricSpec("running", False, DataType.Boolean, alias=3, timestamp_ms=T0 + 9),
        ],
        seq=0,
    )
    out = s.handle(topic("NBIRTH"), rebirth, NOW)
    assert [(r.key, r.value) for r in out.readings] == [(f"{G}/{N}/running", 0.0)]
    assert s.skipped["repeated_in_birth"] == 2


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=200),
    mtype=st.sampled_from(["NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH"]),
)
def test_any_bytes_give_readings_or_a_dead_letter_never_an_exception(
    body: bytes, mtype: str
) -> None:
    s = Sessions(rebirth_min_interval_s=0.0)
    born(s)
    out = s.handle(topic(mtype, "d1" if mtype.startswith("D") else None), body, NOW)
    assert out.dead is None or out.readings == []
    assert all(math.isfinite(r.value) and math.isfinite(r.ts) for r in out.readings)


def test_host_counts_skipped_metrics_and_rebirths_for_prometheus() -> None:

    class _State:
        def __init__(self) -> None:
            self.items: dict[str, str] = {}

        def state(self) -> dict[str, str]:
            return self.items

        def set_state(self, **items: object) -> None:
            self.items.update({k: str(v) for k, v in items.items()})

    host = SparkplugHost(SparkplugConfig(enabled=True), MarkStore(_State()))
    before = (
        SKIPPED.labels("type_String")._value.get(),
        EVENTS.labels("before_birth")._value.get(),
        REBIRTHS._value.get(),
    )
    sent: list[tuple[str, bytes, int, bool]] = []
    host.parse(topic("NDATA"), ndata(1, MetricSpec(alias=1, value=1.0)), NOW, 65536)
    host.parse(topic("NBIRTH"), nbirth(), NOW, 65536)
    host.flush(lambda *a: sent.append(a))
    assert [(t, q, r) for t, _, q, r in sent] == [(f"spBv1.0/{G}/NCMD/{N}", 0, False)]
    assert (
        SKIPPED.labels("type_String")._value.get() - before[0],
        EVENTS.labels("before_birth")._value.get() - before[1],
        REBIRTHS._value.get() - before[2],
    ) == (1, 1, 1)


def test_a_metric_name_the_hub_would_refuse_as_a_key_is_skipped() -> None:
    s = Sessions()
    out = s.handle(
        topic("NBIRTH"),
        nbirth(
            extra=[
                MetricSpec(" padded ", 1.0, DataType.Double),
                MetricSpec("a\x00b", 2.0, DataType.Double),
            ]
        ),
        NOW,
    )
    assert {r.key for r in out.readings} == {
        f"{G}/{N}/temp",
        f"{G}/{N}/Line.speed",
        f"{G}/{N}/running",
    }
    assert s.skipped["bad_key"] == 2


def test_a_metric_name_typed_decomposed_makes_the_precomposed_key() -> None:
    s = Sessions()
    out = s.handle(
        topic("NBIRTH"), nbirth(extra=[MetricSpec("cafe\u0301", 1.0, DataType.Double)]), NOW
    )
    assert f"{G}/{N}/caf\u00e9" in {r.key for r in out.readings}


def test_a_metric_past_the_value_bound_is_skipped_and_the_rest_kept() -> None:
    s = Sessions()
    out = s.handle(topic("NBIRTH"), nbirth(extra=[MetricSpec("huge", 1e308, DataType.Double)]), NOW)
    assert f"{G}/{N}/temp" in {r.key for r in out.readings}
    assert f"{G}/{N}/huge" not in {r.key for r in out.readings}
    assert s.skipped["out_of_range"] == 1

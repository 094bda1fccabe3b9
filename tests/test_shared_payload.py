"""Payload and topic parsing: every form README.md's "MQTT payloads" lists, and every way
to get it wrong."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.payload import Parsed, PayloadError, parse_payload
from shared.topics import TopicError, TopicTemplate, split_key
from shared.values import MAX_ABS_VALUE

NOW = 1_732_270_000.0


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"value": 23.5, "ts": 1732270000.123}', [Parsed(23.5, 1732270000.123)]),
        (
            b'{"value": 23.5, "ts": 1732270000.123, "unit": "C"}',
            [Parsed(23.5, 1732270000.123, "C")],
        ),
        (b'{"value": 7}', [Parsed(7.0, NOW)]),
        (b'{"value": 1.5, "ts": "2024-11-22T10:06:40Z"}', [Parsed(1.5, 1732270000.0)]),
        (b'{"value": 1.5, "ts": "2024-11-22T11:06:40+01:00"}', [Parsed(1.5, 1732270000.0)]),
        (b'[{"value": 1, "ts": 10}, {"value": 2}]', [Parsed(1.0, 10.0), Parsed(2.0, NOW)]),
        (b"23.5", [Parsed(23.5, NOW)]),
        (b"  -4e2 \n", [Parsed(-400.0, NOW)]),
        (b"[3, 4.5]", [Parsed(3.0, NOW), Parsed(4.5, NOW)]),
        (b"-1e15", [Parsed(-MAX_ABS_VALUE, NOW)]),
    ],
)
def test_accepted_forms(payload: bytes, expected: list[Parsed]) -> None:
    assert parse_payload(payload, NOW) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty payload"),
        (b"{not json", "not JSON and not a number"),
        (b"hello", "not JSON and not a number"),
        (b"nan", "not finite"),
        (b"inf", "not finite"),
        (b'{"value": "12"}', "value must be a number"),
        (b'{"value": true}', "value must be a number"),
        (b'{"value": null}', "value must be a number"),
        (b'{"temp": 1}', "no 'value'"),
        (b'{"value": 1, "extra": 2}', "unknown keys"),
        (b'{"value": 1, "ts": "yesterday"}', "not RFC 3339"),
        (b'{"value": 1, "ts": "2024-11-22T10:06:40"}', "no UTC offset"),
        (b'{"value": 1, "ts": -5}', "not a valid time"),
        (b'{"value": 1e999}', "out of range"),
        (b"1e308", "value must be within ±1e+15 (got 1e+308)"),
        (b'{"value": -1.5e15}', "value must be within ±1e+15"),
        (b'[{"value": 1}, {"value": 1e308}]', "[1]: value must be within ±1e+15"),
        (b"[]", "empty array"),
        (b'[{"value": 1}, {"value": "x"}]', "[1]: value must be a number"),
        (b'"12"', "expected an object"),
        (b'{"value": 1, "unit": 5}', "unit must be a string"),
    ],
)
def test_rejected_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=None) as info:
        parse_payload(payload, NOW)
    assert reason in str(info.value)


def test_oversize_payload_is_rejected_before_parsing() -> None:
    with pytest.raises(PayloadError, match="exceeds the 100-byte limit"):
        parse_payload(b"1" * 101, NOW, max_bytes=100)


@given(st.floats(-MAX_ABS_VALUE, MAX_ABS_VALUE))
def test_any_number_within_the_bound_round_trips_as_text(value: float) -> None:
    [parsed] = parse_payload(repr(value).encode(), NOW)
    assert parsed.value == value


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_give_a_reason(payload: bytes) -> None:
    try:
        readings = parse_payload(payload, NOW)
    except PayloadError as exc:
        assert str(exc)
    else:
        assert readings and all(math.isfinite(r.value) and math.isfinite(r.ts) for r in readings)


def test_topic_template_maps_to_key() -> None:
    tpl = TopicTemplate.compile("factory/{line}/{machine}/{sensor}")
    assert tpl.key("factory/l1/press-4/temp") == "l1/press-4/temp"
    assert tpl.topic_for("l1", "m", "s") == "factory/l1/m/s"


def test_a_topic_typed_decomposed_gives_the_precomposed_key() -> None:
    tpl = TopicTemplate.compile("factory/{line}/{machine}/{sensor}")
    assert (
        tpl.key("factory/cafe\u0301/m1/t") == tpl.key("factory/caf\u00e9/m1/t") == "caf\u00e9/m1/t"
    )


def test_topic_template_with_other_placeholders_and_order() -> None:
    tpl = TopicTemplate.compile("site/{site}/{machine}/{line}/data/{sensor}")
    assert tpl.key("site/berlin/m2/l9/data/rpm") == "l9/m2/rpm"


@pytest.mark.parametrize(
    "topic", ["factory/l1/m1", "factory/l1/m1/s1/extra", "plant/l1/m1/s1", "factory//m1/s1"]
)
def test_topic_that_does_not_fit(topic: str) -> None:
    with pytest.raises(TopicError):
        TopicTemplate.compile("factory/{line}/{machine}/{sensor}").key(topic)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("factory/{line}/{machine}", "lacks {sensor}"),
        ("factory/{line}/{line}/{machine}/{sensor}", "appears twice"),
        ("factory/+/{line}/{machine}/{sensor}", "must be a literal"),
        ("factory/x{line}/{machine}/{sensor}", "must be a literal"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TopicTemplate.compile(template)


def test_split_key() -> None:
    assert split_key("a/b/c") == ("a", "b", "c")
    for bad in ("a/b", "a//c", "a/b/c/d", ""):
        with pytest.raises(ValueError):
            split_key(bad)

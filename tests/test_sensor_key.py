"""shared.sensor_key: one rule for sensor keys, applied where the agent turns a topic into a
key (a dead letter at the gateway) and where the hub decodes a batch (a 422 naming the seq)."""

from __future__ import annotations

import unicodedata

import pytest

from shared.sensor_key import SensorKeyError, key_problem, split_key
from shared.text import BANNED_CATEGORIES, hidden_char
from shared.topics import TopicError, TopicTemplate
from shared.wire import Batch, WireError, WireReading, decode_batch, encode_batch

BAD = [
    "l1/m1/a\x00b",
    "l1/m1/a\r\nb",
    "l1/m1/a\tb",
    "l1/m1/\x7f",
    "l1/   /t",
    " /m1/t",
    "l1/m1/ t",
    "l1/m1/t\u200b",
    "l1/m1/\u202et",
    "l1/m1/\u2028",
    "l1//t",
    "l1/m1",
    "l1/m1/t/x",
    "l1/m1/" + "x" * 129,
]


@pytest.mark.parametrize("key", BAD)
def test_bad_keys_are_refused_with_a_reason(key: str) -> None:
    problem = key_problem(key)
    assert problem is not None and repr(key)[1:-1][:10] in problem
    with pytest.raises(SensorKeyError):
        split_key(key)


@pytest.mark.parametrize("key", ["l1/m1/t", "Linie 1/Presse-4/Temperatur °C", "a/b/c.d_e-f"])
def test_good_keys_pass(key: str) -> None:
    assert key_problem(key) is None
    assert "/".join(split_key(key)) == key


@pytest.mark.parametrize(
    "topic",
    ["factory/l1/m\x00/t", "factory/l1/ /t", "factory/l1/m1/a\r\nb", "factory/l1/m1/\u200b"],
)
def test_the_agent_dead_letters_topics_that_make_bad_keys(topic: str) -> None:
    template = TopicTemplate.compile("factory/{line}/{machine}/{sensor}")
    with pytest.raises(TopicError, match="sensor key"):
        template.key(topic)


def test_the_hub_decoder_names_the_reading_with_a_bad_key() -> None:
    body = encode_batch(
        Batch(
            gateway_id="gw-01",
            readings=[
                WireReading(1, "l1/m1/ok", 1.7e9, 1.0),
                WireReading(2, "l1/\x00/t", 1.7e9, 1.0),
            ],
        )
    )
    with pytest.raises(WireError) as caught:
        decode_batch(body)
    assert [(d["seq"], d["field"]) for d in caught.value.details] == [(2, "key")]


def test_every_character_is_judged_by_its_unicode_category() -> None:
    # Printable ASCII takes a fast path: it must agree with the category rule for every
    # ASCII character, and the rule still holds past ASCII.
    for code in [*range(128), 0x85, 0xA0, 0xAD, 0x200B, 0x2028, 0xE000, 0xE9, 0x4E2D]:
        ch = chr(code)
        banned = unicodedata.category(ch) in BANNED_CATEGORIES
        assert hidden_char(f"ab{ch}c") == (f"U+{code:04X}" if banned else None), hex(code)


def test_verdicts_are_remembered_only_for_keys_short_enough_to_be_valid() -> None:
    from shared import sensor_key

    remembered = sensor_key._str_key_problem.cache_info().currsize
    # A client may send keys of megabytes: each is judged the same, and none is kept.
    for i in range(3):
        long = f"l{i}/m/" + "s" * 1_000_000
        assert "longer than" in (key_problem(long) or "")
    assert sensor_key._str_key_problem.cache_info().currsize == remembered
    # A usual key is judged once, then remembered, with the same verdict.
    assert key_problem("cache/m1/t") is None
    assert key_problem("cache/m1/t") is None
    assert key_problem("cache/\x00/t") == key_problem("cache/\x00/t") is not None
    assert sensor_key._str_key_problem.cache_info().currsize == remembered + 2

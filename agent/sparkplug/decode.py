"""Sparkplug B payload bytes -> :class:`SpPayload` (timestamp, seq, metrics), or
:class:`SparkplugDecodeError` with the dead-letter reason; and a metric's value as a reading
value (numbers and booleans) or the reason it is not one.

Parsing is the ``protobuf`` runtime's (upb, in C) over the schema in
:mod:`agent.sparkplug.schema`; this module only walks the parsed message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from agent.sparkplug.schema import DataType, Payload
from shared.values import MAX_ABS_VALUE

# The Payload fields the spec declares (1..5); 6 and up are its extension range.
_PAYLOAD_FIELDS = 5

# Signed integer types: carried in an unsigned field as two's complement of this many bits.
_SIGNED_BITS: dict[int, int] = {
    DataType.Int8: 8,
    DataType.Int16: 16,
    DataType.Int32: 32,
    DataType.Int64: 64,
}
_UNSIGNED = frozenset({DataType.UInt8, DataType.UInt16, DataType.UInt32, DataType.UInt64})
_INT_FIELDS = frozenset({"int_value", "long_value"})
_FLOAT_TYPES = frozenset({DataType.Float, DataType.Double})
_FLOAT_FIELDS = frozenset({"float_value", "double_value"})
# Where a birth gives a metric's engineering unit (spec §6.4.7, "well-known properties").
_UNIT_PROPERTY = "engUnit"
_MAX_UNIT_LEN = 32


class SparkplugDecodeError(ValueError):
    """Not a Sparkplug B payload; the message is the dead-letter reason."""


@dataclass(slots=True)
class SpMetric:
    name: str | None
    alias: int | None
    timestamp_ms: int | None
    datatype: int | None
    is_historical: bool
    is_null: bool
    # Which member of the value oneof is set ("double_value", ...), None for none.
    kind: str | None
    # The scalar in that member; None for the message-valued kinds (DataSet, Template, ...).
    raw: int | float | bool | str | bytes | None
    unit: str | None


@dataclass(slots=True)
class SpPayload:
    timestamp_ms: int | None
    seq: int | None
    metrics: list[SpMetric]


def decode_payload(data: bytes) -> SpPayload:
    msg = Payload()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise SparkplugDecodeError(f"not a Sparkplug B payload: {exc}") from None
    # A field the spec declares but sent with another wire type lands among the unknown
    # fields: bytes that happen to parse as protobuf, not a payload.
    unknown = UnknownFieldSet(msg)
    for i in range(len(unknown)):
        field = unknown[i]
        if field.field_number <= _PAYLOAD_FIELDS:
            raise SparkplugDecodeError(
                f"not a Sparkplug B payload: field {field.field_number} has the wrong wire type"
            )
    metrics = []
    for m in msg.metrics:
        kind = m.WhichOneof("value")
        raw = getattr(m, kind) if kind is not None and kind in _SCALAR_KINDS else None
        unit = _unit(m) if m.HasField("properties") else None
        metrics.append(
            SpMetric(
                m.name if m.HasField("name") else None,
                m.alias if m.HasField("alias") else None,
                m.timestamp if m.HasField("timestamp") else None,
                m.datatype if m.HasField("datatype") else None,
                m.is_historical,
                m.is_null,
                kind,
                raw,
                unit,
            )
        )
    return SpPayload(
        msg.timestamp if msg.HasField("timestamp") else None,
        msg.seq if msg.HasField("seq") else None,
        metrics,
    )


_SCALAR_KINDS = frozenset(
    {
        "int_value",
        "long_value",
        "float_value",
        "double_value",
        "boolean_value",
        "string_value",
        "bytes_value",
    }
)


def _unit(m: object) -> str | None:
    props = m.properties  # type: ignore[attr-defined]
    for key, value in zip(props.keys, props.values, strict=False):
        if key == _UNIT_PROPERTY and value.WhichOneof("value") == "string_value":
            unit = str(value.string_value)
            return unit if 0 < len(unit) <= _MAX_UNIT_LEN else None
    return None


def reading_value(datatype: int, kind: str | None, raw: object) -> float | str:
    """A metric's value as a reading (booleans 0/1), or a str: why it is not one (the
    skip reason that is counted)."""
    if datatype == DataType.Boolean:
        if kind != "boolean_value":
            return "value_mismatch"
        return 1.0 if raw else 0.0
    if datatype in _FLOAT_TYPES:
        if kind not in _FLOAT_FIELDS:
            return "value_mismatch"
        value = float(raw)  # type: ignore[arg-type]
        if not math.isfinite(value):
            return "not_finite"
        return value if abs(value) <= MAX_ABS_VALUE else "out_of_range"
    bits = _SIGNED_BITS.get(datatype)
    if bits is not None or datatype in _UNSIGNED:
        if kind not in _INT_FIELDS:
            return "value_mismatch"
        n = int(raw)  # type: ignore[call-overload]
        if bits is not None:
            # Sign-extended or not, the low bits hold the two's complement value.
            n &= (1 << bits) - 1
            if n >= 1 << (bits - 1):
                n -= 1 << bits
        return float(n) if abs(n) <= MAX_ABS_VALUE else "out_of_range"
    try:
        return f"type_{DataType(datatype).name}"
    except ValueError:
        return "type_unknown"

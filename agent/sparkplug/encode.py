"""What the host application publishes: the rebirth request (NCMD) and its STATE
certificate; and a small payload builder the tests and the bench use to play edge nodes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

from agent.sparkplug.schema import DataType, Payload
from agent.sparkplug.topic import NAMESPACE

REBIRTH = "Node Control/Rebirth"

_FIELD_FOR = {
    DataType.Int8: "int_value",
    DataType.Int16: "int_value",
    DataType.Int32: "int_value",
    DataType.UInt8: "int_value",
    DataType.UInt16: "int_value",
    DataType.UInt32: "int_value",
    DataType.Int64: "long_value",
    DataType.UInt64: "long_value",
    DataType.DateTime: "long_value",
    DataType.Float: "float_value",
    DataType.Double: "double_value",
    DataType.Boolean: "boolean_value",
    DataType.String: "string_value",
    DataType.Text: "string_value",
    DataType.UUID: "string_value",
    DataType.Bytes: "bytes_value",
    DataType.File: "bytes_value",
}
_SIGNED_BITS = {DataType.Int8: 8, DataType.Int16: 16, DataType.Int32: 32, DataType.Int64: 64}


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric to encode. ``name`` or ``alias`` (or both, as in a birth)."""

    name: str | None = None
    value: int | float | bool | str | bytes | None = None
    datatype: DataType | None = None
    alias: int | None = None
    timestamp_ms: int | None = None
    is_historical: bool = False
    unit: str | None = None  # the engUnit property (births)
    # Encode the value as ``datatype`` says but leave the datatype field out, as DATA
    # messages may (the host takes it from the birth).
    omit_datatype: bool = False


def encode_payload(
    metrics: Iterable[MetricSpec],
    *,
    seq: int | None = None,
    timestamp_ms: int | None = None,
) -> bytes:
    msg = Payload()
    if timestamp_ms is not None:
        msg.timestamp = timestamp_ms
    if seq is not None:
        msg.seq = seq
    for spec in metrics:
        m = msg.metrics.add()
        if spec.name is not None:
            m.name = spec.name
        if spec.alias is not None:
            m.alias = spec.alias
        if spec.timestamp_ms is not None:
            m.timestamp = spec.timestamp_ms
        if spec.is_historical:
            m.is_historical = True
        if spec.unit is not None:
            m.properties.keys.append("engUnit")
            unit = m.properties.values.add()
            unit.type = DataType.String
            unit.string_value = spec.unit
        if spec.value is None:
            if spec.datatype is not None:
                m.datatype = spec.datatype
            m.is_null = True
            continue
        value = spec.value
        if spec.datatype is None:
            # No datatype (a DATA message): the value's own kind picks the field.
            setattr(m, _field_for_value(value), value)
            continue
        if not spec.omit_datatype:
            m.datatype = spec.datatype
        bits = _SIGNED_BITS.get(spec.datatype)
        if bits is not None and isinstance(value, int) and value < 0:
            # Two's complement in the unsigned field, sign-extended to its width.
            value += 1 << (64 if spec.datatype == DataType.Int64 else 32)
        setattr(m, _FIELD_FOR[spec.datatype], value)
    return bytes(msg.SerializeToString())


def _field_for_value(value: object) -> str:
    if isinstance(value, bool):
        return "boolean_value"
    if isinstance(value, int):
        return "long_value"
    if isinstance(value, float):
        return "double_value"
    if isinstance(value, str):
        return "string_value"
    return "bytes_value"


def rebirth_command() -> bytes:
    """The NCMD payload asking an edge node to publish its births again (spec §6.4.20)."""
    return encode_payload(
        [MetricSpec(REBIRTH, True, DataType.Boolean)],
        timestamp_ms=now_ms(),
    )


def ncmd_topic(group_id: str, edge_node_id: str) -> str:
    return f"{NAMESPACE}/{group_id}/NCMD/{edge_node_id}"


def state_payload(online: bool, timestamp_ms: int | None = None) -> bytes:
    """A primary host's STATE certificate, Sparkplug 3.0 form (JSON, spec §7.2)."""
    ts = now_ms() if timestamp_ms is None else timestamp_ms
    return json.dumps({"online": online, "timestamp": ts}).encode()

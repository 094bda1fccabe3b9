"""What storage speaks in, whatever the engine: errors, and the values handlers pass in."""

from __future__ import annotations

from dataclasses import dataclass

# Bits of a reading id taken by the gateway's seq: id = gateway row id * 2^40 + seq, so a
# (gateway, seq) pair has exactly one id. 2^40 seqs is 35 years of one gateway at 1,000
# readings/s.
SEQ_BITS = 40


def reading_id(gateway_id: int, seq: int) -> int:
    return (gateway_id << SEQ_BITS) + seq


class StorageError(Exception):
    """A storage problem worded for an operator (schema too new, unwritable path...)."""


class Conflict(StorageError):
    """The thing to create exists already."""


@dataclass(frozen=True, slots=True)
class GatewayReport:
    """What a batch says about its gateway besides the readings."""

    backlog: int
    dropped: int
    dead_letters: int
    agent_version: str


@dataclass(frozen=True, slots=True)
class StoreResult:
    accepted: int
    duplicates: int
    config_version: int = 0


@dataclass(frozen=True, slots=True)
class Thresholds:
    min: float | None
    max: float | None
    deadband: float = 0.0


@dataclass(frozen=True, slots=True)
class FoundAnomaly:
    """One anomaly of a scan, tied to the reading it is about."""

    reading_id: int
    ts: float
    value: float
    z_score: float
    index: int

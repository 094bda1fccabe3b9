"""What storage speaks in, whatever the engine: errors, and the values handlers pass in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Bits of a reading id taken by the gateway's seq: id = gateway row id * 2^40 + seq, so a
# (gateway, seq) pair has exactly one id. 2^40 seqs is 35 years of one gateway at 1,000
# readings/s.
SEQ_BITS = 40


# (id, sensor_id, ts, value, gateway_id, seq): a reading row as both engines store it.
ReadingRow = tuple[int, int, float, float, int, int]
# factory_id -> {sensor key -> sensor id}, shared by the concerns of one Storage. Entries are
# added only after the transaction that made them commits, and checked by every batch that
# uses them (hub.storage.ingest): a sensor may be deleted by any hub process.
SensorCache = dict[int, dict[str, int]]

Stats = tuple[float | None, float | None, float | None, int, float | None, float | None]
# One page of a list (rows, how many there are in all).
Page = tuple[list[dict[str, Any]], int]
# (bucket start, min, max, avg, count, first ts, first value, last ts, last value)
Bucket = tuple[float, float, float, float, int, float, float, float, float]


def reading_id(gateway_id: int, seq: int) -> int:
    return (gateway_id << SEQ_BITS) + seq


class StorageError(Exception):
    """A storage problem worded for an operator (schema too new, unwritable path...)."""


class TokenRevoked(StorageError):
    """The batch's token or its gateway was revoked (or deleted) before its transaction."""


class DatabaseUnavailable(StorageError):
    """No writable database answered in time (refused, timed out, a standby, the connection
    lost mid-transaction): the request may be retried; what it wrote is not known to be
    committed, so it must not be answered as if it were."""

    def __init__(self, message: str, hosts: list[str]) -> None:
        super().__init__(message)
        self.hosts = hosts


class NoWritableHost(DatabaseUnavailable):
    """Every host of ``database`` that answered is a standby: a URL that names no primary
    (at startup, a mistake to name rather than wait out)."""


@dataclass(frozen=True, slots=True)
class Waits:
    """How long a request may wait for the database: to connect to each host, and for a
    pooled connection. Bounded so that a lost primary is a quick 503, not a hung request."""

    connect_s: float = 3.0
    pool_s: float = 5.0


class Conflict(StorageError):
    """The thing to create exists already."""


class UnknownFactory(StorageError):
    """A factory named for a user's or a token's scope does not exist."""


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


@dataclass(frozen=True, slots=True)
class TierUsage:
    """One storage tier (raw, 1m, 1h): rows, bytes (None: the engine cannot tell), oldest."""

    tier: str
    rows: int
    bytes: int | None
    oldest: float | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A console session as stored (hub.storage.access)."""

    token_hash: str
    csrf: str
    created_at: float
    expires_at: float
    # A person's session (None: a token's): whose, its idle timeout and last use.
    user_id: int | None = None
    idle_s: float | None = None
    last_seen_at: float | None = None

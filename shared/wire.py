"""The sync batch: what an agent POSTs to ``/api/v1/ingest`` and what the hub answers.

A batch is JSON (optionally gzip, ``Content-Encoding: gzip``)::

    {"v": 1, "gateway_id": "gw-01", "sent_at": 1732270000.5,
     "backlog": 1200, "dropped": 0, "dead_letters": 3, "agent_version": "0.1.0",
     "readings": [[1001, "line1/press4/temp", 1732270000.123, 23.5, "C"], ...]}

Each reading is ``[seq, key, ts, value, unit]``. ``seq`` is the gateway's monotonic sequence
number (the buffer's AUTOINCREMENT rowid, never reused), so ``(gateway_id, seq)`` names one
reading forever: the hub stores each pair once, whatever batches it arrives in and however
often. That is what makes retries after a lost answer, a crash or a re-formed batch safe.
"""

from __future__ import annotations

import gzip
import math
import time
import zlib
from typing import Any

import msgspec

from shared.ids import gateway_id_problem
from shared.payload import NO_WINDOW, TsWindow
from shared.topics import split_key
from shared.values import all_in_range, value_problem

WIRE_VERSION = 1
MAX_READINGS_PER_BATCH = 50_000
# Alert entries per batch: the agent's [alerts] batch_max may not be set higher, so its own
# batches never meet this; a batch past it is refused before any alert is looked at.
MAX_ALERTS_PER_BATCH = 10_000
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024
MAX_UNIT_LEN = 32
# The hub packs (gateway, seq) into one 64-bit reading id with 40 bits of seq.
MAX_SEQ = 1 << 40


class WireReading(msgspec.Struct, array_like=True, frozen=True):
    seq: int
    key: str
    ts: float
    value: float
    unit: str | None = None


class WireAlert(msgspec.Struct, frozen=True, kw_only=True):
    """An alert raised at the edge. Sent when it opens and again when it closes: the hub
    upserts on ``(gateway_id, id)``, so re-sending either state is harmless."""

    id: int  # the gateway's alert id (AUTOINCREMENT in its buffer), unique per gateway
    key: str
    rule: str  # "threshold" | "rate_of_change" | "rule" (the hub's alert rules of the sensor)
    breach_type: str  # "above_maximum" | "below_minimum" | "rate_of_change"
    severity: str  # "medium" | "high" | "critical"; "rule": "info" | "warning" | "critical"
    threshold_value: float
    value: float  # the worst value seen while open
    opened_at: float
    closed_at: float | None = None
    reading_seq: int | None = None  # the reading that opened it
    # "rule" alerts: the hub's id of the rule that decides it (agents before this field send
    # none, and the hub infers the rule from the severity and threshold).
    rule_id: int | None = None


class WireMark(msgspec.Struct, array_like=True, frozen=True):
    """``[key, stale, at]``: a sensor marked stale (its Sparkplug B edge node or device died)
    or fresh again (it was born again), as the agent saw it at ``at``. The hub keeps the
    mark with the latest ``at`` per sensor, so re-sending or reordering marks is harmless.
    Optional in a batch: older agents send none, older hubs ignore them."""

    key: str
    stale: bool
    at: float


ALERT_RULES = frozenset({"threshold", "rate_of_change", "rule"})
ALERT_BREACHES = frozenset({"above_maximum", "below_minimum", "rate_of_change"})
ALERT_SEVERITIES = frozenset({"info", "medium", "warning", "high", "critical"})


class Batch(msgspec.Struct, frozen=True, kw_only=True):
    gateway_id: str
    readings: list[WireReading]
    alerts: list[WireAlert] = []
    marks: list[WireMark] = []
    v: int = WIRE_VERSION
    sent_at: float = 0.0
    backlog: int = 0
    dropped: int = 0
    dead_letters: int = 0
    agent_version: str = ""


class IngestResult(msgspec.Struct, frozen=True, kw_only=True):
    accepted: int
    duplicates: int
    config_version: int = 0


class IngestResponse(msgspec.Struct, frozen=True):
    """The hub's envelope around an IngestResult: ``{"data": {...}, "meta": {...}}``."""

    data: IngestResult
    meta: dict[str, Any] = {}


class WireError(ValueError):
    """A batch that cannot be applied; carries the API error code and per-field details."""

    def __init__(
        self,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        status: int = 422,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []
        self.status = status


_encoder = msgspec.json.Encoder()
_batch_decoder = msgspec.json.Decoder(Batch)
_response_decoder = msgspec.json.Decoder(IngestResponse)


def encode_batch(batch: Batch, *, compress: bool = True, level: int = 1) -> bytes:
    # Level 1: on the 2-core gateways CPU is scarcer than bandwidth; it still shrinks a batch ~4x.
    body = _encoder.encode(batch)
    return gzip.compress(body, compresslevel=level, mtime=0) if compress else body


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise WireError("bad_encoding", f"body is not valid gzip: {exc}", status=400) from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise WireError("payload_too_large", f"decompressed body exceeds {limit} bytes", status=413)
    if not inflater.eof:
        raise WireError("bad_encoding", "gzip body is truncated", status=400)
    return out


def decode_batch(
    body: bytes,
    content_encoding: str | None = None,
    *,
    max_decompressed: int = MAX_DECOMPRESSED_BYTES,
    window: TsWindow = NO_WINDOW,
) -> Batch:
    """Bytes of a POST body -> a validated Batch, or WireError naming every bad reading."""
    encoding = (content_encoding or "").strip().lower()
    if encoding == "gzip" or (not encoding and body[:2] == b"\x1f\x8b"):
        body = _gunzip(body, max_decompressed)
    elif encoding not in ("", "identity"):
        raise WireError("bad_encoding", f"unsupported Content-Encoding {encoding!r}", status=400)
    if not body.strip():
        raise WireError("invalid_json", "empty body", status=400)
    try:
        batch = _batch_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise WireError("validation_error", f"batch does not match the schema: {exc}") from None
    except msgspec.DecodeError as exc:
        raise WireError("invalid_json", f"body is not valid JSON: {exc}", status=400) from None
    validate_batch(batch, window)
    return batch


def validate_batch(batch: Batch, window: TsWindow = NO_WINDOW) -> None:
    """Checks msgspec's types cannot express. Collects every problem, then raises once.

    Seqs may come in any order within a batch and across batches (the agent sends live
    readings ahead of a backlog); only a seq twice in one batch is an error. ``window``
    bounds ts against the receiver's clock now; a reading outside it is named by its seq,
    so the agent moves exactly that one to its dead letters."""
    problems: list[dict[str, Any]] = []
    now = time.time()
    if batch.v != WIRE_VERSION:
        problems.append({"field": "v", "message": f"unsupported wire version {batch.v}"})
    if bad_id := gateway_id_problem(batch.gateway_id):
        problems.append({"field": "gateway_id", "message": bad_id})
    if len(batch.readings) > MAX_READINGS_PER_BATCH:
        problems.append(
            {"field": "readings", "message": f"more than {MAX_READINGS_PER_BATCH} readings"}
        )
    for name in ("backlog", "dropped", "dead_letters"):
        if getattr(batch, name) < 0:
            problems.append({"field": name, "message": "must be >= 0"})
    # A clean batch, the common case, is checked column by column in builtins; only one that
    # fails there is walked reading by reading to name every culprit.
    if not _readings_clean(batch.readings, window, now):
        _reading_problems(batch.readings, window, now, problems)
    if len(batch.alerts) > MAX_ALERTS_PER_BATCH:
        problems.append({"field": "alerts", "message": f"more than {MAX_ALERTS_PER_BATCH} alerts"})
    else:
        _duplicate_alert_ids(batch.alerts, problems)
    for i, a in enumerate(batch.alerts if len(batch.alerts) <= MAX_ALERTS_PER_BATCH else ()):
        where = {"alert_index": i, "alert_id": a.id}
        if a.id <= 0:
            problems.append({**where, "field": "alerts.id", "message": "must be > 0"})
        try:
            split_key(a.key)
        except ValueError as exc:
            problems.append({**where, "field": "alerts.key", "message": str(exc)})
        for name, allowed in (
            ("rule", ALERT_RULES),
            ("breach_type", ALERT_BREACHES),
            ("severity", ALERT_SEVERITIES),
        ):
            if getattr(a, name) not in allowed:
                problems.append(
                    {
                        **where,
                        "field": f"alerts.{name}",
                        "message": f"must be one of {sorted(allowed)}",
                    }
                )
        times = [a.opened_at] + ([a.closed_at] if a.closed_at is not None else [])
        if not all(math.isfinite(x) for x in (a.value, a.threshold_value, *times)):
            problems.append({**where, "field": "alerts", "message": "numbers must be finite"})
        if len(problems) >= 100:
            break
    for i, mark in enumerate(batch.marks):
        try:
            split_key(mark.key)
        except ValueError as exc:
            problems.append({"mark_index": i, "field": "marks.key", "message": str(exc)})
        if not math.isfinite(mark.at) or mark.at < 0:
            problems.append(
                {"mark_index": i, "field": "marks.at", "message": "must be finite epoch seconds"}
            )
        if len(problems) >= 100:
            break
    if problems:
        raise WireError("validation_error", f"{len(problems)} problem(s) in batch", problems)


def _duplicate_alert_ids(alerts: list[WireAlert], problems: list[dict[str, Any]]) -> None:
    """An alert id twice in one batch: the hub would apply one alert's transitions twice
    over (every copy journals), so the batch is refused naming each id once."""
    seen: set[int] = set()
    named: set[int] = set()
    for i, a in enumerate(alerts):
        if a.id in seen and a.id not in named:
            named.add(a.id)
            problems.append(
                {
                    "alert_index": i,
                    "alert_id": a.id,
                    "field": "alerts.id",
                    "message": "appears more than once in the batch",
                }
            )
            if len(problems) >= 100:
                return
        seen.add(a.id)


def _reading_problems(
    readings: list[WireReading], window: TsWindow, now: float, problems: list[dict[str, Any]]
) -> None:
    seen: set[int] = set()
    for i, r in enumerate(readings):
        where = {"index": i, "seq": r.seq}
        if not 0 < r.seq < MAX_SEQ:
            problems.append({**where, "field": "seq", "message": f"must be in 1..{MAX_SEQ - 1}"})
        elif r.seq in seen:
            problems.append({**where, "field": "seq", "message": "appears twice in the batch"})
        seen.add(r.seq)
        try:
            split_key(r.key)
        except ValueError as exc:
            problems.append({**where, "field": "key", "message": str(exc)})
        if bad_value := value_problem(r.value):
            # Named by its seq like any bad reading: the agent dead-letters exactly this one
            # and sends the rest again, so one huge value never holds the others back.
            problems.append({**where, "field": "value", "message": bad_value})
        if not math.isfinite(r.ts) or r.ts < 0:
            problems.append({**where, "field": "ts", "message": "must be finite epoch seconds"})
        elif outside := window.problem(r.ts, now, "the hub's clock"):
            problems.append({**where, "field": "ts", "message": outside})
        if r.unit is not None and len(r.unit) > MAX_UNIT_LEN:
            problems.append({**where, "field": "unit", "message": f"longer than {MAX_UNIT_LEN}"})
        if len(problems) >= 100:
            return


def _readings_clean(readings: list[WireReading], window: TsWindow, now: float) -> bool:
    """True when no reading breaks a rule the loop in validate_batch checks. A false
    answer only means "look closer": the loop then finds the culprits (or none)."""
    if not readings:
        return True
    seqs = [r.seq for r in readings]
    if min(seqs) <= 0 or max(seqs) >= MAX_SEQ or len(set(seqs)) != len(seqs):
        return False
    if not all_in_range([r.value for r in readings]):
        return False
    stamps = [r.ts for r in readings]
    lo, hi = min(stamps), max(stamps)
    if not math.isfinite(sum(stamps)) or lo < 0:
        return False
    # The window is an interval, so its ends decide for every stamp between them.
    if window.problem(lo, now) or window.problem(hi, now):
        return False
    for key in {r.key for r in readings}:
        try:
            split_key(key)
        except ValueError:
            return False
    return all(len(u) <= MAX_UNIT_LEN for u in {r.unit for r in readings} if u is not None)


def encode_result(result: IngestResult) -> bytes:
    return _encoder.encode(result)


def decode_response(body: bytes) -> IngestResult:
    """The ingest endpoint's 2xx body -> IngestResult (msgspec errors propagate)."""
    return _response_decoder.decode(body).data

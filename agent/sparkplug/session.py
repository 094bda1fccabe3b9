"""The session rules of a Sparkplug B host application (spec §5, "Host Applications"), as a
pure state machine: one call per message in arrival order, no I/O.

Per edge node (group_id, edge_node_id) it keeps the last NBIRTH's bdSeq, the last seq seen
(0-255, wrapping) and, per node and per device, the metric definitions of the last birth
(name, datatype, unit by alias and by name). What it answers for each message
(:class:`Outcome`): the readings, or the dead-letter reason; whether to ask the node for a
rebirth (rate-limited per node); and which sensors to mark stale or fresh at the hub.

* NBIRTH starts a session: definitions replaced, seq taken from it, node keys fresh.
* DBIRTH / NDATA / DDATA / DDEATH must follow with seq + 1 (mod 256). A gap, anything before
  the node's birth, a device without its birth, or an alias not in the birth asks for a
  rebirth (NCMD ``Node Control/Rebirth``). A message in a gap is still stored: its metrics
  resolve against the birth in force; only those that do not are skipped.
* NDEATH with the birth's bdSeq ends the session: every key born in it is stale until the
  next birth. Any other NDEATH (a late one from an older session, or for a node whose birth
  this process never saw) changes nothing.
* DDEATH marks that device's keys stale until its next DBIRTH.

Birth values are readings like DATA values. Numeric and boolean metrics are readings
(booleans 0/1); everything else, and the protocol's own metrics (``bdSeq``, ``Node
Control/*``, ``Device Control/*``), is skipped and counted in :attr:`Sessions.skipped` by
reason. The state lives in memory only: after an agent restart the first message of each
node asks for a rebirth, which Sparkplug nodes answer with their current values.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.buffer import Reading
from agent.sparkplug.decode import (
    SparkplugDecodeError,
    SpMetric,
    SpPayload,
    decode_payload,
    reading_value,
)
from agent.sparkplug.schema import DataType
from agent.sparkplug.topic import COMMAND_TYPES, SparkplugTopicError, Topic, parse_topic
from shared.payload import NO_WINDOW, TsWindow
from shared.sensor_key import key_problem
from shared.text import nfc

SEQ_MODULO = 256
BDSEQ = "bdSeq"
_PROTOCOL_PREFIXES = ("Node Control/", "Device Control/")

NodeId = tuple[str, str]  # (group_id, edge_node_id)
_INT_KINDS = frozenset({"int_value", "long_value"})
# The datatypes whose metrics are readings (numbers, and booleans as 0/1).
READING_TYPES = frozenset(
    {
        DataType.Int8,
        DataType.Int16,
        DataType.Int32,
        DataType.Int64,
        DataType.UInt8,
        DataType.UInt16,
        DataType.UInt32,
        DataType.UInt64,
        DataType.Float,
        DataType.Double,
        DataType.Boolean,
    }
)


@dataclass(frozen=True, slots=True)
class Mark:
    """Sensors to mark stale (their node or device died) or fresh (it was born again)."""

    keys: tuple[str, ...]
    stale: bool
    at: float  # when the agent saw the death or birth (epoch seconds)


@dataclass(slots=True)
class Outcome:
    readings: list[Reading] = field(default_factory=list)
    dead: str | None = None  # the dead-letter reason: the message has no readings
    rebirth: NodeId | None = None  # ask this node for a rebirth (already rate-limited)
    marks: list[Mark] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Def:
    key: str | None  # None: a protocol metric, never a reading; "": not a valid sensor key
    datatype: int
    unit: str | None


@dataclass(slots=True)
class _Scope:
    """The metric definitions of one birth: a node's own metrics or one device's."""

    by_alias: dict[int, _Def] = field(default_factory=dict)
    by_name: dict[str, _Def] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Node:
    bdseq: int | None
    seq: int
    own: _Scope
    devices: dict[str, _Scope] = field(default_factory=dict)
    # Keys of devices that died (DDEATH) in this session: stale already, not again at NDEATH.
    dead_devices: set[str] = field(default_factory=set)


def sensor_key(group_id: str, machine: str, metric: str) -> str:
    """DESIGN §3: ``group_id/machine/metric`` with ``/`` in the metric name as ``.``."""
    return f"{group_id}/{machine}/{metric.replace('/', '.')}"


def _valid_key(group_id: str, machine: str, metric: str) -> str:
    """The sensor key, or "" when it breaks the sensor key rule both ends apply (control
    characters, blank ends, overlong segments: the hub would refuse it), in NFC as the
    hub keeps it."""
    key = nfc(sensor_key(group_id, machine, metric))
    return "" if key_problem(key) else key


def _bdseq(p: SpPayload) -> int | None:
    """The bdSeq metric of a birth or death certificate (spec: Int64, 0-255)."""
    for m in p.metrics:
        if m.name == BDSEQ and isinstance(m.raw, int) and m.kind in _INT_KINDS:
            return m.raw
    return None


def _is_protocol(name: str) -> bool:
    return name == BDSEQ or name.startswith(_PROTOCOL_PREFIXES)


class Sessions:
    """Every edge node's session, as a host application tracks them."""

    def __init__(
        self,
        rebirth_min_interval_s: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rebirth_min_interval_s = rebirth_min_interval_s
        self._clock = clock
        self._nodes: dict[NodeId, _Node] = {}
        self._last_rebirth: dict[NodeId, float] = {}
        # Metrics that became no reading, by reason ("protocol", "type_String", ...).
        self.skipped: Counter[str] = Counter()
        # Session events, by kind ("seq_gap", "before_birth", "ndeath", ...).
        self.events: Counter[str] = Counter()
        self.rebirths_requested = 0
        # The last (ts, value) per sensor key: a birth repeats a node's current values, and one
        # it already sent in DATA (same sample, same timestamp) must not be stored twice.
        self._last: dict[str, tuple[float, float]] = {}

    # -- the one entry point ---------------------------------------------------------------

    def handle(
        self,
        topic: str,
        payload: bytes,
        received_at: float,
        window: TsWindow = NO_WINDOW,
    ) -> Outcome:
        try:
            t = parse_topic(topic)
        except SparkplugTopicError as exc:
            return Outcome(dead=str(exc))
        if t.message_type in COMMAND_TYPES:
            # Commands go to edge nodes (ours among them, echoed by our own subscription).
            self.events["command_ignored"] += 1
            return Outcome()
        try:
            p = decode_payload(payload)
        except SparkplugDecodeError as exc:
            return Outcome(dead=str(exc))
        if t.message_type == "NBIRTH":
            out = self._nbirth(t, p, received_at, window)
        elif t.message_type == "NDEATH":
            return self._ndeath(t, p, received_at)
        else:
            out = self._in_session(t, p, received_at, window)
        last = self._last
        for r in out.readings:
            last[r.key] = (r.ts, r.value)
        return out

    # -- message types ---------------------------------------------------------------------

    def _nbirth(self, t: Topic, p: SpPayload, received_at: float, window: TsWindow) -> Outcome:
        if p.seq is None:
            self.events["birth_without_seq"] += 1
            return Outcome(dead="NBIRTH without seq", rebirth=self._rebirth(t.node))
        bdseq = _bdseq(p)
        old = self._nodes.get(t.node)
        scope = self._define(t.group_id, t.edge_node_id, p.metrics)
        node = _Node(bdseq, p.seq % SEQ_MODULO, scope)
        if old is not None:
            # Device keys stay known for the NDEATH of this session; each DBIRTH redefines.
            node.devices = {d: _Scope(keys=s.keys) for d, s in old.devices.items()}
            node.dead_devices = set(old.dead_devices)
        self._nodes[t.node] = node
        out, _ = self._readings(scope, t.group_id, t.edge_node_id, p, received_at, window)
        self._drop_repeats(out)
        if scope.keys:
            out.marks.append(Mark(tuple(sorted(scope.keys)), False, received_at))
        return out

    def _ndeath(self, t: Topic, p: SpPayload, received_at: float) -> Outcome:
        node = self._nodes.get(t.node)
        bdseq = _bdseq(p)
        if node is None or node.bdseq is None or bdseq != node.bdseq:
            # A will from an older session arriving late, or a node we never saw born.
            self.events["ndeath_other_session"] += 1
            return Outcome()
        del self._nodes[t.node]
        keys = set(node.own.keys)
        for scope in node.devices.values():
            keys |= scope.keys
        self.events["ndeath"] += 1
        return Outcome(marks=[Mark(tuple(sorted(keys)), True, received_at)] if keys else [])

    def _in_session(self, t: Topic, p: SpPayload, received_at: float, window: TsWindow) -> Outcome:
        node = self._nodes.get(t.node)
        if node is None:
            self.events["before_birth"] += 1
            self.skipped["before_birth"] += len(p.metrics)
            return Outcome(rebirth=self._rebirth(t.node))
        rebirth = False
        if p.seq is None or p.seq % SEQ_MODULO != (node.seq + 1) % SEQ_MODULO:
            self.events["seq_gap"] += 1
            rebirth = True
        if p.seq is not None:
            node.seq = p.seq % SEQ_MODULO  # resynchronise: one gap, one rebirth request
        mtype, device = t.message_type, t.device_id
        out = Outcome()
        if mtype == "NDATA":
            out, unknown = self._readings(
                node.own, t.group_id, t.edge_node_id, p, received_at, window
            )
            rebirth = rebirth or unknown
        elif device is None:  # parse_topic gives every device type a device_id
            raise AssertionError(mtype)
        elif mtype == "DBIRTH":
            known = node.devices.get(device)
            scope = self._define(t.group_id, device, p.metrics)
            born = tuple(sorted(scope.keys))  # fresh: what this birth has
            if known is not None:
                scope.keys |= known.keys  # stale at NDEATH: all the device ever had
            node.devices[device] = scope
            node.dead_devices.discard(device)
            out, _ = self._readings(scope, t.group_id, device, p, received_at, window)
            self._drop_repeats(out)
            if born:
                out.marks.append(Mark(born, False, received_at))
        elif (dscope := node.devices.get(device)) is None or device in node.dead_devices:
            self.events["device_before_birth"] += 1
            self.skipped["before_birth"] += len(p.metrics)
            rebirth = rebirth or mtype == "DDATA"
        elif mtype == "DDEATH":
            node.dead_devices.add(device)
            self.events["ddeath"] += 1
            if dscope.keys:
                out.marks.append(Mark(tuple(sorted(dscope.keys)), True, received_at))
        else:
            out, unknown = self._readings(dscope, t.group_id, device, p, received_at, window)
            rebirth = rebirth or unknown
        if rebirth:
            out.rebirth = self._rebirth(t.node)
        return out

    # -- helpers ---------------------------------------------------------------------------

    def _define(self, group_id: str, machine: str, metrics: Iterable[SpMetric]) -> _Scope:
        """A birth's metrics -> the definitions DATA messages resolve against."""
        scope = _Scope()
        for m in metrics:
            if not m.name or m.datatype is None:
                continue  # counted when its value is read (no_name / no_datatype)
            key = None if _is_protocol(m.name) else _valid_key(group_id, machine, m.name)
            d = _Def(key, m.datatype, m.unit)
            scope.by_name[m.name] = d
            if m.alias is not None:
                scope.by_alias[m.alias] = d
            if key and m.datatype in READING_TYPES:
                scope.keys.add(key)
        return scope

    def _readings(
        self,
        scope: _Scope,
        group_id: str,
        machine: str,
        p: SpPayload,
        received_at: float,
        window: TsWindow,
    ) -> tuple[Outcome, bool]:
        """The readings of a birth or DATA message, and whether an alias was unknown."""
        out = Outcome()
        readings = out.readings
        payload_ts = p.timestamp_ms / 1000 if p.timestamp_ms is not None else received_at
        skipped = self.skipped
        unknown_alias = False
        for m in p.metrics:
            name = m.name
            if name is not None:
                d = scope.by_name.get(name)
            elif m.alias is not None:
                d = scope.by_alias.get(m.alias)
                if d is None:
                    skipped["unknown_alias"] += 1
                    unknown_alias = True
                    continue
            else:
                d = None
            if d is not None:
                key = d.key
                if key is None:
                    skipped["protocol"] += 1
                    continue
                if not key:
                    skipped["bad_key"] += 1
                    continue
            elif not name:
                skipped["no_name"] += 1
                continue
            elif _is_protocol(name):
                skipped["protocol"] += 1
                continue
            else:
                key = _valid_key(group_id, machine, name)
                if not key:
                    skipped["bad_key"] += 1
                    continue
            datatype = m.datatype if m.datatype is not None else (d.datatype if d else None)
            if datatype is None:
                skipped["no_datatype"] += 1
                continue
            if m.is_null:
                skipped["null"] += 1
                continue
            value = reading_value(datatype, m.kind, m.raw)
            if isinstance(value, str):
                skipped[value] += 1
                continue
            ts = m.timestamp_ms / 1000 if m.timestamp_ms is not None else payload_ts
            if problem := window.problem(ts, received_at):
                # All or nothing, as for a JSON array: a wrong clock shows in one dead letter.
                what = name if name is not None else f"alias {m.alias}"
                return Outcome(dead=f"metric {what!r}: {problem}"), unknown_alias
            unit = d.unit if d is not None and d.unit is not None else m.unit
            readings.append(Reading(key, ts, value, unit, received_at))
        if unknown_alias:
            self.events["unknown_alias"] += 1
        return out, unknown_alias

    def _drop_repeats(self, out: Outcome) -> None:
        """Leave out of a birth the samples this process already stored (same key, ts and
        value): a rebirth republishes the current values with their original timestamps."""
        last = self._last
        kept = [r for r in out.readings if last.get(r.key) != (r.ts, r.value)]
        if len(kept) != len(out.readings):
            self.skipped["repeated_in_birth"] += len(out.readings) - len(kept)
            out.readings = kept

    def _rebirth(self, node: NodeId) -> NodeId | None:
        """``node`` when a rebirth request may go out now (at most one per node per
        rebirth_min_interval_s), else None."""
        now = self._clock()
        last = self._last_rebirth.get(node)
        if last is not None and now - last < self.rebirth_min_interval_s:
            self.events["rebirth_suppressed"] += 1
            return None
        self._last_rebirth[node] = now
        self.rebirths_requested += 1
        return node

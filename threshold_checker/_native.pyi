"""Threshold (min/max) checks with a severity, implemented in Rust (crates/threshold-checker).

The stubs of the native module; the ``threshold_checker`` package re-exports all of it.
``python -m mypy.stubtest threshold_checker._native`` (in ``just lint``) keeps them true.

Rules:

* A reading breaches the maximum when ``value > max_threshold`` and the minimum when
  ``value < min_threshold``. A value equal to a threshold is not a breach.
* NaN values are skipped (never an alert); ``±inf`` values are compared normally.
* Thresholds are ``None`` (no bound) or finite numbers with ``min <= max``; anything else
  raises ``ValueError``. Wrong argument types raise ``TypeError``.

Severity, from how far past the threshold the value is, relative to the threshold::

    excess = abs(value - threshold) / scale
    scale  = abs(threshold)            if threshold != 0
           = max_threshold - min_threshold
                                       if threshold == 0 and both are set with max > min
           = 1.0                       otherwise
    excess >= CRITICAL_RATIO (0.20) -> "critical"
    excess >= HIGH_RATIO     (0.10) -> "high"
    otherwise                       -> "medium"

Stateful alerting (``RuleEngine``): one alert per excursion instead of one per reading.

* Threshold rule: an alert opens when a reading breaches ``max``/``min`` (as above) and
  closes after ``clear_count`` *consecutive* readings inside the clear band
  ``[min + deadband, max - deadband]``; a reading between the clear band and the threshold
  (the hysteresis zone) or a new breach resets the count. While open the alert keeps its
  worst value and severity; an ``"update"`` event is emitted when the severity escalates.
  A breach of the other side closes the alert and opens a new one.
* Rate-of-change rule: ``rate = abs(value - prev_value) / (ts - prev_ts)`` against the
  sensor's newest earlier reading (readings with ``ts <= prev_ts`` are ignored by this rule);
  opens when ``rate > max_rate`` (``breach_type="rate_of_change"``,
  ``threshold_value=max_rate``, ``value`` the worst rate, severity with ``max_rate`` as the
  threshold), closes after ``clear_count`` consecutive rates ``<= max_rate``.
* NaN values are ignored. Sensors without a rule are skipped. Rule keys are sensor keys
  ``line/machine/sensor`` or patterns with ``+`` for a whole level; an exact key wins, then the
  pattern with the fewest ``+`` (ties: the smallest pattern string).
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, SupportsFloat, SupportsIndex, TypeAlias, final

# PyO3 sets __all__ on the module: every class, function and constant it adds.
__all__ = [
    "CRITICAL_RATIO",
    "HIGH_RATIO",
    "Alert",
    "AlertEvent",
    "AlertRule",
    "Rule",
    "RuleEngine",
    "__version__",
    "check_array",
    "check_batch",
    "check_thresholds",
    "pg_batch_arrays",
    "rollup_partials",
]

__version__: Final[str]
HIGH_RATIO: Final[float]
CRITICAL_RATIO: Final[float]

_BreachType: TypeAlias = Literal["above_maximum", "below_minimum"]
_AlertBreach: TypeAlias = Literal["above_maximum", "below_minimum", "rate_of_change"]
_RuleKind: TypeAlias = Literal["threshold", "rate_of_change", "rule"]
_EventKind: TypeAlias = Literal["open", "update", "close"]
_Severity: TypeAlias = Literal["medium", "high", "critical"]
# An alert's: the threshold checks' (medium/high/critical) or a hub rule's (info/warning/critical).
_AlertSeverity: TypeAlias = Literal["info", "medium", "warning", "high", "critical"]
_Condition: TypeAlias = Literal["GREATER_THAN", "LESS_THAN", "OUT_OF_RANGE"]
_Level: TypeAlias = Literal["INFO", "WARNING", "CRITICAL"]

_Reading = tuple[SupportsIndex, SupportsFloat] | Sequence[SupportsIndex | SupportsFloat]
_SensorReading = tuple[SupportsIndex, str, SupportsFloat] | Sequence[Any]
_EngineReading = tuple[SupportsIndex | None, str, SupportsFloat, SupportsFloat] | Sequence[Any]
# (sensor_id, bucket, min, max, sum, count, first_ts, first_id, first_value, last_ts,
#  last_id, last_value)
_Partial: TypeAlias = tuple[
    int, float, float, float, float, int, float, int, float, float, int, float
]

@final
class Alert:
    """One threshold violation. Immutable, comparable, hashable and picklable."""

    def __new__(
        cls,
        reading_id: int,
        value: float,
        breach_type: _BreachType,
        threshold_value: float,
        severity: _Severity,
    ) -> Alert: ...
    @property
    def reading_id(self) -> int: ...
    @property
    def value(self) -> float: ...
    @property
    def breach_type(self) -> _BreachType: ...
    @property
    def threshold_value(self) -> float: ...
    @property
    def severity(self) -> _Severity: ...
    def to_dict(self) -> dict[str, Any]:
        """The alert as a plain dict with the attribute names as keys."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[type[Alert], tuple[int, float, str, float, str]]: ...

def check_thresholds(
    readings: Iterable[_Reading],
    min_threshold: float | None = None,
    max_threshold: float | None = None,
) -> list[Alert]:
    """Check ``(id, value)`` readings (tuples or 2-item lists) against the thresholds.

    Returns the alerts in input order. See the module docstring for the rules and the
    severity formula.
    """

def check_array(
    values: Any,
    min_threshold: float | None = None,
    max_threshold: float | None = None,
    ids: Any | None = None,
) -> list[Alert]:
    """Check a float64 buffer in place, without copying, with the GIL released.

    ``values``: any one-dimensional, C-contiguous buffer of float64 (``numpy.float64``
    array, ``array.array('d')``, ``memoryview`` of doubles); other dtypes raise
    ``TypeError``, non-contiguous or multi-dimensional buffers raise ``ValueError``.
    ``ids``: optional int64 buffer of the same length (else ``ValueError``); without it
    the index is the reading id. The buffers must not be modified during the call.
    """

def check_batch(
    readings: Iterable[_SensorReading],
    thresholds: Mapping[str, tuple[float | None, float | None]],
) -> list[Alert]:
    """Check readings of many sensors in one call.

    ``readings``: ``(id, sensor_key, value)`` tuples; ``thresholds``: sensor key ->
    ``(min_threshold, max_threshold)``. Readings of sensors without an entry are skipped.
    All threshold pairs are validated before any reading is checked.
    """

def rollup_partials(
    rows: Iterable[tuple[Any, ...]], widths: Sequence[float]
) -> list[list[_Partial]]:
    """The hub's rollup fold: per sensor and bucket, min, max, sum, count and the first and
    last reading by ``(ts, id)``, for each width of ``widths``.

    ``rows``: tuples whose first four items are ``(id, sensor_id, ts, value)`` (finite ts and
    value; more items are ignored). ``widths``: seconds, finest first, each a whole multiple
    of the one before. A bucket starts at ``floor(ts / width) * width`` (the first width) or
    at ``floor(start / width) * width`` of the finer bucket's start (the others), so tiers
    nest. Returns one list per width, sorted by ``(sensor_id, bucket)``.
    """

def pg_batch_arrays(
    rows: Iterable[tuple[Any, ...]], widths: Sequence[float]
) -> tuple[list[bytes], list[bytes], tuple[int, int, float, float]]:
    """A usual batch's PostgreSQL parameters in one pass over ``rows`` (read as
    :func:`rollup_partials` reads them), each array in PostgreSQL's binary format:

    * the readings' columns ``id``, ``sensor_id`` (``int8[]``), ``ts``, ``value``
      (``float8[]``);
    * the partials of every width as 13 columns: the tier's number (1 for the first width),
      then :func:`rollup_partials`' twelve, ``int8[]`` or ``float8[]`` as in the tier tables;
    * ``(lowest id, highest id, earliest ts, latest ts)``.

    ``rows`` must not be empty; the same ``ValueError`` as :func:`rollup_partials`.
    """

@final
class Rule:
    """An alert rule for one sensor (or a ``+`` pattern). Immutable, comparable, hashable.

    ``min``/``max``: ``None`` or finite with ``min <= max``; ``deadband``: finite ``>= 0``
    leaving a non-empty clear band; ``clear_count >= 1``; ``max_rate``: ``None`` or finite
    ``> 0`` (units per second). Anything else raises ``ValueError`` (wrong types:
    ``TypeError``).
    """

    def __new__(
        cls,
        min: float | None = None,
        max: float | None = None,
        deadband: float = 0.0,
        clear_count: int = 1,
        max_rate: float | None = None,
    ) -> Rule: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    @property
    def deadband(self) -> float: ...
    @property
    def clear_count(self) -> int: ...
    @property
    def max_rate(self) -> float | None: ...
    def to_dict(self) -> dict[str, Any]:
        """The rule as a plain dict with the constructor's argument names as keys."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(
        self,
    ) -> tuple[type[Rule], tuple[float | None, float | None, float, int, float | None]]: ...

@final
class AlertEvent:
    """One step of an alert's lifecycle, or (from ``RuleEngine.open_alerts()``) an open
    alert's current state as an ``"open"`` event.

    ``value`` is the worst value while open (for rate alerts: the worst rate), ``severity``
    the worst severity; ``ts``/``reading_seq`` name the reading that caused this event,
    ``opened_at``/``opened_seq`` the one that opened the alert (``None`` seqs: the reading had
    none, or a rule change closed the alert). A rule alert's ``rule_id`` is the hub's id of
    the rule deciding it; when another rule takes over, an ``update`` event says so.
    """

    def __new__(
        cls,
        *,
        kind: _EventKind,
        key: str,
        breach_type: _AlertBreach,
        severity: _AlertSeverity,
        threshold_value: float,
        value: float,
        ts: float,
        opened_at: float,
        reading_seq: int | None = None,
        opened_seq: int | None = None,
        rule: _RuleKind | None = None,
        rule_id: int | None = None,
    ) -> AlertEvent: ...
    @property
    def kind(self) -> _EventKind: ...
    @property
    def key(self) -> str: ...
    @property
    def rule(self) -> _RuleKind: ...
    @property
    def breach_type(self) -> _AlertBreach: ...
    @property
    def severity(self) -> _AlertSeverity: ...
    @property
    def threshold_value(self) -> float: ...
    @property
    def value(self) -> float: ...
    @property
    def ts(self) -> float: ...
    @property
    def opened_at(self) -> float: ...
    @property
    def reading_seq(self) -> int | None: ...
    @property
    def opened_seq(self) -> int | None: ...
    @property
    def rule_id(self) -> int | None:
        """A rule alert's: the hub's id of the rule that decides it (else None)"""
    def to_dict(self) -> dict[str, Any]:
        """The event as a plain dict with the attribute names as keys."""
    def __eq__(self, other: object, /) -> bool: ...

@final
class AlertRule:
    """One of the hub's alert rules of a sensor (the seeds' AlertRule). Immutable.

    ``GREATER_THAN``/``LESS_THAN`` fire above/below ``threshold``; ``OUT_OF_RANGE`` outside
    ``[threshold, threshold_high]`` (``threshold < threshold_high``). A rule fires once its
    condition held for ``delay_s`` seconds (reading time) and stops once the value is back past
    the threshold by ``deadband``. A sensor's rules make ONE alert (rule ``"rule"``) whose
    severity (``info`` < ``warning`` < ``critical``) is the most severe firing rule's, moving
    up and down in place (``update`` events); ``rule_id`` (the hub's id) names the rule in
    the alerts it decides. Bad values raise ``ValueError``.
    """

    def __new__(
        cls,
        condition: _Condition,
        threshold: float,
        threshold_high: float | None = None,
        severity: _Level = "WARNING",
        deadband: float = 0.0,
        delay_s: float = 0.0,
        rule_id: int | None = None,
    ) -> AlertRule: ...
    @property
    def condition(self) -> _Condition: ...
    @property
    def threshold(self) -> float: ...
    @property
    def threshold_high(self) -> float | None: ...
    @property
    def severity(self) -> _Level: ...
    @property
    def deadband(self) -> float: ...
    @property
    def delay_s(self) -> float: ...
    @property
    def rule_id(self) -> int | None:
        """The hub's id of the rule; the alerts it decides carry it"""
    def to_dict(self) -> dict[str, Any]:
        """The rule as a plain dict with the constructor's argument names as keys."""
    def __eq__(self, other: object, /) -> bool: ...

@final
class RuleEngine:
    """Stateful alerting for many sensors: feed every reading in order, get the lifecycle
    events back. Not thread-safe to share across threads while ``process`` runs (a second
    caller gets ``RuntimeError``); the GIL is released while the readings are scanned.
    """

    def __new__(cls, rules: Mapping[str, Rule] | None = None) -> RuleEngine: ...
    def set_rules(self, rules: Mapping[str, Rule]) -> list[AlertEvent]:
        """Replace every rule (all validated first: on error nothing changes).

        Open alerts whose rule is gone (no rule for the sensor, the breached bound removed,
        no ``max_rate`` any more) are closed and their ``"close"`` events returned, stamped
        with the sensor's newest reading time. An alert whose rule only changed stays open
        and closes by the new rule.
        """
    def set_alert_rules(self, rules: Mapping[str, Sequence[AlertRule]]) -> list[AlertEvent]:
        """Replace every sensor's hub alert rules (exact keys; validated first).

        Returns the ``"close"`` events of rule alerts whose sensor has no rules any more; an
        open rule alert of a sensor whose rules changed stays open and moves by the new ones.
        """
    def alert_rules(self) -> dict[str, list[AlertRule]]:
        """The hub alert rules, by sensor key."""
    def rules(self) -> dict[str, Rule]:
        """The rules as set (exact keys and patterns)."""
    def rule_for(self, key: str) -> Rule | None:
        """The rule that applies to a sensor key, if any."""
    def process(self, readings: Iterable[_EngineReading]) -> list[AlertEvent]:
        """Run ``(seq, key, ts, value)`` readings through the rules, in order.

        ``seq``: int or ``None``. Every reading is validated (``TypeError``/``ValueError``)
        before any state changes. Returns the events in order.
        """
    def open_alerts(self) -> list[AlertEvent]:
        """Alerts open now, sorted by key then rule (persist these to ``restore`` them)."""
    def restore(self, alerts: Iterable[AlertEvent]) -> None:
        """Put back open alerts, e.g. after a restart, so an excursion in progress stays one
        alert. Replaces what is open for that sensor and rule."""
    def reset(self) -> None:
        """Forget every open alert and every sensor's history; the rules stay."""
    def __len__(self) -> int:
        """Number of rules plus sensors with hub alert rules."""

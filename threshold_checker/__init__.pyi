"""Threshold (min/max) checks with a severity, implemented in Rust.

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
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, SupportsFloat, SupportsIndex, TypeAlias, final

__all__ = [
    "CRITICAL_RATIO",
    "HIGH_RATIO",
    "Alert",
    "__version__",
    "check_array",
    "check_batch",
    "check_thresholds",
]

__version__: Final[str]
HIGH_RATIO: Final[float]
CRITICAL_RATIO: Final[float]

_BreachType: TypeAlias = Literal["above_maximum", "below_minimum"]
_Severity: TypeAlias = Literal["medium", "high", "critical"]

_Reading = tuple[SupportsIndex, SupportsFloat] | Sequence[SupportsIndex | SupportsFloat]
_SensorReading = tuple[SupportsIndex, str, SupportsFloat] | Sequence[Any]

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

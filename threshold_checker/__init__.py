"""Threshold (min/max) checks with a severity, and stateful alert rules (``RuleEngine``),
implemented in Rust (crates/threshold-checker), and the hub's rollup fold (``rollup_partials``).

The native code is the extension module ``threshold_checker._native``; this package
re-exports its API. See ``_native.pyi`` for the rules and the severity formula.
"""

from threshold_checker._native import (
    CRITICAL_RATIO,
    HIGH_RATIO,
    Alert,
    AlertEvent,
    AlertRule,
    Rule,
    RuleEngine,
    __version__,
    check_array,
    check_batch,
    check_thresholds,
    pg_batch_arrays,
    rollup_partials,
)

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

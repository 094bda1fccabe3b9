//! `threshold_checker` — min/max threshold checks with a severity, as a Python module.
//!
//! The pure logic lives in [`core`] (stateless checks), [`rules`] (the alert state machine)
//! and [`scan`] (the bulk scan behind `check_array`), all plain Rust and unit-tested. The
//! PyO3 layer is [`py`], one module per Python class; this file only assembles the module.
//!
//! # Python API
//!
//! * `check_thresholds(readings, min_threshold=None, max_threshold=None) -> list[Alert]`
//!   over a sequence of `(id: int, value: float)` pairs (tuples or lists).
//! * `check_array(values, min_threshold=None, max_threshold=None, ids=None) -> list[Alert]`
//!   over any C-contiguous, one-dimensional float64 buffer (numpy `float64` array,
//!   `array('d')`, memoryview of doubles), read in place without copying and with the GIL
//!   released; `ids` an optional int64 buffer of the same length, else the index is the id.
//! * `check_batch(readings, thresholds) -> list[Alert]`: many sensors in one call;
//!   `readings` a sequence of `(id, sensor_key, value)`, `thresholds` a mapping
//!   `sensor_key -> (min_threshold, max_threshold)`; readings of sensors without an entry
//!   are skipped.
//!
//! * `rollup_partials(rows, widths)`: the hub's rollup fold (min, max, sum, count, first and
//!   last per sensor and bucket, for each tier), see [`rollup`]. It lives here because this
//!   is the distribution's one native module, and the fold is per-reading work.
//! * `pg_batch_arrays(rows, widths)`: the same fold and the rows' columns, as PostgreSQL
//!   binary arrays ([`pgarray`]): a usual batch's parameters in one pass.
//!
//! * `Rule` + `RuleEngine`: stateful alerting (one alert per excursion, deadband and clear
//!   count, rate of change), see [`rules`] and `py::rule_engine`.
//!
//! # Rules and severity
//!
//! A value equal to a threshold is not a breach; NaN values are skipped; thresholds must
//! be finite (or `None`) with `min <= max`, else `ValueError`.
//!
//! ```text
//! excess = |value - threshold| / scale
//! scale  = |threshold|  if threshold != 0
//!          max - min    if threshold == 0 and both bounds set with max > min
//!          1.0          otherwise
//! excess >= 0.20 -> "critical", excess >= 0.10 -> "high", else "medium"
//! ```

pub mod core;
pub mod levels;
pub mod pgarray;
mod py;
pub mod rollup;
pub mod rules;
pub mod scan;

use pyo3::prelude::*;

pub use crate::py::{
    check_array, check_batch, check_thresholds, pg_batch_arrays, rollup_partials, Alert,
    AlertEvent, AlertRule, Rule, RuleEngine,
};

/// The native module `threshold_checker._native`, re-exported by the `threshold_checker`
/// package (repo-root `threshold_checker/__init__.py`).
#[pymodule(name = "_native")]
fn threshold_checker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Alert>()?;
    m.add_class::<Rule>()?;
    m.add_class::<AlertEvent>()?;
    m.add_class::<AlertRule>()?;
    m.add_class::<RuleEngine>()?;
    m.add_function(wrap_pyfunction!(check_thresholds, m)?)?;
    m.add_function(wrap_pyfunction!(check_array, m)?)?;
    m.add_function(wrap_pyfunction!(check_batch, m)?)?;
    m.add_function(wrap_pyfunction!(rollup_partials, m)?)?;
    m.add_function(wrap_pyfunction!(pg_batch_arrays, m)?)?;
    m.add("HIGH_RATIO", core::HIGH_RATIO)?;
    m.add("CRITICAL_RATIO", core::CRITICAL_RATIO)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

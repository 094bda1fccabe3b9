//! `Rule`: the alert rule of one sensor or `+` pattern, as `RuleEngine` takes it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::py::input::type_name;
use crate::py::repr::{float_repr, opt_repr};
use crate::rules::{self, RuleError};

/// An alert rule for one sensor (or a `+` pattern): thresholds with hysteresis, rate limit.
#[pyclass(frozen, module = "threshold_checker", name = "Rule")]
#[derive(Clone, Debug)]
pub struct Rule {
    pub(crate) inner: rules::Rule,
}

/// A rule the engine refused, as the `ValueError` Python sees.
pub(crate) fn rule_error(e: RuleError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

#[pymethods]
impl Rule {
    #[new]
    #[pyo3(
        signature = (min=None, max=None, deadband=0.0, clear_count=None, max_rate=None),
        text_signature = "(min=None, max=None, deadband=0.0, clear_count=1, max_rate=None)"
    )]
    fn new(
        min: Option<f64>,
        max: Option<f64>,
        deadband: f64,
        clear_count: Option<&Bound<'_, PyAny>>,
        max_rate: Option<f64>,
    ) -> PyResult<Self> {
        let clear_count: i64 = match clear_count {
            None => 1,
            Some(c) => c.extract().map_err(|e: PyErr| {
                if e.is_instance_of::<PyOverflowError>(c.py()) {
                    PyValueError::new_err("clear_count is out of range")
                } else {
                    PyTypeError::new_err(format!(
                        "clear_count must be an int, got {}",
                        type_name(c)
                    ))
                }
            })?,
        };
        let inner =
            rules::Rule::new(min, max, deadband, clear_count, max_rate).map_err(rule_error)?;
        Ok(Rule { inner })
    }

    #[getter]
    fn min(&self) -> Option<f64> {
        self.inner.min()
    }
    #[getter]
    fn max(&self) -> Option<f64> {
        self.inner.max()
    }
    #[getter]
    fn deadband(&self) -> f64 {
        self.inner.deadband()
    }
    #[getter]
    fn clear_count(&self) -> u32 {
        self.inner.clear_count()
    }
    #[getter]
    fn max_rate(&self) -> Option<f64> {
        self.inner.max_rate()
    }

    /// The rule as a plain dict (keys as the constructor's arguments).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("min", self.min())?;
        d.set_item("max", self.max())?;
        d.set_item("deadband", self.deadband())?;
        d.set_item("clear_count", self.clear_count())?;
        d.set_item("max_rate", self.max_rate())?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Rule(min={}, max={}, deadband={}, clear_count={}, max_rate={})",
            opt_repr(py, self.min())?,
            opt_repr(py, self.max())?,
            float_repr(py, self.deadband())?,
            self.clear_count(),
            opt_repr(py, self.max_rate())?,
        ))
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.inner == other.inner
    }

    fn __hash__(&self) -> u64 {
        let mut h = DefaultHasher::new();
        for v in [
            self.min(),
            self.max(),
            Some(self.deadband()),
            self.max_rate(),
        ] {
            v.map(|f| (f + 0.0).to_bits()).hash(&mut h);
        }
        self.clear_count().hash(&mut h);
        h.finish()
    }

    #[allow(clippy::type_complexity)]
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(
        Bound<'py, PyAny>,
        (Option<f64>, Option<f64>, f64, u32, Option<f64>),
    )> {
        let this = slf.get();
        Ok((
            slf.get_type().into_any(),
            (
                this.min(),
                this.max(),
                this.deadband(),
                this.clear_count(),
                this.max_rate(),
            ),
        ))
    }
}

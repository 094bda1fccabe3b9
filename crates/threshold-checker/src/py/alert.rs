//! `Alert`: one threshold violation, as `check_thresholds`, `check_array` and `check_batch`
//! return it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::core::{Breach, BreachType, Severity};
use crate::py::repr::float_repr;

/// Constructor arguments of an `Alert`, as `__reduce__` returns them.
type AlertArgs = (i64, f64, &'static str, f64, &'static str);

/// One threshold violation (immutable, comparable, hashable, picklable).
#[pyclass(frozen, module = "threshold_checker", name = "Alert")]
#[derive(Clone, Debug)]
pub struct Alert {
    pub(crate) inner: Breach,
}

impl From<Breach> for Alert {
    fn from(inner: Breach) -> Self {
        Alert { inner }
    }
}

#[pymethods]
impl Alert {
    #[new]
    #[pyo3(signature = (reading_id, value, breach_type, threshold_value, severity))]
    fn new(
        reading_id: i64,
        value: f64,
        breach_type: &str,
        threshold_value: f64,
        severity: &str,
    ) -> PyResult<Self> {
        let breach_type = BreachType::parse(breach_type).ok_or_else(|| {
            PyValueError::new_err(format!(
                "breach_type must be 'above_maximum' or 'below_minimum', got {breach_type:?}"
            ))
        })?;
        let severity = Severity::parse(severity).ok_or_else(|| {
            PyValueError::new_err(format!(
                "severity must be 'medium', 'high' or 'critical', got {severity:?}"
            ))
        })?;
        Ok(Alert {
            inner: Breach {
                reading_id,
                value,
                breach_type,
                threshold_value,
                severity,
            },
        })
    }

    #[getter]
    fn reading_id(&self) -> i64 {
        self.inner.reading_id
    }

    #[getter]
    fn value(&self) -> f64 {
        self.inner.value
    }

    #[getter]
    fn breach_type(&self) -> &'static str {
        self.inner.breach_type.as_str()
    }

    #[getter]
    fn threshold_value(&self) -> f64 {
        self.inner.threshold_value
    }

    #[getter]
    fn severity(&self) -> &'static str {
        self.inner.severity.as_str()
    }

    /// The alert as a plain dict (keys as the attribute names).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("reading_id", self.inner.reading_id)?;
        d.set_item("value", self.inner.value)?;
        d.set_item("breach_type", self.breach_type())?;
        d.set_item("threshold_value", self.inner.threshold_value)?;
        d.set_item("severity", self.severity())?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Alert(reading_id={}, value={}, breach_type='{}', threshold_value={}, severity='{}')",
            self.inner.reading_id,
            float_repr(py, self.inner.value)?,
            self.breach_type(),
            float_repr(py, self.inner.threshold_value)?,
            self.severity(),
        ))
    }

    // A non-Alert `other` makes PyO3 return NotImplemented.
    fn __eq__(&self, other: &Self) -> bool {
        self.inner == other.inner
    }

    fn __hash__(&self) -> u64 {
        let b = &self.inner;
        let mut h = DefaultHasher::new();
        b.reading_id.hash(&mut h);
        // +0.0 and -0.0 compare equal, so they must hash equal.
        (b.value + 0.0).to_bits().hash(&mut h);
        b.breach_type.hash(&mut h);
        (b.threshold_value + 0.0).to_bits().hash(&mut h);
        b.severity.hash(&mut h);
        h.finish()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, AlertArgs)> {
        let this = slf.get();
        Ok((
            slf.get_type().into_any(),
            (
                this.inner.reading_id,
                this.inner.value,
                this.breach_type(),
                this.inner.threshold_value,
                this.severity(),
            ),
        ))
    }
}

/// The breaches as a Python list of `Alert`.
///
/// An `Alert` holds no Python references, so it can never be part of a cycle; each one is
/// taken off the cyclic GC's lists at once (as CPython does for tuples of plain values).
/// Left tracked, a large result made every GC pass walk it again, which cost more than
/// creating the alerts.
pub(crate) fn alert_list(
    py: Python<'_>,
    breaches: impl IntoIterator<Item = Breach>,
) -> PyResult<Bound<'_, PyList>> {
    let breaches = breaches.into_iter();
    let mut items = Vec::with_capacity(breaches.size_hint().1.unwrap_or(0));
    for b in breaches {
        let obj = Bound::new(py, Alert::from(b))?;
        // SAFETY: `obj` is a live object of a GC type; untracking an object without
        // references is allowed, and its dealloc's own untrack is then a no-op.
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) };
        items.push(obj);
    }
    PyList::new(py, items)
}

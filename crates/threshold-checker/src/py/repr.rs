//! `repr()` pieces shared by the classes: floats written as Python writes them.

use pyo3::prelude::*;
use pyo3::types::PyFloat;

/// `v` as Python's `repr(float)` (`1.0`, `inf`, `1e+300`), not Rust's `{}`.
pub(crate) fn float_repr(py: Python<'_>, v: f64) -> PyResult<String> {
    Ok(PyFloat::new(py, v).repr()?.to_string())
}

/// An optional float: `None`, or as [`float_repr`].
pub(crate) fn opt_repr(py: Python<'_>, v: Option<f64>) -> PyResult<String> {
    v.map_or(Ok("None".to_owned()), |v| float_repr(py, v))
}

//! `check_thresholds` and `check_batch`: the stateless checks over readings given as tuples.

use std::collections::HashMap;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyList, PyMapping};

use crate::core::Bounds;
use crate::py::alert::alert_list;
use crate::py::input::{
    bounds, extract_id, extract_value, id_value, iterate, reading_fields, type_name,
};

/// Check `(id, value)` readings against optional min/max thresholds.
#[pyfunction]
#[pyo3(signature = (readings, min_threshold=None, max_threshold=None))]
pub fn check_thresholds<'py>(
    readings: &Bound<'py, PyAny>,
    min_threshold: Option<f64>,
    max_threshold: Option<f64>,
) -> PyResult<Bound<'py, PyList>> {
    let bounds = bounds(min_threshold, max_threshold)?;
    let mut breaches = Vec::new();
    for (index, item) in iterate(readings)?.enumerate() {
        let (id, value) = id_value(index, &item?)?;
        if let Some(b) = bounds.check(id, value) {
            breaches.push(b);
        }
    }
    alert_list(readings.py(), breaches)
}

/// Check `(id, sensor_key, value)` readings of many sensors, each against its own bounds.
#[pyfunction]
#[pyo3(signature = (readings, thresholds))]
pub fn check_batch<'py>(
    readings: &Bound<'py, PyAny>,
    thresholds: &Bound<'_, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let mapping = thresholds.cast::<PyMapping>().map_err(|_| {
        PyTypeError::new_err(format!(
            "thresholds must be a mapping of sensor key -> (min_threshold, max_threshold), got {}",
            type_name(thresholds)
        ))
    })?;
    let mut table: HashMap<String, Bounds> = HashMap::new();
    for pair in mapping.items()?.iter() {
        let (key, spec): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
        let key: String = key.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "thresholds keys must be str, got {}",
                type_name(&key)
            ))
        })?;
        let (lo, hi): (Option<f64>, Option<f64>) = spec.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "thresholds[{key:?}] must be a tuple (min_threshold, max_threshold) of float or None"
            ))
        })?;
        let b = Bounds::new(lo, hi)
            .map_err(|e| PyValueError::new_err(format!("thresholds[{key:?}]: {e}")))?;
        table.insert(key, b);
    }
    let mut breaches = Vec::new();
    for (index, item) in iterate(readings)?.enumerate() {
        let item = item?;
        let fields: [_; 3] = reading_fields(index, &item, "(id, sensor_key, value)")?;
        let id = extract_id(index, &fields[0])?;
        let key = fields[1].extract::<PyBackedStr>().map_err(|_| {
            PyTypeError::new_err(format!(
                "readings[{index}]: sensor_key must be str, got {}",
                type_name(&fields[1])
            ))
        })?;
        let value = extract_value(index, &fields[2])?;
        if let Some(b) = table.get(&*key).and_then(|b| b.check(id, value)) {
            breaches.push(b);
        }
    }
    alert_list(readings.py(), breaches)
}

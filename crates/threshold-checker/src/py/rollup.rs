//! `rollup_partials`: the hub's rollup fold ([`crate::rollup`]) over its reading rows.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::py::input::{extract_id, extract_value, field_error, iterate, type_name};
use crate::rollup::{partials, Reading};

/// One row's head `(id, sensor_id, ts, value, ...)`, read through borrowed references.
#[inline]
fn reading(index: usize, item: &Bound<'_, PyAny>) -> PyResult<Reading> {
    let t = item
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() >= 4)
        .ok_or_else(|| {
            PyTypeError::new_err(format!(
                "rows[{index}] must be a tuple (id, sensor_id, ts, value, ...), got {}",
                type_name(item)
            ))
        })?;
    // SAFETY: every index is < 4 <= t.len(); a tuple never changes length, and `item` keeps
    // it, and so its items, alive while they are borrowed.
    let (id, sid, ts, value) = unsafe {
        (
            t.get_borrowed_item_unchecked(0),
            t.get_borrowed_item_unchecked(1),
            t.get_borrowed_item_unchecked(2),
            t.get_borrowed_item_unchecked(3),
        )
    };
    let sensor_id = sid
        .extract::<i64>()
        .map_err(|e| field_error(index, "sensor_id", "an int64 integer", &sid, e))?;
    let ts = ts
        .extract::<f64>()
        .map_err(|e| field_error(index, "ts", "a float", &ts, e))?;
    Ok(Reading {
        id: extract_id(index, &id)?,
        sensor_id,
        ts,
        value: extract_value(index, &value)?,
    })
}

/// The rollup partials of `rows` for each width of `widths`.
///
/// `rows`: tuples whose first four items are `(id, sensor_id, ts, value)` (the hub's reading
/// rows; more items are ignored). `widths`: bucket widths in seconds, finest first, each a
/// whole multiple of the one before. Returns one list per width of
/// `(sensor_id, bucket, min, max, sum, count, first_ts, first_id, first_value, last_ts,
/// last_id, last_value)` tuples sorted by `(sensor_id, bucket)`. A non-finite ts or value,
/// or a bucket whose values sum past the float range, is a `ValueError` and nothing is
/// returned.
#[pyfunction]
#[pyo3(signature = (rows, widths))]
pub fn rollup_partials<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyAny>,
    widths: Vec<f64>,
) -> PyResult<Bound<'py, PyList>> {
    for (i, w) in widths.iter().enumerate() {
        if !(w.is_finite() && *w > 0.0) {
            return Err(PyValueError::new_err(format!(
                "widths[{i}] must be a positive, finite number of seconds, got {w}"
            )));
        }
        if i > 0 && (w % widths[i - 1] != 0.0) {
            return Err(PyValueError::new_err(format!(
                "widths[{i}] ({w}) must be a whole multiple of widths[{}] ({})",
                i - 1,
                widths[i - 1]
            )));
        }
    }
    let mut readings = Vec::with_capacity(rows.len().unwrap_or(0));
    for (index, item) in iterate(rows)?.enumerate() {
        let r = reading(index, &item?)?;
        if !r.ts.is_finite() || !r.value.is_finite() {
            return Err(PyValueError::new_err(format!(
                "rows[{index}]: ts and value must be finite"
            )));
        }
        readings.push(r);
    }
    let tiers = py.detach(|| partials(&readings, &widths));
    let out = PyList::empty(py);
    for tier in tiers {
        let list = PyList::empty(py);
        for (sid, bucket, p) in tier {
            // Finite readings can still sum past f64 (1e308 twice): such a sum must never
            // reach a tier row, where inf + -inf would leave no number at all.
            if !p.sum.is_finite() {
                return Err(PyValueError::new_err(format!(
                    "the readings of sensor {sid} in the bucket at {bucket} sum past the \
                     float range; bound reading values first"
                )));
            }
            let row = (
                sid,
                bucket,
                p.min,
                p.max,
                p.sum,
                p.count,
                p.first.ts,
                p.first.id,
                p.first.value,
                p.last.ts,
                p.last.id,
                p.last.value,
            );
            list.append(row.into_pyobject(py)?)?;
        }
        out.append(list)?;
    }
    Ok(out)
}

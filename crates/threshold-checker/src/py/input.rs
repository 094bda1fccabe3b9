//! Reading the Python arguments the checks share: readings as tuples (without a heap
//! allocation per reading), thresholds, and errors that name the bad item and field.

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyList, PyTuple};

use crate::core::Bounds;

/// Validated thresholds, or the `ValueError` that says why not.
pub(crate) fn bounds(min_threshold: Option<f64>, max_threshold: Option<f64>) -> PyResult<Bounds> {
    Bounds::new(min_threshold, max_threshold).map_err(|e| PyValueError::new_err(e.to_string()))
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Map an extraction error of one reading field to TypeError/ValueError with context.
pub(crate) fn field_error(
    index: usize,
    field: &str,
    expected: &str,
    item: &Bound<'_, PyAny>,
    err: PyErr,
) -> PyErr {
    let py = item.py();
    if err.is_instance_of::<PyOverflowError>(py) {
        PyValueError::new_err(format!(
            "readings[{index}]: {field} is out of range for {expected}"
        ))
    } else {
        PyTypeError::new_err(format!(
            "readings[{index}]: {field} must be {expected}, got {}",
            type_name(item)
        ))
    }
}

// The per-reading helpers below are `#[inline]`: they run once per reading and their callers
// sit in other modules, which rustc puts in other codegen units; thin LTO left
// `reading_fields` out of line there, and `check_batch` was a third slower for it.

/// The fields of one reading: a tuple or list of exactly `N` items.
///
/// Returned as an array, not a `Vec`: this runs once per reading, and a heap allocation
/// per reading was most of the cost of a check.
#[inline]
pub(crate) fn reading_fields<'py, const N: usize>(
    index: usize,
    item: &Bound<'py, PyAny>,
    shape: &str,
) -> PyResult<[Bound<'py, PyAny>; N]> {
    if let Ok(t) = item.cast::<PyTuple>() {
        if t.len() == N {
            // SAFETY: the index is < N == t.len(), and a tuple's length never changes.
            return Ok(std::array::from_fn(|i| unsafe { t.get_item_unchecked(i) }));
        }
    } else if let Ok(l) = item.cast::<PyList>() {
        // Rare (readings as lists): a Vec is fine here; try_from fails on a wrong length.
        if let Ok(fields) = <[_; N]>::try_from(l.iter().collect::<Vec<_>>()) {
            return Ok(fields);
        }
    }
    Err(PyTypeError::new_err(format!(
        "readings[{index}] must be a tuple {shape}, got {}",
        type_name(item)
    )))
}

#[inline]
pub(crate) fn extract_id(index: usize, obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    obj.extract::<i64>()
        .map_err(|e| field_error(index, "id", "an int64 integer", obj, e))
}

#[inline]
pub(crate) fn extract_value(index: usize, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    obj.extract::<f64>()
        .map_err(|e| field_error(index, "value", "a float", obj, e))
}

/// One `(id, value)` reading. A 2-tuple, the common case, is read through borrowed
/// references: no reference counting per field.
#[inline]
pub(crate) fn id_value(index: usize, item: &Bound<'_, PyAny>) -> PyResult<(i64, f64)> {
    if let Ok(t) = item.cast::<PyTuple>() {
        if t.len() == 2 {
            // SAFETY: both indexes are < t.len(); a tuple never changes length, and `item`
            // keeps the tuple, and so its items, alive while they are borrowed.
            let (id, value) = unsafe {
                (
                    t.get_borrowed_item_unchecked(0),
                    t.get_borrowed_item_unchecked(1),
                )
            };
            return Ok((extract_id(index, &id)?, extract_value(index, &value)?));
        }
    }
    let [id, value] = reading_fields(index, item, "(id, value)")?;
    Ok((extract_id(index, &id)?, extract_value(index, &value)?))
}

pub(crate) fn iterate<'py>(readings: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyIterator>> {
    readings.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "readings must be an iterable of tuples, got {}",
            type_name(readings)
        ))
    })
}

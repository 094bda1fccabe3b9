//! `rollup_partials`: the hub's rollup fold ([`crate::rollup`]) over its reading rows;
//! `pg_batch_arrays`: the same fold and the rows' columns as PostgreSQL binary arrays
//! ([`crate::pgarray`]), what a usual batch sends in one statement.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::pgarray::{float8_array, int8_array, TooLong};
use crate::py::input::{extract_id, extract_value, field_error, iterate, type_name};
use crate::rollup::{partials, Partial, Reading, Tier};

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
fn check_widths(widths: &[f64]) -> PyResult<()> {
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
    Ok(())
}

/// The rows' readings, each with a finite ts and value.
fn readings_of(rows: &Bound<'_, PyAny>) -> PyResult<Vec<Reading>> {
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
    Ok(readings)
}

/// Each tier's partials, or the `ValueError` of a bucket whose sum left the float range.
fn fold(py: Python<'_>, readings: &[Reading], widths: &[f64]) -> PyResult<Vec<Tier>> {
    let tiers = py.detach(|| partials(readings, widths));
    for tier in &tiers {
        for (sid, bucket, p) in tier {
            // Finite readings can still sum past f64 (1e308 twice): such a sum must never
            // reach a tier row, where inf + -inf would leave no number at all.
            if !p.sum.is_finite() {
                return Err(PyValueError::new_err(format!(
                    "the readings of sensor {sid} in the bucket at {bucket} sum past the \
                     float range; bound reading values first"
                )));
            }
        }
    }
    Ok(tiers)
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
    check_widths(&widths)?;
    let readings = readings_of(rows)?;
    let out = PyList::empty(py);
    for tier in fold(py, &readings, &widths)? {
        let list = PyList::empty(py);
        for (sid, bucket, p) in tier {
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

/// The columns PostgreSQL takes a batch of `rows` in, as binary arrays, and their bounds.
type BatchArrays<'py> = (
    Vec<Bound<'py, PyBytes>>,
    Vec<Bound<'py, PyBytes>>,
    (i64, i64, f64, f64),
);

/// A usual batch's parameters in one pass over `rows` (as `rollup_partials` reads them):
///
/// * the readings' columns `id`, `sensor_id` (`int8[]`), `ts`, `value` (`float8[]`);
/// * the partials of every width of `widths` as 13 columns: the tier's number (1 for the
///   first width), then `rollup_partials`' twelve, int8 or float8 as in the tier tables;
/// * `(lowest id, highest id, earliest ts, latest ts)`.
///
/// Every array in PostgreSQL's binary format ([`crate::pgarray`]). `rows` must not be
/// empty; the same `ValueError`s as `rollup_partials`.
#[pyfunction]
#[pyo3(signature = (rows, widths))]
pub fn pg_batch_arrays<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyAny>,
    widths: Vec<f64>,
) -> PyResult<BatchArrays<'py>> {
    check_widths(&widths)?;
    let readings = readings_of(rows)?;
    if readings.is_empty() {
        return Err(PyValueError::new_err("rows must not be empty"));
    }
    let tiers = fold(py, &readings, &widths)?;
    let bytes = |b: Result<Vec<u8>, TooLong>| -> PyResult<Bound<'py, PyBytes>> {
        let b = b.map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyBytes::new(py, &b))
    };
    let columns = vec![
        bytes(int8_array(readings.iter().map(|r| r.id)))?,
        bytes(int8_array(readings.iter().map(|r| r.sensor_id)))?,
        bytes(float8_array(readings.iter().map(|r| r.ts)))?,
        bytes(float8_array(readings.iter().map(|r| r.value)))?,
    ];
    let rows: Vec<(i64, i64, f64, &Partial)> = tiers
        .iter()
        .enumerate()
        .flat_map(|(n, tier)| tier.iter().map(move |(s, b, p)| (n as i64 + 1, *s, *b, p)))
        .collect();
    let ints = |f: fn(&(i64, i64, f64, &Partial)) -> i64| bytes(int8_array(rows.iter().map(f)));
    let floats = |f: fn(&(i64, i64, f64, &Partial)) -> f64| bytes(float8_array(rows.iter().map(f)));
    let parts = vec![
        ints(|r| r.0)?,
        ints(|r| r.1)?,
        floats(|r| r.2)?,
        floats(|r| r.3.min)?,
        floats(|r| r.3.max)?,
        floats(|r| r.3.sum)?,
        ints(|r| r.3.count)?,
        floats(|r| r.3.first.ts)?,
        ints(|r| r.3.first.id)?,
        floats(|r| r.3.first.value)?,
        floats(|r| r.3.last.ts)?,
        ints(|r| r.3.last.id)?,
        floats(|r| r.3.last.value)?,
    ];
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    let (mut tlo, mut thi) = (f64::INFINITY, f64::NEG_INFINITY);
    for r in &readings {
        lo = lo.min(r.id);
        hi = hi.max(r.id);
        tlo = tlo.min(r.ts);
        thi = thi.max(r.ts);
    }
    Ok((columns, parts, (lo, hi, tlo, thi)))
}

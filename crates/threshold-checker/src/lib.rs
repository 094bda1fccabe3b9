//! `threshold_checker` — min/max threshold checks with a severity, as a Python module.
//!
//! The pure logic lives in [`core`] (plain Rust, unit-tested); this file is the PyO3 layer.
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

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyMapping, PyTuple};

use crate::core::{Bounds, Breach, BreachType, Severity};

/// Constructor arguments of an `Alert`, as `__reduce__` returns them.
type AlertArgs = (i64, f64, &'static str, f64, &'static str);

/// One threshold violation (immutable, comparable, hashable, picklable).
#[pyclass(frozen, module = "threshold_checker", name = "Alert")]
#[derive(Clone, Debug)]
pub struct Alert {
    inner: Breach,
}

impl From<Breach> for Alert {
    fn from(inner: Breach) -> Self {
        Alert { inner }
    }
}

fn float_repr(py: Python<'_>, v: f64) -> PyResult<String> {
    Ok(PyFloat::new(py, v).repr()?.to_string())
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

fn bounds(min_threshold: Option<f64>, max_threshold: Option<f64>) -> PyResult<Bounds> {
    Bounds::new(min_threshold, max_threshold).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Map an extraction error of one reading field to TypeError/ValueError with context.
fn field_error(
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

/// The fields of one reading: a tuple or list of exactly `n` items.
fn reading_fields<'py>(
    index: usize,
    item: &Bound<'py, PyAny>,
    shape: &str,
    n: usize,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let fields: Option<Vec<Bound<'py, PyAny>>> = if let Ok(t) = item.cast::<PyTuple>() {
        (t.len() == n).then(|| t.iter().collect())
    } else if let Ok(l) = item.cast::<PyList>() {
        (l.len() == n).then(|| l.iter().collect())
    } else {
        None
    };
    fields.ok_or_else(|| {
        PyTypeError::new_err(format!(
            "readings[{index}] must be a tuple {shape}, got {}",
            type_name(item)
        ))
    })
}

fn extract_id(index: usize, obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    obj.extract::<i64>()
        .map_err(|e| field_error(index, "id", "an int64 integer", obj, e))
}

fn extract_value(index: usize, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    obj.extract::<f64>()
        .map_err(|e| field_error(index, "value", "a float", obj, e))
}

fn iterate<'py>(readings: &Bound<'py, PyAny>) -> PyResult<Bound<'py, pyo3::types::PyIterator>> {
    readings.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "readings must be an iterable of tuples, got {}",
            type_name(readings)
        ))
    })
}

/// Check `(id, value)` readings against optional min/max thresholds.
#[pyfunction]
#[pyo3(signature = (readings, min_threshold=None, max_threshold=None))]
fn check_thresholds(
    readings: &Bound<'_, PyAny>,
    min_threshold: Option<f64>,
    max_threshold: Option<f64>,
) -> PyResult<Vec<Alert>> {
    let bounds = bounds(min_threshold, max_threshold)?;
    let mut alerts = Vec::new();
    for (index, item) in iterate(readings)?.enumerate() {
        let item = item?;
        let fields = reading_fields(index, &item, "(id, value)", 2)?;
        let id = extract_id(index, &fields[0])?;
        let value = extract_value(index, &fields[1])?;
        if let Some(b) = bounds.check(id, value) {
            alerts.push(Alert::from(b));
        }
    }
    Ok(alerts)
}

/// Check `(id, sensor_key, value)` readings of many sensors, each against its own bounds.
#[pyfunction]
#[pyo3(signature = (readings, thresholds))]
fn check_batch(readings: &Bound<'_, PyAny>, thresholds: &Bound<'_, PyAny>) -> PyResult<Vec<Alert>> {
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
    let mut alerts = Vec::new();
    for (index, item) in iterate(readings)?.enumerate() {
        let item = item?;
        let fields = reading_fields(index, &item, "(id, sensor_key, value)", 3)?;
        let id = extract_id(index, &fields[0])?;
        let key = fields[1]
            .extract::<pyo3::pybacked::PyBackedStr>()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "readings[{index}]: sensor_key must be str, got {}",
                    type_name(&fields[1])
                ))
            })?;
        let value = extract_value(index, &fields[2])?;
        if let Some(b) = table.get(&*key).and_then(|b| b.check(id, value)) {
            alerts.push(Alert::from(b));
        }
    }
    Ok(alerts)
}

#[derive(Clone, Copy)]
enum Kind {
    F64,
    I64,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::F64 => "float64",
            Kind::I64 => "int64",
        }
    }

    /// Accept native (`d`, `@d`, `=d`) and explicitly same-endian struct formats.
    fn accepts(self, format: &[u8]) -> bool {
        let (prefix, code) = match format {
            [c] => (b'@', *c),
            [p, c] => (*p, *c),
            _ => return false,
        };
        let same_endian = match prefix {
            b'@' | b'=' => true,
            b'<' => cfg!(target_endian = "little"),
            b'>' | b'!' => cfg!(target_endian = "big"),
            _ => false,
        };
        let native = prefix == b'@';
        same_endian
            && match self {
                Kind::F64 => code == b'd',
                Kind::I64 => {
                    code == b'q'
                        || (native
                            && ((code == b'l' && std::mem::size_of::<std::ffi::c_long>() == 8)
                                || (code == b'n' && std::mem::size_of::<isize>() == 8)))
                }
            }
    }
}

/// A validated one-dimensional, C-contiguous buffer of 8-byte items; `addr` is the start.
struct RawView {
    buffer: PyUntypedBuffer,
    addr: usize,
    len: usize,
}

fn raw_view(obj: &Bound<'_, PyAny>, name: &str, kind: Kind) -> PyResult<RawView> {
    let expected = kind.describe();
    let buffer = PyUntypedBuffer::get(obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a {expected} buffer (numpy array, array.array, memoryview), got {}",
            type_name(obj)
        ))
    })?;
    let format = buffer.format().to_bytes();
    if buffer.item_size() != 8 || !kind.accepts(format) {
        return Err(PyTypeError::new_err(format!(
            "{name} must hold {expected} items, got buffer format {:?} with item size {} \
             (convert with numpy.asarray(x, dtype=numpy.{expected}))",
            String::from_utf8_lossy(format),
            buffer.item_size()
        )));
    }
    if buffer.dimensions() != 1 {
        return Err(PyValueError::new_err(format!(
            "{name} must be one-dimensional, got {} dimensions",
            buffer.dimensions()
        )));
    }
    if !buffer.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{name} must be C-contiguous (use numpy.ascontiguousarray)"
        )));
    }
    let addr = buffer.buf_ptr() as usize;
    let len = buffer.item_count();
    Ok(RawView { buffer, addr, len })
}

/// Check a float64 buffer in place (no copy, GIL released while scanning).
#[pyfunction]
#[pyo3(signature = (values, min_threshold=None, max_threshold=None, ids=None))]
fn check_array(
    py: Python<'_>,
    values: &Bound<'_, PyAny>,
    min_threshold: Option<f64>,
    max_threshold: Option<f64>,
    ids: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<Alert>> {
    let bounds = bounds(min_threshold, max_threshold)?;
    let vals = raw_view(values, "values", Kind::F64)?;
    let id_view = match ids {
        Some(obj) if !obj.is_none() => {
            let v = raw_view(obj, "ids", Kind::I64)?;
            if v.len != vals.len {
                return Err(PyValueError::new_err(format!(
                    "ids has {} items but values has {}; they must have the same length",
                    v.len, vals.len
                )));
            }
            Some(v)
        }
        _ => None,
    };
    let (vaddr, len) = (vals.addr, vals.len);
    let iaddr = id_view.as_ref().map(|v| v.addr);
    let breaches = py.detach(move || {
        let vptr = vaddr as *const f64;
        let iptr = iaddr.map(|a| a as *const i64);
        (0..len)
            .filter_map(|i| {
                // SAFETY: both buffers were validated above as 1-D, C-contiguous, 8-byte
                // items with at least `len` elements, and are kept alive (and exported,
                // so numpy cannot resize them) by `vals` / `id_view` until after this
                // closure returns. Unaligned reads: memoryview casts need not be aligned.
                let value = unsafe { vptr.add(i).read_unaligned() };
                let id = match iptr {
                    Some(p) => unsafe { p.add(i).read_unaligned() },
                    None => i as i64,
                };
                bounds.check(id, value)
            })
            .collect::<Vec<_>>()
    });
    vals.buffer.release(py);
    if let Some(v) = id_view {
        v.buffer.release(py);
    }
    Ok(breaches.into_iter().map(Alert::from).collect())
}

/// The native module `threshold_checker._native`, re-exported by the `threshold_checker`
/// package (repo-root `threshold_checker/__init__.py`).
#[pymodule(name = "_native")]
fn threshold_checker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Alert>()?;
    m.add_function(wrap_pyfunction!(check_thresholds, m)?)?;
    m.add_function(wrap_pyfunction!(check_array, m)?)?;
    m.add_function(wrap_pyfunction!(check_batch, m)?)?;
    m.add("HIGH_RATIO", core::HIGH_RATIO)?;
    m.add("CRITICAL_RATIO", core::CRITICAL_RATIO)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn buffer_formats() {
        assert!(Kind::F64.accepts(b"d"));
        assert!(Kind::F64.accepts(b"@d"));
        assert!(Kind::F64.accepts(b"=d"));
        assert!(!Kind::F64.accepts(b"f"));
        assert!(!Kind::F64.accepts(b"q"));
        assert!(!Kind::F64.accepts(b"dd"));
        assert_eq!(Kind::F64.accepts(b"<d"), cfg!(target_endian = "little"));
        assert_eq!(Kind::F64.accepts(b">d"), cfg!(target_endian = "big"));
        assert!(Kind::I64.accepts(b"q"));
        assert!(Kind::I64.accepts(b"=q"));
        assert!(!Kind::I64.accepts(b"i"));
        assert!(!Kind::I64.accepts(b"Q"));
        assert!(!Kind::I64.accepts(b"d"));
        assert!(!Kind::I64.accepts(b"=l")); // standard 'l' is 4 bytes
    }
}

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
//! * `Rule` + `RuleEngine`: stateful alerting (one alert per excursion, deadband and clear
//!   count, rate of change), see [`rules`] and the `RuleEngine` docs below.
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
pub mod rules;
pub mod scan;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyMapping, PyTuple};

use crate::core::{Bounds, Breach, BreachType, Severity};
use crate::rules::{AlertBreach, Engine, Event, EventKind, Input, OpenAlert, RuleKind};
use crate::scan::RawF64;

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

/// The breaches as a Python list of `Alert`.
///
/// An `Alert` holds no Python references, so it can never be part of a cycle; each one is
/// taken off the cyclic GC's lists at once (as CPython does for tuples of plain values).
/// Left tracked, a large result made every GC pass walk it again, which cost more than
/// creating the alerts.
fn alert_list(
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

/// The fields of one reading: a tuple or list of exactly `N` items.
///
/// Returned as an array, not a `Vec`: this runs once per reading, and a heap allocation
/// per reading was most of the cost of a check.
fn reading_fields<'py, const N: usize>(
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

fn extract_id(index: usize, obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    obj.extract::<i64>()
        .map_err(|e| field_error(index, "id", "an int64 integer", obj, e))
}

fn extract_value(index: usize, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    obj.extract::<f64>()
        .map_err(|e| field_error(index, "value", "a float", obj, e))
}

/// One `(id, value)` reading. A 2-tuple, the common case, is read through borrowed
/// references: no reference counting per field.
fn id_value(index: usize, item: &Bound<'_, PyAny>) -> PyResult<(i64, f64)> {
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
fn check_thresholds<'py>(
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
fn check_batch<'py>(
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
            breaches.push(b);
        }
    }
    alert_list(readings.py(), breaches)
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
fn check_array<'py>(
    py: Python<'py>,
    values: &Bound<'_, PyAny>,
    min_threshold: Option<f64>,
    max_threshold: Option<f64>,
    ids: Option<&Bound<'_, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
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
    // SAFETY: `vals` was validated as 1-D, C-contiguous, 8-byte items, `len` of them, and
    // stays exported (numpy cannot resize or free it) until released below. `RawF64` has
    // alignment 1, so an unaligned memoryview cast is fine too.
    let raw: &[RawF64] = if len == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(vaddr as *const RawF64, len) }
    };
    let iaddr = id_view.as_ref().map(|v| v.addr);
    let breaches = py.detach(|| {
        // Only the few breaches found by the scan are read again, in a tight loop of their
        // own so that the CPU overlaps the cache misses on `ids`; Python objects come after.
        scan::breach_indexes(raw, &bounds)
            .into_iter()
            .filter_map(|i| {
                let id = match iaddr {
                    // SAFETY: as for `raw`: `ids` holds `len` 8-byte items (checked above)
                    // and i < len.
                    Some(a) => unsafe { (a as *const i64).add(i).read_unaligned() },
                    None => i as i64,
                };
                bounds.check(id, f64::from_ne_bytes(raw[i]))
            })
            .collect::<Vec<_>>()
    });
    let list = alert_list(py, breaches);
    vals.buffer.release(py);
    if let Some(v) = id_view {
        v.buffer.release(py);
    }
    list
}

// --- stateful rules ---------------------------------------------------------------------

/// An alert rule for one sensor (or a `+` pattern): thresholds with hysteresis, rate limit.
#[pyclass(frozen, module = "threshold_checker", name = "Rule")]
#[derive(Clone, Debug)]
pub struct Rule {
    inner: rules::Rule,
}

fn rule_error(context: &str, e: rules::RuleError) -> PyErr {
    PyValueError::new_err(format!("{context}{e}"))
}

fn opt_repr(py: Python<'_>, v: Option<f64>) -> PyResult<String> {
    v.map_or(Ok("None".to_owned()), |v| float_repr(py, v))
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
        let inner = rules::Rule::new(min, max, deadband, clear_count, max_rate)
            .map_err(|e| rule_error("", e))?;
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

/// One step of an alert's lifecycle (`kind` open/update/close), or, from
/// `RuleEngine.open_alerts()`, the current state of an open alert (kind "open").
#[pyclass(frozen, module = "threshold_checker", name = "AlertEvent")]
#[derive(Clone, Debug)]
pub struct AlertEvent {
    inner: Event,
}

#[pymethods]
impl AlertEvent {
    #[new]
    #[pyo3(signature = (*, kind, key, breach_type, severity, threshold_value, value, ts,
                        opened_at, reading_seq=None, opened_seq=None, rule=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: &str,
        key: String,
        breach_type: &str,
        severity: &str,
        threshold_value: f64,
        value: f64,
        ts: f64,
        opened_at: f64,
        reading_seq: Option<i64>,
        opened_seq: Option<i64>,
        rule: Option<&str>,
    ) -> PyResult<Self> {
        let kind = EventKind::parse(kind).ok_or_else(|| {
            PyValueError::new_err(format!(
                "kind must be 'open', 'update' or 'close', got {kind:?}"
            ))
        })?;
        let breach = AlertBreach::parse(breach_type).ok_or_else(|| {
            PyValueError::new_err(format!(
                "breach_type must be 'above_maximum', 'below_minimum' or 'rate_of_change', \
                 got {breach_type:?}"
            ))
        })?;
        if let Some(r) = rule {
            if RuleKind::parse(r) != Some(breach.rule()) {
                return Err(PyValueError::new_err(format!(
                    "rule {r:?} does not match breach_type {breach_type:?}"
                )));
            }
        }
        let severity = Severity::parse(severity).ok_or_else(|| {
            PyValueError::new_err(format!(
                "severity must be 'medium', 'high' or 'critical', got {severity:?}"
            ))
        })?;
        Engine::check_key(&key).map_err(|e| rule_error("", e))?;
        Ok(AlertEvent {
            inner: Event {
                kind,
                key,
                alert: OpenAlert {
                    breach,
                    severity,
                    threshold_value,
                    value,
                    opened_at,
                    reading_seq: opened_seq,
                },
                ts,
                reading_seq,
            },
        })
    }

    /// "open" | "update" | "close"
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind.as_str()
    }
    #[getter]
    fn key(&self) -> &str {
        &self.inner.key
    }
    /// "threshold" | "rate_of_change"
    #[getter]
    fn rule(&self) -> &'static str {
        self.inner.alert.breach.rule().as_str()
    }
    #[getter]
    fn breach_type(&self) -> &'static str {
        self.inner.alert.breach.as_str()
    }
    #[getter]
    fn severity(&self) -> &'static str {
        self.inner.alert.severity.as_str()
    }
    #[getter]
    fn threshold_value(&self) -> f64 {
        self.inner.alert.threshold_value
    }
    #[getter]
    fn value(&self) -> f64 {
        self.inner.alert.value
    }
    #[getter]
    fn ts(&self) -> f64 {
        self.inner.ts
    }
    #[getter]
    fn opened_at(&self) -> f64 {
        self.inner.alert.opened_at
    }
    #[getter]
    fn reading_seq(&self) -> Option<i64> {
        self.inner.reading_seq
    }
    #[getter]
    fn opened_seq(&self) -> Option<i64> {
        self.inner.alert.reading_seq
    }

    /// The event as a plain dict (keys as the attribute names).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("kind", self.kind())?;
        d.set_item("key", self.key())?;
        d.set_item("rule", self.rule())?;
        d.set_item("breach_type", self.breach_type())?;
        d.set_item("severity", self.severity())?;
        d.set_item("threshold_value", self.threshold_value())?;
        d.set_item("value", self.value())?;
        d.set_item("ts", self.ts())?;
        d.set_item("opened_at", self.opened_at())?;
        d.set_item("reading_seq", self.reading_seq())?;
        d.set_item("opened_seq", self.opened_seq())?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let seq = |s: Option<i64>| s.map_or("None".to_owned(), |v| v.to_string());
        Ok(format!(
            "AlertEvent(kind='{}', key={:?}, rule='{}', breach_type='{}', severity='{}', \
             threshold_value={}, value={}, ts={}, opened_at={}, reading_seq={}, opened_seq={})",
            self.kind(),
            self.key(),
            self.rule(),
            self.breach_type(),
            self.severity(),
            float_repr(py, self.threshold_value())?,
            float_repr(py, self.value())?,
            float_repr(py, self.ts())?,
            float_repr(py, self.opened_at())?,
            seq(self.reading_seq()),
            seq(self.opened_seq()),
        ))
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

fn extract_rules(rules: &Bound<'_, PyAny>) -> PyResult<Vec<(String, rules::Rule)>> {
    let mapping = rules.cast::<PyMapping>().map_err(|_| {
        PyTypeError::new_err(format!(
            "rules must be a mapping of sensor key -> Rule, got {}",
            type_name(rules)
        ))
    })?;
    let mut out = Vec::new();
    for pair in mapping.items()?.iter() {
        let (key, rule): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
        let key: String = key.extract().map_err(|_| {
            PyTypeError::new_err(format!("rules keys must be str, got {}", type_name(&key)))
        })?;
        let rule = rule.cast::<Rule>().map_err(|_| {
            PyTypeError::new_err(format!(
                "rules[{key:?}] must be a threshold_checker.Rule, got {}",
                type_name(&rule)
            ))
        })?;
        Engine::check_key(&key).map_err(|e| rule_error("", e))?;
        out.push((key, rule.get().inner));
    }
    Ok(out)
}

fn events_out(events: Vec<Event>) -> Vec<AlertEvent> {
    events
        .into_iter()
        .map(|inner| AlertEvent { inner })
        .collect()
}

/// Stateful alerting for many sensors: feed it every reading in order, get the alert
/// lifecycle events back. See the `rules` module docs (and the README) for the rules.
#[pyclass(module = "threshold_checker", name = "RuleEngine")]
pub struct RuleEngine {
    engine: Engine,
}

#[pymethods]
impl RuleEngine {
    #[new]
    #[pyo3(signature = (rules=None))]
    fn new(rules: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut engine = Engine::new();
        if let Some(r) = rules.filter(|r| !r.is_none()) {
            engine
                .set_rules(extract_rules(r)?)
                .map_err(|e| rule_error("", e))?;
        }
        Ok(RuleEngine { engine })
    }

    /// Replace every rule (validated first: on error nothing changes). Returns the close
    /// events of open alerts whose rule is gone.
    fn set_rules(&mut self, rules: &Bound<'_, PyAny>) -> PyResult<Vec<AlertEvent>> {
        let rules = extract_rules(rules)?;
        let events = self
            .engine
            .set_rules(rules)
            .map_err(|e| rule_error("", e))?;
        Ok(events_out(events))
    }

    /// The rules as given (exact keys and patterns).
    fn rules(&self) -> HashMap<String, Rule> {
        self.engine
            .rules()
            .map(|(k, r)| (k.to_owned(), Rule { inner: *r }))
            .collect()
    }

    /// The rule that applies to a sensor key (exact key, else the most specific pattern).
    fn rule_for(&self, key: &str) -> Option<Rule> {
        self.engine.resolve(key).map(|inner| Rule { inner })
    }

    /// Run `(seq, key, ts, value)` readings (seq an int or None) through the rules, in order;
    /// returns the lifecycle events in order. Input is validated before any state changes.
    fn process(
        &mut self,
        py: Python<'_>,
        readings: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<AlertEvent>> {
        let mut rows: Vec<(Option<i64>, pyo3::pybacked::PyBackedStr, f64, f64)> = Vec::new();
        for (index, item) in iterate(readings)?.enumerate() {
            let item = item?;
            let fields: [_; 4] = reading_fields(index, &item, "(seq, key, ts, value)")?;
            let seq = if fields[0].is_none() {
                None
            } else {
                Some(fields[0].extract::<i64>().map_err(|e| {
                    field_error(index, "seq", "an int64 integer or None", &fields[0], e)
                })?)
            };
            let key = fields[1]
                .extract::<pyo3::pybacked::PyBackedStr>()
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "readings[{index}]: key must be str, got {}",
                        type_name(&fields[1])
                    ))
                })?;
            let ts = fields[2]
                .extract::<f64>()
                .map_err(|e| field_error(index, "ts", "a float", &fields[2], e))?;
            let value = extract_value(index, &fields[3])?;
            rows.push((seq, key, ts, value));
        }
        let engine = &mut self.engine;
        let events = py.detach(move || {
            engine.process(rows.iter().map(|(seq, key, ts, value)| Input {
                seq: *seq,
                key,
                ts: *ts,
                value: *value,
            }))
        });
        Ok(events_out(events))
    }

    /// The alerts open now, as "open" events with their current (worst) value and severity,
    /// sorted by key then rule. Persist them to `restore()` the engine after a restart.
    fn open_alerts(&self) -> Vec<AlertEvent> {
        self.engine
            .open_alerts()
            .into_iter()
            .map(|(key, alert)| AlertEvent {
                inner: Event {
                    kind: EventKind::Open,
                    key,
                    alert,
                    ts: alert.opened_at,
                    reading_seq: alert.reading_seq,
                },
            })
            .collect()
    }

    /// Put back open alerts (from `open_alerts()` or rebuilt with `AlertEvent(...)`): the
    /// excursion in progress then stays one alert. Uses key, breach_type, severity,
    /// threshold_value, value, opened_at and opened_seq; replaces what is open for that
    /// sensor and rule. All are validated before any is applied.
    fn restore(&mut self, alerts: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut items = Vec::new();
        for (index, item) in alerts
            .try_iter()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "alerts must be an iterable of AlertEvent, got {}",
                    type_name(alerts)
                ))
            })?
            .enumerate()
        {
            let item = item?;
            let ev = item.cast::<AlertEvent>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "alerts[{index}] must be an AlertEvent, got {}",
                    type_name(&item)
                ))
            })?;
            let ev = ev.get().inner.clone();
            if ev.key.contains('+') {
                return Err(PyValueError::new_err(format!(
                    "alerts[{index}]: key {:?} must be a sensor key, not a pattern",
                    ev.key
                )));
            }
            items.push(ev);
        }
        for ev in items {
            self.engine
                .restore(&ev.key, ev.alert)
                .map_err(|e| rule_error("", e))?;
        }
        Ok(())
    }

    /// Forget every open alert and every sensor's history (rules stay).
    fn reset(&mut self) {
        self.engine.reset();
    }

    /// Number of rules (exact keys and patterns).
    fn __len__(&self) -> usize {
        self.engine.rules().count()
    }

    fn __repr__(&self) -> String {
        format!(
            "RuleEngine(rules={}, open_alerts={})",
            self.engine.rules().count(),
            self.engine.open_alerts().len()
        )
    }
}

/// The native module `threshold_checker._native`, re-exported by the `threshold_checker`
/// package (repo-root `threshold_checker/__init__.py`).
#[pymodule(name = "_native")]
fn threshold_checker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Alert>()?;
    m.add_class::<Rule>()?;
    m.add_class::<AlertEvent>()?;
    m.add_class::<RuleEngine>()?;
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

//! `check_array`: the stateless check over a float64 buffer, read in place through the
//! buffer protocol (numpy arrays, `array.array`, memoryviews) with the GIL released.

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::py::alert::alert_list;
use crate::py::input::{bounds, type_name};
use crate::scan::{self, RawF64};

/// The item type a buffer argument must hold.
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
pub fn check_array<'py>(
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

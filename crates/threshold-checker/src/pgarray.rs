//! PostgreSQL's binary format of a one-dimensional `int8[]` or `float8[]` without NULLs: how
//! the hub sends a usual batch's columns to PostgreSQL (hub/storage/postgres/onetrip.py), so
//! that a batch's readings and rollup partials go from its rows to the wire in one pass.
//!
//! # Layout (PostgreSQL's `array_send`, every integer big-endian)
//!
//! * the number of dimensions (`i32`: 1, or 0 for an empty array), a has-NULLs flag (`i32`:
//!   0) and the element type's oid (`u32`);
//! * for the one dimension, its length and lower bound (`i32` each: n, 1);
//! * each element as its byte length (`i32`: 8) followed by its 8 bytes.
//!
//! # Invariant
//!
//! The bytes are exactly those PostgreSQL's own `array_send` writes for the same values (and
//! that the hub's former Python packer wrote): a float keeps its bits (NaN, -0.0 included).

/// `int8`'s type oid.
pub const INT8_OID: u32 = 20;
/// `float8`'s type oid.
pub const FLOAT8_OID: u32 = 701;

/// Too many elements for one dimension (its length is an `i32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong(pub usize);

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} elements do not fit one PostgreSQL array dimension",
            self.0
        )
    }
}

fn packed(oid: u32, words: impl ExactSizeIterator<Item = [u8; 8]>) -> Result<Vec<u8>, TooLong> {
    let n = words.len();
    let length = i32::try_from(n).map_err(|_| TooLong(n))?;
    if n == 0 {
        let mut out = Vec::with_capacity(12);
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&oid.to_be_bytes());
        return Ok(out);
    }
    let mut out = Vec::with_capacity(20 + 12 * n);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&oid.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    for word in words {
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&word);
    }
    Ok(out)
}

/// `values` as a binary `int8[]`.
pub fn int8_array(values: impl ExactSizeIterator<Item = i64>) -> Result<Vec<u8>, TooLong> {
    packed(INT8_OID, values.map(i64::to_be_bytes))
}

/// `values` as a binary `float8[]`.
pub fn float8_array(values: impl ExactSizeIterator<Item = f64>) -> Result<Vec<u8>, TooLong> {
    packed(FLOAT8_OID, values.map(|v| v.to_bits().to_be_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_array_has_no_dimension() {
        assert_eq!(
            int8_array(std::iter::empty()).unwrap(),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20]
        );
        assert_eq!(
            float8_array(std::iter::empty()).unwrap(),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0xbd]
        );
    }

    #[test]
    fn elements_follow_the_header_each_with_its_length() {
        let bytes = int8_array([1i64, -2].into_iter()).unwrap();
        let mut want = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 2, 0, 0, 0, 1];
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn a_float_keeps_its_bits() {
        for v in [0.0, -0.0, 1.5, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE] {
            let bytes = float8_array([v].into_iter()).unwrap();
            assert_eq!(bytes.len(), 32);
            assert_eq!(bytes[20..24], 8i32.to_be_bytes());
            assert_eq!(
                u64::from_be_bytes(bytes[24..32].try_into().unwrap()),
                v.to_bits()
            );
        }
    }
}

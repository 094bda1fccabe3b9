//! The bulk scan behind `check_array`: which values of a float64 buffer lie outside the band.
//!
//! Breaches are rare (a healthy sensor stays inside its band), so the scan is built for the
//! common case: blocks of [`LANES`] values are tested with branch-free SIMD compares and one
//! branch per block; only a block holding a breach is looked at value by value. Severity
//! and the `Breach` record are left to the caller, for the few indexes found.

use crate::core::Bounds;

/// Values per block: enough for the compiler to unroll into several SIMD compares, small
/// enough that a block with a breach is cheap to walk again.
pub const LANES: usize = 16;

/// One float64 as its native-endian bytes. The buffer may be unaligned (a memoryview cast
/// of a byte buffer at an odd offset), and a slice of `[u8; 8]` is valid at any address
/// where a slice of `f64` would not be.
pub type RawF64 = [u8; 8];

#[inline(always)]
fn value(raw: &RawF64) -> f64 {
    f64::from_ne_bytes(*raw)
}

/// `(lo, hi)` with a missing bound as an infinity: `v < -inf` and `v > inf` are never
/// true, and NaN compares false against both, so NaN is never a breach.
fn limits(bounds: &Bounds) -> (f64, f64) {
    (
        bounds.min().unwrap_or(f64::NEG_INFINITY),
        bounds.max().unwrap_or(f64::INFINITY),
    )
}

#[inline(always)]
fn outside(v: f64, lo: f64, hi: f64) -> bool {
    // `|` rather than `||`: no branch, so the block loop vectorizes.
    (v > hi) | (v < lo)
}

/// The portable scan (baseline x86-64 has SSE2; LLVM vectorizes the `any` fold).
fn scan_portable(values: &[RawF64], lo: f64, hi: f64, out: &mut Vec<usize>) {
    let mut blocks = values.chunks_exact(LANES);
    let mut base = 0;
    for block in &mut blocks {
        let any = block
            .iter()
            .fold(false, |acc, raw| acc | outside(value(raw), lo, hi));
        if any {
            for (j, raw) in block.iter().enumerate() {
                if outside(value(raw), lo, hi) {
                    out.push(base + j);
                }
            }
        }
        base += LANES;
    }
    scan_tail(blocks.remainder(), base, lo, hi, out);
}

fn scan_tail(tail: &[RawF64], base: usize, lo: f64, hi: f64, out: &mut Vec<usize>) {
    for (j, raw) in tail.iter().enumerate() {
        if outside(value(raw), lo, hi) {
            out.push(base + j);
        }
    }
}

/// The same scan with AVX2, written with intrinsics so that a block with a breach is
/// resolved from the compare masks (movemask, then bit by bit), not by a branch per value.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scan_avx2(values: &[RawF64], lo: f64, hi: f64, out: &mut Vec<usize>) {
    use std::arch::x86_64::*;

    const _: () = assert!(LANES == 16, "the AVX2 scan takes four vectors of four");
    let (vlo, vhi) = (_mm256_set1_pd(lo), _mm256_set1_pd(hi));
    // All-ones lanes where the value is outside [lo, hi]. Ordered compares (`_OQ`): a NaN
    // lane is never outside.
    macro_rules! outside4 {
        ($four:expr) => {{
            let four: &[RawF64] = $four;
            debug_assert_eq!(four.len(), 4);
            // SAFETY: `four` is 4 values = 32 readable bytes; loadu needs no alignment.
            let v = unsafe { _mm256_loadu_pd(four.as_ptr().cast::<f64>()) };
            _mm256_or_pd(
                _mm256_cmp_pd::<_CMP_GT_OQ>(v, vhi),
                _mm256_cmp_pd::<_CMP_LT_OQ>(v, vlo),
            )
        }};
    }
    let mut blocks = values.chunks_exact(LANES);
    let mut base = 0;
    for block in &mut blocks {
        let m = [
            outside4!(&block[0..4]),
            outside4!(&block[4..8]),
            outside4!(&block[8..12]),
            outside4!(&block[12..16]),
        ];
        let any = _mm256_or_pd(_mm256_or_pd(m[0], m[1]), _mm256_or_pd(m[2], m[3]));
        if _mm256_testz_pd(any, any) == 0 {
            let mut mask = m.iter().enumerate().fold(0u32, |acc, (k, mk)| {
                acc | ((_mm256_movemask_pd(*mk) as u32) << (4 * k))
            });
            while mask != 0 {
                out.push(base + mask.trailing_zeros() as usize);
                mask &= mask - 1;
            }
        }
        base += LANES;
    }
    scan_tail(blocks.remainder(), base, lo, hi, out);
}

/// Indexes (ascending) of the values that breach `bounds`: `> max` or `< min`; NaN never.
///
/// Portable builds target baseline x86-64 (SSE2); where the CPU has AVX2 (checked at run
/// time) the AVX2 scan runs instead, with twice the vector width.
pub fn breach_indexes(values: &[RawF64], bounds: &Bounds) -> Vec<usize> {
    let mut out = Vec::new();
    if bounds.min().is_none() && bounds.max().is_none() {
        return out;
    }
    let (lo, hi) = limits(bounds);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { scan_avx2(values, lo, hi, &mut out) };
        return out;
    }
    scan_portable(values, lo, hi, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(values: &[f64]) -> Vec<RawF64> {
        values.iter().map(|v| v.to_ne_bytes()).collect()
    }

    /// `breach_indexes`, after checking that every scan variant this CPU can run agrees:
    /// on an AVX2 machine `breach_indexes` alone would never run the portable scan.
    fn scan(values: &[RawF64], bounds: &Bounds) -> Vec<usize> {
        let got = breach_indexes(values, bounds);
        if bounds.min().is_some() || bounds.max().is_some() {
            let (lo, hi) = limits(bounds);
            let mut portable = Vec::new();
            scan_portable(values, lo, hi, &mut portable);
            assert_eq!(portable, got, "portable scan");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut avx2 = Vec::new();
                // SAFETY: AVX2 detected just above.
                unsafe { scan_avx2(values, lo, hi, &mut avx2) };
                assert_eq!(avx2, got, "AVX2 scan");
            }
        }
        got
    }

    fn reference(values: &[f64], bounds: &Bounds) -> Vec<usize> {
        values
            .iter()
            .enumerate()
            .filter(|(i, v)| bounds.check(*i as i64, **v).is_some())
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn matches_the_scalar_check_across_block_edges() {
        let bounds = Bounds::new(Some(-1.0), Some(1.0)).unwrap();
        for len in [0, 1, LANES - 1, LANES, LANES + 1, 3 * LANES + 5] {
            for hot in 0..len {
                let mut values: Vec<f64> = (0..len).map(|i| (i as f64 * 0.37).sin()).collect();
                values[hot] = if hot % 2 == 0 { 2.0 } else { -2.0 };
                assert_eq!(
                    scan(&raw(&values), &bounds),
                    reference(&values, &bounds),
                    "len {len}, breach at {hot}"
                );
            }
        }
    }

    #[test]
    fn equal_is_inside_nan_never_inf_compared() {
        let bounds = Bounds::new(Some(0.0), Some(10.0)).unwrap();
        let values = [
            0.0,
            10.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            10.000001,
        ];
        assert_eq!(scan(&raw(&values), &bounds), vec![3, 4, 6]);
    }

    #[test]
    fn one_sided_and_unbounded() {
        let values = raw(&[f64::INFINITY, -5.0, 5.0, f64::NEG_INFINITY]);
        let max_only = Bounds::new(None, Some(0.0)).unwrap();
        assert_eq!(scan(&values, &max_only), vec![0, 2]);
        let min_only = Bounds::new(Some(0.0), None).unwrap();
        assert_eq!(scan(&values, &min_only), vec![1, 3]);
        let none = Bounds::new(None, None).unwrap();
        assert!(scan(&values, &none).is_empty());
    }

    #[test]
    fn nan_next_to_breaches_in_one_block() {
        let bounds = Bounds::new(Some(0.0), Some(1.0)).unwrap();
        let mut values = vec![0.5; 2 * LANES + 3];
        for (i, v) in [
            (0, f64::NAN),
            (1, 5.0),
            (3, f64::NAN),
            (4, -5.0),
            (15, 1.5),
            (16, f64::NAN),
            (17, f64::INFINITY),
            (2 * LANES + 2, -0.5),
        ] {
            values[i] = v;
        }
        assert_eq!(
            scan(&raw(&values), &bounds),
            vec![1, 4, 15, 17, 2 * LANES + 2]
        );
        assert_eq!(scan(&raw(&values), &bounds), reference(&values, &bounds));
    }

    #[test]
    fn every_value_a_breach() {
        let bounds = Bounds::new(Some(0.0), Some(1.0)).unwrap();
        let values: Vec<f64> = (0..100).map(|i| 2.0 + i as f64).collect();
        let expect: Vec<usize> = (0..100).collect();
        assert_eq!(scan(&raw(&values), &bounds), expect);
    }
}

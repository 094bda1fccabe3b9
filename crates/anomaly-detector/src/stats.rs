//! Pure statistics: summary statistics and the two detection methods.
//!
//! * **zscore**: `z = (x - mean) / std_dev` with the *population* standard deviation
//!   (divide by `n`, not `n - 1`); a value is an anomaly when `|z| > threshold`.
//! * **mad**: robust z-score `z = 0.6745 * (x - median) / MAD`, `MAD = median(|x - median|)`
//!   (Iglewicz & Hoaglin). When more than half the values are equal (MAD = 0) it falls back
//!   to the mean absolute deviation: `z = (x - median) / (1.253314 * MeanAD)`. A single huge
//!   spike moves neither the median nor the MAD, so it cannot mask itself or others.
//!
//! A constant series has `std_dev = 0` and no anomalies, never NaN; robust z-scores
//! saturate at `±f64::MAX` (the plain z-score is bounded by `sqrt(n)`). All arithmetic is
//! done on values scaled by `max |x|`, so finite inputs near `f64::MAX` do not overflow.
//! Callers must pass finite values only (the HTTP layer rejects others).

use serde::Serialize;

/// Scale factor for the robust z-score (the 0.75 quantile of the standard normal).
pub const MAD_SCALE: f64 = 0.6745;
/// Scale factor for the mean-absolute-deviation fallback (sqrt(pi/2)).
pub const MEAN_AD_SCALE: f64 = 1.253314;

/// Detection method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ZScore,
    Mad,
}

impl Method {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "zscore" => Some(Method::ZScore),
            "mad" => Some(Method::Mad),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::ZScore => "zscore",
            Method::Mad => "mad",
        }
    }
}

/// Summary statistics of a series (`median`/`mad` only for the `mad` method).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Statistics {
    pub mean: f64,
    pub std_dev: f64,
    pub count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mad: Option<f64>,
}

/// One anomalous value; `z_score` is the robust z-score for the `mad` method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Anomaly {
    pub index: usize,
    pub value: f64,
    pub z_score: f64,
}

/// The result for one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    pub statistics: Statistics,
    pub anomalies: Vec<Anomaly>,
}

fn scale_of(values: &[f64]) -> f64 {
    let m = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    if m > 0.0 {
        m
    } else {
        1.0
    }
}

/// Mean and population standard deviation of `values / scale` (two-pass).
fn scaled_mean_std(values: &[f64], scale: f64) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().map(|v| v / scale).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|v| {
            let d = v / scale - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean, var.max(0.0).sqrt())
}

/// Mean, population standard deviation and count. Empty input gives zeros.
pub fn statistics(values: &[f64]) -> Statistics {
    if values.is_empty() {
        return Statistics {
            mean: 0.0,
            std_dev: 0.0,
            count: 0,
            median: None,
            mad: None,
        };
    }
    let scale = scale_of(values);
    let (mean, std) = scaled_mean_std(values, scale);
    Statistics {
        mean: mean * scale,
        std_dev: std * scale,
        count: values.len(),
        median: None,
        mad: None,
    }
}

fn median_in_place(xs: &mut [f64]) -> f64 {
    let n = xs.len();
    let mid = n / 2;
    let (_, m, _) = xs.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *m;
    if n % 2 == 1 {
        upper
    } else {
        let lower = xs[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        lower / 2.0 + upper / 2.0
    }
}

/// Median of finite values (average of the two middle ones for even counts).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut xs = values.to_vec();
    median_in_place(&mut xs)
}

/// Detect anomalies with `method`; `threshold` is compared with `|z|` (strictly greater).
pub fn detect(values: &[f64], threshold: f64, method: Method) -> Detection {
    let mut statistics = statistics(values);
    if values.is_empty() {
        return Detection {
            statistics,
            anomalies: Vec::new(),
        };
    }
    let scale = scale_of(values);
    let flag = |z: f64, i: usize, v: f64| {
        (z.abs() > threshold).then_some(Anomaly {
            index: i,
            value: v,
            z_score: z,
        })
    };
    let anomalies = match method {
        Method::ZScore => {
            let (mean, std) = scaled_mean_std(values, scale);
            if std > 0.0 {
                values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &v)| flag((v / scale - mean) / std, i, v))
                    .collect()
            } else {
                Vec::new()
            }
        }
        Method::Mad => {
            let mut scaled: Vec<f64> = values.iter().map(|v| v / scale).collect();
            let med = median_in_place(&mut scaled);
            for x in scaled.iter_mut() {
                *x = (*x - med).abs();
            }
            let mean_ad = scaled.iter().sum::<f64>() / scaled.len() as f64;
            let mad = median_in_place(&mut scaled);
            statistics.median = Some(med * scale);
            statistics.mad = Some(mad * scale);
            let denom = if mad > 0.0 {
                mad / MAD_SCALE
            } else {
                MEAN_AD_SCALE * mean_ad
            };
            if denom > 0.0 {
                values
                    .iter()
                    .enumerate()
                    // The quotient can exceed f64::MAX when the spread is tiny next to a
                    // huge outlier: saturate so the score stays a finite JSON number.
                    .filter_map(|(i, &v)| {
                        let z = ((v / scale - med) / denom).clamp(-f64::MAX, f64::MAX);
                        flag(z, i, v)
                    })
                    .collect()
            } else {
                Vec::new()
            }
        }
    };
    Detection {
        statistics,
        anomalies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_std_dev() {
        let s = statistics(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(s.mean, 5.0);
        assert_eq!(s.std_dev, 2.0);
        assert_eq!(s.count, 8);
    }

    #[test]
    fn constant_series_has_no_anomalies_and_no_nan() {
        for method in [Method::ZScore, Method::Mad] {
            let d = detect(&[3.0; 10], 0.0, method);
            assert_eq!(d.statistics.std_dev, 0.0);
            assert_eq!(d.statistics.mean, 3.0);
            assert!(d.anomalies.is_empty());
        }
        let d = detect(&[0.0; 3], 2.0, Method::ZScore);
        assert!(d.statistics.mean == 0.0 && d.anomalies.is_empty());
    }

    #[test]
    fn zscore_flags_outlier() {
        let mut v = vec![10.0; 20];
        v[3] = 11.0;
        v[7] = 100.0;
        let d = detect(&v, 2.0, Method::ZScore);
        assert_eq!(d.anomalies.len(), 1);
        assert_eq!(d.anomalies[0].index, 7);
        assert_eq!(d.anomalies[0].value, 100.0);
        assert!(d.anomalies[0].z_score > 4.0);
    }

    #[test]
    fn mad_is_not_masked_by_a_huge_spike() {
        let mut v: Vec<f64> = (0..50).map(|i| 20.0 + (i % 5) as f64 * 0.1).collect();
        v[10] = 1e12;
        v[20] = 30.0; // moderate outlier that z-score would miss next to the spike
        let z = detect(&v, 3.0, Method::ZScore);
        assert_eq!(
            z.anomalies.iter().map(|a| a.index).collect::<Vec<_>>(),
            [10]
        );
        let m = detect(&v, 3.0, Method::Mad);
        let idx: Vec<usize> = m.anomalies.iter().map(|a| a.index).collect();
        assert_eq!(idx, [10, 20]);
        assert!(m.statistics.median.is_some() && m.statistics.mad.is_some());
    }

    #[test]
    fn mad_zero_falls_back_to_mean_absolute_deviation() {
        let mut v = vec![5.0; 9];
        v[4] = 6.0;
        let d = detect(&v, 2.0, Method::Mad);
        assert_eq!(d.statistics.mad, Some(0.0));
        assert_eq!(d.anomalies.len(), 1);
        assert_eq!(d.anomalies[0].index, 4);
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let v = [f64::MAX, -f64::MAX, f64::MAX, -f64::MAX];
        for method in [Method::ZScore, Method::Mad] {
            let d = detect(&v, 0.5, method);
            assert!(d.statistics.mean.is_finite());
            assert!(d.statistics.std_dev.is_finite());
            assert!(d.anomalies.iter().all(|a| a.z_score.is_finite()));
        }
    }

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn method_names() {
        assert_eq!(Method::parse("zscore"), Some(Method::ZScore));
        assert_eq!(Method::parse("mad"), Some(Method::Mad));
        assert_eq!(Method::parse("MAD"), None);
        assert_eq!(Method::Mad.as_str(), "mad");
    }
}

//! Pure-Rust threshold logic (no Python). Everything the PyO3 layer exposes is decided here.
//!
//! # Rules
//!
//! * A reading breaches the maximum when `value > max`, the minimum when `value < min`.
//!   A value *equal* to a threshold is not a breach.
//! * NaN values are skipped (never a breach). `±inf` values are compared normally.
//! * Thresholds must be finite (use `None` for "no bound") and `min <= max`.
//!
//! # Severity
//!
//! ```text
//! excess = |value - threshold| / scale
//! scale  = |threshold|          if threshold != 0
//!        = max - min            if threshold == 0 and both bounds are set with max > min
//!        = 1.0                  otherwise (threshold 0, no usable span: absolute units)
//!
//! excess >= 0.20  -> critical
//! excess >= 0.10  -> high
//! otherwise       -> medium
//! ```

use std::fmt;

/// Excess ratio at or above which a breach is `high`.
pub const HIGH_RATIO: f64 = 0.10;
/// Excess ratio at or above which a breach is `critical`.
pub const CRITICAL_RATIO: f64 = 0.20;

/// Which side of the allowed band a value fell on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreachType {
    AboveMaximum,
    BelowMinimum,
}

impl BreachType {
    pub fn as_str(self) -> &'static str {
        match self {
            BreachType::AboveMaximum => "above_maximum",
            BreachType::BelowMinimum => "below_minimum",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "above_maximum" => Some(BreachType::AboveMaximum),
            "below_minimum" => Some(BreachType::BelowMinimum),
            _ => None,
        }
    }
}

/// How far past the threshold, see the module docs for the formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The hub's alert rules (crate::levels) only; threshold checks never give it.
    Info,
    Medium,
    /// The hub's alert rules only.
    Warning,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Medium => "medium",
            Severity::Warning => "warning",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Any severity an alert may carry: the threshold checks' and the hub rules' levels.
    pub fn parse_any(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            _ => Self::parse(s),
        }
    }

    /// A hub rule's severity as the hub writes it (INFO | WARNING | CRITICAL).
    pub fn parse_level(s: &str) -> Option<Self> {
        match s {
            "INFO" => Some(Severity::Info),
            "WARNING" => Some(Severity::Warning),
            "CRITICAL" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// Severity for an excess ratio (`|value - threshold| / scale`).
    pub fn from_excess(excess: f64) -> Self {
        if excess >= CRITICAL_RATIO {
            Severity::Critical
        } else if excess >= HIGH_RATIO {
            Severity::High
        } else {
            Severity::Medium
        }
    }
}

/// One threshold violation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breach {
    pub reading_id: i64,
    pub value: f64,
    pub breach_type: BreachType,
    pub threshold_value: f64,
    pub severity: Severity,
}

/// Why a pair of thresholds was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BoundsError {
    NotFinite { which: &'static str, value: f64 },
    MinAboveMax { min: f64, max: f64 },
}

impl fmt::Display for BoundsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoundsError::NotFinite { which, value } => {
                write!(f, "{which} must be a finite number or None (got {value})")
            }
            BoundsError::MinAboveMax { min, max } => write!(
                f,
                "min_threshold ({min}) must not be greater than max_threshold ({max})"
            ),
        }
    }
}

impl std::error::Error for BoundsError {}

/// A validated pair of optional thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    min: Option<f64>,
    max: Option<f64>,
}

impl Bounds {
    pub fn new(min: Option<f64>, max: Option<f64>) -> Result<Self, BoundsError> {
        if let Some(v) = min.filter(|v| !v.is_finite()) {
            return Err(BoundsError::NotFinite {
                which: "min_threshold",
                value: v,
            });
        }
        if let Some(v) = max.filter(|v| !v.is_finite()) {
            return Err(BoundsError::NotFinite {
                which: "max_threshold",
                value: v,
            });
        }
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                return Err(BoundsError::MinAboveMax { min: lo, max: hi });
            }
        }
        Ok(Bounds { min, max })
    }

    pub fn min(&self) -> Option<f64> {
        self.min
    }

    pub fn max(&self) -> Option<f64> {
        self.max
    }

    /// The denominator of the excess ratio for a breach of `threshold`.
    pub fn scale(&self, threshold: f64) -> f64 {
        if threshold != 0.0 {
            return threshold.abs();
        }
        match (self.min, self.max) {
            (Some(lo), Some(hi)) if hi > lo => hi - lo,
            _ => 1.0,
        }
    }

    pub fn severity(&self, value: f64, threshold: f64) -> Severity {
        Severity::from_excess((value - threshold).abs() / self.scale(threshold))
    }

    /// Check one reading; `None` when it is inside the band (or NaN).
    ///
    /// `#[inline]`: it runs once per reading, called from the PyO3 layer in other modules
    /// and so in other codegen units (see `py::input`).
    #[inline]
    pub fn check(&self, reading_id: i64, value: f64) -> Option<Breach> {
        if value.is_nan() {
            return None;
        }
        let (breach_type, threshold_value) = match (self.min, self.max) {
            (_, Some(hi)) if value > hi => (BreachType::AboveMaximum, hi),
            (Some(lo), _) if value < lo => (BreachType::BelowMinimum, lo),
            _ => return None,
        };
        Some(Breach {
            reading_id,
            value,
            breach_type,
            threshold_value,
            severity: self.severity(value, threshold_value),
        })
    }

    /// Check many readings, in order.
    pub fn check_all<I>(&self, readings: I) -> Vec<Breach>
    where
        I: IntoIterator<Item = (i64, f64)>,
    {
        if self.min.is_none() && self.max.is_none() {
            return Vec::new();
        }
        readings
            .into_iter()
            .filter_map(|(id, v)| self.check(id, v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(min: Option<f64>, max: Option<f64>) -> Bounds {
        Bounds::new(min, max).unwrap()
    }

    #[test]
    fn inside_band_and_equal_to_threshold_is_no_breach() {
        let bounds = b(Some(15.0), Some(85.0));
        assert_eq!(bounds.check(1, 50.0), None);
        assert_eq!(bounds.check(2, 85.0), None);
        assert_eq!(bounds.check(3, 15.0), None);
    }

    #[test]
    fn above_maximum_severities() {
        let bounds = b(Some(15.0), Some(100.0));
        let sev = |v| bounds.check(1, v).unwrap().severity;
        assert_eq!(sev(105.0), Severity::Medium); // 5 %
        assert_eq!(sev(110.0), Severity::High); // 10 %
        assert_eq!(sev(119.9), Severity::High);
        assert_eq!(sev(120.0), Severity::Critical); // 20 %
        let br = bounds.check(7, 105.0).unwrap();
        assert_eq!(br.breach_type, BreachType::AboveMaximum);
        assert_eq!(br.threshold_value, 100.0);
        assert_eq!(br.reading_id, 7);
    }

    #[test]
    fn below_minimum_severities() {
        let bounds = b(Some(50.0), None);
        let sev = |v| bounds.check(1, v).unwrap().severity;
        assert_eq!(sev(49.0), Severity::Medium);
        assert_eq!(sev(45.0), Severity::High);
        assert_eq!(sev(40.0), Severity::Critical);
        assert_eq!(
            bounds.check(1, 49.0).unwrap().breach_type,
            BreachType::BelowMinimum
        );
    }

    #[test]
    fn negative_thresholds_use_magnitude() {
        let bounds = b(Some(-20.0), Some(-10.0));
        // 1 below -20 => 5 % of 20
        assert_eq!(bounds.check(1, -21.0).unwrap().severity, Severity::Medium);
        // 2 above -10 => 20 % of 10
        assert_eq!(bounds.check(1, -8.0).unwrap().severity, Severity::Critical);
    }

    #[test]
    fn zero_threshold_falls_back_to_span_then_one() {
        let bounds = b(Some(-10.0), Some(0.0));
        // span 10: 0.5 over => 5 %
        assert_eq!(bounds.check(1, 0.5).unwrap().severity, Severity::Medium);
        assert_eq!(bounds.check(1, 1.5).unwrap().severity, Severity::High);
        let only_max = b(None, Some(0.0));
        assert_eq!(only_max.check(1, 0.05).unwrap().severity, Severity::Medium);
        assert_eq!(only_max.check(1, 0.1).unwrap().severity, Severity::High);
        assert_eq!(only_max.check(1, 0.2).unwrap().severity, Severity::Critical);
        let degenerate = b(Some(0.0), Some(0.0));
        assert_eq!(degenerate.scale(0.0), 1.0);
    }

    #[test]
    fn nan_is_skipped_inf_is_critical() {
        let bounds = b(Some(0.0), Some(10.0));
        assert_eq!(bounds.check(1, f64::NAN), None);
        assert_eq!(
            bounds.check(1, f64::INFINITY).unwrap().severity,
            Severity::Critical
        );
        assert_eq!(
            bounds.check(1, f64::NEG_INFINITY).unwrap().breach_type,
            BreachType::BelowMinimum
        );
    }

    #[test]
    fn no_thresholds_no_alerts() {
        let bounds = b(None, None);
        assert!(bounds.check_all([(1, 1e300), (2, -1e300)]).is_empty());
    }

    #[test]
    fn invalid_bounds_are_rejected() {
        assert!(matches!(
            Bounds::new(Some(f64::NAN), None),
            Err(BoundsError::NotFinite {
                which: "min_threshold",
                ..
            })
        ));
        assert!(matches!(
            Bounds::new(None, Some(f64::INFINITY)),
            Err(BoundsError::NotFinite {
                which: "max_threshold",
                ..
            })
        ));
        let err = Bounds::new(Some(2.0), Some(1.0)).unwrap_err();
        assert!(err.to_string().contains("must not be greater"));
        assert!(Bounds::new(Some(1.0), Some(1.0)).is_ok());
    }

    #[test]
    fn check_all_keeps_order_and_ids() {
        let bounds = b(Some(15.0), Some(85.0));
        let got = bounds.check_all([(1, 75.0), (2, 95.0), (3, 10.0), (4, f64::NAN)]);
        let ids: Vec<i64> = got.iter().map(|a| a.reading_id).collect();
        assert_eq!(ids, vec![2, 3]);
        assert_eq!(got[0].severity, Severity::High); // 10/85 = 11.8 %
        assert_eq!(got[1].severity, Severity::Critical); // 5/15 = 33 %
    }

    #[test]
    fn names_round_trip() {
        for s in [Severity::Medium, Severity::High, Severity::Critical] {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        for t in [BreachType::AboveMaximum, BreachType::BelowMinimum] {
            assert_eq!(BreachType::parse(t.as_str()), Some(t));
        }
        assert_eq!(Severity::parse("low"), None);
    }
}

//! The hub's alert rules (the seeds' AlertRule) for one sensor, evaluated at the edge.
//!
//! A sensor may have several rules (`GREATER_THAN 80 WARNING`, `GREATER_THAN 95 CRITICAL`,
//! `LESS_THAN 5 INFO`, `OUT_OF_RANGE [10, 90]` ...). Together they make ONE alert per sensor
//! (`rule = "rule"`), whose severity is that of the most severe rule firing now:
//!
//! * A rule *fires* once its condition has held for `delay_s` seconds of reading time (an
//!   on-delay: the first breaching reading starts the clock, any reading inside the condition
//!   stops it; `delay_s = 0` fires on the first breaching reading).
//! * A firing rule stops firing when a reading is back past its threshold by `deadband`
//!   (`GREATER_THAN t`: `value <= t - deadband`; `LESS_THAN t`: `value >= t + deadband`;
//!   `OUT_OF_RANGE`: inside `[t + deadband, t_high - deadband]`). Between the threshold and
//!   the deadband it keeps firing (no chattering).
//! * The alert opens when the first rule fires, moves in place (an `update` event) when the
//!   most severe firing rule changes - up (escalation) or down (de-escalation) - and closes
//!   when none fires. Its `value` is the reading behind its last event; `threshold_value` and
//!   `breach_type` are those of the rule that decides the severity.
//!
//! Severities are `info` < `warning` < `critical`. Ties between firing rules of the same
//! severity go to the rule listed first.

use crate::core::{Bounds, BreachType, Severity};
use crate::rules::RuleError;

/// What a rule compares: above, below, or outside a band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    GreaterThan,
    LessThan,
    OutOfRange,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::GreaterThan => "GREATER_THAN",
            Condition::LessThan => "LESS_THAN",
            Condition::OutOfRange => "OUT_OF_RANGE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "GREATER_THAN" => Some(Condition::GreaterThan),
            "LESS_THAN" => Some(Condition::LessThan),
            "OUT_OF_RANGE" => Some(Condition::OutOfRange),
            _ => None,
        }
    }
}

/// One validated alert rule of a sensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    condition: Condition,
    threshold: f64,
    threshold_high: Option<f64>,
    bounds: Bounds,
    severity: Severity,
    deadband: f64,
    delay_s: f64,
    /// The hub's id of the rule (None: a rule that came without one). The alert names the
    /// rule that decides it, so two rules alike in severity and threshold stay apart.
    id: Option<i64>,
}

fn finite(name: &'static str, v: f64) -> Result<f64, RuleError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(RuleError::Level(format!(
            "{name} must be a finite number (got {v})"
        )))
    }
}

impl Level {
    pub fn new(
        condition: Condition,
        threshold: f64,
        threshold_high: Option<f64>,
        severity: Severity,
        deadband: f64,
        delay_s: f64,
    ) -> Result<Self, RuleError> {
        let threshold = finite("threshold", threshold)?;
        if !matches!(
            severity,
            Severity::Info | Severity::Warning | Severity::Critical
        ) {
            return Err(RuleError::Level(format!(
                "severity must be info, warning or critical (got {})",
                severity.as_str()
            )));
        }
        if !deadband.is_finite() || deadband < 0.0 {
            return Err(RuleError::Deadband(deadband));
        }
        if !delay_s.is_finite() || delay_s < 0.0 {
            return Err(RuleError::Level(format!(
                "delay_s must be a finite number >= 0 (got {delay_s})"
            )));
        }
        let (min, max) = match (condition, threshold_high) {
            (Condition::GreaterThan, None) => (None, Some(threshold)),
            (Condition::LessThan, None) => (Some(threshold), None),
            (Condition::OutOfRange, Some(high)) => {
                let high = finite("threshold_high", high)?;
                if threshold >= high {
                    return Err(RuleError::Level(format!(
                        "OUT_OF_RANGE needs threshold < threshold_high (got {threshold} >= {high})"
                    )));
                }
                if threshold + deadband > high - deadband {
                    return Err(RuleError::EmptyClearBand {
                        min: threshold,
                        max: high,
                        deadband,
                    });
                }
                (Some(threshold), Some(high))
            }
            (Condition::OutOfRange, None) => {
                return Err(RuleError::Level(
                    "OUT_OF_RANGE needs threshold_high".to_owned(),
                ))
            }
            (c, Some(_)) => {
                return Err(RuleError::Level(format!(
                    "only OUT_OF_RANGE takes threshold_high, not {}",
                    c.as_str()
                )))
            }
        };
        let bounds = Bounds::new(min, max).map_err(RuleError::Bounds)?;
        Ok(Level {
            condition,
            threshold,
            threshold_high,
            bounds,
            severity,
            deadband,
            delay_s,
            id: None,
        })
    }

    /// The same rule with the hub's id.
    pub fn with_id(mut self, id: Option<i64>) -> Self {
        self.id = id;
        self
    }
    pub fn id(&self) -> Option<i64> {
        self.id
    }

    pub fn condition(&self) -> Condition {
        self.condition
    }
    pub fn threshold(&self) -> f64 {
        self.threshold
    }
    pub fn threshold_high(&self) -> Option<f64> {
        self.threshold_high
    }
    pub fn severity(&self) -> Severity {
        self.severity
    }
    pub fn deadband(&self) -> f64 {
        self.deadband
    }
    pub fn delay_s(&self) -> f64 {
        self.delay_s
    }

    /// The side breached and the threshold crossed, if `value` meets the condition.
    fn breach(&self, value: f64) -> Option<(BreachType, f64)> {
        self.bounds
            .check(0, value)
            .map(|b| (b.breach_type, b.threshold_value))
    }

    /// Back past the threshold by the deadband.
    fn is_clear(&self, value: f64) -> bool {
        self.bounds
            .min()
            .is_none_or(|lo| value >= lo + self.deadband)
            && self
                .bounds
                .max()
                .is_none_or(|hi| value <= hi - self.deadband)
    }
}

/// Where one rule of a sensor stands.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LevelState {
    firing: Option<(BreachType, f64)>,
    /// Time of the first reading of the current breach (for the on-delay).
    pending_since: Option<f64>,
}

/// Advance every rule of a sensor by one reading. Returns the most severe firing rule as
/// (index, side, threshold crossed), ties to the first listed.
pub fn step(
    levels: &[Level],
    states: &mut Vec<LevelState>,
    ts: f64,
    value: f64,
) -> Option<(usize, BreachType, f64)> {
    states.resize(levels.len(), LevelState::default());
    let mut best: Option<(usize, BreachType, f64)> = None;
    for (i, (level, st)) in levels.iter().zip(states.iter_mut()).enumerate() {
        match level.breach(value) {
            Some(b) => {
                if st.firing.is_some() {
                    st.firing = Some(b); // OUT_OF_RANGE may cross from one side to the other
                } else {
                    let since = *st.pending_since.get_or_insert(ts);
                    if ts - since >= level.delay_s {
                        st.firing = Some(b);
                    }
                }
            }
            None => {
                st.pending_since = None;
                if st.firing.is_some() && level.is_clear(value) {
                    st.firing = None;
                }
            }
        }
        if let Some((side, threshold)) = st.firing {
            if best.is_none_or(|(j, _, _)| level.severity > levels[j].severity) {
                best = Some((i, side, threshold));
            }
        }
    }
    best
}

/// After a restart or a rule change with an alert open at `severity`: the rules of that
/// severity count as firing (so an on-delay does not close the excursion in progress), the
/// others start afresh. The next reading settles which really fire.
pub fn resume(levels: &[Level], severity: Option<Severity>, value: f64) -> Vec<LevelState> {
    levels
        .iter()
        .map(|l| LevelState {
            firing: (Some(l.severity) == severity)
                .then(|| l.breach(value).unwrap_or((side_of(l), threshold_of(l)))),
            pending_since: None,
        })
        .collect()
}

fn side_of(l: &Level) -> BreachType {
    match l.condition {
        Condition::LessThan => BreachType::BelowMinimum,
        _ => BreachType::AboveMaximum,
    }
}

fn threshold_of(l: &Level) -> f64 {
    match (l.condition, l.threshold_high) {
        (Condition::OutOfRange, Some(h)) => h,
        _ => l.threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lvl(c: Condition, t: f64, h: Option<f64>, s: Severity, db: f64, delay: f64) -> Level {
        Level::new(c, t, h, s, db, delay).unwrap()
    }

    #[test]
    fn validation() {
        use Condition::*;
        use Severity::*;
        assert!(Level::new(OutOfRange, 10.0, None, Warning, 0.0, 0.0).is_err());
        assert!(Level::new(OutOfRange, 10.0, Some(10.0), Warning, 0.0, 0.0).is_err());
        assert!(Level::new(OutOfRange, 0.0, Some(10.0), Warning, 6.0, 0.0).is_err());
        assert!(Level::new(GreaterThan, 1.0, Some(5.0), Warning, 0.0, 0.0).is_err());
        assert!(Level::new(GreaterThan, f64::INFINITY, None, Warning, 0.0, 0.0).is_err());
        assert!(Level::new(GreaterThan, 1.0, None, Warning, -1.0, 0.0).is_err());
        assert!(Level::new(GreaterThan, 1.0, None, Warning, 0.0, f64::NAN).is_err());
        assert!(Level::new(GreaterThan, 1.0, None, Medium, 0.0, 0.0).is_err());
        assert!(Level::new(OutOfRange, 0.0, Some(10.0), Info, 5.0, 1.0).is_ok());
    }

    #[test]
    fn on_delay_needs_the_condition_to_hold() {
        let levels = [lvl(
            Condition::GreaterThan,
            80.0,
            None,
            Severity::Warning,
            0.0,
            10.0,
        )];
        let mut st = Vec::new();
        assert!(step(&levels, &mut st, 0.0, 90.0).is_none()); // clock starts
        assert!(step(&levels, &mut st, 5.0, 90.0).is_none());
        assert!(step(&levels, &mut st, 6.0, 70.0).is_none()); // back inside: clock stops
        assert!(step(&levels, &mut st, 7.0, 90.0).is_none()); // starts again
        assert!(step(&levels, &mut st, 16.0, 90.0).is_none());
        assert_eq!(
            step(&levels, &mut st, 17.0, 90.0),
            Some((0, BreachType::AboveMaximum, 80.0))
        );
    }

    #[test]
    fn deadband_holds_until_back_past_it() {
        let levels = [lvl(
            Condition::LessThan,
            10.0,
            None,
            Severity::Info,
            2.0,
            0.0,
        )];
        let mut st = Vec::new();
        assert!(step(&levels, &mut st, 0.0, 9.0).is_some());
        assert!(step(&levels, &mut st, 1.0, 11.0).is_some()); // inside the deadband
        assert!(step(&levels, &mut st, 2.0, 12.0).is_none());
    }

    #[test]
    fn most_severe_firing_rule_wins_both_ways() {
        let levels = [
            lvl(
                Condition::GreaterThan,
                80.0,
                None,
                Severity::Warning,
                0.0,
                0.0,
            ),
            lvl(
                Condition::GreaterThan,
                95.0,
                None,
                Severity::Critical,
                0.0,
                0.0,
            ),
        ];
        let mut st = Vec::new();
        assert_eq!(step(&levels, &mut st, 0.0, 85.0).map(|b| b.0), Some(0));
        assert_eq!(step(&levels, &mut st, 1.0, 99.0).map(|b| b.0), Some(1));
        assert_eq!(
            step(&levels, &mut st, 2.0, 90.0),
            Some((0, BreachType::AboveMaximum, 80.0))
        );
        assert!(step(&levels, &mut st, 3.0, 50.0).is_none());
    }

    #[test]
    fn resume_keeps_an_open_severity_firing() {
        let levels = [lvl(
            Condition::GreaterThan,
            80.0,
            None,
            Severity::Warning,
            0.0,
            60.0,
        )];
        let mut st = resume(&levels, Some(Severity::Warning), 90.0);
        assert!(step(&levels, &mut st, 0.0, 90.0).is_some()); // no new on-delay
        let mut st = resume(&levels, None, 90.0);
        assert!(step(&levels, &mut st, 0.0, 90.0).is_none());
    }
}

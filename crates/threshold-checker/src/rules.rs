//! Stateful alert rules (pure Rust): per-sensor thresholds with a deadband, a clear count and
//! a rate-of-change limit, turned into an alert *lifecycle* (open → update → close) instead of
//! one alert per breaching reading.
//!
//! # Threshold rule (`rule = "threshold"`)
//!
//! * Opens when a reading breaches `max` (`value > max`, `above_maximum`) or `min`
//!   (`value < min`, `below_minimum`), as [`crate::core::Bounds::check`] decides.
//! * While open, the alert keeps its worst value (the highest above the maximum, the lowest
//!   below the minimum) and its severity (from the worst value, same formula as
//!   `check_thresholds`); an `update` event is emitted each time the severity escalates.
//! * It closes after `clear_count` *consecutive* readings inside the clear band
//!   `[min + deadband, max - deadband]` (a missing bound is unbounded on that side). A reading
//!   in the hysteresis zone (between the clear band and the threshold) or a new breach resets
//!   the count. One excursion is one alert.
//! * A reading that breaches the *other* side closes the open alert and opens a new one.
//!
//! # Rate-of-change rule (`rule = "rate_of_change"`)
//!
//! * `rate = |value - prev_value| / (ts - prev_ts)` (units per second) against the previous
//!   reading of the same sensor; evaluated only when `ts > prev_ts` (readings that are older
//!   than or as old as the newest one seen are ignored by this rule).
//! * Opens when `rate > max_rate` (`breach_type = "rate_of_change"`,
//!   `threshold_value = max_rate`, `value` = the worst rate); closes after `clear_count`
//!   consecutive evaluations with `rate <= max_rate`. Severity as for thresholds, with
//!   `max_rate` as the threshold.
//!
//! NaN values are ignored by every rule. Readings of sensors without a rule are skipped.
//!
//! # Sensor keys and patterns
//!
//! Rules are keyed by sensor key `line/machine/sensor`. A key may use `+` for a whole level
//! (`+/+/temp`); an exact key wins over a pattern, and among patterns the one with the fewest
//! `+` wins (ties: the lexicographically smallest pattern, so the choice is deterministic).

use std::collections::HashMap;
use std::fmt;

use crate::core::{Bounds, BoundsError, BreachType, Severity};
use crate::levels::{self, Level, LevelState};

/// Which rule raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleKind {
    Threshold,
    RateOfChange,
    /// The hub's alert rules of a sensor, as one alert (crate::levels).
    Level,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Threshold => "threshold",
            RuleKind::RateOfChange => "rate_of_change",
            RuleKind::Level => "rule",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "threshold" => Some(RuleKind::Threshold),
            "rate_of_change" => Some(RuleKind::RateOfChange),
            "rule" => Some(RuleKind::Level),
            _ => None,
        }
    }
}

/// What an alert is about: a threshold side, or a rate of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertBreach {
    Threshold(BreachType),
    RateOfChange,
    /// A hub alert rule's side (GREATER_THAN: above, LESS_THAN: below, OUT_OF_RANGE: either).
    Level(BreachType),
}

impl AlertBreach {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertBreach::Threshold(b) | AlertBreach::Level(b) => b.as_str(),
            AlertBreach::RateOfChange => "rate_of_change",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        if s == "rate_of_change" {
            return Some(AlertBreach::RateOfChange);
        }
        BreachType::parse(s).map(AlertBreach::Threshold)
    }

    pub fn rule(self) -> RuleKind {
        match self {
            AlertBreach::Threshold(_) => RuleKind::Threshold,
            AlertBreach::RateOfChange => RuleKind::RateOfChange,
            AlertBreach::Level(_) => RuleKind::Level,
        }
    }
}

/// Lifecycle step of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Open,
    Update,
    Close,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Open => "open",
            EventKind::Update => "update",
            EventKind::Close => "close",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(EventKind::Open),
            "update" => Some(EventKind::Update),
            "close" => Some(EventKind::Close),
            _ => None,
        }
    }
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleError {
    Bounds(BoundsError),
    Deadband(f64),
    ClearCount(i64),
    MaxRate(f64),
    EmptyClearBand {
        min: f64,
        max: f64,
        deadband: f64,
    },
    Key(String),
    /// A hub alert rule (crate::levels) that does not hold together.
    Level(String),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::Bounds(e) => write!(f, "{}", e.to_string().replace("_threshold", "")),
            RuleError::Deadband(v) => {
                write!(f, "deadband must be a finite number >= 0 (got {v})")
            }
            RuleError::ClearCount(v) => write!(f, "clear_count must be >= 1 (got {v})"),
            RuleError::MaxRate(v) => {
                write!(f, "max_rate must be a finite number > 0 or None (got {v})")
            }
            RuleError::EmptyClearBand { min, max, deadband } => write!(
                f,
                "deadband {deadband} leaves no clear band between min {min} and max {max} \
                 (need min + deadband <= max - deadband)"
            ),
            RuleError::Level(m) => write!(f, "{m}"),
            RuleError::Key(k) => write!(
                f,
                "rule key {k:?} must be line/machine/sensor (each level a name or '+')"
            ),
        }
    }
}

impl std::error::Error for RuleError {}

/// A validated rule for one sensor (or a `+` pattern of sensors).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    bounds: Bounds,
    deadband: f64,
    clear_count: u32,
    max_rate: Option<f64>,
}

impl Rule {
    pub fn new(
        min: Option<f64>,
        max: Option<f64>,
        deadband: f64,
        clear_count: i64,
        max_rate: Option<f64>,
    ) -> Result<Self, RuleError> {
        let bounds = Bounds::new(min, max).map_err(RuleError::Bounds)?;
        if !deadband.is_finite() || deadband < 0.0 {
            return Err(RuleError::Deadband(deadband));
        }
        let clear_count = u32::try_from(clear_count)
            .ok()
            .filter(|c| *c >= 1)
            .ok_or(RuleError::ClearCount(clear_count))?;
        if let Some(r) = max_rate.filter(|r| !r.is_finite() || *r <= 0.0) {
            return Err(RuleError::MaxRate(r));
        }
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo + deadband > hi - deadband {
                return Err(RuleError::EmptyClearBand {
                    min: lo,
                    max: hi,
                    deadband,
                });
            }
        }
        Ok(Rule {
            bounds,
            deadband,
            clear_count,
            max_rate,
        })
    }

    pub fn min(&self) -> Option<f64> {
        self.bounds.min()
    }
    pub fn max(&self) -> Option<f64> {
        self.bounds.max()
    }
    pub fn deadband(&self) -> f64 {
        self.deadband
    }
    pub fn clear_count(&self) -> u32 {
        self.clear_count
    }
    pub fn max_rate(&self) -> Option<f64> {
        self.max_rate
    }

    /// Inside `[min + deadband, max - deadband]`.
    fn is_clear(&self, value: f64) -> bool {
        self.min().is_none_or(|lo| value >= lo + self.deadband)
            && self.max().is_none_or(|hi| value <= hi - self.deadband)
    }
}

/// An alert that is open (what the engine keeps per sensor and rule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenAlert {
    pub breach: AlertBreach,
    pub severity: Severity,
    pub threshold_value: f64,
    /// Worst value while open (for rate alerts: the worst rate).
    pub value: f64,
    pub opened_at: f64,
    pub reading_seq: Option<i64>,
    /// A rule alert's: the hub's id of the rule that decides it now (None for threshold and
    /// rate alerts, and for rules without an id).
    pub rule_id: Option<i64>,
}

/// One step of an alert's lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub key: String,
    pub alert: OpenAlert,
    /// Time of the reading that caused this event.
    pub ts: f64,
    /// The reading that caused this event (None: the reading has no seq, or a rule change).
    pub reading_seq: Option<i64>,
}

#[derive(Debug, Clone, Default)]
struct Track {
    open: Option<OpenAlert>,
    clear_run: u32,
}

#[derive(Debug, Clone)]
struct SensorState {
    rule: Option<Rule>,
    threshold: Track,
    rate: Track,
    /// The one alert of the sensor's hub rules, and where each of those rules stands.
    level: Track,
    level_states: Vec<LevelState>,
    last: Option<(f64, f64)>, // (ts, value) of the newest reading
}

impl SensorState {
    fn new(rule: Option<Rule>) -> Self {
        SensorState {
            rule,
            threshold: Track::default(),
            rate: Track::default(),
            level: Track::default(),
            level_states: Vec::new(),
            last: None,
        }
    }

    fn idle(&self) -> bool {
        self.threshold.open.is_none() && self.rate.open.is_none() && self.level.open.is_none()
    }
}

/// One reading as the engine scans it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Input<'a> {
    pub seq: Option<i64>,
    pub key: &'a str,
    pub ts: f64,
    pub value: f64,
}

fn valid_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && (*p == "+" || !p.contains('+')) && !p.contains('#'))
}

fn matches(pattern: &str, key: &str) -> bool {
    let mut k = key.split('/');
    for p in pattern.split('/') {
        match k.next() {
            Some(part) if p == "+" || p == part => {}
            _ => return false,
        }
    }
    k.next().is_none()
}

/// The alert state machine for many sensors.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    exact: HashMap<String, Rule>,
    /// (pattern, rule) sorted by specificity: fewest '+' first, then by pattern.
    patterns: Vec<(String, Rule)>,
    /// The hub's alert rules, by exact sensor key (crate::levels).
    levels: HashMap<String, Vec<Level>>,
    sensors: HashMap<String, SensorState>,
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Validate a key (exact or `+` pattern).
    pub fn check_key(key: &str) -> Result<(), RuleError> {
        if valid_key(key) {
            Ok(())
        } else {
            Err(RuleError::Key(key.to_owned()))
        }
    }

    /// The rule that applies to `key`, if any.
    pub fn resolve(&self, key: &str) -> Option<Rule> {
        if let Some(r) = self.exact.get(key) {
            return Some(*r);
        }
        self.patterns
            .iter()
            .find(|(p, _)| matches(p, key))
            .map(|(_, r)| *r)
    }

    pub fn rules(&self) -> impl Iterator<Item = (&str, &Rule)> {
        self.exact
            .iter()
            .map(|(k, r)| (k.as_str(), r))
            .chain(self.patterns.iter().map(|(k, r)| (k.as_str(), r)))
    }

    /// Replace every rule. Open alerts whose rule is gone (no rule for the sensor any more,
    /// the breached bound removed, no `max_rate` any more) are closed; the close events are
    /// returned, stamped with the sensor's newest reading time (else the alert's opening
    /// time). Open alerts whose rule only changed stay open and close by the new rule.
    pub fn set_rules(&mut self, rules: Vec<(String, Rule)>) -> Result<Vec<Event>, RuleError> {
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for (k, r) in rules {
            Self::check_key(&k)?;
            if k.contains('+') {
                patterns.push((k, r));
            } else {
                exact.insert(k, r);
            }
        }
        patterns.sort_by(|(a, _), (b, _)| {
            let plus = |s: &str| s.bytes().filter(|c| *c == b'+').count();
            plus(a).cmp(&plus(b)).then_with(|| a.cmp(b))
        });
        patterns.dedup_by(|a, b| a.0 == b.0);
        self.exact = exact;
        self.patterns = patterns;
        let mut events = Vec::new();
        let mut keys: Vec<String> = self.sensors.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let rule = self.resolve(&key);
            let state = self.sensors.get_mut(&key).expect("key from the map");
            state.rule = rule;
            let ts_of = |a: &OpenAlert, last: Option<(f64, f64)>| last.map_or(a.opened_at, |l| l.0);
            if let Some(a) = state.threshold.open {
                let still = match (a.breach, rule) {
                    (AlertBreach::Threshold(BreachType::AboveMaximum), Some(r)) => {
                        r.max().is_some()
                    }
                    (AlertBreach::Threshold(BreachType::BelowMinimum), Some(r)) => {
                        r.min().is_some()
                    }
                    _ => false,
                };
                if !still {
                    state.threshold = Track::default();
                    events.push(close(&key, a, ts_of(&a, state.last), None));
                }
            }
            if let Some(a) = state.rate.open {
                if rule.and_then(|r| r.max_rate).is_none() {
                    state.rate = Track::default();
                    events.push(close(&key, a, ts_of(&a, state.last), None));
                }
            }
            if rule.is_none() && state.idle() && !self.levels.contains_key(&key) {
                self.sensors.remove(&key);
            }
        }
        Ok(events)
    }

    /// Replace every sensor's hub alert rules (exact keys). A sensor whose rules are gone has
    /// its rule alert closed (the close events are returned); a sensor whose rules changed
    /// keeps its open alert, and the new rules decide from its next reading on.
    pub fn set_levels(
        &mut self,
        rules: Vec<(String, Vec<Level>)>,
    ) -> Result<Vec<Event>, RuleError> {
        let mut next = HashMap::new();
        for (key, list) in rules {
            if !valid_key(&key) || key.contains('+') {
                return Err(RuleError::Key(key));
            }
            if !list.is_empty() {
                next.insert(key, list);
            }
        }
        self.levels = next;
        let mut events = Vec::new();
        let mut keys: Vec<String> = self.sensors.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let hub_rules = self.levels.get(&key);
            let state = self.sensors.get_mut(&key).expect("key from the map");
            match (state.level.open, hub_rules) {
                (Some(a), None) => {
                    state.level = Track::default();
                    state.level_states.clear();
                    let ts = state.last.map_or(a.opened_at, |l| l.0);
                    events.push(close(&key, a, ts, None));
                }
                (open, Some(list)) => {
                    let value = state.last.map_or(0.0, |l| l.1);
                    state.level_states = levels::resume(list, open.map(|a| a.severity), value);
                }
                (None, None) => state.level_states.clear(),
            }
            if state.rule.is_none() && state.idle() && hub_rules.is_none() {
                self.sensors.remove(&key);
            }
        }
        Ok(events)
    }

    /// The hub alert rules, by sensor key.
    pub fn levels(&self) -> impl Iterator<Item = (&str, &[Level])> {
        self.levels.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Alerts open now, sorted by key then rule.
    pub fn open_alerts(&self) -> Vec<(String, OpenAlert)> {
        let mut out: Vec<(String, OpenAlert)> = self
            .sensors
            .iter()
            .flat_map(|(k, s)| {
                [s.threshold.open, s.rate.open, s.level.open]
                    .into_iter()
                    .flatten()
                    .map(move |a| (k.clone(), a))
            })
            .collect();
        out.sort_by(|(ka, a), (kb, b)| {
            ka.cmp(kb)
                .then_with(|| a.breach.rule().cmp(&b.breach.rule()))
        });
        out
    }

    /// Put back alerts that were open (e.g. before a restart), so that the excursion in
    /// progress stays one alert. Replaces what is open for that sensor and rule.
    pub fn restore(&mut self, key: &str, alert: OpenAlert) -> Result<(), RuleError> {
        if !valid_key(key) || key.contains('+') {
            return Err(RuleError::Key(key.to_owned()));
        }
        let rule = self.resolve(key);
        let state = self
            .sensors
            .entry(key.to_owned())
            .or_insert_with(|| SensorState::new(rule));
        let track = match alert.breach.rule() {
            RuleKind::Threshold => &mut state.threshold,
            RuleKind::RateOfChange => &mut state.rate,
            RuleKind::Level => {
                let rules = self.levels.get(key).map_or(&[][..], |v| &v[..]);
                state.level_states = levels::resume(rules, Some(alert.severity), alert.value);
                &mut state.level
            }
        };
        *track = Track {
            open: Some(alert),
            clear_run: 0,
        };
        Ok(())
    }

    /// Forget every open alert and every sensor's history (rules stay).
    pub fn reset(&mut self) {
        self.sensors.clear();
    }

    /// Run readings (in order) through the rules; returns the lifecycle events in order.
    pub fn process<'a, I>(&mut self, readings: I) -> Vec<Event>
    where
        I: IntoIterator<Item = Input<'a>>,
    {
        let mut events = Vec::new();
        for r in readings {
            self.process_one(r, &mut events);
        }
        events
    }

    fn state_for(&mut self, key: &str) -> Option<&mut SensorState> {
        if !self.sensors.contains_key(key) {
            let rule = self.resolve(key);
            if rule.is_none() && !self.levels.contains_key(key) {
                return None;
            }
            self.sensors.insert(key.to_owned(), SensorState::new(rule));
        }
        self.sensors.get_mut(key)
    }

    fn process_one(&mut self, r: Input<'_>, events: &mut Vec<Event>) {
        if r.value.is_nan() || r.ts.is_nan() {
            return;
        }
        if self.state_for(r.key).is_none() {
            return;
        }
        let state = self.sensors.get_mut(r.key).expect("made by state_for");
        if let Some(hub_rules) = self.levels.get(r.key) {
            level_step(hub_rules, state, r, events);
        }
        // Without a rule: an alert restored for a sensor without one waits for set_rules.
        if let Some(rule) = state.rule {
            threshold_step(&rule, &mut state.threshold, r, events);
            if let Some(max_rate) = rule.max_rate {
                if let Some((pts, pv)) = state.last {
                    if r.ts > pts {
                        let rate = ((r.value - pv) / (r.ts - pts)).abs();
                        if !rate.is_nan() {
                            rate_step(&rule, max_rate, &mut state.rate, rate, r, events);
                        }
                    }
                }
            }
        }
        if state.last.is_none_or(|(pts, _)| r.ts > pts) {
            state.last = Some((r.ts, r.value));
        }
    }
}

fn close(key: &str, alert: OpenAlert, ts: f64, seq: Option<i64>) -> Event {
    Event {
        kind: EventKind::Close,
        key: key.to_owned(),
        alert,
        ts,
        reading_seq: seq,
    }
}

fn emit(events: &mut Vec<Event>, kind: EventKind, key: &str, alert: OpenAlert, r: Input<'_>) {
    events.push(Event {
        kind,
        key: key.to_owned(),
        alert,
        ts: r.ts,
        reading_seq: r.seq,
    });
}

fn worse(breach: AlertBreach, candidate: f64, current: f64) -> bool {
    match breach {
        AlertBreach::Threshold(BreachType::BelowMinimum) => candidate < current,
        _ => candidate > current,
    }
}

fn threshold_step(rule: &Rule, track: &mut Track, r: Input<'_>, events: &mut Vec<Event>) {
    let breach = rule.bounds.check(r.seq.unwrap_or(0), r.value);
    match (track.open.as_mut(), breach) {
        (Some(open), Some(b)) if open.breach == AlertBreach::Threshold(b.breach_type) => {
            track.clear_run = 0;
            if worse(open.breach, r.value, open.value) {
                open.value = r.value;
                let severity = rule.bounds.severity(r.value, open.threshold_value);
                if severity > open.severity {
                    open.severity = severity;
                    let snapshot = *open;
                    emit(events, EventKind::Update, r.key, snapshot, r);
                }
            }
        }
        (open, Some(b)) => {
            if let Some(prev) = open {
                // The other side: this excursion ends, a new one starts.
                let prev = *prev;
                events.push(close(r.key, prev, r.ts, r.seq));
            }
            let alert = OpenAlert {
                breach: AlertBreach::Threshold(b.breach_type),
                severity: b.severity,
                threshold_value: b.threshold_value,
                value: r.value,
                opened_at: r.ts,
                reading_seq: r.seq,
                rule_id: None,
            };
            *track = Track {
                open: Some(alert),
                clear_run: 0,
            };
            emit(events, EventKind::Open, r.key, alert, r);
        }
        (Some(open), None) => {
            if rule.is_clear(r.value) {
                track.clear_run += 1;
                if track.clear_run >= rule.clear_count {
                    let prev = *open;
                    *track = Track::default();
                    events.push(close(r.key, prev, r.ts, r.seq));
                }
            } else {
                track.clear_run = 0; // in the hysteresis zone
            }
        }
        (None, None) => {}
    }
}

/// The sensor's hub rules on one reading: open, move in place (either way), or close the
/// sensor's one rule alert (crate::levels has the semantics).
fn level_step(hub_rules: &[Level], state: &mut SensorState, r: Input<'_>, events: &mut Vec<Event>) {
    let best = levels::step(hub_rules, &mut state.level_states, r.ts, r.value);
    let track = &mut state.level;
    match (track.open.as_mut(), best) {
        (None, None) => {}
        (Some(open), None) => {
            let mut prev = *open;
            prev.value = r.value;
            *track = Track::default();
            events.push(close(r.key, prev, r.ts, r.seq));
        }
        (None, Some((i, side, threshold))) => {
            let alert = OpenAlert {
                breach: AlertBreach::Level(side),
                severity: hub_rules[i].severity(),
                threshold_value: threshold,
                value: r.value,
                opened_at: r.ts,
                reading_seq: r.seq,
                rule_id: hub_rules[i].id(),
            };
            track.open = Some(alert);
            emit(events, EventKind::Open, r.key, alert, r);
        }
        (Some(open), Some((i, side, threshold))) => {
            let severity = hub_rules[i].severity();
            let rule_id = hub_rules[i].id();
            if severity != open.severity
                || open.breach != AlertBreach::Level(side)
                || open.threshold_value != threshold
                || open.rule_id != rule_id
            {
                open.severity = severity;
                open.breach = AlertBreach::Level(side);
                open.threshold_value = threshold;
                open.rule_id = rule_id;
                open.value = r.value;
                let snapshot = *open;
                emit(events, EventKind::Update, r.key, snapshot, r);
            }
        }
    }
}

fn rate_step(
    rule: &Rule,
    max_rate: f64,
    track: &mut Track,
    rate: f64,
    r: Input<'_>,
    events: &mut Vec<Event>,
) {
    let severity = |v: f64| rule_severity(v, max_rate);
    if rate > max_rate {
        track.clear_run = 0;
        match track.open.as_mut() {
            Some(open) => {
                if rate > open.value {
                    open.value = rate;
                    let s = severity(rate);
                    if s > open.severity {
                        open.severity = s;
                        let snapshot = *open;
                        emit(events, EventKind::Update, r.key, snapshot, r);
                    }
                }
            }
            None => {
                let alert = OpenAlert {
                    breach: AlertBreach::RateOfChange,
                    severity: severity(rate),
                    threshold_value: max_rate,
                    value: rate,
                    opened_at: r.ts,
                    reading_seq: r.seq,
                    rule_id: None,
                };
                track.open = Some(alert);
                emit(events, EventKind::Open, r.key, alert, r);
            }
        }
    } else if let Some(open) = track.open {
        track.clear_run += 1;
        if track.clear_run >= rule.clear_count {
            *track = Track::default();
            events.push(close(r.key, open, r.ts, r.seq));
        }
    }
}

/// Severity of a rate against `max_rate` (> 0): the threshold formula with scale `max_rate`.
pub fn rule_severity(rate: f64, max_rate: f64) -> Severity {
    Severity::from_excess((rate - max_rate).abs() / max_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(min: Option<f64>, max: Option<f64>, deadband: f64, clear: i64) -> Rule {
        Rule::new(min, max, deadband, clear, None).unwrap()
    }

    fn engine(rules: &[(&str, Rule)]) -> Engine {
        let mut e = Engine::new();
        let closed = e
            .set_rules(rules.iter().map(|(k, r)| (k.to_string(), *r)).collect())
            .unwrap();
        assert!(closed.is_empty());
        e
    }

    fn feed(e: &mut Engine, key: &str, values: &[f64]) -> Vec<Event> {
        let inputs: Vec<Input<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Input {
                seq: Some(i as i64 + 1),
                key,
                ts: i as f64,
                value: *v,
            })
            .collect();
        e.process(inputs)
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind.as_str()).collect()
    }

    #[test]
    fn one_excursion_is_one_alert() {
        let mut e = engine(&[("l/m/t", rule(Some(0.0), Some(100.0), 5.0, 3))]);
        let mut vals = vec![50.0, 50.0];
        vals.extend([101.0; 10]);
        vals.extend([50.0; 5]);
        let ev = feed(&mut e, "l/m/t", &vals);
        assert_eq!(kinds(&ev), vec!["open", "close"]);
        assert_eq!(ev[0].reading_seq, Some(3));
        assert_eq!(ev[0].alert.breach.as_str(), "above_maximum");
        assert_eq!(ev[1].reading_seq, Some(15)); // third clear reading
        assert_eq!(ev[1].alert.opened_at, 2.0);
        assert!(e.open_alerts().is_empty());
    }

    #[test]
    fn hysteresis_zone_resets_the_clear_count() {
        let mut e = engine(&[("l/m/t", rule(None, Some(100.0), 5.0, 2))]);
        // 101 open; 90 clear(1); 97 (zone) resets; 99 zone; 90 clear(1); 101 breach; 90, 90 close
        let ev = feed(
            &mut e,
            "l/m/t",
            &[101.0, 90.0, 97.0, 99.0, 90.0, 101.0, 90.0, 90.0],
        );
        assert_eq!(kinds(&ev), vec!["open", "close"]);
        assert_eq!(ev[1].reading_seq, Some(8));
    }

    #[test]
    fn severity_escalation_updates_and_worst_value_is_kept() {
        let mut e = engine(&[("l/m/t", rule(None, Some(100.0), 0.0, 1))]);
        let ev = feed(&mut e, "l/m/t", &[105.0, 112.0, 108.0, 125.0, 130.0, 50.0]);
        assert_eq!(kinds(&ev), vec!["open", "update", "update", "close"]);
        assert_eq!(ev[1].alert.severity, Severity::High);
        assert_eq!(ev[2].alert.severity, Severity::Critical);
        assert_eq!(ev[3].alert.value, 130.0);
        assert_eq!(ev[3].alert.severity, Severity::Critical);
    }

    #[test]
    fn crossing_to_the_other_side_closes_and_opens() {
        let mut e = engine(&[("l/m/t", rule(Some(0.0), Some(10.0), 1.0, 5))]);
        let ev = feed(&mut e, "l/m/t", &[11.0, -0.5, -0.8]); // medium: 5 %, 8 % of the span
        assert_eq!(kinds(&ev), vec!["open", "close", "open"]);
        assert_eq!(ev[2].alert.breach.as_str(), "below_minimum");
        assert_eq!(e.open_alerts()[0].1.value, -0.8);
    }

    #[test]
    fn rate_of_change() {
        let r = Rule::new(None, None, 0.0, 2, Some(10.0)).unwrap();
        let mut e = engine(&[("l/m/p", r)]);
        // ts 0..6; rates: 0, 10.5 (open, medium), 5 (clear 1), 11.5 (high: update, reset),
        // 0, 0 (close)
        let ev = feed(&mut e, "l/m/p", &[0.0, 0.0, 10.5, 15.5, 27.0, 27.0, 27.0]);
        assert_eq!(kinds(&ev), vec!["open", "update", "close"]);
        assert_eq!(ev[0].alert.breach, AlertBreach::RateOfChange);
        assert_eq!(ev[0].alert.threshold_value, 10.0);
        assert_eq!(ev[0].alert.value, 10.5);
        assert_eq!(ev[0].alert.severity, Severity::Medium);
        assert_eq!(ev[1].alert.severity, Severity::High);
        assert_eq!(ev[2].alert.value, 11.5);
        assert_eq!(ev[2].reading_seq, Some(7));
        // out-of-order/equal timestamps are ignored by the rate rule
        let ev = e.process([
            Input {
                seq: None,
                key: "l/m/p",
                ts: 3.0,
                value: 1e9,
            },
            Input {
                seq: None,
                key: "l/m/p",
                ts: 6.0,
                value: 1e9,
            },
        ]);
        assert!(ev.is_empty());
    }

    #[test]
    fn patterns_and_precedence() {
        let mut e = engine(&[
            ("+/+/temp", rule(None, Some(50.0), 0.0, 1)),
            ("l1/+/temp", rule(None, Some(80.0), 0.0, 1)),
            ("l1/m1/temp", rule(None, Some(100.0), 0.0, 1)),
        ]);
        assert_eq!(e.resolve("l1/m1/temp").unwrap().max(), Some(100.0));
        assert_eq!(e.resolve("l1/m2/temp").unwrap().max(), Some(80.0));
        assert_eq!(e.resolve("l2/m2/temp").unwrap().max(), Some(50.0));
        assert!(e.resolve("l2/m2/rpm").is_none());
        assert_eq!(feed(&mut e, "l2/m2/temp", &[60.0]).len(), 1);
        assert!(feed(&mut e, "l2/m2/rpm", &[1e9]).is_empty());
        assert!(Engine::new()
            .set_rules(vec![("l1/m1".into(), rule(None, None, 0.0, 1))])
            .is_err());
        assert!(Engine::check_key("a/b+/c").is_err());
        assert!(Engine::check_key("a/#/c").is_err());
    }

    #[test]
    fn rule_changes_close_what_lost_its_rule() {
        let both = Rule::new(Some(0.0), Some(10.0), 0.0, 1, Some(1.0)).unwrap();
        let mut e = engine(&[("l/m/a", both), ("l/m/b", both)]);
        feed(&mut e, "l/m/a", &[11.0]);
        feed(&mut e, "l/m/b", &[5.0, 9.0]); // rate 4/s opens a rate alert
        assert_eq!(e.open_alerts().len(), 2);
        // a: only a min now (max gone) -> closed; b: same bounds but no max_rate -> closed
        let ev = e
            .set_rules(vec![
                ("l/m/a".into(), rule(Some(0.0), None, 0.0, 1)),
                ("l/m/b".into(), rule(Some(0.0), Some(10.0), 0.0, 1)),
            ])
            .unwrap();
        assert_eq!(kinds(&ev), vec!["close", "close"]);
        assert_eq!(ev[0].key, "l/m/a");
        assert_eq!(ev[0].ts, 0.0);
        assert_eq!(ev[1].key, "l/m/b");
        assert_eq!(ev[1].ts, 1.0);
        // a changed (not removed) rule keeps the alert open and closes by the new band
        let mut e = engine(&[("l/m/a", rule(None, Some(10.0), 0.0, 1))]);
        feed(&mut e, "l/m/a", &[11.0]);
        assert!(e
            .set_rules(vec![("l/m/a".into(), rule(None, Some(20.0), 0.0, 1))])
            .unwrap()
            .is_empty());
        assert_eq!(kinds(&feed(&mut e, "l/m/a", &[15.0])), vec!["close"]);
        // no rule at all any more
        let mut e = engine(&[("l/m/a", rule(None, Some(10.0), 0.0, 1))]);
        feed(&mut e, "l/m/a", &[11.0]);
        assert_eq!(kinds(&e.set_rules(vec![]).unwrap()), vec!["close"]);
        assert!(e.open_alerts().is_empty());
    }

    #[test]
    fn restore_continues_the_excursion() {
        let r = rule(None, Some(10.0), 0.0, 2);
        let mut e = engine(&[("l/m/a", r)]);
        feed(&mut e, "l/m/a", &[15.0]);
        let open = e.open_alerts();
        let mut fresh = engine(&[("l/m/a", r)]);
        for (k, a) in &open {
            fresh.restore(k, *a).unwrap();
        }
        assert_eq!(fresh.open_alerts(), open);
        // still breaching: no new open; then two clear readings close it
        let ev = feed(&mut fresh, "l/m/a", &[12.0, 5.0, 5.0]);
        assert_eq!(kinds(&ev), vec!["close"]);
        assert_eq!(ev[0].alert.opened_at, 0.0);
        assert!(fresh.restore("l/+/a", open[0].1).is_err());
    }

    fn hub_rules() -> Vec<Level> {
        use crate::levels::Condition::GreaterThan;
        vec![
            Level::new(GreaterThan, 80.0, None, Severity::Warning, 5.0, 0.0).unwrap(),
            Level::new(GreaterThan, 95.0, None, Severity::Critical, 0.0, 2.0).unwrap(),
        ]
    }

    #[test]
    fn hub_rules_make_one_alert_that_moves_in_place() {
        let mut e = Engine::new();
        e.set_levels(vec![("l/m/t".into(), hub_rules())]).unwrap();
        // 85 warning; 99 at ts 2, 3 (on-delay 2 s not yet held); 99 at ts 4: critical;
        // 90: back to warning; 78: inside the deadband, still warning; 74: closed.
        let ev = feed(
            &mut e,
            "l/m/t",
            &[50.0, 85.0, 99.0, 99.0, 99.0, 90.0, 78.0, 74.0],
        );
        assert_eq!(kinds(&ev), vec!["open", "update", "update", "close"]);
        assert_eq!(ev[0].alert.breach.rule(), RuleKind::Level);
        assert_eq!(ev[0].alert.severity, Severity::Warning);
        assert_eq!(ev[0].reading_seq, Some(2));
        assert_eq!(ev[1].alert.severity, Severity::Critical);
        assert_eq!(ev[1].alert.threshold_value, 95.0);
        assert_eq!(ev[1].ts, 4.0);
        assert_eq!(ev[2].alert.severity, Severity::Warning);
        assert_eq!(ev[2].alert.opened_at, 1.0);
        assert_eq!(ev[3].reading_seq, Some(8));
        assert!(e.open_alerts().is_empty());
    }

    #[test]
    fn a_rule_alert_names_the_rule_that_decides_it() {
        use crate::levels::Condition::{GreaterThan, LessThan};
        // Alike in severity and threshold: only their ids tell them apart.
        let above = Level::new(GreaterThan, 80.0, None, Severity::Warning, 0.0, 0.0).unwrap();
        let below = Level::new(LessThan, 80.0, None, Severity::Warning, 0.0, 0.0).unwrap();
        let mut e = Engine::new();
        let levels = vec![above.with_id(Some(11)), below.with_id(Some(12))];
        e.set_levels(vec![("l/m/t".into(), levels)]).unwrap();
        // 90 opens by the first, 80 closes (neither fires), 70 opens by the second, and
        // crossing to 90 moves that alert in place to the first rule.
        let ev = feed(&mut e, "l/m/t", &[90.0, 80.0, 70.0, 90.0]);
        assert_eq!(kinds(&ev), vec!["open", "close", "open", "update"]);
        let ids: Vec<Option<i64>> = ev.iter().map(|x| x.alert.rule_id).collect();
        assert_eq!(ids, vec![Some(11), Some(11), Some(12), Some(11)]);
        assert_eq!(e.open_alerts()[0].1.rule_id, Some(11));
        // threshold alerts name no hub rule
        let mut t = engine(&[("l/m/t", rule(None, Some(5.0), 0.0, 1))]);
        assert_eq!(feed(&mut t, "l/m/t", &[9.0])[0].alert.rule_id, None);
    }

    #[test]
    fn hub_rules_beside_a_threshold_rule_and_their_lifecycle() {
        let mut e = engine(&[("l/m/t", rule(None, Some(200.0), 0.0, 1))]);
        e.set_levels(vec![("l/m/t".into(), hub_rules())]).unwrap();
        let ev = feed(&mut e, "l/m/t", &[85.0, 250.0]);
        let rules: Vec<&str> = ev.iter().map(|x| x.alert.breach.rule().as_str()).collect();
        assert_eq!(kinds(&ev), vec!["open", "open"]);
        assert_eq!(rules, vec!["rule", "threshold"]);
        // restored after a restart, the open rule alert stays one alert
        let open = e.open_alerts();
        let mut fresh = engine(&[("l/m/t", rule(None, Some(200.0), 0.0, 1))]);
        fresh
            .set_levels(vec![("l/m/t".into(), hub_rules())])
            .unwrap();
        for (k, a) in &open {
            fresh.restore(k, *a).unwrap();
        }
        assert!(feed(&mut fresh, "l/m/t", &[150.0])
            .iter()
            .all(|x| x.alert.breach.rule() != RuleKind::Level || x.kind == EventKind::Update));
        // rules gone: the rule alert closes, the threshold one stays
        let closed = fresh.set_levels(vec![]).unwrap();
        assert_eq!(kinds(&closed), vec!["close"]);
        assert_eq!(closed[0].alert.breach.rule(), RuleKind::Level);
        assert_eq!(fresh.open_alerts().len(), 0); // 150 cleared the threshold alert
        assert!(Engine::new()
            .set_levels(vec![("l/+/t".into(), hub_rules())])
            .is_err());
    }

    #[test]
    fn nan_is_ignored() {
        let r = Rule::new(None, Some(10.0), 0.0, 1, Some(1.0)).unwrap();
        let mut e = engine(&[("l/m/a", r)]);
        assert!(feed(&mut e, "l/m/a", &[f64::NAN, 5.0, f64::NAN]).is_empty());
    }

    #[test]
    fn rule_validation() {
        assert!(matches!(
            Rule::new(None, None, -1.0, 1, None),
            Err(RuleError::Deadband(_))
        ));
        assert!(matches!(
            Rule::new(None, None, f64::NAN, 1, None),
            Err(RuleError::Deadband(_))
        ));
        assert!(matches!(
            Rule::new(None, None, 0.0, 0, None),
            Err(RuleError::ClearCount(0))
        ));
        assert!(matches!(
            Rule::new(None, None, 0.0, i64::MAX, None),
            Err(RuleError::ClearCount(_))
        ));
        assert!(matches!(
            Rule::new(None, None, 0.0, 1, Some(0.0)),
            Err(RuleError::MaxRate(_))
        ));
        assert!(matches!(
            Rule::new(Some(0.0), Some(10.0), 5.5, 1, None),
            Err(RuleError::EmptyClearBand { .. })
        ));
        assert!(Rule::new(Some(0.0), Some(10.0), 5.0, 1, None).is_ok());
        let err = Rule::new(Some(2.0), Some(1.0), 0.0, 1, None).unwrap_err();
        assert!(err
            .to_string()
            .contains("min (2) must not be greater than max (1)"));
    }
}

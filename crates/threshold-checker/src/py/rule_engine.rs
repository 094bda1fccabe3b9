//! `RuleEngine`: stateful alerting for many sensors, the Python face of
//! [`crate::rules::Engine`].

use std::collections::HashMap;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyMapping;

use crate::levels::Level;
use crate::py::alert_event::AlertEvent;
use crate::py::alert_rule::AlertRule;
use crate::py::input::{extract_value, field_error, iterate, reading_fields, type_name};
use crate::py::rule::{rule_error, Rule};
use crate::rules::{self, Engine, Event, EventKind, Input};

/// The `rules` argument as (key, rule) pairs, every key checked.
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
        Engine::check_key(&key).map_err(rule_error)?;
        out.push((key, rule.get().inner));
    }
    Ok(out)
}

/// The `rules` argument of `set_alert_rules`: sensor key -> sequence of AlertRule.
fn extract_alert_rules(rules: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Vec<Level>)>> {
    let mapping = rules.cast::<PyMapping>().map_err(|_| {
        PyTypeError::new_err(format!(
            "rules must be a mapping of sensor key -> list of AlertRule, got {}",
            type_name(rules)
        ))
    })?;
    let mut out = Vec::new();
    for pair in mapping.items()?.iter() {
        let (key, list): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
        let key: String = key.extract().map_err(|_| {
            PyTypeError::new_err(format!("rules keys must be str, got {}", type_name(&key)))
        })?;
        let mut levels = Vec::new();
        for item in list.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "rules[{key:?}] must be a list of AlertRule, got {}",
                type_name(&list)
            ))
        })? {
            let item = item?;
            let rule = item.cast::<AlertRule>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "rules[{key:?}] items must be threshold_checker.AlertRule, got {}",
                    type_name(&item)
                ))
            })?;
            levels.push(rule.get().inner);
        }
        out.push((key, levels));
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
            engine.set_rules(extract_rules(r)?).map_err(rule_error)?;
        }
        Ok(RuleEngine { engine })
    }

    /// Replace every rule (validated first: on error nothing changes). Returns the close
    /// events of open alerts whose rule is gone.
    fn set_rules(&mut self, rules: &Bound<'_, PyAny>) -> PyResult<Vec<AlertEvent>> {
        let rules = extract_rules(rules)?;
        let events = self.engine.set_rules(rules).map_err(rule_error)?;
        Ok(events_out(events))
    }

    /// Replace every sensor's hub alert rules (exact sensor keys; validated first: on error
    /// nothing changes). Each sensor's rules make one alert ("rule") whose severity follows
    /// the most severe rule firing. Returns the close events of rule alerts whose sensor has
    /// no rules any more.
    fn set_alert_rules(&mut self, rules: &Bound<'_, PyAny>) -> PyResult<Vec<AlertEvent>> {
        let rules = extract_alert_rules(rules)?;
        let events = self.engine.set_levels(rules).map_err(rule_error)?;
        Ok(events_out(events))
    }

    /// The hub alert rules, by sensor key.
    fn alert_rules(&self) -> HashMap<String, Vec<AlertRule>> {
        self.engine
            .levels()
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    v.iter().map(|l| AlertRule { inner: *l }).collect(),
                )
            })
            .collect()
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
        let mut rows: Vec<(Option<i64>, PyBackedStr, f64, f64)> = Vec::new();
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
            let key = fields[1].extract::<PyBackedStr>().map_err(|_| {
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
            self.engine.restore(&ev.key, ev.alert).map_err(rule_error)?;
        }
        Ok(())
    }

    /// Forget every open alert and every sensor's history (rules stay).
    fn reset(&mut self) {
        self.engine.reset();
    }

    /// Number of rules (exact keys and patterns) plus sensors with hub alert rules.
    fn __len__(&self) -> usize {
        self.engine.rules().count() + self.engine.levels().count()
    }

    fn __repr__(&self) -> String {
        format!(
            "RuleEngine(rules={}, open_alerts={})",
            self.engine.rules().count(),
            self.engine.open_alerts().len()
        )
    }
}

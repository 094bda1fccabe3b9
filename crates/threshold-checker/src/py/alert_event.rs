//! `AlertEvent`: one step of an alert's lifecycle (open, update, close), as `RuleEngine`
//! emits it and takes it back in `restore`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::core::Severity;
use crate::py::repr::float_repr;
use crate::py::rule::rule_error;
use crate::rules::{AlertBreach, Engine, Event, EventKind, OpenAlert, RuleKind};

/// One step of an alert's lifecycle (`kind` open/update/close), or, from
/// `RuleEngine.open_alerts()`, the current state of an open alert (kind "open").
#[pyclass(frozen, module = "threshold_checker", name = "AlertEvent")]
#[derive(Clone, Debug)]
pub struct AlertEvent {
    pub(crate) inner: Event,
}

#[pymethods]
impl AlertEvent {
    #[new]
    #[pyo3(signature = (*, kind, key, breach_type, severity, threshold_value, value, ts,
                        opened_at, reading_seq=None, opened_seq=None, rule=None, rule_id=None))]
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
        rule_id: Option<i64>,
    ) -> PyResult<Self> {
        let kind = EventKind::parse(kind).ok_or_else(|| {
            PyValueError::new_err(format!(
                "kind must be 'open', 'update' or 'close', got {kind:?}"
            ))
        })?;
        let mut breach = AlertBreach::parse(breach_type).ok_or_else(|| {
            PyValueError::new_err(format!(
                "breach_type must be 'above_maximum', 'below_minimum' or 'rate_of_change', \
                 got {breach_type:?}"
            ))
        })?;
        if let Some(r) = rule {
            // A hub rule's alert ("rule") is above or below like a threshold's.
            if let (Some(RuleKind::Level), AlertBreach::Threshold(side)) =
                (RuleKind::parse(r), breach)
            {
                breach = AlertBreach::Level(side);
            }
            if RuleKind::parse(r) != Some(breach.rule()) {
                return Err(PyValueError::new_err(format!(
                    "rule {r:?} does not match breach_type {breach_type:?}"
                )));
            }
        }
        let severity = Severity::parse_any(severity).ok_or_else(|| {
            PyValueError::new_err(format!(
                "severity must be 'medium', 'high' or 'critical' (a rule's: 'info', 'warning' \
                 or 'critical'), got {severity:?}"
            ))
        })?;
        Engine::check_key(&key).map_err(rule_error)?;
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
                    // Only a rule alert names a hub rule.
                    rule_id: rule_id.filter(|_| breach.rule() == RuleKind::Level),
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
    /// "threshold" | "rate_of_change" | "rule"
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
    /// A rule alert's: the hub's id of the rule that decides it (else None)
    #[getter]
    fn rule_id(&self) -> Option<i64> {
        self.inner.alert.rule_id
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
        d.set_item("rule_id", self.rule_id())?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let seq = |s: Option<i64>| s.map_or("None".to_owned(), |v| v.to_string());
        Ok(format!(
            "AlertEvent(kind='{}', key={:?}, rule='{}', breach_type='{}', severity='{}', \
             threshold_value={}, value={}, ts={}, opened_at={}, reading_seq={}, opened_seq={}, \
             rule_id={})",
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
            seq(self.rule_id()),
        ))
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

//! `AlertRule`: one of the hub's alert rules of a sensor (the seeds' AlertRule), as
//! `RuleEngine.set_alert_rules` takes it; [`crate::levels`] evaluates it.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::core::Severity;
use crate::levels::{Condition, Level};
use crate::py::repr::{float_repr, opt_repr};
use crate::py::rule::rule_error;

/// A hub alert rule: condition GREATER_THAN | LESS_THAN | OUT_OF_RANGE, threshold(s),
/// severity INFO | WARNING | CRITICAL, deadband (to clear) and delay_s (on-delay to open).
#[pyclass(frozen, module = "threshold_checker", name = "AlertRule")]
#[derive(Clone, Debug)]
pub struct AlertRule {
    pub(crate) inner: Level,
}

#[pymethods]
impl AlertRule {
    #[new]
    #[pyo3(signature = (condition, threshold, threshold_high=None, severity="WARNING",
                        deadband=0.0, delay_s=0.0, rule_id=None))]
    fn new(
        condition: &str,
        threshold: f64,
        threshold_high: Option<f64>,
        severity: &str,
        deadband: f64,
        delay_s: f64,
        rule_id: Option<i64>,
    ) -> PyResult<Self> {
        let condition = Condition::parse(condition).ok_or_else(|| {
            PyValueError::new_err(format!(
                "condition must be 'GREATER_THAN', 'LESS_THAN' or 'OUT_OF_RANGE', got {condition:?}"
            ))
        })?;
        let severity = Severity::parse_level(severity).ok_or_else(|| {
            PyValueError::new_err(format!(
                "severity must be 'INFO', 'WARNING' or 'CRITICAL', got {severity:?}"
            ))
        })?;
        let inner = Level::new(
            condition,
            threshold,
            threshold_high,
            severity,
            deadband,
            delay_s,
        )
        .map_err(rule_error)?
        .with_id(rule_id);
        Ok(AlertRule { inner })
    }

    #[getter]
    fn condition(&self) -> &'static str {
        self.inner.condition().as_str()
    }
    #[getter]
    fn threshold(&self) -> f64 {
        self.inner.threshold()
    }
    #[getter]
    fn threshold_high(&self) -> Option<f64> {
        self.inner.threshold_high()
    }
    /// "INFO" | "WARNING" | "CRITICAL" (the alerts it raises carry it in lower case)
    #[getter]
    fn severity(&self) -> String {
        self.inner.severity().as_str().to_uppercase()
    }
    #[getter]
    fn deadband(&self) -> f64 {
        self.inner.deadband()
    }
    #[getter]
    fn delay_s(&self) -> f64 {
        self.inner.delay_s()
    }
    /// The hub's id of the rule; the alerts it decides carry it
    #[getter]
    fn rule_id(&self) -> Option<i64> {
        self.inner.id()
    }

    /// The rule as a plain dict (keys as the constructor's arguments).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("condition", self.condition())?;
        d.set_item("threshold", self.threshold())?;
        d.set_item("threshold_high", self.threshold_high())?;
        d.set_item("severity", self.severity())?;
        d.set_item("deadband", self.deadband())?;
        d.set_item("delay_s", self.delay_s())?;
        d.set_item("rule_id", self.rule_id())?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "AlertRule(condition='{}', threshold={}, threshold_high={}, severity='{}', \
             deadband={}, delay_s={}, rule_id={})",
            self.condition(),
            float_repr(py, self.threshold())?,
            opt_repr(py, self.threshold_high())?,
            self.severity(),
            float_repr(py, self.deadband())?,
            float_repr(py, self.delay_s())?,
            self.rule_id().map_or("None".to_owned(), |v| v.to_string()),
        ))
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

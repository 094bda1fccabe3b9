//! The PyO3 layer: one module per Python class, the stateless check functions, and the
//! argument reading they share. What a check decides lives in the pure-Rust modules
//! ([`crate::core`], [`crate::rules`], [`crate::scan`]); here is only the translation from
//! and to Python objects, with the errors Python sees.

mod alert;
mod alert_event;
mod alert_rule;
mod array;
mod checks;
mod input;
mod repr;
mod rollup;
mod rule;
mod rule_engine;

pub use alert::Alert;
pub use alert_event::AlertEvent;
pub use alert_rule::AlertRule;
pub use array::check_array;
pub use checks::{check_batch, check_thresholds};
pub use rollup::{pg_batch_arrays, rollup_partials};
pub use rule::Rule;
pub use rule_engine::RuleEngine;

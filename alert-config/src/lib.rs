//! `plumb-alert-config`: Plumb's alerting configuration, one TOML file of probes (named as in
//! Gatus), rules, a routing tree and receivers (named as in Prometheus and Alertmanager), checked
//! once into the types the collector runs with.
//!
//! In: the file's text. Out: an [`AlertingConfig`], or a [`ConfigError`] that names the file, the
//! line and the key that is wrong, and what to do. `${NAME}` in a string value is replaced by the
//! environment variable `NAME` (a variable that is not set is an error), so secrets stay out of
//! the file. The collector loads it at start-up and on reload; `plumb check-config` loads it
//! offline. Nothing here touches the network.

#![forbid(unsafe_code)]

mod condition;
mod error;
mod matcher;
mod model;
mod raw;

pub use condition::{Condition, Facts, Operand, PathStep, Placeholder};
pub use error::ConfigError;
pub use matcher::{Matcher, MatcherOp};
pub use model::{
    AlertingConfig, HttpProbe, PagerDuty, Probe, ProbeTarget, Receiver, Route, Rule, Signal, Slack,
    Threshold, Webhook,
};

use std::path::Path;

/// Reads and checks the alerting configuration in `path`.
pub fn load(path: &Path) -> Result<AlertingConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Checks the alerting configuration `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<AlertingConfig, ConfigError> {
    let raw: raw::RawConfig =
        toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
    model::check(raw, &|span, message| {
        ConfigError::at(file, text, span, message)
    })
}

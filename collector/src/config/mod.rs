//! Configuration, checked once: [`flags`] is what the user gives (flags, `PLUMB_*` environment,
//! a TOML file, with the defaults `--help` shows), [`settings`] the typed, validated settings of
//! each stage, made from the flags by one `TryFrom` whose errors name the option. Nothing after
//! [`load`] parses a value again or falls back to a default.

mod flags;
mod settings;

pub(crate) use flags::CollectorConfig;
pub use flags::LogFormat;
pub use settings::Settings;
pub(crate) use settings::{JournalSettings, StoreSettings};

use plumb_config::ConfigFileError;
use std::ffi::OsString;

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Bad flags, environment or config file (includes `--help` and `--version`).
    #[error(transparent)]
    Load(#[from] ConfigFileError),
    /// The alerting configuration file is wrong (the error names its line and key).
    #[error(transparent)]
    Alerting(#[from] plumb_alert_config::ConfigError),
    /// A value is out of range or malformed.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The option's name.
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Loads flags from `args` (the first item is the program name), the environment and the config
/// file, and checks them into [`Settings`].
pub fn load<I, T>(args: I) -> Result<Settings, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let flags: CollectorConfig = plumb_config::parse(args)?;
    Settings::try_from(flags)
}

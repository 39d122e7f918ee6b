//! Errors that name the file, the line and the key.

use std::ops::Range;

/// Why the alerting configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A value is missing, malformed or refers to something that does not exist.
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// The line (from 1).
        line: usize,
        /// The key on that line (or the table, for a missing key).
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

impl ConfigError {
    /// An error about the text at `span` of `text`.
    pub(crate) fn at(file: &str, text: &str, span: Range<usize>, message: String) -> Self {
        let start = span.start.min(text.len());
        let line = text[..start].matches('\n').count() + 1;
        Self::Invalid {
            file: file.to_owned(),
            line,
            key: key_on_line(text, start),
            message,
        }
    }

    /// A parse or type error from the TOML reader.
    pub(crate) fn from_toml(file: &str, text: &str, e: &toml::de::Error) -> Self {
        let message = e.message().trim().to_owned();
        match e.span() {
            Some(span) => Self::at(file, text, span, message),
            None => Self::Invalid {
                file: file.to_owned(),
                line: 1,
                key: String::new(),
                message,
            },
        }
    }
}

/// The key of the `key = value` line holding byte `at`, or its table header (`[[probe]]`).
fn key_on_line(text: &str, at: usize) -> String {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = text[line_start..line_end].trim();
    match line.split_once('=') {
        Some((key, _)) if !line.starts_with('[') => key.trim().trim_matches('"').to_owned(),
        _ => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_line_and_the_key() {
        let text = "[route]\nreceiver = \"x\"\ngroup_wait = \"soon\"\n";
        let at = text.find("\"soon\"").expect("value");
        let e = ConfigError::at("alerts.toml", text, at..at + 6, "bad duration".into());
        assert_eq!(e.to_string(), "alerts.toml:3: group_wait: bad duration");
    }
}

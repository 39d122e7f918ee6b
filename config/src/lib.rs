//! Configuration loading shared by Plumb's binaries: command-line flags, then `PLUMB_*`
//! environment variables (declared on the clap arguments), then a flat TOML file named by the
//! `--config` argument, then the defaults `--help` shows.
//!
//! In: the program's arguments and a clap `Parser` with a `config: Option<PathBuf>` argument.
//! Out: the parsed value. Every key of the file is a long option name (`grpc_addr` or
//! `grpc-addr`); an unknown key is an error, so a typo never goes unnoticed. File values are
//! passed to clap as `--name=value` ahead of the real flags, skipping options whose environment
//! variable is set, so the precedence above holds.

use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;

/// A configuration value that must never be shown (tokens, passwords): `Debug` prints `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// Bad flags or environment (includes `--help` and `--version`, which clap renders).
    #[error(transparent)]
    Args(#[from] clap::Error),
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or not flat, or names an unknown option.
    #[error("config file {path}: {message}")]
    File {
        /// File path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Parses `T` from `args` (the first item is the program name), the environment and the file
/// its `config` argument names.
pub fn parse<T, I, A>(args: I) -> Result<T, ConfigFileError>
where
    T: Parser,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command = T::command().args_override_self(true);
    // A first, lenient pass only finds the file: options the file provides may be required.
    let first = command
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(&args)?;
    match first.try_get_one::<PathBuf>("config").ok().flatten() {
        None => Ok(T::from_arg_matches(&command.try_get_matches_from(&args)?)?),
        Some(path) => {
            let injected = file_args(&command, path)?;
            let mut merged = Vec::with_capacity(args.len() + injected.len());
            merged.extend(args.first().cloned());
            merged.extend(injected);
            merged.extend(args.iter().skip(1).cloned());
            Ok(T::from_arg_matches(&command.try_get_matches_from(merged)?)?)
        }
    }
}

/// Turns the config file into `--name=value` arguments, leaving out options whose environment
/// variable is set (the environment ranks above the file).
fn file_args(command: &clap::Command, path: &PathBuf) -> Result<Vec<OsString>, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigFileError::File {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let mut out = Vec::new();
    for (key, value) in table {
        let id = key.replace('-', "_");
        let arg = command
            .get_arguments()
            .find(|a| a.get_id().as_str() == id && id != "config")
            .ok_or_else(|| ConfigFileError::File {
                path: path.clone(),
                message: format!("unknown option {key:?}"),
            })?;
        if arg
            .get_env()
            .is_some_and(|env| std::env::var_os(env).is_some())
        {
            continue;
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigFileError::File {
                    path: path.clone(),
                    message: format!(
                        "option {key:?} must be a string, number or boolean, not {}",
                        other.type_str()
                    ),
                });
            }
        };
        let long = arg.get_long().unwrap_or(arg.get_id().as_str());
        out.push(OsString::from(format!("--{long}={text}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct Example {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        required: String,
        #[arg(long, default_value = "127.0.0.1:4317")]
        grpc_addr: String,
        #[arg(long, default_value_t = 30)]
        retention_days: u32,
        #[arg(long, default_value = "plumb")]
        database: String,
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plumb.toml");
        std::fs::write(
            &path,
            "required = \"r\"\ngrpc-addr = \"127.0.0.1:14317\"\nretention_days = 7\ndatabase = \"from_file\"\n",
        )
        .expect("write");
        let path = path.to_str().expect("utf8");
        let c: Example = parse(["x", "--config", path, "--database", "from_flag"]).expect("loads");
        assert_eq!(
            (c.grpc_addr.as_str(), c.retention_days, c.database.as_str()),
            ("127.0.0.1:14317", 7, "from_flag")
        );
        let d: Example = parse(["x", "--required", "r"]).expect("defaults");
        assert_eq!(d.retention_days, 30);
        let missing = parse::<Example, _, _>(["x"]).expect_err("required option missing");
        assert!(missing.to_string().contains("--required"), "{missing}");
    }

    #[test]
    fn unknown_keys_and_nested_tables_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plumb.toml");
        std::fs::write(&path, "grpc_adr = \"x\"\n").expect("write");
        let e = parse::<Example, _, _>(["x", "--config", path.to_str().expect("utf8")])
            .expect_err("unknown");
        assert!(e.to_string().contains("unknown option \"grpc_adr\""), "{e}");
        std::fs::write(&path, "[database]\nname = \"x\"\n").expect("write");
        let e = parse::<Example, _, _>(["x", "--config", path.to_str().expect("utf8")])
            .expect_err("table");
        assert!(
            e.to_string()
                .contains("must be a string, number or boolean"),
            "{e}"
        );
    }
}

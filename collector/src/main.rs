//! `plumb-collector`: see `plumb-collector --help` and the README.

use anyhow::Context;
use plumb_collector::config::{ConfigError, LogFormat};
use plumb_config::ConfigFileError;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// mimalloc: the decode path allocates many small strings; this allocator measured about 1.6x
/// the throughput of the system one on the ingest benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let settings = match plumb_collector::config::load(std::env::args_os()) {
        Ok(s) => s,
        Err(ConfigError::Load(ConfigFileError::Args(e))) => e.exit(),
        Err(e) => return Err(e.into()),
    };
    init_logging(settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(plumb_collector::app::run(
        settings,
        plumb_otlp::serve::shutdown_signal(),
    ))?;
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("PLUMB_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

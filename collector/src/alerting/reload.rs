//! Reloading the alerting file: on SIGHUP and when the file changes (its modification time or
//! size, looked at every [`WATCH_EVERY`]), the file is read and checked again. A file that does
//! not load keeps the running configuration: the error (file, line, key) is logged and counted in
//! `plumb_alerting_reloads_total{result="failure"}`. A file that loads replaces it: the engine
//! stops (saving its state) and starts again with the new file; alerts whose labels did not
//! change keep their state, so editing one rule does not reset the others.

use super::{Context, run};
use crate::telemetry::Telemetry;
use plumb_alert_config::AlertingConfig;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often the file's modification time is looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Label for how a reload went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    /// `success` or `failure`.
    pub(crate) result: &'static str,
}

/// Alerting's own metrics.
#[derive(Debug, Default)]
pub(crate) struct AlertingTelemetry {
    /// Reloads of the alerting file, by result.
    pub(crate) reloads: Family<ResultLabel, Counter>,
}

impl AlertingTelemetry {
    /// Creates the metrics, registered in `telemetry`.
    pub(crate) fn registered(telemetry: &mut Telemetry) -> Arc<Self> {
        let this = Self::default();
        telemetry.registry().register(
            "alerting_reloads",
            "Reloads of the alerting file (on SIGHUP or when it changed), by result",
            this.reloads.clone(),
        );
        Arc::new(this)
    }
}

/// What identifies a version of the file on disk.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Runs the engine with `config`, reloading it from `path` as the module comment says, until
/// `stop` is cancelled.
pub(crate) async fn supervise(
    path: PathBuf,
    mut config: Arc<AlertingConfig>,
    ctx: Context,
    telemetry: Arc<AlertingTelemetry>,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| format!("cannot listen for SIGHUP: {e}"))?;
    let mut seen = stamp(&path);
    let mut watch = tokio::time::interval(WATCH_EVERY);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let engine_stop = stop.child_token();
        let engine = tokio::spawn(run(Arc::clone(&config), ctx.clone(), engine_stop.clone()));
        let next = loop {
            tokio::select! {
                () = stop.cancelled() => break None,
                _ = hangup.recv() => {}
                _ = watch.tick() => {
                    let now = stamp(&path);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                }
            }
            match plumb_alert_config::load(&path) {
                Ok(new) => {
                    telemetry
                        .reloads
                        .get_or_create(&ResultLabel { result: "success" })
                        .inc();
                    tracing::info!(file = %path.display(), probes = new.probes.len(), rules = new.rules.len(), "alerting file reloaded");
                    break Some(Arc::new(new));
                }
                Err(e) => {
                    telemetry
                        .reloads
                        .get_or_create(&ResultLabel { result: "failure" })
                        .inc();
                    tracing::error!(error = %e, "the alerting file does not load; the running configuration stays");
                }
            }
        };
        engine_stop.cancel();
        match engine.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(format!("the alerting engine failed: {e}")),
        }
        match next {
            Some(new) => config = new,
            None => return Ok(()),
        }
    }
}

//! Active probes: every probe checks its target on its own schedule (its interval, started at a
//! random point of it so probes spread out), within its timeout, with at most
//! [`MAX_CONCURRENT`] checks at once overall and [`MAX_PER_HOST`] per target host; a slow or
//! hanging target only holds up its own probe. Each result goes to the alerting engine.

pub(crate) mod check;
mod dns;

use check::{CheckResult, TlsClients};
use plumb_alert_config::{Probe, ProbeTarget};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Checks running at once, over all probes.
pub(crate) const MAX_CONCURRENT: usize = 256;
/// Checks running at once against one host.
pub(crate) const MAX_PER_HOST: usize = 8;

/// One probe's check, for the engine.
#[derive(Debug)]
pub(crate) struct Report {
    /// The probe's place in the configuration.
    pub(crate) probe: usize,
    /// When the check ended, ns since the epoch.
    pub(crate) at_unix_ns: u64,
    /// What it found.
    pub(crate) result: CheckResult,
}

/// The host a probe talks to, for the per-host limit.
fn host_of(probe: &Probe) -> String {
    match &probe.target {
        ProbeTarget::Http(http) => http
            .url
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_default(),
        ProbeTarget::Tcp { address }
        | ProbeTarget::Tls { address, .. }
        | ProbeTarget::Grpc { address, .. }
        | ProbeTarget::Dns {
            server: address, ..
        } => address
            .rsplit_once(':')
            .map_or(address.clone(), |(h, _)| h.to_owned()),
    }
}

/// Runs every probe until `stop` is cancelled, sending each check's result to `reports`.
pub(crate) async fn run_probes(
    probes: Arc<Vec<Probe>>,
    reports: mpsc::Sender<Report>,
    stop: CancellationToken,
) {
    let tls = TlsClients::new();
    let all = Arc::new(Semaphore::new(MAX_CONCURRENT));
    let mut per_host: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut tasks = JoinSet::new();
    for (index, probe) in probes.iter().enumerate() {
        let host = per_host
            .entry(host_of(probe))
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_PER_HOST)))
            .clone();
        let (probes, reports, stop, tls, all) = (
            Arc::clone(&probes),
            reports.clone(),
            stop.clone(),
            tls.clone(),
            Arc::clone(&all),
        );
        tasks.spawn(async move {
            let probe = &probes[index];
            let first = probe.interval.mul_f64(fastrand::f64());
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + first, probe.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => return,
                }
                let checked = async {
                    let _all = all.acquire().await.ok()?;
                    let _host = host.acquire().await.ok()?;
                    Some(check::check(probe, &tls).await)
                };
                let result = tokio::select! {
                    r = checked => r,
                    () = stop.cancelled() => return,
                };
                let Some(result) = result else { return };
                let report = Report {
                    probe: index,
                    at_unix_ns: crate::clock::now_unix_ns(),
                    result,
                };
                if reports.send(report).await.is_err() {
                    return;
                }
            }
        });
    }
    stop.cancelled().await;
    while tasks.join_next().await.is_some() {}
}

//! Active probes: every probe checks its target on its own schedule (its interval, at a phase
//! on the wall clock taken from its name, so probes spread out and a probe keeps its beat across
//! reloads and restarts), within its timeout, with at most
//! [`MAX_CONCURRENT`] checks at once overall and [`MAX_PER_HOST`] per target host; a slow or
//! hanging target only holds up its own probe. Each result goes to the alerting engine.

pub(crate) mod check;
mod dns;

use check::{CheckResult, TlsClients};
use plumb_alert_config::{Probe, ProbeTarget};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
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

/// How long until `name`'s next check: its checks fall where the wall clock, less a phase
/// taken from a hash of the name, is a whole number of intervals.
fn first_check_in(name: &str, interval: Duration, now_unix_ns: u64) -> Duration {
    use std::hash::{Hash, Hasher};
    let period = u64::try_from(interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    let mut hasher = std::hash::DefaultHasher::new();
    name.hash(&mut hasher);
    let phase = hasher.finish() % period;
    let into = (now_unix_ns % period + period - phase) % period;
    Duration::from_nanos((period - into) % period)
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
            let first = first_check_in(&probe.name, probe.interval, crate::clock::now_unix_ns());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_keeps_its_phase_and_probes_spread_out() {
        let interval = Duration::from_secs(10);
        let now = 1_795_000_000_123_456_789;
        let wait = first_check_in("shop-health", interval, now);
        assert!(wait < interval);
        // A second later (a reload), the same beat: one second less to wait, or one interval more.
        let later = first_check_in("shop-health", interval, now + 1_000_000_000);
        let expected = (wait + interval - Duration::from_secs(1)).as_nanos() % interval.as_nanos();
        assert_eq!(later.as_nanos(), expected);
        let phases: std::collections::BTreeSet<u128> = (0..100)
            .map(|i| first_check_in(&format!("probe-{i}"), interval, now).as_millis() / 1000)
            .collect();
        assert!(
            phases.len() >= 8,
            "100 probes over 10 one-second slots: {phases:?}"
        );
    }
}

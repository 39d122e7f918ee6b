//! Uptime alerting: active probes and passive rules become alerts (pending → firing →
//! resolved), alerts are routed and grouped as Alertmanager does, and each group's messages go
//! to webhooks, Slack, PagerDuty and email, once per change, with state that survives restarts.
//!
//! It reads from the store and from its own probes, never from the ingest path. The parts:
//! [`probe`] (the checks and their schedule), [`rules`] (the passive signals from the stored
//! histograms), [`state`] (each alert's state machine), [`dispatch`] (routing and grouping),
//! [`deliver`] (the messages and their delivery; mail in [`email`]), [`durable`] (the state file), [`store`] (the
//! tables and queries for history and uptime). [`run`] is the engine that joins them, and
//! [`reload::supervise`] restarts it when the file changes; `app` starts that as a stage of its
//! own when `--alerting-config` is given.

pub(crate) mod api;
pub(crate) mod deliver;
pub(crate) mod dispatch;
pub(crate) mod durable;
mod email;
pub(crate) mod probe;
pub(crate) mod reload;
pub(crate) mod rules;
pub(crate) mod silence;
pub(crate) mod state;
pub(crate) mod store;

use crate::model::ApdexThresholds;
use crate::store::Store;
use deliver::{ATTEMPTS, Integration, RETRY_BACKOFF};
use dispatch::dispatch;
use durable::{Delivery, Durable, StateFile};
use plumb_alert_config::{AlertingConfig, Probe, Rule};
use probe::Report;
use probe::check::TlsClients;
use state::{Alert, Status, Transition, fingerprint};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use store::{AlertEventRow, NotificationRow, ProbeResultRow};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Probe reports waiting for the engine.
const REPORT_QUEUE: usize = 1024;
/// Deliveries running at once.
const MAX_DELIVERIES: usize = 16;

/// What the query API shows of the alerts: a copy, refreshed every round.
#[derive(Debug, Default)]
pub(crate) struct AlertsView {
    alerts: Mutex<Vec<Alert>>,
    maintenance: Mutex<Vec<plumb_alert_config::Maintenance>>,
}

impl AlertsView {
    /// The alerts that are pending or firing.
    pub(crate) fn active(&self) -> Vec<Alert> {
        self.alerts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The maintenance windows of the file in force.
    pub(crate) fn maintenance(&self) -> Vec<plumb_alert_config::Maintenance> {
        self.maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, alerts: Vec<Alert>, maintenance: &[plumb_alert_config::Maintenance]) {
        *self.alerts.lock().unwrap_or_else(PoisonError::into_inner) = alerts;
        *self
            .maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = maintenance.to_vec();
    }
}

/// What the engine needs besides the configuration.
#[derive(Clone, Debug)]
pub(crate) struct Context {
    /// Where results and history go, and where rules read.
    pub(crate) store: Store,
    /// Apdex thresholds for `apdex` rules.
    pub(crate) apdex: ApdexThresholds,
    /// This collector's location label for probe results.
    pub(crate) location: String,
    /// The state file's folder.
    pub(crate) state_dir: std::path::PathBuf,
    /// The copy the query API reads.
    pub(crate) view: Arc<AlertsView>,
}

/// The labels of a probe's alert.
fn probe_labels(p: &Probe) -> BTreeMap<String, String> {
    let mut labels = p.labels.clone();
    labels.insert("alertname".into(), p.name.clone());
    labels
}

/// The labels of a rule's alert.
fn rule_labels(r: &Rule) -> BTreeMap<String, String> {
    let mut labels = r.labels.clone();
    labels.insert("alertname".into(), r.name.clone());
    labels
        .entry("service".into())
        .or_insert_with(|| r.service.clone());
    if let Some(op) = &r.operation {
        labels
            .entry("operation".into())
            .or_insert_with(|| op.clone());
    }
    labels
}

fn event(alert: &Alert, fp: &str, t: &Transition, now: u64) -> AlertEventRow {
    let to = match (t.from, t.to) {
        (Status::Firing, Status::Inactive) => "resolved",
        (_, to) => to.name(),
    };
    AlertEventRow {
        time: u32::try_from(now).unwrap_or(u32::MAX),
        fingerprint: fp.to_owned(),
        alertname: alert.labels.get("alertname").cloned().unwrap_or_default(),
        label_keys: alert.labels.keys().cloned().collect(),
        label_values: alert.labels.values().cloned().collect(),
        from_state: t.from.name().to_owned(),
        to_state: to.to_owned(),
        detail: alert.detail.clone(),
    }
}

fn result_row(probe: &Probe, report: &Report, location: &str) -> ProbeResultRow {
    let r = &report.result;
    let us = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    ProbeResultRow {
        time: u32::try_from(report.at_unix_ns / 1_000_000_000).unwrap_or(u32::MAX),
        time_ns: report.at_unix_ns,
        probe: probe.name.clone(),
        location: location.to_owned(),
        success: u8::from(r.success),
        duration_us: us(r.duration),
        dns_us: us(r.dns),
        connect_us: us(r.connect),
        tls_us: us(r.tls),
        first_byte_us: us(r.first_byte),
        status: r.status,
        error: r.error.clone(),
        leaf_days_left: r
            .leaf_days_left
            .map_or(-1, |d| i32::try_from(d).unwrap_or(i32::MAX)),
        chain_days_left: r
            .chain_days_left
            .map_or(-1, |d| i32::try_from(d).unwrap_or(i32::MAX)),
    }
}

/// What a delivery task reports.
#[derive(Debug)]
struct Attempted {
    id: u64,
    row: NotificationRow,
    /// Whether the delivery is over (delivered, or given up).
    done: bool,
}

/// Delivers one message with retries, reporting each attempt.
async fn deliver_one(
    delivery: Delivery,
    config: Arc<AlertingConfig>,
    tls: TlsClients,
    outcomes: mpsc::Sender<Attempted>,
    stop: CancellationToken,
) {
    let n = &delivery.notification;
    let Some(receiver) = config.receivers.iter().find(|r| r.name == n.receiver) else {
        return;
    };
    let mut delays = RETRY_BACKOFF.delays();
    for attempt in 1..=ATTEMPTS {
        let outcome = deliver::attempt(n, receiver, delivery.integration, &tls).await;
        let ok = outcome.is_ok();
        let done = ok || attempt == ATTEMPTS;
        let row = NotificationRow {
            time: crate::clock::now_unix_s(),
            group_key: n.group_key.clone(),
            receiver: n.receiver.clone(),
            integration: delivery.integration.kind().to_owned(),
            status: n.status.clone(),
            alerts: u32::try_from(n.alerts.len()).unwrap_or(u32::MAX),
            attempt,
            ok: u8::from(ok),
            outcome: match &outcome {
                Ok(status) => format!("answered {status}"),
                Err(e) => e.clone(),
            },
        };
        if let Err(e) = &outcome {
            tracing::warn!(receiver = %n.receiver, integration = delivery.integration.kind(), attempt, error = %e, "notification not delivered");
        }
        if outcomes
            .send(Attempted {
                id: delivery.id,
                row,
                done,
            })
            .await
            .is_err()
            || done
        {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(delays.next_delay()) => {}
            // Left in the outbox: the next start delivers it.
            () = stop.cancelled() => return,
        }
    }
}

/// The engine: takes probe reports, evaluates rules every `evaluation_interval`, routes and
/// groups, keeps the state file and hands messages to delivery tasks, until `stop`.
pub(crate) async fn run(
    config: Arc<AlertingConfig>,
    ctx: Context,
    stop: CancellationToken,
) -> Result<(), String> {
    let file = StateFile::open(&ctx.state_dir)
        .map_err(|e| format!("alerting state in {}: {e}", ctx.state_dir.display()))?;
    let mut state: Durable = file.load().map_err(|e| e.to_string())?;
    // Alerts of probes and rules no longer configured are dropped; the others keep their state.
    let mut known: BTreeMap<String, Alert> = BTreeMap::new();
    let mut probe_fps = Vec::with_capacity(config.probes.len());
    for labels in config.probes.iter().map(probe_labels) {
        let fp = fingerprint(&labels);
        let alert = state
            .alerts
            .remove(&fp)
            .unwrap_or_else(|| Alert::new(labels, BTreeMap::new()));
        known.insert(fp.clone(), alert);
        probe_fps.push(fp);
    }
    let mut rule_fps = Vec::with_capacity(config.rules.len());
    for rule in &config.rules {
        let labels = rule_labels(rule);
        let fp = fingerprint(&labels);
        let mut alert = state
            .alerts
            .remove(&fp)
            .unwrap_or_else(|| Alert::new(labels, BTreeMap::new()));
        alert.annotations = rule.annotations.clone();
        known.insert(fp.clone(), alert);
        rule_fps.push(fp);
    }
    state.alerts = known;

    let tls = TlsClients::new();
    let (report_tx, mut reports) = mpsc::channel::<Report>(REPORT_QUEUE);
    let (outcome_tx, mut outcomes) = mpsc::channel::<Attempted>(REPORT_QUEUE);
    let mut tasks = JoinSet::new();
    tasks.spawn(probe::run_probes(
        Arc::new(config.probes.clone()),
        report_tx,
        stop.clone(),
    ));
    let deliveries = Arc::new(tokio::sync::Semaphore::new(MAX_DELIVERIES));
    let spawn_delivery = |tasks: &mut JoinSet<()>, d: Delivery| {
        let (config, tls, outcomes, stop, slots) = (
            Arc::clone(&config),
            tls.clone(),
            outcome_tx.clone(),
            stop.clone(),
            Arc::clone(&deliveries),
        );
        tasks.spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            deliver_one(d, config, tls, outcomes, stop).await;
        });
    };
    for d in state.outbox.clone() {
        spawn_delivery(&mut tasks, d);
    }
    let mut tick = tokio::time::interval(config.evaluation_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = Pending::default();
    let mut unspawned: Vec<Delivery> = Vec::new();
    let mut silences = silence::Active::default();
    let mut changed = true;
    loop {
        // A round (rules, routing, the view, writing rows) runs on each tick; a finished
        // delivery is saved at once, so a delivered message is not sent again after a crash.
        let (round, save_now) = tokio::select! {
            () = stop.cancelled() => break,
            Some(report) = reports.recv() => {
                let probe = &config.probes[report.probe];
                let fp = &probe_fps[report.probe];
                if let Some(alert) = state.alerts.get_mut(fp) {
                    let detail = if report.result.success { String::new() } else { report.result.error.clone() };
                    let at = report.at_unix_ns / 1_000_000_000;
                    if let Some(t) = alert.probe_check(report.result.success, detail, probe.failure_threshold, probe.success_threshold, at) {
                        pending.events.push(event(alert, fp, &t, at));
                        changed = true;
                    }
                }
                pending.results.push(result_row(probe, &report, &ctx.location));
                (false, false)
            }
            Some(outcome) = outcomes.recv() => {
                pending.sent.push(outcome.row);
                if outcome.done {
                    state.outbox.retain(|d| d.id != outcome.id);
                    changed = true;
                }
                (false, outcome.done)
            }
            _ = tick.tick() => (true, false),
        };
        let now = u64::from(crate::clock::now_unix_s());
        if round {
            for (rule, fp) in config.rules.iter().zip(&rule_fps) {
                match rules::read_window(&ctx.store, rule, now).await {
                    Ok(totals) => {
                        let (holds, detail) = rules::judge(rule, &totals, &ctx.apdex);
                        if let Some(alert) = state.alerts.get_mut(fp)
                            && let Some(t) = alert.rule_evaluation(
                                holds,
                                detail,
                                rule.for_.as_secs(),
                                rule.keep_firing_for.as_secs(),
                                now,
                            )
                        {
                            pending.events.push(event(alert, fp, &t, now));
                            changed = true;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(rule = %rule.name, error = %e, "rule not evaluated this round")
                    }
                }
            }
            match silence::current(&ctx.store, now).await {
                Ok(rows) => silences = silence::Active::from_rows(&rows),
                Err(e) => {
                    tracing::warn!(error = %e, "silences not read this round; the last ones stay")
                }
            }
            let firing: Vec<&BTreeMap<String, String>> = state
                .alerts
                .values()
                .filter(|a| a.status == Status::Firing)
                .map(|a| &a.labels)
                .collect();
            let muted = |labels: &BTreeMap<String, String>| {
                silences.mutes(labels, now)
                    || config
                        .maintenance
                        .iter()
                        .any(|w| w.mutes(labels, i64::try_from(now).unwrap_or(i64::MAX)))
                    || config
                        .inhibit
                        .iter()
                        .any(|rule| firing.iter().any(|source| rule.mutes(source, labels)))
            };
            for notification in
                dispatch(&config.route, &state.alerts, &mut state.groups, &muted, now)
            {
                changed = true;
                let Some(receiver) = config
                    .receivers
                    .iter()
                    .find(|r| r.name == notification.receiver)
                else {
                    continue;
                };
                for integration in Integration::all_for(receiver, &notification) {
                    state.next_id += 1;
                    let d = Delivery {
                        id: state.next_id,
                        notification: notification.clone(),
                        integration,
                    };
                    state.outbox.push(d.clone());
                    unspawned.push(d);
                }
            }
        }
        if changed && (round || save_now) {
            match file.save(&state) {
                Ok(()) => {
                    // Only what is on disk is sent, so a crash can repeat a message, never lose one.
                    for d in unspawned.drain(..) {
                        spawn_delivery(&mut tasks, d);
                    }
                    changed = false;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot save the alerting state; messages wait until it can")
                }
            }
        }
        if round {
            ctx.view.set(
                state
                    .alerts
                    .values()
                    .filter(|a| a.status != Status::Inactive)
                    .cloned()
                    .collect(),
                &config.maintenance,
            );
            flush(&ctx.store, &mut pending).await;
        }
    }
    let _ = file.save(&state);
    flush(&ctx.store, &mut pending).await;
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Rows collected between two rounds, waiting for ClickHouse.
#[derive(Debug, Default)]
struct Pending {
    results: Vec<ProbeResultRow>,
    /// The minute rollup of results already written (written apart, so a failed rollup insert
    /// never writes the raw results twice).
    minutes: Vec<store::ProbeMinuteRow>,
    events: Vec<AlertEventRow>,
    sent: Vec<NotificationRow>,
}

/// Most rows of each kind kept while ClickHouse does not take them; past it the oldest go.
const KEEP_ROWS: usize = 100_000;

/// Keeps the newest [`KEEP_ROWS`] of `rows`, saying so when any go.
fn keep_newest<T>(rows: &mut Vec<T>, what: &str) {
    if rows.len() > KEEP_ROWS {
        tracing::warn!(
            rows = rows.len(),
            what,
            "alerting rows waiting for ClickHouse; the oldest are dropped"
        );
        rows.drain(..rows.len() - KEEP_ROWS);
    }
}

/// Writes what was collected since the last round; what ClickHouse does not take waits for the
/// next round.
async fn flush(store: &Store, pending: &mut Pending) {
    if !pending.results.is_empty() && store::write_results(store, &pending.results).await.is_ok() {
        pending.minutes.extend(store::minute_rows(&pending.results));
        pending.results.clear();
    }
    if !pending.minutes.is_empty() && store::write_minutes(store, &pending.minutes).await.is_ok() {
        pending.minutes.clear();
    }
    if store::write_events(store, &pending.events).await.is_ok() {
        pending.events.clear();
    }
    if store::write_notifications(store, &pending.sent)
        .await
        .is_ok()
    {
        pending.sent.clear();
    }
    keep_newest(&mut pending.results, "probe results");
    keep_newest(&mut pending.minutes, "probe minutes");
    keep_newest(&mut pending.events, "alert events");
    keep_newest(&mut pending.sent, "notification attempts");
}

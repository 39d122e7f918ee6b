//! Uptime alerting end to end: a real HTTP target on loopback that answers 200 or 500 on
//! command, a real webhook receiver that records what it gets, a real collector with an alerting
//! file, and real SDK traffic for the passive rules.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use plumb_test_support::*;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How the target answers.
pub(crate) const HEALTHY: u8 = 0;
pub(crate) const FAILING: u8 = 1;
/// Fails every other request: a flap inside the thresholds.
const FLAPPING: u8 = 2;

/// An HTTP target whose `/health` answers as `mode` says.
pub(crate) struct Target {
    mode: Arc<AtomicU8>,
    pub(crate) url: String,
}

impl Target {
    pub(crate) async fn start() -> Self {
        let mode = Arc::new(AtomicU8::new(HEALTHY));
        let count = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route(
                "/health",
                get(
                    |State((mode, count)): State<(Arc<AtomicU8>, Arc<AtomicU64>)>| async move {
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        match mode.load(Ordering::SeqCst) {
                            FAILING => (StatusCode::INTERNAL_SERVER_ERROR, r#"{"status":"DOWN"}"#),
                            FLAPPING if n % 2 == 0 => {
                                (StatusCode::INTERNAL_SERVER_ERROR, r#"{"status":"DOWN"}"#)
                            }
                            _ => (StatusCode::OK, r#"{"status":"UP"}"#),
                        }
                    },
                ),
            )
            .with_state((Arc::clone(&mode), count));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/health", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { mode, url }
    }

    pub(crate) fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// A webhook receiver that keeps every body it gets.
pub(crate) struct Hooks {
    got: Arc<Mutex<Vec<serde_json::Value>>>,
    pub(crate) url: String,
}

impl Hooks {
    pub(crate) async fn start() -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route(
                "/hook",
                post(|State(got): State<Arc<Mutex<Vec<serde_json::Value>>>>, body: String| async move {
                    let value = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
                    got.lock().expect("lock").push(value);
                    StatusCode::OK
                }),
            )
            .with_state(Arc::clone(&got));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { got, url }
    }

    pub(crate) fn bodies(&self) -> Vec<serde_json::Value> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits until `n` bodies arrived (fails after `within`); returns them.
    pub(crate) async fn wait_for(&self, n: usize, within: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let bodies = self.bodies();
            if bodies.len() >= n {
                return bodies;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} webhooks within {within:?}: {bodies:?}",
                bodies.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The route and receiver every test uses: everything to `hook`, grouped by alert name, with
/// group_wait and group_interval of 1 s.
pub(crate) fn route_to(hook: &str) -> String {
    format!(
        r#"[route]
receiver = "oncall"
group_by = ["alertname"]
group_wait = "1s"
group_interval = "1s"
repeat_interval = "1h"

[[receiver]]
name = "oncall"
webhook = [{{ url = "{hook}" }}]
"#
    )
}

/// An alerting file: one probe of `target` (1 s interval, down after `failures`, up after 2),
/// `rules`, everything to `hook`, group_wait 1 s.
fn alerting_file(
    dir: &std::path::Path,
    target: &str,
    failures: u32,
    hook: &str,
    rules: &str,
) -> String {
    let path = dir.join("alerts.toml");
    std::fs::write(
        &path,
        format!(
            r#"evaluation_interval = "1s"

[defaults.probe]
interval = "1s"
timeout = "2s"
failure_threshold = {failures}
success_threshold = 2

[[probe]]
name = "shop-health"
kind = "http"
url = "{target}"
conditions = ["[STATUS] == 200", "[BODY].status == UP"]
labels = {{ service = "shop", severity = "page" }}
{rules}
{route}"#,
            route = route_to(hook)
        ),
    )
    .expect("write alerting file");
    path.display().to_string()
}

/// Starts a collector on `database` with `text` as its alerting file, kept in the returned
/// folder for as long as the test holds it.
pub(crate) async fn start_with_alerting(
    database: &str,
    text: &str,
) -> (Collector, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("alerts.toml");
    std::fs::write(&path, text).expect("write alerting file");
    let collector = Collector::start(
        database,
        &["--alerting-config", &path.display().to_string()],
    )
    .await;
    (collector, dir)
}

/// Waits until the collector's `/metrics` holds `line` (fails with `what` after 20 s).
pub(crate) async fn wait_for_metric(collector: &Collector, line: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !collector.metrics_text().await.contains(line) {
        assert!(Instant::now() < deadline, "{what}:\n{}", collector.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn status_and_name(body: &serde_json::Value) -> (String, String) {
    (
        body["status"].as_str().unwrap_or_default().to_owned(),
        body["alerts"][0]["labels"]["alertname"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_target_fires_once_and_resolves_once_and_shows_in_uptime() {
    let (target, hooks) = (Target::start().await, Hooks::start().await);
    let dir = tempfile::tempdir().expect("dir");
    let file = alerting_file(dir.path(), &target.url, 2, &hooks.url, "");
    let database = unique_database("alert_once");
    let collector = Collector::start(&database, &["--alerting-config", &file]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(hooks.bodies().is_empty(), "a healthy target alerts nobody");

    target.set(FAILING);
    let went_down = Instant::now();
    let fired = hooks.wait_for(1, Duration::from_secs(20)).await;
    // interval × failure_threshold + group_wait + one evaluation, and a second for the delivery.
    let bound = Duration::from_secs(2 + 1 + 1 + 1);
    assert!(
        went_down.elapsed() <= bound + Duration::from_secs(3),
        "fired after {:?}",
        went_down.elapsed()
    );
    assert_eq!(
        status_and_name(&fired[0]),
        ("firing".into(), "shop-health".into())
    );
    assert_eq!(fired[0]["version"], "4");
    assert_eq!(fired[0]["alerts"][0]["labels"]["severity"], "page");
    let description = fired[0]["alerts"][0]["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(description.contains("[STATUS] == 200"), "{description}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(hooks.bodies().len(), 1, "one message while it stays down");

    target.set(HEALTHY);
    let all = hooks.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        status_and_name(&all[1]),
        ("resolved".into(), "shop-health".into())
    );
    assert_eq!(all[1]["alerts"][0]["status"], "resolved");
    assert_ne!(all[1]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hooks.bodies().len(),
        2,
        "exactly one firing and one resolved message"
    );

    // The history, the deliveries and uptime, through the CLI.
    let alerts = collector.plumb_json(&["alerts", "--history", "1h"]).await;
    assert!(alerts["alerting_enabled"].as_bool().unwrap_or(false));
    let changes: Vec<&str> = alerts["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|e| e["to_state"].as_str())
        .collect();
    assert!(
        changes.contains(&"firing") && changes.contains(&"resolved"),
        "{changes:?}"
    );
    let delivered = alerts["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter(|d| d["ok"] == true)
        .count();
    assert_eq!(delivered, 2, "{alerts}");
    let uptime = collector.plumb_json(&["uptime", "--since", "1h"]).await;
    let probe = &uptime["probes"][0];
    assert_eq!(probe["probe"], "shop-health");
    let (checks, failures) = (
        probe["checks"].as_u64().unwrap_or(0),
        probe["failures"].as_u64().unwrap_or(0),
    );
    assert!(failures >= 2 && checks > failures, "{probe}");
    let percent = probe["uptime_percent"].as_f64().unwrap_or(100.0);
    assert!(
        (percent - 100.0 * (checks - failures) as f64 / checks as f64).abs() < 1e-6,
        "{probe}"
    );
    assert_eq!(probe["up"], true);
    // The hour and day rollups (filled by their materialized views) say the same as the minutes,
    // read while no rollup lands in between (the minutes are read before and after).
    let counts = |v: &serde_json::Value| {
        let p = &v["probes"][0];
        (p["checks"].as_u64(), p["failures"].as_u64())
    };
    let mut agreed = false;
    for _ in 0..5 {
        let before = counts(&collector.plumb_json(&["uptime", "--since", "1h"]).await);
        let hours = counts(&collector.plumb_json(&["uptime", "--since", "24h"]).await);
        let days = counts(&collector.plumb_json(&["uptime", "--since", "30d"]).await);
        let after = counts(&collector.plumb_json(&["uptime", "--since", "1h"]).await);
        if before == after {
            assert_eq!(
                (hours, days),
                (before, before),
                "hours and days against minutes"
            );
            agreed = true;
            break;
        }
    }
    assert!(agreed, "rollups kept landing between reads");
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flap_inside_the_thresholds_sends_nothing() {
    let (target, hooks) = (Target::start().await, Hooks::start().await);
    target.set(FLAPPING);
    let dir = tempfile::tempdir().expect("dir");
    let file = alerting_file(dir.path(), &target.url, 2, &hooks.url, "");
    let collector = Collector::start(
        &unique_database("alert_flap"),
        &["--alerting-config", &file],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(hooks.bodies().is_empty(), "{:?}", hooks.bodies());
    let alerts = collector.plumb_json(&["alerts"]).await;
    let firing = alerts["active"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|a| a["state"] == "firing").count());
    assert_eq!(firing, 0, "{alerts}");
    // The probe did run and did fail, only never twice in a row.
    let uptime = collector.plumb_json(&["uptime", "--since", "1h"]).await;
    let probe = &uptime["probes"][0];
    let (checks, failures) = (
        probe["checks"].as_u64().unwrap_or(0),
        probe["failures"].as_u64().unwrap_or(0),
    );
    assert!(checks >= 4 && failures >= 2, "{uptime}");
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_incident_sends_no_second_firing_and_still_the_resolve() {
    let (target, hooks) = (Target::start().await, Hooks::start().await);
    let dir = tempfile::tempdir().expect("dir");
    let file = alerting_file(dir.path(), &target.url, 2, &hooks.url, "");
    let data = dir.path().join("data").display().to_string();
    let database = unique_database("alert_kill");
    let settings = ["--alerting-config", &file, "--data-dir", &data];
    let first = Collector::start(&database, &settings).await;
    target.set(FAILING);
    hooks.wait_for(1, Duration::from_secs(20)).await;
    // Killed once the delivery is recorded (a message whose answer had not come back yet would
    // be sent again: at least once, never lost).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alerts = first.plumb_json(&["alerts", "--history", "1h"]).await;
        if alerts["deliveries"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["ok"] == true))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivery never recorded: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.kill();

    let second = Collector::start(&database, &settings).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        hooks.bodies().len(),
        1,
        "no second firing message after the restart: {:?}",
        hooks.bodies()
    );
    target.set(HEALTHY);
    let all = hooks.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        status_and_name(&all[1]),
        ("resolved".into(), "shop-health".into())
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hooks.bodies().len(), 2, "{:?}", hooks.bodies());
    assert!(second.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_rate_rule_fires_from_real_sdk_traffic() {
    let (target, hooks) = (Target::start().await, Hooks::start().await);
    let dir = tempfile::tempdir().expect("dir");
    let rule = r#"
[[rule]]
name = "pay-errors"
service = "pay"
signal = "error_rate"
above = "10%"
window = "10m"
labels = { severity = "page" }

[[rule]]
name = "cart-silent"
service = "cart"
signal = "no_data"
window = "10m"
"#;
    let file = alerting_file(dir.path(), &target.url, 2, &hooks.url, rule);
    let collector = Collector::start(
        &unique_database("alert_rule"),
        &["--alerting-config", &file],
    )
    .await;
    let mut spans = server_spans("/pay", (0..100).map(|i| 1_000 + i), SystemTime::now());
    for span in spans.iter_mut().take(30) {
        span.error = true;
    }
    send_spans(&collector, Transport::Grpc, "pay", spans).await;
    let bodies = hooks.wait_for(2, Duration::from_secs(30)).await;
    let mut names: Vec<String> = bodies.iter().map(|b| status_and_name(b).1).collect();
    names.sort();
    assert_eq!(names, ["cart-silent", "pay-errors"], "{bodies:?}");
    let pay = bodies
        .iter()
        .find(|b| status_and_name(b).1 == "pay-errors")
        .expect("pay");
    let detail = pay["alerts"][0]["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("error rate 30.00%"), "{detail}");
    assert_eq!(pay["alerts"][0]["labels"]["service"], "pay");
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_alerting_file_stops_the_start_with_file_line_and_key() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("alerts.toml");
    std::fs::write(&path, "[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\ninterval = \"often\"\n").expect("write");
    let output = tokio::process::Command::new(binary("plumb-collector"))
        .args([
            "--alerting-config",
            path.to_str().expect("utf8"),
            "--clickhouse-url",
            "http://127.0.0.1:1",
        ])
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("alerts.toml:5: interval: \"often\" is not a duration"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_expiring_in_3_days_fires_the_tls_probe() {
    let pki = TestPki::with_server_expiring(Some(3));
    let target = Collector::start_tls(&unique_database("tls_target"), &pki, false).await;
    let hooks = Hooks::start().await;
    let (collector, _dir) = start_with_alerting(
        &unique_database("tls_probe"),
        &format!(
            r#"evaluation_interval = "1s"
[[probe]]
name = "api-cert"
kind = "tls"
address = "{address}"
ca_file = "{ca}"
interval = "1s"
failure_threshold = 2
conditions = ["[CERTIFICATE_EXPIRATION] > 14d"]

[[probe]]
name = "api-cert-soon"
kind = "tls"
address = "{address}"
ca_file = "{ca}"
interval = "1s"
failure_threshold = 2
conditions = ["[CERTIFICATE_EXPIRATION] > 1d"]

{route}"#,
            address = target.query,
            ca = pki.arg("ca.pem"),
            route = route_to(&hooks.url),
        ),
    )
    .await;
    let fired = hooks.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        status_and_name(&fired[0]),
        ("firing".into(), "api-cert".into())
    );
    let detail = fired[0]["alerts"][0]["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        detail.contains("[CERTIFICATE_EXPIRATION] > 14d"),
        "{detail}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hooks.bodies().len(),
        1,
        "3 days left is more than 1 day: {:?}",
        hooks.bodies()
    );
    let uptime = collector.plumb_json(&["uptime", "--since", "1h"]).await;
    let probes = uptime["probes"].as_array().expect("probes");
    let soon = probes
        .iter()
        .find(|p| p["probe"] == "api-cert-soon")
        .expect("probe");
    let days = soon["certificate_days_left"].as_i64().unwrap_or(-1);
    assert!((2..=3).contains(&days), "{soon}");
    assert_eq!(soon["up"], true);
    assert!(collector.stop().await);
    assert!(target.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_reloads_when_it_changes_a_bad_one_keeps_the_running_one_and_firing_alerts_stay() {
    let (target, hooks) = (Target::start().await, Hooks::start().await);
    target.set(FAILING);
    let dir = tempfile::tempdir().expect("dir");
    let file = alerting_file(dir.path(), &target.url, 2, &hooks.url, "");
    let good = std::fs::read_to_string(&file).expect("read");
    let collector = Collector::start(
        &unique_database("alert_reload"),
        &["--alerting-config", &file],
    )
    .await;
    let fired = hooks.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(status_and_name(&fired[0]).1, "shop-health");

    std::fs::write(
        &file,
        format!("{good}\n[[probe]]\nname = \"broken\"\nkind = \"http\"\nurl = \"nope\"\n"),
    )
    .expect("write");
    wait_for_metric(
        &collector,
        "plumb_alerting_reloads_total{result=\"failure\"} 1",
        "the bad file was never noticed",
    )
    .await;
    assert!(
        collector.log().contains("alerts.toml:"),
        "the error names the file and line"
    );
    let alerts = collector.plumb_json(&["alerts", "--state", "firing"]).await;
    assert_eq!(
        alerts["active"][0]["name"], "shop-health",
        "the running configuration stays: {alerts}"
    );

    let second = good.replace(
        "[route]",
        &format!(
            "[[probe]]\nname = \"shop-again\"\nkind = \"http\"\nurl = \"{}\"\n\n[route]",
            target.url
        ),
    );
    std::fs::write(&file, second).expect("write");
    let all = hooks.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        status_and_name(&all[1]),
        ("firing".into(), "shop-again".into())
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hooks.bodies().len(),
        2,
        "shop-health kept its state: no second firing message: {:?}",
        hooks.bodies()
    );
    assert!(
        collector
            .metrics_text()
            .await
            .contains("plumb_alerting_reloads_total{result=\"success\"} 1")
    );
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_mutes_until_it_is_expired_and_bad_silences_are_refused() {
    let (target, hooks) = (Target::start().await, Hooks::start().await);
    let dir = tempfile::tempdir().expect("dir");
    let file = alerting_file(dir.path(), &target.url, 2, &hooks.url, "");
    let collector = Collector::start(
        &unique_database("alert_silence"),
        &["--alerting-config", &file],
    )
    .await;
    let silence = collector
        .plumb_json(&[
            "silence",
            "add",
            "alertname=shop-health",
            "service=~sh.*",
            "--for",
            "1h",
            "--comment",
            "deploy",
        ])
        .await;
    let id = silence["id"].as_str().expect("id").to_owned();
    assert_eq!(silence["state"], "active");
    target.set(FAILING);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(hooks.bodies().is_empty(), "silenced: {:?}", hooks.bodies());
    let listed = collector.plumb_json(&["silence", "list"]).await;
    assert_eq!(listed["silences"][0]["id"], id.as_str());
    assert_eq!(listed["silences"][0]["comment"], "deploy");

    let expired = collector.plumb_json(&["silence", "expire", &id]).await;
    assert_eq!(expired["state"], "expired");
    let fired = hooks.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        status_and_name(&fired[0]),
        ("firing".into(), "shop-health".into())
    );

    let refused = collector
        .plumb(&["silence", "add", "not a matcher"], false)
        .await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is not a matcher"), "{stderr}");
    let client = reqwest::Client::new();
    let bad = client
        .post(format!("{}/api/v1/silences", collector.query_url()))
        .body("{\"matchers\": [], \"duration_seconds\": 60}")
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), 400);
    let gone = client
        .delete(format!("{}/api/v1/silences/nope", collector.query_url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(gone.status(), 404);
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_mutes_what_it_matches() {
    let (target, hooks) = (Target::start().await, Hooks::start().await);
    target.set(FAILING);
    let dir = tempfile::tempdir().expect("dir");
    // Opens every minute for an hour: always open.
    let window = "[[maintenance]]\ncron = \"* * * * *\"\nduration = \"1h\"\ntimezone = \"Europe/Amsterdam\"\nmatchers = [\"service=shop\"]\n";
    let file = alerting_file(dir.path(), &target.url, 2, &hooks.url, window);
    let collector = Collector::start(
        &unique_database("alert_maintenance"),
        &["--alerting-config", &file],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        hooks.bodies().is_empty(),
        "in maintenance: {:?}",
        hooks.bodies()
    );
    let alerts = collector.plumb_json(&["alerts", "--state", "firing"]).await;
    assert_eq!(
        alerts["active"][0]["name"], "shop-health",
        "it fires, but says nothing: {alerts}"
    );
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_file_even_when_it_looks_unchanged() {
    let (target, hooks) = (Target::start().await, Hooks::start().await);
    let dir = tempfile::tempdir().expect("dir");
    let file = alerting_file(dir.path(), &target.url, 9, &hooks.url, "");
    let collector =
        Collector::start(&unique_database("alert_hup"), &["--alerting-config", &file]).await;
    // The same size and modification time, so only the signal can make it reload: down after 2.
    let before = std::fs::metadata(&file)
        .expect("stat")
        .modified()
        .expect("mtime");
    let text = std::fs::read_to_string(&file)
        .expect("read")
        .replace("failure_threshold = 9", "failure_threshold = 2");
    std::fs::write(&file, text).expect("write");
    std::fs::File::options()
        .write(true)
        .open(&file)
        .expect("open")
        .set_modified(before)
        .expect("set mtime");
    tokio::time::sleep(Duration::from_secs(3)).await;
    collector.hang_up();
    wait_for_metric(
        &collector,
        "plumb_alerting_reloads_total{result=\"success\"} 1",
        "SIGHUP did not reload",
    )
    .await;
    target.set(FAILING);
    // With the old file's 9 failures in a row (one a second) this could not fire within 7 s.
    let fired = hooks.wait_for(1, Duration::from_secs(7)).await;
    assert_eq!(
        status_and_name(&fired[0]),
        ("firing".into(), "shop-health".into())
    );
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inhibit_rule_mutes_what_a_firing_alert_covers() {
    let (target, hooks) = (Target::start().await, Hooks::start().await);
    let dir = tempfile::tempdir().expect("dir");
    let extra = format!(
        r#"
[[probe]]
name = "core-down"
kind = "http"
url = "{}"
failure_threshold = 1
labels = {{ service = "shop", severity = "critical" }}

[[inhibit]]
source_matchers = ["severity=critical"]
target_matchers = ["severity=page"]
equal = ["service"]
"#,
        target.url
    );
    let file = alerting_file(dir.path(), &target.url, 3, &hooks.url, &extra);
    let collector = Collector::start(
        &unique_database("alert_inhibit"),
        &["--alerting-config", &file],
    )
    .await;
    target.set(FAILING);
    let fired = hooks.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        status_and_name(&fired[0]),
        ("firing".into(), "core-down".into())
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        hooks.bodies().len(),
        1,
        "shop-health is inhibited: {:?}",
        hooks.bodies()
    );
    let alerts = collector.plumb_json(&["alerts", "--state", "firing"]).await;
    let firing: Vec<&str> = alerts["active"]
        .as_array()
        .expect("active")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(
        firing.contains(&"shop-health") && firing.contains(&"core-down"),
        "{firing:?}"
    );
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_probes_read_the_serving_status() {
    use tonic_health::ServingStatus;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("shop", ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let hooks = Hooks::start().await;
    let (collector, _dir) = start_with_alerting(
        &unique_database("grpc_probe"),
        &format!(
            r#"evaluation_interval = "1s"
[defaults.probe]
interval = "1s"
failure_threshold = 2
[[probe]]
name = "shop-grpc"
kind = "grpc"
address = "{address}"
service = "shop"
{route}"#,
            route = route_to(&hooks.url)
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(hooks.bodies().is_empty(), "serving: {:?}", hooks.bodies());
    reporter
        .set_service_status("shop", ServingStatus::NotServing)
        .await;
    let fired = hooks.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        status_and_name(&fired[0]),
        ("firing".into(), "shop-grpc".into())
    );
    let detail = fired[0]["alerts"][0]["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("[BODY].status == SERVING"), "{detail}");
    reporter
        .set_service_status("shop", ServingStatus::Serving)
        .await;
    let all = hooks.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        status_and_name(&all[1]),
        ("resolved".into(), "shop-grpc".into())
    );
    let uptime = collector.plumb_json(&["uptime", "--since", "1h"]).await;
    assert_eq!(uptime["probes"][0]["probe"], "shop-grpc");
    assert!(
        uptime["probes"][0]["failures"].as_u64().unwrap_or(0) >= 2,
        "{uptime}"
    );
    assert!(collector.stop().await);
}

//! The sidecar receives from the stock OpenTelemetry exporters (gRPC and HTTP/JSON) and forwards
//! to a real collector: nothing is lost, host attributes are added, and its counters say so.

use plumb_test_support::{
    Collector, SpanSpec, Transport, binary, endpoint, query_number, send_spans_to, server_spans,
    unique_database, wait_for_number,
};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

/// A running `plumb-agent` sidecar and the addresses from its ready line.
struct Sidecar {
    child: Child,
    grpc: String,
    http: String,
    admin: String,
}

impl Sidecar {
    fn start(collector_url: &str) -> Self {
        Self::start_with(collector_url, &["--host-metrics-interval", "1s"])
    }

    fn start_with(collector_url: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(binary("plumb-agent"))
            .args(["--collector-url", collector_url])
            .args(extra)
            .args([
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("plumb-agent starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("plumb-agent ready"))
            .expect("ready line");
        // Keep draining the log so the sidecar never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let field = |name: &str| {
            let start = ready.find(&format!("{name}=")).expect(name) + name.len() + 1;
            format!(
                "http://{}",
                ready[start..].split_whitespace().next().expect("address")
            )
        };
        Self {
            grpc: field("grpc"),
            http: field("http"),
            admin: field("admin"),
            child,
        }
    }

    fn stop(mut self) {
        self.stop_in_place();
    }

    fn stop_in_place(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn spans(route: &str, n: u64) -> Vec<SpanSpec> {
    server_spans(
        route,
        (0..n).map(|i| 500 + i * 10),
        SystemTime::now() - Duration::from_secs(1),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_exporters_through_the_sidecar_reach_the_collector_complete() {
    let database = unique_database("sidecar");
    let collector = Collector::start(&database, &[]).await;
    let sidecar = Sidecar::start(&collector.grpc_url());
    send_spans_to(
        &sidecar.grpc,
        &sidecar.http,
        Transport::Grpc,
        "python-app",
        spans("/grpc", 3000),
    )
    .await;
    send_spans_to(
        &sidecar.grpc,
        &sidecar.http,
        Transport::HttpJson,
        "python-app",
        spans("/json", 2000),
    )
    .await;

    let endpoints = collector.wait_for_requests("python-app", 5000, &[]).await;
    assert_eq!(endpoint(&endpoints, "GET /grpc")["requests"], 3000);
    assert_eq!(endpoint(&endpoints, "GET /json")["requests"], 2000);
    // Span rows are written apart from the latency rows waited for above.
    let with_host = wait_for_number(
        &database,
        "SELECT count() FROM spans WHERE service = 'python-app' AND has(resource.key, 'host.name')",
        5000,
    )
    .await;
    assert_eq!(with_host, 5000, "the sidecar adds host.name");

    let metrics = reqwest::get(format!("{}/metrics", sidecar.admin))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("plumb_agent_received_total{signal=\"spans\"} 5000"),
        "{metrics}"
    );
    assert!(
        metrics.contains("plumb_agent_forwarded_total{signal=\"spans\"} 5000"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("plumb_agent_dropped_total{signal=\"spans\"}"),
        "{metrics}"
    );
    let health = reqwest::get(format!("{}/healthz", sidecar.admin))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    // Host metrics from the sidecar itself.
    sidecar.stop();
    let mut host_rows = 0;
    for _ in 0..40 {
        host_rows = query_number(
            &database,
            "SELECT count() FROM metrics WHERE service = 'plumb-agent' AND name = 'system.memory.usage'",
        )
        .await;
        if host_rows > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(host_rows > 0, "host metrics from the sidecar");
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_to_the_sidecar_get_clear_errors() {
    let sidecar = Sidecar::start("http://127.0.0.1:1");
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/v1/traces", sidecar.http))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("malformed OTLP JSON")
    );
    let response = client
        .post(format!("{}/v1/traces", sidecar.http))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 415);
    sidecar.stop();
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_collector_outage_the_backlog_holds_what_fits_and_counts_the_rest() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut sidecar = Sidecar::start_with(
        &format!("http://127.0.0.1:{port}"),
        &[
            "--max-backlog-bytes",
            "400000",
            "--host-metrics-interval",
            "0s",
            // zstd on this path, gzip on the other: the collector accepts both.
            "--compression",
            "zstd",
        ],
    );
    // The collector is down: the sidecar still accepts everything from the SDK.
    send_spans_to(
        &sidecar.grpc,
        &sidecar.http,
        Transport::Grpc,
        "outage-app",
        spans("/held", 5000),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let database = unique_database("sidecar_outage");
    let grpc_addr = format!("127.0.0.1:{port}");
    let collector = Collector::start(&database, &["--grpc-addr", &grpc_addr]).await;
    let admin = sidecar.admin.clone();
    let read = || async {
        let text = reqwest::get(format!("{admin}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        (
            metric(&text, "plumb_agent_forwarded_total{signal=\"spans\"}"),
            metric(&text, "plumb_agent_dropped_total{signal=\"spans\"}"),
        )
    };
    let (mut forwarded, mut dropped) = (0, 0);
    for _ in 0..240 {
        (forwarded, dropped) = read().await;
        if forwarded + dropped == 5000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(dropped > 0, "a 400 kB backlog cannot hold 5000 spans");
    assert!(forwarded > 0, "what fitted was forwarded after the outage");
    assert_eq!(
        forwarded + dropped,
        5000,
        "every span is forwarded or counted as dropped"
    );
    let arrived = wait_for_number(
        &database,
        "SELECT count() FROM spans WHERE service = 'outage-app'",
        forwarded,
    )
    .await;
    assert_eq!(arrived, forwarded, "what was forwarded is stored");
    sidecar.stop_in_place();
    assert!(collector.stop().await);
}

#[test]
fn a_config_file_with_an_unknown_option_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "collector_url = \"http://127.0.0.1:4317\"\nmax_backlog = 1\n",
    )
    .expect("write");
    let output = Command::new(binary("plumb-agent"))
        .arg("--config")
        .arg(&path)
        .env_remove("PLUMB_COLLECTOR_URL")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown option \"max_backlog\""),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_checks_local_tokens_and_sends_its_own_to_the_collector() {
    let database = unique_database("sidecar_auth");
    let collector =
        Collector::start(&database, &["--ingest-tokens", "agents=collector-token-1"]).await;
    let sidecar = Sidecar::start_with(
        &collector.grpc_url(),
        &[
            "--collector-token",
            "collector-token-1",
            "--ingest-tokens",
            "app=local-token-77",
            "--host-metrics-interval",
            "0s",
        ],
    );
    // Without the local token the sidecar refuses; with it, spans reach the collector, which
    // accepts the sidecar's own token.
    let refused = reqwest::Client::new()
        .post(format!("{}/v1/traces", sidecar.http))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 401);
    send_spans_to(
        &sidecar.grpc,
        &sidecar.http,
        Transport::GrpcWithToken("local-token-77"),
        "tokened-app",
        spans("/t", 200),
    )
    .await;
    let endpoints = collector.wait_for_requests("tokened-app", 200, &[]).await;
    assert_eq!(endpoint(&endpoints, "GET /t")["requests"], 200);
    sidecar.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_honours_back_pressure_and_delivers_everything_later() {
    let database = unique_database("sidecar_pushback");
    let proxy = plumb_test_support::PausableProxy::in_front_of_clickhouse().await;
    let collector = Collector::start_with(
        &database,
        &["--clickhouse-url", &proxy.url()],
        &[
            "--queue-batches",
            "1",
            "--batch-rows",
            "500",
            "--enqueue-timeout",
            "200ms",
            // No room to spool: the writer holds its batch and the queue fills.
            "--spool-max-bytes",
            "1",
            "--write-timeout",
            "1s",
        ],
    )
    .await;
    let sidecar = Sidecar::start_with(&collector.grpc_url(), &["--host-metrics-interval", "0s"]);
    proxy.pause();
    // The collector's writer stalls, its queue fills and it answers RESOURCE_EXHAUSTED with a
    // retry hint; the sidecar holds the spans and tries again.
    send_spans_to(
        &sidecar.grpc,
        &sidecar.http,
        Transport::Grpc,
        "patient-app",
        spans("/p", 4000),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = reqwest::get(format!("{}/metrics", collector.query_url()))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if metric(&text, "plumb_requests_refused_total") > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never pushed back: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.resume();
    let endpoints = collector.wait_for_requests("patient-app", 4000, &[]).await;
    assert_eq!(endpoint(&endpoints, "GET /p")["requests"], 4000);
    sidecar.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_forwards_over_mutual_tls() {
    let pki = plumb_test_support::TestPki::new();
    let database = unique_database("sidecar_tls");
    let collector = Collector::start_tls(&database, &pki, true).await;
    let sidecar = Sidecar::start_with(
        &format!("https://{}", collector.grpc),
        &[
            "--collector-ca-cert",
            &pki.arg("ca.pem"),
            "--collector-client-cert",
            &pki.arg("client.pem"),
            "--collector-client-key",
            &pki.arg("client.key"),
            "--host-metrics-interval",
            "0s",
        ],
    );
    send_spans_to(
        &sidecar.grpc,
        &sidecar.http,
        Transport::Grpc,
        "tls-app",
        spans("/s", 300),
    )
    .await;
    let arrived = wait_for_number(
        &database,
        "SELECT count() FROM spans WHERE service = 'tls-app'",
        300,
    )
    .await;
    sidecar.stop();
    assert_eq!(arrived, 300, "spans arrive over mutual TLS");
}

//! The demo backend, instrumented by the library, sends to a real collector and ClickHouse: route
//! templates, status codes, error counts and latency come out right, and a request through two
//! services is one trace with the right parent/child links.

use plumb_test_support::{Collector, binary, endpoint, query_number, store, unique_database};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `plumb-demo serve` process.
struct Demo {
    child: Child,
    url: String,
}

impl Demo {
    fn start(service: &str, otlp: &str, recs_url: &str) -> Self {
        Self::start_with(service, otlp, recs_url, &[])
    }

    fn start_with(service: &str, otlp: &str, recs_url: &str, extra: &[&str]) -> Self {
        Self::spawn(service, recs_url, &["--otlp-endpoint", otlp], extra, &[])
    }

    /// Starts with the exporter configured only through `OTEL_*` variables.
    fn start_from_env(service: &str, recs_url: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(service, recs_url, &[], &[], env)
    }

    fn spawn(
        service: &str,
        recs_url: &str,
        otlp: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut child = Command::new(binary("plumb-demo"))
            .args(["serve", "--service", service, "--addr", "127.0.0.1:0"])
            .args(["--recs-url", recs_url])
            .args(otlp)
            .envs(env.iter().copied())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("plumb-demo starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut line = String::new();
        BufReader::new(stderr)
            .read_line(&mut line)
            .expect("first line");
        let addr = line.rsplit(' ').next().expect("address").trim().to_owned();
        assert!(line.contains("listening on"), "unexpected: {line}");
        Self {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// Stops with Ctrl-C, which flushes the agent.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_backend_spans_become_endpoints_and_traces() {
    let database = unique_database("demo");
    let collector = Collector::start(&database, &[]).await;
    // recs takes its exporter settings from the standard OpenTelemetry variables.
    let recs = Demo::start_from_env(
        "recs",
        "http://127.0.0.1:1",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.grpc_url()),
            ("OTEL_RESOURCE_ATTRIBUTES", "team=discovery"),
        ],
    );
    let shop = Demo::start("shop", &collector.grpc_url(), &recs.url);
    let client = reqwest::Client::new();
    let mut checkout_failures = 0;
    for i in 0..60u32 {
        let ok = client
            .get(format!("{}/users/{}", shop.url, 1000 + i))
            .send()
            .await
            .expect("users");
        assert_eq!(ok.status(), 200);
    }
    for _ in 0..40 {
        let r = client
            .post(format!("{}/checkout", shop.url))
            .send()
            .await
            .expect("checkout");
        checkout_failures += u64::from(r.status() == 500);
    }
    for i in 0..20u32 {
        let r = client
            .get(format!("{}/orders/{i}", shop.url))
            .send()
            .await
            .expect("orders");
        assert_eq!(r.status(), 200);
    }
    for i in 0..10u32 {
        let r = client
            .get(format!("{}/recommendations/{i}", shop.url))
            .send()
            .await
            .expect("recs");
        assert_eq!(r.status(), 200);
    }
    shop.stop();
    recs.stop();

    let endpoints = collector.wait_for_requests("shop", 130, &[]).await;
    assert_eq!(endpoint(&endpoints, "GET /users/{id}")["requests"], 60);
    assert_eq!(endpoint(&endpoints, "GET /users/{id}")["errors"], 0);
    let checkout = endpoint(&endpoints, "POST /checkout");
    assert_eq!(checkout["requests"], 40);
    assert_eq!(checkout["errors"].as_u64(), Some(checkout_failures));
    // /orders sleeps about 38 ms, 28 ms or more of it in the database CLIENT span.
    let orders_p50 = endpoint(&endpoints, "GET /orders/{id}")["p50_ms"]
        .as_f64()
        .expect("p50");
    assert!(
        (37.0..80.0).contains(&orders_p50),
        "orders p50 {orders_p50}"
    );
    let clients = collector
        .wait_for_requests("shop", 30, &["--kind", "client"])
        .await;
    let db_p50 = endpoint(&clients, "SELECT orders")["p50_ms"]
        .as_f64()
        .expect("p50");
    assert!(
        db_p50 >= 27.0 && db_p50 < orders_p50,
        "db p50 {db_p50} vs orders {orders_p50}"
    );
    collector.wait_for_requests("recs", 10, &[]).await;
    let team = query_number(
        &database,
        "SELECT count() FROM spans WHERE service = 'recs' AND resource.value[indexOf(resource.key, 'team')] = 'discovery'",
    )
    .await;
    assert_eq!(team, 10, "OTEL_RESOURCE_ATTRIBUTES reaches the resource");

    // Each recs span is the child of a shop CLIENT span in the same trace.
    let store = store(&database).await;
    let linked: u64 = store
        .client()
        .query(
            "SELECT count() FROM spans WHERE service = 'recs'
             AND (trace_id, parent_span_id) IN
                 (SELECT trace_id, span_id FROM spans WHERE service = 'shop' AND kind = 'client')",
        )
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(linked, 10);
    // And the shop CLIENT span is the child of the shop SERVER span.
    let nested: u64 = store
        .client()
        .query(
            "SELECT count() FROM spans WHERE service = 'shop' AND kind = 'client' AND name = 'GET /recs/{id}'
             AND (trace_id, parent_span_id) IN
                 (SELECT trace_id, span_id FROM spans WHERE service = 'shop' AND kind = 'server')",
        )
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(nested, 10);
    // A span made with the `tracing` macros is exported too, under the request's SERVER span.
    let traced: u64 = store
        .client()
        .query(
            "SELECT count() FROM spans WHERE service = 'shop' AND name = 'render order'
             AND (trace_id, parent_span_id) IN
                 (SELECT trace_id, span_id FROM spans WHERE service = 'shop' AND operation = 'GET /orders/{id}')",
        )
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(traced, 20);

    // Host and process metrics from the agent, exported at least once (at shutdown).
    #[derive(Debug, clickhouse::Row, serde::Deserialize)]
    struct Reading {
        name: String,
        value: f64,
    }
    let readings: Vec<Reading> = store
        .client()
        .query(
            "SELECT name, max(value) AS value FROM metrics
             WHERE service = 'shop' AND (name != 'system.memory.usage' OR has(attributes.value, 'used'))
             GROUP BY name ORDER BY name",
        )
        .fetch_all()
        .await
        .expect("metrics");
    let value = |name: &str| {
        readings
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.value)
            .unwrap_or_else(|| panic!("no {name} in {readings:?}"))
    };
    assert!((0.0..=1.0).contains(&value("system.cpu.utilization")));
    let (used, limit) = (value("system.memory.usage"), value("system.memory.limit"));
    assert!(used > 0.0 && used < limit, "memory {used} of {limit}");
    let resident = value("process.memory.usage");
    assert!(resident > 1e6 && resident < used, "resident {resident}");
    assert!(value("process.cpu.time") > 0.0);
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_collector_is_down_requests_are_served_spans_queue_and_drops_are_counted() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let otlp = format!("http://127.0.0.1:{port}");
    let shop = Demo::start_with(
        "shop",
        &otlp,
        "http://127.0.0.1:1",
        &["--max-queued-spans", "100"],
    );
    let client = reqwest::Client::new();
    let mut sent = 0u64;
    // Nothing listens on the OTLP port: every request must still be served.
    for round in 0..2 {
        for i in 0..300u32 {
            let r = client
                .get(format!("{}/health?r={round}&i={i}", shop.url))
                .send()
                .await
                .expect("served");
            assert_eq!(r.status(), 200);
            sent += 1;
        }
        // Let the agent try to export and start retrying; the second round then fills its queue.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    }
    let database = unique_database("outage");
    let grpc_addr = format!("127.0.0.1:{port}");
    let collector = Collector::start(&database, &["--grpc-addr", &grpc_addr]).await;
    // The held spans arrive once the collector is back (the agent retries with backoff).
    let count = |sql: &'static str| query_number(&database, sql);
    for _ in 0..240 {
        if count("SELECT count() FROM spans WHERE service = 'shop'").await >= 300 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    shop.stop();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let arrived = count("SELECT count() FROM spans WHERE service = 'shop'").await;
    let dropped = count(
        "SELECT toUInt64(max(value)) FROM metrics WHERE service = 'shop' AND name = 'plumb.agent.spans.dropped'",
    )
    .await;
    assert!(
        arrived >= 300,
        "spans held through the outage arrived: {arrived}"
    );
    assert!(dropped > 0, "the full queue dropped spans and counted them");
    assert_eq!(
        arrived + dropped,
        sent,
        "every span is either delivered or counted as dropped"
    );
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_library_sends_its_token() {
    let database = unique_database("demo_token");
    let collector = Collector::start(&database, &["--ingest-tokens", "shop=library-token-5"]).await;
    // The token comes from PLUMB_TOKEN (AgentConfig::token); a wrong one is refused.
    let shop = Demo::spawn(
        "shop",
        "http://127.0.0.1:1",
        &["--otlp-endpoint", &collector.grpc_url()],
        &[],
        &[("PLUMB_TOKEN", "library-token-5")],
    );
    let stranger = Demo::spawn(
        "recs",
        "http://127.0.0.1:1",
        &["--otlp-endpoint", &collector.grpc_url()],
        &[],
        &[("PLUMB_TOKEN", "not-the-token")],
    );
    let client = reqwest::Client::new();
    for (demo, path) in [(&shop, "users"), (&stranger, "recs")] {
        for i in 0..10u32 {
            let r = client
                .get(format!("{}/{path}/{i}", demo.url))
                .send()
                .await
                .expect("users");
            assert_eq!(r.status(), 200);
        }
    }
    shop.stop();
    stranger.stop();
    collector.wait_for_requests("shop", 10, &[]).await;
    let strangers = query_number(
        &database,
        "SELECT count() FROM spans WHERE service = 'recs'",
    )
    .await;
    assert_eq!(strangers, 0, "a wrong token gets nothing in");
    let refused = collector.metrics_text().await;
    assert!(
        !refused.contains("plumb_requests_refused_total 0"),
        "the stranger's exports were refused: {refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_library_exports_over_tls() {
    let pki = plumb_test_support::TestPki::new();
    let database = unique_database("demo_tls");
    let collector = Collector::start_tls(&database, &pki, false).await;
    let ca = pki.arg("ca.pem");
    let shop = Demo::spawn(
        "shop",
        "http://127.0.0.1:1",
        &["--otlp-endpoint", &format!("https://{}", collector.grpc)],
        &[],
        &[("PLUMB_CA_CERT", ca.as_str())],
    );
    let client = reqwest::Client::new();
    for i in 0..10u32 {
        let r = client
            .get(format!("{}/users/{i}", shop.url))
            .send()
            .await
            .expect("users");
        assert_eq!(r.status(), 200);
    }
    shop.stop();
    for _ in 0..120 {
        let n = query_number(
            &database,
            "SELECT count() FROM spans WHERE service = 'shop' AND kind = 'server'",
        )
        .await;
        if n == 10 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("spans never arrived over TLS");
}

//! Spans with known latency distributions go in through the SDK exporters; the percentiles,
//! counts, error rates and time shares that `plumb top --json` reports must match.

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use plumb_test_support::*;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// Per (service, operation): the exact durations (µs) and the error count.
type Expected = HashMap<(String, String), (Vec<u64>, u64)>;
/// Spans to send per service, and what must come out.
type Workload = (Vec<(String, Vec<SpanSpec>)>, Expected);

/// Builds a workload: for each endpoint, durations and errors of a known shape, spread over the
/// last few minutes so several minute buckets are merged.
fn workload(seed: u64) -> Workload {
    let mut rng = Sequence::new(seed);
    let now = SystemTime::now();
    let mut expected = Expected::new();
    let mut by_service: HashMap<String, Vec<SpanSpec>> = HashMap::new();
    let mut add = |service: &str, operation: &str, spec: SpanSpec, is_error: bool| {
        let e = expected
            .entry((service.into(), operation.into()))
            .or_default();
        e.0.push(spec.duration_us);
        e.1 += u64::from(is_error);
        by_service.entry(service.into()).or_default().push(spec);
    };
    let start = |rng: &mut Sequence| now - Duration::from_secs(5 + rng.below(240));
    // checkout: POST /checkout with the current conventions, uniform 1..201 ms, 10% errors.
    for i in 0..6000u64 {
        let spec = SpanSpec {
            name: "POST /checkout".into(),
            kind: SpanKind::Server,
            attributes: vec![
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.route", "/checkout"),
                KeyValue::new("http.response.status_code", 200),
            ],
            duration_us: 1_000 + rng.below(200_000),
            error: i % 10 == 0,
            start: start(&mut rng),
        };
        let error = spec.error;
        add("checkout", "POST /checkout", spec, error);
    }
    // checkout: GET /users/<id> with the old conventions and raw paths: templated; 1% 503s.
    for i in 0..5000u64 {
        let status = if i % 100 == 0 { 503 } else { 200 };
        let spec = SpanSpec {
            name: "HTTP GET".into(),
            kind: SpanKind::Server,
            attributes: vec![
                KeyValue::new("http.method", "GET"),
                KeyValue::new("http.target", format!("/users/{}?full=1", 1000 + i)),
                KeyValue::new("http.status_code", status),
            ],
            duration_us: 200 + rng.below(3_000) * rng.below(3),
            error: false,
            start: start(&mut rng),
        };
        add("checkout", "GET /users/{id}", spec, status >= 500);
    }
    // checkout: a CLIENT span (a DB call) that must not be ranked as an endpoint by default.
    for _ in 0..500u64 {
        let spec = SpanSpec {
            name: "SELECT orders".into(),
            kind: SpanKind::Client,
            attributes: vec![KeyValue::new("db.system", "postgresql")],
            duration_us: 500 + rng.below(5_000),
            error: false,
            start: start(&mut rng),
        };
        add("checkout", "SELECT orders", spec, false);
    }
    // search: a slow tail: 90% about 5 ms, 10% about 800 ms.
    for _ in 0..9000u64 {
        let slow = rng.below(10) == 0;
        let spec = SpanSpec {
            name: "GET /search".into(),
            kind: SpanKind::Server,
            attributes: vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/search"),
            ],
            duration_us: if slow {
                700_000 + rng.below(200_000)
            } else {
                4_000 + rng.below(2_000)
            },
            error: false,
            start: start(&mut rng),
        };
        add("search", "GET /search", spec, false);
    }
    (by_service.into_iter().collect(), expected)
}

fn check_endpoint(
    endpoints: &[serde_json::Value],
    service: &str,
    operation: &str,
    durations: &[u64],
    errors: u64,
    service_total_us: u64,
) {
    let e = endpoint(endpoints, operation);
    assert_eq!(e["service"], service);
    assert_eq!(
        e["requests"].as_u64(),
        Some(durations.len() as u64),
        "{operation} requests"
    );
    assert_eq!(e["errors"].as_u64(), Some(errors), "{operation} errors");
    for (q, field) in [(0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")] {
        let reported = e[field].as_f64().expect("percentile");
        assert_within_one_percent(
            reported,
            exact_quantile(durations, q),
            &format!("{operation} {field}"),
        );
    }
    let share = e["time_share_percent"].as_f64().expect("share");
    let exact_share = 100.0 * durations.iter().sum::<u64>() as f64 / service_total_us as f64;
    assert!(
        (share - exact_share).abs() < 0.01,
        "{operation} time share {share} vs {exact_share}"
    );
    let error_percent = e["error_percent"].as_f64().expect("error %");
    assert!((error_percent - 100.0 * errors as f64 / durations.len() as f64).abs() < 1e-9);
}

async fn run_workload(transport: Transport, seed: u64) {
    let database = unique_database("e2e");
    let collector = Collector::start(&database, &[]).await;
    let (by_service, expected) = workload(seed);
    for (service, spans) in by_service {
        send_spans(&collector, transport, &service, spans).await;
    }
    for service in ["checkout", "search"] {
        let server_ops: Vec<_> = expected
            .keys()
            .filter(|(s, o)| s == service && o != "SELECT orders")
            .collect();
        let total_requests: u64 = server_ops.iter().map(|k| expected[*k].0.len() as u64).sum();
        let service_total_us: u64 = server_ops
            .iter()
            .map(|k| expected[*k].0.iter().sum::<u64>())
            .sum();
        let endpoints = collector
            .wait_for_requests(service, total_requests, &["--since", "10m"])
            .await;
        assert_eq!(
            endpoints.len(),
            server_ops.len(),
            "only server endpoints are ranked: {endpoints:#?}"
        );
        for (_, operation) in server_ops {
            let (durations, errors) = &expected[&(service.to_owned(), operation.clone())];
            check_endpoint(
                &endpoints,
                service,
                operation,
                durations,
                *errors,
                service_total_us,
            );
        }
    }
    // The client span is there with --kind client.
    let clients = collector
        .wait_for_requests("checkout", 500, &["--kind", "client"])
        .await;
    assert_eq!(endpoint(&clients, "SELECT orders")["kind"], "client");
    // Sorting: by p99 the slow-tail search endpoint leads; by rps the busiest does.
    let by_p99 = collector.top(&["--since", "10m"]).await;
    assert_eq!(by_p99["endpoints"][0]["operation"], "GET /search");
    let by_errors = collector
        .top(&["--since", "10m", "--by", "errors", "--limit", "1"])
        .await;
    assert_eq!(by_errors["endpoints"][0]["operation"], "POST /checkout");
    assert_eq!(by_errors["endpoints"].as_array().map(Vec::len), Some(1));
    // Spans are stored too, one row each.
    let store = store(&database).await;
    let rows: u64 = store
        .client()
        .query("SELECT count() FROM spans WHERE service = ?")
        .bind("checkout")
        .fetch_one()
        .await
        .expect("count spans");
    assert_eq!(rows, 11_500);
    assert!(collector.stop().await, "collector exits cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_grpc_spans_give_exact_counts_and_percentiles_within_one_percent() {
    run_workload(Transport::Grpc, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_http_json_spans_give_exact_counts_and_percentiles_within_one_percent() {
    run_workload(Transport::HttpJson, 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_query_api_matches_the_cli() {
    let database = unique_database("api");
    let collector = Collector::start(&database, &[]).await;
    let spans = (0..100u64)
        .map(|i| SpanSpec {
            name: "GET /health".into(),
            kind: SpanKind::Server,
            attributes: vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/health"),
            ],
            duration_us: 1000 + i * 10,
            error: false,
            start: SystemTime::now() - Duration::from_secs(2),
        })
        .collect();
    send_spans(&collector, Transport::Grpc, "api", spans).await;
    let from_cli = collector.wait_for_requests("api", 100, &[]).await;
    let client = reqwest::Client::new();
    let body: serde_json::Value = client
        .get(format!(
            "{}/api/v1/top?since=15m&service=api",
            collector.query_url()
        ))
        .send()
        .await
        .expect("GET /api/v1/top")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["endpoints"][0]["p99_ms"], from_cli[0]["p99_ms"]);
    assert_eq!(body["endpoints"][0]["requests"], 100);
    let bad = client
        .get(format!("{}/api/v1/top?by=slowness", collector.query_url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(bad.status(), 400);
    let text = bad.text().await.expect("body");
    assert!(text.contains("unknown sort key"), "{text}");
    let bad_since = client
        .get(format!(
            "{}/api/v1/top?since=yesterday",
            collector.query_url()
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(bad_since.status(), 400);
}

//! Start-up and shutdown: the managed local ClickHouse, the error when none can be found, and
//! SIGTERM flushing everything that was accepted.

use plumb_test_support::*;
use std::time::{Duration, SystemTime};

fn spans(n: u64, route: &str) -> Vec<SpanSpec> {
    server_spans(
        route,
        (0..n).map(|i| 100 + i),
        SystemTime::now() - Duration::from_secs(1),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_every_accepted_span_and_histogram() {
    let database = unique_database("shutdown");
    // Nothing would be flushed for an hour: only shutdown can write these rows.
    let collector = Collector::start(&database, &["--flush-interval", "1h"]).await;
    send_spans(&collector, Transport::Grpc, "flushme", spans(3000, "/a")).await;
    assert!(collector.stop().await, "clean exit");
    let store = store(&database).await;
    let spans: u64 = store
        .client()
        .query("SELECT count() FROM spans")
        .fetch_one()
        .await
        .expect("count");
    let requests: u64 = store
        .client()
        .query("SELECT sum(requests) FROM latency_minute")
        .fetch_one()
        .await
        .expect("sum");
    assert_eq!((spans, requests), (3000, 3000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_url_the_collector_runs_its_own_clickhouse_and_stops_it() {
    let database = unique_database("local");
    let collector = Collector::start_with(&database, &[], &[]).await;
    send_spans(&collector, Transport::Grpc, "local", spans(10, "/local")).await;
    collector.wait_for_requests("local", 10, &[]).await;
    let log = collector.log();
    let url = log
        .split("started local ClickHouse url=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .or_else(|| {
            log.split("url=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
        })
        .unwrap_or_else(|| panic!("no local ClickHouse URL in log:\n{log}"))
        .trim_matches('"')
        .to_owned();
    let port = url.rsplit(':').next().expect("port").to_owned();
    assert!(collector.stop().await, "clean exit");
    let gone = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err();
    assert!(
        gone,
        "the local ClickHouse at {url} was stopped with the collector"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_clickhouse_binary_says_how_to_install_it() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_plumb-collector"))
        .args([
            "--clickhouse-binary",
            "/nonexistent/clickhouse",
            "--grpc-addr",
            "127.0.0.1:0",
        ])
        .env_remove("PLUMB_CLICKHOUSE_URL")
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("apt-get install -y clickhouse-server"),
        "{stderr}"
    );
    assert!(stderr.contains("--clickhouse-url"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_collector_keeps_the_data() {
    let database = unique_database("restart");
    let first = Collector::start(&database, &[]).await;
    send_spans(&first, Transport::Grpc, "restart", spans(200, "/r")).await;
    first.wait_for_requests("restart", 200, &[]).await;
    assert!(first.stop().await);
    let second = Collector::start(&database, &[]).await;
    second.wait_for_requests("restart", 200, &[]).await;
    send_spans(&second, Transport::Grpc, "restart", spans(50, "/r")).await;
    let endpoints = second.wait_for_requests("restart", 250, &[]).await;
    assert_eq!(endpoints.len(), 1);
    assert!(second.stop().await);
}

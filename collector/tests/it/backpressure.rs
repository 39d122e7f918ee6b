//! Back-pressure: when ClickHouse stops answering, the collector keeps what it accepted and
//! refuses what it cannot hold with RESOURCE_EXHAUSTED (with a RetryInfo hint) or 429 (with
//! Retry-After), and once ClickHouse answers again everything acknowledged is stored, histograms
//! exact.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use plumb_collector::loadgen::{Workload, WorkloadShape};
use plumb_otlp::client::{RawGrpcClient, TRACE_EXPORT_PATH};
use plumb_test_support::*;
use prost::Message;
use std::time::{Duration, Instant};
use tonic_types::StatusExt;

fn request(seed: u64) -> ExportTraceServiceRequest {
    Workload::new(WorkloadShape {
        services: 1,
        endpoints_per_service: 4,
        spans_per_request: 100,
        seed,
    })
    .request()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_clickhouse_gets_back_pressure_and_loses_nothing_acknowledged() {
    let database = unique_database("backpressure");
    let upstream = clickhouse_url()
        .await
        .trim_start_matches("http://")
        .to_owned();
    let proxy = PausableProxy::start(&upstream).await;
    let collector = Collector::start_with(
        &database,
        &["--clickhouse-url", &proxy.url()],
        &[
            "--queue-batches",
            "2",
            "--batch-rows",
            "500",
            "--enqueue-timeout",
            "300ms",
            "--trace-window",
            "0",
        ],
    )
    .await;
    proxy.pause();

    // Send until the collector refuses; count what it acknowledged.
    let mut client = RawGrpcClient::connect(collector.grpc_url(), TRACE_EXPORT_PATH, None)
        .await
        .expect("connect");
    let mut acknowledged = 0u64;
    let mut seed = 1;
    let refusal = loop {
        assert!(seed < 500, "never refused after {acknowledged} spans");
        let body = request(seed).encode_to_vec();
        seed += 1;
        match client.send(body.into()).await {
            Ok(_) => acknowledged += 100,
            Err(status) => break status,
        }
    };
    assert_eq!(
        refusal.code(),
        tonic::Code::ResourceExhausted,
        "{refusal:?}"
    );
    assert!(refusal.message().contains("retry"), "{refusal:?}");
    let hint = refusal.get_details_retry_info().expect("RetryInfo detail");
    assert!(
        hint.retry_delay
            .is_some_and(|d| d >= Duration::from_secs(1))
    );

    // OTLP/HTTP says 429 with Retry-After.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/traces", collector.http_url()))
        .header("content-type", "application/x-protobuf")
        .body(request(9999).encode_to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_some());

    // ClickHouse answers again: everything acknowledged arrives, nothing refused does.
    proxy.resume();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let stored = query_number(&database, "SELECT count() FROM spans").await;
        let counted = query_number(&database, "SELECT sum(requests) FROM latency_minute").await;
        if stored == acknowledged && counted == acknowledged {
            break;
        }
        assert!(
            stored <= acknowledged && counted <= acknowledged,
            "more than acknowledged: {stored} spans, {counted} counted, {acknowledged} acknowledged"
        );
        assert!(
            Instant::now() < deadline,
            "{stored} spans and {counted} counted of {acknowledged}\n{}",
            collector.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let metrics = collector.metrics_text().await;
    assert!(
        metrics.contains("plumb_requests_refused_total 2"),
        "{metrics}"
    );
    assert!(collector.stop().await);
}

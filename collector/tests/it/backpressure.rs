//! ClickHouse away: the collector spools what it cannot write and keeps accepting; a restart
//! writes the spool; with the spool full it refuses what it cannot hold with RESOURCE_EXHAUSTED
//! (with a RetryInfo hint) or 429 (with Retry-After). Once ClickHouse answers, everything
//! acknowledged is stored, histograms exact.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use plumb_loadgen::metrics::{PointKind, Series, metrics_request};
use plumb_loadgen::{Workload, WorkloadShape};
use plumb_otlp::client::{METRICS_EXPORT_PATH, RawGrpcClient, TRACE_EXPORT_PATH};
use plumb_test_support::*;
use prost::Message;
use std::time::{Duration, Instant};
use tonic_types::StatusExt;

/// One request of 100 spans, the same for the same seed.
pub(crate) fn request(seed: u64) -> ExportTraceServiceRequest {
    Workload::new(WorkloadShape {
        services: 1,
        endpoints_per_service: 4,
        spans_per_request: 100,
        seed,
    })
    .request()
}

/// Points in each [`metrics_request`].
pub(crate) const POINTS_PER_REQUEST: u64 = 20;

/// One request of [`POINTS_PER_REQUEST`] metric points of two series, the same for the same
/// seed and different from every other seed's.
pub(crate) fn metrics_request_of(seed: u64) -> ExportMetricsServiceRequest {
    let now_ns = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos(),
    )
    .expect("fits");
    // Whole minutes apart per seed, so no two seeds share a point time.
    let base = now_ns - now_ns % 60_000_000_000 - 3_600_000_000_000;
    let points: Vec<(u64, f64)> = (0..POINTS_PER_REQUEST / 2)
        .map(|i| (base + seed * 1_000_000 + i, (seed * 100 + i) as f64))
        .collect();
    let resource = [("service.name", "shop"), ("host.name", "box-1")];
    metrics_request(&[
        Series {
            resource: &resource,
            name: "process.cpu.time",
            unit: "s",
            kind: PointKind::Counter,
            attributes: &[],
            points: &points,
        },
        Series {
            resource: &resource,
            name: "system.filesystem.usage",
            unit: "By",
            kind: PointKind::Gauge,
            attributes: &[("system.filesystem.mountpoint", "/data")],
            points: &points,
        },
    ])
}

/// Sends [`metrics_request_of`] for each of `seeds` over OTLP/gRPC, each accepted; returns the
/// points sent.
pub(crate) async fn send_metric_requests(
    collector: &Collector,
    seeds: std::ops::RangeInclusive<u64>,
) -> u64 {
    let mut client = RawGrpcClient::connect(collector.grpc_url(), METRICS_EXPORT_PATH, None)
        .await
        .expect("connect");
    let mut points = 0;
    for seed in seeds {
        client
            .send(metrics_request_of(seed).encode_to_vec().into())
            .await
            .expect("metrics accepted");
        points += POINTS_PER_REQUEST;
    }
    points
}

/// Metric points stored more than once (0 when none is).
pub(crate) const POINTS_STORED_TWICE: &str = "SELECT count() - uniqExact(service, name, time_ns,      arrayStringConcat(attributes.key, ','), arrayStringConcat(attributes.value, ',')) FROM metrics";

/// Spans stored more than once (0 when none is).
pub(crate) const SPANS_STORED_TWICE: &str =
    "SELECT count() - uniqExact(trace_id, span_id) FROM spans";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_clickhouse_gets_back_pressure_and_loses_nothing_acknowledged() {
    let database = unique_database("backpressure");
    let proxy = PausableProxy::in_front_of_clickhouse().await;
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
            // No room on disk: what cannot be written waits in memory, and the queue fills.
            "--spool-max-bytes",
            "1",
            "--write-timeout",
            "1s",
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

/// Sends the requests of `seeds` (100 spans each), retrying each one the collector refuses (as
/// an SDK does); returns how many spans were acknowledged.
async fn send_all(collector: &Collector, seeds: std::ops::Range<u64>) -> u64 {
    let mut client = RawGrpcClient::connect(collector.grpc_url(), TRACE_EXPORT_PATH, None)
        .await
        .expect("connect");
    let mut acknowledged = 0;
    for seed in seeds {
        let body = request(seed).encode_to_vec();
        for attempt in 0.. {
            assert!(attempt < 60, "request {seed} refused for a minute");
            match client.send(body.clone().into()).await {
                Ok(_) => {
                    acknowledged += 100;
                    break;
                }
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
    acknowledged
}

/// The summed durations (µs) of the spans of `seeds`, as the histograms add them up.
fn duration_sum_us(seeds: std::ops::Range<u64>) -> u64 {
    seeds
        .flat_map(|seed| request(seed).resource_spans)
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .map(|span| (span.end_time_unix_nano - span.start_time_unix_nano) / 1_000)
        .sum()
}

/// Waits until ClickHouse holds `expected` spans and histograms counting as many, and the
/// spool is empty; fails at once if either count passes `expected`. Then the histograms must
/// be exact: their bucket counts add up to `expected` and their duration sums to `duration_us`.
async fn wait_all_written(
    database: &str,
    expected: u64,
    duration_us: u64,
    spool: &std::path::Path,
    log: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = query_number(database, "SELECT count() FROM spans").await;
        let counted = query_number(
            database,
            "SELECT sum(requests) FROM latency_minute WHERE service != ''",
        )
        .await;
        let left = std::fs::read_dir(spool)
            .expect("spool dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .count();
        assert!(
            stored <= expected && counted <= expected,
            "{stored} spans and {counted} counted for {expected} acknowledged\n{log}"
        );
        if stored == expected && counted == expected && left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{stored} spans and {counted} counted of {expected}, {left} spool files left\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let in_buckets = query_number(
        database,
        "SELECT sum(arraySum(latencyMap.count)) FROM latency_minute WHERE service != ''",
    )
    .await;
    let summed = query_number(
        database,
        "SELECT sum(duration_sum_us) FROM latency_minute WHERE service != ''",
    )
    .await;
    assert_eq!((in_buckets, summed), (expected, duration_us), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_clickhouse_is_away_batches_are_spooled_and_written_when_it_is_back() {
    let database = unique_database("spool");
    let spool = tempfile::tempdir().expect("spool dir");
    let spool_dir = spool.path().display().to_string();
    let proxy = PausableProxy::in_front_of_clickhouse().await;
    let settings = [
        "--spool-dir",
        &spool_dir,
        "--queue-batches",
        "2",
        "--batch-rows",
        "500",
        "--trace-window",
        "0",
        "--write-timeout",
        "2s",
    ];
    let first =
        Collector::start_with(&database, &["--clickhouse-url", &proxy.url()], &settings).await;

    // Away, then back while the collector runs: the spool is written by the same process.
    proxy.pause();
    let mut acknowledged = send_all(&first, 1..31).await;
    assert_eq!(
        acknowledged, 3000,
        "nothing refused while the spool has room"
    );
    let metrics = first.metrics_text().await;
    assert!(
        metrics.contains("plumb_batches_spooled_total{table=\"spans\"}"),
        "{metrics}"
    );
    proxy.resume();
    wait_all_written(
        &database,
        acknowledged,
        duration_sum_us(1..31),
        spool.path(),
        &first.log(),
    )
    .await;

    // Away again, and the collector stopped before it is back: the rest, histograms included,
    // waits in the spool for the next start.
    proxy.pause();
    acknowledged += send_all(&first, 31..51).await;
    let log = first.log_path();
    let stopped = first.stop().await;
    assert!(
        stopped,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        query_number(&database, "SELECT count() FROM spans").await,
        3000
    );
    proxy.resume();
    let second = Collector::start(&database, &settings).await;
    wait_all_written(
        &database,
        acknowledged,
        duration_sum_us(1..51),
        spool.path(),
        &second.log(),
    )
    .await;
    let metrics = second.metrics_text().await;
    assert!(
        metrics.contains("plumb_batches_replayed_total{table=\"spans\"}"),
        "{metrics}"
    );
    assert!(second.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_clickhouse_that_runs_late_writes_stores_each_span_and_point_once_and_counts_once()
{
    let database = unique_database("frozen");
    let proxy = PausableProxy::in_front_of_clickhouse().await;
    let collector = Collector::start_with(
        &database,
        &["--clickhouse-url", &proxy.url()],
        // Flush attempts back to back, so that one is in flight whenever ClickHouse thaws.
        &[
            "--write-timeout",
            "1s",
            "--flush-interval",
            "200ms",
            "--trace-window",
            "0",
        ],
    )
    .await;
    // Frozen: writes get no answer and are carried out late, after the span and metric writers
    // have given up on them (and spooled them) and while the flusher still waits.
    proxy.freeze();
    let acknowledged = send_all(&collector, 1..11).await;
    let points = send_metric_requests(&collector, 1..=5).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let metrics = collector.metrics_text().await;
    for table in ["spans", "metrics"] {
        assert!(
            metrics.contains(&format!("plumb_batches_spooled_total{{table=\"{table}\"}}")),
            "the {table} writer gave up on its frozen write and spooled it: {metrics}"
        );
    }
    proxy.resume();
    let deadline = Instant::now() + Duration::from_secs(60);
    let counted_query = "SELECT sum(requests) FROM latency_minute WHERE service != ''";
    while query_number(&database, counted_query).await < acknowledged {
        assert!(Instant::now() < deadline, "{}", collector.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    while query_number(&database, "SELECT count() FROM metrics").await < points {
        assert!(Instant::now() < deadline, "{}", collector.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Late writes and retries have all landed by now; the histograms count each span once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        query_number(&database, counted_query).await,
        acknowledged,
        "{}",
        collector.log()
    );
    let log = collector.log();
    assert!(log.contains("carried out late"), "{log}");
    let stored = query_number(&database, "SELECT count() FROM spans").await;
    assert_eq!(stored, acknowledged, "every span stored once\n{log}");
    assert_eq!(query_number(&database, SPANS_STORED_TWICE).await, 0);
    let stored = query_number(&database, "SELECT count() FROM metrics").await;
    assert_eq!(stored, points, "every metric point stored once\n{log}");
    assert_eq!(query_number(&database, POINTS_STORED_TWICE).await, 0);
    assert!(collector.stop().await);
}

/// A spooled segment whose checksum is valid but whose rows ClickHouse refuses for good (the
/// data is cut short) is set aside as `.bad`, logged and counted, and the segments spooled after
/// it are still written: one poisoned batch never stalls the spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spooled_batch_clickhouse_refuses_is_set_aside_and_the_ones_after_it_are_written() {
    use plumb_collector::testing::{
        spool_segment, spooled_spans, spooled_spans_clickhouse_refuses,
    };
    let database = unique_database("poisoned_spool");
    let spool = tempfile::tempdir().expect("spool dir");
    let poisoned = spooled_spans_clickhouse_refuses();
    spool_segment(spool.path(), "spans", &poisoned).expect("poisoned segment");
    for seed in 1..3 {
        let rows = spooled_spans(&request(seed).encode_to_vec()).expect("valid spans");
        spool_segment(spool.path(), "spans", &rows).expect("segment");
    }
    let spool_dir = spool.path().display().to_string();
    let collector = Collector::start(&database, &["--spool-dir", &spool_dir]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = query_number(&database, "SELECT count() FROM spans").await;
        if stored == 200 {
            break;
        }
        assert!(stored < 200, "{stored} spans stored for 200 spooled");
        assert!(
            Instant::now() < deadline,
            "{stored} of 200 spans written:\n{}",
            collector.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let files: Vec<String> = std::fs::read_dir(spool.path())
        .expect("spool dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".spans.bad")).count(),
        1,
        "{files:?}"
    );
    assert!(
        !files.iter().any(|f| f.ends_with(".seg")),
        "written segments are removed: {files:?}"
    );
    let metrics = collector.metrics_text().await;
    assert!(
        metrics.contains("plumb_batches_set_aside_total{table=\"spans\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("plumb_batches_replayed_total{table=\"spans\"} 2"),
        "{metrics}"
    );
    assert!(
        collector.log().contains("refuses a spooled batch for good"),
        "{}",
        collector.log()
    );
    assert!(collector.stop().await);
}

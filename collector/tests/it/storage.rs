//! Storage behaviour: histograms from two collectors add up, the operation cap folds the
//! excess into `[overflow]`, retention drops old partitions, migrations are idempotent, and
//! OTLP metrics land in the `metrics` table.

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use plumb_collector::testing;
use plumb_test_support::*;
use std::time::{Duration, SystemTime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_writing_the_same_minute_add_up() {
    let database = unique_database("merge");
    let a = Collector::start(&database, &[]).await;
    let b = Collector::start(&database, &[]).await;
    let start = SystemTime::now() - Duration::from_secs(1);
    let fast: Vec<u64> = (0..900).map(|i| 1_000 + i).collect();
    let slow: Vec<u64> = (0..100).map(|i| 500_000 + i * 100).collect();
    send_spans(
        &a,
        Transport::Grpc,
        "shared",
        server_spans("/x", fast.clone(), start),
    )
    .await;
    send_spans(
        &b,
        Transport::Grpc,
        "shared",
        server_spans("/x", slow.clone(), start),
    )
    .await;
    let endpoints = a.wait_for_requests("shared", 1000, &[]).await;
    let all: Vec<u64> = fast.into_iter().chain(slow).collect();
    let e = endpoint(&endpoints, "GET /x");
    for (q, field) in [(0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")] {
        assert_within_one_percent(
            e[field].as_f64().expect("p"),
            exact_quantile(&all, q),
            field,
        );
    }
    assert!(a.stop().await && b.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_past_the_cap_fold_into_overflow_and_are_counted() {
    let database = unique_database("overflow");
    let collector = Collector::start(&database, &["--max-operations-per-service", "3"]).await;
    let start = SystemTime::now() - Duration::from_secs(1);
    let mut spans = Vec::new();
    for route in ["/a", "/b", "/c", "/d", "/e"] {
        spans.extend(server_spans(route, [1_000; 10], start));
    }
    send_spans(&collector, Transport::Grpc, "capped", spans).await;
    let endpoints = collector.wait_for_requests("capped", 50, &[]).await;
    assert_eq!(endpoints.len(), 4, "{endpoints:#?}");
    assert_eq!(endpoint(&endpoints, "[overflow]")["requests"], 20);
    let metrics = collector.metrics_text().await;
    assert!(
        metrics.contains("plumb_operations_overflowed_total 20"),
        "{metrics}"
    );
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_lands_in_its_hours_and_rollups_outlive_raw_data() {
    use plumb_loadgen::metrics::{PointKind, Series, metrics_request};
    let database = unique_database("retention");
    let first = Collector::start(&database, &["--max-span-age", "90d"]).await;
    let old = SystemTime::now() - Duration::from_secs(40 * 86_400);
    let fresh = SystemTime::now() - Duration::from_secs(1);
    let mut spans = server_spans("/old", [1_000; 5], old);
    spans.extend(server_spans("/new", [1_000; 7], fresh));
    send_spans(&first, Transport::Grpc, "kept", spans).await;
    // Host metrics 40 days old and fresh, through OTLP with their own timestamps.
    let ns = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64
    };
    let points = [
        (ns(old), 0.25),
        (ns(old) + 1_000_000_000, 0.75),
        (ns(fresh), 0.5),
    ];
    let request = metrics_request(&[Series {
        resource: &[("service.name", "kept"), ("host.name", "box-1")],
        name: "system.cpu.utilization",
        unit: "1",
        kind: PointKind::Gauge,
        attributes: &[],
        points: &points,
    }]);
    assert_eq!(first.send_metrics(&request).await, 0, "nothing refused");
    let count = |sql: &'static str| query_number(&database, sql);
    let hour_of_old = ns(old) / 1_000_000_000 / 3600 * 3600;
    for _ in 0..120 {
        if count("SELECT count() FROM spans").await == 12
            && count("SELECT sum(requests) FROM latency_minute").await == 12
            && count("SELECT count() FROM metrics").await == 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The old points landed in their own hour: min, max and mean of that hour.
    #[derive(Debug, clickhouse::Row, serde::Deserialize)]
    struct Hour {
        hour: u32,
        host: String,
        low: f64,
        high: f64,
        mean: f64,
        last: f64,
    }
    let hours: Vec<Hour> = store(&database)
        .await
        .client()
        .query(
            "SELECT toUInt32(hour) AS hour, host, minMerge(hour_min) AS low, maxMerge(hour_max) AS high,
                    sumMerge(hour_sum) / countMerge(hour_points) AS mean, argMaxMerge(hour_last) AS last
             FROM metric_hour GROUP BY hour, host ORDER BY hour",
        )
        .fetch_all()
        .await
        .expect("metric_hour");
    assert_eq!(hours.len(), 2, "{hours:?}");
    assert_eq!(u64::from(hours[0].hour), hour_of_old, "{hours:?}");
    assert_eq!(hours[0].host, "box-1");
    assert_eq!(
        (hours[0].low, hours[0].high, hours[0].mean, hours[0].last),
        (0.25, 0.75, 0.5, 0.75)
    );
    assert!(first.stop().await);

    // Retention runs at start-up: raw data past 30 days goes, the rollups stay (400 days).
    let tally = || async {
        (
            count("SELECT count() FROM spans").await,
            count("SELECT sum(requests) FROM latency_minute").await,
            count("SELECT sum(hour_requests) FROM latency_hour").await,
            count("SELECT count() FROM metrics").await,
            count("SELECT countMerge(hour_points) FROM metric_hour").await,
        )
    };
    let second = Collector::start(&database, &["--retention-days", "30"]).await;
    let mut left = (0, 0, 0, 0, 0);
    for _ in 0..120 {
        left = tally().await;
        if left == (7, 7, 12, 1, 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        left,
        (7, 7, 12, 1, 3),
        "raw partitions dropped, rollups kept"
    );
    assert!(second.stop().await);
    // With rollups kept for 20 days, the old day of latency_hour goes.
    let third = Collector::start(
        &database,
        &["--retention-days", "30", "--rollup-retention-days", "20"],
    )
    .await;
    for _ in 0..120 {
        left = tally().await;
        if left.2 < 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // latency_hour has daily partitions: exactly the old day goes. (metric_hour's are monthly: a
    // month goes once all of it is past the limit, which depends on today's date, so it is not
    // asserted here.)
    assert_eq!(left.2, 7, "latency_hour: {left:?}");
    assert!(third.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_recorded_once_and_safe_to_repeat() {
    let database = unique_database("migrate");
    let store = store(&database).await;
    let major = testing::server_major(&store).await.expect("version");
    let first = testing::migrate(&store).await.expect("first run");
    // Every migration the server's release has what it needs for; on 18.16 that leaves out the
    // column codecs (migrations 6 and 9), which are not recorded, so an upgraded server gets them.
    let suited: Vec<u32> = testing::migrations()
        .iter()
        .filter(|m| m.since_major <= major)
        .map(|m| m.version)
        .collect();
    assert_eq!(first, suited);
    if major < 22 {
        assert_eq!(first, vec![1, 2, 3, 4, 5, 7, 8], "on {major}");
    }
    assert!(
        testing::migrate(&store)
            .await
            .expect("second run")
            .is_empty()
    );
    let recorded: u64 = store
        .client()
        .query("SELECT count() FROM schema_migrations")
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(recorded, suited.len() as u64);
    // The hourly rollup follows the minute table.
    let hour_rows: u64 = store
        .client()
        .query("SELECT count() FROM latency_hour")
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(hour_rows, 0);
}

/// Requests and histogram counts summed over the minute table and over the hour table.
async fn latency_totals(store: &testing::Store) -> (u64, u64, u64, u64) {
    store
        .client()
        .query(
            "SELECT (SELECT sum(requests) FROM latency_minute),
                    (SELECT sum(arraySum(latencyMap.count)) FROM latency_minute),
                    (SELECT sum(hour_requests) FROM latency_hour),
                    (SELECT sum(arraySum(hourlyMap.count)) FROM latency_hour)",
        )
        .fetch_one()
        .await
        .expect("totals")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latency_tables_keep_every_row_when_copied_into_finer_index_marks() {
    let database = unique_database("granularity");
    let store = store(&database).await;
    testing::migrate(&store).await.expect("schema");
    let minute = testing::now_unix_s() / 60 * 60 - 120;
    let row = |minute: u32, operation: &str| testing::LatencyRow {
        minute,
        service: "shop".into(),
        operation: operation.into(),
        kind: 2,
        requests: 3,
        errors: 1,
        duration_sum_us: 6_000,
        buckets: vec![1_000, 2_000, 3_007],
        counts: vec![1, 1, 1],
    };
    let rows = [
        row(minute, "GET /a"),
        row(minute + 60, "GET /a"),
        row(minute, "GET /b"),
    ];
    store
        .insert(testing::LATENCY_MINUTE, &rows)
        .await
        .expect("insert");
    assert_eq!(latency_totals(&store).await, (9, 9, 9, 9));
    let rebuild = testing::migrations()
        .into_iter()
        .find(|m| m.version == 7)
        .expect("migration 7")
        .statements;
    // A run stopped after the minutes were copied, then whole runs (as after a crash, and as a
    // second run would be): nothing is counted twice and nothing is lost.
    let copied = rebuild
        .iter()
        .position(|s| s.starts_with("INSERT INTO latency_minute_rebuilt"))
        .expect("the copy");
    run_statements(&store, &rebuild[..=copied]).await;
    run_statements(&store, &rebuild).await;
    run_statements(
        &store,
        &testing::migrations()
            .into_iter()
            .find(|m| m.version == 7)
            .expect("migration 7")
            .statements,
    )
    .await;
    assert_eq!(latency_totals(&store).await, (9, 9, 9, 9));
    // Both tables are in 256-row marks, no copy or replaced table is left, and the hourly
    // view follows the new minute table.
    let tables: Vec<(String, String)> = store
        .client()
        .query(
            "SELECT name, create_table_query FROM system.tables
             WHERE database = currentDatabase() AND name LIKE 'latency%' ORDER BY name",
        )
        .fetch_all()
        .await
        .expect("tables");
    let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["latency_hour", "latency_hour_mv", "latency_minute"]);
    for (name, ddl) in &tables {
        if name != "latency_hour_mv" {
            assert!(ddl.contains("index_granularity = 256"), "{name}: {ddl}");
        }
    }
    store
        .insert(testing::LATENCY_MINUTE, &[row(minute, "GET /c")])
        .await
        .expect("insert after");
    assert_eq!(latency_totals(&store).await, (12, 12, 12, 12));
}

/// Runs `statements` one by one, panicking with the statement that failed.
async fn run_statements(store: &testing::Store, statements: &[String]) {
    for statement in statements {
        store
            .client()
            .query(statement)
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_stored_before_the_times_were_split_keep_every_value() {
    let database = unique_database("split");
    let store = store(&database).await;
    let statements = |versions: std::ops::Range<u32>| -> Vec<String> {
        testing::migrations()
            .into_iter()
            .filter(|m| versions.contains(&m.version) && m.since_major == 0)
            .flat_map(|m| m.statements)
            .collect()
    };
    // The spans table as it was before migration 8, with two spans in it: one over four
    // seconds long (so its duration has whole seconds), one as long as a u64 of nanoseconds
    // allows.
    testing::migrate(&store).await.expect("schema");
    let before = statements(1..2)
        .into_iter()
        .find(|s| s.starts_with("CREATE TABLE IF NOT EXISTS spans ("))
        .expect("the first spans table");
    run_statements(&store, &["DROP TABLE spans".to_owned(), before]).await;
    let start_s = u64::from(testing::now_unix_s()) - 60;
    let spans = [
        (start_s * 1_000_000_000 + 123_456_789, 4_000_000_001_u64, 1),
        (start_s * 1_000_000_000 + 999_999_999, u64::MAX, 2),
    ];
    for (start, duration, id) in spans {
        store
            .client()
            .query(&format!(
                "INSERT INTO spans VALUES ({}, {start}, {duration}, 'trace-id-16bytes', 'span-id{id}',
                 '', 'shop', 'GET /a', 'a', 'server', 'ok', '', 200, 0,
                 ['http.route', 'x'], ['/a', 'y'], ['service.name'], ['shop'])",
                start / 1_000_000_000
            ))
            .execute()
            .await
            .expect("old row");
    }
    // Migration 8 stopped after its copy, then whole runs (after a crash, and a second run).
    let split = statements(8..9);
    let copied = split
        .iter()
        .position(|s| s.starts_with("INSERT INTO spans_rebuilt"))
        .expect("the copy");
    run_statements(&store, &split[..=copied]).await;
    run_statements(&store, &split).await;
    run_statements(&store, &statements(8..9)).await;
    #[derive(Debug, clickhouse::Row, serde::Deserialize)]
    struct Stored {
        start_time_ns: u64,
        duration_ns: u64,
        id: String,
        keys: Vec<String>,
        values: Vec<String>,
        attributes_folded: u8,
    }
    let stored: Vec<Stored> = store
        .client()
        .query(
            "SELECT start_time_ns, duration_ns, toString(span_id) AS id, attributes.key AS keys,
                    attributes.value AS values, attributes_folded
             FROM spans ORDER BY span_id",
        )
        .fetch_all()
        .await
        .expect("spans");
    assert_eq!(stored.len(), 2, "{stored:?}");
    for ((start, duration, id), row) in spans.into_iter().zip(&stored) {
        assert_eq!(
            (row.start_time_ns, row.duration_ns),
            (start, duration),
            "{row:?}"
        );
        assert_eq!(row.id, format!("span-id{id}"));
        assert_eq!(row.keys, ["http.route", "x"]);
        assert_eq!(row.values, ["/a", "y"]);
        assert_eq!(
            row.attributes_folded, 0,
            "rows copied keep their attributes"
        );
    }
    let tables: Vec<String> = store
        .client()
        .query("SELECT name FROM system.tables WHERE database = currentDatabase() AND name LIKE 'spans%'")
        .fetch_all()
        .await
        .expect("tables");
    assert_eq!(tables, ["spans"], "no copy or replaced table is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_metrics_are_stored_as_rows() {
    let database = unique_database("metrics");
    let collector = Collector::start(&database, &[]).await;
    let endpoint = collector.grpc_url();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _guard = handle.enter();
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .expect("exporter");
        let provider = SdkMeterProvider::builder()
            .with_periodic_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("metered")
                    .build(),
            )
            .build();
        let meter = provider.meter("plumb-it");
        let counter = meter.u64_counter("jobs.done").with_unit("{job}").build();
        counter.add(5, &[KeyValue::new("queue", "mail")]);
        let histogram = meter.f64_histogram("job.duration").with_unit("s").build();
        for v in [0.1, 0.2, 3.0] {
            histogram.record(v, &[]);
        }
        let gauge = meter.f64_gauge("system.memory.utilization").build();
        gauge.record(0.42, &[]);
        provider.force_flush().expect("flush");
        provider.shutdown().expect("shutdown");
    })
    .await
    .expect("metrics thread");
    let store = store(&database).await;
    #[derive(Debug, clickhouse::Row, serde::Deserialize)]
    struct Point {
        name: String,
        kind: String,
        value: f64,
        count: u64,
        sum: f64,
    }
    let mut points = Vec::new();
    for _ in 0..120 {
        points = store
            .client()
            .query("SELECT name, toString(metric_type) AS kind, value, count, sum FROM metrics WHERE service = ? ORDER BY name")
            .bind("metered")
            .fetch_all::<Point>()
            .await
            .expect("points");
        if points.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let find = |n: &str| {
        points
            .iter()
            .find(|p| p.name == n)
            .unwrap_or_else(|| panic!("{n} in {points:?}"))
    };
    let jobs = find("jobs.done");
    assert_eq!((jobs.kind.as_str(), jobs.value), ("sum", 5.0));
    let duration = find("job.duration");
    assert_eq!((duration.kind.as_str(), duration.count), ("histogram", 3));
    assert!((duration.sum - 3.3).abs() < 1e-9);
    let memory = find("system.memory.utilization");
    assert_eq!((memory.kind.as_str(), memory.value), ("gauge", 0.42));
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exponential_histograms_over_http_are_stored_with_explicit_bounds() {
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
        metric::Data,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    let database = unique_database("exphist");
    let collector = Collector::start(&database, &[]).await;
    let now_ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let point = |time_unix_nano| ExponentialHistogramDataPoint {
        time_unix_nano,
        count: 9,
        sum: Some(40.0),
        scale: 1,
        zero_count: 1,
        positive: Some(Buckets {
            offset: 2,
            bucket_counts: vec![3, 5],
        }),
        ..Default::default()
    };
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![plumb_loadgen::text("service.name", "exp")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "request.size".into(),
                    unit: "By".into(),
                    data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: vec![point(now_ns), point(now_ns + 86_400_000_000_000)],
                        aggregation_temporality: 1,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let response = reqwest::Client::new()
        .post(format!("{}/v1/metrics", collector.http_url()))
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    let body = ExportMetricsServiceResponse::decode(response.bytes().await.expect("body"))
        .expect("protobuf response");
    let partial = body.partial_success.expect("the future point is reported");
    assert_eq!(partial.rejected_data_points, 1);

    #[derive(Debug, clickhouse::Row, serde::Deserialize)]
    struct Stored {
        count: u64,
        bucket_bounds: Vec<f64>,
        bucket_counts: Vec<u64>,
    }
    let store = store(&database).await;
    let mut rows = Vec::new();
    for _ in 0..120 {
        rows = store
            .client()
            .query("SELECT count, bucket_bounds, bucket_counts FROM metrics WHERE name = ?")
            .bind("request.size")
            .fetch_all::<Stored>()
            .await
            .expect("rows");
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(rows.len(), 1, "{rows:?}");
    // Scale 1: base √2; offset 2 → buckets (2, 2√2] and (2√2, 4], the first bucket holds zeros.
    let bounds = &rows[0].bucket_bounds;
    assert_eq!(rows[0].count, 9);
    assert_eq!(rows[0].bucket_counts, vec![1, 3, 5, 0]);
    assert!(
        (bounds[0] - 2.0).abs() < 1e-9 && (bounds[2] - 4.0).abs() < 1e-9,
        "{bounds:?}"
    );
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_written_again_never_counts_twice() {
    use plumb_collector::testing::{ServerSpan, query_api, write_latency_flush};
    use plumb_proto::v1::TopEndpointsRequest;
    use plumb_proto::v1::query_service_server::QueryService;

    let database = unique_database("flush_once");
    let store = store(&database).await;
    testing::migrate(&store).await.expect("schema");
    let now = testing::now_unix_s();
    let first_minute = u64::from(now - now % 60 - 120);
    let spans: Vec<ServerSpan> = (0..300u64)
        .map(|i| ServerSpan {
            service: "shop".into(),
            operation: "GET /a".into(),
            // Two minutes: a retry must skip both.
            start_unix_ns: (first_minute + 60 * (i % 2)) * 1_000_000_000,
            duration_ns: (1_000 + i) * 1_000,
        })
        .collect();
    // The first write, then the same flush again (as after a lost answer), twice.
    write_latency_flush(&store, &spans, 3).await.expect("write");
    let counted = |sql: &'static str| {
        let database = database.clone();
        async move { query_number(&database, sql).await }
    };
    assert_eq!(
        counted("SELECT sum(requests) FROM latency_minute").await,
        300
    );
    assert_eq!(
        counted("SELECT sum(arraySum(latencyMap.count)) FROM latency_minute").await,
        300
    );
    // One marker per minute, invisible to the query API.
    assert_eq!(
        counted("SELECT count() FROM latency_minute WHERE service = ''").await,
        2
    );
    let top = query_api(store)
        .top_endpoints(tonic::Request::new(TopEndpointsRequest {
            since_seconds: 3600,
            kind: "all".into(),
            ..Default::default()
        }))
        .await
        .expect("top")
        .into_inner();
    assert_eq!(top.endpoints.len(), 1, "{:?}", top.endpoints);
    assert_eq!(top.endpoints[0].requests, 300);
    // Every request is within the default apdex threshold, counted in the ranking's own read.
    assert_eq!(top.endpoints[0].apdex, 1.0, "{:?}", top.endpoints);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_server_compresses_parts_with_zstd_when_asked() {
    // The same rows in a server started with each setting: zstd's part is the smaller one.
    let binary = testing::ServerBinary::find(None).expect("ClickHouse installed");
    let mut sizes = Vec::new();
    for compression in [
        testing::PartCompression::Lz4,
        testing::PartCompression::Zstd,
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server =
            testing::LocalClickHouse::start(&binary, dir.path(), compression).expect("starts");
        let store = testing::Store::new(&testing::StoreConfig {
            url: server.url().to_owned(),
            user: "default".into(),
            password: String::new(),
            database: "default".into(),
        })
        .expect("store");
        store
            .wait_ready(Duration::from_secs(60))
            .await
            .expect("answers");
        for sql in [
            "CREATE TABLE t (n UInt64, s String) ENGINE = MergeTree ORDER BY tuple()",
            "INSERT INTO t SELECT number % 1000, toString(number % 777) FROM system.numbers LIMIT 1000000",
            "OPTIMIZE TABLE t FINAL",
        ] {
            store.client().query(sql).execute().await.expect(sql);
        }
        let bytes: u64 = store
            .client()
            .query(
                "SELECT sum(data_compressed_bytes) FROM system.parts WHERE table = 't' AND active",
            )
            .fetch_one()
            .await
            .expect("part size");
        sizes.push(bytes);
        server.stop(Duration::from_secs(10));
    }
    assert!(sizes[1] * 10 < sizes[0] * 9, "lz4, zstd: {sizes:?}");
}

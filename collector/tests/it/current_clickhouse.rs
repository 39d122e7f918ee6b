//! The same schema, row encoding and SQL on current ClickHouse (26.x through chDB, which embeds
//! it), while every other test runs on the server the machine has (Debian's 18.16).
//!
//! The fixture holds exactly what the collector sends: the migration statements, span rows from
//! its RowBinary encoder, the ranking query with its values bound and the retention query.

use plumb_collector::aggregate::histogram::{LatencyHistogram, quantile_from_buckets};
use plumb_collector::loadgen::{Workload, WorkloadShape};
use plumb_collector::normalise::{NameLimiter, SpanLimits, normalise_traces};
use plumb_collector::query::top::{TopQuery, ranking_query};
use plumb_collector::store::retention::expired_partitions_query;
use plumb_collector::store::rows::{EncodedRows, SPAN_COLUMNS};
use plumb_collector::store::schema::MIGRATIONS;
use plumb_collector::store::{Store, StoreConfig};
use plumb_proto::v1::TopEndpointsRequest;
use prost::Message;
use std::time::Duration;

#[test]
fn schema_rows_and_queries_work_on_current_clickhouse() {
    let dir = tempfile::tempdir().expect("temp dir");
    let now_s = plumb_collector::clock::now_unix_s();
    let minute = now_s - now_s % 60 - 60;

    // Latency rows with known durations: two minutes of the same endpoint, to be summed.
    let mut durations_us = Vec::new();
    let mut latency_rows = Vec::new();
    for (i, m) in [minute - 60, minute].into_iter().enumerate() {
        let mut h = LatencyHistogram::new();
        let these: Vec<u64> = (0..500)
            .map(|j| 1_000 + j * 37 + i as u64 * 20_000)
            .collect();
        these.iter().for_each(|&d| h.record(d));
        let (buckets, counts) = h.buckets();
        latency_rows.push(serde_json::json!({
            "minute": m, "service": "shop", "operation": "GET /cart", "kind": "server",
            "requests": these.len(), "errors": 3, "sum_us": these.iter().sum::<u64>(),
            "buckets": format!("{buckets:?}"), "counts": format!("{counts:?}"),
        }));
        durations_us.extend(these);
    }
    let mut all = LatencyHistogram::new();
    durations_us.iter().for_each(|&d| all.record(d));
    let (keys, counts) = all.buckets();

    // Span rows exactly as the collector encodes them.
    let request = Workload::new(WorkloadShape {
        services: 2,
        endpoints_per_service: 3,
        spans_per_request: 50,
        seed: 5,
    })
    .request()
    .encode_to_vec();
    let limits = SpanLimits {
        max_age: Duration::from_secs(86_400),
        max_future: Duration::from_secs(600),
    };
    let spans = normalise_traces(
        &request,
        limits,
        &NameLimiter::new(100),
        plumb_collector::clock::now_unix_ns(),
    )
    .expect("valid request");
    let encoded = EncodedRows::spans(&spans.accepted);
    let span_file = dir.path().join("spans.rowbinary");
    std::fs::write(&span_file, &encoded.bytes).expect("write spans");
    let attributes: usize = spans.accepted.iter().map(|s| s.attributes.len()).sum();

    // The SQL, with values bound by the client library as the collector binds them.
    let store = Store::new(&StoreConfig {
        url: "http://127.0.0.1:1".into(),
        user: "default".into(),
        password: String::new(),
        database: "default".into(),
    })
    .expect("store");
    let top = TopQuery::try_from(TopEndpointsRequest {
        since_seconds: 3600,
        ..Default::default()
    })
    .expect("query");
    let ranking_sql = ranking_query(&store, &top, now_s).sql_display().to_string();
    let retention_sql = expired_partitions_query(&store, 30)
        .sql_display()
        .to_string();

    let fixture = serde_json::json!({
        "schema": MIGRATIONS.iter().flat_map(|m| m.statements.iter()).collect::<Vec<_>>(),
        "latency_rows": latency_rows,
        "span_columns": SPAN_COLUMNS,
        "span_file": span_file,
        "ranking_sql": ranking_sql,
        "retention_sql": retention_sql,
    });
    let fixture_file = dir.path().join("fixture.json");
    std::fs::write(&fixture_file, fixture.to_string()).expect("write fixture");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/current_clickhouse.py"
    );
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(&fixture_file)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "chDB check failed (deploy/install-deps.sh installs chdb-core):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("JSON from the check");

    let version = result["version"].as_str().expect("version");
    assert!(
        version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            >= Some(24),
        "{version}"
    );
    let ranking = result["ranking"].as_array().expect("rows");
    assert_eq!(ranking.len(), 1, "{ranking:?}");
    let row = &ranking[0];
    let number = |field: &str| -> u64 {
        row[field]
            .as_u64()
            .or_else(|| row[field].as_str().and_then(|s| s.parse().ok()))
            .expect(field)
    };
    assert_eq!(number("req_total"), 1000);
    assert_eq!(number("err_total"), 6);
    for (q, field) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
        assert_eq!(
            number(field),
            quantile_from_buckets(&keys, &counts, q),
            "{field}"
        );
    }
    let hour = &result["hour_requests"];
    assert_eq!(
        hour.as_u64()
            .or_else(|| hour.as_str().and_then(|s| s.parse().ok())),
        Some(1000)
    );
    let stored = &result["spans"];
    let count = |v: &serde_json::Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    assert_eq!(count(&stored["n"]), Some(spans.accepted.len() as u64));
    assert_eq!(count(&stored["attributes"]), Some(attributes as u64));
    assert_eq!(stored["trace"].as_str().map(str::len), Some(32));
    assert_eq!(result["expired"].as_array().map(Vec::len), Some(0));
}

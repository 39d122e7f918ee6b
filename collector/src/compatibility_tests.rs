//! The same schema, row encoding and SQL on current ClickHouse (26.x through chDB, which embeds
//! it), while every other test runs on the server the machine has (Debian's 18.16).
//!
//! The fixture holds exactly what the collector sends: the migration statements, span rows from
//! its RowBinary encoder, the ranking query with its values bound and the retention query.

use crate::aggregate::histogram::{LatencyHistogram, quantile_from_buckets};
use crate::alerting::rules;
use crate::alerting::store as alerting_store;
use crate::model::ApdexThresholds;
use crate::model::SpanKind;
use crate::normalise::{NameLimiter, SpanLimits, normalise_metrics, normalise_traces};
use crate::query::endpoint::{exemplars_query, heatmap_query};
use crate::query::endpoint_breakdown::component_totals_query;
use crate::query::services::services_query;
use crate::query::top::{
    TopQuery, first_data_query, histograms_query, ranking_query, series_query, source_for,
};
use crate::query::waterfall::trace_query;
use crate::report::store as report_store;
use crate::store::Store;
use crate::store::lookup::{MetricKey, SpanKey, stored_metrics_query, stored_spans_query};
use crate::store::metric_rows::METRIC_COLUMNS;
use crate::store::retention::expired_partitions_query;
use crate::store::rows::{EncodedRows, SPAN_COLUMNS};
use crate::store::schema::migrations;
use bumpalo::Bump;
use plumb_loadgen::metrics::{PointKind, Series};
use plumb_loadgen::{Workload, WorkloadShape};
use plumb_proto::v1::TopEndpointsRequest;
use prost::Message;
use std::time::Duration;

#[test]
fn schema_rows_and_queries_work_on_current_clickhouse() {
    let dir = tempfile::tempdir().expect("temp dir");
    let now_s = crate::clock::now_unix_s();
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
        let (buckets, counts) = h.into_buckets();
        latency_rows.push(serde_json::json!({
            "minute": m, "service": "shop", "operation": "GET /cart", "kind": "server",
            "requests": these.len(), "errors": 3, "sum_us": these.iter().sum::<u64>(),
            "buckets": format!("{buckets:?}"), "counts": format!("{counts:?}"),
        }));
        durations_us.extend(these);
    }
    let mut all = LatencyHistogram::new();
    durations_us.iter().for_each(|&d| all.record(d));
    let (keys, counts) = all.into_buckets();

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
        ..crate::testing::defaults().pipeline.limits
    };
    let mut attributes = Vec::new();
    let arena = Bump::new();
    let spans = normalise_traces(
        &request,
        &mut attributes,
        &arena,
        limits,
        &NameLimiter::new(100),
        crate::clock::now_unix_ns(),
    )
    .expect("valid request");
    let encoded = EncodedRows::spans(&spans.accepted);
    let span_file = dir.path().join("spans.rowbinary");
    std::fs::write(&span_file, &encoded.bytes).expect("write spans");
    let attributes: usize = spans.accepted.iter().map(|s| s.attributes.len()).sum();
    // Metric rows, from a request through the collector's own reading and encoding: a process's
    // CPU counter and a disk's usage, in the last whole minute.
    let metric_request = metrics_request(u64::from(minute) * 1_000_000_000);
    let metric_rows = normalise_metrics(&metric_request, limits, crate::clock::now_unix_ns())
        .expect("valid request")
        .accepted
        .finish();
    assert_eq!(metric_rows.0.rows, 2);
    let metric_file = dir.path().join("metrics.rowbinary");
    std::fs::write(&metric_file, &metric_rows.0.bytes).expect("write metric rows");

    // The SQL, with values bound by the client library as the collector binds them.
    let store = Store::unreachable();
    let top = TopQuery::try_from(TopEndpointsRequest {
        since_seconds: 3600,
        ..Default::default()
    })
    .expect("query");
    // Two services with thresholds of their own (10 ms for shop), the rest on the default.
    let apdex = ApdexThresholds {
        default_us: 500_000,
        per_service: vec![("shop".into(), 10_000), ("other".into(), 1)],
    };
    let ranking_sql = ranking_query(&store, &top, &apdex, now_s)
        .sql_display()
        .to_string();
    let one = TopQuery::one(3600, "shop".into(), "GET /cart".into(), "server".into());
    let every_service = TopQuery::service_wide(3600, String::new(), "server".into());
    // A day: read from the hourly rollup.
    let day = TopQuery::service_wide(86_400, String::new(), "server".into());
    let from = u64::from(now_s) - 3600;
    let trace_id: String = spans.accepted[0]
        .trace_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let first = &spans.accepted[0];
    let first_kind = if first.kind == SpanKind::Server {
        "server"
    } else {
        "client"
    };
    let first_endpoint = TopQuery::one(
        3600,
        first.service().to_string(),
        first.operation().to_string(),
        first_kind.into(),
    );
    let first_count = spans
        .accepted
        .iter()
        .filter(|s| s.endpoint == first.endpoint && s.kind == first.kind)
        .count()
        .min(5);
    let shop_rule = plumb_alert_config::parse(
        "[[rule]]\nname = \"r\"\nservice = \"shop\"\noperation = \"GET /cart\"\nsignal = \"p99\"\nabove = 1\nwindow = \"1h\"\n[route]\nreceiver = \"x\"\n[[receiver]]\nname = \"x\"\n",
        "compat.toml",
    )
    .expect("rule")
    .rules
    .remove(0);
    let capacity_window = report_store::Window {
        from: u64::from(now_s) - 7200,
        until: u64::from(now_s) + 3600,
        service: "",
        host: "",
    };
    let sql = |q: clickhouse::query::Query| q.sql_display().to_string();
    let queries = serde_json::json!({
        "series": sql(series_query(&store, &one, &apdex, 60, now_s)),
        "histograms": sql(histograms_query(&store, &one, from, u64::from(now_s) + 60)),
        "heatmap": sql(heatmap_query(&store, &one, source_for(3600), from, 60)),
        "ranking_day": sql(ranking_query(&store, &day, &apdex, now_s)),
        // Every service on one threshold (10 ms, shop's above): the ranking counts apdex itself.
        "ranking_uniform": sql(ranking_query(&store, &top, &ApdexThresholds {
            default_us: 10_000,
            per_service: Vec::new(),
        }, now_s)),
        "services": sql(services_query(&store, &apdex, &every_service, 3600, u64::from(now_s), None)),
        "service_steps": sql(services_query(&store, &apdex, &every_service, 3600, u64::from(now_s), Some(60))),
        "first_data": sql(first_data_query(&store, &every_service, now_s)),
        "uptime_daily": sql(alerting_store::daily_query(&store, u64::from(now_s))),
        "breakdown": sql(component_totals_query(&store, from, "shop", "GET /cart")),
        "trace": sql(trace_query(&store, &trace_id, from)),
        "exemplars": sql(exemplars_query(&store, &first_endpoint, from, 5)),
        "span_probe": sql(stored_spans_query(&store, &vec![SpanKey {
            service: first.service().to_string(),
            operation: first.operation().to_string(),
            start_unix_ns: first.start_unix_ns,
            span_id: u64::from_le_bytes(first.span_id),
        }; 2])),
        "metric_probe": sql(stored_metrics_query(&store, &[MetricKey {
            service: "shop".into(),
            name: "process.cpu.time".into(),
            time_ns: u64::from(minute) * 1_000_000_000,
            attribute_keys: vec![],
            attribute_values: vec![],
        }])),
        "uptime_days": sql(alerting_store::uptime_query(&store, u64::from(now_s) - 30 * 86_400, 30 * 86_400)),
        "uptime_hours": sql(alerting_store::uptime_query(&store, u64::from(now_s) - 86_400, 86_400)),
        "uptime_minutes": sql(alerting_store::uptime_query(&store, u64::from(now_s) - 3600, 3600)),
        "probe_latest": sql(alerting_store::latest_query(&store, u64::from(now_s))),
        "probe_changes": sql(alerting_store::last_change_query(&store, u64::from(now_s) - 3600)),
        "alert_history": sql(alerting_store::history_query(&store, u64::from(now_s) - 3600)),
        "deliveries": sql(alerting_store::deliveries_query(&store, u64::from(now_s) - 3600)),
        "rule_window": sql(rules::window_query(&store, &shop_rule, u64::from(now_s))),
        "silences": sql(crate::alerting::silence::current_query(&store, u64::from(now_s))),
        "capacity_hours": sql(report_store::hours_query(&store, &capacity_window)),
        "capacity_bins": sql(report_store::bins_query(&store, &capacity_window)),
        "capacity_endpoints": sql(report_store::endpoints_query(&store, &capacity_window)),
        "capacity_process": sql(report_store::process_query(&store, &capacity_window)),
        "capacity_hosts": sql(report_store::host_query(&store, &capacity_window)),
        "codecs": "SELECT table, name, compression_codec AS codec FROM system.columns
                   WHERE database = currentDatabase() AND table IN ('spans', 'metrics')",
    });
    let probe_minute = minute - 60;
    let inserts = [
        format!(
            "INSERT INTO probe_minute VALUES ({probe_minute}, 'shop-health', 'local', 10, 2, 5000, [1000, 2000], [8, 2])"
        ),
        format!(
            "INSERT INTO probe_minute VALUES ({minute}, 'shop-health', 'local', 10, 0, 4000, [1000], [10])"
        ),
        format!(
            "INSERT INTO probe_results VALUES ({minute}, {minute}000000000, 'shop-health', 'local', 1, 1000, 10, 20, 30, 40, 200, '', 40, 12)"
        ),
        format!(
            "INSERT INTO alert_events VALUES ({minute}, 'ff', 'shop-health', ['service'], ['shop'], 'pending', 'firing', 'status 500')"
        ),
        format!(
            "INSERT INTO silences VALUES ('s1', 1, ['alertname=a'], {minute}, {}, 'deploy', 'ops')",
            minute + 7200
        ),
        format!(
            "INSERT INTO silences VALUES ('s1', 2, ['alertname=a'], {minute}, {}, 'deploy', 'ops')",
            minute + 3600
        ),
        format!(
            "INSERT INTO notification_log VALUES ({minute}, 'g', 'oncall', 'webhook', 'firing', 1, 1, 1, 'answered 200')"
        ),
        format!(
            "INSERT INTO breakdown_minute VALUES ({minute}, 'shop', 'GET /cart', 'request', '', 10, 10, 1000)"
        ),
        format!(
            "INSERT INTO breakdown_minute VALUES ({minute}, 'shop', 'GET /cart', 'db', 'pg q', 5, 100, 750)"
        ),
        format!(
            "INSERT INTO breakdown_minute VALUES ({}, 'shop', 'GET /cart', 'db', 'pg q', 5, 100, 750)",
            minute - 60
        ),
    ];
    let retention_sql =
        expired_partitions_query(&store, crate::store::retention::ROLLUP_TABLES, 30)
            .sql_display()
            .to_string();

    let fixture = serde_json::json!({
        "schema": migrations().into_iter().flat_map(|m| m.statements).collect::<Vec<_>>(),
        "latency_rows": latency_rows,
        "span_columns": SPAN_COLUMNS,
        "span_file": span_file,
        "metric_columns": METRIC_COLUMNS,
        "metric_file": metric_file,
        "ranking_sql": ranking_sql,
        "queries": queries,
        "inserts": inserts,
        "retention_sql": retention_sql,
    });
    let fixture_file = dir.path().join("fixture.json");
    std::fs::write(&fixture_file, fixture.to_string()).expect("write fixture");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/src/compatibility_tests.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(&fixture_file)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "chDB check failed (scripts/install-deps.sh installs chdb-core):\n{}",
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
    // Every attribute is stored, or folded into the operation and status columns.
    let folded = count(&stored["folded"]).expect("folded");
    assert!(
        folded > 0,
        "the load generator's server spans have their HTTP attributes folded"
    );
    assert_eq!(
        count(&stored["attributes"]).map(|a| a + folded),
        Some(attributes as u64)
    );
    assert_eq!(stored["trace"].as_str().map(str::len), Some(32));
    assert_eq!(result["expired"].as_array().map(Vec::len), Some(0));

    // Alerting's queries: the day and hour rollups (filled by their materialized views) and the
    // minutes agree.
    let answer = |name: &str| {
        result["answers"][name]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    // The daily bars: the two minutes' checks, by day (one or two days, around midnight).
    let daily = answer("uptime_daily");
    let summed = |key: &str| daily.iter().filter_map(|r| count(&r[key])).sum::<u64>();
    assert_eq!((summed("checks"), summed("failures")), (20, 2), "{daily:?}");
    assert!(daily.iter().all(|r| r["location"] == "local"), "{daily:?}");
    for name in ["uptime_days", "uptime_hours", "uptime_minutes"] {
        let rows = answer(name);
        assert_eq!(rows.len(), 1, "{name}: {rows:?}");
        assert_eq!(
            (count(&rows[0]["checks"]), count(&rows[0]["failures"])),
            (Some(20), Some(2)),
            "{name}"
        );
    }
    assert_eq!(
        count(&answer("probe_latest")[0]["chain_days_left"]),
        Some(12)
    );
    assert_eq!(answer("probe_changes")[0]["to_state"], "firing");
    assert_eq!(answer("alert_history")[0]["detail"], "status 500");

    // The version-gated migrations gave the raw tables' columns their codecs (zstd), all but the
    // trace id, the Nested ones other than the span attributes' values, and the spans' two
    // computed columns (whole start and duration), which are not stored.
    let codecs = answer("codecs");
    assert_eq!(codecs.len(), 39, "{codecs:?}");
    for column in &codecs {
        let name = column["name"].as_str().unwrap_or_default();
        let zstd = column["codec"]
            .as_str()
            .unwrap_or_default()
            .contains("ZSTD(");
        let nested = name.contains('.') && name != "attributes.value";
        let metric_nested = column["table"] == "metrics" && name.contains('.');
        let spans = column["table"] == "spans";
        let no_codec = spans && ["trace_id", "start_time_ns", "duration_ns"].contains(&name);
        assert_eq!(zstd, !(nested || metric_nested || no_codec), "{column}");
    }
    let time = codecs
        .iter()
        .find(|c| c["table"] == "spans" && c["name"] == "timestamp");
    assert_eq!(
        time.map(|c| c["codec"].clone()),
        Some("CODEC(Delta(4), ZSTD(3))".into())
    );
    assert_eq!(answer("deliveries")[0]["outcome"], "answered 200");
    let silences = answer("silences");
    assert_eq!(silences.len(), 1, "{silences:?}");
    assert_eq!(silences[0]["s_comment"], "deploy");
    assert_eq!(silences[0]["s_matchers"][0], "alertname=a");
    // The capacity report's reads: the two minutes of shop (500 requests each) per hour, per
    // minute and in one load bin; the process counter and the disk from the metric rollup.
    let hours = answer("capacity_hours");
    let summed: u64 = hours.iter().filter_map(|h| count(&h["requests"])).sum();
    assert_eq!(summed, 1000, "{hours:?}");
    let bins = answer("capacity_bins");
    assert_eq!(bins.len(), 1, "{bins:?}");
    assert_eq!(count(&bins[0]["minutes"]), Some(2), "{bins:?}");
    assert_eq!(count(&bins[0]["requests"]), Some(1000), "{bins:?}");
    assert_eq!(count(&bins[0]["busiest"]), Some(500), "{bins:?}");
    let endpoint = &answer("capacity_endpoints")[0];
    assert_eq!(endpoint["operation"], "GET /cart", "{endpoint:?}");
    assert_eq!(count(&endpoint["requests"]), Some(1000), "{endpoint:?}");
    let process = &answer("capacity_process")[0];
    assert_eq!(
        (process["key"].as_str(), process["instance"].as_str()),
        (Some("shop"), Some("shop-1"))
    );
    assert_eq!(process["last"].as_f64(), Some(12.5), "{process:?}");
    let disk = &answer("capacity_hosts")[0];
    assert_eq!(disk["key"], "box-1", "{disk:?}");
    assert_eq!(
        disk["series"],
        "system.filesystem.mountpoint=/data,system.filesystem.state=used"
    );
    assert_eq!(disk["last"].as_f64(), Some(300.0), "{disk:?}");
    let window = &answer("rule_window")[0];
    assert_eq!(
        (count(&window["requests"]), count(&window["errors"])),
        (Some(1000), Some(6))
    );

    // Apdex counts with T = 10 ms for "shop", from the same buckets.
    let satisfied: u64 = keys
        .iter()
        .zip(&counts)
        .filter(|(k, _)| **k <= 10_000)
        .map(|(_, c)| c)
        .sum();
    let tolerating: u64 = keys
        .iter()
        .zip(&counts)
        .filter(|(k, _)| **k > 10_000 && **k <= 40_000)
        .map(|(_, c)| c)
        .sum();
    // The ranking with thresholds per service (looked up per row) and the ranking with one
    // threshold for every service count them exactly: satisfied twice, tolerating once.
    let halves = 2 * satisfied + tolerating;
    assert_eq!(
        (number("apdex_t"), number("apdex_halves")),
        (10_000, halves)
    );
    let uniform = answer("ranking_uniform");
    assert_eq!(uniform.len(), 1, "{uniform:?}");
    assert_eq!(
        (
            count(&uniform[0]["apdex_t"]),
            count(&uniform[0]["apdex_halves"]),
            count(&uniform[0]["p99"]),
        ),
        (
            Some(10_000),
            Some(halves),
            Some(quantile_from_buckets(&keys, &counts, 0.99))
        ),
        "{uniform:?}"
    );

    let answers = &result["answers"];
    let rows = |name: &str| answers[name].as_array().cloned().unwrap_or_default();
    let series = rows("series");
    assert_eq!(series.len(), 2, "{series:?}");
    assert!(
        series.iter().all(|r| count(&r["req_total"]) == Some(500)),
        "{series:?}"
    );
    // The heatmap's bands hold every request of the two minutes.
    let heatmap = rows("heatmap");
    assert_eq!(
        heatmap
            .iter()
            .filter_map(|r| count(&r["requests"]))
            .sum::<u64>(),
        1000,
        "{heatmap:?}"
    );
    assert!(
        heatmap
            .iter()
            .all(|r| r["band"].as_i64().is_some_and(|b| (-3..=10).contains(&b)))
    );
    // The services overview: shop's two minutes summed, and per step; data from the first one.
    let services = rows("services");
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(
        (
            services[0]["service"].as_str(),
            count(&services[0]["req_total"])
        ),
        (Some("shop"), Some(1000))
    );
    let steps = rows("service_steps");
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(
        steps.iter().all(|r| count(&r["req_total"]) == Some(500)),
        "{steps:?}"
    );
    assert_eq!(
        count(&rows("first_data")[0]["first_step"]),
        Some(u64::from(minute - 60))
    );
    let histograms = rows("histograms");
    assert_eq!(histograms.len(), 1, "{histograms:?}");
    let numbers = |v: &serde_json::Value| -> Vec<u64> {
        v.as_array()
            .map(|a| a.iter().filter_map(count).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        (
            numbers(&histograms[0]["keys"]),
            numbers(&histograms[0]["counts"])
        ),
        (keys, counts)
    );
    let mut breakdown = rows("breakdown");
    breakdown.sort_by_key(|r| r["type_name"].as_str().map(str::to_owned));
    assert_eq!(breakdown.len(), 2, "{breakdown:?}");
    assert_eq!(
        (
            breakdown[0]["type_name"].as_str(),
            count(&breakdown[0]["calls_total"]),
            count(&breakdown[0]["time_us"])
        ),
        (Some("db"), Some(200), Some(1500))
    );
    // Over a day, from the hourly rollup: the current hour in full, the partial first hour left
    // out (so the earlier of the two minutes counts only when it is in the current hour).
    let day = rows("ranking_day");
    let cart = day
        .iter()
        .find(|r| r["operation"] == "GET /cart")
        .unwrap_or_else(|| panic!("{day:?}"));
    let cart_requests = count(&cart["req_total"]);
    assert!(
        cart_requests == Some(1000) || cart_requests == Some(500),
        "{cart:?}"
    );
    let probe = rows("span_probe");
    assert_eq!(probe.len(), 1, "asked for twice, found once: {probe:?}");
    assert_eq!(
        probe[0]["operation"],
        spans.accepted[0].operation().as_ref(),
        "{probe:?}"
    );
    let point = rows("metric_probe");
    assert_eq!(point.len(), 1, "{point:?}");
    assert_eq!(point[0]["point_keys"], serde_json::json!([]));
    let trace = rows("trace");
    let in_trace = spans
        .accepted
        .iter()
        .filter(|s| s.trace_id == spans.accepted[0].trace_id)
        .count();
    assert_eq!(trace.len(), in_trace, "{trace:?}");
    assert!(
        trace
            .iter()
            .any(|r| r["attr_keys"].as_array().is_some_and(|a| !a.is_empty())),
        "attributes come with the spans: {trace:?}"
    );
    assert_eq!(trace[0]["span"].as_str().map(str::len), Some(16));
    let exemplars = rows("exemplars");
    assert_eq!(exemplars.len(), first_count, "{exemplars:?}");
    assert_eq!(exemplars[0]["trace"].as_str().map(str::len), Some(32));
}

/// An export request of two points at `time_ns`: a process's CPU time (a cumulative sum) and a
/// disk's usage (a gauge with its mount point and state), both of service `shop` on `box-1`.
fn metrics_request(time_ns: u64) -> Vec<u8> {
    let resource = [
        ("service.name", "shop"),
        ("host.name", "box-1"),
        ("service.instance.id", "shop-1"),
    ];
    let (cpu, disk) = ([(time_ns, 12.5)], [(time_ns, 300.0)]);
    let series = |name, unit, kind, attributes, points| Series {
        resource: &resource,
        name,
        unit,
        kind,
        attributes,
        points,
    };
    plumb_loadgen::metrics::metrics_request(&[
        series("process.cpu.time", "s", PointKind::Counter, &[], &cpu),
        series(
            "system.filesystem.usage",
            "By",
            PointKind::Gauge,
            &[
                ("system.filesystem.mountpoint", "/data"),
                ("system.filesystem.state", "used"),
            ],
            &disk,
        ),
    ])
    .encode_to_vec()
}

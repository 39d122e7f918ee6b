//! Query times over a day of data: 24 hours of per-minute histograms and breakdowns for 1,000
//! endpoints (20 services x 50) are written into a fresh database of a real ClickHouse (the test
//! harness's local server, or `PLUMB_CLICKHOUSE_URL`), then `plumb top` over 1 h and 24 h and
//! `plumb endpoint` over 1 h and 24 h are timed through the same functions the query API calls
//! (`plumb top` over 24 h also with apdex thresholds for some services).
//! A million spans of the load generator's workload (written in the last minutes, as the span
//! writer encodes them) give `plumb trace` a table to search and the endpoint view's slowest
//! requests rows to read.
//!
//! Run: `cargo bench -p plumb-collector --bench query` (loading the day takes a minute or two).

#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use criterion::{Criterion, criterion_group, criterion_main};
use plumb_collector::testing::{
    BREAKDOWN_MINUTE, BreakdownRow, LATENCY_MINUTE, LatencyHistogram, LatencyRow, Store,
    insert_spans, migrate, now_unix_s, query_api, query_api_with_flags, seed_probe_history,
};
use plumb_loadgen::{Workload, WorkloadShape};
use plumb_proto::v1::query_service_server::QueryService;
use plumb_proto::v1::{EndpointDetailRequest, GetTraceRequest, TopEndpointsRequest, UptimeRequest};
use prost::Message;
use std::time::Duration;

const SERVICES: u32 = 20;
const ENDPOINTS_PER_SERVICE: u32 = 50;
const MINUTES: u32 = 24 * 60;
/// Probes in the uptime history.
const PROBES: usize = 1000;
/// Spans in the spans table, in requests of 500.
const SPANS: u32 = 1_000_000;

/// Writes a day of minutes for every endpoint: a histogram of about 40 requests and three
/// breakdown rows (request, self, one query).
async fn load_day(store: &Store, now: u32) {
    let first = now - now % 60 - MINUTES * 60;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for minute_index in (0..MINUTES).step_by(60) {
        let mut latency = Vec::new();
        let mut breakdown = Vec::new();
        for m in minute_index..minute_index + 60 {
            let minute = first + m * 60;
            for s in 0..SERVICES {
                for e in 0..ENDPOINTS_PER_SERVICE {
                    let base = 1_000 + u64::from(e) * 700;
                    let mut h = LatencyHistogram::new();
                    let mut sum = 0;
                    for _ in 0..40 {
                        let us = base + next(base * 3);
                        h.record(us);
                        sum += us;
                    }
                    let (buckets, counts) = h.into_buckets();
                    let (service, operation) =
                        (format!("svc-{s}"), format!("GET /api/r{e}/{{id}}"));
                    latency.push(LatencyRow {
                        minute,
                        service: service.clone(),
                        operation: operation.clone(),
                        kind: 2,
                        requests: 40,
                        errors: next(2),
                        duration_sum_us: sum,
                        buckets,
                        counts,
                    });
                    for (component_type, component, calls, share) in [
                        (1, "", 40, 100),
                        (2, "", 40, 30),
                        (3, "postgresql SELECT ?", 80, 70),
                    ] {
                        breakdown.push(BreakdownRow {
                            minute,
                            service: service.clone(),
                            operation: operation.clone(),
                            component_type,
                            component: component.into(),
                            requests: 40,
                            calls,
                            duration_sum_us: sum * share / 100,
                        });
                    }
                }
            }
        }
        store
            .insert(LATENCY_MINUTE, &latency)
            .await
            .expect("insert latency");
        store
            .insert(BREAKDOWN_MINUTE, &breakdown)
            .await
            .expect("insert breakdown");
    }
}

/// Writes [`SPANS`] spans of the load generator's workload, 100 requests per insert; the trace
/// id of one of them (32 hex digits).
async fn load_spans(store: &Store) -> String {
    let mut workload = Workload::new(WorkloadShape {
        services: 20,
        endpoints_per_service: 50,
        spans_per_request: 500,
        seed: 7,
    });
    for _ in 0..SPANS / 500 / 100 {
        let requests: Vec<Vec<u8>> = (0..100)
            .map(|_| workload.request().encode_to_vec())
            .collect();
        insert_spans(store, &requests).await.expect("insert spans");
    }
    store
        .client()
        .query("SELECT lower(hex(any(trace_id))) FROM spans")
        .fetch_one()
        .await
        .expect("a trace id")
}

fn queries(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let database = plumb_test_support::unique_database("bench_query");
    let now = now_unix_s();
    let (store, trace_id) = runtime.block_on(async {
        let store = plumb_test_support::store(&database).await;
        migrate(&store).await.expect("schema");
        let started = std::time::Instant::now();
        load_day(&store, now).await;
        eprintln!(
            "loaded {} endpoint-minutes in {:.1} s",
            SERVICES * ENDPOINTS_PER_SERVICE * MINUTES,
            started.elapsed().as_secs_f64()
        );
        seed_probe_history(&store, PROBES, 90, now)
            .await
            .expect("probe history");
        let started = std::time::Instant::now();
        let trace_id = load_spans(&store).await;
        eprintln!(
            "loaded {SPANS} spans in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        (store, trace_id)
    });
    // Four services with thresholds of their own, two of them the same: the ranking over every
    // service looks each row's threshold up.
    let api_per_service = query_api_with_flags(
        store.clone(),
        &[
            "--apdex-thresholds",
            "svc-3=50ms,svc-4=50ms,svc-5=2ms,svc-6=1s",
        ],
    )
    .expect("thresholds");
    let api = query_api(store);
    let mut group = c.benchmark_group("query_1000_endpoints");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for (name, window, api) in [
        ("top_1h", 3600, &api),
        ("top_24h", 86_400, &api),
        ("top_24h_thresholds_per_service", 86_400, &api_per_service),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = tonic::Request::new(TopEndpointsRequest {
                    since_seconds: window,
                    ..Default::default()
                });
                let top = runtime
                    .block_on(api.top_endpoints(request))
                    .expect("top")
                    .into_inner();
                assert_eq!(top.endpoints.len(), 20);
            })
        });
    }
    for (name, window) in [("endpoint_1h", 3600), ("endpoint_24h", 86_400)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = EndpointDetailRequest {
                    service: "svc-7".into(),
                    operation: "GET /api/r42/{id}".into(),
                    since_seconds: window,
                    ..Default::default()
                };
                let detail = runtime
                    .block_on(api.endpoint_detail(tonic::Request::new(request)))
                    .expect("endpoint")
                    .into_inner();
                assert_eq!(detail.breakdown.len(), 2);
            })
        });
    }
    group.bench_function("trace_in_1m_spans", |b| {
        b.iter(|| {
            let request = tonic::Request::new(GetTraceRequest {
                trace_id: trace_id.clone(),
                since_seconds: 86_400,
            });
            let trace = runtime
                .block_on(api.get_trace(request))
                .expect("trace")
                .into_inner();
            assert!(!trace.spans.is_empty());
        })
    });
    group.bench_function("uptime_90d_1000_probes", |b| {
        b.iter(|| {
            let request = tonic::Request::new(UptimeRequest {
                since_seconds: 90 * 86_400,
            });
            let uptime = runtime
                .block_on(api.uptime(request))
                .expect("uptime")
                .into_inner();
            assert_eq!(uptime.probes.len(), PROBES);
        })
    });
    group.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);

//! Mutation fuzzing of everything that parses input from the network or the user, run for a
//! bounded time in CI: `PLUMB_FUZZ_SECONDS` per target (default 5).
//!
//! Each target starts from valid inputs (OTLP requests from the load generator, real paths,
//! statements, configuration text) and mutates them: flipped bits, replaced, inserted, deleted
//! and duplicated bytes, truncation, splices of two inputs. The code under test must never panic
//! (a panic fails the test and prints the seed and the input) and must stay consistent where that
//! is checkable (templating and statement normalising are idempotent; what decodes as JSON
//! normalises like the same request as protobuf).

use crate::normalise::route::template_path;
use crate::normalise::{NameLimiter, SpanLimits, normalise_metrics, normalise_traces};
use crate::query::api::request_from_query;
use crate::query::waterfall::parse_trace_id;
use crate::trace_analysis::component::normalise_statement;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use plumb_loadgen::{Workload, WorkloadShape};
use plumb_otlp::Payload;
use plumb_otlp::auth::Tokens;
use plumb_proto::v1::{EndpointDetailRequest, RegressionsRequest};
use prost::Message;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// The collector's default limits (as `--help` shows them).
fn limits() -> SpanLimits {
    crate::testing::defaults().pipeline.limits
}

/// A small xorshift generator; the seed is printed with any failure.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// One random mutation of `input` (sometimes spliced with `other`).
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        let at = rng.below(len + 1);
        match rng.below(7) {
            0 if len > 0 => out[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => out[at.min(len - 1)] = rng.below(256) as u8,
            2 => out.insert(at, [0x00, 0xff, 0x0a, 0x12, 0x80, b'"', b'{'][rng.below(7)]),
            3 if len > 0 => {
                out.remove(at.min(len - 1));
            }
            4 => out.truncate(at),
            5 if len > 0 => {
                let end = (at + rng.below(16)).min(len);
                let copy = out[at.min(len)..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => {
                let cut = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[cut..]);
            }
        }
    }
    out
}

/// Runs `target` on mutations of `seeds` for the time budget; a panic fails with the input.
fn fuzz(name: &str, seeds: &[Vec<u8>], mut target: impl FnMut(&[u8])) {
    let budget = std::env::var("PLUMB_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(budget);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            let base = &seeds[rng.below(seeds.len())];
            let other = &seeds[rng.below(seeds.len())];
            let input = if rng.below(8) == 0 {
                base.clone()
            } else {
                mutate(&mut rng, base, other)
            };
            if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
                panic!(
                    "{name}: panicked (seed {seed}, run {runs}) on input {:02x?}",
                    input
                );
            }
            runs += 1;
        }
    }
    eprintln!("{name}: {runs} inputs in {budget} s, no panic");
}

fn trace_requests() -> Vec<ExportTraceServiceRequest> {
    (0..6)
        .map(|seed| {
            Workload::new(WorkloadShape {
                services: 2,
                endpoints_per_service: 3,
                spans_per_request: 1 + seed as u32 * 3,
                seed,
            })
            .request()
        })
        .collect()
}

#[test]
fn otlp_protobuf_spans() {
    let seeds: Vec<Vec<u8>> = trace_requests()
        .iter()
        .map(Message::encode_to_vec)
        .collect();
    let names = NameLimiter::new(100);
    let now = crate::clock::now_unix_ns();
    fuzz("otlp protobuf spans", &seeds, |bytes| {
        let _ = normalise_traces(bytes, limits(), &names, now);
    });
}

#[test]
fn otlp_json_spans_decode_like_protobuf() {
    let seeds: Vec<Vec<u8>> = trace_requests()
        .iter()
        .map(|r| serde_json::to_vec(r).expect("json"))
        .collect();
    let names = NameLimiter::new(100);
    let now = crate::clock::now_unix_ns();
    fuzz("otlp json spans", &seeds, |bytes| {
        let payload = Payload::Json(bytes.to_vec().into());
        if let Ok(request) = payload.decode::<ExportTraceServiceRequest>("spans") {
            // What JSON decoding accepts, the protobuf path must accept too.
            let encoded = request.encode_to_vec();
            let out = normalise_traces(&encoded, limits(), &names, now);
            assert!(
                out.is_ok(),
                "valid JSON request refused as protobuf: {out:?}"
            );
        }
    });
}

/// A request with a point of every type.
fn every_metric_type() -> ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
        Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
        exponential_histogram_data_point::Buckets, metric::Data, number_data_point::Value,
    };
    let now = crate::clock::now_unix_ns();
    let number = NumberDataPoint {
        time_unix_nano: now,
        value: Some(Value::AsDouble(1.5)),
        attributes: vec![plumb_loadgen::text("k", "v")],
        ..Default::default()
    };
    let metric = |name: &str, data| Metric {
        name: name.into(),
        unit: "ms".into(),
        data: Some(data),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(
                        "g",
                        Data::Gauge(Gauge {
                            data_points: vec![number.clone()],
                        }),
                    ),
                    metric(
                        "s",
                        Data::Sum(Sum {
                            data_points: vec![number],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "h",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                time_unix_nano: now,
                                count: 3,
                                bucket_counts: vec![1, 1, 1],
                                explicit_bounds: vec![1.0, 2.0],
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "e",
                        Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                time_unix_nano: now,
                                count: 2,
                                scale: 3,
                                positive: Some(Buckets {
                                    offset: -2,
                                    bucket_counts: vec![1, 1],
                                }),
                                ..Default::default()
                            }],
                            aggregation_temporality: 2,
                        }),
                    ),
                    metric(
                        "q",
                        Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                time_unix_nano: now,
                                count: 4,
                                sum: 8.0,
                                ..Default::default()
                            }],
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn otlp_protobuf_metrics() {
    let seeds: Vec<Vec<u8>> = vec![
        ExportMetricsServiceRequest::default().encode_to_vec(),
        every_metric_type().encode_to_vec(),
    ];
    let now = crate::clock::now_unix_ns();
    fuzz("otlp protobuf metrics", &seeds, |bytes| {
        let payload = Payload::Protobuf(bytes.to_vec().into());
        if let Ok(request) = payload.decode::<ExportMetricsServiceRequest>("metrics") {
            let _ = normalise_metrics(request, limits(), now);
        }
    });
}

#[test]
fn path_templating_and_statement_normalising() {
    let paths: Vec<Vec<u8>> = [
        "/users/123/orders/0b9e6f4e-3c1a-4d2b-9f1e-2a3b4c5d6e7f?x=1#f",
        "/api/v1/blobs/9f86d081884c7d659a2feaa0c55ad015",
        "//a///b/",
        "SELECT * FROM t WHERE a = 'it''s' AND b IN (1, 2, 3) AND c = 4.5e3",
        "INSERT INTO \"x\" VALUES ($1, 'é', 0x1f)",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("path templating and statements", &paths, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let once = template_path(&text);
        assert_eq!(template_path(&once), once, "templating is idempotent");
        let mut statement = String::new();
        normalise_statement(&text, &mut statement);
        let mut again = String::new();
        normalise_statement(&statement, &mut again);
        assert_eq!(again, statement, "normalising is idempotent");
    });
}

#[test]
fn user_text_parsers() {
    let texts: Vec<Vec<u8>> = [
        "since=1h&baseline=7d&service=shop&min_requests=5&min_change_percent=20",
        "service=shop&operation=GET%20%2Fa%2F%7Bid%7D&since=15m&exemplars=3",
        "shop=token-aaaaaaaa,shop=token-bbbbbbbb,ops=token-cccccccc",
        "0af7651916cd43dd8448eb211c80319c",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("user text parsers", &texts, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let _ = request_from_query::<RegressionsRequest>(Some(&text));
        let _ = request_from_query::<EndpointDetailRequest>(Some(&text));
        if let Ok(tokens) = Tokens::parse(&text) {
            // Debug output shows the names and nothing else.
            let names: Vec<&str> = text
                .split(',')
                .filter_map(|item| item.trim().split_once('='))
                .map(|(name, _)| name.trim())
                .collect();
            assert_eq!(
                format!("{tokens:?}"),
                format!("Tokens {{ names: {names:?}, .. }}")
            );
        }
        if let Ok(id) = parse_trace_id(&text) {
            assert_eq!(id.len(), 32);
        }
    });
}

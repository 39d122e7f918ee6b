//! The collector's hot path per span: read the OTLP protobuf in place and normalise it (validate,
//! name the operation, template the route), aggregate into the minute histograms and encode the
//! span rows (RowBinary), and with trace assembly and the breakdown analysis on top.
//! `prost_decode_only` shows what building the prost structs would cost.
//!
//! Run: `cargo bench -p plumb-collector --bench ingest`. Throughput is reported per span.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use plumb_collector::aggregate::breakdown::BreakdownAggregator;
use plumb_collector::aggregate::{Aggregator, Flushable};
use plumb_collector::clock::now_unix_ns;
use plumb_loadgen::{Workload, WorkloadShape};
use plumb_collector::normalise::{NameLimiter, SpanLimits, normalise_traces};
use plumb_collector::store::rows::EncodedRows;
use plumb_collector::telemetry::Telemetry;
use plumb_collector::trace::assemble::{TraceAssembler, TraceSettings};
use prost::Message;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

const SPANS: u32 = 500;

fn encoded_request() -> Vec<u8> {
    let mut workload = Workload::new(WorkloadShape {
        services: 5,
        endpoints_per_service: 12,
        spans_per_request: SPANS,
        seed: 42,
    });
    workload.request().encode_to_vec()
}

fn limits() -> SpanLimits {
    SpanLimits {
        max_age: Duration::from_secs(7 * 86_400),
        max_future: Duration::from_secs(600),
        ..SpanLimits::default()
    }
}

fn ingest(c: &mut Criterion) {
    let bytes = encoded_request();
    let operations = NameLimiter::new(2000);
    let aggregator = Aggregator::new();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(u64::from(SPANS)));
    // For comparison: what decoding into the prost structs alone costs.
    group.bench_function("prost_decode_only", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(bytes.as_slice())).expect("valid"))
    });
    group.bench_function("normalise_from_wire", |b| {
        b.iter(|| {
            normalise_traces(black_box(&bytes), limits(), &operations, now_unix_ns())
                .expect("valid")
        })
    });
    group.bench_function("normalise_aggregate_encode", |b| {
        b.iter(|| {
            let normalised =
                normalise_traces(black_box(&bytes), limits(), &operations, now_unix_ns())
                    .expect("valid");
            aggregator.record(&normalised.accepted);
            black_box(EncodedRows::spans(&normalised.accepted))
        })
    });
    let breakdown = Arc::new(BreakdownAggregator::new());
    let traces = TraceAssembler::new(
        TraceSettings {
            window: Duration::from_secs(10),
            max_spans: 1_000_000,
            max_components_per_service: 5000,
        },
        Arc::clone(&breakdown),
        Arc::new(Telemetry::new()),
    );
    // Every iteration's traces are analysed at once, as if their window had ended: the whole
    // per-span cost of the breakdown.
    group.bench_function("normalise_aggregate_encode_breakdown", |b| {
        b.iter(|| {
            let normalised =
                normalise_traces(black_box(&bytes), limits(), &operations, now_unix_ns())
                    .expect("valid");
            aggregator.record(&normalised.accepted);
            traces.add(&normalised.accepted);
            traces.sweep(Instant::now() + Duration::from_secs(3600));
            black_box(EncodedRows::spans(&normalised.accepted))
        })
    });
    group.finish();
    black_box(aggregator.take());
    black_box(breakdown.take());
}

criterion_group!(benches, ingest);
criterion_main!(benches);

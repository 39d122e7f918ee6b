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
use plumb_collector::testing::HotPath;
use plumb_loadgen::{Workload, WorkloadShape};
use prost::Message;
use std::hint::black_box;

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

fn ingest(c: &mut Criterion) {
    let bytes = encoded_request();
    let plain = HotPath::new(false);
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(u64::from(SPANS)));
    // For comparison: what decoding into the prost structs alone costs.
    group.bench_function("prost_decode_only", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(bytes.as_slice())).expect("valid"))
    });
    group.bench_function("normalise_from_wire", |b| {
        b.iter(|| plain.normalise(black_box(&bytes)))
    });
    group.bench_function("normalise_aggregate_encode", |b| {
        b.iter(|| plain.ingest(black_box(&bytes)))
    });
    // Every iteration's traces are analysed at once, as if their window had ended: the whole
    // per-span cost of the breakdown.
    let with_breakdown = HotPath::new(true);
    group.bench_function("normalise_aggregate_encode_breakdown", |b| {
        b.iter(|| with_breakdown.ingest(black_box(&bytes)))
    });
    group.finish();
    black_box(plain.take_aggregates() + with_breakdown.take_aggregates());
}

criterion_group!(benches, ingest);
criterion_main!(benches);

//! Model time per series: the whole report for the synthetic history (one service and one host,
//! twelve weeks), and one forecast of its hourly traffic 30 days ahead.
//!
//! `cargo bench -p plumb-capacity --bench models`

#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use criterion::{Criterion, criterion_group, criterion_main};
use plumb_capacity::forecast::forecast;
use std::hint::black_box;

fn models(c: &mut Criterion) {
    let (input, _) = plumb_capacity::synthetic::input(1, 0.8, 30);
    let mut group = c.benchmark_group("capacity");
    group.sample_size(10);
    group.bench_function("report: 1 service, 1 host, 12 weeks", |b| {
        b.iter(|| plumb_capacity::build(black_box(&input)))
    });
    let traffic: Vec<f64> = input.services[0]
        .hours
        .iter()
        .map(|h| h.requests as f64)
        .collect();
    let start = input.services[0].hours[0].hour;
    group.bench_function("forecast: 12 weeks hourly, 30 days ahead", |b| {
        b.iter(|| forecast(black_box(&traffic), start, 30 * 24))
    });
    group.finish();
}

criterion_group!(benches, models);
criterion_main!(benches);

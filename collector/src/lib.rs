//! `plumb-collector`: receives OTLP spans and metrics, aggregates span latency into mergeable
//! HDR histograms per (service, operation, kind, minute), works out from whole traces where each
//! endpoint's time goes, stores it all in ClickHouse, and answers "which endpoints are slow, why,
//! and since when" through the query API.
//!
//! The modules follow the data: `receive` → `normalise` → `pipeline` → `aggregate` (and
//! `trace_analysis` → `aggregate`) → `store` → `query`. `journal` keeps accepted requests
//! safe from a crash until the writers acknowledge them (`ack`); `recovery` writes what a crashed
//! run left. `model` holds the domain types every stage shares; [`config`] checks the options
//! once; [`app`] wires the stages and `shutdown` stops them in order. `docs/ARCHITECTURE.md` has
//! the whole picture, [`testing`] is what other crates' tests may use, and [`fuzz`] holds the
//! fuzz targets.

#![forbid(unsafe_code)]

mod ack;
mod aggregate;
mod alerting;
pub mod app;
mod clock;
pub mod config;
pub mod fuzz;
mod journal;
mod model;
mod normalise;
mod pipeline;
mod query;
mod receive;
mod recovery;
mod report;
mod shutdown;
mod size_guess;
mod store;
mod telemetry;
pub mod testing;
mod trace_analysis;
mod web;

#[cfg(test)]
mod compatibility_tests;
#[cfg(test)]
mod fuzz_tests;

//! `plumb-collector`: receives OTLP spans and metrics, aggregates span latency into mergeable
//! HDR histograms per (service, operation, kind, minute), stores histograms, spans and metrics in
//! ClickHouse, and answers "which endpoints are slow" through the query API.
//!
//! The modules follow the data: [`receive`] → [`normalise`] → [`pipeline`] → [`aggregate`] →
//! [`store`] → [`query`]. [`app`] wires them together; [`config`] and [`telemetry`] serve all.

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod app;
pub mod clock;
pub mod config;
pub mod loadgen;
pub mod normalise;
pub mod pipeline;
pub mod query;
pub mod receive;
pub mod store;
pub mod telemetry;
pub mod trace;

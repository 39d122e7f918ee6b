//! `plumb-collector`: receives OTLP spans and metrics, aggregates span latency into mergeable
//! HDR histograms per (service, operation, kind, minute), works out from whole traces where each
//! endpoint's time goes, stores it all in ClickHouse, and answers "which endpoints are slow, why,
//! and since when" through the query API.
//!
//! The modules follow the data: [`receive`] → [`normalise`] → [`pipeline`] → [`aggregate`] (and
//! [`trace`] → [`aggregate`]) → [`store`] → [`query`]; [`journal`] keeps accepted requests safe
//! from a crash until they are stored. [`app`] wires them together; [`config`] and [`telemetry`]
//! serve all.

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod app;
pub mod clock;
pub mod config;
pub mod journal;
pub mod normalise;
pub mod pipeline;
pub mod query;
pub mod receive;
pub mod store;
pub mod telemetry;
pub mod trace;

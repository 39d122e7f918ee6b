//! Integration tests: real `plumb-collector` processes, a real ClickHouse, the official
//! OpenTelemetry SDK exporters, and the `plumb` CLI, all on loopback.

mod alerting;
mod alerting_dns_and_mail;
mod auth;
mod backpressure;
mod bad_input;
mod bottlenecks;
mod capacity;
mod crash;
mod dashboards;
mod end_to_end;
mod lifecycle;
mod storage;
mod tls;
mod web;

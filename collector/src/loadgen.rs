//! Synthetic OTLP traffic for the load generator (`plumb-loadgen`), the benchmarks and tests.
//!
//! In: a [`WorkloadShape`] (services, endpoints per service, spans per request, seed). Out:
//! realistic `ExportTraceServiceRequest`s (SERVER and CLIENT spans with about ten attributes,
//! per-endpoint latency with a tail, a few errors). `plumb_otlp::client` sends them pre-encoded.

use crate::clock::now_unix_ns;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// What the generated traffic looks like.
#[derive(Clone, Copy, Debug)]
pub struct WorkloadShape {
    /// Distinct services.
    pub services: u32,
    /// Distinct endpoints per service.
    pub endpoints_per_service: u32,
    /// Spans in one export request.
    pub spans_per_request: u32,
    /// Seed for the pseudo-random choices.
    pub seed: u64,
}

/// A deterministic generator of export requests.
#[derive(Debug)]
pub struct Workload {
    shape: WorkloadShape,
    state: u64,
}

const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const RESOURCES: [&str; 8] = [
    "users", "orders", "items", "carts", "payments", "search", "reviews", "sessions",
];

impl Workload {
    /// A generator for `shape`.
    pub fn new(shape: WorkloadShape) -> Self {
        Self {
            shape,
            state: shape.seed | 1,
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// One export request: all spans from one service, ending just before now.
    pub fn request(&mut self) -> ExportTraceServiceRequest {
        let service = self.below(u64::from(self.shape.services));
        let now = now_unix_ns();
        let spans = (0..self.shape.spans_per_request)
            .map(|_| self.span(service, now))
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", &format!("svc-{service}")),
                        text("service.version", "1.4.2"),
                        text("deployment.environment", "load"),
                        text("host.name", &format!("host-{}", service % 3)),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn span(&mut self, service: u64, now: u64) -> Span {
        let endpoint = self.below(u64::from(self.shape.endpoints_per_service));
        let method = METHODS[(endpoint % 4) as usize];
        let resource = RESOURCES[(endpoint % 8) as usize];
        let route = format!("/api/v{}/{resource}/{{id}}", endpoint / 8 + 1);
        let path = route.replace("{id}", &self.below(100_000).to_string());
        // Each endpoint has its own base latency; one request in fifty takes ten times longer.
        let base_us = 500 + (service * 7 + endpoint * 13) % 40 * 1_000;
        let tail = if self.below(50) == 0 { 10 } else { 1 };
        let duration_ns = (base_us + self.below(base_us)) * tail * 1_000;
        let start = now - duration_ns - self.below(2_000_000_000);
        let failed = self.below(100) < 2;
        let is_client = self.below(5) == 0;
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&self.next().to_le_bytes());
        trace_id[8..].copy_from_slice(&self.next().to_le_bytes());
        Span {
            trace_id: trace_id.to_vec(),
            span_id: self.next().to_le_bytes().to_vec(),
            name: if is_client {
                format!("SELECT {resource}")
            } else {
                format!("{method} {route}")
            },
            kind: if is_client { 3 } else { 2 },
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration_ns,
            attributes: vec![
                text("http.request.method", method),
                text("http.route", &route),
                text("url.path", &path),
                int("http.response.status_code", if failed { 500 } else { 200 }),
                text("server.address", "api.internal"),
                int("server.port", 8080),
                text("network.protocol.version", "1.1"),
                text(
                    "user_agent.original",
                    "Mozilla/5.0 (X11; Linux x86_64) plumb-loadgen",
                ),
                text("client.address", "10.1.2.3"),
                int("http.request.body.size", self.below(4096) as i64),
            ],
            status: failed.then(|| Status {
                code: 2,
                message: "internal error".into(),
            }),
            ..Default::default()
        }
    }
}

/// A string attribute.
pub fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

//! `plumb-loadgen`: synthetic OTLP traffic for the load generator binary, the benchmarks and tests.
//!
//! In: a [`WorkloadShape`] (services, endpoints per service, spans per request, seed). Out:
//! realistic `ExportTraceServiceRequest`s (whole traces: a SERVER span with about ten attributes
//! and its database queries, per-endpoint latency with a tail, a few errors). `plumb_otlp::client` sends them pre-encoded;
//! [`FreshIds`] gives every copy of an encoded request new trace and span ids, so a pool of
//! requests still sends only traces the collector has not seen.
//! [`metrics`] builds metric requests with chosen timestamps, for backfills of history.

pub mod metrics;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message as _;

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
            // Odd and different for every seed below 2^63 (xorshift needs a state other than 0).
            state: (shape.seed << 1) | 1,
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

    /// One export request: whole traces from one service, ending just before now.
    pub fn request(&mut self) -> ExportTraceServiceRequest {
        let service = self.below(u64::from(self.shape.services));
        let now = now_unix_ns();
        let wanted = self.shape.spans_per_request as usize;
        let mut spans = Vec::with_capacity(wanted + 4);
        while spans.len() < wanted {
            self.trace(service, now, &mut spans);
        }
        spans.truncate(wanted);
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

    /// One request's trace: a SERVER span and, inside it, one to three database queries and
    /// sometimes a piece of internal work (five spans in four traces carry ten attributes).
    fn trace(&mut self, service: u64, now: u64, out: &mut Vec<Span>) {
        let endpoint = self.below(u64::from(self.shape.endpoints_per_service));
        let method = METHODS[(endpoint % 4) as usize];
        let resource = RESOURCES[(endpoint % 8) as usize];
        let route = format!("/api/v{}/{resource}/{{id}}", endpoint / 8 + 1);
        let id = self.below(100_000);
        let path = route.replace("{id}", &id.to_string());
        // Each endpoint has its own base latency; one request in fifty takes ten times longer.
        let base_us = 500 + (service * 7 + endpoint * 13) % 40 * 1_000;
        let tail = if self.below(50) == 0 { 10 } else { 1 };
        let duration_ns = (base_us + self.below(base_us)) * tail * 1_000;
        let start = now - duration_ns - self.below(2_000_000_000);
        let failed = self.below(100) < 2;
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&self.next().to_le_bytes());
        trace_id[8..].copy_from_slice(&self.next().to_le_bytes());
        let root_id = self.next().to_le_bytes().to_vec();
        out.push(Span {
            trace_id: trace_id.to_vec(),
            span_id: root_id.clone(),
            name: format!("{method} {route}"),
            kind: 2,
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
        });
        let child = |this: &mut Self, name: String, kind: i32, at: u64, attributes| Span {
            trace_id: trace_id.to_vec(),
            span_id: this.next().to_le_bytes().to_vec(),
            parent_span_id: root_id.clone(),
            name,
            kind,
            start_time_unix_nano: start + at,
            end_time_unix_nano: start + at + duration_ns / 5,
            attributes,
            ..Default::default()
        };
        for q in 0..1 + self.below(3) {
            let attributes = vec![
                text("db.system", "postgresql"),
                text(
                    "db.statement",
                    &format!("SELECT * FROM {resource} WHERE id = {id} AND tenant = 'acme'"),
                ),
                text("db.name", "shop"),
                text("server.address", "db.internal"),
            ];
            let at = duration_ns / 10 + q * (duration_ns / 4);
            let span = child(self, format!("SELECT {resource}"), 3, at, attributes);
            out.push(span);
        }
        if self.below(4) == 0 {
            let span = child(self, "render".into(), 1, duration_ns * 3 / 4, Vec::new());
            out.push(span);
        }
    }
}

/// Six trace requests of varied shapes (2 services of 3 endpoints, 1 to 16 spans each): small
/// valid inputs for fuzzing the decoders.
pub fn sample_trace_requests() -> Vec<ExportTraceServiceRequest> {
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

/// One encoded request whose trace and span ids are replaced with new ones for every copy, so a
/// pool of pre-encoded requests still sends traces the collector has never seen: the bytes of
/// each id are found once (ids are random, so a 16- or 8-byte match elsewhere is as unlikely as
/// a collision), and each copy writes fresh ids at those places, a parent's id wherever it is
/// referenced too.
#[derive(Clone, Debug)]
pub struct FreshIds {
    template: Vec<u8>,
    /// Where each id's bytes are, per id: (length, offsets).
    ids: Vec<(usize, Vec<usize>)>,
}

impl FreshIds {
    /// The encoded `request`, with the places of its trace and span ids.
    pub fn new(request: &ExportTraceServiceRequest) -> Self {
        let template = request.encode_to_vec();
        let mut distinct: Vec<Vec<u8>> = Vec::new();
        for span in request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            for id in [&span.trace_id, &span.span_id] {
                if !id.is_empty() && !distinct.contains(id) {
                    distinct.push(id.clone());
                }
            }
        }
        // One pass over the bytes, looking each 16- and 8-byte window up among the ids.
        let index: std::collections::HashMap<&[u8], usize> = distinct
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_slice(), i))
            .collect();
        let mut ids: Vec<(usize, Vec<usize>)> =
            distinct.iter().map(|id| (id.len(), Vec::new())).collect();
        let mut at = 0;
        while at < template.len() {
            let found = [16, 8].into_iter().find_map(|len| {
                template
                    .get(at..at + len)
                    .and_then(|window| index.get(window))
                    .map(|&i| (i, len))
            });
            match found {
                Some((i, len)) => {
                    ids[i].1.push(at);
                    at += len;
                }
                None => at += 1,
            }
        }
        Self { template, ids }
    }

    /// A copy with new ids, made from `seed` (a different seed for every copy gives ids never
    /// sent before).
    pub fn copy(&self, seed: u64) -> Vec<u8> {
        let mut out = self.template.clone();
        let mut rng = fastrand::Rng::with_seed(seed);
        for (len, offsets) in &self.ids {
            let mut id = [0u8; 16];
            rng.fill(&mut id);
            for &at in offsets {
                out[at..at + len].copy_from_slice(&id[..*len]);
            }
        }
        out
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

/// Nanoseconds since the Unix epoch (the spans' clock).
fn now_unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_copy_has_new_trace_and_span_ids_and_keeps_its_parents() {
        let request = Workload::new(WorkloadShape {
            services: 3,
            endpoints_per_service: 4,
            spans_per_request: 200,
            seed: 7,
        })
        .request();
        let fresh = FreshIds::new(&request);
        let decode = |bytes: Vec<u8>| {
            ExportTraceServiceRequest::decode(bytes.as_slice())
                .expect("a copy decodes")
                .resource_spans
                .into_iter()
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans)
                .collect::<Vec<Span>>()
        };
        let (a, b) = (decode(fresh.copy(1)), decode(fresh.copy(2)));
        let original: Vec<&Span> = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert_eq!(a.len(), original.len());
        for ((x, y), o) in a.iter().zip(&b).zip(&original) {
            assert_ne!(x.trace_id, o.trace_id);
            assert_ne!(x.trace_id, y.trace_id);
            assert_ne!(x.span_id, y.span_id);
            assert_eq!(
                (x.name.as_str(), x.start_time_unix_nano),
                (o.name.as_str(), o.start_time_unix_nano)
            );
        }
        // Every parent is still a span of the same trace.
        for s in a.iter().filter(|s| !s.parent_span_id.is_empty()) {
            assert!(
                a.iter()
                    .any(|p| p.span_id == s.parent_span_id && p.trace_id == s.trace_id),
                "a parent lost"
            );
        }
        assert_eq!(fresh.copy(3), fresh.copy(3), "the same seed, the same copy");
    }
}

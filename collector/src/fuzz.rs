//! Fuzz targets: each takes arbitrary bytes and feeds them to one decoder of input from the
//! network or the user, checking what can be checked. A target must never panic; where it
//! asserts, a failed assertion is a bug found.
//!
//! The same functions serve two runners: `fuzz_tests` (mutations of valid inputs for a few
//! seconds in the test suite, then every input in `fuzz/corpus/`) and the coverage-guided
//! campaign outside it (`fuzz/`, built with `cargo afl`; `scripts/fuzz-campaign.sh`).

use crate::normalise::route::template_path;
use crate::normalise::{
    NameLimiter, SpanLimits, TraceRequestError, normalise_metrics, normalise_traces,
};
use crate::query::api::request_from_query;
use crate::query::waterfall::parse_trace_id;
use crate::trace_analysis::component::normalise_statement;
use bumpalo::Bump;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use plumb_otlp::Payload;
use plumb_otlp::auth::Tokens;
use plumb_otlp::unary::MessageReader;
use plumb_proto::v1::{EndpointDetailRequest, RegressionsRequest};
use prost::Message;

/// A target: its name (the campaign's folder) and the function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("otlp_protobuf_spans", otlp_protobuf_spans),
    ("otlp_json_spans", otlp_json_spans),
    ("otlp_protobuf_metrics", otlp_protobuf_metrics),
    ("otlp_json_metrics", otlp_json_metrics),
    ("paths_and_statements", paths_and_statements),
    ("query_parameters", query_parameters),
    ("alerting_config", alerting_config),
    ("grpc_framing", grpc_framing),
];

/// Valid inputs to start `target` from: the OTLP requests given (from the load generator)
/// encoded as the target reads them, or texts of Plumb's own; empty for an unknown target.
pub fn seeds(
    target: &str,
    traces: &[ExportTraceServiceRequest],
    metrics: &[ExportMetricsServiceRequest],
) -> Vec<Vec<u8>> {
    let texts = |t: &[&str]| t.iter().map(|s| s.as_bytes().to_vec()).collect();
    match target {
        "otlp_protobuf_spans" => traces.iter().map(Message::encode_to_vec).collect(),
        "otlp_json_spans" => traces.iter().map(json).collect(),
        "otlp_protobuf_metrics" => std::iter::once(Vec::new())
            .chain(metrics.iter().map(Message::encode_to_vec))
            .collect(),
        "otlp_json_metrics" => metrics.iter().map(json).collect(),
        "paths_and_statements" => texts(&[
            "/users/123/orders/0b9e6f4e-3c1a-4d2b-9f1e-2a3b4c5d6e7f?x=1#f",
            "/api/v1/blobs/9f86d081884c7d659a2feaa0c55ad015",
            "//a///b/",
            "SELECT * FROM t WHERE a = 'it''s' AND b IN (1, 2, 3) AND c = 4.5e3",
            "INSERT INTO \"x\" VALUES ($1, 'é', 0x1f)",
        ]),
        "query_parameters" => texts(&[
            "since=1h&baseline=7d&service=shop&min_requests=5&min_change_percent=20",
            "service=shop&operation=GET%20%2Fa%2F%7Bid%7D&since=15m&exemplars=3",
            "shop=token-aaaaaaaa,shop=token-bbbbbbbb,ops=token-cccccccc",
            "0af7651916cd43dd8448eb211c80319c",
        ]),
        "alerting_config" => texts(&[ALERTING_SEED]),
        "grpc_framing" => traces
            .iter()
            .map(Message::encode_to_vec)
            .enumerate()
            .map(|(i, message)| {
                // No encoding named, one frame; then frames of 7, 64 and 255 bytes.
                let mut input = vec![0, [0, 7, 64, 255][i % 4], 0];
                input.extend((message.len() as u32).to_be_bytes());
                input.extend(message);
                input
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// An alerting file with one of each section.
const ALERTING_SEED: &str = r#"evaluation_interval = "5s"
[defaults.probe]
interval = "30s"
failure_threshold = 3
[[probe]]
name = "web"
kind = "http"
url = "http://127.0.0.1:8080/health"
conditions = ["[STATUS] == 200", "[BODY].status == UP", "[RESPONSE_TIME] < 300ms"]
labels = { service = "web" }
[[probe]]
name = "db"
kind = "tcp"
address = "127.0.0.1:5432"
[[rule]]
name = "slow"
service = "web"
signal = "p99"
above = "800ms"
for = "2m"
[route]
receiver = "ops"
group_by = ["alertname"]
routes = [{ matchers = ["severity=ticket"], receiver = "ops" }]
[[receiver]]
name = "ops"
webhook = [{ url = "http://127.0.0.1:9/hook" }]
[[maintenance]]
cron = "0 23 * * THU"
duration = "1h"
matchers = ["service=web"]
"#;

/// A request as OTLP/JSON clients send it.
fn json<T: serde::Serialize>(request: &T) -> Vec<u8> {
    serde_json::to_vec(request).unwrap_or_default()
}

/// The collector's default limits (as `--help` shows them), worked out once.
fn limits() -> SpanLimits {
    static LIMITS: std::sync::OnceLock<SpanLimits> = std::sync::OnceLock::new();
    *LIMITS.get_or_init(|| crate::testing::defaults().pipeline.limits)
}

/// A fixed "now" (2026-12-01), so that a run does not depend on the clock.
const NOW_NS: u64 = 1_796_083_200_000_000_000;

/// OTLP/protobuf trace requests, normalised as the receivers do; a request prost decodes is
/// never refused as malformed (only as holding too many spans).
pub fn otlp_protobuf_spans(bytes: &[u8]) {
    let names = NameLimiter::new(100);
    let mut attributes = Vec::new();
    let arena = Bump::new();
    let out = normalise_traces(bytes, &mut attributes, &arena, limits(), &names, NOW_NS);
    if let Err(TraceRequestError::Malformed(e)) = out {
        assert!(
            ExportTraceServiceRequest::decode(bytes).is_err(),
            "a request prost decodes was refused: {e}"
        );
    }
}

/// OTLP/JSON trace requests: what JSON decoding accepts, the protobuf path accepts too.
pub fn otlp_json_spans(bytes: &[u8]) {
    let payload = Payload::Json(bytes.to_vec().into());
    if let Ok(request) = payload.decode::<ExportTraceServiceRequest>("spans") {
        let names = NameLimiter::new(100);
        let encoded = request.encode_to_vec();
        let mut attributes = Vec::new();
        let arena = Bump::new();
        let out = normalise_traces(&encoded, &mut attributes, &arena, limits(), &names, NOW_NS);
        assert!(
            out.is_ok(),
            "valid JSON request refused as protobuf: {out:?}"
        );
    }
}

/// OTLP/protobuf metric requests, normalised; a request prost decodes is never refused as
/// malformed.
pub fn otlp_protobuf_metrics(bytes: &[u8]) {
    let out = normalise_metrics(bytes, limits(), NOW_NS);
    if Payload::Protobuf(bytes.to_vec().into())
        .decode::<ExportMetricsServiceRequest>("metrics")
        .is_ok()
    {
        assert!(out.is_ok(), "valid request refused: {:?}", out.err());
    }
}

/// OTLP/JSON metric requests, converted to protobuf and normalised: a request that converts is
/// never refused as malformed.
pub fn otlp_json_metrics(bytes: &[u8]) {
    let payload = Payload::Json(bytes.to_vec().into());
    if let Ok(request) = payload.into_protobuf::<ExportMetricsServiceRequest>("metrics") {
        let out = normalise_metrics(&request, limits(), NOW_NS);
        assert!(out.is_ok(), "valid JSON request refused: {:?}", out.err());
    }
}

/// URL paths turned into route templates and statements normalised: both idempotent.
pub fn paths_and_statements(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let once = template_path(&text);
    assert_eq!(template_path(&once), once, "templating is idempotent");
    let mut statement = String::new();
    normalise_statement(&text, &mut statement);
    let mut again = String::new();
    normalise_statement(&statement, &mut again);
    assert_eq!(again, statement, "normalising is idempotent");
}

/// The query API's URL parameters, bearer token lists and trace ids.
pub fn query_parameters(bytes: &[u8]) {
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
}

/// The most bytes [`grpc_framing`] lets a message have.
const GRPC_LIMIT: usize = 64 * 1024;

/// A unary gRPC call's body read frame by frame: the first byte picks the `grpc-encoding` named
/// (none, gzip, zstd, or one Plumb does not read), the second the frame size (0: one frame), the
/// rest is the body (prefix and message). A status or a message, never a panic, and never a
/// message over the limit.
pub fn grpc_framing(bytes: &[u8]) {
    let [pick, size, body @ ..] = bytes else {
        return;
    };
    let encoding = [None, Some("gzip"), Some("zstd"), Some("br")][usize::from(pick % 4)];
    let Ok(mut reader) = MessageReader::new(encoding, GRPC_LIMIT) else {
        return;
    };
    let size = match size {
        0 => body.len().max(1),
        n => usize::from(*n),
    };
    for frame in body.chunks(size) {
        if reader.push(Bytes::copy_from_slice(frame)).is_err() {
            return;
        }
    }
    if let Ok(message) = reader.finish() {
        assert!(message.len() <= GRPC_LIMIT, "a message over the limit");
    }
}

/// The alerting file (TOML): checked with errors that name the file, never a panic.
pub fn alerting_config(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Err(e) = plumb_alert_config::parse(text, "alerting.toml")
    {
        assert!(e.to_string().contains("alerting.toml"), "{e}");
    }
}

//! One trace as a waterfall across services: a bar per span on a shared time axis (errors in
//! red), and each span's details on demand.

use super::format::{ms, time};
use super::{Chrome, Params, serve};
use crate::query::api::QueryApi;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use plumb_proto::v1::GetTraceRequest;

/// Width of the waterfall, pixels.
const WIDTH: u32 = 1000;

struct SpanRow {
    indent: String,
    service: String,
    name: String,
    duration: String,
    error: bool,
    span_id: String,
    parent: String,
    operation: String,
    kind: String,
    offset: String,
    http_status: String,
    status_message: String,
    attributes: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "web/trace.html")]
struct Page {
    chrome: Chrome,
    summary: String,
    waterfall: String,
    spans: Vec<SpanRow>,
}

/// `GET /trace/{trace_id}`.
pub(crate) async fn page(
    State(api): State<QueryApi>,
    Path(trace_id): Path<String>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    serve("/trace", &uri, &headers, |params: Params| async move {
        let (_, since_seconds) = params.since("1d")?;
        let trace = api
            .trace(GetTraceRequest {
                trace_id: trace_id.clone(),
                since_seconds,
            })
            .await?;
        let services = {
            let mut s: Vec<&str> = trace.spans.iter().map(|s| s.service.as_str()).collect();
            s.sort_unstable();
            s.dedup();
            s.len()
        };
        let errors = trace.spans.iter().filter(|s| s.error).count();
        let summary = format!(
            "{} spans in {} service{}, {} long, started {} UTC; {} with errors",
            trace.spans.len(),
            services,
            if services == 1 { "" } else { "s" },
            ms(trace.duration_ms),
            time(trace.start_unix_ns / 1_000_000_000),
            errors
        );
        let bars: Vec<(f64, f64, bool)> = trace
            .spans
            .iter()
            .map(|s| (s.offset_ms, s.duration_ms, s.error))
            .collect();
        let spans = trace
            .spans
            .into_iter()
            .map(|s| SpanRow {
                indent: "· ".repeat(s.depth as usize),
                duration: ms(s.duration_ms),
                offset: format!("+{}", ms(s.offset_ms)),
                http_status: if s.http_status_code == 0 {
                    "–".into()
                } else {
                    s.http_status_code.to_string()
                },
                parent: if s.parent_span_id.is_empty() {
                    "none (the root)".into()
                } else {
                    s.parent_span_id
                },
                status_message: if s.status_message.is_empty() {
                    "–".into()
                } else {
                    s.status_message
                },
                attributes: s.attributes.into_iter().map(|a| (a.key, a.value)).collect(),
                service: s.service,
                name: s.name,
                error: s.error,
                span_id: s.span_id,
                operation: s.operation,
                kind: s.kind,
            })
            .collect();
        Ok(Page {
            chrome: params.chrome(format!("Trace {trace_id}"), None),
            summary,
            waterfall: plumb_charts::waterfall(WIDTH, &bars),
            spans,
        })
    })
    .await
}

//! One trace as a tree (`plumb trace <id>`), rebuilt from the `spans` table.
//!
//! Spans are placed depth first, each followed by its children in start order; a span whose
//! parent was not stored starts a tree of its own at depth 0. Offsets are from the trace's
//! earliest start.

use super::QueryError;
use super::top::window_seconds;
use crate::store::rows::unfold_attributes;
use crate::store::{Store, StoreError};
use clickhouse::Row;
use plumb_proto::v1::{GetTraceRequest, GetTraceResponse, SpanAttribute, TraceSpan};
use serde::Deserialize;
use std::collections::HashMap;

/// How far back spans are looked for by default.
const DEFAULT_WINDOW_S: u64 = 7 * 86_400;

/// A stored span as the tree needs it.
#[derive(Debug, Row, Deserialize)]
pub(crate) struct StoredSpan {
    /// Span id, hex.
    pub(crate) span: String,
    /// Parent span id, hex (`0000000000000000` for a root).
    pub(crate) parent: String,
    /// Service.
    pub(crate) service: String,
    /// Span name.
    pub(crate) name: String,
    /// Operation.
    pub(crate) operation: String,
    /// Kind name.
    pub(crate) kind_name: String,
    /// Start, ns since the epoch.
    pub(crate) start_time_ns: u64,
    /// Duration, ns.
    pub(crate) duration_ns: u64,
    /// 1 for errors.
    pub(crate) is_error: u8,
    /// Status message.
    pub(crate) status_message: String,
    /// HTTP status, 0 when none.
    pub(crate) http_status_code: u16,
    /// Attribute keys.
    pub(crate) attr_keys: Vec<String>,
    /// Attribute values, by key.
    pub(crate) attr_values: Vec<String>,
    /// Which attributes the row left out because other columns hold them.
    pub(crate) attributes_folded: u8,
}

/// Checks a trace id: 32 hex digits, not all zero. Returns it in lower case.
pub(crate) fn parse_trace_id(id: &str) -> Result<String, QueryError> {
    let id = id.trim();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(QueryError::InvalidArgument(format!(
            "trace id {id:?} is not 32 hex digits"
        )));
    }
    if id.bytes().all(|b| b == b'0') {
        return Err(QueryError::InvalidArgument(
            "the all-zero trace id is invalid".into(),
        ));
    }
    Ok(id.to_ascii_lowercase())
}

/// The query for the spans of `trace_id` (checked with [`parse_trace_id`]) since `from_s`.
pub(crate) fn trace_query(store: &Store, trace_id: &str, from_s: u64) -> clickhouse::query::Query {
    store
        .client()
        .query(
            "SELECT lower(hex(span_id)) AS span, lower(hex(parent_span_id)) AS parent, service, name,
                    operation, toString(kind) AS kind_name, start_time_ns, duration_ns, is_error,
                    status_message, http_status_code,
                    attributes.key AS attr_keys, attributes.value AS attr_values,
                    attributes_folded
             FROM spans
             WHERE trace_id = toFixedString(unhex(?), 16) AND timestamp >= toDateTime(?)",
        )
        .bind(trace_id)
        .bind(from_s)
}

/// Reads the trace named in `request` as of `now_unix_s`.
pub(crate) async fn get_trace(
    store: &Store,
    request: GetTraceRequest,
    now_unix_s: u32,
) -> Result<GetTraceResponse, QueryError> {
    let trace_id = parse_trace_id(&request.trace_id)?;
    let window_s = window_seconds(request.since_seconds, DEFAULT_WINDOW_S)?;
    let from_s = u64::from(now_unix_s).saturating_sub(window_s);
    let mut spans: Vec<StoredSpan> = trace_query(store, &trace_id, from_s)
        .fetch_all()
        .await
        .map_err(StoreError::clickhouse("read the trace"))?;
    for s in &mut spans {
        unfold_attributes(
            s.attributes_folded,
            &s.operation,
            s.http_status_code,
            &mut s.attr_keys,
            &mut s.attr_values,
        );
    }
    if spans.is_empty() {
        return Err(QueryError::NotFound(format!(
            "no spans of trace {trace_id} in the last {}",
            humantime::format_duration(std::time::Duration::from_secs(window_s))
        )));
    }
    Ok(tree(trace_id, spans))
}

/// Places `spans` in tree order with depths and offsets.
pub(crate) fn tree(trace_id: String, mut spans: Vec<StoredSpan>) -> GetTraceResponse {
    spans.sort_by(|a, b| (a.start_time_ns, &a.span).cmp(&(b.start_time_ns, &b.span)));
    let start = spans.first().map_or(0, |s| s.start_time_ns);
    let end = spans
        .iter()
        .map(|s| s.start_time_ns.saturating_add(s.duration_ns))
        .max()
        .unwrap_or(start);
    let index: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match index.get(span.parent.as_str()) {
            Some(&p) if p != i => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let mut order: Vec<(usize, u32)> = Vec::with_capacity(spans.len());
    let mut placed = vec![false; spans.len()];
    // Depth first; children were pushed in start order, so push them reversed onto the stack.
    let mut stack: Vec<(usize, u32)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    loop {
        while let Some((at, depth)) = stack.pop() {
            if std::mem::replace(&mut placed[at], true) {
                continue;
            }
            order.push((at, depth));
            stack.extend(children[at].iter().rev().map(|&c| (c, depth + 1)));
        }
        // Spans caught in a parent cycle were reached from no root: start from the earliest.
        match placed.iter().position(|p| !p) {
            Some(next) => stack.push((next, 0)),
            None => break,
        }
    }
    let ns_to_ms = |ns: u64| ns as f64 / 1e6;
    let root_parent = "0".repeat(16);
    GetTraceResponse {
        trace_id,
        duration_ms: ns_to_ms(end - start),
        start_unix_ns: start,
        spans: order
            .into_iter()
            .map(|(i, depth)| {
                let s = &spans[i];
                TraceSpan {
                    span_id: s.span.clone(),
                    parent_span_id: if s.parent == root_parent {
                        String::new()
                    } else {
                        s.parent.clone()
                    },
                    service: s.service.clone(),
                    name: s.name.clone(),
                    operation: s.operation.clone(),
                    kind: s.kind_name.clone(),
                    offset_ms: ns_to_ms(s.start_time_ns - start),
                    duration_ms: ns_to_ms(s.duration_ns),
                    depth,
                    error: s.is_error != 0,
                    status_message: s.status_message.clone(),
                    http_status_code: u32::from(s.http_status_code),
                    attributes: s
                        .attr_keys
                        .iter()
                        .zip(&s.attr_values)
                        .map(|(key, value)| SpanAttribute {
                            key: key.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, start_ms: u64, duration_ms: u64) -> StoredSpan {
        StoredSpan {
            span: id.repeat(16),
            parent: parent.repeat(16),
            service: "s".into(),
            name: id.into(),
            operation: id.into(),
            kind_name: "internal".into(),
            start_time_ns: 1_000_000_000 + start_ms * 1_000_000,
            duration_ns: duration_ms * 1_000_000,
            is_error: 0,
            status_message: String::new(),
            http_status_code: 0,
            attr_keys: Vec::new(),
            attr_values: Vec::new(),
            attributes_folded: 0,
        }
    }

    #[test]
    fn depth_first_in_start_order_with_orphans_and_cycles_placed() {
        let spans = vec![
            span("c", "a", 30, 10),
            span("a", "0", 0, 100),
            span("b", "a", 10, 10),
            span("d", "b", 12, 5),
            span("e", "9", 50, 5), // parent never stored
            span("f", "g", 60, 1), // f and g are each other's parent
            span("g", "f", 61, 1),
        ];
        let t = tree("ab".repeat(16), spans);
        let got: Vec<(&str, u32, f64)> = t
            .spans
            .iter()
            .map(|s| (s.name.as_str(), s.depth, s.offset_ms))
            .collect();
        assert_eq!(
            got,
            [
                ("a", 0, 0.0),
                ("b", 1, 10.0),
                ("d", 2, 12.0),
                ("c", 1, 30.0),
                ("e", 0, 50.0),
                ("f", 0, 60.0),
                ("g", 1, 61.0),
            ]
        );
        assert_eq!(t.duration_ms, 100.0);
        assert_eq!(t.spans[0].parent_span_id, "");
    }

    #[test]
    fn bad_ids_are_refused() {
        assert!(parse_trace_id("xyz").is_err());
        assert!(parse_trace_id(&"0".repeat(32)).is_err());
        assert!(parse_trace_id(&"g".repeat(32)).is_err());
        assert_eq!(parse_trace_id(&"AB".repeat(16)).ok(), Some("ab".repeat(16)));
    }
}

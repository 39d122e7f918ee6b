//! A trace drawn as a waterfall: one line per span, indented by depth, with its start offset,
//! duration and a bar placed on the trace's time line.

use crate::table::{format_ms, table};
use plumb_proto::v1::GetTraceResponse;

/// Renders `trace` with bars `width` characters wide.
pub fn waterfall(trace: &GetTraceResponse, width: usize) -> String {
    let total = trace.duration_ms.max(f64::MIN_POSITIVE);
    let scale = |ms: f64| ((ms / total) * width as f64).round() as usize;
    let rows: Vec<Vec<String>> = trace
        .spans
        .iter()
        .map(|s| {
            let start = scale(s.offset_ms).min(width.saturating_sub(1));
            let length = scale(s.duration_ms).clamp(1, width - start);
            let bar = format!(
                "|{}{}{}|",
                " ".repeat(start),
                if s.error { "!" } else { "█" }.repeat(length),
                " ".repeat(width - start - length)
            );
            vec![
                format!("{}{}", "  ".repeat(s.depth as usize), s.name),
                s.service.clone(),
                s.kind.clone(),
                format_ms(s.offset_ms),
                format_ms(s.duration_ms),
                bar,
            ]
        })
        .collect();
    let mut out = format!(
        "trace {}  {}  {} spans{}\n",
        trace.trace_id,
        format_ms(trace.duration_ms),
        trace.spans.len(),
        if trace.spans.iter().any(|s| s.error) {
            "  (! = error)"
        } else {
            ""
        }
    );
    out.push_str(&table(
        &["SPAN", "SERVICE", "KIND", "START", "DURATION", "TIMELINE"],
        &rows,
        3,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumb_proto::v1::TraceSpan;

    fn span(name: &str, depth: u32, offset_ms: f64, duration_ms: f64) -> TraceSpan {
        TraceSpan {
            name: name.into(),
            service: "shop".into(),
            kind: "server".into(),
            depth,
            offset_ms,
            duration_ms,
            ..Default::default()
        }
    }

    #[test]
    fn bars_sit_where_the_spans_ran() {
        let trace = GetTraceResponse {
            trace_id: "ab".repeat(16),
            duration_ms: 100.0,
            start_unix_ns: 0,
            spans: vec![
                span("GET /a", 0, 0.0, 100.0),
                span("db", 1, 50.0, 25.0),
                span("tiny", 1, 99.9, 0.001),
            ],
        };
        let text = waterfall(&trace, 20);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("3 spans"), "{text}");
        assert!(
            lines[2].ends_with(&format!("|{}|", "█".repeat(20))),
            "{text}"
        );
        assert!(lines[3].starts_with("  db"), "{text}");
        assert!(
            lines[3].ends_with(&format!(
                "|{}{}{}|",
                " ".repeat(10),
                "█".repeat(5),
                " ".repeat(5)
            )),
            "{text}"
        );
        assert!(
            lines[4].ends_with(&format!("|{}█|", " ".repeat(19))),
            "{text}"
        );
    }
}

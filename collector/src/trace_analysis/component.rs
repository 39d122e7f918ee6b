//! What a child span is, for the breakdown: its component type and a label that groups calls
//! of the same kind.
//!
//! In: a validated [`Span`]. Out: a [`ComponentType`] and a label. Database calls are grouped by
//! `db.system` and a normalised statement (literals become `?`) or operation name; outbound HTTP
//! calls by peer, method and route template; RPCs by peer and method; messaging by system and
//! destination; internal spans by name. Current and older semantic conventions are both read.

use crate::model::{Attribute, ComponentType, Span, SpanKind};
use crate::normalise::route::template_path;
use std::borrow::Cow;
use std::fmt::Write as _;

/// Longest label kept; longer statements are cut at a character boundary.
pub(crate) const MAX_LABEL_CHARS: usize = 160;

/// Whether `span` is an endpoint of the breakdown (SERVER or CONSUMER).
pub(crate) fn is_endpoint(span: &Span<'_>) -> bool {
    matches!(span.kind, SpanKind::Server | SpanKind::Consumer)
}

/// The component type and label of `span` (for SERVER and CONSUMER spans: their operation). A
/// label made of several texts is written in `label`, a buffer the caller reuses from span to
/// span; one text of the span is returned as it is.
pub(crate) fn component<'s>(span: &'s Span<'_>, label: &'s mut String) -> (ComponentType, &'s str) {
    let attrs = span.attributes;
    let text = |key: &str| crate::model::find_text(attrs, key);
    if is_endpoint(span) {
        return (ComponentType::Server, span.operation());
    }
    label.clear();
    if let Some(system) = text("db.system.name").or_else(|| text("db.system")) {
        db_label(system, attrs, span.name, label);
        return (ComponentType::Db, label);
    }
    if let Some(system) = text("messaging.system") {
        let destination = text("messaging.destination.name")
            .or_else(|| text("messaging.destination"))
            .unwrap_or(span.name);
        let _ = write!(label, "{system} {destination}");
        return (ComponentType::Messaging, label);
    }
    if span.kind == SpanKind::Producer {
        return (ComponentType::Messaging, span.name);
    }
    if matches!(span.kind, SpanKind::Internal | SpanKind::Unspecified) {
        return (ComponentType::Internal, span.name);
    }
    // Outbound calls: `peer call`, or the call alone when the peer is not said.
    if let Some(peer) = peer(attrs) {
        let _ = write!(label, "{peer} ");
    }
    if text("rpc.system").is_some() {
        match (text("rpc.service"), text("rpc.method")) {
            (Some(service), Some(method)) => {
                let _ = write!(label, "{service}/{method}");
            }
            _ => label.push_str(span.name),
        }
        return (ComponentType::Rpc, label);
    }
    if let Some(method) = text("http.request.method").or_else(|| text("http.method")) {
        let route = text("url.template")
            .or_else(|| text("http.route"))
            .map(Cow::Borrowed)
            .or_else(|| {
                text("url.path")
                    .or_else(|| text("url.full").or_else(|| text("http.url")).map(url_path))
                    .or_else(|| text("http.target"))
                    .map(|p| Cow::Owned(template_path(p)))
            });
        let at = label.len();
        label.push_str(method);
        label[at..].make_ascii_uppercase();
        if let Some(route) = route {
            let _ = write!(label, " {route}");
        }
        return (ComponentType::Http, label);
    }
    label.push_str(span.name);
    (ComponentType::Client, label)
}

/// The called service or host, from the current or older conventions.
fn peer<'s>(attrs: &'s [Attribute<'_>]) -> Option<&'s str> {
    let text = |key: &str| crate::model::find_text(attrs, key);
    text("peer.service")
        .or_else(|| text("server.address"))
        .or_else(|| text("net.peer.name"))
        .or_else(|| text("url.full").or_else(|| text("http.url")).map(url_host))
        .filter(|p| !p.is_empty())
}

/// The host of an absolute URL (`https://host:port/path` → `host:port`).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or_default()
}

/// The path of an absolute URL (`https://host/a/b?x` → `/a/b?x`).
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// Writes `system what` in `label`, where `what` is the query summary, the normalised statement,
/// the operation and collection, or the span name, whichever comes first.
fn db_label(system: &str, attrs: &[Attribute<'_>], span_name: &str, label: &mut String) {
    let text = |key: &str| crate::model::find_text(attrs, key);
    label.push_str(system);
    label.push(' ');
    if let Some(summary) = text("db.query.summary") {
        label.push_str(summary);
    } else if let Some(statement) = text("db.query.text").or_else(|| text("db.statement")) {
        normalise_statement(statement, label);
    } else if let Some(operation) = text("db.operation.name").or_else(|| text("db.operation")) {
        label.push_str(operation);
        if let Some(collection) = text("db.collection.name")
            .or_else(|| text("db.sql.table"))
            .or_else(|| text("db.mongodb.collection"))
        {
            let _ = write!(label, " {collection}");
        }
    } else {
        label.push_str(span_name);
    }
    truncate(label);
}

/// [`BYTE_CLASS`] bit: the byte belongs to a word (an ASCII letter or digit, `_`, `$`, or any byte
/// of a non-ASCII character).
const WORD: u8 = 1;
/// [`BYTE_CLASS`] bit: the byte starts what [`normalise_statement`] replaces or collapses (a
/// quote, ASCII whitespace, a digit).
const ACTS: u8 = 2;
/// Each byte's [`WORD`] and [`ACTS`] bits: one load per byte instead of a chain of comparisons.
const BYTE_CLASS: [u8; 256] = {
    let mut class = [0; 256];
    let mut b = 0;
    while b < class.len() {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            class[b] |= WORD;
        }
        if c == b'\'' || c.is_ascii_whitespace() || c.is_ascii_digit() {
            class[b] |= ACTS;
        }
        b += 1;
    }
    class
};

/// Appends `statement` with string and number literals replaced by `?`, runs of ASCII
/// whitespace collapsed, and lists of placeholders (`IN (?, ?, ?)`) folded to `(?)`.
///
/// It works on bytes: every byte it acts on is ASCII, so the text it copies between them always
/// starts and ends on character boundaries. Words (identifiers such as `t2`) are skipped whole,
/// so only numbers that stand alone become `?`.
pub(crate) fn normalise_statement(statement: &str, out: &mut String) {
    let is_word = |b: u8| BYTE_CLASS[usize::from(b)] & WORD != 0;
    let start = out.len();
    let bytes = statement.as_bytes();
    let (mut i, mut verbatim) = (0, 0);
    while i < bytes.len() && out.len() - start <= MAX_LABEL_CHARS * 4 {
        let c = bytes[i];
        // A single space between two other characters is already as it should be: copied with
        // the text around it, not a step of its own (most statements' spaces are such).
        let lone_space =
            c == b' ' && i > 0 && bytes.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace());
        if BYTE_CLASS[usize::from(c)] & ACTS == 0 || lone_space {
            i += 1;
            if is_word(c) {
                while i < bytes.len() && is_word(bytes[i]) {
                    i += 1;
                }
            }
            continue;
        }
        out.push_str(&statement[verbatim..i]);
        i += 1;
        if c == b'\'' {
            // A string literal; '' inside it is an escaped quote.
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) != Some(&b'\'') {
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            out.push('?');
        } else if c.is_ascii_whitespace() {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if out.len() > start && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            out.push('?');
        }
        verbatim = i;
    }
    if i >= bytes.len() {
        out.push_str(&statement[verbatim..]);
    }
    while out.len() > start && out.ends_with(' ') {
        out.pop();
    }
    if out[start..].contains("?, ?") {
        fold_placeholder_lists(out, start);
    }
}

/// Replaces `(?, ?, ...)` with `(?)` in `out[start..]`.
fn fold_placeholder_lists(out: &mut String, start: usize) {
    while let Some(at) = out[start..].find("?, ?").map(|i| i + start) {
        let mut end = at + 4;
        while out[end..].starts_with(", ?") {
            end += 3;
        }
        out.replace_range(at..end, "?");
    }
}

fn truncate(label: &mut String) {
    // No more bytes than the limit in characters: nothing to cut, and no walk over the
    // characters (9,421 instructions per span in the `ingest` bench under callgrind, 9,858 with
    // the walk).
    if label.len() <= MAX_LABEL_CHARS {
        return;
    }
    if let Some((cut, _)) = label.char_indices().nth(MAX_LABEL_CHARS) {
        label.truncate(cut);
        label.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Named;

    fn span<'a>(kind: i8, name: &'a str, attributes: &[(&'a str, &'a str)]) -> Span<'a> {
        Span {
            endpoint: Named::new("svc", name),
            name,
            kind: SpanKind::from_otlp(i32::from(kind)),
            // Leaked: a test's few spans live as long as it does.
            attributes: attributes.to_vec().leak(),
            ..Span::example(name)
        }
    }

    fn label(kind: i8, name: &str, attributes: &[(&str, &str)]) -> (ComponentType, String) {
        let span = span(kind, name, attributes);
        let mut buffer = String::from("left from the span before");
        let (t, l) = component(&span, &mut buffer);
        (t, l.to_owned())
    }

    #[test]
    fn database_calls_group_by_system_and_statement_shape() {
        let a = label(
            3,
            "SELECT",
            &[
                ("db.system", "postgresql"),
                (
                    "db.statement",
                    "SELECT * FROM orders WHERE id = 42 AND  note = 'it''s' AND x IN (1, 2, 3)",
                ),
            ],
        );
        assert_eq!(
            a,
            (
                ComponentType::Db,
                "postgresql SELECT * FROM orders WHERE id = ? AND note = ? AND x IN (?)".into()
            )
        );
        let b = label(
            3,
            "x",
            &[
                ("db.system.name", "redis"),
                ("db.operation.name", "GET"),
                ("db.collection.name", "sessions"),
            ],
        );
        assert_eq!(b.1, "redis GET sessions");
        let c = label(3, "SELECT t1", &[("db.system", "mysql")]);
        assert_eq!(c.1, "mysql SELECT t1");
        // Names with digits keep them; only standalone numbers are literals.
        let d = label(
            3,
            "x",
            &[
                ("db.system", "sqlite"),
                ("db.query.text", "select * from t2 limit 10"),
            ],
        );
        assert_eq!(d.1, "sqlite select * from t2 limit ?");
    }

    #[test]
    fn outbound_calls_group_by_peer_and_route() {
        let http = label(
            3,
            "GET",
            &[
                ("http.request.method", "get"),
                ("url.full", "http://pricing:8080/prices/123?currency=eur"),
            ],
        );
        assert_eq!(
            http,
            (ComponentType::Http, "pricing:8080 GET /prices/{id}".into())
        );
        let old = label(
            3,
            "GET",
            &[
                ("http.method", "POST"),
                ("net.peer.name", "auth"),
                ("http.target", "/token"),
            ],
        );
        assert_eq!(old.1, "auth POST /token");
        let rpc = label(
            3,
            "x",
            &[
                ("rpc.system", "grpc"),
                ("rpc.service", "Stock"),
                ("rpc.method", "Reserve"),
                ("server.address", "stock"),
            ],
        );
        assert_eq!(rpc, (ComponentType::Rpc, "stock Stock/Reserve".into()));
        assert_eq!(
            label(
                4,
                "send",
                &[
                    ("messaging.system", "kafka"),
                    ("messaging.destination.name", "orders")
                ]
            ),
            (ComponentType::Messaging, "kafka orders".into())
        );
        assert_eq!(
            label(1, "render", &[]),
            (ComponentType::Internal, "render".into())
        );
        assert_eq!(
            label(3, "call", &[]),
            (ComponentType::Client, "call".into())
        );
        assert_eq!(label(2, "GET /x", &[]).0, ComponentType::Server);
    }

    #[test]
    fn long_statements_are_cut() {
        let statement = format!("SELECT {} FROM t", "a, ".repeat(200));
        let l = label(3, "x", &[("db.system", "pg"), ("db.statement", &statement)]);
        assert_eq!(l.1.chars().count(), MAX_LABEL_CHARS + 1);
    }

    #[test]
    fn spaces_are_collapsed_and_trimmed_whatever_stands_around_them() {
        let normalised = |statement: &str| {
            let mut out = String::from("pg ");
            normalise_statement(statement, &mut out);
            out
        };
        for (statement, expected) in [
            (" SELECT 1 ", "pg SELECT ?"),
            ("SELECT a ,b", "pg SELECT a ,b"),
            ("x = 'a' b\t\n c", "pg x = ? b c"),
            ("  a  b ", "pg a b"),
            ("a\tb", "pg a b"),
            (" ", "pg "),
        ] {
            assert_eq!(normalised(statement), expected, "{statement:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn normalising_never_panics_and_is_stable(statement in ".{0,200}") {
            let mut once = String::new();
            normalise_statement(&statement, &mut once);
            let mut twice = String::new();
            normalise_statement(&once, &mut twice);
            proptest::prop_assert_eq!(once, twice);
        }
    }
}

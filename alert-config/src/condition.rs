//! Probe conditions, written as in Gatus: `[STATUS] == 200`, `[BODY].status == UP`,
//! `[RESPONSE_TIME] < 300ms`, `[CERTIFICATE_EXPIRATION] > 14d`, `[CONNECTED] == true`,
//! `[DNS_RCODE] == NOERROR`, `len([BODY].items) > 0`, `[BODY] == pat(*ok*)`, `[STATUS] == any(200, 204)`.
//!
//! A condition is parsed once, when the file is loaded (an unknown placeholder or operator is an
//! error naming the line), and evaluated against what a check found ([`Facts`]).

use std::time::Duration;

/// What a condition reads from a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placeholder {
    /// The HTTP status code.
    Status,
    /// The whole check's duration.
    ResponseTime,
    /// The body, or with a path (`[BODY].a.b[0]`) a value in its JSON.
    Body(Vec<PathStep>),
    /// Time left before the earliest certificate in the verified chain expires.
    CertificateExpiration,
    /// Whether the connection (and handshake) succeeded.
    Connected,
    /// A DNS answer's response code by name (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...).
    DnsRcode,
}

/// One step of a JSON path in `[BODY].a.b[0]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// The left side of a condition: a placeholder, or the length of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    /// The placeholder's value.
    Value(Placeholder),
    /// `len(...)`: characters of a text, items of a JSON array or keys of an object.
    Len(Placeholder),
}

/// How the two sides compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The right side.
#[derive(Clone, Debug, PartialEq)]
enum Expected {
    /// A text or number, compared as a number when both sides are numbers.
    Literal(String),
    /// `pat(...)`: a pattern with `*` for any run of characters.
    Pattern(String),
    /// `any(a, b, ...)`: equal to one of them.
    Any(Vec<String>),
}

/// One parsed condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    text: String,
    left: Operand,
    op: Op,
    right: Expected,
}

/// What one check found, for evaluating conditions.
#[derive(Clone, Debug, Default)]
pub struct Facts<'a> {
    /// HTTP status, if any.
    pub status: Option<u16>,
    /// The check's duration.
    pub response_time: Duration,
    /// The body, if any was read.
    pub body: Option<&'a str>,
    /// Time left on the earliest-expiring certificate, if TLS was used.
    pub certificate_expiration: Option<Duration>,
    /// Whether the connection succeeded.
    pub connected: bool,
    /// A DNS answer's response code by name, for DNS probes.
    pub dns_rcode: Option<&'a str>,
}

fn placeholder(text: &str) -> Result<Placeholder, String> {
    let text = text.trim();
    let fixed = [
        ("[STATUS]", Placeholder::Status),
        ("[RESPONSE_TIME]", Placeholder::ResponseTime),
        (
            "[CERTIFICATE_EXPIRATION]",
            Placeholder::CertificateExpiration,
        ),
        ("[CONNECTED]", Placeholder::Connected),
        ("[DNS_RCODE]", Placeholder::DnsRcode),
    ];
    if let Some((_, p)) = fixed.iter().find(|(name, _)| *name == text) {
        return Ok(p.clone());
    }
    let Some(path) = text.strip_prefix("[BODY]") else {
        return Err(format!(
            "unknown placeholder {text:?}: use [STATUS], [BODY], [BODY].path, [RESPONSE_TIME], [CERTIFICATE_EXPIRATION], [CONNECTED] or [DNS_RCODE]"
        ));
    };
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(format!("empty key in {text:?}"));
            }
            steps.push(PathStep::Key(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("unclosed [ in {text:?}"))?;
            let index = after[..end]
                .parse()
                .map_err(|_| format!("{:?} is not an array index in {text:?}", &after[..end]))?;
            steps.push(PathStep::Index(index));
            rest = &after[end + 1..];
        } else {
            return Err(format!("expected .key or [index] in {text:?}"));
        }
    }
    Ok(Placeholder::Body(steps))
}

impl std::str::FromStr for Condition {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        const OPS: [(&str, Op); 6] = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, token, op) = OPS
            .iter()
            .filter_map(|(token, op)| text.find(token).map(|at| (at, *token, *op)))
            .min_by_key(|(at, token, _)| (*at, std::cmp::Reverse(token.len())))
            .ok_or_else(|| format!("{text:?} has no comparison: use ==, !=, <, <=, > or >="))?;
        let (left, right) = (text[..at].trim(), text[at + token.len()..].trim());
        let left = match left.strip_prefix("len(").and_then(|l| l.strip_suffix(')')) {
            Some(inner) => Operand::Len(placeholder(inner)?),
            None => Operand::Value(placeholder(left)?),
        };
        if right.is_empty() {
            return Err(format!("{text:?} compares with nothing"));
        }
        let right = if let Some(p) = right.strip_prefix("pat(").and_then(|r| r.strip_suffix(')')) {
            Expected::Pattern(p.to_owned())
        } else if let Some(items) = right.strip_prefix("any(").and_then(|r| r.strip_suffix(')')) {
            Expected::Any(items.split(',').map(|i| i.trim().to_owned()).collect())
        } else {
            Expected::Literal(right.to_owned())
        };
        if let (
            Operand::Value(Placeholder::ResponseTime | Placeholder::CertificateExpiration),
            Expected::Literal(l),
        ) = (&left, &right)
        {
            duration_ms(l)
                .ok_or_else(|| format!("{l:?} is not a duration (e.g. 300ms, 14d) in {text:?}"))?;
        }
        Ok(Self {
            text: text.to_owned(),
            left,
            op,
            right,
        })
    }
}

/// A duration in milliseconds: `300ms`, `2s`, `14d`, or a plain number of milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    if let Ok(ms) = text.parse::<f64>() {
        return Some(ms);
    }
    humantime::parse_duration(text)
        .ok()
        .map(|d| d.as_secs_f64() * 1000.0)
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
fn matches_pattern(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The value `steps` lead to in `json`, as text (strings without quotes).
fn json_at(json: &serde_json::Value, steps: &[PathStep]) -> Option<serde_json::Value> {
    let mut at = json;
    for step in steps {
        at = match step {
            PathStep::Key(k) => at.get(k)?,
            PathStep::Index(i) => at.get(i)?,
        };
    }
    Some(at.clone())
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Condition {
    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The left side's value for `facts` (`None`: the check has no such value, e.g. no body).
    fn left_value(&self, facts: &Facts<'_>) -> Option<String> {
        let (placeholder, len) = match &self.left {
            Operand::Value(p) => (p, false),
            Operand::Len(p) => (p, true),
        };
        let value: Option<serde_json::Value> = match placeholder {
            Placeholder::Status => facts.status.map(|s| s.into()),
            Placeholder::ResponseTime => Some((facts.response_time.as_secs_f64() * 1000.0).into()),
            Placeholder::CertificateExpiration => facts
                .certificate_expiration
                .map(|d| (d.as_secs_f64() * 1000.0).into()),
            Placeholder::Connected => Some(facts.connected.into()),
            Placeholder::DnsRcode => facts.dns_rcode.map(|r| r.into()),
            Placeholder::Body(steps) if steps.is_empty() => facts.body.map(|b| b.into()),
            Placeholder::Body(steps) => {
                let json: serde_json::Value = serde_json::from_str(facts.body?).ok()?;
                json_at(&json, steps)
            }
        };
        let value = value?;
        if len {
            let n = match &value {
                serde_json::Value::Array(a) => a.len(),
                serde_json::Value::Object(o) => o.len(),
                serde_json::Value::String(s) => s.chars().count(),
                other => other.to_string().chars().count(),
            };
            return Some(n.to_string());
        }
        Some(json_text(&value))
    }

    /// Whether the check passes this condition.
    pub fn holds(&self, facts: &Facts<'_>) -> bool {
        let Some(left) = self.left_value(facts) else {
            return false;
        };
        let number = |text: &str| match &self.left {
            Operand::Value(Placeholder::ResponseTime | Placeholder::CertificateExpiration) => {
                duration_ms(text)
            }
            _ => text.parse::<f64>().ok(),
        };
        match &self.right {
            Expected::Pattern(p) => {
                let m = matches_pattern(p, &left);
                match self.op {
                    Op::Eq => m,
                    Op::Ne => !m,
                    _ => false,
                }
            }
            Expected::Any(items) => {
                let m = items.contains(&left);
                match self.op {
                    Op::Eq => m,
                    Op::Ne => !m,
                    _ => false,
                }
            }
            Expected::Literal(right) => match (number(&left), number(right)) {
                (Some(l), Some(r)) => match self.op {
                    Op::Eq => l == r,
                    Op::Ne => l != r,
                    Op::Lt => l < r,
                    Op::Le => l <= r,
                    Op::Gt => l > r,
                    Op::Ge => l >= r,
                },
                _ => match self.op {
                    Op::Eq => left == *right,
                    Op::Ne => left != *right,
                    _ => false,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> Condition {
        text.parse().expect("valid condition")
    }

    #[test]
    fn conditions_hold_as_in_gatus() {
        let body = r#"{"status":"UP","items":[{"id":7},{"id":8}],"db":{"ok":true}}"#;
        let facts = Facts {
            status: Some(200),
            response_time: Duration::from_millis(120),
            body: Some(body),
            certificate_expiration: Some(Duration::from_secs(20 * 86_400)),
            connected: true,
            dns_rcode: Some("NOERROR"),
        };
        for holds in [
            "[STATUS] == 200",
            "[STATUS] == any(200, 204)",
            "[STATUS] < 300",
            "[BODY].status == UP",
            "[BODY].items[1].id == 8",
            "[BODY].db.ok == true",
            "len([BODY].items) == 2",
            "[BODY] == pat(*\"UP\"*)",
            "[RESPONSE_TIME] < 300ms",
            "[RESPONSE_TIME] < 300",
            "[CERTIFICATE_EXPIRATION] > 14d",
            "[CONNECTED] == true",
            "[DNS_RCODE] == NOERROR",
        ] {
            assert!(c(holds).holds(&facts), "{holds}");
        }
        for fails in [
            "[STATUS] != 200",
            "[BODY].status == DOWN",
            "[BODY].missing == x",
            "[RESPONSE_TIME] < 100ms",
            "[CERTIFICATE_EXPIRATION] > 30d",
            "[BODY] == pat(*DOWN*)",
            "[DNS_RCODE] == NXDOMAIN",
        ] {
            assert!(!c(fails).holds(&facts), "{fails}");
        }
        let down = Facts::default();
        assert!(!c("[STATUS] == 200").holds(&down));
        assert!(c("[CONNECTED] == false").holds(&down));
    }

    #[test]
    fn bad_conditions_are_refused_with_the_reason() {
        for (text, says) in [
            ("[STAUTS] == 200", "unknown placeholder"),
            ("[STATUS] 200", "no comparison"),
            ("[RESPONSE_TIME] < soon", "not a duration"),
            ("[BODY].a[x] == 1", "not an array index"),
            ("[STATUS] ==", "compares with nothing"),
        ] {
            let e = text.parse::<Condition>().expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn patterns_match_runs_of_characters() {
        assert!(matches_pattern("*ok*", "all ok here"));
        assert!(matches_pattern("he*o", "hello"));
        assert!(!matches_pattern("he*o", "help"));
        assert!(matches_pattern("exact", "exact"));
        assert!(matches_pattern("a*b*c", "a-b-c"));
        assert!(!matches_pattern("a*b*c", "a-c-b"));
    }
}

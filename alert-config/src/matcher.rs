//! Label matchers as Alertmanager writes them: `severity=page`, `service!=shop`,
//! `service=~"shop|cart"`, `env!~dev.*` (regular expressions match the whole value).

use regex::Regex;
use std::collections::BTreeMap;

/// How a matcher compares.
#[derive(Clone, Debug)]
pub enum MatcherOp {
    /// Equal.
    Equal,
    /// Not equal.
    NotEqual,
    /// Matches the regular expression (anchored at both ends).
    Regex(Regex),
    /// Does not match it.
    NotRegex(Regex),
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The label.
    pub name: String,
    /// How it compares.
    pub op: MatcherOp,
    /// The value (or the expression) as written.
    pub value: String,
}

impl std::fmt::Display for Matcher {
    /// The matcher as it is written: `label=value`, `!=`, `=~` or `!~`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            MatcherOp::Equal => "=",
            MatcherOp::NotEqual => "!=",
            MatcherOp::Regex(_) => "=~",
            MatcherOp::NotRegex(_) => "!~",
        };
        write!(f, "{}{op}{}", self.name, self.value)
    }
}

impl std::str::FromStr for Matcher {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (at, token) = ["=~", "!~", "!=", "="]
            .iter()
            .filter_map(|t| text.find(t).map(|at| (at, *t)))
            .min_by_key(|(at, t)| (*at, std::cmp::Reverse(t.len())))
            .ok_or_else(|| {
                format!("{text:?} is not a matcher: write label=value (or !=, =~, !~)")
            })?;
        let name = text[..at].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{text:?}: {name:?} is not a label name"));
        }
        let value = text[at + token.len()..].trim().trim_matches('"').to_owned();
        let regex = || {
            Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("{text:?}: not a regular expression: {e}"))
        };
        let op = match token {
            "=" => MatcherOp::Equal,
            "!=" => MatcherOp::NotEqual,
            "=~" => MatcherOp::Regex(regex()?),
            _ => MatcherOp::NotRegex(regex()?),
        };
        Ok(Self {
            name: name.to_owned(),
            op,
            value,
        })
    }
}

impl Matcher {
    /// Whether `labels` satisfy this matcher (a missing label counts as empty, as in
    /// Alertmanager).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.name).map_or("", String::as_str);
        match &self.op {
            MatcherOp::Equal => value == self.value,
            MatcherOp::NotEqual => value != self.value,
            MatcherOp::Regex(r) => r.is_match(value),
            MatcherOp::NotRegex(r) => !r.is_match(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_compare_as_alertmanager_does() {
        let labels: BTreeMap<String, String> = [("severity", "page"), ("service", "shop")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let m = |t: &str| t.parse::<Matcher>().expect(t).matches(&labels);
        assert!(m("severity=page"));
        assert!(!m("severity=ticket"));
        assert!(m("service!=cart"));
        assert!(m("service=~\"shop|cart\""));
        assert!(!m("service=~sho"), "anchored");
        assert!(m("env!~prod.*"));
        assert!(m("team="), "missing label is empty");
        assert!("no operator".parse::<Matcher>().is_err());
        assert!("x=~(".parse::<Matcher>().is_err());
    }
}

//! The file as written: serde structs with the names users know, unknown keys refused, and the
//! places of the values that are checked later kept (`Spanned`) so errors can name the line.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A string with `${NAME}` replaced by the environment variable `NAME`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Text(pub(crate) String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand(&raw, |name| std::env::var(name).ok())
            .map(Text)
            .map_err(serde::de::Error::custom)
    }
}

/// `text` with every `${NAME}` replaced by `lookup(NAME)`; `$$` stands for one `$`.
pub(crate) fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let name = &inner[..end];
            let value =
                lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) defaults: RawDefaults,
    pub(crate) evaluation_interval: Option<Spanned<String>>,
    #[serde(default, rename = "probe")]
    pub(crate) probes: Vec<Spanned<RawProbe>>,
    #[serde(default, rename = "rule")]
    pub(crate) rules: Vec<Spanned<RawRule>>,
    pub(crate) route: Option<Spanned<RawRoute>>,
    #[serde(default, rename = "receiver")]
    pub(crate) receivers: Vec<Spanned<RawReceiver>>,
    #[serde(default)]
    pub(crate) maintenance: Vec<Spanned<RawMaintenance>>,
    #[serde(default, rename = "inhibit")]
    pub(crate) inhibits: Vec<Spanned<RawInhibit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInhibit {
    #[serde(default)]
    pub(crate) source_matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) target_matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) equal: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMaintenance {
    pub(crate) cron: Spanned<String>,
    pub(crate) duration: Spanned<String>,
    pub(crate) timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) matchers: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    #[serde(default)]
    pub(crate) probe: RawProbeSchedule,
}

/// What every probe may set and `[defaults.probe]` sets for all.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbeSchedule {
    pub(crate) interval: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) failure_threshold: Option<Spanned<u32>>,
    pub(crate) success_threshold: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    pub(crate) name: Spanned<String>,
    pub(crate) kind: Spanned<String>,
    pub(crate) url: Option<Spanned<Text>>,
    pub(crate) method: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, Text>,
    pub(crate) body: Option<Text>,
    pub(crate) follow_redirects: Option<bool>,
    pub(crate) ca_file: Option<String>,
    pub(crate) address: Option<Spanned<Text>>,
    pub(crate) service: Option<String>,
    pub(crate) tls: Option<bool>,
    pub(crate) query_name: Option<Spanned<Text>>,
    pub(crate) query_type: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) conditions: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) interval: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) failure_threshold: Option<Spanned<u32>>,
    pub(crate) success_threshold: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) name: Spanned<String>,
    pub(crate) service: Spanned<String>,
    pub(crate) operation: Option<String>,
    pub(crate) signal: Spanned<String>,
    pub(crate) above: Option<Spanned<toml::Value>>,
    pub(crate) below: Option<Spanned<toml::Value>>,
    pub(crate) window: Option<Spanned<String>>,
    #[serde(rename = "for")]
    pub(crate) for_: Option<Spanned<String>>,
    pub(crate) keep_firing_for: Option<Spanned<String>>,
    pub(crate) min_events: Option<u64>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) receiver: Option<Spanned<String>>,
    pub(crate) group_by: Option<Vec<String>>,
    pub(crate) group_wait: Option<Spanned<String>>,
    pub(crate) group_interval: Option<Spanned<String>>,
    pub(crate) repeat_interval: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) routes: Vec<Spanned<RawRoute>>,
    #[serde(default, rename = "continue")]
    pub(crate) continue_matching: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReceiver {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) webhook: Vec<Spanned<RawWebhook>>,
    #[serde(default)]
    pub(crate) slack: Vec<Spanned<RawSlack>>,
    #[serde(default)]
    pub(crate) pagerduty: Vec<Spanned<RawPagerDuty>>,
    #[serde(default)]
    pub(crate) email: Vec<Spanned<RawEmail>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmail {
    pub(crate) to: Spanned<Text>,
    pub(crate) from: Spanned<Text>,
    pub(crate) smarthost: Spanned<Text>,
    pub(crate) auth_username: Option<Text>,
    pub(crate) auth_password: Option<Text>,
    pub(crate) require_tls: Option<bool>,
    pub(crate) ca_file: Option<String>,
    pub(crate) send_resolved: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub(crate) url: Spanned<Text>,
    pub(crate) send_resolved: Option<bool>,
    pub(crate) secret: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlack {
    pub(crate) url: Spanned<Text>,
    pub(crate) send_resolved: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPagerDuty {
    pub(crate) routing_key: Spanned<Text>,
    pub(crate) url: Option<Spanned<Text>>,
    pub(crate) send_resolved: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_and_missing_ones_are_named() {
        let env = |name: &str| (name == "TOKEN").then(|| "s3cret".to_owned());
        assert_eq!(
            expand("Bearer ${TOKEN}", env).expect("set"),
            "Bearer s3cret"
        );
        assert_eq!(expand("cost $$5 $x", env).expect("literal"), "cost $5 $x");
        let e = expand("${NOPE}", env).expect_err("unset");
        assert!(e.contains("NOPE is not set"), "{e}");
        assert!(expand("${OPEN", env).is_err());
    }
}

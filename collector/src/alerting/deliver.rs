//! Delivering notifications: the message each kind of receiver takes, sent with retries.
//!
//! - Generic webhook: the Alertmanager webhook body (version "4"), so any consumer of
//!   Alertmanager webhooks works unchanged; with a `secret`, the body's HMAC-SHA256 goes in the
//!   `X-Plumb-Signature: sha256=<hex>` header.
//! - Slack-compatible incoming webhook: `{"text": ...}`, one line per alert.
//! - PagerDuty Events API v2: one event per alert, `trigger` or `resolve`, with the alert's
//!   fingerprint as `dedup_key` (so PagerDuty itself drops a repeated trigger).
//! - Email over SMTP with STARTTLS: see [`super::email`].
//!
//! Each attempt's outcome is returned to the engine, which records it; a receiver that answers
//! with an error (or not at all, within [`ATTEMPT_TIMEOUT`]) is tried again with backoff, up to
//! [`ATTEMPTS`] times. Deliveries run in their own tasks, never inside an evaluation.

use super::dispatch::{Notification, NotifiedAlert};
use super::probe::check::{CheckResult, TlsClients, exchange};
use plumb_alert_config::{HttpProbe, Receiver};
use plumb_net::Backoff;
use serde_json::{Value, json};
use std::time::{Duration, UNIX_EPOCH};

/// Longest one delivery attempt may take.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per delivery before it is given up (and recorded as failed).
pub(crate) const ATTEMPTS: u32 = 8;
/// Waits between attempts.
pub(crate) const RETRY_BACKOFF: Backoff =
    Backoff::new_unchecked(Duration::from_secs(1), Duration::from_secs(60), 0.3);

/// One integration of a receiver, by kind and place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Integration {
    /// `webhook[i]`.
    Webhook(usize),
    /// `slack[i]`.
    Slack(usize),
    /// `pagerduty[i]`.
    PagerDuty(usize),
    /// `email[i]`.
    Email(usize),
}

impl Integration {
    /// Every integration of `receiver` that takes `notification` (resolved messages only where
    /// `send_resolved`).
    pub(crate) fn all_for(receiver: &Receiver, notification: &Notification) -> Vec<Self> {
        let resolved = notification.status == "resolved";
        let keep = |send_resolved: bool| !resolved || send_resolved;
        let mut out = Vec::new();
        out.extend(
            (0..receiver.webhooks.len())
                .filter(|&i| keep(receiver.webhooks[i].send_resolved))
                .map(Self::Webhook),
        );
        out.extend(
            (0..receiver.slack.len())
                .filter(|&i| keep(receiver.slack[i].send_resolved))
                .map(Self::Slack),
        );
        out.extend(
            (0..receiver.pagerduty.len())
                .filter(|&i| keep(receiver.pagerduty[i].send_resolved))
                .map(Self::PagerDuty),
        );
        out.extend(
            (0..receiver.email.len())
                .filter(|&i| keep(receiver.email[i].send_resolved))
                .map(Self::Email),
        );
        out
    }

    /// `webhook`, `slack`, `pagerduty` or `email`.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Slack(_) => "slack",
            Self::PagerDuty(_) => "pagerduty",
            Self::Email(_) => "email",
        }
    }
}

/// RFC 3339 for seconds since the epoch.
fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Labels every alert of `alerts` shares.
fn common(
    alerts: &[NotifiedAlert],
    of: impl Fn(&NotifiedAlert) -> &std::collections::BTreeMap<String, String>,
) -> Value {
    let Some(first) = alerts.first() else {
        return json!({});
    };
    let shared: serde_json::Map<String, Value> = of(first)
        .iter()
        .filter(|(k, v)| alerts.iter().all(|a| of(a).get(*k) == Some(v)))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Value::Object(shared)
}

/// The Alertmanager webhook body (version 4).
pub(crate) fn webhook_body(n: &Notification) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            let mut annotations = a.annotations.clone();
            if !a.detail.is_empty() {
                annotations
                    .entry("description".into())
                    .or_insert_with(|| a.detail.clone());
            }
            json!({
                "status": a.status,
                "labels": a.labels,
                "annotations": annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": a.ends_at.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339),
                "generatorURL": "",
                "fingerprint": a.fingerprint,
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": common(&n.alerts, |a| &a.labels),
        "commonAnnotations": common(&n.alerts, |a| &a.annotations),
        "externalURL": "",
        "alerts": alerts,
    })
}

/// One line per alert: status, name, what was seen and, once resolved, how long it was down.
pub(crate) fn summary_lines(n: &Notification) -> String {
    let mut lines = vec![format!("[{}] {}", n.status.to_uppercase(), n.group_key)];
    for a in &n.alerts {
        let name = a.labels.get("alertname").map_or("", String::as_str);
        let took = a
            .ends_at
            .map(|end| {
                format!(
                    " after {}",
                    humantime::format_duration(Duration::from_secs(
                        end.saturating_sub(a.starts_at)
                    ))
                )
            })
            .unwrap_or_default();
        lines.push(format!("{} {name}: {}{took}", a.status, a.detail));
    }
    lines.join("\n")
}

/// The body of a Slack-compatible incoming webhook.
pub(crate) fn slack_body(n: &Notification) -> Value {
    json!({ "text": summary_lines(n) })
}

/// The PagerDuty Events API v2 events for `n`, one per alert.
pub(crate) fn pagerduty_events(n: &Notification, routing_key: &str) -> Vec<Value> {
    n.alerts
        .iter()
        .map(|a| {
            let severity = match a.labels.get("severity").map(String::as_str) {
                Some("critical" | "page") => "critical",
                Some("warning" | "ticket") => "warning",
                Some("info") => "info",
                _ => "error",
            };
            json!({
                "routing_key": routing_key,
                "event_action": if a.status == "firing" { "trigger" } else { "resolve" },
                "dedup_key": a.fingerprint,
                "payload": {
                    "summary": format!("{}: {}", a.labels.get("alertname").map_or("", String::as_str), a.detail),
                    "source": "plumb",
                    "severity": severity,
                    "custom_details": a.labels,
                },
            })
        })
        .collect()
}

/// The HMAC-SHA256 of `body` with `secret`, as lower-case hex.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// POSTs `body` as JSON to `url`; Ok with the status when the receiver took it (2xx).
async fn post(
    url: &str,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    tls: &TlsClients,
) -> Result<u16, String> {
    let request = HttpProbe {
        url: url.to_owned(),
        method: "POST".into(),
        headers: [("content-type".to_owned(), "application/json".to_owned())]
            .into_iter()
            .chain(headers)
            .collect(),
        body: Some(String::from_utf8_lossy(&body).into_owned()),
        follow_redirects: false,
        ca_file: None,
    };
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid url {url}: {e}"))?;
    let mut timings = CheckResult::default();
    let answer = tokio::time::timeout(ATTEMPT_TIMEOUT, exchange(&uri, &request, tls, &mut timings))
        .await
        .map_err(|_| format!("no answer within {ATTEMPT_TIMEOUT:?}"))??;
    match answer.0 {
        s @ 200..=299 => Ok(s),
        s => Err(format!("answered {s}")),
    }
}

/// One attempt to deliver `n` through `integration` of `receiver`.
pub(crate) async fn attempt(
    n: &Notification,
    receiver: &Receiver,
    integration: Integration,
    tls: &TlsClients,
) -> Result<u16, String> {
    match integration {
        Integration::Webhook(i) => {
            let hook = receiver
                .webhooks
                .get(i)
                .ok_or("the webhook is gone from the configuration")?;
            let body = serde_json::to_vec(&webhook_body(n)).map_err(|e| e.to_string())?;
            let headers = hook
                .secret
                .as_ref()
                .map(|s| {
                    (
                        "x-plumb-signature".to_owned(),
                        format!("sha256={}", signature(s, &body)),
                    )
                })
                .into_iter()
                .collect();
            post(&hook.url, body, headers, tls).await
        }
        Integration::Slack(i) => {
            let slack = receiver
                .slack
                .get(i)
                .ok_or("the slack webhook is gone from the configuration")?;
            let body = serde_json::to_vec(&slack_body(n)).map_err(|e| e.to_string())?;
            post(&slack.url, body, Vec::new(), tls).await
        }
        Integration::PagerDuty(i) => {
            let pd = receiver
                .pagerduty
                .get(i)
                .ok_or("the pagerduty integration is gone from the configuration")?;
            let mut status = 0;
            for event in pagerduty_events(n, &pd.routing_key) {
                let body = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
                status = post(&pd.url, body, Vec::new(), tls).await?;
            }
            Ok(status)
        }
        Integration::Email(i) => {
            let email = receiver
                .email
                .get(i)
                .ok_or("the email receiver is gone from the configuration")?;
            super::email::send(n, email).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn notification(status: &str) -> Notification {
        let labels: BTreeMap<String, String> = [
            ("alertname", "shop-health"),
            ("service", "shop"),
            ("severity", "page"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        Notification {
            group_key: "0:{alertname=\"shop-health\"}".into(),
            receiver: "oncall".into(),
            status: status.into(),
            group_labels: [("alertname".to_owned(), "shop-health".to_owned())].into(),
            alerts: vec![NotifiedAlert {
                status: status.into(),
                fingerprint: "00ff".into(),
                labels,
                annotations: BTreeMap::new(),
                starts_at: 1_795_000_000,
                ends_at: (status == "resolved").then_some(1_795_000_600),
                detail: "condition [STATUS] == 200 failed".into(),
            }],
        }
    }

    #[test]
    fn the_webhook_body_is_alertmanagers() {
        let body = webhook_body(&notification("resolved"));
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "resolved");
        assert_eq!(body["groupLabels"]["alertname"], "shop-health");
        assert_eq!(body["commonLabels"]["service"], "shop");
        let alert = &body["alerts"][0];
        assert_eq!(alert["labels"]["alertname"], "shop-health");
        assert_eq!(alert["startsAt"], "2026-11-18T11:06:40Z");
        assert_eq!(alert["endsAt"], "2026-11-18T11:16:40Z");
        assert_eq!(alert["fingerprint"], "00ff");
        assert_eq!(
            alert["annotations"]["description"],
            "condition [STATUS] == 200 failed"
        );
        let firing = webhook_body(&notification("firing"));
        assert_eq!(firing["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    }

    #[test]
    fn slack_and_pagerduty_messages_say_what_happened() {
        let text = slack_body(&notification("resolved"))["text"]
            .as_str()
            .expect("text")
            .to_owned();
        assert!(
            text.contains("RESOLVED") && text.contains("after 10m"),
            "{text}"
        );
        let events = pagerduty_events(&notification("firing"), "key");
        assert_eq!(events[0]["event_action"], "trigger");
        assert_eq!(events[0]["dedup_key"], "00ff");
        assert_eq!(events[0]["payload"]["severity"], "critical");
        assert_eq!(
            pagerduty_events(&notification("resolved"), "key")[0]["event_action"],
            "resolve"
        );
    }

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(RETRY_BACKOFF.checked().is_ok());
    }
}

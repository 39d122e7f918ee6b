//! Email notifications: one plain-text mail per notification, sent over SMTP as Alertmanager's
//! email receiver does. Port 465 speaks TLS from the first byte; any other port upgrades with
//! STARTTLS, required unless the receiver says `require_tls = false` (then used when offered).
//! With `auth_username` and `auth_password` the client logs in (PLAIN or LOGIN, after TLS).
//!
//! In: a [`Notification`] and the receiver's [`Email`] settings. Out: the server's final reply
//! code (250), or why the mail was not taken; retries are the caller's.

use super::deliver::{ATTEMPT_TIMEOUT, summary_lines};
use super::dispatch::Notification;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use plumb_alert_config::Email;

/// The SMTP port that speaks TLS from the start (RFC 8314).
const IMPLICIT_TLS_PORT: u16 = 465;

/// `[FIRING:2] shop-health shop` or `[RESOLVED] shop-health shop`: the status, how many alerts
/// fire, and the group's label values (as Alertmanager's default subject).
pub(crate) fn subject(n: &Notification) -> String {
    let status = if n.status == "firing" {
        let firing = n.alerts.iter().filter(|a| a.status == "firing").count();
        format!("FIRING:{firing}")
    } else {
        n.status.to_uppercase()
    };
    let values: Vec<&str> = n.group_labels.values().map(String::as_str).collect();
    format!("[{status}] {}", values.join(" "))
}

/// The mail's text: one line per alert, then each alert's labels and annotations.
pub(crate) fn text(n: &Notification) -> String {
    let mut text = summary_lines(n);
    for a in &n.alerts {
        text.push_str("\n\n");
        text.push_str(a.labels.get("alertname").map_or("", String::as_str));
        for (k, v) in a.labels.iter().chain(&a.annotations) {
            text.push_str(&format!("\n  {k} = {v}"));
        }
    }
    text.push('\n');
    text
}

/// The TLS settings for `host`: the usual roots, and the receiver's CA when it has one.
fn tls_parameters(email: &Email, host: &str) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(ca) = &email.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        let cert = Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| format!("TLS settings: {e}"))
}

/// Sends `n` to every recipient of `email` in one mail.
pub(crate) async fn send(n: &Notification, email: &Email) -> Result<u16, String> {
    let mut builder = lettre::Message::builder()
        .from(
            email
                .from
                .parse()
                .map_err(|e| format!("from {:?}: {e}", email.from))?,
        )
        .subject(subject(n))
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for to in &email.to {
        builder = builder.to(to.parse().map_err(|e| format!("to {to:?}: {e}"))?);
    }
    let message = builder
        .body(text(n))
        .map_err(|e| format!("cannot write the mail: {e}"))?;
    let (host, port) = email
        .smarthost
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("{:?} is not host:port", email.smarthost))?;
    let params = tls_parameters(email, host)?;
    let tls = match (port, email.require_tls) {
        (IMPLICIT_TLS_PORT, _) => Tls::Wrapper(params),
        (_, true) => Tls::Required(params),
        (_, false) => Tls::Opportunistic(params),
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(ATTEMPT_TIMEOUT));
    if let Some((user, password)) = &email.auth {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let reply = transport
        .build()
        .send(message)
        .await
        .map_err(|e| format!("{}: {e}", email.smarthost))?;
    Ok(u16::from(reply.code()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::dispatch::NotifiedAlert;
    use std::collections::BTreeMap;

    #[test]
    fn the_subject_counts_firing_alerts_and_names_the_group() {
        let alert = |status: &str| NotifiedAlert {
            status: status.into(),
            fingerprint: "00ff".into(),
            labels: [("alertname".to_owned(), "shop-health".to_owned())].into(),
            annotations: BTreeMap::new(),
            starts_at: 1_795_000_000,
            ends_at: None,
            detail: "condition [STATUS] == 200 failed".into(),
        };
        let mut n = Notification {
            group_key: "0:{}".into(),
            receiver: "oncall".into(),
            status: "firing".into(),
            group_labels: [
                ("alertname".to_owned(), "shop-health".to_owned()),
                ("service".to_owned(), "shop".to_owned()),
            ]
            .into(),
            alerts: vec![alert("firing"), alert("firing"), alert("resolved")],
        };
        assert_eq!(subject(&n), "[FIRING:2] shop-health shop");
        n.status = "resolved".into();
        assert_eq!(subject(&n), "[RESOLVED] shop-health shop");
        let body = text(&n);
        assert!(
            body.contains("condition [STATUS] == 200 failed")
                && body.contains("alertname = shop-health"),
            "{body}"
        );
    }
}

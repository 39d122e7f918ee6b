//! The checked configuration: every duration parsed, every condition and matcher compiled, every
//! route pointing at a receiver that exists, every probe with a target; defaults filled in.
//!
//! Defaults (written here once, and in the README): probes every 60 s with a 10 s timeout, down
//! after 3 failures in a row and up after 2 successes (Gatus); rules over a 5 m window with no
//! `for`; routes group by nothing, wait 30 s before the first message of a group, 5 m between
//! messages about a changing group and 4 h before repeating an unchanged one (Alertmanager);
//! everything evaluated every 10 s.

use crate::condition::Condition;
use crate::maintenance::Maintenance;
use crate::matcher::Matcher;
use crate::raw::{
    RawConfig, RawEmail, RawInhibit, RawMaintenance, RawProbe, RawReceiver, RawRoute, RawRule,
};
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

const PROBE_INTERVAL: Duration = Duration::from_secs(60);
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
const FAILURE_THRESHOLD: u32 = 3;
const SUCCESS_THRESHOLD: u32 = 2;
const RULE_WINDOW: Duration = Duration::from_secs(300);
const GROUP_WAIT: Duration = Duration::from_secs(30);
const GROUP_INTERVAL: Duration = Duration::from_secs(300);
const REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
const EVALUATION_INTERVAL: Duration = Duration::from_secs(10);
/// What a gRPC probe without conditions checks.
const DEFAULT_GRPC_CONDITION: &str = "[BODY].status == SERVING";
/// What an HTTP probe without conditions checks.
const DEFAULT_HTTP_CONDITION: &str = "[STATUS] < 400";
/// What a DNS probe without conditions checks: the server answered without error.
const DEFAULT_DNS_CONDITION: &str = "[DNS_RCODE] == NOERROR";
/// The port of a DNS server given without one.
const DNS_PORT: u16 = 53;
/// Where PagerDuty's Events API v2 takes events.
const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Everything the alerting runs with.
#[derive(Clone, Debug)]
pub struct AlertingConfig {
    /// Active checks.
    pub probes: Vec<Probe>,
    /// Passive rules over the stored aggregates.
    pub rules: Vec<Rule>,
    /// The routing tree's root.
    pub route: Route,
    /// Where notifications go.
    pub receivers: Vec<Receiver>,
    /// How often rules are evaluated and notifications considered.
    pub evaluation_interval: Duration,
    /// Windows during which the alerts they select send nothing.
    pub maintenance: Vec<Maintenance>,
    /// Rules by which a firing alert mutes others (Alertmanager's inhibition).
    pub inhibit: Vec<Inhibit>,
}

/// An inhibition rule: while an alert matching `source` fires, alerts matching `target` that
/// have the same values of the `equal` labels send nothing (an alert never mutes itself).
#[derive(Clone, Debug)]
pub struct Inhibit {
    /// What the muting alert matches.
    pub source: Vec<Matcher>,
    /// What the muted alerts match.
    pub target: Vec<Matcher>,
    /// Labels both must share.
    pub equal: Vec<String>,
}

impl Inhibit {
    /// Whether a firing alert with labels `source` mutes an alert with labels `target`.
    pub fn mutes(
        &self,
        source: &BTreeMap<String, String>,
        target: &BTreeMap<String, String>,
    ) -> bool {
        source != target
            && self.source.iter().all(|m| m.matches(source))
            && self.target.iter().all(|m| m.matches(target))
            && self.equal.iter().all(|l| source.get(l) == target.get(l))
    }
}

/// One active check.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Its name: the alert's `alertname`.
    pub name: String,
    /// What it checks.
    pub target: ProbeTarget,
    /// Time between checks.
    pub interval: Duration,
    /// Longest a check may take.
    pub timeout: Duration,
    /// Failures in a row before the probe is down.
    pub failure_threshold: u32,
    /// Successes in a row before it is up again.
    pub success_threshold: u32,
    /// What a check must satisfy to succeed (besides connecting).
    pub conditions: Vec<Condition>,
    /// Labels added to its alert.
    pub labels: BTreeMap<String, String>,
}

/// What a probe checks.
#[derive(Clone, Debug)]
pub enum ProbeTarget {
    /// An HTTP(S) request.
    Http(HttpProbe),
    /// A TCP connection to `host:port`.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// A gRPC health check (`grpc.health.v1.Health/Check`) of `host:port`.
    Grpc {
        /// `host:port`.
        address: String,
        /// The service asked about (empty: the server as a whole).
        service: String,
        /// Whether to speak TLS.
        tls: bool,
        /// A CA (PEM) to trust, with TLS.
        ca_file: Option<PathBuf>,
    },
    /// A TLS handshake with `host:port`: the certificate chain verified for the host name, and
    /// the days left on the leaf and on the earliest-expiring certificate the server sent.
    Tls {
        /// `host:port`.
        address: String,
        /// A CA (PEM) to trust besides the usual roots.
        ca_file: Option<PathBuf>,
    },
    /// A DNS query sent to a server over UDP (TCP when the answer is cut short).
    Dns {
        /// The DNS server, `host:port`.
        server: String,
        /// The name asked about.
        name: String,
        /// The record type asked for, upper case (one of [`DNS_RECORD_TYPES`]).
        record_type: String,
    },
}

/// The record types a DNS probe can ask for.
pub const DNS_RECORD_TYPES: [&str; 9] =
    ["A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT"];

/// An HTTP(S) check.
#[derive(Clone, Debug)]
pub struct HttpProbe {
    /// The URL (`http://` or `https://`).
    pub url: String,
    /// The method.
    pub method: String,
    /// Headers sent.
    pub headers: Vec<(String, String)>,
    /// Body sent.
    pub body: Option<String>,
    /// Whether redirects are followed (at most 10).
    pub follow_redirects: bool,
    /// A CA (PEM) to trust besides the usual roots.
    pub ca_file: Option<PathBuf>,
}

/// What a rule watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Median latency.
    P50,
    /// 95th percentile latency.
    P95,
    /// 99th percentile latency.
    P99,
    /// Errors as a share of requests (0..1).
    ErrorRate,
    /// Requests per second.
    Rps,
    /// Apdex (0..1).
    Apdex,
    /// Nothing sent for the whole window.
    NoData,
}

impl Signal {
    /// The name as written.
    pub fn name(self) -> &'static str {
        match self {
            Self::P50 => "p50",
            Self::P95 => "p95",
            Self::P99 => "p99",
            Self::ErrorRate => "error_rate",
            Self::Rps => "rps",
            Self::Apdex => "apdex",
            Self::NoData => "no_data",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [
            Self::P50,
            Self::P95,
            Self::P99,
            Self::ErrorRate,
            Self::Rps,
            Self::Apdex,
            Self::NoData,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    fn is_latency(self) -> bool {
        matches!(self, Self::P50 | Self::P95 | Self::P99)
    }
}

/// When a rule's condition holds (latency in milliseconds, shares as fractions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    /// The signal is above this.
    Above(f64),
    /// The signal is below this.
    Below(f64),
    /// `no_data`: nothing was sent.
    Silence,
}

impl Threshold {
    /// Whether `value` breaks the threshold.
    pub fn broken_by(self, value: f64) -> bool {
        match self {
            Self::Above(t) => value > t,
            Self::Below(t) => value < t,
            Self::Silence => false,
        }
    }
}

/// One passive rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Its name: the alert's `alertname`.
    pub name: String,
    /// The service watched.
    pub service: String,
    /// The endpoint watched; `None` for the whole service.
    pub operation: Option<String>,
    /// What is watched.
    pub signal: Signal,
    /// When it alerts.
    pub threshold: Threshold,
    /// The window the signal is worked out over.
    pub window: Duration,
    /// How long the condition must hold before the alert fires (pending until then).
    pub for_: Duration,
    /// How long a firing alert keeps firing after the condition stops holding.
    pub keep_firing_for: Duration,
    /// Requests the window must hold for the signal to count (not for `no_data`).
    pub min_events: u64,
    /// Labels added to its alert.
    pub labels: BTreeMap<String, String>,
    /// Annotations added to its alert.
    pub annotations: BTreeMap<String, String>,
}

/// A node of the routing tree; children inherit what they do not set.
#[derive(Clone, Debug)]
pub struct Route {
    /// Where its alerts go.
    pub receiver: String,
    /// Labels that split alerts into groups (one message per group).
    pub group_by: Vec<String>,
    /// Wait before the first message of a new group.
    pub group_wait: Duration,
    /// Wait between messages about a group that changed.
    pub group_interval: Duration,
    /// Wait before repeating a message about a group that did not change.
    pub repeat_interval: Duration,
    /// What an alert must match to take this route (none: all).
    pub matchers: Vec<Matcher>,
    /// More specific routes, tried in order.
    pub routes: Vec<Route>,
    /// Whether matching goes on to the next sibling after this route matched.
    pub continue_matching: bool,
}

/// A named set of destinations.
#[derive(Clone, Debug)]
pub struct Receiver {
    /// The name routes use.
    pub name: String,
    /// Generic webhooks (the Alertmanager webhook body).
    pub webhooks: Vec<Webhook>,
    /// Slack-compatible incoming webhooks.
    pub slack: Vec<Slack>,
    /// PagerDuty Events API v2.
    pub pagerduty: Vec<PagerDuty>,
    /// Email over SMTP.
    pub email: Vec<Email>,
}

/// Email over SMTP, as Alertmanager's `email_configs`.
#[derive(Clone, Debug)]
pub struct Email {
    /// Recipients (the file's `to`, split at commas).
    pub to: Vec<String>,
    /// The sender.
    pub from: String,
    /// The SMTP server, `host:port`. Port 465 speaks TLS from the start; any other port
    /// upgrades with STARTTLS.
    pub smarthost: String,
    /// User name and password for SMTP AUTH (PLAIN or LOGIN), given together or not at all.
    pub auth: Option<(String, String)>,
    /// Whether STARTTLS is required (true unless the file says otherwise): without it a server
    /// that offers no STARTTLS is refused, with `false` it is used when offered.
    pub require_tls: bool,
    /// A CA (PEM) to trust besides the usual roots.
    pub ca_file: Option<PathBuf>,
    /// Whether resolved groups are told.
    pub send_resolved: bool,
}

/// A generic webhook.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// Where the JSON is posted.
    pub url: String,
    /// Whether resolved groups are told.
    pub send_resolved: bool,
    /// With a secret, each body is signed (HMAC-SHA256, header `X-Plumb-Signature`).
    pub secret: Option<String>,
}

/// A Slack-compatible incoming webhook.
#[derive(Clone, Debug)]
pub struct Slack {
    /// The webhook URL.
    pub url: String,
    /// Whether resolved groups are told.
    pub send_resolved: bool,
}

/// PagerDuty Events API v2.
#[derive(Clone, Debug)]
pub struct PagerDuty {
    /// The integration's routing key.
    pub routing_key: String,
    /// The events endpoint.
    pub url: String,
    /// Whether resolved groups resolve the incident.
    pub send_resolved: bool,
}

/// Builds an error about the text at a span.
pub(crate) type Fail<'a> = &'a dyn Fn(Range<usize>, String) -> crate::ConfigError;

fn duration(
    value: &Option<Spanned<String>>,
    default: Duration,
    fail: Fail<'_>,
) -> Result<Duration, crate::ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v.get_ref()).map_err(|e| {
            fail(
                v.span(),
                format!(
                    "{:?} is not a duration ({e}); write e.g. 30s, 5m, 4h, 14d",
                    v.get_ref()
                ),
            )
        }),
    }
}

fn positive(
    value: &Option<Spanned<u32>>,
    default: u32,
    fail: Fail<'_>,
) -> Result<u32, crate::ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if *v.get_ref() == 0 => Err(fail(v.span(), "must be at least 1".into())),
        Some(v) => Ok(*v.get_ref()),
    }
}

/// Checks a whole file.
pub(crate) fn check(raw: RawConfig, fail: Fail<'_>) -> Result<AlertingConfig, crate::ConfigError> {
    let defaults = &raw.defaults.probe;
    let schedule = ProbeSchedule {
        interval: duration(&defaults.interval, PROBE_INTERVAL, fail)?,
        timeout: duration(&defaults.timeout, PROBE_TIMEOUT, fail)?,
        failure_threshold: positive(&defaults.failure_threshold, FAILURE_THRESHOLD, fail)?,
        success_threshold: positive(&defaults.success_threshold, SUCCESS_THRESHOLD, fail)?,
    };
    let mut names = HashSet::new();
    let mut probes = Vec::new();
    for probe in &raw.probes {
        let checked = check_probe(probe.get_ref(), &schedule, fail)?;
        if !names.insert(checked.name.clone()) {
            return Err(fail(
                probe.get_ref().name.span(),
                format!(
                    "a second probe or rule is named {:?}; names must be unique",
                    checked.name
                ),
            ));
        }
        probes.push(checked);
    }
    let mut rules = Vec::new();
    for rule in &raw.rules {
        let checked = check_rule(rule.get_ref(), fail)?;
        if !names.insert(checked.name.clone()) {
            return Err(fail(
                rule.get_ref().name.span(),
                format!(
                    "a second probe or rule is named {:?}; names must be unique",
                    checked.name
                ),
            ));
        }
        rules.push(checked);
    }
    let mut receivers = Vec::new();
    for receiver in &raw.receivers {
        let checked = check_receiver(receiver, fail)?;
        if receivers.iter().any(|r: &Receiver| r.name == checked.name) {
            return Err(fail(
                receiver.get_ref().name.span(),
                format!("a second receiver is named {:?}", checked.name),
            ));
        }
        receivers.push(checked);
    }
    let root_defaults = Route {
        receiver: String::new(),
        group_by: Vec::new(),
        group_wait: GROUP_WAIT,
        group_interval: GROUP_INTERVAL,
        repeat_interval: REPEAT_INTERVAL,
        matchers: Vec::new(),
        routes: Vec::new(),
        continue_matching: false,
    };
    let route = match &raw.route {
        Some(route) => {
            if route.get_ref().receiver.is_none() {
                return Err(fail(route.span(), "the root route needs a receiver".into()));
            }
            check_route(route.get_ref(), &root_defaults, &receivers, fail)?
        }
        None if probes.is_empty() && rules.is_empty() => root_defaults,
        None => {
            let span = raw
                .probes
                .first()
                .map(Spanned::span)
                .or_else(|| raw.rules.first().map(Spanned::span))
                .unwrap_or(0..0);
            return Err(fail(
                span,
                "alerts need somewhere to go: add a [route] with a receiver".into(),
            ));
        }
    };
    let mut maintenance = Vec::new();
    for w in &raw.maintenance {
        maintenance.push(check_maintenance(w.get_ref(), fail)?);
    }
    let mut inhibit = Vec::new();
    for rule in &raw.inhibits {
        inhibit.push(check_inhibit(rule, fail)?);
    }
    Ok(AlertingConfig {
        probes,
        rules,
        route,
        receivers,
        maintenance,
        inhibit,
        evaluation_interval: duration(&raw.evaluation_interval, EVALUATION_INTERVAL, fail)?,
    })
}

struct ProbeSchedule {
    interval: Duration,
    timeout: Duration,
    failure_threshold: u32,
    success_threshold: u32,
}

fn check_probe(
    p: &RawProbe,
    defaults: &ProbeSchedule,
    fail: Fail<'_>,
) -> Result<Probe, crate::ConfigError> {
    let name = p.name.get_ref().trim().to_owned();
    if name.is_empty() {
        return Err(fail(p.name.span(), "a probe needs a name".into()));
    }
    let needs = |what: &str| {
        fail(
            p.name.span(),
            format!("probe {name:?} ({} kind) needs {what}", p.kind.get_ref()),
        )
    };
    let target = match p.kind.get_ref().as_str() {
        "http" => {
            let url = p.url.as_ref().ok_or_else(|| needs("a url"))?;
            let text = url.get_ref().0.clone();
            if !(text.starts_with("http://") || text.starts_with("https://")) {
                return Err(fail(
                    url.span(),
                    format!("{text:?} is not an http:// or https:// URL"),
                ));
            }
            let method = p
                .method
                .as_ref()
                .map_or("GET".to_owned(), |m| m.get_ref().to_ascii_uppercase());
            if !method.chars().all(|c| c.is_ascii_uppercase()) {
                let span = p.method.as_ref().map_or(p.name.span(), Spanned::span);
                return Err(fail(span, format!("{method:?} is not an HTTP method")));
            }
            ProbeTarget::Http(HttpProbe {
                url: text,
                method,
                headers: p
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
                body: p.body.as_ref().map(|b| b.0.clone()),
                follow_redirects: p.follow_redirects.unwrap_or(true),
                ca_file: p.ca_file.as_ref().map(PathBuf::from),
            })
        }
        "tcp" | "tls" | "grpc" => {
            let address = p
                .address
                .as_ref()
                .ok_or_else(|| needs("an address (host:port)"))?;
            let text = address.get_ref().0.clone();
            if text
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                return Err(fail(address.span(), format!("{text:?} is not host:port")));
            }
            match p.kind.get_ref().as_str() {
                "tls" => ProbeTarget::Tls {
                    address: text,
                    ca_file: p.ca_file.as_ref().map(PathBuf::from),
                },
                "grpc" => ProbeTarget::Grpc {
                    address: text,
                    service: p.service.clone().unwrap_or_default(),
                    tls: p.tls.unwrap_or(false),
                    ca_file: p.ca_file.as_ref().map(PathBuf::from),
                },
                _ => ProbeTarget::Tcp { address: text },
            }
        }
        "dns" => {
            let address = p
                .address
                .as_ref()
                .ok_or_else(|| needs("an address (the DNS server, host or host:port)"))?;
            let text = address.get_ref().0.trim().to_owned();
            let server = match text.rsplit_once(':') {
                _ if text.is_empty() => {
                    return Err(fail(address.span(), "the DNS server is empty".into()));
                }
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => text,
                Some(_) => return Err(fail(address.span(), format!("{text:?} is not host:port"))),
                None => format!("{text}:{DNS_PORT}"),
            };
            let name = p.query_name.as_ref().ok_or_else(|| needs("a query_name"))?;
            let name_text = name.get_ref().0.trim().to_owned();
            if name_text.is_empty() || name_text.len() > 253 {
                return Err(fail(
                    name.span(),
                    format!("{name_text:?} is not a DNS name"),
                ));
            }
            let record_type = match &p.query_type {
                None => "A".to_owned(),
                Some(t) => {
                    let upper = t.get_ref().trim().to_ascii_uppercase();
                    if !DNS_RECORD_TYPES.contains(&upper.as_str()) {
                        return Err(fail(
                            t.span(),
                            format!(
                                "unknown query_type {:?}: use one of {}",
                                t.get_ref(),
                                DNS_RECORD_TYPES.join(", ")
                            ),
                        ));
                    }
                    upper
                }
            };
            ProbeTarget::Dns {
                server,
                name: name_text,
                record_type,
            }
        }
        other => {
            return Err(fail(
                p.kind.span(),
                format!("unknown probe kind {other:?}: use http, tcp, tls, dns or grpc"),
            ));
        }
    };
    let mut conditions = Vec::new();
    for c in &p.conditions {
        conditions.push(
            c.get_ref()
                .parse::<Condition>()
                .map_err(|e| fail(c.span(), e))?,
        );
    }
    if conditions.is_empty() && matches!(target, ProbeTarget::Grpc { .. }) {
        // Without conditions, a gRPC probe succeeds when the service says it is serving.
        conditions.push(
            DEFAULT_GRPC_CONDITION
                .parse::<Condition>()
                .map_err(|e| fail(p.name.span(), e))?,
        );
    }
    if conditions.is_empty() && matches!(target, ProbeTarget::Dns { .. }) {
        conditions.push(
            DEFAULT_DNS_CONDITION
                .parse::<Condition>()
                .map_err(|e| fail(p.name.span(), e))?,
        );
    }
    if conditions.is_empty() && matches!(target, ProbeTarget::Http(_)) {
        // Without conditions, an HTTP probe succeeds on any answer that is not an error.
        conditions.push(
            DEFAULT_HTTP_CONDITION
                .parse::<Condition>()
                .map_err(|e| fail(p.name.span(), e))?,
        );
    }
    Ok(Probe {
        name,
        target,
        interval: duration(&p.interval, defaults.interval, fail)?,
        timeout: duration(&p.timeout, defaults.timeout, fail)?,
        failure_threshold: positive(&p.failure_threshold, defaults.failure_threshold, fail)?,
        success_threshold: positive(&p.success_threshold, defaults.success_threshold, fail)?,
        conditions,
        labels: p.labels.clone(),
    })
}

/// A threshold value: latency as a duration (`800ms`) or milliseconds, shares as `5%` or `0.05`.
fn threshold_value(
    signal: Signal,
    value: &Spanned<toml::Value>,
    fail: Fail<'_>,
) -> Result<f64, crate::ConfigError> {
    let bad = |what: &str| fail(value.span(), format!("{} takes {what}", signal.name()));
    match (value.get_ref(), signal) {
        (toml::Value::String(s), s2) if s2.is_latency() => humantime::parse_duration(s)
            .map(|d| d.as_secs_f64() * 1000.0)
            .map_err(|_| bad("a duration such as \"800ms\"")),
        (toml::Value::String(s), Signal::ErrorRate | Signal::Apdex) => s
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .map(|p| p / 100.0)
            .ok_or_else(|| bad("a share such as \"5%\" or 0.05")),
        (toml::Value::Integer(i), _) => Ok(*i as f64),
        (toml::Value::Float(f), _) => Ok(*f),
        _ => Err(bad("a number")),
    }
}

fn check_rule(r: &RawRule, fail: Fail<'_>) -> Result<Rule, crate::ConfigError> {
    let name = r.name.get_ref().trim().to_owned();
    if name.is_empty() {
        return Err(fail(r.name.span(), "a rule needs a name".into()));
    }
    if r.service.get_ref().is_empty() {
        return Err(fail(r.service.span(), "a rule needs a service".into()));
    }
    let signal = Signal::from_name(r.signal.get_ref()).ok_or_else(|| {
        fail(
            r.signal.span(),
            format!(
                "unknown signal {:?}: use p50, p95, p99, error_rate, rps, apdex or no_data",
                r.signal.get_ref()
            ),
        )
    })?;
    let threshold = match (signal, &r.above, &r.below) {
        (Signal::NoData, None, None) => Threshold::Silence,
        (Signal::NoData, Some(v), _) | (Signal::NoData, _, Some(v)) => {
            return Err(fail(v.span(), "no_data takes no threshold".into()));
        }
        (_, Some(v), None) => Threshold::Above(threshold_value(signal, v, fail)?),
        (_, None, Some(v)) => Threshold::Below(threshold_value(signal, v, fail)?),
        (_, Some(v), Some(_)) => {
            return Err(fail(v.span(), "give above or below, not both".into()));
        }
        (_, None, None) => {
            return Err(fail(
                r.signal.span(),
                format!("rule {name:?} needs above = ... or below = ..."),
            ));
        }
    };
    Ok(Rule {
        name,
        service: r.service.get_ref().clone(),
        operation: r.operation.clone().filter(|o| !o.is_empty()),
        signal,
        threshold,
        window: duration(&r.window, RULE_WINDOW, fail)?,
        for_: duration(&r.for_, Duration::ZERO, fail)?,
        keep_firing_for: duration(&r.keep_firing_for, Duration::ZERO, fail)?,
        min_events: r.min_events.unwrap_or(1),
        labels: r.labels.clone(),
        annotations: r.annotations.clone(),
    })
}

fn check_route(
    r: &RawRoute,
    parent: &Route,
    receivers: &[Receiver],
    fail: Fail<'_>,
) -> Result<Route, crate::ConfigError> {
    let receiver = match &r.receiver {
        Some(name) => {
            if !receivers.iter().any(|x| x.name == *name.get_ref()) {
                return Err(fail(
                    name.span(),
                    format!(
                        "no receiver is named {:?}; add a [[receiver]] with that name",
                        name.get_ref()
                    ),
                ));
            }
            name.get_ref().clone()
        }
        None => parent.receiver.clone(),
    };
    let mut matchers = Vec::new();
    for m in &r.matchers {
        matchers.push(
            m.get_ref()
                .parse::<Matcher>()
                .map_err(|e| fail(m.span(), e))?,
        );
    }
    let mut node = Route {
        receiver,
        group_by: r
            .group_by
            .clone()
            .unwrap_or_else(|| parent.group_by.clone()),
        group_wait: duration(&r.group_wait, parent.group_wait, fail)?,
        group_interval: duration(&r.group_interval, parent.group_interval, fail)?,
        repeat_interval: duration(&r.repeat_interval, parent.repeat_interval, fail)?,
        matchers,
        routes: Vec::new(),
        continue_matching: r.continue_matching,
    };
    for child in &r.routes {
        let checked = check_route(child.get_ref(), &node, receivers, fail)?;
        node.routes.push(checked);
    }
    Ok(node)
}

fn check_receiver(
    r: &Spanned<RawReceiver>,
    fail: Fail<'_>,
) -> Result<Receiver, crate::ConfigError> {
    let raw = r.get_ref();
    let url = |u: &Spanned<crate::raw::Text>| -> Result<String, crate::ConfigError> {
        let text = u.get_ref().0.clone();
        if text.starts_with("http://") || text.starts_with("https://") {
            Ok(text)
        } else {
            Err(fail(
                u.span(),
                format!("{text:?} is not an http:// or https:// URL"),
            ))
        }
    };
    let mut receiver = Receiver {
        name: raw.name.get_ref().clone(),
        webhooks: Vec::new(),
        slack: Vec::new(),
        pagerduty: Vec::new(),
        email: Vec::new(),
    };
    for w in &raw.webhook {
        let w = w.get_ref();
        receiver.webhooks.push(Webhook {
            url: url(&w.url)?,
            send_resolved: w.send_resolved.unwrap_or(true),
            secret: w
                .secret
                .as_ref()
                .map(|s| s.0.clone())
                .filter(|s| !s.is_empty()),
        });
    }
    for s in &raw.slack {
        let s = s.get_ref();
        receiver.slack.push(Slack {
            url: url(&s.url)?,
            send_resolved: s.send_resolved.unwrap_or(true),
        });
    }
    for p in &raw.pagerduty {
        let p = p.get_ref();
        if p.routing_key.get_ref().0.is_empty() {
            return Err(fail(
                p.routing_key.span(),
                "a pagerduty receiver needs a routing_key".into(),
            ));
        }
        receiver.pagerduty.push(PagerDuty {
            routing_key: p.routing_key.get_ref().0.clone(),
            url: match &p.url {
                Some(u) => url(u)?,
                None => PAGERDUTY_URL.to_owned(),
            },
            send_resolved: p.send_resolved.unwrap_or(true),
        });
    }
    for e in &raw.email {
        receiver.email.push(check_email(e.get_ref(), fail)?);
    }
    Ok(receiver)
}

/// Whether `text` looks like one mail address (`local@domain`, nothing around it).
fn is_address(text: &str) -> bool {
    text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !text.chars().any(|c| c.is_whitespace() || c == ',')
    })
}

fn check_email(e: &RawEmail, fail: Fail<'_>) -> Result<Email, crate::ConfigError> {
    let to: Vec<String> =
        e.to.get_ref()
            .0
            .split(',')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
    if to.is_empty() {
        return Err(fail(
            e.to.span(),
            "an email receiver needs to = \"address\"".into(),
        ));
    }
    if let Some(bad) = to.iter().find(|a| !is_address(a)) {
        return Err(fail(e.to.span(), format!("{bad:?} is not a mail address")));
    }
    let from = e.from.get_ref().0.trim().to_owned();
    if !is_address(&from) {
        return Err(fail(
            e.from.span(),
            format!("{from:?} is not a mail address"),
        ));
    }
    let smarthost = e.smarthost.get_ref().0.trim().to_owned();
    if smarthost
        .rsplit_once(':')
        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(fail(
            e.smarthost.span(),
            format!("{smarthost:?} is not host:port (e.g. smtp.example.com:587)"),
        ));
    }
    let auth = match (&e.auth_username, &e.auth_password) {
        (Some(user), Some(password)) => Some((user.0.clone(), password.0.clone())),
        (None, None) => None,
        _ => {
            return Err(fail(
                e.smarthost.span(),
                "give auth_username and auth_password together".into(),
            ));
        }
    };
    Ok(Email {
        to,
        from,
        smarthost,
        auth,
        require_tls: e.require_tls.unwrap_or(true),
        ca_file: e.ca_file.as_ref().map(PathBuf::from),
        send_resolved: e.send_resolved.unwrap_or(true),
    })
}

fn check_maintenance(
    w: &RawMaintenance,
    fail: Fail<'_>,
) -> Result<Maintenance, crate::ConfigError> {
    let schedule = w
        .cron
        .get_ref()
        .parse()
        .map_err(|e| fail(w.cron.span(), e))?;
    let duration = duration(&Some(w.duration.clone()), Duration::ZERO, fail)?;
    if duration.is_zero() {
        return Err(fail(
            w.duration.span(),
            "a maintenance window must last longer than zero".into(),
        ));
    }
    let timezone = match &w.timezone {
        None => jiff::tz::TimeZone::UTC,
        Some(tz) => jiff::tz::TimeZone::get(tz.get_ref()).map_err(|_| {
            fail(
                tz.span(),
                format!(
                    "unknown time zone {:?}: use an IANA name such as Europe/Amsterdam",
                    tz.get_ref()
                ),
            )
        })?,
    };
    let mut matchers = Vec::new();
    for m in &w.matchers {
        matchers.push(
            m.get_ref()
                .parse::<Matcher>()
                .map_err(|e| fail(m.span(), e))?,
        );
    }
    Ok(Maintenance {
        schedule,
        duration,
        timezone,
        matchers,
    })
}

fn check_inhibit(
    rule: &Spanned<RawInhibit>,
    fail: Fail<'_>,
) -> Result<Inhibit, crate::ConfigError> {
    let raw = rule.get_ref();
    let compile = |list: &[Spanned<String>]| -> Result<Vec<Matcher>, crate::ConfigError> {
        list.iter()
            .map(|m| {
                m.get_ref()
                    .parse::<Matcher>()
                    .map_err(|e| fail(m.span(), e))
            })
            .collect()
    };
    if raw.source_matchers.is_empty() || raw.target_matchers.is_empty() {
        return Err(fail(
            rule.span(),
            "an inhibit rule needs source_matchers and target_matchers".into(),
        ));
    }
    Ok(Inhibit {
        source: compile(&raw.source_matchers)?,
        target: compile(&raw.target_matchers)?,
        equal: raw.equal.clone(),
    })
}

//! `plumb-alert-config`: Plumb's alerting configuration, one TOML file of probes (named as in
//! Gatus), rules, a routing tree and receivers (named as in Prometheus and Alertmanager), checked
//! once into the types the collector runs with.
//!
//! In: the file's text. Out: an [`AlertingConfig`], or a [`ConfigError`] that names the file, the
//! line and the key that is wrong, and what to do. `${NAME}` in a string value is replaced by the
//! environment variable `NAME` (a variable that is not set is an error), so secrets stay out of
//! the file. The collector loads it at start-up and on reload; `plumb check-config` loads it
//! offline. Nothing here touches the network.

#![forbid(unsafe_code)]

mod condition;
mod error;
mod maintenance;
mod matcher;
mod model;
mod raw;

pub use condition::{Condition, Facts};
pub use error::ConfigError;
pub use maintenance::{Cron, Maintenance};
pub use matcher::{Matcher, MatcherOp};
pub use model::{
    AlertingConfig, DNS_RECORD_TYPES, Email, HttpProbe, Inhibit, PagerDuty, Probe, ProbeTarget,
    Receiver, Route, Rule, Signal, Slack, Threshold, Webhook,
};

use std::path::Path;

/// Reads and checks the alerting configuration in `path`.
pub fn load(path: &Path) -> Result<AlertingConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Checks the alerting configuration `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<AlertingConfig, ConfigError> {
    let raw: raw::RawConfig =
        toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
    model::check(raw, &|span, message| {
        ConfigError::at(file, text, span, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the README, trimmed to what this version runs.
    const EXAMPLE: &str = r#"
evaluation_interval = "5s"

[defaults.probe]
interval = "30s"
timeout = "10s"
failure_threshold = 3
success_threshold = 2

[[probe]]
name = "shop-health"
kind = "http"
url = "https://shop.example.com/health"
method = "GET"
headers = { Authorization = "Bearer ${PATH}" }
conditions = ["[STATUS] == 200", "[BODY].status == UP", "[RESPONSE_TIME] < 300ms", "[CERTIFICATE_EXPIRATION] > 14d"]
labels = { service = "shop", severity = "page" }

[[probe]]
name = "db-port"
kind = "tcp"
address = "db.internal:5432"
interval = "10s"

[[rule]]
name = "checkout-slow"
service = "checkout"
operation = "POST /orders"
signal = "p99"
above = "800ms"
window = "5m"
for = "2m"
keep_firing_for = "1m"
labels = { severity = "ticket" }

[[rule]]
name = "checkout-errors"
service = "checkout"
signal = "error_rate"
above = "5%"

[route]
receiver = "oncall"
group_by = ["alertname", "service"]
group_wait = "30s"
group_interval = "5m"
repeat_interval = "4h"
routes = [{ matchers = ["severity=ticket"], receiver = "tickets" }]

[[receiver]]
name = "oncall"
webhook = [{ url = "https://hooks.example.com/plumb", send_resolved = true }]
pagerduty = [{ routing_key = "${PATH}" }]

[[receiver]]
name = "tickets"
slack = [{ url = "https://hooks.slack.example/T1" }]

[[maintenance]]
cron = "0 23 * * THU"
duration = "1h"
timezone = "Europe/Amsterdam"
matchers = ["service=shop"]

[[inhibit]]
source_matchers = ["severity=page"]
target_matchers = ["severity=ticket"]
equal = ["service"]
"#;

    /// The README's complete example, with every `${VAR}` turned into `${PATH}` (set in tests;
    /// the Slack URL keeps its scheme in front of it).
    fn readme_example() -> String {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Uptime alerting").expect("section")..];
        let start = section.find("```toml\n").expect("toml block") + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").expect("end")];
        let block = block.replace("${SLACK_WEBHOOK}", "https://hooks.slack.example/${PATH}");
        regex::Regex::new(r"\$\{[A-Z_]+\}")
            .expect("regex")
            .replace_all(&block, "$${PATH}")
            .into_owned()
    }

    #[test]
    fn the_readme_example_loads() {
        let config = parse(&readme_example(), "README.md").expect("the README's example loads");
        let kinds: Vec<&str> = config
            .probes
            .iter()
            .map(|p| match &p.target {
                ProbeTarget::Http(_) => "http",
                ProbeTarget::Tcp { .. } => "tcp",
                ProbeTarget::Tls { .. } => "tls",
                ProbeTarget::Grpc { .. } => "grpc",
                ProbeTarget::Dns { .. } => "dns",
            })
            .collect();
        assert_eq!(kinds, ["http", "tcp", "tls", "grpc", "dns"]);
        let ProbeTarget::Dns {
            server,
            record_type,
            ..
        } = &config.probes[4].target
        else {
            panic!("dns probe")
        };
        assert_eq!(
            (server.as_str(), record_type.as_str()),
            ("10.0.0.53:53", "A")
        );
        let mail = &config.receivers[0].email[0];
        assert_eq!(mail.smarthost, "smtp.example.com:587");
        assert!(mail.require_tls && mail.auth.is_some());
        assert_eq!((config.maintenance.len(), config.inhibit.len()), (1, 1));
    }

    #[test]
    fn the_example_loads_with_defaults_filled_in() {
        let config = parse(EXAMPLE, "alerts.toml").expect("valid");
        let path = std::env::var("PATH").expect("PATH is set");
        assert_eq!(config.probes.len(), 2);
        let shop = &config.probes[0];
        assert_eq!((shop.failure_threshold, shop.success_threshold), (3, 2));
        assert_eq!(shop.conditions.len(), 4);
        let ProbeTarget::Http(http) = &shop.target else {
            panic!("http probe")
        };
        assert_eq!(
            http.headers,
            [("Authorization".to_owned(), format!("Bearer {path}"))]
        );
        assert_eq!(
            config.probes[1].interval,
            std::time::Duration::from_secs(10)
        );
        let slow = &config.rules[0];
        assert_eq!(
            (slow.signal, slow.threshold),
            (Signal::P99, Threshold::Above(800.0))
        );
        assert_eq!(config.rules[1].threshold, Threshold::Above(0.05));
        assert_eq!(config.route.routes[0].receiver, "tickets");
        assert_eq!(
            config.route.routes[0].group_by,
            ["alertname", "service"],
            "inherited"
        );
        assert_eq!(config.receivers[0].pagerduty[0].routing_key, path);
        assert_eq!(
            config.evaluation_interval,
            std::time::Duration::from_secs(5)
        );
    }

    #[test]
    fn every_kind_of_mistake_names_file_line_and_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("interval = \"30x\"", "interval", "is not a duration"),
            (
                "conditions = [\"[STAUTS] == 200\"]",
                "conditions",
                "unknown placeholder",
            ),
            ("intervl = \"30s\"", "intervl", "unknown field"),
            ("kind = \"smtp\"", "kind", "unknown probe kind"),
        ];
        for (line, key, says) in cases {
            let text = format!(
                "[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\n{line}\n[route]\nreceiver = \"r\"\n[[receiver]]\nname = \"r\"\n"
            )
            .replace("kind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nkind = \"smtp\"", "kind = \"smtp\"");
            let e = parse(&text, "alerts.toml").expect_err(line).to_string();
            assert!(e.starts_with("alerts.toml:"), "{e}");
            assert!(e.contains(key) && e.contains(says), "{line}: {e}");
        }
        let no_target = "[[probe]]\nname = \"p\"\nkind = \"tcp\"\n[route]\nreceiver = \"r\"\n[[receiver]]\nname = \"r\"\n";
        let e = parse(no_target, "a.toml")
            .expect_err("no address")
            .to_string();
        assert!(
            e.starts_with("a.toml:2: name:") && e.contains("needs an address"),
            "{e}"
        );
        let missing_receiver = "[route]\nreceiver = \"nobody\"\n";
        let e = parse(missing_receiver, "a.toml")
            .expect_err("no receiver")
            .to_string();
        assert!(
            e.starts_with("a.toml:2: receiver:") && e.contains("no receiver is named \"nobody\""),
            "{e}"
        );
        let unset =
            "[[receiver]]\nname = \"r\"\nwebhook = [{ url = \"${PLUMB_TEST_NEVER_SET}\" }]\n";
        let e = parse(unset, "a.toml")
            .expect_err("unset variable")
            .to_string();
        assert!(
            e.contains("a.toml:3") && e.contains("PLUMB_TEST_NEVER_SET is not set"),
            "{e}"
        );
        let no_route = "[[probe]]\nname = \"p\"\nkind = \"tcp\"\naddress = \"h:1\"\n";
        let e = parse(no_route, "a.toml").expect_err("no route").to_string();
        assert!(e.contains("add a [route]"), "{e}");
        let bad_rule =
            "[[rule]]\nname = \"r\"\nservice = \"s\"\nsignal = \"p99\"\nabove = \"fast\"\n";
        let e = parse(bad_rule, "a.toml")
            .expect_err("bad threshold")
            .to_string();
        assert!(
            e.starts_with("a.toml:5: above:") && e.contains("takes a duration"),
            "{e}"
        );
        let twice = "[[probe]]\nname = \"p\"\nkind = \"tcp\"\naddress = \"h:1\"\n[[probe]]\nname = \"p\"\nkind = \"tcp\"\naddress = \"h:2\"\n[route]\nreceiver = \"r\"\n[[receiver]]\nname = \"r\"\n";
        let e = parse(twice, "a.toml").expect_err("duplicate").to_string();
        assert!(
            e.starts_with("a.toml:6:") && e.contains("names must be unique"),
            "{e}"
        );
        for (email, says) in [
            ("to = \"ops@example.com\"", "missing field `from`"),
            (
                "to = \"ops\", from = \"p@example.com\", smarthost = \"h:25\"",
                "\"ops\" is not a mail address",
            ),
            (
                "to = \"o@example.com\", from = \"p@example.com\", smarthost = \"h\"",
                "is not host:port",
            ),
            (
                "to = \"o@example.com\", from = \"p@example.com\", smarthost = \"h:25\", auth_username = \"u\"",
                "together",
            ),
        ] {
            let text = format!("[[receiver]]\nname = \"r\"\nemail = [{{ {email} }}]\n");
            let e = parse(&text, "a.toml").expect_err(email).to_string();
            assert!(
                e.starts_with("a.toml:3:") && e.contains(says),
                "{email}: {e}"
            );
        }
        let dns = "[[probe]]\nname = \"d\"\nkind = \"dns\"\naddress = \"127.0.0.1\"\nquery_name = \"x.test\"\nquery_type = \"AXFR\"\n";
        let e = parse(dns, "a.toml").expect_err("dns type").to_string();
        assert!(
            e.starts_with("a.toml:6: query_type:") && e.contains("unknown query_type"),
            "{e}"
        );
        let dns = "[[probe]]\nname = \"d\"\nkind = \"dns\"\naddress = \"127.0.0.1\"\n";
        let e = parse(dns, "a.toml").expect_err("dns name").to_string();
        assert!(e.contains("needs a query_name"), "{e}");
        let syntax = "[route\nreceiver = 1\n";
        assert!(
            parse(syntax, "a.toml")
                .expect_err("syntax")
                .to_string()
                .starts_with("a.toml:1:")
        );
    }
}

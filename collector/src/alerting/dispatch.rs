//! Routing and grouping, as Alertmanager does them: each firing alert finds its route in the
//! tree (the deepest matching one; siblings after a match only with `continue`), joins the group
//! of that route and its `group_by` labels, and each group sends one message when it starts
//! firing (after `group_wait`), one when it changes (at most every `group_interval`), one again
//! when nothing changed for `repeat_interval`, and one when all its alerts are resolved.
//!
//! In: the alerts and the groups' state. Out: [`Notification`]s to deliver, and the groups'
//! new state (kept with the alerts, so a restart neither repeats nor forgets a message).

use super::state::{Alert, Status};
use plumb_alert_config::Route;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What a group last told its receiver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Group {
    /// The receiver.
    pub(crate) receiver: String,
    /// The `group_by` labels and their values.
    pub(crate) labels: BTreeMap<String, String>,
    /// When its first alert joined (for `group_wait`).
    pub(crate) first_seen: u64,
    /// When its last message went out.
    pub(crate) last_sent: Option<u64>,
    /// The alerts that last message said were firing.
    pub(crate) sent_firing: BTreeSet<String>,
}

/// One alert as a message shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct NotifiedAlert {
    /// `firing` or `resolved`.
    pub(crate) status: String,
    /// Its fingerprint.
    pub(crate) fingerprint: String,
    /// Labels.
    pub(crate) labels: BTreeMap<String, String>,
    /// Annotations.
    pub(crate) annotations: BTreeMap<String, String>,
    /// When it fired, seconds since the epoch.
    pub(crate) starts_at: u64,
    /// When it resolved (None while firing).
    pub(crate) ends_at: Option<u64>,
    /// What was seen (failing condition, status, value).
    pub(crate) detail: String,
}

/// One message for one receiver about one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Notification {
    /// The group's key.
    pub(crate) group_key: String,
    /// The receiver.
    pub(crate) receiver: String,
    /// `firing` while any alert of the group fires, else `resolved`.
    pub(crate) status: String,
    /// The group's labels.
    pub(crate) group_labels: BTreeMap<String, String>,
    /// Its alerts.
    pub(crate) alerts: Vec<NotifiedAlert>,
}

/// The routes `labels` take: the deepest matching node on each matching branch.
pub(crate) fn routes_for<'r>(
    route: &'r Route,
    path: String,
    labels: &BTreeMap<String, String>,
) -> Vec<(String, &'r Route)> {
    let mut found = Vec::new();
    for (i, child) in route.routes.iter().enumerate() {
        if child.matchers.iter().all(|m| m.matches(labels)) {
            found.extend(routes_for(child, format!("{path}.{i}"), labels));
            if !child.continue_matching {
                break;
            }
        }
    }
    if found.is_empty() {
        found.push((path, route));
    }
    found
}

fn label_text(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(","))
}

fn notified(alert: &Alert, fp: &str) -> NotifiedAlert {
    let firing = alert.status == Status::Firing;
    NotifiedAlert {
        status: if firing { "firing" } else { "resolved" }.to_owned(),
        fingerprint: fp.to_owned(),
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        starts_at: alert.fired_at.unwrap_or(alert.active_since),
        ends_at: if firing { None } else { alert.resolved_at },
        detail: alert.detail.clone(),
    }
}

/// One round: joins firing alerts to their groups, and returns what is due to be sent (the
/// groups are updated as if it was sent; a resolved group is removed). An alert that `muted`
/// (a silence, a maintenance window) is not announced; one announced before stays in its group
/// as it was, so its resolve still goes out.
pub(crate) fn dispatch(
    root: &Route,
    alerts: &BTreeMap<String, Alert>,
    groups: &mut BTreeMap<String, Group>,
    muted: &dyn Fn(&BTreeMap<String, String>) -> bool,
    now: u64,
) -> Vec<Notification> {
    // The groups each firing alert belongs to (a group's key names its route).
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (fp, alert) in alerts.iter().filter(|(_, a)| a.status == Status::Firing) {
        for (path, route) in routes_for(root, "0".into(), &alert.labels) {
            let labels: BTreeMap<String, String> = route
                .group_by
                .iter()
                .map(|l| (l.clone(), alert.labels.get(l).cloned().unwrap_or_default()))
                .collect();
            let key = format!("{path}:{}", label_text(&labels));
            groups.entry(key.clone()).or_insert_with(|| Group {
                receiver: route.receiver.clone(),
                labels,
                first_seen: now,
                last_sent: None,
                sent_firing: BTreeSet::new(),
            });
            members.entry(key).or_default().insert(fp.clone());
        }
    }
    let mut out = Vec::new();
    let mut finished = Vec::new();
    for (key, group) in groups.iter_mut() {
        let firing: BTreeSet<String> = members
            .remove(key)
            .unwrap_or_default()
            .into_iter()
            .filter(|fp| {
                group.sent_firing.contains(fp) || alerts.get(fp).is_none_or(|a| !muted(&a.labels))
            })
            .collect();
        let Some(route) = find_route(root, key) else {
            // Its route is gone (the configuration changed): nothing more to say.
            finished.push(key.clone());
            continue;
        };
        let due = match group.last_sent {
            None => !firing.is_empty() && now >= group.first_seen + route.group_wait.as_secs(),
            Some(last) if firing != group.sent_firing => {
                now >= last + route.group_interval.as_secs()
            }
            Some(last) => !firing.is_empty() && now >= last + route.repeat_interval.as_secs(),
        };
        if group.last_sent.is_none() && firing.is_empty() {
            // Resolved before anything was said.
            finished.push(key.clone());
            continue;
        }
        if !due {
            continue;
        }
        let shown: BTreeSet<&String> = firing.iter().chain(group.sent_firing.iter()).collect();
        let alerts_shown: Vec<NotifiedAlert> = shown
            .into_iter()
            .filter_map(|fp| alerts.get(fp).map(|a| notified(a, fp)))
            .collect();
        out.push(Notification {
            group_key: key.clone(),
            receiver: group.receiver.clone(),
            status: if firing.is_empty() {
                "resolved"
            } else {
                "firing"
            }
            .to_owned(),
            group_labels: group.labels.clone(),
            alerts: alerts_shown,
        });
        group.last_sent = Some(now);
        if firing.is_empty() {
            finished.push(key.clone());
        }
        group.sent_firing = firing;
    }
    for key in finished {
        groups.remove(&key);
    }
    out
}

/// The route a group key names (`0.1.2:{...}`), if the tree still has it.
fn find_route<'r>(root: &'r Route, key: &str) -> Option<&'r Route> {
    let path = key.split(':').next()?;
    let mut node = root;
    for step in path.split('.').skip(1) {
        node = node.routes.get(step.parse::<usize>().ok()?)?;
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::super::state::fingerprint;
    use super::*;
    use std::time::Duration;

    fn route() -> Route {
        let text = r#"
[route]
receiver = "oncall"
group_by = ["alertname"]
group_wait = "30s"
group_interval = "5m"
repeat_interval = "4h"
routes = [{ matchers = ["severity=ticket"], receiver = "tickets" }]
[[receiver]]
name = "oncall"
[[receiver]]
name = "tickets"
"#;
        plumb_alert_config::parse(text, "test.toml")
            .expect("valid")
            .route
    }

    fn firing(name: &str, severity: &str, at: u64) -> (String, Alert) {
        let labels: BTreeMap<String, String> = [("alertname", name), ("severity", severity)]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let mut alert = Alert::new(labels.clone(), BTreeMap::new());
        alert.rule_evaluation(true, "x".into(), 0, 0, at);
        (fingerprint(&labels), alert)
    }

    #[test]
    fn one_message_per_group_change_and_one_when_it_resolves() {
        let root = route();
        let mut groups = BTreeMap::new();
        let mut alerts: BTreeMap<String, Alert> = [firing("shop", "page", 100)].into();
        assert!(
            dispatch(&root, &alerts, &mut groups, &|_| false, 100).is_empty(),
            "group_wait"
        );
        assert!(dispatch(&root, &alerts, &mut groups, &|_| false, 129).is_empty());
        let sent = dispatch(&root, &alerts, &mut groups, &|_| false, 130);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].receiver.as_str(), sent[0].status.as_str()),
            ("oncall", "firing")
        );
        assert!(
            dispatch(&root, &alerts, &mut groups, &|_| false, 200).is_empty(),
            "nothing changed"
        );
        let repeat = dispatch(&root, &alerts, &mut groups, &|_| false, 130 + 4 * 3600);
        assert_eq!(repeat.len(), 1, "repeat_interval");
        // Resolved: one message, at the next group_interval, then the group is gone.
        for a in alerts.values_mut() {
            a.rule_evaluation(false, String::new(), 0, 0, 20_000);
        }
        let resolved = dispatch(
            &root,
            &alerts,
            &mut groups,
            &|_| false,
            130 + 4 * 3600 + 300,
        );
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].status, "resolved");
        assert_eq!(resolved[0].alerts[0].status, "resolved");
        assert!(groups.is_empty());
        assert!(dispatch(&root, &alerts, &mut groups, &|_| false, 40_000).is_empty());
        let _ = Duration::ZERO;
    }

    #[test]
    fn matchers_pick_the_route_and_a_flap_inside_group_wait_says_nothing() {
        let root = route();
        let mut groups = BTreeMap::new();
        let mut alerts: BTreeMap<String, Alert> = [firing("disk", "ticket", 0)].into();
        dispatch(&root, &alerts, &mut groups, &|_| false, 0);
        for a in alerts.values_mut() {
            a.rule_evaluation(false, String::new(), 0, 0, 10);
        }
        assert!(dispatch(&root, &alerts, &mut groups, &|_| false, 40).is_empty());
        assert!(groups.is_empty());
        let alerts: BTreeMap<String, Alert> = [firing("disk", "ticket", 50)].into();
        dispatch(&root, &alerts, &mut groups, &|_| false, 50);
        let sent = dispatch(&root, &alerts, &mut groups, &|_| false, 80);
        assert_eq!(sent[0].receiver, "tickets");
        assert!(
            sent[0].group_key.starts_with("0.0:"),
            "{}",
            sent[0].group_key
        );
    }
}

#[cfg(test)]
mod muting_tests {
    use super::super::state::fingerprint;
    use super::*;

    #[test]
    fn a_muted_alert_is_not_announced_but_an_announced_one_still_resolves() {
        let text = "[route]\nreceiver = \"r\"\ngroup_wait = \"0s\"\ngroup_interval = \"0s\"\n[[receiver]]\nname = \"r\"\n";
        let root = plumb_alert_config::parse(text, "t.toml")
            .expect("valid")
            .route;
        let labels: BTreeMap<String, String> = [("alertname".to_owned(), "a".to_owned())].into();
        let mut alert = Alert::new(labels.clone(), BTreeMap::new());
        alert.rule_evaluation(true, String::new(), 0, 0, 1);
        let mut alerts: BTreeMap<String, Alert> = [(fingerprint(&labels), alert)].into();
        let mut groups = BTreeMap::new();
        assert!(
            dispatch(&root, &alerts, &mut groups, &|_| true, 1).is_empty(),
            "silenced"
        );
        assert_eq!(
            dispatch(&root, &alerts, &mut groups, &|_| false, 2).len(),
            1,
            "silence over"
        );
        assert!(dispatch(&root, &alerts, &mut groups, &|_| true, 3).is_empty());
        for a in alerts.values_mut() {
            a.rule_evaluation(false, String::new(), 0, 0, 4);
        }
        let resolved = dispatch(&root, &alerts, &mut groups, &|_| true, 4);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].status, "resolved");
    }
}

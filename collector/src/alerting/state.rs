//! Alert state: each alert (a probe, or a rule, with its labels) goes inactive → pending →
//! firing → resolved, and its state survives restarts.
//!
//! Probes use Gatus' thresholds both ways: `failure_threshold` failed checks in a row fire the
//! alert and `success_threshold` good ones in a row resolve it, so one failed check never alerts
//! and one success never resolves. Rules use Prometheus' `for` (pending until the condition has
//! held that long) and `keep_firing_for` (a firing alert stays firing that long after the
//! condition stops holding). An alert's identity is its labels (`alertname` included), so
//! editing one rule does not reset the others.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Its condition does not hold.
    Inactive,
    /// Its condition holds, not yet long enough.
    Pending,
    /// It fires.
    Firing,
}

impl Status {
    /// The name the API shows.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::Pending => "pending",
            Self::Firing => "firing",
        }
    }
}

/// One alert's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Alert {
    /// Its labels, `alertname` included: its identity.
    pub(crate) labels: BTreeMap<String, String>,
    /// Text for people (`summary`, `description`).
    pub(crate) annotations: BTreeMap<String, String>,
    /// Where it is.
    pub(crate) status: Status,
    /// When its condition started to hold (pending or firing), seconds since the epoch.
    pub(crate) active_since: u64,
    /// When it fired.
    pub(crate) fired_at: Option<u64>,
    /// When it resolved (after firing).
    pub(crate) resolved_at: Option<u64>,
    /// The last time its condition held.
    pub(crate) last_held: u64,
    /// Failed checks in a row (probes).
    pub(crate) failures_in_row: u32,
    /// Good checks in a row (probes).
    pub(crate) successes_in_row: u32,
    /// What was last seen: the failing condition, the status, the value.
    pub(crate) detail: String,
}

/// A change worth recording in the alert history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    /// From.
    pub(crate) from: Status,
    /// To.
    pub(crate) to: Status,
}

/// A stable fingerprint of a label set (FNV-1a over `name=value` pairs in order), as hex.
pub(crate) fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for byte in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

impl Alert {
    /// A new, inactive alert.
    pub(crate) fn new(
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> Self {
        Self {
            labels,
            annotations,
            status: Status::Inactive,
            active_since: 0,
            fired_at: None,
            resolved_at: None,
            last_held: 0,
            failures_in_row: 0,
            successes_in_row: 0,
            detail: String::new(),
        }
    }

    fn go(&mut self, to: Status, now: u64) -> Option<Transition> {
        let from = self.status;
        if from == to {
            return None;
        }
        self.status = to;
        match to {
            Status::Firing => {
                self.fired_at = Some(now);
                self.resolved_at = None;
            }
            Status::Inactive if from == Status::Firing => self.resolved_at = Some(now),
            _ => {}
        }
        Some(Transition { from, to })
    }

    /// One probe check: `ok` or not, with what it found.
    pub(crate) fn probe_check(
        &mut self,
        ok: bool,
        detail: String,
        failure_threshold: u32,
        success_threshold: u32,
        now: u64,
    ) -> Option<Transition> {
        if ok {
            self.successes_in_row = self.successes_in_row.saturating_add(1);
            self.failures_in_row = 0;
        } else {
            self.failures_in_row = self.failures_in_row.saturating_add(1);
            self.successes_in_row = 0;
            self.last_held = now;
            self.detail = detail;
        }
        match self.status {
            Status::Firing if self.successes_in_row >= success_threshold => {
                self.go(Status::Inactive, now)
            }
            Status::Firing => None,
            _ if self.failures_in_row >= failure_threshold => self.go(Status::Firing, now),
            _ if self.failures_in_row > 0 => {
                if self.status == Status::Inactive {
                    self.active_since = now;
                }
                self.go(Status::Pending, now)
            }
            _ => self.go(Status::Inactive, now),
        }
    }

    /// One rule evaluation: whether the condition `holds` now, with the value seen.
    pub(crate) fn rule_evaluation(
        &mut self,
        holds: bool,
        detail: String,
        for_secs: u64,
        keep_firing_for_secs: u64,
        now: u64,
    ) -> Option<Transition> {
        if holds {
            self.last_held = now;
            self.detail = detail;
            if self.status == Status::Inactive {
                self.active_since = now;
            }
            if now.saturating_sub(self.active_since) >= for_secs {
                self.go(Status::Firing, now)
            } else {
                self.go(Status::Pending, now)
            }
        } else {
            match self.status {
                Status::Firing if now.saturating_sub(self.last_held) < keep_firing_for_secs => None,
                _ => self.go(Status::Inactive, now),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert::new(
            [("alertname".to_owned(), "shop".to_owned())].into(),
            BTreeMap::new(),
        )
    }

    #[test]
    fn one_failure_never_fires_and_one_success_never_resolves() {
        let mut a = alert();
        let check =
            |a: &mut Alert, ok: bool, t: u64| a.probe_check(ok, "status 500".into(), 3, 2, t);
        assert_eq!(check(&mut a, false, 1).map(|t| t.to), Some(Status::Pending));
        assert_eq!(check(&mut a, true, 2).map(|t| t.to), Some(Status::Inactive));
        assert_eq!(
            check(&mut a, false, 3),
            Some(Transition {
                from: Status::Inactive,
                to: Status::Pending
            })
        );
        assert_eq!(check(&mut a, false, 4), None);
        assert_eq!(check(&mut a, false, 5).map(|t| t.to), Some(Status::Firing));
        assert_eq!(a.fired_at, Some(5));
        assert_eq!(check(&mut a, true, 6), None, "one success does not resolve");
        assert_eq!(check(&mut a, false, 7), None);
        assert_eq!(check(&mut a, true, 8), None);
        assert_eq!(check(&mut a, true, 9).map(|t| t.to), Some(Status::Inactive));
        assert_eq!(a.resolved_at, Some(9));
        assert_eq!(a.detail, "status 500");
    }

    #[test]
    fn rules_wait_for_and_keep_firing_for() {
        let mut a = alert();
        let eval = |a: &mut Alert, holds: bool, t: u64| {
            a.rule_evaluation(holds, "p99 900 ms".into(), 60, 30, t)
        };
        assert_eq!(eval(&mut a, true, 100).map(|t| t.to), Some(Status::Pending));
        assert_eq!(eval(&mut a, true, 150), None);
        assert_eq!(eval(&mut a, true, 160).map(|t| t.to), Some(Status::Firing));
        assert_eq!(eval(&mut a, false, 170), None, "kept firing");
        assert_eq!(
            eval(&mut a, false, 191).map(|t| t.to),
            Some(Status::Inactive)
        );
        assert_eq!(eval(&mut a, true, 200).map(|t| t.to), Some(Status::Pending));
        assert_eq!(
            eval(&mut a, false, 210).map(|t| t.to),
            Some(Status::Inactive),
            "pending just ends"
        );
        let zero_for = a.rule_evaluation(true, String::new(), 0, 0, 300);
        assert_eq!(zero_for.map(|t| t.to), Some(Status::Firing));
    }

    #[test]
    fn fingerprints_depend_on_every_label_and_nothing_else() {
        let one: BTreeMap<String, String> = [("alertname", "a"), ("service", "shop")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let other: BTreeMap<String, String> = [("alertname", "a"), ("service", "shoq")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        assert_eq!(fingerprint(&one), fingerprint(&one.clone()));
        assert_ne!(fingerprint(&one), fingerprint(&other));
        assert_eq!(fingerprint(&one).len(), 16);
    }
}

//! Silences, as Alertmanager has them: label matchers, a start and an end, a comment and who
//! made it. While a silence is active, the alerts it matches send no new notification (an alert
//! announced before the silence keeps its place in its group, so its resolve still goes out).
//! Silences live in ClickHouse, one row per version (creating and expiring both insert; the
//! newest version counts), so every collector sharing the database sees them.

use crate::store::schema::SILENCES;
use crate::store::{Store, StoreError};
use clickhouse::Row;
use plumb_alert_config::Matcher;
use plumb_proto::v1::Silence as SilenceMessage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest a silence may last.
pub(crate) const MAX_SECONDS: u64 = 366 * 86_400;

/// One version of a silence, as stored.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub(crate) struct SilenceRow {
    /// Its id.
    pub(crate) id: String,
    /// Newer versions replace older ones (ns since the epoch when written).
    pub(crate) version: u64,
    /// Its matchers, as written.
    pub(crate) matchers: Vec<String>,
    /// From, seconds.
    pub(crate) starts_at: u32,
    /// Until, seconds.
    pub(crate) ends_at: u32,
    /// Why.
    pub(crate) comment: String,
    /// Who.
    pub(crate) created_by: String,
}

/// The newest version of every silence that ends after `after` (aliases differ from the
/// columns: ClickHouse 18.16 refuses an alias equal to a column it aggregates).
#[derive(Debug, Row, Deserialize)]
struct CurrentRow {
    id: String,
    s_matchers: Vec<String>,
    s_starts: u32,
    s_ends: u32,
    s_comment: String,
    s_by: String,
}

/// The query for the newest version of the silences that end after `after`.
pub(crate) fn current_query(store: &Store, after_unix_s: u64) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT id, argMax(matchers, version) AS s_matchers, argMax(starts_at, version) AS s_starts,
                    argMax(ends_at, version) AS s_ends, argMax(comment, version) AS s_comment,
                    argMax(created_by, version) AS s_by
             FROM {SILENCES} GROUP BY id HAVING s_ends > toDateTime(?) ORDER BY s_starts"
        ))
        .bind(after_unix_s)
}

/// The silences that end after `after`.
pub(crate) async fn current(
    store: &Store,
    after_unix_s: u64,
) -> Result<Vec<SilenceRow>, StoreError> {
    let rows: Vec<CurrentRow> = current_query(store, after_unix_s)
        .fetch_all()
        .await
        .map_err(StoreError::clickhouse("read silences"))?;
    Ok(rows
        .into_iter()
        .map(|r| SilenceRow {
            id: r.id,
            version: 0,
            matchers: r.s_matchers,
            starts_at: r.s_starts,
            ends_at: r.s_ends,
            comment: r.s_comment,
            created_by: r.s_by,
        })
        .collect())
}

/// Writes a version of a silence.
pub(crate) async fn write(store: &Store, row: &SilenceRow) -> Result<(), StoreError> {
    store.insert(SILENCES, std::slice::from_ref(row)).await
}

/// Silences in force, compiled.
#[derive(Debug, Default)]
pub(crate) struct Active {
    silences: Vec<(Vec<Matcher>, u64, u64)>,
}

impl Active {
    /// From stored rows (a matcher that no longer parses makes its silence match nothing).
    pub(crate) fn from_rows(rows: &[SilenceRow]) -> Self {
        let silences = rows
            .iter()
            .filter_map(|r| {
                let matchers: Result<Vec<Matcher>, String> =
                    r.matchers.iter().map(|m| m.parse()).collect();
                matchers
                    .ok()
                    .map(|m| (m, u64::from(r.starts_at), u64::from(r.ends_at)))
            })
            .collect();
        Self { silences }
    }

    /// Whether a silence in force at `now` matches `labels`.
    pub(crate) fn mutes(&self, labels: &BTreeMap<String, String>, now: u64) -> bool {
        self.silences
            .iter()
            .any(|(m, from, to)| *from <= now && now < *to && m.iter().all(|m| m.matches(labels)))
    }
}

/// The API's form of a silence at `now`.
pub(crate) fn message(r: &SilenceRow, now: u64) -> SilenceMessage {
    let (from, to) = (u64::from(r.starts_at), u64::from(r.ends_at));
    SilenceMessage {
        id: r.id.clone(),
        matchers: r.matchers.clone(),
        starts_at_unix_s: from,
        ends_at_unix_s: to,
        comment: r.comment.clone(),
        created_by: r.created_by.clone(),
        state: if now < from {
            "pending"
        } else if now < to {
            "active"
        } else {
            "expired"
        }
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silences_mute_what_they_match_while_in_force() {
        let row = SilenceRow {
            id: "a".into(),
            version: 1,
            matchers: vec!["service=shop".into(), "severity=~page|ticket".into()],
            starts_at: 100,
            ends_at: 200,
            comment: String::new(),
            created_by: String::new(),
        };
        let active = Active::from_rows(std::slice::from_ref(&row));
        let labels: BTreeMap<String, String> = [("service", "shop"), ("severity", "page")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert!(active.mutes(&labels, 150));
        assert!(!active.mutes(&labels, 99) && !active.mutes(&labels, 200));
        let other: BTreeMap<String, String> = [("service".to_owned(), "cart".to_owned())].into();
        assert!(!active.mutes(&other, 150));
        assert_eq!(message(&row, 150).state, "active");
        assert_eq!(message(&row, 250).state, "expired");
    }
}

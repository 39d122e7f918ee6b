//! Alerts: what is firing or pending, silences, the last day's state changes and deliveries.

use super::format::time;
use super::{Chrome, Params, serve};
use crate::query::api::QueryApi;
use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use plumb_proto::v1::{AlertsRequest, ListSilencesRequest};
use std::collections::HashMap;

/// History shown, seconds.
const HISTORY_S: u64 = 86_400;

struct Active {
    name: String,
    state: String,
    firing: bool,
    labels: String,
    since: String,
    detail: String,
}

struct SilenceRow {
    matchers: String,
    state: String,
    ends: String,
    comment: String,
    created_by: String,
}

struct Event {
    time: String,
    name: String,
    change: String,
    detail: String,
}

struct Delivery {
    time: String,
    receiver: String,
    integration: String,
    status: String,
    attempt: u32,
    ok: bool,
    outcome: String,
}

#[derive(Template)]
#[template(path = "web/alerts.html")]
struct Page {
    chrome: Chrome,
    enabled: bool,
    active: Vec<Active>,
    silences: Vec<SilenceRow>,
    history: Vec<Event>,
    deliveries: Vec<Delivery>,
}

fn labels(map: &HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(", ")
}

/// `GET /alerts`.
pub(crate) async fn page(
    State(api): State<QueryApi>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    serve("/alerts", &uri, &headers, |params: Params| async move {
        let alerts = api
            .clone()
            .alerts(AlertsRequest {
                state: String::new(),
                history_seconds: HISTORY_S,
            })
            .await?;
        let silences = api.list_silences(ListSilencesRequest {}).await?;
        Ok(Page {
            chrome: params.chrome("Alerts".into(), None),
            enabled: alerts.alerting_enabled,
            active: alerts
                .active
                .into_iter()
                .map(|a| Active {
                    firing: a.state == "firing",
                    labels: labels(&a.labels),
                    since: time(a.active_since_unix_s),
                    name: a.name,
                    state: a.state,
                    detail: a.detail,
                })
                .collect(),
            silences: silences
                .silences
                .into_iter()
                .map(|s| SilenceRow {
                    matchers: s.matchers.join(", "),
                    ends: time(s.ends_at_unix_s),
                    state: s.state,
                    comment: s.comment,
                    created_by: s.created_by,
                })
                .collect(),
            history: alerts
                .history
                .into_iter()
                .map(|e| Event {
                    time: time(e.time_unix_s),
                    change: format!("{} → {}", e.from_state, e.to_state),
                    name: e.name,
                    detail: e.detail,
                })
                .collect(),
            deliveries: alerts
                .deliveries
                .into_iter()
                .map(|d| Delivery {
                    time: time(d.time_unix_s),
                    receiver: d.receiver,
                    integration: d.integration,
                    status: d.status,
                    attempt: d.attempt,
                    ok: d.ok,
                    outcome: d.outcome,
                })
                .collect(),
        })
    })
    .await
}

//! Alerts: what is firing or pending, silences (created and expired here with forms that carry
//! a CSRF token, see [`super::csrf`]), the last day's state changes and deliveries.

use super::format::time;
use super::{Chrome, Params, csrf, serve};
use crate::query::QueryError;
use crate::query::api::QueryApi;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use plumb_proto::v1::{
    AddSilenceRequest, AlertsRequest, ExpireSilenceRequest, ListSilencesRequest,
};
use std::collections::BTreeMap;
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
    id: String,
    expirable: bool,
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
    csrf: String,
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

/// What the alerts routes need: the API, and whether cookies are `Secure`.
#[derive(Clone, Debug)]
pub(crate) struct AlertsState {
    /// The query API.
    pub(crate) api: QueryApi,
    /// The port serves TLS.
    pub(crate) secure: bool,
}

/// `GET /alerts`.
pub(crate) async fn page(
    State(AlertsState { api, secure }): State<AlertsState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (token, set_cookie) = csrf::token(&headers, secure);
    let mut response = serve("/alerts", &uri, &headers, |params: Params| async move {
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
            csrf: token,
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
                    expirable: s.state != "expired",
                    id: s.id,
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
    .await;
    if let Some(cookie) = set_cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// A refused form: the status and the reason, as text.
fn refused(status: StatusCode, why: String) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// The form's fields, when its CSRF token matches the browser's cookie; else the status and
/// the reason to refuse it with.
fn checked_form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, String>, (StatusCode, String)> {
    let fields: BTreeMap<String, String> = serde_urlencoded::from_bytes(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the form is malformed: {e}"),
        )
    })?;
    if !csrf::matches(headers, fields.get("csrf").map_or("", String::as_str)) {
        return Err((
            StatusCode::FORBIDDEN,
            "the form's token does not match this browser's: reload the alerts page and send \
             it again"
                .into(),
        ));
    }
    Ok(fields)
}

fn answer<T>(result: Result<T, QueryError>) -> Response {
    match result {
        Ok(_) => Redirect::to("/alerts").into_response(),
        Err(e) => refused(e.http_status(), e.to_string()),
    }
}

/// `POST /alerts/silences` (`matchers` one per line, `duration` in words, `comment`,
/// `created_by`, `csrf`): a new silence, then back to the page.
pub(crate) async fn add(
    State(AlertsState { api, .. }): State<AlertsState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match checked_form(&headers, &body) {
        Ok(fields) => fields,
        Err((status, why)) => return refused(status, why),
    };
    let field = |name: &str| {
        fields
            .get(name)
            .map_or("", String::as_str)
            .trim()
            .to_owned()
    };
    let duration = field("duration");
    let duration_seconds = match humantime::parse_duration(&duration) {
        Ok(d) => d.as_secs().max(1),
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("invalid duration {duration:?}: {e} (examples: 30m, 2h, 1d)"),
            );
        }
    };
    let matchers = field("matchers")
        .lines()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    answer(
        api.add_silence(AddSilenceRequest {
            matchers,
            duration_seconds,
            comment: field("comment"),
            created_by: field("created_by"),
        })
        .await,
    )
}

/// `POST /alerts/silences/{id}/expire` (`csrf`): the silence ends now, then back to the page.
pub(crate) async fn expire(
    State(AlertsState { api, .. }): State<AlertsState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err((status, why)) = checked_form(&headers, &body) {
        return refused(status, why);
    }
    answer(api.expire_silence(ExpireSilenceRequest { id }).await)
}

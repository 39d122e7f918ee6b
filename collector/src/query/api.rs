//! Serving the query API: `plumb.v1.QueryService` over gRPC and the same calls as HTTP/JSON on
//! one port, together with the operational endpoints `/metrics` (Prometheus text), `/healthz`
//! (the process is up) and `/readyz` (ClickHouse answers). With query tokens configured, all but
//! the two health checks need `authorization: Bearer <token>` (UNAUTHENTICATED / 401 otherwise).
//!
//! Each HTTP route takes the fields of the call's request message as query parameters
//! (`GET /api/v1/endpoint?service=shop&operation=GET%20/cart`), with durations also accepted in
//! words (`since=1h` for `since_seconds=3600`, `baseline=7d`), and answers with the response
//! message as JSON. Errors are `{"error": "..."}` with 400, 404 or 503.

use super::QueryError;
use super::endpoint::endpoint_detail;
use super::endpoint_breakdown::chatty_calls;
use super::regressions::regressions;
use super::services::services;
use super::top::{TopQuery, top_endpoints};
use super::waterfall::get_trace;
use crate::alerting::{self, AlertsView};
use crate::clock::now_unix_s;
use crate::model::ApdexThresholds;
use crate::report::progress::Progress;
use crate::store::Store;
use crate::telemetry::Telemetry;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use plumb_otlp::auth::{Tokens, require_token};
use plumb_proto::v1::capacity_report_event;
use plumb_proto::v1::query_service_server::{QueryService, QueryServiceServer};
use plumb_proto::v1::{
    AddSilenceRequest, AlertsRequest, AlertsResponse, CapacityReportEvent, CapacityReportProgress,
    CapacityReportRequest, CapacityReportResponse, ChattyCallsRequest, ChattyCallsResponse,
    EndpointDetailRequest, EndpointDetailResponse, ExpireSilenceRequest, GetTraceRequest,
    GetTraceResponse, ListSilencesRequest, ListSilencesResponse, RegressionsRequest,
    RegressionsResponse, ServicesRequest, ServicesResponse, Silence, TopEndpointsRequest,
    TopEndpointsResponse, UptimeRequest, UptimeResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;

/// The query service: every question, answered from the store.
#[derive(Clone, Debug)]
pub struct QueryApi {
    store: Store,
    apdex: Arc<ApdexThresholds>,
    alerts: Option<Arc<AlertsView>>,
}

impl QueryApi {
    /// A service reading `store`, with the configured apdex thresholds, and the alerting
    /// engine's view when alerting runs.
    pub(crate) fn new(
        store: Store,
        apdex: ApdexThresholds,
        alerts: Option<Arc<AlertsView>>,
    ) -> Self {
        Self {
            store,
            apdex: Arc::new(apdex),
            alerts,
        }
    }

    pub(crate) async fn alerts(self, r: AlertsRequest) -> Result<AlertsResponse, QueryError> {
        Ok(alerting::api::alerts(
            &self.store,
            self.alerts.as_deref(),
            r,
            u64::from(now_unix_s()),
        )
        .await?)
    }

    pub(crate) async fn uptime(self, r: UptimeRequest) -> Result<UptimeResponse, QueryError> {
        Ok(alerting::api::uptime(&self.store, r, u64::from(now_unix_s())).await?)
    }

    pub(crate) async fn add_silence(self, r: AddSilenceRequest) -> Result<Silence, QueryError> {
        Ok(alerting::api::add_silence(&self.store, r, u64::from(now_unix_s())).await?)
    }

    pub(crate) async fn list_silences(
        self,
        _: ListSilencesRequest,
    ) -> Result<ListSilencesResponse, QueryError> {
        Ok(alerting::api::list_silences(&self.store, u64::from(now_unix_s())).await?)
    }

    pub(crate) async fn expire_silence(
        self,
        r: ExpireSilenceRequest,
    ) -> Result<Silence, QueryError> {
        Ok(alerting::api::expire_silence(&self.store, r, u64::from(now_unix_s())).await?)
    }

    pub(crate) async fn capacity(
        self,
        r: CapacityReportRequest,
    ) -> Result<CapacityReportResponse, QueryError> {
        let progress = Arc::new(Progress::unwatched());
        crate::report::capacity(&self.store, r, u64::from(now_unix_s()), progress).await
    }

    /// The report with its progress: events on a channel as the report is worked out, the
    /// report (or its error) last. Progress that finds the channel full is skipped (the next
    /// event says more); the report waits for room. A client that goes away stops nothing:
    /// the report is finished and dropped.
    fn capacity_stream(self, r: CapacityReportRequest) -> CapacityEvents {
        let (events, receiver) = tokio::sync::mpsc::channel(PROGRESS_QUEUE);
        let progress_events = events.clone();
        let progress = Arc::new(Progress::to(move |step, done, total| {
            let progress = CapacityReportProgress {
                step: step.to_owned(),
                done,
                total,
            };
            // A full channel is a slow client (a later event says more), a closed one a client
            // that left.
            let _ = progress_events.try_send(Ok(CapacityReportEvent {
                event: Some(capacity_report_event::Event::Progress(progress)),
            }));
        }));
        tokio::spawn(async move {
            let result =
                crate::report::capacity(&self.store, r, u64::from(now_unix_s()), progress).await;
            let _ = events
                .send(
                    result
                        .map(|report| CapacityReportEvent {
                            event: Some(capacity_report_event::Event::Report(report)),
                        })
                        .map_err(tonic::Status::from),
                )
                .await;
        });
        tokio_stream::wrappers::ReceiverStream::new(receiver)
    }

    pub(crate) async fn top(
        self,
        r: TopEndpointsRequest,
    ) -> Result<TopEndpointsResponse, QueryError> {
        let query = TopQuery::try_from(r)?;
        top_endpoints(&self.store, &query, &self.apdex, now_unix_s()).await
    }

    pub(crate) async fn endpoint(
        self,
        r: EndpointDetailRequest,
    ) -> Result<EndpointDetailResponse, QueryError> {
        endpoint_detail(&self.store, &self.apdex, r, now_unix_s()).await
    }

    pub(crate) async fn trace(self, r: GetTraceRequest) -> Result<GetTraceResponse, QueryError> {
        get_trace(&self.store, r, now_unix_s()).await
    }

    pub(crate) async fn regressions(
        self,
        r: RegressionsRequest,
    ) -> Result<RegressionsResponse, QueryError> {
        regressions(&self.store, r, now_unix_s()).await
    }

    /// Per service figures for the overview.
    pub(crate) async fn services(self, r: ServicesRequest) -> Result<ServicesResponse, QueryError> {
        services(&self.store, &self.apdex, r, now_unix_s()).await
    }

    async fn chatty(self, r: ChattyCallsRequest) -> Result<ChattyCallsResponse, QueryError> {
        chatty_calls(&self.store, r, now_unix_s()).await
    }
}

/// The events of a streamed capacity report.
type CapacityEvents =
    tokio_stream::wrappers::ReceiverStream<Result<CapacityReportEvent, tonic::Status>>;
/// Progress events held for a slow client.
const PROGRESS_QUEUE: usize = 64;

#[tonic::async_trait]
impl QueryService for QueryApi {
    type CapacityReportStreamStream = CapacityEvents;

    async fn top_endpoints(
        &self,
        request: tonic::Request<TopEndpointsRequest>,
    ) -> Result<tonic::Response<TopEndpointsResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().top(request.into_inner()).await?,
        ))
    }

    async fn endpoint_detail(
        &self,
        request: tonic::Request<EndpointDetailRequest>,
    ) -> Result<tonic::Response<EndpointDetailResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().endpoint(request.into_inner()).await?,
        ))
    }

    async fn get_trace(
        &self,
        request: tonic::Request<GetTraceRequest>,
    ) -> Result<tonic::Response<GetTraceResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().trace(request.into_inner()).await?,
        ))
    }

    async fn regressions(
        &self,
        request: tonic::Request<RegressionsRequest>,
    ) -> Result<tonic::Response<RegressionsResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().regressions(request.into_inner()).await?,
        ))
    }

    async fn chatty_calls(
        &self,
        request: tonic::Request<ChattyCallsRequest>,
    ) -> Result<tonic::Response<ChattyCallsResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().chatty(request.into_inner()).await?,
        ))
    }

    async fn alerts(
        &self,
        request: tonic::Request<AlertsRequest>,
    ) -> Result<tonic::Response<AlertsResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().alerts(request.into_inner()).await?,
        ))
    }

    async fn uptime(
        &self,
        request: tonic::Request<UptimeRequest>,
    ) -> Result<tonic::Response<UptimeResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().uptime(request.into_inner()).await?,
        ))
    }

    async fn capacity_report(
        &self,
        request: tonic::Request<CapacityReportRequest>,
    ) -> Result<tonic::Response<CapacityReportResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().capacity(request.into_inner()).await?,
        ))
    }

    async fn services(
        &self,
        request: tonic::Request<ServicesRequest>,
    ) -> Result<tonic::Response<ServicesResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().services(request.into_inner()).await?,
        ))
    }

    async fn capacity_report_stream(
        &self,
        request: tonic::Request<CapacityReportRequest>,
    ) -> Result<tonic::Response<CapacityEvents>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().capacity_stream(request.into_inner()),
        ))
    }

    async fn add_silence(
        &self,
        request: tonic::Request<AddSilenceRequest>,
    ) -> Result<tonic::Response<Silence>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().add_silence(request.into_inner()).await?,
        ))
    }

    async fn list_silences(
        &self,
        request: tonic::Request<ListSilencesRequest>,
    ) -> Result<tonic::Response<ListSilencesResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().list_silences(request.into_inner()).await?,
        ))
    }

    async fn expire_silence(
        &self,
        request: tonic::Request<ExpireSilenceRequest>,
    ) -> Result<tonic::Response<Silence>, tonic::Status> {
        Ok(tonic::Response::new(
            self.clone().expire_silence(request.into_inner()).await?,
        ))
    }
}

#[derive(Clone)]
struct ApiState {
    api: QueryApi,
    store: Store,
    telemetry: Arc<Telemetry>,
}

/// The query port's routes: gRPC query service, HTTP/JSON API, metrics, health and the web
/// pages. With `tokens` configured, everything but `/healthz` and `/readyz` needs a bearer
/// token; the pages take one once at `/login` and keep it in a cookie (see [`crate::web`] for
/// what `exposure` changes).
pub(crate) fn router(
    api: QueryApi,
    telemetry: Arc<Telemetry>,
    tokens: Arc<Tokens>,
    exposure: crate::web::Exposure,
) -> Router {
    let store = api.store.clone();
    let web_api = api.clone();
    let grpc = tonic::service::Routes::new(QueryServiceServer::new(api.clone())).into_axum_router();
    let state = ApiState {
        api,
        store,
        telemetry,
    };
    let open = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state.clone());
    Router::new()
        .route(
            "/api/v1/top",
            get(|State(s): State<ApiState>, uri: Uri| http_call(s.api, uri, QueryApi::top)),
        )
        .route(
            "/api/v1/services",
            get(|State(s): State<ApiState>, uri: Uri| http_call(s.api, uri, QueryApi::services)),
        )
        .route(
            "/api/v1/endpoint",
            get(|State(s): State<ApiState>, uri: Uri| http_call(s.api, uri, QueryApi::endpoint)),
        )
        .route(
            "/api/v1/trace/{trace_id}",
            get(
                |State(s): State<ApiState>, Path(trace_id): Path<String>, uri: Uri| {
                    http_call(s.api, uri, |api, r: GetTraceRequest| {
                        api.trace(GetTraceRequest { trace_id, ..r })
                    })
                },
            ),
        )
        .route(
            "/api/v1/regressions",
            get(|State(s): State<ApiState>, uri: Uri| http_call(s.api, uri, QueryApi::regressions)),
        )
        .route(
            "/api/v1/chatty",
            get(|State(s): State<ApiState>, uri: Uri| http_call(s.api, uri, QueryApi::chatty)),
        )
        .route(
            "/api/v1/alerts",
            get(|State(s): State<ApiState>, uri: Uri| http_call(s.api, uri, QueryApi::alerts)),
        )
        .route(
            "/api/v1/uptime",
            get(|State(s): State<ApiState>, uri: Uri| http_call(s.api, uri, QueryApi::uptime)),
        )
        .route(
            "/api/v1/report/capacity",
            get(|State(s): State<ApiState>, uri: Uri| async move {
                let result = match request_from_query::<CapacityReportRequest>(uri.query()) {
                    Ok(request) => s.api.capacity(request).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(report) => (
                        [(axum::http::header::CONTENT_TYPE, report.content_type)],
                        report.document,
                    )
                        .into_response(),
                    Err(e) => answer::<()>(Err(e)),
                }
            }),
        )
        .route(
            "/api/v1/silences",
            get(|State(s): State<ApiState>, uri: Uri| {
                http_call(s.api, uri, QueryApi::list_silences)
            })
            .post(
                |State(s): State<ApiState>, body: axum::body::Bytes| async move {
                    match serde_json::from_slice::<AddSilenceRequest>(&body) {
                        Ok(request) => answer(s.api.add_silence(request).await),
                        Err(e) => answer::<Silence>(Err(QueryError::InvalidArgument(format!(
                            "the body is not a silence: {e}"
                        )))),
                    }
                },
            ),
        )
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(
                |State(s): State<ApiState>, Path(id): Path<String>| async move {
                    answer(s.api.expire_silence(ExpireSilenceRequest { id }).await)
                },
            ),
        )
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(grpc)
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&tokens),
            require_token,
        ))
        .merge(open)
        // The pages check tokens themselves: a browser signs in once and keeps a cookie.
        .merge(crate::web::router(web_api, tokens, exposure))
}

/// Query parameters given as durations in words, and the request field each one fills.
const DURATION_PARAMS: [(&str, &str); 4] = [
    ("since", "since_seconds"),
    ("baseline", "baseline_seconds"),
    ("history", "history_seconds"),
    ("horizon", "horizon_seconds"),
];

/// Parses a request message from URL query parameters (durations in words become `*_seconds`).
pub(crate) fn request_from_query<R: DeserializeOwned>(
    query: Option<&str>,
) -> Result<R, QueryError> {
    let bad = |m: String| QueryError::InvalidArgument(m);
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).map_err(|e| bad(e.to_string()))?;
    let mut fields = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        match DURATION_PARAMS.iter().find(|(word, _)| *word == key) {
            Some((word, field)) => {
                let seconds = humantime::parse_duration(&value)
                    .map_err(|e| bad(format!("invalid {word}: {e} (examples: 15m, 1h, 2d)")))?
                    .as_secs()
                    .max(1);
                fields.push(((*field).to_owned(), seconds.to_string()));
            }
            None => fields.push((key, value)),
        }
    }
    let encoded = serde_urlencoded::to_string(&fields).map_err(|e| bad(e.to_string()))?;
    serde_urlencoded::from_str(&encoded).map_err(|e| bad(format!("invalid query parameters: {e}")))
}

/// Runs one call for an HTTP request and answers with JSON.
async fn http_call<R, T, F, Fut>(api: QueryApi, uri: Uri, call: F) -> Response
where
    R: DeserializeOwned,
    T: Serialize,
    F: FnOnce(QueryApi, R) -> Fut,
    Fut: Future<Output = Result<T, QueryError>>,
{
    let result = match request_from_query::<R>(uri.query()) {
        Ok(request) => call(api, request).await,
        Err(e) => Err(e),
    };
    answer(result)
}

/// A call's result as JSON: the message, or `{"error": ...}` with the matching status.
fn answer<T: Serialize>(result: Result<T, QueryError>) -> Response {
    match result {
        Ok(response) => Json(response).into_response(),
        Err(e) => (
            e.http_status(),
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.telemetry.render(),
    )
        .into_response()
}

async fn ready(State(state): State<ApiState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words_fill_the_seconds_fields() {
        let r: RegressionsRequest =
            request_from_query(Some("since=1h&baseline=7d&service=shop&min_requests=5"))
                .expect("valid");
        assert_eq!(
            (
                r.since_seconds,
                r.baseline_seconds,
                r.service.as_str(),
                r.min_requests
            ),
            (3600, 7 * 86_400, "shop", 5)
        );
        let e = request_from_query::<RegressionsRequest>(Some("since=soon")).expect_err("bad");
        assert!(e.to_string().contains("invalid since"), "{e}");
        let e = request_from_query::<TopEndpointsRequest>(Some("limit=many")).expect_err("bad");
        assert!(e.to_string().contains("invalid query parameters"), "{e}");
    }
}

//! Serving the query API: `plumb.v1.QueryService` over gRPC and the same calls as HTTP/JSON
//! (`GET /api/v1/top?since=15m&service=…&by=p99&limit=20&kind=server`) on one port, together
//! with the operational endpoints `/metrics` (Prometheus text), `/healthz` (the process is up)
//! and `/readyz` (ClickHouse answers).

use super::QueryError;
use super::top::{TopQuery, top_endpoints};
use crate::clock::now_unix_s;
use crate::store::Store;
use crate::telemetry::Telemetry;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use plumb_proto::v1::query_service_server::{QueryService, QueryServiceServer};
use plumb_proto::v1::{TopEndpointsRequest, TopEndpointsResponse};
use serde::Deserialize;
use std::sync::Arc;

/// The gRPC implementation of `plumb.v1.QueryService`.
#[derive(Clone, Debug)]
pub struct QueryApi {
    store: Store,
}

#[tonic::async_trait]
impl QueryService for QueryApi {
    async fn top_endpoints(
        &self,
        request: tonic::Request<TopEndpointsRequest>,
    ) -> Result<tonic::Response<TopEndpointsResponse>, tonic::Status> {
        let query = TopQuery::try_from(request.into_inner())?;
        Ok(tonic::Response::new(
            top_endpoints(&self.store, &query, now_unix_s()).await?,
        ))
    }
}

#[derive(Clone)]
struct ApiState {
    store: Store,
    telemetry: Arc<Telemetry>,
}

/// The query port's routes: gRPC query service, HTTP/JSON API, metrics and health.
pub fn router(store: Store, telemetry: Arc<Telemetry>) -> Router {
    let grpc = tonic::service::Routes::new(QueryServiceServer::new(QueryApi {
        store: store.clone(),
    }))
    .into_axum_router();
    Router::new()
        .route("/api/v1/top", get(http_top))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(ApiState { store, telemetry })
        .merge(grpc)
}

/// Query parameters of `GET /api/v1/top`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TopParams {
    since: Option<String>,
    service: String,
    by: String,
    limit: u32,
    kind: String,
}

/// A JSON error body: `{"error": "..."}`.
fn json_error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn http_top(
    State(state): State<ApiState>,
    params: Result<Query<TopParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let since_seconds = match params.since.as_deref().map(humantime::parse_duration) {
        None => 0,
        Some(Ok(d)) => d.as_secs(),
        Some(Err(e)) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("invalid since: {e} (examples: 15m, 1h, 2d)"),
            );
        }
    };
    let request = TopEndpointsRequest {
        since_seconds,
        service: params.service,
        by: params.by,
        limit: params.limit,
        kind: params.kind,
    };
    let result = match TopQuery::try_from(request) {
        Ok(query) => top_endpoints(&state.store, &query, now_unix_s()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(response) => Json(response).into_response(),
        Err(QueryError::InvalidArgument(m)) => json_error(StatusCode::BAD_REQUEST, m),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
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

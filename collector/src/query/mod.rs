//! The query API: questions about stored latency, answered from ClickHouse.
//!
//! In: `plumb.v1.QueryService` calls over gRPC, or the same questions as HTTP GETs with query
//! parameters. Out: protobuf messages, or the same messages as JSON. [`top`] ranks endpoints,
//! [`endpoint`] looks at one in depth with its breakdown ([`endpoint_breakdown`], which also
//! finds chatty calls), [`waterfall`] rebuilds one trace as a tree, [`regressions`] compares a
//! window with a baseline, [`services`] sums each service up for the overview; [`api`] serves
//! them all, next to `/metrics`, `/healthz` and `/readyz`, and the web pages ask it too.

pub(crate) mod api;
pub(crate) mod endpoint;
pub(crate) mod endpoint_breakdown;
pub(crate) mod regressions;
pub(crate) mod services;
pub(crate) mod top;
pub(crate) mod waterfall;

use crate::store::StoreError;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryError {
    /// The caller asked something malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// Nothing matches.
    #[error("{0}")]
    NotFound(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The work failed in a way the caller cannot fix (a bug: it is logged).
    #[error("{0}")]
    Internal(String),
}

impl From<crate::alerting::api::AlertsError> for QueryError {
    fn from(e: crate::alerting::api::AlertsError) -> Self {
        match e {
            crate::alerting::api::AlertsError::Invalid(m) => Self::InvalidArgument(m),
            crate::alerting::api::AlertsError::NotFound(m) => Self::NotFound(m),
            crate::alerting::api::AlertsError::Store(e) => Self::Store(e),
        }
    }
}

impl QueryError {
    /// The HTTP status this failure is answered with: 400, 404, 503 or 500.
    pub(crate) fn http_status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<QueryError> for tonic::Status {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            QueryError::NotFound(m) => tonic::Status::not_found(m),
            QueryError::Store(e) => tonic::Status::unavailable(e.to_string()),
            QueryError::Internal(m) => tonic::Status::internal(m),
        }
    }
}

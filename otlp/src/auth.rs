//! Bearer-token authentication for Plumb's listeners (OTLP ingest and the query API).
//!
//! Tokens come from the configuration as `name=token` pairs (a name is a tenant or a service and
//! may have several tokens, so one can be rotated while the other still works). A request must
//! carry `authorization: Bearer <token>` (gRPC metadata or HTTP header) with one of them; with no
//! tokens configured, every request is let in. Tokens are compared in constant time and never
//! appear in logs, error messages or `Debug` output: only their names do.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What an unauthenticated client is told (the same for a missing and a wrong token).
pub const UNAUTHENTICATED: &str =
    "missing or invalid bearer token: send `authorization: Bearer <token>` with a configured token";

/// The accepted tokens, by name.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, String)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Tokens")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Parses `name=token,name=token,...`; an empty text means no authentication. The error
    /// names the faulty entry by position, never by its text (which may hold a token).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (i, item) in text.split(',').map(str::trim).enumerate() {
            if item.is_empty() {
                continue;
            }
            match item.split_once('=') {
                Some((name, token)) if !name.trim().is_empty() && token.trim().len() >= 8 => {
                    entries.push((name.trim().to_owned(), token.trim().to_owned()));
                }
                _ => {
                    return Err(format!(
                        "entry {} is not name=token with a token of at least 8 characters",
                        i + 1
                    ));
                }
            }
        }
        Ok(Self { entries })
    }

    /// Whether authentication is on.
    pub fn is_enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// The name whose token the `authorization` header carries; `Some("")` when authentication
    /// is off, `None` when the header is missing or wrong.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> Option<&str> {
        if !self.is_enabled() {
            return Some("");
        }
        let presented = authorization.and_then(|v| v.to_str().ok()).and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })?;
        // Every entry is compared, so the time taken does not tell which one matched.
        let mut found = None;
        for (name, token) in &self.entries {
            if bool::from(token.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// The answer to an unauthenticated request: for gRPC (by content type) an UNAUTHENTICATED
/// status, otherwise 401 with `WWW-Authenticate: Bearer` and a JSON error.
pub fn unauthenticated(is_grpc: bool) -> Response {
    if is_grpc {
        return tonic::Status::unauthenticated(UNAUTHENTICATED).into_http::<axum::body::Body>();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({ "error": UNAUTHENTICATED })),
    )
        .into_response()
}

/// Whether a request is gRPC.
pub fn is_grpc<B>(request: &axum::http::Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Axum middleware: lets a request through only with a valid token.
pub async fn require_token(
    State(tokens): State<Arc<Tokens>>,
    request: Request,
    next: Next,
) -> Response {
    match tokens.check(request.headers().get(header::AUTHORIZATION)) {
        Some(_) => next.run(request).await,
        None => unauthenticated(is_grpc(&request)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_several_tokens_and_constant_time_checks() {
        let tokens =
            Tokens::parse("shop=tok-shop-1, shop=tok-shop-2,ops=tok-operations").expect("valid");
        let header = |v: &str| HeaderValue::from_str(v).expect("header");
        assert_eq!(
            tokens.check(Some(&header("Bearer tok-shop-2"))),
            Some("shop")
        );
        assert_eq!(
            tokens.check(Some(&header("bearer  tok-operations "))),
            Some("ops")
        );
        assert_eq!(tokens.check(Some(&header("Bearer tok-shop-"))), None);
        assert_eq!(tokens.check(Some(&header("Basic tok-shop-1"))), None);
        assert_eq!(tokens.check(None), None);
        assert_eq!(Tokens::default().check(None), Some(""));
        let shown = format!("{tokens:?}");
        assert!(shown.contains("shop") && !shown.contains("tok-"), "{shown}");
    }

    #[test]
    fn bad_entries_are_named_by_position_not_text() {
        let e = Tokens::parse("shop=short").expect_err("too short");
        assert!(e.contains("entry 1") && !e.contains("short"), "{e}");
        let e = Tokens::parse("ok=long-enough-token,=nameless-token").expect_err("no name");
        assert!(e.contains("entry 2") && !e.contains("nameless"), "{e}");
    }
}

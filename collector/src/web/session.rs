//! Signing in to the pages when the query port needs tokens (`--query-tokens`): a browser sends
//! no `authorization` header, so the pages ask for a token once (`/login`), check it like the
//! API does, and keep it in a cookie the page's scripts cannot read (`HttpOnly`), that no other
//! site's request carries (`SameSite=Strict`), and that only travels over TLS when the port
//! serves TLS (`Secure`). `POST /logout` clears it. The token is never written to a page or a
//! log; a wrong one gets 401 and the form again.

use super::{Chrome, Params};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use plumb_otlp::auth::Tokens;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The cookie that holds the token.
const COOKIE: &str = "plumb_token";

/// How the pages check who is asking.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The query port's tokens (disabled: no sign-in).
    pub(crate) tokens: Arc<Tokens>,
    /// Whether the port serves TLS (the cookie is then `Secure`).
    pub(crate) secure: bool,
    /// Whether `/status` is open to anyone.
    pub(crate) public_status_page: bool,
}

#[derive(Template)]
#[template(path = "web/login.html")]
struct Login {
    chrome: Chrome,
    next: String,
    refused: bool,
}

/// The token in the request's cookie, if any.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    super::cookie(headers, COOKIE)
}

fn valid(tokens: &Tokens, headers: &HeaderMap) -> bool {
    let from_cookie =
        cookie_token(headers).and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok());
    let presented = headers.get(header::AUTHORIZATION).cloned().or(from_cookie);
    tokens.check(presented.as_ref()).is_some()
}

/// A path to go back to after signing in: only this site's own paths.
fn local(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

/// Middleware: with tokens on, a page needs a valid token (cookie or header); without one a
/// browser is sent to `/login`. The sign-in page and the static files need none.
pub(crate) async fn require(
    State(session): State<Session>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !session.tokens.is_enabled()
        || (session.public_status_page && path == "/status")
        || path == "/login"
        || path == "/logout"
        || path.starts_with("/static/")
        || valid(&session.tokens, request.headers())
    {
        return next.run(request).await;
    }
    let back = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    Redirect::to(&super::link("/login", &[("next", back.as_str())])).into_response()
}

fn login_page(next: &str, refused: bool) -> Response {
    let params = Params {
        path: "/login",
        values: BTreeMap::new(),
        signed_in: false,
    };
    let page = Login {
        chrome: params.chrome("Sign in".into(), None),
        next: local(next).to_owned(),
        refused,
    };
    let status = if refused {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page failed to render\n",
        )
            .into_response(),
    }
}

/// `GET /login?next=`: the form.
pub(crate) async fn form(uri: axum::http::Uri) -> Response {
    let next: BTreeMap<String, String> =
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    login_page(next.get("next").map_or("/", String::as_str), false)
}

/// `POST /login` (`token`, `next`): a valid token is kept in the cookie and the browser goes
/// back to `next`; a wrong one gets 401 and the form.
pub(crate) async fn sign_in(State(session): State<Session>, body: Bytes) -> Response {
    let fields: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let token = fields.get("token").map_or("", String::as_str);
    let next = local(fields.get("next").map_or("/", String::as_str)).to_owned();
    let presented = HeaderValue::from_str(&format!("Bearer {token}")).ok();
    if token.is_empty()
        || !session.tokens.is_enabled()
        || session.tokens.check(presented.as_ref()).is_none()
        || !token
            .chars()
            .all(|c| c.is_ascii_graphic() && c != ';' && c != ',')
    {
        return login_page(&next, true);
    }
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if session.secure { "; Secure" } else { "" }
    );
    match HeaderValue::from_str(&cookie) {
        Ok(value) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, value),
                (
                    header::LOCATION,
                    HeaderValue::from_str(&next).unwrap_or(HeaderValue::from_static("/")),
                ),
            ],
        )
            .into_response(),
        Err(_) => login_page(&next, true),
    }
}

/// `POST /logout`: the cookie is cleared and the browser goes to the sign-in page.
pub(crate) async fn sign_out(State(session): State<Session>) -> Response {
    let cookie = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if session.secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

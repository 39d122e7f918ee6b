//! The pages' stylesheet and script, embedded in the binary and served under a path that holds
//! a hash of their content, so a browser may keep them for a year and still gets a new file the
//! moment the content changes.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::hash::{Hash as _, Hasher as _};
use std::sync::LazyLock;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    /// `/static/<hash>/<name>`.
    path: String,
}

fn asset(name: &'static str, content_type: &'static str, body: &'static str) -> Asset {
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    Asset {
        name,
        content_type,
        body,
        path: format!("/static/{:016x}/{name}", hasher.finish()),
    }
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        asset(
            "plumb.css",
            "text/css; charset=utf-8",
            include_str!("assets/plumb.css"),
        ),
        asset(
            "plumb.js",
            "text/javascript; charset=utf-8",
            include_str!("assets/plumb.js"),
        ),
    ]
});

/// Where the stylesheet is served.
pub(crate) fn css_path() -> &'static str {
    &ASSETS[0].path
}

/// Where the script is served.
pub(crate) fn js_path() -> &'static str {
    &ASSETS[1].path
}

/// `GET /static/{hash}/{name}`: the file, cached for a year; 404 for any other hash or name.
pub(crate) async fn serve(Path((hash, name)): Path<(String, String)>) -> Response {
    let wanted = format!("/static/{hash}/{name}");
    match ASSETS.iter().find(|a| a.path == wanted && a.name == name) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

//! Path templating: turns raw request paths into route templates so that one endpoint stays
//! one row (`/users/123/orders/9f1c…` → `/users/{id}/orders/{id}`).
//!
//! In: a path as found in `url.path` or `http.target` (a query string or fragment is dropped).
//! Out: the path with every segment that looks like an identifier replaced by `{id}`. A segment
//! is an identifier when it is all digits, a UUID, a hex string of 16 or more characters, or a
//! token of 20 or more letters, digits, `-` and `_` that holds at least one digit. Templating
//! is idempotent: a templated path comes back unchanged.

/// What an identifier segment becomes.
pub(crate) const ID_PLACEHOLDER: &str = "{id}";

/// Returns the route template for a raw path.
pub(crate) fn template_path(raw: &str) -> String {
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_identifier(segment) {
            out.push_str(ID_PLACEHOLDER);
        } else {
            out.push_str(segment);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn is_identifier(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    if bytes.iter().all(u8::is_ascii_digit) || is_uuid(bytes) {
        return true;
    }
    if bytes.len() >= 16 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    bytes.len() >= 20
        && bytes.iter().any(u8::is_ascii_digit)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replaces_ids_uuids_and_hashes() {
        assert_eq!(template_path("/users/123"), "/users/{id}");
        assert_eq!(
            template_path("/orders/0b9e6f4e-3c1a-4d2b-9f1e-2a3b4c5d6e7f/items/7"),
            "/orders/{id}/items/{id}"
        );
        assert_eq!(
            template_path("/blobs/9f86d081884c7d659a2feaa0c55ad015"),
            "/blobs/{id}"
        );
        assert_eq!(template_path("/s/AbCdEfGhIjKlMnOp1234xyz"), "/s/{id}");
    }

    #[test]
    fn keeps_words_versions_and_query_free_paths() {
        assert_eq!(template_path("/api/v1/health"), "/api/v1/health");
        assert_eq!(template_path("/users/123?page=2#top"), "/users/{id}");
        assert_eq!(template_path("/deadbeef"), "/deadbeef");
        assert_eq!(template_path(""), "/");
        assert_eq!(template_path("/"), "/");
    }

    proptest! {
        #[test]
        fn templating_is_idempotent(path in "(/[a-zA-Z0-9_{}.-]{0,40}){0,6}") {
            let once = template_path(&path);
            prop_assert_eq!(template_path(&once), once.clone());
        }

        #[test]
        fn numeric_segments_always_become_id(prefix in "/[a-z]{1,10}", id in 0u64..u64::MAX) {
            prop_assert_eq!(template_path(&format!("{prefix}/{id}")), format!("{prefix}/{{id}}"));
        }

        #[test]
        fn never_panics_on_any_text(path in ".{0,200}") {
            let _ = template_path(&path);
        }
    }
}

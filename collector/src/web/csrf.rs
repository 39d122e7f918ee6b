//! Forms that change state (silences) carry a token the browser also holds in a cookie: the
//! cookie (`HttpOnly`, `SameSite=Strict`) is set with the page that shows the form, the form
//! repeats it in a hidden field, and a POST is accepted only when the two match. Another site
//! can neither read the cookie nor make the browser send it, so it cannot forge the pair. The
//! tokens are 128 random bits from the operating system.

use axum::http::{HeaderMap, HeaderValue};

/// The cookie that holds the token.
const COOKIE: &str = "plumb_csrf";

/// The form token for a page: the browser's, or a new one and the cookie that sets it.
pub(crate) fn token(headers: &HeaderMap, secure: bool) -> (String, Option<HeaderValue>) {
    if let Some(existing) = cookie(headers) {
        return (existing.to_owned(), None);
    }
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: no token, so no form can be accepted (the check below fails).
        return (String::new(), None);
    }
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let set = HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    ))
    .ok();
    (token, set)
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    super::cookie(headers, COOKIE).filter(|value| value.len() == 32)
}

/// Whether a form's `field` matches the browser's cookie (compared in constant time).
pub(crate) fn matches(headers: &HeaderMap, field: &str) -> bool {
    let Some(expected) = cookie(headers) else {
        return false;
    };
    expected.len() == field.len()
        && expected
            .bytes()
            .zip(field.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn a_form_token_must_match_the_cookie() {
        let (fresh, set) = token(&HeaderMap::new(), false);
        assert_eq!(fresh.len(), 32);
        let set = set.expect("a new cookie");
        let mut headers = HeaderMap::new();
        let pair = set
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("pair")
            .to_owned();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&pair).expect("header"),
        );
        assert_eq!(token(&headers, false), (fresh.clone(), None));
        assert!(matches(&headers, &fresh));
        assert!(!matches(&headers, &"0".repeat(32)));
        assert!(!matches(&HeaderMap::new(), &fresh));
    }
}

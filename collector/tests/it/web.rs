//! The web pages in a real browser (Debian's headless Chromium): traces with known shape and
//! traces whose service, route, statement and status carry markup and script go in through the
//! SDK, probes run against a real target; every page answers with the strict headers, stays
//! under 200 KB, shows the numbers the query API gives for the same window, leads where its
//! links say, shows the hostile text as text (no element made from it, no script run), and is
//! written as a screenshot under the test's output folder.

use crate::alerting::{FAILING, Hooks, Target, route_to, start_with_alerting};
use crate::bottlenecks::{db, server};
use plumb_test_support::browser::{dom_url, screenshot_url};
use plumb_test_support::*;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

const MS: u64 = 1_000;
/// Hostile text as a span would carry it.
const SCRIPT: &str = "<script>document.title='pwned'</script>";
const IMAGE: &str = "<img src=x onerror=\"document.title='pwned'\">";

/// Where the screenshots go (kept after the test, for people to look at).
fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-pages");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = http.get(url).send().await.expect("get");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_shows_the_api_numbers_escapes_span_text_and_sends_strict_headers() {
    let (target, hooks) = (Target::start().await, Hooks::start().await);
    let (collector, _dir) = start_with_alerting(
        &unique_database("web"),
        &format!(
            r#"evaluation_interval = "1s"
[[probe]]
name = "shop-health"
kind = "http"
url = "{url}"
interval = "1s"
failure_threshold = 2

[[maintenance]]
cron = "0 3 * * SUN"
duration = "1h"
matchers = ["alertname=backup"]
{route}"#,
            url = target.url,
            route = route_to(&hooks.url)
        ),
    )
    .await;

    // GET /orders/{id} over the last twenty minutes, one request every 20 s: 30 to 50 ms, three
    // quarters of it in one query; hostile names in a second service.
    let t0 = SystemTime::now() - Duration::from_secs(20 * 60);
    let mut traces = Vec::new();
    for i in 0..60u64 {
        let start = t0 + Duration::from_secs(i * 20);
        let took = (30 + (i % 5) * 5) * MS;
        traces.push(server("shop", "GET", "/orders/{id}", start, took).child(db(
            "shop",
            "postgresql",
            "SELECT * FROM orders WHERE id = ?",
            start,
            MS,
            took * 3 / 4,
        )));
        let mut hostile = server(
            &format!("evil{SCRIPT}"),
            "GET",
            &format!("/x{IMAGE}"),
            start,
            20 * MS,
        )
        .child(db(
            &format!("evil{SCRIPT}"),
            "postgresql",
            &format!("SELECT '{SCRIPT}'"),
            start,
            MS,
            5 * MS,
        ));
        hostile.spec.error = true;
        traces.push(hostile);
    }
    let ids = send_traces(&collector, traces).await;
    let http = reqwest::Client::new();
    let base = collector.query_url();
    let api_top = format!("{base}/api/v1/top?since=1h&service=shop");
    let deadline = Instant::now() + Duration::from_secs(60);
    let shop = loop {
        let (_, _, body) = get(&http, &api_top).await;
        let top: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if top["endpoints"][0]["requests"] == 60 {
            break top["endpoints"][0].clone();
        }
        assert!(Instant::now() < deadline, "shop never showed: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The target goes down: the alerts page has an incident to show. The breakdown, the probe
    // and the alert need their own few seconds.
    target.set(FAILING);
    hooks.wait_for(1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(8)).await;

    let orders = "/endpoint?service=shop&operation=GET+%2Forders%2F%7Bid%7D&since=1h";
    let trace = format!("/trace/{}", ids[0]);
    let pages = [
        ("services", "/?since=1h".to_owned()),
        ("endpoints", "/endpoints?since=1h".to_owned()),
        ("endpoint", orders.to_owned()),
        ("trace", trace.clone()),
        ("regressions", "/regressions?since=1h".to_owned()),
        ("uptime", "/uptime?since=1h".to_owned()),
        ("alerts", "/alerts".to_owned()),
        ("slos", "/slos".to_owned()),
        ("capacity", "/capacity".to_owned()),
    ];
    for (name, path) in &pages {
        let url = format!("{base}{path}");
        let (status, headers, body) = get(&http, &url).await;
        assert_eq!(status, 200, "{name}: {body}");
        let csp = headers["content-security-policy"]
            .to_str()
            .unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'")
                && csp.contains("frame-ancestors 'none'")
                && !csp.contains("unsafe-inline"),
            "{name}: {csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{name}");
        assert!(body.len() < 200_000, "{name}: {} bytes", body.len());
        let laid_out = dom_url(&url);
        assert!(laid_out.contains("</main>"), "{name} drew: {laid_out}");
        assert!(!laid_out.contains("pwned</title>"), "{name}: a script ran");
        assert!(
            !laid_out.contains("<script>document") && !laid_out.contains("<img src=\"x\""),
            "{name}: span text became markup"
        );
        let png = shots().join(format!("{name}.png"));
        assert!(screenshot_url(&url, &png) > 10_000, "{name}: a screenshot");
    }

    // The hostile service is shown, as text, on the pages that list services and endpoints.
    for path in ["/?since=1h", "/endpoints?since=1h"] {
        let laid_out = dom_url(&format!("{base}{path}"));
        assert!(
            laid_out.contains("evil&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
            "{path}: {laid_out}"
        );
    }

    // The numbers are the API's, for the same window.
    let (_, _, endpoints) = get(&http, &format!("{base}/endpoints?since=1h&service=shop")).await;
    let p99 = shop["p99_ms"].as_f64().expect("p99");
    assert!((10.0..100.0).contains(&p99), "{shop}");
    assert!(endpoints.contains(&format!("{p99:.1} ms")), "{endpoints}");
    let (_, _, services) = get(&http, &format!("{base}/api/v1/services?since=1h")).await;
    let services: serde_json::Value = serde_json::from_str(&services).expect("services JSON");
    let listed = services["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["service"] == "shop")
        .cloned()
        .expect("shop in the services API");
    assert_eq!(listed["requests"], 60);
    // Requests per second are over the minutes that hold data, not the whole hour: the 60
    // requests came over about twenty minutes (the hour would give 0.017).
    for rate in [&listed["rps"], &shop["rps"]] {
        let rate = rate.as_f64().unwrap_or_default();
        assert!(
            (0.035..=0.06).contains(&rate),
            "{rate} rps: {listed} {shop}"
        );
    }
    let (_, _, overview) = get(&http, &format!("{base}/?since=1h")).await;
    let overview_p99 = listed["p99_ms"].as_f64().expect("p99");
    assert!(
        overview.contains(&format!("{overview_p99:.1} ms")),
        "{overview}"
    );

    // Links lead where they say: the endpoints page links the endpoint, the endpoint its traces,
    // and the trace page shows the trace's spans.
    assert!(endpoints.contains("href=\"/endpoint?"), "{endpoints}");
    let (_, _, detail) = get(&http, &format!("{base}{orders}")).await;
    assert!(detail.contains("href=\"/trace/"), "{detail}");
    // The heatmap: GET /orders/{id} takes 30 to 50 ms, in the bands up to 32 and 64 ms.
    assert!(detail.contains("≤64.0 ms"), "{detail}");
    assert!(
        detail.contains("SELECT * FROM orders WHERE id = ?"),
        "{detail}"
    );
    let (_, _, waterfall) = get(&http, &format!("{base}{trace}")).await;
    assert!(waterfall.contains("2 spans in 1 service,"), "{waterfall}");
    assert!(
        waterfall.contains("<dt>http.route</dt>"),
        "attributes on demand: {waterfall}"
    );
    // The hostile trace's attributes and statement show as text in the browser.
    let hostile = dom_url(&format!("{base}/trace/{}", ids[1]));
    assert!(
        hostile.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;")
            && !hostile.contains("pwned</title>"),
        "{hostile}"
    );
    // Values on hover are SVG titles; the custom range keeps the other parameters.
    assert!(detail.contains("<title>p99 at "), "{detail}");
    assert!(
        endpoints.contains("aria-label=\"custom range\"")
            && endpoints.contains("<input type=\"hidden\" name=\"service\" value=\"shop\">"),
        "{endpoints}"
    );
    let (_, _, uptime) = get(&http, &format!("{base}/uptime?since=1h")).await;
    assert!(
        uptime.contains("shop-health") && uptime.contains(">down<"),
        "{uptime}"
    );
    // Today's cell of the 90-day bar is red (most of today's checks failed), and the
    // incident is listed.
    assert!(
        uptime.contains("Last 90 days") && uptime.contains("#BE1E1E"),
        "{uptime}"
    );
    assert!(uptime.contains("went down"), "{uptime}");
    assert!(
        uptime.contains("<code>0 3 * * SUN</code>") && uptime.contains("alertname=backup"),
        "the maintenance window: {uptime}"
    );
    // The capacity page: the report's rows once the traffic fills a whole hour; before, the
    // page says there is none yet (which one depends on the clock).
    let (status, _, capacity) = get(&http, &format!("{base}/capacity")).await;
    assert_eq!(status, 200);
    assert!(
        capacity.contains("No report yet") || capacity.contains("<td class=\"name\">shop</td>"),
        "{capacity}"
    );
    // Without --public-status-page there is no status page.
    let (status, _, body) = get(&http, &format!("{base}/status")).await;
    assert_eq!(status, 404);
    assert!(body.contains("--public-status-page"), "{body}");
    let (_, _, alerts) = get(&http, &format!("{base}/alerts")).await;
    assert!(
        alerts.contains("shop-health") && alerts.contains(">firing<"),
        "{alerts}"
    );

    // Assets are served by content hash and cached; anything else is 404.
    let css = endpoints
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|p| p.ends_with("plumb.css")))
        .expect("stylesheet link")
        .to_owned();
    let response = http.get(format!("{base}{css}")).send().await.expect("css");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap_or_default()
            .contains("immutable")
    );
    let (status, _, _) = get(&http, &format!("{base}/static/0000/plumb.css")).await;
    assert_eq!(status, 404);

    // Bad requests get the API's status and message, on a page.
    let (status, _, body) = get(&http, &format!("{base}/endpoints?since=soon")).await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid since"), "{body}");
    let (status, _, body) = get(
        &http,
        &format!("{base}/endpoint?service=shop&operation=nope&since=1h"),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // Silences from the alerts page: the form carries the CSRF token the cookie holds.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = plain
        .get(format!("{base}/alerts"))
        .send()
        .await
        .expect("get");
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.starts_with("plumb_csrf=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let html = page.text().await.expect("body");
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a token in the form")
        .to_owned();
    assert_eq!(pair, format!("plumb_csrf={token}"));
    let post = |path: &str, cookie: Option<&str>, body: String| {
        let mut request = plain.post(format!("{base}{path}")).body(body);
        if let Some(c) = cookie {
            request = request.header("cookie", c.to_owned());
        }
        request.send()
    };
    let form = |csrf: &str, duration: &str| {
        format!(
            "csrf={csrf}&matchers=alertname%3Dshop-health&duration={duration}&comment=deploy&created_by=ops"
        )
    };
    let forged = post("/alerts/silences", None, form(&token, "1h"))
        .await
        .expect("post");
    assert_eq!(forged.status(), 403, "no cookie: a forged form");
    let wrong = post("/alerts/silences", Some(&pair), form(&"0".repeat(32), "1h"))
        .await
        .expect("post");
    assert_eq!(wrong.status(), 403, "a token that is not the cookie's");
    let bad = post("/alerts/silences", Some(&pair), form(&token, "soon"))
        .await
        .expect("post");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("body").contains("invalid duration"));
    let made = post("/alerts/silences", Some(&pair), form(&token, "1h"))
        .await
        .expect("post");
    assert_eq!(made.status(), 303);
    let silences = || async {
        let (_, _, listed) = get(&http, &format!("{base}/api/v1/silences")).await;
        serde_json::from_str::<serde_json::Value>(&listed).expect("silences")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut listed = silences().await;
    while listed["silences"][0].is_null() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        listed = silences().await;
    }
    let silence = &listed["silences"][0];
    assert_eq!(silence["matchers"][0], "alertname=shop-health", "{listed}");
    assert_eq!(silence["state"], "active", "{listed}");
    let id = silence["id"].as_str().expect("id").to_owned();
    let (_, _, shown) = get(&http, &format!("{base}/alerts")).await;
    assert!(
        shown.contains(&format!("/alerts/silences/{id}/expire")),
        "{shown}"
    );
    let expired = post(
        &format!("/alerts/silences/{id}/expire"),
        Some(&pair),
        format!("csrf={token}"),
    )
    .await
    .expect("post");
    assert_eq!(expired.status(), 303);
    // Expired silences leave the list of those in force.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut listed = silences().await;
    while !listed["silences"][0].is_null() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        listed = silences().await;
    }
    assert_eq!(listed["silences"], serde_json::json!([]), "{listed}");
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_query_tokens_the_pages_ask_once_and_keep_the_token_in_a_strict_cookie() {
    const TOKEN: &str = "web-pages-token-0123456789";
    let collector = Collector::start(
        &unique_database("web_tokens"),
        &[
            "--query-tokens",
            &format!("ops={TOKEN}"),
            "--public-status-page",
        ],
    )
    .await;
    let base = collector.query_url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // No token: the browser is sent to sign in, and comes back where it was.
    let answer = http
        .get(format!("{base}/endpoints?since=1h"))
        .send()
        .await
        .expect("get");
    assert_eq!(answer.status(), 303);
    assert_eq!(
        answer.headers()["location"],
        "/login?next=%2Fendpoints%3Fsince%3D1h"
    );
    let (status, _, form) = get(&http, &format!("{base}/login?next=%2Fendpoints")).await;
    assert_eq!(status, 200);
    assert!(
        form.contains("name=\"token\"") && form.contains("value=\"/endpoints\""),
        "{form}"
    );

    // A wrong token: 401 and the form again, the token not shown.
    let wrong = http
        .post(format!("{base}/login"))
        .body("token=not-the-token-at-all&next=%2F")
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), 401);
    let text = wrong.text().await.expect("body");
    assert!(
        text.contains("not valid") && !text.contains("not-the-token-at-all"),
        "{text}"
    );

    // The right one: a cookie only this site's requests carry, scripts cannot read, and back.
    let signed = http
        .post(format!("{base}/login"))
        .body(format!("token={TOKEN}&next=%2Fendpoints"))
        .send()
        .await
        .expect("post");
    assert_eq!(signed.status(), 303);
    assert_eq!(signed.headers()["location"], "/endpoints");
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value").to_owned();
    let page = http
        .get(format!("{base}/endpoints?since=1h"))
        .header("cookie", &pair)
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("body").contains("Sign out"));

    // Elsewhere after signing in is refused; the JSON API still wants its bearer header.
    let elsewhere = http
        .post(format!("{base}/login"))
        .body(format!("token={TOKEN}&next=%2F%2Fevil.example"))
        .send()
        .await
        .expect("post");
    assert_eq!(elsewhere.headers()["location"], "/");
    let api = http
        .get(format!("{base}/api/v1/top"))
        .header("cookie", &pair)
        .send()
        .await
        .expect("get");
    assert_eq!(api.status(), 401);

    // The public status page needs no token and shows nothing but probes.
    let (status, _, page) = get(&http, &format!("{base}/status")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<h1>Status</h1>")
            && !page.contains("/endpoints")
            && !page.contains("/alerts"),
        "{page}"
    );

    // Signing out clears the cookie.
    let out = http
        .post(format!("{base}/logout"))
        .header("cookie", &pair)
        .send()
        .await
        .expect("post");
    assert_eq!(out.status(), 303);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap_or_default()
            .contains("Max-Age=0")
    );
    assert!(
        !collector.log().contains(TOKEN),
        "the token reached the log"
    );
    assert!(collector.stop().await);
}

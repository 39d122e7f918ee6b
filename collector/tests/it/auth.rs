//! Bearer tokens: every listener refuses a missing or wrong token (UNAUTHENTICATED / 401), lets a
//! right one in, and no token ever shows in the log, an error or `--help`.

use plumb_loadgen::{Workload, WorkloadShape};
use plumb_otlp::client::{RawGrpcClient, TRACE_EXPORT_PATH};
use plumb_test_support::*;
use prost::Message;
use std::time::{Duration, SystemTime};

const INGEST: &str = "ingest-token-shop-1";
const INGEST_ROTATED: &str = "ingest-token-shop-2";
const QUERY: &str = "query-token-ops-9";

async fn grpc_export(collector: &Collector, token: Option<&str>) -> Result<(), tonic::Status> {
    let mut client = RawGrpcClient::connect(collector.grpc_url(), TRACE_EXPORT_PATH, None)
        .await
        .expect("connect");
    if let Some(token) = token {
        client = client.with_token(token).expect("ASCII");
    }
    let request = Workload::new(WorkloadShape {
        services: 1,
        endpoints_per_service: 2,
        spans_per_request: 10,
        seed: 3,
    })
    .request()
    .encode_to_vec();
    client.send(request.into()).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_needs_a_valid_token_and_tokens_never_show() {
    let database = unique_database("auth");
    let ingest_tokens = format!("shop={INGEST},shop={INGEST_ROTATED}");
    let query_tokens = format!("ops={QUERY}");
    let collector = Collector::start(
        &database,
        &[
            "--ingest-tokens",
            &ingest_tokens,
            "--query-tokens",
            &query_tokens,
        ],
    )
    .await;

    // OTLP/gRPC: none and wrong are refused, both of shop's tokens work.
    for token in [None, Some("wrong-token-123"), Some(QUERY)] {
        let status = grpc_export(&collector, token).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{token:?}");
        assert!(status.message().contains("bearer token"));
    }
    grpc_export(&collector, Some(INGEST))
        .await
        .expect("accepted");
    grpc_export(&collector, Some(INGEST_ROTATED))
        .await
        .expect("accepted");
    // The official SDK exporter with the token as metadata.
    let start = SystemTime::now() - Duration::from_secs(5);
    send_spans(
        &collector,
        Transport::GrpcWithToken(INGEST),
        "sdk",
        server_spans("/a", [1_000, 2_000, 3_000], start),
    )
    .await;

    // OTLP/HTTP.
    let http = reqwest::Client::new();
    let body = Workload::new(WorkloadShape {
        services: 1,
        endpoints_per_service: 1,
        spans_per_request: 5,
        seed: 4,
    })
    .request()
    .encode_to_vec();
    let post = |token: Option<&'static str>| {
        let mut request = http
            .post(format!("{}/v1/traces", collector.http_url()))
            .header("content-type", "application/x-protobuf")
            .body(body.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let refused = post(None).await.expect("post");
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused
            .headers()
            .get("www-authenticate")
            .map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    assert_eq!(
        post(Some("wrong-token-123")).await.expect("post").status(),
        401
    );
    assert_eq!(post(Some(INGEST)).await.expect("post").status(), 200);

    // Everything accepted arrives: 10 + 10 + 3 (SDK) + 5 spans.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = query_number(&database, "SELECT count() FROM spans").await;
        if n == 28 {
            break;
        }
        assert!(n < 28 && std::time::Instant::now() < deadline, "{n} spans");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Query API over gRPC (the CLI): the query token only.
    let plumb = |token: Option<&'static str>| {
        let mut command = tokio::process::Command::new(binary("plumb"));
        command.args(["--endpoint", &collector.query_url(), "top"]);
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        command.env_remove("PLUMB_TOKEN").output()
    };
    for token in [None, Some(INGEST)] {
        let output = plumb(token).await.expect("plumb runs");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("missing or invalid bearer token"),
            "{stderr}"
        );
        assert!(!stderr.contains(INGEST), "{stderr}");
    }
    let output = plumb(Some(QUERY)).await.expect("plumb runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Query API over HTTP; the health checks stay open for probes.
    let get = |path: &str, token: Option<&'static str>| {
        let mut request = http.get(format!("{}{path}", collector.query_url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for path in ["/api/v1/top", "/metrics"] {
        let refused = get(path, None).await.expect("get");
        assert_eq!(refused.status(), 401, "{path}");
        assert_eq!(
            get(path, Some(INGEST)).await.expect("get").status(),
            401,
            "{path}"
        );
        assert_eq!(
            get(path, Some(QUERY)).await.expect("get").status(),
            200,
            "{path}"
        );
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(path, None).await.expect("get").status(), 200, "{path}");
    }
    let metrics = get("/metrics", Some(QUERY))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    // 3 gRPC + 2 HTTP refusals on the OTLP listeners.
    assert!(
        metrics.contains("plumb_requests_refused_total 5"),
        "{metrics}"
    );

    assert!(collector.stop().await);
}

#[tokio::test]
async fn tokens_stay_out_of_help_errors_and_logs() {
    // --help with tokens in the environment shows neither.
    let output = std::process::Command::new(binary("plumb-collector"))
        .arg("--help")
        .env("PLUMB_INGEST_TOKENS", format!("shop={INGEST}"))
        .env("PLUMB_QUERY_TOKENS", format!("ops={QUERY}"))
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--ingest-tokens"), "{help}");
    assert!(!help.contains(INGEST) && !help.contains(QUERY), "{help}");

    // A bad entry is named by position, not by its text.
    let output = std::process::Command::new(binary("plumb-collector"))
        .args(["--ingest-tokens", "shop=tiny"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("ingest_tokens") && stderr.contains("entry 1"),
        "{stderr}"
    );
    assert!(!stderr.contains("tiny"), "{stderr}");

    // A running collector's log after refusals and accepted requests holds no token.
    let database = unique_database("authlog");
    let collector = Collector::start(
        &database,
        &[
            "--ingest-tokens",
            &format!("shop={INGEST}"),
            "--query-tokens",
            &format!("ops={QUERY}"),
        ],
    )
    .await;
    let _ = grpc_export(&collector, Some("wrong-token-123")).await;
    grpc_export(&collector, Some(INGEST))
        .await
        .expect("accepted");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = collector.log();
    assert!(log.contains("plumb-collector ready"), "{log}");
    for secret in [INGEST, QUERY, "wrong-token-123"] {
        assert!(!log.contains(secret), "{log}");
    }
    assert!(collector.stop().await);
}

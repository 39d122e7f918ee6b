//! TLS and mutual TLS on every listener, with certificates made at test time: a client that
//! trusts the test CA gets in (gRPC ingest, HTTP ingest, the query API through the CLI); plain
//! connections and, under mutual TLS, clients without a certificate do not.

use plumb_loadgen::{Workload, WorkloadShape};
use plumb_net::ClientTlsFiles;
use plumb_otlp::client::{RawGrpcClient, TRACE_EXPORT_PATH};
use plumb_test_support::*;
use prost::Message;
use std::path::Path;
use std::time::Duration;

fn spans_request(seed: u64) -> Vec<u8> {
    Workload::new(WorkloadShape {
        services: 1,
        endpoints_per_service: 2,
        spans_per_request: 10,
        seed,
    })
    .request()
    .encode_to_vec()
}

async fn grpc_export(
    collector: &Collector,
    tls: Option<&ClientTlsFiles>,
    seed: u64,
) -> Result<(), String> {
    let (scheme, config) = match tls {
        Some(files) => ("https", Some(files.tonic().map_err(|e| e.to_string())?)),
        None => ("http", None),
    };
    let url = format!("{scheme}://{}", collector.grpc);
    let mut client = RawGrpcClient::connect_with(url, TRACE_EXPORT_PATH, None, config)
        .await
        .map_err(|e| e.to_string())?;
    client
        .send(spans_request(seed).into())
        .await
        .map(|_| ())
        .map_err(|s| format!("{s:?}"))
}

/// `curl` over TLS; returns the HTTP status, or 0 when the connection failed.
fn curl(ca: &Path, identity: Option<(&Path, &Path)>, args: &[&str]) -> u16 {
    let mut command = std::process::Command::new("curl");
    command
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(ca);
    if let Some((cert, key)) = identity {
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let output = command.args(args).output().expect("curl runs");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

async fn wait_for_count(database: &str, expected: u64) {
    for _ in 0..120 {
        if query_number(database, "SELECT count() FROM spans").await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("spans never reached {expected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_every_listener() {
    let pki = TestPki::new();
    let database = unique_database("tls");
    let collector = Collector::start_tls(&database, &pki, false).await;
    let trusted = pki.client(false);
    grpc_export(&collector, Some(&trusted), 1)
        .await
        .expect("gRPC over TLS");
    assert!(
        grpc_export(&collector, None, 2).await.is_err(),
        "plain gRPC refused"
    );

    let body = pki.path("body.bin");
    std::fs::write(&body, spans_request(3)).expect("write body");
    let traces = format!("https://{}/v1/traces", collector.http);
    let data = format!("@{}", body.display());
    let post = [
        "-H",
        "content-type: application/x-protobuf",
        "--data-binary",
        &data,
        &traces,
    ];
    assert_eq!(curl(&pki.path("ca.pem"), None, &post), 200, "HTTP over TLS");
    // Trusting only another certificate of the same CA (not the server's chain) fails.
    assert_eq!(
        curl(&pki.path("client.pem"), None, &post),
        0,
        "an untrusted certificate fails"
    );
    wait_for_count(&database, 20).await;

    // The query API over TLS, through the CLI.
    let output = tokio::process::Command::new(binary("plumb"))
        .args([
            "--endpoint",
            &format!("https://{}", collector.query),
            "--ca-cert",
            &pki.arg("ca.pem"),
            "--json",
            "top",
        ])
        .output()
        .await
        .expect("plumb runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let top: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(
        top["endpoints"].as_array().is_some_and(|e| !e.is_empty()),
        "{top}"
    );
    let readyz = format!("https://{}/readyz", collector.query);
    assert_eq!(curl(&pki.path("ca.pem"), None, &[&readyz]), 200);
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_certificate() {
    let pki = TestPki::new();
    let database = unique_database("mtls");
    let collector = Collector::start_tls(&database, &pki, true).await;
    assert!(
        grpc_export(&collector, Some(&pki.client(false)), 1)
            .await
            .is_err(),
        "no client certificate"
    );
    grpc_export(&collector, Some(&pki.client(true)), 2)
        .await
        .expect("with a client certificate");
    let readyz = format!("https://{}/readyz", collector.query);
    assert_eq!(curl(&pki.path("ca.pem"), None, &[&readyz]), 0);
    let identity = (pki.path("client.pem"), pki.path("client.key"));
    assert_eq!(
        curl(
            &pki.path("ca.pem"),
            Some((&identity.0, &identity.1)),
            &[&readyz]
        ),
        200
    );
    wait_for_count(&database, 10).await;
    assert!(collector.stop().await);
}

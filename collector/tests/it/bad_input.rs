//! Bad input over real sockets: every kind gets a clear error and never a panic, and what was
//! accepted before is still there afterwards.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use plumb_loadgen::text;
use plumb_otlp::client::{RawGrpcClient, TRACE_EXPORT_PATH};
use plumb_test_support::*;
use prost::Message;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

async fn raw_grpc(collector: &Collector, body: Vec<u8>) -> Result<bytes::Bytes, tonic::Status> {
    RawGrpcClient::connect(collector.grpc_url(), TRACE_EXPORT_PATH, None)
        .await
        .expect("connect")
        .send(body.into())
        .await
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

fn span(name: &str, trace_id: Vec<u8>, start_ns: u64, duration_ns: u64) -> Span {
    Span {
        trace_id,
        span_id: vec![7; 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: start_ns + duration_ns,
        ..Default::default()
    }
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn span_count(database: &str, service: &str) -> u64 {
    store(database)
        .await
        .client()
        .query("SELECT count() FROM spans WHERE service = ?")
        .bind(service)
        .fetch_one()
        .await
        .expect("count")
}

async fn wait_for_spans(database: &str, service: &str, expected: u64) {
    for _ in 0..120 {
        if span_count(database, service).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("spans of {service} never reached {expected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spans_are_rejected_one_by_one_and_the_rest_kept() {
    let database = unique_database("partial");
    let collector = Collector::start(&database, &[]).await;
    let now = now_ns();
    let day = 86_400 * 1_000_000_000u64;
    let spans = vec![
        span("good", vec![1; 16], now - 1_000_000_000, 5_000_000),
        span("zero trace id", vec![0; 16], now, 1),
        span("short trace id", vec![1; 5], now, 1),
        span("from the future", vec![1; 16], now + day, 1),
        span("ancient", vec![1; 16], now - 100 * day, 1),
        Span {
            end_time_unix_nano: now - 10,
            ..span("ends before it starts", vec![1; 16], now, 0)
        },
    ];
    let mut client = TraceServiceClient::connect(collector.grpc_url())
        .await
        .expect("connect");
    let mut with_unnamed = request("partial", spans);
    with_unnamed.resource_spans.push(ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![span("no service", vec![9; 16], now - 1_000_000_000, 1_000)],
            ..Default::default()
        }],
        ..Default::default()
    });
    let response = client
        .export(with_unnamed)
        .await
        .expect("accepted")
        .into_inner();
    let partial = response.partial_success.expect("partial success reported");
    assert_eq!(partial.rejected_spans, 5);
    assert!(
        partial.error_message.contains("zero"),
        "{}",
        partial.error_message
    );
    wait_for_spans(&database, "partial", 1).await;
    wait_for_spans(&database, "unknown_service", 1).await;
    let metrics = collector.metrics_text().await;
    assert!(
        metrics.contains("plumb_unknown_service_total{signal=\"spans\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("plumb_rejected_total{signal=\"spans\"} 5"),
        "{metrics}"
    );
    assert!(collector.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_grpc_requests_get_clear_statuses() {
    let database = unique_database("badgrpc");
    let collector = Collector::start(&database, &["--max-request-bytes", "65536"]).await;
    // Something accepted first must survive everything that follows.
    let mut client = TraceServiceClient::connect(collector.grpc_url())
        .await
        .expect("connect");
    client
        .export(request(
            "kept",
            vec![span("ok", vec![2; 16], now_ns() - 1_000_000, 1_000)],
        ))
        .await
        .expect("accepted");

    let malformed = raw_grpc(&collector, vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])
        .await
        .expect_err("must fail");
    assert_eq!(
        malformed.code(),
        tonic::Code::InvalidArgument,
        "{malformed:?}"
    );
    assert!(
        malformed.message().contains("malformed OTLP protobuf"),
        "{}",
        malformed.message()
    );

    let big = request(
        "big",
        (0..2000)
            .map(|i| span(&format!("span {i:0>40}"), vec![3; 16], now_ns(), 1))
            .collect(),
    );
    let oversized = raw_grpc(&collector, big.encode_to_vec())
        .await
        .expect_err("must fail");
    assert_eq!(
        oversized.code(),
        tonic::Code::ResourceExhausted,
        "{oversized:?}"
    );
    assert!(
        oversized.message().contains("over the limit"),
        "{}",
        oversized.message()
    );

    // Invalid UTF-8 in a string field is malformed protobuf too.
    let mut bad_utf8 = request("x", vec![span("NAME", vec![4; 16], now_ns(), 1)]).encode_to_vec();
    let at = bad_utf8
        .windows(4)
        .position(|w| w == b"NAME")
        .expect("name bytes");
    bad_utf8[at] = 0xff;
    let status = raw_grpc(&collector, bad_utf8).await.expect_err("must fail");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    wait_for_spans(&database, "kept", 1).await;
    let metrics = collector.metrics_text().await;
    assert!(
        metrics.contains("plumb_requests_refused_total 3"),
        "{metrics}"
    );
    assert!(collector.stop().await, "no panic: clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_requests_get_4xx_with_a_message() {
    let database = unique_database("badhttp");
    let collector = Collector::start(&database, &["--max-request-bytes", "65536"]).await;
    let url = format!("{}/v1/traces", collector.http_url());
    let client = reqwest::Client::new();
    let good = request(
        "http-kept",
        vec![span("ok", vec![5; 16], now_ns() - 1_000_000, 1_000)],
    )
    .encode_to_vec();
    let ok = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(good.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), 200);

    let post = |content_type: &'static str, encoding: Option<&'static str>, body: Vec<u8>| {
        let mut r = client
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        if let Some(e) = encoding {
            r = r.header("content-encoding", e);
        }
        async move {
            let response = r.send().await.expect("post");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };
    let (status, body) = post("application/x-protobuf", None, vec![0x0a, 0xff, 0xff]).await;
    assert_eq!(status, 400);
    assert!(body.contains("malformed OTLP protobuf"), "{body}");
    let (status, body) = post("application/json", None, b"{\"resourceSpans\": [".to_vec()).await;
    assert_eq!(status, 400);
    assert!(body.contains("malformed OTLP JSON"), "{body}");
    let (status, body) = post("text/plain", None, b"hello".to_vec()).await;
    assert_eq!(status, 415);
    assert!(body.contains("unsupported content type"), "{body}");
    let (status, body) = post("application/x-protobuf", Some("br"), good.clone()).await;
    assert_eq!(status, 415);
    assert!(body.contains("unsupported content encoding"), "{body}");
    let (status, body) = post("application/x-protobuf", None, vec![0; 100_000]).await;
    assert_eq!(status, 413);
    assert!(body.contains("the limit is 65536 bytes"), "{body}");
    // A small gzip body that expands past the limit.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 1_000_000]).expect("gzip");
    let (status, body) = post(
        "application/x-protobuf",
        Some("gzip"),
        gz.finish().expect("gzip"),
    )
    .await;
    assert_eq!(status, 413);
    assert!(
        body.contains("decompressed body is over the limit"),
        "{body}"
    );
    let (status, body) = post("application/x-protobuf", Some("gzip"), b"not gzip".to_vec()).await;
    assert_eq!(status, 400);
    assert!(body.contains("gzip"), "{body}");
    // gzip that is fine is accepted.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(
        &request(
            "http-kept",
            vec![span("ok2", vec![6; 16], now_ns() - 1_000_000, 1_000)],
        )
        .encode_to_vec(),
    )
    .expect("gzip");
    let (status, _) = post(
        "application/x-protobuf",
        Some("gzip"),
        gz.finish().expect("gzip"),
    )
    .await;
    assert_eq!(status, 200);

    wait_for_spans(&database, "http-kept", 2).await;
    // Every request refused whole is counted once: 7 above.
    let metrics = collector.metrics_text().await;
    assert!(
        metrics.contains("plumb_requests_refused_total 7"),
        "{metrics}"
    );
    assert!(collector.stop().await, "no panic: clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_big_requests_and_cut_what_is_over_with_a_count() {
    let database = unique_database("limits");
    let collector = Collector::start(
        &database,
        &[
            "--max-spans-per-request",
            "2",
            "--max-attributes-per-span",
            "2",
            "--max-attribute-value-bytes",
            "5",
        ],
    )
    .await;
    let start = now_ns() - 1_000_000;
    let with_attributes = |i: u8| Span {
        span_id: vec![i; 8],
        attributes: vec![
            text("kept", "0123456789"),
            text("also.kept", "abc"),
            text("dropped", "x"),
        ],
        ..span("GET /limits", vec![i; 16], start, 1_000)
    };

    // (Every value is cut to the limit, service.name too: "lim" fits in five bytes.)
    // Three spans in one request: refused whole over gRPC and HTTP, nothing recorded.
    let three = request("lim", (1..=3).map(with_attributes).collect()).encode_to_vec();
    let status = raw_grpc(&collector, three.clone())
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("more than 2 spans"), "{status:?}");
    let response = reqwest::Client::new()
        .post(format!("{}/v1/traces", collector.http_url()))
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&request("lim", (1..=3).map(with_attributes).collect()))
                .expect("json"),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 413);
    assert!(
        response
            .text()
            .await
            .unwrap_or_default()
            .contains("more than 2 spans")
    );

    // Two spans fit: each keeps two attributes, the long value cut to five bytes.
    let two = request("lim", (1..=2).map(with_attributes).collect()).encode_to_vec();
    let answer = raw_grpc(&collector, two).await.expect("accepted");
    let answer =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
            answer,
        )
        .expect("response");
    assert_eq!(answer.partial_success, None, "nothing rejected");
    wait_for_spans(&database, "lim", 2).await;
    let stored: Vec<String> = store(&database)
        .await
        .client()
        .query(
            "SELECT concat(arrayStringConcat(attributes.key, ','), ' = ', arrayStringConcat(attributes.value, ','))
             FROM spans WHERE service = 'lim'",
        )
        .fetch_all()
        .await
        .expect("attributes");
    assert_eq!(stored, ["kept,also.kept = 01234,abc"; 2]);
    let metrics = collector.metrics_text().await;
    assert!(
        metrics.contains("plumb_attributes_dropped_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("plumb_attribute_values_truncated_total 2"),
        "{metrics}"
    );
    assert!(collector.stop().await);
}

//! The capacity report end to end: fifteen days of history backfilled through the collector's
//! own OTLP ingest (spans with the official SDK, host and process metrics with their own
//! timestamps), then the report through the CLI (gRPC, streamed with its progress) and HTTP in
//! every format, the HTML opened in a real headless Chromium, the JSON checked against its
//! schema, and every kind of bad request refused.

use plumb_loadgen::metrics::{PointKind, Series, metrics_request};
use plumb_proto::v1::capacity_report_event::Event;
use plumb_proto::v1::query_service_client::QueryServiceClient;
use plumb_proto::v1::{CapacityReportEvent, CapacityReportRequest};
use plumb_test_support::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days of history sent.
const DAYS: u64 = 15;
/// CPU-seconds per request, and with no load per hour.
const CPU_PER_REQUEST: f64 = 0.5;
const IDLE_CPU_PER_HOUR: f64 = 36.0;

/// Requests in hour `h` (of the day): 5 to 35, busiest at 15:00 UTC.
fn requests_in(hour_of_day: u64) -> u64 {
    let phase = 2.0 * std::f64::consts::PI * (hour_of_day as f64 - 9.0) / 24.0;
    (20.0 + 15.0 * phase.sin()).round() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfilled_history_gives_a_capacity_report_in_every_format() {
    let database = unique_database("capacity");
    let collector = Collector::start(&database, &["--max-span-age", "20d"]).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let until = now / 3600 * 3600;
    let start = until - DAYS * 86_400;
    let hours: Vec<u64> = (0..DAYS * 24).map(|i| start + i * 3600).collect();

    // Spans: each hour's requests at half past.
    let mut spans = Vec::new();
    let mut total = 0;
    for &h in &hours {
        let n = requests_in(h % 86_400 / 3600);
        total += n;
        let at = UNIX_EPOCH + Duration::from_secs(h + 1800);
        spans.extend(server_spans("/orders", (0..n).map(|i| 2_000 + i * 300), at));
    }
    send_spans(&collector, Transport::Grpc, "shop", spans).await;

    // Metrics: at 59 minutes past each hour, with their own timestamps.
    let ns = |t: u64| t * 1_000_000_000;
    let mut cpu = Vec::new();
    let mut counter = 0.0;
    for &h in &hours {
        counter += IDLE_CPU_PER_HOUR + CPU_PER_REQUEST * requests_in(h % 86_400 / 3600) as f64;
        cpu.push((ns(h + 3540), counter));
    }
    let at = |f: &dyn Fn(usize) -> f64| -> Vec<(u64, f64)> {
        hours
            .iter()
            .enumerate()
            .map(|(i, &h)| (ns(h + 3540), f(i)))
            .collect()
    };
    let memory = at(&|_| 100e6);
    let utilisation = at(&|i| 0.3 + 0.1 * (i as f64 / 24.0 * std::f64::consts::TAU).sin());
    let used = at(&|_| 4e9);
    let free = at(&|_| 4e9);
    // /data fills from 50% to 85% over the fifteen days: 90% about two days after.
    let share = |i: usize| 0.5 + 0.35 * i as f64 / (DAYS * 24) as f64;
    let disk_used = at(&|i| share(i) * 1e12);
    let disk_free = at(&|i| (1.0 - share(i)) * 1e12);
    let process = [
        ("service.name", "shop"),
        ("host.name", "box-1"),
        ("service.instance.id", "shop-1"),
    ];
    let host = [("service.name", "shop"), ("host.name", "box-1")];
    let series = |name, unit, kind, attributes, points| Series {
        resource: if name == "process.cpu.time" || name == "process.memory.usage" {
            &process
        } else {
            &host
        },
        name,
        unit,
        kind,
        attributes,
        points,
    };
    let request = metrics_request(&[
        series("process.cpu.time", "s", PointKind::Counter, &[], &cpu),
        series("process.memory.usage", "By", PointKind::Gauge, &[], &memory),
        series(
            "system.cpu.utilization",
            "1",
            PointKind::Gauge,
            &[],
            &utilisation,
        ),
        series(
            "system.memory.usage",
            "By",
            PointKind::Gauge,
            &[("system.memory.state", "used")],
            &used,
        ),
        series(
            "system.memory.usage",
            "By",
            PointKind::Gauge,
            &[("system.memory.state", "free")],
            &free,
        ),
        series(
            "system.filesystem.usage",
            "By",
            PointKind::Gauge,
            &[
                ("system.filesystem.mountpoint", "/data"),
                ("system.filesystem.state", "used"),
            ],
            &disk_used,
        ),
        series(
            "system.filesystem.usage",
            "By",
            PointKind::Gauge,
            &[
                ("system.filesystem.mountpoint", "/data"),
                ("system.filesystem.state", "free"),
            ],
            &disk_free,
        ),
    ]);
    assert_eq!(collector.send_metrics(&request).await, 0, "nothing refused");
    let points = hours.len() as u64 * 7;
    for _ in 0..240 {
        if query_number(&database, "SELECT sum(hour_requests) FROM latency_hour").await == total
            && query_number(&database, "SELECT count() FROM metrics").await == points
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // JSON through the CLI (gRPC), checked against its schema and the truth.
    let args = ["report", "capacity", "--since", "15d", "--horizon", "7d"];
    let out = collector
        .plumb(&[&args[..], &["--format", "json"]].concat(), true)
        .await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/capacity.v1.schema.json"))
            .expect("schema");
    let validator = jsonschema::validator_for(&schema).expect("schema");
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let shop = &report["services"][0];
    assert_eq!(shop["service"], "shop", "{report}");
    assert_eq!(shop["quality"]["hours_with_requests"], DAYS * 24, "{shop}");
    let per_request = shop["cpu_seconds_per_request"].as_f64().expect("cpu");
    assert!(
        (per_request - CPU_PER_REQUEST).abs() < 0.05 * CPU_PER_REQUEST,
        "{shop}"
    );
    let idle = shop["idle_cpu_cores"].as_f64().expect("idle");
    assert!((idle - IDLE_CPU_PER_HOUR / 3600.0).abs() < 0.002, "{shop}");
    assert_eq!(shop["busiest_hour_utc"], 15, "{shop}");
    assert_eq!(shop["endpoints"][0]["operation"], "GET /orders", "{shop}");
    assert_eq!(shop["endpoints"][0]["share_percent"], 100.0, "{shop}");
    let box1 = &report["hosts"][0];
    assert_eq!(box1["host"], "box-1");
    let names: Vec<&str> = box1["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["cpu", "memory", "filesystem /data"]);
    let data = &box1["resources"][2];
    let likely = data["crossing"]["likely"]
        .as_str()
        .unwrap_or_else(|| panic!("the disk fills: {data}"));
    let day = |d: &str| {
        d.parse::<jiff::civil::Date>()
            .expect("date")
            .to_zoned(jiff::tz::TimeZone::UTC)
            .expect("zoned")
            .timestamp()
            .as_second() as u64
    };
    let truth = until + (0.05 / (0.35 / (DAYS * 24) as f64) * 3600.0) as u64;
    assert!(
        day(likely).abs_diff(truth) <= 86_400 + 43_200,
        "likely {likely} against {truth}: {data}"
    );
    assert_eq!(
        box1["resources"][1]["crossing"]["likely"],
        serde_json::Value::Null
    );

    // The streamed call the CLI's progress bar follows: every step (five reads, the service,
    // the host, the rendering) in order, then the report.
    let mut client = QueryServiceClient::connect(collector.query_url())
        .await
        .expect("connect");
    let request = CapacityReportRequest {
        since_seconds: 15 * 86_400,
        horizon_seconds: 7 * 86_400,
        format: "json".into(),
        ..Default::default()
    };
    let mut events = client
        .capacity_report_stream(request)
        .await
        .expect("stream")
        .into_inner();
    let (mut steps, mut streamed) = (Vec::new(), None);
    while let Some(event) = events.message().await.expect("event") {
        match event.event {
            Some(Event::Progress(p)) => steps.push((p.done, p.total, p.step)),
            Some(Event::Report(r)) => streamed = Some(r.document),
            None => {}
        }
    }
    assert!(steps.windows(2).all(|w| w[0].0 <= w[1].0), "{steps:?}");
    assert_eq!(steps.last().map(|s| (s.0, s.1)), Some((8, 8)), "{steps:?}");
    assert!(
        steps.iter().any(|s| s.2 == "reading minutes by load"),
        "{steps:?}"
    );
    let streamed: serde_json::Value =
        serde_json::from_str(&streamed.expect("the report comes last")).expect("JSON");
    assert_eq!(streamed["services"][0]["service"], "shop");
    let mut refused = client
        .capacity_report_stream(CapacityReportRequest {
            service: "nope".into(),
            ..Default::default()
        })
        .await
        .expect("stream")
        .into_inner();
    let status = loop {
        match refused.message().await {
            Ok(Some(CapacityReportEvent {
                event: Some(Event::Progress(_)),
            })) => continue,
            other => break other.expect_err("progress, then not found"),
        }
    };
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    // Markdown to a file, through the CLI.
    let dir = tempfile::tempdir().expect("dir");
    let md = dir.path().join("capacity.md");
    collector
        .plumb(
            &[&args[..], &["--out", &md.display().to_string()]].concat(),
            true,
        )
        .await;
    let text = std::fs::read_to_string(&md).expect("markdown");
    assert!(
        text.contains("## Service shop") && text.contains("## Host box-1"),
        "{text}"
    );

    // HTML over HTTP, opened in Chromium.
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/report/capacity", collector.query_url());
    let page = http
        .get(format!("{url}?since=15d&horizon=7d&format=html"))
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.expect("body");
    let file = dir.path().join("capacity.html");
    std::fs::write(&file, &html).expect("write");
    let laid_out = browser::dom(&file);
    assert!(
        laid_out.matches("<svg").count() >= 4,
        "charts in the page Chromium drew"
    );
    let png = dir.path().join("capacity.png");
    assert!(
        browser::screenshot(&file, &png) > 50_000,
        "a screenshot with charts"
    );

    // The capacity page shows the same figures in its tables.
    let page = http
        .get(format!(
            "{}/capacity?since=15d&horizon=7d",
            collector.query_url()
        ))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("body");
    assert!(
        page.contains("<td class=\"name\">shop</td>") && page.contains("filesystem /data"),
        "{page}"
    );
    assert!(
        page.contains(likely),
        "the disk's likely crossing {likely}: {page}"
    );

    // Bad requests: clear errors, over HTTP and gRPC.
    for (query, status, says) in [
        ("service=nope", 404, "no service named \"nope\""),
        ("host=nope", 404, "no host named \"nope\""),
        ("horizon=400d", 400, "over the limit of 365 days"),
        ("since=10m", 400, "at least an hour"),
        ("format=pdf", 400, "unknown format"),
    ] {
        let answer = http
            .get(format!("{url}?{query}"))
            .send()
            .await
            .expect("get");
        assert_eq!(answer.status(), status, "{query}");
        let body: serde_json::Value = answer.json().await.expect("json error");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(says),
            "{query}: {body}"
        );
    }
    let refused = collector
        .plumb(&["report", "capacity", "--service", "nope"], false)
        .await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no service named"),
        "{refused:?}"
    );
    assert!(collector.stop().await);
}

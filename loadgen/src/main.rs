//! `plumb-loadgen`: sends realistic OTLP spans or metric points, over gRPC or HTTP, to a
//! collector at a set rate (or as fast as it will take them) and reports what was sent, accepted
//! and refused.

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use plumb_loadgen::metrics::MetricWorkload;
use plumb_loadgen::{FreshIds, Workload, WorkloadShape};
use plumb_otlp::client::{
    CompressionEncoding, METRICS_EXPORT_PATH, RawGrpcClient, TRACE_EXPORT_PATH,
};
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "plumb-loadgen",
    version,
    about = "Send realistic OTLP spans or metric points to a collector"
)]
struct Args {
    /// The collector's OTLP endpoint: its gRPC listener, or with --http its HTTP listener.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// What to send: spans (whole traces) or metric points (gauges and counters).
    #[arg(long, value_enum, default_value_t = Signal::Traces)]
    signal: Signal,
    /// Send over OTLP/HTTP (protobuf bodies to /v1/traces or /v1/metrics) instead of gRPC.
    #[arg(long, conflicts_with = "gzip")]
    http: bool,
    /// Spans (or points) per second in total; 0 sends as fast as the collector accepts.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// How long to send.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Spans (or points) per export request.
    #[arg(long, default_value_t = 500)]
    batch: u32,
    /// Concurrent senders (connections).
    #[arg(long, default_value_t = 4)]
    concurrency: u32,
    /// Distinct services.
    #[arg(long, default_value_t = 5)]
    services: u32,
    /// Distinct endpoints per service (for metrics: series per metric name).
    #[arg(long, default_value_t = 12)]
    endpoints: u32,
    /// Distinct pre-encoded requests each sender cycles through (timestamps are set when built; trace and span ids are new in every request sent).
    #[arg(long, default_value_t = 64)]
    pool: usize,
    /// Compress requests with gzip (gRPC only).
    #[arg(long)]
    gzip: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The signal a run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Signal {
    /// Spans.
    Traces,
    /// Metric points.
    Metrics,
}

impl Signal {
    /// What one item is called in the report.
    fn items(self) -> &'static str {
        match self {
            Self::Traces => "spans",
            Self::Metrics => "points",
        }
    }

    /// Items the collector rejected, from its answer's partial success.
    fn rejected(self, answer: Bytes) -> u64 {
        let rejected = match self {
            Self::Traces => ExportTraceServiceResponse::decode(answer)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| p.rejected_spans),
            Self::Metrics => ExportMetricsServiceResponse::decode(answer)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| p.rejected_data_points),
        };
        rejected.map_or(0, |n| n.max(0) as u64)
    }
}

/// One sender's pre-encoded requests.
enum Pool {
    /// Trace requests, each sent with new trace and span ids.
    Traces(Vec<FreshIds>),
    /// Metric requests, sent as they are.
    Metrics(Vec<Bytes>),
}

impl Pool {
    /// The `i`-th request to send; `seed` makes its ids new.
    fn message(&self, i: usize, seed: u64) -> Bytes {
        match self {
            Self::Traces(pool) => Bytes::from(pool[i % pool.len()].copy(seed)),
            Self::Metrics(pool) => pool[i % pool.len()].clone(),
        }
    }
}

/// One connection to the collector.
enum Connection {
    /// A gRPC channel.
    Grpc(Box<RawGrpcClient>),
    /// An HTTP/1.1 client (its own pool, so one kept-alive connection per sender) and the URL.
    Http(reqwest::Client, String),
}

/// Why a request was not accepted.
enum Refusal {
    /// The collector is busy or stopping: wait, then go on.
    Busy,
    /// Any other failure, as text.
    Failed(String),
}

impl Connection {
    /// Sends one request; the collector's answer, or why it was refused.
    async fn send(&mut self, message: Bytes) -> Result<Bytes, Refusal> {
        match self {
            Self::Grpc(client) => {
                client
                    .send(message)
                    .await
                    .map_err(|status| match status.code() {
                        tonic::Code::ResourceExhausted | tonic::Code::Unavailable => Refusal::Busy,
                        _ => Refusal::Failed(status.to_string()),
                    })
            }
            Self::Http(client, url) => {
                let sent = client
                    .post(url.as_str())
                    .header("content-type", "application/x-protobuf")
                    .body(message)
                    .send()
                    .await
                    .map_err(|e| Refusal::Failed(e.to_string()))?;
                let status = sent.status();
                let body = sent
                    .bytes()
                    .await
                    .map_err(|e| Refusal::Failed(e.to_string()))?;
                match status.as_u16() {
                    200..=299 => Ok(body),
                    429 | 503 => Err(Refusal::Busy),
                    _ => Err(Refusal::Failed(format!("HTTP {status}"))),
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    items_sent: AtomicU64,
    items_rejected: AtomicU64,
    requests_refused: AtomicU64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args))
}

/// Sender `sender`'s pool of `args.pool` requests.
fn pool(args: &Args, sender: u32) -> Pool {
    let seed = 0x9e37_79b9 + u64::from(sender);
    let requests = 0..args.pool.max(1);
    match args.signal {
        Signal::Traces => {
            let mut workload = Workload::new(WorkloadShape {
                services: args.services.max(1),
                endpoints_per_service: args.endpoints.max(1),
                spans_per_request: args.batch.max(1),
                seed,
            });
            Pool::Traces(
                requests
                    .map(|_| FreshIds::new(&workload.request()))
                    .collect(),
            )
        }
        Signal::Metrics => {
            let mut workload = MetricWorkload::new(args.services, args.endpoints, args.batch, seed);
            Pool::Metrics(
                requests
                    .map(|_| Bytes::from(workload.request().encode_to_vec()))
                    .collect(),
            )
        }
    }
}

/// A connection to the collector for `args.signal`, over gRPC or HTTP.
async fn connect(args: &Args) -> anyhow::Result<Connection> {
    let endpoint = args.endpoint.trim_end_matches('/');
    if args.http {
        let path = match args.signal {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        };
        let client = reqwest::Client::builder()
            .build()
            .context("cannot build the HTTP client")?;
        return Ok(Connection::Http(client, format!("{endpoint}{path}")));
    }
    let path = match args.signal {
        Signal::Traces => TRACE_EXPORT_PATH,
        Signal::Metrics => METRICS_EXPORT_PATH,
    };
    let client = RawGrpcClient::connect(
        endpoint.to_owned(),
        path,
        args.gzip.then_some(CompressionEncoding::Gzip),
    )
    .await
    .with_context(|| format!("cannot reach {endpoint}"))?;
    Ok(Connection::Grpc(Box::new(client)))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let counts = Arc::new(Counts::default());
    let mut senders = Vec::new();
    let per_sender_rate = args.rate as f64 / f64::from(args.concurrency.max(1));
    for sender in 0..args.concurrency.max(1) {
        senders.push((sender, pool(&args, sender), connect(&args).await?));
    }
    // Timing starts once every sender has its requests built and its connection open.
    let started = Instant::now();
    let deadline = started + args.duration;
    let signal = args.signal;
    let mut tasks = Vec::new();
    for (sender, pool, mut connection) in senders {
        let counts = Arc::clone(&counts);
        let batch = u64::from(args.batch.max(1));
        tasks.push(tokio::spawn(async move {
            let interval = (per_sender_rate > 0.0)
                .then(|| Duration::from_secs_f64(batch as f64 / per_sender_rate));
            let mut next = Instant::now();
            let mut i = 0usize;
            loop {
                if let Some(interval) = interval {
                    next += interval;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                if i > 0 && Instant::now() >= deadline {
                    break;
                }
                // Fresh trace and span ids in every request: the collector sees only new traces.
                let message = pool.message(i, (u64::from(sender) << 40) ^ i as u64);
                i += 1;
                counts.requests.fetch_add(1, Ordering::Relaxed);
                match connection.send(message).await {
                    Ok(answer) => {
                        counts.items_sent.fetch_add(batch, Ordering::Relaxed);
                        let rejected = signal.rejected(answer);
                        counts.items_rejected.fetch_add(rejected, Ordering::Relaxed);
                    }
                    Err(refusal) => {
                        counts.requests_refused.fetch_add(1, Ordering::Relaxed);
                        match refusal {
                            Refusal::Busy => tokio::time::sleep(Duration::from_millis(100)).await,
                            Refusal::Failed(why) => eprintln!("export failed: {why}"),
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.context("sender task failed")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = counts.items_sent.load(Ordering::Relaxed);
    let rejected = counts.items_rejected.load(Ordering::Relaxed);
    let refused = counts.requests_refused.load(Ordering::Relaxed);
    let items = signal.items();
    let mut report = serde_json::Map::new();
    report.insert("seconds".into(), elapsed.into());
    report.insert(
        "requests".into(),
        counts.requests.load(Ordering::Relaxed).into(),
    );
    report.insert(format!("{items}_accepted"), (sent - rejected).into());
    report.insert(format!("{items}_rejected"), rejected.into());
    report.insert("requests_refused".into(), refused.into());
    report.insert(
        format!("{items}_per_second"),
        (sent as f64 / elapsed).into(),
    );
    if args.json {
        println!("{}", serde_json::Value::Object(report));
    } else {
        println!(
            "sent {sent} {items} in {elapsed:.1}s ({:.0} {items}/s); {rejected} rejected, {refused} requests refused",
            sent as f64 / elapsed,
        );
    }
    Ok(())
}

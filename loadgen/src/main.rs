//! `plumb-loadgen`: sends realistic OTLP/gRPC spans to a collector at a set rate (or as fast as
//! it will take them) and reports what was sent, accepted and refused.

use anyhow::Context;
use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use plumb_loadgen::{FreshIds, Workload, WorkloadShape};
use plumb_otlp::client::{CompressionEncoding, RawGrpcClient, TRACE_EXPORT_PATH};
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "plumb-loadgen",
    version,
    about = "Send realistic OTLP/gRPC spans to a collector"
)]
struct Args {
    /// OTLP/gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Spans per second in total; 0 sends as fast as the collector accepts.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// How long to send.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Spans per export request.
    #[arg(long, default_value_t = 500)]
    batch: u32,
    /// Concurrent senders (connections).
    #[arg(long, default_value_t = 4)]
    concurrency: u32,
    /// Distinct services.
    #[arg(long, default_value_t = 5)]
    services: u32,
    /// Distinct endpoints per service.
    #[arg(long, default_value_t = 12)]
    endpoints: u32,
    /// Distinct pre-encoded requests each sender cycles through (timestamps are set when built; trace and span ids are new in every request sent).
    #[arg(long, default_value_t = 64)]
    pool: usize,
    /// Compress requests with gzip.
    #[arg(long)]
    gzip: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    spans_sent: AtomicU64,
    spans_rejected: AtomicU64,
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

async fn run(args: Args) -> anyhow::Result<()> {
    let counts = Arc::new(Counts::default());
    let mut senders = Vec::new();
    let per_sender_rate = args.rate as f64 / f64::from(args.concurrency.max(1));
    for sender in 0..args.concurrency.max(1) {
        let mut workload = Workload::new(WorkloadShape {
            services: args.services.max(1),
            endpoints_per_service: args.endpoints.max(1),
            spans_per_request: args.batch.max(1),
            seed: 0x9e37_79b9 + u64::from(sender),
        });
        let pool: Vec<FreshIds> = (0..args.pool.max(1))
            .map(|_| FreshIds::new(&workload.request()))
            .collect();
        let client = RawGrpcClient::connect(
            args.endpoint.clone(),
            TRACE_EXPORT_PATH,
            args.gzip.then_some(CompressionEncoding::Gzip),
        )
        .await
        .with_context(|| format!("cannot reach {}", args.endpoint))?;
        senders.push((sender, pool, client));
    }
    // Timing starts once every sender has its requests built and its connection open.
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut tasks = Vec::new();
    for (sender, pool, mut client) in senders {
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
                let seed = (u64::from(sender) << 40) ^ i as u64;
                let message = bytes::Bytes::from(pool[i % pool.len()].copy(seed));
                i += 1;
                counts.requests.fetch_add(1, Ordering::Relaxed);
                match client.send(message).await {
                    Ok(body) => {
                        counts.spans_sent.fetch_add(batch, Ordering::Relaxed);
                        let rejected = ExportTraceServiceResponse::decode(body)
                            .ok()
                            .and_then(|r| r.partial_success)
                            .map_or(0, |p| p.rejected_spans.max(0) as u64);
                        counts.spans_rejected.fetch_add(rejected, Ordering::Relaxed);
                    }
                    Err(status) => {
                        counts.requests_refused.fetch_add(1, Ordering::Relaxed);
                        if status.code() == tonic::Code::ResourceExhausted
                            || status.code() == tonic::Code::Unavailable
                        {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        } else {
                            eprintln!("export failed: {status}");
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
    let sent = counts.spans_sent.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "seconds": elapsed,
        "requests": counts.requests.load(Ordering::Relaxed),
        "spans_accepted": sent - counts.spans_rejected.load(Ordering::Relaxed),
        "spans_rejected": counts.spans_rejected.load(Ordering::Relaxed),
        "requests_refused": counts.requests_refused.load(Ordering::Relaxed),
        "spans_per_second": sent as f64 / elapsed,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "sent {sent} spans in {:.1}s ({:.0} spans/s); {} rejected, {} requests refused",
            elapsed,
            sent as f64 / elapsed,
            report["spans_rejected"],
            report["requests_refused"]
        );
    }
    Ok(())
}

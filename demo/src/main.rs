//! `plumb-demo`: a small instrumented backend with endpoints of known behaviour, and a traffic
//! generator for it, so `plumb top` has a real picture to show.
//!
//! `plumb-demo serve --service shop --addr 127.0.0.1:8081 --recs-url http://127.0.0.1:8082`
//! `plumb-demo serve --service recs --addr 127.0.0.1:8082`
//! `plumb-demo traffic --target http://127.0.0.1:8081 --rate 50 --duration 30s`
//!
//! shop: `GET /health` (instant), `GET /users/{id}` (1-3 ms), `GET /orders/{id}` (about 40 ms, 75%
//! of it in a database call recorded as a CLIENT span), `GET /search` (5 ms, one in ten 300 ms),
//! `POST /checkout` (20 ms, one in five fails with 500), `GET /recommendations/{id}` (calls recs
//! over HTTP, continuing the trace). recs: `GET /recs/{id}` (about 10 ms).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use clap::{Parser, Subcommand};
use opentelemetry::trace::{FutureExt as _, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};
use plumb_agent::{AgentConfig, PlumbLayer, inject_trace_context};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::Instrument as _;

#[derive(Debug, Parser)]
#[command(
    name = "plumb-demo",
    version,
    about = "An instrumented demo backend and its traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the demo backend.
    Serve {
        /// `shop` (the main service) or `recs` (the one shop calls).
        #[arg(long, default_value = "shop", value_parser = ["shop", "recs"])]
        service: String,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: String,
        /// Where recs listens (for shop's `/recommendations`).
        #[arg(long, default_value = "http://127.0.0.1:8082")]
        recs_url: String,
        /// OTLP/gRPC endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4317).
        #[arg(long)]
        otlp_endpoint: Option<String>,
        /// Spans the agent queues before dropping (and counting) new ones.
        #[arg(long, default_value_t = 8192)]
        max_queued_spans: usize,
    },
    /// Send a mix of requests to shop.
    Traffic {
        /// shop's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        target: String,
        /// Requests per second.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// How long.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                service,
                addr,
                recs_url,
                otlp_endpoint,
                max_queued_spans,
            } => {
                let mut config = AgentConfig::new(service.clone())
                    .with_version("1.0.0")
                    .with_environment("demo");
                config.max_queued_spans = max_queued_spans;
                if let Some(endpoint) = otlp_endpoint {
                    config = config.with_endpoint(endpoint);
                }
                serve(config, service, addr, recs_url).await
            }
            Command::Traffic {
                target,
                rate,
                duration,
            } => traffic(target, rate, duration).await,
        }
    })
}

#[derive(Clone)]
struct Demo {
    http: reqwest::Client,
    recs_url: String,
    dice: Arc<Dice>,
}

/// A tiny thread-safe pseudo-random source for the demo's behaviour.
#[derive(Debug)]
struct Dice(AtomicU64);

impl Dice {
    fn below(&self, n: u64) -> u64 {
        let mut x = self.0.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x % n.max(1)
    }
}

async fn serve(
    config: AgentConfig,
    service: String,
    addr: String,
    recs_url: String,
) -> anyhow::Result<()> {
    let agent = plumb_agent::init(config)?;
    let seed = std::process::id() as u64;
    let demo = Demo {
        http: reqwest::Client::new(),
        recs_url,
        dice: Arc::new(Dice(AtomicU64::new(seed))),
    };
    let app = match service.as_str() {
        "recs" => Router::new().route("/recs/{id}", get(recs)),
        _ => Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/users/{id}", get(user))
            .route("/orders/{id}", get(order))
            .route("/search", get(search))
            .route("/checkout", post(checkout))
            .route("/recommendations/{id}", get(recommendations)),
    }
    .route_layer(PlumbLayer::new())
    .with_state(demo);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    eprintln!(
        "plumb-demo {service} listening on {}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    agent.flush();
    Ok(())
}

async fn user(State(demo): State<Demo>, Path(_id): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(1 + demo.dice.below(3))).await;
    "user"
}

async fn order(State(demo): State<Demo>, Path(_id): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(8)).await;
    // The database call: a CLIENT span as a database client library would record it.
    let tracer = global::tracer("plumb-demo");
    let span = tracer
        .span_builder("SELECT orders")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("db.system", "postgresql"),
            KeyValue::new("db.query.text", "SELECT * FROM orders WHERE id = $1"),
        ])
        .start(&tracer);
    let cx = Context::current_with_span(span);
    tokio::time::sleep(Duration::from_millis(28 + demo.dice.below(5)))
        .with_context(cx.clone())
        .await;
    cx.span().end();
    // The service's own code, traced with the `tracing` macros (exported through the agent too).
    let render = tracing::info_span!("render order");
    async { tokio::time::sleep(Duration::from_millis(2)).await }
        .instrument(render)
        .await;
    "order"
}

async fn search(State(demo): State<Demo>) -> &'static str {
    let slow = demo.dice.below(10) == 0;
    tokio::time::sleep(Duration::from_millis(if slow { 300 } else { 5 })).await;
    "results"
}

async fn checkout(State(demo): State<Demo>) -> (StatusCode, &'static str) {
    tokio::time::sleep(Duration::from_millis(20)).await;
    if demo.dice.below(5) == 0 {
        (StatusCode::INTERNAL_SERVER_ERROR, "payment failed")
    } else {
        (StatusCode::OK, "paid")
    }
}

async fn recommendations(State(demo): State<Demo>, Path(id): Path<u64>) -> (StatusCode, String) {
    // An outbound call: a CLIENT span, and its context in the request's `traceparent`.
    let tracer = global::tracer("plumb-demo");
    let span = tracer
        .span_builder("GET /recs/{id}")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("server.address", demo.recs_url.clone()),
        ])
        .start(&tracer);
    let cx = Context::current_with_span(span);
    let mut headers = axum::http::HeaderMap::new();
    inject_trace_context(&cx, &mut headers);
    let result = demo
        .http
        .get(format!("{}/recs/{id}", demo.recs_url))
        .headers(headers)
        .send()
        .with_context(cx.clone())
        .await;
    let outcome = match result {
        Ok(r) => {
            cx.span().set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(r.status().as_u16()),
            ));
            (StatusCode::OK, r.text().await.unwrap_or_default())
        }
        Err(e) => {
            cx.span()
                .set_status(opentelemetry::trace::Status::error(e.to_string()));
            (StatusCode::BAD_GATEWAY, "recs unavailable".to_owned())
        }
    };
    cx.span().end();
    outcome
}

async fn recs(State(demo): State<Demo>, Path(_id): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(8 + demo.dice.below(5))).await;
    "[1,2,3]"
}

async fn traffic(target: String, rate: u32, duration: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let dice = Arc::new(Dice(AtomicU64::new(7)));
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let deadline = Instant::now() + duration;
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut ticker = tokio::time::interval(interval);
    while Instant::now() < deadline {
        ticker.tick().await;
        let id = dice.below(10_000);
        let request = match dice.below(10) {
            0 => client.get(format!("{target}/health")),
            1..=3 => client.get(format!("{target}/users/{id}")),
            4 | 5 => client.get(format!("{target}/orders/{id}")),
            6 | 7 => client.get(format!("{target}/search?q=item{id}")),
            8 => client.post(format!("{target}/checkout")),
            _ => client.get(format!("{target}/recommendations/{id}")),
        };
        let (sent, failed) = (Arc::clone(&sent), Arc::clone(&failed));
        tokio::spawn(async move {
            sent.fetch_add(1, Ordering::Relaxed);
            if request.send().await.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "sent {} requests, {} failed to connect",
        sent.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}

//! `plumb-agent`: the half of Plumb that lives with a Rust backend.
//!
//! One call, [`init`], sets up OpenTelemetry tracing and metrics exported over OTLP/gRPC (to the
//! Plumb sidecar or straight to the collector) with a resource that names the service, and routes
//! `tracing` spans into it. [`PlumbLayer`] records a SERVER span for every HTTP request a
//! tower/axum server handles. Host and process metrics (CPU, load, memory, swap, filesystems,
//! network, process CPU time and resident memory) are reported every `metrics_interval`.
//! Recording never blocks a request: spans go into a bounded queue and are dropped, counted
//! (`plumb.agent.spans.dropped`) and logged at most every ten seconds when it is full; while the
//! collector is down, exports are retried and the queue holds what fits.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let _agent = plumb_agent::init(plumb_agent::AgentConfig::new("checkout"))?;
//! let app = axum::Router::new()
//!     .route("/users/{id}", axum::routing::get(|| async { "hi" }))
//!     .route_layer(plumb_agent::PlumbLayer::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod config;
mod host_metrics;
mod http_layer;
mod request_span;
mod setup;
mod span_queue;
mod span_record;

pub use config::AgentConfig;
pub use http_layer::{PlumbFuture, PlumbLayer, PlumbService, inject_trace_context};
pub use setup::{AgentError, AgentGuard, init};
pub use span_queue::{QueueProcessor, QueueStats};

//! The sidecar's own metrics, served on `/metrics` (Prometheus text): items received, forwarded,
//! dropped (backlog full, or unsent at shutdown) and rejected by the collector, failed sends,
//! requests refused, and bytes held, each by signal (`spans` or `metric_points`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The two signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric data points.
    Metrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabel {
    signal: &'static str,
}

fn label(signal: Signal) -> SignalLabel {
    SignalLabel {
        signal: if signal == Signal::Traces {
            "spans"
        } else {
            "metric_points"
        },
    }
}

/// Every metric the sidecar reports.
#[derive(Debug)]
pub struct SidecarTelemetry {
    registry: Registry,
    received: Family<SignalLabel, Counter>,
    forwarded: Family<SignalLabel, Counter>,
    dropped: Family<SignalLabel, Counter>,
    rejected: Family<SignalLabel, Counter>,
    export_failures: Family<SignalLabel, Counter>,
    backlog_bytes: Family<SignalLabel, Gauge>,
    /// Requests refused before decoding (malformed, too large, wrong content type).
    pub refused: Counter,
}

impl SidecarTelemetry {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("plumb_agent");
        let t = Self {
            received: Family::default(),
            forwarded: Family::default(),
            dropped: Family::default(),
            rejected: Family::default(),
            export_failures: Family::default(),
            backlog_bytes: Family::default(),
            refused: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "received",
            "Items received from local SDKs",
            t.received.clone(),
        );
        registry.register(
            "forwarded",
            "Items the collector accepted",
            t.forwarded.clone(),
        );
        registry.register(
            "dropped",
            "Items dropped: backlog full (oldest first) or unsent at shutdown",
            t.dropped.clone(),
        );
        registry.register(
            "rejected",
            "Items the collector refused for good",
            t.rejected.clone(),
        );
        registry.register(
            "export_failures",
            "Failed sends to the collector (retried)",
            t.export_failures.clone(),
        );
        registry.register(
            "backlog_bytes",
            "Encoded bytes waiting to be forwarded",
            t.backlog_bytes.clone(),
        );
        registry.register(
            "requests_refused",
            "Requests refused before decoding",
            t.refused.clone(),
        );
        Self { registry, ..t }
    }

    /// Counts items received.
    pub fn received(&self, signal: Signal, items: u64) {
        self.received.get_or_create(&label(signal)).inc_by(items);
    }

    /// Counts items forwarded.
    pub fn forwarded(&self, signal: Signal, items: u64) {
        self.forwarded.get_or_create(&label(signal)).inc_by(items);
    }

    /// Counts items dropped.
    pub fn dropped(&self, signal: Signal, items: u64) {
        if items > 0 {
            self.dropped.get_or_create(&label(signal)).inc_by(items);
        }
    }

    /// Counts items the collector refused.
    pub fn rejected(&self, signal: Signal, items: u64) {
        self.rejected.get_or_create(&label(signal)).inc_by(items);
    }

    /// Counts a failed send.
    pub fn export_failed(&self, signal: Signal) {
        self.export_failures.get_or_create(&label(signal)).inc();
    }

    /// The text exposition, with the backlog sizes as of now.
    pub fn render(&self, backlog_bytes: [(Signal, usize); 2]) -> String {
        for (signal, bytes) in backlog_bytes {
            self.backlog_bytes
                .get_or_create(&label(signal))
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

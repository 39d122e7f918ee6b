//! The collector's own metrics, served on `/metrics` in Prometheus text format.
//!
//! This module holds the one registry and the labels several stages share; each stage owns the
//! metrics it updates in a small struct of its own, registered here at start-up
//! (`pipeline::IngestTelemetry`, `store::write::WriterTelemetry`, `journal::JournalTelemetry`,
//! `trace_analysis::window::WindowTelemetry`). Every name is listed in the README ("The
//! collector's own metrics"); counters follow `plumb_<thing>_<unit>_total`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;

/// Label naming the ClickHouse table a writer metric is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TableLabel {
    /// Table name.
    pub(crate) table: &'static str,
}

/// Label naming the signal (traces or metrics) an ingest metric is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SignalLabel {
    /// `spans` or `metric_points`.
    pub(crate) signal: &'static str,
}

/// Label for spans.
pub(crate) const SPANS: SignalLabel = SignalLabel { signal: "spans" };
/// Label for metric data points.
pub(crate) const METRIC_POINTS: SignalLabel = SignalLabel {
    signal: "metric_points",
};

/// The registry every stage's metrics are registered in.
#[derive(Debug)]
pub(crate) struct Telemetry {
    registry: Registry,
}

impl Telemetry {
    /// An empty registry; names get the `plumb_` prefix.
    pub(crate) fn new() -> Self {
        Self {
            registry: Registry::with_prefix("plumb"),
        }
    }

    /// Where a stage registers its metrics.
    pub(crate) fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

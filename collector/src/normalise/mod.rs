//! Normalisation: turns decoded OTLP requests into Plumb's own records.
//!
//! In: encoded `ExportTraceServiceRequest`s and `ExportMetricsServiceRequest`s (read in place by
//! `plumb_otlp::wire`, without building the prost structs). Out: validated [`Span`]s (service,
//! operation, kind, timing, error flag, attributes as text) and `metrics` rows in RowBinary, plus
//! a count and a message for what was rejected, which the receivers report back through OTLP
//! partial success.

mod attributes;
mod metrics;
mod operation;
pub(crate) mod route;
mod spans;
mod wire_attributes;

pub(crate) use metrics::normalise_metrics;
pub(crate) use operation::{NameLimiter, OVERFLOW_OPERATION};
pub(crate) use spans::{SpanLimits, TraceRequestError, Truncations, normalise_traces};

/// Service name used when a resource carries no `service.name`.
pub(crate) const UNKNOWN_SERVICE: &str = "unknown_service";

/// The result of normalising one request: what was kept (`T`: the spans, or the metric rows)
/// and what was rejected.
#[derive(Debug)]
pub(crate) struct Normalised<T> {
    /// What passed validation.
    pub(crate) accepted: T,
    /// How many items were rejected.
    pub(crate) rejected: u64,
    /// The first rejection's reason, for OTLP partial success.
    pub(crate) first_error: Option<String>,
    /// How many items came without a `service.name` and were filed under `unknown_service`.
    pub(crate) unknown_service: u64,
    /// Attributes dropped and values cut by the limits.
    pub(crate) truncations: Truncations,
}

impl<T: Default> Default for Normalised<T> {
    fn default() -> Self {
        Self {
            accepted: T::default(),
            rejected: 0,
            first_error: None,
            unknown_service: 0,
            truncations: Truncations::default(),
        }
    }
}

impl<T> Normalised<T> {
    pub(crate) fn reject(&mut self, reason: impl FnOnce() -> String) {
        self.rejected += 1;
        if self.first_error.is_none() {
            self.first_error = Some(reason());
        }
    }
}

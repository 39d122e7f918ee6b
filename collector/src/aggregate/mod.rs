//! Aggregation: what the collector keeps in memory between two flushes.
//!
//! In: validated spans ([`latency`]) and the contributions of analysed traces
//! ([`component_time`]). Out: per-minute rows that the flushers (`store::write::flush`) take
//! every few seconds: latency histograms with counts (`latency_minute`) and where endpoints'
//! time goes (`breakdown_minute`). [`histogram`] is the mergeable HDR-layout histogram;
//! [`shards`] keeps what each receiving thread adds apart until a flush takes it.

pub(crate) mod component_time;
pub(crate) mod histogram;
pub(crate) mod latency;
mod shards;

pub(crate) use latency::Aggregator;

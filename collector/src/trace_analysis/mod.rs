//! Trace-level analysis: where each endpoint's time goes, worked out from whole traces.
//!
//! In: validated spans from the pipeline. [`window`] holds them by trace for a while (the trace
//! window), [`component`] names what each child span is (database statement, outbound call,
//! internal code), and [`time_split`] divides each endpoint request's time between its own code
//! and its children. Out: `model::Contribution`s, which the breakdown aggregator
//! (`aggregate::component_time`) turns into per-minute `breakdown_minute` rows.

pub(crate) mod component;
pub(crate) mod time_split;
pub(crate) mod window;

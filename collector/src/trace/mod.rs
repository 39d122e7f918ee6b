//! Trace-level analysis: where each endpoint's time goes.
//!
//! In: validated spans from the pipeline. [`assemble`] holds them by trace for a window,
//! [`component`] names what each child span is (database statement, outbound call, internal
//! code), and [`breakdown`] divides each endpoint request's time between its own code and its
//! children. Out: per-minute breakdown rows (`breakdown_minute`) through the breakdown aggregator.

pub mod assemble;
pub mod breakdown;
pub mod component;

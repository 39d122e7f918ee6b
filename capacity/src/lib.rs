//! Plumb's capacity planning report, worked out from series the collector reads out of its
//! rollups: per service the load it takes, what a request costs, how latency bends with load and
//! where the ceiling is; per host when CPU, memory and each disk reach their limits.
//!
//! In: an [`Input`] (hourly series per service and host, per-minute load figures, minutes binned
//! by load). Out: a [`Report`] ([`report`]), rendered by [`render`] as JSON, Markdown or one
//! self-contained HTML file. Nothing here reads a clock, a file or the network, and nothing
//! iterates a hash map, so the same input gives the same bytes. Services and hosts are worked
//! out on all cores, each on its own, and put back in the input's order.
//!
//! The parts: [`series`] (hourly grids, gaps, counter resets), [`robust`] (Theil–Sen slopes with
//! intervals), [`load`] (typical and peak load, weekly profile, growth, change points), [`cost`]
//! (CPU and memory per request), [`usl`] (the Universal Scalability Law fit, knee and headroom),
//! [`forecast`] (models, rolling-origin backtests, bands and crossing dates).

pub mod cost;
pub mod forecast;
pub mod input;
pub mod load;
pub mod render;
pub mod report;
pub mod robust;
pub mod series;
pub mod synthetic;
pub mod usl;

pub use input::{
    EndpointInput, Filesystem, HostInput, Input, InstanceSeries, Limits, LoadBin, MinuteLoad,
    ServiceHour, ServiceInput,
};
pub use report::Report;

/// Why no report can be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapacityError {
    /// The window holds no hour.
    #[error("the window is empty: `since` must be before the report's time")]
    EmptyWindow,
    /// The horizon is past what the report forecasts.
    #[error("a horizon of {0} days is over the limit of {max} days", max = forecast::MAX_HORIZON_DAYS)]
    HorizonTooLong(u32),
    /// A limit is not a share between 0 and 1.
    #[error("the {0} limit must be above 0 and at most 1")]
    BadLimit(&'static str),
}

/// Works out the report for `input`.
pub fn build(input: &Input) -> Result<Report, CapacityError> {
    report::build(input, &|| {})
}

/// Works out the report for `input`, calling `done` each time a service or host is finished
/// (from the thread that worked it out), for a progress bar.
pub fn build_with_progress(
    input: &Input,
    done: &(dyn Fn() + Sync),
) -> Result<Report, CapacityError> {
    report::build(input, done)
}

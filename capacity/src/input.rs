//! What the report is worked out from: the series the collector reads out of its rollups (or a
//! test makes up). Times are Unix seconds; hours are the start of the hour.

/// Everything one report needs.
#[derive(Clone, Debug, Default)]
pub struct Input {
    /// The end of the window (the report's "now"), Unix seconds.
    pub until: i64,
    /// The start of the window for the load figures, Unix seconds.
    pub since: i64,
    /// Days ahead the forecasts go.
    pub horizon_days: u32,
    /// When a resource counts as full.
    pub limits: Limits,
    /// The p99 latency objective, ms, for the headroom before it is broken.
    pub latency_objective_ms: f64,
    /// Services, in the order they are reported.
    pub services: Vec<ServiceInput>,
    /// Hosts, in the order they are reported.
    pub hosts: Vec<HostInput>,
}

/// Shares of a resource at which it counts as full.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// CPU utilisation (default 0.8).
    pub cpu: f64,
    /// Memory in use (default 0.9).
    pub memory: f64,
    /// Disk in use, per mount point (default 0.9).
    pub disk: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu: 0.8,
            memory: 0.9,
            disk: 0.9,
        }
    }
}

/// One service's series.
#[derive(Clone, Debug, Default)]
pub struct ServiceInput {
    /// `service.name`.
    pub service: String,
    /// Requests per hour (its SERVER spans), hours without requests left out.
    pub hours: Vec<ServiceHour>,
    /// Per-minute throughput over the window.
    pub minutes: MinuteLoad,
    /// The window's minutes grouped by how many requests they saw, with their latency.
    pub load_bins: Vec<LoadBin>,
    /// `process.cpu.time` (cumulative CPU-seconds) per instance: the last value of each hour.
    pub cpu_seconds: Vec<InstanceSeries>,
    /// `process.memory.usage` (bytes) per instance: the mean of each hour.
    pub memory_bytes: Vec<InstanceSeries>,
    /// The service's endpoints over the load window.
    pub endpoints: Vec<EndpointInput>,
}

/// One endpoint (operation) of a service over the load window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointInput {
    /// The operation (`GET /orders/{id}`).
    pub operation: String,
    /// Its requests.
    pub requests: u64,
    /// Requests in its busiest hour.
    pub busiest_hour_requests: u64,
    /// p50 over the window, ms (from the merged histogram).
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
}

/// One hour of a service.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ServiceHour {
    /// The hour's start.
    pub hour: i64,
    /// Requests.
    pub requests: u64,
}

/// Per-minute throughput figures, requests per minute.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MinuteLoad {
    /// Minutes with at least one request.
    pub minutes: u64,
    /// The median minute.
    pub median: f64,
    /// The 99th percentile minute.
    pub p99: f64,
    /// The busiest minute.
    pub max: f64,
}

/// Minutes of similar throughput, together.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadBin {
    /// Minutes in the bin.
    pub minutes: u64,
    /// Their requests.
    pub requests: u64,
    /// Their requests' durations added up, µs.
    pub duration_sum_us: u64,
    /// p50 of their requests, ms (from the merged histogram).
    pub p50_ms: f64,
    /// p95, ms.
    pub p95_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
}

/// One instance's hourly values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceSeries {
    /// `service.instance.id` (or host and process id).
    pub instance: String,
    /// (hour, value), hours in order.
    pub points: Vec<(i64, f64)>,
}

/// One host's series: hourly means of shares in use (0 to 1).
#[derive(Clone, Debug, Default)]
pub struct HostInput {
    /// `host.name`.
    pub host: String,
    /// `system.cpu.utilization`.
    pub cpu: Vec<(i64, f64)>,
    /// Memory used over memory in all.
    pub memory: Vec<(i64, f64)>,
    /// Disk used per mount point.
    pub filesystems: Vec<Filesystem>,
}

/// One mount point's share in use per hour (the hour's last value).
#[derive(Clone, Debug, Default)]
pub struct Filesystem {
    /// The mount point.
    pub mount: String,
    /// (hour, share used).
    pub points: Vec<(i64, f64)>,
}

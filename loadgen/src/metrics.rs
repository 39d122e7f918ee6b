//! Metric requests: points with chosen timestamps, as a backfill of host and process history
//! sends them (the SDK exporters stamp points with the current time, so they cannot), and
//! [`MetricWorkload`], the load generator's stream of current points.

use crate::text;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// What a series is and how its points add up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointKind {
    /// A gauge: each point is the value at its time.
    Gauge,
    /// A cumulative monotonic sum (a counter such as `process.cpu.time`).
    Counter,
}

/// One series: its resource (`service.name`, `host.name`, ...), name, unit, point attributes, and
/// points as (time ns since the epoch, value).
#[derive(Clone, Debug)]
pub struct Series<'a> {
    /// Resource attributes.
    pub resource: &'a [(&'a str, &'a str)],
    /// The metric name.
    pub name: &'a str,
    /// The unit (UCUM).
    pub unit: &'a str,
    /// Gauge or counter.
    pub kind: PointKind,
    /// Attributes of every point.
    pub attributes: &'a [(&'a str, &'a str)],
    /// (time ns, value).
    pub points: &'a [(u64, f64)],
}

/// One request carrying `series`.
pub fn metrics_request(series: &[Series<'_>]) -> ExportMetricsServiceRequest {
    let resource_metrics = series
        .iter()
        .map(|s| {
            let data_points = s
                .points
                .iter()
                .map(|&(time_unix_nano, value)| NumberDataPoint {
                    attributes: s.attributes.iter().map(|(k, v)| text(k, v)).collect(),
                    time_unix_nano,
                    value: Some(number_data_point::Value::AsDouble(value)),
                    ..Default::default()
                })
                .collect();
            let data = match s.kind {
                PointKind::Gauge => Data::Gauge(Gauge { data_points }),
                PointKind::Counter => Data::Sum(Sum {
                    data_points,
                    aggregation_temporality: 2,
                    is_monotonic: true,
                }),
            };
            ResourceMetrics {
                resource: Some(Resource {
                    attributes: s.resource.iter().map(|(k, v)| text(k, v)).collect(),
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: s.name.into(),
                        unit: s.unit.into(),
                        data: Some(data),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// Metric names, units and kinds of the load generator's points: what an instrumented service
/// and its host report.
const METRICS: [(&str, &str, PointKind); 6] = [
    ("http.server.request.count", "{request}", PointKind::Counter),
    ("http.server.active_requests", "{request}", PointKind::Gauge),
    (
        "db.client.connection.count",
        "{connection}",
        PointKind::Gauge,
    ),
    ("process.cpu.time", "s", PointKind::Counter),
    ("system.memory.usage", "By", PointKind::Gauge),
    ("system.cpu.utilization", "1", PointKind::Gauge),
];

/// A deterministic generator of metric export requests with current timestamps: each request is
/// one service's points (on its host), spread over [`METRICS`] and one series per endpoint.
#[derive(Debug)]
pub struct MetricWorkload {
    services: u32,
    endpoints: u32,
    points_per_request: u32,
    rng: fastrand::Rng,
}

impl MetricWorkload {
    /// A generator of requests of `points_per_request` points from `services` services with
    /// `endpoints` series per metric each.
    pub fn new(services: u32, endpoints: u32, points_per_request: u32, seed: u64) -> Self {
        Self {
            services: services.max(1),
            endpoints: endpoints.max(1),
            points_per_request: points_per_request.max(1),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// One export request, its points stamped within the last second.
    pub fn request(&mut self) -> ExportMetricsServiceRequest {
        let service = self.rng.u32(..self.services);
        let now = crate::now_unix_ns();
        let per_metric = self.points_per_request.div_ceil(METRICS.len() as u32);
        let mut left = self.points_per_request;
        let mut metrics = Vec::with_capacity(METRICS.len());
        for (name, unit, kind) in METRICS {
            let data_points: Vec<NumberDataPoint> = (0..per_metric.min(left))
                .map(|n| NumberDataPoint {
                    attributes: vec![
                        text("http.route", &format!("/api/v1/r{}", n % self.endpoints)),
                        text("host.name", &format!("host-{}", service % 3)),
                    ],
                    start_time_unix_nano: now - 60_000_000_000,
                    time_unix_nano: now - self.rng.u64(..1_000_000_000),
                    value: Some(number_data_point::Value::AsDouble(self.rng.f64() * 1000.0)),
                    ..Default::default()
                })
                .collect();
            left -= data_points.len() as u32;
            let data = match kind {
                PointKind::Gauge => Data::Gauge(Gauge { data_points }),
                PointKind::Counter => Data::Sum(Sum {
                    data_points,
                    aggregation_temporality: 2,
                    is_monotonic: true,
                }),
            };
            metrics.push(Metric {
                name: name.into(),
                unit: unit.into(),
                data: Some(data),
                ..Default::default()
            });
        }
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", &format!("svc-{service}")),
                        text("deployment.environment", "load"),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

/// A request with one point of every metric type (gauge, sum, histogram, exponential
/// histogram, summary) at `now_ns`: a small valid input for fuzzing the decoders.
pub fn every_metric_type(now_ns: u64) -> ExportMetricsServiceRequest {
    let number = NumberDataPoint {
        time_unix_nano: now_ns,
        value: Some(number_data_point::Value::AsDouble(1.5)),
        attributes: vec![text("k", "v")],
        ..Default::default()
    };
    let metric = |name: &str, data| Metric {
        name: name.into(),
        unit: "ms".into(),
        data: Some(data),
        ..Default::default()
    };
    let metrics = vec![
        metric(
            "g",
            Data::Gauge(Gauge {
                data_points: vec![number.clone()],
            }),
        ),
        metric(
            "s",
            Data::Sum(Sum {
                data_points: vec![number],
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
        ),
        metric(
            "h",
            Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: now_ns,
                    count: 3,
                    bucket_counts: vec![1, 1, 1],
                    explicit_bounds: vec![1.0, 2.0],
                    ..Default::default()
                }],
                aggregation_temporality: 1,
            }),
        ),
        metric(
            "e",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    time_unix_nano: now_ns,
                    count: 2,
                    scale: 3,
                    positive: Some(Buckets {
                        offset: -2,
                        bucket_counts: vec![1, 1],
                    }),
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            }),
        ),
        metric(
            "q",
            Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: now_ns,
                    count: 4,
                    sum: 8.0,
                    ..Default::default()
                }],
            }),
        ),
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text("service.name", "shop")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_holds_the_points_asked_for() {
        let mut workload = MetricWorkload::new(3, 12, 500, 1);
        for _ in 0..5 {
            let request = workload.request();
            let points: usize = request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    _ => 0,
                })
                .sum();
            assert_eq!(points, 500);
        }
        assert_eq!(
            MetricWorkload::new(1, 1, 7, 2)
                .request()
                .resource_metrics
                .len(),
            1
        );
    }
}

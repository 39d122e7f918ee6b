//! Metric points with chosen timestamps, as OTLP requests: what a backfill of host and process
//! history sends (the SDK exporters stamp points with the current time, so they cannot).

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

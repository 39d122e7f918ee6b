//! Metric normalisation: OTLP gauges, sums, explicit and exponential histograms and summaries
//! become one [`MetricPoint`] per data point.
//!
//! Exponential histograms are stored with explicit bounds: the first bucket holds the zero and
//! negative counts up to the lowest positive bound, then one bucket per positive exponential
//! bucket, so every histogram in storage reads the same way.

use super::attributes::any_value_to_string;
use super::spans::SpanLimits;
use super::{Normalised, service_name};
use crate::model::{MetricPoint, MetricType};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, NumberDataPoint, metric::Data, number_data_point,
};

/// Converts every data point of a request into rows; points with absurd timestamps are rejected.
pub(crate) fn normalise_metrics(
    request: ExportMetricsServiceRequest,
    limits: SpanLimits,
    now_unix_ns: u64,
) -> Normalised<MetricPoint> {
    let mut out = Normalised::default();
    let earliest = now_unix_ns.saturating_sub(limits.max_age.as_nanos() as u64);
    let latest = now_unix_ns.saturating_add(limits.max_future.as_nanos() as u64);
    for resource_metrics in request.resource_metrics {
        let (service, unknown) = service_name(resource_metrics.resource.as_ref());
        let (resource_keys, resource_values): (Vec<String>, Vec<String>) = resource_metrics
            .resource
            .map(|r| text_pairs(&r.attributes))
            .unwrap_or_default()
            .into_iter()
            .unzip();
        for scope in resource_metrics.scope_metrics {
            for metric in scope.metrics {
                let Some(data) = metric.data else { continue };
                let mut push = |time_ns: u64,
                                attributes: &[KeyValue],
                                fill: &dyn Fn(&mut MetricPoint)| {
                    if unknown {
                        out.unknown_service += 1;
                    }
                    if time_ns < earliest || time_ns > latest {
                        out.reject(|| format!("metric {:?}: point time {time_ns} ns is outside the accepted window", metric.name));
                        return;
                    }
                    let (attribute_keys, attribute_values) =
                        text_pairs(attributes).into_iter().unzip();
                    let mut row = MetricPoint {
                        timestamp: u32::try_from(time_ns / 1_000_000_000).unwrap_or(u32::MAX),
                        time_ns,
                        service: service.clone(),
                        name: metric.name.clone(),
                        unit: metric.unit.clone(),
                        metric_type: 0,
                        temporality: 0,
                        is_monotonic: 0,
                        attribute_keys,
                        attribute_values,
                        resource_keys: resource_keys.clone(),
                        resource_values: resource_values.clone(),
                        value: 0.0,
                        count: 0,
                        sum: 0.0,
                        bucket_bounds: Vec::new(),
                        bucket_counts: Vec::new(),
                    };
                    fill(&mut row);
                    out.accepted.push(row);
                };
                match data {
                    Data::Gauge(gauge) => {
                        for p in &gauge.data_points {
                            push(p.time_unix_nano, &p.attributes, &|row| {
                                row.metric_type = MetricType::Gauge as i8;
                                row.value = number_value(p);
                            });
                        }
                    }
                    Data::Sum(sum) => {
                        for p in &sum.data_points {
                            push(p.time_unix_nano, &p.attributes, &|row| {
                                row.metric_type = MetricType::Sum as i8;
                                row.temporality = temporality(sum.aggregation_temporality);
                                row.is_monotonic = u8::from(sum.is_monotonic);
                                row.value = number_value(p);
                            });
                        }
                    }
                    Data::Histogram(histogram) => {
                        for p in &histogram.data_points {
                            push(p.time_unix_nano, &p.attributes, &|row| {
                                row.metric_type = MetricType::Histogram as i8;
                                row.temporality = temporality(histogram.aggregation_temporality);
                                row.count = p.count;
                                row.sum = p.sum.unwrap_or(0.0);
                                row.bucket_bounds = p.explicit_bounds.clone();
                                row.bucket_counts = p.bucket_counts.clone();
                            });
                        }
                    }
                    Data::ExponentialHistogram(histogram) => {
                        for p in &histogram.data_points {
                            push(p.time_unix_nano, &p.attributes, &|row| {
                                row.metric_type = MetricType::ExponentialHistogram as i8;
                                row.temporality = temporality(histogram.aggregation_temporality);
                                row.count = p.count;
                                row.sum = p.sum.unwrap_or(0.0);
                                (row.bucket_bounds, row.bucket_counts) = exponential_to_explicit(p);
                            });
                        }
                    }
                    Data::Summary(summary) => {
                        for p in &summary.data_points {
                            push(p.time_unix_nano, &p.attributes, &|row| {
                                row.metric_type = MetricType::Summary as i8;
                                row.count = p.count;
                                row.sum = p.sum;
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

fn number_value(point: &NumberDataPoint) -> f64 {
    match point.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

fn temporality(value: i32) -> i8 {
    i8::try_from(value)
        .ok()
        .filter(|t| (0..=2).contains(t))
        .unwrap_or(0)
}

fn text_pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value
                    .as_ref()
                    .map(any_value_to_string)
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Explicit `(upper bounds, counts)` for an exponential histogram point.
fn exponential_to_explicit(point: &ExponentialHistogramDataPoint) -> (Vec<f64>, Vec<u64>) {
    let base = 2f64.powf(2f64.powi(-point.scale.clamp(-10, 20)));
    let negative: u64 = point
        .negative
        .as_ref()
        .map_or(0, |b| b.bucket_counts.iter().sum());
    let (offset, positive) = point
        .positive
        .as_ref()
        .map_or((0, &[][..]), |b| (b.offset, b.bucket_counts.as_slice()));
    let mut bounds = Vec::with_capacity(positive.len() + 1);
    let mut counts = Vec::with_capacity(positive.len() + 2);
    bounds.push(base.powi(offset));
    counts.push(point.zero_count + negative);
    for (i, &c) in positive.iter().enumerate() {
        bounds.push(base.powi(offset + i as i32 + 1));
        counts.push(c);
    }
    counts.push(0);
    (bounds, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;

    #[test]
    fn exponential_buckets_become_explicit_bounds() {
        let point = ExponentialHistogramDataPoint {
            scale: 0,
            zero_count: 2,
            positive: Some(Buckets {
                offset: 1,
                bucket_counts: vec![3, 4],
            }),
            ..Default::default()
        };
        let (bounds, counts) = exponential_to_explicit(&point);
        assert_eq!(bounds, vec![2.0, 4.0, 8.0]);
        assert_eq!(counts, vec![2, 3, 4, 0]);
    }
}

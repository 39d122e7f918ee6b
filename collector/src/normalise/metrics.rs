//! Metric normalisation, straight from the protobuf bytes.
//!
//! In: an encoded `ExportMetricsServiceRequest`. Out: one `metrics` row per data point of its
//! gauges, sums, explicit and exponential histograms and summaries, written in RowBinary as the
//! point is read ([`MetricRows`]): no prost structs are built and nothing is allocated per point
//! (attribute values that are not text aside: numbers go into the request's arena). Points with
//! timestamps outside the accepted window are rejected one by one; bytes that are not a valid
//! request are a [`WireError`]. Attributes are kept within the same limits as spans' (count per
//! point and per resource, value length), and what is dropped or cut is counted.
//!
//! Exponential histograms are stored with explicit bounds: the first bucket holds the zero and
//! negative counts up to the lowest positive bound, then one bucket per positive exponential
//! bucket, so every histogram in storage reads the same way.
//!
//! Only what Plumb stores is read: descriptions, metadata, scopes, start times, exemplars,
//! flags, minimums and maximums are skipped.

use super::spans::{SpanLimits, Truncations};
use super::wire_attributes::{attribute_run, key_value, resource_and_scopes};
use super::{Normalised, UNKNOWN_SERVICE};
use crate::model::{Attribute, MetricType, find};
use crate::store::metric_rows::{MetricColumns, MetricRows, PointValues};
use bumpalo::Bump;
use plumb_otlp::wire::{Fields, WireError};
use std::ops::RangeInclusive;

/// The lists one point's reading fills, kept from point to point so that their room is reused.
#[derive(Default)]
struct Scratch<'a> {
    attributes: Vec<Attribute<'a>>,
    bounds: Vec<f64>,
    counts: Vec<u64>,
    /// An exponential histogram's negative buckets' counts.
    negative: Vec<u64>,
}

/// Converts every data point of an encoded request into `metrics` rows.
pub(crate) fn normalise_metrics(
    request: &[u8],
    limits: SpanLimits,
    now_unix_ns: u64,
) -> Result<Normalised<MetricRows>, WireError> {
    let window = now_unix_ns.saturating_sub(limits.max_age.as_nanos() as u64)
        ..=now_unix_ns.saturating_add(limits.max_future.as_nanos() as u64);
    let arena = Bump::new();
    let mut scratch = Scratch::default();
    let mut out = Normalised {
        accepted: MetricRows::for_request(request.len()),
        ..Normalised::default()
    };
    for field in Fields::new(request) {
        let (1, resource_metrics) = field? else {
            continue;
        };
        let mut resource = Vec::new();
        let truncations = &mut out.truncations;
        let scopes = resource_and_scopes(resource_metrics.bytes()?, &arena, |kv| {
            truncations.push(&mut resource, 0, kv, &limits);
        })?;
        let service = match find(&resource, "service.name") {
            Some(name) if !name.is_empty() => name,
            _ => UNKNOWN_SERVICE,
        };
        out.accepted.resource(&resource);
        for scope in scopes {
            for field in Fields::new(scope) {
                if let (2, metric) = field? {
                    let metric = WireMetric::read(metric.bytes()?)?;
                    let context = PointContext {
                        service,
                        window: &window,
                        limits: &limits,
                        arena: &arena,
                    };
                    metric.points(&context, &mut scratch, &mut out)?;
                }
            }
        }
    }
    Ok(out)
}

/// What every point of a request is read with.
struct PointContext<'c, 'a> {
    /// The service of the points' resource.
    service: &'c str,
    /// The times accepted.
    window: &'c RangeInclusive<u64>,
    /// The attribute limits.
    limits: &'c SpanLimits,
    /// The request's arena, for attribute values that are not text.
    arena: &'a Bump,
}

/// One metric as found on the wire: its names and its data (the field number says which kind).
struct WireMetric<'a> {
    name: &'a str,
    unit: &'a str,
    data: Option<(MetricType, &'a [u8])>,
}

impl<'a> WireMetric<'a> {
    fn read(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut metric = Self {
            name: "",
            unit: "",
            data: None,
        };
        for field in Fields::new(bytes) {
            let kind = match field? {
                (1, v) => {
                    metric.name = v.str()?;
                    continue;
                }
                (3, v) => {
                    metric.unit = v.str()?;
                    continue;
                }
                (5, v) => (MetricType::Gauge, v),
                (7, v) => (MetricType::Sum, v),
                (9, v) => (MetricType::Histogram, v),
                (10, v) => (MetricType::ExponentialHistogram, v),
                (11, v) => (MetricType::Summary, v),
                _ => continue,
            };
            // A oneof: the last of its fields counts, as prost reads it.
            metric.data = Some((kind.0, kind.1.bytes()?));
        }
        Ok(metric)
    }

    /// Writes a row for each of the metric's points in the window into `out`, and rejects the
    /// others.
    fn points(
        &self,
        context: &PointContext<'_, 'a>,
        scratch: &mut Scratch<'a>,
        out: &mut Normalised<MetricRows>,
    ) -> Result<(), WireError> {
        let service = context.service;
        let Some((metric_type, data)) = self.data else {
            return Ok(());
        };
        let mut columns = MetricColumns {
            service,
            name: self.name,
            unit: self.unit,
            metric_type,
            temporality: 0,
            is_monotonic: false,
        };
        // Sums and histograms say their temporality (field 2), sums whether they only grow.
        if !matches!(metric_type, MetricType::Gauge | MetricType::Summary) {
            for field in Fields::new(data) {
                match field? {
                    (2, v) => columns.temporality = temporality(v.varint()?),
                    (3, v) if metric_type == MetricType::Sum => {
                        columns.is_monotonic = v.varint()? != 0;
                    }
                    _ => {}
                }
            }
        }
        out.accepted.metric(&columns);
        for field in Fields::new(data) {
            let (1, point) = field? else { continue };
            if service == UNKNOWN_SERVICE {
                out.unknown_service += 1;
            }
            let (time_ns, values) = read_point(
                point.bytes()?,
                metric_type,
                context,
                scratch,
                &mut out.truncations,
            )?;
            if !context.window.contains(&time_ns) {
                out.reject(|| {
                    format!(
                        "metric {:?}: point time {time_ns} ns is outside the accepted window",
                        self.name
                    )
                });
                continue;
            }
            let values = PointValues {
                bounds: &scratch.bounds,
                counts: &scratch.counts,
                ..values
            };
            out.accepted.point(time_ns, &scratch.attributes, &values);
        }
        Ok(())
    }
}

/// Reads one data point of a metric of `kind`: its time and values come back, its attributes
/// and buckets are left in `scratch`.
fn read_point<'a>(
    bytes: &'a [u8],
    kind: MetricType,
    context: &PointContext<'_, 'a>,
    scratch: &mut Scratch<'a>,
    truncations: &mut Truncations,
) -> Result<(u64, PointValues<'static>), WireError> {
    use MetricType::{ExponentialHistogram, Gauge, Histogram, Sum, Summary};
    scratch.attributes.clear();
    scratch.bounds.clear();
    scratch.counts.clear();
    scratch.negative.clear();
    let attributes_field = match kind {
        Histogram => 9,
        ExponentialHistogram => 1,
        Gauge | Sum | Summary => 7,
    };
    let mut run = None;
    let mut time_ns = 0;
    let mut values = PointValues::default();
    let mut exponential = Exponential::default();
    for field in Fields::new(bytes) {
        match (kind, field?) {
            (_, (n, kv)) if n == attributes_field => {
                let kv = kv.bytes()?;
                let run = run.get_or_insert_with(|| attribute_run(bytes, kv));
                let kv = key_value(kv, run, context.arena)?;
                truncations.push(&mut scratch.attributes, 0, kv, context.limits);
            }
            (_, (3, v)) => time_ns = v.fixed64()?,
            (Gauge | Sum, (4, v)) => values.value = f64::from_bits(v.fixed64()?),
            (Gauge | Sum, (6, v)) => values.value = v.fixed64()? as i64 as f64,
            (Histogram | ExponentialHistogram | Summary, (4, v)) => values.count = v.fixed64()?,
            (Histogram | ExponentialHistogram | Summary, (5, v)) => {
                values.sum = f64::from_bits(v.fixed64()?);
            }
            (Histogram, (6, v)) => v.push_fixed64s(&mut scratch.counts, |count| count)?,
            (Histogram, (7, v)) => v.push_fixed64s(&mut scratch.bounds, f64::from_bits)?,
            (ExponentialHistogram, (6, v)) => exponential.scale = v.sint32()?,
            (ExponentialHistogram, (7, v)) => exponential.zero_count = v.fixed64()?,
            (ExponentialHistogram, (8, v)) => {
                for field in Fields::new(v.bytes()?) {
                    match field? {
                        (1, v) => exponential.offset = v.sint32()?,
                        (2, v) => v.push_varints(&mut scratch.counts)?,
                        _ => {}
                    }
                }
            }
            (ExponentialHistogram, (9, v)) => {
                for field in Fields::new(v.bytes()?) {
                    if let (2, v) = field? {
                        v.push_varints(&mut scratch.negative)?;
                    }
                }
            }
            _ => {}
        }
    }
    if kind == ExponentialHistogram {
        exponential.negative = scratch
            .negative
            .iter()
            .fold(0, |sum, c| sum.wrapping_add(*c));
        exponential.to_explicit(&mut scratch.bounds, &mut scratch.counts);
    }
    Ok((time_ns, values))
}

/// What an exponential histogram point says besides its positive counts.
#[derive(Default)]
struct Exponential {
    scale: i32,
    zero_count: u64,
    offset: i32,
    /// The sum of its negative buckets' counts.
    negative: u64,
}

impl Exponential {
    /// Turns `counts`, the positive buckets' counts, into explicit buckets: `bounds` gets their
    /// upper bounds (after the bound of the zero and negative bucket), `counts` a first count
    /// for that bucket and a last one, always 0, above the highest bound.
    fn to_explicit(&self, bounds: &mut Vec<f64>, counts: &mut Vec<u64>) {
        let base = 2f64.powf(2f64.powi(-self.scale.clamp(-10, 20)));
        bounds.extend((0..=counts.len()).map(|i| base.powi(self.offset.saturating_add(i as i32))));
        counts.insert(0, self.zero_count.wrapping_add(self.negative));
        counts.push(0);
    }
}

/// An aggregation temporality as stored: 0 unspecified, 1 delta, 2 cumulative (0 for any other
/// number).
fn temporality(value: u64) -> i8 {
    i8::try_from(value)
        .ok()
        .filter(|t| (0..=2).contains(t))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalise::attributes::any_value_to_string;
    use crate::store::metric_rows::{MetricRowRead, metric_rows, string_pairs};
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
        Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
        exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use proptest::prelude::*;
    use prost::Message;
    use std::time::Duration;

    const NOW: u64 = 1_800_000_000_000_000_000;
    const LIMITS: SpanLimits = SpanLimits {
        max_age: Duration::from_secs(3600),
        max_future: Duration::from_secs(60),
        max_attributes: 128,
        max_value_bytes: 4096,
        max_spans: 10_000,
    };

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> Vec<u8> {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn metric(name: &str, data: Data) -> Metric {
        Metric {
            name: name.into(),
            unit: "s".into(),
            data: Some(data),
            ..Default::default()
        }
    }

    fn rows_of(bytes: &[u8]) -> (Normalised<()>, Vec<u8>) {
        let out = normalise_metrics(bytes, LIMITS, NOW).expect("valid request");
        let counts = Normalised {
            accepted: (),
            rejected: out.rejected,
            first_error: out.first_error,
            unknown_service: out.unknown_service,
            truncations: out.truncations,
        };
        (counts, out.accepted.finish().0.bytes.to_vec())
    }

    fn text(row: &[u8]) -> String {
        String::from_utf8_lossy(row).into_owned()
    }

    #[test]
    fn every_kind_of_point_becomes_a_row() {
        let resource = vec![
            kv("service.name", Value::StringValue("shop".into())),
            kv("host.name", Value::StringValue("box-1".into())),
        ];
        let bytes = request(
            resource,
            vec![
                metric(
                    "queue.depth",
                    Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: NOW,
                            value: Some(number_data_point::Value::AsInt(-7)),
                            attributes: vec![kv("queue", Value::StringValue("mail".into()))],
                            ..Default::default()
                        }],
                    }),
                ),
                metric(
                    "requests",
                    Data::Sum(Sum {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: NOW + 1,
                            value: Some(number_data_point::Value::AsDouble(2.5)),
                            attributes: vec![kv("code", Value::IntValue(200))],
                            ..Default::default()
                        }],
                        aggregation_temporality: 2,
                        is_monotonic: true,
                    }),
                ),
                metric(
                    "latency",
                    Data::Histogram(Histogram {
                        data_points: vec![HistogramDataPoint {
                            time_unix_nano: NOW + 2,
                            count: 6,
                            sum: Some(1.5),
                            bucket_counts: vec![1, 2, 3],
                            explicit_bounds: vec![0.1, 1.0],
                            ..Default::default()
                        }],
                        aggregation_temporality: 1,
                    }),
                ),
                metric(
                    "size",
                    Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: vec![ExponentialHistogramDataPoint {
                            time_unix_nano: NOW + 3,
                            count: 10,
                            sum: Some(40.0),
                            scale: 0,
                            zero_count: 2,
                            positive: Some(Buckets {
                                offset: 1,
                                bucket_counts: vec![3, 4],
                            }),
                            negative: Some(Buckets {
                                offset: 0,
                                bucket_counts: vec![1],
                            }),
                            ..Default::default()
                        }],
                        aggregation_temporality: 2,
                    }),
                ),
                metric(
                    "rpc",
                    Data::Summary(Summary {
                        data_points: vec![SummaryDataPoint {
                            time_unix_nano: NOW + 4,
                            count: 3,
                            sum: 9.0,
                            ..Default::default()
                        }],
                    }),
                ),
            ],
        );
        let (counts, encoded) = rows_of(&bytes);
        assert_eq!((counts.rejected, counts.unknown_service), (0, 0));
        let rows = metric_rows(&encoded).expect("metric rows");
        let summary: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    text(r.name),
                    r.metric_type,
                    r.temporality,
                    r.is_monotonic,
                    r.time_ns - NOW,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("queue.depth".into(), 1, 0, 0, 0),
                ("requests".into(), 2, 2, 1, 1),
                ("latency".into(), 3, 1, 0, 2),
                ("size".into(), 4, 2, 0, 3),
                ("rpc".into(), 5, 0, 0, 4),
            ]
        );
        for row in &rows {
            assert_eq!(
                (text(row.service), text(row.unit)),
                ("shop".into(), "s".into())
            );
            assert_eq!(
                string_pairs(row.resource),
                Some((
                    vec!["service.name".into(), "host.name".into()],
                    vec!["shop".into(), "box-1".into()]
                ))
            );
            assert_eq!(row.timestamp, 1_800_000_000);
        }
        assert_eq!(rows[0].value, -7.0);
        assert_eq!(
            string_pairs(rows[0].attributes),
            Some((vec!["queue".into()], vec!["mail".into()]))
        );
        assert_eq!(rows[1].value, 2.5);
        assert_eq!(
            string_pairs(rows[1].attributes),
            Some((vec!["code".into()], vec!["200".into()]))
        );
        let latency = &rows[2];
        assert_eq!((latency.count, latency.sum), (6, 1.5));
        assert_eq!(
            (&latency.bounds[..], &latency.counts[..]),
            (&[0.1, 1.0][..], &[1, 2, 3][..])
        );
        // Zero and negative counts under 2^1, then (2, 4] and (4, 8], then nothing above 8.
        let size = &rows[3];
        assert_eq!((size.count, size.sum), (10, 40.0));
        assert_eq!(
            (&size.bounds[..], &size.counts[..]),
            (&[2.0, 4.0, 8.0][..], &[3, 3, 4, 0][..])
        );
        assert_eq!((rows[4].count, rows[4].sum), (3, 9.0));
    }

    #[test]
    fn points_outside_the_window_are_rejected_one_by_one() {
        let point = |time_unix_nano| NumberDataPoint {
            time_unix_nano,
            value: Some(number_data_point::Value::AsDouble(1.0)),
            ..Default::default()
        };
        let bytes = request(
            vec![],
            vec![metric(
                "cpu",
                Data::Gauge(Gauge {
                    data_points: vec![point(NOW), point(NOW - 7200 * 1_000_000_000), point(0)],
                }),
            )],
        );
        let (counts, encoded) = rows_of(&bytes);
        assert_eq!(counts.rejected, 2);
        assert_eq!(
            counts.unknown_service, 3,
            "no service.name: every point counted"
        );
        assert!(
            counts
                .first_error
                .is_some_and(|e| e.contains("\"cpu\"") && e.contains("outside the accepted window"))
        );
        let rows = metric_rows(&encoded).expect("metric rows");
        assert_eq!(rows.len(), 1);
        assert_eq!(text(rows[0].service), UNKNOWN_SERVICE);
    }

    #[test]
    fn attributes_are_kept_within_the_span_limits_and_what_is_over_is_counted() {
        let text = |s: &str| Value::StringValue(s.into());
        let bytes = request(
            vec![
                kv("service.name", text("shop")),
                kv("host.name", text("a-long-host")),
                kv("os.type", text("linux")),
            ],
            vec![metric(
                "cpu",
                Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: NOW,
                        attributes: vec![
                            kv("cpu", text("0")),
                            kv("state", text("user-mode")),
                            kv("extra", text("x")),
                        ],
                        ..Default::default()
                    }],
                }),
            )],
        );
        let limits = SpanLimits {
            max_attributes: 2,
            max_value_bytes: 4,
            ..LIMITS
        };
        let out = normalise_metrics(&bytes, limits, NOW).expect("valid request");
        assert_eq!(
            out.truncations.attributes_dropped, 2,
            "one of the resource, one of the point"
        );
        assert_eq!(
            out.truncations.values_truncated, 2,
            "a-long-host and user-mode"
        );
        let encoded = out.accepted.finish().0.bytes;
        let rows = metric_rows(&encoded).expect("rows");
        assert_eq!(
            string_pairs(rows[0].attributes),
            Some((
                vec!["cpu".into(), "state".into()],
                vec!["0".into(), "user".into()]
            ))
        );
        assert_eq!(
            string_pairs(rows[0].resource),
            Some((
                vec!["service.name".into(), "host.name".into()],
                vec!["shop".into(), "a-lo".into()]
            ))
        );
    }

    #[test]
    fn repeated_fields_are_read_unpacked_too() {
        // A histogram point whose counts and bounds are one field per value, as encoders that do
        // not pack write them: time (3), count (4), two counts (6), one bound (7).
        let mut point = vec![0x19];
        point.extend(NOW.to_le_bytes());
        point.push(0x21);
        point.extend(3u64.to_le_bytes());
        for count in [1u64, 2] {
            point.push(0x31);
            point.extend(count.to_le_bytes());
        }
        point.push(0x39);
        point.extend(0.5f64.to_le_bytes());
        let histogram = [&[0x0a, point.len() as u8][..], &point].concat();
        let metric = [&[0x4a, histogram.len() as u8][..], &histogram].concat();
        let scope = [&[0x12, metric.len() as u8][..], &metric].concat();
        let resource_metrics = [&[0x12, scope.len() as u8][..], &scope].concat();
        let bytes = [&[0x0a, resource_metrics.len() as u8][..], &resource_metrics].concat();
        let (_, encoded) = rows_of(&bytes);
        let rows = metric_rows(&encoded).expect("metric rows");
        assert_eq!(
            (&rows[0].bounds[..], &rows[0].counts[..]),
            (&[0.5][..], &[1, 2][..])
        );
    }

    #[test]
    fn malformed_requests_are_an_error() {
        let good = request(
            vec![],
            vec![metric(
                "cpu",
                Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: NOW,
                        ..Default::default()
                    }],
                }),
            )],
        );
        assert!(normalise_metrics(&good[..good.len() - 1], LIMITS, NOW).is_err());
        assert!(normalise_metrics(&[0x0a, 0x05, 1], LIMITS, NOW).is_err());
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            ".{0,12}".prop_map(Value::StringValue),
            any::<i64>().prop_map(Value::IntValue),
            any::<bool>().prop_map(Value::BoolValue),
            any::<f64>().prop_map(Value::DoubleValue),
        ]
    }

    fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
        proptest::collection::vec(("[a-z.]{1,10}", any_value()), 0..5)
            .prop_map(|pairs| pairs.into_iter().map(|(k, v)| kv(&k, v)).collect())
    }

    /// A metric of any kind with up to three points, times within the window.
    fn any_metric() -> impl Strategy<Value = Metric> {
        let number = || {
            (attributes(), 0u64..1_000_000, any::<f64>()).prop_map(|(a, t, v)| NumberDataPoint {
                attributes: a,
                time_unix_nano: NOW - t,
                value: Some(number_data_point::Value::AsDouble(v)),
                ..Default::default()
            })
        };
        let histogram = (
            attributes(),
            any::<u64>(),
            proptest::collection::vec(any::<u64>(), 0..4),
        )
            .prop_map(|(a, count, counts)| HistogramDataPoint {
                attributes: a,
                time_unix_nano: NOW,
                count,
                explicit_bounds: (0..counts.len().saturating_sub(1))
                    .map(|i| i as f64)
                    .collect(),
                bucket_counts: counts,
                ..Default::default()
            });
        let data = prop_oneof![
            proptest::collection::vec(number(), 0..3)
                .prop_map(|data_points| Data::Gauge(Gauge { data_points })),
            (
                proptest::collection::vec(number(), 0..3),
                0i32..4,
                any::<bool>()
            )
                .prop_map(|(data_points, aggregation_temporality, is_monotonic)| {
                    Data::Sum(Sum {
                        data_points,
                        aggregation_temporality,
                        is_monotonic,
                    })
                }),
            (proptest::collection::vec(histogram, 0..3), 0i32..3).prop_map(
                |(data_points, aggregation_temporality)| Data::Histogram(Histogram {
                    data_points,
                    aggregation_temporality,
                })
            ),
        ];
        ("[a-z.]{0,12}", ".{0,6}", data).prop_map(|(name, unit, data)| Metric {
            name,
            unit,
            data: Some(data),
            ..Default::default()
        })
    }

    /// What the row of `point` (of `metric`, in a resource of `resource`) must hold, from the
    /// decoded structs.
    fn expected(resource: &[KeyValue], metric: &Metric) -> Vec<String> {
        let pairs = |list: &[KeyValue]| -> String {
            list.iter()
                .map(|kv| {
                    format!(
                        "{}={}",
                        kv.key,
                        any_value_to_string(kv.value.as_ref().expect("set"))
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let service = resource
            .iter()
            .find(|kv| kv.key == "service.name")
            .map(|kv| any_value_to_string(kv.value.as_ref().expect("set")))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| UNKNOWN_SERVICE.into());
        let head = format!(
            "{service}|{}|{}|{}",
            metric.name,
            metric.unit,
            pairs(resource)
        );
        match metric.data.as_ref().expect("set") {
            Data::Gauge(g) => g
                .data_points
                .iter()
                .map(|p| {
                    format!(
                        "{head}|1|0|0|{}|{}|{:?}",
                        p.time_unix_nano,
                        pairs(&p.attributes),
                        number(p)
                    )
                })
                .collect(),
            Data::Sum(s) => s
                .data_points
                .iter()
                .map(|p| {
                    let temporality = if s.aggregation_temporality <= 2 {
                        s.aggregation_temporality
                    } else {
                        0
                    };
                    format!(
                        "{head}|2|{temporality}|{}|{}|{}|{:?}",
                        u8::from(s.is_monotonic),
                        p.time_unix_nano,
                        pairs(&p.attributes),
                        number(p)
                    )
                })
                .collect(),
            Data::Histogram(h) => h
                .data_points
                .iter()
                .map(|p| {
                    format!(
                        "{head}|3|{}|0|{}|{}|{}|{:?}|{:?}",
                        h.aggregation_temporality,
                        p.time_unix_nano,
                        pairs(&p.attributes),
                        p.count,
                        p.explicit_bounds,
                        p.bucket_counts
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn number(point: &NumberDataPoint) -> u64 {
        match point.value {
            Some(number_data_point::Value::AsDouble(d)) => d.to_bits(),
            _ => 0,
        }
    }

    /// The same text [`expected`] makes, from a row read back.
    fn described(row: &MetricRowRead<'_>) -> String {
        let pairs = |arrays: &[u8]| -> String {
            let (keys, values) = string_pairs(arrays).expect("arrays");
            keys.iter()
                .zip(&values)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let head = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            text(row.service),
            text(row.name),
            text(row.unit),
            pairs(row.resource),
            row.metric_type,
            row.temporality,
            row.is_monotonic,
            row.time_ns,
            pairs(row.attributes)
        );
        match row.metric_type {
            3 => format!("{head}|{}|{:?}|{:?}", row.count, row.bounds, row.counts),
            _ => format!("{head}|{:?}", row.value.to_bits()),
        }
    }

    proptest! {
        #[test]
        fn rows_hold_what_prost_decodes(
            resource in attributes(),
            service in proptest::option::of(".{0,8}"),
            metrics in proptest::collection::vec(any_metric(), 0..4),
        ) {
            let mut resource = resource;
            if let Some(service) = service {
                resource.push(kv("service.name", Value::StringValue(service)));
            }
            let bytes = request(resource.clone(), metrics.clone());
            let (counts, encoded) = rows_of(&bytes);
            let want: Vec<String> = metrics.iter().flat_map(|m| expected(&resource, m)).collect();
            let got: Vec<String> = metric_rows(&encoded).expect("rows").iter().map(described).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(counts.rejected, 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = normalise_metrics(&bytes, LIMITS, NOW);
        }
    }
}

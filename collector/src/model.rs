//! The domain types that several stages share: a validated [`Span`] and its [`Attribute`]s, the
//! [`SpanKind`], the [`ComponentType`] of a part of an endpoint's time and one request's
//! [`Contribution`] to it (from the trace analysis to the breakdown aggregator), and a metric's
//! [`MetricType`].
//!
//! Everything here is plain data; it depends on no other module of the collector, so every
//! stage can use it without reaching sideways. The `Enum8` numbers and names that ClickHouse
//! stores for span kinds and component types are defined here and nowhere else (the schema
//! builds its column types from them).

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock};

/// An attribute as Plumb keeps it: key and value as text, borrowed from the request bytes or,
/// for a value written out (a number, an array), from the request's arena. Nothing in it is
/// owned, so a list of them is dropped without visiting each.
pub(crate) type Attribute<'a> = (&'a str, &'a str);

/// The text of the attribute named `key`, if any.
pub(crate) fn find<'s>(attributes: &'s [Attribute<'_>], key: &str) -> Option<&'s str> {
    attributes.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The text of the attribute named `key`, if it is present and not empty.
pub(crate) fn find_text<'s>(attributes: &'s [Attribute<'_>], key: &str) -> Option<&'s str> {
    find(attributes, key).filter(|s| !s.is_empty())
}

/// What a span is, as OTLP numbers it (stored as an `Enum8`, same numbers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i8)]
pub(crate) enum SpanKind {
    /// Not said.
    #[default]
    Unspecified = 0,
    /// Code inside one service.
    Internal = 1,
    /// The handling of a request from another service: an endpoint.
    Server = 2,
    /// A request to another service.
    Client = 3,
    /// A message sent.
    Producer = 4,
    /// A message received and handled: an endpoint too.
    Consumer = 5,
}

impl SpanKind {
    /// Every kind, in `Enum8` order.
    pub(crate) const ALL: [Self; 6] = [
        Self::Unspecified,
        Self::Internal,
        Self::Server,
        Self::Client,
        Self::Producer,
        Self::Consumer,
    ];

    /// The kind of an OTLP span kind number; numbers OTLP does not define are `Unspecified`.
    pub(crate) fn from_otlp(kind: i32) -> Self {
        Self::ALL
            .into_iter()
            .find(|k| *k as i32 == kind)
            .unwrap_or_default()
    }

    /// The name stored in ClickHouse and used by the query API.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }

    /// The kind with this stored name.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A service and one of its names (an operation, or a component of the breakdown), interned
/// together so that one thin pointer names both. It carries the hash of its two texts, so that
/// the maps keyed by it (per span, on the ingest path) hash one number instead of the texts.
#[derive(Debug)]
pub(crate) struct Named {
    /// The service.
    pub(crate) service: Arc<str>,
    /// The name.
    pub(crate) name: Arc<str>,
    /// [`Named::text_hash`] of the two.
    text_hash: u64,
}

/// The hasher of [`Named::text_hash`]: seeded once per process, so equal texts hash equally in
/// every map of the process.
static TEXT_HASHER: LazyLock<hashbrown::DefaultHashBuilder> = LazyLock::new(Default::default);

impl Named {
    /// A shared pair, for spans built outside the limiters (tests and test helpers).
    pub(crate) fn new(service: &str, name: &str) -> Arc<Self> {
        Arc::new(Self::from_parts(Arc::from(service), Arc::from(name)))
    }

    /// The pair of `service` and `name`.
    pub(crate) fn from_parts(service: Arc<str>, name: Arc<str>) -> Self {
        Self {
            text_hash: Self::text_hash(&service, &name),
            service,
            name,
        }
    }

    /// The hash a pair of these texts carries (and feeds to any [`Hasher`]): a name looked up
    /// by its texts hashes them with this.
    pub(crate) fn text_hash(service: &str, name: &str) -> u64 {
        TEXT_HASHER.hash_one((service, name))
    }
}

impl Hash for Named {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.text_hash);
    }
}

/// Equal texts; the same pointer or a different hash decides without reading them.
impl PartialEq for Named {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
            || (self.text_hash == other.text_hash
                && self.service == other.service
                && self.name == other.name)
    }
}

impl Eq for Named {}

/// One validated span, ready to aggregate and store; it borrows from the request bytes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Span<'a> {
    /// `service.name` of the span's resource and the operation it is aggregated under (see
    /// `normalise::operation_name`), interned together.
    pub(crate) endpoint: Arc<Named>,
    /// The span's own name.
    pub(crate) name: &'a str,
    /// Span kind.
    pub(crate) kind: SpanKind,
    /// Trace id.
    pub(crate) trace_id: [u8; 16],
    /// Span id.
    pub(crate) span_id: [u8; 8],
    /// Parent span id; all zero for a root span.
    pub(crate) parent_span_id: [u8; 8],
    /// Start time, nanoseconds since the Unix epoch.
    pub(crate) start_unix_ns: u64,
    /// Duration in nanoseconds.
    pub(crate) duration_ns: u64,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub(crate) status_code: i8,
    /// Status message, if any.
    pub(crate) status_message: &'a str,
    /// HTTP response status, 0 when none.
    pub(crate) http_status_code: u16,
    /// Whether the span counts as an error.
    pub(crate) is_error: bool,
    /// Span attributes (a slice of the list that holds the attributes of every span of one
    /// request: one allocation per request, not per span).
    pub(crate) attributes: &'a [Attribute<'a>],
    /// Resource attributes, shared by every span of one resource.
    pub(crate) resource: Arc<Vec<Attribute<'a>>>,
}

#[cfg(test)]
impl Span<'static> {
    /// A SERVER span of `operation` in service `shop` for tests: fixed ids, start 2027-01-15,
    /// 1 µs long, status 200, no attributes; tests change what they look at.
    pub(crate) fn example(operation: &str) -> Self {
        Span {
            endpoint: Named::new("shop", operation),
            name: "handler",
            kind: SpanKind::Server,
            trace_id: [9; 16],
            span_id: [7; 8],
            parent_span_id: [0; 8],
            start_unix_ns: 1_800_000_000_000_000_000,
            duration_ns: 1_000,
            status_code: 0,
            status_message: "",
            http_status_code: 200,
            is_error: false,
            attributes: &[],
            resource: Arc::new(vec![("service.name", "shop")]),
        }
    }
}

impl Span<'_> {
    /// `service.name` of the span's resource.
    pub(crate) fn service(&self) -> &Arc<str> {
        &self.endpoint.service
    }

    /// The operation the span is aggregated under.
    pub(crate) fn operation(&self) -> &Arc<str> {
        &self.endpoint.name
    }

    /// Duration in whole microseconds, the histogram's unit.
    pub(crate) fn duration_us(&self) -> u64 {
        self.duration_ns / 1_000
    }

    /// Start of the minute the span started in, in seconds since the Unix epoch.
    pub(crate) fn minute_unix_s(&self) -> u32 {
        let secs = self.start_unix_ns / 1_000_000_000;
        u32::try_from(secs - secs % 60).unwrap_or(u32::MAX)
    }
}

/// What a part of an endpoint's time is (stored as an `Enum8`, same numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i8)]
pub(crate) enum ComponentType {
    /// Not a component: the whole request (one row per analysed request).
    Request = 1,
    /// The endpoint's own code: time when none of its children was running.
    SelfTime = 2,
    /// A database call.
    Db = 3,
    /// An outbound HTTP call.
    Http = 4,
    /// An outbound RPC (gRPC and others with `rpc.system`).
    Rpc = 5,
    /// A message sent or received.
    Messaging = 6,
    /// Code in the same service, recorded as its own span.
    Internal = 7,
    /// Another CLIENT span that is none of the above.
    Client = 8,
    /// A SERVER or CONSUMER span directly under the endpoint (no client span between).
    Server = 9,
}

impl ComponentType {
    /// Every type, in `Enum8` order.
    pub(crate) const ALL: [Self; 9] = [
        Self::Request,
        Self::SelfTime,
        Self::Db,
        Self::Http,
        Self::Rpc,
        Self::Messaging,
        Self::Internal,
        Self::Client,
        Self::Server,
    ];

    /// The name stored in ClickHouse and shown by the API.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::SelfTime => "self",
            Self::Db => "db",
            Self::Http => "http",
            Self::Rpc => "rpc",
            Self::Messaging => "messaging",
            Self::Internal => "internal",
            Self::Client => "client",
            Self::Server => "server",
        }
    }

    /// Whether the analysis descends into this span's children (code of the same service).
    pub(crate) fn is_local(self) -> bool {
        self == Self::Internal
    }
}

/// One part of one endpoint request's time, borrowing its names from the analysed trace (no
/// shared count is touched per contribution; the aggregator takes its own only for a new row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Contribution<'a> {
    /// The endpoint: its service and operation.
    pub(crate) endpoint: &'a Arc<Named>,
    /// Start of the minute the request started in, seconds since the epoch.
    pub(crate) minute_unix_s: u32,
    /// What the time was spent on.
    pub(crate) component: ComponentType,
    /// Which one (empty for the request and self time).
    pub(crate) label: &'a Arc<str>,
    /// Calls in this request (1 for the request and self time).
    pub(crate) calls: u64,
    /// Time in microseconds.
    pub(crate) duration_us: u64,
}

/// Apdex thresholds: one default and optional ones per service, in microseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApdexThresholds {
    /// T for services not listed.
    pub(crate) default_us: u64,
    /// T per service.
    pub(crate) per_service: Vec<(String, u64)>,
}

impl ApdexThresholds {
    /// The threshold T (µs) of `service`.
    pub(crate) fn for_service(&self, service: &str) -> u64 {
        self.per_service
            .iter()
            .find(|(s, _)| s == service)
            .map_or(self.default_us, |(_, t)| *t)
    }
}

/// Metric point types (Enum8 in the `metrics` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub(crate) enum MetricType {
    /// A gauge value.
    Gauge = 1,
    /// A sum (counter or up-down counter).
    Sum = 2,
    /// An explicit-bucket histogram.
    Histogram = 3,
    /// An exponential histogram, stored with its buckets turned into explicit bounds.
    ExponentialHistogram = 4,
    /// A summary (count and sum only).
    Summary = 5,
}

impl TryFrom<i8> for MetricType {
    type Error = i8;

    /// The type of an Enum8 value; the value back when it names none.
    fn try_from(value: i8) -> Result<Self, i8> {
        Ok(match value {
            1 => Self::Gauge,
            2 => Self::Sum,
            3 => Self::Histogram,
            4 => Self::ExponentialHistogram,
            5 => Self::Summary,
            _ => return Err(value),
        })
    }
}

//! [`SpanRecord`]: a finished span packed into one fixed-size value that owns no heap memory, so
//! that handing it to the export thread moves no allocation from one thread to the other.
//!
//! In: the SDK's [`SpanData`] on the thread that ended the span. Out, on the export thread: the
//! same `SpanData` again, its strings and lists allocated there. Why: with the SDK's own hand-off
//! the request thread allocates a span's attribute list and strings and the export thread frees
//! them, so every request allocates memory that was last touched on the other core (and, with
//! glibc, waits on the arena lock the export thread holds while it frees). In a scratch harness
//! running the layer bench's request, dropping each span where it was made instead of sending it
//! took the request from 3.6 to 2.4 µs (see `docs/SPEED-HISTORY.md`). Packing copies the
//! span's text into the record and frees the `SpanData` where it was made.
//!
//! A span packs when its owned text and attributes fit in [`TEXT_BYTES`] bytes, it has no events,
//! links, array attributes or trace state, and it has at most [`MAX_ATTRIBUTES`] attributes;
//! anything else travels as the `SpanData` itself. Static strings (span names, status
//! descriptions) stay pointers. The instrumentation scope is carried as an index into a table the
//! export thread shares ([`Scopes`]); each thread remembers the indices of the scopes it has seen.

use hashbrown::HashMap;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, Key, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

/// Bytes of owned text and attributes a record holds.
const TEXT_BYTES: usize = 384;
/// Attributes a record holds.
const MAX_ATTRIBUTES: u8 = 32;

/// A string of the span: a static one kept as a pointer, or `len` bytes of the record's text.
#[derive(Clone, Copy, Debug)]
enum Text {
    Static(&'static str),
    Inline(u16),
}

/// What a status was.
#[derive(Clone, Copy, Debug)]
enum PackedStatus {
    Unset,
    Ok,
    Error(Text),
}

/// A finished span with no heap memory of its own.
#[derive(Debug)]
pub(crate) struct SpanRecord {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_span_id: [u8; 8],
    start_time: SystemTime,
    end_time: SystemTime,
    scope: u32,
    dropped_attributes_count: u32,
    trace_flags: u8,
    is_remote: bool,
    parent_span_is_remote: bool,
    kind: u8,
    attributes: u8,
    name: Text,
    status: PackedStatus,
    /// Bytes of `text` written.
    len: u16,
    /// Owned name, each attribute (key length in one byte, key, a type byte, the value: one
    /// byte, eight bytes, or a two-byte length and the text), then an owned status description.
    text: [u8; TEXT_BYTES],
}

const TYPE_BOOL: u8 = 0;
const TYPE_I64: u8 = 1;
const TYPE_F64: u8 = 2;
const TYPE_STRING: u8 = 3;

/// The span kinds in the order of their byte in a record.
const KINDS: [SpanKind; 5] = [
    SpanKind::Internal,
    SpanKind::Server,
    SpanKind::Client,
    SpanKind::Producer,
    SpanKind::Consumer,
];

fn kind_byte(kind: &SpanKind) -> u8 {
    match kind {
        SpanKind::Internal => 0,
        SpanKind::Server => 1,
        SpanKind::Client => 2,
        SpanKind::Producer => 3,
        SpanKind::Consumer => 4,
    }
}

/// Appends to a record's text; `None` once it is full.
struct Writer<'a> {
    text: &'a mut [u8; TEXT_BYTES],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.at.checked_add(bytes.len())?;
        self.text.get_mut(self.at..end)?.copy_from_slice(bytes);
        self.at = end;
        Some(())
    }

    /// A string whose length the record keeps elsewhere (or in `len_bytes` bytes before it).
    fn str_with_len(&mut self, s: &str, len_bytes: usize) -> Option<u16> {
        let len = u16::try_from(s.len()).ok()?;
        match len_bytes {
            1 => self.bytes(&[u8::try_from(len).ok()?])?,
            2 => self.bytes(&len.to_le_bytes())?,
            _ => {}
        }
        self.bytes(s.as_bytes())?;
        Some(len)
    }

    #[expect(
        clippy::ptr_arg,
        reason = "whether the text is borrowed for 'static decides how it is kept"
    )]
    fn cow(&mut self, s: &Cow<'static, str>) -> Option<Text> {
        match s {
            Cow::Borrowed(s) => Some(Text::Static(s)),
            Cow::Owned(s) => self.str_with_len(s, 0).map(Text::Inline),
        }
    }

    fn attribute(&mut self, attribute: &KeyValue) -> Option<()> {
        let key = attribute.key.as_str();
        match &attribute.value {
            Value::Bool(b) => {
                self.str_with_len(key, 1)?;
                self.bytes(&[TYPE_BOOL, u8::from(*b)])
            }
            Value::I64(i) => {
                self.str_with_len(key, 1)?;
                self.bytes(&[TYPE_I64])?;
                self.bytes(&i.to_le_bytes())
            }
            Value::F64(f) => {
                self.str_with_len(key, 1)?;
                self.bytes(&[TYPE_F64])?;
                self.bytes(&f.to_le_bytes())
            }
            Value::String(s) => self.str_attribute(key, s.as_str()),
            _ => None,
        }
    }

    fn str_attribute(&mut self, key: &str, value: &str) -> Option<()> {
        self.str_with_len(key, 1)?;
        self.bytes(&[TYPE_STRING])?;
        self.str_with_len(value, 2).map(drop)
    }
}

/// Reads a record's text back in the order it was written.
struct Reader<'a> {
    text: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.text.split_at(n.min(self.text.len()));
        self.text = tail;
        head
    }

    fn str(&mut self, len: usize) -> &'a str {
        // Only `Writer` fills the text, from `&str`s, so this is valid UTF-8.
        std::str::from_utf8(self.take(len)).unwrap_or_default()
    }

    fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or_default()
    }

    fn eight(&mut self) -> [u8; 8] {
        self.take(8).try_into().unwrap_or_default()
    }

    fn cow(&mut self, text: Text) -> Cow<'static, str> {
        match text {
            Text::Static(s) => Cow::Borrowed(s),
            Text::Inline(len) => Cow::Owned(self.str(usize::from(len)).to_owned()),
        }
    }
}

/// A finished span on its way to the export thread.
#[derive(Debug)]
pub(crate) enum Finished {
    /// Packed on the thread that ended it.
    Packed(SpanRecord),
    /// Too large to pack.
    Whole(SpanData),
}

impl Finished {
    /// `span` packed when it fits (its scope numbered in `scopes`), else whole.
    pub(crate) fn new(span: SpanData, scopes: &Scopes) -> Self {
        match SpanRecord::try_pack(&span, scopes) {
            Some(record) => Self::Packed(record),
            None => Self::Whole(span),
        }
    }

    /// The span as the exporter takes it (unpacked, or copied, on this thread).
    pub(crate) fn to_span(&self, scopes: &Scopes, keys: &mut KeyCache) -> SpanData {
        match self {
            Self::Packed(record) => record.unpack(scopes, keys),
            Self::Whole(span) => span.clone(),
        }
    }
}

impl SpanRecord {
    /// `span` packed, its scope numbered in `scopes` (only once it is known to fit).
    fn try_pack(span: &SpanData, scopes: &Scopes) -> Option<Self> {
        if !(span.events.is_empty() && span.links.is_empty()) {
            return None;
        }
        let mut record = Self::begin(
            &span.span_context,
            span.parent_span_id,
            span.parent_span_is_remote,
            &span.span_kind,
            &span.name,
            span.start_time,
        )?;
        for attribute in &span.attributes {
            record.push(attribute)?;
        }
        record.dropped_attributes_count = span.dropped_attributes_count;
        record.finish(&span.status, span.end_time)?;
        record.scope = scopes.number(&span.instrumentation_scope);
        Some(record)
    }

    /// A span that has started, with no attributes yet, in the first scope of its table (see
    /// [`Self::in_scope`]); `None` when it cannot be packed (a trace state, or a name too long).
    #[expect(
        clippy::ptr_arg,
        reason = "whether the name is borrowed for 'static decides how it is kept"
    )]
    pub(crate) fn begin(
        context: &SpanContext,
        parent_span_id: SpanId,
        parent_span_is_remote: bool,
        kind: &SpanKind,
        name: &Cow<'static, str>,
        start_time: SystemTime,
    ) -> Option<Self> {
        if context.trace_state() != &TraceState::NONE {
            return None;
        }
        let mut text = [0; TEXT_BYTES];
        let mut writer = Writer {
            text: &mut text,
            at: 0,
        };
        let name = writer.cow(name)?;
        let len = u16::try_from(writer.at).ok()?;
        Some(Self {
            trace_id: context.trace_id().to_bytes(),
            span_id: context.span_id().to_bytes(),
            parent_span_id: parent_span_id.to_bytes(),
            start_time,
            end_time: start_time,
            scope: 0,
            dropped_attributes_count: 0,
            trace_flags: context.trace_flags().to_u8(),
            is_remote: context.is_remote(),
            parent_span_is_remote,
            kind: kind_byte(kind),
            attributes: 0,
            name,
            status: PackedStatus::Unset,
            len,
            text,
        })
    }

    /// The record as a span of the scope numbered `scope` in its processor's [`Scopes`].
    pub(crate) fn in_scope(mut self, scope: u32) -> Self {
        self.scope = scope;
        self
    }

    /// Attributes held.
    pub(crate) fn attribute_count(&self) -> usize {
        usize::from(self.attributes)
    }

    /// Counts an attribute left out (over the span's limit).
    pub(crate) fn drop_attribute(&mut self) {
        self.dropped_attributes_count = self.dropped_attributes_count.saturating_add(1);
    }

    /// Adds `attribute`; `None`, and the record unchanged, when it does not fit.
    pub(crate) fn push(&mut self, attribute: &KeyValue) -> Option<()> {
        self.append(|writer| writer.attribute(attribute))
    }

    /// Adds a string attribute from borrowed text; `None`, and the record unchanged, when it
    /// does not fit.
    pub(crate) fn push_str(&mut self, key: &str, value: &str) -> Option<()> {
        self.append(|writer| writer.str_attribute(key, value))
    }

    fn append(&mut self, write: impl FnOnce(&mut Writer<'_>) -> Option<()>) -> Option<()> {
        if self.attributes >= MAX_ATTRIBUTES {
            return None;
        }
        let mut writer = Writer {
            text: &mut self.text,
            at: usize::from(self.len),
        };
        write(&mut writer)?;
        // A failed write leaves `len`, so its partial bytes are never read.
        self.len = u16::try_from(writer.at).ok()?;
        self.attributes += 1;
        Some(())
    }

    /// Ends the span with `status` at `end_time`; `None`, and the record unchanged, when the
    /// status description does not fit.
    pub(crate) fn finish(&mut self, status: &Status, end_time: SystemTime) -> Option<()> {
        let mut writer = Writer {
            text: &mut self.text,
            at: usize::from(self.len),
        };
        self.status = match status {
            Status::Unset => PackedStatus::Unset,
            Status::Ok => PackedStatus::Ok,
            Status::Error { description } => PackedStatus::Error(writer.cow(description)?),
        };
        self.len = u16::try_from(writer.at).ok()?;
        self.end_time = end_time;
        Some(())
    }

    /// The span again, its strings allocated on this thread; `keys` keeps one copy of each
    /// attribute key.
    pub(crate) fn unpack(&self, scopes: &Scopes, keys: &mut KeyCache) -> SpanData {
        let mut reader = Reader { text: &self.text };
        let name = reader.cow(self.name);
        let attributes = (0..self.attributes)
            .map(|_| {
                let key_len = usize::from(reader.u8());
                let key = keys.key(reader.take(key_len));
                let value = match reader.u8() {
                    TYPE_BOOL => Value::Bool(reader.u8() != 0),
                    TYPE_I64 => Value::I64(i64::from_le_bytes(reader.eight())),
                    TYPE_F64 => Value::F64(f64::from_le_bytes(reader.eight())),
                    _ => {
                        let len = u16::from_le_bytes([reader.u8(), reader.u8()]);
                        Value::String(StringValue::from(reader.str(usize::from(len)).to_owned()))
                    }
                };
                KeyValue::new(key, value)
            })
            .collect();
        let status = match self.status {
            PackedStatus::Unset => Status::Unset,
            PackedStatus::Ok => Status::Ok,
            PackedStatus::Error(text) => Status::Error {
                description: reader.cow(text),
            },
        };
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(self.trace_id),
                SpanId::from_bytes(self.span_id),
                TraceFlags::new(self.trace_flags),
                self.is_remote,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::from_bytes(self.parent_span_id),
            parent_span_is_remote: self.parent_span_is_remote,
            span_kind: KINDS
                .get(usize::from(self.kind))
                .cloned()
                .unwrap_or(SpanKind::Internal),
            name,
            start_time: self.start_time,
            end_time: self.end_time,
            attributes,
            dropped_attributes_count: self.dropped_attributes_count,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: scopes.get(self.scope),
        }
    }
}

/// The export thread's one copy of each attribute key it has unpacked (keys repeat from span to
/// span, so each is allocated once and shared). Hashed with foldhash rather than SipHash (about
/// 440 instructions per span in `cargo bench -p plumb-agent --bench layer` under callgrind):
/// attribute keys come from the application's code, and the table is capped at [`MAX_KEYS`].
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    /// By the key's bytes, so that a key seen before is found without checking its UTF-8.
    keys: HashMap<Box<[u8]>, Key>,
}

/// Keys kept at most; past this a new key is allocated per span.
const MAX_KEYS: usize = 1024;

impl KeyCache {
    fn key(&mut self, name: &[u8]) -> Key {
        if let Some(key) = self.keys.get(name) {
            return key.clone();
        }
        // Only `Writer` fills a record's text, from `&str`s, so this is valid UTF-8.
        let key = Key::from(Arc::<str>::from(
            std::str::from_utf8(name).unwrap_or_default(),
        ));
        if self.keys.len() < MAX_KEYS {
            self.keys.insert(name.into(), key.clone());
        }
        key
    }
}

/// The instrumentation scopes of one processor's spans, numbered in the order first seen.
#[derive(Debug)]
pub(crate) struct Scopes {
    /// Tells this table from other processors' in the threads' caches.
    id: u64,
    scopes: RwLock<Vec<InstrumentationScope>>,
}

/// Numbers the scope tables.
static NEXT_SCOPES_ID: AtomicU64 = AtomicU64::new(0);
/// Scopes a thread remembers; past this it asks the shared table.
const CACHED_SCOPES: usize = 8;

thread_local! {
    /// This thread's (table, scope, number) of recently seen scopes.
    static SEEN_SCOPES: RefCell<Vec<(u64, InstrumentationScope, u32)>> =
        const { RefCell::new(Vec::new()) };
}

/// The same scope: compared without the allocation `InstrumentationScope`'s `==` makes when it
/// has attributes (it sorts copies), which a scope made by `tracer(name)` never has.
fn same_scope(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    a.name() == b.name()
        && a.version() == b.version()
        && a.schema_url() == b.schema_url()
        && (a.attributes().next().is_none() && b.attributes().next().is_none() || a == b)
}

impl Scopes {
    /// An empty table.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            id: NEXT_SCOPES_ID.fetch_add(1, Ordering::Relaxed),
            scopes: RwLock::new(Vec::new()),
        })
    }

    /// The number of `scope`, from this thread's cache when it has seen it.
    pub(crate) fn number(&self, scope: &InstrumentationScope) -> u32 {
        SEEN_SCOPES.with(|seen| {
            let mut seen = seen.borrow_mut();
            if let Some((_, _, number)) = seen
                .iter()
                .find(|(id, known, _)| *id == self.id && same_scope(known, scope))
            {
                return *number;
            }
            let number = self.shared_number(scope);
            if seen.len() >= CACHED_SCOPES {
                seen.remove(0);
            }
            seen.push((self.id, scope.clone(), number));
            number
        })
    }

    fn shared_number(&self, scope: &InstrumentationScope) -> u32 {
        let read = |scopes: &Vec<InstrumentationScope>| {
            scopes
                .iter()
                .position(|known| same_scope(known, scope))
                .and_then(|i| u32::try_from(i).ok())
        };
        if let Some(number) = read(&self.scopes.read().unwrap_or_else(PoisonError::into_inner)) {
            return number;
        }
        let mut scopes = self.scopes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(number) = read(&scopes) {
            return number;
        }
        scopes.push(scope.clone());
        u32::try_from(scopes.len() - 1).unwrap_or(u32::MAX)
    }

    /// The scope numbered `number` (the default scope for a number never given out).
    fn get(&self, number: u32) -> InstrumentationScope {
        self.scopes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(number as usize)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Event, Link};
    use std::time::Duration;

    fn span(name: Cow<'static, str>, attributes: Vec<KeyValue>, status: Status) -> SpanData {
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_795_556_700_123_456_789);
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes([7; 16]),
                SpanId::from_bytes([3; 8]),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::from_bytes([9; 8]),
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
            name,
            start_time: start,
            end_time: start + Duration::from_micros(1234),
            attributes,
            dropped_attributes_count: 2,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: InstrumentationScope::builder("plumb-agent")
                .with_version("1.2")
                .build(),
        }
    }

    fn round_trip(span: &SpanData) -> Option<SpanData> {
        let scopes = Scopes::new();
        match Finished::new(span.clone(), &scopes) {
            Finished::Packed(record) => Some(record.unpack(&scopes, &mut KeyCache::default())),
            Finished::Whole(_) => None,
        }
    }

    #[test]
    fn a_packed_span_unpacks_to_the_same_span() {
        let attributes = vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.path", "/users/42".to_owned()),
            KeyValue::new(String::from("owned.key"), "é and ✓".to_owned()),
            KeyValue::new("http.response.status_code", 503_i64),
            KeyValue::new("ratio", -0.25),
            KeyValue::new("retried", true),
            KeyValue::new("empty", ""),
        ];
        for (name, status) in [
            (Cow::Borrowed("GET /users/{id}"), Status::Unset),
            (Cow::Owned("PURGE /cache/{key}".to_owned()), Status::Ok),
            (Cow::Borrowed("x"), Status::error("HTTP 503")),
            (
                Cow::Owned(String::new()),
                Status::error(String::from("boom ✗")),
            ),
        ] {
            let original = span(name, attributes.clone(), status);
            assert_eq!(round_trip(&original).as_ref(), Some(&original));
        }
        for kind in KINDS {
            let mut s = span(Cow::Borrowed("k"), Vec::new(), Status::Unset);
            s.span_kind = kind.clone();
            assert_eq!(round_trip(&s).map(|s| s.span_kind), Some(kind));
        }
    }

    #[test]
    fn what_does_not_fit_is_handed_back_whole() {
        let long = "x".repeat(TEXT_BYTES + 1);
        let too_many = (0..=MAX_ATTRIBUTES)
            .map(|i| KeyValue::new(format!("k{i}"), i64::from(i)))
            .collect();
        let mut with_event = span(Cow::Borrowed("e"), Vec::new(), Status::Unset);
        with_event.events.events.push(Event::with_name("retry"));
        let mut with_link = span(Cow::Borrowed("l"), Vec::new(), Status::Unset);
        with_link
            .links
            .links
            .push(Link::with_context(SpanContext::NONE));
        let mut with_state = span(Cow::Borrowed("s"), Vec::new(), Status::Unset);
        with_state.span_context = SpanContext::new(
            TraceId::from_bytes([1; 16]),
            SpanId::from_bytes([1; 8]),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "v")]).expect("trace state"),
        );
        for original in [
            span(Cow::Owned(long.clone()), Vec::new(), Status::Unset),
            span(
                Cow::Borrowed("a"),
                vec![KeyValue::new("path", long)],
                Status::Unset,
            ),
            span(Cow::Borrowed("m"), too_many, Status::Unset),
            span(
                Cow::Borrowed("arr"),
                vec![KeyValue::new("ids", Value::Array(vec![1_i64, 2].into()))],
                Status::Unset,
            ),
            with_event,
            with_link,
            with_state,
        ] {
            let scopes = Scopes::new();
            let Finished::Whole(back) = Finished::new(original.clone(), &scopes) else {
                panic!("{} does not fit", original.name);
            };
            assert_eq!(back, original);
        }
    }

    #[test]
    fn scopes_are_numbered_once_per_table() {
        let first = Scopes::new();
        let other = Scopes::new();
        let a = InstrumentationScope::builder("a").build();
        let b = InstrumentationScope::builder("b").with_version("2").build();
        let b_with_attributes = InstrumentationScope::builder("b")
            .with_version("2")
            .with_attributes([KeyValue::new("k", "v")])
            .build();
        assert_eq!(first.number(&a), 0);
        assert_eq!(first.number(&b), 1);
        assert_eq!(first.number(&b_with_attributes), 2);
        assert_eq!(first.number(&a), 0);
        // Another processor's table numbers its own.
        assert_eq!(other.number(&b), 0);
        assert_eq!(first.get(1), b);
        assert_eq!(first.get(2), b_with_attributes);
        assert_eq!(first.get(99), InstrumentationScope::default());
        // From another thread (no cache), the same numbers.
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(first.number(&b), 1));
        });
    }
}

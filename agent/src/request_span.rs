//! [`RequestTracer`]: the request spans of a [`crate::PlumbLayer`] made after [`crate::init`],
//! started and ended without the SDK's span.
//!
//! In: a request's parent context, span name and string attributes. Out: a context holding a
//! [`RequestSpan`], which the handler's own spans nest under like any other; when it ends it goes
//! straight into the [`QueueProcessor`](crate::QueueProcessor)'s queue. Why: through the SDK a
//! request builds a `SpanBuilder`, an SDK span and then a `SpanData` that is packed for the
//! queue and freed, and allocates its attribute list and a copy of the path on the way; here the
//! span is written into its packed record as it is recorded (see `docs/SPEED-HISTORY.md` for
//! what that saved).
//!
//! The span behaves as the SDK's would: the provider's sampler decides (the samplers `init` can
//! set from `OTEL_TRACES_SAMPLER` look at the parent and the trace id only, so the sampler is not
//! shown the attributes), the provider's span limits apply, and what the application adds
//! through the current context (attributes, events, links, a status, a new name) is kept. A span
//! that outgrows its record (long text, events, links, a trace state) becomes a `SpanData` and
//! continues as one.

use crate::span_queue::Handoff;
use crate::span_record::{Finished, KeyCache, SpanRecord};
use opentelemetry::trace::{
    Event, Link, Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SamplingDecision, ShouldSample, SpanData, SpanEvents,
    SpanLimits, SpanLinks,
};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

/// Starts request spans for one [`Handoff`] with the provider's sampler and limits.
#[derive(Debug)]
pub(crate) struct RequestTracer {
    sampler: Box<dyn ShouldSample>,
    ids: RandomIdGenerator,
    limits: SpanLimits,
    handoff: Arc<Handoff>,
    /// The instrumentation scope of the spans (`plumb-agent`, as the SDK tracer's).
    scope: InstrumentationScope,
    /// Its number in the handoff's scope table.
    scope_number: u32,
}

impl RequestTracer {
    /// Request spans into `handoff`, sampled by `sampler` within `limits` (the provider's own).
    pub(crate) fn new(
        handoff: Arc<Handoff>,
        sampler: Box<dyn ShouldSample>,
        limits: SpanLimits,
    ) -> Self {
        let scope = InstrumentationScope::builder("plumb-agent").build();
        let scope_number = handoff.scopes().number(&scope);
        Self {
            sampler,
            ids: RandomIdGenerator::default(),
            limits,
            handoff,
            scope,
            scope_number,
        }
    }

    /// Starts a SERVER span named `name` under `parent`, with `strings` as its first attributes;
    /// the context holding it.
    pub(crate) fn start(
        self: &Arc<Self>,
        parent: &Context,
        name: Cow<'static, str>,
        strings: &[(&'static str, &str)],
    ) -> Context {
        if parent.is_telemetry_suppressed() {
            return parent.with_span(RequestSpan::not_recording(
                self,
                SpanContext::empty_context(),
            ));
        }
        let parent_span = parent.span();
        let parent_context = Some(parent_span.span_context()).filter(|c| c.is_valid());
        let trace_id = parent_context.map_or_else(|| self.ids.new_trace_id(), |c| c.trace_id());
        let span_id = self.ids.new_span_id();
        let sampled =
            self.sampler
                .should_sample(Some(parent), trace_id, &name, &SpanKind::Server, &[], &[]);
        let flags = parent_context.map_or(TraceFlags::default(), |c| c.trace_flags());
        let flags = match sampled.decision {
            SamplingDecision::RecordAndSample => flags.with_sampled(true),
            SamplingDecision::RecordOnly => flags.with_sampled(false),
            SamplingDecision::Drop => {
                let context = SpanContext::new(
                    trace_id,
                    span_id,
                    TraceFlags::default(),
                    false,
                    sampled.trace_state,
                );
                return parent.with_span(RequestSpan::not_recording(self, context));
            }
        };
        let context = SpanContext::new(trace_id, span_id, flags, false, sampled.trace_state);
        let (parent_span_id, parent_is_remote) =
            parent_context.map_or((SpanId::INVALID, false), |c| (c.span_id(), c.is_remote()));
        let start_time = opentelemetry::time::now();
        let state = match SpanRecord::begin(
            &context,
            parent_span_id,
            parent_is_remote,
            &SpanKind::Server,
            &name,
            start_time,
        ) {
            Some(record) => Finished::Packed(record.in_scope(self.scope_number)),
            None => Finished::Whole(SpanData {
                span_context: context.clone(),
                parent_span_id,
                parent_span_is_remote: parent_is_remote,
                span_kind: SpanKind::Server,
                name,
                start_time,
                end_time: start_time,
                attributes: Vec::new(),
                dropped_attributes_count: 0,
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status: Status::Unset,
                instrumentation_scope: self.scope.clone(),
            }),
        };
        let mut span = RequestSpan {
            context,
            state: Some(state),
            status: Status::Unset,
            tracer: Arc::clone(self),
        };
        for (key, value) in strings {
            span.add_str(key, value);
        }
        for attribute in sampled.attributes {
            span.set_attribute(attribute);
        }
        parent.with_span(span)
    }
}

/// A request's SERVER span; exported when it ends or is dropped.
#[derive(Debug)]
pub(crate) struct RequestSpan {
    context: SpanContext,
    /// What is recorded: written into its packed record as it goes (not boxed: the context
    /// boxes the whole span), or a `SpanData` once it outgrew the record; `None` when not
    /// recording, or ended.
    state: Option<Finished>,
    /// Kept apart until the end: in the record the description comes after the attributes.
    status: Status,
    tracer: Arc<RequestTracer>,
}

impl RequestSpan {
    fn not_recording(tracer: &Arc<RequestTracer>, context: SpanContext) -> Self {
        Self {
            context,
            state: None,
            status: Status::Unset,
            tracer: Arc::clone(tracer),
        }
    }

    /// The span's data as a `SpanData` (unpacked from the record the first time); `None` when
    /// it is not recording.
    fn whole(&mut self) -> Option<&mut SpanData> {
        if let Some(Finished::Packed(record)) = &self.state {
            let data = record.unpack(self.tracer.handoff.scopes(), &mut KeyCache::default());
            self.state = Some(Finished::Whole(data));
        }
        match &mut self.state {
            Some(Finished::Whole(data)) => Some(data),
            _ => None,
        }
    }

    /// Whether the span holds as many attributes as its limit allows; if so, counts the one
    /// being added as dropped.
    fn drop_if_full(&mut self) -> bool {
        let limit = self.tracer.limits.max_attributes_per_span as usize;
        match &mut self.state {
            Some(Finished::Packed(record)) if record.attribute_count() >= limit => {
                record.drop_attribute();
                true
            }
            Some(Finished::Whole(data)) if data.attributes.len() >= limit => {
                data.dropped_attributes_count += 1;
                true
            }
            _ => false,
        }
    }

    /// Adds `attribute` within the span's limit: written into the record by `pack` when it
    /// fits there, else made a `KeyValue` by `kept` and kept in the `SpanData`.
    fn add<A>(
        &mut self,
        attribute: A,
        pack: impl FnOnce(&mut SpanRecord, &A) -> Option<()>,
        kept: impl FnOnce(A) -> KeyValue,
    ) {
        if self.drop_if_full() {
            return;
        }
        if let Some(Finished::Packed(record)) = &mut self.state
            && pack(record, &attribute).is_some()
        {
            return;
        }
        if let Some(data) = self.whole() {
            data.attributes.push(kept(attribute));
        }
    }

    /// A string attribute from borrowed text (copied into the record when it fits).
    fn add_str(&mut self, key: &'static str, value: &str) {
        self.add(
            value,
            |record, value| record.push_str(key, value),
            |value| KeyValue::new(key, value.to_owned()),
        );
    }

    fn end_at(&mut self, end_time: SystemTime) {
        let status = std::mem::replace(&mut self.status, Status::Unset);
        // Ended in place, so that the record is moved once, into the queue.
        let packed = match &mut self.state {
            Some(Finished::Packed(record)) => record.finish(&status, end_time).is_some(),
            _ => false,
        };
        if !packed && let Some(data) = self.whole() {
            data.status = status;
            data.end_time = end_time;
        }
        let sampled = self.context.is_sampled();
        match self.state.take() {
            Some(Finished::Whole(data)) if sampled => {
                let handoff = &self.tracer.handoff;
                handoff.send(Finished::new(data, handoff.scopes()));
            }
            Some(packed) if sampled => self.tracer.handoff.send(packed),
            _ => {}
        }
    }
}

/// An event's or a link's attributes cut to `limit`, and how many were cut.
fn within(mut attributes: Vec<KeyValue>, limit: u32) -> (Vec<KeyValue>, u32) {
    let dropped = attributes.len().saturating_sub(limit as usize);
    attributes.truncate(limit as usize);
    (attributes, u32::try_from(dropped).unwrap_or(u32::MAX))
}

impl Span for RequestSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        let limits = self.tracer.limits;
        if let Some(data) = self.whole() {
            if data.events.len() < limits.max_events_per_span as usize {
                let (attributes, dropped) = within(attributes, limits.max_attributes_per_event);
                data.events
                    .events
                    .push(Event::new(name, timestamp, attributes, dropped));
            } else {
                data.events.dropped_count += 1;
            }
        }
    }

    fn span_context(&self) -> &SpanContext {
        &self.context
    }

    fn is_recording(&self) -> bool {
        self.state.is_some()
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        self.add(attribute, |record, kv| record.push(kv), |kv| kv);
    }

    fn set_status(&mut self, status: Status) {
        // Ok > Error > Unset, as in the SDK: a status only moves up.
        if self.is_recording() && status > self.status {
            self.status = status;
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if let Some(data) = self.whole() {
            data.name = new_name.into();
        }
    }

    fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
        let limits = self.tracer.limits;
        if let Some(data) = self.whole() {
            if data.links.links.len() < limits.max_links_per_span as usize {
                let (attributes, dropped) = within(attributes, limits.max_attributes_per_link);
                data.links
                    .links
                    .push(Link::new(span_context, attributes, dropped));
            } else {
                data.links.dropped_count += 1;
            }
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        self.end_at(timestamp);
    }
}

impl Drop for RequestSpan {
    /// A span never ended (its request's future dropped) ends now, as the SDK's does.
    fn drop(&mut self) {
        // Checked first: reading the clock costs about 45 ns on the test machine.
        if self.state.is_some() {
            self.end_at(opentelemetry::time::now());
        }
    }
}

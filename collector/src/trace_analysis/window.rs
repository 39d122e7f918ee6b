//! The trace window: spans wait here, grouped by trace, until their trace is complete enough to
//! analyse.
//!
//! In: validated spans from the pipeline. An endpoint's analysis needs only its own service's
//! spans, which end before it and so are exported with it or before it; the other services'
//! endpoints are analysed in their own groups. So a new trace whose first request holds an
//! endpoint span and every span under it (each span's parent is in the request, up to an
//! endpoint) is analysed as it comes and never held, unless `hold_whole` is set. Other traces
//! are held: analysed `endpoint_wait` after their first span arrived when that first request
//! held an endpoint span, `window` after it otherwise (spans of one trace come from several
//! services and SDK batches, seconds apart). Memory is bounded: past `max_spans`, the oldest
//! traces are analysed early (counted in `plumb_traces_cut_short_total`). Out:
//! [`Contribution`]s recorded in the breakdown aggregator. A span that arrives after its trace
//! was analysed starts a new group; its parent is then missing and it only counts if it is an
//! endpoint itself.
//!
//! The window is split into shards by trace id so that receivers on several threads rarely wait
//! for each other; a request's spans are ordered by shard, their component names interned, then
//! each shard's lock is taken once per request (never both at once).

use super::component::component;
use super::time_split::{HeldSpan, Scratch, analyse};
use crate::aggregate::component_time::BreakdownAggregator;
use crate::model::{ComponentType, Contribution, Named, Span};
use crate::normalise::NameLimiter;
use crate::telemetry::Telemetry;
use hashbrown::HashMap;
use hashbrown::hash_map::Entry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

/// How long traces are held and how much may be held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceSettings {
    /// Time from a trace's first span to its analysis (never zero: a zero window in the
    /// configuration turns the breakdown off instead).
    pub(crate) window: Duration,
    /// The same when the trace's first request held an endpoint span (at most `window`).
    pub(crate) endpoint_wait: Duration,
    /// Spans held at most, over all traces.
    pub(crate) max_spans: usize,
    /// Distinct component labels remembered per service; the rest count as `[overflow]`.
    pub(crate) max_components_per_service: usize,
    /// Hold for `endpoint_wait` even the new traces that came whole in one request (for
    /// batches that arrive out of order), instead of analysing them at once.
    pub(crate) hold_whole: bool,
}

/// The trace window's own metrics.
#[derive(Debug, Default)]
pub(crate) struct WindowTelemetry {
    /// Traces held.
    pub(crate) traces_held: Gauge,
    /// Spans held.
    pub(crate) spans_held: Gauge,
    /// Traces analysed.
    pub(crate) traces_analysed: Counter,
    /// Traces analysed early because the window was full.
    pub(crate) traces_cut_short: Counter,
    /// Traces analysed as they came, whole in their first request, without being held.
    pub(crate) traces_whole_on_arrival: Counter,
}

impl WindowTelemetry {
    /// Creates the metrics, registered in `telemetry`.
    pub(crate) fn registered(telemetry: &mut Telemetry) -> Arc<Self> {
        let this = Self::default();
        let registry = telemetry.registry();
        registry.register(
            "traces_held",
            "Traces held in the trace window, waiting to be analysed",
            this.traces_held.clone(),
        );
        registry.register(
            "trace_spans_held",
            "Spans held in the trace window",
            this.spans_held.clone(),
        );
        registry.register(
            "traces_analysed",
            "Traces analysed for the endpoint breakdown",
            this.traces_analysed.clone(),
        );
        registry.register(
            "traces_cut_short",
            "Traces analysed before their window ended because the trace window was full",
            this.traces_cut_short.clone(),
        );
        registry.register(
            "traces_whole_on_arrival",
            "Traces analysed as they came, their endpoint and every span under it in their first request",
            this.traces_whole_on_arrival.clone(),
        );
        Arc::new(this)
    }
}

/// The shard queue of traces whose first request held an endpoint span.
const WITH_ENDPOINT: usize = 0;
/// The shard queue of the other traces.
const WITHOUT_ENDPOINT: usize = 1;

#[derive(Debug, Default)]
struct Shard {
    traces: HashMap<[u8; 16], Vec<HeldSpan>>,
    /// Trace ids in order of their first span, with the time that span arrived (tenths of a
    /// second since the assembler started; 20 bytes a trace instead of 32 with an `Instant`):
    /// at [`WITH_ENDPOINT`] traces whose first request held an endpoint span, due
    /// `endpoint_wait` after it; at [`WITHOUT_ENDPOINT`] the others, due `window` after it.
    queues: [VecDeque<(u32, [u8; 16])>; 2],
    spans: usize,
}

impl Shard {
    /// Removes the trace whose first span arrived first, if any.
    fn pop_oldest(&mut self) -> Option<Vec<HeldSpan>> {
        let first = |queue: &VecDeque<(u32, [u8; 16])>| queue.front().map(|(at, _)| *at);
        let oldest = match self.queues.each_ref().map(first) {
            [Some(a), Some(b)] if b < a => WITHOUT_ENDPOINT,
            [Some(_), _] => WITH_ENDPOINT,
            [None, _] => WITHOUT_ENDPOINT,
        };
        let (_, trace_id) = self.queues[oldest].pop_front()?;
        Some(take(&mut self.traces, &mut self.spans, &trace_id))
    }

    /// Moves every trace due by `now` into `ready`; `waits` are the two queues' waits in ticks.
    fn pop_due(&mut self, now: u32, waits: [u32; 2], ready: &mut Vec<Vec<HeldSpan>>) {
        for (queue, wait) in self.queues.iter_mut().zip(waits) {
            while let Some(&(at, trace_id)) = queue.front()
                && at.saturating_add(wait) <= now
            {
                queue.pop_front();
                ready.push(take(&mut self.traces, &mut self.spans, &trace_id));
            }
        }
    }
}

/// Removes one trace's spans from the map and the count.
fn take(
    traces: &mut HashMap<[u8; 16], Vec<HeldSpan>>,
    spans: &mut usize,
    trace_id: &[u8; 16],
) -> Vec<HeldSpan> {
    let trace = traces.remove(trace_id).unwrap_or_default();
    *spans -= trace.len();
    trace
}

/// Holds spans by trace and hands whole traces to the breakdown analysis.
#[derive(Debug)]
pub(crate) struct TraceAssembler {
    settings: TraceSettings,
    /// Time zero of the due times.
    epoch: Instant,
    shards: Box<[Mutex<Shard>]>,
    components: NameLimiter,
    breakdown: Arc<BreakdownAggregator>,
    telemetry: Arc<WindowTelemetry>,
    empty: Arc<str>,
}

fn shard_of(trace_id: &[u8; 16]) -> usize {
    // Trace ids are random; their last byte spreads traces evenly.
    usize::from(trace_id[15]) % SHARDS
}

/// The places of `spans` ordered by shard, keeping their order within a shard (so the spans of
/// one trace that came together stay together), and where each shard's places begin and end:
/// shard `i` has `order[bounds[i]..bounds[i + 1]]`.
fn by_shard(spans: &[Span<'_>]) -> (Vec<u32>, [usize; SHARDS + 1]) {
    let mut bounds = [0; SHARDS + 1];
    for span in spans {
        bounds[shard_of(&span.trace_id) + 1] += 1;
    }
    for i in 1..=SHARDS {
        bounds[i] += bounds[i - 1];
    }
    let mut next = bounds;
    let mut order = vec![0; spans.len()];
    for (at, span) in spans.iter().enumerate() {
        let shard = shard_of(&span.trace_id);
        // A request holds far fewer than 2^32 spans (max-spans-per-request).
        order[next[shard]] = at as u32;
        next[shard] += 1;
    }
    (order, bounds)
}

/// Whether the spans of a new trace that came in one request (`run`, with their component types
/// in `components`) are whole for the breakdown: they hold an endpoint, and every other span's
/// parent is among them, so each endpoint's walk has all it reads (its service's spans end before
/// it and so are sent with it). `ids` is scratch.
fn came_whole(
    spans: &[Span<'_>],
    run: &[u32],
    components: &[ComponentType],
    ids: &mut Vec<[u8; 8]>,
) -> bool {
    if !components.contains(&ComponentType::Server) {
        return false;
    }
    ids.clear();
    ids.extend(run.iter().map(|&at| spans[at as usize].span_id));
    ids.sort_unstable();
    run.iter().zip(components).all(|(&at, c)| {
        *c == ComponentType::Server
            || ids
                .binary_search(&spans[at as usize].parent_span_id)
                .is_ok()
    })
}

impl TraceAssembler {
    /// An empty window feeding `breakdown`.
    pub(crate) fn new(
        settings: TraceSettings,
        breakdown: Arc<BreakdownAggregator>,
        telemetry: Arc<WindowTelemetry>,
    ) -> Self {
        Self {
            settings,
            epoch: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            components: NameLimiter::new(settings.max_components_per_service),
            breakdown,
            telemetry,
            empty: Arc::from(""),
        }
    }

    /// Adds the spans of one request; analyses at once the new traces that came whole, and the
    /// oldest traces early if the window is full.
    pub(crate) fn add(&self, spans: &[Span<'_>]) {
        let arrived = self.ticks(Instant::now());
        let max_per_shard = (self.settings.max_spans / SHARDS).max(1);
        let mut cut_short = Vec::new();
        let (order, bounds) = by_shard(spans);
        // Component names first, with no shard locked (the name limiter may wait for the other
        // receivers to let go of it). Each name moves into its held span, in the same order.
        // Where a label made of several texts is written, one span after the other.
        let mut written = String::new();
        let (components, names): (Vec<ComponentType>, Vec<Arc<Named>>) =
            self.components.with_batch(|admit| {
                order
                    .iter()
                    .map(|&at| {
                        let span = &spans[at as usize];
                        let (component, label) = component(span, &mut written);
                        let named = match component {
                            ComponentType::Server => Arc::clone(&span.endpoint),
                            _ => admit(span.service(), label),
                        };
                        (component, named)
                    })
                    .unzip()
            });
        let mut names = names.into_iter();
        let held = |((&at, &component), named): ((&u32, &ComponentType), Arc<Named>)| {
            let span = &spans[at as usize];
            HeldSpan {
                span_id: span.span_id,
                parent_span_id: span.parent_span_id,
                start_ns: span.start_unix_ns,
                duration_us: u32::try_from(span.duration_ns / 1_000).unwrap_or(u32::MAX),
                component,
                named,
            }
        };
        // New traces that came whole, one after the other, and where each ends.
        let mut whole: Vec<HeldSpan> = Vec::with_capacity(spans.len());
        let mut whole_ends: Vec<usize> = Vec::new();
        let mut ids = Vec::new();
        let mut next = 0;
        for (index, range) in bounds.windows(2).enumerate() {
            let shard_order = &order[range[0]..range[1]];
            if shard_order.is_empty() {
                continue;
            }
            // One lock per shard and request; one map lookup per run of spans of one trace.
            let mut guard = self.shards[index]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let shard = &mut *guard;
            for run in shard_order
                .chunk_by(|&a, &b| spans[a as usize].trace_id == spans[b as usize].trace_id)
            {
                let run_components = &components[next..next + run.len()];
                next += run.len();
                // This run's names: `zip` stops at the run's end without taking one more.
                let run_held = run.iter().zip(run_components).zip(names.by_ref()).map(held);
                let trace_id = spans[run[0] as usize].trace_id;
                let group = match shard.traces.entry(trace_id) {
                    Entry::Occupied(group) => group.into_mut(),
                    Entry::Vacant(_)
                        if !self.settings.hold_whole
                            && came_whole(spans, run, run_components, &mut ids) =>
                    {
                        whole.extend(run_held);
                        whole_ends.push(whole.len());
                        continue;
                    }
                    Entry::Vacant(vacant) => {
                        // A new trace gets room for this run of its spans, no more, and waits by
                        // whether they hold an endpoint.
                        let queue = if run_components.contains(&ComponentType::Server) {
                            WITH_ENDPOINT
                        } else {
                            WITHOUT_ENDPOINT
                        };
                        shard.queues[queue].push_back((arrived, trace_id));
                        vacant.insert(Vec::with_capacity(run.len()))
                    }
                };
                group.extend(run_held);
                shard.spans += run.len();
            }
            while shard.spans > max_per_shard {
                match shard.pop_oldest() {
                    Some(trace) => cut_short.push(trace),
                    None => break,
                }
            }
        }
        self.telemetry
            .traces_cut_short
            .inc_by(cut_short.len() as u64);
        self.telemetry
            .traces_whole_on_arrival
            .inc_by(whole_ends.len() as u64);
        let whole_traces = (0..whole_ends.len()).map(|i| {
            let start = i.checked_sub(1).map_or(0, |before| whole_ends[before]);
            &whole[start..whole_ends[i]]
        });
        self.analyse(cut_short.iter().map(Vec::as_slice).chain(whole_traces));
    }

    /// Analyses every trace whose wait has ended by `now`.
    pub(crate) fn sweep(&self, now: Instant) {
        let now = self.ticks(now);
        let waits = [self.settings.endpoint_wait, self.settings.window]
            .map(|wait| u32::try_from(wait.as_millis() / 100).unwrap_or(u32::MAX));
        let mut ready = Vec::new();
        let (mut traces, mut spans) = (0, 0);
        for shard in &*self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.pop_due(now, waits, &mut ready);
            traces += shard.traces.len();
            spans += shard.spans;
        }
        self.telemetry.traces_held.set(traces as i64);
        self.telemetry.spans_held.set(spans as i64);
        self.analyse(ready.iter().map(Vec::as_slice));
    }

    /// `at` in tenths of a second since the assembler started (a `u32` lasts 13 years).
    fn ticks(&self, at: Instant) -> u32 {
        u32::try_from(at.saturating_duration_since(self.epoch).as_millis() / 100)
            .unwrap_or(u32::MAX)
    }

    /// Analyses everything held (at shutdown).
    pub(crate) fn drain(&self) {
        let mut all = Vec::new();
        for shard in &*self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            while let Some(trace) = shard.pop_oldest() {
                all.push(trace);
            }
        }
        self.telemetry.traces_held.set(0);
        self.telemetry.spans_held.set(0);
        self.analyse(all.iter().map(Vec::as_slice));
    }

    fn analyse<'a>(&self, traces: impl Iterator<Item = &'a [HeldSpan]>) {
        // Recorded a few thousand at a time, so that a sweep of many traces holds few at once.
        const CHUNK: usize = 4096;
        // About four contributions a trace (the request, self time, a component or two).
        let mut contributions: Vec<Contribution> =
            Vec::with_capacity(CHUNK.min(traces.size_hint().0 * 4));
        let mut scratch = Scratch::default();
        let mut analysed = 0;
        for trace in traces {
            analyse(trace, &self.empty, &mut scratch, &mut contributions);
            analysed += 1;
            if contributions.len() >= CHUNK {
                self.breakdown.record(&mut contributions);
            }
        }
        if analysed > 0 {
            self.telemetry.traces_analysed.inc_by(analysed);
            self.breakdown.record(&mut contributions);
        }
    }
}

/// Runs [`TraceAssembler::sweep`] twice a second until `stop` is cancelled, then analyses every
/// trace still held ([`TraceAssembler::drain`]), so that their requests count.
pub(crate) async fn run_sweeper(
    assembler: Arc<TraceAssembler>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => assembler.sweep(Instant::now()),
            () = stop.cancelled() => break,
        }
    }
    assembler.drain();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attribute, SpanKind};
    use crate::store::write::Flushable;

    const PG: &[Attribute<'static>] = &[("db.system", "pg")];

    fn span(trace: u8, id: u8, parent: u8, kind: i8, name: &'static str, ms: u64) -> Span<'static> {
        Span {
            endpoint: Named::new("shop", name),
            name,
            kind: SpanKind::from_otlp(i32::from(kind)),
            trace_id: [trace; 16],
            span_id: [id; 8],
            parent_span_id: [parent; 8],
            start_unix_ns: 120_000_000_000,
            duration_ns: ms * 1_000_000,
            status_code: 0,
            status_message: "",
            http_status_code: 0,
            is_error: false,
            attributes: PG,
            resource: Arc::default(),
        }
    }

    fn assembler(
        max_spans: usize,
        hold_whole: bool,
    ) -> (
        TraceAssembler,
        Arc<BreakdownAggregator>,
        Arc<WindowTelemetry>,
    ) {
        let breakdown = Arc::new(BreakdownAggregator::new());
        let telemetry = Arc::new(WindowTelemetry::default());
        let settings = TraceSettings {
            window: Duration::from_secs(5),
            endpoint_wait: Duration::from_secs(1),
            max_spans,
            max_components_per_service: 100,
            hold_whole,
        };
        (
            TraceAssembler::new(settings, Arc::clone(&breakdown), Arc::clone(&telemetry)),
            breakdown,
            telemetry,
        )
    }

    #[test]
    fn a_trace_split_over_requests_is_analysed_whole_when_its_window_ends() {
        let (assembler, breakdown, telemetry) = assembler(1000, false);
        assembler.add(&[span(1, 2, 1, 3, "q", 30)]);
        assembler.add(&[span(1, 1, 0, 2, "GET /a", 100)]);
        assembler.sweep(Instant::now());
        assert_eq!(breakdown.held(), 0, "not due yet");
        // Its first request held no endpoint, so the endpoint wait does not apply.
        assembler.sweep(Instant::now() + Duration::from_millis(1500));
        assert_eq!(breakdown.held(), 0, "waits the whole window");
        assembler.sweep(Instant::now() + Duration::from_secs(6));
        let mut rows = breakdown.take();
        rows.sort_by_key(|r| r.component_type);
        let got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.component_type,
                    r.component.as_str(),
                    r.calls,
                    r.duration_sum_us,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, "", 1, 100_000),
                (2, "", 1, 70_000),
                (3, "pg q", 1, 30_000)
            ]
        );
        assert_eq!(telemetry.traces_analysed.get(), 1);
    }

    /// The breakdown's (component type, calls, time) rows, in component order.
    fn rows_by_type(breakdown: &BreakdownAggregator) -> Vec<(i8, u64, u64)> {
        let mut rows = breakdown.take();
        rows.sort_by_key(|r| r.component_type);
        rows.iter()
            .map(|r| (r.component_type, r.calls, r.duration_sum_us))
            .collect()
    }

    #[test]
    fn a_trace_that_comes_whole_is_analysed_as_it_comes() {
        let (assembler, breakdown, telemetry) = assembler(1000, false);
        assembler.add(&[span(7, 2, 1, 3, "q", 30), span(7, 1, 0, 2, "GET /a", 100)]);
        assert_eq!(telemetry.traces_whole_on_arrival.get(), 1);
        assert_eq!(telemetry.traces_analysed.get(), 1);
        assert_eq!(
            rows_by_type(&breakdown),
            [(1, 1, 100_000), (2, 1, 70_000), (3, 1, 30_000)]
        );
        assembler.sweep(Instant::now());
        assert_eq!(telemetry.traces_held.get(), 0);
        assert_eq!(telemetry.spans_held.get(), 0);
    }

    #[test]
    fn a_trace_with_its_endpoint_but_a_span_whose_parent_is_missing_waits_the_endpoint_wait() {
        let (assembler, breakdown, telemetry) = assembler(1000, false);
        // The query's parent (internal work 3) comes in a later request.
        assembler.add(&[span(7, 1, 0, 2, "GET /a", 100), span(7, 2, 3, 3, "q", 30)]);
        assert_eq!(telemetry.traces_whole_on_arrival.get(), 0);
        assembler.sweep(Instant::now());
        assert_eq!(breakdown.held(), 0, "not due yet");
        let work = Span {
            attributes: &[],
            ..span(7, 3, 1, 1, "work", 50)
        };
        assembler.add(&[work]);
        assembler.sweep(Instant::now() + Duration::from_millis(1500));
        assert_eq!(telemetry.traces_analysed.get(), 1);
        // Self 50 ms; the work's own 20 ms; the query's 30 ms under it.
        assert_eq!(
            rows_by_type(&breakdown),
            [
                (1, 1, 100_000),
                (2, 1, 50_000),
                (3, 1, 30_000),
                (7, 1, 20_000)
            ]
        );
        assert_eq!(telemetry.spans_held.get(), 0);
    }

    #[test]
    fn held_whole_a_trace_that_comes_with_its_endpoint_is_analysed_after_the_endpoint_wait() {
        let (assembler, breakdown, telemetry) = assembler(1000, true);
        assembler.add(&[span(7, 1, 0, 2, "GET /a", 100), span(7, 2, 1, 3, "q", 30)]);
        assembler.sweep(Instant::now());
        assert_eq!(breakdown.held(), 0, "not due yet");
        // A query of it that arrives late, inside the wait, still counts.
        assembler.add(&[span(7, 3, 1, 3, "q", 20)]);
        assembler.sweep(Instant::now() + Duration::from_millis(1500));
        assert_eq!(telemetry.traces_analysed.get(), 1);
        assert_eq!(telemetry.traces_whole_on_arrival.get(), 0);
        assert_eq!(
            rows_by_type(&breakdown),
            [(1, 1, 100_000), (2, 1, 70_000), (3, 2, 50_000)]
        );
        assert_eq!(telemetry.spans_held.get(), 0);
    }

    #[test]
    fn a_full_window_analyses_the_oldest_traces_early_and_counts_them() {
        let (assembler, breakdown, telemetry) = assembler(SHARDS, true);
        // One span per shard fits; a second span in trace 0's shard pushes trace 0 out.
        assembler.add(&[span(0, 1, 0, 2, "GET /a", 10)]);
        assembler.add(&[span(16, 1, 0, 2, "GET /b", 10)]);
        assert_eq!(telemetry.traces_cut_short.get(), 1);
        let rows = breakdown.take();
        assert!(rows.iter().all(|r| r.operation == "GET /a"), "{rows:?}");
        assembler.drain();
        assert!(breakdown.take().iter().all(|r| r.operation == "GET /b"));
    }

    #[test]
    fn interleaved_traces_of_one_request_are_each_held_whole() {
        let (assembler, breakdown, telemetry) = assembler(1000, true);
        // Traces 1 and 17 share a shard, trace 2 has another; their spans come interleaved.
        assembler.add(&[
            span(1, 1, 0, 2, "GET /a", 100),
            span(2, 1, 0, 2, "GET /b", 50),
            span(17, 1, 0, 2, "GET /c", 80),
            span(1, 2, 1, 3, "q", 30),
            span(2, 2, 1, 3, "q", 20),
            span(17, 2, 1, 3, "q", 10),
        ]);
        assembler.sweep(Instant::now());
        assert_eq!(telemetry.traces_held.get(), 3);
        assert_eq!(telemetry.spans_held.get(), 6);
        assembler.sweep(Instant::now() + Duration::from_millis(1500));
        assert_eq!(telemetry.traces_analysed.get(), 3);
        let mut got: Vec<_> = breakdown
            .take()
            .iter()
            .map(|r| (r.operation.clone(), r.component_type, r.duration_sum_us))
            .collect();
        got.sort();
        let want = [
            ("GET /a", 1, 100_000),
            ("GET /a", 2, 70_000),
            ("GET /a", 3, 30_000),
            ("GET /b", 1, 50_000),
            ("GET /b", 2, 30_000),
            ("GET /b", 3, 20_000),
            ("GET /c", 1, 80_000),
            ("GET /c", 2, 70_000),
            ("GET /c", 3, 10_000),
        ]
        .map(|(operation, kind, us)| (operation.to_owned(), kind, us));
        assert_eq!(got, want);
    }
}

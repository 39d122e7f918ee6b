//! [`QueueProcessor`]: the span processor behind [`crate::init`]; it never blocks the request path
//! and never loses spans silently.
//!
//! In: finished spans from the SDK. Out: batches handed to the OTLP exporter on a thread of its
//! own. A span goes into a bounded queue with `try_send`; when the queue is full it is dropped and
//! counted (and a warning is logged at most once every ten seconds). When an export fails (the
//! collector is down or slow) the batch is kept and retried with backoff while the queue holds
//! what arrives meanwhile, so after an outage everything that fitted arrives.
//!
//! A span crosses to the export thread packed (`span_record::SpanRecord`: its text copied into
//! the queue's slot, the `SpanData` freed on the thread that made it), so the request thread
//! neither frees nor reuses memory the export thread touched; a span too large to pack crosses
//! whole.
//!
//! The hand-off costs the request thread no system call: the export thread does not wait on the
//! queue (which would make every span wake it) but sleeps until its export delay passes, and a
//! span wakes it only when it makes a whole batch queued (half the queue, when that is smaller);
//! flushes and shutdowns wake it too.

use crate::span_record::{Finished, KeyCache, Scopes};
use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use plumb_net::Backoff;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Spans per export.
const MAX_BATCH: usize = 512;
/// Longest time a span waits before its batch is exported.
const EXPORT_DELAY: Duration = Duration::from_secs(2);
/// Backoff between failed exports.
const RETRY_BACKOFF: Backoff =
    Backoff::new_unchecked(Duration::from_millis(500), Duration::from_secs(10), 0.5);
/// At most one "dropping spans" warning per this many seconds.
const WARN_EVERY_S: u64 = 10;

/// What the processor has done, for the agent's own metrics.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Spans exported.
    pub exported: AtomicU64,
    /// Spans dropped because the queue was full (or still unsent at shutdown).
    pub dropped: AtomicU64,
    /// Export attempts that failed (each is retried).
    pub export_failures: AtomicU64,
}

/// What the export thread is asked besides spans.
enum Control {
    Resource(Resource),
    Flush(SyncSender<OTelSdkResult>),
    Shutdown(SyncSender<OTelSdkResult>),
}

/// A bounded, non-blocking span processor with retry.
#[derive(Debug)]
pub struct QueueProcessor {
    /// Where finished spans go.
    handoff: Arc<Handoff>,
    control: SyncSender<Control>,
}

/// The sending side of the queue, shared by the processor and the agent's request spans
/// ([`crate::request_span`]), which hand their spans over without the SDK's `SpanData`.
#[derive(Debug)]
pub(crate) struct Handoff {
    /// Finished spans, each moved into the queue's preallocated slot (no allocation per span).
    queue: SyncSender<Finished>,
    /// The instrumentation scopes of packed spans.
    scopes: Arc<Scopes>,
    /// Spans sent and not yet taken by the export thread.
    queued: Arc<AtomicUsize>,
    /// How many queued spans wake the export thread: a whole batch, or half the queue when the
    /// queue is smaller, so that it never fills while the thread sleeps.
    wake_at: usize,
    /// The export thread, woken for a whole batch, a flush or a shutdown.
    worker: Option<Thread>,
    stats: Arc<QueueStats>,
    started: Instant,
    last_warning_s: AtomicU64,
}

impl QueueProcessor {
    /// A processor holding at most `capacity` spans, exporting with `exporter` on its own thread.
    pub fn new<E: SpanExporter + 'static>(exporter: E, capacity: usize) -> (Self, Arc<QueueStats>) {
        let (queue, receiver) = sync_channel(capacity.max(1));
        let (control, control_receiver) = sync_channel(16);
        let stats = Arc::new(QueueStats::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let scopes = Scopes::new();
        let worker = Worker {
            exporter,
            receiver,
            scopes: Arc::clone(&scopes),
            keys: KeyCache::default(),
            control: control_receiver,
            queued: Arc::clone(&queued),
            stats: Arc::clone(&stats),
            pending: Vec::new(),
            capacity,
            shutdown: None,
        };
        // If the thread cannot start, every send fails and spans are counted as dropped.
        let worker = std::thread::Builder::new()
            .name("plumb-agent-export".into())
            .spawn(move || worker.run())
            .ok()
            .map(|handle| handle.thread().clone());
        let handoff = Handoff {
            queue,
            scopes,
            queued,
            wake_at: MAX_BATCH.min(capacity / 2).max(1),
            worker,
            stats: Arc::clone(&stats),
            started: Instant::now(),
            last_warning_s: AtomicU64::new(0),
        };
        let processor = Self {
            handoff: Arc::new(handoff),
            control,
        };
        (processor, stats)
    }

    /// The queue's sending side, for spans that skip the SDK.
    pub(crate) fn handoff(&self) -> Arc<Handoff> {
        Arc::clone(&self.handoff)
    }

    fn control(
        &self,
        make: impl FnOnce(SyncSender<OTelSdkResult>) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (ack, done) = sync_channel(1);
        self.control
            .send(make(ack))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        self.handoff.wake();
        done.recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))?
    }
}

impl Handoff {
    /// The table that numbers packed spans' scopes.
    pub(crate) fn scopes(&self) -> &Scopes {
        &self.scopes
    }

    /// Queues a finished span for export, or counts it as dropped when the queue is full or
    /// the export thread has stopped (never blocks).
    pub(crate) fn send(&self, span: Finished) {
        // Counted before it is sent, so the export thread never takes it first.
        let queued = self.queued.fetch_add(1, Ordering::Relaxed) + 1;
        match self.queue.try_send(span) {
            Ok(()) if queued == self.wake_at => self.wake(),
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                self.dropped();
            }
            // After a shutdown: counted, with no warning about a full queue.
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn wake(&self) {
        if let Some(worker) = &self.worker {
            worker.unpark();
        }
    }

    fn dropped(&self) {
        let total = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now_s = self.started.elapsed().as_secs() + WARN_EVERY_S;
        let last = self.last_warning_s.load(Ordering::Relaxed);
        if now_s >= last + WARN_EVERY_S
            && self
                .last_warning_s
                .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped_total = total,
                "plumb-agent span queue full: dropping spans (collector down or slow?)"
            );
        }
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.handoff.send(Finished::new(span, &self.handoff.scopes));
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.control(Control::Flush, Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.control(Control::Shutdown, timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        let _ = self.control.send(Control::Resource(resource.clone()));
        self.handoff.wake();
    }
}

struct Worker<E> {
    exporter: E,
    receiver: Receiver<Finished>,
    scopes: Arc<Scopes>,
    keys: KeyCache,
    control: Receiver<Control>,
    queued: Arc<AtomicUsize>,
    stats: Arc<QueueStats>,
    /// The batch being exported, as taken off the queue: unpacked for each attempt, so a
    /// retry needs no copy of its own and a sent batch is freed once, by the exporter.
    pending: Vec<Finished>,
    /// Queue size: a flush exports at most this many spans beyond what it holds, so spans that
    /// keep arriving cannot hold it up forever.
    capacity: usize,
    /// A shutdown that arrived while a flush was draining.
    shutdown: Option<SyncSender<OTelSdkResult>>,
}

impl<E: SpanExporter> Worker<E> {
    fn run(mut self) {
        // Whatever the export itself traces (gRPC, HTTP/2) must not be exported again.
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        let mut deadline = Instant::now() + EXPORT_DELAY;
        // Spans taken since the shared count was last lowered (lowered once per run of spans,
        // not per span, so that the request threads' count stays in their caches).
        let mut taken = 0;
        loop {
            match self.control.try_recv() {
                Ok(Control::Resource(resource)) => self.exporter.set_resource(&resource),
                Ok(Control::Flush(ack)) => {
                    let result = self.drain();
                    let _ = ack.send(result);
                }
                Ok(Control::Shutdown(ack)) => {
                    self.finish(ack);
                    return;
                }
                Err(_) => {}
            }
            match self.receiver.try_recv() {
                Ok(span) => {
                    taken += 1;
                    self.pending.push(span);
                    if self.pending.len() >= MAX_BATCH {
                        self.taken(std::mem::take(&mut taken));
                        self.export_until_sent();
                        deadline = Instant::now() + EXPORT_DELAY;
                    }
                    continue;
                }
                Err(TryRecvError::Empty) => {
                    self.taken(std::mem::take(&mut taken));
                    let wait = deadline.saturating_duration_since(Instant::now());
                    if wait.is_zero() {
                        self.export_until_sent();
                        deadline = Instant::now() + EXPORT_DELAY;
                    } else {
                        // Woken early by a whole batch, a flush or a shutdown.
                        std::thread::park_timeout(wait);
                    }
                }
                Err(TryRecvError::Disconnected) => {
                    let _ = self.drain();
                    return;
                }
            }
            if let Some(ack) = self.shutdown.take() {
                self.finish(ack);
                return;
            }
        }
    }

    /// Counts `n` spans taken off the queue.
    fn taken(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }

    /// Exports everything queued now, one attempt per batch; the result of the last attempt.
    fn drain(&mut self) -> OTelSdkResult {
        let mut budget = self.capacity;
        // Flushes asked for meanwhile: their spans were queued before them, so this drain
        // exports those too, and they are answered when it ends.
        let mut flushes = Vec::new();
        let result = loop {
            while self.pending.len() < MAX_BATCH && budget > 0 {
                match self.receiver.try_recv() {
                    Ok(span) => {
                        budget -= 1;
                        self.taken(1);
                        self.pending.push(span);
                    }
                    Err(_) => break,
                }
            }
            let asked = match self.control.try_recv() {
                Ok(Control::Resource(resource)) => {
                    self.exporter.set_resource(&resource);
                    true
                }
                Ok(Control::Flush(ack)) => {
                    flushes.push(ack);
                    true
                }
                // A shutdown asked for meanwhile runs once this drain is done.
                Ok(Control::Shutdown(ack)) => {
                    self.shutdown = Some(ack);
                    true
                }
                Err(_) => false,
            };
            if self.pending.is_empty() {
                if asked {
                    // What was queued before the message is read before the drain ends.
                    continue;
                }
                break Ok(());
            }
            if let Err(error) = self.export_once() {
                break Err(error);
            }
        };
        for ack in flushes {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(error) => Err(OTelSdkError::InternalFailure(error.to_string())),
            };
            let _ = ack.send(answer);
        }
        result
    }

    /// Exports what is left (one attempt), counts what could not be sent, stops the exporter.
    fn finish(&mut self, ack: SyncSender<OTelSdkResult>) {
        let result = self.drain();
        self.stats
            .dropped
            .fetch_add(self.pending.len() as u64, Ordering::Relaxed);
        self.pending.clear();
        let _ = self.exporter.shutdown();
        let _ = ack.send(result);
    }

    /// Retries the pending batch with backoff until it is exported.
    fn export_until_sent(&mut self) {
        let mut delays = RETRY_BACKOFF.delays();
        while !self.pending.is_empty() && self.export_once().is_err() {
            std::thread::sleep(delays.next_delay());
        }
    }

    fn export_once(&mut self) -> OTelSdkResult {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = self
            .pending
            .iter()
            .map(|span| span.to_span(&self.scopes, &mut self.keys))
            .collect::<Vec<_>>();
        let count = batch.len() as u64;
        match futures_executor::block_on(self.exporter.export(batch)) {
            Ok(()) => {
                self.pending.clear();
                self.stats.exported.fetch_add(count, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.stats.export_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_backoff_is_valid() {
        assert!(RETRY_BACKOFF.checked().is_ok());
    }

    /// Keeps what is exported.
    #[derive(Clone, Debug, Default)]
    struct Keep(Arc<std::sync::Mutex<Vec<SpanData>>>);

    impl SpanExporter for Keep {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().expect("lock").extend(batch);
            Ok(())
        }
    }

    /// Keeps what is exported, taking a millisecond per export so that flushes overlap.
    #[derive(Clone, Debug, Default)]
    struct Slow(Arc<std::sync::Mutex<Vec<String>>>);

    impl SpanExporter for Slow {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            std::thread::sleep(Duration::from_millis(1));
            self.0
                .lock()
                .expect("lock")
                .extend(batch.into_iter().map(|s| s.name.into_owned()));
            Ok(())
        }
    }

    #[test]
    fn a_flush_returns_after_the_spans_ended_before_it_are_exported() {
        use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
        let slow = Slow::default();
        let (processor, _) = QueueProcessor::new(slow.clone(), 4096);
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        // Threads flushing at once: a flush that arrives while another drains is answered
        // with it, and must still find its own span exported.
        std::thread::scope(|s| {
            for thread in 0..6 {
                let (provider, slow) = (&provider, &slow);
                s.spawn(move || {
                    let tracer = provider.tracer("flush-test");
                    for round in 0..30 {
                        let name = format!("t{thread}-{round}");
                        tracer.start(name.clone()).end();
                        provider.force_flush().expect("flush");
                        assert!(
                            slow.0.lock().expect("lock").contains(&name),
                            "{name} exported before its flush returned"
                        );
                    }
                });
            }
        });
        let _ = provider.shutdown();
    }

    #[test]
    fn packed_and_whole_spans_are_exported_as_they_ended() {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
        let keep = Keep::default();
        let (processor, stats) = QueueProcessor::new(keep.clone(), 64);
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("packed-test");
        let mut packed = tracer.start("GET /orders/{id}");
        packed.set_attribute(KeyValue::new("url.path", "/orders/7".to_owned()));
        packed.set_attribute(KeyValue::new("http.response.status_code", 200_i64));
        packed.end();
        let other_scope = provider.tracer("another-library");
        let mut whole = other_scope.start(String::from("retrying"));
        whole.add_event("retry", vec![KeyValue::new("attempt", 2_i64)]);
        whole.end();
        provider.force_flush().expect("flush");

        let exported = keep.0.lock().expect("lock").clone();
        assert_eq!(exported.len(), 2, "{exported:?}");
        assert_eq!(stats.exported.load(Ordering::Relaxed), 2);
        let (first, second) = (&exported[0], &exported[1]);
        assert_eq!(first.name, "GET /orders/{id}");
        assert_eq!(first.instrumentation_scope.name(), "packed-test");
        assert_eq!(
            first.attributes,
            [
                KeyValue::new("url.path", "/orders/7"),
                KeyValue::new("http.response.status_code", 200_i64)
            ]
        );
        assert_eq!(second.name, "retrying");
        assert_eq!(second.instrumentation_scope.name(), "another-library");
        assert_eq!(second.events.len(), 1);
        assert_eq!(second.events.events[0].name, "retry");
        assert_eq!(
            first.span_context.trace_id(),
            packed.span_context().trace_id()
        );
        assert_eq!(
            first.span_context.span_id(),
            packed.span_context().span_id()
        );
        assert!(first.end_time >= first.start_time);
        let _ = provider.shutdown();
    }
}

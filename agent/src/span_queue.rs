//! [`QueueProcessor`]: the span processor behind [`crate::init`]; it never blocks the request path
//! and never loses spans silently.
//!
//! In: finished spans from the SDK. Out: batches handed to the OTLP exporter on a thread of its
//! own. A span goes into a bounded queue with `try_send`; when the queue is full it is dropped and
//! counted (and a warning is logged at most once every ten seconds). When an export fails (the
//! collector is down or slow) the batch is kept and retried with backoff while the queue holds
//! what arrives meanwhile, so after an outage everything that fitted arrives.

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use plumb_net::Backoff;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
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

enum Message {
    Span(Box<SpanData>),
    Resource(Resource),
    Flush(SyncSender<OTelSdkResult>),
    Shutdown(SyncSender<OTelSdkResult>),
}

/// A bounded, non-blocking span processor with retry.
#[derive(Debug)]
pub struct QueueProcessor {
    queue: SyncSender<Message>,
    stats: Arc<QueueStats>,
    started: Instant,
    last_warning_s: AtomicU64,
}

impl QueueProcessor {
    /// A processor holding at most `capacity` spans, exporting with `exporter` on its own thread.
    pub fn new<E: SpanExporter + 'static>(exporter: E, capacity: usize) -> (Self, Arc<QueueStats>) {
        let (queue, receiver) = sync_channel(capacity.max(1));
        let stats = Arc::new(QueueStats::default());
        let worker = Worker {
            exporter,
            receiver,
            stats: Arc::clone(&stats),
            pending: Vec::new(),
            capacity,
            shutdown: None,
        };
        // If the thread cannot start, every send fails and spans are counted as dropped.
        let _ = std::thread::Builder::new()
            .name("plumb-agent-export".into())
            .spawn(move || worker.run());
        let processor = Self {
            queue,
            stats: Arc::clone(&stats),
            started: Instant::now(),
            last_warning_s: AtomicU64::new(0),
        };
        (processor, stats)
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

    fn control(
        &self,
        make: impl FnOnce(SyncSender<OTelSdkResult>) -> Message,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (ack, done) = sync_channel(1);
        self.queue
            .send(make(ack))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        done.recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))?
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        match self.queue.try_send(Message::Span(Box::new(span))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped(),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.control(Message::Flush, Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.control(Message::Shutdown, timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        let _ = self.queue.send(Message::Resource(resource.clone()));
    }
}

struct Worker<E> {
    exporter: E,
    receiver: Receiver<Message>,
    stats: Arc<QueueStats>,
    pending: Vec<SpanData>,
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
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(wait) {
                Ok(Message::Span(span)) => {
                    self.pending.push(*span);
                    if self.pending.len() >= MAX_BATCH {
                        self.export_until_sent();
                        deadline = Instant::now() + EXPORT_DELAY;
                    }
                }
                Ok(Message::Resource(resource)) => self.exporter.set_resource(&resource),
                Ok(Message::Flush(ack)) => {
                    let result = self.drain();
                    let _ = ack.send(result);
                }
                Ok(Message::Shutdown(ack)) => {
                    self.finish(ack);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.export_until_sent();
                    deadline = Instant::now() + EXPORT_DELAY;
                }
                Err(RecvTimeoutError::Disconnected) => {
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

    /// Exports everything queued now, one attempt per batch; the result of the last attempt.
    fn drain(&mut self) -> OTelSdkResult {
        let mut budget = self.capacity;
        loop {
            while self.pending.len() < MAX_BATCH && budget > 0 {
                match self.receiver.try_recv() {
                    Ok(Message::Span(span)) => {
                        budget -= 1;
                        self.pending.push(*span);
                    }
                    Ok(Message::Resource(resource)) => self.exporter.set_resource(&resource),
                    // A flush asked for meanwhile is answered by this one.
                    Ok(Message::Flush(ack)) => {
                        let _ = ack.send(Ok(()));
                    }
                    // A shutdown asked for meanwhile runs once this drain is done.
                    Ok(Message::Shutdown(ack)) => self.shutdown = Some(ack),
                    Err(_) => break,
                }
            }
            if self.pending.is_empty() {
                return Ok(());
            }
            self.export_once()?;
        }
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
        let batch = self.pending.clone();
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
}

//! The sidecar's bounded backlog: what was received and not yet forwarded.
//!
//! In: encoded export requests with the number of items (spans, data points) they hold. Out:
//! batches of whole requests up to a size. The backlog is bounded in bytes; when a new request
//! does not fit, the oldest ones are dropped and their items counted, so memory stays bounded
//! while the collector is down and the newest data wins.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use tokio::sync::Notify;

/// One received request, encoded.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The encoded export request.
    pub bytes: Bytes,
    /// Spans or data points in it.
    pub items: u64,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Entry>,
    bytes: usize,
}

/// A byte-bounded FIFO with oldest-first dropping.
#[derive(Debug)]
pub struct Backlog {
    state: Mutex<State>,
    max_bytes: usize,
    ready: Notify,
}

impl Backlog {
    /// An empty backlog holding at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            state: Mutex::default(),
            max_bytes,
            ready: Notify::new(),
        }
    }

    /// Adds an entry, dropping the oldest ones until it fits; returns how many items were
    /// dropped (the new entry's own, if it is larger than the whole backlog).
    pub fn push(&self, entry: Entry) -> u64 {
        if entry.bytes.len() > self.max_bytes {
            return entry.items;
        }
        let mut dropped = 0;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.bytes + entry.bytes.len() > self.max_bytes {
            let Some(oldest) = state.queue.pop_front() else {
                break;
            };
            state.bytes -= oldest.bytes.len();
            dropped += oldest.items;
        }
        state.bytes += entry.bytes.len();
        state.queue.push_back(entry);
        drop(state);
        self.ready.notify_one();
        dropped
    }

    /// Takes the oldest entries up to `max_bytes` in total (always at least one, if any).
    pub fn take(&self, max_bytes: usize) -> Vec<Entry> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut taken = Vec::new();
        let mut size = 0;
        while let Some(next) = state.queue.front() {
            if !taken.is_empty() && size + next.bytes.len() > max_bytes {
                break;
            }
            size += next.bytes.len();
            if let Some(entry) = state.queue.pop_front() {
                state.bytes -= entry.bytes.len();
                taken.push(entry);
            }
        }
        taken
    }

    /// Waits until something is pushed.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: usize, items: u64) -> Entry {
        Entry {
            bytes: Bytes::from(vec![0; size]),
            items,
        }
    }

    #[test]
    fn full_backlog_drops_oldest_first_and_counts() {
        let backlog = Backlog::new(100);
        assert_eq!(backlog.push(entry(40, 1)), 0);
        assert_eq!(backlog.push(entry(40, 2)), 0);
        assert_eq!(backlog.push(entry(40, 3)), 1, "the oldest entry makes room");
        let taken = backlog.take(1000);
        assert_eq!(
            taken.iter().map(|e| e.items).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(backlog.bytes(), 0);
    }

    #[test]
    fn batches_are_bounded_but_never_empty() {
        let backlog = Backlog::new(1000);
        for i in 0..5 {
            assert_eq!(backlog.push(entry(30, i)), 0);
        }
        assert_eq!(backlog.take(70).len(), 2);
        assert_eq!(backlog.take(10).len(), 1);
        assert_eq!(
            backlog.push(entry(2000, 7)),
            7,
            "larger than the whole backlog"
        );
    }
}

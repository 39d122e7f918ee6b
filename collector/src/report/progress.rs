//! How far a capacity report has got, for the streamed call's progress events: steps are
//! counted as they finish (from the runtime and from the model threads alike) and each change
//! is handed to a sink with what is being done, the steps done and the steps known so far, in
//! the order the counts changed (the count and the hand-off are under one lock).

use std::sync::Mutex;

/// Where progress goes: what is being done, steps done, steps known.
type Sink = Box<dyn Fn(&str, u32, u32) + Send + Sync>;

/// A report's progress.
pub(crate) struct Progress {
    sink: Option<Sink>,
    /// Steps done, steps known.
    counts: Mutex<(u32, u32)>,
}

impl Progress {
    /// Progress handed to `sink`.
    pub(crate) fn to(sink: impl Fn(&str, u32, u32) + Send + Sync + 'static) -> Self {
        Self {
            sink: Some(Box::new(sink)),
            counts: Mutex::new((0, 0)),
        }
    }

    /// Progress nobody watches (the unary call).
    pub(crate) fn unwatched() -> Self {
        Self {
            sink: None,
            counts: Mutex::new((0, 0)),
        }
    }

    /// `steps` more steps are known to be ahead.
    pub(crate) fn expect(&self, steps: u32) {
        self.update(None, |counts| counts.1 = counts.1.saturating_add(steps));
    }

    /// `what` is starting.
    pub(crate) fn starting(&self, what: &str) {
        self.update(Some(what), |_| {});
    }

    /// One step of `what` is done.
    pub(crate) fn finished(&self, what: &str) {
        self.update(Some(what), |counts| counts.0 = counts.0.saturating_add(1));
    }

    /// Changes the counts and, for a step, tells the sink while still holding them.
    fn update(&self, what: Option<&str>, change: impl FnOnce(&mut (u32, u32))) {
        // A poisoned lock only means a sink panicked: the counts are still whole.
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut counts);
        if let (Some(sink), Some(what)) = (&self.sink, what) {
            sink(what, counts.0, counts.1.max(counts.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn steps_are_counted_against_the_total_known_so_far() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&seen);
        let progress = Progress::to(move |what, done, total| {
            if let Ok(mut seen) = into.lock() {
                seen.push((what.to_owned(), done, total));
            }
        });
        progress.expect(2);
        progress.starting("reading");
        progress.finished("reading");
        progress.expect(3);
        progress.finished("modelling");
        let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(
            seen,
            [
                ("reading".to_owned(), 0, 2),
                ("reading".to_owned(), 1, 2),
                ("modelling".to_owned(), 2, 5),
            ]
        );
        Progress::unwatched().finished("nobody sees this");
    }
}

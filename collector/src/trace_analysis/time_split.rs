//! Where an endpoint's time goes, worked out from one whole trace.
//!
//! In: the spans of one trace as the assembler holds them ([`HeldSpan`]). Out: for every
//! endpoint span in it (SERVER or CONSUMER), one [`Contribution`] for the request, one for its
//! self time, and one per child component with its calls and time.
//!
//! The walk starts at the endpoint and stays inside its service's code: an internal span counts
//! its own exclusive time and the walk goes on into its children; any other child (a database
//! call, an outbound call, a message) counts its whole duration and the walk stops there, since
//! what happens below it is another service's time. Exclusive time is a span's duration minus
//! the union of its children's intervals (clipped to the span), so concurrent children are not
//! counted twice: self time is the time when none of the endpoint's children was running.

use crate::model::{ComponentType, Contribution, Named};
use hashbrown::HashMap;
use std::sync::Arc;

/// What the trace window keeps of a span (40 bytes).
#[derive(Clone, Debug)]
pub(crate) struct HeldSpan {
    /// Span id.
    pub(crate) span_id: [u8; 8],
    /// Parent span id; zero for a root.
    pub(crate) parent_span_id: [u8; 8],
    /// Start, nanoseconds since the epoch.
    pub(crate) start_ns: u64,
    /// Duration in microseconds (saturating at about 71 minutes).
    pub(crate) duration_us: u32,
    /// What the span is as a component; [`ComponentType::Server`] marks an endpoint span.
    pub(crate) component: ComponentType,
    /// Its service with the operation for endpoint spans, with the component label otherwise
    /// (interned: one pointer for both).
    pub(crate) named: Arc<Named>,
}

impl HeldSpan {
    fn duration_ns(&self) -> u64 {
        u64::from(self.duration_us) * 1_000
    }

    fn end_ns(&self) -> u64 {
        self.start_ns.saturating_add(self.duration_ns())
    }
}

/// Buffers the analysis reuses from one trace to the next, so that a batch of traces allocates
/// almost nothing.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    index: HashMap<[u8; 8], usize>,
    children: Vec<Vec<usize>>,
    visited: Vec<bool>,
    /// Per component of one endpoint: its type, the span that gave its label, calls, time.
    parts: Vec<(ComponentType, usize, u64, u64)>,
    stack: Vec<usize>,
    intervals: Vec<(u64, u64)>,
}

/// Spans in a trace up to which parents are found by scanning the trace rather than hashing.
const SMALL_TRACE: usize = 16;

/// Analyses one trace, appending the contributions of each of its endpoint requests to `out`.
/// Spans whose parent is not in the trace are only counted when they are endpoints themselves.
/// `empty` is the label of the request and self time.
pub(crate) fn analyse<'a>(
    spans: &'a [HeldSpan],
    empty: &'a Arc<str>,
    scratch: &mut Scratch,
    out: &mut Vec<Contribution<'a>>,
) {
    let Scratch {
        index,
        children,
        visited,
        parts,
        stack,
        intervals,
    } = scratch;
    // A small trace (most are) finds parents by a scan; a larger one through an index. Both
    // take the first span with the id.
    let small = spans.len() <= SMALL_TRACE;
    if !small {
        index.clear();
        for (i, span) in spans.iter().enumerate() {
            index.entry(span.span_id).or_insert(i);
        }
    }
    children.iter_mut().for_each(Vec::clear);
    if children.len() < spans.len() {
        children.resize_with(spans.len(), Vec::new);
    }
    for (i, span) in spans.iter().enumerate() {
        let parent = if small {
            spans.iter().position(|s| s.span_id == span.parent_span_id)
        } else {
            index.get(&span.parent_span_id).copied()
        };
        if let Some(parent) = parent
            && parent != i
        {
            children[parent].push(i);
        }
    }
    for (root, endpoint) in spans.iter().enumerate() {
        if endpoint.component != ComponentType::Server {
            continue;
        }
        visited.clear();
        visited.resize(spans.len(), false);
        visited[root] = true;
        parts.clear();
        stack.clear();
        stack.push(root);
        while let Some(at) = stack.pop() {
            for &child in &children[at] {
                if std::mem::replace(&mut visited[child], true) {
                    continue; // a cycle or a duplicate id: count each span once
                }
                let span = &spans[child];
                let time_ns = if span.component.is_local() {
                    stack.push(child);
                    exclusive_ns(spans, child, &children[child], intervals)
                } else {
                    span.duration_ns()
                };
                match parts.iter_mut().find(|(t, labelled, ..)| {
                    *t == span.component && spans[*labelled].named.name == span.named.name
                }) {
                    Some(part) => {
                        part.2 += 1;
                        part.3 += time_ns;
                    }
                    None => parts.push((span.component, child, 1, time_ns)),
                }
            }
        }
        let minute_unix_s = {
            let secs = endpoint.start_ns / 1_000_000_000;
            u32::try_from(secs - secs % 60).unwrap_or(u32::MAX)
        };
        let contribution = |component, label, calls, time_ns: u64| Contribution {
            endpoint: &endpoint.named,
            minute_unix_s,
            component,
            label,
            calls,
            duration_us: time_ns / 1_000,
        };
        out.push(contribution(
            ComponentType::Request,
            empty,
            1,
            endpoint.duration_ns(),
        ));
        let self_ns = exclusive_ns(spans, root, &children[root], intervals);
        out.push(contribution(ComponentType::SelfTime, empty, 1, self_ns));
        for &(component, labelled, calls, time_ns) in parts.iter() {
            out.push(contribution(
                component,
                &spans[labelled].named.name,
                calls,
                time_ns,
            ));
        }
    }
}

/// The span's duration minus the union of its children's intervals, clipped to the span.
fn exclusive_ns(
    spans: &[HeldSpan],
    at: usize,
    children: &[usize],
    intervals: &mut Vec<(u64, u64)>,
) -> u64 {
    let span = &spans[at];
    let (start, end) = (span.start_ns, span.end_ns());
    intervals.clear();
    intervals.extend(
        children
            .iter()
            .map(|&c| {
                let s = spans[c].start_ns.clamp(start, end);
                (s, spans[c].end_ns().clamp(s, end))
            })
            .filter(|(s, e)| e > s),
    );
    intervals.sort_unstable();
    let mut covered = 0;
    let mut current: Option<(u64, u64)> = None;
    for &(s, e) in intervals.iter() {
        match current {
            Some((cs, ce)) if s <= ce => current = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                covered += ce - cs;
                current = Some((s, e));
            }
            None => current = Some((s, e)),
        }
    }
    if let Some((cs, ce)) = current {
        covered += ce - cs;
    }
    span.duration_ns() - covered
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    struct Tree(Vec<HeldSpan>);

    impl Tree {
        fn add(
            &mut self,
            id: u8,
            parent: u8,
            component: ComponentType,
            name: &str,
            start_ms: u64,
            duration_ms: u64,
        ) -> &mut Self {
            self.0.push(HeldSpan {
                span_id: [id; 8],
                parent_span_id: [parent; 8],
                start_ns: 60_000 * MS + start_ms * MS,
                duration_us: u32::try_from(duration_ms * 1_000).expect("fits"),
                component,
                named: Named::new("shop", name),
            });
            self
        }

        fn analyse(&self) -> Vec<(ComponentType, String, u64, u64)> {
            let (empty, mut out) = (Arc::from(""), Vec::new());
            analyse(&self.0, &empty, &mut Scratch::default(), &mut out);
            out.into_iter()
                .map(|c| {
                    assert_eq!(c.minute_unix_s, 60);
                    (
                        c.component,
                        c.label.to_string(),
                        c.calls,
                        c.duration_us / 1000,
                    )
                })
                .collect()
        }
    }

    use ComponentType::*;

    #[test]
    fn a_held_span_takes_40_bytes() {
        assert_eq!(std::mem::size_of::<HeldSpan>(), 40);
    }

    #[test]
    fn sequential_children_and_self_time() {
        let mut t = Tree(Vec::new());
        t.add(1, 0, Server, "POST /checkout", 0, 100)
            .add(2, 1, Db, "pg SELECT", 10, 30)
            .add(3, 1, Db, "pg SELECT", 50, 45)
            .add(4, 1, Internal, "render", 96, 4);
        assert_eq!(
            t.analyse(),
            [
                (Request, "".into(), 1, 100),
                (SelfTime, "".into(), 1, 21),
                (Db, "pg SELECT".into(), 2, 75),
                (Internal, "render".into(), 1, 4),
            ]
        );
    }

    #[test]
    fn concurrent_children_are_not_double_counted_in_self_time() {
        let mut t = Tree(Vec::new());
        // Three 40 ms calls at once, then one 20 ms call: 60 ms covered, 40 ms self.
        t.add(1, 0, Server, "GET /feed", 0, 100)
            .add(2, 1, Http, "a GET /x", 10, 40)
            .add(3, 1, Http, "b GET /y", 10, 40)
            .add(4, 1, Rpc, "c Z/z", 20, 30)
            .add(5, 1, Db, "pg q", 70, 20)
            // Starts before and ends after the endpoint: clipped in the union.
            .add(6, 1, Messaging, "kafka out", 95, 50);
        let parts = t.analyse();
        assert_eq!(parts[1], (SelfTime, "".into(), 1, 100 - 40 - 20 - 5));
        assert_eq!(parts[2], (Http, "a GET /x".into(), 1, 40));
        assert_eq!(parts[6], (Messaging, "kafka out".into(), 1, 50));
    }

    #[test]
    fn internal_spans_count_their_exclusive_time_and_remote_work_is_not_walked() {
        let mut t = Tree(Vec::new());
        t.add(1, 0, Server, "GET /a", 0, 100)
            .add(2, 1, Internal, "load", 0, 60)
            .add(3, 2, Db, "pg q", 10, 40)
            .add(4, 1, Http, "b GET /b", 60, 40)
            // The called service's endpoint: its own analysis, not part of /a's.
            .add(5, 4, Server, "GET /b", 62, 36)
            .add(6, 5, Db, "pg r", 64, 30);
        let parts = t.analyse();
        assert_eq!(
            parts[..5],
            [
                (Request, "".into(), 1, 100),
                (SelfTime, "".into(), 1, 0),
                (Internal, "load".into(), 1, 20),
                (Http, "b GET /b".into(), 1, 40),
                (Db, "pg q".into(), 1, 40),
            ]
        );
        assert_eq!(
            parts[5..],
            [
                (Request, "".into(), 1, 36),
                (SelfTime, "".into(), 1, 6),
                (Db, "pg r".into(), 1, 30),
            ]
        );
    }

    #[test]
    fn cycles_and_duplicate_ids_terminate() {
        let mut t = Tree(Vec::new());
        t.add(1, 2, Server, "GET /a", 0, 10)
            .add(2, 1, Internal, "x", 0, 5)
            .add(2, 1, Internal, "x", 0, 5)
            .add(3, 3, Internal, "self-parent", 0, 1);
        let parts = t.analyse();
        assert_eq!(parts[0], (Request, "".into(), 1, 10));
        assert_eq!(parts[1], (SelfTime, "".into(), 1, 5));
        // Both copies of the duplicated span count; the one whose child is its own parent
        // covers itself with it and counts no exclusive time.
        assert_eq!(parts[2], (Internal, "x".into(), 2, 5));
    }

    #[test]
    fn a_trace_past_the_small_size_finds_parents_through_the_index_alike() {
        let mut small = Tree(Vec::new());
        small
            .add(1, 2, Server, "GET /a", 0, 10)
            .add(2, 1, Internal, "x", 0, 5)
            .add(2, 1, Internal, "x", 0, 5)
            .add(3, 3, Internal, "self-parent", 0, 1);
        let mut large = Tree(small.0.clone());
        // Spans of another part of the trace whose parent never came: not under the endpoint.
        for id in 0..u8::try_from(SMALL_TRACE).expect("small") {
            large.add(100 + id, 99, Db, "pg elsewhere", 0, 1);
        }
        assert!(large.0.len() > SMALL_TRACE);
        assert_eq!(large.analyse(), small.analyse());
        assert_eq!(large.analyse().len(), 3);
    }
}

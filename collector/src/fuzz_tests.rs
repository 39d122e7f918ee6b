//! The fuzz targets of [`crate::fuzz`] in the test suite, for a bounded time: first every input
//! kept in `fuzz/corpus/<target>/` (what the coverage-guided campaigns found worth keeping),
//! then mutations of the seeds for `PLUMB_FUZZ_SECONDS` per target (default 5): flipped bits,
//! replaced, inserted, deleted and duplicated bytes, truncation, splices of two inputs. A panic
//! fails the test and prints the seed and the input.

use crate::fuzz::{TARGETS, seeds};
use plumb_loadgen::metrics::every_metric_type;
use plumb_loadgen::sample_trace_requests;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

/// A small xorshift generator; the seed is printed with any failure.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// One random mutation of `input` (sometimes spliced with `other`).
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        let at = rng.below(len + 1);
        match rng.below(7) {
            0 if len > 0 => out[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => out[at.min(len - 1)] = rng.below(256) as u8,
            2 => out.insert(at, [0x00, 0xff, 0x0a, 0x12, 0x80, b'"', b'{'][rng.below(7)]),
            3 if len > 0 => {
                out.remove(at.min(len - 1));
            }
            4 => out.truncate(at),
            5 if len > 0 => {
                let end = (at + rng.below(16)).min(len);
                let copy = out[at.min(len)..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => {
                let cut = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[cut..]);
            }
        }
    }
    out
}

/// Every file in `fuzz/corpus/<name>/` (none when the folder is absent).
fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let bytes = std::fs::read(e.path()).ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), bytes))
        })
        .collect();
    files.sort();
    files
}

/// Runs the target `name` on its corpus, then on mutations of its seeds for the time budget.
fn fuzz(name: &str) {
    let target = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no target {name}"));
    let seeds = seeds(
        name,
        &sample_trace_requests(),
        &[every_metric_type(1_796_083_200_000_000_000)],
    );
    assert!(!seeds.is_empty(), "{name} has seeds");
    let kept = corpus(name);
    for (file, input) in &kept {
        if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            panic!("{name}: panicked on fuzz/corpus/{name}/{file}");
        }
    }
    let budget = std::env::var("PLUMB_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(budget);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            let base = &seeds[rng.below(seeds.len())];
            let other = &seeds[rng.below(seeds.len())];
            let input = if rng.below(8) == 0 {
                base.clone()
            } else {
                mutate(&mut rng, base, other)
            };
            if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
                panic!(
                    "{name}: panicked (seed {seed}, run {runs}) on input {:02x?}",
                    input
                );
            }
            runs += 1;
        }
    }
    eprintln!(
        "{name}: {} corpus inputs, then {runs} mutations in {budget} s, no panic",
        kept.len()
    );
}

#[test]
fn otlp_protobuf_spans() {
    fuzz("otlp_protobuf_spans");
}

#[test]
fn otlp_json_spans_decode_like_protobuf() {
    fuzz("otlp_json_spans");
}

#[test]
fn otlp_protobuf_metrics() {
    fuzz("otlp_protobuf_metrics");
}

#[test]
fn otlp_json_metrics() {
    fuzz("otlp_json_metrics");
}

#[test]
fn path_templating_and_statement_normalising() {
    fuzz("paths_and_statements");
}

#[test]
fn user_text_parsers() {
    fuzz("query_parameters");
}

#[test]
fn the_alerting_file() {
    fuzz("alerting_config");
}

#[test]
fn grpc_framing() {
    fuzz("grpc_framing");
}

#[test]
fn every_target_is_run_here() {
    let here = include_str!("fuzz_tests.rs");
    for (name, _) in TARGETS {
        assert!(here.contains(&format!("fuzz(\"{name}\")")), "{name}");
    }
}

//! `plumb-fuzz <target>`: one of `plumb_collector::fuzz::TARGETS` under AFL++ in persistent
//! mode (build with `cargo afl build --release`, run by `scripts/fuzz-campaign.sh`).
//! `plumb-fuzz seeds <target> <dir>` writes the target's seed inputs into `dir`.

use plumb_collector::fuzz::{TARGETS, seeds};
use plumb_loadgen::metrics::every_metric_type;
use plumb_loadgen::sample_trace_requests;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let find = |name: &str| TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f);
    match args.as_slice() {
        [seeds_verb, name, dir] if seeds_verb == "seeds" && find(name).is_some() => {
            let inputs = seeds(
                name,
                &sample_trace_requests(),
                &[every_metric_type(1_796_083_200_000_000_000)],
            );
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("cannot create {dir}: {e}");
                return ExitCode::FAILURE;
            }
            for (i, input) in inputs.iter().enumerate() {
                let path = format!("{dir}/seed-{i:02}");
                if let Err(e) = std::fs::write(&path, input) {
                    eprintln!("cannot write {path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        [name] => match find(name) {
            Some(target) => {
                afl::fuzz!(|data: &[u8]| target(data));
                ExitCode::SUCCESS
            }
            None => usage(),
        },
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    eprintln!(
        "usage: plumb-fuzz <target> | plumb-fuzz seeds <target> <dir>\ntargets: {}",
        names.join(", ")
    );
    ExitCode::FAILURE
}

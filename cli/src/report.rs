//! `plumb report capacity`: asks the collector for the capacity planning report (streamed, with
//! its progress) and writes it to a file or to standard output, with a progress bar on a
//! terminal while the collector works it out (nothing is drawn when standard error is not a
//! terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use plumb_proto::v1::{CapacityReportProgress, CapacityReportRequest};
use std::path::Path;
use std::time::Duration;

/// Largest report accepted (an HTML report of many services with its charts).
pub const MAX_REPORT_BYTES: usize = 256 * 1024 * 1024;

/// The format asked for, or the one the output file's extension names, or Markdown.
pub fn format_for(format: Option<&str>, out: Option<&Path>) -> String {
    if let Some(f) = format {
        return f.to_owned();
    }
    match out.and_then(|p| p.extension()).and_then(|e| e.to_str()) {
        Some("html" | "htm") => "html",
        Some("json") => "json",
        _ => "md",
    }
    .to_owned()
}

/// A progress bar on standard error, hidden when it is not a terminal.
pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("capacity report [{bar:30}] {pos}/{len} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Moves `bar` to where the collector says the report has got.
pub fn show(bar: &ProgressBar, progress: &CapacityReportProgress) {
    bar.set_length(u64::from(progress.total));
    bar.set_position(u64::from(progress.done));
    bar.set_message(progress.step.clone());
}

/// Writes `document` to `out`, or to standard output.
pub fn write(document: &str, out: Option<&Path>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    match out {
        Some(path) => std::fs::write(path, document)
            .with_context(|| format!("cannot write {}", path.display())),
        None => {
            print!("{document}");
            Ok(())
        }
    }
}

/// The request, from the command's flags.
pub fn request(
    since: Duration,
    horizon: Duration,
    service: String,
    host: String,
    format: String,
    limits: (f64, f64, f64),
    objective: Duration,
) -> CapacityReportRequest {
    CapacityReportRequest {
        since_seconds: since.as_secs().max(1),
        horizon_seconds: horizon.as_secs().max(1),
        service,
        host,
        format,
        cpu_limit: limits.0,
        memory_limit: limits.1,
        disk_limit: limits.2,
        latency_objective_ms: objective.as_secs_f64() * 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_flag_then_the_file_name() {
        assert_eq!(format_for(Some("json"), Some(Path::new("r.html"))), "json");
        assert_eq!(format_for(None, Some(Path::new("r.html"))), "html");
        assert_eq!(format_for(None, Some(Path::new("r.json"))), "json");
        assert_eq!(format_for(None, None), "md");
    }
}

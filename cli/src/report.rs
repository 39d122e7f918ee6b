//! `plumb report capacity`: asks the collector for the capacity planning report and writes it
//! to a file or to standard output, with a spinner on a terminal while the collector works it
//! out (nothing is drawn when standard error is not a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use plumb_proto::v1::CapacityReportRequest;
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

/// A spinner on standard error, hidden when it is not a terminal.
pub fn spinner() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} working out the capacity report… {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
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

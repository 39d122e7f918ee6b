//! `plumb`: the command line for Plumb's query API.
//!
//! `plumb top` ranks endpoints by latency, throughput, errors or time share, from the
//! collector's `plumb.v1.QueryService` (gRPC on the query port, 7318 by default).

use anyhow::Context;
use clap::{Parser, Subcommand};
use plumb_proto::v1::query_service_client::QueryServiceClient;
use plumb_proto::v1::{EndpointStats, TopEndpointsRequest};
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "plumb",
    version,
    about = "Ask a Plumb collector where the time goes"
)]
struct Cli {
    /// The collector's query API.
    #[arg(
        long,
        global = true,
        env = "PLUMB_QUERY_URL",
        default_value = "http://127.0.0.1:7318"
    )]
    endpoint: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rank endpoints: requests, rps, error %, p50/p95/p99 and time share.
    Top {
        /// Window ending now (e.g. 30s, 15m, 2h, 7d).
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        since: Duration,
        /// Only this service.
        #[arg(long, default_value = "")]
        service: String,
        /// Sort key.
        #[arg(long, default_value = "p99", value_parser = ["p50", "p95", "p99", "rps", "errors", "time"])]
        by: String,
        /// Span kind to rank (server, client, internal, producer, consumer, all).
        #[arg(long, default_value = "server")]
        kind: String,
        /// Rows to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut client = QueryServiceClient::connect(cli.endpoint.clone())
        .await
        .with_context(|| format!("cannot reach the Plumb query API at {} (is plumb-collector running? set --endpoint or PLUMB_QUERY_URL)", cli.endpoint))?;
    match cli.command {
        Command::Top {
            since,
            service,
            by,
            kind,
            limit,
            json,
        } => {
            let response = client
                .top_endpoints(TopEndpointsRequest {
                    since_seconds: since.as_secs().max(1),
                    service,
                    by,
                    limit,
                    kind,
                })
                .await
                .map_err(|s| anyhow::anyhow!("query failed: {}", s.message()))?
                .into_inner();
            if json {
                println!("{}", serde_json::to_string_pretty(&response)?);
            } else {
                print!(
                    "{}",
                    render_table(&response.endpoints, response.window_seconds)
                );
            }
        }
    }
    Ok(())
}

fn render_table(rows: &[EndpointStats], window_s: u64) -> String {
    if rows.is_empty() {
        return format!(
            "no requests in the last {}\n",
            humantime::format_duration(Duration::from_secs(window_s))
        );
    }
    let header = [
        "SERVICE",
        "OPERATION",
        "REQUESTS",
        "RPS",
        "ERR%",
        "P50",
        "P95",
        "P99",
        "TIME%",
    ];
    let mut table: Vec<[String; 9]> = vec![header.map(str::to_owned)];
    for r in rows {
        table.push([
            r.service.clone(),
            r.operation.clone(),
            r.requests.to_string(),
            format!("{:.1}", r.rps),
            format!("{:.1}", r.error_percent),
            format_ms(r.p50_ms),
            format_ms(r.p95_ms),
            format_ms(r.p99_ms),
            format!("{:.1}", r.time_share_percent),
        ]);
    }
    let mut widths = [0usize; 9];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i < 2 {
                    format!("{cell:<w$}", w = widths[i])
                } else {
                    format!("{cell:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.0}µs", ms * 1000.0)
    }
}

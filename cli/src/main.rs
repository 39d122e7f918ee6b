//! `plumb`: the command line for Plumb's query API.
//!
//! Every command is one `plumb.v1.QueryService` call to the collector (gRPC on the query port,
//! 7318 by default), printed as a table or, with `--json`, as the response message in JSON.

mod alerts;
mod report;
mod table;
mod waterfall;

use anyhow::Context;
use clap::{Parser, Subcommand};
use plumb_net::ClientTlsFiles;
use plumb_proto::v1::capacity_report_event;
use plumb_proto::v1::query_service_client::QueryServiceClient;
use plumb_proto::v1::{
    AddSilenceRequest, AlertsRequest, ChattyCallsRequest, ChattyCallsResponse,
    EndpointDetailRequest, EndpointDetailResponse, EndpointStats, ExpireSilenceRequest,
    GetTraceRequest, ListSilencesRequest, RegressionsRequest, RegressionsResponse,
    TopEndpointsRequest, UptimeRequest,
};
use std::time::Duration;
use table::{format_minute, format_ms, format_window, table};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

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
    /// Bearer token for the collector's query API (its `--query-tokens`).
    #[arg(long, global = true, env = "PLUMB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA (PEM) the collector's certificate must chain to, for an https:// --endpoint.
    #[arg(long, global = true, env = "PLUMB_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// Client certificate (PEM), for a collector that requires mutual TLS.
    #[arg(long, global = true, env = "PLUMB_CLIENT_CERT")]
    client_cert: Option<std::path::PathBuf>,
    /// Client key (PEM), for mutual TLS.
    #[arg(long, global = true, env = "PLUMB_CLIENT_KEY")]
    client_key: Option<std::path::PathBuf>,
    /// Print the response as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

fn duration(text: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

#[derive(Debug, Subcommand)]
enum SilenceAction {
    /// Silences the alerts matching every matcher (label=value, !=, =~, !~).
    Add {
        /// Matchers, e.g. alertname=shop-health service=~"shop|cart".
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long it lasts.
        #[arg(long = "for", default_value = "2h", value_parser = duration)]
        duration: Duration,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
        /// Who (default: $USER).
        #[arg(long, env = "USER", default_value = "")]
        created_by: String,
    },
    /// Silences that have not ended.
    List,
    /// Ends a silence now.
    Expire {
        /// Its id, as `plumb silence list` shows it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rank endpoints: requests, rps, error %, p50/p95/p99, apdex and time share.
    Top {
        /// Window ending now (e.g. 30s, 15m, 2h, 7d).
        #[arg(long, default_value = "15m", value_parser = duration)]
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
    },
    /// One endpoint: percentiles over time, apdex, where its time goes, slowest traces.
    Endpoint {
        /// Service name.
        service: String,
        /// Operation as `plumb top` shows it, e.g. "POST /checkout".
        operation: String,
        /// Window ending now.
        #[arg(long, default_value = "1h", value_parser = duration)]
        since: Duration,
        /// Span kind of the endpoint.
        #[arg(long, default_value = "server")]
        kind: String,
        /// Slowest traces to list.
        #[arg(long, default_value_t = 5)]
        exemplars: u32,
        /// Calls per calling request from which a child is flagged as N+1.
        #[arg(long, default_value_t = 10.0)]
        min_calls: f64,
    },
    /// One trace as a waterfall.
    Trace {
        /// Trace id (32 hex digits).
        trace_id: String,
        /// How far back to look for its spans.
        #[arg(long, default_value = "7d", value_parser = duration)]
        since: Duration,
        /// Width of the time line, in characters.
        #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u16).range(10..=400))]
        width: u16,
    },
    /// Endpoints whose p95, p99 or error rate got significantly worse than a day (or week) ago.
    Regressions {
        /// Window ending now.
        #[arg(long, default_value = "1h", value_parser = duration)]
        since: Duration,
        /// How far back the baseline lies (1d or 7d, or any duration).
        #[arg(long, default_value = "1d", value_parser = duration)]
        baseline: Duration,
        /// Only this service.
        #[arg(long, default_value = "")]
        service: String,
        /// Requests needed in each window.
        #[arg(long, default_value_t = 100)]
        min_requests: u64,
        /// Smallest percentile growth that counts, in percent.
        #[arg(long, default_value_t = 20.0)]
        min_change: f64,
    },
    /// Pending and firing alerts, their history and every notification attempt.
    Alerts {
        /// firing, pending or all.
        #[arg(long, default_value = "all", value_parser = ["firing", "pending", "all"])]
        state: String,
        /// How far back the history and notifications go.
        #[arg(long, default_value = "24h", value_parser = duration)]
        history: Duration,
    },
    /// Per probe: uptime, checks, failures, probe latency, last change, certificate days left.
    Uptime {
        /// Window ending now (a day or more counts whole days).
        #[arg(long, default_value = "24h", value_parser = duration)]
        since: Duration,
    },
    /// Mutes alerts for a while: add, list and expire silences.
    Silence {
        #[command(subcommand)]
        action: SilenceAction,
    },
    /// Checks an alerting configuration file offline, like `promtool check config`.
    CheckConfig {
        /// The file.
        file: std::path::PathBuf,
    },
    /// Reports: `plumb report capacity`.
    Report {
        #[command(subcommand)]
        kind: ReportKind,
    },
    /// Child operations called many times per request (N+1 queries, chatty calls).
    Chatty {
        /// Window ending now.
        #[arg(long, default_value = "1h", value_parser = duration)]
        since: Duration,
        /// Only this service.
        #[arg(long, default_value = "")]
        service: String,
        /// Calls per calling request from which a call is listed.
        #[arg(long, default_value_t = 10.0)]
        min_calls: f64,
        /// Rows to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
enum ReportKind {
    /// Load, cost per request, scalability and forecasts per service; when each host's CPU,
    /// memory and disks reach their limits.
    Capacity {
        /// The load window, ending at the last whole hour.
        #[arg(long, default_value = "30d", value_parser = duration)]
        since: Duration,
        /// How far the forecasts look ahead (at most 365d).
        #[arg(long, default_value = "90d", value_parser = duration)]
        horizon: Duration,
        /// Only this service.
        #[arg(long, default_value = "")]
        service: String,
        /// Only this host.
        #[arg(long, default_value = "")]
        host: String,
        /// html, md or json (default: from --out's extension, else md).
        #[arg(long, value_parser = ["html", "md", "json"])]
        format: Option<String>,
        /// Write the report here instead of to standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// CPU utilisation that counts as full.
        #[arg(long, default_value_t = 0.8)]
        cpu_limit: f64,
        /// Memory share that counts as full.
        #[arg(long, default_value_t = 0.9)]
        memory_limit: f64,
        /// Disk share that counts as full.
        #[arg(long, default_value_t = 0.9)]
        disk_limit: f64,
        /// The p99 latency objective for the headroom.
        #[arg(long, default_value = "500ms", value_parser = duration)]
        latency_objective: Duration,
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

/// Prints `response` as JSON, or as `render` makes it.
fn print<T: serde::Serialize>(
    json: bool,
    response: &T,
    render: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(response)?);
    } else {
        print!("{}", render(response));
    }
    Ok(())
}

fn failed(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("query failed: {}", status.message())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::CheckConfig { file } = &cli.command {
        print!("{}", alerts::check_config(file)?);
        return Ok(());
    }
    let mut endpoint = Channel::from_shared(cli.endpoint.clone())
        .with_context(|| format!("invalid --endpoint {}", cli.endpoint))?;
    let tls = ClientTlsFiles {
        ca: cli.ca_cert.clone(),
        cert: cli.client_cert.clone(),
        key: cli.client_key.clone(),
    };
    if tls.is_set() {
        endpoint = endpoint
            .tls_config(tls.tonic()?)
            .context("invalid TLS settings")?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the Plumb query API at {} (is plumb-collector running? set --endpoint or PLUMB_QUERY_URL)", cli.endpoint))?;
    let authorization: Option<MetadataValue<Ascii>> = match &cli.token {
        Some(token) => Some(
            format!("Bearer {token}")
                .parse()
                .map_err(|_| anyhow::anyhow!("the token must be printable ASCII"))?,
        ),
        None => None,
    };
    let mut client =
        QueryServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            if let Some(value) = &authorization {
                request
                    .metadata_mut()
                    .insert("authorization", value.clone());
            }
            Ok(request)
        });
    let json = cli.json;
    match cli.command {
        Command::Top {
            since,
            service,
            by,
            kind,
            limit,
        } => {
            let request = TopEndpointsRequest {
                since_seconds: since.as_secs().max(1),
                service,
                by,
                limit,
                kind,
            };
            let response = client
                .top_endpoints(request)
                .await
                .map_err(failed)?
                .into_inner();
            print(json, &response, |r| {
                render_top(&r.endpoints, r.window_seconds)
            })
        }
        Command::Endpoint {
            service,
            operation,
            since,
            kind,
            exemplars,
            min_calls,
        } => {
            let request = EndpointDetailRequest {
                service,
                operation,
                since_seconds: since.as_secs().max(1),
                kind,
                exemplars,
                min_calls_per_request: min_calls,
            };
            let response = client
                .endpoint_detail(request)
                .await
                .map_err(failed)?
                .into_inner();
            print(json, &response, render_endpoint)
        }
        Command::Trace {
            trace_id,
            since,
            width,
        } => {
            let request = GetTraceRequest {
                trace_id,
                since_seconds: since.as_secs().max(1),
            };
            let response = client
                .get_trace(request)
                .await
                .map_err(failed)?
                .into_inner();
            print(json, &response, |t| {
                waterfall::waterfall(t, usize::from(width))
            })
        }
        Command::Regressions {
            since,
            baseline,
            service,
            min_requests,
            min_change,
        } => {
            let request = RegressionsRequest {
                since_seconds: since.as_secs().max(1),
                baseline_seconds: baseline.as_secs().max(1),
                service,
                min_requests,
                min_change_percent: min_change,
            };
            let response = client
                .regressions(request)
                .await
                .map_err(failed)?
                .into_inner();
            print(json, &response, render_regressions)
        }
        Command::Alerts { state, history } => {
            let request = AlertsRequest {
                state,
                history_seconds: history.as_secs().max(1),
            };
            let response = client.alerts(request).await.map_err(failed)?.into_inner();
            print(json, &response, alerts::render_alerts)
        }
        Command::Uptime { since } => {
            let request = UptimeRequest {
                since_seconds: since.as_secs().max(1),
            };
            let response = client.uptime(request).await.map_err(failed)?.into_inner();
            print(json, &response, alerts::render_uptime)
        }
        Command::CheckConfig { .. } => Ok(()),
        Command::Report {
            kind:
                ReportKind::Capacity {
                    since,
                    horizon,
                    service,
                    host,
                    format,
                    out,
                    cpu_limit,
                    memory_limit,
                    disk_limit,
                    latency_objective,
                },
        } => {
            let format = report::format_for(format.as_deref(), out.as_deref());
            let request = report::request(
                since,
                horizon,
                service,
                host,
                format,
                (cpu_limit, memory_limit, disk_limit),
                latency_objective,
            );
            let bar = report::progress_bar();
            let mut events = client
                .max_decoding_message_size(report::MAX_REPORT_BYTES)
                .capacity_report_stream(request)
                .await
                .map_err(failed)?
                .into_inner();
            let mut document = None;
            while let Some(event) = events.message().await.map_err(failed)? {
                match event.event {
                    Some(capacity_report_event::Event::Progress(p)) => report::show(&bar, &p),
                    Some(capacity_report_event::Event::Report(r)) => document = Some(r.document),
                    None => {}
                }
            }
            bar.finish_and_clear();
            let document = document
                .ok_or_else(|| anyhow::anyhow!("the collector ended the report without it"))?;
            report::write(&document, out.as_deref())
        }
        Command::Silence { action } => match action {
            SilenceAction::Add {
                matchers,
                duration,
                comment,
                created_by,
            } => {
                let request = AddSilenceRequest {
                    matchers,
                    duration_seconds: duration.as_secs().max(1),
                    comment,
                    created_by,
                };
                let silence = client
                    .add_silence(request)
                    .await
                    .map_err(failed)?
                    .into_inner();
                print(json, &silence, |s| {
                    alerts::render_silences(std::slice::from_ref(s))
                })
            }
            SilenceAction::List => {
                let response = client
                    .list_silences(ListSilencesRequest {})
                    .await
                    .map_err(failed)?
                    .into_inner();
                print(json, &response, |r| alerts::render_silences(&r.silences))
            }
            SilenceAction::Expire { id } => {
                let silence = client
                    .expire_silence(ExpireSilenceRequest { id })
                    .await
                    .map_err(failed)?
                    .into_inner();
                print(json, &silence, |s| {
                    alerts::render_silences(std::slice::from_ref(s))
                })
            }
        },
        Command::Chatty {
            since,
            service,
            min_calls,
            limit,
        } => {
            let request = ChattyCallsRequest {
                since_seconds: since.as_secs().max(1),
                service,
                min_calls_per_request: min_calls,
                limit,
            };
            let response = client
                .chatty_calls(request)
                .await
                .map_err(failed)?
                .into_inner();
            print(json, &response, render_chatty)
        }
    }
}

fn render_top(rows: &[EndpointStats], window_s: u64) -> String {
    if rows.is_empty() {
        return format!("no requests in the last {}\n", format_window(window_s));
    }
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.service.clone(),
                r.operation.clone(),
                r.requests.to_string(),
                format!("{:.1}", r.rps),
                format!("{:.1}", r.error_percent),
                format_ms(r.p50_ms),
                format_ms(r.p95_ms),
                format_ms(r.p99_ms),
                format!("{:.2}", r.apdex),
                format!("{:.1}", r.time_share_percent),
            ]
        })
        .collect();
    table(
        &[
            "SERVICE",
            "OPERATION",
            "REQUESTS",
            "RPS",
            "ERR%",
            "P50",
            "P95",
            "P99",
            "APDEX",
            "TIME%",
        ],
        &rows,
        2,
    )
}

fn render_endpoint(r: &EndpointDetailResponse) -> String {
    let mut out = String::new();
    if let Some(s) = &r.summary {
        out.push_str(&format!(
            "{}  {}  ({}, last {})\n",
            s.service,
            s.operation,
            s.kind,
            format_window(r.window_seconds)
        ));
        out.push_str(&format!(
            "requests {} ({:.1}/s)  errors {:.1}%  p50 {}  p95 {}  p99 {}  apdex {:.2} (T {})  time share {:.1}%\n\n",
            s.requests,
            s.rps,
            s.error_percent,
            format_ms(s.p50_ms),
            format_ms(s.p95_ms),
            format_ms(s.p99_ms),
            s.apdex,
            format_ms(s.apdex_threshold_ms),
            s.time_share_percent
        ));
    }
    let series: Vec<Vec<String>> = r
        .series
        .iter()
        .map(|p| {
            vec![
                format_minute(p.start_unix_s),
                p.requests.to_string(),
                p.errors.to_string(),
                format_ms(p.p50_ms),
                format_ms(p.p95_ms),
                format_ms(p.p99_ms),
            ]
        })
        .collect();
    out.push_str(&format!(
        "over time (steps of {})\n",
        format_window(r.step_seconds)
    ));
    out.push_str(&table(
        &["FROM (UTC)", "REQUESTS", "ERRORS", "P50", "P95", "P99"],
        &series,
        1,
    ));
    out.push_str(&format!(
        "\nwhere the time goes ({} requests analysed from whole traces)\n",
        r.analysed_requests
    ));
    if r.breakdown.is_empty() {
        out.push_str("no analysed traces in the window\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .breakdown
            .iter()
            .map(|b| {
                vec![
                    b.r#type.clone(),
                    if b.component.is_empty() {
                        "(own code)".into()
                    } else {
                        b.component.clone()
                    },
                    format!("{:.1}%", b.time_share_percent),
                    format_ms(b.mean_ms_per_request),
                    format!("{:.1}", b.calls_per_request),
                    if b.n_plus_one {
                        format!("N+1: {:.0} calls/request", b.calls_per_calling_request)
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "TYPE",
                "COMPONENT",
                "SHARE",
                "PER REQUEST",
                "CALLS/REQ",
                "FLAG",
            ],
            &rows,
            2,
        ));
    }
    out.push_str("\nslowest requests\n");
    let slowest: Vec<Vec<String>> = r
        .slowest
        .iter()
        .map(|e| {
            vec![
                e.trace_id.clone(),
                format_ms(e.duration_ms),
                if e.error {
                    "error".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    out.push_str(&table(&["TRACE ID", "DURATION", ""], &slowest, 1));
    out
}

fn render_regressions(r: &RegressionsResponse) -> String {
    let mut out = format!(
        "last {} against the same window {} earlier: {} endpoints compared, {} with too few requests\n",
        format_window(r.window_seconds),
        format_window(r.baseline_seconds),
        r.endpoints_compared,
        r.endpoints_skipped
    );
    if r.regressions.is_empty() {
        out.push_str("no significant regressions\n");
        return out;
    }
    let rows: Vec<Vec<String>> = r
        .regressions
        .iter()
        .map(|g| {
            vec![
                g.service.clone(),
                g.operation.clone(),
                g.reasons.join(","),
                format!(
                    "{} → {}",
                    format_ms(g.p95_before_ms),
                    format_ms(g.p95_after_ms)
                ),
                format!(
                    "{} → {}",
                    format_ms(g.p99_before_ms),
                    format_ms(g.p99_after_ms)
                ),
                format!(
                    "{:.1}% → {:.1}%",
                    g.error_percent_before, g.error_percent_after
                ),
                format!("{} → {}", g.requests_before, g.requests_after),
                format!("{:+.1}s/h", g.extra_seconds_per_hour),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "SERVICE",
            "OPERATION",
            "WORSE",
            "P95",
            "P99",
            "ERRORS",
            "REQUESTS",
            "IMPACT",
        ],
        &rows,
        3,
    ));
    out
}

fn render_chatty(r: &ChattyCallsResponse) -> String {
    if r.calls.is_empty() {
        return format!(
            "no child called {} or more times per request in the last {}\n",
            r.min_calls_per_request,
            format_window(r.window_seconds)
        );
    }
    let rows: Vec<Vec<String>> = r
        .calls
        .iter()
        .map(|c| {
            vec![
                c.service.clone(),
                c.operation.clone(),
                c.r#type.clone(),
                c.component.clone(),
                format!("{:.1}", c.calls_per_calling_request),
                c.requests_with_call.to_string(),
                format_ms(c.mean_ms_per_call),
                format!("{:.1}%", c.time_share_percent),
            ]
        })
        .collect();
    table(
        &[
            "SERVICE",
            "OPERATION",
            "TYPE",
            "CALL",
            "CALLS/REQ",
            "REQUESTS",
            "PER CALL",
            "SHARE",
        ],
        &rows,
        4,
    )
}

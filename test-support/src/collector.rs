//! Real `plumb-collector` processes on free loopback ports: start (plain or over TLS), wait until
//! ready, ask the CLI and the query API, stop.

use crate::binary;
use crate::clickhouse_server::clickhouse_url;
use crate::pki::TestPki;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `plumb-collector` process.
pub struct Collector {
    child: Option<Child>,
    /// OTLP/gRPC address.
    pub grpc: SocketAddr,
    /// OTLP/HTTP address.
    pub http: SocketAddr,
    /// Query API address.
    pub query: SocketAddr,
    log: PathBuf,
    /// Whether its listeners speak TLS (then the ready line alone says it is ready).
    tls: bool,
    _dir: tempfile::TempDir,
}

impl Collector {
    /// Starts a collector on `database` of the shared ClickHouse, with a 1 s flush interval
    /// unless `extra` says otherwise, and waits until it is ready.
    pub async fn start(database: &str, extra: &[&str]) -> Self {
        let url = clickhouse_url().await.to_owned();
        Self::start_with(database, &["--clickhouse-url", &url], extra).await
    }

    /// Starts a collector whose three listeners speak only TLS, with `pki`'s server certificate;
    /// with `mutual`, clients must also show a certificate signed by `pki`'s CA.
    pub async fn start_tls(database: &str, pki: &TestPki, mutual: bool) -> Self {
        let (cert, key, ca) = (
            pki.arg("server.pem"),
            pki.arg("server.key"),
            pki.arg("ca.pem"),
        );
        let mut args = vec!["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
        if mutual {
            args.extend(["--tls-client-ca", ca.as_str()]);
        }
        Self::start(database, &args).await
    }

    /// Starts a collector with exactly these storage arguments (e.g. none, for a local server).
    /// Its listeners bind port 0; the addresses come from its "ready" log line.
    pub async fn start_with(database: &str, storage: &[&str], extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("collector.log");
        let any_port = "127.0.0.1:0";
        let mut command = Command::new(binary("plumb-collector"));
        command
            .args(storage)
            .args(["--database", database, "--flush-interval", "1s"])
            .args([
                "--grpc-addr",
                any_port,
                "--http-addr",
                any_port,
                "--query-addr",
                any_port,
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(extra)
            .env_remove("PLUMB_CLICKHOUSE_URL")
            .env("PLUMB_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let child = command.spawn().expect("plumb-collector starts");
        let unset = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut collector = Self {
            child: Some(child),
            grpc: unset,
            http: unset,
            query: unset,
            log,
            tls: extra.contains(&"--tls-cert"),
            _dir: dir,
        };
        collector.wait_ready().await;
        collector
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "collector exited during start-up ({status}):\n{}",
                    self.log()
                );
            }
            if self.query.port() == 0 {
                if let Some([grpc, http, query]) = ready_addresses(&self.log()) {
                    (self.grpc, self.http, self.query) = (grpc, http, query);
                    if self.tls {
                        return;
                    }
                }
            } else if let Ok(r) = client
                .get(format!("{}/readyz", self.query_url()))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "collector not ready in time:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where the collector's log is written (it outlives `stop` until the test ends).
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// The collector's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://` URL of the query API.
    pub fn query_url(&self) -> String {
        format!("http://{}", self.query)
    }

    /// The collector's own `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("{}/metrics", self.query_url()))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// `http://` URL of OTLP/gRPC.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// `http://` URL of OTLP/HTTP (without a path).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Sends SIGHUP (the collector reads its alerting file again).
    pub fn hang_up(&self) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let sent = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -HUP {pid}");
    }

    /// Kills the process with SIGKILL (a crash: nothing is flushed) and waits for it to go.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub async fn stop(mut self) -> bool {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(status);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    return None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .expect("wait task");
        status.is_some_and(|s| s.success())
    }

    /// Runs `plumb <args>` against this collector; returns its output (the command must succeed
    /// unless `expect_success` is false).
    pub async fn plumb(&self, args: &[&str], expect_success: bool) -> std::process::Output {
        let output = tokio::process::Command::new(binary("plumb"))
            .args(["--endpoint", &self.query_url()])
            .args(args)
            .output()
            .await
            .expect("plumb runs");
        assert_eq!(
            output.status.success(),
            expect_success,
            "plumb {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs `plumb --json <args>` against this collector and parses what it prints.
    pub async fn plumb_json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.plumb(&[&["--json"], args].concat(), true).await;
        serde_json::from_slice(&output.stdout).expect("plumb --json prints JSON")
    }

    /// Runs `plumb top --json` with `args` against this collector.
    pub async fn top(&self, args: &[&str]) -> serde_json::Value {
        self.plumb_json(&[&["top"], args].concat()).await
    }

    /// Polls `plumb top` until the endpoints of `service` add up to `requests`, and returns them.
    pub async fn wait_for_requests(
        &self,
        service: &str,
        requests: u64,
        extra: &[&str],
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut args = vec!["--service", service, "--limit", "1000"];
        args.extend_from_slice(extra);
        loop {
            let top = self.top(&args).await;
            let endpoints = top["endpoints"].as_array().cloned().unwrap_or_default();
            let total: u64 = endpoints
                .iter()
                .map(|e| e["requests"].as_u64().unwrap_or(0))
                .sum();
            if total == requests {
                return endpoints;
            }
            assert!(
                total < requests,
                "more requests than sent for {service}: {total} > {requests}"
            );
            assert!(
                Instant::now() < deadline,
                "only {total} of {requests} requests arrived for {service}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The addresses in the collector's "plumb-collector ready grpc=… http=… query=…" log line.
fn ready_addresses(log: &str) -> Option<[SocketAddr; 3]> {
    let line = log.lines().find(|l| l.contains("plumb-collector ready"))?;
    let field = |name: &str| -> Option<SocketAddr> {
        let start = line.find(&format!("{name}="))? + name.len() + 1;
        line[start..].split_whitespace().next()?.parse().ok()
    };
    Some([field("grpc")?, field("http")?, field("query")?])
}

/// The endpoint named `operation` in `plumb top` output.
pub fn endpoint<'a>(endpoints: &'a [serde_json::Value], operation: &str) -> &'a serde_json::Value {
    endpoints
        .iter()
        .find(|e| e["operation"] == operation)
        .unwrap_or_else(|| panic!("no endpoint {operation:?} in {endpoints:#?}"))
}

impl Collector {
    /// POSTs `request` to the collector's OTLP/HTTP `/v1/metrics` as protobuf; returns the data
    /// points it refused (OTLP partial success), failing on any status but 200.
    pub async fn send_metrics(
        &self,
        request: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    ) -> i64 {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
        use prost::Message as _;
        let response = reqwest::Client::new()
            .post(format!("{}/v1/metrics", self.http_url()))
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .expect("post metrics");
        assert_eq!(response.status(), 200, "metrics refused");
        let body = response.bytes().await.expect("body");
        ExportMetricsServiceResponse::decode(body)
            .expect("protobuf response")
            .partial_success
            .map_or(0, |p| p.rejected_data_points)
    }
}

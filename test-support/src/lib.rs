//! Plumb's shared test harness: one real ClickHouse per test binary (started with the collector's
//! own `LocalClickHouse`, or `PLUMB_CLICKHOUSE_URL` when set), a fresh database per test, real
//! `plumb-collector` processes on free loopback ports, and the official OpenTelemetry SDK
//! exporters to send data.

use opentelemetry::Context;
use opentelemetry::KeyValue;
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt as _, Tracer as _,
    TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use plumb_collector::testing::{LocalClickHouse, ServerBinary, Store, StoreConfig};
use plumb_net::ClientTlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::OnceCell;

struct SharedClickHouse {
    url: String,
    _server: Option<LocalClickHouse>,
    _dir: Option<tempfile::TempDir>,
}

static CLICKHOUSE: OnceCell<SharedClickHouse> = OnceCell::const_new();

/// The URL of the ClickHouse server all tests of this binary share.
pub async fn clickhouse_url() -> &'static str {
    let shared = CLICKHOUSE
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("PLUMB_CLICKHOUSE_URL") {
                return SharedClickHouse {
                    url,
                    _server: None,
                    _dir: None,
                };
            }
            let dir = tempfile::tempdir().expect("temp dir for ClickHouse");
            let binary = ServerBinary::find(None)
                .expect("ClickHouse installed (the test command installs it)");
            let server = LocalClickHouse::start(&binary, dir.path()).expect("ClickHouse starts");
            let url = server.url().to_owned();
            let store = store_for(&url, "default");
            store
                .wait_ready(Duration::from_secs(60))
                .await
                .expect("ClickHouse answers");
            SharedClickHouse {
                url,
                _server: Some(server),
                _dir: Some(dir),
            }
        })
        .await;
    &shared.url
}

fn store_for(url: &str, database: &str) -> Store {
    Store::new(&StoreConfig {
        url: url.to_owned(),
        user: "default".into(),
        password: String::new(),
        database: database.into(),
    })
    .expect("valid store config")
}

/// The path of one of the workspace's binaries, next to the running test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`). `cargo test --workspace` builds
/// them before running any test.
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A database name no other test uses.
pub fn unique_database(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "it_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store handle for checking rows directly.
pub async fn store(database: &str) -> Store {
    store_for(clickhouse_url().await, database)
}

/// The single number a query returns (`SELECT count() ...`), from `database`.
pub async fn query_number(database: &str, sql: &str) -> u64 {
    store(database)
        .await
        .client()
        .query(sql)
        .fetch_one::<u64>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

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
                assert!(
                    Instant::now() < deadline,
                    "collector not ready in time:\n{}",
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if let Ok(r) = client
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

/// How the SDK exporter talks to the collector.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    /// OTLP/gRPC, gzip-compressed.
    Grpc,
    /// OTLP/HTTP with JSON bodies.
    HttpJson,
    /// OTLP/gRPC with `authorization: Bearer <token>` metadata.
    GrpcWithToken(&'static str),
}

/// One span to send: what it looks like and how long it took.
#[derive(Clone, Debug)]
pub struct SpanSpec {
    /// Span name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Attributes.
    pub attributes: Vec<KeyValue>,
    /// Duration in microseconds.
    pub duration_us: u64,
    /// Whether to set status ERROR.
    pub error: bool,
    /// Start time.
    pub start: SystemTime,
}

/// GET SERVER spans for `route`, one per duration (µs), all starting at `start`.
pub fn server_spans(
    route: &str,
    durations: impl IntoIterator<Item = u64>,
    start: SystemTime,
) -> Vec<SpanSpec> {
    durations
        .into_iter()
        .map(|d| SpanSpec {
            name: route.into(),
            kind: SpanKind::Server,
            attributes: vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", route.to_owned()),
            ],
            duration_us: d,
            error: false,
            start,
        })
        .collect()
}

/// Records `spans` through the SDK and flushes them to the collector.
pub async fn send_spans(
    collector: &Collector,
    transport: Transport,
    service: &str,
    spans: Vec<SpanSpec>,
) {
    send_spans_to(
        &collector.grpc_url(),
        &collector.http_url(),
        transport,
        service,
        spans,
    )
    .await;
}

/// Records `spans` through the SDK and flushes them to any OTLP receiver (`http://host:port`
/// for gRPC and for HTTP, without a path).
pub async fn send_spans_to(
    grpc: &str,
    http: &str,
    transport: Transport,
    service: &str,
    spans: Vec<SpanSpec>,
) {
    let service = service.to_owned();
    let (grpc, http) = (grpc.to_owned(), http.to_owned());
    // The SDK's batch processor and the HTTP client block; keep them off the async workers.
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _guard = handle.enter();
        let provider = tracer_provider_for(&grpc, &http, transport, &service);
        let tracer = provider.tracer("plumb-it");
        for s in spans {
            let mut span = tracer
                .span_builder(s.name)
                .with_kind(s.kind)
                .with_start_time(s.start)
                .with_attributes(s.attributes)
                .start(&tracer);
            if s.error {
                span.set_status(Status::error("failed"));
            }
            span.end_with_timestamp(s.start + Duration::from_micros(s.duration_us));
        }
        provider
            .force_flush()
            .expect("spans flushed to the collector");
        provider.shutdown().expect("provider shuts down");
    })
    .await
    .expect("sender thread");
}

/// One span of a trace to send, with the spans it calls.
#[derive(Clone, Debug)]
pub struct TreeSpan {
    /// The service that records it.
    pub service: String,
    /// The span itself.
    pub spec: SpanSpec,
    /// Its children.
    pub children: Vec<TreeSpan>,
}

impl TreeSpan {
    /// A span of `service` with no children yet.
    pub fn new(service: &str, spec: SpanSpec) -> Self {
        Self {
            service: service.to_owned(),
            spec,
            children: Vec::new(),
        }
    }

    /// Adds a child.
    pub fn child(mut self, child: TreeSpan) -> Self {
        self.children.push(child);
        self
    }
}

/// Sends whole traces through the SDK over OTLP/gRPC, one tracer provider per service, each
/// span a child of its parent's span context. Returns the trace ids (32 hex digits), in order.
pub async fn send_traces(collector: &Collector, traces: Vec<TreeSpan>) -> Vec<String> {
    let grpc = collector.grpc_url();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _guard = handle.enter();
        let mut providers: HashMap<String, SdkTracerProvider> = HashMap::new();
        let ids = traces
            .iter()
            .map(|root| {
                record_tree(&mut providers, &grpc, root, &Context::new())
                    .trace_id()
                    .to_string()
            })
            .collect();
        for provider in providers.values() {
            provider
                .force_flush()
                .expect("spans flushed to the collector");
            provider.shutdown().expect("provider shuts down");
        }
        ids
    })
    .await
    .expect("sender thread")
}

fn record_tree(
    providers: &mut HashMap<String, SdkTracerProvider>,
    grpc: &str,
    node: &TreeSpan,
    parent: &Context,
) -> SpanContext {
    let provider = providers
        .entry(node.service.clone())
        .or_insert_with(|| tracer_provider_for(grpc, "", Transport::Grpc, &node.service));
    let tracer = provider.tracer("plumb-it");
    let s = &node.spec;
    let mut span = tracer.build_with_context(
        SpanBuilder::from_name(s.name.clone())
            .with_kind(s.kind.clone())
            .with_start_time(s.start)
            .with_attributes(s.attributes.clone()),
        parent,
    );
    if s.error {
        span.set_status(Status::error("failed"));
    }
    let context = span.span_context().clone();
    span.end_with_timestamp(s.start + Duration::from_micros(s.duration_us));
    let cx = Context::new().with_remote_span_context(context.clone());
    for child in &node.children {
        record_tree(providers, grpc, child, &cx);
    }
    context
}

/// A tracer provider using the official OTLP exporter, with a queue large enough that the SDK
/// never drops a span in these tests.
fn tracer_provider_for(
    grpc: &str,
    http: &str,
    transport: Transport,
    service: &str,
) -> SdkTracerProvider {
    let exporter = match transport {
        Transport::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .with_endpoint(grpc)
            .build(),
        Transport::HttpJson => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(format!("{http}/v1/traces"))
            .build(),
        Transport::GrpcWithToken(token) => {
            let mut metadata = tonic::metadata::MetadataMap::new();
            metadata.insert(
                "authorization",
                format!("Bearer {token}").parse().expect("ASCII token"),
            );
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_metadata(metadata)
                .with_endpoint(grpc)
                .build()
        }
    }
    .expect("exporter builds");
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(200_000)
        .with_max_export_batch_size(1000)
        .with_scheduled_delay(Duration::from_millis(200))
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(config)
                .build(),
        )
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build()
}

/// The exact value at quantile `q` of `values` (nearest rank).
pub fn exact_quantile(values: &[u64], q: f64) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

/// Asserts a reported percentile (ms) is within the histogram's 1% of the exact value (µs).
pub fn assert_within_one_percent(reported_ms: f64, exact_us: u64, what: &str) {
    let exact_ms = exact_us as f64 / 1000.0;
    assert!(
        (reported_ms - exact_ms).abs() <= exact_ms * 0.01 + 0.001,
        "{what}: reported {reported_ms} ms, exact {exact_ms} ms"
    );
}

/// A small deterministic pseudo-random sequence (xorshift), so workloads repeat exactly.
pub struct Sequence(u64);

impl Sequence {
    /// A sequence from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a [`PausableProxy`] does with the bytes it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProxyState {
    /// Moves them.
    Open,
    /// Drops the connection they came on (a server that went away: nothing arrives late).
    Paused,
    /// Holds them and moves them on thawing (a frozen server: everything arrives late).
    Frozen,
}

/// A TCP proxy on loopback that can be paused or frozen. Put it in front of ClickHouse to make
/// it away or frozen without stopping it.
pub struct PausableProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    state: tokio::sync::watch::Sender<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl PausableProxy {
    /// Forwards connections to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy listens");
        let addr = listener.local_addr().expect("address");
        let (state, watch) = tokio::sync::watch::channel(ProxyState::Open);
        let upstream = upstream.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, watch) = (upstream.clone(), watch.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, watch.clone()),
                        pump(server_read, client_write, watch),
                    );
                });
            }
        });
        Self { addr, state, task }
    }

    /// A proxy in front of the shared ClickHouse of the tests.
    pub async fn in_front_of_clickhouse() -> Self {
        let url = clickhouse_url().await;
        Self::start(url.trim_start_matches("http://")).await
    }

    /// `http://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops moving bytes: a connection that sends anything is dropped.
    pub fn pause(&self) {
        let _ = self.state.send(ProxyState::Paused);
    }

    /// Stops moving bytes but keeps them, to deliver them late on [`Self::resume`].
    pub fn freeze(&self) {
        let _ = self.state.send(ProxyState::Frozen);
    }

    /// Moves bytes again.
    pub fn resume(&self) {
        let _ = self.state.send(ProxyState::Open);
    }
}

impl Drop for PausableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` as the proxy's state says.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: tokio::sync::watch::Receiver<ProxyState>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = match state.wait_for(|s| *s != ProxyState::Frozen).await {
            Ok(now) => *now,
            Err(_) => return,
        };
        if now == ProxyState::Paused || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// PEM files made at test time: a CA, a server certificate for 127.0.0.1 and localhost, and a
/// client certificate, all signed by the CA.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    /// Makes the CA and both certificates in a temporary folder.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let write =
            |name: &str, text: String| std::fs::write(dir.path().join(name), text).expect("write");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Plumb test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
        write("ca.pem", ca.pem());
        for (name, names, usage) in [
            (
                "server",
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "client",
                vec!["plumb-agent".to_owned()],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ] {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca).expect("signed");
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Self { dir }
    }

    /// The path of `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key` (or any
    /// other file to keep beside them).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The same path as a command-line argument.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Client settings trusting the CA, with the client certificate when `with_identity`.
    pub fn client(&self, with_identity: bool) -> ClientTlsFiles {
        ClientTlsFiles {
            ca: Some(self.path("ca.pem")),
            cert: with_identity.then(|| self.path("client.pem")),
            key: with_identity.then(|| self.path("client.key")),
        }
    }
}

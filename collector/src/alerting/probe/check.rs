//! One check of one probe: connect, and for HTTP(S) send the request and read the answer, timing
//! each phase (DNS, connect, TLS, first byte), then test the probe's conditions. DNS probes ask
//! their question through [`super::dns`].
//!
//! In: a [`Probe`]. Out: a [`CheckResult`]. A check never takes longer than the probe's timeout
//! (a hanging target fails the check, it never holds up another probe), and it never panics on
//! what a target sends: a bad answer is a failed check with the reason.

use plumb_alert_config::{Condition, Facts, HttpProbe, Probe, ProbeTarget};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// Most body bytes read for conditions; the rest is ignored.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most redirects followed.
const MAX_REDIRECTS: usize = 10;

/// What one check found.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CheckResult {
    /// Whether it passed: connected, and every condition held.
    pub(crate) success: bool,
    /// The whole check.
    pub(crate) duration: Duration,
    /// Name resolution.
    pub(crate) dns: Duration,
    /// TCP connect.
    pub(crate) connect: Duration,
    /// TLS handshake (zero without TLS).
    pub(crate) tls: Duration,
    /// From sending the request to the answer's first byte (zero without HTTP).
    pub(crate) first_byte: Duration,
    /// HTTP status (0 without HTTP).
    pub(crate) status: u16,
    /// Why it failed: the error, or the first condition that did not hold.
    pub(crate) error: String,
    /// Days left on the leaf certificate (TLS only).
    pub(crate) leaf_days_left: Option<i64>,
    /// Days left on the earliest-expiring certificate the server sent (TLS only).
    pub(crate) chain_days_left: Option<i64>,
}

/// Runs one check of `probe`, within its timeout.
pub(crate) async fn check(probe: &Probe, tls: &TlsClients) -> CheckResult {
    let started = Instant::now();
    let mut result = match tokio::time::timeout(probe.timeout, connect_and_ask(probe, tls)).await {
        Ok(result) => result,
        Err(_) => CheckResult {
            error: format!("no answer within {:?}", probe.timeout),
            ..CheckResult::default()
        },
    };
    if result.duration.is_zero() {
        result.duration = started.elapsed();
    }
    result
}

/// What a check read for its conditions besides the connection: a body (HTTP, the gRPC
/// serving status, a DNS answer's records) and a DNS response code.
#[derive(Debug, Default)]
struct Seen {
    body: Option<String>,
    dns_rcode: Option<String>,
}

/// Tests `conditions` (connected is implied) against what was `seen`, and records the first
/// that fails (with a DNS answer's response code beside it).
fn judge(conditions: &[Condition], result: &mut CheckResult, seen: &Seen) {
    let facts = Facts {
        status: (result.status != 0).then_some(result.status),
        response_time: result.duration,
        body: seen.body.as_deref(),
        certificate_expiration: result
            .chain_days_left
            .map(|d| Duration::from_secs(u64::try_from(d.max(0)).unwrap_or(0) * 86_400)),
        connected: true,
        dns_rcode: seen.dns_rcode.as_deref(),
    };
    match conditions.iter().find(|c| !c.holds(&facts)) {
        Some(failed) => {
            result.success = false;
            result.error = match &seen.dns_rcode {
                Some(rcode) => format!("condition {} failed (answer {rcode})", failed.text()),
                None => format!("condition {} failed", failed.text()),
            };
        }
        None => result.success = true,
    }
}

async fn connect_and_ask(probe: &Probe, tls: &TlsClients) -> CheckResult {
    let mut result = CheckResult::default();
    let started = Instant::now();
    let seen = match &probe.target {
        ProbeTarget::Tcp { address } => dial(address, &mut result).await.map(|_| Seen::default()),
        ProbeTarget::Tls { address, ca_file } => {
            tls_handshake(address, ca_file.as_deref(), tls, &mut result)
                .await
                .map(|()| Seen::default())
        }
        ProbeTarget::Grpc {
            address,
            service,
            tls: with_tls,
            ca_file,
        } => grpc_health(address, service, *with_tls, ca_file.as_deref(), &mut result)
            .await
            .map(|body| Seen {
                body: Some(body),
                dns_rcode: None,
            }),
        ProbeTarget::Dns {
            server,
            name,
            record_type,
        } => super::dns::ask(server, name, record_type, &mut result)
            .await
            .map(|answer| Seen {
                body: Some(answer.records),
                dns_rcode: Some(answer.rcode),
            }),
        // HTTP times and judges its last answer itself (after any redirects).
        ProbeTarget::Http(http) => {
            return match http_check(http, tls, probe, &mut result).await {
                Ok(()) => result,
                Err(e) => CheckResult { error: e, ..result },
            };
        }
    };
    match seen {
        Ok(seen) => {
            result.duration = started.elapsed();
            judge(&probe.conditions, &mut result, &seen);
            result
        }
        Err(e) => CheckResult { error: e, ..result },
    }
}

/// Resolves `address` (`host:port`) and connects, timing both.
async fn dial(address: &str, result: &mut CheckResult) -> Result<TcpStream, String> {
    let started = Instant::now();
    let addrs: Vec<_> = tokio::net::lookup_host(address)
        .await
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .collect();
    result.dns = started.elapsed();
    let first = addrs
        .first()
        .ok_or_else(|| format!("{address} resolves to no address"))?;
    let started = Instant::now();
    let stream = TcpStream::connect(first)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    result.connect = started.elapsed();
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A TLS handshake with `address`, verified for its host name; records the certificate days.
async fn tls_handshake(
    address: &str,
    ca_file: Option<&std::path::Path>,
    tls: &TlsClients,
    result: &mut CheckResult,
) -> Result<(), String> {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    let stream = dial(address, result).await?;
    handshake(stream, host, ca_file, tls, result)
        .await
        .map(drop)
}

/// The TLS handshake over `stream` for `host`, timed, with the certificate days recorded.
async fn handshake(
    stream: TcpStream,
    host: &str,
    ca_file: Option<&std::path::Path>,
    tls: &TlsClients,
    result: &mut CheckResult,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let started = Instant::now();
    let connector = tokio_rustls::TlsConnector::from(tls.for_ca(ca_file)?);
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host} is not a TLS server name: {e}"))?;
    let stream = connector
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake with {host}: {e}"))?;
    result.tls = started.elapsed();
    (result.leaf_days_left, result.chain_days_left) =
        days_left(stream.get_ref().1.peer_certificates().unwrap_or(&[]));
    Ok(stream)
}

/// The gRPC health method.
const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// `grpc.health.v1.HealthCheckResponse.ServingStatus` names, by number.
const SERVING_STATUS: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

/// Asks `address` for the health of `service`; the answer as `{"status": "SERVING"}` (what the
/// conditions read as `[BODY].status`).
async fn grpc_health(
    address: &str,
    service: &str,
    with_tls: bool,
    ca_file: Option<&std::path::Path>,
    result: &mut CheckResult,
) -> Result<String, String> {
    let scheme = if with_tls { "https" } else { "http" };
    let tls = if with_tls {
        let files = plumb_net::ClientTlsFiles {
            ca: ca_file.map(std::path::Path::to_path_buf),
            ..plumb_net::ClientTlsFiles::default()
        };
        Some(files.tonic().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let started = Instant::now();
    let mut client = plumb_otlp::client::RawGrpcClient::connect_with(
        format!("{scheme}://{address}"),
        HEALTH_CHECK_PATH,
        None,
        tls,
    )
    .await
    .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    result.connect = started.elapsed();
    // HealthCheckRequest { service = 1 }.
    let mut request = Vec::new();
    if !service.is_empty() {
        prost::encoding::string::encode(1, &service.to_owned(), &mut request);
    }
    let started = Instant::now();
    let answer = client
        .send(bytes::Bytes::from(request))
        .await
        .map_err(|s| format!("health check answered {:?}: {}", s.code(), s.message()))?;
    result.first_byte = started.elapsed();
    // HealthCheckResponse { status = 1 (enum) }.
    let mut status = 0u64;
    let mut buf = answer;
    while !buf.is_empty() {
        let (tag, wire_type) =
            prost::encoding::decode_key(&mut buf).map_err(|e| format!("bad health answer: {e}"))?;
        if tag == 1 && wire_type == prost::encoding::WireType::Varint {
            status = prost::encoding::decode_varint(&mut buf)
                .map_err(|e| format!("bad health answer: {e}"))?;
        } else {
            prost::encoding::skip_field(
                wire_type,
                tag,
                &mut buf,
                prost::encoding::DecodeContext::default(),
            )
            .map_err(|e| format!("bad health answer: {e}"))?;
        }
    }
    let name = SERVING_STATUS
        .get(status as usize)
        .copied()
        .unwrap_or("UNKNOWN");
    Ok(format!("{{\"status\":\"{name}\"}}"))
}

/// The HTTP(S) check: follows redirects when asked, reads the answer and tests the conditions.
async fn http_check(
    http: &HttpProbe,
    tls: &TlsClients,
    probe: &Probe,
    result: &mut CheckResult,
) -> Result<(), String> {
    let started = Instant::now();
    let mut url: http::Uri = http
        .url
        .parse()
        .map_err(|e| format!("invalid url {}: {e}", http.url))?;
    for _ in 0..=MAX_REDIRECTS {
        let (status, location, body) = exchange(&url, http, tls, result).await?;
        result.status = status;
        match location {
            Some(next) if http.follow_redirects && (300..400).contains(&status) => {
                url = redirect_target(&url, &next)?;
            }
            _ => {
                result.duration = started.elapsed();
                let seen = Seen {
                    body: Some(String::from_utf8_lossy(&body).into_owned()),
                    dns_rcode: None,
                };
                judge(&probe.conditions, result, &seen);
                return Ok(());
            }
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// Where a `Location` header leads from `from`.
fn redirect_target(from: &http::Uri, location: &str) -> Result<http::Uri, String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location
            .parse()
            .map_err(|e| format!("bad redirect {location}: {e}"));
    }
    let scheme = from.scheme_str().unwrap_or("http");
    let authority = from.authority().map_or("", |a| a.as_str());
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let base = from.path();
        let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{location}")
    };
    format!("{scheme}://{authority}{path}")
        .parse()
        .map_err(|e| format!("bad redirect {location}: {e}"))
}

/// One request and its answer: status, `Location` (if any) and up to [`MAX_BODY_BYTES`] of
/// body.
pub(crate) async fn exchange(
    url: &http::Uri,
    http: &HttpProbe,
    tls: &TlsClients,
    result: &mut CheckResult,
) -> Result<(u16, Option<String>, Vec<u8>), String> {
    let host = url.host().ok_or_else(|| format!("{url} has no host"))?;
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let stream = dial(&format!("{host}:{port}"), result).await?;
    let request = build_request(url, http)?;
    if https {
        let stream = handshake(stream, host, http.ca_file.as_deref(), tls, result).await?;
        send(stream, request, result).await
    } else {
        send(stream, request, result).await
    }
}

fn build_request(
    url: &http::Uri,
    http: &HttpProbe,
) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, String> {
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = http::Request::builder()
        .method(http.method.as_str())
        .uri(path)
        .header(
            http::header::HOST,
            url.authority().map_or("", |a| a.as_str()),
        )
        .header(http::header::USER_AGENT, "plumb-probe");
    for (name, value) in &http.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = http.body.clone().unwrap_or_default();
    builder
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| format!("cannot build the request: {e}"))
}

async fn send<S>(
    stream: S,
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
    result: &mut CheckResult,
) -> Result<(u16, Option<String>, Vec<u8>), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt as _;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
    let connection = tokio::spawn(connection);
    let started = Instant::now();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no HTTP answer: {e}"))?;
    result.first_byte = started.elapsed();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while bytes.len() < MAX_BODY_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = MAX_BODY_BYTES - bytes.len();
                    bytes.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(e)) => return Err(format!("reading the body: {e}")),
            None => break,
        }
    }
    connection.abort();
    Ok((status, location, bytes))
}

/// Days left on the leaf and on the earliest-expiring certificate of `chain` (DER).
fn days_left(chain: &[rustls_pki_types::CertificateDer<'_>]) -> (Option<i64>, Option<i64>) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days: Vec<i64> = chain
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, cert)| (cert.validity().not_after.timestamp() - now).div_euclid(86_400))
        .collect();
    (days.first().copied(), days.iter().min().copied())
}

/// TLS client configurations: the usual public roots, or those plus a probe's own CA.
#[derive(Debug, Clone)]
pub(crate) struct TlsClients {
    public: Arc<rustls::ClientConfig>,
}

impl TlsClients {
    /// Trusting the Mozilla root set (webpki-roots).
    pub(crate) fn new() -> Self {
        Self {
            public: Arc::new(Self::config(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })),
        }
    }

    fn config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    /// The configuration with `ca` (a PEM file) trusted too, when there is one.
    fn for_ca(&self, ca: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
        use rustls_pki_types::pem::PemObject as _;
        let Some(ca) = ca else {
            return Ok(Arc::clone(&self.public));
        };
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("cannot read ca_file {}: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
        }
        Ok(Arc::new(Self::config(roots)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_against_the_current_url() {
        let from: http::Uri = "http://a.example:8080/x/y?q=1".parse().expect("uri");
        let to = |l: &str| redirect_target(&from, l).expect(l).to_string();
        assert_eq!(to("/login"), "http://a.example:8080/login");
        assert_eq!(to("z"), "http://a.example:8080/x/z");
        assert_eq!(to("https://b.example/"), "https://b.example/");
    }
}

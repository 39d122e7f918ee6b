//! An SMTP server on loopback for notification tests: it offers STARTTLS (with the test PKI's
//! server certificate) and AUTH PLAIN/LOGIN, refuses mail sent before TLS, and keeps every mail
//! it takes with its envelope, whether it came over TLS and who logged in.

use base64::Engine as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::rustls;

/// One mail the server took.
#[derive(Clone, Debug, Default)]
pub struct Mail {
    /// `MAIL FROM`.
    pub from: String,
    /// Every `RCPT TO`.
    pub to: Vec<String>,
    /// The message: headers, blank line, body (dot-stuffing undone).
    pub data: String,
    /// Whether STARTTLS came first.
    pub over_tls: bool,
    /// The user that logged in (AUTH PLAIN or LOGIN), with the password after a colon.
    pub login: Option<String>,
}

impl Mail {
    /// The value of the header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            match (&mut value, line.starts_with([' ', '\t'])) {
                (Some(v), true) => v.push_str(line),
                (Some(_), false) => break,
                (None, _) => {
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case(name)
                    {
                        value = Some(v.trim().to_owned());
                    }
                }
            }
        }
        value
    }
}

/// The running server.
pub struct SmtpServer {
    /// Where it listens.
    pub address: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
}

/// What one step of a conversation asks of the connection.
enum Next {
    /// The client said QUIT or went away.
    Done,
    /// The client asked for STARTTLS and was told to go ahead.
    StartTls,
}

impl SmtpServer {
    /// Starts the server with the certificate and key (PEM files) it shows after STARTTLS.
    pub async fn start(cert: &std::path::Path, key: &std::path::Path) -> Self {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .expect("cert file")
            .collect::<Result<_, _>>()
            .expect("certs");
        let key = PrivateKeyDer::from_pem_file(key).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&mails);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, kept) = (acceptor.clone(), Arc::clone(&kept));
                tokio::spawn(async move {
                    let mut plain = BufReader::new(stream);
                    if plain
                        .get_mut()
                        .write_all(b"220 plumb-test ESMTP\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if let Ok(Next::StartTls) = converse(&mut plain, false, &kept).await
                        && let Ok(tls) = acceptor.accept(plain.into_inner()).await
                    {
                        let _ = converse(&mut BufReader::new(tls), true, &kept).await;
                    }
                });
            }
        });
        Self { address, mails }
    }

    /// The mails taken so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }

    /// Waits until `n` mails arrived (fails after `within`); returns them.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + within;
        loop {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} mails within {within:?}: {mails:?}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Decodes base64 text as UTF-8 (empty when it is neither).
fn decode(text: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// Serves one connection's commands until QUIT or STARTTLS.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut BufReader<S>,
    over_tls: bool,
    kept: &Mutex<Vec<Mail>>,
) -> std::io::Result<Next> {
    let mut mail = Mail {
        over_tls,
        ..Mail::default()
    };
    let mut line = String::new();
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Ok(Next::Done);
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let tls = if over_tls { "" } else { "250-STARTTLS\r\n" };
            format!("250-plumb-test\r\n{tls}250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
        } else if upper == "STARTTLS" && !over_tls {
            conn.get_mut().write_all(b"220 go ahead\r\n").await?;
            return Ok(Next::StartTls);
        } else if let Some(token) = upper.strip_prefix("AUTH PLAIN") {
            let start = command.len() - token.len();
            let parts: Vec<String> = decode(&command[start..])
                .split('\0')
                .map(str::to_owned)
                .collect();
            mail.login = Some(parts[1..].join(":"));
            "235 ok\r\n".into()
        } else if upper == "AUTH LOGIN" {
            let mut answers = Vec::new();
            for prompt in ["334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n"] {
                conn.get_mut().write_all(prompt.as_bytes()).await?;
                line.clear();
                conn.read_line(&mut line).await?;
                answers.push(decode(&line));
            }
            mail.login = Some(answers.join(":"));
            "235 ok\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            if over_tls {
                mail.from = command[10..].trim().to_owned();
                "250 ok\r\n".into()
            } else {
                "530 must issue STARTTLS first\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(command[8..].trim().to_owned());
            "250 ok\r\n".into()
        } else if upper == "DATA" {
            conn.get_mut().write_all(b"354 go on\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if conn.read_line(&mut line).await? == 0 {
                    return Ok(Next::Done);
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mail.data = data;
            kept.lock().expect("lock").push(mail.clone());
            mail.to.clear();
            "250 queued\r\n".into()
        } else if upper == "QUIT" {
            conn.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(Next::Done);
        } else if upper == "RSET" || upper == "NOOP" {
            "250 ok\r\n".into()
        } else {
            "502 not implemented\r\n".into()
        };
        conn.get_mut().write_all(reply.as_bytes()).await?;
    }
}

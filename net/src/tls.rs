//! Client TLS from PEM files: the CA the server's certificate must chain to, and for mutual TLS
//! the client's own certificate and key. The rustls ring provider comes through tonic.

use std::path::{Path, PathBuf};

/// Why the client TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// A PEM file could not be read.
    #[error("cannot use {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A certificate came without its key, or a key without its certificate.
    #[error("a client certificate needs its key, and a key its certificate")]
    HalfIdentity,
}

/// A client's trust and identity, as PEM files.
#[derive(Clone, Debug, Default)]
pub struct ClientTlsFiles {
    /// CA to trust (the server's certificate must chain to it).
    pub ca: Option<PathBuf>,
    /// Client certificate, for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Client key, for mutual TLS.
    pub key: Option<PathBuf>,
}

impl ClientTlsFiles {
    /// Whether any TLS setting is given.
    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// The tonic client configuration for these files.
    pub fn tonic(&self) -> Result<tonic::transport::ClientTlsConfig, ClientTlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| ClientTlsError::File {
                path: path.to_owned(),
                message: e.to_string(),
            })
        };
        let mut config = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &self.ca {
            config = config.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                config = config.identity(tonic::transport::Identity::from_pem(
                    read(cert)?,
                    read(key)?,
                ));
            }
            (None, None) => {}
            _ => return Err(ClientTlsError::HalfIdentity),
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_and_half_identities_are_named() {
        let missing = ClientTlsFiles {
            ca: Some("/nonexistent/ca.pem".into()),
            ..ClientTlsFiles::default()
        };
        let e = missing.tonic().expect_err("no such file");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let half = ClientTlsFiles {
            cert: Some("/nonexistent/cert.pem".into()),
            ..ClientTlsFiles::default()
        };
        assert!(matches!(half.tonic(), Err(ClientTlsError::HalfIdentity)));
        assert!(!ClientTlsFiles::default().is_set() && half.is_set());
    }
}

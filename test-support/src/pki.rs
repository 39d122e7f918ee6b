//! Certificates made at test time (rcgen): a CA, a server certificate and a client one.

use plumb_net::ClientTlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::path::PathBuf;

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

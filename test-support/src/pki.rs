//! Certificates made at test time (rcgen): a CA, a server certificate and a client one.

use plumb_net::ClientTlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::path::PathBuf;

/// Whole days since the Unix epoch, now.
fn days_from_epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

/// The calendar date (year, month, day) of a day count since 1970-01-01 (the civil-from-days
/// rule of the proleptic Gregorian calendar).
fn civil_date(days: u64) -> (i32, u8, u8) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
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
        Self::with_server_expiring(None)
    }

    /// Like [`TestPki::new`], with the server certificate expiring `days` from now when given.
    pub fn with_server_expiring(days: Option<u64>) -> Self {
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
            if let (Some(days), "server") = (days, name) {
                let (y, m, d) = civil_date(days_from_epoch_now() + days);
                params.not_after = rcgen::date_time_ymd(y, m, d);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(20_454), (2026, 1, 1));
        assert_eq!(civil_date(20_513), (2026, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
    }
}

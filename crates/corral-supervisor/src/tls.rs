//! TLS as a client, for https probes and for the `corral` verbs that talk
//! to `[daemon.tcp]`: rustls with the ring provider, as the listener uses.
//!
//! Whom to trust is a [`Trust`]: Mozilla's roots compiled in (webpki-roots,
//! so a probe behaves the same on every OS and in a bare container), the
//! certificates of one CA file, or nobody checked at all (`insecure`, for
//! self-signed development certificates). The server name checked is the
//! URL's host (sent as SNI when it is a DNS name).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

/// Which servers a TLS client accepts.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// Certificates that chain to Mozilla's root CAs (webpki-roots).
    #[default]
    Roots,
    /// Certificates that chain to one of these CA certificates only, read
    /// from `path` when the config (or the command line) was read. The
    /// content takes part in comparisons, so a reload sees a renewed CA.
    Ca {
        /// The file, for messages.
        path: PathBuf,
        /// Its certificates, DER.
        certs: Vec<CertificateDer<'static>>,
    },
    /// No verification at all: any certificate, any name. The handshake
    /// still encrypts, but anyone in the path can pose as the server.
    Insecure,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trust::Roots => f.write_str("Roots"),
            // The bytes say nothing to a person.
            Trust::Ca { path, certs } => write!(f, "Ca({}, {} certificate(s))", path.display(), certs.len()),
            Trust::Insecure => f.write_str("Insecure"),
        }
    }
}

impl Trust {
    /// Reads a CA file: PEM certificates, each usable as a trust anchor.
    /// Errors are one line that names the file.
    pub fn ca_file(path: &Path) -> Result<Trust, String> {
        let shown = path.display();
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read the CA file {shown}: {e}"))?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the CA file {shown} is not valid PEM: {}", pem_error(e)))?;
        if certs.is_empty() {
            return Err(format!("no certificate (-----BEGIN CERTIFICATE-----) in the CA file {shown}"));
        }
        let mut store = RootCertStore::empty();
        for (i, c) in certs.iter().enumerate() {
            store.add(c.clone()).map_err(|e| {
                let why = match e {
                    rustls::Error::InvalidCertificate(CertificateError::BadEncoding) => "it is malformed".to_string(),
                    e => e.to_string(),
                };
                format!("certificate {} of the CA file {shown} cannot be used as a CA: {why}", i + 1)
            })?;
        }
        Ok(Trust::Ca { path: path.to_path_buf(), certs })
    }

    /// The rustls client config for this trust (TLS 1.3 and 1.2, ALPN
    /// `http/1.1`). The two fixed ones are built once.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        static ROOTS: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        static INSECURE: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        match self {
            Trust::Roots => ROOTS
                .get_or_init(|| {
                    let mut store = RootCertStore::empty();
                    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                    with_roots(store)
                })
                .clone(),
            Trust::Ca { certs, .. } => {
                let mut store = RootCertStore::empty();
                // Checked when the file was read.
                let _ = store.add_parsable_certificates(certs.iter().cloned());
                with_roots(store)
            }
            Trust::Insecure => INSECURE
                .get_or_init(|| {
                    let provider = provider();
                    let mut config = ClientConfig::builder_with_provider(provider.clone())
                        .with_safe_default_protocol_versions()
                        .expect("ring supports the default versions")
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                        .with_no_client_auth();
                    config.alpn_protocols = vec![b"http/1.1".to_vec()];
                    Arc::new(config)
                })
                .clone(),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn with_roots(store: RootCertStore) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Runs the TLS handshake on `tcp` for the server named `host` (a DNS
/// name or an IP address, without brackets). The error is one line:
/// `certificate verification failed: …` when the server was not trusted.
pub async fn connect(tcp: TcpStream, host: &str, trust: &Trust) -> Result<TlsStream<TcpStream>, String> {
    let name =
        ServerName::try_from(host.to_string()).map_err(|_| format!("`{host}` is not a valid TLS server name"))?;
    TlsConnector::from(trust.client_config()).connect(name, tcp).await.map_err(|e| describe_io(&e))
}

/// The handshake's failure in words; rustls' own errors travel inside
/// the io::Error.
fn describe_io(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(r) => describe_rustls(r),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "TLS handshake: the server closed the connection (does it speak TLS?)".into()
        }
        None => format!("TLS handshake: {e}"),
    }
}

fn describe_rustls(e: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(c) = e else {
        return match e {
            rustls::Error::InvalidMessage(_) => format!("TLS handshake: {e} (does the server speak TLS?)"),
            e => format!("TLS handshake: {e}"),
        };
    };
    let why = match c {
        CertificateError::UnknownIssuer => "unknown issuer: not signed by a CA that is trusted here".to_string(),
        CertificateError::BadSignature => "bad signature".into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "the certificate has expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the certificate is not valid yet".into()
        }
        CertificateError::NotValidForName => "the certificate is not valid for this host".into(),
        CertificateError::BadEncoding => "the certificate is malformed".into(),
        other => other.to_string(),
    };
    format!("certificate verification failed: {why}")
}

/// pki-types prints raw bytes as numbers; say it in words instead.
fn pem_error(e: pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".into(),
        e => e.to_string(),
    }
}

/// Says once per `what` (a service's probe) that it checks no certificate.
pub(crate) fn warn_insecure_once(what: &str) {
    static WARNED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if !warned.iter().any(|w| w == what) {
        warned.push(what.to_string());
        eprintln!(
            "corral: warning: {what} has `insecure = true`: it checks no certificate; use it for self-signed development certificates only, and `ca = \"ca.pem\"` anywhere else"
        );
    }
}

/// `insecure = true`: every certificate is accepted, but the handshake's
/// signatures are still checked, so the connection is at least to the
/// holder of the key it was shown.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_files_are_checked_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        let e = Trust::ca_file(&p).unwrap_err();
        assert!(e.starts_with("cannot read the CA file") && e.contains("ca.pem"), "{e}");
        std::fs::write(&p, "hello\n").unwrap();
        assert!(Trust::ca_file(&p).unwrap_err().starts_with("no certificate"));
        std::fs::write(&p, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        assert!(Trust::ca_file(&p).unwrap_err().contains("not valid PEM"));
        std::fs::write(&p, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let e = Trust::ca_file(&p).unwrap_err();
        assert!(e.contains("certificate 1 of the CA file") && e.contains("cannot be used as a CA"), "{e}");
    }

    #[test]
    fn verification_failures_say_so() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(
            describe_rustls(&e),
            "certificate verification failed: unknown issuer: not signed by a CA that is trusted here"
        );
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert!(describe_io(&io).starts_with("certificate verification failed"));
    }

    #[test]
    fn the_fixed_configs_are_built_once_and_speak_http1() {
        assert!(Arc::ptr_eq(&Trust::Roots.client_config(), &Trust::Roots.client_config()));
        assert_eq!(Trust::Insecure.client_config().alpn_protocols, [b"http/1.1".to_vec()]);
        assert_eq!(
            format!("{:?}", Trust::Ca { path: "ca.pem".into(), certs: Vec::new() }),
            "Ca(ca.pem, 0 certificate(s))"
        );
    }
}

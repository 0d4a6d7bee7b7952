//! Reaching etcd: TLS and credentials from `[fleet]` (or the operator's
//! flags), with every failure told in one line that names the cause.

use crate::config::FleetAuth;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use std::time::Duration;

/// Every request is bounded: a store that does not answer in this time is
/// unreachable for now.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Files we read (CA, certificate, key, password) are small.
const MAX_FILE: u64 = 64 << 10;

/// Connects to the first endpoint that answers, trying them in turn, and
/// proves the store answers (the client itself connects lazily, so an
/// unreachable endpoint would otherwise pass unseen).
///
/// One endpoint per connection, rather than the client's balancing over
/// all of them: a balanced channel keeps sending some requests to a dead
/// member, while one connection fails as a whole and the next attempt
/// moves to a member that answers.
pub async fn connect(endpoints: &[String], auth: &FleetAuth) -> Result<Client, String> {
    connect_any(endpoints, auth).await.map(|(c, _)| c)
}

/// [`connect`], and which endpoint answered.
pub async fn connect_any(endpoints: &[String], auth: &FleetAuth) -> Result<(Client, String), String> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
    if auth.ca.is_some() || auth.cert.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &auth.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca, "ca")?));
        }
        if let (Some(c), Some(k)) = (&auth.cert, &auth.key) {
            tls = tls.identity(Identity::from_pem(read(c, "cert")?, read(k, "key")?));
        }
        opts = opts.with_tls(tls);
    }
    if let (Some(user), Some(pf)) = (&auth.user, &auth.password_file) {
        let text = String::from_utf8(read(pf, "password_file")?)
            .map_err(|_| format!("{}: the password is not UTF-8", pf.display()))?;
        opts = opts.with_user(user.clone(), text.lines().next().unwrap_or_default().to_string());
    }
    let shown = endpoints.join(",");
    let mut last = format!("cannot reach etcd at {shown}: no endpoint");
    // Each caller starts at its own endpoint, so nodes spread over members.
    let start = std::process::id() as usize;
    for i in 0..endpoints.len() {
        let endpoint = &endpoints[(start + i) % endpoints.len()];
        let attempt = async {
            let mut c = Client::connect([endpoint], Some(opts.clone())).await?;
            c.status().await?;
            Ok::<_, etcd_client::Error>(c)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT + REQUEST_TIMEOUT, attempt).await {
            Ok(Ok(c)) => return Ok((c, endpoint.clone())),
            Ok(Err(e)) => {
                last = explain(&shown, auth, &e);
                // Credentials and certificates are the same on every member.
                if !last.starts_with("cannot reach") {
                    return Err(last);
                }
            }
            Err(_) => {
                let secs = (CONNECT_TIMEOUT + REQUEST_TIMEOUT).as_secs();
                last = format!("cannot reach etcd at {shown}: no answer within {secs}s");
            }
        }
    }
    Err(last)
}

/// One line for a person: which of the usual causes it is.
pub fn explain(endpoints: &str, auth: &FleetAuth, e: &etcd_client::Error) -> String {
    let text = format!("{e:?} {e}");
    let low = text.to_lowercase();
    if low.contains("invalid user id or password") || low.contains("authentication failed") {
        let user = auth.user.as_deref().unwrap_or("?");
        return format!("etcd at {endpoints} refused user `{user}`: wrong user or password (check password_file)");
    }
    if low.contains("unknownissuer") || low.contains("unknown issuer") || low.contains("invalid peer certificate") {
        return format!("TLS to etcd at {endpoints} failed: its certificate is not signed by the `ca` given");
    }
    if low.contains("user name is empty") || low.contains("permission denied") || low.contains("user name not found") {
        return format!("etcd at {endpoints} demands credentials: set `user` and `password_file` in [fleet]");
    }
    let first = e.to_string().lines().next().unwrap_or_default().to_string();
    format!("cannot reach etcd at {endpoints}: {first}")
}

/// Who writes, for the audit trail: the etcd user, else the client
/// certificate's common name, else the OS user on this host (etcd without
/// auth cannot tell).
pub fn who(auth: &FleetAuth) -> String {
    if let Some(u) = &auth.user {
        return u.clone();
    }
    if let Some(c) = &auth.cert {
        let name = read(c, "cert").ok().and_then(|pem| common_name(&pem));
        let name = name.unwrap_or_else(|| c.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
        return format!("cert:{name}");
    }
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", crate::config::host_name().unwrap_or_else(|| "unknown-host".into()))
}

/// The subject's common name of the first certificate in `pem`.
fn common_name(pem: &[u8]) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut out))
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    if out.len() as u64 > MAX_FILE {
        return Err(format!("{what} {} is over {} KiB", path.display(), MAX_FILE >> 10));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_is_the_user_else_the_certificates_common_name() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        let cert = params.self_signed(&key).unwrap();
        let path = dir.path().join("client.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        let mut auth = FleetAuth { cert: Some(path), ..Default::default() };
        assert_eq!(who(&auth), "cert:alice");
        auth.user = Some("ops".into());
        assert_eq!(who(&auth), "ops");
    }
}

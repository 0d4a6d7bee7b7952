//! `[daemon] web`: the address of the dashboard ([`crate::web`]) and how
//! it is guarded, checked with the same rules as `[daemon.tcp]`: a bearer
//! token always, TLS unless the address is loopback and plain http is
//! asked for in so many words.
//!
//! Two forms:
//!
//! ```toml
//! web = "127.0.0.1:8443"     # token, cert and key from [daemon.tcp]
//! web = { listen = "127.0.0.1:8080", token_file = "token", plain_http = true }
//! ```

use super::diagnostic::Sink;
use super::paths::anchor;
use super::raw::Addr;
use super::validate::{key_span, read_table, Span};
use super::TcpConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `[daemon] web`, checked: where the dashboard listens and what guards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// A file whose first line is the token (the login and the bearer).
    pub token_file: PathBuf,
    /// PEM certificate chain and key; `None` only for plain http on loopback.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The table form, as serde reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen: Option<Addr>,
    token_file: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    plain_http: Option<bool>,
}

const EXPECTED: &str = "web = \"127.0.0.1:8443\" (with [daemon.tcp]), or web = { listen = \"127.0.0.1:8080\", \
                        token_file = \"token\", cert = \"cert.pem\", key = \"key.pem\" } (or plain_http = true on loopback)";

/// Reads `[daemon] web` from the document, if there; `tcp` (paths already
/// anchored) lends its token and certificate to the short form.
pub(super) fn web_config(
    sink: &mut Sink<'_>,
    daemon: Option<&dyn toml_edit::TableLike>,
    tcp: Option<&TcpConfig>,
    base: &Path,
) -> Option<WebConfig> {
    let daemon = daemon?;
    let (_, item) = daemon.get_key_value("web")?;
    let span = key_span(daemon, "web");
    let raw = if let Some(s) = item.as_str() {
        let Ok(listen) = s.parse() else {
            sink.push(span, format!("[daemon] web: invalid address '{s}'"), Some(EXPECTED.into()), None);
            return None;
        };
        RawWeb { listen: Some(Addr(listen)), token_file: None, cert: None, key: None, plain_http: None }
    } else {
        read_table::<RawWeb>(sink, item, span.clone(), "[daemon] web")?
    };
    let table = item.as_table_like();
    let at = |key: &str| -> Span { table.and_then(|t| key_span(t, key)).or(span.clone()) };
    let mut bad =
        |where_: Span, msg: String| sink.push(where_, format!("[daemon] web: {msg}"), Some(EXPECTED.into()), None);
    let Some(Addr(listen)) = raw.listen else {
        bad(span.clone(), "`listen` is missing".into());
        return None;
    };
    let plain = raw.plain_http.unwrap_or(false);
    let token_file = match (raw.token_file, tcp.and_then(|t| t.token_file.clone())) {
        (Some(f), _) => anchor(base, &f),
        (None, Some(f)) => f,
        (None, None) => {
            bad(span.clone(), "needs a token: `token_file`, or a [daemon.tcp] to share its token".into());
            return None;
        }
    };
    if raw.cert.is_some() != raw.key.is_some() {
        bad(at("cert"), "`cert` and `key` go together".into());
        return None;
    }
    let own_tls = raw.cert.zip(raw.key).map(|(c, k)| (anchor(base, &c), anchor(base, &k)));
    if plain && own_tls.is_some() {
        bad(at("plain_http"), "`plain_http = true` and a certificate contradict each other".into());
        return None;
    }
    let tls = match (plain, own_tls) {
        (true, _) if !listen.ip().is_loopback() => {
            bad(
                at("plain_http"),
                format!("plain http on {listen} would send the token in clear over the network: loopback only"),
            );
            return None;
        }
        (true, _) => None,
        (false, Some(t)) => Some(t),
        (false, None) => match tcp.and_then(|t| t.cert.clone().zip(t.key.clone())) {
            Some(t) => Some(t),
            None => {
                bad(
                    span,
                    "needs TLS (`cert` and `key`, or those of [daemon.tcp]), or `plain_http = true` on a loopback address"
                        .into(),
                );
                return None;
            }
        },
    };
    Some(WebConfig { listen, token_file, tls })
}

#[cfg(test)]
mod tests {
    use crate::config::validate::parse;
    use std::path::Path;
    #[cfg(unix)]
    use std::path::PathBuf;

    fn web(src: &str) -> Result<Option<super::WebConfig>, String> {
        parse(src, Path::new("/etc/c.toml")).map(|c| c.daemon.web).map_err(|e| e.to_string())
    }

    // Unix paths and Unix-only keys; Windows refuses them at load.
    #[cfg(unix)]
    #[test]
    fn plain_http_is_for_loopback_and_only_when_asked() {
        let w = web("[daemon]\nweb = { listen = \"127.0.0.1:8080\", token_file = \"t\", plain_http = true }\n")
            .unwrap()
            .unwrap();
        assert_eq!(w.listen.port(), 8080);
        assert_eq!(w.token_file, PathBuf::from("/etc/t"));
        assert_eq!(w.tls, None);
        let e =
            web("[daemon]\nweb = { listen = \"0.0.0.0:8080\", token_file = \"t\", plain_http = true }\n").unwrap_err();
        assert!(e.contains("/etc/c.toml:2:") && e.contains("loopback only"), "{e}");
        let e = web("[daemon]\nweb = { listen = \"127.0.0.1:8080\", token_file = \"t\" }\n").unwrap_err();
        assert!(e.contains("needs TLS"), "{e}");
    }

    // Unix paths and Unix-only keys; Windows refuses them at load.
    #[cfg(unix)]
    #[test]
    fn the_short_form_shares_the_tcp_listener_token_and_certificate() {
        let src = "[daemon]\nweb = \"127.0.0.1:8443\"\n[daemon.tcp]\nlisten = \"127.0.0.1:7070\"\ncert = \"c.pem\"\nkey = \"k.pem\"\ntoken_file = \"tok\"\n";
        let w = web(src).unwrap().unwrap();
        assert_eq!(w.token_file, PathBuf::from("/etc/tok"));
        assert_eq!(w.tls, Some((PathBuf::from("/etc/c.pem"), PathBuf::from("/etc/k.pem"))));
        let e = web("[daemon]\nweb = \"127.0.0.1:8443\"\n").unwrap_err();
        assert!(e.contains("needs a token"), "{e}");
        let e = web("[daemon]\nweb = \"localhost\"\n").unwrap_err();
        assert!(e.contains("invalid address 'localhost'"), "{e}");
    }

    #[test]
    fn bad_keys_are_named_with_their_place() {
        let e = web("[daemon]\nweb = { listen = \"127.0.0.1:1\", token = \"x\" }\n").unwrap_err();
        assert!(e.contains("/etc/c.toml:2:") && e.contains("token"), "{e}");
        let e =
            web("[daemon]\nweb = { listen = \"127.0.0.1:1\", token_file = \"t\", cert = \"c\", plain_http = true }\n")
                .unwrap_err();
        assert!(e.contains("go together"), "{e}");
        assert_eq!(web("[daemon]\n").unwrap(), None);
    }
}

//! Which daemon a verb talks to, and how. A flag wins over the
//! environment: `--url` (or `$CORRAL_URL` unless `--socket` is given)
//! means the `[daemon.tcp]` listener, over TLS with a bearer token;
//! otherwise the local socket: `--socket`, `$CORRAL_SOCKET`, the config's,
//! or the default next to the config.

use super::{Common, FAILED};
use corral_supervisor::api::Token;
use corral_supervisor::client::{Client, Remote};
use corral_supervisor::config;
use corral_supervisor::tls::Trust;
use std::path::PathBuf;

/// The client for the daemon `c` names; one line and exit 1 when the TCP
/// settings are unusable.
pub(crate) fn client(c: &Common) -> Result<Client, u8> {
    let Some(url) = url(c, std::env::var("CORRAL_URL").ok()) else { return Ok(Client::new(&socket(c))) };
    remote(c, &url).map(Client::remote).map_err(|e| {
        crate::exit::error(e);
        FAILED
    })
}

/// The URL to use, if any. An empty `$CORRAL_URL` is no URL.
fn url(c: &Common, env: Option<String>) -> Option<String> {
    c.url.clone().or_else(|| env.filter(|u| !u.is_empty() && c.socket.is_none()))
}

fn remote(c: &Common, url: &str) -> Result<Remote, String> {
    let env_path = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    // The URL first: a plain http:// one is refused before anything is read.
    Remote::check_url(url)?;
    let Some(token_file) = c.token_file.clone().or_else(|| env_path("CORRAL_TOKEN_FILE")) else {
        return Err(format!(
            "{url} needs the daemon's bearer token (hint: --token-file FILE or $CORRAL_TOKEN_FILE, with the token_file of its [daemon.tcp])"
        ));
    };
    let token = Token::from_client_file(&token_file)?;
    let trust = match c.ca.clone().or_else(|| env_path("CORRAL_CA")) {
        Some(ca) => Trust::ca_file(&ca)?,
        None => Trust::Roots,
    };
    Remote::new(url, trust, token)
}

/// The socket: `--socket`, `$CORRAL_SOCKET`, the config's, or the default
/// next to the config when the config does not load.
pub(crate) fn socket(c: &Common) -> PathBuf {
    if let Some(s) = &c.socket {
        return s.clone();
    }
    if let Some(s) = std::env::var_os("CORRAL_SOCKET") {
        return s.into();
    }
    let path = c.config.config.clone().unwrap_or_else(config::default_config_path);
    match config::load(&path) {
        Ok(cfg) => cfg.daemon.socket,
        Err(_) => {
            let dir =
                path.parent().filter(|p| !p.as_os_str().is_empty()).map(PathBuf::from).unwrap_or_else(|| ".".into());
            dir.join(".corral").join("corral.sock")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::ConfigArg;

    fn common(socket: Option<&str>, url: Option<&str>) -> Common {
        Common {
            config: ConfigArg { config: None },
            socket: socket.map(PathBuf::from),
            url: url.map(str::to_string),
            token_file: None,
            ca: None,
        }
    }

    #[test]
    fn flags_win_over_the_environment() {
        let env = Some("https://env:1".to_string());
        assert_eq!(url(&common(None, Some("https://flag:1")), env.clone()).as_deref(), Some("https://flag:1"));
        assert_eq!(url(&common(None, None), env.clone()).as_deref(), Some("https://env:1"));
        assert_eq!(url(&common(Some("/s.sock"), None), env), None, "--socket beats $CORRAL_URL");
        assert_eq!(url(&common(None, None), Some(String::new())), None);
        assert_eq!(url(&common(None, None), None), None);
    }

    #[test]
    fn a_url_needs_https_and_a_token() {
        let e = remote(&common(None, None), "http://127.0.0.1:7070").unwrap_err();
        assert!(e.contains("plain HTTP") && e.contains("https://127.0.0.1:7070"), "{e}");
        let mut c = common(None, None);
        c.token_file = Some("/nonexistent/token".into());
        let e = remote(&c, "https://127.0.0.1:7070").unwrap_err();
        assert!(e.starts_with("cannot read the token file /nonexistent/token"), "{e}");
    }
}

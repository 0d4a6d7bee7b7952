//! `body` and `json` of an http probe: at most one of them, the regex
//! compiled and the JSON pointer checked at load, each error at its key.

use super::diagnostic::Sink;
use super::validate::Span;
use crate::health::BodyCheck;

/// The body check of the http probe `what`, if it asks for one; `None`
/// with the error in the sink when it is bad.
pub(super) fn body_check(
    sink: &mut Sink<'_>,
    what: &str,
    regex: Option<String>,
    json: Option<(String, serde_json::Value)>,
    at: &dyn Fn(&str) -> Span,
) -> Option<BodyCheck> {
    match (regex, json) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            sink.push(
                at("json"),
                format!("{what}: `body` and `json` both ask about the body"),
                Some("one of them: `body = \"regex\"` or `json = { path = \"/status\", equals = \"up\" }`".into()),
                None,
            );
            None
        }
        (Some(pattern), None) => BodyCheck::regex(&pattern)
            .map_err(|e| {
                let hint = "a regular expression like \"status.*up\"".to_string();
                sink.push(at("body"), format!("{what}: body: {e}"), Some(hint), None)
            })
            .ok(),
        (None, Some((path, equals))) => BodyCheck::json(&path, equals)
            .map_err(|e| {
                let hint = "json = { path = \"/status\", equals = \"up\" }".to_string();
                sink.push(at("json"), format!("{what}: json: {e}"), Some(hint), None)
            })
            .ok(),
    }
}

#[cfg(test)]
mod tests {
    use crate::health::{BodyCheck, Check};
    use std::path::Path;

    fn errors(src: &str) -> String {
        crate::config::parse(src, Path::new("corral.toml")).unwrap_err().to_string()
    }

    #[test]
    fn body_and_json_are_read_into_the_http_check() {
        let c = crate::config::parse(
            r#"[services.web]
command = ["web"]
health.readiness = { http = "http://127.0.0.1:1/health", json = { path = "/status", equals = "up" } }
health.liveness = { http = "http://127.0.0.1:1/health", body = "ok|up" }
"#,
            Path::new("corral.toml"),
        )
        .unwrap();
        let web = &c.services["web"];
        let Check::Http { body, .. } = &web.health.readiness.as_ref().unwrap().check else { panic!() };
        assert_eq!(body, &Some(BodyCheck::json("/status", serde_json::json!("up")).unwrap()));
        let Check::Http { body, .. } = &web.health.liveness.as_ref().unwrap().check else { panic!() };
        assert_eq!(body, &Some(BodyCheck::regex("ok|up").unwrap()));
    }

    #[test]
    fn a_bad_regex_or_pointer_is_an_error_at_its_place() {
        let e = errors(
            r#"[services.web]
command = ["web"]
health.readiness = { http = "http://127.0.0.1:1/", body = "(up" }
health.liveness = { http = "http://127.0.0.1:1/", json = { path = "status", equals = "up" } }
health.startup = { tcp = "127.0.0.1:1", body = "up" }
"#,
        );
        assert!(e.contains("corral.toml:3:59: service `web`: health.readiness: body: invalid regex"), "{e}");
        assert!(
            e.contains("corral.toml:4:58: service `web`: health.liveness: json: invalid JSON pointer `status`"),
            "{e}"
        );
        assert!(
            e.contains("corral.toml:5:48: service `web`: health.startup: `body` applies to http probes only"),
            "{e}"
        );
        let e = errors(
            r#"[services.web]
command = ["web"]
health.readiness = { http = "http://127.0.0.1:1/", body = "up", json = { path = "/s", equals = 1 } }
"#,
        );
        assert!(e.contains("corral.toml:3:72: service `web`: health.readiness: `body` and `json` both ask"), "{e}");
        let e = errors(
            r#"[services.web]
command = ["web"]
health.readiness = { http = "http://127.0.0.1:1/", json = { path = "/s" } }
"#,
        );
        assert!(e.contains("corral.toml:3:"), "{e}");
        assert!(e.contains("missing field `equals`"), "{e}");
    }
}

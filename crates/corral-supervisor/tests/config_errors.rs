//! Bad configs are rejected whole, every error with file:line:column, the
//! expected form and a suggestion. Snapshots keep the wording honest.

use corral_supervisor::config::parse;
use std::path::Path;

fn errors(src: &str) -> String {
    parse(src, Path::new("corral.toml")).unwrap_err().to_string()
}

#[test]
fn unknown_keys_wrong_types_and_bad_values_are_all_reported() {
    insta::assert_snapshot!(errors(r#"
[services.web]
comand = ["python3"]
instances = "two"
restart = "alway"
stop = { signal = "TREM", grace = "5x" }
limits = { memory = "lots" }

[deamon]
"#), @r#"
    corral.toml:2:11: service `web` has no `command`
        expected: command = ["program", "arg", ...]
    corral.toml:3:1: service `web`: unknown key `comand`
        expected: one of `command`, `shell`, `env`, `cwd`, `instances`, `restart`, `success_exit_codes`, `backoff`, `start_limit`, `stop`, `limits`, `depends_on`, `logs`, `user`, `health`, `alerts`, `placement`
        help: did you mean `command`?
    corral.toml:4:13: service `web`: invalid type: string "two"
        expected: a whole number, 0 or more
    corral.toml:5:11: service `web`: unknown value `alway`
        expected: one of `no`, `on-failure`, `always`
        help: did you mean `always`?
    corral.toml:6:19: service `web`: invalid signal 'TREM'
        expected: a name like TERM, INT, HUP, QUIT, USR1 or a number 1-64
    corral.toml:7:21: service `web`: invalid size 'lots'
        expected: a number with an optional unit, like 512MiB, 1.5G, 64M or 4096
    corral.toml:9:2: unknown top-level key `deamon`
        expected: `daemon`, `services` or `fleet`
        help: did you mean `daemon`?
    "#);
}

#[test]
fn cycles_unknown_dependencies_and_empty_commands() {
    insta::assert_snapshot!(errors(r#"
[services.a]
command = ["a"]
depends_on = { b = "started" }

[services.b]
command = ["b"]
depends_on = { a = "completed" }

[services.job]
command = []
depends_on = { wbe = "healthy" }

[services.line]
command = "echo hi"
"#), @r#"
    corral.toml:4:14: dependency cycle: a -> b -> a
        expected: services that depend on each other in one direction only
    corral.toml:11:11: service `job`: `command` is empty
        expected: at least the program: ["program", ...]
    corral.toml:12:16: service `job` depends on `wbe`, which is not a service
        expected: one of `a`, `b`, `line`
    corral.toml:15:11: service `line`: `command` is a string, and it is never run through a shell unless `shell = true`
        expected: an array like ["python3", "-m", "http.server"], or `shell = true`
    "#);
}

#[test]
fn syntax_errors_point_at_the_place() {
    insta::assert_snapshot!(errors("[services.a]\ncommand = [\"a\"\n"), @"corral.toml:3:1: invalid TOML: invalid array, expected `]`");
}

#[test]
fn tcp_without_tls_and_token_is_refused() {
    insta::assert_snapshot!(errors("[daemon.tcp]\nlisten = \"127.0.0.1:7070\"\n"), @r#"
    corral.toml:1:9: [daemon.tcp] needs TLS and a bearer token; a plain TCP control port is refused (missing: `cert`, `key`, `token_file`)
        expected: cert = "cert.pem", key = "key.pem" and token_file = "token" in [daemon.tcp]
    "#);
    // `token` (a secret in the config) is not a key: the token lives in a
    // file. TLS without a token is refused too.
    insta::assert_snapshot!(errors(r#"
[services.a]
command = ["a"]

[daemon.tcp]
listen = "127.0.0.1:7070"
cert = "cert.pem"
key = "key.pem"
token = "s3cret"
"#), @r#"
    corral.toml:9:1: [daemon]: unknown key `token`
        expected: one of `listen`, `cert`, `key`, `token_file`
        help: did you mean `token_file`?
    "#);
    insta::assert_snapshot!(errors("[daemon.tcp]\nlisten = \"127.0.0.1:7070\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n"), @r#"
    corral.toml:1:9: [daemon.tcp] needs TLS and a bearer token; a plain TCP control port is refused (missing: `token_file`)
        expected: cert = "cert.pem", key = "key.pem" and token_file = "token" in [daemon.tcp]
    "#);
}

#[test]
fn tcp_paths_are_relative_to_the_config() {
    let src = "[daemon.tcp]\nlisten = \"127.0.0.1:0\"\ncert = \"tls/cert.pem\"\nkey = \"/etc/k.pem\"\ntoken_file = \"token\"\n";
    let c = parse(src, Path::new("/srv/app/corral.toml")).unwrap();
    let t = c.daemon.tcp.unwrap();
    assert_eq!(t.listen, "127.0.0.1:0".parse().unwrap());
    assert_eq!(t.cert.as_deref(), Some(Path::new("/srv/app/tls/cert.pem")));
    assert_eq!(t.key.as_deref(), Some(Path::new("/etc/k.pem")));
    assert_eq!(t.token_file.as_deref(), Some(Path::new("/srv/app/token")));
}

#[test]
fn a_good_config_has_defaults_next_to_it() {
    let c = parse("[services.a]\ncommand = [\"a\"]\n", Path::new("/srv/app/corral.toml")).unwrap();
    assert_eq!(c.daemon.state_dir, Path::new("/srv/app/.corral"));
    assert_eq!(c.daemon.socket, Path::new("/srv/app/.corral/corral.sock"));
    assert_eq!(c.daemon.log_dir, Path::new("/srv/app/.corral/logs"));
    let a = &c.services["a"];
    assert_eq!(a.instances, 1);
    assert_eq!(a.success_exit_codes, [0]);
    assert_eq!(a.restart, corral_supervisor::policy::RestartPolicy::OnFailure);
}

#[test]
fn the_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/corral.toml");
    let c = corral_supervisor::config::load(&path).unwrap();
    assert_eq!(c.services.keys().collect::<Vec<_>>(), ["report", "web", "worker"]);
}

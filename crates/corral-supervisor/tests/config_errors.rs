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
        expected: one of `command`, `shell`, `env`, `inherit_env`, `cwd`, `instances`, `restart`, `success_exit_codes`, `backoff`, `start_limit`, `stop`, `limits`, `depends_on`, `logs`, `user`, `trace`, `notify`, `notify_fd`, `watchdog`, `start_timeout`, `sockets`, `health`, `alerts`, `isolate`, `schedule`, `every`, `schedule_tz`, `max_concurrent`, `on_overlap`, `cron_restart`, `watch`, `placement`, `env_file`, `umask`, `group`, `supplementary_groups`, `pre_start`, `post_start`, `pre_stop`, `post_stop`, `reload_signal`, `reload`
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
        expected: `daemon`, `services`, `include` or `fleet`
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

/// Issue 10: `timeout = 9223372036854775807` passed `check` and panicked
/// the group's monitor; 1e300 panicked `check` itself; `instances =
/// 4294967295` aborted `up` on a 206 GB allocation. Every duration, size
/// and count is bounded here, with its place (one bad value per table:
/// the first error of an inline table hides the rest of it).
#[test]
fn huge_durations_sizes_and_counts_are_refused_with_their_place() {
    insta::assert_snapshot!(errors(r#"
[services.a]
command = ["a"]
instances = 4294967295
limits = { timeout = 9223372036854775807 }
stop = { grace = nan }
backoff = { initial = -1 }
start_limit = { interval = "99999999999999999999" }
logs = { keep = 4294967295 }
health.liveness = { tcp = "127.0.0.1:1", period = 1e300 }

[services.b]
command = ["b"]
instances = 100000
limits = { cpu_time = 1e300 }
stop = { grace = inf }
backoff = { factor = 1e300 }
start_limit = { burst = 4294967295 }
health.liveness = { tcp = "127.0.0.1:1", failure_threshold = 4294967295 }

[services.c]
command = ["c"]
limits = { memory = 9223372036854775807 }

[services.d]
command = ["d"]
limits = { cpus = 1e300 }

[services.e]
command = ["e"]
limits = { max_procs = 4294967295 }
"#), @r#"
    corral.toml:4:13: service `a`: `instances` is 4294967295
        expected: 1 to 1000
    corral.toml:5:22: service `a`: invalid duration '9223372036854775807'
        expected: at most 36525d (100 years)
    corral.toml:6:18: service `a`: invalid duration 'NaN'
        expected: a number with an optional unit, like 30s, 1m30s, 500ms or 1.5h
    corral.toml:7:23: service `a`: invalid duration '-1'
        expected: a number with an optional unit, like 30s, 1m30s, 500ms or 1.5h
    corral.toml:8:28: service `a`: invalid duration '99999999999999999999'
        expected: at most 36525d (100 years)
    corral.toml:9:8: service `a`: logs.keep is 4294967295
        expected: 0 to 1000 rotated files
    corral.toml:10:51: service `a`: health.liveness: invalid duration '1e300'
        expected: at most 36525d (100 years)
    corral.toml:14:13: service `b`: `instances` is 100000
        expected: 1 to 1000
    corral.toml:15:23: service `b`: invalid duration '1e300'
        expected: at most 36525d (100 years)
    corral.toml:16:18: service `b`: invalid duration 'inf'
        expected: a number with an optional unit, like 30s, 1m30s, 500ms or 1.5h
    corral.toml:17:11: service `b`: backoff factor 1e300 is out of range
        expected: a number from 1.0 to 1000, like 2.0
    corral.toml:18:15: service `b`: start_limit burst is 4294967295
        expected: 1 to 10000
    corral.toml:19:62: service `b`: health.liveness: invalid threshold 4294967295
        expected: a whole number from 1 to 1000
    corral.toml:23:21: service `c`: invalid size '9223372036854775807'
        expected: at most 1 PiB
    corral.toml:27:10: service `d`: limits.cpus must be above 0 and at most 1024
        expected: cores like 0.5 or 2
    corral.toml:31:10: service `e`: limits.max_procs is 4294967295
        expected: 1 to 4194304
    "#);
}

#[test]
fn a_long_service_name_and_a_missing_cwd_are_refused() {
    let long = "a".repeat(300);
    insta::assert_snapshot!(errors(&format!(r#"
[services.{long}]
command = ["x"]

[services.ok]
command = ["x"]
cwd = "/definitely/not/here"
"#)), @r#"
    corral.toml:2:11: invalid service name `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…` (300 characters)
        expected: at most 64 letters, digits, `-`, `_` and `.`
    corral.toml:7:7: service `ok`: the working directory /definitely/not/here does not exist
        expected: an existing directory (relative paths start at the config's folder)
    "#);
}

/// A 1 MiB config can declare forty thousand services: the bound on
/// `instances` holds for all of them together too.
#[test]
fn the_instances_of_all_services_together_are_bounded() {
    let service = |i: usize| format!("[services.s{i:02}]\ncommand = [\"x\"]\ninstances = 1000\n");
    let ten: String = (0..10).map(service).collect();
    assert!(parse(&ten, Path::new("corral.toml")).is_ok(), "10 × 1000 is the maximum");
    let eleven: String = (0..11).map(service).collect();
    let e = errors(&eleven);
    assert_eq!(
        e.lines().next().unwrap(),
        "corral.toml:31:11: more than 10000 instances in all services together",
        "{e}"
    );
}

#[test]
fn client_timeout_is_bounded() {
    let c = parse("[daemon]\n", Path::new("corral.toml")).unwrap();
    assert_eq!(c.daemon.client_timeout, std::time::Duration::from_secs(10));
    let c = parse("[daemon]\nclient_timeout = \"2s\"\n", Path::new("corral.toml")).unwrap();
    assert_eq!(c.daemon.client_timeout, std::time::Duration::from_secs(2));
    insta::assert_snapshot!(errors("[daemon]\nclient_timeout = \"1h\"\n"), @r#"
    corral.toml:2:18: [daemon] client_timeout is 1h, out of range
        expected: a duration from 500ms to 5m, like "10s"
    "#);
    insta::assert_snapshot!(errors("[daemon]\nclient_timeout = 0\n"), @r#"
    corral.toml:2:18: [daemon] client_timeout is 0ms, out of range
        expected: a duration from 500ms to 5m, like "10s"
    "#);
}

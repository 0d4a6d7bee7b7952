//! The fleet end to end: a real etcd (Debian's etcd-server) per test on
//! loopback ports of its own, several real `corral up` daemons on this
//! machine (each its own state dir, socket and node name), and the real
//! `corral fleet` verbs. Tests wait on daemon lines, events and etcd keys,
//! never on a fixed sleep; each proves at the end that every pid it saw is
//! gone, and etcd is killed by pid and its data dir removed.

#![cfg(all(target_os = "linux", feature = "fleet"))]

mod daemon;
mod etcd;

use daemon::*;
use etcd::Etcd;
use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const CLUSTER: &str = "test";

/// A node's corral.toml: no local service, the fleet at `url`.
fn node_toml(url: &str, node: &str, labels: &str, ttl: &str) -> String {
    format!(
        "[daemon]\nwatch_config = false\n\n[fleet]\nendpoints = [{}]\ncluster = {}\nnode = {}\nlabels = {{ {labels} }}\nttl = {}\n",
        q(url),
        q(CLUSTER),
        q(node),
        q(ttl)
    )
}

/// `corral fleet VERB --endpoints URL --cluster test ARGS…`.
fn fleet(url: &str, verb: &str, args: &[&str]) -> Output {
    Command::new(CORRAL).args(["fleet", verb, "--endpoints", url, "--cluster", CLUSTER]).args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fleet_status(url: &str) -> Value {
    serde_json::from_str(&ok(fleet(url, "status", &["--json"]))).unwrap()
}

/// Polls `corral fleet status --json` until `pred` holds.
fn wait_fleet(url: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + LONG;
    loop {
        let s = fleet_status(url);
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < end, "the fleet never got to {what}: {s:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `(node, service)` pairs of running instances at `revision`.
fn running(s: &Value, service: &str, revision: u64) -> Vec<String> {
    let mut v: Vec<String> = s["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["service"] == service && i["state"] == "running" && i["revision"] == revision)
        .map(|i| format!("{}/{}", i["node"].as_str().unwrap(), i["instance"]))
        .collect();
    v.sort();
    v
}

fn spec_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn sleeper(name: &str, extra: &str) -> String {
    format!("[services.{name}]\ncommand = [{}, \"--sleep\", \"120\"]\n{extra}\n", tk())
}

/// Polls `corral status` until the service (which the fleet may not have
/// given the node yet) has instance 0 running.
fn wait_running(d: &Daemon, service: &str) -> Value {
    let end = Instant::now() + LONG;
    loop {
        if let Some(i) = d.status().into_iter().find(|i| i["service"] == service && i["state"] == "running") {
            return i;
        }
        assert!(Instant::now() < end, "{service} never ran: {:#?}", d.status());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn apply_runs_each_service_on_every_node_it_places_and_scale_follows() {
    let etcd = Etcd::start();
    let url = etcd.url();
    let nodes: Vec<Daemon> = [("n1", "zone = \"a\""), ("n2", "zone = \"a\""), ("n3", "zone = \"b\"")]
        .iter()
        .map(|(n, l)| Daemon::start(&node_toml(&url, n, l, "3s")))
        .collect();
    let dir = Daemon::dir();
    let spec = [sleeper("web", ""), sleeper("zoned", "placement = { labels = { zone = \"a\" } }")].concat();
    let file = spec_file(dir.path(), "services.toml", &spec);
    let out = ok(fleet(&url, "apply", &["-f", &file]));
    assert!(out.contains("web: revision 1") && out.contains("zoned: revision 1"), "{out}");
    let s = wait_fleet(&url, "web on 3 nodes, zoned on zone a", |s| {
        running(s, "web", 1).len() == 3 && running(s, "zoned", 1).len() == 2
    });
    assert_eq!(running(&s, "zoned", 1), ["n1/0", "n2/0"]);
    assert_eq!(s["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(s["services"]["web"]["revision"], 1);
    // Applying the same file again writes nothing.
    let out = ok(fleet(&url, "apply", &["-f", &file]));
    assert!(out.contains("web: unchanged"), "{out}");
    // Each daemon runs it as one of its own services.
    for d in &nodes {
        wait_running(d, "web");
    }
    let out = ok(fleet(&url, "scale", &["web", "2"]));
    assert!(out.contains("revision 2"), "{out}");
    wait_fleet(&url, "2 web instances per node", |s| running(s, "web", 2).len() == 6);
    // A steady fleet writes nothing but keep-alives (which do not move
    // the store's revision), whatever the time spent.
    let rt = runtime();
    let mut c = etcd.client(&rt, etcd.port);
    let before = rt.block_on(c.status()).unwrap().header().unwrap().revision();
    std::thread::sleep(Duration::from_secs(4));
    let after = rt.block_on(c.status()).unwrap().header().unwrap().revision();
    assert_eq!(before, after, "writes in 4 s of a steady fleet (ttl 3s: 4 keep-alives per node)");
    let text = ok(fleet(&url, "status", &[]));
    assert!(text.contains("n3") && text.contains("2 (desired 2)"), "{text}");
    let nodes_text = ok(fleet(&url, "nodes", &[]));
    assert!(nodes_text.contains("zone=b"), "{nodes_text}");
    // The audit trail holds both changes, with who made them.
    let evs = rt
        .block_on(c.get(format!("/corral/{CLUSTER}/events/"), Some(etcd_client::GetOptions::new().with_prefix())))
        .unwrap();
    let actions: Vec<Value> = evs.kvs().iter().map(|kv| serde_json::from_slice(kv.value()).unwrap()).collect();
    assert_eq!(actions.iter().map(|a| a["action"].as_str().unwrap()).collect::<Vec<_>>(), ["apply", "scale"]);
    assert!(actions.iter().all(|a| a["actor"]["via"] == "fleet"));
    assert!(actions.iter().all(|a| a["actor"]["user"].as_str().is_some_and(|w| !w.is_empty())));
    for mut d in nodes {
        let ev = d.wait_event("fleet applied", |e| {
            e["kind"] == "fleet" && e["reason"].as_str().is_some_and(|r| r.contains("applied revision"))
        });
        assert!(ev["reason"].as_str().unwrap().contains("(by "), "{ev}");
        d.down();
    }
    // Each node left: its lease was revoked, its registration and status with it.
    let s = fleet_status(&url);
    assert_eq!(s["nodes"].as_array().unwrap().len(), 0, "{s:#}");
    assert_eq!(s["instances"].as_array().unwrap().len(), 0, "{s:#}");
}

#[test]
fn a_sigkilled_node_is_gone_from_the_fleet_within_its_ttl_plus_one_second() {
    let etcd = Etcd::start();
    let url = etcd.url();
    let keep = Daemon::start(&node_toml(&url, "keep", "", "2s"));
    let mut dead = Daemon::start(&node_toml(&url, "dead", "", "2s"));
    let dir = Daemon::dir();
    ok(fleet(&url, "apply", &["-f", &spec_file(dir.path(), "s.toml", &sleeper("web", ""))]));
    wait_fleet(&url, "web on both", |s| running(s, "web", 1).len() == 2);
    wait_running(&dead, "web");
    let evs = dead.events();
    dead.note_pids(&evs);
    let mut child = dead.child.take().unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let killed = Instant::now();
    child.wait().unwrap();
    // Polled straight from etcd, so the check itself costs little time.
    let rt = runtime();
    let mut c = etcd.client(&rt, etcd.port);
    let key = format!("/corral/{CLUSTER}/nodes/dead");
    loop {
        let r = rt.block_on(c.get(key.as_str(), None)).unwrap();
        if r.kvs().is_empty() {
            break;
        }
        assert!(killed.elapsed() < LONG, "the dead node is still registered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let gone_after = killed.elapsed();
    assert!(gone_after <= Duration::from_secs(3), "the node was listed {gone_after:?} after SIGKILL (ttl 2s)");
    let s = fleet_status(&url);
    let names: Vec<&str> = s["nodes"].as_array().unwrap().iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(names, ["keep"]);
    assert_eq!(running(&s, "web", 1), ["keep/0"], "the dead node's status went with its lease");
    // A daemon started on the dead one's state reaps what it left.
    let seen = dead.seen.clone();
    let dir = std::mem::replace(&mut dead.dir, Daemon::dir());
    let mut again = Daemon::restart_in(dir);
    again.seen.extend(seen);
    again.down();
    keep.down();
}

#[test]
fn while_etcd_is_away_services_keep_running_and_on_return_the_node_catches_up() {
    let mut etcd = Etcd::start();
    let url = etcd.url();
    let mut d = Daemon::start(&node_toml(&url, "n1", "", "2s"));
    d.wait_stderr("fleet: connected since");
    let dir = Daemon::dir();
    ok(fleet(&url, "apply", &["-f", &spec_file(dir.path(), "s.toml", &sleeper("web", ""))]));
    let web = wait_running(&d, "web");
    let pid = web["pid"].as_u64().unwrap();

    etcd.stop();
    let away = std::time::Instant::now();
    d.wait_stderr("fleet: disconnected since");
    // The whole store away for 30 s (the outage): the service runs
    // on, untouched, all along.
    while away.elapsed() < std::time::Duration::from_secs(30) {
        let web = d.instance("web");
        assert_eq!((web["pid"].as_u64(), web["restarts"].as_u64()), (Some(pid), Some(0)), "{web}");
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let out = d.corral(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fleet: disconnected since"), "{text}");
    let metrics = String::from_utf8_lossy(&d.corral(&["status", "--json"]).stdout).into_owned();
    assert!(metrics.contains("\"connected\":false"), "{metrics}");

    // Meanwhile an operator changes the desired state (through another
    // port: the node knows only the usual one).
    let side = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    etcd.run_on(side);
    let side_url = format!("http://127.0.0.1:{side}");
    let both = [sleeper("web", ""), sleeper("extra", "")].concat();
    ok(fleet(&side_url, "apply", &["-f", &spec_file(dir.path(), "s2.toml", &both)]));
    etcd.stop();
    etcd.run_on(etcd.port);
    d.wait_stderr("fleet: connected since");
    wait_running(&d, "extra");
    // Nothing restarted because the store went away, nor on its return.
    let web = d.instance("web");
    assert_eq!((web["pid"].as_u64(), web["restarts"].as_u64()), (Some(pid), Some(0)), "{web}");

    // Again, and this time the revision the node saw is compacted away:
    // it reads everything again.
    etcd.stop();
    d.wait_stderr("fleet: disconnected since");
    etcd.run_on(side);
    let changed = [sleeper("web", ""), sleeper("extra", "env = { V = \"2\" }")].concat();
    ok(fleet(&side_url, "apply", &["-f", &spec_file(dir.path(), "s3.toml", &changed)]));
    let rt = runtime();
    let mut c = etcd.client(&rt, side);
    let rev = rt.block_on(c.status()).unwrap().header().unwrap().revision();
    rt.block_on(c.compact(rev, None)).unwrap();
    drop(c);
    etcd.stop();
    etcd.run_on(etcd.port);
    d.wait_event("resync", |e| {
        e["kind"] == "fleet" && e["reason"].as_str().is_some_and(|r| r.contains("compacted: resync"))
    });
    wait_fleet(&url, "extra at revision 2", |s| running(s, "extra", 2).len() == 1);
    let web = d.instance("web");
    assert_eq!(web["pid"].as_u64(), Some(pid), "{web}");
    let transitions = d.events().into_iter().filter(|e| is_transition(e) && e["service"] == "web").count();
    assert_eq!(transitions, 2, "web only started (stopped -> starting -> running)");
    d.down();
}

#[test]
fn a_bad_spec_is_refused_with_its_place_and_a_strangers_bad_value_is_ignored() {
    let etcd = Etcd::start();
    let url = etcd.url();
    let dir = Daemon::dir();
    let bad = format!("[services.web]\ncommand = [{}]\ninstances = \"two\"\n", tk());
    let file = spec_file(dir.path(), "bad.toml", &bad);
    let out = fleet(&url, "apply", &["-f", &file]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{file}:3:13: service `web`: invalid type")), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    let rt = runtime();
    let mut c = etcd.client(&rt, etcd.port);
    let all = rt.block_on(c.get("/corral/", Some(etcd_client::GetOptions::new().with_prefix()))).unwrap();
    assert!(all.kvs().is_empty(), "apply wrote despite errors");

    let mut d = Daemon::start(&node_toml(&url, "n1", "", "3s"));
    ok(fleet(&url, "apply", &["-f", &spec_file(dir.path(), "good.toml", &sleeper("web", ""))]));
    let pid = wait_running(&d, "web")["pid"].as_u64();
    rt.block_on(c.put(format!("/corral/{CLUSTER}/services/web"), "{not json", None)).unwrap();
    let ev = d.wait_event("malformed value", |e| {
        e["kind"] == "fleet" && e["reason"].as_str().is_some_and(|r| r.contains("ignored a malformed value for `web`"))
    });
    assert!(!ev["reason"].as_str().unwrap().contains('\n'));
    // The last good state stays.
    assert_eq!(d.instance("web")["pid"].as_u64(), pid);
    d.down();
}

#[test]
fn plain_http_to_a_remote_etcd_and_an_unreachable_one_are_one_line_each() {
    let out = Command::new(CORRAL)
        .args(["fleet", "nodes", "--endpoints", "http://10.1.2.3:2379", "--cluster", "c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("plain http to a non-loopback host"), "{err}");

    let dir = Daemon::dir();
    let cfg = dir.path().join("corral.toml");
    std::fs::write(&cfg, "[fleet]\nendpoints = [\"http://10.1.2.3:2379\"]\ncluster = \"c\"\nnode = \"n\"\n").unwrap();
    let out = Command::new(CORRAL).arg("check").arg("-c").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2:13: [fleet] endpoint `http://10.1.2.3:2379` is plain http", cfg.display())),
        "{err}"
    );

    let nobody = format!("http://127.0.0.1:{}", free_port());
    let out =
        Command::new(CORRAL).args(["fleet", "status", "--endpoints", &nobody, "--cluster", "c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("cannot reach etcd at {nobody}")), "{err}");
}

#[test]
fn a_wrong_password_and_a_wrong_ca_are_one_line_each() {
    let etcd = Etcd::start();
    let rt = runtime();
    let mut c = etcd.client(&rt, etcd.port);
    rt.block_on(async {
        c.user_add("root", "right", None).await.unwrap();
        c.user_grant_role("root", "root").await.unwrap();
        c.auth_enable().await.unwrap();
    });
    let dir = Daemon::dir();
    let cfg = |password: &str| {
        std::fs::write(dir.path().join("pw"), format!("{password}\n")).unwrap();
        let text = format!(
            "[fleet]\nendpoints = [{}]\ncluster = {}\nnode = \"op\"\nuser = \"root\"\npassword_file = \"pw\"\n",
            q(etcd.url()),
            q(CLUSTER)
        );
        spec_file(dir.path(), "corral.toml", &text)
    };
    let out = Command::new(CORRAL).args(["fleet", "nodes", "-c", &cfg("wrong")]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("refused user `root`: wrong user or password"), "{err}");
    ok(Command::new(CORRAL).args(["fleet", "nodes", "-c", &cfg("right")]).output().unwrap());

    let pki = daemon::pki::Pki::new();
    let other = daemon::pki::Pki::new();
    let tls = Etcd::start_tls(Some(&pki));
    let cfg = |ca: &str| {
        std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
        let text = format!(
            "[fleet]\nendpoints = [{}]\ncluster = {}\nnode = \"op\"\nca = \"ca.pem\"\n",
            q(tls.url()),
            q(CLUSTER)
        );
        spec_file(dir.path(), "tls.toml", &text)
    };
    let out = Command::new(CORRAL).args(["fleet", "nodes", "-c", &cfg(&other.ca_pem)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("its certificate is not signed by the `ca` given"), "{err}");
    ok(Command::new(CORRAL).args(["fleet", "nodes", "-c", &cfg(&pki.ca_pem)]).output().unwrap());
}

fn rollout_status(url: &str, service: &str) -> Value {
    serde_json::from_str(&ok(fleet(url, "rollout", &["status", service, "--json"]))).unwrap()
}

fn wait_rollout(url: &str, service: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + LONG * 2;
    loop {
        let r = rollout_status(url, service);
        if pred(&r) {
            return r;
        }
        assert!(Instant::now() < end, "the rollout never got to {what}: {r:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn nodes_on(s: &Value, service: &str, revision: u64) -> usize {
    s["instances"].as_array().unwrap().iter().filter(|i| i["service"] == service && i["revision"] == revision).count()
}

#[test]
fn a_crash_looping_canary_rolls_the_whole_service_back() {
    let etcd = Etcd::start();
    let url = etcd.url();
    let nodes: Vec<Daemon> = ["n1", "n2", "n3"].iter().map(|n| Daemon::start(&node_toml(&url, n, "", "3s"))).collect();
    let dir = Daemon::dir();
    ok(fleet(&url, "apply", &["-f", &spec_file(dir.path(), "v1.toml", &sleeper("web", ""))]));
    wait_fleet(&url, "revision 1 everywhere", |s| running(s, "web", 1).len() == 3);
    let crash =
        format!("[services.web]\ncommand = [{}, \"--exit\", \"3\"]\nbackoff = {{ initial = \"100ms\" }}\n", tk());
    let v2 = spec_file(dir.path(), "v2.toml", &crash);
    let out =
        ok(fleet(&url, "apply", &["-f", &v2, "--canary", "10%", "--step", "50%", "--pause", "1s", "--auto-rollback"]));
    assert!(out.contains("web: revision 2"), "{out}");
    let r = wait_rollout(&url, "web", "rolled back", |r| r["state"] == "rolled_back");
    assert!(r["reason"].as_str().unwrap().contains("of revision 2 on"), "{r:#}");
    let canaries: Vec<&Value> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["what"].as_str().unwrap().starts_with("step 1 of"))
        .collect();
    assert_eq!(canaries.len(), 1, "one canary step: {r:#}");
    // Every node back on revision 1, no instance left on 2.
    let s = wait_fleet(&url, "revision 1 everywhere again", |s| {
        running(s, "web", 1).len() == 3 && nodes_on(s, "web", 2) == 0
    });
    assert_eq!(s["services"]["web"]["revision"], 1);
    let text = ok(fleet(&url, "rollout", &["status", "web"]));
    assert!(text.contains("revision 1 -> 2: rolled_back"), "{text}");
    // Only one node ever ran revision 2.
    let ran_v2 = nodes
        .iter()
        .filter(|d| {
            d.events().iter().any(|e| {
                e["kind"] == "fleet"
                    && e["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("applied") && r.contains("\"changed\":[\"web\"]"))
            })
        })
        .count();
    assert_eq!(ran_v2, 1, "the canary alone took revision 2 (and back)");
    for d in nodes {
        d.down();
    }
}

#[test]
fn a_rollout_survives_the_death_of_its_driver_and_finishes_once() {
    let etcd = Etcd::start();
    let url = etcd.url();
    let mut nodes: Vec<Daemon> =
        ["n1", "n2", "n3"].iter().map(|n| Daemon::start(&node_toml(&url, n, "", "2s"))).collect();
    let dir = Daemon::dir();
    ok(fleet(&url, "apply", &["-f", &spec_file(dir.path(), "v1.toml", &sleeper("web", ""))]));
    wait_fleet(&url, "revision 1 everywhere", |s| running(s, "web", 1).len() == 3);
    let v2 = spec_file(dir.path(), "v2.toml", &sleeper("web", "env = { V = \"2\" }"));
    ok(fleet(&url, "apply", &["-f", &v2, "--canary", "10%", "--step", "45%", "--pause", "2s"]));
    let r = wait_rollout(&url, "web", "a driver", |r| r["driver"].is_string());
    let first = r["driver"].as_str().unwrap().to_string();
    let idx = ["n1", "n2", "n3"].iter().position(|n| *n == first).unwrap();
    let mut dead = nodes.remove(idx);
    let evs = dead.events();
    dead.note_pids(&evs);
    let mut child = dead.child.take().unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let r = wait_rollout(&url, "web", "done", |r| !["running", "paused"].contains(&r["state"].as_str().unwrap()));
    assert_eq!(r["state"], "done", "{r:#}");
    let next = r["driver"].as_str().unwrap();
    assert_ne!(next, first, "another node took over: {r:#}");
    let history: Vec<&str> = r["history"].as_array().unwrap().iter().map(|e| e["what"].as_str().unwrap()).collect();
    assert!(history.iter().any(|w| w.starts_with(&format!("{first} drives"))), "{history:#?}");
    assert!(history.iter().any(|w| w.starts_with(&format!("{next} drives"))), "{history:#?}");
    assert!(!history.iter().any(|w| w.contains("rolled back")), "finished and rolled back: {history:#?}");
    let s = wait_fleet(&url, "revision 2 on the live nodes", |s| running(s, "web", 2).len() == 2);
    assert_eq!(nodes_on(&s, "web", 1), 0, "{s:#}");
    // The dead node's state is reaped by a daemon started on it.
    let seen = dead.seen.clone();
    let dir = std::mem::replace(&mut dead.dir, Daemon::dir());
    let mut again = Daemon::restart_in(dir);
    again.seen.extend(seen);
    again.down();
    for d in nodes {
        d.down();
    }
}

#[test]
fn one_etcd_member_of_three_killed_is_noticed_by_nothing_but_the_metrics() {
    // The default ttl: losing the leader may stall a request for a few
    // seconds, and the link counts as lost only past the lease's ttl.
    let mut members = Etcd::cluster(3);
    let urls: Vec<String> = members.iter().map(Etcd::url).collect();
    let all = urls.join(",");
    let toml = node_toml(&urls[0], "n1", "", "10s").replace(
        &format!("endpoints = [{}]", q(&urls[0])),
        &format!("endpoints = [{}]", urls.iter().map(q).collect::<Vec<_>>().join(", ")),
    );
    let d = Daemon::start(&toml);
    d.wait_stderr("fleet: connected since");
    let dir = Daemon::dir();
    ok(fleet(&all, "apply", &["-f", &spec_file(dir.path(), "s.toml", &sleeper("web", ""))]));
    let pid = wait_running(&d, "web")["pid"].as_u64();
    // The member the node is connected to dies.
    let status: Value = serde_json::from_slice(&d.corral(&["status", "--json"]).stdout).unwrap();
    let used = status["fleet"]["endpoint"].as_str().unwrap().to_string();
    let dead = urls.iter().position(|u| *u == used).unwrap();
    members[dead].kill();
    // Desired state still reaches the node through the two left.
    let rest: Vec<&str> = urls.iter().filter(|u| **u != used).map(String::as_str).collect();
    let rest = rest.join(",");
    let both = [sleeper("web", ""), sleeper("extra", "")].concat();
    ok(fleet(&rest, "apply", &["-f", &spec_file(dir.path(), "s2.toml", &both)]));
    wait_running(&d, "extra");
    wait_fleet(&rest, "extra published", |s| running(s, "extra", 1).len() == 1);
    let web = d.instance("web");
    assert_eq!((web["pid"].as_u64(), web["restarts"].as_u64()), (pid, Some(0)), "{web}");
    let link: Value = serde_json::from_slice(&d.corral(&["status", "--json"]).stdout).unwrap();
    assert_eq!(link["fleet"]["connected"], true, "{link:#}");
    assert_ne!(link["fleet"]["endpoint"], used.as_str(), "{link:#}");
    assert!(link["fleet"]["reconnects"].as_u64() >= Some(1), "{link:#}");
    let lost: Vec<Value> =
        d.events().into_iter().filter(|e| e["reason"].as_str().is_some_and(|r| r.contains("disconnected"))).collect();
    assert!(lost.is_empty(), "a member's death is no disconnection: {lost:#?}");
    d.down();
}

#[test]
fn an_operator_pauses_resumes_promotes_and_rolls_back_a_rollout() {
    let etcd = Etcd::start();
    let url = etcd.url();
    let nodes: Vec<Daemon> = ["n1", "n2"].iter().map(|n| Daemon::start(&node_toml(&url, n, "", "3s"))).collect();
    let dir = Daemon::dir();
    ok(fleet(&url, "apply", &["-f", &spec_file(dir.path(), "v1.toml", &sleeper("web", ""))]));
    wait_fleet(&url, "revision 1 on both", |s| running(s, "web", 1).len() == 2);
    let v2 = spec_file(dir.path(), "v2.toml", &sleeper("web", "env = { V = \"2\" }"));
    // A pause no test waits out: the rollout stays on its canary step.
    ok(fleet(&url, "apply", &["-f", &v2, "--canary", "50%", "--step", "50%", "--pause", "1h"]));
    wait_fleet(&url, "the canary on revision 2", |s| {
        running(s, "web", 2).len() == 1 && running(s, "web", 1).len() == 1
    });
    // Applying or scaling the service now is refused: the rollout owns it.
    let out = fleet(&url, "scale", &["web", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a rollout of `web` is in progress"));
    ok(fleet(&url, "rollout", &["pause", "web"]));
    assert_eq!(rollout_status(&url, "web")["state"], "paused");
    ok(fleet(&url, "rollout", &["resume", "web"]));
    assert_eq!(rollout_status(&url, "web")["state"], "running");
    ok(fleet(&url, "rollout", &["promote", "web"]));
    let s = wait_fleet(&url, "revision 2 on both", |s| running(s, "web", 2).len() == 2);
    assert_eq!(s["services"]["web"]["revision"], 2);
    assert_eq!(rollout_status(&url, "web")["state"], "done");
    // Back to revision 1 after the fact, and an abort of what is over is one line.
    ok(fleet(&url, "rollout", &["rollback", "web"]));
    wait_fleet(&url, "revision 1 on both again", |s| running(s, "web", 1).len() == 2 && nodes_on(s, "web", 2) == 0);
    let out = fleet(&url, "rollout", &["abort", "web"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is over"), "{err}");
    let history: Vec<String> = rollout_status(&url, "web")["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap().to_string())
        .collect();
    for what in ["paused", "resumed", "done: every node on revision 2", "rolled back to revision 1"] {
        assert!(history.iter().any(|h| h.starts_with(what)), "no {what:?} in {history:#?}");
    }
    for d in nodes {
        d.down();
    }
}

#[test]
fn a_fleet_service_waits_for_its_dependency_and_is_held_back_where_it_is_missing() {
    let etcd = Etcd::start();
    let url = etcd.url();
    let mut nodes: Vec<Daemon> = [("n1", "zone = \"a\""), ("n2", "zone = \"b\"")]
        .iter()
        .map(|(n, l)| Daemon::start(&node_toml(&url, n, l, "3s")))
        .collect();
    let dir = Daemon::dir();
    let spec = [
        sleeper("db", "placement = { labels = { zone = \"a\" } }"),
        sleeper("web", "depends_on = { db = \"started\" }"),
    ]
    .concat();
    let file = spec_file(dir.path(), "services.toml", &spec);
    ok(fleet(&url, "apply", &["-f", &file]));
    let s = wait_fleet(&url, "db and web on n1", |s| running(s, "db", 1).len() == 1 && running(s, "web", 1).len() == 1);
    assert_eq!(running(&s, "web", 1), ["n1/0"], "{s:#}");
    // n2 lacks db: web is held back there, and says why.
    let ev = nodes[1].wait_event("web held back", |e| {
        e["service"] == "web" && e["reason"].as_str().is_some_and(|r| r.contains("not started on this node"))
    });
    assert!(ev["reason"].as_str().unwrap().contains("depends on `db`, which this node does not run"), "{ev}");
    assert!(nodes[1].status().iter().all(|i| i["service"] != "web"), "{:#?}", nodes[1].status());
    // On n1, web started after db.
    let db = wait_running(&nodes[0], "db");
    let web = wait_running(&nodes[0], "web");
    assert!(web["pid"] != db["pid"]);
    // db placed everywhere: n2 now runs both.
    let file = spec_file(
        dir.path(),
        "services.toml",
        &[sleeper("db", ""), sleeper("web", "depends_on = { db = \"started\" }")].concat(),
    );
    ok(fleet(&url, "apply", &["-f", &file]));
    wait_fleet(&url, "web on both nodes", |s| running(s, "web", 1).len() == 2 && running(s, "db", 2).len() == 2);
    wait_running(&nodes[1], "web");
    for d in nodes {
        d.down();
    }
}

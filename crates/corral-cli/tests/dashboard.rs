//! The dashboard (`[daemon] web`) end to end: a real `corral up` serving
//! plain http on a loopback port, and Debian's chromium, headless, driven
//! over WebDriver (chromedriver, through fantoccini). The browser logs in
//! with the form, sees every service, restarts one with its button, draws
//! a group with escapees, and leaves a screenshot in target/dashboard.png.
//! The refusals (no token, a cross-site POST) are checked over raw HTTP.
//!
//! chromedriver and every browser process it starts run inside a corral
//! group of their own: at the end the group is killed, its leftover
//! checked to be 0 and every pid seen proven gone, and the browser's
//! profile (a temp dir) removed. Without chromium installed the browser
//! test says SKIP and passes; CI installs it (`.ci/run`).

#![cfg(target_os = "linux")]

mod daemon;

use daemon::*;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOKEN: &str = "da5h-b0ard-70k3n-0123456789abcdef";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A daemon whose `[daemon] web` listens on a free loopback port with
/// plain http and a token file; `services` is the rest of the config.
fn dashboard_daemon(services: &str) -> (Daemon, String) {
    let dir = Daemon::dir();
    let token = dir.path().join("web.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let toml = format!(
        "[daemon]\nweb = {{ listen = \"127.0.0.1:0\", token_file = \"web.token\", plain_http = true }}\n{services}"
    );
    let d = Daemon::start_in(dir, &toml);
    let line = d.wait_stderr("corral: dashboard on http://").pop().unwrap();
    let url = line.split("dashboard on ").nth(1).unwrap().trim().to_string();
    (d, url)
}

/// One HTTP/1.1 request to `url`'s host; the status and the whole answer.
fn http(url: &str, request: &str) -> (u16, String) {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    let request = request.replace("{host}", host);
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, answer)
}

fn post(url: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    http(
        url,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {{host}}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn get(url: &str, path: &str, headers: &str) -> (u16, String) {
    http(url, &format!("GET {path} HTTP/1.1\r\nHost: {{host}}\r\nConnection: close\r\n{headers}\r\n"))
}

#[test]
fn without_the_token_nothing_is_shown_and_a_cross_site_post_is_refused() {
    let (mut d, url) = dashboard_daemon(&format!("[services.web]\ncommand = [{}, \"--sleep\", \"120\"]\n", tk()));
    d.wait_transition("web", "running");
    let pid = d.pid_of("web").unwrap();
    d.seen.push(pid);

    // The page itself holds nothing and carries the strict headers.
    let (code, page) = get(&url, "/", "");
    assert_eq!(code, 200, "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(lower.contains("content-security-policy: default-src 'self'"), "{page}");
    assert!(lower.contains("x-frame-options: deny") && lower.contains("x-content-type-options: nosniff"), "{page}");

    // Every API route wants the token.
    for path in ["/v1/services", "/v1/services/web/members", "/v1/events/stream", "/metrics"] {
        let (code, body) = get(&url, path, "");
        assert_eq!(code, 401, "{path}: {body}");
    }
    let (code, _) = get(&url, "/v1/services", "Cookie: corral_session=guess\r\n");
    assert_eq!(code, 401);
    let (code, _) = get(&url, "/v1/services", &format!("Authorization: Bearer {TOKEN}x\r\n"));
    assert_eq!(code, 401);
    let (code, _) =
        post(&url, "/login", "Content-Type: application/x-www-form-urlencoded\r\n", "token=wrong-token-0123456789");
    assert_eq!(code, 401);

    // The login sets a session cookie that is not the token.
    let (code, login) =
        post(&url, "/login", "Content-Type: application/x-www-form-urlencoded\r\n", &format!("token={TOKEN}"));
    assert_eq!(code, 303, "{login}");
    let set = login.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains(TOKEN), "{set}");
    let cookie = set.split_once(':').unwrap().1.trim().split(';').next().unwrap().to_string();
    let (code, body) = get(&url, "/v1/services", &format!("Cookie: {cookie}\r\n"));
    assert_eq!(code, 200, "{body}");

    // A cross-site POST, with the cookie a browser would attach (were it
    // not SameSite=Strict) and even the custom header: 403, nothing done.
    let own = format!("Cookie: {cookie}\r\nX-Corral-CSRF: 1\r\n");
    for from in ["Sec-Fetch-Site: cross-site\r\n", "Origin: http://evil.example\r\n", "Origin: null\r\n"] {
        let (code, body) = post(&url, "/v1/services/web/restart", &format!("{own}{from}"), "");
        assert_eq!(code, 403, "{from}: {body}");
    }
    // The cookie without the dashboard's header: 403 too (a plain form).
    let (code, _) = post(&url, "/v1/services/web/restart", &format!("Cookie: {cookie}\r\n"), "");
    assert_eq!(code, 403);
    // A login from another site is refused as well.
    let (code, _) = post(
        &url,
        "/login",
        "Content-Type: application/x-www-form-urlencoded\r\nSec-Fetch-Site: cross-site\r\n",
        &format!("token={TOKEN}"),
    );
    assert_eq!(code, 403);
    assert_eq!(d.pid_of("web"), Some(pid), "a refused request restarted the service");
    assert!(!d.events().iter().any(|e| e["service"] == "web" && e["reason"] == "stop requested"));

    // The same request from the page itself goes through.
    let same = format!("{own}Sec-Fetch-Site: same-origin\r\nOrigin: {}\r\n", url.trim_end_matches('/'));
    let (code, body) = post(&url, "/v1/services/web/restart", &same, "");
    assert_eq!(code, 200, "{body}");
    d.wait_status("a new pid", "web", |i| i["pid"].as_u64().is_some_and(|p| p as u32 != pid));
    d.seen.extend(d.pid_of("web"));
    d.down();
}

/// chromedriver in a corral group of its own, so that the browser and
/// every helper process it starts are held, killed and counted together.
struct Driver {
    group: corral::Group,
    port: u16,
    /// The browser's profile; removed on drop.
    profile: tempfile::TempDir,
    /// Every pid seen in the group, proven gone at the end.
    seen: BTreeSet<u32>,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let profile = tempfile::tempdir().unwrap();
        let tmp = profile.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let mut cmd = corral::Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}")).stdout(corral::Stdio::null()).stderr(corral::Stdio::null());
        // chromium's scoped dirs go in the profile too, so a killed browser
        // leaves nothing in /tmp.
        cmd.env("TMPDIR", &tmp);
        let group = corral::Group::builder().kill_on_drop(true).spawn(cmd).unwrap();
        let end = Instant::now() + LONG;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "chromedriver never listened on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { group, port, profile, seen: BTreeSet::new() }
    }

    fn note(&mut self) {
        self.seen.extend(self.group.members().unwrap_or_default());
    }

    async fn client(&self) -> Client {
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", self.profile.path().join("user-data").display()),
                ],
            }
        });
        let Value::Object(caps) = caps else { unreachable!() };
        ClientBuilder::new(hyper_connector())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("chromedriver did not start chromium")
    }

    /// Kills the group, checks nothing is left, and removes the profile.
    fn finish(mut self) {
        self.note();
        self.group.kill().unwrap();
        let outcome = self.group.wait();
        assert_eq!(outcome.leftover, 0, "browser processes left behind");
        let seen: Vec<u32> = self.seen.iter().copied().collect();
        assert!(seen.len() > 1, "the browser ran outside chromedriver's group? members: {seen:?}");
        assert_gone(&seen);
        let profile = self.profile.path().to_path_buf();
        drop(self.profile);
        assert!(!profile.exists(), "the browser profile {} is still there", profile.display());
    }
}

/// fantoccini's plain-http connector (the driver is on loopback).
fn hyper_connector() -> hyper_util::client::legacy::connect::HttpConnector {
    hyper_util::client::legacy::connect::HttpConnector::new()
}

async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> Result<T, String> {
    let end = Instant::now() + LONG;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > end {
            return Err(format!("the page never showed {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(c: &Client, css: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// Where the screenshot goes: target/dashboard.png.
fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("dashboard.png")
}

#[test]
fn the_page_shows_every_service_restarts_one_and_draws_a_group_with_escapees() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        eprintln!("SKIP: {CHROMIUM} or {CHROMEDRIVER} is not installed (apt-get install chromium chromium-driver)");
        return;
    }
    let tk = tk();
    let services = format!(
        "[services.web]\ncommand = [{tk}, \"--children\", \"2\", \"--sleep\", \"120\"]\n\
         [services.worker]\ncommand = [{tk}, \"--lines\", \"5\", \"--sleep\", \"120\"]\ninstances = 2\n\
         [services.escapes]\ncommand = [{tk}, \"--children\", \"1\", \"--setsid\", \"2\", \"--double-fork\", \"1\", \"--sleep\", \"120\"]\n"
    );
    let (mut d, url) = dashboard_daemon(&services);
    for s in ["web", "worker", "escapes"] {
        d.wait_transition(s, "running");
    }
    let escapees = d.latest_ready_pids("escapes", 0);
    d.latest_ready_pids("web", 0);
    let mut driver = Driver::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The browser is killed and counted even when the scenario panics.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(drive(&mut d, &mut driver, &url, &escapees))
    }));
    driver.finish();
    match result {
        Ok(r) => r.unwrap(),
        Err(panic) => std::panic::resume_unwind(panic),
    }
    d.down();
}

async fn drive(d: &mut Daemon, driver: &mut Driver, url: &str, escapees: &[u32]) -> Result<(), String> {
    let c = driver.client().await;
    driver.note();
    let r = scenario(d, &c, url, escapees).await;
    driver.note();
    let r = match r {
        Ok(()) => Ok(()),
        // What the page looked like, for whoever reads the failure.
        Err(e) => {
            if let Ok(png) = c.screenshot().await {
                let _ = std::fs::write(screenshot_path().with_file_name("dashboard-failure.png"), png);
            }
            let source = c.source().await.unwrap_or_default();
            Err(format!("{e}; the page was:\n{source}"))
        }
    };
    c.close().await.map_err(|e| format!("closing the browser: {e}"))?;
    r
}

async fn scenario(d: &mut Daemon, c: &Client, url: &str, escapees: &[u32]) -> Result<(), String> {
    // Not logged in: the page shows the form and nothing else.
    c.goto(url).await.map_err(|e| e.to_string())?;
    let token = wait_for("the login form", || async {
        let t = c.find(Locator::Id("token")).await.ok()?;
        t.is_displayed().await.ok()?.then_some(t)
    })
    .await?;
    token.send_keys(TOKEN).await.map_err(|e| e.to_string())?;
    c.find(Locator::Css("#login button[type=submit]"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;

    // Every instance of every service, with its pid.
    let expected = [("web", 0), ("worker", 0), ("worker", 1), ("escapes", 0)];
    for (s, i) in expected {
        let css = format!("tr[data-service='{s}'][data-instance='{i}'] td.state");
        let state =
            wait_for(&format!("{s}.{i} running"), || async { text(c, &css).await.filter(|t| t == "running") }).await?;
        assert_eq!(state, "running");
    }
    let rows = c.find_all(Locator::Css("#rows tr")).await.map_err(|e| e.to_string())?;
    assert_eq!(rows.len(), expected.len());

    // Restart from the page: the pid shown changes to the real new one.
    let old: u32 = d.pid_of("web").unwrap();
    let shown: u32 = text(c, "tr[data-service='web'] td.pid").await.and_then(|t| t.parse().ok()).unwrap();
    assert_eq!(shown, old);
    let button =
        c.find(Locator::Css("button[data-service='web'][data-action='restart']")).await.map_err(|e| e.to_string())?;
    button.click().await.map_err(|e| e.to_string())?;
    let new: u32 = wait_for("a new pid for web", || async {
        let t = text(c, "tr[data-service='web'] td.pid").await?;
        t.parse::<u32>().ok().filter(|&p| p != old)
    })
    .await?;
    let real =
        d.wait_status("running again", "web", |i| i["state"] == "running" && i["pid"].as_u64() == Some(u64::from(new)));
    assert_eq!(real["pid"].as_u64(), Some(u64::from(new)));
    d.latest_ready_pids("web", 0);
    assert!(gone(old), "the old leader {old} still runs");

    // The group with escapees: one node per member, edges parent → child.
    c.find(Locator::Css("tr[data-service='escapes'] td.name"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    let want: BTreeSet<u32> = escapees.iter().copied().collect();
    let nodes = wait_for("one node per member of escapes", || async {
        let nodes = c.find_all(Locator::Css("#tree g.node")).await.ok()?;
        let mut pids = BTreeSet::new();
        for n in &nodes {
            pids.insert(n.attr("data-pid").await.ok()??.parse::<u32>().ok()?);
        }
        (pids == want && nodes.len() == want.len()).then_some(nodes)
    })
    .await?;
    let mut parent_of = std::collections::BTreeMap::new();
    for n in &nodes {
        let pid: u32 = n.attr("data-pid").await.map_err(|e| e.to_string())?.unwrap().parse().unwrap();
        let ppid: u32 = n.attr("data-ppid").await.map_err(|e| e.to_string())?.unwrap().parse().unwrap();
        parent_of.insert(pid, ppid);
    }
    let edges = c.find_all(Locator::Css("#tree path.edge")).await.map_err(|e| e.to_string())?;
    let inside = parent_of.values().filter(|p| parent_of.contains_key(p)).count();
    assert_eq!(edges.len(), inside, "one edge per member whose parent is in the group");
    for e in &edges {
        let from: u32 = e.attr("data-from").await.map_err(|e| e.to_string())?.unwrap().parse().unwrap();
        let to: u32 = e.attr("data-to").await.map_err(|e| e.to_string())?.unwrap().parse().unwrap();
        assert_eq!(parent_of.get(&to), Some(&from), "edge {from} -> {to} is not parent -> child");
    }
    // The double-forked daemon's parent is outside the group: drawn as an
    // escapee root, not lost.
    let roots = c.find_all(Locator::Css("#tree g.node.escapee")).await.map_err(|e| e.to_string())?;
    assert!(!roots.is_empty(), "no escapee drawn");

    // Its log follows; the events list shows the restart.
    wait_for("the log of escapes", || async { text(c, "#log").await.filter(|t| t.contains("escapes | ")) }).await?;
    wait_for("the restart event", || async {
        text(c, "#event-list").await.filter(|t| t.contains("web.0") && t.contains("stop requested"))
    })
    .await?;
    wait_for("the live marker", || async { text(c, "#live").await.filter(|t| t == "live") }).await?;

    // The sparklines grow with the page's periodic samples (every 5 s).
    wait_for("three samples on the sparklines", || async {
        let line = c.find(Locator::Css("tr[data-service='worker'] td.mem polyline")).await.ok()?;
        let points = line.attr("points").await.ok()??;
        (points.split(' ').count() >= 3).then_some(())
    })
    .await?;

    let png = c.screenshot().await.map_err(|e| e.to_string())?;
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    let path = screenshot_path();
    std::fs::write(&path, &png).map_err(|e| e.to_string())?;
    eprintln!("screenshot: {}", path.display());
    Ok(())
}

//! A real etcd (Debian's `etcd-server`) per test: one member on loopback
//! ports free at start, its own data dir, stopped by pid and waited for
//! when the test ends (also on panic), its data dir removed with it.
//! Health is read from its plain-http metrics port, so it works the same
//! when the client port speaks TLS.

use corral_testkit::test_support::eventually;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long etcd may take to answer after a start.
const START: Duration = Duration::from_secs(30);

pub struct Etcd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    peer: u16,
    metrics: u16,
    /// This member's name and the `--initial-cluster` of all members.
    name: String,
    members: String,
    /// Serve clients over TLS with this certificate and key (PEM files).
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    child: Option<Child>,
}

impl Etcd {
    /// Starts one member and waits until it answers.
    pub fn start() -> Etcd {
        Etcd::start_tls(None)
    }

    /// With `pki`, clients must speak TLS (the server certificate is the
    /// one `pki` signed for 127.0.0.1).
    pub fn start_tls(pki: Option<&crate::daemon::pki::Pki>) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let tls = pki.map(|p| {
            let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server-key.pem"));
            std::fs::write(&cert, &p.cert_pem).unwrap();
            std::fs::write(&key, &p.key_pem).unwrap();
            (cert, key)
        });
        let peer = free_port();
        let members = format!("m0=http://127.0.0.1:{peer}");
        let mut e =
            Etcd { dir, port: free_port(), peer, metrics: free_port(), name: "m0".into(), members, tls, child: None };
        e.start_fresh();
        e
    }

    /// Starts on the ports chosen, or on fresh ones if etcd exits first: a
    /// port `free_port` found free can be taken before etcd binds it (the
    /// ephemeral range is every outgoing connection's too, and the tests
    /// run in parallel), and etcd then exits at once, which a wait for its
    /// health would only see after `START`. Three tries.
    fn start_fresh(&mut self) {
        for attempt in 1..=3 {
            self.spawn(self.port);
            let child = self.child.as_mut().expect("just spawned");
            if wait_healthy_or_exit(self.metrics, child) {
                return;
            }
            self.child = None;
            assert!(attempt < 3, "etcd exited at its start three times, each on fresh ports");
            (self.port, self.peer, self.metrics) = (free_port(), free_port(), free_port());
            self.members = format!("{}=http://127.0.0.1:{}", self.name, self.peer);
            // Its first start may have recorded the old peer URL.
            let _ = std::fs::remove_dir_all(self.dir.path().join("data"));
        }
    }

    /// `n` members of one cluster, each started, then all waited for (a
    /// member answers only once a quorum is up).
    pub fn cluster(n: usize) -> Vec<Etcd> {
        let mut all: Vec<Etcd> = (0..n)
            .map(|i| Etcd {
                dir: tempfile::tempdir().unwrap(),
                port: free_port(),
                peer: free_port(),
                metrics: free_port(),
                name: format!("m{i}"),
                members: String::new(),
                tls: None,
                child: None,
            })
            .collect();
        let members: Vec<String> = all.iter().map(|e| format!("{}=http://127.0.0.1:{}", e.name, e.peer)).collect();
        for e in &mut all {
            e.members = members.join(",");
            e.spawn(e.port);
        }
        for e in &all {
            wait_healthy(e.metrics);
        }
        all
    }

    /// SIGKILL, and wait for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            c.wait().unwrap();
        }
    }

    pub fn url(&self) -> String {
        self.url_on(self.port)
    }

    fn url_on(&self, port: u16) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{port}")
    }

    /// Starts (again) on `port` with the same data: a test can reach the
    /// store on another port while the nodes know only the usual one.
    pub fn run_on(&mut self, port: u16) {
        self.spawn(port);
        wait_healthy(self.metrics);
    }

    fn spawn(&mut self, port: u16) {
        assert!(self.child.is_none(), "etcd is already running");
        let client = self.url_on(port);
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let mut cmd = Command::new("etcd");
        if let Some((cert, key)) = &self.tls {
            cmd.arg("--cert-file").arg(cert).arg("--key-file").arg(key);
        }
        let child = cmd
            .args(["--name", &self.name, "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.members])
            .args(["--listen-metrics-urls", &format!("http://127.0.0.1:{}", self.metrics)])
            .args(["--logger", "zap", "--log-outputs", "stderr", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd runs (Debian: apt-get install etcd-server)");
        self.child = Some(child);
    }

    /// SIGTERM, and wait for it to exit (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            c.wait().unwrap();
        }
    }

    /// A client on `port`, for reading and writing what operators and
    /// strangers would.
    pub fn client(&self, rt: &tokio::runtime::Runtime, port: u16) -> etcd_client::Client {
        assert!(self.tls.is_none(), "the test client speaks plain http");
        let url = format!("http://127.0.0.1:{port}");
        rt.block_on(etcd_client::Client::connect([url], None)).unwrap()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: as above.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `GET /health` until etcd says it is healthy (true), or until the
/// process has exited (false).
fn wait_healthy_or_exit(port: u16, child: &mut Child) -> bool {
    eventually(&format!("etcd on port {port} healthy"), START, Duration::from_millis(50), || {
        if healthy(port) {
            return Some(true);
        }
        child.try_wait().ok().flatten().map(|_| false)
    })
}

/// One `GET /health`: whether etcd says it is healthy.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let ok = std::net::TcpStream::connect(("127.0.0.1", port)).ok().and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out.contains("\"health\":\"true\""))
    });
    ok == Some(true)
}

/// Polls `GET /health` until etcd says it is healthy.
fn wait_healthy(port: u16) {
    eventually(&format!("etcd on port {port} healthy"), START, Duration::from_millis(50), || {
        healthy(port).then_some(())
    })
}

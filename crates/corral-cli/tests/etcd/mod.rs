//! A real etcd (Debian's `etcd-server`) per test: one member on loopback
//! ports free at start, its own data dir, stopped by pid and waited for
//! when the test ends (also on panic), its data dir removed with it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to answer after a start.
const START: Duration = Duration::from_secs(30);

pub struct Etcd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    peer: u16,
    child: Option<Child>,
}

impl Etcd {
    /// Starts one member and waits until it answers.
    pub fn start() -> Etcd {
        let mut e = Etcd { dir: tempfile::tempdir().unwrap(), port: free_port(), peer: free_port(), child: None };
        e.run_on(e.port);
        e
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on `port` with the same data: a test can reach the
    /// store on another port while the nodes know only the usual one.
    pub fn run_on(&mut self, port: u16) {
        assert!(self.child.is_none(), "etcd is already running");
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let child = Command::new("etcd")
            .args(["--name", "m0", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("m0={peer}")])
            .args(["--logger", "zap", "--log-outputs", "stderr", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd runs (Debian: apt-get install etcd-server)");
        self.child = Some(child);
        wait_healthy(port);
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

/// Polls `GET /health` until etcd says it is healthy.
fn wait_healthy(port: u16) {
    use std::io::{Read, Write};
    let end = Instant::now() + START;
    loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).ok().and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            s.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out.contains("\"health\":\"true\""))
        });
        if ok == Some(true) {
            return;
        }
        assert!(Instant::now() < end, "etcd on port {port} never became healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! `--http-port N` / `--http-port-file PATH`: a tiny HTTP/1.1 server on
//! 127.0.0.1 for health-probe tests. `GET /health` answers 200 `ok`, or 503
//! `failing` while the `--http-fail-file` exists, so a test flips the
//! answer by creating and removing that file. With `--http-body-file`,
//! a passing `/health` answers the file's bytes instead of `ok` (read at
//! each request, so a test changes the body without a restart). Every
//! other path is 404.
//! One connection at a time, each closed after its answer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Binds (port 0 picks a free one), writes the port to `port_file` (whole,
/// by rename, so a reader never sees half of it), and serves on a thread.
pub fn serve(
    port: u16,
    port_file: Option<&Path>,
    fail_file: Option<PathBuf>,
    body_file: Option<PathBuf>,
) -> Result<u16, String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("binding 127.0.0.1:{port}: {e}"))?;
    let port = listener.local_addr().map_err(|e| format!("local address: {e}"))?.port();
    if let Some(f) = port_file {
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, port.to_string()).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, f).map_err(|e| format!("renaming to {}: {e}", f.display()))?;
    }
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer(stream, fail_file.as_deref(), body_file.as_deref());
        }
    });
    Ok(port)
}

fn answer(mut s: TcpStream, fail_file: Option<&Path>, body_file: Option<&Path>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (code, reason, body): (u16, &str, Vec<u8>) = match (method, path) {
        ("GET", "/health") if fail_file.is_some_and(Path::exists) => {
            (503, "Service Unavailable", b"failing\n".to_vec())
        }
        ("GET", "/health") => match body_file {
            Some(f) => (200, "OK", std::fs::read(f).unwrap_or_default()),
            None => (200, "OK", b"ok\n".to_vec()),
        },
        _ => (404, "Not Found", b"not found\n".to_vec()),
    };
    let kind = if body.starts_with(b"{") { "application/json" } else { "text/plain" };
    let _ = write!(
        s,
        "HTTP/1.1 {code} {reason}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(&body);
    let _ = s.flush();
}

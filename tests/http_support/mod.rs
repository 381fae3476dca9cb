//! A minimal HTTP/1.0 file server on 127.0.0.1 for artifact tests: GET /NAME serves
//! DIR/NAME, anything else is a 404. It counts requests so tests can see that an
//! artifact is fetched once per run. The thread ends with the test process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct FileServer {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
}

impl FileServer {
    pub fn start(dir: PathBuf) -> FileServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let mut line = String::new();
                let mut r = BufReader::new(c.try_clone().unwrap());
                let _ = r.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                }
                let name = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let body = (!name.contains('/') && !name.is_empty())
                    .then(|| std::fs::read(dir.join(name)).ok())
                    .flatten();
                let _ = match body {
                    Some(b) => c
                        .write_all(
                            format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", b.len())
                                .as_bytes(),
                        )
                        .and_then(|_| c.write_all(&b)),
                    None => c.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
                };
            }
        });
        FileServer { port, requests }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

/// sha256 hex of a file, with the system's sha256sum (an independent implementation).
pub fn sha256sum(p: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Writes STAND-IN kubelet and kubectl files (shell scripts that say what they are; not
/// the real binaries, which no registry reachable here serves) into `dir`.
pub fn write_stand_ins(dir: &std::path::Path) {
    for name in ["kubelet", "kubectl"] {
        std::fs::write(
            dir.join(name),
            format!(
                "#!/bin/sh\n# STAND-IN {name} for kubeboot tests: not the real binary.\necho '{name} stand-in (kubeboot tests)' >&2\nexit 1\n"
            ),
        )
        .unwrap();
    }
}

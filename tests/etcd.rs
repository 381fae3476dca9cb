//! A real etcd serves with kubeboot's etcd server and peer certificates and
//! `--client-cert-auth`; kubeboot's client certificates get in, and a client certificate
//! from another CA is refused. The same check runs against two etcds: Debian bookworm's
//! etcd-server (3.4) and Debian sid's (3.5, what kubeadm's manifests run), which
//! `tests/controlplane/build-images.sh` unpacks and `.ci/setup` names in
//! `KUBEBOOT_TEST_ETCD_SID`.

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod port_support;
use port_support::free_port;

struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn etcdctl(pki: &Path, endpoint: &str, client: &str, args: &[&str]) -> (bool, String, String) {
    let bin = tool(
        "etcdctl",
        "KUBEBOOT_TEST_ETCDCTL",
        "apt-get install etcd-client",
    );
    exec(
        Command::new(bin)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .arg(format!("--cacert={}", pki.join("etcd/ca.crt").display()))
            .arg(format!(
                "--cert={}",
                pki.join(format!("{client}.crt")).display()
            ))
            .arg(format!(
                "--key={}",
                pki.join(format!("{client}.key")).display()
            ))
            .arg("--dial-timeout=3s")
            .arg("--command-timeout=5s")
            .args(args),
    )
}

/// The first line of `etcd --version` (`etcd Version: 3.x.y`).
fn etcd_version(etcd_bin: &Path) -> String {
    let (ok_v, out, err) = exec(Command::new(etcd_bin).arg("--version"));
    assert!(ok_v, "{} --version: {out}{err}", etcd_bin.display());
    out.lines().next().unwrap_or_default().to_string()
}

#[test]
fn etcd_serves_with_kubeboot_certs_and_checks_clients() {
    let etcd_bin = tool("etcd", "KUBEBOOT_TEST_ETCD", "apt-get install etcd-server");
    eprintln!("{}: {}", etcd_bin.display(), etcd_version(&etcd_bin));
    serves_with_kubeboot_certs_and_checks_clients(&etcd_bin);
}

#[test]
fn etcd_35_serves_with_kubeboot_certs_and_checks_clients() {
    let Some(etcd_bin) = test_env_peer("KUBEBOOT_TEST_ETCD_SID") else {
        eprintln!(
            "SKIPPED: Debian sid's etcd 3.5 not found (KUBEBOOT_TEST_ETCD_SID, written to {TEST_ENV} by .ci/setup)"
        );
        return;
    };
    let version = etcd_version(&etcd_bin);
    assert!(
        version.starts_with("etcd Version: 3.5."),
        "KUBEBOOT_TEST_ETCD_SID={} is not etcd 3.5: {version}",
        etcd_bin.display()
    );
    eprintln!("{}: {version}", etcd_bin.display());
    serves_with_kubeboot_certs_and_checks_clients(&etcd_bin);
}

fn serves_with_kubeboot_certs_and_checks_clients(etcd_bin: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The node's address is loopback so etcd can bind it; its certs carry 127.0.0.1 anyway.
    ok(
        root,
        &[
            "init",
            "phase",
            "certs",
            "all",
            "--apiserver-advertise-address",
            "127.0.0.1",
            "--node-name",
            "etcd-test",
        ],
    );
    let pki = pki(root);
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let client_url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("https://127.0.0.1:{peer}");
    let log = std::fs::File::create(root.join("etcd.log")).unwrap();
    let p = |f: &str| pki.join(f).display().to_string();
    let child = Command::new(etcd_bin)
        .args([
            "--name=etcd-test".to_string(),
            format!("--data-dir={}", root.join("etcd-data").display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=etcd-test={peer_url}"),
            format!("--listen-metrics-urls=http://127.0.0.1:{metrics}"),
            format!("--cert-file={}", p("etcd/server.crt")),
            format!("--key-file={}", p("etcd/server.key")),
            "--client-cert-auth=true".into(),
            format!("--trusted-ca-file={}", p("etcd/ca.crt")),
            format!("--peer-cert-file={}", p("etcd/peer.crt")),
            format!("--peer-key-file={}", p("etcd/peer.key")),
            "--peer-client-cert-auth=true".into(),
            format!("--peer-trusted-ca-file={}", p("etcd/ca.crt")),
            "--snapshot-count=10000".into(),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _etcd = Etcd(child);

    // Wait for health with the healthcheck client certificate (what the probe uses).
    let start = Instant::now();
    loop {
        let (ok_h, out, err) = etcdctl(
            &pki,
            &client_url,
            "etcd/healthcheck-client",
            &["endpoint", "health"],
        );
        if ok_h && (out.contains("is healthy") || err.contains("is healthy")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "etcd never became healthy: {out}{err}\netcd log:\n{}",
            std::fs::read_to_string(root.join("etcd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // The API server's client certificate can write and read.
    let (okp, _, err) = etcdctl(
        &pki,
        &client_url,
        "apiserver-etcd-client",
        &["put", "/registry/kubeboot", "yes"],
    );
    assert!(okp, "put with apiserver-etcd-client failed: {err}");
    let (okg, out, err) = etcdctl(
        &pki,
        &client_url,
        "apiserver-etcd-client",
        &["get", "/registry/kubeboot", "--print-value-only"],
    );
    assert!(okg && out.trim() == "yes", "get: {out}{err}");

    // A client certificate from another cluster's etcd CA is refused.
    let other = tempfile::tempdir().unwrap();
    ok(
        other.path(),
        &[
            "init",
            "phase",
            "certs",
            "all",
            "--apiserver-advertise-address",
            "127.0.0.1",
            "--node-name",
            "other",
        ],
    );
    let other_pki = pki_with_our_ca(&pki, &other.path().join("etc/kubernetes/pki"));
    let (okx, out, err) = etcdctl(
        &other_pki,
        &client_url,
        "apiserver-etcd-client",
        &["get", "/registry/kubeboot"],
    );
    assert!(!okx, "a foreign client certificate was accepted: {out}");
    assert!(
        err.contains("bad certificate")
            || err.contains("deadline exceeded")
            || err.contains("certificate"),
        "unexpected refusal message: {err}"
    );
    // ...while etcd still serves our own client: the refusal was about the certificate.
    let (okg, out, err) = etcdctl(
        &pki,
        &client_url,
        "apiserver-etcd-client",
        &["get", "/registry/kubeboot", "--print-value-only"],
    );
    assert!(
        okg && out.trim() == "yes",
        "etcd stopped serving: {out}{err}"
    );
}

/// The other PKI's client cert and key, but our etcd CA as the trust root for the server,
/// so only the client certificate is foreign.
fn pki_with_our_ca(ours: &Path, theirs: &Path) -> std::path::PathBuf {
    let mixed = theirs.parent().unwrap().join("mixed");
    std::fs::create_dir_all(mixed.join("etcd")).unwrap();
    std::fs::copy(ours.join("etcd/ca.crt"), mixed.join("etcd/ca.crt")).unwrap();
    for f in ["apiserver-etcd-client.crt", "apiserver-etcd-client.key"] {
        std::fs::copy(theirs.join(f), mixed.join(f)).unwrap();
    }
    mixed
}

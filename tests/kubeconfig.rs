//! kubectl (Debian's kubernetes-client) reads every kubeconfig kubeboot writes and sees
//! kubeadm's users, clusters, contexts and servers.

mod common;

use common::*;
use std::process::Command;

fn kubectl() -> std::path::PathBuf {
    tool(
        "kubectl",
        "KUBEBOOT_TEST_KUBECTL",
        "apt-get install kubernetes-client (or extract its kubectl with apt-get download + dpkg -x)",
    )
}

#[test]
fn kubectl_reads_every_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut certs = vec![
        "init",
        "phase",
        "certs",
        "all",
        "--control-plane-endpoint",
        "cp.example.com:7443",
    ];
    certs.extend_from_slice(NODE);
    ok(root, &certs);
    let mut kc = vec![
        "init",
        "phase",
        "kubeconfig",
        "all",
        "--control-plane-endpoint",
        "cp.example.com:7443",
    ];
    kc.extend_from_slice(NODE);
    ok(root, &kc);
    let ca_pem = std::fs::read_to_string(pki(root).join("ca.crt")).unwrap();
    let cases = [
        (
            "admin.conf",
            "kubernetes-admin",
            "https://cp.example.com:7443",
            "O = kubeadm:cluster-admins, CN = kubernetes-admin",
        ),
        (
            "super-admin.conf",
            "kubernetes-super-admin",
            "https://cp.example.com:7443",
            "O = system:masters, CN = kubernetes-super-admin",
        ),
        (
            "kubelet.conf",
            "system:node:cp-1",
            "https://cp.example.com:7443",
            "O = system:nodes, CN = system:node:cp-1",
        ),
        (
            "controller-manager.conf",
            "system:kube-controller-manager",
            "https://10.0.0.5:6443",
            "CN = system:kube-controller-manager",
        ),
        (
            "scheduler.conf",
            "system:kube-scheduler",
            "https://10.0.0.5:6443",
            "CN = system:kube-scheduler",
        ),
    ];
    for (file, user, server, subject) in cases {
        let path = root.join("etc/kubernetes").join(file);
        let (okv, out, err) = exec(
            Command::new(kubectl())
                .arg("--kubeconfig")
                .arg(&path)
                .args(["config", "view", "--raw", "-o", "json"]),
        );
        assert!(okv, "kubectl could not read {file}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let context = format!("{user}@kubernetes");
        assert_eq!(v["current-context"], context.as_str(), "{file}");
        assert_eq!(v["contexts"][0]["name"], context.as_str(), "{file}");
        assert_eq!(v["contexts"][0]["context"]["user"], user, "{file}");
        assert_eq!(
            v["contexts"][0]["context"]["cluster"], "kubernetes",
            "{file}"
        );
        assert_eq!(v["clusters"][0]["name"], "kubernetes", "{file}");
        assert_eq!(v["clusters"][0]["cluster"]["server"], server, "{file}");
        assert_eq!(v["users"][0]["name"], user, "{file}");
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let ca = b64
            .decode(
                v["clusters"][0]["cluster"]["certificate-authority-data"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(ca).unwrap(),
            ca_pem,
            "{file} embeds the cluster CA"
        );
        let cert = b64
            .decode(
                v["users"][0]["user"]["client-certificate-data"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let cert_file = root.join(format!("{file}.crt"));
        std::fs::write(&cert_file, &cert).unwrap();
        let (_, subj, _) = exec(
            Command::new(openssl())
                .args(["x509", "-noout", "-subject", "-in"])
                .arg(&cert_file),
        );
        assert_eq!(subj.trim(), format!("subject={subject}"), "{file}");
        let (okc, out, err) = exec(
            Command::new(openssl())
                .args(["verify", "-purpose", "sslclient", "-CAfile"])
                .arg(pki(root).join("ca.crt"))
                .arg(&cert_file),
        );
        assert!(okc, "{file} client cert: {out}{err}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600,
            "{file} mode"
        );
    }
}

#[test]
fn kubeconfig_dir_flag_and_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut certs = vec!["init", "phase", "certs", "all"];
    certs.extend_from_slice(NODE);
    ok(root, &certs);
    let mut kc = vec![
        "init",
        "phase",
        "kubeconfig",
        "admin",
        "--kubeconfig-dir",
        "/srv/kube",
    ];
    kc.extend_from_slice(NODE);
    ok(root, &kc);
    assert!(root.join("srv/kube/admin.conf").is_file());
    assert!(!root.join("srv/kube/scheduler.conf").exists());
    assert!(!root.join("etc/kubernetes/admin.conf").exists());
}

#[test]
fn kubeconfig_with_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut certs = vec!["init", "phase", "certs", "all"];
    certs.extend_from_slice(NODE);
    let mut kc = vec!["init", "phase", "kubeconfig", "all"];
    kc.extend_from_slice(NODE);
    ok(root, &certs);
    ok(root, &kc);
    // Kept when run again.
    let out = ok(root, &kc);
    assert!(out.contains("Using existing kubeconfig file"), "{out}");
    // A new PKI makes the old kubeconfigs foreign.
    std::fs::remove_dir_all(pki(root)).unwrap();
    ok(root, &certs);
    let err = fails(root, &kc);
    assert!(
        err.contains("admin.conf") && err.contains("is not the cluster CA"),
        "{err}"
    );
}

//! Re-runs, broken files, external CAs, renewal and bad input: each with a clear error
//! and nothing half-written.

mod common;

use common::*;
use std::path::Path;

fn certs_all(_root: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["init", "phase", "certs", "all"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(NODE.iter().map(|s| s.to_string()));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

fn fresh() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    ok(&root, &strs(&certs_all(&root, &[])));
    let mut kc = vec!["init", "phase", "kubeconfig", "all"];
    kc.extend_from_slice(NODE);
    ok(&root, &kc);
    (dir, root)
}

#[test]
fn rerun_changes_nothing() {
    let (_d, root) = fresh();
    let before = snapshot(&root.join("etc"));
    assert_eq!(
        before.len(),
        27,
        "20 cert/key files + sa pair + 5 kubeconfigs: {:?}",
        before.keys()
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = ok(&root, &strs(&certs_all(&root, &[])));
    assert!(
        out.contains("Using existing ca certificate authority"),
        "{out}"
    );
    assert!(
        out.contains("Using existing apiserver certificate and key on disk"),
        "{out}"
    );
    assert!(out.contains("Using the existing \"sa\" key"), "{out}");
    assert!(!out.contains("Generating"), "{out}");
    let mut kc = vec!["init", "phase", "kubeconfig", "all"];
    kc.extend_from_slice(NODE);
    ok(&root, &kc);
    assert_eq!(
        snapshot(&root.join("etc")),
        before,
        "a re-run changed bytes, modes or mtimes"
    );
}

#[test]
fn san_change_is_an_error_naming_the_difference_and_force_fixes_it() {
    let (_d, root) = fresh();
    let before = snapshot(&root.join("etc"));
    let args = certs_all(
        &root,
        &["--apiserver-cert-extra-sans", "lb.example.com,192.0.2.50"],
    );
    let err = fails(&root, &strs(&args));
    assert!(err.contains("apiserver.crt"), "{err}");
    assert!(
        err.contains("missing DNS:lb.example.com, IP:192.0.2.50"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        snapshot(&root.join("etc")),
        before,
        "a failed run wrote something"
    );

    let mut forced = args.clone();
    forced.push("--force".into());
    let out = ok(&root, &strs(&forced));
    assert!(out.contains("Regenerating \"apiserver\""), "{out}");
    let text = std::process::Command::new(openssl())
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(pki(&root).join("apiserver.crt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("DNS:lb.example.com") && text.contains("IP Address:192.0.2.50"),
        "{text}"
    );
    // The CA and the other certificates were kept.
    let after = snapshot(&root.join("etc"));
    let ca = pki(&root).join("ca.crt");
    assert_eq!(after[&ca], before[&ca]);
    let fp = pki(&root).join("front-proxy-client.crt");
    assert_eq!(after[&fp], before[&fp]);
}

#[test]
fn corrupt_cert_key_and_mismatch_are_errors() {
    let (_d, root) = fresh();
    let p = pki(&root);
    let args = certs_all(&root, &[]);

    std::fs::write(p.join("apiserver.crt"), "garbage").unwrap();
    let before = snapshot(&root.join("etc"));
    let err = fails(&root, &strs(&args));
    assert!(
        err.contains("apiserver.crt") && err.contains("not a PEM certificate"),
        "{err}"
    );
    assert_eq!(snapshot(&root.join("etc")), before);

    let (_d, root) = fresh();
    let p = pki(&root);
    std::fs::write(
        p.join("etcd/peer.key"),
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = fails(&root, &strs(&certs_all(&root, &[])));
    assert!(
        err.contains("etcd/peer.key") && err.contains("not a usable private key"),
        "{err}"
    );

    let (_d, root) = fresh();
    let p = pki(&root);
    std::fs::copy(p.join("front-proxy-client.key"), p.join("apiserver.key")).unwrap();
    let err = fails(&root, &strs(&certs_all(&root, &[])));
    assert!(
        err.contains("apiserver.crt") && err.contains("key does not belong"),
        "{err}"
    );

    // A broken CA is never replaced, even with --force.
    let (_d, root) = fresh();
    let p = pki(&root);
    std::fs::write(p.join("ca.key"), "nonsense").unwrap();
    let err = fails(&root, &strs(&certs_all(&root, &["--force"])));
    assert!(
        err.contains("ca.key") && err.contains("never replaces a CA"),
        "{err}"
    );
}

#[test]
fn external_ca_mode() {
    let (_d, root) = fresh();
    let p = pki(&root);
    std::fs::remove_file(p.join("ca.key")).unwrap();
    // Existing leaves signed by the external CA are used.
    let out = ok(&root, &strs(&certs_all(&root, &[])));
    assert!(
        out.contains("ca certificate authority without its key (external CA mode)"),
        "{out}"
    );
    let report = ok(&root, &["certs", "check-expiration", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    let ca = v["certificateAuthorities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ca")
        .unwrap();
    assert_eq!(ca["externallyManaged"], true);
    // A missing leaf cannot be signed: the error says what to provide.
    std::fs::remove_file(p.join("apiserver.crt")).unwrap();
    std::fs::remove_file(p.join("apiserver.key")).unwrap();
    let err = fails(&root, &strs(&certs_all(&root, &[])));
    assert!(
        err.contains("external CA mode")
            && err.contains("apiserver.crt")
            && err.contains("apiserver.key"),
        "{err}"
    );
    assert!(!p.join("apiserver.crt").exists());
}

#[test]
fn renew_keeps_names_and_changes_keys() {
    let (_d, root) = fresh();
    let p = pki(&root);
    let old_crt = std::fs::read(p.join("apiserver.crt")).unwrap();
    let old_key = std::fs::read(p.join("apiserver.key")).unwrap();
    let old_admin = std::fs::read(root.join("etc/kubernetes/admin.conf")).unwrap();
    let subj = |f: &Path| {
        let o = std::process::Command::new(openssl())
            .args([
                "x509",
                "-noout",
                "-subject",
                "-ext",
                "subjectAltName",
                "-in",
            ])
            .arg(f)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let before = subj(&p.join("apiserver.crt"));
    let out = ok(&root, &["certs", "renew", "all"]);
    assert!(
        out.contains("certificate for serving the Kubernetes API renewed"),
        "{out}"
    );
    assert!(out.contains("admin.conf renewed"), "{out}");
    assert_ne!(std::fs::read(p.join("apiserver.crt")).unwrap(), old_crt);
    assert_ne!(std::fs::read(p.join("apiserver.key")).unwrap(), old_key);
    assert_eq!(
        subj(&p.join("apiserver.crt")),
        before,
        "renewal changed subject or SANs"
    );
    assert_ne!(
        std::fs::read(root.join("etc/kubernetes/admin.conf")).unwrap(),
        old_admin
    );
    // Everything still verifies and the kubeconfigs are still accepted as-is.
    let (okv, out, err) = exec(
        std::process::Command::new(openssl())
            .arg("verify")
            .arg("-CAfile")
            .arg(p.join("ca.crt"))
            .arg(p.join("apiserver.crt")),
    );
    assert!(okv, "{out}{err}");
    let mut certs = certs_all(&root, &[]);
    certs.truncate(4);
    certs.extend(NODE.iter().map(|s| s.to_string()));
    ok(&root, &strs(&certs));
    let mut kc = vec!["init", "phase", "kubeconfig", "all"];
    kc.extend_from_slice(NODE);
    let out = ok(&root, &kc);
    assert!(!out.contains("Writing"), "{out}");
    // A shorter validity is honoured.
    ok(
        &root,
        &["certs", "renew", "front-proxy-client", "--validity", "48h"],
    );
    let report = ok(&root, &["certs", "check-expiration"]);
    let line = report
        .lines()
        .find(|l| l.starts_with("front-proxy-client"))
        .unwrap();
    assert!(line.contains(" 47h ") || line.contains(" 48h "), "{line}");
}

#[test]
fn check_expiration_lists_missing_files() {
    let (_d, root) = fresh();
    std::fs::remove_file(root.join("etc/kubernetes/super-admin.conf")).unwrap();
    let text = ok(&root, &["certs", "check-expiration"]);
    assert!(
        text.starts_with("CERTIFICATE                EXPIRES"),
        "{text}"
    );
    assert!(text.contains("!MISSING! super-admin.conf"), "{text}");
    assert!(text.contains("CERTIFICATE AUTHORITY   EXPIRES"), "{text}");
    let names: Vec<&str> = text
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty() && !l.starts_with('!'))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "admin.conf",
            "apiserver",
            "apiserver-etcd-client",
            "apiserver-kubelet-client",
            "controller-manager.conf",
            "etcd-healthcheck-client",
            "etcd-peer",
            "etcd-server",
            "front-proxy-client",
            "scheduler.conf"
        ]
    );
}

// ---- bad input: clear error, no file written ----

fn no_files_under(root: &Path) {
    let written: Vec<_> = snapshot(root)
        .into_keys()
        .filter(|p| !p.ends_with("kubeadm.yaml"))
        .collect();
    assert!(written.is_empty(), "files were written: {written:?}");
}

fn config_err(yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kubeadm.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let mut args = vec![
        "init",
        "phase",
        "certs",
        "all",
        "--config",
        cfg.to_str().unwrap(),
    ];
    args.extend_from_slice(NODE);
    let err = fails(dir.path(), &args);
    no_files_under(dir.path());
    err.replace(cfg.to_str().unwrap(), "kubeadm.yaml")
}

#[test]
fn malformed_yaml() {
    let e = config_err(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: {serviceSubnet: [\n",
    );
    assert!(e.contains("kubeadm.yaml:"), "{e}");
}

#[test]
fn unknown_field() {
    let e = config_err(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAdress: 10.0.0.1\n",
    );
    assert!(
        e.contains("kubeadm.yaml:7") && e.contains("advertiseAdress"),
        "{e}"
    );
}

#[test]
fn bad_cidr() {
    let e = config_err(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  serviceSubnet: 10.96.0.0/33\n",
    );
    assert!(
        e.contains("kubeadm.yaml:4: networking.serviceSubnet") && e.contains("not a CIDR"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "init",
        "phase",
        "certs",
        "all",
        "--service-cidr",
        "10.96.0.0",
    ];
    args.extend_from_slice(NODE);
    let e = fails(dir.path(), &args);
    assert!(
        e.contains("flag --service-cidr") && e.contains("not a CIDR"),
        "{e}"
    );
    no_files_under(dir.path());
}

#[test]
fn advertise_address_not_an_ip_and_bad_node_name() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(
        dir.path(),
        &[
            "init",
            "phase",
            "certs",
            "all",
            "--apiserver-advertise-address",
            "my-host",
            "--node-name",
            "Node_1",
        ],
    );
    assert!(
        e.contains("flag --apiserver-advertise-address")
            && e.contains("\"my-host\" is not an IP address"),
        "{e}"
    );
    assert!(
        e.contains("flag --node-name") && e.contains("\"Node_1\" is not a valid node name"),
        "{e}"
    );
    no_files_under(dir.path());
}

#[test]
fn unsupported_algorithm() {
    let e = config_err(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ED25519\n",
    );
    assert!(
        e.contains("kubeadm.yaml:3: encryptionAlgorithm")
            && e.contains("supported: RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384"),
        "{e}"
    );
}

#[test]
fn unwritable_cert_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // /etc is a file on this "node": nothing can be created below it, even by root.
    std::fs::write(root.join("etc"), "not a directory").unwrap();
    let e = fails(root, &strs(&certs_all(root, &[])));
    assert!(
        e.contains("etc/kubernetes/pki") && e.contains("cannot create directory"),
        "{e}"
    );
    let files: Vec<_> = snapshot(root).into_keys().collect();
    assert_eq!(
        files,
        vec![root.join("etc")],
        "only the blocking file may exist"
    );
}

#[test]
fn renew_csr_only_writes_requests_and_leaves_certificates_alone() {
    let (_d, root) = fresh();
    let p = pki(&root);
    let before = snapshot(&p);
    let admin_before = std::fs::read(root.join("etc/kubernetes/admin.conf")).unwrap();
    let out = ok(
        &root,
        &[
            "certs",
            "renew",
            "apiserver",
            "--csr-only",
            "--csr-dir",
            "/csr",
        ],
    );
    assert!(out.contains("/csr/apiserver.csr"), "{out}");
    ok(
        &root,
        &[
            "certs",
            "renew",
            "admin.conf",
            "--csr-only",
            "--csr-dir",
            "/csr",
        ],
    );
    assert_eq!(snapshot(&p), before, "--csr-only changed the PKI");
    assert_eq!(
        std::fs::read(root.join("etc/kubernetes/admin.conf")).unwrap(),
        admin_before
    );
    let csr = root.join("csr/apiserver.csr");
    // The request is self-consistent and carries the certificate's names...
    let (okv, text, err) = exec(
        std::process::Command::new(openssl())
            .args(["req", "-verify", "-noout", "-text", "-in"])
            .arg(&csr),
    );
    assert!(okv, "{text}{err}");
    assert!(
        text.contains("CN=kube-apiserver") || text.contains("CN = kube-apiserver"),
        "{text}"
    );
    assert!(text.contains("DNS:kubernetes.default.svc"), "{text}");
    // ...for the new key beside it, which an external CA can sign.
    let pubkey =
        |args: &[&str], f: &Path| exec(std::process::Command::new(openssl()).args(args).arg(f)).1;
    assert_eq!(
        pubkey(&["req", "-pubkey", "-noout", "-in"], &csr),
        pubkey(&["pkey", "-pubout", "-in"], &root.join("csr/apiserver.key"))
    );
    let signed = root.join("csr/apiserver.crt");
    let (oks, out, err) = exec(
        std::process::Command::new(openssl())
            .args(["x509", "-req", "-days", "30", "-CA"])
            .arg(p.join("ca.crt"))
            .arg("-CAkey")
            .arg(p.join("ca.key"))
            .arg("-in")
            .arg(&csr)
            .arg("-out")
            .arg(&signed),
    );
    assert!(oks, "{out}{err}");
    let admin_csr = exec(
        std::process::Command::new(openssl())
            .args(["req", "-noout", "-subject", "-in"])
            .arg(root.join("csr/admin.conf.csr")),
    )
    .1;
    assert!(
        admin_csr.contains("kubernetes-admin") || admin_csr.contains("kubeadm:cluster-admins"),
        "{admin_csr}"
    );
    assert!(root.join("csr/admin.conf.key").is_file());
    // --csr-dir alone is refused: it only means something with --csr-only.
    fails(&root, &["certs", "renew", "apiserver", "--csr-dir", "/csr"]);
}

#[test]
fn certs_take_cert_dir_and_external_etcd_from_config() {
    let (_d, root) = fresh();
    std::fs::rename(pki(&root), root.join("alt-pki")).unwrap();
    let cfg = root.join("cluster.yaml");
    let write = |extra: &str| {
        std::fs::write(
            &cfg,
            format!(
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificatesDir: /alt-pki\n{extra}"
            ),
        )
        .unwrap()
    };
    write("");
    let c = cfg.to_str().unwrap();
    let out = ok(&root, &["certs", "check-expiration", "--config", c]);
    assert!(out.lines().any(|l| l.starts_with("apiserver ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("etcd-server")), "{out}");
    write(
        "etcd:\n  external:\n    endpoints: [\"https://10.0.0.1:2379\"]\n    caFile: /e/ca.crt\n    certFile: /e/c.crt\n    keyFile: /e/c.key\n",
    );
    let out = ok(&root, &["certs", "check-expiration", "--config", c]);
    assert!(!out.lines().any(|l| l.starts_with("etcd-server")), "{out}");
    let crt = root.join("alt-pki/front-proxy-client.crt");
    let old = std::fs::read(&crt).unwrap();
    ok(
        &root,
        &["certs", "renew", "front-proxy-client", "--config", c],
    );
    assert_ne!(std::fs::read(&crt).unwrap(), old);
    // Without the config, the default cert dir is empty now.
    fails(&root, &["certs", "renew", "front-proxy-client"]);
}

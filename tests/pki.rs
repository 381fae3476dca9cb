//! The cluster PKI checked by real peers: `openssl` verifies every certificate and reads
//! its fields, and computes the CA hash independently.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// (file base, signing CA base, expected subject, SANs or "" , EKU text or "", is CA)
const TABLE: &[(&str, &str, &str, &str, &str, bool)] = &[
    ("ca", "", "CN = kubernetes", "DNS:kubernetes", "", true),
    (
        "front-proxy-ca",
        "",
        "CN = front-proxy-ca",
        "DNS:front-proxy-ca",
        "",
        true,
    ),
    ("etcd/ca", "", "CN = etcd-ca", "DNS:etcd-ca", "", true),
    (
        "apiserver",
        "ca",
        "CN = kube-apiserver",
        "DNS:cp-1, DNS:cp.example.com, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local, IP Address:10.96.0.1, IP Address:10.0.0.5, IP Address:203.0.113.9",
        "TLS Web Server Authentication",
        false,
    ),
    (
        "apiserver-kubelet-client",
        "ca",
        "O = kubeadm:cluster-admins, CN = kube-apiserver-kubelet-client",
        "",
        "TLS Web Client Authentication",
        false,
    ),
    (
        "front-proxy-client",
        "front-proxy-ca",
        "CN = front-proxy-client",
        "",
        "TLS Web Client Authentication",
        false,
    ),
    (
        "etcd/server",
        "etcd/ca",
        "CN = cp-1",
        "DNS:cp-1, DNS:localhost, IP Address:10.0.0.5, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        false,
    ),
    (
        "etcd/peer",
        "etcd/ca",
        "CN = cp-1",
        "DNS:cp-1, DNS:localhost, IP Address:10.0.0.5, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        false,
    ),
    (
        "etcd/healthcheck-client",
        "etcd/ca",
        "CN = kube-etcd-healthcheck-client",
        "",
        "TLS Web Client Authentication",
        false,
    ),
    (
        "apiserver-etcd-client",
        "etcd/ca",
        "CN = kube-apiserver-etcd-client",
        "",
        "TLS Web Client Authentication",
        false,
    ),
];

fn x509_field(cert: &Path, args: &[&str]) -> String {
    let (ok, out, err) = exec(
        Command::new(openssl())
            .arg("x509")
            .arg("-in")
            .arg(cert)
            .arg("-noout")
            .args(args),
    );
    assert!(ok, "openssl x509 {args:?} on {}: {err}", cert.display());
    out
}

fn ext_value(text: &str, header: &str) -> Option<String> {
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with(header) {
            return lines.next().map(|v| v.trim().to_string());
        }
    }
    None
}

fn parse_openssl_date(s: &str) -> time::OffsetDateTime {
    // "Nov 22 22:15:38 2026 GMT" (day may be space-padded)
    let parts: Vec<&str> = s.split_whitespace().collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[0]).unwrap() as u8 + 1;
    let hms: Vec<u8> = parts[2].split(':').map(|x| x.parse().unwrap()).collect();
    let date = time::Date::from_calendar_date(
        parts[3].parse().unwrap(),
        time::Month::try_from(month).unwrap(),
        parts[1].parse().unwrap(),
    )
    .unwrap();
    date.with_hms(hms[0], hms[1], hms[2]).unwrap().assume_utc()
}

fn check_pki(algorithm: &str, key_header: &str, key_type_text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = root.join("kubeadm.yaml");
    std::fs::write(
        &cfg,
        format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: {algorithm}\ncontrolPlaneEndpoint: cp.example.com:6443\napiServer:\n  certSANs: [203.0.113.9, kubernetes]\n"
        ),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let started = time::OffsetDateTime::now_utc();
    let mut args = vec!["init", "phase", "certs", "all", "--config", cfg_s];
    args.extend_from_slice(NODE);
    ok(root, &args);
    let pki = pki(root);

    for (base, ca, subject, sans, eku, is_ca) in TABLE {
        let crt = pki.join(format!("{base}.crt"));
        let key = pki.join(format!("{base}.key"));
        let text = x509_field(&crt, &["-text"]);
        // Signed by the right CA.
        let ca_file = pki.join(format!("{}.crt", if ca.is_empty() { base } else { ca }));
        let (ok_v, out, err) = exec(
            Command::new(openssl())
                .arg("verify")
                .arg("-CAfile")
                .arg(&ca_file)
                .arg(&crt),
        );
        assert!(
            ok_v && out.contains(": OK"),
            "openssl verify {base}: {out}{err}"
        );
        // Subject, SANs (and their order), usages.
        let subj = x509_field(&crt, &["-subject"]);
        assert_eq!(subj.trim(), format!("subject={subject}"), "{base}");
        assert_eq!(
            ext_value(&text, "X509v3 Subject Alternative Name").unwrap_or_default(),
            *sans,
            "{base} SANs"
        );
        let ku = ext_value(&text, "X509v3 Key Usage: critical").unwrap();
        let want_ku = if *is_ca {
            "Digital Signature, Key Encipherment, Certificate Sign"
        } else {
            "Digital Signature, Key Encipherment"
        };
        assert_eq!(ku, want_ku, "{base} key usage");
        assert_eq!(
            ext_value(&text, "X509v3 Extended Key Usage").unwrap_or_default(),
            *eku,
            "{base} EKU"
        );
        let bc = ext_value(&text, "X509v3 Basic Constraints: critical").unwrap();
        assert_eq!(bc, if *is_ca { "CA:TRUE" } else { "CA:FALSE" }, "{base}");
        // Validity: backdated 5 minutes, 1 year for leaves, 10 years for CAs.
        let nb = parse_openssl_date(
            x509_field(&crt, &["-startdate"])
                .trim()
                .trim_start_matches("notBefore="),
        );
        let na = parse_openssl_date(
            x509_field(&crt, &["-enddate"])
                .trim()
                .trim_start_matches("notAfter="),
        );
        let back = started - nb;
        assert!(
            back >= time::Duration::minutes(4) && back <= time::Duration::minutes(6),
            "{base} notBefore {nb}"
        );
        let days = if *is_ca { 3650 } else { 365 };
        let life = na - started;
        assert!(
            life >= time::Duration::days(days) - time::Duration::minutes(1)
                && life <= time::Duration::days(days) + time::Duration::minutes(5),
            "{base} validity {life}"
        );
        // Key type and file format; the key belongs to the certificate.
        assert!(
            text.contains(key_type_text),
            "{base}: {key_type_text} not in\n{text}"
        );
        let key_pem = std::fs::read_to_string(&key).unwrap();
        assert!(
            key_pem.starts_with(key_header),
            "{base}.key starts {:?}",
            &key_pem[..40]
        );
        let (_, cert_pub, _) = exec(
            Command::new(openssl())
                .args(["x509", "-pubkey", "-noout", "-in"])
                .arg(&crt),
        );
        let (okk, key_pub, err) = exec(
            Command::new(openssl())
                .args(["pkey", "-pubout", "-in"])
                .arg(&key),
        );
        assert!(okk, "{base}.key unreadable by openssl: {err}");
        assert_eq!(cert_pub, key_pub, "{base}.key does not match {base}.crt");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{base}.key mode");
        let mode = std::fs::metadata(&crt).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{base}.crt mode");
    }
    // sa.key / sa.pub: a key pair, the public half as PKIX PUBLIC KEY.
    let (okk, sa_pub, err) = exec(
        Command::new(openssl())
            .args(["pkey", "-pubout", "-in"])
            .arg(pki.join("sa.key")),
    );
    assert!(okk, "{err}");
    assert_eq!(sa_pub, std::fs::read_to_string(pki.join("sa.pub")).unwrap());
    assert!(sa_pub.starts_with("-----BEGIN PUBLIC KEY-----"));

    // CA hash equals openssl's computation.
    let hash = ok(root, &["certs", "ca-hash"]);
    let script = format!(
        "{o} x509 -pubkey -noout -in {ca} | {o} pkey -pubin -outform der | sha256sum",
        o = openssl().display(),
        ca = pki.join("ca.crt").display()
    );
    let (okh, out, err) = exec(Command::new("sh").arg("-c").arg(&script));
    assert!(okh, "{err}");
    let hex = out.split_whitespace().next().unwrap();
    assert_eq!(hash.trim(), format!("sha256:{hex}"));
}

#[test]
fn ecdsa_p256_pki_is_what_kubeadm_writes() {
    check_pki(
        "ECDSA-P256",
        "-----BEGIN EC PRIVATE KEY-----",
        "NIST CURVE: P-256",
    );
}

#[test]
fn rsa_2048_pki_is_what_kubeadm_writes() {
    check_pki(
        "RSA-2048",
        "-----BEGIN RSA PRIVATE KEY-----",
        "Public-Key: (2048 bit)",
    );
}

#[test]
fn ecdsa_p384_and_rsa_3072_keys() {
    for (alg, text) in [
        ("ECDSA-P384", "NIST CURVE: P-384"),
        ("RSA-3072", "Public-Key: (3072 bit)"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yaml");
        std::fs::write(&cfg, format!("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: {alg}\n")).unwrap();
        let mut args = vec![
            "init",
            "phase",
            "certs",
            "apiserver-etcd-client",
            "--config",
            cfg.to_str().unwrap(),
        ];
        args.extend_from_slice(NODE);
        // A single leaf needs its CA first.
        let err = fails(dir.path(), &args);
        assert!(
            err.contains("etcd-ca certificate authority is missing"),
            "{err}"
        );
        let mut ca_args = args.clone();
        ca_args[3] = "etcd-ca";
        ok(dir.path(), &ca_args);
        ok(dir.path(), &args);
        let crt = pki(dir.path()).join("apiserver-etcd-client.crt");
        assert!(x509_field(&crt, &["-text"]).contains(text), "{alg}");
        let (okv, _, _) = exec(
            Command::new(openssl())
                .arg("verify")
                .arg("-CAfile")
                .arg(pki(dir.path()).join("etcd/ca.crt"))
                .arg(&crt),
        );
        assert!(okv);
    }
}

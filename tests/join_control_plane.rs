//! `kubeboot join --control-plane` against a real control plane, to a real second
//! control plane: the first (etcd 3.5 + v1.20.2 API server, controller-manager,
//! scheduler, from kubeboot's manifests) uploads its shared certificates with
//! `init phase upload-certs --upload-certs`; a second node root joins with
//! `--certificate-key`, advertising 127.0.0.2. The second etcd and API server are then
//! started from the manifests that join wrote, and must form one cluster with the first:
//! etcd has two voting members, and what is written through one API server is read
//! through the other.
//!
//! Test doubles, named as such, for what cannot run here: a `systemctl` that records
//! calls, and the test acting as the second node's kubelet (with the client certificate
//! join obtained, its CSR signed by the real controller-manager): its Node object,
//! starting the static Pods' commands as
//! processes, and the etcd mirror Pod whose annotation tells joiners where etcd is.

mod cluster_support;
mod common;

use cluster_support::*;
use kubeboot::apiclient::ApiClient;
use kubeboot::kubeconfig::KubeConfig;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn admin(cp: &ControlPlane) -> ApiClient {
    let kc = KubeConfig::parse(&std::fs::read_to_string(cp.etc("admin.conf")).unwrap()).unwrap();
    ApiClient::from_kubeconfig(&kc).unwrap()
}

fn wait_for(path: &Path, what: &str, timeout: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < timeout,
            "{what} never appeared at {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
}

const SECOND: &str = "127.0.0.2";

#[test]
fn a_second_control_plane_joins_with_the_uploaded_certificates() {
    let cp = ControlPlane::start_with("127.0.0.1", true);
    let cfg = cp.config.to_str().unwrap().to_string();
    cp.ok(&["init", "phase", "bootstrap-token", "--config", &cfg]);
    cp.ok(&["init", "phase", "upload-config", "all", "--config", &cfg]);
    let hash = cp.ok(&["certs", "ca-hash"]).trim().to_string();
    let endpoint = format!("127.0.0.1:{}", cp.port);
    let api = admin(&cp);
    // Test double for the kubelet's etcd mirror Pod: the annotation is how a joining
    // control plane finds etcd (the harness moved etcd's client port).
    let mirror = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "etcd-cp-test", "namespace": "kube-system",
            "labels": {"component": "etcd", "tier": "control-plane"},
            "annotations": {"kubeadm.kubernetes.io/etcd.advertise-client-urls":
                format!("https://127.0.0.1:{}", cp.etcd_client_port)}},
        "spec": {"nodeName": "cp-test", "containers": [{"name": "etcd", "image": "registry.k8s.io/etcd:3.5.15-0"}]}});
    let start = Instant::now();
    // (Unlike a real mirror Pod it passes ServiceAccount admission: wait for the
    // controller-manager to create kube-system/default.)
    while let Err(e) = api.create("/api/v1/namespaces/kube-system/pods", &mirror) {
        assert!(start.elapsed() < Duration::from_secs(60), "{e}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // upload-certs: a key is printed, the Secret is encrypted, owned by a 2h token.
    let out = cp.ok(&[
        "init",
        "phase",
        "upload-certs",
        "--upload-certs",
        "--config",
        &cfg,
    ]);
    let key = out.lines().last().unwrap().trim().to_string();
    assert_eq!(key.len(), 64, "{out}");
    let secret = api
        .get("/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
        .unwrap();
    let data = secret["data"].as_object().unwrap();
    let mut names: Vec<&str> = data.keys().map(|k| k.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca.crt",
            "ca.key",
            "etcd-ca.crt",
            "etcd-ca.key",
            "front-proxy-ca.crt",
            "front-proxy-ca.key",
            "sa.key",
            "sa.pub"
        ]
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sealed = b64.decode(data["ca.key"].as_str().unwrap()).unwrap();
    let plain_key = std::fs::read(cp.etc("pki/ca.key")).unwrap();
    assert!(
        !sealed
            .windows(10)
            .any(|w| plain_key.windows(10).any(|p| p == w)),
        "the CA key must not be stored in the clear"
    );
    // The layout is standard AES-256-GCM (nonce || ciphertext || tag, as Go's gcm.Seal
    // writes it): Python's `cryptography` decrypts it with the key.
    let py = Command::new("python3")
        .args([
            "-c",
            "import sys,base64;from cryptography.hazmat.primitives.ciphers.aead import AESGCM;d=base64.b64decode(sys.argv[2]);sys.stdout.buffer.write(AESGCM(bytes.fromhex(sys.argv[1])).decrypt(d[:12],d[12:],None))",
            &key,
            data["ca.key"].as_str().unwrap(),
        ])
        .output()
        .expect("python3 (with python3-cryptography, installed by .ci/setup)");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(py.stdout, plain_key);
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Secret");
    let owner_token = api
        .get(&format!(
            "/api/v1/namespaces/kube-system/secrets/{}",
            owner["name"].as_str().unwrap()
        ))
        .unwrap();
    assert_eq!(owner_token["metadata"]["uid"], owner["uid"]);
    let info = kubeboot::token::TokenInfo::from_secret(&owner_token).unwrap();
    let ttl = info.expires.unwrap() - time::OffsetDateTime::now_utc();
    assert!(
        ttl > time::Duration::minutes(115) && ttl <= time::Duration::hours(2),
        "{ttl}"
    );
    assert!(
        info.usages.is_empty(),
        "the TTL token must not authenticate"
    );
    api.get("/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings/kubeadm:kubeadm-certs")
        .unwrap();

    // `join <endpoint> --control-plane` as node `name` on `root`, plus `extra`.
    let cp_join = |root: &Path, name: &str, extra: &[&str]| {
        let mut args = vec![
            endpoint.as_str(),
            "--token",
            INIT_TOKEN,
            "--discovery-token-ca-cert-hash",
            &hash,
            "--node-name",
            name,
            "--control-plane",
            "--apiserver-advertise-address",
            SECOND,
            "--ignore-preflight-errors",
            "all",
        ];
        args.extend_from_slice(extra);
        join_cmd(root, &args)
    };

    // A wrong key is refused before anything is written.
    let wrong = worker();
    let bad_key = "0".repeat(64);
    let out = cp_join(wrong.path(), "cp-wrong", &["--certificate-key", &bad_key])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("control-plane-prepare") && err.contains("wrong certificate key"),
        "{err}"
    );
    assert!(
        !wrong.path().join("etc/kubernetes/pki").exists(),
        "nothing may be written with a wrong key"
    );
    // Without a key and without the files: told what to do.
    let out = cp_join(wrong.path(), "cp-wrong", &[]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--certificate-key") && err.contains("ca.key"),
        "{err}"
    );

    // The real join, with the test acting as the second node's kubelet.
    let w = worker();
    let root = w.path().to_path_buf();
    let port2 = free_port();
    let t0 = Instant::now();
    let port2_s = port2.to_string();
    let child = cp_join(
        &root,
        "cp-2",
        &["--certificate-key", &key, "--apiserver-bind-port", &port2_s],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();

    // The kubelet double: join's client certificate, then the static Pods as processes.
    let kubelet = kubelet_credentials(&root, "cp-2");
    let mut procs = Procs::default();
    let k8s = bin_dir("KUBEBOOT_K8S_BIN");
    let (ec2, em2) = (free_port(), free_port());
    let root_s = root.display().to_string();
    let reroot = |a: &str| -> String {
        let mut a = a.to_string();
        for p in ["/etc/kubernetes", "/var/lib/etcd"] {
            a = a.replace(p, &format!("{root_s}{p}"));
        }
        // This node's own 127.0.0.1 listeners move; 127.0.0.2 keeps etcd's real ports,
        // which the first member dials.
        a.replace("127.0.0.1:2379", &format!("127.0.0.1:{ec2}"))
            .replace("127.0.0.1:2381", &format!("127.0.0.1:{em2}"))
    };
    wait_for(
        &root.join("etc/kubernetes/manifests/etcd.yaml"),
        "the etcd manifest",
        Duration::from_secs(60),
    );
    procs.0.push((
        "etcd".into(),
        spawn_component(
            &root,
            "etcd",
            &bin_dir("KUBEBOOT_ETCD35_BIN").join("etcd"),
            &reroot,
            vec![],
        ),
    ));
    procs.0.push((
        "kube-apiserver".into(),
        spawn_component(
            &root,
            "kube-apiserver",
            &k8s.join("kube-apiserver"),
            &reroot,
            vec![
                format!("--bind-address={SECOND}"),
                "--insecure-port=0".into(),
            ],
        ),
    ));
    // The kubelet registers its Node with its new client certificate.
    ApiClient::from_kubeconfig(&kubelet)
        .unwrap()
        .create(
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp-2"}}),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = |n: &str| {
        std::fs::read_to_string(root.join(format!("logs/{n}.log")))
            .unwrap_or_default()
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        out.status.success(),
        "join --control-plane failed:\n{stdout}\n{}\netcd:\n{}\napiserver:\n{}",
        String::from_utf8_lossy(&out.stderr),
        log("etcd"),
        log("kube-apiserver")
    );
    eprintln!("{stdout}");
    eprintln!(
        "[figure] join --control-plane, start to promoted etcd member, ready API server and marked Node: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    for phase in [
        "[download-certs]",
        "[certs]",
        "[kubeconfig]",
        "[control-plane]",
        "[check-etcd]",
        "[kubelet-start]",
        "[etcd] Adding a new etcd member as a learner",
        "promoted to a voting member",
        "[wait-control-plane]",
        "[mark-control-plane]",
        "as a control plane",
    ] {
        assert!(stdout.contains(phase), "missing {phase:?} in:\n{stdout}");
    }
    assert!(!stdout.contains(&key), "the certificate key was printed");
    assert!(
        !stdout.contains("0123456789abcdef"),
        "the token secret was printed"
    );

    // The shared files are the first control plane's, keys private.
    let pki2 = root.join("etc/kubernetes/pki");
    for rel in kubeboot::copycerts::SHARED {
        assert_eq!(
            std::fs::read(pki2.join(rel)).unwrap(),
            std::fs::read(cp.etc(&format!("pki/{rel}"))).unwrap(),
            "{rel}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(pki2.join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(
            mode,
            if rel.ends_with(".key") { 0o600 } else { 0o644 },
            "{rel}"
        );
    }
    // Its own certificates: new keys, signed by the shared CAs, with its own address.
    let openssl = common::openssl();
    for (cert, ca) in [
        ("apiserver.crt", "ca.crt"),
        ("apiserver-kubelet-client.crt", "ca.crt"),
        ("front-proxy-client.crt", "front-proxy-ca.crt"),
        ("etcd/server.crt", "etcd/ca.crt"),
        ("etcd/peer.crt", "etcd/ca.crt"),
        ("apiserver-etcd-client.crt", "etcd/ca.crt"),
    ] {
        let (ok, o, e) = common::exec(
            Command::new(&openssl)
                .arg("verify")
                .arg("-CAfile")
                .arg(pki2.join(ca))
                .arg(pki2.join(cert)),
        );
        assert!(ok, "{cert}: {o}{e}");
        assert_ne!(
            std::fs::read(pki2.join(cert)).unwrap(),
            std::fs::read(cp.etc(&format!("pki/{cert}"))).unwrap()
        );
    }
    let (_, text, _) = common::exec(
        Command::new(&openssl)
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(pki2.join("apiserver.crt")),
    );
    assert!(text.contains("IP Address:127.0.0.2"), "{text}");
    assert!(!root.join("etc/kubernetes/super-admin.conf").exists());

    // etcd: two started voting members, both healthy.
    let both = format!(
        "https://127.0.0.1:{},https://{SECOND}:2379",
        cp.etcd_client_port
    );
    let (ok, list, e) = cp.etcdctl(&both, &["member", "list", "-w", "json"]);
    assert!(ok, "{e}");
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{list}");
    for m in members {
        assert!(m["isLearner"].is_null() || m["isLearner"] == false, "{m}");
        assert!(m["name"].is_string(), "{m}");
    }
    let (ok, o, e) = cp.etcdctl(&both, &["endpoint", "health"]);
    assert!(ok, "{o}{e}");

    // The second API server serves the same cluster: write through it, read through the first.
    let kc2 = KubeConfig::parse(
        &std::fs::read_to_string(root.join("etc/kubernetes/admin.conf")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        kc2.current_cluster().unwrap().server,
        format!("https://127.0.0.1:{}", cp.port),
        "admin.conf points at controlPlaneEndpoint"
    );
    let kubectl = std::env::var("KUBEBOOT_TEST_KUBECTL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| k8s.join("kubectl"));
    let second_url = format!("https://{SECOND}:{port2}");
    let (ok, o, e) = common::exec(
        Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(root.join("etc/kubernetes/admin.conf"))
            .args(["--server", &second_url])
            .args([
                "create",
                "configmap",
                "written-through-cp-2",
                "-n",
                "default",
            ]),
    );
    assert!(ok, "kubectl via the second API server: {o}{e}");
    api.get("/api/v1/namespaces/default/configmaps/written-through-cp-2")
        .expect("the first API server reads what the second wrote");

    // The Node is marked as a control plane.
    let node = api.get("/api/v1/nodes/cp-2").unwrap();
    assert_eq!(
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert!(
        node["spec"]["taints"]
            .to_string()
            .contains("node-role.kubernetes.io/control-plane"),
        "{node}"
    );

    // reset's first step on cp-2 removes its etcd member; the first keeps its quorum.
    let what = kubeboot::phases::reset::remove_etcd_member(
        &kubeboot::host::LocalHost::with_root(&root),
        "/etc/kubernetes/pki",
    )
    .unwrap();
    assert!(what.starts_with("removed etcd member cp-2"), "{what}");
    let first = format!("https://127.0.0.1:{}", cp.etcd_client_port);
    let (ok, list, e) = cp.etcdctl(&first, &["member", "list"]);
    assert!(ok, "{e}");
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains("cp-test"), "{list}");
    drop(procs);
    api.create(
        "/api/v1/namespaces/default/configmaps",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-cp-2-left"}}),
    )
    .expect("the first control plane still writes with cp-2 gone");
}

//! kubeboot against a real control plane (v1.20.2 binaries started from kubeboot's own
//! rendered manifests): cluster-admins binding, bootstrap tokens and cluster-info signed
//! by the real bootstrapsigner, token create/list/delete, the kubelet TLS bootstrap path
//! (a CSR created with a bootstrap token, approved and signed by the real
//! controller-manager), addons and flannel accepted by the real API server, faults, and
//! interop with kubeadm v1.20.2.
//!
//! One story in one test: the control plane takes a few seconds and ~500 MB to start.

mod cluster_support;
mod common;

use cluster_support::*;
use kubeboot::apiclient::{ApiClient, Trust};
use kubeboot::discovery;
use kubeboot::kubeconfig::{KubeConfig, User};
use kubeboot::token::BootstrapToken;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

fn kubectl() -> std::path::PathBuf {
    common::tool("kubectl", "KUBEBOOT_TEST_KUBECTL", "bash .ci/setup")
}

fn admin(cp: &ControlPlane) -> ApiClient {
    let kc = KubeConfig::parse(&std::fs::read_to_string(cp.etc("admin.conf")).unwrap()).unwrap();
    ApiClient::from_kubeconfig(&kc).unwrap()
}

fn token_client(cp: &ControlPlane, token: &str) -> ApiClient {
    let ca = std::fs::read_to_string(cp.etc("pki/ca.crt")).unwrap();
    let kc = KubeConfig::basic(
        &cp.url(),
        "kubernetes",
        "tls-bootstrap-token-user",
        &ca,
        User {
            token: token.into(),
            ..Default::default()
        },
    );
    ApiClient::from_kubeconfig(&kc).unwrap()
}

fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return (v, start.elapsed());
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn kubeboot_against_a_real_control_plane() {
    let mut cp = ControlPlane::start();
    eprintln!(
        "[figure] process start to /readyz: {:.1}s",
        cp.ready_after.as_secs_f64()
    );
    let cfg = cp.config.to_str().unwrap().to_string();
    let admin_conf = cp.etc("admin.conf");

    // admin.conf has no rights before the kubeadm:cluster-admins binding...
    let get_ns = |conf: &std::path::Path| {
        common::exec(
            Command::new(kubectl())
                .arg("--kubeconfig")
                .arg(conf)
                .args(["get", "ns", "-o", "name"]),
        )
    };
    let (ok, _, err) = get_ns(&admin_conf);
    assert!(
        !ok && err.contains("forbidden"),
        "admin.conf should be forbidden before the binding: {err}"
    );
    // ...super-admin.conf (system:masters) always has.
    let (ok, out, err) = get_ns(&cp.etc("super-admin.conf"));
    assert!(
        ok && out.contains("namespace/kube-system"),
        "super-admin: {err}"
    );

    // bootstrap-token: creates the binding through super-admin.conf, then works as admin.
    let t0 = Instant::now();
    let out = cp.ok(&["init", "phase", "bootstrap-token", "--config", &cfg]);
    eprintln!(
        "[figure] init phase bootstrap-token: {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    assert!(out.contains("kubeadm:cluster-admins"), "{out}");
    assert!(
        !out.contains("0123456789abcdef"),
        "the token secret leaked into output: {out}"
    );
    let (ok, out, err) = get_ns(&admin_conf);
    assert!(
        ok && out.contains("namespace/kube-public"),
        "admin.conf after the binding: {err}"
    );
    cp.check_alive();

    // Anonymous GET of cluster-info with the pinned CA, then the real bootstrapsigner's JWS.
    let ca_pem = std::fs::read(cp.etc("pki/ca.crt")).unwrap();
    let anon =
        ApiClient::anonymous(&cp.url(), Trust::Ca(&ca_pem), Duration::from_secs(10)).unwrap();
    let ci = anon
        .get(discovery::CLUSTER_INFO)
        .expect("anonymous GET cluster-info");
    let kc = KubeConfig::parse(ci["data"]["kubeconfig"].as_str().unwrap()).unwrap();
    assert_eq!(kc.clusters.len(), 1);
    assert_eq!(kc.clusters[0].name, "", "cluster-info's cluster is unnamed");
    assert_eq!(kc.clusters[0].cluster.server, cp.url());
    let init_token = BootstrapToken::parse(INIT_TOKEN).unwrap();
    let (_, took) = wait_until(
        "the bootstrapsigner's jws-kubeconfig-abcdef",
        Duration::from_secs(30),
        || {
            let cm = anon.get(discovery::CLUSTER_INFO).ok()?;
            discovery::verified_kubeconfig(&cm, init_token.id(), init_token.secret()).ok()
        },
    );
    eprintln!(
        "[figure] JWS added by the bootstrapsigner after {:.1}s",
        took.as_secs_f64()
    );
    // The signature does not verify with another secret.
    let cm = anon.get(discovery::CLUSTER_INFO).unwrap();
    assert_eq!(
        discovery::verified_kubeconfig(&cm, "abcdef", "0123456789abcdeX").unwrap_err(),
        discovery::DiscoveryError::BadSignature("abcdef".into())
    );

    // token create --print-join-command: the CA hash matches ca-hash and openssl.
    let t0 = Instant::now();
    let join = cp.ok(&[
        "token",
        "create",
        "--print-join-command",
        "--description",
        "test token",
    ]);
    eprintln!("[figure] token create: {:.2}s", t0.elapsed().as_secs_f64());
    let words: Vec<&str> = join.split_whitespace().collect();
    assert_eq!(&words[..2], ["kubeboot", "join"], "{join}");
    assert_eq!(words[2], format!("127.0.0.1:{}", cp.port));
    let token = BootstrapToken::parse(words[4]).unwrap();
    let hash = words[6];
    assert_eq!(hash, cp.ok(&["certs", "ca-hash"]).trim());
    let script = format!(
        "openssl x509 -pubkey -noout -in {} | openssl pkey -pubin -outform der | sha256sum",
        cp.etc("pki/ca.crt").display()
    );
    let (_, sum, _) = common::exec(Command::new("sh").arg("-c").arg(&script));
    assert_eq!(
        hash,
        format!("sha256:{}", sum.split_whitespace().next().unwrap())
    );

    // token list shows it with TTL and usages, its secret redacted.
    let list = cp.ok(&["token", "list"]);
    let row = list
        .lines()
        .find(|l| l.starts_with(&format!("{}.<redacted> ", token.id())))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        row.contains("23h") && row.contains("authentication,signing") && row.contains("test token"),
        "{row}"
    );
    assert!(
        list.lines().any(|l| l.starts_with("abcdef.<redacted> ")),
        "{list}"
    );
    assert!(!list.contains(token.secret()), "{list}");
    let json: serde_json::Value =
        serde_json::from_str(&cp.ok(&["token", "list", "-o", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == token.id() && t["token"] == format!("{}.<redacted>", token.id())),
        "{json}"
    );

    // Its JWS appears, and disappears once the token is deleted.
    wait_until("JWS of the new token", Duration::from_secs(30), || {
        let cm = anon.get(discovery::CLUSTER_INFO).ok()?;
        discovery::verified_kubeconfig(&cm, token.id(), token.secret()).ok()
    });
    let out = cp.ok(&["token", "delete", token.id()]);
    assert!(out.contains("deleted"), "{out}");
    let (_, took) = wait_until("JWS removal", Duration::from_secs(30), || {
        let cm = anon.get(discovery::CLUSTER_INFO).ok()?;
        cm["data"]
            .get(format!("jws-kubeconfig-{}", token.id()))
            .is_none()
            .then_some(())
    });
    eprintln!(
        "[figure] JWS removed {:.1}s after token delete",
        took.as_secs_f64()
    );
    assert!(!cp.ok(&["token", "list"]).contains(token.id()));

    // Kubelet TLS bootstrap path: a bootstrap token creates a CSR as system:bootstrap:<id>;
    // the real controller-manager approves and signs it.
    let boot = token_client(&cp, INIT_TOKEN);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:node:worker-1");
    let csr_pem = params.serialize_request(&key).unwrap().pem().unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let csr = boot
        .create(
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            &json!({
                "apiVersion": "certificates.k8s.io/v1",
                "kind": "CertificateSigningRequest",
                "metadata": {"generateName": "node-csr-"},
                "spec": {
                    "request": b64.encode(csr_pem),
                    "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                    "usages": ["digital signature", "key encipherment", "client auth"]
                }
            }),
        )
        .expect("the bootstrap token may create a CSR");
    assert_eq!(csr["spec"]["username"], "system:bootstrap:abcdef");
    let name = csr["metadata"]["name"].as_str().unwrap().to_string();
    let (signed, took) = wait_until(
        "the CSR to be approved and signed",
        Duration::from_secs(60),
        || {
            let c = boot
                .get(&format!(
                    "/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}"
                ))
                .ok()?;
            c["status"]["certificate"].as_str().map(String::from)
        },
    );
    eprintln!(
        "[figure] CSR approved and signed after {:.1}s",
        took.as_secs_f64()
    );
    let cert_file = cp.root().join("kubelet-client.crt");
    std::fs::write(&cert_file, b64.decode(signed).unwrap()).unwrap();
    let (ok, out, err) = common::exec(
        Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(cp.etc("pki/ca.crt"))
            .arg(&cert_file),
    );
    assert!(ok, "{out}{err}");
    let (_, subj, _) = common::exec(
        Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(&cert_file),
    );
    assert_eq!(
        subj.trim(),
        "subject=O = system:nodes, CN = system:node:worker-1"
    );

    // upload-config, addons and flannel are accepted by the real API server.
    cp.ok(&["init", "phase", "upload-config", "all", "--config", &cfg]);
    let a = admin(&cp);
    let kcm = a
        .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .unwrap();
    assert!(
        kcm["data"]["ClusterConfiguration"]
            .as_str()
            .unwrap()
            .contains("kind: ClusterConfiguration")
    );
    let kl = a
        .get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
        .unwrap();
    assert!(
        kl["data"]["kubelet"]
            .as_str()
            .unwrap()
            .contains("cgroupDriver: systemd")
    );
    assert!(
        kl["metadata"]["annotations"]["kubeadm.kubernetes.io/component-config.hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // A joining node (bootstrap token) may read both.
    boot.get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
        .expect("bootstrap token reads kubelet-config");
    boot.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .expect("bootstrap token reads kubeadm-config");
    boot.get("/api/v1/nodes/cp-test")
        .map(|_| ())
        .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })
        .expect("kubeadm:get-nodes");

    let out = cp.ok(&["init", "phase", "addon", "all", "--config", &cfg]);
    assert!(
        out.contains("CoreDNS") && out.contains("kube-proxy"),
        "{out}"
    );
    a.get("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
        .unwrap();
    let svc = a
        .get("/api/v1/namespaces/kube-system/services/kube-dns")
        .unwrap();
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
    a.get("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy")
        .unwrap();
    let out = cp.ok(&["init", "phase", "cni", "--config", &cfg]);
    assert!(out.contains("flannel"), "{out}");
    let ds = a
        .get("/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds")
        .unwrap();
    assert_eq!(ds["metadata"]["namespace"], "kube-flannel");
    let cfgmap = a
        .get("/api/v1/namespaces/kube-flannel/configmaps/kube-flannel-cfg")
        .unwrap();
    assert!(
        cfgmap["data"]["net-conf.json"]
            .as_str()
            .unwrap()
            .contains("10.244.0.0/16")
    );
    // Re-applying converges (server-side apply).
    cp.ok(&["init", "phase", "addon", "all", "--config", &cfg]);
    cp.ok(&["init", "phase", "cni", "--config", &cfg]);

    // mark-control-plane: the kubelet cannot run here, so the test registers the Node the
    // way a kubelet would (a test double for node registration, nothing more).
    a.create(
        "/api/v1/nodes",
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp-test"}}),
    )
    .unwrap();
    cp.ok(&[
        "init",
        "phase",
        "mark-control-plane",
        "--config",
        &cfg,
        "--node-wait",
        "20s",
    ]);
    let node = a.get("/api/v1/nodes/cp-test").unwrap();
    assert_eq!(
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    // The control-plane taints (the real node-lifecycle controller may add its own
    // not-ready taint to this kubelet-less Node first).
    let cp_taints = |node: &serde_json::Value| -> Vec<serde_json::Value> {
        node["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["key"] == "node-role.kubernetes.io/control-plane")
            .cloned()
            .collect()
    };
    let taints = cp_taints(&node);
    assert_eq!(taints.len(), 1, "{node}");
    assert_eq!(taints[0]["effect"], "NoSchedule");
    cp.ok(&["init", "phase", "mark-control-plane", "--config", &cfg]);
    let node = a.get("/api/v1/nodes/cp-test").unwrap();
    assert_eq!(cp_taints(&node).len(), 1, "re-run added a duplicate taint");

    // A conflicting cluster-info (changed by someone) is brought back by a re-run.
    a.merge_patch(
        "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        &json!({"data": {"kubeconfig": "tampered"}}),
    )
    .unwrap();
    let cm = anon.get(discovery::CLUSTER_INFO).unwrap();
    assert!(
        discovery::verified_kubeconfig(&cm, "abcdef", "0123456789abcdef").is_err(),
        "tampered cluster-info must not verify"
    );
    cp.ok(&["init", "phase", "bootstrap-token", "--config", &cfg]);
    wait_until(
        "cluster-info restored and re-signed",
        Duration::from_secs(30),
        || {
            let cm = anon.get(discovery::CLUSTER_INFO).ok()?;
            discovery::verified_kubeconfig(&cm, init_token.id(), init_token.secret()).ok()
        },
    );

    faults(&cp);
    register_ahead(&cp);
    sign_ahead(&cp);
    tls_bootstrap_waits_out_a_refused_token(&cp);
    kubeadm_interop(&cp);
    cp.check_alive();
}

/// join's TLS bootstrap (`kubelet_csr::obtain`) against the real API server and
/// controller-manager, while the API server refuses the bootstrap token (401) for a while:
/// an API server that has just restarted does so until its Secret cache is filled (CI's
/// `up` failed its joins on it). A token refused for longer than the grace fails, saying
/// what to do.
fn tls_bootstrap_waits_out_a_refused_token(cp: &ControlPlane) {
    use kubeboot::phases::kubelet_csr::{Obtained, Waits, obtain};
    let admin = admin(cp);
    let ca = std::fs::read_to_string(cp.etc("pki/ca.crt")).unwrap();
    let info = |t: &BootstrapToken| kubeboot::token::TokenInfo {
        token: t.clone(),
        description: "tls_bootstrap_waits_out_a_refused_token".into(),
        expires: None,
        usages: vec!["signing".into(), "authentication".into()],
        groups: vec![kubeboot::token::DEFAULT_GROUP.into()],
    };
    let run = |token: &BootstrapToken, node: &str, refused: Duration| {
        let client = token_client(cp, &token.to_string());
        let (url, ca, node) = (cp.url(), ca.clone(), node.to_string());
        std::thread::spawn(move || {
            let root = tempfile::tempdir().unwrap();
            let host = kubeboot::host::LocalHost::with_root(root.path());
            let t0 = Instant::now();
            let got = obtain(
                &host,
                &client,
                &node,
                &url,
                &ca,
                std::path::Path::new("/etc/kubernetes/kubelet.conf"),
                Waits {
                    signed: Duration::from_secs(60),
                    refused,
                },
            );
            let written = host
                .resolve(std::path::Path::new(
                    kubeboot::phases::kubelet_csr::CLIENT_CURRENT,
                ))
                .exists();
            (got.map_err(|e| format!("{e:#}")), t0.elapsed(), written)
        })
    };
    // The CSR of a token, once the API server has it.
    let csr_of = |t: &BootstrapToken| {
        let user = format!("system:bootstrap:{}", t.id());
        wait_until(
            "the CSR made with the token",
            Duration::from_secs(30),
            || {
                admin
                    .list(
                        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
                        None,
                    )
                    .unwrap()
                    .into_iter()
                    .find(|c| c["spec"]["username"] == user.as_str())
            },
        )
        .0
    };
    // The API server refuses the token (its Secret is gone or not yet seen).
    let refused_now = |t: &BootstrapToken| {
        wait_until(
            "the token refused",
            Duration::from_secs(10),
            || match token_client(cp, &t.to_string()).get("/apis/certificates.k8s.io/v1") {
                Err(kubeboot::apiclient::ApiError::Unauthorized { .. }) => Some(()),
                _ => None,
            },
        );
    };

    // A signed certificate, written where the kubelet reads it.
    let signed = |got: &Result<Obtained, String>, written: bool| {
        assert!(
            matches!(got, Ok(Obtained::Signed { .. })),
            "{:?}",
            got.as_ref().err()
        );
        assert!(written, "kubelet-client-current.pem");
    };

    // obtain() with a new token whose Secret is deleted once the CSR is made, while the
    // CSR waits for signing: the controller-manager is paused (kept brief: its leader
    // lease lasts 15 s) until the caller sends SIGCONT.
    let deleted_while_waiting = |t: &BootstrapToken, node: &str, refused: Duration| {
        kubeboot::token::create(&admin, &info(t)).unwrap();
        cp.signal("kube-controller-manager", libc::SIGSTOP);
        let job = run(t, node, refused);
        csr_of(t);
        assert!(kubeboot::token::delete(&admin, t.id()).unwrap());
        job
    };

    // 1. Refused when the CSR is made: the token's Secret comes 2 s later.
    let t1 = BootstrapToken::parse("rfsd01.0123456789abcdef").unwrap();
    let job = run(&t1, "refused-at-create", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    kubeboot::token::create(&admin, &info(&t1)).unwrap();
    let (got, took, written) = job.join().unwrap();
    signed(&got, written);
    assert!(
        took >= Duration::from_secs(2),
        "it could not succeed before the token existed: {took:?}"
    );

    // 2. Accepted for the CSR, refused while it waits for signing, accepted again.
    let t2 = BootstrapToken::parse("rfsd02.0123456789abcdef").unwrap();
    let job = deleted_while_waiting(&t2, "refused-while-waiting", Duration::from_secs(30));
    refused_now(&t2);
    std::thread::sleep(Duration::from_secs(1)); // obtain polls every 200 ms: it was refused too
    kubeboot::token::create(&admin, &info(&t2)).unwrap();
    cp.signal("kube-controller-manager", libc::SIGCONT);
    let (got, _, written) = job.join().unwrap();
    signed(&got, written);

    // 3. Deleted for good while waiting: fails after the grace, and says what to do.
    let t3 = BootstrapToken::parse("rfsd03.0123456789abcdef").unwrap();
    let job = deleted_while_waiting(&t3, "refused-for-good", Duration::from_secs(2));
    let (got, took, written) = job.join().unwrap();
    cp.signal("kube-controller-manager", libc::SIGCONT);
    let err = got.err().expect("a deleted token fails");
    assert!(
        err.contains("401")
            && err.contains("system:bootstrap:rfsd03")
            && err.contains("accepted the bootstrap token when the request was made")
            && err.contains("kubeboot token create --print-join-command"),
        "{err}"
    );
    assert!(!written);
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// `up` signs cluster-info for its join token itself: the signature verifies at once,
/// and it is the one the real bootstrapsigner makes (it leaves it as it is).
fn sign_ahead(cp: &ControlPlane) {
    let admin = admin(cp);
    let token = BootstrapToken::parse("upjoin.0123456789upjoin").unwrap();
    kubeboot::token::create(
        &admin,
        &kubeboot::token::TokenInfo {
            token: token.clone(),
            description: "sign_ahead".into(),
            expires: None,
            usages: vec!["signing".into(), "authentication".into()],
            groups: vec![kubeboot::token::DEFAULT_GROUP.into()],
        },
    )
    .unwrap();
    // Either this or the bootstrapsigner signs first; both make the same signature.
    discovery::sign_cluster_info(&admin, token.id(), token.secret()).unwrap();
    let cm = admin.get(discovery::CLUSTER_INFO).unwrap();
    discovery::verified_kubeconfig(&cm, token.id(), token.secret()).unwrap();
    let key = discovery::signature_key(token.id());
    let ours = cm["data"][&key].as_str().unwrap().to_string();
    // The real signer has had its look (it signs within seconds of a new token): the
    // value is still ours, and signing again changes nothing.
    std::thread::sleep(Duration::from_secs(3));
    let cm = admin.get(discovery::CLUSTER_INFO).unwrap();
    assert_eq!(cm["data"][&key].as_str(), Some(ours.as_str()));
    assert!(!discovery::sign_cluster_info(&admin, token.id(), token.secret()).unwrap());
    // Token deleted, then the signature removed (as up does when it ends).
    assert!(kubeboot::token::delete(&admin, token.id()).unwrap());
    discovery::unsign_cluster_info(&admin, token.id()).unwrap();
    let cm = admin.get(discovery::CLUSTER_INFO).unwrap();
    assert!(cm["data"].get(&key).is_none(), "{cm}");
    assert!(!discovery::unsign_cluster_info(&admin, token.id()).unwrap());
}

/// `up` registers a worker's Node before its kubelet starts (bridge pod network): the
/// real controller manager gives it a podCIDR at once; a failed join deletes it again
/// unless its kubelet reported.
fn register_ahead(cp: &ControlPlane) {
    use kubeboot::podnet::ahead;
    let admin = admin(cp);
    assert!(ahead::register(&admin, "ahead-1").unwrap(), "created");
    assert!(
        !ahead::register(&admin, "ahead-1").unwrap(),
        "a Node that exists is left alone"
    );
    let (node, took) = wait_until(
        "the controller manager's podCIDR on the Node registered ahead",
        Duration::from_secs(30),
        || {
            let n = admin.get("/api/v1/nodes/ahead-1").unwrap();
            n["spec"]["podCIDR"].as_str().is_some().then_some(n)
        },
    );
    eprintln!(
        "[figure] podCIDR on a Node registered ahead after {:.2}s",
        took.as_secs_f64()
    );
    assert!(
        node["spec"]["podCIDR"]
            .as_str()
            .unwrap()
            .starts_with("10.244."),
        "{node}"
    );
    // Room for no Pods until a kubelet reports; no taint (the lifecycle controller would
    // remove a not-ready taint from a Node without conditions).
    assert_eq!(node["status"]["allocatable"]["pods"], "0", "{node}");
    assert!(!ahead::kubelet_reported(&node), "{node}");
    // A join that failed before its kubelet reported: the Node goes.
    assert!(ahead::unregister(&admin, "ahead-1").unwrap());
    assert!(admin.get_opt("/api/v1/nodes/ahead-1").unwrap().is_none());
    assert!(
        !ahead::unregister(&admin, "ahead-1").unwrap(),
        "gone already"
    );
    // One whose kubelet reported (its status carries a kubelet version): it stays.
    assert!(ahead::register(&admin, "ahead-2").unwrap());
    admin
        .merge_patch(
            "/api/v1/nodes/ahead-2/status",
            &json!({"status": {"nodeInfo": {"kubeletVersion": "v1.20.2"}}}),
        )
        .unwrap();
    assert!(!ahead::unregister(&admin, "ahead-2").unwrap());
    assert!(admin.get_opt("/api/v1/nodes/ahead-2").unwrap().is_some());
    admin.delete("/api/v1/nodes/ahead-2").unwrap();
}

fn faults(cp: &ControlPlane) {
    // A token that exists already.
    let (ok, _, err) = cp.run(&["token", "create", INIT_TOKEN]);
    assert!(!ok && err.contains("already exists"), "{err}");
    // Malformed token and nonsense TTL.
    let (ok, _, err) = cp.run(&["token", "create", "not-a-token"]);
    assert!(!ok && err.contains("malformed bootstrap token"), "{err}");
    let (ok, _, err) = cp.run(&["token", "create", "--ttl", "soon"]);
    assert!(!ok && err.contains("--ttl"), "{err}");
    // An expired token does not authenticate.
    let expired = kubeboot::token::TokenInfo {
        token: BootstrapToken::parse("expird.0123456789abcdef").unwrap(),
        description: String::new(),
        expires: Some(time::OffsetDateTime::now_utc() - time::Duration::hours(1)),
        usages: vec!["authentication".into(), "signing".into()],
        groups: vec![kubeboot::token::DEFAULT_GROUP.into()],
    };
    kubeboot::token::create(&admin(cp), &expired).unwrap();
    let err = token_client(cp, "expird.0123456789abcdef")
        .get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("401") && err.contains("system:bootstrap:expird"),
        "{err}"
    );

    // Unreachable API server: a clear error with the URL, well within the deadline.
    let mut kc =
        KubeConfig::parse(&std::fs::read_to_string(cp.etc("admin.conf")).unwrap()).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    kc.clusters[0].cluster.server = format!("https://127.0.0.1:{dead}");
    std::fs::write(cp.etc("dead.conf"), kc.to_yaml()).unwrap();
    let t0 = Instant::now();
    let (ok, _, err) = cp.run(&["token", "list", "--kubeconfig", "/etc/kubernetes/dead.conf"]);
    assert!(
        !ok && err.contains(&format!("https://127.0.0.1:{dead}")) && err.contains("cannot reach"),
        "{err}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );

    // A retrying client (what init's later phases, join and up use) rides out an API
    // server that is away for a moment: the port refuses connections for 1.5 s, then a
    // forwarder to the real API server listens on it. Within a short window it gives up.
    let t0 = Instant::now();
    let err = ApiClient::from_kubeconfig(&kc)
        .unwrap()
        .retrying(Duration::from_secs(2))
        .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot reach"), "{err}");
    assert!(
        t0.elapsed() >= Duration::from_millis(1500) && t0.elapsed() < Duration::from_secs(8),
        "gave up after {:?}",
        t0.elapsed()
    );
    let real = (cp.address.clone(), cp.port);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let l = std::net::TcpListener::bind(("127.0.0.1", dead)).expect("rebind the port");
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let Ok(s) = std::net::TcpStream::connect((real.0.as_str(), real.1)) else {
                continue;
            };
            let (mut c2, mut s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
            let (mut c, mut s) = (c, s);
            std::thread::spawn(move || std::io::copy(&mut c2, &mut s2));
            std::thread::spawn(move || std::io::copy(&mut s, &mut c));
        }
    });
    let t0 = Instant::now();
    let cm = ApiClient::from_kubeconfig(&kc)
        .unwrap()
        .retrying(kubeboot::apiclient::API_CALL_RETRY)
        .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .expect("answered once the server is back");
    assert_eq!(cm["metadata"]["name"], "kubeadm-config");
    assert!(
        t0.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t0.elapsed()
    );
    eprintln!(
        "[figure] a retrying client got its answer {:.1}s after the server came back",
        t0.elapsed().as_secs_f64() - 1.5
    );

    // Wrong CA: the server's certificate is refused.
    let other = tempfile::tempdir().unwrap();
    common::ok(other.path(), &["init", "phase", "certs", "ca"]);
    let mut kc =
        KubeConfig::parse(&std::fs::read_to_string(cp.etc("admin.conf")).unwrap()).unwrap();
    use base64::Engine;
    kc.clusters[0].cluster.certificate_authority_data = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(other.path().join("etc/kubernetes/pki/ca.crt")).unwrap());
    std::fs::write(cp.etc("wrong-ca.conf"), kc.to_yaml()).unwrap();
    let (ok, _, err) = cp.run(&[
        "token",
        "list",
        "--kubeconfig",
        "/etc/kubernetes/wrong-ca.conf",
    ]);
    assert!(
        !ok && err.contains(&cp.url())
            && (err.contains("certificate") || err.contains("UnknownIssuer")),
        "{err}"
    );
}

fn kubeadm_interop(cp: &ControlPlane) {
    let kubeadm = bin_dir("KUBEBOOT_K8S_BIN").join("kubeadm");
    // kubeadm v1.20.2 lists kubeboot's tokens from kubeboot's Secrets.
    let (ok, out, err) = common::exec(
        Command::new(&kubeadm)
            .args(["token", "list", "--kubeconfig"])
            .arg(cp.etc("admin.conf")),
    );
    assert!(ok, "kubeadm token list: {err}");
    let row = out
        .lines()
        .find(|l| l.starts_with(INIT_TOKEN))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("authentication,signing"), "{row}");

    // kubeadm v1.20.2 reads every certificate of kubeboot's PKI. v1.20 predates
    // super-admin.conf (1.29) and reads kubeconfigs from /etc/kubernetes only, so the
    // certificate rows are what it can check here; its config must be v1beta2.
    let cfg = cp.root().join("kubeadm-v1beta2.yaml");
    std::fs::write(
        &cfg,
        format!(
            "apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\ncertificatesDir: {}\n",
            cp.etc("pki").display()
        ),
    )
    .unwrap();
    let (ok, out, err) = common::exec(
        Command::new(&kubeadm)
            .args(["certs", "check-expiration", "--config"])
            .arg(&cfg)
            .arg("--cert-dir")
            .arg(cp.etc("pki")),
    );
    assert!(ok, "kubeadm certs check-expiration: {out}{err}");
    for name in [
        "apiserver ",
        "apiserver-etcd-client",
        "apiserver-kubelet-client",
        "etcd-healthcheck-client",
        "etcd-peer",
        "etcd-server",
        "front-proxy-client",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"));
        assert!(line.contains("364d") && line.contains(" no"), "{line}");
    }
    for ca in ["ca ", "etcd-ca", "front-proxy-ca"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(ca))
            .unwrap_or_else(|| panic!("{ca} missing:\n{out}"));
        assert!(line.contains("9y"), "{line}");
    }
}

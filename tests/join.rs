//! `kubeboot join` against a real control plane: token discovery pinned by the CA hash,
//! kubelet-start and kubelet-wait-bootstrap, and every way discovery must refuse.
//!
//! join performs the kubelet's TLS bootstrap itself (a CSR as system:bootstrap:<id>,
//! approved and signed by the real controller-manager; the certificate store and
//! kubelet.conf written under the node root). No kubelet can run on this machine, so two
//! test doubles stand in, named as such: a `systemctl` that records what it is asked to
//! do, and the test registering the Node with the credentials join obtained.

mod cluster_support;
mod common;

use cluster_support::*;
use kubeboot::apiclient::ApiClient;
use kubeboot::kubeconfig::KubeConfig;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn admin(cp: &ControlPlane) -> ApiClient {
    let kc = KubeConfig::parse(&std::fs::read_to_string(cp.etc("admin.conf")).unwrap()).unwrap();
    ApiClient::from_kubeconfig(&kc).unwrap()
}

fn join_fails(w: &Path, args: &[&str]) -> String {
    let out = join_cmd(w, args).output().unwrap();
    assert!(
        !out.status.success(),
        "join {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn join_with_token_discovery() {
    let cp = ControlPlane::start();
    let cfg = cp.config.to_str().unwrap().to_string();
    cp.ok(&["init", "phase", "bootstrap-token", "--config", &cfg]);
    cp.ok(&["init", "phase", "upload-config", "all", "--config", &cfg]);
    let hash = cp.ok(&["certs", "ca-hash"]).trim().to_string();
    let endpoint = format!("127.0.0.1:{}", cp.port);

    // The happy path, with the test double for systemd.
    let w = worker();
    let t0 = Instant::now();
    let child = join_cmd(
        w.path(),
        &[
            &endpoint,
            "--token",
            INIT_TOKEN,
            "--discovery-token-ca-cert-hash",
            &hash,
            "--node-name",
            "worker-1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let kubelet = kubelet_credentials(w.path(), "worker-1");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "join failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("the CA matches the pinned hash"),
        "{stdout}"
    );
    assert!(stdout.contains("has joined the cluster"), "{stdout}");
    assert!(
        !stdout.contains("0123456789abcdef"),
        "token secret printed: {stdout}"
    );
    // The kubelet (test double) registers its Node with its new client certificate.
    let node_client = ApiClient::from_kubeconfig(&kubelet).unwrap();
    node_client
        .create(
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"}}),
        )
        .expect("the node's own credentials may register its Node");
    admin(&cp).get("/api/v1/nodes/worker-1").unwrap();
    eprintln!(
        "[figure] join, start to Node registered (kubelet test double): {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // What join left on the node.
    let etc = w.path().join("etc/kubernetes");
    assert!(
        !etc.join("bootstrap-kubelet.conf").exists(),
        "bootstrap-kubelet.conf must be removed"
    );
    assert_eq!(
        std::fs::read(etc.join("pki/ca.crt")).unwrap(),
        std::fs::read(cp.etc("pki/ca.crt")).unwrap()
    );
    let cm = admin(&cp)
        .get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(w.path().join("var/lib/kubelet/config.yaml")).unwrap(),
        cm["data"]["kubelet"].as_str().unwrap()
    );
    let flags =
        std::fs::read_to_string(w.path().join("var/lib/kubelet/kubeadm-flags.env")).unwrap();
    assert!(
        flags.starts_with("KUBELET_KUBEADM_ARGS=")
            && flags.contains(
                "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock"
            ),
        "{flags}"
    );
    let calls = std::fs::read_to_string(w.path().join("systemctl.log")).unwrap();
    assert_eq!(
        calls,
        "show -p LoadState -p NeedDaemonReload kubelet.service\nrestart kubelet\n"
    );
    // Joining again is refused by preflight.
    let err = join_fails(
        w.path(),
        &[
            &endpoint,
            "--token",
            INIT_TOKEN,
            "--discovery-token-ca-cert-hash",
            &hash,
        ],
    );
    assert!(
        err.contains("already exists") && err.contains("kubeboot reset"),
        "{err}"
    );

    // This cluster has no controlPlaneEndpoint: control planes cannot join it (kubeadm's
    // rule), and nothing is written.
    let cpw = worker();
    let key = "ab".repeat(32);
    let err = join_fails(
        cpw.path(),
        &[
            &endpoint,
            "--token",
            INIT_TOKEN,
            "--discovery-token-ca-cert-hash",
            &hash,
            "--control-plane",
            "--certificate-key",
            &key,
            "--ignore-preflight-errors",
            "all",
        ],
    );
    assert!(
        err.contains("control-plane-prepare") && err.contains("stable controlPlaneEndpoint"),
        "{err}"
    );
    assert!(!cpw.path().join("etc/kubernetes/pki").exists());
    // A malformed certificate key is named with its flag before anything happens.
    let err = join_fails(
        cpw.path(),
        &[
            &endpoint,
            "--token",
            INIT_TOKEN,
            "--discovery-token-ca-cert-hash",
            &hash,
            "--control-plane",
            "--certificate-key",
            "abc",
        ],
    );
    assert!(
        err.contains("--certificate-key") && err.contains("64 hexadecimal digits"),
        "{err}"
    );

    // skipPhases in a JoinConfiguration file: honoured (discovery only, nothing of the
    // kubelet written), and a phase join does not have is refused naming file and line.
    let file_dir = tempfile::tempdir().unwrap();
    let join_file = |skip: &str| {
        let text = format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: {endpoint}\n    token: {INIT_TOKEN}\n    caCertHashes: [\"{hash}\"]\nnodeRegistration:\n  name: worker-file\nskipPhases: [{skip}]\n"
        );
        let f = file_dir.path().join("join.yaml");
        std::fs::write(&f, text).unwrap();
        f
    };
    let fw = worker();
    let f = join_file("kubelet-start, kubelet-wait-bootstrap");
    // With -o json: every line of stdout is one JSON event, the skips and the end among them.
    let out = join_cmd(fw.path(), &["--config", f.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = common::json_events(&log);
    for p in ["kubelet-start", "kubelet-wait-bootstrap"] {
        assert!(
            events.contains(
                &json!({"event": "phase", "phase": p, "message": "Skipped (--skip-phases)"})
            ),
            "{log}"
        );
    }
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{log}");
    assert_eq!(done["command"], "join");
    assert_eq!(done["node"], "worker-file");
    assert_eq!(done["server"], format!("https://{endpoint}"));
    assert!(
        !log.contains(INIT_TOKEN.split('.').nth(1).unwrap()),
        "{log}"
    );
    assert!(
        !fw.path()
            .join("etc/kubernetes/bootstrap-kubelet.conf")
            .exists()
    );
    let f = join_file("kubelet-wait");
    let before = common::snapshot(fw.path());
    let err = join_fails(fw.path(), &["--config", f.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "{}:10: skipPhases: \"kubelet-wait\" is not a phase of join",
            f.display()
        )) && err.contains("kubelet-wait-bootstrap"),
        "{err}"
    );
    assert_eq!(common::snapshot(fw.path()), before);

    let discovery_only = [
        "--skip-phases",
        "kubelet-start,kubelet-wait-bootstrap",
        "--discovery-timeout",
        "4s",
    ];
    let refuse = |extra: &[&str]| {
        let w = worker();
        let mut args = vec![endpoint.as_str()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&discovery_only);
        join_fails(w.path(), &args)
    };

    // A wrong CA hash.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = refuse(&[
        "--token",
        INIT_TOKEN,
        "--discovery-token-ca-cert-hash",
        &wrong,
    ]);
    assert!(
        err.contains("matches none of the pinned hashes") && err.contains(&hash),
        "{err}"
    );
    // No pin and no explicit opt-out.
    let err = refuse(&["--token", INIT_TOKEN]);
    assert!(
        err.contains("--discovery-token-ca-cert-hash")
            && err.contains("unsafe-skip-ca-verification"),
        "{err}"
    );
    // The explicit opt-out works, visibly.
    let w2 = worker();
    let mut c = join_cmd(
        w2.path(),
        &[
            &endpoint,
            "--token",
            INIT_TOKEN,
            "--discovery-token-unsafe-skip-ca-verification",
        ],
    );
    let out = c.args(discovery_only).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("WARNING"),
        "the opt-out must be visible"
    );
    // A token of another cluster.
    let err = refuse(&[
        "--token",
        "zzzzzz.0123456789abcdef",
        "--discovery-token-ca-cert-hash",
        &hash,
    ]);
    assert!(
        err.contains("invalid for this cluster or it has expired"),
        "{err}"
    );
    // A deleted token: its signature disappears.
    let tok = cp.ok(&["token", "create"]).trim().to_string();
    cp.ok(&["token", "delete", &tok]);
    std::thread::sleep(Duration::from_secs(2));
    let err = refuse(&["--token", &tok, "--discovery-token-ca-cert-hash", &hash]);
    assert!(
        err.contains("invalid for this cluster or it has expired"),
        "{err}"
    );
    // An expired token is never signed.
    let expired = kubeboot::token::TokenInfo {
        token: kubeboot::token::BootstrapToken::parse("oldtok.0123456789abcdef").unwrap(),
        description: String::new(),
        expires: Some(time::OffsetDateTime::now_utc() - time::Duration::minutes(5)),
        usages: vec!["authentication".into(), "signing".into()],
        groups: vec![kubeboot::token::DEFAULT_GROUP.into()],
    };
    kubeboot::token::create(&admin(&cp), &expired).unwrap();
    let err = refuse(&[
        "--token",
        "oldtok.0123456789abcdef",
        "--discovery-token-ca-cert-hash",
        &hash,
    ]);
    assert!(
        err.contains("invalid for this cluster or it has expired"),
        "{err}"
    );
    // cluster-info changed after signing: pause the controller-manager so its
    // bootstrapsigner cannot re-sign, then change the kubeconfig through the API.
    cp.signal("kube-controller-manager", libc::SIGSTOP);
    admin(&cp)
        .merge_patch(
            "/api/v1/namespaces/kube-public/configmaps/cluster-info",
            &json!({"data": {"kubeconfig": std::fs::read_to_string(cp.etc("admin.conf")).unwrap().replace("127.0.0.1", "203.0.113.66")}}),
        )
        .unwrap();
    let err = refuse(&[
        "--token",
        INIT_TOKEN,
        "--discovery-token-ca-cert-hash",
        &hash,
    ]);
    cp.signal("kube-controller-manager", libc::SIGCONT);
    assert!(
        err.contains("does not match token \"abcdef\"")
            && err.contains("changed after it was signed"),
        "{err}"
    );
    // Bad flags are config errors that name the flag.
    let err = refuse(&[
        "--token",
        "short.x",
        "--discovery-token-ca-cert-hash",
        &hash,
    ]);
    assert!(
        err.contains("flag --token") && err.contains("malformed bootstrap token"),
        "{err}"
    );
    let err = refuse(&[
        "--token",
        INIT_TOKEN,
        "--discovery-token-ca-cert-hash",
        "md5:abc",
    ]);
    assert!(
        err.contains("flag --discovery-token-ca-cert-hash") && err.contains("md5:abc"),
        "{err}"
    );
}

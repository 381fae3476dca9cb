//! `kubeboot init`, every phase in kubeadm's order, against a real control plane.
//!
//! The kubelet cannot run here: the harness starts the static Pods from kubeboot's
//! manifests itself, a `systemctl` test double records the kubelet restart, and the test
//! registers the Node object the kubelet would register. Everything else is real.

mod cluster_support;
mod common;

use cluster_support::*;
use std::process::Command;

fn fake_systemctl(dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let fake = dir.join("bin/systemctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n# test double for systemd\necho \"$@\" >> {}/systemctl.log\n",
            dir.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap()
    )
}

#[test]
fn init_runs_every_phase_and_prints_the_join_command() {
    // With a controlPlaneEndpoint, so init can also offer control-plane joins.
    let cp = ControlPlane::start_with("127.0.0.1", true);
    let cfg = cp.config.to_str().unwrap().to_string();
    let fake_dir = tempfile::tempdir().unwrap();
    let path = fake_systemctl(fake_dir.path());

    // Preflight on this machine sees the running control plane and the manifests.
    let (ok, _, err) = cp.run(&["init", "phase", "preflight", "--config", &cfg]);
    assert!(
        !ok,
        "preflight must fail on a node that already runs a control plane"
    );
    assert!(err.contains(&format!("[ERROR Port-{}]", cp.port)), "{err}");
    assert!(
        err.contains("[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]"),
        "{err}"
    );
    assert!(err.contains("--ignore-preflight-errors"), "{err}");
    let out = cp.ok(&[
        "init",
        "phase",
        "preflight",
        "--config",
        &cfg,
        "--ignore-preflight-errors",
        "all",
    ]);
    assert!(out.contains(&format!("IGNORED Port-{}", cp.port)), "{out}");

    // The kubelet's Node registration, done by the test (see the module doc).
    let super_admin = kubeboot::kubeconfig::KubeConfig::parse(
        &std::fs::read_to_string(cp.etc("super-admin.conf")).unwrap(),
    )
    .unwrap();
    kubeboot::apiclient::ApiClient::from_kubeconfig(&super_admin)
        .unwrap()
        .create("/api/v1/nodes", &serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp-test"}}))
        .unwrap();

    let run = |extra: &[&str]| {
        let out = cp
            .kubeboot()
            .args([
                "init",
                "--config",
                &cfg,
                "--skip-phases",
                "preflight",
                "--node-wait",
                "30s",
            ])
            .args(extra)
            .env("PATH", &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "init failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let out = run(&[]);
    // Every phase ran, in kubeadm's order.
    let order = [
        "[certs]",
        "[kubeconfig]",
        "[etcd]",
        "[control-plane]",
        "[kubelet-start]",
        "[wait-control-plane]",
        "[upload-config]",
        "[mark-control-plane]",
        "[bootstrap-token]",
        "[kubelet-finalize]",
        "[addons]",
        "[cni]",
    ];
    let mut at = 0;
    for p in order {
        let i = out[at..]
            .find(p)
            .unwrap_or_else(|| panic!("{p} missing or out of order in:\n{out}"))
            + at;
        at = i;
    }
    assert!(
        out.contains("Your Kubernetes control-plane has initialized successfully!"),
        "{out}"
    );
    let join = out
        .lines()
        .find(|l| l.trim_start().starts_with("kubeboot join"))
        .unwrap_or_else(|| panic!("{out}"));
    let hash = cp.ok(&["certs", "ca-hash"]);
    assert!(
        join.contains(&format!("127.0.0.1:{}", cp.port))
            && join.contains(INIT_TOKEN)
            && join.contains(hash.trim()),
        "{join}"
    );
    assert_eq!(
        std::fs::read_to_string(fake_dir.path().join("systemctl.log")).unwrap(),
        // wait-control-plane asks whether the kubelet runs before it looks for
        // control-plane processes older than their manifests (none here).
        "show -p LoadState -p NeedDaemonReload kubelet.service\nrestart kubelet\nis-active --quiet kubelet\n"
    );
    assert!(cp.root().join("var/lib/kubelet/config.yaml").is_file());
    // admin.conf works after init (kubeadm:cluster-admins), checked with kubectl.
    let kubectl = common::tool("kubectl", "KUBEBOOT_TEST_KUBECTL", "bash .ci/setup");
    let (ok, nodes, err) = common::exec(
        Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(cp.etc("admin.conf"))
            .args(["get", "nodes", "-o", "jsonpath={.items[0].metadata.labels}"]),
    );
    assert!(
        ok && nodes.contains("node-role.kubernetes.io/control-plane"),
        "{nodes}{err}"
    );

    // A second init changes no certificate and converges.
    let before = common::snapshot(&cp.etc("pki"));
    let out = run(&[]);
    assert!(!out.contains("Generating"), "{out}");
    assert!(
        out.contains("[upload-certs] Skipping phase. Please see --upload-certs"),
        "{out}"
    );
    assert!(!out.contains("--control-plane"), "{out}");
    assert_eq!(common::snapshot(&cp.etc("pki")), before);

    // --upload-certs: the certificates go to the kubeadm-certs Secret and the
    // control-plane join command carries the key.
    let out = run(&["--upload-certs"]);
    assert!(
        out.contains("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\""),
        "{out}"
    );
    let cp_join = out
        .lines()
        .skip_while(|l| !l.contains("join any number of control-plane nodes"))
        .find(|l| l.contains("--control-plane --certificate-key"))
        .unwrap_or_else(|| panic!("{out}"));
    let key = cp_join.trim().rsplit(' ').next().unwrap();
    assert_eq!(key.len(), 64, "{cp_join}");
    assert!(out.contains("keep it secret"), "{out}");
    // A chosen key is used as given; token create prints the control-plane variant.
    let chosen = "0123456789abcdef".repeat(4);
    let out = run(&["--upload-certs", "--certificate-key", &chosen]);
    assert!(out.contains(&chosen), "{out}");
    let line = cp.ok(&[
        "token",
        "create",
        "--print-join-command",
        "--certificate-key",
        &chosen,
    ]);
    assert!(
        line.starts_with(&format!("kubeboot join 127.0.0.1:{} --token ", cp.port))
            && line
                .trim_end()
                .ends_with(&format!("--control-plane --certificate-key {chosen}")),
        "{line}"
    );
    let (ok, _, err) = cp.run(&[
        "token",
        "create",
        "--print-join-command",
        "--certificate-key",
        "xyz",
    ]);
    assert!(!ok && err.contains("--certificate-key"), "{err}");
    assert_eq!(common::snapshot(&cp.etc("pki")), before);

    let admin = kubeboot::apiclient::ApiClient::from_kubeconfig(&super_admin).unwrap();
    let secret_of = |id: &str| {
        let s = admin
            .get(&format!(
                "/api/v1/namespaces/kube-system/secrets/bootstrap-token-{id}"
            ))
            .unwrap_or_else(|e| panic!("bootstrap-token-{id}: {e}"));
        let field = |k: &str| {
            use base64::Engine;
            let b = s["data"][k].as_str().unwrap_or_default();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
        };
        (
            field("token-secret"),
            field("description"),
            field("expiration"),
        )
    };
    let hours_left = |expiration: &str| {
        let e =
            time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339)
                .unwrap();
        (e - time::OffsetDateTime::now_utc()).as_seconds_f64() / 3600.0
    };

    // --token / --token-ttl: init creates that token with that lifetime;
    // --skip-token-print keeps it out of the output.
    let out = run(&[
        "--token",
        "qwe123.0123456789qwerty",
        "--token-ttl",
        "2h",
        "--skip-token-print",
    ]);
    assert!(!out.contains("0123456789qwerty"), "{out}");
    let join = out
        .lines()
        .find(|l| l.trim_start().starts_with("kubeboot join"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(join.contains("--token <value withheld> "), "{join}");
    let (secret, _, expiration) = secret_of("qwe123");
    assert_eq!(secret, "0123456789qwerty");
    let left = hours_left(&expiration);
    assert!((1.9..=2.0).contains(&left), "{expiration}: {left}h left");
    // Without --skip-token-print the token is in the join command.
    let out = run(&["--token", "qwe123.0123456789qwerty"]);
    assert!(out.contains("--token qwe123.0123456789qwerty "), "{out}");
    let (ok, _, err) = cp.run(&["init", "--config", &cfg, "--token", "Bad.token"]);
    assert!(
        !ok && err.contains("bootstrapTokens[0].token") && err.contains("--token"),
        "{err}"
    );

    // --kubeconfig on the phases that talk to the cluster: with admin.conf moved away,
    // they work through the file given, and say which file is missing.
    std::fs::copy(cp.etc("admin.conf"), cp.etc("other.conf")).unwrap();
    std::fs::rename(cp.etc("admin.conf"), cp.etc("admin.conf.moved")).unwrap();
    let other = "/etc/kubernetes/other.conf";
    for phase in [
        &["bootstrap-token"][..],
        &["upload-config", "all"],
        &["upload-certs", "--upload-certs"],
        &["addon", "coredns"],
    ] {
        let mut args = vec!["init", "phase"];
        args.extend_from_slice(phase);
        args.extend(["--config", &cfg]);
        let (ok, _, err) = cp.run(&args);
        assert!(
            !ok && err.contains("admin.conf"),
            "{phase:?} without admin.conf: {err}"
        );
        args.extend(["--kubeconfig", other]);
        let out = cp.ok(&args);
        assert!(!out.is_empty(), "{phase:?}");
        let (ok, _, err) =
            cp.run(&[&args[..args.len() - 1], &["/etc/kubernetes/none.conf"]].concat());
        assert!(
            !ok && err.contains("/etc/kubernetes/none.conf") && err.contains("--kubeconfig"),
            "{phase:?}: {err}"
        );
    }
    std::fs::rename(cp.etc("admin.conf.moved"), cp.etc("admin.conf")).unwrap();

    // token create --config: the file's first bootstrap token and its settings.
    let token_cfg = cp.root().join("token.yaml");
    std::fs::write(
        &token_cfg,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n- token: cfgtok.0123456789cfgtok\n  description: from a file\n  ttl: 3h\n",
    )
    .unwrap();
    let out = cp.ok(&["token", "create", "--config", token_cfg.to_str().unwrap()]);
    assert_eq!(out.trim(), "cfgtok.0123456789cfgtok");
    let (secret, description, expiration) = secret_of("cfgtok");
    assert_eq!(secret, "0123456789cfgtok");
    assert_eq!(description, "from a file");
    let left = hours_left(&expiration);
    assert!((2.9..=3.0).contains(&left), "{expiration}: {left}h left");
    // A flag wins over the file.
    cp.ok(&["token", "delete", "cfgtok"]);
    cp.ok(&[
        "token",
        "create",
        "--config",
        token_cfg.to_str().unwrap(),
        "--ttl",
        "1h",
        "--description",
        "from a flag",
    ]);
    let (_, description, expiration) = secret_of("cfgtok");
    assert_eq!(description, "from a flag");
    let left = hours_left(&expiration);
    assert!((0.9..=1.0).contains(&left), "{expiration}: {left}h left");

    // skipPhases in the config file: a file that skips addon/kube-proxy leaves no
    // kube-proxy objects; init --dry-run says what the phases would do.
    let kubectl = common::tool("kubectl", "KUBEBOOT_TEST_KUBECTL", "bash .ci/setup");
    let k = |args: &[&str]| {
        common::exec(
            Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(cp.etc("admin.conf"))
                .args(["-n", "kube-system"])
                .args(args),
        )
    };
    let (ok, _, err) = k(&["delete", "daemonset/kube-proxy", "configmap/kube-proxy"]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&cp.config).unwrap();
    let with_skip = |phase: &str| {
        text.replacen(
            "bootstrapTokens:",
            &format!("skipPhases:\n  - {phase}\nbootstrapTokens:"),
            1,
        )
    };
    let skip_cfg = fake_dir.path().join("skip.yaml");
    std::fs::write(&skip_cfg, with_skip("addon/kube-proxy")).unwrap();
    let init_with = |file: &std::path::Path, extra: &[&str]| {
        cp.kubeboot()
            .args(["init", "--config", file.to_str().unwrap()])
            .args(["--skip-phases", "preflight", "--node-wait", "30s"])
            .args(extra)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let out = init_with(&skip_cfg, &["--dry-run"]);
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{plan}");
    assert!(
        plan.contains("[preflight] skipped (--skip-phases)\n"),
        "{plan}"
    );
    assert!(
        plan.contains("[certs] Would use the existing ca certificate "),
        "{plan}"
    );
    assert!(
        plan.contains("[addon] Would apply the CoreDNS addon\n[cni] Would apply flannel for pod network 10.244.0.0/16\n"),
        "{plan}"
    );
    assert!(!plan.contains("kube-proxy addon"), "{plan}");
    let out = init_with(&skip_cfg, &[]);
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(log.contains("Applied essential addon: CoreDNS"), "{log}");
    assert!(
        !log.contains("Applied essential addon: kube-proxy"),
        "{log}"
    );
    let (ok, _, err) = k(&["get", "daemonset/kube-proxy"]);
    assert!(
        !ok && err.contains("NotFound"),
        "kube-proxy came back: {err}"
    );
    let (ok, _, err) = k(&["get", "configmap/kube-proxy"]);
    assert!(
        !ok && err.contains("NotFound"),
        "kube-proxy came back: {err}"
    );

    // -o json: every line is one JSON event; the phases report in order and the end
    // says where to join, without the token's secret.
    let out = init_with(&skip_cfg, &["-o", "json"]);
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = common::json_events(&log);
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "phase")
        .map(|e| e["phase"].as_str().unwrap())
        .fold(Vec::new(), |mut v, p| {
            if v.last() != Some(&p) {
                v.push(p);
            }
            v
        });
    assert_eq!(
        phases,
        [
            "preflight",
            "certs",
            "kubeconfig",
            "etcd",
            "control-plane",
            "kubelet-start",
            "wait-control-plane",
            "upload-config",
            "kubelet",
            "upload-certs",
            "mark-control-plane",
            "bootstrap-token",
            "kubelet-finalize",
            "addons",
            "cni"
        ],
        "{log}"
    );
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{log}");
    assert_eq!(done["command"], "init");
    assert_eq!(done["tokenId"], INIT_TOKEN.split('.').next().unwrap());
    assert_eq!(done["caCertHash"], cp.ok(&["certs", "ca-hash"]).trim());
    assert!(
        !log.contains(INIT_TOKEN.split('.').nth(1).unwrap()),
        "{log}"
    );

    // A phase init does not have: refused before anything runs, naming file and line.
    let bad = with_skip("addon/kube-prox");
    let line = bad
        .lines()
        .position(|l| l.starts_with("skipPhases:"))
        .unwrap()
        + 1;
    std::fs::write(&skip_cfg, &bad).unwrap();
    let before = common::snapshot(&cp.etc(""));
    let out = init_with(&skip_cfg, &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "{}:{line}: skipPhases: \"addon/kube-prox\" is not a phase of init",
            skip_cfg.display()
        )) && err.contains("addon/kube-proxy"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
    assert_eq!(common::snapshot(&cp.etc("")), before);
}

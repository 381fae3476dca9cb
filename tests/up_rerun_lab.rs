//! Re-running `kubeboot up` against real peers: three lab nodes (systemd-nspawn, real
//! sshd), the real v1.20.2 kubelet on them, and the real control plane (etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler from kubeboot's own manifests)
//! serving on the lab bridge.
//!
//! The issue this proves: "A re-run of `up` on a healthy cluster changes nothing; adding a
//! host to the file and re-running joins just that host."
//!
//! `init` cannot finish inside a lab node (no control-plane images can be pulled here, so
//! the node's kubelet cannot run the static Pods; tests/up_lab.rs shows where it stops).
//! So node 1, the inventory's control plane, is made to look the way a finished `init`
//! leaves it, with a TEST DOUBLE for the static Pods: its /etc/kubernetes/admin.conf and
//! /etc/kubernetes/pki are those of the control plane running on this machine, and the
//! inventory's `controlPlaneEndpoint` names that API server on the bridge. Everything
//! else is real: `up` runs as the CLI, prepares every node over SSH, finds node 1
//! initialized through its admin.conf, and the workers' kubelets perform the TLS bootstrap
//! with the token `up` creates, their CSRs approved and signed by the controller-manager.

mod cluster_support;
mod common;
mod lab_support;
mod up_support;

use cluster_support::{ControlPlane, lab_inventory_with_real_kubelet};
use kubeboot::apiclient::ApiClient;
use lab_support::{LabEnv, RunningLab, apt_proxy, lab_prerequisites, text};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use up_support::*;

const LAB: &str = "kbrerun";
const SUBNET: &str = "10.213.56.0/24";
/// The lab bridge: this machine, as the nodes see it.
const BRIDGE: &str = "10.213.56.1";
const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

/// The inventory `up` gets: the first `hosts` lab nodes, and the control plane's endpoint
/// on the bridge, where the workers reach the API server of the test double.
fn inventory_variant(full: &Path, out: &Path, hosts: usize, endpoint: &str) -> PathBuf {
    let mut v: Value = serde_saphyr::from_str(&std::fs::read_to_string(full).unwrap()).unwrap();
    let list = v["spec"]["hosts"].as_array_mut().unwrap();
    list.truncate(hosts);
    v["spec"]["controlPlaneEndpoint"] = Value::String(endpoint.to_string());
    // These tests are about joining and re-running; the pod network is tests/cluster_lab.rs'.
    v["spec"]["cni"] = serde_json::json!({"name": "none"});
    std::fs::write(out, serde_saphyr::to_string(&v).unwrap()).unwrap();
    out.to_path_buf()
}

/// Names of the CSRs in the cluster.
fn csr_names(admin: &ApiClient) -> Vec<String> {
    let mut v: Vec<String> = admin
        .list(CSRS, None)
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The one CSR that is new since `before`; checks it was made with a bootstrap token other
/// than the init token, approved, and signed into the client certificate node `i` uses.
/// Returns the token id.
fn new_bootstrap_csr(admin: &ApiClient, before: &[String], lab: &RunningLab, i: usize) -> String {
    let csrs = admin.list(CSRS, None).unwrap();
    let new: Vec<&Value> = csrs
        .iter()
        .filter(|c| !before.iter().any(|b| c["metadata"]["name"] == b.as_str()))
        .collect();
    assert_eq!(new.len(), 1, "exactly one new CSR expected: {new:#?}");
    let csr = new[0];
    let user = csr["spec"]["username"].as_str().unwrap();
    let id = user
        .strip_prefix("system:bootstrap:")
        .unwrap_or_else(|| panic!("not made with a bootstrap token: {csr}"));
    assert_ne!(
        id, "abcdef",
        "the join must use up's own token, not init's: {csr}"
    );
    assert!(
        csr["status"]["conditions"].to_string().contains("Approved"),
        "{csr}"
    );
    use base64::Engine;
    let cert = base64::engine::general_purpose::STANDARD
        .decode(csr["status"]["certificate"].as_str().expect("signed"))
        .unwrap();
    let cert = String::from_utf8(cert).unwrap();
    let on_node = lab.ssh_ok(i, "cat /var/lib/kubelet/pki/kubelet-client-current.pem");
    assert!(
        on_node.contains(cert.trim()),
        "node {i}'s kubelet client certificate is not the one signed for this CSR"
    );
    id.to_string()
}

/// kubelet.conf and the kubelet's client certificate of node `i`, as checksums.
const JOINED_STATE: &str = "sha256sum /etc/kubernetes/kubelet.conf $(readlink -f /var/lib/kubelet/pki/kubelet-client-current.pem)";

#[test]
fn up_rerun_changes_nothing_and_a_new_host_joins_alone() {
    if !lab_prerequisites(true) {
        return;
    }
    let env = LabEnv::new();
    let proxy = apt_proxy();
    let lab = env.up(LAB, SUBNET, 3, &["--apt-proxy", &proxy]);
    let names: Vec<String> = (0..3)
        .map(|i| lab.inventory().spec.hosts[i].name.clone())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let full = lab_inventory_with_real_kubelet(&env.lab_dir(LAB).join("cluster.yaml"), dir.path());

    // The real control plane on the bridge, with init's token and uploaded config.
    let cp = ControlPlane::start_on(BRIDGE);
    let cfg = cp.config.to_str().unwrap().to_string();
    cp.ok(&["init", "phase", "bootstrap-token", "--config", &cfg]);
    cp.ok(&["init", "phase", "upload-config", "all", "--config", &cfg]);
    let admin_kc = kubeboot::kubeconfig::KubeConfig::parse(
        &std::fs::read_to_string(cp.etc("admin.conf")).unwrap(),
    )
    .unwrap();
    let admin = ApiClient::from_kubeconfig(&admin_kc).unwrap();
    assert_eq!(token_ids(&admin), ["abcdef"]);

    let endpoint = format!("{BRIDGE}:{}", cp.port);
    let two = inventory_variant(&full, &dir.path().join("two.yaml"), 2, &endpoint);
    let three = inventory_variant(&full, &dir.path().join("three.yaml"), 3, &endpoint);
    make_node_look_initialized(&two, &cp);
    let kubeconfig_out = dir.path().join("out/admin.conf");
    let up = |inv: &Path| {
        let t0 = Instant::now();
        let out = env.kubeboot(&[
            "up",
            "-f",
            inv.to_str().unwrap(),
            "--join-timeout",
            "3m",
            // The lab reaches no registry with the images; the harness runs the binaries.
            "--ignore-preflight-errors",
            "ImagePull",
            "--kubeconfig-out",
            kubeconfig_out.to_str().unwrap(),
        ]);
        let took = t0.elapsed();
        let log = text(&out);
        assert!(
            out.status.success(),
            "up failed ({}):\n{log}\nkube-apiserver:\n{}\nkube-controller-manager:\n{}",
            out.status,
            cp.log_tail("kube-apiserver"),
            cp.log_tail("kube-controller-manager")
        );
        (log, took)
    };

    // 1. Nodes 1 and 2: init is skipped, node 2 joins.
    let csrs0 = csr_names(&admin);
    let rv0 = secrets_version(&admin);
    let (log1, took1) = up(&two);
    eprintln!(
        "[figure] up, first run (2 hosts: prepare both, init skipped, 1 join): {:.1}s",
        took1.as_secs_f64()
    );
    let rows = summary(&log1);
    assert_eq!(rows.len(), 2, "{log1}");
    assert!(
        log1.contains("Already initialized: the API server answers with admin.conf and init's last phases are done; skipping init"),
        "{log1}"
    );
    let r1 = row(&rows, &names[0], &log1);
    assert_eq!(
        (r1.role.as_str(), r1.result.as_str()),
        ("control-plane", "already initialized"),
        "{log1}"
    );
    let r2 = row(&rows, &names[1], &log1);
    assert!(r2.result.starts_with("joined in "), "{log1}");
    // Init really was skipped: none of its files appeared on node 1.
    lab.ssh_ok(
        1,
        "test -z \"$(ls -A /etc/kubernetes/manifests 2>/dev/null)\" && test ! -e /etc/kubernetes/kubelet.conf && test ! -e /var/lib/kubelet/config.yaml",
    );
    lab.ssh_ok(
        2,
        "test -f /etc/kubernetes/kubelet.conf && test ! -e /etc/kubernetes/bootstrap-kubelet.conf",
    );
    let joined2 = lab.ssh_ok(2, JOINED_STATE);
    let id1 = new_bootstrap_csr(&admin, &csrs0, &lab, 2);
    assert_eq!(
        token_ids(&admin),
        ["abcdef"],
        "up's join token {id1} must be deleted when up ends"
    );
    let written =
        kubeboot::kubeconfig::KubeConfig::parse(&std::fs::read_to_string(&kubeconfig_out).unwrap())
            .unwrap();
    assert_eq!(written.to_yaml(), admin_kc.to_yaml());
    assert_eq!(
        std::fs::metadata(&kubeconfig_out)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(
        log1.contains("The cluster is up; its nodes become Ready once you install a pod network"),
        "{log1}"
    );

    // 2. The same file again: nothing changes.
    let t = format!("bootstrap-token-{id1}");
    assert_eq!(
        token_events(&admin, &rv0),
        [("ADDED".to_string(), t.clone()), ("DELETED".to_string(), t)],
        "one token for node 2's join, deleted afterwards"
    );
    let csrs1 = csr_names(&admin);
    let rv1 = secrets_version(&admin);
    let (log2, took2) = up(&two);
    eprintln!(
        "[figure] up, re-run unchanged (2 hosts, nothing to do): {:.1}s",
        took2.as_secs_f64()
    );
    let rows = summary(&log2);
    assert_eq!(rows.len(), 2, "{log2}");
    for (h, r) in &rows {
        assert_eq!(r.prepare, "ok (0 changed)", "prepare changed {h}:\n{log2}");
    }
    assert_eq!(
        row(&rows, &names[0], &log2).result,
        "already initialized",
        "{log2}"
    );
    assert_eq!(
        row(&rows, &names[1], &log2).result,
        "already joined",
        "{log2}"
    );
    assert!(!log2.contains("joined in"), "{log2}");
    assert_eq!(csr_names(&admin), csrs1, "a re-run made a CSR");
    assert_eq!(token_ids(&admin), ["abcdef"], "a re-run left a token");
    assert_eq!(
        token_events(&admin, &rv1),
        [],
        "a re-run with nothing to join must not even create a token"
    );
    assert_eq!(lab.ssh_ok(2, JOINED_STATE), joined2, "node 2 changed");

    // The same re-run with -o json: a pure stream of JSON events (prepare's per host,
    // up's stages, the result table and the end), at most 3 SSH round trips per host.
    let t = Instant::now();
    let out = env.kubeboot(&[
        "up",
        "-f",
        two.to_str().unwrap(),
        "-o",
        "json",
        "--ignore-preflight-errors",
        "ImagePull",
        "--kubeconfig-out",
        kubeconfig_out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    eprintln!(
        "[figure] up -o json, re-run unchanged: {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let events = common::json_events(&stdout);
    let kinds: std::collections::BTreeSet<&str> =
        events.iter().filter_map(|e| e["event"].as_str()).collect();
    for k in ["stage", "host-done", "health", "result", "done"] {
        assert!(kinds.contains(k), "no {k} event in:\n{stdout}");
    }
    for e in events.iter().filter(|e| e["event"] == "host-done") {
        let trips = e["roundTrips"].as_u64().unwrap();
        eprintln!(
            "[figure] no-op re-run, {}: {trips} SSH round trips",
            e["host"]
        );
        assert!(trips <= 3, "{e}");
    }
    let result = events.iter().find(|e| e["event"] == "result").unwrap();
    assert_eq!(result["hosts"][1]["result"], "already joined", "{stdout}");
    assert_eq!(events.last().unwrap()["event"], "done", "{stdout}");

    // The plan for the file with node 3 added says exactly that, and changes nothing.
    let plan = env.kubeboot(&["up", "-f", three.to_str().unwrap(), "--plan"]);
    let plan = text(&plan);
    assert!(
        plan.contains("kbrerun-node1: already initialized")
            && plan.contains("kbrerun-node2: already joined")
            && plan.contains("kbrerun-node3: would join as a worker through https://"),
        "{plan}"
    );
    assert_eq!(csr_names(&admin), csrs1, "--plan made a CSR");

    // 3. Node 3 added to the file: it alone joins.
    let rv2 = secrets_version(&admin);
    let (log3, took3) = up(&three);
    eprintln!(
        "[figure] up, node 3 added (3 hosts: prepare all, 1 join): {:.1}s",
        took3.as_secs_f64()
    );
    let table: Vec<&str> = log3
        .lines()
        .skip_while(|l| !(l.starts_with("HOST") && l.ends_with("RESULT")))
        .take_while(|l| !l.starts_with("total "))
        .collect();
    eprintln!(
        "[figure] summary of the run that added node 3:\n{}",
        table.join("\n")
    );
    let rows = summary(&log3);
    assert_eq!(rows.len(), 3, "{log3}");
    for h in &names[..2] {
        // The one change: node 3 joins the marked /etc/hosts block of the others.
        assert_eq!(
            row(&rows, h, &log3).prepare,
            "ok (1 changed)",
            "prepare changed {h}:\n{log3}"
        );
        assert!(
            log3.contains(&format!("{h}: changed: inventory hosts in /etc/hosts")),
            "{log3}"
        );
    }
    let r3 = row(&rows, &names[2], &log3);
    assert!(
        r3.prepare.starts_with("ok (") && r3.prepare != "ok (0 changed)",
        "node 3 was not prepared:\n{log3}"
    );
    assert_eq!(r3.role, "worker");
    assert!(r3.result.starts_with("joined in "), "{log3}");
    assert_eq!(
        row(&rows, &names[0], &log3).result,
        "already initialized",
        "{log3}"
    );
    assert_eq!(
        row(&rows, &names[1], &log3).result,
        "already joined",
        "{log3}"
    );
    let id3 = new_bootstrap_csr(&admin, &csrs1, &lab, 3);
    assert_ne!(id3, id1, "each up makes a fresh token");
    assert_eq!(token_ids(&admin), ["abcdef"], "up left token {id3}");
    assert_eq!(lab.ssh_ok(2, JOINED_STATE), joined2, "node 2 changed");
    lab.ssh_ok(3, "test -f /etc/kubernetes/kubelet.conf");
    let t = format!("bootstrap-token-{id3}");
    assert_eq!(
        token_events(&admin, &rv2),
        [("ADDED".to_string(), t.clone()), ("DELETED".to_string(), t)],
        "one token for node 3's join, deleted afterwards"
    );
}

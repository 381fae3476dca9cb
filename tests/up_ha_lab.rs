//! `kubeboot up` joining a second control plane for real: three lab nodes
//! (systemd-nspawn, real sshd, the real v1.20.2 kubelet), node 1 and node 2 control
//! planes, node 3 a worker, and the real control plane (etcd 3.5, kube-apiserver,
//! kube-controller-manager, kube-scheduler from kubeboot's own manifests) serving on the
//! lab bridge with `controlPlaneEndpoint` = that API server.
//!
//! What `up` does for node 2 is all real: it copies the shared certificates from node 1
//! over SSH, writes node 2's own certificates, kubeconfigs and static Pod manifests, adds
//! node 2's etcd member as a learner to the running etcd through its JSON gateway, the
//! real kubelet on node 2 performs the TLS bootstrap, `up` promotes the member once it is
//! in sync, waits for node 2's own API server and labels and taints node 2's Node.
//! `up --plan` before names that join and changes nothing; a re-run changes nothing; and
//! a control-plane join that stopped before mark-control-plane (simulated by taking the
//! label and taint off) is finished by a re-run, not reported "already joined".
//!
//! TEST DOUBLES, named as such, for what cannot run in a lab node (no container images
//! can be pulled here, so no kubelet can run static Pods):
//! - node 1 is made to look initialized as in tests/up_rerun_lab.rs: its admin.conf and
//!   PKI are those of the control plane on this machine, which stands in for node 1's
//!   static Pods; an etcd "mirror Pod" (with the client-URL annotation a kubelet's mirror
//!   Pod carries) tells the joining control plane where that etcd is, and a Node object
//!   for node 1 keeps the pod garbage collector from deleting the mirror Pod as orphaned.
//! - for node 2's static Pods ONLY, the test acts as node 2's kubelet: when `up` writes
//!   /etc/kubernetes/manifests/etcd.yaml and kube-apiserver.yaml on node 2, the test
//!   starts their `command`s inside node 2 with `systemd-run`, with the real etcd 3.5 and
//!   kube-apiserver v1.20.2 binaries bound read-only into the nodes (`lab up
//!   --artifacts`). The only change to the command: `--insecure-port=0`, which v1.20
//!   needs to not serve plain HTTP (1.24+ removed it). Everything else of node 2's
//!   kubelet (bootstrap, Node registration) is the real kubelet.

mod cluster_support;
mod lab_support;
mod up_support;

use cluster_support::{ControlPlane, REJECTED_BY_1_20, bin_dir, lab_inventory_with_real_kubelet};
use kubeboot::apiclient::ApiClient;
use lab_support::{LabEnv, RunningLab, apt_proxy, lab_prerequisites, text};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use up_support::*;

const LAB: &str = "kbha";
const SUBNET: &str = "10.213.58.0/24";
/// The lab bridge: this machine, as the nodes see it.
const BRIDGE: &str = "10.213.58.1";

/// The inventory `up` gets: node 1 and node 2 control planes, node 3 a worker, and the
/// stable endpoint: the API server of the test double on the bridge.
fn ha_inventory(full: &Path, out: &Path, endpoint: &str) -> PathBuf {
    let mut v: Value = serde_saphyr::from_str(&std::fs::read_to_string(full).unwrap()).unwrap();
    let hosts = v["spec"]["hosts"].as_array_mut().unwrap();
    assert_eq!(hosts.len(), 3);
    hosts[0]["role"] = "control-plane".into();
    hosts[1]["role"] = "control-plane".into();
    hosts[2]["role"] = "worker".into();
    v["spec"]["controlPlaneEndpoint"] = Value::String(endpoint.to_string());
    // These tests are about joining and re-running; the pod network is tests/cluster_lab.rs'.
    v["spec"]["cni"] = serde_json::json!({"name": "none"});
    std::fs::write(out, serde_saphyr::to_string(&v).unwrap()).unwrap();
    out.to_path_buf()
}

/// The deepest directory containing both paths.
fn common_ancestor(a: &Path, b: &Path) -> PathBuf {
    let mut c = PathBuf::new();
    for (x, y) in a.components().zip(b.components()) {
        if x != y {
            break;
        }
        c.push(x);
    }
    c
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The systemd unit the kubelet double runs a static Pod's command as, on node 2.
fn unit(name: &str) -> String {
    format!("kubeboot-test-double-{name}")
}

/// TEST DOUBLE for node `i`'s kubelet, static Pods only: waits (polling over SSH) for
/// the etcd and kube-apiserver manifests `up` writes on the node, and runs each one's
/// `command` in the node with `systemd-run`, restarted like a Pod with restartPolicy
/// Always, with the real binary from the artifacts bind mount (`bins`: component ->
/// path inside the node). The API server is started after etcd. Returns, per component,
/// when it was started (seconds since `t0`).
fn act_as_static_pod_kubelet(
    lab: &RunningLab,
    i: usize,
    bins: &[(&str, String)],
    stop: &AtomicBool,
    t0: Instant,
) -> Vec<(String, f64)> {
    let mut started = Vec::new();
    for (name, bin) in bins {
        let manifest = format!("/etc/kubernetes/manifests/{name}.yaml");
        let pod: Value = loop {
            if stop.load(Ordering::Relaxed) {
                return started;
            }
            let out = lab.ssh(i, &format!("cat {manifest} 2>/dev/null"));
            if out.status.success()
                && let Ok(v) =
                    serde_saphyr::from_str::<Value>(&String::from_utf8_lossy(&out.stdout))
                && v["spec"]["containers"][0]["command"].is_array()
            {
                break v;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let command: Vec<String> = pod["spec"]["containers"][0]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            &command[0], name,
            "the manifest's command starts with the binary"
        );
        let mut args: Vec<String> = command[1..]
            .iter()
            .filter(|a| {
                !REJECTED_BY_1_20
                    .iter()
                    .any(|(c, f, _)| c == name && a.starts_with(f))
            })
            .cloned()
            .collect();
        if *name == "kube-apiserver" {
            args.push("--insecure-port=0".into());
        }
        let cmd = format!(
            "systemd-run --unit={} --property=Restart=always --property=RestartSec=3 {} {}",
            unit(name),
            shell_quote(bin),
            args.iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        );
        lab.ssh_ok(i, &cmd);
        eprintln!(
            "test double (node {i}'s kubelet): started {name} from {manifest} after {:.1}s",
            t0.elapsed().as_secs_f64()
        );
        started.push((name.to_string(), t0.elapsed().as_secs_f64()));
    }
    started
}

/// The last lines the kubelet double's unit for `name` logged on node `i`.
fn unit_log(lab: &RunningLab, i: usize, name: &str) -> String {
    text(&lab.ssh(
        i,
        &format!(
            "systemctl is-active {u}; journalctl -u {u} --no-pager -o cat | tail -n 15 | cut -c1-300",
            u = unit(name)
        ),
    ))
}

fn kubectl() -> PathBuf {
    std::env::var("KUBEBOOT_TEST_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| bin_dir("KUBEBOOT_K8S_BIN").join("kubectl"))
}

/// kubectl's output; panics unless it succeeds.
fn kubectl_ok(args: &[&str]) -> String {
    let out = Command::new(kubectl())
        .args(args)
        .output()
        .expect("kubectl");
    assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `up` may change on a node, as checksums: kubelet.conf, the kubelet's client
/// certificate, the static Pod manifests and the PKI.
const NODE_STATE: &str = "cd /etc/kubernetes && sha256sum kubelet.conf $(readlink -f /var/lib/kubelet/pki/kubelet-client-current.pem) $(find manifests pki -type f 2>/dev/null | sort)";

#[test]
fn up_joins_a_second_control_plane_and_a_worker() {
    if !lab_prerequisites(true) {
        return;
    }
    // The etcd and Kubernetes binaries, bound read-only into the nodes.
    let etcd_bin = std::fs::canonicalize(bin_dir("KUBEBOOT_ETCD35_BIN")).unwrap();
    let k8s_bin = std::fs::canonicalize(bin_dir("KUBEBOOT_K8S_BIN")).unwrap();
    let artifacts = common_ancestor(&etcd_bin, &k8s_bin);
    let in_node = |dir: &Path, file: &str| {
        Path::new(kubeboot::lab::layout::ARTIFACTS_MOUNT)
            .join(dir.strip_prefix(&artifacts).unwrap())
            .join(file)
            .display()
            .to_string()
    };
    let bins = [
        ("etcd", in_node(&etcd_bin, "etcd")),
        ("kube-apiserver", in_node(&k8s_bin, "kube-apiserver")),
    ];

    let env = LabEnv::new();
    let proxy = apt_proxy();
    let lab = env.up(
        LAB,
        SUBNET,
        3,
        &[
            "--apt-proxy",
            &proxy,
            "--artifacts",
            artifacts.to_str().unwrap(),
        ],
    );
    let names: Vec<String> = (0..3)
        .map(|i| lab.inventory().spec.hosts[i].name.clone())
        .collect();
    let node2_ip = lab.address(2).to_string();
    for (_, b) in &bins {
        lab.ssh_ok(2, &format!("test -x {b}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let full = lab_inventory_with_real_kubelet(&env.lab_dir(LAB).join("cluster.yaml"), dir.path());

    // The real control plane on the bridge, with controlPlaneEndpoint, init's token and
    // uploaded config.
    let cp = ControlPlane::start_with(BRIDGE, true);
    let cfg = cp.config.to_str().unwrap().to_string();
    cp.ok(&["init", "phase", "bootstrap-token", "--config", &cfg]);
    cp.ok(&["init", "phase", "upload-config", "all", "--config", &cfg]);
    let admin_kc = kubeboot::kubeconfig::KubeConfig::parse(
        &std::fs::read_to_string(cp.etc("admin.conf")).unwrap(),
    )
    .unwrap();
    let admin = ApiClient::from_kubeconfig(&admin_kc).unwrap();
    assert_eq!(token_ids(&admin), ["abcdef"]);

    // TEST DOUBLE for node 1's kubelet: its Node and its etcd mirror Pod, whose annotation
    // tells a joining control plane where etcd is (the harness etcd, on the bridge). The
    // Node keeps the pod garbage collector from deleting the Pod as bound to no node;
    // the toleration keeps the Node's NotReady taints from evicting it.
    admin
        .create(
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": names[0]}}),
        )
        .unwrap();
    let mirror = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("etcd-{}", names[0]), "namespace": "kube-system",
            "labels": {"component": "etcd", "tier": "control-plane"},
            "annotations": {"kubeadm.kubernetes.io/etcd.advertise-client-urls":
                format!("https://{BRIDGE}:{}", cp.etcd_client_port)}},
        "spec": {"nodeName": names[0], "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "etcd", "image": "registry.k8s.io/etcd:3.5.15-0"}]}});
    let start = Instant::now();
    // (Unlike a real mirror Pod it passes ServiceAccount admission: wait for the
    // controller-manager to create kube-system/default.)
    while let Err(e) = admin.create("/api/v1/namespaces/kube-system/pods", &mirror) {
        assert!(start.elapsed() < Duration::from_secs(60), "{e}");
        std::thread::sleep(Duration::from_millis(500));
    }

    let endpoint = format!("{BRIDGE}:{}", cp.port);
    let inv = ha_inventory(&full, &dir.path().join("ha.yaml"), &endpoint);
    make_node_look_initialized(&inv, &cp);
    let inv_s = inv.to_str().unwrap().to_string();
    let kubeconfig_out = dir.path().join("out/admin.conf");
    let up_args = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "up",
            "-f",
            &inv_s,
            "--join-timeout",
            "3m",
            // The lab reaches no registry with the images; the harness runs the binaries.
            "--ignore-preflight-errors",
            "ImagePull",
            "--kubeconfig-out",
            kubeconfig_out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run_up = |extra: &[&'static str]| {
        let a = up_args(extra);
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        let t0 = Instant::now();
        let out = env.kubeboot(&a);
        (out, t0.elapsed())
    };

    // 1. The plan names node 2's control-plane join, and changes nothing.
    let rv_plan = secrets_version(&admin);
    let (out, _) = run_up(&["--plan"]);
    let plan = text(&out);
    assert!(out.status.success(), "up --plan failed:\n{plan}");
    assert!(
        plan.contains(&format!(
            "{}: would join as a control plane through https://{endpoint}: the shared certificates copied over SSH from {}",
            names[1], names[0]
        )),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "{}: would join as a worker through https://{endpoint}",
            names[2]
        )),
        "{plan}"
    );
    assert!(plan.contains("(plan: nothing was changed)"), "{plan}");
    for i in [2, 3] {
        lab.ssh_ok(
            i,
            "test ! -e /etc/kubernetes/pki && test ! -e /etc/kubernetes/kubelet.conf && test ! -e /etc/kubernetes/manifests/etcd.yaml",
        );
    }
    assert_eq!(token_events(&admin, &rv_plan), [], "the plan made a token");

    // 2. up: init skipped, node 2 joins as a control plane, node 3 as a worker. Meanwhile
    //    the test runs node 2's static Pods (see the module doc).
    let rv0 = secrets_version(&admin);
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let ((out, took), started) = std::thread::scope(|s| {
        let kubelet = s.spawn(|| act_as_static_pod_kubelet(&lab, 2, &bins, &stop, t0));
        let r = run_up(&[]);
        stop.store(true, Ordering::Relaxed);
        (r, kubelet.join().expect("kubelet double"))
    });
    let log1 = text(&out);
    assert!(
        out.status.success(),
        "up failed ({}):\n{log1}\nstarted by the kubelet double: {started:?}\nnode 2 etcd:\n{}\nnode 2 kube-apiserver:\n{}\nharness etcd:\n{}\nharness kube-apiserver:\n{}",
        out.status,
        unit_log(&lab, 2, "etcd"),
        unit_log(&lab, 2, "kube-apiserver"),
        cp.log_tail("etcd"),
        cp.log_tail("kube-apiserver"),
    );
    eprintln!("{log1}");
    eprintln!(
        "[figure] up, first run (3 hosts: prepare all, init skipped, node 2 joins as a control plane, node 3 as a worker): {:.1}s",
        took.as_secs_f64()
    );
    assert_eq!(started.len(), 2, "{started:?}");
    let rows = summary(&log1);
    assert_eq!(rows.len(), 3, "{log1}");
    let r1 = row(&rows, &names[0], &log1);
    assert_eq!(
        (r1.role.as_str(), r1.result.as_str()),
        ("control-plane", "already initialized"),
        "{log1}"
    );
    let r2 = row(&rows, &names[1], &log1);
    assert_eq!(r2.role, "control-plane", "{log1}");
    assert!(
        r2.result.starts_with("joined as a control plane in "),
        "{log1}"
    );
    if let Some(secs) = r2
        .result
        .strip_prefix("joined as a control plane in ")
        .and_then(|s| s.strip_suffix('s'))
    {
        eprintln!("[figure] node 2's control-plane join, as up reports it: {secs}s");
    }
    let r3 = row(&rows, &names[2], &log1);
    assert_eq!(r3.role, "worker", "{log1}");
    assert!(r3.result.starts_with("joined in "), "{log1}");
    for phase in [
        "[copy-certs] Copied 8 shared certificate and key files",
        "[check-etcd]",
        "[etcd] Adding a new etcd member as a learner",
        "promoted to a voting member",
        "[wait-control-plane]",
        "[mark-control-plane]",
    ] {
        assert!(log1.contains(phase), "missing {phase:?} in:\n{log1}");
    }
    assert!(
        log1.contains("The cluster is up; its nodes become Ready once you install a pod network"),
        "{log1}"
    );
    lab.ssh_ok(3, "test -f /etc/kubernetes/kubelet.conf");

    // The shared certificates on node 2 are the first control plane's, keys 0600.
    for rel in kubeboot::copycerts::SHARED {
        let theirs = std::fs::read(cp.etc(&format!("pki/{rel}"))).unwrap();
        use base64::Engine;
        let ours = base64::engine::general_purpose::STANDARD
            .decode(lab.ssh_ok(2, &format!("base64 -w0 /etc/kubernetes/pki/{rel}")))
            .unwrap();
        assert_eq!(ours, theirs, "{rel} differs on node 2");
        let mode = lab.ssh_ok(2, &format!("stat -c %a /etc/kubernetes/pki/{rel}"));
        assert_eq!(
            mode,
            if rel.ends_with(".key") { "600" } else { "644" },
            "{rel}"
        );
    }

    // etcd: two started voting members, both healthy.
    let both = format!(
        "https://{BRIDGE}:{},https://{node2_ip}:2379",
        cp.etcd_client_port
    );
    let (ok, list, e) = cp.etcdctl(&both, &["member", "list", "-w", "json"]);
    assert!(ok, "{e}");
    let v: Value = serde_json::from_str(&list).unwrap();
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{list}");
    for m in members {
        assert!(m["isLearner"].is_null() || m["isLearner"] == false, "{m}");
        assert!(m["name"].is_string(), "{m}");
    }
    assert!(list.contains(&names[1]), "{list}");
    let (ok, o, e) = cp.etcdctl(&both, &["endpoint", "health"]);
    assert!(ok, "{o}{e}");

    // Node 2's own API server: ready, and the same cluster: written through it, read
    // through the first.
    let node2_admin = dir.path().join("node2-admin.conf");
    std::fs::write(
        &node2_admin,
        lab.ssh_ok(2, "cat /etc/kubernetes/admin.conf"),
    )
    .unwrap();
    let kc = node2_admin.to_str().unwrap();
    let node2_url = format!("https://{node2_ip}:6443");
    assert_eq!(
        kubectl_ok(&[
            "--kubeconfig",
            kc,
            "--server",
            &node2_url,
            "get",
            "--raw",
            "/readyz"
        ])
        .trim(),
        "ok"
    );
    kubectl_ok(&[
        "--kubeconfig",
        kc,
        "--server",
        &node2_url,
        "create",
        "configmap",
        "written-through-node2",
        "-n",
        "default",
    ]);
    admin
        .get("/api/v1/namespaces/default/configmaps/written-through-node2")
        .expect("the first API server reads what node 2's wrote");

    // Node 2 is marked as a control plane.
    let node = admin.get(&format!("/api/v1/nodes/{}", names[1])).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"], "",
        "{node}"
    );
    assert!(
        node["spec"]["taints"]
            .to_string()
            .contains("node-role.kubernetes.io/control-plane"),
        "{node}"
    );

    // One token for the joins, deleted when up ended.
    assert_eq!(token_ids(&admin), ["abcdef"], "up left its token");
    let events = token_events(&admin, &rv0);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[0].0.as_str(), events[1].0.as_str()),
        ("ADDED", "DELETED"),
        "{events:?}"
    );
    assert_eq!(events[0].1, events[1].1, "{events:?}");

    // 3. The same file again: nothing changes.
    let state2 = lab.ssh_ok(2, NODE_STATE);
    let state3 = lab.ssh_ok(3, "sha256sum /etc/kubernetes/kubelet.conf");
    let rv1 = secrets_version(&admin);
    let (out, took2) = run_up(&[]);
    let log2 = text(&out);
    assert!(out.status.success(), "re-run failed:\n{log2}");
    eprintln!(
        "[figure] up, re-run unchanged (3 hosts, nothing to do): {:.1}s",
        took2.as_secs_f64()
    );
    let rows = summary(&log2);
    assert_eq!(rows.len(), 3, "{log2}");
    for (h, r) in &rows {
        assert_eq!(r.prepare, "ok (0 changed)", "prepare changed {h}:\n{log2}");
    }
    assert_eq!(
        row(&rows, &names[0], &log2).result,
        "already initialized",
        "{log2}"
    );
    for h in &names[1..] {
        assert_eq!(row(&rows, h, &log2).result, "already joined", "{log2}");
    }
    assert!(!log2.contains("joined in"), "{log2}");
    assert!(!log2.contains("joined as a control plane in"), "{log2}");
    assert_eq!(
        token_events(&admin, &rv1),
        [],
        "a re-run with nothing to join must not even create a token"
    );
    assert_eq!(lab.ssh_ok(2, NODE_STATE), state2, "node 2 changed");
    assert_eq!(
        lab.ssh_ok(3, "sha256sum /etc/kubernetes/kubelet.conf"),
        state3,
        "node 3 changed"
    );
    let (ok, list, e) = cp.etcdctl(&both, &["member", "list"]);
    assert!(ok, "{e}");
    assert_eq!(list.lines().count(), 2, "{list}");
    let (out, _) = run_up(&["--plan"]);
    let plan = text(&out);
    assert!(
        plan.contains(&format!("{}: already joined as a control plane", names[1]))
            && plan.contains(&format!("{}: already joined", names[2])),
        "{plan}"
    );

    // 4. A control-plane join that stopped before its last step, mark-control-plane (as
    //    when node 2's API server takes longer than the timeout to come up): simulated by
    //    taking the label and taint off node 2's Node. A re-run must finish that join,
    //    not call node 2 "already joined".
    let admin_conf = cp.etc("admin.conf");
    let cp_kc = admin_conf.to_str().unwrap();
    kubectl_ok(&[
        "--kubeconfig",
        cp_kc,
        "label",
        "node",
        &names[1],
        "node-role.kubernetes.io/control-plane-",
    ]);
    kubectl_ok(&[
        "--kubeconfig",
        cp_kc,
        "taint",
        "node",
        &names[1],
        "node-role.kubernetes.io/control-plane:NoSchedule-",
    ]);
    // The plan agrees with what the run will do.
    let (out, _) = run_up(&["--plan"]);
    let plan = text(&out);
    assert!(
        plan.contains(&format!("{}: would join as a control plane", names[1]))
            && plan.contains(&format!("{}: already joined", names[2]))
            && plan.contains(&format!("{}: already initialized", names[0])),
        "{plan}"
    );
    let rv2 = secrets_version(&admin);
    let (out, took3) = run_up(&[]);
    let log3 = text(&out);
    assert!(
        out.status.success(),
        "re-run after a stopped join failed:\n{log3}"
    );
    eprintln!("{log3}");
    eprintln!(
        "[figure] up, re-run finishing node 2's stopped control-plane join: {:.1}s",
        took3.as_secs_f64()
    );
    let rows = summary(&log3);
    assert!(
        row(&rows, &names[1], &log3)
            .result
            .starts_with("joined as a control plane in "),
        "{log3}"
    );
    assert_eq!(
        row(&rows, &names[2], &log3).result,
        "already joined",
        "{log3}"
    );
    assert!(
        log3.contains("[etcd] This node is already an etcd member"),
        "{log3}"
    );
    let node = admin.get(&format!("/api/v1/nodes/{}", names[1])).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"], "",
        "{node}"
    );
    assert!(
        node["spec"]["taints"]
            .to_string()
            .contains("node-role.kubernetes.io/control-plane"),
        "{node}"
    );
    let (ok, list, e) = cp.etcdctl(&both, &["member", "list"]);
    assert!(ok, "{e}");
    assert_eq!(list.lines().count(), 2, "{list}");
    assert_eq!(token_ids(&admin), ["abcdef"], "up left its token");
    assert_eq!(token_events(&admin, &rv2).len(), 2, "one token, deleted");
}

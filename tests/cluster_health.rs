//! `kubeboot::health` and `kubeboot::podnet::wait_pod_cidrs` against a real control plane
//! (v1.20.2 API server, controller-manager, scheduler; no kubelet). Nodes and Pod
//! statuses a kubelet would report are written through the API by the test: they are
//! test doubles, named `*-double`. What the real components do is real: the
//! controller-manager's node IPAM gives the Node its podCIDR, the Deployment and
//! DaemonSet controllers make (or do not make) Pods, the scheduler refuses to place them.
//!
//! One story in one test: the control plane takes a few seconds and ~500 MB to start.

mod cluster_support;

use cluster_support::*;
use kubeboot::apiclient::ApiClient;
use kubeboot::health;
use kubeboot::kubeconfig::KubeConfig;
use kubeboot::podnet;
use serde_json::json;
use std::time::{Duration, Instant};

const NODE: &str = "node-double";

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn component<'a>(r: &'a health::HealthReport, name: &str) -> &'a health::ComponentHealth {
    r.components
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no component {name} in {r:#?}"))
}

#[test]
fn health_and_pod_cidrs_against_a_real_control_plane() {
    let cp = ControlPlane::start();
    // super-admin.conf (system:masters): admin.conf needs the bootstrap-token phase's binding.
    let kc =
        KubeConfig::parse(&std::fs::read_to_string(cp.etc("super-admin.conf")).unwrap()).unwrap();
    let admin = ApiClient::from_kubeconfig(&kc).unwrap();

    // Nothing yet: no nodes, no add-ons.
    let r = health::check(&admin);
    assert!(r.errors.is_empty(), "{r:#?}");
    assert!(!r.nodes_ready() && !r.addons_ok());
    assert!(
        component(&r, "kube-proxy")
            .reason
            .as_deref()
            .unwrap()
            .starts_with("not installed")
    );
    assert!(
        !r.components.iter().any(|c| c.name == "kube-flannel-ds"),
        "flannel is checked only when installed"
    );

    // A Node as a kubelet registers it (test double), NotReady for want of a CNI config.
    // The kubelet port points at a closed port so log requests fail fast.
    let closed_port = free_port();
    admin
        .create(
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}),
        )
        .unwrap();
    let status = |ready: &str, reason: &str, message: &str| {
        json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": closed_port}},
            "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": message,
                            "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}})
    };
    admin
        .merge_patch(
            &format!("/api/v1/nodes/{NODE}/status"),
            &status("False", "KubeletNotReady", "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:docker: network plugin is not ready: cni config uninitialized"),
        )
        .unwrap();

    // podnet: the real node IPAM controller gives the Node a podCIDR inside podSubnet.
    let nets =
        podnet::wait_pod_cidrs(&admin, &[NODE.to_string()], Duration::from_secs(60)).unwrap();
    let me = nets.iter().find(|n| n.name == NODE).unwrap();
    assert!(
        "10.244.0.0/16"
            .parse::<ipnet::IpNet>()
            .unwrap()
            .contains(&me.pod_cidr),
        "{me:?}"
    );
    assert_eq!(me.address.to_string(), "127.0.0.1");
    let w = podnet::wanted(NODE, &nets, &"10.244.0.0/16".parse().unwrap()).unwrap();
    assert!(w.conflist.contains(&me.pod_cidr.to_string()));
    // A node that never registers: a bounded wait that says so.
    let e = podnet::wait_pod_cidrs(&admin, &["ghost-node".to_string()], Duration::from_secs(2))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ghost-node (not registered)") && e.contains("journalctl -u kubelet"),
        "{e}"
    );

    // CoreDNS whose Pods the real scheduler cannot place (nodeSelector nobody matches).
    admin
        .apply(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                    "spec": {"nodeSelector": {"kubeboot.test/nowhere": "true"},
                        "containers": [{"name": "coredns", "image": "kubeboot.local/lab/coredns:v1.11.3"}]}}}}))
        .unwrap();
    // kube-proxy that no node is eligible for: the DaemonSet controller makes no Pods.
    admin
        .apply(&json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                    "spec": {"nodeSelector": {"kubeboot.test/nowhere": "true"},
                        "containers": [{"name": "kube-proxy", "image": "kubeboot.local/lab/kube-proxy:v1.20.2"}]}}}}))
        .unwrap();
    // Two control-plane static Pods as the kubelet would mirror them (test doubles), with
    // the statuses a kubelet reports: an image missing, a container crash-looping.
    for (name, image, waiting) in [
        (
            "kube-scheduler-double",
            "kubeboot.local/lab/kube-scheduler:v1.20.2",
            json!({"reason": "ErrImagePull", "message": "rpc error: code = NotFound"}),
        ),
        (
            "kube-controller-manager-double",
            "kubeboot.local/lab/kube-controller-manager:v1.20.2",
            json!({"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}),
        ),
    ] {
        admin
            .create(
                "/api/v1/namespaces/kube-system/pods",
                &json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "kube-system", "labels": {"tier": "control-plane"}},
                    "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": image}]}}),
            )
            .unwrap();
        admin
            .merge_patch(
                &format!("/api/v1/namespaces/kube-system/pods/{name}/status"),
                &json!({"status": {"phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "True"},
                                   {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                    "containerStatuses": [{"name": "main", "image": image, "imageID": "", "ready": false,
                        "restartCount": 3, "state": {"waiting": waiting}}]}}),
            )
            .unwrap();
    }

    let r = wait_for(
        "the scheduler's verdict on coredns",
        Duration::from_secs(60),
        || {
            let r = health::check(&admin);
            component(&r, "coredns")
                .reason
                .as_deref()
                .is_some_and(|x| x.contains("cannot be scheduled"))
                .then_some(r)
        },
    );
    eprintln!("{}", r.render_text());
    let j = serde_json::to_string(&r).unwrap();
    assert!(r.errors.is_empty(), "{r:#?}");
    let node = r.nodes.iter().find(|n| n.name == NODE).unwrap();
    assert!(!node.ready);
    assert!(
        node.reason
            .as_deref()
            .unwrap()
            .starts_with("KubeletNotReady: container runtime network not ready")
            || node.reason.as_deref().unwrap().contains("Kubelet"),
        "{node:?}"
    );
    let dns = component(&r, "coredns").reason.clone().unwrap();
    assert!(
        dns.starts_with("not available: pod coredns-") && dns.contains("nodes are available"),
        "{dns}"
    );
    let proxy = component(&r, "kube-proxy").reason.clone().unwrap();
    assert!(proxy.starts_with("no pods: no node is eligible"), "{proxy}");
    let sched = component(&r, "kube-scheduler-double")
        .reason
        .clone()
        .unwrap();
    assert_eq!(
        sched,
        format!(
            "not ready: image kubeboot.local/lab/kube-scheduler:v1.20.2 is missing on {NODE} (ErrImagePull)"
        )
    );
    // The log request goes through the real API server to the (absent) kubelet: the
    // report says the line is unavailable and why, instead of failing.
    let cm = component(&r, "kube-controller-manager-double")
        .reason
        .clone()
        .unwrap();
    assert!(
        cm.starts_with(&format!("not ready: container main of pod kube-controller-manager-double on {NODE} is crash-looping (3 restarts); last log line unavailable:")),
        "{cm}"
    );
    assert!(j.contains("\"kind\":\"DaemonSet\""), "{j}");

    // wait(): bounded, reports an expected node that never registered, and says what it
    // is still waiting for as it goes.
    let t0 = Instant::now();
    let mut said: Vec<(Duration, Vec<String>)> = Vec::new();
    let r = health::wait(
        &admin,
        Duration::from_secs(3),
        &[NODE.to_string(), "ghost-node".into()],
        Duration::from_secs(1),
        &mut |waited, pending| said.push((waited, pending.to_vec())),
    );
    assert!(t0.elapsed() < Duration::from_secs(40), "{:?}", t0.elapsed());
    assert!(!said.is_empty() && said.len() <= 3, "{said:?}");
    assert!(said[0].0 >= Duration::from_secs(1), "{said:?}");
    assert!(
        said[0]
            .1
            .iter()
            .any(|p| p.starts_with("ghost-node: NotReady: not registered"))
            && said[0]
                .1
                .iter()
                .any(|p| p.starts_with("kube-controller-manager-double: not ready")),
        "{said:?}"
    );
    assert!(!r.nodes_ready());
    let ghost = r.nodes.iter().find(|n| n.name == "ghost-node").unwrap();
    assert!(
        ghost
            .reason
            .as_deref()
            .unwrap()
            .starts_with("not registered")
    );

    // The node turns Ready: nodes_ready() says so while the add-ons still are not ok.
    admin
        .merge_patch(
            &format!("/api/v1/nodes/{NODE}/status"),
            &status("True", "KubeletReady", "kubelet is posting ready status"),
        )
        .unwrap();
    let r = health::wait(
        &admin,
        Duration::from_secs(3),
        &[NODE.to_string()],
        health::PROGRESS_EVERY,
        &mut |_, _| {},
    );
    assert!(r.nodes_ready(), "{}", r.render_text());
    assert!(!r.addons_ok());
}

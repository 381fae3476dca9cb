//! The cluster's health at the end of `up`: which nodes are Ready, whether the control
//! plane's static Pods, kube-proxy, the CNI's DaemonSet and CoreDNS are running, and for
//! anything that is not, *why*, read from its Pods: an image missing on a node, a
//! container crash-looping (with its last log line), a Pod the scheduler cannot place, or
//! no Pods at all.
//!
//! Read-only: only GETs and LISTs through the admin [`ApiClient`]. Node readiness is what
//! `up` requires; add-ons that are not ok are reported and the caller decides.

use crate::apiclient::ApiClient;
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};

/// One node's readiness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeHealth {
    pub name: String,
    pub ready: bool,
    /// Why not Ready: the Ready condition's reason and message, or `not registered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The kubelet's pressure conditions that are True (`DiskPressure: kubelet has disk
    /// pressure`): under them it evicts Pods and deletes images, which otherwise shows
    /// only as "image missing" or Pods that cannot be scheduled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pressure: Vec<String>,
}

/// What a pressure condition does and what to do about it.
fn pressure_hint(kind: &str) -> &'static str {
    match kind {
        "DiskPressure" => {
            "the kubelet evicts Pods and deletes unused images (imported archives too); free disk space, or lower its eviction thresholds (kubeletExtraArgs eviction-hard)"
        }
        "MemoryPressure" => "the kubelet evicts Pods; free memory on the node",
        "PIDPressure" => "the kubelet evicts Pods; too many processes on the node",
        _ => "the kubelet evicts Pods",
    }
}

/// One component: a control-plane static Pod, a DaemonSet or a Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    /// `coredns`, `kube-proxy`, `kube-flannel-ds`, or the static Pod's name.
    pub name: String,
    pub namespace: String,
    /// `Pod`, `DaemonSet` or `Deployment`.
    pub kind: String,
    pub ok: bool,
    /// Why not ok, in words (`not available: image X is missing on node2 (ErrImagePull)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Everything [`check`] found (`-o json` serializes it as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    pub nodes: Vec<NodeHealth>,
    pub components: Vec<ComponentHealth>,
    /// API calls that failed; the report is incomplete when this is not empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl HealthReport {
    /// Whether waiting cannot help: every node is Ready and whatever is not ok waits for
    /// an image its node does not have (no registry will bring it; an archive must).
    pub fn settled(&self) -> bool {
        self.nodes_ready()
            && self.errors.is_empty()
            && self.components.iter().all(|c| {
                c.ok || c
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.contains("image ") && r.contains(" is missing on "))
            })
    }

    /// Every node Ready (and at least one node, and the node list was read).
    pub fn nodes_ready(&self) -> bool {
        !self.nodes.is_empty()
            && self.nodes.iter().all(|n| n.ready)
            && !self.errors.iter().any(|e| e.starts_with("nodes:"))
    }

    /// Every component ok and nothing failed to be read.
    pub fn addons_ok(&self) -> bool {
        self.components.iter().all(|c| c.ok) && self.errors.is_empty()
    }

    /// What is not there yet, one entry each (`node2: NotReady: ...`, `coredns: ...`,
    /// read errors), for the progress lines of a wait.
    pub fn pending(&self) -> Vec<String> {
        let nodes = self.nodes.iter().filter(|n| !n.ready).map(|n| {
            format!(
                "{}: NotReady: {}",
                n.name,
                n.reason.as_deref().unwrap_or("no reason given")
            )
        });
        let components = self
            .components
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.reason.as_deref().unwrap_or("not ok")));
        let errors = self.errors.iter().map(|e| format!("error: {e}"));
        nodes.chain(components).chain(errors).collect()
    }

    /// A short table: nodes, then components, each `OK` or the reason.
    pub fn render_text(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        rows.push(("NODE".into(), "STATUS".into()));
        for n in &self.nodes {
            let mut status = if n.ready {
                "Ready".to_string()
            } else {
                format!(
                    "NotReady: {}",
                    n.reason.as_deref().unwrap_or("no reason given")
                )
            };
            for p in &n.pressure {
                let kind = p.split(':').next().unwrap_or(p);
                status.push_str(&format!("; {p} ({})", pressure_hint(kind)));
            }
            rows.push((n.name.clone(), status));
        }
        let split = rows.len();
        rows.push(("COMPONENT".into(), "STATUS".into()));
        for c in &self.components {
            let status = if c.ok {
                "OK".to_string()
            } else {
                c.reason.clone().unwrap_or_else(|| "not ok".into())
            };
            rows.push((c.name.clone(), status));
        }
        let width = rows.iter().map(|(a, _)| a.len()).max().unwrap_or(0) + 2;
        let mut s = String::new();
        for (i, (a, b)) in rows.iter().enumerate() {
            if i == split {
                s.push('\n');
            }
            s.push_str(&format!("{a:width$}{b}\n"));
        }
        for e in &self.errors {
            s.push_str(&format!("error: {e}\n"));
        }
        s
    }
}

/// Reads the cluster's health once.
pub fn check(admin: &ApiClient) -> HealthReport {
    let mut errors = Vec::new();
    let nodes = match admin.list("/api/v1/nodes", None) {
        Ok(items) => items.iter().map(node_health).collect(),
        Err(e) => {
            errors.push(format!("nodes: {e}"));
            Vec::new()
        }
    };
    let last_log = |ns: &str, pod: &str, container: &str| -> Result<String, String> {
        admin
            .get_text(&format!(
                "/api/v1/namespaces/{ns}/pods/{pod}/log?container={container}&tailLines=1"
            ))
            .map(|t| t.trim().to_string())
            .map_err(|e| e.to_string())
    };
    let mut components = Vec::new();
    match admin.list(
        "/api/v1/namespaces/kube-system/pods",
        Some("labelSelector=tier%3Dcontrol-plane"),
    ) {
        Ok(pods) => {
            let mut pods = pods;
            pods.sort_by_key(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            });
            for p in &pods {
                components.push(static_pod_health(p, &last_log));
            }
        }
        Err(e) => errors.push(format!("control-plane pods: {e}")),
    }
    let mut workload = |kind: &str, ns: &str, name: &str, required: bool| {
        let path = match kind {
            "DaemonSet" => format!("/apis/apps/v1/namespaces/{ns}/daemonsets/{name}"),
            _ => format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"),
        };
        let obj = match admin.get_opt(&path) {
            Ok(Some(o)) => o,
            Ok(None) if !required => return,
            Ok(None) => {
                components.push(ComponentHealth {
                    name: name.into(),
                    namespace: ns.into(),
                    kind: kind.into(),
                    ok: false,
                    reason: Some(format!(
                        "not installed: no {kind} {ns}/{name} (the addon phase did not create it)"
                    )),
                });
                return;
            }
            Err(e) => {
                errors.push(format!("{kind} {ns}/{name}: {e}"));
                return;
            }
        };
        let selector = label_selector(&obj);
        let pods = match admin.list(
            &format!("/api/v1/namespaces/{ns}/pods"),
            Some(&format!("labelSelector={}", url_escape(&selector))),
        ) {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("pods of {kind} {ns}/{name}: {e}"));
                Vec::new()
            }
        };
        components.push(workload_health(kind, &obj, &pods, &last_log));
    };
    workload("DaemonSet", "kube-system", "kube-proxy", true);
    // The CNI's DaemonSet, when the cluster runs flannel (`bridge` and `none` have none).
    workload("DaemonSet", "kube-flannel", "kube-flannel-ds", false);
    workload("Deployment", "kube-system", "coredns", true);
    HealthReport {
        nodes,
        components,
        errors,
    }
}

/// How often a wait says what it is still waiting for.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// Checks every second until every node in `expect_nodes` is registered and all nodes are
/// Ready and every component is ok, or `timeout` has passed; returns the last report
/// (with `not registered` entries for expected nodes that are missing). Every
/// `progress_every` (`up`: [`PROGRESS_EVERY`]), `progress` gets the time waited and what
/// is still pending.
pub fn wait(
    admin: &ApiClient,
    timeout: Duration,
    expect_nodes: &[String],
    progress_every: Duration,
    progress: &mut dyn FnMut(Duration, &[String]),
) -> HealthReport {
    let start = Instant::now();
    let mut next_progress = progress_every;
    loop {
        let mut r = check(admin);
        for n in expect_nodes {
            if !r.nodes.iter().any(|x| &x.name == n) {
                r.nodes.push(NodeHealth {
                    name: n.clone(),
                    ready: false,
                    reason: Some(
                        "not registered: its kubelet has not reached the API server".into(),
                    ),
                    pressure: Vec::new(),
                });
            }
        }
        if (r.nodes_ready() && r.addons_ok()) || r.settled() || start.elapsed() >= timeout {
            return r;
        }
        if start.elapsed() >= next_progress {
            progress(start.elapsed(), &r.pending());
            next_progress = start.elapsed() + progress_every;
        }
        std::thread::sleep(Duration::from_secs(1).min(timeout.saturating_sub(start.elapsed())));
    }
}

fn url_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// `k=v,k2=v2` from a workload's `spec.selector.matchLabels`.
fn label_selector(obj: &Value) -> String {
    let mut parts: Vec<String> = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    parts.sort();
    parts.join(",")
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// A Node's Ready condition, and the pressure conditions that are True.
pub fn node_health(node: &Value) -> NodeHealth {
    let name = node["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pressure = ["DiskPressure", "MemoryPressure", "PIDPressure"]
        .iter()
        .filter_map(|kind| {
            let c = condition(node, kind).filter(|c| c["status"] == "True")?;
            Some(match c["message"].as_str().filter(|m| !m.is_empty()) {
                Some(m) => format!("{kind}: {m}"),
                None => kind.to_string(),
            })
        })
        .collect();
    // A Node that reports Ready keeps the node lifecycle controller's not-ready (or
    // unreachable) taint until the controller's next look, up to 5 s later: Pods cannot
    // be scheduled there yet, so it is not ready for workloads either.
    let lifecycle_taint = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["key"] == "node.kubernetes.io/not-ready"
                || t["key"] == "node.kubernetes.io/unreachable"
        });
    let (ready, reason) = match condition(node, "Ready") {
        Some(c) if c["status"] == "True" => match lifecycle_taint {
            None => (true, None),
            Some(t) => (
                false,
                Some(format!(
                    "Ready, but still tainted {}:{} (the controller-manager removes it within seconds of Ready)",
                    t["key"].as_str().unwrap_or_default(),
                    t["effect"].as_str().unwrap_or_default()
                )),
            ),
        },
        Some(c) => {
            let reason = c["reason"].as_str().unwrap_or_default();
            let message = c["message"].as_str().unwrap_or_default();
            (
                false,
                Some(match (reason.is_empty(), message.is_empty()) {
                    (false, false) => format!("{reason}: {message}"),
                    (false, true) => reason.to_string(),
                    (true, false) => message.to_string(),
                    (true, true) => format!("Ready is {}", c["status"].as_str().unwrap_or("?")),
                }),
            )
        }
        None => (
            false,
            Some("no Ready condition yet (the kubelet has not reported)".into()),
        ),
    };
    NodeHealth {
        name,
        ready,
        reason,
        pressure,
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// Why one Pod is not Ready, or `None` when it is. `last_log(namespace, pod, container)`
/// fetches a crash-looping container's last log line.
pub fn pod_problem(
    pod: &Value,
    last_log: &dyn Fn(&str, &str, &str) -> Result<String, String>,
) -> Option<String> {
    if condition(pod, "Ready").is_some_and(|c| c["status"] == "True") {
        return None;
    }
    let name = str_of(&pod["metadata"], "name");
    let ns = str_of(&pod["metadata"], "namespace");
    let node = str_of(&pod["spec"], "nodeName");
    if let Some(c) = condition(pod, "PodScheduled")
        && c["status"] == "False"
    {
        let msg = str_of(c, "message");
        return Some(format!(
            "pod {name} cannot be scheduled: {}",
            if msg.is_empty() {
                str_of(c, "reason")
            } else {
                msg
            }
        ));
    }
    if node.is_empty() {
        return Some(format!("pod {name} is pending: not scheduled yet"));
    }
    let statuses = pod["status"]["initContainerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            pod["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten(),
        );
    for cs in statuses {
        if cs["ready"] == true {
            continue;
        }
        let cname = str_of(cs, "name");
        let image = str_of(cs, "image");
        if let Some(w) = cs["state"]["waiting"].as_object() {
            let reason = w.get("reason").and_then(Value::as_str).unwrap_or_default();
            let message = w.get("message").and_then(Value::as_str).unwrap_or_default();
            match reason {
                "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull" | "InvalidImageName" => {
                    return Some(format!("image {image} is missing on {node} ({reason})"));
                }
                "CrashLoopBackOff" => {
                    let restarts = cs["restartCount"].as_u64().unwrap_or(0);
                    let log = match last_log(ns, name, cname) {
                        Ok(l) if !l.is_empty() => format!("last log line: {l}"),
                        Ok(_) => "its log is empty".into(),
                        Err(e) => format!("last log line unavailable: {e}"),
                    };
                    return Some(format!(
                        "container {cname} of pod {name} on {node} is crash-looping ({restarts} restarts); {log}"
                    ));
                }
                "" => {}
                _ => {
                    let tail = if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    };
                    return Some(format!(
                        "container {cname} of pod {name} on {node} is waiting: {reason}{tail}"
                    ));
                }
            }
        }
        if let Some(t) = cs["state"]["terminated"].as_object() {
            let code = t.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
            let reason = t.get("reason").and_then(Value::as_str).unwrap_or_default();
            return Some(format!(
                "container {cname} of pod {name} on {node} exited with code {code} ({reason})"
            ));
        }
    }
    let phase = str_of(&pod["status"], "phase");
    Some(format!(
        "pod {name} on {node} is not ready (phase {})",
        if phase.is_empty() { "unknown" } else { phase }
    ))
}

fn static_pod_health(
    pod: &Value,
    last_log: &dyn Fn(&str, &str, &str) -> Result<String, String>,
) -> ComponentHealth {
    let problem = pod_problem(pod, last_log);
    ComponentHealth {
        name: str_of(&pod["metadata"], "name").to_string(),
        namespace: str_of(&pod["metadata"], "namespace").to_string(),
        kind: "Pod".into(),
        ok: problem.is_none(),
        reason: problem.map(|p| format!("not ready: {p}")),
    }
}

/// Reasons of the Pods that are not ready, distinct, at most three.
fn pods_reasons(
    pods: &[Value],
    last_log: &dyn Fn(&str, &str, &str) -> Result<String, String>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in pods {
        if let Some(r) = pod_problem(p, last_log)
            && !out.contains(&r)
        {
            out.push(r);
        }
    }
    out.truncate(3);
    out
}

/// A DaemonSet is rolled out when its status is current and every scheduled Pod is
/// updated and Ready; a Deployment is ok when its Available condition is True.
pub fn workload_health(
    kind: &str,
    obj: &Value,
    pods: &[Value],
    last_log: &dyn Fn(&str, &str, &str) -> Result<String, String>,
) -> ComponentHealth {
    let name = str_of(&obj["metadata"], "name").to_string();
    let namespace = str_of(&obj["metadata"], "namespace").to_string();
    let st = &obj["status"];
    let num = |k: &str| st[k].as_i64().unwrap_or(0);
    let current = st["observedGeneration"].as_i64().unwrap_or(0)
        >= obj["metadata"]["generation"].as_i64().unwrap_or(0);
    let (ok, summary) = if kind == "DaemonSet" {
        let (desired, ready, updated) = (
            num("desiredNumberScheduled"),
            num("numberReady"),
            num("updatedNumberScheduled"),
        );
        let ok = current && desired > 0 && desired == ready && ready == updated;
        (
            ok,
            if desired == 0 {
                "no pods: no node is eligible to run it (desiredNumberScheduled 0)".to_string()
            } else {
                format!("not rolled out: {ready}/{desired} ready, {updated}/{desired} updated")
            },
        )
    } else {
        let available = condition(obj, "Available").is_some_and(|c| c["status"] == "True");
        (current && available, "not available".to_string())
    };
    if ok {
        return ComponentHealth {
            name,
            namespace,
            kind: kind.into(),
            ok: true,
            reason: None,
        };
    }
    let mut reasons = pods_reasons(pods, last_log);
    if pods.is_empty() && kind == "Deployment" {
        reasons.push(match condition(obj, "ReplicaFailure") {
            Some(c) => format!("no pods: {}", str_of(c, "message")),
            None => {
                "no pods created yet (the controller-manager makes them: is it running?)".into()
            }
        });
    }
    if !current && reasons.is_empty() {
        reasons.push("its controller has not yet seen the latest spec".into());
    }
    let reason = if reasons.is_empty() {
        summary
    } else if kind == "DaemonSet" && num("desiredNumberScheduled") == 0 {
        format!("{summary}; {}", reasons.join("; "))
    } else {
        format!("{summary}: {}", reasons.join("; "))
    };
    ComponentHealth {
        name,
        namespace,
        kind: kind.into(),
        ok: false,
        reason: Some(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_log(_: &str, _: &str, _: &str) -> Result<String, String> {
        panic!("no log expected")
    }

    /// Fixture: a Pod shaped like the API's, with the given status.
    fn pod_fixture(name: &str, node: &str, status: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
               "spec": {"nodeName": node, "containers": [{"name": "coredns"}]},
               "status": status})
    }

    fn waiting_fixture(reason: &str, message: &str, restarts: u64) -> Value {
        json!({"phase": "Pending",
               "conditions": [{"type": "PodScheduled", "status": "True"},
                              {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
               "containerStatuses": [{"name": "coredns", "ready": false, "restartCount": restarts,
                   "image": "kubeboot.local/lab/coredns:v1.11.3", "imageID": "",
                   "state": {"waiting": {"reason": reason, "message": message}}}]})
    }

    fn deployment_fixture(available: bool, extra: Value) -> Value {
        let mut conds = vec![
            json!({"type": "Available", "status": if available {"True"} else {"False"},
                                    "reason": "MinimumReplicasUnavailable"}),
        ];
        if !extra.is_null() {
            conds.push(extra);
        }
        json!({"metadata": {"name": "coredns", "namespace": "kube-system", "generation": 1},
               "spec": {"selector": {"matchLabels": {"k8s-app": "kube-dns"}}},
               "status": {"observedGeneration": 1, "replicas": 2, "conditions": conds}})
    }

    #[test]
    fn image_missing_names_image_and_node() {
        let p = pod_fixture(
            "coredns-1",
            "node2",
            waiting_fixture("ErrImagePull", "rpc error", 0),
        );
        let c = workload_health(
            "Deployment",
            &deployment_fixture(false, Value::Null),
            &[p],
            &no_log,
        );
        assert!(!c.ok);
        assert_eq!(
            c.reason.as_deref(),
            Some(
                "not available: image kubeboot.local/lab/coredns:v1.11.3 is missing on node2 (ErrImagePull)"
            )
        );
        for r in ["ImagePullBackOff", "ErrImageNeverPull"] {
            let p = pod_fixture("coredns-1", "node2", waiting_fixture(r, "", 0));
            assert!(
                pod_problem(&p, &no_log)
                    .unwrap()
                    .ends_with(&format!("on node2 ({r})"))
            );
        }
    }

    #[test]
    fn crash_loop_carries_the_last_log_line() {
        let p = pod_fixture(
            "coredns-1",
            "node1",
            waiting_fixture("CrashLoopBackOff", "back-off 5m0s", 7),
        );
        let log = |ns: &str, pod: &str, c: &str| -> Result<String, String> {
            assert_eq!((ns, pod, c), ("kube-system", "coredns-1", "coredns"));
            Ok("plugin/loop: Loop (127.0.0.1:53 -> :53) detected\n"
                .trim()
                .into())
        };
        assert_eq!(
            pod_problem(&p, &log).unwrap(),
            "container coredns of pod coredns-1 on node1 is crash-looping (7 restarts); last log line: plugin/loop: Loop (127.0.0.1:53 -> :53) detected"
        );
        let failing = |_: &str, _: &str, _: &str| -> Result<String, String> { Err("502".into()) };
        assert!(
            pod_problem(&p, &failing)
                .unwrap()
                .ends_with("last log line unavailable: 502")
        );
    }

    #[test]
    fn unschedulable_and_no_pods() {
        let p = pod_fixture(
            "coredns-1",
            "",
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes are available: 3 node(s) had taint {node.kubernetes.io/not-ready: }, that the pod didn't tolerate."}]}),
        );
        assert_eq!(
            pod_problem(&p, &no_log).unwrap(),
            "pod coredns-1 cannot be scheduled: 0/3 nodes are available: 3 node(s) had taint {node.kubernetes.io/not-ready: }, that the pod didn't tolerate."
        );
        let failure = json!({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": "pods \"coredns-5d-\" is forbidden: error looking up service account kube-system/coredns: serviceaccount \"coredns\" not found"});
        let c = workload_health(
            "Deployment",
            &deployment_fixture(false, failure),
            &[],
            &no_log,
        );
        assert!(
            c.reason
                .as_deref()
                .unwrap()
                .starts_with("not available: no pods: pods \"coredns-5d-\" is forbidden"),
            "{c:?}"
        );
        let c = workload_health(
            "Deployment",
            &deployment_fixture(false, Value::Null),
            &[],
            &no_log,
        );
        assert!(c.reason.unwrap().contains("no pods created yet"));
        assert!(
            workload_health(
                "Deployment",
                &deployment_fixture(true, Value::Null),
                &[],
                &no_log
            )
            .ok
        );
    }

    #[test]
    fn daemonset_rollout() {
        let ds = |desired: i64, ready: i64, updated: i64| {
            json!({"metadata": {"name": "kube-proxy", "namespace": "kube-system", "generation": 2},
                   "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}}},
                   "status": {"observedGeneration": 2, "desiredNumberScheduled": desired,
                              "numberReady": ready, "updatedNumberScheduled": updated}})
        };
        assert!(workload_health("DaemonSet", &ds(3, 3, 3), &[], &no_log).ok);
        let running_not_ready = pod_fixture(
            "kube-proxy-x",
            "node3",
            json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
                   "containerStatuses": [{"name": "kube-proxy", "ready": false, "image": "k", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
        );
        let c = workload_health("DaemonSet", &ds(3, 2, 3), &[running_not_ready], &no_log);
        assert_eq!(
            c.reason.as_deref(),
            Some(
                "not rolled out: 2/3 ready, 3/3 updated: container kube-proxy of pod kube-proxy-x on node3 exited with code 1 (Error)"
            )
        );
        let c = workload_health("DaemonSet", &ds(0, 0, 0), &[], &no_log);
        assert!(
            c.reason
                .unwrap()
                .starts_with("no pods: no node is eligible")
        );
        // A stale status (observedGeneration behind) is not a rollout.
        let mut stale = ds(3, 3, 3);
        stale["status"]["observedGeneration"] = json!(1);
        assert!(!workload_health("DaemonSet", &stale, &[], &no_log).ok);
    }

    /// A Node that reports Ready but still carries the lifecycle controller's not-ready
    /// taint (for up to 5 s after Ready) is not ready yet, and says why; the
    /// control-plane taint does not count.
    #[test]
    fn ready_with_the_not_ready_taint_is_not_ready_yet() {
        let node = |taints: serde_json::Value| {
            json!({"metadata": {"name": "node2"}, "spec": {"taints": taints},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
        };
        let h = node_health(&node(json!([
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": "2026-12-02T13:00:11Z"}
        ])));
        assert!(!h.ready);
        assert_eq!(
            h.reason.as_deref(),
            Some(
                "Ready, but still tainted node.kubernetes.io/not-ready:NoExecute (the controller-manager removes it within seconds of Ready)"
            )
        );
        assert!(
            !node_health(&node(
                json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}])
            ))
            .ready
        );
        assert!(
            node_health(&node(
                json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
            ))
            .ready
        );
        assert!(node_health(&node(json!(null))).ready);
    }

    #[test]
    fn nodes_and_text() {
        let ready = json!({"metadata": {"name": "node1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let not_ready = json!({"metadata": {"name": "node2"}, "status": {"conditions": [{"type": "Ready", "status": "False",
            "reason": "KubeletNotReady", "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"}]}});
        let r = HealthReport {
            nodes: vec![node_health(&ready), node_health(&not_ready)],
            components: vec![ComponentHealth {
                name: "coredns".into(),
                namespace: "kube-system".into(),
                kind: "Deployment".into(),
                ok: false,
                reason: Some("not available: image kubeboot.local/lab/coredns:v1.11.3 is missing on node2 (ErrImagePull)".into()),
            }],
            errors: vec![],
        };
        assert!(!r.nodes_ready() && !r.addons_ok());
        assert_eq!(
            r.pending(),
            vec![
                "node2: NotReady: KubeletNotReady: container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized".to_string(),
                "coredns: not available: image kubeboot.local/lab/coredns:v1.11.3 is missing on node2 (ErrImagePull)".to_string(),
            ]
        );
        let t = r.render_text();
        let row = |name: &str| {
            t.lines()
                .find_map(|l| l.strip_prefix(name).filter(|r| r.starts_with("  ")))
                .map(str::trim_start)
                .unwrap_or_else(|| panic!("no row {name} in\n{t}"))
        };
        assert_eq!(row("node1"), "Ready");
        assert!(
            row("node2")
                .starts_with("NotReady: KubeletNotReady: container runtime network not ready"),
            "{t}"
        );
        assert_eq!(
            row("coredns"),
            "not available: image kubeboot.local/lab/coredns:v1.11.3 is missing on node2 (ErrImagePull)"
        );
        assert!(t.starts_with("NODE") && t.contains("\nCOMPONENT"), "{t}");
        // A Ready node under disk pressure says so, and what the kubelet does about it.
        let pressed = json!({"metadata": {"name": "node3"}, "status": {"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "MemoryPressure", "status": "False", "message": "kubelet has sufficient memory available"},
            {"type": "DiskPressure", "status": "True", "message": "kubelet has disk pressure"}]}});
        let h = node_health(&pressed);
        assert!(h.ready);
        assert_eq!(
            h.pressure,
            vec!["DiskPressure: kubelet has disk pressure".to_string()]
        );
        let t = HealthReport {
            nodes: vec![h.clone()],
            components: vec![],
            errors: vec![],
        }
        .render_text();
        assert!(
            t.lines().any(|l| l.starts_with("node3 ") && l.contains(" Ready; DiskPressure: kubelet has disk pressure (the kubelet evicts Pods and deletes unused images")),
            "{t}"
        );
        assert_eq!(
            serde_json::to_value(&h).unwrap()["pressure"][0],
            "DiskPressure: kubelet has disk pressure"
        );
        assert!(node_health(&ready).pressure.is_empty());
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["nodes"][0], json!({"name": "node1", "ready": true}));
        assert_eq!(j["components"][0]["ok"], false);
        assert_eq!(
            label_selector(&deployment_fixture(true, Value::Null)),
            "k8s-app=kube-dns"
        );
        assert_eq!(
            url_escape("tier=control-plane,a=b"),
            "tier%3Dcontrol-plane%2Ca%3Db"
        );
    }
}

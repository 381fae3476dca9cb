//! The Pod shape kubeadm gives every control-plane component (`staticpod.ComponentPod` and
//! the probe helpers): labels, priority, host network, seccomp, CPU requests, probes, and
//! hostPath volumes sorted by name.

use super::versions::{ProbePaths, VersionProfile};
use crate::config::InitConfig;
use crate::config::v1beta4::{EnvVar, HostPathMount};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `system-node-critical`'s value. kubeadm writes it next to the class name (PR 114338,
/// 1.27+) because static Pods skip the priority admission plugin, and graceful node
/// shutdown orders Pods by this number.
pub const SYSTEM_NODE_CRITICAL: i64 = 2_000_001_000;

/// A hostPath volume and its mount in the container.
#[derive(Debug, Clone)]
pub struct Mount {
    pub host_path: String,
    pub mount_path: String,
    pub read_only: bool,
    pub path_type: Option<String>,
}

impl Mount {
    /// The same path on the host and in the container.
    pub fn same(path: &str, read_only: bool, path_type: &str) -> Mount {
        Mount {
            host_path: path.to_string(),
            mount_path: path.to_string(),
            read_only,
            path_type: Some(path_type.to_string()),
        }
    }
}

/// Mounts by volume name; a later insert with the same name replaces the earlier one, the
/// way kubeadm lets `extraVolumes` replace its defaults.
pub type Mounts = BTreeMap<String, Mount>;

/// Adds the user's `extraVolumes` over the defaults.
pub fn add_extra_volumes(mounts: &mut Mounts, extra: &[HostPathMount]) {
    for v in extra {
        mounts.insert(
            v.name.clone(),
            Mount {
                host_path: v.host_path.clone(),
                mount_path: v.mount_path.clone(),
                read_only: v.read_only,
                path_type: v.path_type.clone().filter(|t| !t.is_empty()),
            },
        );
    }
}

/// Where a component's probes go.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// Probe host; `None` when the component listens on all addresses (kubelet uses the Pod IP).
    pub host: Option<String>,
    pub port: u16,
    pub scheme: &'static str,
}

/// kubeadm's `getProbeAddress`: an unspecified bind address cannot be probed, so the
/// host is left out.
pub fn probe_host(addr: &str) -> Option<String> {
    match addr {
        "0.0.0.0" | "::" | "" => None,
        a => Some(a.to_string()),
    }
}

/// Everything that differs between the four control-plane Pods.
pub struct Component {
    pub name: &'static str,
    pub image: String,
    pub command: Vec<String>,
    pub mounts: Mounts,
    pub probe_paths: ProbePaths,
    pub probe: ProbeTarget,
    pub cpu: &'static str,
    pub memory: Option<&'static str>,
    pub env: Vec<EnvVar>,
    pub annotations: BTreeMap<String, String>,
}

/// Proxy variables first, then the user's `extraEnvs`; a user variable replaces a proxy
/// variable of the same name (kubeadm's `MergeKubeadmEnvVars`).
pub fn merge_env(proxy: &[(String, String)], extra: &[EnvVar]) -> Vec<EnvVar> {
    let mut out: Vec<EnvVar> = proxy
        .iter()
        .map(|(n, v)| EnvVar {
            name: n.clone(),
            value: Some(v.clone()),
            value_from: None,
        })
        .collect();
    for e in extra {
        match out.iter_mut().find(|o| o.name == e.name) {
            Some(o) => *o = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

/// The startup probe's failure threshold: enough periods of 10 s to cover the control-plane
/// health-check timeout (4 min by default, so 24).
pub fn startup_failure_threshold(cfg: &InitConfig) -> i64 {
    let timeout = cfg
        .init
        .timeouts
        .as_ref()
        .and_then(|t| t.control_plane_component_health_check)
        .map(|d| d.0.as_secs_f64())
        .unwrap_or(240.0);
    (timeout / 10.0).ceil() as i64
}

fn probe(t: &ProbeTarget, path: &str, port: &Value, kind: &str, startup_failures: i64) -> Value {
    let mut get = json!({ "path": path, "port": port, "scheme": t.scheme });
    if let Some(h) = &t.host {
        get["host"] = json!(h);
    }
    match kind {
        "liveness" => json!({
            "failureThreshold": 8, "httpGet": get, "initialDelaySeconds": 10,
            "periodSeconds": 10, "timeoutSeconds": 15,
        }),
        "readiness" => json!({
            "failureThreshold": 3, "httpGet": get, "periodSeconds": 1, "timeoutSeconds": 15,
        }),
        _ => json!({
            "failureThreshold": startup_failures, "httpGet": get, "initialDelaySeconds": 10,
            "periodSeconds": 10, "timeoutSeconds": 15,
        }),
    }
}

/// The static Pod object of `c`.
pub fn pod(c: &Component, profile: &VersionProfile, startup_failures: i64) -> Value {
    let port = if profile.named_probe_port {
        json!("probe-port")
    } else {
        json!(c.probe.port)
    };
    let mut requests = json!({ "cpu": c.cpu });
    if let Some(m) = c.memory {
        requests["memory"] = json!(m);
    }
    let mut container = json!({
        "command": c.command,
        "image": c.image,
        "imagePullPolicy": "IfNotPresent",
        "livenessProbe": probe(&c.probe, c.probe_paths.liveness, &port, "liveness", startup_failures),
        "name": c.name,
        "resources": { "requests": requests },
        "startupProbe": probe(&c.probe, c.probe_paths.startup, &port, "startup", startup_failures),
        "volumeMounts": c.mounts.iter().map(|(name, m)| {
            let mut vm = json!({ "mountPath": m.mount_path, "name": name });
            if m.read_only {
                vm["readOnly"] = json!(true);
            }
            vm
        }).collect::<Vec<_>>(),
    });
    if let Some(r) = c.probe_paths.readiness {
        container["readinessProbe"] = probe(&c.probe, r, &port, "readiness", startup_failures);
    }
    if profile.named_probe_port {
        container["ports"] = json!([{
            "containerPort": c.probe.port, "name": "probe-port", "protocol": "TCP",
        }]);
    }
    if !c.env.is_empty() {
        container["env"] = serde_json::to_value(&c.env).expect("EnvVar serializes");
    }
    let volumes: Vec<Value> = c
        .mounts
        .iter()
        .map(|(name, m)| {
            let mut hp = json!({ "path": m.host_path });
            if let Some(t) = &m.path_type {
                hp["type"] = json!(t);
            }
            json!({ "hostPath": hp, "name": name })
        })
        .collect();
    let mut metadata = json!({
        "labels": { "component": c.name, "tier": "control-plane" },
        "name": c.name,
        "namespace": "kube-system",
    });
    if !c.annotations.is_empty() {
        metadata["annotations"] = json!(c.annotations);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [container],
            "hostNetwork": true,
            "priority": SYSTEM_NODE_CRITICAL,
            "priorityClassName": "system-node-critical",
            "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
            "volumes": volumes,
        },
        "status": {},
    })
}

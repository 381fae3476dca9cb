//! The RBAC objects and ConfigMaps kubeadm's init creates for node bootstrap and
//! discovery, as data (KUBEADM-FACTS 1e, 1f). Applied with server-side apply so re-runs
//! converge.

use crate::token::DEFAULT_GROUP;
use serde_json::{Value, json};

/// Group of nodes that joined.
pub const NODES_GROUP: &str = "system:nodes";

fn crb(name: &str, role: &str, subject_kind: &str, subject: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": subject_kind, "name": subject}],
    })
}

/// A Role allowing `get` on one ConfigMap, and its RoleBinding to `groups`/`users`.
fn configmap_reader(ns: &str, name: &str, configmap: &str, subjects: Vec<Value>) -> [Value; 2] {
    [
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": [configmap]}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": subjects,
        }),
    ]
}

fn group(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name})
}

/// Lets bootstrap tokens create CSRs, have them auto-approved, renew node certificates,
/// and read Nodes (`bootstrap-token` phase).
pub fn node_bootstrap() -> Vec<Value> {
    vec![
        crb(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            "Group",
            DEFAULT_GROUP,
        ),
        crb(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "Group",
            DEFAULT_GROUP,
        ),
        crb(
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "Group",
            NODES_GROUP,
        ),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "kubeadm:get-nodes"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
        }),
        crb(
            "kubeadm:get-nodes",
            "kubeadm:get-nodes",
            "Group",
            DEFAULT_GROUP,
        ),
    ]
}

/// Lets anonymous users read cluster-info (discovery).
pub fn cluster_info_reader() -> [Value; 2] {
    configmap_reader(
        "kube-public",
        "kubeadm:bootstrap-signer-clusterinfo",
        "cluster-info",
        vec![
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}),
        ],
    )
}

/// Lets joining and joined nodes read `kubeadm-config`.
pub fn kubeadm_config_reader() -> [Value; 2] {
    configmap_reader(
        "kube-system",
        "kubeadm:nodes-kubeadm-config",
        "kubeadm-config",
        vec![group(DEFAULT_GROUP), group(NODES_GROUP)],
    )
}

/// Lets joining and joined nodes read `kubelet-config`.
pub fn kubelet_config_reader() -> [Value; 2] {
    configmap_reader(
        "kube-system",
        "kubeadm:kubelet-config",
        "kubelet-config",
        vec![group(DEFAULT_GROUP), group(NODES_GROUP)],
    )
}

/// Binds `kubeadm:cluster-admins` (admin.conf's group) to `cluster-admin`.
pub fn cluster_admins() -> Value {
    crb(
        "kubeadm:cluster-admins",
        "cluster-admin",
        "Group",
        "kubeadm:cluster-admins",
    )
}

/// A ConfigMap.
pub fn configmap(ns: &str, name: &str, data: Value, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "data": data,
    })
}

/// kubeadm's `ChecksumForConfigMap`: sha256 over sorted keys and values.
pub fn configmap_checksum(data: &serde_json::Map<String, Value>) -> String {
    use sha2::Digest;
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    let mut h = sha2::Sha256::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update(data[k].as_str().unwrap_or_default().as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

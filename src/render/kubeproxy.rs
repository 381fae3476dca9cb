//! The kube-proxy addon as kubeadm deploys it (`phases/addons/proxy`): ServiceAccount
//! `kube-proxy`, ClusterRoleBinding `kubeadm:node-proxier` (to `system:node-proxier`), Role
//! and RoleBinding `kube-proxy` that let joining nodes read the ConfigMap, the ConfigMap
//! `kube-proxy` (`config.conf`: KubeProxyConfiguration; `kubeconfig.conf`: in-cluster
//! credentials pointing at the control-plane endpoint), and the DaemonSet.

use super::{RenderError, yaml};
use crate::config::InitConfig;
use serde_json::{Value, json};

/// The bootstrap-token group joining nodes authenticate as.
const BOOTSTRAPPERS: &str = "system:bootstrappers:kubeadm:default-node-token";

/// The KubeProxyConfiguration: kubeadm's defaults (bind address, kubeconfig path, cluster
/// CIDR = pod subnet) under the user's `KubeProxyConfiguration` document.
pub fn config(cfg: &InitConfig) -> Value {
    let mut c = json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "bindAddress": if cfg.advertise_address.is_ipv6() { "::" } else { "0.0.0.0" },
        "clientConnection": { "kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf" },
    });
    if let Some(pod) = &cfg.cluster.networking.pod_subnet {
        c["clusterCIDR"] = json!(pod);
    }
    if let Some(user) = &cfg.kube_proxy {
        let mut user = user.clone();
        yaml::normalize_numbers(&mut user);
        yaml::merge(&mut c, &user);
    }
    c
}

/// The kubeconfig kube-proxy uses inside its Pod (service-account token, cluster URL).
pub fn kubeconfig(cfg: &InitConfig) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "cluster": {
            "certificate-authority": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
            "server": cfg.cluster_url(),
        }, "name": "default" }],
        "contexts": [{ "context": { "cluster": "default", "namespace": "default",
                                    "user": "default" }, "name": "default" }],
        "current-context": "default",
        "users": [{ "name": "default", "user": {
            "tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
        } }],
    })
}

/// Every kube-proxy object, in the order kubeadm creates them.
pub fn objects(cfg: &InitConfig) -> Result<Vec<Value>, RenderError> {
    let sa = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": { "name": "kube-proxy", "namespace": "kube-system" },
    });
    let crb = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": { "name": "kubeadm:node-proxier" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "system:node-proxier" },
        "subjects": [{ "kind": "ServiceAccount", "name": "kube-proxy",
                       "namespace": "kube-system" }],
    });
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": { "name": "kube-proxy", "namespace": "kube-system" },
        "rules": [{ "apiGroups": [""], "resourceNames": ["kube-proxy"],
                    "resources": ["configmaps"], "verbs": ["get"] }],
    });
    let rb = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": { "name": "kube-proxy", "namespace": "kube-system" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "kube-proxy" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                       "name": BOOTSTRAPPERS }],
    });
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "labels": { "app": "kube-proxy" }, "name": "kube-proxy",
                      "namespace": "kube-system" },
        "data": {
            "config.conf": yaml::to_yaml(&config(cfg))?,
            "kubeconfig.conf": yaml::to_yaml(&kubeconfig(cfg))?,
        },
    });
    let ds = json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": { "labels": { "k8s-app": "kube-proxy" }, "name": "kube-proxy",
                      "namespace": "kube-system" },
        "spec": {
            "selector": { "matchLabels": { "k8s-app": "kube-proxy" } },
            "template": {
                "metadata": { "labels": { "k8s-app": "kube-proxy" } },
                "spec": {
                    "containers": [{
                        "command": [
                            "/usr/local/bin/kube-proxy",
                            "--config=/var/lib/kube-proxy/config.conf",
                            "--hostname-override=$(NODE_NAME)",
                        ],
                        "env": [{ "name": "NODE_NAME",
                                  "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } }],
                        "image": super::kubernetes_image(cfg, "kube-proxy"),
                        "imagePullPolicy": "IfNotPresent",
                        "name": "kube-proxy",
                        "securityContext": { "privileged": true },
                        "volumeMounts": [
                            { "mountPath": "/var/lib/kube-proxy", "name": "kube-proxy" },
                            { "mountPath": "/run/xtables.lock", "name": "xtables-lock" },
                            { "mountPath": "/lib/modules", "name": "lib-modules", "readOnly": true },
                        ],
                    }],
                    "hostNetwork": true,
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "kube-proxy",
                    "tolerations": [{ "operator": "Exists" }],
                    "volumes": [
                        { "configMap": { "name": "kube-proxy" }, "name": "kube-proxy" },
                        { "hostPath": { "path": "/run/xtables.lock", "type": "FileOrCreate" },
                          "name": "xtables-lock" },
                        { "hostPath": { "path": "/lib/modules" }, "name": "lib-modules" },
                    ],
                },
            },
            "updateStrategy": { "type": "RollingUpdate" },
        },
    });
    Ok(vec![sa, crb, role, rb, cm, ds])
}

//! The CoreDNS addon as kubeadm deploys it (`phases/addons/dns`): ServiceAccount,
//! ClusterRole and ClusterRoleBinding `system:coredns`, ConfigMap `coredns` with the
//! Corefile (a template users may replace), Deployment `coredns` (2 replicas), and Service
//! `kube-dns` at the tenth IP of the service CIDR, the address every kubelet's clusterDNS
//! points at.

use super::{RenderError, Templates, versions};
use crate::config::InitConfig;
use serde_json::{Value, json};

/// The CoreDNS image: `dns.imageRepository`, else `imageRepository`, plus the `coredns/`
/// path kubeadm adds only for the default registry (mirrors keep the flat name).
pub fn image(cfg: &InitConfig) -> Result<String, RenderError> {
    let profile = versions::profile(cfg.kubernetes_version)?;
    let repo = super::image_repository(cfg);
    let repo = match &cfg.cluster.dns.image_repository {
        Some(r) => r.clone(),
        None if repo == crate::config::DEFAULT_IMAGE_REPOSITORY => format!("{repo}/coredns"),
        None => repo.to_string(),
    };
    let tag = cfg
        .cluster
        .dns
        .image_tag
        .clone()
        .unwrap_or_else(|| profile.coredns_tag.to_string());
    Ok(format!("{repo}/coredns:{tag}"))
}

/// The Corefile (from the `Corefile.tera` template).
pub fn corefile(cfg: &InitConfig, templates: &Templates) -> Result<String, RenderError> {
    let profile = versions::profile(cfg.kubernetes_version)?;
    let mut ctx = tera::Context::new();
    ctx.insert("dns_domain", &cfg.dns_domain);
    ctx.insert("upstream", "/etc/resolv.conf");
    ctx.insert(
        "cache_excludes_cluster_domain",
        &profile.corefile_cache_excludes_cluster_domain,
    );
    templates.render("Corefile.tera", &ctx)
}

/// Every CoreDNS object, in the order kubeadm creates them.
pub fn objects(cfg: &InitConfig, templates: &Templates) -> Result<Vec<Value>, RenderError> {
    let sa = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": { "name": "coredns", "namespace": "kube-system" },
    });
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": { "name": "system:coredns" },
        "rules": [
            { "apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
              "verbs": ["list", "watch"] },
            { "apiGroups": [""], "resources": ["nodes"], "verbs": ["get"] },
            { "apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
              "verbs": ["list", "watch"] },
        ],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": { "name": "system:coredns" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "system:coredns" },
        "subjects": [{ "kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system" }],
    });
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "coredns", "namespace": "kube-system" },
        "data": { "Corefile": corefile(cfg, templates)? },
    });
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "labels": { "k8s-app": "kube-dns" }, "name": "coredns",
                      "namespace": "kube-system" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "k8s-app": "kube-dns" } },
            "strategy": { "rollingUpdate": { "maxUnavailable": 1 }, "type": "RollingUpdate" },
            "template": {
                "metadata": { "labels": { "k8s-app": "kube-dns" } },
                "spec": {
                    "affinity": { "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [{
                            "podAffinityTerm": {
                                "labelSelector": { "matchExpressions": [{
                                    "key": "k8s-app", "operator": "In", "values": ["kube-dns"],
                                }] },
                                "topologyKey": "kubernetes.io/hostname",
                            },
                            "weight": 100,
                        }],
                    } },
                    "containers": [{
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "image": image(cfg)?,
                        "imagePullPolicy": "IfNotPresent",
                        "livenessProbe": {
                            "failureThreshold": 5,
                            "httpGet": { "path": "/health", "port": 8080, "scheme": "HTTP" },
                            "initialDelaySeconds": 60,
                            "successThreshold": 1,
                            "timeoutSeconds": 5,
                        },
                        "name": "coredns",
                        "ports": [
                            { "containerPort": 53, "name": "dns", "protocol": "UDP" },
                            { "containerPort": 53, "name": "dns-tcp", "protocol": "TCP" },
                            { "containerPort": 9153, "name": "metrics", "protocol": "TCP" },
                        ],
                        "readinessProbe": {
                            "httpGet": { "path": "/ready", "port": 8181, "scheme": "HTTP" },
                        },
                        "resources": {
                            "limits": { "memory": "170Mi" },
                            "requests": { "cpu": "100m", "memory": "70Mi" },
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "capabilities": { "add": ["NET_BIND_SERVICE"], "drop": ["ALL"] },
                            "readOnlyRootFilesystem": true,
                        },
                        "volumeMounts": [{ "mountPath": "/etc/coredns", "name": "config-volume",
                                           "readOnly": true }],
                    }],
                    "dnsPolicy": "Default",
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    "tolerations": [
                        { "key": "CriticalAddonsOnly", "operator": "Exists" },
                        { "effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane" },
                    ],
                    "volumes": [{
                        "configMap": { "items": [{ "key": "Corefile", "path": "Corefile" }],
                                       "name": "coredns" },
                        "name": "config-volume",
                    }],
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "annotations": { "prometheus.io/port": "9153", "prometheus.io/scrape": "true" },
            "labels": { "k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                        "kubernetes.io/name": "CoreDNS" },
            "name": "kube-dns",
            "namespace": "kube-system",
        },
        "spec": {
            "clusterIP": cfg.dns_service_ip().to_string(),
            "ports": [
                { "name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53 },
                { "name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53 },
                { "name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153 },
            ],
            "selector": { "k8s-app": "kube-dns" },
        },
    });
    Ok(vec![sa, role, binding, config_map, deployment, service])
}

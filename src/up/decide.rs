//! What `up` decides from the facts: whether init is done (the API server answers and
//! init's last phases left their objects) and which hosts still join (prepare's facts and
//! the control-plane label). `--plan` prints these decisions and the run acts on them.

use crate::apiclient::ApiClient;
use crate::config::cluster::{Cluster, ClusterHost, Role};
use crate::host::Host;
use crate::kubeconfig::KubeConfig;
use std::path::Path;
use std::time::Duration;

/// The admin kubeconfig of an initialized control plane, if its API server answers.
pub(super) fn healthy_admin(host: &dyn Host) -> Option<(KubeConfig, ApiClient)> {
    let bytes = host
        .read_file(Path::new("/etc/kubernetes/admin.conf"))
        .ok()??;
    let kc = KubeConfig::parse(&String::from_utf8_lossy(&bytes)).ok()?;
    let client = ApiClient::from_kubeconfig_with_timeout(&kc, Duration::from_secs(5)).ok()?;
    client.wait_ready(Duration::from_secs(5)).ok()?;
    Some((kc, client.retrying(crate::apiclient::API_CALL_RETRY)))
}

/// What init's last phases leave in the cluster and that a finished init therefore has:
/// `(what, API path)`. An init that stopped earlier (say in wait-control-plane, with the
/// API server coming up only afterwards) lacks some, and is finished by running the
/// idempotent phases again.
pub(super) fn init_leaves(cluster: &Cluster) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        (
            "the kubeadm-config ConfigMap (upload-config)",
            "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        ),
        (
            "the kubeadm:cluster-admins binding (upload-config)",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:cluster-admins",
        ),
        (
            "the cluster-info ConfigMap (bootstrap-token)",
            "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        ),
        (
            "the kube-proxy DaemonSet (addon)",
            "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy",
        ),
        (
            "the CoreDNS Deployment (addon)",
            "/apis/apps/v1/namespaces/kube-system/deployments/coredns",
        ),
    ];
    if cluster.cni.name == "flannel" {
        v.push((
            "the flannel DaemonSet (cni)",
            "/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds",
        ));
    }
    v
}

/// What of [`init_leaves`] the cluster lacks (anything the admin cannot read counts as
/// lacking: the cluster-admins binding itself may be what is missing).
pub(super) fn init_missing(cluster: &Cluster, admin: &ApiClient) -> Vec<&'static str> {
    init_leaves(cluster)
        .into_iter()
        .filter(|(_, path)| !matches!(admin.get_opt(path), Ok(Some(_))))
        .map(|(what, _)| what)
        .collect()
}

/// What `up` does with a further host, decided from the facts prepare gathered (one
/// round trip per host) and the cluster: `--plan` prints these and the run acts on them,
/// so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JoinDecision {
    /// In the cluster already: nothing to do (no SSH connection either).
    Joined,
    /// To join; `resume`: its kubelet joined in an earlier run that stopped before the
    /// control-plane phases finished (preflight would only see that run's files).
    Join { resume: bool },
    /// prepare failed or could not reach it.
    NotPrepared,
}

/// The cluster as `up` sees it when deciding joins: the admin client, and (asked only
/// when a further control plane otherwise looks joined) the names of etcd's voting
/// members, read with the first control plane's etcd client certificates.
pub(super) struct ClusterView<'a> {
    admin: &'a ApiClient,
    first: &'a dyn Host,
    voters: std::sync::OnceLock<Option<Vec<String>>>,
}

impl<'a> ClusterView<'a> {
    pub(super) fn new(admin: &'a ApiClient, first: &'a dyn Host) -> Self {
        ClusterView {
            admin,
            first,
            voters: std::sync::OnceLock::new(),
        }
    }

    /// etcd's voting members by name; `None` when etcd cannot be asked (then the
    /// control-plane label alone decides, as before).
    fn voters(&self) -> Option<&[String]> {
        self.voters
            .get_or_init(|| {
                let urls = crate::phases::join_cp::annotated_etcd_urls(self.admin).ok()?;
                if urls.is_empty() {
                    return None;
                }
                let etcd = crate::etcdclient::EtcdClient::from_cert_dir(
                    self.first,
                    Path::new(crate::config::DEFAULT_CERT_DIR),
                    urls,
                )
                .ok()?;
                let members = etcd.member_list().ok()?;
                Some(
                    members
                        .into_iter()
                        .filter(|m| !m.is_learner && !m.name.is_empty())
                        .map(|m| m.name)
                        .collect(),
                )
            })
            .as_deref()
    }
}

/// A worker has joined once its kubelet has kubelet.conf; a control plane once it also
/// has its etcd member's manifest, the Node carries the control-plane label (set by
/// join's last phase) and its etcd member votes. The label alone can mislead: a Node
/// outlives `reset` with its labels, so a control plane reset and then re-joined by a run
/// that stopped with its member still a learner would look done.
pub(super) fn decide_join(
    h: &ClusterHost,
    report: Option<&crate::playbook::HostReport>,
    view: Option<&ClusterView>,
) -> JoinDecision {
    let Some(f) = report
        .filter(|r| !r.failed())
        .and_then(|r| r.facts.as_ref())
    else {
        return JoinDecision::NotPrepared;
    };
    let done = f.kubelet_conf
        && (h.role == Role::Worker
            || (f.etcd_manifest
                && view.is_some_and(|v| {
                    marked_control_plane(v.admin, &h.name)
                        && v.voters().is_none_or(|names| names.contains(&h.name))
                })));
    if done {
        JoinDecision::Joined
    } else {
        JoinDecision::Join {
            resume: f.kubelet_conf,
        }
    }
}

/// Whether the Node carries the control-plane label, which the last phase of a
/// control-plane join (mark-control-plane) sets: a join that stopped earlier (e.g. at
/// wait-control-plane) is run again, not taken as done.
pub(super) fn marked_control_plane(admin: &ApiClient, node: &str) -> bool {
    admin
        .get_opt(&format!("/api/v1/nodes/{node}"))
        .ok()
        .flatten()
        .is_some_and(|n| {
            n["metadata"]["labels"]
                .get("node-role.kubernetes.io/control-plane")
                .is_some()
        })
}

//! The values join's phases share (worker and control-plane alike), apart from the
//! phases so that both phase files use them without importing each other.

use crate::apiclient::ApiClient;
use crate::config::LocalFacts;
use crate::config::join::JoinConfig;
use crate::host::Host;
use crate::kubeconfig::KubeConfig;
use std::time::Duration;

/// The bootstrap kubeconfig the kubelet uses for its TLS bootstrap.
pub const BOOTSTRAP_KUBELET_CONF: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
/// The kubelet's kubeconfig once bootstrapped.
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";

/// What the join phases work with.
pub struct JoinContext<'a> {
    pub cfg: &'a JoinConfig,
    pub host: &'a dyn Host,
    pub local: &'a dyn LocalFacts,
    pub skip: Vec<String>,
    /// Preflight checks whose errors become warnings.
    pub ignore_preflight_errors: Vec<String>,
    /// Where preflight finds containerd to check (and pull) this node's images.
    pub containerd: crate::images::Containerd,
    /// The cluster's CNI (`flannel`, `none`, ...) when known; `None` means what `init`
    /// installs for the cluster's settings (flannel when it has a pod CIDR).
    pub cni: Option<String>,
}

/// What join found out, for the summary.
#[derive(Debug)]
pub struct Joined {
    pub server: String,
    pub node_name: String,
    pub took: Duration,
}

/// What the phases after discovery share: the trusted cluster-info, a client with the
/// bootstrap token, and this node's configuration within the cluster.
pub struct Discovered {
    pub cluster_info: KubeConfig,
    pub bootstrap: KubeConfig,
    pub client: ApiClient,
    pub node_cfg: crate::config::InitConfig,
}

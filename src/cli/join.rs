//! `kubeboot join`.

use super::flags::*;
use crate::config::{self, ThisMachine};
use crate::host::Host;
use crate::secret::Secret;
use clap::Args;
use std::path::PathBuf;

/// `kubeboot join`. The tokens and the certificate key are [`Secret`]s: `Debug` redacts them.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The API server to join through: host:port (as printed by `token create --print-join-command`).
    pub endpoint: Option<String>,
    /// Path to a kubeadm JoinConfiguration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The bootstrap token (for discovery and the TLS bootstrap).
    #[arg(long, env = "KUBEBOOT_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
    /// The token for discovery only (wins over --token there).
    #[arg(long, value_name = "TOKEN")]
    pub discovery_token: Option<Secret>,
    /// The token for the kubelet's TLS bootstrap only (wins over --token there).
    #[arg(long, value_name = "TOKEN")]
    pub tls_bootstrap_token: Option<Secret>,
    /// Pin the cluster CA: sha256:<hex> of its public key (repeatable).
    #[arg(long = "discovery-token-ca-cert-hash", value_name = "sha256:HEX")]
    pub ca_cert_hashes: Vec<String>,
    /// Trust the cluster without pinning its CA (explicit opt-out; not recommended).
    #[arg(long)]
    pub discovery_token_unsafe_skip_ca_verification: bool,
    /// Discover the cluster from a kubeconfig file (server + CA) instead of a token.
    #[arg(long, value_name = "FILE")]
    pub discovery_file: Option<String>,
    /// How long to wait for the cluster-info signature.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub discovery_timeout: Option<std::time::Duration>,
    /// This node's name (default: the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The container runtime's socket.
    #[arg(long, value_name = "URL")]
    pub cri_socket: Option<String>,
    /// Phases to skip: preflight, control-plane-prepare, check-etcd, kubelet-start,
    /// etcd-join, kubelet-wait-bootstrap, wait-control-plane, control-plane-join (or
    /// `all`).
    #[arg(long, value_delimiter = ',')]
    pub skip_phases: Vec<String>,
    /// Join as another control plane (API server, controller-manager, scheduler and an
    /// etcd member on this node).
    #[arg(long)]
    pub control_plane: bool,
    /// With --control-plane: the key that decrypts the certificates uploaded with
    /// `init --upload-certs` / `init phase upload-certs --upload-certs`.
    #[arg(
        long,
        value_name = "HEX",
        env = "KUBEBOOT_CERTIFICATE_KEY",
        hide_env_values = true
    )]
    pub certificate_key: Option<Secret>,
    /// With --control-plane: the IP address this API server advertises.
    #[arg(long, value_name = "IP")]
    pub apiserver_advertise_address: Option<String>,
    /// With --control-plane: the port this API server binds to (default 6443).
    #[arg(long, value_name = "PORT", value_parser = config::parse_port)]
    pub apiserver_bind_port: Option<u16>,
    /// Preflight checks whose errors become warnings (names as reported, or `all`).
    #[arg(long, value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    #[command(flatten)]
    pub out: OutputFlag,
}

pub fn run_join(host: &dyn Host, a: JoinArgs) -> anyhow::Result<()> {
    a.out.apply();
    let o = config::join::JoinOverrides {
        endpoint: a.endpoint,
        token: a.token,
        discovery_token: a.discovery_token,
        tls_bootstrap_token: a.tls_bootstrap_token,
        ca_cert_hashes: a.ca_cert_hashes,
        unsafe_skip_ca_verification: a.discovery_token_unsafe_skip_ca_verification,
        discovery_file: a.discovery_file,
        node_name: a.node_name,
        cri_socket: a.cri_socket,
        discovery_timeout: a.discovery_timeout,
        control_plane: a.control_plane,
        certificate_key: a.certificate_key,
        apiserver_advertise_address: a.apiserver_advertise_address,
        apiserver_bind_port: a.apiserver_bind_port,
    };
    let cfg = config::join::JoinConfig::load(a.config.as_deref(), &o, &ThisMachine)?;
    let ctx = crate::phases::join::JoinContext {
        cfg: &cfg,
        host,
        local: &ThisMachine,
        skip: a.skip_phases,
        ignore_preflight_errors: a.ignore_preflight_errors,
        containerd: crate::images::Containerd::from_env(),
        cni: None,
    };
    let joined = crate::phases::join::run(&ctx)?;
    if crate::output::json() {
        crate::output::done(serde_json::json!({
            "command": "join",
            "node": joined.node_name,
            "server": joined.server,
            "controlPlane": cfg.control_plane.is_some(),
            "elapsedMs": joined.took.as_millis(),
        }));
        return Ok(());
    }
    if cfg.control_plane.is_some() {
        println!(
            "\nThis node ({}) has joined the cluster at {} as a control plane in {:.1}s:\n* The shared certificates are in place and this node's own were signed by the cluster's CAs.\n* A new etcd member was added to the local etcd cluster and promoted to a voting member.\n* A new control plane instance was created: its API server answers and the node is labelled and tainted as a control plane.\n\nTo start administering your cluster from this node, run as a regular user:\n\n  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n\nRun 'kubectl get nodes' to see this node join the cluster.",
            joined.node_name,
            joined.server,
            joined.took.as_secs_f64()
        );
        return Ok(());
    }
    println!(
        "\nThis node ({}) has joined the cluster at {} in {:.1}s:\n* Certificate signing request was sent to the API server and a response was received.\n* The kubelet was informed of the new secure connection details.\n\nRun 'kubectl get nodes' on a control-plane node to see this node join the cluster.",
        joined.node_name,
        joined.server,
        joined.took.as_secs_f64()
    );
    Ok(())
}

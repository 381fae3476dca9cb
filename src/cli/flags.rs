//! Flags several commands share, and the contexts they turn into.

use crate::apiclient::ApiClient;
use crate::config::{self, InitConfig, InitOverrides, ThisMachine};
use crate::host::Host;
use crate::kubeconfig::KubeConfig;
use crate::phases::init::InitContext;
use crate::pki::ensure::CertOptions;
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// `-o json`: JSON events on stdout instead of text lines (see [`crate::output`]).
#[derive(Debug, Args, Clone)]
pub struct OutputFlag {
    /// Output format: kubeadm-style text lines, or one JSON event per line (the events
    /// `prepare` and `up` emit).
    #[arg(short, long, value_enum, default_value_t = crate::prepare::PrepareOutput::Text)]
    pub output: crate::prepare::PrepareOutput,
}

impl OutputFlag {
    /// Switches the process's output channel to JSON when asked.
    pub fn apply(&self) {
        crate::output::set_json(self.output == crate::prepare::PrepareOutput::Json);
    }
}

/// kubeadm's `--cri-socket`: `nodeRegistration.criSocket`.
#[derive(Debug, Args, Clone, Default)]
pub struct CriSocketFlag {
    /// The container runtime's socket, for the kubelet (containerRuntimeEndpoint) and the
    /// preflight image checks [default: unix:///var/run/containerd/containerd.sock].
    #[arg(long, value_name = "URL")]
    pub cri_socket: Option<String>,
}

/// kubeadm's `--kubeconfig` on the init phases that talk to the cluster.
#[derive(Debug, Args, Clone, Default)]
pub struct AdminKubeconfigFlag {
    /// The kubeconfig to talk to the cluster with [default: admin.conf in --kubeconfig-dir,
    /// given its rights through super-admin.conf on a new cluster].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// How to reach the cluster's API server.
#[derive(Debug, Args, Clone)]
pub struct ApiFlags {
    /// kubeconfig with the credentials to use.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/kubernetes/admin.conf"
    )]
    pub kubeconfig: PathBuf,
}

/// Flags of the init phases that talk to the new cluster.
#[derive(Debug, Args, Clone)]
pub struct ClusterPhaseFlags {
    #[command(flatten)]
    pub init: InitFlags,
    /// Where the kubeconfig files (admin.conf, super-admin.conf) are.
    #[arg(long, value_name = "DIR", default_value = config::DEFAULT_KUBECONFIG_DIR)]
    pub kubeconfig_dir: PathBuf,
}

/// kubeadm's `init` flags; each overrides the config file.
#[derive(Debug, Args, Clone, Default)]
pub struct InitFlags {
    /// Path to a kubeadm config file (kubeadm.k8s.io/v1beta4 InitConfiguration and
    /// ClusterConfiguration, optionally KubeletConfiguration and KubeProxyConfiguration).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The IP address the API server advertises (default: the address of the default route's interface).
    #[arg(long, value_name = "IP")]
    pub apiserver_advertise_address: Option<String>,
    /// Port the API server binds to (default 6443).
    #[arg(long, value_name = "PORT", value_parser = config::parse_port)]
    pub apiserver_bind_port: Option<u16>,
    /// A stable address for the control plane: host or host:port (a load balancer or DNS name).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub control_plane_endpoint: Option<String>,
    /// Extra SANs for the API server certificate (IPs or DNS names, comma-separated).
    #[arg(long, value_name = "SANS", value_delimiter = ',')]
    pub apiserver_cert_extra_sans: Vec<String>,
    /// IP range for Service VIPs (default 10.96.0.0/12).
    #[arg(long, value_name = "CIDR")]
    pub service_cidr: Option<String>,
    /// DNS domain of Services (default cluster.local).
    #[arg(long, value_name = "DOMAIN")]
    pub service_dns_domain: Option<String>,
    /// IP range for Pods; sets the controller-manager's node CIDR allocation.
    #[arg(long, value_name = "CIDR")]
    pub pod_network_cidr: Option<String>,
    /// The node's name (default: the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Where certificates are stored (default /etc/kubernetes/pki).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<String>,
    /// Kubernetes version to set up (default v1.34.2; supported v1.31-v1.34).
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
}

/// kubeadm's `--image-repository` (on init and the phases that render images).
#[derive(Debug, Args, Clone, Default)]
pub struct ImageRepositoryFlag {
    /// Registry (and path) to take the control-plane, etcd, pause, kube-proxy and CoreDNS
    /// images from, instead of the config's imageRepository [default: registry.k8s.io].
    #[arg(long, value_name = "REPOSITORY")]
    pub image_repository: Option<String>,
}

impl InitFlags {
    /// The configuration with `--image-repository` applied too.
    pub fn load_with(&self, images: &ImageRepositoryFlag) -> anyhow::Result<InitConfig> {
        self.load_edit(|o| o.image_repository = images.image_repository.clone())
    }

    /// The configuration with more flags (`--image-repository`, `--cri-socket`, ...) set
    /// by `edit`.
    pub fn load_edit(&self, edit: impl FnOnce(&mut InitOverrides)) -> anyhow::Result<InitConfig> {
        let mut o = self.overrides();
        edit(&mut o);
        Ok(InitConfig::load(self.config.as_deref(), &o, &ThisMachine)?)
    }

    fn overrides(&self) -> InitOverrides {
        InitOverrides {
            advertise_address: self.apiserver_advertise_address.clone(),
            bind_port: self.apiserver_bind_port,
            control_plane_endpoint: self.control_plane_endpoint.clone(),
            cert_extra_sans: self.apiserver_cert_extra_sans.clone(),
            service_cidr: self.service_cidr.clone(),
            service_dns_domain: self.service_dns_domain.clone(),
            pod_network_cidr: self.pod_network_cidr.clone(),
            node_name: self.node_name.clone(),
            cert_dir: self.cert_dir.clone(),
            kubernetes_version: self.kubernetes_version.clone(),
            ..Default::default()
        }
    }

    pub fn load(&self) -> anyhow::Result<InitConfig> {
        Ok(InitConfig::load(
            self.config.as_deref(),
            &self.overrides(),
            &ThisMachine,
        )?)
    }
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    config::duration::GoDuration::parse(s).map(|d| d.0)
}

pub fn api_client(host: &dyn Host, api: &ApiFlags) -> anyhow::Result<(ApiClient, KubeConfig)> {
    let bytes = host.read_file(&api.kubeconfig)?.with_context(|| {
        format!(
            "{} does not exist: run on a control-plane node, or pass --kubeconfig",
            api.kubeconfig.display()
        )
    })?;
    let kc = KubeConfig::parse(&String::from_utf8_lossy(&bytes))
        .map_err(|e| anyhow::anyhow!("{}: {e}", api.kubeconfig.display()))?;
    let client = ApiClient::from_kubeconfig(&kc)
        .with_context(|| format!("kubeconfig {}", api.kubeconfig.display()))?;
    Ok((client, kc))
}

pub fn file_ctx<'a>(cfg: &'a InitConfig, host: &'a dyn Host) -> InitContext<'a> {
    InitContext {
        cfg,
        host,
        kubeconfig_dir: config::DEFAULT_KUBECONFIG_DIR.into(),
        cert_options: CertOptions::default(),
    }
}

pub fn cluster_ctx<'a>(
    cfg: &'a InitConfig,
    host: &'a dyn Host,
    f: &ClusterPhaseFlags,
) -> InitContext<'a> {
    InitContext {
        cfg,
        host,
        kubeconfig_dir: f.kubeconfig_dir.clone(),
        cert_options: CertOptions::default(),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

/// Placeholder facts for `config print init-defaults`, as kubeadm prints them.
pub struct PlaceholderNode;

impl crate::config::LocalFacts for PlaceholderNode {
    fn hostname(&self) -> Option<String> {
        Some("node".into())
    }
    fn default_address(&self) -> Option<std::net::IpAddr> {
        Some(std::net::IpAddr::from([1, 2, 3, 4]))
    }
}

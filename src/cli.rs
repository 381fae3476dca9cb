//! The command line: clap definitions and the dispatch from a parsed command to the
//! module that does the work. Flags become typed overrides here; nothing below `config`
//! reads flags.

use crate::apiclient::ApiClient;
use crate::config::{self, InitConfig, InitOverrides, ThisMachine};
use crate::host::{Host, LocalHost};
use crate::kubeconfig::KubeConfig;
use crate::phases::init::{self as init_phases, InitContext};
use crate::pki::ensure::CertOptions;
use crate::token::BootstrapToken;
use crate::{kubeconfig, pki};
use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

/// Top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "kubeboot",
    version,
    about = "Bootstrap Kubernetes clusters the way kubeadm does: on a node, or over SSH",
    propagate_version = true
)]
pub struct Cli {
    /// Treat DIR as the node's root filesystem: every file kubeboot reads or writes goes
    /// under it (for trying things out and for tests). Commands still run on this machine.
    #[arg(long, global = true, value_name = "DIR", env = "KUBEBOOT_ROOT")]
    pub root: Option<PathBuf>,

    /// More log output on stderr (-v, -vv). KUBEBOOT_LOG=debug works too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// Every top-level command kubeboot exposes. Only commands that work are listed.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up a control-plane node: every phase in order, or one (`kubeboot init phase <name>`).
    Init(Box<InitCommand>),
    /// Join this node to a cluster: discovery pinned by the CA hash, then kubelet TLS bootstrap.
    Join(JoinArgs),
    /// Undo init/join on this node: kubelet, static Pods, etcd data, PKI, kubeconfigs,
    /// kubelet state, CNI config, Kubernetes/flannel iptables and nftables rules.
    Reset(ResetArgs),
    /// Inspect and renew the cluster's certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Manage bootstrap tokens (create, list, delete, generate).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Local test hosts: Debian systemd-nspawn nodes with SSH (up, down, status, ssh).
    Lab(crate::lab::LabArgs),
    /// Inspect and check kubeadm-style configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Render every file `init` would write (manifests, kubelet, containerd, addons) into a
    /// directory, for review or debugging; nothing on this machine is changed.
    Render(RenderArgs),
    /// Prepare hosts over SSH for Kubernetes: swap off, modules, sysctls, containerd, kubelet.
    Prepare(crate::prepare::PrepareArgs),
    /// A whole cluster from one inventory over SSH: prepare all, init the first control
    /// plane, join the workers (`--plan` shows what each host would get).
    Up(Box<crate::up::UpArgs>),
    /// Print the kubeboot version.
    Version {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = VersionFormat::Short)]
        output: VersionFormat,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VersionFormat {
    Short,
    Json,
}

/// `kubeboot init`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct InitCommand {
    #[command(subcommand)]
    pub command: Option<InitSubcommand>,
    #[command(flatten)]
    pub run: InitRunArgs,
}

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

/// Flags of a whole `kubeboot init`.
#[derive(Debug, Args, Clone)]
pub struct InitRunArgs {
    #[command(flatten)]
    pub flags: InitFlags,
    #[command(flatten)]
    pub images: ImageRepositoryFlag,
    /// Phases to skip (preflight, certs, kubeconfig, etcd, control-plane, kubelet-start,
    /// wait-control-plane, upload-config, upload-certs, mark-control-plane,
    /// bootstrap-token, kubelet-finalize, addon, cni, show-join-command), or part of one
    /// (`addon/kube-proxy`, `certs/etcd-ca`); `all` skips every phase.
    #[arg(long, value_delimiter = ',')]
    pub skip_phases: Vec<String>,
    /// Preflight checks whose errors become warnings (names as reported, or `all`).
    #[arg(long, value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    /// Render every file into a temporary directory and list it; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The interface flannel uses between hosts (multi-NIC hosts such as Vagrant VMs).
    #[arg(long, value_name = "IFACE")]
    pub flannel_iface: Option<String>,
    /// How long mark-control-plane waits for this node's Node object.
    #[arg(long, default_value = "4m", value_parser = parse_duration)]
    pub node_wait: std::time::Duration,
    #[command(flatten)]
    pub upload: UploadCertsFlags,
    #[command(flatten)]
    pub token: InitTokenFlags,
    #[command(flatten)]
    pub cri: CriSocketFlag,
    #[command(flatten)]
    pub out: OutputFlag,
}

/// kubeadm's `init` flags for the first bootstrap token (`bootstrapTokens[0]`).
#[derive(Debug, Args, Clone, Default)]
pub struct InitTokenFlags {
    /// The bootstrap token to create (`[a-z0-9]{6}.[a-z0-9]{16}`); generated when omitted.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Lifetime of that token before it is deleted automatically, Go syntax (1s, 2m, 3h);
    /// 0 = it never expires [default: 24h0m0s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub token_ttl: Option<std::time::Duration>,
    /// Do not print the token: the join commands show `<value withheld>` in its place.
    #[arg(long)]
    pub skip_token_print: bool,
}

/// kubeadm's `--cri-socket`: `nodeRegistration.criSocket`.
#[derive(Debug, Args, Clone, Default)]
pub struct CriSocketFlag {
    /// The container runtime's socket, for the kubelet (containerRuntimeEndpoint) and the
    /// preflight image checks [default: unix:///var/run/containerd/containerd.sock].
    #[arg(long, value_name = "URL")]
    pub cri_socket: Option<String>,
}

/// kubeadm's `--<component>-extra-args` on `init phase control-plane`.
#[derive(Debug, Args, Clone, Default)]
pub struct ExtraArgsFlags {
    /// Extra kube-apiserver flags, `name=value` (comma-separated); they win over
    /// `apiServer.extraArgs` of the same name.
    #[arg(long, value_name = "NAME=VALUE", value_delimiter = ',', value_parser = parse_pair)]
    pub apiserver_extra_args: Vec<(String, String)>,
    /// Extra kube-controller-manager flags, `name=value` (comma-separated).
    #[arg(long, value_name = "NAME=VALUE", value_delimiter = ',', value_parser = parse_pair)]
    pub controller_manager_extra_args: Vec<(String, String)>,
    /// Extra kube-scheduler flags, `name=value` (comma-separated).
    #[arg(long, value_name = "NAME=VALUE", value_delimiter = ',', value_parser = parse_pair)]
    pub scheduler_extra_args: Vec<(String, String)>,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => {
            Ok((k.trim().trim_start_matches("--").to_string(), v.to_string()))
        }
        _ => Err(format!("{s:?} is not name=value (e.g. v=4)")),
    }
}

/// kubeadm's `--kubeconfig` on the init phases that talk to the cluster.
#[derive(Debug, Args, Clone, Default)]
pub struct AdminKubeconfigFlag {
    /// The kubeconfig to talk to the cluster with [default: admin.conf in --kubeconfig-dir,
    /// given its rights through super-admin.conf on a new cluster].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// `--upload-certs` and its key (init and `init phase upload-certs`).
#[derive(Debug, Args, Clone, Default)]
pub struct UploadCertsFlags {
    /// Upload the certificates every control plane shares to the kubeadm-certs Secret
    /// (encrypted, deleted after two hours), for `join --control-plane --certificate-key`.
    #[arg(long)]
    pub upload_certs: bool,
    /// The key (64 hex digits) to encrypt them with; a new one is generated when omitted.
    #[arg(
        long,
        value_name = "HEX",
        env = "KUBEBOOT_CERTIFICATE_KEY",
        hide_env_values = true
    )]
    pub certificate_key: Option<String>,
    /// Do not print the key.
    #[arg(long)]
    pub skip_certificate_key_print: bool,
}

impl UploadCertsFlags {
    /// Refuses a malformed `--certificate-key` before anything runs (without echoing it:
    /// it is a secret).
    fn check(&self) -> anyhow::Result<()> {
        if let Some(k) = &self.certificate_key {
            crate::copycerts::parse_certificate_key(k).context("--certificate-key")?;
        }
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
pub enum InitSubcommand {
    /// Run one phase of init on its own.
    #[command(subcommand)]
    Phase(InitPhase),
}

#[derive(Debug, Subcommand)]
pub enum InitPhase {
    /// Generate the cluster PKI: `all`, one certificate (ca, apiserver, ...), or `sa`.
    Certs {
        /// Which certificate: all, ca, apiserver, apiserver-kubelet-client, front-proxy-ca,
        /// front-proxy-client, etcd-ca, etcd-server, etcd-peer, etcd-healthcheck-client,
        /// apiserver-etcd-client, sa.
        #[arg(default_value = "all", value_parser = clap::builder::PossibleValuesParser::new(init_phases::cert_phase_names()))]
        which: String,
        #[command(flatten)]
        flags: InitFlags,
        /// Replace leaf certificates that are invalid for the configuration (wrong SANs,
        /// corrupt, expired, not signed by the CA). CAs are never replaced.
        #[arg(long)]
        force: bool,
    },
    /// Write kubeconfig files: `all`, admin, super-admin, kubelet, controller-manager or scheduler.
    Kubeconfig {
        #[arg(default_value = "all", value_parser = clap::builder::PossibleValuesParser::new(init_phases::kubeconfig_phase_names()))]
        which: String,
        #[command(flatten)]
        flags: InitFlags,
        /// Where kubeconfig files are written.
        #[arg(long, value_name = "DIR", default_value = config::DEFAULT_KUBECONFIG_DIR)]
        kubeconfig_dir: PathBuf,
    },
    /// Check that this machine can become a control plane.
    Preflight {
        #[command(flatten)]
        flags: InitFlags,
        #[command(flatten)]
        images: ImageRepositoryFlag,
        #[command(flatten)]
        cri: CriSocketFlag,
        /// Checks whose errors become warnings (or `all`).
        #[arg(long, value_delimiter = ',')]
        ignore_preflight_errors: Vec<String>,
    },
    /// Write the kubelet's configuration and flags, and (re)start it.
    KubeletStart {
        #[command(flatten)]
        flags: InitFlags,
        #[command(flatten)]
        images: ImageRepositoryFlag,
        #[command(flatten)]
        cri: CriSocketFlag,
    },
    /// Point kubelet.conf at the kubelet's rotated client certificate.
    KubeletFinalize(ClusterPhaseFlags),
    /// Wait until the API server answers /readyz.
    WaitControlPlane(ClusterPhaseFlags),
    /// Label and taint this node as a control plane (waits for its Node to register).
    MarkControlPlane {
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        /// How long to wait for the Node object.
        #[arg(long, default_value = "4m", value_parser = parse_duration)]
        node_wait: std::time::Duration,
    },
    /// Bootstrap tokens, node-bootstrap RBAC and the public cluster-info ConfigMap.
    BootstrapToken {
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        #[command(flatten)]
        admin: AdminKubeconfigFlag,
    },
    /// Upload the shared certificates (CAs, service-account keys) to the kubeadm-certs
    /// Secret, encrypted with a certificate key (needs --upload-certs).
    UploadCerts {
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        #[command(flatten)]
        upload: UploadCertsFlags,
        #[command(flatten)]
        admin: AdminKubeconfigFlag,
    },
    /// Write the local etcd static Pod manifest (`local`).
    Etcd {
        #[arg(default_value = "local", value_parser = ["local"])]
        which: String,
        #[command(flatten)]
        flags: InitFlags,
        #[command(flatten)]
        images: ImageRepositoryFlag,
    },
    /// Write the control-plane static Pod manifests: all, apiserver, controller-manager, scheduler.
    ControlPlane {
        #[arg(default_value = "all", value_parser = ["all", "apiserver", "controller-manager", "scheduler"])]
        which: String,
        #[command(flatten)]
        flags: InitFlags,
        #[command(flatten)]
        images: ImageRepositoryFlag,
        #[command(flatten)]
        extra: ExtraArgsFlags,
    },
    /// Upload the kubeadm-config and kubelet-config ConfigMaps: all, kubeadm, kubelet.
    UploadConfig {
        #[arg(default_value = "all", value_parser = ["all", "kubeadm", "kubelet"])]
        which: String,
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        #[command(flatten)]
        admin: AdminKubeconfigFlag,
    },
    /// Install the essential addons: all, coredns, kube-proxy.
    Addon {
        #[arg(default_value = "all", value_parser = ["all", "coredns", "kube-proxy"])]
        which: String,
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        #[command(flatten)]
        images: ImageRepositoryFlag,
        #[command(flatten)]
        admin: AdminKubeconfigFlag,
    },
    /// Install the pod network (flannel) for the pod CIDR.
    Cni {
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        /// The interface flannel uses between hosts (multi-NIC hosts such as Vagrant VMs).
        #[arg(long, value_name = "IFACE")]
        flannel_iface: Option<String>,
    },
}

/// `kubeboot reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
    /// Reset the hosts of this inventory over SSH instead of this machine.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// With --file: only these hosts (names, comma-separated).
    #[arg(long, value_delimiter = ',', requires = "file")]
    pub hosts: Vec<String>,
    /// Also revert what `kubeboot prepare` changed (packages, files, sysctls, swap, services),
    /// from the record prepare kept on each host.
    #[arg(long)]
    pub deep: bool,
    /// With --file: record host keys of hosts not in known_hosts instead of refusing them.
    #[arg(long, requires = "file")]
    pub accept_new_host_keys: bool,
    /// The node's certificate directory.
    #[arg(long, value_name = "DIR", default_value = config::DEFAULT_CERT_DIR)]
    pub cert_dir: String,
    /// The local etcd's data directory.
    #[arg(long, value_name = "DIR", default_value = config::DEFAULT_ETCD_DATA_DIR)]
    pub etcd_data_dir: String,
    /// Phases to skip: preflight (the confirmation and the root check),
    /// remove-etcd-member, cleanup-node (everything reset removes on the node) or one of
    /// its steps (`cleanup-node/remove-iptables-rules`); `all` skips every phase.
    #[arg(long, value_delimiter = ',')]
    pub skip_phases: Vec<String>,
    /// Preflight checks whose errors become warnings (IsPrivilegedUser, or `all`).
    #[arg(long, value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    /// containerd's socket, whose Kubernetes containers (namespace k8s.io) reset removes
    /// [default: /run/containerd/containerd.sock].
    #[arg(long, value_name = "URL")]
    pub cri_socket: Option<String>,
    #[command(flatten)]
    pub out: OutputFlag,
}

/// `kubeboot join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The API server to join through: host:port (as printed by `token create --print-join-command`).
    pub endpoint: Option<String>,
    /// Path to a kubeadm JoinConfiguration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The bootstrap token (for discovery and the TLS bootstrap).
    #[arg(long, env = "KUBEBOOT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The token for discovery only (wins over --token there).
    #[arg(long, value_name = "TOKEN")]
    pub discovery_token: Option<String>,
    /// The token for the kubelet's TLS bootstrap only (wins over --token there).
    #[arg(long, value_name = "TOKEN")]
    pub tls_bootstrap_token: Option<String>,
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
    pub certificate_key: Option<String>,
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

/// `kubeboot token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token on the cluster (prints it, or the whole join command).
    Create {
        /// The token to create (`[a-z0-9]{6}.[a-z0-9]{16}`); generated when omitted.
        token: Option<String>,
        /// Lifetime before the token is deleted automatically, Go syntax; 0 = never
        /// [default: 24h0m0s].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
        /// A human-friendly description of what the token is for.
        #[arg(long)]
        description: Option<String>,
        /// Extra groups the token authenticates as (system:bootstrappers:...)
        /// [default: system:bootstrappers:kubeadm:default-node-token].
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// How the token may be used [default: signing,authentication].
        #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(crate::token::USAGES))]
        usages: Vec<String>,
        /// A kubeadm config file: the first `bootstrapTokens` entry of its
        /// InitConfiguration gives the token and its settings; flags given win over it.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the whole `kubeboot join` command instead of only the token.
        #[arg(long)]
        print_join_command: bool,
        /// With --print-join-command: print the control-plane variant with this
        /// certificate key (from `init phase upload-certs --upload-certs`).
        #[arg(long, value_name = "HEX", requires = "print_join_command")]
        certificate_key: Option<String>,
        #[command(flatten)]
        api: ApiFlags,
    },
    /// List bootstrap tokens (kubeadm's columns, or JSON).
    List {
        #[arg(short, long, value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Delete bootstrap tokens by id or full token.
    Delete {
        #[arg(required = true)]
        tokens: Vec<String>,
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Print a new random token without creating it.
    Generate,
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
    fn load_with(&self, images: &ImageRepositoryFlag) -> anyhow::Result<InitConfig> {
        self.load_edit(|o| o.image_repository = images.image_repository.clone())
    }

    /// The configuration with more flags (`--image-repository`, `--cri-socket`, ...) set
    /// by `edit`.
    fn load_edit(&self, edit: impl FnOnce(&mut InitOverrides)) -> anyhow::Result<InitConfig> {
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

    fn load(&self) -> anyhow::Result<InitConfig> {
        Ok(InitConfig::load(
            self.config.as_deref(),
            &self.overrides(),
            &ThisMachine,
        )?)
    }
}

/// `kubeboot certs`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List when each certificate and CA expires (kubeadm's tables, or JSON).
    CheckExpiration {
        #[command(flatten)]
        dirs: CertDirs,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
    },
    /// Re-sign certificates with the CA on disk, keeping their names (`all` or one name).
    Renew {
        /// all, a certificate (apiserver, etcd-server, ...) or a kubeconfig (admin.conf, ...).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(renew_names()))]
        which: String,
        #[command(flatten)]
        dirs: CertDirs,
        /// Validity of the renewed certificates, Go syntax (default 8760h = 1 year).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        validity: Option<std::time::Duration>,
        /// Renew nothing: write a certificate signing request and a new key for each
        /// certificate (<name>.csr, <name>.key) for an external CA to sign. The new key
        /// replaces the old one there: put the signed certificate beside it next.
        #[arg(long)]
        csr_only: bool,
        /// Where --csr-only writes the requests and keys [default: the cert dir].
        #[arg(long, value_name = "DIR", requires = "csr_only")]
        csr_dir: Option<PathBuf>,
    },
    /// Print a new random certificate key (64 hex digits) for `init --upload-certs
    /// --certificate-key` and `join --control-plane --certificate-key`.
    CertificateKey,
    /// Print the CA public-key hash for `--discovery-token-ca-cert-hash` (sha256:<hex>).
    CaHash {
        /// Where certificates are stored.
        #[arg(long, value_name = "DIR", default_value = config::DEFAULT_CERT_DIR)]
        cert_dir: PathBuf,
    },
}

/// Where `certs` subcommands look for files.
#[derive(Debug, Args)]
pub struct CertDirs {
    /// Where certificates are stored [default: the configuration's certificatesDir, else
    /// /etc/kubernetes/pki].
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// A kubeadm config file whose ClusterConfiguration gives certificatesDir and tells
    /// whether etcd is external.
    #[arg(long, value_name = "FILE", conflicts_with = "kubeconfig")]
    pub config: Option<PathBuf>,
    /// Read that ClusterConfiguration from the cluster (the kubeadm-config ConfigMap)
    /// with this kubeconfig instead.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Where kubeconfig files are stored.
    #[arg(long, value_name = "DIR", default_value = config::DEFAULT_KUBECONFIG_DIR)]
    pub kubeconfig_dir: PathBuf,
    /// The cluster uses an external etcd: skip the etcd certificates.
    #[arg(long)]
    pub external_etcd: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    config::duration::GoDuration::parse(s).map(|d| d.0)
}

fn renew_names() -> Vec<&'static str> {
    let mut v = vec!["all"];
    v.extend(pki::renew::renewable_names());
    v.extend(
        kubeconfig::KUBECONFIGS
            .iter()
            .filter(|k| k.renewable)
            .map(|k| k.file),
    );
    v
}

fn host_for(root: &Option<PathBuf>) -> LocalHost {
    match root {
        Some(r) => LocalHost::with_root(r),
        None => LocalHost::new(),
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEBOOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.verbose);
    let host = host_for(&cli.root);
    match cli.command {
        Command::Init(init) => match *init {
            InitCommand {
                command: Some(InitSubcommand::Phase(phase)),
                ..
            } => run_init_phase(&host, phase),
            InitCommand { command: None, run } => run_init(&host, run),
        },
        Command::Join(j) => run_join(&host, j),
        Command::Reset(r) if r.file.is_some() => run_reset_remote(r),
        Command::Reset(r) => {
            anyhow::ensure!(
                cli.root.is_none(),
                "kubeboot reset runs commands on the machine itself (systemctl, umount, iptables); it does not support --root"
            );
            run_reset(&host, r)
        }
        Command::Certs(c) => run_certs(&host, c),
        Command::Token(t) => run_token(&host, t),
        Command::Lab(args) => crate::lab::run(args),
        Command::Config(ConfigCommand::Images(ConfigImages::Pull { .. })) if cli.root.is_some() => {
            anyhow::bail!(
                "kubeboot config images pull talks to this machine's containerd; it does not support --root"
            )
        }
        Command::Config(c) => run_config(c),
        Command::Render(r) => run_render(r),
        Command::Prepare(args) => crate::prepare::run(args),
        Command::Up(args) => crate::up::run(*args),
        Command::Version { output } => {
            let v = env!("CARGO_PKG_VERSION");
            match output {
                VersionFormat::Short => println!("kubeboot v{v}"),
                VersionFormat::Json => println!(
                    "{}",
                    serde_json::json!({"kubebootVersion": format!("v{v}"),
                        "supportedKubernetesVersions": config::version::supported_list(),
                        "defaultKubernetesVersion": config::version::DEFAULT_KUBERNETES_VERSION})
                ),
            }
            Ok(())
        }
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "kubeboot",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

fn run_init_phase(host: &dyn Host, phase: InitPhase) -> anyhow::Result<()> {
    use init_phases::workflow::{InitData, run_phase};
    // Each arm turns its flags into the configuration and the run's choices, then runs
    // the phase from the same list a whole init uses.
    let mut run = init_phases::InitRun {
        containerd: crate::images::Containerd::from_env(),
        ..Default::default()
    };
    let one = |ctx: &InitContext,
               run: &init_phases::InitRun,
               name: &str,
               which: Option<&str>,
               client: Option<ApiClient>| {
        let mut data = InitData::new(ctx, run);
        if let Some(c) = client {
            data = data.with_client(c);
        }
        run_phase(&mut data, name, which)?;
        Ok::<_, anyhow::Error>(data.outcome)
    };
    match phase {
        InitPhase::Certs {
            which,
            flags,
            force,
        } => {
            let cfg = flags.load()?;
            let ctx = InitContext {
                cfg: &cfg,
                host,
                kubeconfig_dir: config::DEFAULT_KUBECONFIG_DIR.into(),
                cert_options: CertOptions { force },
            };
            one(&ctx, &run, "certs", Some(&which), None)?;
        }
        InitPhase::Kubeconfig {
            which,
            flags,
            kubeconfig_dir,
        } => {
            let cfg = flags.load()?;
            let ctx = InitContext {
                cfg: &cfg,
                host,
                kubeconfig_dir,
                cert_options: CertOptions::default(),
            };
            one(&ctx, &run, "kubeconfig", Some(&which), None)?;
        }
        InitPhase::Preflight {
            flags,
            images,
            cri,
            ignore_preflight_errors,
        } => {
            let cfg = flags.load_edit(|o| {
                o.image_repository = images.image_repository.clone();
                o.cri_socket = cri.cri_socket.clone();
            })?;
            run.ignore_preflight_errors = ignore_preflight_errors;
            one(&file_ctx(&cfg, host), &run, "preflight", None, None)?;
        }
        InitPhase::KubeletStart { flags, images, cri } => {
            let cfg = flags.load_edit(|o| {
                o.image_repository = images.image_repository.clone();
                o.cri_socket = cri.cri_socket.clone();
            })?;
            one(&file_ctx(&cfg, host), &run, "kubelet-start", None, None)?;
        }
        InitPhase::KubeletFinalize(f) => {
            let cfg = f.init.load()?;
            one(
                &cluster_ctx(&cfg, host, &f),
                &run,
                "kubelet-finalize",
                None,
                None,
            )?;
        }
        InitPhase::WaitControlPlane(f) => {
            let cfg = f.init.load()?;
            one(
                &cluster_ctx(&cfg, host, &f),
                &run,
                "wait-control-plane",
                None,
                None,
            )?;
        }
        InitPhase::MarkControlPlane { flags, node_wait } => {
            let cfg = flags.init.load()?;
            run.node_wait = node_wait;
            one(
                &cluster_ctx(&cfg, host, &flags),
                &run,
                "mark-control-plane",
                None,
                None,
            )?;
        }
        InitPhase::BootstrapToken { flags, admin } => {
            let cfg = flags.init.load()?;
            let ctx = cluster_ctx(&cfg, host, &flags);
            let client = phase_client(&ctx, &admin)?;
            one(&ctx, &run, "bootstrap-token", None, Some(client))?;
        }
        InitPhase::UploadCerts {
            flags,
            upload,
            admin,
        } => {
            if !upload.upload_certs {
                crate::output::report("upload-certs", "Skipping phase. Please see --upload-certs");
                return Ok(());
            }
            let cfg = flags.init.load()?;
            upload.check()?;
            let ctx = cluster_ctx(&cfg, host, &flags);
            let client = phase_client(&ctx, &admin)?;
            run.upload_certs = true;
            run.certificate_key = upload.certificate_key.clone();
            let out = one(&ctx, &run, "upload-certs", None, Some(client))?;
            if let Some(key) = out.certificate_key
                && !upload.skip_certificate_key_print
            {
                println!("[upload-certs] Using certificate key:\n{key}");
            }
        }
        InitPhase::Etcd { flags, images, .. } => {
            let cfg = flags.load_with(&images)?;
            one(&file_ctx(&cfg, host), &run, "etcd", None, None)?;
        }
        InitPhase::ControlPlane {
            which,
            flags,
            images,
            extra,
        } => {
            let cfg = flags.load_edit(|o| {
                o.image_repository = images.image_repository.clone();
                o.apiserver_extra_args = extra.apiserver_extra_args.clone();
                o.controller_manager_extra_args = extra.controller_manager_extra_args.clone();
                o.scheduler_extra_args = extra.scheduler_extra_args.clone();
            })?;
            one(
                &file_ctx(&cfg, host),
                &run,
                "control-plane",
                Some(&which),
                None,
            )?;
        }
        InitPhase::UploadConfig {
            which,
            flags,
            admin,
        } => {
            let cfg = flags.init.load()?;
            let ctx = cluster_ctx(&cfg, host, &flags);
            let client = phase_client(&ctx, &admin)?;
            one(&ctx, &run, "upload-config", Some(&which), Some(client))?;
        }
        InitPhase::Addon {
            which,
            flags,
            images,
            admin,
        } => {
            let cfg = flags.init.load_with(&images)?;
            let ctx = cluster_ctx(&cfg, host, &flags);
            let client = phase_client(&ctx, &admin)?;
            one(&ctx, &run, "addon", Some(&which), Some(client))?;
        }
        InitPhase::Cni {
            flags,
            flannel_iface,
        } => {
            let cfg = flags.init.load()?;
            run.flannel_iface = flannel_iface;
            one(&cluster_ctx(&cfg, host, &flags), &run, "cni", None, None)?;
        }
    }
    Ok(())
}

/// The client a cluster phase uses: `--kubeconfig` as given, else admin.conf (with its
/// rights granted through super-admin.conf when a new cluster needs that).
fn phase_client(ctx: &InitContext, admin: &AdminKubeconfigFlag) -> anyhow::Result<ApiClient> {
    match &admin.kubeconfig {
        Some(path) => init_phases::cluster::client_from_path(ctx.host, path),
        None => init_phases::cluster::admin_client(ctx),
    }
}

fn file_ctx<'a>(cfg: &'a InitConfig, host: &'a dyn Host) -> InitContext<'a> {
    InitContext {
        cfg,
        host,
        kubeconfig_dir: config::DEFAULT_KUBECONFIG_DIR.into(),
        cert_options: CertOptions::default(),
    }
}

fn cluster_ctx<'a>(
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

fn run_certs(host: &dyn Host, cmd: CertsCommand) -> anyhow::Result<()> {
    match cmd {
        CertsCommand::CaHash { cert_dir } => {
            println!("{}", pki::ca_hash(host, &cert_dir)?);
            Ok(())
        }
        CertsCommand::CertificateKey => {
            println!("{}", crate::copycerts::new_certificate_key());
            Ok(())
        }
        CertsCommand::CheckExpiration { dirs, output } => {
            let dirs = dirs.resolve(host)?;
            let embedded = kubeconfig::embedded_certs(host, &dirs.kubeconfig_dir)?;
            let report = pki::expiry::report(host, &dirs.cert_dir, &embedded, !dirs.external_etcd)?;
            match output {
                ReportFormat::Text => print!("{}", report.to_text()),
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(())
        }
        CertsCommand::Renew {
            which,
            dirs,
            validity,
            csr_only,
            csr_dir,
        } => {
            let dirs = dirs.resolve(host)?;
            let validity = validity.unwrap_or(config::DEFAULT_CERT_VALIDITY);
            let names: Vec<&str> = if which == "all" {
                renew_names().into_iter().skip(1).collect()
            } else {
                vec![which.as_str()]
            };
            if csr_only {
                let csr_dir = csr_dir.unwrap_or_else(|| dirs.cert_dir.clone());
                for name in names {
                    request_one(host, &dirs, &csr_dir, name)
                        .with_context(|| format!("a signing request for {name}"))?;
                }
                return Ok(());
            }
            for name in names {
                renew_one(host, &dirs, name, validity)
                    .with_context(|| format!("renewing {name}"))?;
            }
            println!(
                "\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates."
            );
            Ok(())
        }
    }
}

/// `certs renew --csr-only` for one name: a CSR and new key in `csr_dir`.
fn request_one(
    host: &dyn Host,
    dirs: &CertFiles,
    csr_dir: &Path,
    name: &str,
) -> anyhow::Result<()> {
    let is_etcd = pki::spec::find(name).is_some_and(|s| s.etcd);
    if is_etcd && dirs.external_etcd {
        return Ok(());
    }
    let csr = if name.ends_with(".conf") {
        if host.read_file(&dirs.kubeconfig_dir.join(name))?.is_none() && name == "super-admin.conf"
        {
            return Ok(());
        }
        kubeconfig::write_request(host, &dirs.kubeconfig_dir, name, csr_dir)?
    } else {
        let (base, old, algorithm) = pki::renew::existing(host, &dirs.cert_dir, name)?;
        pki::renew::write_request(host, csr_dir, base, &old, algorithm)?
    };
    println!(
        "[certs] Wrote a signing request for {name} to {} (key beside it)",
        csr.display()
    );
    Ok(())
}

/// Where `certs` finds its files, with `--config` / `--kubeconfig` applied.
struct CertFiles {
    cert_dir: PathBuf,
    kubeconfig_dir: PathBuf,
    external_etcd: bool,
}

impl CertDirs {
    /// `--cert-dir` wins; else the ClusterConfiguration of `--config` or of the cluster
    /// (`--kubeconfig`), else kubeadm's default.
    fn resolve(self, host: &dyn Host) -> anyhow::Result<CertFiles> {
        let cfg = match (&self.config, &self.kubeconfig) {
            (Some(file), _) => Some(InitConfig::load(
                Some(file),
                &InitOverrides::default(),
                &PlaceholderNode,
            )?),
            (None, Some(kubeconfig)) => {
                let (client, _) = api_client(
                    host,
                    &ApiFlags {
                        kubeconfig: kubeconfig.clone(),
                    },
                )?;
                let cm = client
                    .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
                    .context("reading the cluster's kubeadm-config ConfigMap (--kubeconfig)")?;
                let yaml = cm["data"]["ClusterConfiguration"]
                    .as_str()
                    .context("the kubeadm-config ConfigMap has no ClusterConfiguration")?;
                Some(InitConfig::from_cluster(yaml, &PlaceholderNode)?)
            }
            (None, None) => None,
        };
        Ok(CertFiles {
            cert_dir: self
                .cert_dir
                .or_else(|| cfg.as_ref().map(|c| c.cert_dir.clone()))
                .unwrap_or_else(|| config::DEFAULT_CERT_DIR.into()),
            kubeconfig_dir: self.kubeconfig_dir,
            external_etcd: self.external_etcd
                || cfg.is_some_and(|c| c.cluster.etcd.external.is_some()),
        })
    }
}

fn renew_one(
    host: &dyn Host,
    dirs: &CertFiles,
    name: &str,
    validity: std::time::Duration,
) -> anyhow::Result<()> {
    let is_etcd = pki::spec::find(name).is_some_and(|s| s.etcd);
    if is_etcd && dirs.external_etcd {
        return Ok(());
    }
    if name.ends_with(".conf") {
        let path: &Path = &dirs.kubeconfig_dir.join(name);
        if host.read_file(path)?.is_none() && name == "super-admin.conf" {
            // Only the first control plane has one; like kubeadm, skip it elsewhere.
            return Ok(());
        }
        kubeconfig::renew(host, &dirs.cert_dir, &dirs.kubeconfig_dir, name, validity)?;
        println!("certificate embedded in the kubeconfig file for {name} renewed");
    } else {
        pki::renew::renew_cert(host, &dirs.cert_dir, name, validity)?;
        let spec = pki::spec::find(name).expect("validated name");
        println!("{} renewed", spec.description);
    }
    Ok(())
}

fn api_client(host: &dyn Host, api: &ApiFlags) -> anyhow::Result<(ApiClient, KubeConfig)> {
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

/// `kubeboot join <endpoint> --token T --discovery-token-ca-cert-hash H` for a kubeconfig's cluster.
pub fn join_command(kc: &KubeConfig, token: &BootstrapToken) -> anyhow::Result<String> {
    let cluster = kc
        .current_cluster()
        .context("the kubeconfig has no current cluster")?;
    let endpoint = cluster
        .server
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let ca = kc
        .ca_cert()
        .context("the kubeconfig's cluster has no readable CA")?;
    Ok(format!(
        "kubeboot join {endpoint} --token {token} --discovery-token-ca-cert-hash {}",
        ca.spki_sha256()
    ))
}

fn run_token(host: &dyn Host, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Generate => {
            println!("{}", BootstrapToken::generate());
            Ok(())
        }
        TokenCommand::Create {
            token,
            ttl,
            description,
            groups,
            usages,
            print_join_command,
            certificate_key,
            config: config_file,
            api,
        } => {
            if let Some(k) = &certificate_key {
                crate::copycerts::parse_certificate_key(k).context("--certificate-key")?;
            }
            // --config: the first bootstrap token of the file; flags given win over it.
            let spec = match &config_file {
                Some(f) => {
                    let cfg =
                        InitConfig::load(Some(f), &InitOverrides::default(), &PlaceholderNode)?;
                    cfg.init.bootstrap_tokens.into_iter().next()
                }
                None => None,
            }
            .unwrap_or_default();
            let token = match token {
                Some(t) => BootstrapToken::parse(&t)?,
                None => spec.token.clone().unwrap_or_else(BootstrapToken::generate),
            };
            let description = description
                .or(spec.description)
                .filter(|d| d != config::DEFAULT_TOKEN_DESCRIPTION)
                .unwrap_or_default();
            let groups = match (groups.is_empty(), spec.groups.is_empty()) {
                (false, _) => groups,
                (true, false) => spec.groups,
                (true, true) => vec![crate::token::DEFAULT_GROUP.to_string()],
            };
            let usages = match (usages.is_empty(), spec.usages.is_empty()) {
                (false, _) => usages,
                (true, false) => spec.usages,
                (true, true) => vec!["signing".into(), "authentication".into()],
            };
            let now = time::OffsetDateTime::now_utc();
            let expires = match (ttl, &spec.expires, spec.ttl) {
                (Some(ttl), _, _) => (!ttl.is_zero()).then(|| now + ttl),
                (None, Some(e), _) => Some(
                    time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                        .map_err(|err| {
                            anyhow::anyhow!(
                                "bootstrapTokens[0].expires: {e:?} is not an RFC 3339 time ({err})"
                            )
                        })?,
                ),
                (None, None, Some(ttl)) => (!ttl.0.is_zero()).then(|| now + ttl.0),
                (None, None, None) => Some(now + std::time::Duration::from_secs(24 * 3600)),
            };
            for g in &groups {
                anyhow::ensure!(
                    g.starts_with("system:bootstrappers:")
                        && g.len() > "system:bootstrappers:".len(),
                    "--groups: {g:?} is not a bootstrap group (system:bootstrappers:<name>)"
                );
            }
            let (client, kc) = api_client(host, &api)?;
            let info = crate::token::TokenInfo {
                token: token.clone(),
                description,
                expires,
                usages,
                groups,
            };
            crate::token::create(&client, &info).map_err(|e| match e {
                crate::apiclient::ApiError::Conflict { .. } => anyhow::anyhow!(
                    "a token with id {} already exists; delete it first or choose another",
                    token.id()
                ),
                e => e.into(),
            })?;
            if print_join_command {
                match certificate_key {
                    Some(k) => println!(
                        "{} --control-plane --certificate-key {}",
                        join_command(&kc, &token)?,
                        k.trim()
                    ),
                    None => println!("{}", join_command(&kc, &token)?),
                }
            } else {
                println!("{token}");
            }
            Ok(())
        }
        TokenCommand::List { output, api } => {
            let (client, _) = api_client(host, &api)?;
            let tokens = crate::token::list(&client)?;
            let now = time::OffsetDateTime::now_utc();
            match output {
                ReportFormat::Json => {
                    let v: Vec<serde_json::Value> = tokens
                        .iter()
                        .map(|t| {
                            let r = t.row(now);
                            serde_json::json!({"token": r[0], "ttl": r[1], "expires": t.expires.map(|_| r[2].clone()),
                                "usages": t.usages, "description": t.description, "groups": t.groups})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                ReportFormat::Text => {
                    let mut rows = vec![
                        [
                            "TOKEN",
                            "TTL",
                            "EXPIRES",
                            "USAGES",
                            "DESCRIPTION",
                            "EXTRA GROUPS",
                        ]
                        .map(String::from)
                        .to_vec(),
                    ];
                    rows.extend(tokens.iter().map(|t| t.row(now)));
                    print!("{}", crate::pki::expiry::table(rows));
                }
            }
            Ok(())
        }
        TokenCommand::Delete { tokens, api } => {
            // Every argument is checked before the first token is deleted.
            let mut ids = Vec::new();
            for t in &tokens {
                let id = t.split('.').next().unwrap_or_default();
                let ok = if t.contains('.') {
                    BootstrapToken::parse(t).is_ok()
                } else {
                    BootstrapToken::is_valid_id(id)
                };
                anyhow::ensure!(
                    ok,
                    "{t:?} is neither a token id ([a-z0-9]{{6}}) nor a token (6 characters of [a-z0-9], a dot, then 16)"
                );
                ids.push(id);
            }
            let (client, _) = api_client(host, &api)?;
            for id in ids {
                if crate::token::delete(&client, id)? {
                    println!("bootstrap token {id:?} deleted");
                } else {
                    anyhow::bail!("bootstrap token {id:?} not found");
                }
            }
            Ok(())
        }
    }
}

// ---- `config` and `render` (rendered files, issue 5) ----

/// `kubeboot config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print kubeadm-style defaults.
    #[command(subcommand)]
    Print(ConfigPrint),
    /// Check a config file; prints `ok` or every problem with its file, line and field.
    Validate {
        /// The kubeadm v1beta4 config file (InitConfiguration, ClusterConfiguration, ...).
        #[arg(long)]
        config: PathBuf,
    },
    /// The images a cluster runs: list them, or pull them into this node's containerd.
    #[command(subcommand)]
    Images(ConfigImages),
}

/// `kubeboot config images ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigImages {
    /// Print every image the cluster needs for its version and settings (control plane,
    /// etcd, pause, kube-proxy, CoreDNS, and the CNI's with -f or a pod CIDR).
    List {
        #[command(flatten)]
        select: ImageSelection,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
    },
    /// Pull every image the cluster needs into this node's containerd (namespace k8s.io)
    /// with ctr (or crictl); images already there are not pulled again.
    Pull {
        #[command(flatten)]
        select: ImageSelection,
        /// How long one image may take to pull, Go syntax.
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
        timeout: std::time::Duration,
        /// containerd's socket to pull into [default: /run/containerd/containerd.sock].
        #[arg(long, value_name = "URL")]
        cri_socket: Option<String>,
    },
}

/// Which cluster's images: a kubeadm config file, a kubeboot inventory, or the defaults.
#[derive(Debug, Args, Clone)]
pub struct ImageSelection {
    /// A kubeadm v1beta4 config file (ClusterConfiguration's version, imageRepository,
    /// dns and etcd image settings).
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    pub config: Option<PathBuf>,
    /// A kubeboot inventory (kubeboot.io/v1alpha1 Cluster): its version, imageRepository and CNI.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Kubernetes version (default v1.34.2; supported v1.31-v1.34).
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    #[command(flatten)]
    pub images: ImageRepositoryFlag,
    /// containerd's socket [default: /run/containerd/containerd.sock].
    #[arg(long, hide = true, value_name = "PATH", env = crate::images::ADDRESS_ENV)]
    pub containerd_address: Option<String>,
}

impl ImageSelection {
    /// The images, from one source: [`crate::render::images::list`].
    fn list(&self) -> anyhow::Result<Vec<crate::render::images::ImageRef>> {
        let mut o = InitOverrides {
            kubernetes_version: self.kubernetes_version.clone(),
            image_repository: self.images.image_repository.clone(),
            ..Default::default()
        };
        let (cfg, cni) = match &self.file {
            Some(f) => {
                let cluster = config::cluster::Cluster::load(f)?;
                o.kubernetes_version = o
                    .kubernetes_version
                    .or_else(|| Some(cluster.kubernetes_version.to_string()));
                o.image_repository = o.image_repository.or(cluster.image_repository.clone());
                o.pod_network_cidr = cluster.networking.pod_subnet.clone();
                // Address and name do not change images; placeholders keep this working
                // on a workstation without a default route.
                let cfg = InitConfig::load(None, &o, &PlaceholderNode)?;
                (cfg, Some(cluster.cni.name))
            }
            None => {
                let cfg = InitConfig::load(self.config.as_deref(), &o, &PlaceholderNode)?;
                let cni = crate::render::images::default_cni(&cfg).map(String::from);
                (cfg, cni)
            }
        };
        Ok(crate::render::images::list(&cfg, cni.as_deref())?)
    }
}

/// `kubeboot config print ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigPrint {
    /// The InitConfiguration and ClusterConfiguration kubeboot uses when given none, as a
    /// starting point for a config file (placeholder node name and address, like kubeadm).
    InitDefaults {
        /// Also print these component configurations, as kubeboot renders them for the
        /// defaults (KubeletConfiguration, KubeProxyConfiguration; comma-separated).
        #[arg(long, value_delimiter = ',', value_parser = ["KubeletConfiguration", "KubeProxyConfiguration"])]
        component_configs: Vec<String>,
    },
}

/// `kubeboot render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The kubeadm v1beta4 config file; kubeboot's defaults when omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory to write into (each file at its node path below it).
    #[arg(long)]
    output_dir: PathBuf,
    /// Directory with template overrides (`templates/*.tera` names).
    #[arg(long)]
    templates_dir: Option<PathBuf>,
    /// Network interface flannel uses between hosts (multi-NIC hosts such as Vagrant VMs).
    #[arg(long)]
    flannel_iface: Option<String>,
    /// containerd major version of the node (1 or 2).
    #[arg(long, default_value_t = 1, value_parser = config::whole_number_in(1, 2))]
    containerd_major: u64,
}

/// Placeholder facts for `config print init-defaults`, as kubeadm prints them.
struct PlaceholderNode;

impl crate::config::LocalFacts for PlaceholderNode {
    fn hostname(&self) -> Option<String> {
        Some("node".into())
    }
    fn default_address(&self) -> Option<std::net::IpAddr> {
        Some(std::net::IpAddr::from([1, 2, 3, 4]))
    }
}

fn run_config(cmd: ConfigCommand) -> anyhow::Result<()> {
    use crate::config::{InitConfig, InitOverrides, ThisMachine};
    match cmd {
        ConfigCommand::Print(ConfigPrint::InitDefaults { component_configs }) => {
            let mut cfg = InitConfig::load(None, &InitOverrides::default(), &PlaceholderNode)?;
            for t in &mut cfg.init.bootstrap_tokens {
                t.token = crate::token::BootstrapToken::parse("abcdef.0123456789abcdef").ok();
            }
            print!("{}", crate::render::yaml::to_yaml(&cfg.init)?);
            println!("---");
            print!("{}", crate::render::yaml::to_yaml(&cfg.cluster)?);
            for c in &component_configs {
                let doc = match c.as_str() {
                    "KubeletConfiguration" => crate::render::kubelet::config(
                        &cfg,
                        &crate::render::RenderOptions::default(),
                    )?,
                    _ => crate::render::kubeproxy::config(&cfg),
                };
                println!("---");
                print!("{}", crate::render::yaml::to_yaml(&doc)?);
            }
            Ok(())
        }
        ConfigCommand::Images(ConfigImages::List { select, output }) => {
            let images = select.list()?;
            match output {
                ReportFormat::Text => {
                    for i in &images {
                        println!("{}", i.image);
                    }
                }
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&images)?),
            }
            Ok(())
        }
        ConfigCommand::Images(ConfigImages::Pull {
            mut select,
            timeout,
            cri_socket,
        }) => {
            if cri_socket.is_some() {
                select.containerd_address = cri_socket;
            }
            pull_images(&select, timeout)
        }
        ConfigCommand::Validate { config } => {
            let cfg = InitConfig::load(Some(&config), &InitOverrides::default(), &ThisMachine)?;
            crate::render::render_all(
                &cfg,
                &crate::host::LocalHost::new(),
                &crate::render::RenderOptions::default(),
            )?;
            println!("ok");
            Ok(())
        }
    }
}

/// `config images pull`: one line per image, exit 1 when any failed.
fn pull_images(select: &ImageSelection, timeout: std::time::Duration) -> anyhow::Result<()> {
    use crate::images::{Containerd, PullStatus};
    let images = select.list()?;
    let cd = Containerd {
        address: select
            .containerd_address
            .clone()
            .map(|a| a.trim_start_matches("unix://").to_string())
            .filter(|a| !a.is_empty()),
    };
    let host = LocalHost::new();
    let results = crate::images::pull(&host, &cd, &images, timeout)?;
    let mut failed = 0;
    for r in &results {
        match &r.status {
            PullStatus::Present => println!("[config/images] Already present {}", r.image.image),
            PullStatus::Pulled => println!("[config/images] Pulled {}", r.image.image),
            PullStatus::Failed(why) => {
                failed += 1;
                println!("[config/images] FAILED {}: {why}", r.image.image);
            }
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} images could not be pulled into containerd at {}; check that the registry is reachable from this node, or import an archive with `kubeboot prepare --image-archive FILE#sha256:HEX`",
        results.len(),
        cd.socket()
    );
    Ok(())
}

fn run_render(args: RenderArgs) -> anyhow::Result<()> {
    use crate::config::{InitConfig, InitOverrides, ThisMachine};
    use crate::render::{RenderOptions, Templates};
    let cfg = InitConfig::load(
        args.config.as_deref(),
        &InitOverrides::default(),
        &ThisMachine,
    )?;
    let templates = match &args.templates_dir {
        Some(d) => Templates::with_overrides(d)?,
        None => Templates::embedded(),
    };
    let node = crate::host::LocalHost::new();
    let opts = RenderOptions {
        templates,
        flannel_iface: args.flannel_iface,
        containerd_major: args.containerd_major as u32,
        ..RenderOptions::default()
    }
    .detect(&cfg, &node)?;
    let out = crate::host::LocalHost::with_root(&args.output_dir);
    for f in crate::render::render_all(&cfg, &node, &opts)? {
        f.write_to(&out)?;
        println!("{:04o} {}", f.mode, f.path.display());
    }
    Ok(())
}

fn run_join(host: &dyn Host, a: JoinArgs) -> anyhow::Result<()> {
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

fn run_init(host: &dyn Host, a: InitRunArgs) -> anyhow::Result<()> {
    a.out.apply();
    let cfg = a.flags.load_edit(|o| {
        o.image_repository = a.images.image_repository.clone();
        o.cri_socket = a.cri.cri_socket.clone();
        o.token = a.token.token.clone();
        o.token_ttl = a.token.token_ttl;
    })?;
    // Every input is checked before the first phase changes anything.
    a.upload.check()?;
    let ctx = InitContext {
        cfg: &cfg,
        host,
        kubeconfig_dir: config::DEFAULT_KUBECONFIG_DIR.into(),
        cert_options: CertOptions::default(),
    };
    let run = init_phases::InitRun {
        skip_phases: a.skip_phases,
        ignore_preflight_errors: a.ignore_preflight_errors,
        flannel_iface: a.flannel_iface,
        node_wait: a.node_wait,
        upload_certs: a.upload.upload_certs,
        certificate_key: a.upload.certificate_key.clone(),
        containerd: crate::images::Containerd::from_env(),
    };
    if a.dry_run {
        // What each phase says it would do on this node, then every file rendered (the
        // PKI and kubeconfigs generated fresh) inside a dry-run directory to inspect.
        print!("{}", init_phases::plan(&ctx, &run)?);
        let opts = crate::render::RenderOptions {
            flannel_iface: run.flannel_iface.clone(),
            ..Default::default()
        };
        let tree = crate::render::dry_run(&cfg, host, opts)?;
        let scratch = LocalHost::with_root(&tree.root);
        let sctx = file_ctx(&cfg, &scratch);
        pki::ensure::ensure_certs(
            &scratch,
            &cfg,
            &pki::spec::needed(&cfg).map(|c| c.name).collect::<Vec<_>>(),
            CertOptions::default(),
        )?;
        pki::ensure::ensure_sa(&scratch, &cfg)?;
        kubeconfig::ensure_kubeconfigs(
            &scratch,
            &cfg,
            &sctx.kubeconfig_dir,
            &init_phases::kubeconfig_phase_names()[1..],
        )?;
        println!("[dry-run] The files a fresh node would get:");
        print!("{}", tree.listing());
        println!(
            "[dry-run] Everything was rendered under {} for inspection; nothing else was changed.",
            tree.root.display()
        );
        return Ok(());
    }
    let mut outcome = init_phases::run_all(&ctx, &run)?;
    if a.token.skip_token_print {
        outcome.join = outcome.join.as_deref().map(withhold_token);
    }
    if crate::output::json() {
        // No secret in JSON: the token's id, the CA's hash and whether a certificate key
        // was made; `token create --print-join-command` prints a whole join command.
        crate::output::done(serde_json::json!({
            "command": "init",
            "node": cfg.node_name,
            "endpoint": outcome.endpoint,
            "tokenId": outcome.token_id,
            "caCertHash": outcome.ca_cert_hash,
            "certificatesUploaded": outcome.certificate_key.is_some(),
            "adminKubeconfig": "/etc/kubernetes/admin.conf",
        }));
        return Ok(());
    }
    println!("\nYour Kubernetes control-plane has initialized successfully!\n");
    println!(
        "To start using your cluster, run as a regular user:\n\n  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n"
    );
    println!(
        "/etc/kubernetes/super-admin.conf has unrestricted rights (system:masters): move it somewhere safe.\n"
    );
    if let (Some(join), Some(key)) = (&outcome.join, &outcome.certificate_key) {
        if cfg.control_plane_endpoint.is_none() {
            println!(
                "The certificates were uploaded, but this cluster has no controlPlaneEndpoint: control planes cannot be added to it (set one before the first init).\n"
            );
        } else if a.upload.skip_certificate_key_print {
            println!(
                "You can now join any number of control-plane nodes by running the following on each as root, with the certificate key you chose:\n\n  {join} \\\n    --control-plane --certificate-key <key>\n"
            );
        } else {
            println!(
                "You can now join any number of control-plane nodes by running the following on each as root:\n\n  {join} \\\n    --control-plane --certificate-key {key}\n\nPlease note that the certificate-key gives access to cluster sensitive data, keep it secret!\nAs a safeguard, uploaded-certs will be deleted in two hours; if necessary, you can use\n\"kubeboot init phase upload-certs --upload-certs\" to reload certs afterward.\n"
            );
        }
    }
    if let Some(join) = &outcome.join {
        println!(
            "Then join any number of worker nodes by running the following on each as root:\n\n  {join}\n"
        );
    }
    Ok(())
}

/// `--skip-token-print`: the join command with `<value withheld>` for the token.
fn withhold_token(join: &str) -> String {
    let mut words: Vec<&str> = join.split(' ').collect();
    for i in 1..words.len() {
        if words[i - 1] == "--token" {
            words[i] = "<value withheld>";
        }
    }
    words.join(" ")
}

/// Asks before something destructive, unless `--force`; refuses without a terminal.
fn confirm(force: bool, what: &str) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    use std::io::{BufRead, IsTerminal, Write};
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "reset deletes {what}; pass --force to confirm when not on a terminal"
    );
    print!("[reset] This removes {what}. Continue? [y/N]: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    anyhow::ensure!(answer.trim().eq_ignore_ascii_case("y"), "reset aborted");
    Ok(())
}

impl ResetArgs {
    fn options(&self) -> crate::phases::reset::ResetOptions {
        crate::phases::reset::ResetOptions {
            skip_phases: self.skip_phases.clone(),
            cri_socket: self.cri_socket.clone(),
        }
    }

    fn skips_preflight(&self) -> bool {
        self.skip_phases
            .iter()
            .any(|p| p == "preflight" || p == "all")
    }
}

/// reset's preflight on this machine: kubeadm's one check, that reset runs as root.
fn reset_preflight(host: &dyn Host, ignore: &[String]) -> anyhow::Result<()> {
    let out = host.run(
        "id -u",
        &crate::host::RunOptions {
            stdin: None,
            timeout: Some(std::time::Duration::from_secs(10)),
        },
    )?;
    if out.stdout_text().trim() != "0" {
        if ignore
            .iter()
            .any(|i| i == "all" || i.eq_ignore_ascii_case("IsPrivilegedUser"))
        {
            println!(
                "[preflight] WARNING: user is not running as root (IsPrivilegedUser, ignored)"
            );
        } else {
            anyhow::bail!(
                "[preflight] user is not running as root (IsPrivilegedUser): run reset as root, or pass --ignore-preflight-errors=IsPrivilegedUser"
            );
        }
    }
    Ok(())
}

fn run_reset(host: &dyn Host, a: ResetArgs) -> anyhow::Result<()> {
    a.out.apply();
    // A skip that names no phase is refused before anything is asked or done.
    crate::phases::reset::workflow().skips([("--skip-phases", &a.skip_phases[..])])?;
    if !a.skips_preflight() {
        confirm(
            a.force,
            &format!(
                "the Kubernetes state of {} (PKI, kubeconfigs, etcd data, kubelet state)",
                host.name()
            ),
        )?;
        reset_preflight(host, &a.ignore_preflight_errors)?;
    }
    let rep = crate::phases::reset::reset_host(
        host,
        &a.cert_dir,
        &a.etcd_data_dir,
        a.deep,
        &a.options(),
    )?;
    if crate::output::json() {
        crate::output::done(serde_json::json!({
            "command": "reset",
            "steps": rep.done,
            "deep": a.deep,
        }));
        return Ok(());
    }
    println!(
        "[reset] Done: {} steps{}",
        rep.done.len(),
        if a.deep {
            " and the state before prepare restored"
        } else {
            ""
        }
    );
    Ok(())
}

fn run_reset_remote(a: ResetArgs) -> anyhow::Result<()> {
    a.out.apply();
    // A skip that names no phase is refused before anything is asked or done.
    crate::phases::reset::workflow().skips([("--skip-phases", &a.skip_phases[..])])?;
    let file = a.file.clone().expect("checked");
    let cluster = config::cluster::Cluster::load(&file)?;
    let mut ssh = crate::orchestrate::ssh_config_of(&cluster);
    ssh.accept_new_host_keys = a.accept_new_host_keys;
    ssh.key_passphrase = std::env::var("KUBEBOOT_SSH_KEY_PASSPHRASE").ok();
    ssh.sudo_password = std::env::var("KUBEBOOT_SUDO_PASSWORD").ok();
    for h in &a.hosts {
        anyhow::ensure!(
            cluster.hosts.iter().any(|c| &c.name == h),
            "--hosts: {h:?} is not a host of {}",
            file.display()
        );
    }
    let hosts: Vec<&config::cluster::ClusterHost> = cluster
        .hosts
        .iter()
        .filter(|h| a.hosts.is_empty() || a.hosts.contains(&h.name))
        .collect();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    if !a.skips_preflight() {
        confirm(
            a.force,
            &format!("the Kubernetes state of {}", names.join(", ")),
        )?;
    }
    let opts = a.options();
    let reset_one = |h: &config::cluster::ClusterHost| -> anyhow::Result<()> {
        let _label = crate::phases::label_host(&h.name);
        let cfg = crate::orchestrate::ssh_config_for(&ssh, h);
        let host = crate::host::SshHost::connect(&h.name, &h.address, &cfg)?;
        crate::phases::reset::reset_host(&host, &a.cert_dir, &a.etcd_data_dir, a.deep, &opts)?;
        Ok(())
    };
    let results = crate::orchestrate::fan_out(&hosts, crate::prepare::DEFAULT_CONCURRENCY, |h| {
        (h.name.clone(), reset_one(h))
    });
    let mut failed = Vec::new();
    for (name, r) in &results {
        if crate::output::json() {
            crate::output::emit(serde_json::json!({
                "event": "host-done", "host": name, "failed": r.is_err(),
                "error": r.as_ref().err().map(|e| format!("{e:#}")),
            }));
        } else {
            match r {
                Ok(()) => println!("{name}: reset{}", if a.deep { " (deep)" } else { "" }),
                Err(e) => println!("{name}: FAILED: {e:#}"),
            }
        }
        if r.is_err() {
            failed.push(name.as_str());
        }
    }
    anyhow::ensure!(failed.is_empty(), "reset failed on {}", failed.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks (unique short flags, valid defaults) over every command.
    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

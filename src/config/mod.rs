//! The typed configuration: kubeadm's v1beta4 files and flags in, one validated
//! [`InitConfig`] out. Defaults and validation live here and nowhere else; nothing below
//! this module reads flags.

pub mod cluster;
mod documents;
pub mod duration;
pub mod join;
pub(crate) mod network;
pub mod v1beta4;
pub mod version;

use documents::{Document, TypeMeta};
use duration::GoDuration;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use v1beta4::{ClusterConfiguration, InitConfiguration, JoinConfiguration};
use version::KubeVersion;

pub use network::{first_ip, nth_ip};

/// Default service CIDR, as kubeadm.
pub const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";
/// Default DNS domain of Services.
pub const DEFAULT_DNS_DOMAIN: &str = "cluster.local";
/// Default directory of the cluster PKI on a node.
pub const DEFAULT_CERT_DIR: &str = "/etc/kubernetes/pki";
/// Default directory of kubeconfig files on a node.
pub const DEFAULT_KUBECONFIG_DIR: &str = "/etc/kubernetes";
/// Default API server port.
pub const DEFAULT_BIND_PORT: u16 = 6443;
/// Default cluster name (kubeconfig cluster entry and `--cluster-name`).
pub const DEFAULT_CLUSTER_NAME: &str = "kubernetes";
/// Default container image registry.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";
/// Default CRI socket (containerd).
pub const DEFAULT_CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
/// Default etcd data directory.
pub const DEFAULT_ETCD_DATA_DIR: &str = "/var/lib/etcd";
/// Leaf certificate validity (kubeadm: 1 year).
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// CA certificate validity (kubeadm: 10 years).
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Private-key algorithm of every key kubeboot generates (`encryptionAlgorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncryptionAlgorithm {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcdsaP256,
    EcdsaP384,
}

impl EncryptionAlgorithm {
    /// kubeboot's default: ECDSA-P256 (kubeadm's is RSA-2048). Fast, small, and accepted
    /// by every Kubernetes component since service-account tokens can be ES256.
    pub const DEFAULT: EncryptionAlgorithm = EncryptionAlgorithm::EcdsaP256;
    const ALL: [(&'static str, EncryptionAlgorithm); 5] = [
        ("RSA-2048", EncryptionAlgorithm::Rsa2048),
        ("RSA-3072", EncryptionAlgorithm::Rsa3072),
        ("RSA-4096", EncryptionAlgorithm::Rsa4096),
        ("ECDSA-P256", EncryptionAlgorithm::EcdsaP256),
        ("ECDSA-P384", EncryptionAlgorithm::EcdsaP384),
    ];

    /// Parses kubeadm's spelling (`RSA-2048`, `ECDSA-P256`, ...).
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                format!(
                    "unsupported encryption algorithm {s:?}; supported: {}",
                    names.join(", ")
                )
            })
    }

    /// kubeadm's spelling.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, a)| *a == self).unwrap().0
    }
}

/// One problem with a setting, located in a file or a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where the value came from: `FILE:LINE`, `FILE`, `flag --x`, or `default`.
    pub origin: String,
    /// The field path, as kubeadm spells it (`networking.podSubnet`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.field, self.message)
    }
}

/// Why a configuration could not be loaded. Every variant names the file or flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Yaml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{path}:{line}: unsupported document apiVersion {api_version:?} kind {kind:?}; kubeboot reads kubeadm.k8s.io/v1beta4 InitConfiguration, ClusterConfiguration and JoinConfiguration, kubelet.config.k8s.io/v1beta1 KubeletConfiguration and kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration"
    )]
    UnknownKind {
        path: PathBuf,
        line: usize,
        api_version: String,
        kind: String,
    },
    #[error("{path}:{line}: a second {kind} document; give each kind at most once")]
    Duplicate {
        path: PathBuf,
        line: usize,
        kind: String,
    },
    #[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

/// Values given on the command line; each wins over the config file, like kubeadm's flags.
#[derive(Debug, Clone, Default)]
pub struct InitOverrides {
    pub advertise_address: Option<String>,
    pub bind_port: Option<u16>,
    pub control_plane_endpoint: Option<String>,
    pub cert_extra_sans: Vec<String>,
    pub service_cidr: Option<String>,
    pub service_dns_domain: Option<String>,
    pub pod_network_cidr: Option<String>,
    pub node_name: Option<String>,
    pub cert_dir: Option<String>,
    pub kubernetes_version: Option<String>,
    /// `--image-repository`: kubeadm's `imageRepository`.
    pub image_repository: Option<String>,
}

/// The host of `controlPlaneEndpoint` and its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `https://host:port`, with brackets around IPv6 addresses.
    pub fn url(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("https://[{}]:{}", self.host, self.port),
            _ => format!("https://{}:{}", self.host, self.port),
        }
    }
}

/// Everything `init` needs, defaulted and validated. The v1beta4 structs are kept (with
/// defaults filled in) because they are uploaded to the cluster and rendered; the typed
/// fields beside them are what the code reads.
#[derive(Debug, Clone)]
pub struct InitConfig {
    pub init: InitConfiguration,
    pub cluster: ClusterConfiguration,
    /// Raw `KubeletConfiguration` document from the config file, if any.
    pub kubelet: Option<serde_json::Value>,
    /// Raw `KubeProxyConfiguration` document from the config file, if any.
    pub kube_proxy: Option<serde_json::Value>,
    pub node_name: String,
    pub advertise_address: IpAddr,
    pub bind_port: u16,
    pub control_plane_endpoint: Option<Endpoint>,
    pub service_subnets: Vec<IpNet>,
    pub pod_subnets: Vec<IpNet>,
    pub dns_domain: String,
    pub cluster_name: String,
    pub kubernetes_version: KubeVersion,
    pub encryption_algorithm: EncryptionAlgorithm,
    pub cert_dir: PathBuf,
    pub cert_validity: Duration,
    pub ca_validity: Duration,
}

impl InitConfig {
    /// Reads `--config` (if given), applies flag overrides and kubeadm's defaults, and
    /// validates. `local` supplies the node's hostname and default address when neither
    /// the file nor a flag gives them.
    pub fn load(
        path: Option<&Path>,
        overrides: &InitOverrides,
        local: &dyn LocalFacts,
    ) -> Result<InitConfig, ConfigError> {
        let mut files = ConfigFiles::default();
        if let Some(path) = path {
            files = ConfigFiles::read(path)?;
        }
        resolve_init(files, overrides, local)
    }

    /// [`InitConfig::load`] for config text already read; `path` names it in errors.
    /// Public so the fuzz targets and their stable regression tests reach the same code.
    pub fn parse(
        path: &Path,
        text: &str,
        overrides: &InitOverrides,
        local: &dyn LocalFacts,
    ) -> Result<InitConfig, ConfigError> {
        resolve_init(ConfigFiles::parse(path, text)?, overrides, local)
    }

    /// The API server's in-cluster Service IP (first IP of the service CIDR).
    pub fn api_server_service_ip(&self) -> IpAddr {
        first_ip(&self.service_subnets[0])
    }

    /// The cluster DNS Service IP (tenth IP of the service CIDR), as kubeadm.
    pub fn dns_service_ip(&self) -> IpAddr {
        nth_ip(&self.service_subnets[0], 10)
    }

    /// The URL every node and client uses: `controlPlaneEndpoint`, else this API server.
    pub fn cluster_url(&self) -> String {
        self.control_plane_endpoint
            .clone()
            .unwrap_or_else(|| self.local_endpoint())
            .url()
    }

    /// This node's API server (`advertiseAddress:bindPort`), used by components that must
    /// talk to their own API server (controller-manager, scheduler).
    pub fn local_endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.advertise_address.to_string(),
            port: self.bind_port,
        }
    }

    /// The local etcd settings, or `None` when an external etcd is configured.
    pub fn local_etcd(&self) -> Option<&v1beta4::LocalEtcd> {
        self.cluster.etcd.local.as_ref()
    }
}

/// What the local machine tells about itself, for defaults. A trait so tests and remote
/// hosts can supply their own facts.
pub trait LocalFacts {
    /// The node's hostname.
    fn hostname(&self) -> Option<String>;
    /// The IP of the interface holding the default route.
    fn default_address(&self) -> Option<IpAddr>;
}

/// Facts of the machine kubeboot runs on.
pub struct ThisMachine;

impl LocalFacts for ThisMachine {
    fn hostname(&self) -> Option<String> {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn default_address(&self) -> Option<IpAddr> {
        network::default_route_address()
    }
}

/// The documents of one config file, by kind.
#[derive(Debug, Default)]
struct ConfigFiles {
    init: Option<(Document, InitConfiguration)>,
    cluster: Option<(Document, ClusterConfiguration)>,
    join: Option<(Document, JoinConfiguration)>,
    kubelet: Option<serde_json::Value>,
    kube_proxy: Option<serde_json::Value>,
}

fn yaml_error(doc: &Document, err: serde_saphyr::Error) -> ConfigError {
    let (line, column) = err
        .location()
        .map(|l| (doc.first_line + l.line() as usize - 1, l.column() as usize))
        .unwrap_or((doc.first_line, 1));
    // The crate's Display is `error: line L column C: message` plus a source snippet,
    // with the line counted within the document; keep only the message.
    let full = err.to_string();
    let first = full.lines().next().unwrap_or("invalid YAML");
    let message = first
        .strip_prefix("error: ")
        .and_then(|rest| rest.strip_prefix("line "))
        .and_then(|rest| rest.split_once(": ").map(|(_, m)| m))
        .unwrap_or(first)
        .to_string();
    // Name the field when the message does not (wrong types say only what was expected).
    let key = doc
        .text
        .lines()
        .nth(line - doc.first_line)
        .and_then(|l| l.trim_start().trim_start_matches("- ").split_once(':'))
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.is_empty() && !k.contains(' '));
    let message = match key {
        Some(k) if !message.contains('`') => format!("field `{k}`: {message}"),
        _ => message,
    };
    ConfigError::Yaml {
        path: doc.file.clone(),
        line,
        column,
        message,
    }
}

fn parse_doc<T: serde::de::DeserializeOwned>(doc: &Document) -> Result<T, ConfigError> {
    serde_saphyr::from_str(&doc.text).map_err(|e| yaml_error(doc, e))
}

impl ConfigFiles {
    fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut files = ConfigFiles::default();
        for doc in documents::split(path, text) {
            let meta: TypeMeta = parse_doc(&doc)?;
            let duplicate = |kind: &str| ConfigError::Duplicate {
                path: doc.file.clone(),
                line: doc.first_line,
                kind: kind.to_string(),
            };
            match (meta.api_version.as_str(), meta.kind.as_str()) {
                (v1beta4::API_VERSION, "InitConfiguration") => {
                    if files.init.is_some() {
                        return Err(duplicate("InitConfiguration"));
                    }
                    let parsed = parse_doc(&doc)?;
                    files.init = Some((doc, parsed));
                }
                (v1beta4::API_VERSION, "ClusterConfiguration") => {
                    if files.cluster.is_some() {
                        return Err(duplicate("ClusterConfiguration"));
                    }
                    let parsed = parse_doc(&doc)?;
                    files.cluster = Some((doc, parsed));
                }
                (v1beta4::API_VERSION, "JoinConfiguration") => {
                    if files.join.is_some() {
                        return Err(duplicate("JoinConfiguration"));
                    }
                    let parsed = parse_doc(&doc)?;
                    files.join = Some((doc, parsed));
                }
                ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration") => {
                    files.kubelet = Some(parse_doc(&doc)?);
                }
                ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration") => {
                    files.kube_proxy = Some(parse_doc(&doc)?);
                }
                (api_version, kind) => {
                    return Err(ConfigError::UnknownKind {
                        path: doc.file.clone(),
                        line: doc.first_line,
                        api_version: api_version.to_string(),
                        kind: kind.to_string(),
                    });
                }
            }
        }
        Ok(files)
    }
}

/// Collects field errors, locating each in the file or naming the flag that set it.
struct Problems<'a> {
    errors: Vec<FieldError>,
    init_doc: Option<&'a Document>,
    cluster_doc: Option<&'a Document>,
}

/// Which document kind a field lives in, for locating it.
#[derive(Clone, Copy)]
enum Kind {
    Init,
    Cluster,
}

impl Problems<'_> {
    fn origin(&self, kind: Kind, field: &str, flag: Option<&str>) -> String {
        if let Some(flag) = flag {
            return format!("flag --{flag}");
        }
        let doc = match kind {
            Kind::Init => self.init_doc,
            Kind::Cluster => self.cluster_doc,
        };
        let Some(doc) = doc else {
            return "default".to_string();
        };
        let path: Vec<&str> = field
            .split('.')
            .map(|p| p.split('[').next().unwrap_or(p))
            .collect();
        match doc.line_of(&path) {
            Some(line) => format!("{}:{line}", doc.file.display()),
            None => doc.file.display().to_string(),
        }
    }

    fn push(&mut self, kind: Kind, field: &str, flag: Option<&str>, message: impl Into<String>) {
        let origin = self.origin(kind, field, flag);
        self.errors.push(FieldError {
            origin,
            field: field.to_string(),
            message: message.into(),
        });
    }
}

/// An image repository as kubeadm takes it: `host[:port][/path]`, no scheme, no
/// whitespace, no trailing slash.
pub fn check_image_repository(r: &str) -> Result<(), String> {
    if r.trim().is_empty()
        || r.contains(char::is_whitespace)
        || r.ends_with('/')
        || r.starts_with('/')
        || r.contains("://")
    {
        return Err(format!(
            "{r:?} is not an image repository; expected a registry host and path such as registry.example.com/k8s (no scheme, no trailing slash)"
        ));
    }
    Ok(())
}

fn resolve_init(
    files: ConfigFiles,
    o: &InitOverrides,
    local: &dyn LocalFacts,
) -> Result<InitConfig, ConfigError> {
    let ConfigFiles {
        init,
        cluster,
        join: _,
        kubelet,
        kube_proxy,
    } = files;
    let (init_doc, mut init) = match init {
        Some((d, c)) => (Some(d), c),
        None => (None, InitConfiguration::default()),
    };
    let (cluster_doc, mut cluster) = match cluster {
        Some((d, c)) => (Some(d), c),
        None => (None, ClusterConfiguration::default()),
    };
    let mut p = Problems {
        errors: Vec::new(),
        init_doc: init_doc.as_ref(),
        cluster_doc: cluster_doc.as_ref(),
    };

    // Flags override the file.
    let flag = |given: bool, name: &'static str| given.then_some(name);
    let f_addr = flag(o.advertise_address.is_some(), "apiserver-advertise-address");
    let f_port = flag(o.bind_port.is_some(), "apiserver-bind-port");
    let f_cpe = flag(o.control_plane_endpoint.is_some(), "control-plane-endpoint");
    let f_svc = flag(o.service_cidr.is_some(), "service-cidr");
    let f_dom = flag(o.service_dns_domain.is_some(), "service-dns-domain");
    let f_pod = flag(o.pod_network_cidr.is_some(), "pod-network-cidr");
    let f_node = flag(o.node_name.is_some(), "node-name");
    let f_ver = flag(o.kubernetes_version.is_some(), "kubernetes-version");
    let f_certdir = flag(o.cert_dir.is_some(), "cert-dir");
    let f_repo = flag(o.image_repository.is_some(), "image-repository");
    let ep = &mut init.local_api_endpoint;
    if let Some(v) = &o.advertise_address {
        ep.advertise_address = Some(v.clone());
    }
    if let Some(v) = o.bind_port {
        ep.bind_port = Some(v);
    }
    if let Some(v) = &o.control_plane_endpoint {
        cluster.control_plane_endpoint = Some(v.clone());
    }
    cluster
        .api_server
        .cert_sans
        .extend(o.cert_extra_sans.iter().cloned());
    if let Some(v) = &o.service_cidr {
        cluster.networking.service_subnet = Some(v.clone());
    }
    if let Some(v) = &o.service_dns_domain {
        cluster.networking.dns_domain = Some(v.clone());
    }
    if let Some(v) = &o.pod_network_cidr {
        cluster.networking.pod_subnet = Some(v.clone());
    }
    if let Some(v) = &o.node_name {
        init.node_registration.name = Some(v.clone());
    }
    if let Some(v) = &o.cert_dir {
        cluster.certificates_dir = Some(v.clone());
    }
    if let Some(v) = &o.kubernetes_version {
        cluster.kubernetes_version = Some(v.clone());
    }
    if let Some(v) = &o.image_repository {
        cluster.image_repository = Some(v.clone());
    }

    // kubeadm's defaults.
    init.api_version = Some(v1beta4::API_VERSION.into());
    init.kind = Some("InitConfiguration".into());
    cluster.api_version = Some(v1beta4::API_VERSION.into());
    cluster.kind = Some("ClusterConfiguration".into());
    let nr = &mut init.node_registration;
    if nr.name.is_none() {
        nr.name = local.hostname().map(|h| h.to_lowercase());
    }
    nr.cri_socket
        .get_or_insert_with(|| DEFAULT_CRI_SOCKET.into());
    nr.image_pull_policy
        .get_or_insert_with(|| "IfNotPresent".into());
    nr.taints.get_or_insert_with(|| {
        vec![v1beta4::Taint {
            key: "node-role.kubernetes.io/control-plane".into(),
            value: None,
            effect: "NoSchedule".into(),
            time_added: None,
        }]
    });
    let ep = &mut init.local_api_endpoint;
    if ep.advertise_address.is_none() {
        ep.advertise_address = local.default_address().map(|a| a.to_string());
    }
    ep.bind_port.get_or_insert(DEFAULT_BIND_PORT);
    if init.bootstrap_tokens.is_empty() {
        init.bootstrap_tokens
            .push(v1beta4::BootstrapTokenSpec::default());
    }
    for t in &mut init.bootstrap_tokens {
        t.description.get_or_insert_with(|| {
            "The default bootstrap token generated by 'kubeadm init'.".into()
        });
        if t.expires.is_none() {
            t.ttl
                .get_or_insert(GoDuration(Duration::from_secs(24 * 3600)));
        }
        if t.usages.is_empty() {
            t.usages = vec!["signing".into(), "authentication".into()];
        }
        if t.groups.is_empty() {
            t.groups = vec!["system:bootstrappers:kubeadm:default-node-token".into()];
        }
    }
    let net = &mut cluster.networking;
    net.service_subnet
        .get_or_insert_with(|| DEFAULT_SERVICE_SUBNET.into());
    net.dns_domain
        .get_or_insert_with(|| DEFAULT_DNS_DOMAIN.into());
    cluster
        .kubernetes_version
        .get_or_insert_with(|| version::DEFAULT_KUBERNETES_VERSION.into());
    cluster
        .certificates_dir
        .get_or_insert_with(|| DEFAULT_CERT_DIR.into());
    cluster
        .image_repository
        .get_or_insert_with(|| DEFAULT_IMAGE_REPOSITORY.into());
    cluster
        .cluster_name
        .get_or_insert_with(|| DEFAULT_CLUSTER_NAME.into());
    cluster
        .encryption_algorithm
        .get_or_insert_with(|| EncryptionAlgorithm::DEFAULT.as_str().into());
    if cluster.etcd.external.is_none() {
        let local_etcd = cluster.etcd.local.get_or_insert_with(Default::default);
        local_etcd
            .data_dir
            .get_or_insert_with(|| DEFAULT_ETCD_DATA_DIR.into());
    }

    // Validation: collect every problem, then fail once with all of them.
    let node_name = init.node_registration.name.clone().unwrap_or_default();
    if node_name.is_empty() {
        p.push(
            Kind::Init,
            "nodeRegistration.name",
            f_node,
            "no node name: the hostname could not be read; pass --node-name",
        );
    } else if !network::is_dns1123_subdomain(&node_name) {
        p.push(
            Kind::Init,
            "nodeRegistration.name",
            f_node,
            format!(
                "{node_name:?} is not a valid node name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (DNS-1123 subdomain, at most 253 characters)"
            ),
        );
    }
    let ep = &init.local_api_endpoint;
    let advertise_address = match ep.advertise_address.as_deref() {
        None => {
            p.push(
                Kind::Init,
                "localAPIEndpoint.advertiseAddress",
                f_addr,
                "no advertise address: this machine has no default route; pass --apiserver-advertise-address",
            );
            None
        }
        Some(a) => match a.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                p.push(
                    Kind::Init,
                    "localAPIEndpoint.advertiseAddress",
                    f_addr,
                    format!("{a} cannot be advertised: give the node's own unicast IP"),
                );
                None
            }
            Ok(ip) => Some(ip),
            Err(_) => {
                p.push(
                    Kind::Init,
                    "localAPIEndpoint.advertiseAddress",
                    f_addr,
                    format!("{a:?} is not an IP address"),
                );
                None
            }
        },
    };
    let bind_port = ep.bind_port.unwrap_or(DEFAULT_BIND_PORT);
    if bind_port == 0 {
        p.push(
            Kind::Init,
            "localAPIEndpoint.bindPort",
            f_port,
            "port 0 is not a valid API server port",
        );
    }
    let svc_text = cluster
        .networking
        .service_subnet
        .clone()
        .unwrap_or_default();
    let service_subnets = match network::parse_cidrs(&svc_text) {
        Ok(nets) => {
            let mut ok = true;
            for n in &nets {
                if let Err(m) = network::check_service_subnet_size(n) {
                    p.push(Kind::Cluster, "networking.serviceSubnet", f_svc, m);
                    ok = false;
                }
            }
            if ok { nets } else { vec![] }
        }
        Err(m) => {
            p.push(Kind::Cluster, "networking.serviceSubnet", f_svc, m);
            vec![]
        }
    };
    let pod_subnets = match cluster.networking.pod_subnet.as_deref() {
        None => vec![],
        Some(text) => match network::parse_cidrs(text) {
            Ok(nets) => {
                for pod in &nets {
                    for svc in &service_subnets {
                        if network::overlaps(pod, svc) {
                            p.push(
                                Kind::Cluster,
                                "networking.podSubnet",
                                f_pod,
                                format!(
                                    "pod CIDR {pod} overlaps the service CIDR {svc}; choose ranges that do not overlap (for example 10.244.0.0/16 with 10.96.0.0/12)"
                                ),
                            );
                        }
                    }
                }
                nets
            }
            Err(m) => {
                p.push(Kind::Cluster, "networking.podSubnet", f_pod, m);
                vec![]
            }
        },
    };
    let dns_domain = cluster.networking.dns_domain.clone().unwrap_or_default();
    if !network::is_dns1123_subdomain(&dns_domain) {
        p.push(
            Kind::Cluster,
            "networking.dnsDomain",
            f_dom,
            format!("{dns_domain:?} is not a valid DNS domain (DNS-1123 subdomain)"),
        );
    }
    let control_plane_endpoint = match cluster.control_plane_endpoint.as_deref() {
        None | Some("") => None,
        Some(text) => match network::parse_endpoint(text, bind_port) {
            Ok(e) => Some(e),
            Err(m) => {
                p.push(Kind::Cluster, "controlPlaneEndpoint", f_cpe, m);
                None
            }
        },
    };
    for (i, san) in cluster.api_server.cert_sans.iter().enumerate() {
        if let Err(m) = network::check_san(san) {
            let from_flag = i >= cluster.api_server.cert_sans.len() - o.cert_extra_sans.len();
            p.push(
                Kind::Cluster,
                "apiServer.certSANs",
                from_flag.then_some("apiserver-cert-extra-sans"),
                m,
            );
        }
    }
    if let Some(local_etcd) = &cluster.etcd.local {
        for (field, sans) in [
            ("etcd.local.serverCertSANs", &local_etcd.server_cert_sans),
            ("etcd.local.peerCertSANs", &local_etcd.peer_cert_sans),
        ] {
            for san in sans {
                if let Err(m) = network::check_san(san) {
                    p.push(Kind::Cluster, field, None, m);
                }
            }
        }
    }
    if cluster.etcd.local.is_some() && cluster.etcd.external.is_some() {
        p.push(
            Kind::Cluster,
            "etcd",
            None,
            "both etcd.local and etcd.external are set; choose one",
        );
    }
    if let Some(ext) = &cluster.etcd.external
        && ext.endpoints.is_empty()
    {
        p.push(
            Kind::Cluster,
            "etcd.external.endpoints",
            None,
            "an external etcd needs at least one endpoint",
        );
    }
    if let Some(r) = cluster.image_repository.as_deref()
        && let Err(m) = check_image_repository(r)
    {
        p.push(Kind::Cluster, "imageRepository", f_repo, m);
    }
    let kubernetes_version =
        match KubeVersion::parse(cluster.kubernetes_version.as_deref().unwrap_or_default()) {
            Ok(v) => Some(v),
            Err(m) => {
                p.push(Kind::Cluster, "kubernetesVersion", f_ver, m);
                None
            }
        };
    let encryption_algorithm = match EncryptionAlgorithm::parse(
        cluster.encryption_algorithm.as_deref().unwrap_or_default(),
    ) {
        Ok(a) => Some(a),
        Err(m) => {
            p.push(Kind::Cluster, "encryptionAlgorithm", None, m);
            None
        }
    };
    let cert_dir = cluster.certificates_dir.clone().unwrap_or_default();
    if !cert_dir.starts_with('/') {
        p.push(
            Kind::Cluster,
            "certificatesDir",
            f_certdir,
            format!("{cert_dir:?} must be an absolute path"),
        );
    }
    let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
    if cluster_name.is_empty() || cluster_name.contains(char::is_whitespace) {
        p.push(
            Kind::Cluster,
            "clusterName",
            None,
            format!(
                "{cluster_name:?} is not a valid cluster name: it must be non-empty without spaces"
            ),
        );
    }
    for (field, comp) in [
        ("apiServer", cluster.api_server.component()),
        ("controllerManager", cluster.controller_manager.clone()),
        ("scheduler", cluster.scheduler.clone()),
    ] {
        check_component(&mut p, field, &comp);
    }
    if let Some(local_etcd) = &cluster.etcd.local {
        check_args(&mut p, "etcd.local.extraArgs", &local_etcd.extra_args);
    }
    for (i, t) in init.bootstrap_tokens.iter().enumerate() {
        check_token(&mut p, i, t);
    }
    let validity = |d: Option<GoDuration>, default| d.map(|g| g.0).unwrap_or(default);
    let cert_validity = validity(cluster.certificate_validity_period, DEFAULT_CERT_VALIDITY);
    let ca_validity = validity(cluster.ca_certificate_validity_period, DEFAULT_CA_VALIDITY);
    if cert_validity.is_zero() {
        p.push(
            Kind::Cluster,
            "certificateValidityPeriod",
            None,
            "must be longer than 0",
        );
    }
    if ca_validity.is_zero() {
        p.push(
            Kind::Cluster,
            "caCertificateValidityPeriod",
            None,
            "must be longer than 0",
        );
    }

    if !p.errors.is_empty() {
        return Err(ConfigError::Invalid(p.errors));
    }
    Ok(InitConfig {
        node_name,
        advertise_address: advertise_address.expect("validated"),
        bind_port,
        control_plane_endpoint,
        service_subnets,
        pod_subnets,
        dns_domain,
        cluster_name,
        kubernetes_version: kubernetes_version.expect("validated"),
        encryption_algorithm: encryption_algorithm.expect("validated"),
        cert_dir: PathBuf::from(cert_dir),
        cert_validity,
        ca_validity,
        init,
        cluster,
        kubelet,
        kube_proxy,
    })
}

fn check_args(p: &mut Problems, field: &str, args: &[v1beta4::Arg]) {
    for a in args {
        if !network::is_flag_name(&a.name) {
            p.push(
                Kind::Cluster,
                field,
                None,
                format!(
                    "{:?} is not a flag name: give the name without leading dashes or '=', e.g. name: v, value: \"2\"",
                    a.name
                ),
            );
        }
    }
}

fn check_component(p: &mut Problems, field: &str, comp: &v1beta4::ControlPlaneComponent) {
    check_args(p, &format!("{field}.extraArgs"), &comp.extra_args);
    for v in &comp.extra_volumes {
        for (what, path) in [("hostPath", &v.host_path), ("mountPath", &v.mount_path)] {
            if !path.starts_with('/') {
                p.push(
                    Kind::Cluster,
                    &format!("{field}.extraVolumes"),
                    None,
                    format!(
                        "volume {:?}: {what} {path:?} must be an absolute path",
                        v.name
                    ),
                );
            }
        }
        if !network::is_dns1123_label(&v.name) {
            p.push(
                Kind::Cluster,
                &format!("{field}.extraVolumes"),
                None,
                format!("volume name {:?} must be a DNS-1123 label", v.name),
            );
        }
    }
}

fn check_token(p: &mut Problems, i: usize, t: &v1beta4::BootstrapTokenSpec) {
    let field = format!("bootstrapTokens[{i}]");
    for u in &t.usages {
        if u != "signing" && u != "authentication" {
            p.push(
                Kind::Init,
                &format!("{field}.usages"),
                None,
                format!("unknown usage {u:?}; use signing and/or authentication"),
            );
        }
    }
    for g in &t.groups {
        if !network::is_bootstrap_group(g) {
            p.push(
                Kind::Init,
                &format!("{field}.groups"),
                None,
                format!(
                    "{g:?} is not a bootstrap group: it must start with system:bootstrappers: followed by [a-z0-9:-]"
                ),
            );
        }
    }
    if t.ttl.is_some() && t.expires.is_some() {
        p.push(
            Kind::Init,
            &format!("{field}.expires"),
            None,
            "ttl and expires are mutually exclusive",
        );
    }
    if let Some(e) = &t.expires
        && time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).is_err()
    {
        p.push(
            Kind::Init,
            &format!("{field}.expires"),
            None,
            format!("{e:?} is not an RFC 3339 time such as 2027-01-02T15:04:05Z"),
        );
    }
}

#[cfg(test)]
mod tests;

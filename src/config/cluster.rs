//! kubeboot's own inventory: the `kubeboot.io/v1alpha1` `Cluster` kind that `prepare`
//! (and later `up`) read: which hosts, how to log in to them, which Kubernetes version
//! and where its binaries come from. Unknown fields are errors, and every error names the
//! file, line and field.
//!
//! ```yaml
//! apiVersion: kubeboot.io/v1alpha1
//! kind: Cluster
//! metadata: {name: lab}
//! spec:
//!   kubernetesVersion: v1.34.2
//!   ssh: {user: root, port: 22, keyPath: /path/id_ed25519, knownHostsPath: /path/known_hosts}
//!   hosts:
//!     - {name: node1, address: 10.213.0.11, role: control-plane}
//!   artifacts:
//!     kubelet: {url: "http://10.213.0.1:8080/kubelet", sha256: "<64 hex>"}
//!     kubectl: {path: /srv/k8s/kubectl, sha256: "<64 hex>"}
//!   imageRepository: registry.example.com/k8s   # kubeadm's imageRepository
//!   imageArchives:                               # air-gapped hosts: imported by prepare
//!     - {path: /srv/images/kube-apiserver.tar, sha256: "<64 hex>"}
//!   cni: {name: bridge}                          # flannel (default), bridge or none
//!   containerd: {restrictOOMScoreAdj: true}      # default: from each host's facts
//!   kubeProxy: {conntrackMaxPerCore: 0}          # default: from the hosts' facts
//! ```

use super::documents::{self, Document, TypeMeta};
use super::version::{DEFAULT_KUBERNETES_VERSION, KubeVersion};
use super::{ConfigError, FieldError, parse_doc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The inventory's API version.
pub const API_VERSION: &str = "kubeboot.io/v1alpha1";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClusterDoc {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    kubernetes_version: Option<String>,
    #[serde(default)]
    ssh: SshSpec,
    #[serde(default)]
    hosts: Vec<HostSpec>,
    #[serde(default)]
    artifacts: ArtifactsSpec,
    #[serde(default)]
    networking: NetworkingSpec,
    #[serde(default)]
    control_plane_endpoint: Option<String>,
    #[serde(default)]
    cni: CniSpec,
    #[serde(default)]
    kubelet_extra_args: Vec<super::v1beta4::Arg>,
    #[serde(default)]
    image_repository: Option<String>,
    #[serde(default)]
    image_archives: Vec<ImageArchiveSpec>,
    #[serde(default)]
    containerd: ContainerdSpec,
    #[serde(default)]
    kube_proxy: KubeProxySpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ContainerdSpec {
    #[serde(default, rename = "restrictOOMScoreAdj")]
    restrict_oom_score_adj: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KubeProxySpec {
    #[serde(default)]
    conntrack_max_per_core: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NetworkingSpec {
    pod_subnet: Option<String>,
    service_subnet: Option<String>,
    dns_domain: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CniSpec {
    name: Option<String>,
    iface: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SshSpec {
    user: Option<String>,
    #[serde(default, deserialize_with = "super::yaml_input::port")]
    port: Option<u16>,
    key_path: Option<String>,
    known_hosts_path: Option<String>,
    bastion: Option<BastionSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BastionSpec {
    address: String,
    #[serde(default, deserialize_with = "super::yaml_input::port")]
    port: Option<u16>,
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HostSpec {
    name: String,
    address: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    ssh: Option<HostSshSpec>,
    /// The node's cluster address (kubelet `--node-ip`, advertise address) when the
    /// SSH address is another one (NAT, Vagrant).
    #[serde(default, rename = "nodeIP")]
    node_ip: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HostSshSpec {
    user: Option<String>,
    #[serde(default, deserialize_with = "super::yaml_input::port")]
    port: Option<u16>,
    key_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArtifactsSpec {
    kubelet: Option<ArtifactSpec>,
    kubectl: Option<ArtifactSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArtifactSpec {
    url: Option<String>,
    path: Option<String>,
    sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImageArchiveSpec {
    url: Option<String>,
    path: Option<String>,
    sha256: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// An image archive of the inventory and the hosts that get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    pub artifact: Artifact,
    /// Roles whose hosts import it; empty: every host (workers need no control-plane
    /// images, and those are most of the bytes).
    pub roles: Vec<Role>,
}

/// Role of a host in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    ControlPlane,
    Worker,
}

/// How to log in to the hosts (each host may override user and port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSsh {
    pub user: String,
    pub port: u16,
    pub key_path: Option<PathBuf>,
    pub known_hosts_path: Option<PathBuf>,
    /// Jump host `(address, port, user)`.
    pub bastion: Option<(String, u16, String)>,
}

/// One host of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterHost {
    pub name: String,
    pub address: String,
    pub role: Role,
    pub user: String,
    pub port: u16,
    /// A key only this host accepts (Vagrant makes one per VM).
    pub key_path: Option<PathBuf>,
    /// The node's cluster IP when it differs from the SSH address.
    pub node_ip: Option<std::net::IpAddr>,
}

impl ClusterHost {
    /// The address the node is known by inside the cluster.
    pub fn cluster_address(&self) -> String {
        self.node_ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| self.address.clone())
    }
}

/// The pod network kubeboot installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cni {
    /// `flannel`; `bridge` (no image: the CNI bridge plugin on each node and routes
    /// between nodes, see `crate::podnet`); or `none` to install no CNI.
    pub name: String,
    /// flannel's `--iface` (multi-NIC hosts).
    pub iface: Option<String>,
}

/// Cluster-wide settings `up` hands to `init`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterNetworking {
    pub pod_subnet: Option<String>,
    pub service_subnet: Option<String>,
    pub dns_domain: Option<String>,
    pub control_plane_endpoint: Option<String>,
}

/// Where one binary comes from: fetched by kubeboot from a URL, or read from a local
/// file, then uploaded to each host. Always pinned by sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactSource {
    Url(String),
    Path(PathBuf),
}

/// A pinned binary (`kubelet`, `kubectl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub source: ArtifactSource,
    /// Lower-case hex.
    pub sha256: String,
}

/// A validated inventory.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub file: Option<PathBuf>,
    pub kubernetes_version: KubeVersion,
    pub ssh: ClusterSsh,
    pub hosts: Vec<ClusterHost>,
    /// Binaries by name; a component with no entry comes from the pkgs.k8s.io packages.
    pub artifacts: BTreeMap<String, Artifact>,
    pub networking: ClusterNetworking,
    pub cni: Cni,
    /// Extra kubelet flags for every node (kubeadm's `nodeRegistration.kubeletExtraArgs`).
    pub kubelet_extra_args: Vec<super::v1beta4::Arg>,
    /// Where the control-plane, etcd, pause, kube-proxy and CoreDNS images come from
    /// (kubeadm's `imageRepository`); `None` is kubeadm's default.
    pub image_repository: Option<String>,
    /// Image archives (OCI or docker-archive tarballs) imported into containerd's
    /// `k8s.io` namespace on every host by `prepare`: what air-gapped hosts run.
    pub image_archives: Vec<ImageArchive>,
    /// containerd's CRI `restrict_oom_score_adj`: `None` decides per host from its facts
    /// (on when the host lacks CAP_SYS_RESOURCE, where runc cannot lower oom_score_adj).
    pub restrict_oom_score_adj: Option<bool>,
    /// kube-proxy's `conntrack.maxPerCore`: `None` is 0 (leave nf_conntrack_max alone)
    /// when a host cannot write nf_conntrack_max, else kube-proxy's default.
    pub conntrack_max_per_core: Option<u32>,
}

/// Name of the `i`-th image archive in the artifact store: `image-archive/<i>/<file>`.
pub fn image_archive_name(i: usize, source: &ArtifactSource) -> String {
    let s = match source {
        ArtifactSource::Url(u) => u.as_str(),
        ArtifactSource::Path(p) => p.to_str().unwrap_or("archive"),
    };
    let base = s
        .rsplit('/')
        .find(|x| !x.is_empty())
        .unwrap_or("archive")
        .split(['?', '#'])
        .next()
        .unwrap_or("archive");
    format!("image-archive/{i}/{base}")
}

/// Parses an `--image-archive` flag value: `URL_OR_PATH#sha256:HEX`.
pub fn parse_image_archive_flag(s: &str) -> Result<Artifact, String> {
    let (src, sum) = s.rsplit_once("#sha256:").ok_or_else(|| {
        format!(
            "{s:?}: an image archive needs a pin: append #sha256:<64 hex digits> (sha256sum FILE)"
        )
    })?;
    if src.is_empty() {
        return Err(format!(
            "{s:?}: give the archive's path or URL before #sha256:"
        ));
    }
    check_sha256(sum)?;
    let source = source_of(src);
    Ok(Artifact {
        name: image_archive_name(0, &source),
        source,
        sha256: sum.to_ascii_lowercase(),
    })
}

/// Default pod CIDR of an inventory (flannel's default network).
pub const DEFAULT_POD_SUBNET: &str = "10.244.0.0/16";

/// Parses an `artifact` flag value: `NAME=URL|PATH#sha256:HEX`.
pub fn parse_artifact_flag(s: &str) -> Result<Artifact, String> {
    let (name, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=URL_OR_PATH#sha256:HEX"))?;
    let (src, sum) = rest.rsplit_once("#sha256:").ok_or_else(|| {
        format!("{s:?}: the artifact needs a pin: append #sha256:<64 hex digits>")
    })?;
    if !matches!(name, "kubelet" | "kubectl") {
        return Err(format!(
            "{s:?}: artifacts are kubelet and kubectl, not {name:?}"
        ));
    }
    check_sha256(sum)?;
    Ok(Artifact {
        name: name.to_string(),
        source: source_of(src),
        sha256: sum.to_ascii_lowercase(),
    })
}

fn source_of(s: &str) -> ArtifactSource {
    if s.starts_with("http://") || s.starts_with("https://") {
        ArtifactSource::Url(s.to_string())
    } else {
        ArtifactSource::Path(PathBuf::from(s.strip_prefix("file://").unwrap_or(s)))
    }
}

fn check_sha256(s: &str) -> Result<(), String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!("{s:?} is not a sha256 (64 hex digits)"))
    }
}

impl Cluster {
    /// Reads and validates an inventory file.
    pub fn load(path: &Path) -> Result<Cluster, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(path, &text)
    }

    /// Parses inventory text; `path` is used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Cluster, ConfigError> {
        let docs = documents::split(path, text);
        let Some(doc) = docs.first() else {
            return Err(ConfigError::Invalid(vec![FieldError {
                origin: path.display().to_string(),
                field: "kind".into(),
                message: "the file holds no document; expected a kubeboot.io/v1alpha1 Cluster"
                    .into(),
            }]));
        };
        if docs.len() > 1 {
            return Err(ConfigError::Duplicate {
                path: path.to_path_buf(),
                line: docs[1].first_line,
                kind: "Cluster".into(),
            });
        }
        let meta: TypeMeta = parse_doc(doc)?;
        if meta.api_version != API_VERSION || meta.kind != "Cluster" {
            return Err(ConfigError::Invalid(vec![FieldError {
                origin: origin(doc, &["kind"]),
                field: "apiVersion/kind".into(),
                message: format!(
                    "expected apiVersion {API_VERSION} kind Cluster, found {:?} {:?}",
                    meta.api_version, meta.kind
                ),
            }]));
        }
        let raw: ClusterDoc = parse_doc(doc)?;
        validate(doc, raw)
    }

    /// An inventory for hosts given on the command line.
    pub fn from_addresses(addresses: &[String], ssh: ClusterSsh) -> Cluster {
        Cluster {
            name: "cli".into(),
            file: None,
            kubernetes_version: KubeVersion::parse(DEFAULT_KUBERNETES_VERSION)
                .expect("default version"),
            hosts: addresses
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    // user@host:port
                    let (user, rest) = match a.split_once('@') {
                        Some((u, r)) => (u.to_string(), r),
                        None => (ssh.user.clone(), a.as_str()),
                    };
                    let (address, port) = match rest.rsplit_once(':') {
                        Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => {
                            (h.to_string(), p.parse().unwrap())
                        }
                        _ => (rest.trim_matches(['[', ']']).to_string(), ssh.port),
                    };
                    ClusterHost {
                        name: address.clone(),
                        address,
                        role: if i == 0 {
                            Role::ControlPlane
                        } else {
                            Role::Worker
                        },
                        user,
                        port,
                        key_path: None,
                        node_ip: None,
                    }
                })
                .collect(),
            ssh,
            artifacts: BTreeMap::new(),
            networking: ClusterNetworking {
                pod_subnet: Some(DEFAULT_POD_SUBNET.into()),
                ..Default::default()
            },
            cni: Cni {
                name: "flannel".into(),
                iface: None,
            },
            kubelet_extra_args: Vec::new(),
            image_repository: None,
            image_archives: Vec::new(),
            restrict_oom_score_adj: None,
            conntrack_max_per_core: None,
        }
    }

    /// Adds image archives given on the command line after the inventory's, naming
    /// each uniquely.
    pub fn add_image_archives(&mut self, extra: &[Artifact]) {
        for a in extra {
            let i = self.image_archives.len();
            self.image_archives.push(ImageArchive {
                artifact: Artifact {
                    name: image_archive_name(i, &a.source),
                    ..a.clone()
                },
                roles: Vec::new(),
            });
        }
    }
}

fn origin(doc: &Document, path: &[&str]) -> String {
    match doc.line_of(path) {
        Some(l) => format!("{}:{l}", doc.file.display()),
        None => doc.file.display().to_string(),
    }
}

/// Line of the `index`-th item of a block sequence under `spec.hosts`.
fn host_line(doc: &Document, index: usize) -> Option<usize> {
    let start = doc.line_of(&["spec", "hosts"])? - doc.first_line;
    let mut seen = 0;
    for (i, l) in doc.text.lines().enumerate().skip(start + 1) {
        let t = l.trim_start();
        if t.starts_with("- ") || t == "-" {
            if seen == index {
                return Some(doc.first_line + i);
            }
            seen += 1;
        }
    }
    None
}

/// The source and pin of an inventory file entry (`url` or `path`, and `sha256`), with
/// an error for each problem; `what` names the entry in messages.
#[allow(clippy::too_many_arguments)]
fn pinned_source(
    url: Option<String>,
    path: Option<String>,
    sha256: Option<String>,
    at: &str,
    field: &str,
    what: &str,
    hint: &str,
    err: &mut dyn FnMut(String, &str, String),
) -> (Option<ArtifactSource>, Option<String>) {
    let source = match (url, path) {
        (Some(u), None) if !(u.starts_with("http://") || u.starts_with("https://")) => {
            err(
                at.to_string(),
                &format!("{field}.url"),
                format!(
                    "{u:?} is not an http:// or https:// URL; for a file on this machine write path: instead"
                ),
            );
            None
        }
        (Some(u), None) => Some(source_of(&u)),
        (None, Some(p)) => Some(ArtifactSource::Path(PathBuf::from(p))),
        _ => {
            err(
                at.to_string(),
                field,
                format!("give exactly one of url or path{hint}"),
            );
            None
        }
    };
    let sha = match sha256 {
        Some(s) => match check_sha256(&s) {
            Ok(()) => Some(s.to_ascii_lowercase()),
            Err(m) => {
                err(at.to_string(), &format!("{field}.sha256"), m);
                None
            }
        },
        None => {
            err(
                at.to_string(),
                &format!("{field}.sha256"),
                format!("missing: every {what} is pinned by its sha256 (sha256sum FILE)"),
            );
            None
        }
    };
    (source, sha)
}

fn validate(doc: &Document, raw: ClusterDoc) -> Result<Cluster, ConfigError> {
    let mut errs = Vec::new();
    let file = doc.file.display().to_string();
    let mut err = |origin: String, field: &str, message: String| {
        errs.push(FieldError {
            origin,
            field: field.to_string(),
            message,
        })
    };
    let spec = raw.spec;
    let version = spec
        .kubernetes_version
        .as_deref()
        .unwrap_or(DEFAULT_KUBERNETES_VERSION);
    let kubernetes_version = match KubeVersion::parse(version) {
        Ok(v) => Some(v),
        Err(m) => {
            err(
                origin(doc, &["spec", "kubernetesVersion"]),
                "spec.kubernetesVersion",
                m,
            );
            None
        }
    };
    let empty_user = |u: &Option<String>| u.as_deref().is_some_and(|u| u.trim().is_empty());
    if empty_user(&spec.ssh.user) {
        err(
            origin(doc, &["spec", "ssh", "user"]),
            "spec.ssh.user",
            "must not be empty: give the login user, or leave user out for root".into(),
        );
    }
    let bastion = spec.ssh.bastion.map(|b| {
        (
            b.address,
            b.port.unwrap_or(22),
            b.user
                .unwrap_or_else(|| spec.ssh.user.clone().unwrap_or_else(|| "root".into())),
        )
    });
    let ssh = ClusterSsh {
        user: spec.ssh.user.unwrap_or_else(|| "root".into()),
        port: spec.ssh.port.unwrap_or(22),
        key_path: spec.ssh.key_path.map(PathBuf::from),
        known_hosts_path: spec.ssh.known_hosts_path.map(PathBuf::from),
        bastion,
    };
    if spec.hosts.is_empty() {
        err(
            origin(doc, &["spec", "hosts"]),
            "spec.hosts",
            "no hosts: list at least one {name, address, role}".into(),
        );
    }
    let mut hosts = Vec::new();
    for (i, h) in spec.hosts.into_iter().enumerate() {
        let at = host_line(doc, i)
            .map(|l| format!("{file}:{l}"))
            .unwrap_or_else(|| file.clone());
        let role = match h.role.as_deref() {
            None | Some("worker") => Role::Worker,
            Some("control-plane") => Role::ControlPlane,
            Some(other) => {
                err(
                    at.clone(),
                    &format!("spec.hosts[{i}].role"),
                    format!("{other:?} is not a role; use control-plane or worker"),
                );
                Role::Worker
            }
        };
        if h.name.trim().is_empty() {
            err(
                at.clone(),
                &format!("spec.hosts[{i}].name"),
                "must not be empty".into(),
            );
        } else if !super::network::is_dns1123_subdomain(&h.name) {
            // The name becomes the node's name in the cluster.
            err(
                at.clone(),
                &format!("spec.hosts[{i}].name"),
                format!(
                    "{:?} is not a valid node name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
                    h.name
                ),
            );
        }
        if h.address.trim().is_empty() {
            err(
                at.clone(),
                &format!("spec.hosts[{i}].address"),
                "must not be empty".into(),
            );
        }
        if hosts.iter().any(|o: &ClusterHost| o.name == h.name) {
            err(
                at.clone(),
                &format!("spec.hosts[{i}].name"),
                format!("{:?} is listed twice", h.name),
            );
        }
        if h.ssh.as_ref().is_some_and(|s| empty_user(&s.user)) {
            err(
                at.clone(),
                &format!("spec.hosts[{i}].ssh.user"),
                "must not be empty: give the login user, or leave user out for spec.ssh.user"
                    .into(),
            );
        }
        let (user, port, key_path) = match h.ssh {
            Some(s) => (
                s.user.unwrap_or_else(|| ssh.user.clone()),
                s.port.unwrap_or(ssh.port),
                s.key_path.map(PathBuf::from),
            ),
            None => (ssh.user.clone(), ssh.port, None),
        };
        let node_ip = match h.node_ip.as_deref().map(str::parse::<std::net::IpAddr>) {
            None => None,
            Some(Ok(ip)) => Some(ip),
            Some(Err(_)) => {
                err(
                    at.clone(),
                    &format!("spec.hosts[{i}].nodeIP"),
                    format!("{:?} is not an IP address", h.node_ip.unwrap_or_default()),
                );
                None
            }
        };
        hosts.push(ClusterHost {
            name: h.name,
            address: h.address,
            role,
            user,
            port,
            key_path,
            node_ip,
        });
    }
    let mut artifacts = BTreeMap::new();
    for (name, a) in [
        ("kubelet", spec.artifacts.kubelet),
        ("kubectl", spec.artifacts.kubectl),
    ] {
        let Some(a) = a else { continue };
        let at = origin(doc, &["spec", "artifacts", name]);
        let field = format!("spec.artifacts.{name}");
        let (source, sha) = pinned_source(
            a.url, a.path, a.sha256, &at, &field, "artifact", "", &mut err,
        );
        if let (Some(source), Some(sha256)) = (source, sha) {
            artifacts.insert(
                name.to_string(),
                Artifact {
                    name: name.to_string(),
                    source,
                    sha256,
                },
            );
        }
    }
    let mut image_archives = Vec::new();
    for (i, a) in spec.image_archives.into_iter().enumerate() {
        let at = origin(doc, &["spec", "imageArchives"]);
        let field = format!("spec.imageArchives[{i}]");
        let (source, sha) = pinned_source(
            a.url,
            a.path,
            a.sha256,
            &at,
            &field,
            "image archive",
            " (an OCI or docker-archive tarball)",
            &mut err,
        );
        let mut roles = Vec::new();
        for r in &a.roles {
            match r.as_str() {
                "control-plane" => roles.push(Role::ControlPlane),
                "worker" => roles.push(Role::Worker),
                other => err(
                    at.clone(),
                    &format!("{field}.roles"),
                    format!(
                        "{other:?} is not a role; use control-plane or worker (or leave roles out for every host)"
                    ),
                ),
            }
        }
        if let (Some(source), Some(sha256)) = (source, sha) {
            image_archives.push(ImageArchive {
                artifact: Artifact {
                    name: image_archive_name(i, &source),
                    source,
                    sha256,
                },
                roles,
            });
        }
    }
    if let Some(r) = &spec.image_repository
        && (r.trim().is_empty() || r.contains(char::is_whitespace) || r.ends_with('/'))
    {
        err(
            origin(doc, &["spec", "imageRepository"]),
            "spec.imageRepository",
            format!("{r:?} is not an image repository; expected e.g. registry.example.com/k8s"),
        );
    }
    for (field, value) in [
        ("podSubnet", &spec.networking.pod_subnet),
        ("serviceSubnet", &spec.networking.service_subnet),
    ] {
        if let Some(v) = value
            && let Err(m) = super::network::parse_cidrs(v)
        {
            err(
                origin(doc, &["spec", "networking", field]),
                &format!("spec.networking.{field}"),
                m,
            );
        }
    }
    let cni_name = spec.cni.name.clone().unwrap_or_else(|| "flannel".into());
    if !matches!(cni_name.as_str(), "flannel" | "bridge" | "none") {
        err(
            origin(doc, &["spec", "cni", "name"]),
            "spec.cni.name",
            format!(
                "{cni_name:?} is not supported; use flannel (default), bridge (no image: a bridge per node and routes between nodes, for hosts on one layer-2 network) or none"
            ),
        );
    }
    if !hosts.iter().any(|h| h.role == Role::ControlPlane) && !hosts.is_empty() {
        err(
            origin(doc, &["spec", "hosts"]),
            "spec.hosts",
            "no host has role control-plane".into(),
        );
    }
    let cp_names: Vec<&str> = hosts
        .iter()
        .filter(|h| h.role == Role::ControlPlane)
        .map(|h| h.name.as_str())
        .collect();
    if cp_names.len() > 1
        && spec
            .control_plane_endpoint
            .as_deref()
            .is_none_or(|e| e.trim().is_empty())
    {
        err(
            origin(doc, &["spec", "hosts"]),
            "spec.controlPlaneEndpoint",
            format!(
                "{} hosts are control planes ({}): set spec.controlPlaneEndpoint to a stable address in front of all of them (a load balancer, VIP or DNS name, host:port), as kubeadm requires for joining control planes",
                cp_names.len(),
                cp_names.join(", ")
            ),
        );
    }
    for a in &spec.kubelet_extra_args {
        if !super::network::is_flag_name(&a.name) {
            err(
                origin(doc, &["spec", "kubeletExtraArgs"]),
                "spec.kubeletExtraArgs",
                format!("{:?} is not a flag name (write it without dashes)", a.name),
            );
        }
    }
    if !errs.is_empty() {
        return Err(ConfigError::Invalid(errs));
    }
    Ok(Cluster {
        networking: ClusterNetworking {
            pod_subnet: Some(
                spec.networking
                    .pod_subnet
                    .unwrap_or_else(|| DEFAULT_POD_SUBNET.into()),
            ),
            service_subnet: spec.networking.service_subnet,
            dns_domain: spec.networking.dns_domain,
            control_plane_endpoint: spec.control_plane_endpoint,
        },
        cni: Cni {
            name: cni_name,
            iface: spec.cni.iface,
        },
        kubelet_extra_args: spec.kubelet_extra_args,
        image_repository: spec.image_repository,
        image_archives,
        restrict_oom_score_adj: spec.containerd.restrict_oom_score_adj,
        conntrack_max_per_core: spec.kube_proxy.conntrack_max_per_core,
        name: raw.metadata.name,
        file: Some(doc.file.clone()),
        kubernetes_version: kubernetes_version.expect("checked"),
        ssh,
        hosts,
        artifacts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: lab\nspec:\n  ssh:\n    user: root\n    port: 22\n    keyPath: /s/id_ed25519\n    knownHostsPath: /s/known_hosts\n  hosts:\n  - name: lab-node1\n    address: 10.213.0.11\n    role: control-plane\n  - name: lab-node2\n    address: '10.213.0.12'\n    role: worker\n";

    #[test]
    fn reads_the_lab_inventory() {
        let c = Cluster::parse(Path::new("c.yaml"), LAB).unwrap();
        assert_eq!(c.name, "lab");
        assert_eq!(c.hosts.len(), 2);
        assert_eq!(c.hosts[0].role, Role::ControlPlane);
        assert_eq!(c.hosts[1].address, "10.213.0.12");
        assert_eq!(c.ssh.key_path.as_deref(), Some(Path::new("/s/id_ed25519")));
        assert!(c.artifacts.is_empty());
    }

    #[test]
    fn image_settings() {
        let sha = "a".repeat(64);
        let text = LAB.replace(
            "spec:\n",
            &format!(
                "spec:\n  imageRepository: kubeboot.local/lab\n  imageArchives:\n    - {{path: /srv/i/etcd.tar, sha256: {sha}, roles: [control-plane]}}\n    - {{url: http://10.0.0.1/x/etcd.tar, sha256: {sha}}}\n  containerd: {{restrictOOMScoreAdj: true}}\n  kubeProxy: {{conntrackMaxPerCore: 0}}\n"
            ),
        );
        let c = Cluster::parse(Path::new("c.yaml"), &text).unwrap();
        assert_eq!(c.image_repository.as_deref(), Some("kubeboot.local/lab"));
        assert_eq!(c.image_archives.len(), 2);
        assert_eq!(
            c.image_archives[0].artifact.name,
            "image-archive/0/etcd.tar"
        );
        assert_eq!(c.image_archives[0].roles, vec![Role::ControlPlane]);
        assert_eq!(
            c.image_archives[1].artifact.name,
            "image-archive/1/etcd.tar"
        );
        assert!(c.image_archives[1].roles.is_empty());
        assert_eq!(
            c.image_archives[1].artifact.source,
            ArtifactSource::Url("http://10.0.0.1/x/etcd.tar".into())
        );
        assert_eq!(c.restrict_oom_score_adj, Some(true));
        assert_eq!(c.conntrack_max_per_core, Some(0));

        let bad = LAB.replace(
            "spec:\n",
            "spec:\n  imageArchives:\n    - {path: /srv/i/etcd.tar}\n    - {sha256: abc, roles: [master]}\n",
        );
        let e = Cluster::parse(Path::new("c.yaml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.imageArchives[0].sha256"), "{e}");
        assert!(e.contains("sha256sum FILE"), "{e}");
        assert!(e.contains("spec.imageArchives[1]"), "{e}");
        assert!(e.contains("give exactly one of url or path"), "{e}");
        assert!(e.contains("spec.imageArchives[1].roles"), "{e}");
        assert!(e.contains("\"master\" is not a role"), "{e}");

        let flag = parse_image_archive_flag(&format!("/srv/i/pause.tar#sha256:{sha}")).unwrap();
        assert_eq!(flag.source, ArtifactSource::Path("/srv/i/pause.tar".into()));
        let e = parse_image_archive_flag("/srv/i/pause.tar").unwrap_err();
        assert!(e.contains("#sha256:"), "{e}");
        let mut c = c;
        c.add_image_archives(&[flag]);
        assert_eq!(
            c.image_archives[2].artifact.name,
            "image-archive/2/pause.tar"
        );
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = LAB.replace("    role: worker\n", "    role: worker\n    rol: x\n");
        let e = Cluster::parse(Path::new("c.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.yaml:18:"), "{e}");
        assert!(e.contains("rol"), "{e}");
    }

    #[test]
    fn bad_values_are_collected_with_lines() {
        let text = LAB.replace("role: worker", "role: boss")
            + "  artifacts:\n    kubelet:\n      url: http://x/kubelet\n      sha256: abc\n";
        let e = Cluster::parse(Path::new("c.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml:15: spec.hosts[1].role"), "{e}");
        assert!(
            e.contains("c.yaml:19: spec.artifacts.kubelet.sha256"),
            "{e}"
        );
    }

    #[test]
    fn artifact_flags() {
        let sum = "a".repeat(64);
        let a = parse_artifact_flag(&format!("kubelet=http://h:1/k#sha256:{sum}")).unwrap();
        assert_eq!(a.source, ArtifactSource::Url("http://h:1/k".into()));
        assert!(
            parse_artifact_flag("kubelet=/x")
                .unwrap_err()
                .contains("pin")
        );
        assert!(parse_artifact_flag(&format!("kubeadm=/x#sha256:{sum}")).is_err());
    }

    #[test]
    fn cni_names() {
        let with = |name: &str| {
            Cluster::parse(
                Path::new("c.yaml"),
                &format!("{LAB}  cni:\n    name: {name}\n"),
            )
        };
        assert_eq!(with("bridge").unwrap().cni.name, "bridge");
        assert_eq!(with("none").unwrap().cni.name, "none");
        assert_eq!(
            Cluster::parse(Path::new("c.yaml"), LAB).unwrap().cni.name,
            "flannel"
        );
        let e = with("calico").unwrap_err().to_string();
        assert!(
            e.contains("c.yaml:19: spec.cni.name")
                && e.contains(
                    "\"calico\" is not supported; use flannel (default), bridge (no image"
                )
                && e.contains("or none"),
            "{e}"
        );
    }

    #[test]
    fn command_line_hosts() {
        let ssh = ClusterSsh {
            user: "root".into(),
            port: 22,
            key_path: None,
            known_hosts_path: None,
            bastion: None,
        };
        let c = Cluster::from_addresses(&["admin@10.0.0.1:2222".into(), "10.0.0.2".into()], ssh);
        assert_eq!((c.hosts[0].user.as_str(), c.hosts[0].port), ("admin", 2222));
        assert_eq!((c.hosts[1].user.as_str(), c.hosts[1].port), ("root", 22));
    }
}

//! Rendered files: what kubeadm writes on a control-plane node (static Pod manifests,
//! kubelet configuration, systemd drop-in), the containerd configuration host preparation
//! installs, and the addon objects `init` applies (CoreDNS, kube-proxy, flannel).
//!
//! Render code never writes: every function returns data ([`RenderedFile`] or Kubernetes
//! objects) and the caller writes it through a [`Host`](crate::host::Host), so the same code
//! serves `init`, `--dry-run`, remote hosts and tests.
//!
//! Kubernetes objects are built as serde data and serialized by [`yaml`] (sorted keys like
//! kubeadm's output, safe quoting); text files and the third-party flannel manifest come from
//! [`templates`], which users can override. Every version-dependent detail comes from the
//! one table in [`versions`].

mod args;
pub mod containerd;
pub mod controlplane;
pub mod coredns;
mod dryrun;
pub mod etcd;
pub mod flannel;
pub mod images;
pub mod kubelet;
pub mod kubeproxy;
mod staticpod;
pub mod templates;
pub mod versions;
pub mod yaml;

pub use args::{command_flags, to_command};
pub use dryrun::{DryRunTree, dry_run};
pub use templates::Templates;

use crate::config::InitConfig;
use crate::host::Host;
use std::path::{Path, PathBuf};

/// Where kubeadm keeps static Pod manifests (the kubelet's `staticPodPath`).
pub const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";
/// kubeadm's Kubernetes configuration directory (kubeconfig files).
pub const KUBERNETES_DIR: &str = "/etc/kubernetes";

/// Why rendering failed. Config problems are caught by config validation first; these are
/// the few that only show when rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("Kubernetes {version} has no render profile; supported versions: {supported}")]
    UnsupportedVersion { version: String, supported: String },
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("templates directory {}: {message}", dir.display())]
    TemplateDir { dir: PathBuf, message: String },
    #[error("cannot serialize a rendered object: {0}")]
    Serialize(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Host(#[from] crate::host::HostError),
}

/// Whether a rendered file goes onto the node's filesystem or is a set of objects for the
/// API server (addons), which `--dry-run` still shows as a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A file at `path` on the node.
    Node,
    /// Kubernetes objects (a YAML stream) to apply; `path` only names them in dry runs.
    Api,
}

/// One rendered file: where it goes, its bytes, and the permissions kubeadm gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Absolute path on the node (for [`Target::Api`], a path under `/kubeboot-addons`).
    pub path: PathBuf,
    pub contents: Vec<u8>,
    /// File mode (0600 for manifests, as kubeadm's `WriteStaticPodToDisk`).
    pub mode: u32,
    /// Mode of directories created for it (0700 for the manifests directory).
    pub dir_mode: u32,
    pub target: Target,
}

impl RenderedFile {
    fn node(
        path: impl Into<PathBuf>,
        contents: impl Into<Vec<u8>>,
        mode: u32,
        dir_mode: u32,
    ) -> Self {
        RenderedFile {
            path: path.into(),
            contents: contents.into(),
            mode,
            dir_mode,
            target: Target::Node,
        }
    }

    /// The contents as text (every rendered file is UTF-8).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.contents).unwrap_or("")
    }

    /// Writes the file through `host` with its mode and directory mode.
    pub fn write_to(&self, host: &dyn Host) -> Result<(), crate::host::HostError> {
        host.write_file(
            &self.path,
            &self.contents,
            crate::host::WriteOptions {
                mode: self.mode,
                dir_mode: self.dir_mode,
                owner: None,
            },
        )
    }
}

/// Choices that are not part of the kubeadm configuration but change what is rendered.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Templates to use (embedded, or overridden from `--templates-dir`).
    pub templates: Templates,
    /// External-CA mode (`ca.crt` present without `ca.key`): the controller-manager gets
    /// empty `--cluster-signing-*` flags so its CSR signer stays off, as kubeadm does.
    pub external_ca: bool,
    /// `*_proxy` variables passed to the control-plane containers (kubeadm copies its own
    /// environment's); empty by default so renders are reproducible.
    pub proxy_env: Vec<(String, String)>,
    /// The node's hostname; the kubelet gets `--hostname-override` when the node name differs.
    pub hostname: Option<String>,
    /// The resolv.conf the kubelet hands to Pods (`/run/systemd/resolve/resolv.conf` when
    /// systemd-resolved runs, as kubeadm sets it); `None` keeps the kubelet default.
    pub resolv_conf: Option<String>,
    /// Interface flannel uses between hosts (`--iface`), for hosts with several NICs such as
    /// Vagrant VMs whose first NIC is NAT.
    pub flannel_iface: Option<String>,
    /// containerd major version of the node (1 or 2), which picks the config schema.
    pub containerd_major: u32,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            templates: Templates::embedded(),
            external_ca: false,
            proxy_env: Vec::new(),
            hostname: None,
            resolv_conf: None,
            flannel_iface: None,
            containerd_major: 1,
        }
    }
}

impl RenderOptions {
    /// Fills the node-dependent choices the way kubeadm finds them on the node: external-CA
    /// mode from the PKI files, the hostname, systemd-resolved's resolv.conf.
    pub fn detect(mut self, cfg: &InitConfig, host: &dyn Host) -> Result<Self, RenderError> {
        let ca = |name: &str| host.file_info(&cfg.cert_dir.join(name));
        self.external_ca = ca("ca.crt")?.is_some() && ca("ca.key")?.is_none();
        self.hostname = host
            .read_file(Path::new("/etc/hostname"))?
            .map(|b| String::from_utf8_lossy(&b).trim().to_lowercase())
            .filter(|h| !h.is_empty());
        let resolved = "/run/systemd/resolve/resolv.conf";
        if host.file_info(Path::new(resolved))?.is_some() {
            self.resolv_conf = Some(resolved.to_string());
        }
        Ok(self)
    }
}

/// The four static Pod manifests (etcd only with a local etcd), in kubeadm's file names.
pub fn static_pods(
    cfg: &InitConfig,
    host: &dyn Host,
    opts: &RenderOptions,
) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files = Vec::new();
    if cfg.local_etcd().is_some() {
        files.push(etcd::manifest(cfg)?);
    }
    files.extend(controlplane::manifests(cfg, host, opts)?);
    Ok(files)
}

/// Every node file and addon of a control-plane `init`, in the order kubeadm writes them.
pub fn render_all(
    cfg: &InitConfig,
    host: &dyn Host,
    opts: &RenderOptions,
) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files = static_pods(cfg, host, opts)?;
    files.extend(kubelet::files(cfg, opts)?);
    files.push(containerd::config_with(
        &opts.templates,
        opts.containerd_major,
        cfg.kubernetes_version,
        image_repository(cfg),
        false,
    )?);
    files.extend(addon_files(cfg, opts)?);
    Ok(files)
}

/// The addons as YAML streams (CoreDNS, kube-proxy, and flannel when a pod CIDR is set),
/// named `/kubeboot-addons/<name>.yaml` so dry runs can show them.
pub fn addon_files(
    cfg: &InitConfig,
    opts: &RenderOptions,
) -> Result<Vec<RenderedFile>, RenderError> {
    let mut out = Vec::new();
    let mut push = |name: &str, text: String| {
        out.push(RenderedFile {
            path: PathBuf::from(format!("/kubeboot-addons/{name}.yaml")),
            contents: text.into_bytes(),
            mode: 0o644,
            dir_mode: 0o755,
            target: Target::Api,
        })
    };
    if !cfg.cluster.dns.disabled {
        push(
            "coredns",
            yaml::to_yaml_stream(&coredns::objects(cfg, &opts.templates)?)?,
        );
    }
    if !cfg.cluster.proxy.disabled {
        push(
            "kube-proxy",
            yaml::to_yaml_stream(&kubeproxy::objects(cfg)?)?,
        );
    }
    if !cfg.pod_subnets.is_empty() {
        push(
            "flannel",
            flannel::manifest(cfg, &opts.templates, opts.flannel_iface.as_deref())?,
        );
    }
    Ok(out)
}

/// The image registry of the control-plane images (`imageRepository`, defaulted).
pub fn image_repository(cfg: &InitConfig) -> &str {
    cfg.cluster
        .image_repository
        .as_deref()
        .unwrap_or(crate::config::DEFAULT_IMAGE_REPOSITORY)
}

/// `<repo>/<name>:<tag>` of a Kubernetes component image at the cluster's version (kubeadm
/// replaces `+` in a version by `_` for the tag).
pub fn kubernetes_image(cfg: &InitConfig, name: &str) -> String {
    format!(
        "{}/{}:{}",
        image_repository(cfg),
        name,
        cfg.kubernetes_version.to_string().replace('+', "_")
    )
}

/// The sandbox ("pause") image kubeadm expects for `version` from `repo`.
pub fn pause_image(repo: &str, profile: &versions::VersionProfile) -> String {
    format!("{repo}/pause:{}", profile.pause_tag)
}

/// `host:port` with brackets around IPv6 addresses (Go's `net.JoinHostPort`).
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests;

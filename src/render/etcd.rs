//! The local etcd static Pod (`phases/etcd/local.go`): one member named after the node,
//! TLS for clients and peers from `<certDir>/etcd`, metrics and probes on
//! `http://127.0.0.1:2381`, and the two flags whose spelling depends on the etcd version.

use super::args::{flags, to_command, user_value};
use super::controlplane::manifest_file;
use super::staticpod::{self, Component, Mount, Mounts, ProbeTarget};
use super::{RenderError, RenderedFile, join_host_port, versions};
use crate::config::InitConfig;
use std::collections::BTreeMap;

/// etcd's client port.
pub const CLIENT_PORT: u16 = 2379;
/// etcd's peer port.
pub const PEER_PORT: u16 = 2380;
/// etcd's metrics (and health) port on localhost.
pub const METRICS_PORT: u16 = 2381;

fn localhost(cfg: &InitConfig) -> &'static str {
    if cfg.advertise_address.is_ipv6() {
        "::1"
    } else {
        "127.0.0.1"
    }
}

/// `https://<advertise>:2379`, the URL clients and the annotation use.
pub fn client_url(cfg: &InitConfig) -> String {
    format!(
        "https://{}",
        join_host_port(&cfg.advertise_address.to_string(), CLIENT_PORT)
    )
}

fn peer_url(cfg: &InitConfig) -> String {
    format!(
        "https://{}",
        join_host_port(&cfg.advertise_address.to_string(), PEER_PORT)
    )
}

/// How this etcd member starts: the first of a new cluster, or joining existing members.
#[derive(Debug, Clone, Copy, Default)]
pub enum Membership<'a> {
    /// `--initial-cluster=<node>=<peer URL>`, a new cluster.
    #[default]
    First,
    /// `--initial-cluster=<every member>` and `--initial-cluster-state=existing`
    /// (a control plane joining; the list comes from etcd's member add).
    Joining { initial_cluster: &'a str },
}

/// etcd's command for the first member of a new cluster (`getEtcdCommand`).
pub fn command(cfg: &InitConfig) -> Result<Vec<String>, RenderError> {
    command_for(cfg, Membership::First)
}

/// etcd's command for a member (`getEtcdCommand` with or without initial members).
pub fn command_for(cfg: &InitConfig, member: Membership) -> Result<Vec<String>, RenderError> {
    let profile = versions::profile(cfg.kubernetes_version)?;
    let local = cfg.local_etcd().ok_or_else(|| RenderError::Invalid {
        field: "etcd".into(),
        message: "an external etcd is configured; kubeboot renders no etcd Pod for it".into(),
    })?;
    let cert = |n: &str| cfg.cert_dir.join(n).display().to_string();
    let lh = localhost(cfg);
    let mut d = flags([
        ("advertise-client-urls", client_url(cfg)),
        ("cert-file", cert("etcd/server.crt")),
        ("client-cert-auth", "true".into()),
        (
            "data-dir",
            local
                .data_dir
                .clone()
                .unwrap_or(crate::config::DEFAULT_ETCD_DATA_DIR.into()),
        ),
        ("initial-advertise-peer-urls", peer_url(cfg)),
        (
            "initial-cluster",
            format!("{}={}", cfg.node_name, peer_url(cfg)),
        ),
        ("key-file", cert("etcd/server.key")),
        (
            "listen-client-urls",
            format!(
                "https://{},{}",
                join_host_port(lh, CLIENT_PORT),
                client_url(cfg)
            ),
        ),
        (
            "listen-metrics-urls",
            format!("http://{}", join_host_port(lh, METRICS_PORT)),
        ),
        ("listen-peer-urls", peer_url(cfg)),
        ("name", cfg.node_name.clone()),
        ("peer-cert-file", cert("etcd/peer.crt")),
        ("peer-client-cert-auth", "true".into()),
        ("peer-key-file", cert("etcd/peer.key")),
        ("peer-trusted-ca-file", cert("etcd/ca.crt")),
        ("snapshot-count", "10000".into()),
        ("trusted-ca-file", cert("etcd/ca.crt")),
    ]);
    if let Membership::Joining { initial_cluster } = member {
        d.insert("initial-cluster".into(), initial_cluster.to_string());
        d.insert("initial-cluster-state".into(), "existing".into());
    }
    for (name, value) in profile.etcd_flags.flags() {
        d.insert(name.into(), value.into());
    }
    Ok(to_command("etcd", &d, &local.extra_args))
}

/// Where the probes go: the first `listen-metrics-urls` URL if the user set one, else
/// `http://127.0.0.1:2381` (`GetEtcdProbeEndpoint`).
fn probe_target(cfg: &InitConfig) -> ProbeTarget {
    let default = ProbeTarget {
        host: Some(localhost(cfg).into()),
        port: METRICS_PORT,
        scheme: "HTTP",
    };
    let Some(url) = cfg
        .local_etcd()
        .and_then(|e| user_value(&e.extra_args, "listen-metrics-urls"))
        .and_then(|v| v.split(',').next())
    else {
        return default;
    };
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", r)) => ("HTTPS", r),
        Some((_, r)) => ("HTTP", r),
        None => return default,
    };
    let hostport = rest.split('/').next().unwrap_or("");
    let (host, port) = split_host_port(hostport);
    ProbeTarget {
        host: Some(
            if host.is_empty() {
                localhost(cfg)
            } else {
                host
            }
            .to_string(),
        ),
        port: port.unwrap_or(METRICS_PORT),
        scheme,
    }
}

/// `host:port`, `[v6]:port` or a bare host, like Go's `url.Hostname()`/`Port()`.
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (h, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match s.split_once(':') {
        Some((h, p)) if !p.contains(':') => (h, p.parse().ok()),
        _ => (s, None),
    }
}

/// The local etcd's image: `etcd.local.imageRepository` (else `imageRepository`)
/// `/etcd:` `etcd.local.imageTag` (else the version's etcd tag).
pub fn image(cfg: &InitConfig) -> Result<String, RenderError> {
    let profile = versions::profile(cfg.kubernetes_version)?;
    let local = cfg.local_etcd();
    let repo = local
        .and_then(|l| l.image_repository.clone())
        .unwrap_or_else(|| super::image_repository(cfg).to_string());
    let tag = local
        .and_then(|l| l.image_tag.clone())
        .unwrap_or_else(|| profile.etcd_image_tag.to_string());
    Ok(format!("{repo}/etcd:{tag}"))
}

/// `/etc/kubernetes/manifests/etcd.yaml` of the first member.
pub fn manifest(cfg: &InitConfig) -> Result<RenderedFile, RenderError> {
    manifest_for(cfg, Membership::First)
}

/// `/etc/kubernetes/manifests/etcd.yaml` of a member.
pub fn manifest_for(cfg: &InitConfig, member: Membership) -> Result<RenderedFile, RenderError> {
    let profile = versions::profile(cfg.kubernetes_version)?;
    let local = cfg.local_etcd().ok_or_else(|| RenderError::Invalid {
        field: "etcd".into(),
        message: "an external etcd is configured; kubeboot renders no etcd Pod for it".into(),
    })?;
    let data_dir = local
        .data_dir
        .clone()
        .unwrap_or(crate::config::DEFAULT_ETCD_DATA_DIR.into());
    let mut mounts = Mounts::new();
    mounts.insert(
        "etcd-data".into(),
        Mount::same(&data_dir, false, "DirectoryOrCreate"),
    );
    mounts.insert(
        "etcd-certs".into(),
        Mount::same(
            &cfg.cert_dir.join("etcd").display().to_string(),
            false,
            "DirectoryOrCreate",
        ),
    );
    let c = Component {
        name: "etcd",
        image: image(cfg)?,
        command: command_for(cfg, member)?,
        mounts,
        probe_paths: profile.etcd_probes,
        probe: probe_target(cfg),
        cpu: "100m",
        memory: Some("100Mi"),
        env: staticpod::merge_env(&[], &local.extra_envs),
        annotations: BTreeMap::from([(
            "kubeadm.kubernetes.io/etcd.advertise-client-urls".to_string(),
            client_url(cfg),
        )]),
    };
    manifest_file(
        "etcd",
        &staticpod::pod(&c, profile, staticpod::startup_failure_threshold(cfg)),
    )
}

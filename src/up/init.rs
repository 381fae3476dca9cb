//! init on the first control plane, over SSH, with the inventory's settings.

use super::args::UpArgs;
use super::decide::{healthy_admin, init_missing};
use super::hosts::{InventoryFacts, kubelet_diagnostics};
use crate::apiclient::ApiClient;
use crate::config::cluster::{Cluster, ClusterHost};
use crate::config::v1beta4::Arg;
use crate::config::{InitConfig, InitOverrides};
use crate::host::{Host, SshHost};
use crate::kubeconfig::KubeConfig;
use crate::output::say;
use crate::phases::init::{self as init_phases, InitContext, InitRun};
use crate::phases::label_host;
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

/// The init configuration of the first control plane, from the inventory.
pub fn init_config(
    cluster: &Cluster,
    cp: &ClusterHost,
    cp_timeout: Duration,
    conntrack_max_per_core: Option<u32>,
) -> anyhow::Result<InitConfig> {
    let n = &cluster.networking;
    let o = InitOverrides {
        advertise_address: Some(cp.cluster_address()),
        node_name: Some(cp.name.clone()),
        pod_network_cidr: n.pod_subnet.clone(),
        service_cidr: n.service_subnet.clone(),
        service_dns_domain: n.dns_domain.clone(),
        control_plane_endpoint: n.control_plane_endpoint.clone(),
        kubernetes_version: Some(cluster.kubernetes_version.to_string()),
        image_repository: cluster.image_repository.clone(),
        ..Default::default()
    };
    let mut cfg = InitConfig::load(None, &o, &InventoryFacts)
        .with_context(|| format!("the inventory's settings for {}", cp.name))?;
    cfg.init
        .node_registration
        .kubelet_extra_args
        .extend(cluster.kubelet_extra_args.iter().cloned());
    if let Some(ip) = cp.node_ip {
        cfg.init.node_registration.kubelet_extra_args.push(Arg {
            name: "node-ip".into(),
            value: ip.to_string(),
        });
    }
    let t = cfg.init.timeouts.get_or_insert_with(Default::default);
    t.control_plane_component_health_check = Some(crate::config::duration::GoDuration(cp_timeout));
    if let Some(n) = conntrack_max_per_core {
        cfg.kube_proxy = Some(serde_json::json!({"conntrack": {"maxPerCore": n}}));
    }
    Ok(cfg)
}

/// Initializes the first control plane (or finds it initialized); returns its admin
/// kubeconfig and a client.
pub(super) fn init_control_plane(
    args: &UpArgs,
    cluster: &Cluster,
    host: &SshHost,
    cp: &ClusterHost,
    conntrack: Option<u32>,
) -> anyhow::Result<(KubeConfig, ApiClient, bool)> {
    let _label = label_host(&cp.name);
    if let Some((kc, client)) = healthy_admin(host) {
        let missing = init_missing(cluster, &client);
        if missing.is_empty() {
            crate::phases::report(
                "init",
                "Already initialized: the API server answers with admin.conf and init's last phases are done; skipping init",
            );
            return Ok((kc, client, false));
        }
        crate::phases::report(
            "init",
            &format!(
                "An earlier init stopped part of the way (the cluster lacks {}); finishing it",
                missing.join(", ")
            ),
        );
    }
    let cfg = init_config(cluster, cp, args.control_plane_timeout, conntrack)?;
    let ctx = init_context(&cfg, host);
    let run = init_run(args, cluster, host)?;
    if let Err(e) = init_phases::run_all(&ctx, &run) {
        let diag = kubelet_diagnostics(host);
        crate::phases::report(
            "init",
            &format!("FAILED: {e:#}\nwhat the node says:\n{}", diag.trim_end()),
        );
        return Err(e);
    }
    let bytes = host
        .read_file(Path::new("/etc/kubernetes/admin.conf"))?
        .context("admin.conf is missing after init")?;
    let kc = KubeConfig::parse(&String::from_utf8_lossy(&bytes)).map_err(anyhow::Error::msg)?;
    let client = ApiClient::from_kubeconfig(&kc)?.retrying(crate::apiclient::API_CALL_RETRY);
    Ok((kc, client, true))
}

fn init_context<'a>(cfg: &'a InitConfig, host: &'a SshHost) -> InitContext<'a> {
    InitContext {
        cfg,
        host,
        kubeconfig_dir: crate::config::DEFAULT_KUBECONFIG_DIR.into(),
        cert_options: Default::default(),
    }
}

/// How init runs on the first control plane: which phases `up` skips and why.
fn init_run(args: &UpArgs, cluster: &Cluster, host: &SshHost) -> anyhow::Result<InitRun> {
    let mut skip = Vec::new();
    if host
        .file_info(Path::new("/etc/kubernetes/pki/ca.crt"))?
        .is_some()
    {
        // A previous run got part of the way: the phases are idempotent, preflight would
        // only complain about the files that run wrote.
        skip.push("preflight".to_string());
    }
    if cluster.cni.name != "flannel" {
        // none: the user's own; bridge: written by up once the Node has its podCIDR.
        skip.push("cni".to_string());
    }
    Ok(InitRun {
        skip_phases: skip,
        ignore_preflight_errors: args.ignore_preflight_errors.clone(),
        flannel_iface: cluster.cni.iface.clone(),
        node_wait: args.control_plane_timeout,
        ..Default::default()
    })
}

/// What init's phases say they would do on the first control plane (`up --plan`): the
/// same workflow, configuration and skips the run uses.
pub(super) fn init_plan(
    args: &UpArgs,
    cluster: &Cluster,
    host: &SshHost,
    cp: &ClusterHost,
    conntrack: Option<u32>,
) -> anyhow::Result<String> {
    let cfg = init_config(cluster, cp, args.control_plane_timeout, conntrack)?;
    init_phases::plan(&init_context(&cfg, host), &init_run(args, cluster, host)?)
}

/// kube-proxy's `conntrack.maxPerCore`: the inventory's, else 0 when a host cannot
/// write nf_conntrack_max (kube-proxy would exit there), saying so; else kube-proxy's
/// default.
pub(super) fn conntrack_setting(
    cluster: &Cluster,
    facts: &[(String, crate::playbook::Facts)],
) -> Option<u32> {
    if let Some(n) = cluster.conntrack_max_per_core {
        return Some(n);
    }
    let limited: Vec<&str> = facts
        .iter()
        .filter(|(_, f)| !f.conntrack_max_writable)
        .map(|(h, _)| h.as_str())
        .collect();
    if limited.is_empty() {
        return None;
    }
    say(&format!(
        "note: nf_conntrack_max cannot be written on {}: kube-proxy gets conntrack.maxPerCore 0 (leave the kernel's limit); set spec.kubeProxy.conntrackMaxPerCore to decide yourself",
        limited.join(", ")
    ));
    Some(0)
}

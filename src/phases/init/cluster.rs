//! init phases that talk to the new cluster: wait for the API server, upload the
//! configuration, mark the control plane, set up bootstrap tokens and discovery, and the
//! `kubeadm:cluster-admins` binding that gives admin.conf its rights.

use super::InitContext;
use super::rbac;
use crate::apiclient::{ApiClient, ApiError};
use crate::discovery;
use crate::kubeconfig::KubeConfig;
use crate::phases::report;
use crate::token::{BootstrapToken, TokenInfo};
use anyhow::Context;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// kubeadm's default wait for the control plane (`controlPlaneComponentHealthCheck`).
pub const DEFAULT_CONTROL_PLANE_TIMEOUT: Duration = Duration::from_secs(240);

/// A client from a kubeconfig file on the node.
pub fn client_from(ctx: &InitContext, file: &str) -> anyhow::Result<ApiClient> {
    client_at(ctx, file, None)
}

/// A client from a kubeconfig file on the node, talking to `server` instead of the
/// file's own when given (this node's API server, or the one discovery found).
pub fn client_at(ctx: &InitContext, file: &str, server: Option<&str>) -> anyhow::Result<ApiClient> {
    let path = ctx.kubeconfig_dir.join(file);
    let bytes = ctx.host.read_file(&path)?.with_context(|| {
        format!(
            "{} does not exist; run `kubeboot init phase kubeconfig` first",
            path.display()
        )
    })?;
    let mut kc = KubeConfig::parse(&String::from_utf8_lossy(&bytes))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if let Some(server) = server {
        for c in &mut kc.clusters {
            c.cluster.server = server.to_string();
        }
    }
    Ok(ApiClient::from_kubeconfig(&kc)?.retrying(crate::apiclient::API_CALL_RETRY))
}

/// A client from a kubeconfig file anywhere on the node (the phases' `--kubeconfig`).
pub fn client_from_path(
    host: &dyn crate::host::Host,
    path: &std::path::Path,
) -> anyhow::Result<ApiClient> {
    let bytes = host
        .read_file(path)?
        .with_context(|| format!("{} (--kubeconfig) does not exist", path.display()))?;
    let kc = KubeConfig::parse(&String::from_utf8_lossy(&bytes))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(ApiClient::from_kubeconfig(&kc)?)
}

/// The admin client, after making sure `kubeadm:cluster-admins` is bound: with admin.conf
/// if that already works, else created through super-admin.conf (kubeadm's
/// `EnsureAdminClusterRoleBinding`).
pub fn admin_client(ctx: &InitContext) -> anyhow::Result<ApiClient> {
    let admin = client_from(ctx, "admin.conf")?;
    let crb = rbac::cluster_admins();
    match admin.apply(&crb) {
        Ok(_) => return Ok(admin),
        Err(e) if e.is_forbidden() => {}
        Err(e) => return Err(e.into()),
    }
    let super_admin = client_from(ctx, "super-admin.conf")
        .context("admin.conf has no rights yet and super-admin.conf is needed to grant them")?;
    super_admin.apply(&crb)?;
    report(
        "kubeconfig",
        "Created ClusterRoleBinding kubeadm:cluster-admins (through super-admin.conf)",
    );
    // The API server's authorizer learns of the binding from its own cache, a moment
    // later: until then admin.conf is still refused (seen in the lab: the next phase's
    // request forbidden). The same request again, until it is allowed.
    let start = std::time::Instant::now();
    loop {
        match admin.apply(&crb) {
            Ok(_) => return Ok(admin),
            Err(e) if e.is_forbidden() && start.elapsed() < ADMIN_BINDING_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "admin.conf is still refused {}s after kubeadm:cluster-admins was bound through super-admin.conf",
                    start.elapsed().as_secs()
                )));
            }
        }
    }
}

/// How long admin.conf may be refused after its binding was created.
const ADMIN_BINDING_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until this node's own API server (`localAPIEndpoint`, not a load-balanced
/// `controlPlaneEndpoint` that another node may answer) says ok on `/readyz`.
pub fn wait_local_api(ctx: &InitContext) -> anyhow::Result<()> {
    let local = ctx.cfg.local_endpoint().url();
    wait_ready(
        ctx,
        &client_at(ctx, "admin.conf", Some(&local))?,
        "this node's API server",
    )
}

/// `wait-control-plane`: until `/readyz` says ok.
pub fn wait_control_plane(ctx: &InitContext) -> anyhow::Result<()> {
    wait_ready(ctx, &client_from(ctx, "admin.conf")?, "the API server")
}

/// Waits for `/readyz` within `controlPlaneComponentHealthCheck`, reporting both ends.
fn wait_ready(ctx: &InitContext, client: &ApiClient, what: &str) -> anyhow::Result<()> {
    let timeout = ctx
        .cfg
        .init
        .timeouts
        .as_ref()
        .and_then(|t| t.control_plane_component_health_check)
        .map(|d| d.0)
        .unwrap_or(DEFAULT_CONTROL_PLANE_TIMEOUT);
    crate::phases::replacing::wait_for_replacements(
        ctx.host,
        crate::render::MANIFESTS_DIR,
        crate::phases::replacing::STOP_WAIT.min(timeout),
        &|line| report("wait-control-plane", line),
    );
    report(
        "wait-control-plane",
        &format!(
            "Waiting for {what} at {} to be ready (up to {}s)",
            client.server(),
            timeout.as_secs()
        ),
    );
    let took = client.wait_ready(timeout)?;
    report(
        "wait-control-plane",
        &format!("The API server is ready after {:.1}s", took.as_secs_f64()),
    );
    Ok(())
}

/// `upload-config`: the `kubeadm-config` and `kubelet-config` ConfigMaps (with kubeadm's
/// checksum annotation) and the Roles that let nodes read them.
pub fn upload_config(
    ctx: &InitContext,
    client: &ApiClient,
    which: &str,
    kubelet_config: &str,
) -> anyhow::Result<()> {
    if matches!(which, "all" | "kubeadm") {
        upload_kubeadm_config(ctx, client)?;
    }
    if matches!(which, "all" | "kubelet") {
        upload_kubelet_config(client, kubelet_config)?;
    }
    Ok(())
}

fn upload_kubeadm_config(ctx: &InitContext, client: &ApiClient) -> anyhow::Result<()> {
    let cluster_yaml = crate::yaml::to_string(&ctx.cfg.cluster).map_err(anyhow::Error::msg)?;
    client.apply(&rbac::configmap(
        "kube-system",
        "kubeadm-config",
        json!({"ClusterConfiguration": cluster_yaml}),
        json!({}),
    ))?;
    for o in rbac::kubeadm_config_reader() {
        client.apply(&o)?;
    }
    report(
        "upload-config",
        "Stored the configuration used in the ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace",
    );
    Ok(())
}

fn upload_kubelet_config(client: &ApiClient, kubelet_config: &str) -> anyhow::Result<()> {
    let data = json!({"kubelet": kubelet_config});
    let sum = rbac::configmap_checksum(data.as_object().expect("object"));
    client.apply(&rbac::configmap(
        "kube-system",
        "kubelet-config",
        data,
        json!({"kubeadm.kubernetes.io/component-config.hash": sum}),
    ))?;
    for o in rbac::kubelet_config_reader() {
        client.apply(&o)?;
    }
    report(
        "kubelet",
        "Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster",
    );
    Ok(())
}

/// `mark-control-plane`: waits for this node's Node object, then adds kubeadm's labels
/// and the configured taints.
pub fn mark_control_plane(
    ctx: &InitContext,
    client: &ApiClient,
    wait: Duration,
) -> anyhow::Result<()> {
    let name = &ctx.cfg.node_name;
    let path = format!("/api/v1/nodes/{name}");
    report(
        "mark-control-plane",
        &format!(
            "Marking the node {name} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]"
        ),
    );
    let start = Instant::now();
    let node = loop {
        match client.get_opt(&path)? {
            Some(n) => break n,
            None if start.elapsed() < wait => std::thread::sleep(Duration::from_secs(1)),
            None => anyhow::bail!(
                "the Node {name} did not register within {}s: is the kubelet running on it? (`journalctl -u kubelet`)",
                wait.as_secs()
            ),
        }
    };
    let mut taints: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for t in ctx.cfg.init.node_registration.taints.iter().flatten() {
        let exists = taints
            .iter()
            .any(|x| x["key"] == t.key.as_str() && x["effect"] == t.effect.as_str());
        if !exists {
            let mut v = json!({"key": t.key, "effect": t.effect});
            if let Some(val) = &t.value {
                v["value"] = json!(val);
            }
            taints.push(v);
        }
    }
    client.merge_patch(
        &path,
        &json!({
            "metadata": {"labels": {
                "node-role.kubernetes.io/control-plane": "",
                "node.kubernetes.io/exclude-from-external-load-balancers": ""
            }},
            "spec": {"taints": taints}
        }),
    )?;
    report(
        "mark-control-plane",
        &format!(
            "Marking the node {name} as control-plane by adding the taints {:?}",
            ctx.cfg
                .init
                .node_registration
                .taints
                .iter()
                .flatten()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect::<Vec<_>>()
        ),
    );
    Ok(())
}

/// The tokens of the configuration, with generated values where none was given.
pub fn configured_tokens(ctx: &InitContext) -> anyhow::Result<Vec<TokenInfo>> {
    let now = time::OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for spec in &ctx.cfg.init.bootstrap_tokens {
        let expires = match (&spec.expires, spec.ttl) {
            (Some(e), _) => Some(time::OffsetDateTime::parse(
                e,
                &time::format_description::well_known::Rfc3339,
            )?),
            (None, Some(ttl)) if !ttl.0.is_zero() => Some(now + ttl.0),
            _ => None,
        };
        out.push(TokenInfo {
            token: spec.token.clone().unwrap_or_else(BootstrapToken::generate),
            description: spec.description.clone().unwrap_or_default(),
            expires,
            usages: spec.usages.clone(),
            groups: spec.groups.clone(),
        });
    }
    Ok(out)
}

/// `bootstrap-token`: the token Secrets, node-bootstrap RBAC, and the public
/// `cluster-info` ConfigMap with its anonymous reader Role. Returns the tokens.
pub fn bootstrap_token(ctx: &InitContext, client: &ApiClient) -> anyhow::Result<Vec<TokenInfo>> {
    let tokens = configured_tokens(ctx)?;
    for t in &tokens {
        crate::token::apply(client, t)?;
        report(
            "bootstrap-token",
            &format!(
                "Using token {}.<secret> (expires {})",
                t.token.id(),
                t.expires
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "never".into())
            ),
        );
    }
    report(
        "bootstrap-token",
        "Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles",
    );
    for o in rbac::node_bootstrap() {
        client.apply(&o)?;
    }
    report(
        "bootstrap-token",
        "Configured RBAC rules to allow Node Bootstrap tokens to get nodes, post CSRs for a long term certificate credential, and have the csrapprover controller automatically approve them; certificate rotation for all node client certificates in the cluster",
    );
    let (ca, _) = crate::pki::load_ca(ctx.host, &ctx.cfg.cert_dir, "ca")?;
    let kubeconfig = discovery::cluster_info_kubeconfig(&ctx.cfg.cluster_url(), &ca.to_pem());
    client.apply(&rbac::configmap(
        "kube-public",
        "cluster-info",
        json!({"kubeconfig": kubeconfig}),
        json!({}),
    ))?;
    for o in rbac::cluster_info_reader() {
        client.apply(&o)?;
    }
    report(
        "bootstrap-token",
        "Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace",
    );
    Ok(tokens)
}

/// Waits until the controller-manager's bootstrapsigner has signed cluster-info for
/// `token` and checks the signature; returns the verified cluster-info kubeconfig.
pub fn wait_signed_cluster_info(
    client: &ApiClient,
    token: &BootstrapToken,
    timeout: Duration,
) -> Result<KubeConfig, ApiError> {
    let start = Instant::now();
    loop {
        let cm = client.get(discovery::CLUSTER_INFO)?;
        match discovery::verified_kubeconfig(&cm, token.id(), token.secret()) {
            Ok(kc) => return Ok(kc),
            Err(discovery::DiscoveryError::NoSignature(_)) if start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(500))
            }
            Err(e) => return Err(ApiError::Discovery(e.to_string())),
        }
    }
}

/// The KubeletConfiguration every node gets, as the YAML of the `kubelet-config` ConfigMap.
pub fn kubelet_config_yaml(ctx: &InitContext) -> anyhow::Result<String> {
    let opts = super::render_options(ctx, None)?;
    let v = crate::render::kubelet::config(ctx.cfg, &opts)?;
    crate::yaml::to_string(&v).map_err(anyhow::Error::msg)
}

/// `addon coredns|kube-proxy|all`: the addon objects, server-side applied.
pub fn addon(ctx: &InitContext, client: &ApiClient, which: &str) -> anyhow::Result<()> {
    let opts = super::render_options(ctx, None)?;
    if matches!(which, "all" | "coredns") {
        if ctx.cfg.cluster.dns.disabled {
            report("addons", "Skipped CoreDNS: dns.disabled is set");
        } else {
            for o in crate::render::coredns::objects(ctx.cfg, &opts.templates)? {
                client.apply(&o)?;
            }
            report("addons", "Applied essential addon: CoreDNS");
        }
    }
    if matches!(which, "all" | "kube-proxy") {
        if ctx.cfg.cluster.proxy.disabled {
            report("addons", "Skipped kube-proxy: proxy.disabled is set");
        } else {
            for o in crate::render::kubeproxy::objects(ctx.cfg)? {
                client.apply(&o)?;
            }
            report("addons", "Applied essential addon: kube-proxy");
        }
    }
    Ok(())
}

/// `cni`: flannel's manifest, each document server-side applied as written.
pub fn cni(ctx: &InitContext, client: &ApiClient, iface: Option<String>) -> anyhow::Result<()> {
    let opts = super::render_options(ctx, iface)?;
    let manifest =
        crate::render::flannel::manifest(ctx.cfg, &opts.templates, opts.flannel_iface.as_deref())?;
    let docs = crate::yaml::documents(&manifest);
    for d in &docs {
        client.apply_yaml(d)?;
    }
    report(
        "cni",
        &format!(
            "Applied flannel ({} objects) for pod network {}",
            docs.len(),
            ctx.cfg
                .pod_subnets
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    Ok(())
}

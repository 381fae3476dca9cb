//! init's phases as one [`Workflow`]: the list that drives `kubeboot init`,
//! `--skip-phases` and `skipPhases`, `init --dry-run`'s plan and the phase help.

use super::{InitContext, InitOutcome, InitRun, cluster};
use crate::apiclient::ApiClient;
use crate::phases::report;
use crate::pki;
use crate::secret::Secret;
use crate::token::TokenInfo;
use crate::workflow::{Part, Phase, Workflow};
use std::path::Path;

/// What init's phases share during one run.
pub struct InitData<'a> {
    pub ctx: &'a InitContext<'a>,
    pub run: &'a InitRun,
    /// Whether the `cni` phase runs (preflight then also checks flannel's images).
    pub cni_runs: bool,
    /// The admin client, made (and the cluster-admins binding ensured) on first use.
    client: Option<ApiClient>,
    tokens: Vec<TokenInfo>,
    pub outcome: InitOutcome,
}

impl<'a> InitData<'a> {
    pub fn new(ctx: &'a InitContext<'a>, run: &'a InitRun) -> Self {
        InitData {
            ctx,
            run,
            cni_runs: true,
            client: None,
            tokens: Vec::new(),
            outcome: InitOutcome::default(),
        }
    }

    /// With the API client the phases use instead of admin.conf's (`init phase X
    /// --kubeconfig FILE`).
    pub fn with_client(mut self, client: ApiClient) -> Self {
        self.client = Some(client);
        self
    }

    /// The admin client, built once for all phases that talk to the API server.
    fn client(&mut self) -> anyhow::Result<&ApiClient> {
        use anyhow::Context;
        if self.client.is_none() {
            self.client = Some(
                cluster::admin_client(self.ctx).context("creating the cluster-admins binding")?,
            );
        }
        Ok(self.client.as_ref().expect("set above"))
    }
}

/// The names of `part`'s sub-phases among `all` (every one for [`Part::All`]).
fn chosen<'s>(part: &Part, all: &[&'s str]) -> Vec<&'s str> {
    all.iter().copied().filter(|c| part.has(c)).collect()
}

fn exists(d: &InitData, path: &Path) -> anyhow::Result<bool> {
    Ok(d.ctx.host.file_info(path)?.is_some())
}

fn certs_children() -> Vec<&'static str> {
    super::cert_phase_names()[1..].to_vec()
}

fn kubeconfig_children() -> Vec<&'static str> {
    super::kubeconfig_phase_names()[1..].to_vec()
}

const CONTROL_PLANE: [(&str, &str); 3] = [
    ("apiserver", "kube-apiserver"),
    ("controller-manager", "kube-controller-manager"),
    ("scheduler", "kube-scheduler"),
];

/// init's phases, in kubeadm's order, plus kubeboot's `cni`.
pub fn workflow<'a>() -> Workflow<InitData<'a>> {
    Workflow {
        command: "init",
        phases: vec![
            Phase::new("preflight", "Run pre-flight checks", preflight, preflight_plan),
            Phase::new("certs", "Certificate generation", certs, certs_plan)
                .children(certs_children()),
            Phase::new(
                "kubeconfig",
                "Generate all kubeconfig files necessary to establish the control plane and the admin kubeconfig file",
                kubeconfig,
                kubeconfig_plan,
            )
            .children(kubeconfig_children()),
            Phase::new("etcd", "Generate static Pod manifest file for local etcd", etcd, etcd_plan)
                .children(vec!["local"])
                .run_if(|d| d.ctx.cfg.local_etcd().is_some()),
            Phase::new(
                "control-plane",
                "Generate all static Pod manifest files necessary to establish the control plane",
                control_plane,
                control_plane_plan,
            )
            .children(CONTROL_PLANE.iter().map(|c| c.0).collect()),
            Phase::new(
                "kubelet-start",
                "Write kubelet settings and (re)start the kubelet",
                |d, _| super::kubelet_start(d.ctx),
                |_, _| {
                    Ok(vec![
                        "Would write /var/lib/kubelet/config.yaml and /var/lib/kubelet/kubeadm-flags.env and (re)start the kubelet".into(),
                    ])
                },
            ),
            Phase::new(
                "wait-control-plane",
                "Wait for the control plane to start",
                |d, _| cluster::wait_control_plane(d.ctx),
                |d, _| {
                    Ok(vec![format!(
                        "Would wait for the API server at {} to be ready",
                        d.ctx.cfg.cluster_url()
                    )])
                },
            ),
            Phase::new(
                "upload-config",
                "Upload the kubeadm and kubelet configuration to a ConfigMap",
                upload_config,
                upload_config_plan,
            )
            .children(vec!["kubeadm", "kubelet"]),
            Phase::new(
                "upload-certs",
                "Upload certificates to kubeadm-certs",
                upload_certs,
                upload_certs_plan,
            ),
            Phase::new(
                "mark-control-plane",
                "Mark a node as a control-plane",
                |d, _| {
                    let (ctx, wait) = (d.ctx, d.run.node_wait);
                    let client = d.client()?;
                    cluster::mark_control_plane(ctx, client, wait)
                },
                |d, _| {
                    Ok(vec![format!(
                        "Would label node {} as a control plane and taint it with {}",
                        d.ctx.cfg.node_name,
                        taints(d)
                    )])
                },
            ),
            Phase::new(
                "bootstrap-token",
                "Generates bootstrap tokens used to join a node to a cluster",
                |d, _| {
                    let ctx = d.ctx;
                    let client = d.client()?;
                    d.tokens = cluster::bootstrap_token(ctx, client)?;
                    Ok(())
                },
                bootstrap_token_plan,
            ),
            Phase::new(
                "kubelet-finalize",
                "Updates settings relevant to the kubelet after TLS bootstrap",
                |d, _| super::kubelet_finalize(d.ctx),
                |_, _| {
                    Ok(vec![
                        "Would point kubelet.conf at the kubelet's rotated client certificate once it exists".into(),
                    ])
                },
            ),
            Phase::new("addon", "Install required addons for passing conformance tests", addon, addon_plan)
                .children(vec!["coredns", "kube-proxy"]),
            Phase::new("cni", "Install the flannel pod network (kubeboot)", cni, cni_plan),
            Phase::new(
                "show-join-command",
                "Show the join command for control-plane and worker node",
                show_join_command,
                |_, _| {
                    Ok(vec![
                        "Would print the join command with the bootstrap token and the CA's hash".into(),
                    ])
                },
            ),
        ],
    }
}

/// The CNI whose images preflight checks: flannel's when the `cni` phase runs.
fn preflight_cni(d: &InitData) -> Option<&'static str> {
    d.cni_runs
        .then(|| crate::render::images::default_cni(d.ctx.cfg))
        .flatten()
}

fn preflight(d: &mut InitData, _: &Part) -> anyhow::Result<()> {
    let cni = preflight_cni(d);
    super::preflight(
        d.ctx,
        &d.run.ignore_preflight_errors,
        &d.run.containerd,
        cni,
    )
}

fn preflight_plan(d: &InitData, _: &Part) -> anyhow::Result<Vec<String>> {
    let cni = preflight_cni(d);
    let images = crate::render::images::for_node(d.ctx.cfg, cni, true)?;
    Ok(vec![format!(
        "Would run the pre-flight checks (ports, swap, kernel settings, container runtime) and make sure containerd has {} images",
        images.len()
    )])
}

fn certs(d: &mut InitData, part: &Part) -> anyhow::Result<()> {
    match part {
        Part::All => super::certs(d.ctx, "all"),
        Part::Only(list) => {
            // Only those the configuration needs (no etcd certificates with an external
            // etcd), like `all` does.
            let needed: Vec<&str> = pki::spec::needed(d.ctx.cfg).map(|c| c.name).collect();
            for c in list {
                if c == "sa" || needed.contains(&c.as_str()) {
                    super::certs(d.ctx, c)?;
                }
            }
            Ok(())
        }
    }
}

fn certs_plan(d: &InitData, part: &Part) -> anyhow::Result<Vec<String>> {
    let dir = &d.ctx.cfg.cert_dir;
    let mut v = Vec::new();
    for c in pki::spec::needed(d.ctx.cfg).filter(|c| part.has(c.name)) {
        let path = dir.join(format!("{}.crt", c.base));
        v.push(if exists(d, &path)? {
            format!(
                "Would use the existing {} certificate {}",
                c.name,
                path.display()
            )
        } else {
            format!(
                "Would generate the {} certificate and key at {}",
                c.name,
                path.display()
            )
        });
    }
    if part.has("sa") {
        let path = dir.join("sa.key");
        v.push(if exists(d, &path)? {
            format!(
                "Would use the existing service account key {}",
                path.display()
            )
        } else {
            format!(
                "Would generate the service account key pair at {}",
                path.display()
            )
        });
    }
    Ok(v)
}

fn kubeconfig(d: &mut InitData, part: &Part) -> anyhow::Result<()> {
    match part {
        Part::All => super::kubeconfig(d.ctx, "all"),
        Part::Only(list) => list.iter().try_for_each(|k| super::kubeconfig(d.ctx, k)),
    }
}

fn kubeconfig_plan(d: &InitData, part: &Part) -> anyhow::Result<Vec<String>> {
    let mut v = Vec::new();
    for k in crate::kubeconfig::KUBECONFIGS
        .iter()
        .filter(|k| part.has(k.name))
    {
        let path = d.ctx.kubeconfig_dir.join(k.file);
        v.push(if exists(d, &path)? {
            format!("Would use the existing kubeconfig file {}", path.display())
        } else {
            format!("Would write the kubeconfig file {}", path.display())
        });
    }
    Ok(v)
}

fn manifest_line(stem: &str) -> String {
    format!(
        "Would write the static Pod manifest for {stem:?} at {}",
        Path::new(crate::render::MANIFESTS_DIR)
            .join(format!("{stem}.yaml"))
            .display()
    )
}

fn etcd(d: &mut InitData, _: &Part) -> anyhow::Result<()> {
    super::etcd(d.ctx)
}

fn etcd_plan(_: &InitData, _: &Part) -> anyhow::Result<Vec<String>> {
    Ok(vec![manifest_line("etcd")])
}

fn control_plane(d: &mut InitData, part: &Part) -> anyhow::Result<()> {
    match part {
        Part::All => super::control_plane(d.ctx, "all"),
        Part::Only(list) => list.iter().try_for_each(|c| super::control_plane(d.ctx, c)),
    }
}

fn control_plane_plan(_: &InitData, part: &Part) -> anyhow::Result<Vec<String>> {
    Ok(CONTROL_PLANE
        .iter()
        .filter(|c| part.has(c.0))
        .map(|c| manifest_line(c.1))
        .collect())
}

fn upload_config(d: &mut InitData, part: &Part) -> anyhow::Result<()> {
    let kubelet = cluster::kubelet_config_yaml(d.ctx)?;
    let ctx = d.ctx;
    let client = d.client()?;
    for which in chosen(part, &["kubeadm", "kubelet"]) {
        cluster::upload_config(ctx, client, which, &kubelet)?;
    }
    Ok(())
}

fn upload_config_plan(_: &InitData, part: &Part) -> anyhow::Result<Vec<String>> {
    let mut v = Vec::new();
    if part.has("kubeadm") {
        v.push("Would store the ClusterConfiguration in the ConfigMap \"kubeadm-config\" in kube-system".into());
    }
    if part.has("kubelet") {
        v.push("Would store the kubelets' configuration in the ConfigMap \"kubelet-config\" in kube-system".into());
    }
    Ok(v)
}

fn upload_certs(d: &mut InitData, _: &Part) -> anyhow::Result<()> {
    if !d.run.upload_certs {
        report("upload-certs", "Skipping phase. Please see --upload-certs");
        return Ok(());
    }
    let key = d.run.certificate_key.clone();
    let ctx = d.ctx;
    let client = d.client()?;
    d.outcome.certificate_key = Some(super::upload_certs(ctx, client, key.as_ref())?);
    Ok(())
}

fn upload_certs_plan(d: &InitData, _: &Part) -> anyhow::Result<Vec<String>> {
    Ok(vec![if d.run.upload_certs {
        format!(
            "Would encrypt the shared certificates into the Secret {:?} in kube-system with {}",
            crate::copycerts::SECRET,
            if d.run.certificate_key.is_some() {
                "the given certificate key"
            } else {
                "a new certificate key"
            }
        )
    } else {
        "Would skip: --upload-certs was not given".into()
    }])
}

fn taints(d: &InitData) -> String {
    let t = &d.ctx.cfg.init.node_registration.taints;
    match t {
        Some(list) if list.is_empty() => "no taints".into(),
        Some(list) => list
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect::<Vec<_>>()
            .join(", "),
        None => "node-role.kubernetes.io/control-plane:NoSchedule".into(),
    }
}

fn bootstrap_token_plan(d: &InitData, _: &Part) -> anyhow::Result<Vec<String>> {
    let tokens = cluster::configured_tokens(d.ctx)?;
    let mut v: Vec<String> = tokens
        .iter()
        .map(|t| format!("Would create the bootstrap token {}.<secret>", t.token.id()))
        .collect();
    v.push("Would create the \"cluster-info\" ConfigMap in kube-public and the RBAC rules for joining nodes".into());
    Ok(v)
}

fn addon(d: &mut InitData, part: &Part) -> anyhow::Result<()> {
    let ctx = d.ctx;
    let client = d.client()?;
    for which in chosen(part, &["coredns", "kube-proxy"]) {
        cluster::addon(ctx, client, which)?;
    }
    Ok(())
}

fn addon_plan(d: &InitData, part: &Part) -> anyhow::Result<Vec<String>> {
    let c = &d.ctx.cfg.cluster;
    let mut v = Vec::new();
    if part.has("coredns") {
        v.push(if c.dns.disabled {
            "Would skip CoreDNS: dns.disabled is set".into()
        } else {
            "Would apply the CoreDNS addon".into()
        });
    }
    if part.has("kube-proxy") {
        v.push(if c.proxy.disabled {
            "Would skip kube-proxy: proxy.disabled is set".into()
        } else {
            "Would apply the kube-proxy addon".into()
        });
    }
    Ok(v)
}

fn cni(d: &mut InitData, _: &Part) -> anyhow::Result<()> {
    if d.ctx.cfg.pod_subnets.is_empty() {
        report(
            "cni",
            "Skipped: no pod network CIDR (networking.podSubnet / --pod-network-cidr); install a CNI yourself",
        );
        return Ok(());
    }
    let iface = d.run.flannel_iface.clone();
    let ctx = d.ctx;
    let client = d.client()?;
    cluster::cni(ctx, client, iface)
}

fn cni_plan(d: &InitData, _: &Part) -> anyhow::Result<Vec<String>> {
    let nets = &d.ctx.cfg.pod_subnets;
    Ok(vec![if nets.is_empty() {
        "Would skip: no pod network CIDR (networking.podSubnet / --pod-network-cidr)".into()
    } else {
        format!(
            "Would apply flannel for pod network {}",
            nets.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        )
    }])
}

fn show_join_command(d: &mut InitData, _: &Part) -> anyhow::Result<()> {
    let Some(token) = d.tokens.first() else {
        return Ok(());
    };
    let (ca, _) = pki::load_ca(d.ctx.host, &d.ctx.cfg.cert_dir, "ca")?;
    let endpoint = d.ctx.cfg.cluster_url();
    d.outcome.endpoint = Some(endpoint.trim_start_matches("https://").to_string());
    d.outcome.token_id = Some(token.token.id().to_string());
    d.outcome.ca_cert_hash = Some(ca.spki_sha256());
    d.outcome.join = Some(Secret::new(format!(
        "kubeboot join {} --token {} --discovery-token-ca-cert-hash {}",
        endpoint.trim_start_matches("https://"),
        token.token,
        ca.spki_sha256()
    )));
    Ok(())
}

/// `init phase NAME [SUB]`: one phase (`addon`) or sub-phase (`addon/kube-proxy`) alone,
/// from the same list a whole init runs; `all` as the sub-phase means the whole phase.
pub fn run_phase<'a>(
    data: &mut InitData<'a>,
    phase: &str,
    sub: Option<&str>,
) -> anyhow::Result<()> {
    let name = match sub {
        None | Some("all") => phase.to_string(),
        Some(s) => format!("{phase}/{s}"),
    };
    workflow().run_one(data, &name)
}

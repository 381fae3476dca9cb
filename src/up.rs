//! `kubeboot up -f cluster.yaml`: a whole cluster from one inventory, over SSH. Prepare
//! every host in parallel, `init` the first control plane, fetch its admin.conf to this
//! workstation, join further control planes one at a time (the shared certificates copied
//! over SSH from the first, never through the API; one etcd membership change at a time),
//! then the workers in parallel, all with a fresh short-lived token that is deleted
//! afterwards. Every phase runs from here through `SshHost`; nothing is copied to
//! the nodes but the files the phases write. A re-run skips what is already done, so
//! adding a host to the file and re-running joins just that host.

use crate::apiclient::ApiClient;
use crate::config::cluster::{Cluster, ClusterHost, Role};
use crate::config::join::{JoinConfig, JoinOverrides};
use crate::config::v1beta4::Arg;
use crate::config::{InitConfig, InitOverrides, LocalFacts};
use crate::host::{Host, RunOptions, SshConfig, SshHost, WriteOptions};
use crate::kubeconfig::KubeConfig;
use crate::orchestrate::ssh_config_for;
use crate::output::say;
use crate::phases::init::{self as init_phases, InitContext, InitRun};
use crate::phases::{join as join_phases, label_host};
use crate::prepare::{self, PrepareArgs};
use crate::token::{BootstrapToken, TokenInfo};
use anyhow::Context;
use clap::Args;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `kubeboot up` flags: the inventory and SSH flags of `prepare`, plus these.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub prepare: PrepareArgs,
    /// How long init waits for the API server to become ready.
    #[arg(long, default_value = "4m", value_parser = parse_duration)]
    pub control_plane_timeout: Duration,
    /// How long each join waits for the kubelet's TLS bootstrap.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub join_timeout: Duration,
    /// Where to write the cluster's admin.conf on this machine
    /// [default: ~/.kube/kubeboot-<cluster name>.conf].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig_out: Option<PathBuf>,
    /// How long `up` waits at the end for every node to be Ready and the addons to roll
    /// out, then reports the cluster's health (why anything is not: image missing on which
    /// node, crash loop with its last log line, unschedulable). `up` fails when a host is
    /// not in the cluster or not Ready; an addon that is not available (CoreDNS without its
    /// image, say) is reported, not fatal. 0s: report without waiting.
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    pub wait: Duration,
    /// Preflight checks whose errors become warnings on every node (names, or `all`).
    #[arg(long, value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::config::duration::GoDuration::parse(s).map(|d| d.0)
}

/// Facts come from the inventory, never from the workstation.
struct InventoryFacts;

impl LocalFacts for InventoryFacts {
    fn hostname(&self) -> Option<String> {
        None
    }
    fn default_address(&self) -> Option<IpAddr> {
        None
    }
}

/// What happened on one host, for the summary.
#[derive(Debug, Clone)]
pub struct HostOutcome {
    pub host: String,
    pub role: &'static str,
    pub prepare: String,
    pub result: String,
    pub ok: bool,
    pub seconds: f64,
}

/// The join token of one `up`: created when the first host that is not yet joined needs
/// it, so that a re-run with nothing to join writes nothing to the cluster (no token
/// Secret, no cluster-info signature for it); deleted when `up` ends.
struct JoinToken<'a> {
    admin: &'a ApiClient,
    created: std::sync::Mutex<Option<BootstrapToken>>,
}

impl<'a> JoinToken<'a> {
    fn new(admin: &'a ApiClient) -> Self {
        JoinToken {
            admin,
            created: std::sync::Mutex::new(None),
        }
    }

    /// The token, created with a 30-minute expiry on first use.
    fn get(&self) -> anyhow::Result<BootstrapToken> {
        let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = created.as_ref() {
            return Ok(t.clone());
        }
        let token = BootstrapToken::generate();
        crate::token::create(
            self.admin,
            &TokenInfo {
                token: token.clone(),
                description: "kubeboot up: joins nodes; deleted when up ends".into(),
                expires: Some(time::OffsetDateTime::now_utc() + time::Duration::minutes(30)),
                usages: vec!["signing".into(), "authentication".into()],
                groups: vec![crate::token::DEFAULT_GROUP.into()],
            },
        )
        .context("creating the join token")?;
        *created = Some(token.clone());
        Ok(token)
    }

    /// Deletes the token if one was created.
    fn delete(self) {
        let created = self.created.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = created
            && let Err(e) = crate::token::delete(self.admin, token.id())
        {
            eprintln!(
                "warning: could not delete the join token {}: {e}",
                token.id()
            );
        }
    }
}

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

fn connect(cluster_ssh: &SshConfig, h: &ClusterHost) -> anyhow::Result<SshHost> {
    Ok(SshHost::connect(
        &h.name,
        &h.address,
        &ssh_config_for(cluster_ssh, h),
    )?)
}

/// Why init stopped, with what the node says about its kubelet.
fn kubelet_diagnostics(host: &dyn Host) -> String {
    let out = host.run(
        "echo \"kubelet: $(systemctl is-active kubelet 2>&1)\"; j=$(journalctl -u kubelet --no-pager -o cat 2>/dev/null); echo \"$j\" | grep -E '^F[0-9]{4}' | tail -n 2 | cut -c1-400; echo \"$j\" | grep -E '^E[0-9]{4}' | tail -n 2 | cut -c1-300",
        &RunOptions {
            stdin: None,
            timeout: Some(Duration::from_secs(20)),
        },
    );
    match out {
        Ok(o) => o.stdout_text(),
        Err(e) => format!("(could not read the kubelet's log: {e})"),
    }
}

/// The admin kubeconfig of an initialized control plane, if its API server answers.
fn healthy_admin(host: &dyn Host) -> Option<(KubeConfig, ApiClient)> {
    let bytes = host
        .read_file(Path::new("/etc/kubernetes/admin.conf"))
        .ok()??;
    let kc = KubeConfig::parse(&String::from_utf8_lossy(&bytes)).ok()?;
    let client = ApiClient::from_kubeconfig_with_timeout(&kc, Duration::from_secs(5)).ok()?;
    client.wait_ready(Duration::from_secs(5)).ok()?;
    Some((kc, client.retrying(crate::apiclient::API_CALL_RETRY)))
}

/// What init's last phases leave in the cluster and that a finished init therefore has:
/// `(what, API path)`. An init that stopped earlier (say in wait-control-plane, with the
/// API server coming up only afterwards) lacks some, and is finished by running the
/// idempotent phases again.
fn init_leaves(cluster: &Cluster) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        (
            "the kubeadm-config ConfigMap (upload-config)",
            "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        ),
        (
            "the kubeadm:cluster-admins binding (upload-config)",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:cluster-admins",
        ),
        (
            "the cluster-info ConfigMap (bootstrap-token)",
            "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        ),
        (
            "the kube-proxy DaemonSet (addon)",
            "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy",
        ),
        (
            "the CoreDNS Deployment (addon)",
            "/apis/apps/v1/namespaces/kube-system/deployments/coredns",
        ),
    ];
    if cluster.cni.name == "flannel" {
        v.push((
            "the flannel DaemonSet (cni)",
            "/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds",
        ));
    }
    v
}

/// What of [`init_leaves`] the cluster lacks (anything the admin cannot read counts as
/// lacking: the cluster-admins binding itself may be what is missing).
fn init_missing(cluster: &Cluster, admin: &ApiClient) -> Vec<&'static str> {
    init_leaves(cluster)
        .into_iter()
        .filter(|(_, path)| !matches!(admin.get_opt(path), Ok(Some(_))))
        .map(|(what, _)| what)
        .collect()
}

/// Initializes the first control plane (or finds it initialized); returns its admin
/// kubeconfig and a client.
fn init_control_plane(
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
    let rerun = host
        .file_info(Path::new("/etc/kubernetes/pki/ca.crt"))?
        .is_some();
    let mut skip = Vec::new();
    if rerun {
        // A previous run got part of the way: the phases are idempotent, preflight would
        // only complain about the files that run wrote.
        skip.push("preflight".to_string());
    }
    if cluster.cni.name != "flannel" {
        // none: the user's own; bridge: written by up once the Node has its podCIDR.
        skip.push("cni".to_string());
    }
    let ctx = InitContext {
        cfg: &cfg,
        host,
        kubeconfig_dir: crate::config::DEFAULT_KUBECONFIG_DIR.into(),
        cert_options: Default::default(),
    };
    let run = InitRun {
        skip_phases: skip,
        ignore_preflight_errors: args.ignore_preflight_errors.clone(),
        flannel_iface: cluster.cni.iface.clone(),
        node_wait: args.control_plane_timeout,
        ..Default::default()
    };
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

/// How a host joins: as a worker, or as a control plane with the shared certificates
/// copied from the first control plane's host.
enum JoinAs<'a> {
    Worker,
    ControlPlane {
        first: &'a dyn Host,
        first_cfg: &'a InitConfig,
    },
}

/// What every joining host gets: where to join, the token, the CA pin and the
/// inventory's kubelet flags.
struct JoinWith<'a> {
    endpoint: &'a str,
    token: &'a JoinToken<'a>,
    ca_hash: &'a str,
    kubelet_args: &'a [Arg],
    /// The inventory's CNI, whose images joining nodes need.
    cni: &'a str,
}

/// What `up` does with a further host, decided from the facts prepare gathered (one
/// round trip per host) and the cluster: `--plan` prints these and the run acts on them,
/// so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinDecision {
    /// In the cluster already: nothing to do (no SSH connection either).
    Joined,
    /// To join; `resume`: its kubelet joined in an earlier run that stopped before the
    /// control-plane phases finished (preflight would only see that run's files).
    Join { resume: bool },
    /// prepare failed or could not reach it.
    NotPrepared,
}

/// A worker has joined once its kubelet has kubelet.conf; a control plane once it also
/// has its etcd member's manifest and the Node carries the control-plane label (set by
/// join's last phase).
fn decide_join(
    h: &ClusterHost,
    report: Option<&crate::playbook::HostReport>,
    admin: Option<&ApiClient>,
) -> JoinDecision {
    let Some(f) = report
        .filter(|r| !r.failed())
        .and_then(|r| r.facts.as_ref())
    else {
        return JoinDecision::NotPrepared;
    };
    let done = f.kubelet_conf
        && (h.role == Role::Worker
            || (f.etcd_manifest && admin.is_some_and(|a| marked_control_plane(a, &h.name))));
    if done {
        JoinDecision::Joined
    } else {
        JoinDecision::Join {
            resume: f.kubelet_conf,
        }
    }
}

fn join_host(
    args: &UpArgs,
    cluster_ssh: &SshConfig,
    h: &ClusterHost,
    with: &JoinWith,
    how: JoinAs,
    resume: bool,
) -> anyhow::Result<String> {
    let JoinWith {
        endpoint,
        token,
        ca_hash,
        kubelet_args: cluster_kubelet_args,
        cni,
    } = *with;
    let _label = label_host(&h.name);
    let host = connect(cluster_ssh, h)?;
    let is_cp = matches!(how, JoinAs::ControlPlane { .. });
    if let JoinAs::ControlPlane { first, first_cfg } = &how {
        let files = crate::copycerts::read_shared(*first, first_cfg)
            .context("reading the shared certificates from the first control plane")?;
        let written = crate::copycerts::write_shared(&host, &first_cfg.cert_dir, &files)?;
        crate::phases::report(
            "copy-certs",
            &format!(
                "Copied {} shared certificate and key files from {} over SSH ({} already in place)",
                written
                    .iter()
                    .filter(|w| matches!(w, crate::copycerts::Written::Created(_)))
                    .count(),
                first.name(),
                written
                    .iter()
                    .filter(|w| matches!(w, crate::copycerts::Written::Kept(_)))
                    .count()
            ),
        );
    }
    let o = JoinOverrides {
        endpoint: Some(endpoint.to_string()),
        token: Some(token.get()?.to_string()),
        ca_cert_hashes: vec![ca_hash.to_string()],
        node_name: Some(h.name.clone()),
        discovery_timeout: Some(Duration::from_secs(120)),
        control_plane: is_cp,
        apiserver_advertise_address: is_cp.then(|| h.cluster_address()),
        ..Default::default()
    };
    let mut cfg = JoinConfig::load(None, &o, &InventoryFacts)?;
    cfg.tls_bootstrap_timeout = args.join_timeout;
    cfg.join
        .node_registration
        .kubelet_extra_args
        .extend(cluster_kubelet_args.iter().cloned());
    if let Some(ip) = h.node_ip {
        cfg.join.node_registration.kubelet_extra_args.push(Arg {
            name: "node-ip".into(),
            value: ip.to_string(),
        });
    }
    let ctx = join_phases::JoinContext {
        cfg: &cfg,
        host: &host,
        local: &InventoryFacts,
        skip: if resume {
            // A control plane whose kubelet joined in an earlier run that stopped later.
            vec!["preflight".into()]
        } else {
            vec![]
        },
        ignore_preflight_errors: args.ignore_preflight_errors.clone(),
        containerd: Default::default(),
        cni: Some(cni.to_string()),
    };
    match join_phases::run(&ctx) {
        Ok(j) => Ok(format!(
            "joined{} in {:.1}s",
            if is_cp { " as a control plane" } else { "" },
            j.took.as_secs_f64()
        )),
        Err(e) => {
            let diag = kubelet_diagnostics(&host);
            crate::phases::report(
                "join",
                &format!("FAILED: {e:#}\nwhat the node says:\n{}", diag.trim_end()),
            );
            Err(e)
        }
    }
}

/// Whether the Node carries the control-plane label, which the last phase of a
/// control-plane join (mark-control-plane) sets: a join that stopped earlier (e.g. at
/// wait-control-plane) is run again, not taken as done.
fn marked_control_plane(admin: &ApiClient, node: &str) -> bool {
    admin
        .get_opt(&format!("/api/v1/nodes/{node}"))
        .ok()
        .flatten()
        .is_some_and(|n| {
            n["metadata"]["labels"]
                .get("node-role.kubernetes.io/control-plane")
                .is_some()
        })
}

/// Where joining nodes find the API server: `controlPlaneEndpoint`, else the first
/// control plane's address on the default port.
fn join_endpoint(cluster: &Cluster, cp: &ClusterHost) -> String {
    cluster
        .networking
        .control_plane_endpoint
        .clone()
        .unwrap_or_else(|| {
            crate::render::join_host_port(&cp.cluster_address(), crate::config::DEFAULT_BIND_PORT)
        })
}

fn default_kubeconfig_out(cluster: &Cluster) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".kube").join(format!(
        "kubeboot-{}.conf",
        if cluster.name.is_empty() {
            "cluster"
        } else {
            &cluster.name
        }
    ))
}

/// kube-proxy's `conntrack.maxPerCore`: the inventory's, else 0 when a host cannot
/// write nf_conntrack_max (kube-proxy would exit there), saying so; else kube-proxy's
/// default.
fn conntrack_setting(cluster: &Cluster, reports: &[crate::playbook::HostReport]) -> Option<u32> {
    if let Some(n) = cluster.conntrack_max_per_core {
        return Some(n);
    }
    let limited: Vec<&str> = reports
        .iter()
        .filter(|r| r.facts.as_ref().is_some_and(|f| !f.conntrack_max_writable))
        .map(|r| r.host.as_str())
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

/// The image-free `bridge` pod network: once every host in the cluster has its podCIDR,
/// each gets its conflist and routes to the others (a re-run changes nothing; hosts that
/// left lose their routes). Returns how many hosts changed.
fn pod_network(
    cluster: &Cluster,
    ssh: &SshConfig,
    admin: &ApiClient,
    hosts: &[&ClusterHost],
    timeout: Duration,
) -> anyhow::Result<usize> {
    let subnet: ipnet::IpNet = cluster
        .networking
        .pod_subnet
        .as_deref()
        .unwrap_or(crate::config::cluster::DEFAULT_POD_SUBNET)
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .context("spec.networking.podSubnet is not a CIDR")?;
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let nets = crate::podnet::wait_pod_cidrs(admin, &names, timeout)?;
    let results: Vec<(String, anyhow::Result<bool>)> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|h| {
                let nets = &nets;
                s.spawn(move || {
                    let _label = label_host(&h.name);
                    let r = (|| -> anyhow::Result<bool> {
                        let host = connect(ssh, h)?;
                        let w = crate::podnet::wanted(&h.name, nets, &subnet)?;
                        let out = crate::podnet::sync(&host, &w, false)?;
                        for c in &out.changes {
                            crate::phases::report("pod-network", c);
                        }
                        Ok(out.changed())
                    })();
                    (h.name.clone(), r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("pod network thread"))
            .collect()
    });
    let mut changed = 0;
    let mut failed = Vec::new();
    for (name, r) in results {
        match r {
            Ok(c) => changed += usize::from(c),
            Err(e) => failed.push(format!("{name}: {e:#}")),
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("the bridge pod network failed on {}", failed.join("; "));
    }
    Ok(changed)
}

/// Runs `kubeboot up`.
pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (cluster, ssh) = prepare::resolve(&args.prepare)?;
    let cps: Vec<&ClusterHost> = cluster
        .hosts
        .iter()
        .filter(|h| h.role == Role::ControlPlane)
        .collect();
    let cp = *cps
        .first()
        .context("the inventory has no control-plane host")?;
    let mut outcomes: Vec<HostOutcome> = cluster
        .hosts
        .iter()
        .map(|h| HostOutcome {
            host: h.name.clone(),
            role: if h.role == Role::ControlPlane {
                "control-plane"
            } else {
                "worker"
            },
            prepare: "-".into(),
            result: "not run".into(),
            ok: false,
            seconds: 0.0,
        })
        .collect();

    // 1. Prepare every host in parallel.
    crate::output::set_json(args.prepare.output == crate::prepare::PrepareOutput::Json);
    section(&format!("prepare: {} hosts", cluster.hosts.len()));
    let reports = prepare::prepare_hosts(&args.prepare, &cluster, &ssh)?;
    for (o, r) in outcomes.iter_mut().zip(&reports) {
        o.prepare = if r.failed() {
            "FAILED".into()
        } else {
            format!("ok ({} changed)", r.changed())
        };
        o.seconds += r.elapsed_ms as f64 / 1000.0;
    }
    let conntrack = conntrack_setting(&cluster, &reports);
    if args.prepare.plan {
        section("plan: init and join");
        // The first control plane's API server tells whether init is done; the other
        // hosts are decided from prepare's facts, as the run decides them.
        let cp_conn = connect(&ssh, cp).ok();
        let cp_admin = cp_conn.as_ref().and_then(|x| healthy_admin(x));
        let missing = cp_admin
            .as_ref()
            .map(|(_, admin)| init_missing(&cluster, admin))
            .unwrap_or_default();
        if cp_admin.is_some() && !missing.is_empty() {
            say(&format!(
                "{}: an earlier init stopped part of the way (the cluster lacks {}): would finish it",
                cp.name,
                missing.join(", ")
            ));
        } else if cp_admin.is_some() {
            say(&format!(
                "{}: already initialized (its API server answers with admin.conf): init would be skipped",
                cp.name
            ));
        } else {
            say(&format!(
                "{}: would run `init` (every phase) for Kubernetes {} and fetch admin.conf to {}",
                cp.name,
                cluster.kubernetes_version,
                args.kubeconfig_out
                    .clone()
                    .unwrap_or_else(|| default_kubeconfig_out(&cluster))
                    .display()
            ));
        }
        let endpoint = join_endpoint(&cluster, cp);
        let admin = cp_admin.as_ref().map(|(_, a)| a);
        for (h, r) in cluster
            .hosts
            .iter()
            .zip(&reports)
            .filter(|(h, _)| h.name != cp.name)
        {
            let as_cp = h.role == Role::ControlPlane;
            match decide_join(h, Some(r), admin) {
                JoinDecision::Joined if as_cp => {
                    say(&format!("{}: already joined as a control plane", h.name))
                }
                JoinDecision::Joined => say(&format!("{}: already joined", h.name)),
                JoinDecision::Join { .. } if as_cp => say(&format!(
                    "{}: would join as a control plane through https://{endpoint}: the shared certificates copied over SSH from {}, its own certificates and kubeconfigs, the control-plane static Pods, an etcd member (added as a learner, promoted once in sync)",
                    h.name, cp.name
                )),
                JoinDecision::Join { .. } => say(&format!(
                    "{}: would join as a worker through https://{endpoint}",
                    h.name
                )),
                JoinDecision::NotPrepared => say(&format!(
                    "{}: would not join: prepare could not check it (see above)",
                    h.name
                )),
            }
        }
        say("(plan: nothing was changed)");
        return Ok(());
    }
    let failed_prepare: Vec<&str> = reports
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.host.as_str())
        .collect();
    if failed_prepare.contains(&cp.name.as_str()) {
        print_summary(&outcomes, started);
        anyhow::bail!(
            "up stopped after prepare: the control plane {} failed to prepare (see the summary)",
            cp.name
        );
    }

    // 2. init on the first control plane.
    section(&format!("init: {}", cp.name));
    let t0 = Instant::now();
    let cp_host = connect(&ssh, cp)?;
    let (admin_kc, admin, fresh) =
        match init_control_plane(&args, &cluster, &cp_host, cp, conntrack) {
            Ok(v) => v,
            Err(e) => {
                let o = outcomes.iter_mut().find(|o| o.host == cp.name).expect("cp");
                o.result = format!("init FAILED: {}", first_line(&e));
                o.seconds += t0.elapsed().as_secs_f64();
                print_summary(&outcomes, started);
                return Err(e.context(format!(
                    "up stopped at init on {} ({})",
                    cp.name, cp.address
                )));
            }
        };
    {
        let o = outcomes.iter_mut().find(|o| o.host == cp.name).expect("cp");
        o.result = if fresh {
            "initialized".into()
        } else {
            "already initialized".into()
        };
        o.ok = true;
        o.seconds += t0.elapsed().as_secs_f64();
    }
    let out = args
        .kubeconfig_out
        .clone()
        .unwrap_or_else(|| default_kubeconfig_out(&cluster));
    crate::host::LocalHost::new().write_file(
        &out,
        admin_kc.to_yaml().as_bytes(),
        WriteOptions::PRIVATE.in_dir_mode(0o700),
    )?;
    say(&format!("admin kubeconfig written to {}", out.display()));

    // 3. Further control planes one at a time, then the workers in parallel, with a
    //    fresh short-lived token deleted afterwards.
    let mut to_join: Vec<(&ClusterHost, bool)> = Vec::new();
    for (h, r) in cluster
        .hosts
        .iter()
        .zip(&reports)
        .filter(|(h, _)| h.name != cp.name)
    {
        match decide_join(h, Some(r), Some(&admin)) {
            JoinDecision::Joined => {
                let o = outcomes
                    .iter_mut()
                    .find(|o| o.host == h.name)
                    .expect("host");
                o.result = "already joined".into();
                o.ok = true;
            }
            JoinDecision::Join { resume } => to_join.push((h, resume)),
            JoinDecision::NotPrepared => {}
        }
    }
    let joining_cps: Vec<(&ClusterHost, bool)> = to_join
        .iter()
        .copied()
        .filter(|(h, _)| h.role == Role::ControlPlane)
        .collect();
    let workers: Vec<(&ClusterHost, bool)> = to_join
        .iter()
        .copied()
        .filter(|(h, _)| h.role == Role::Worker)
        .collect();
    if !workers.is_empty() || !joining_cps.is_empty() {
        // Made only when a host still has to join, so a re-run changes nothing.
        let token = JoinToken::new(&admin);
        let ca_hash = admin_kc
            .ca_cert()
            .context("admin.conf has no CA")?
            .spki_sha256();
        let endpoint = join_endpoint(&cluster, cp);
        let first_cfg = init_config(&cluster, cp, args.control_plane_timeout, conntrack)?;
        let with = JoinWith {
            endpoint: &endpoint,
            token: &token,
            ca_hash: &ca_hash,
            kubelet_args: &cluster.kubelet_extra_args,
            cni: &cluster.cni.name,
        };
        let record =
            |outcomes: &mut Vec<HostOutcome>, name: &str, r: anyhow::Result<String>, secs: f64| {
                let o = outcomes.iter_mut().find(|o| o.host == name).expect("host");
                o.seconds += secs;
                match r {
                    Ok(msg) => {
                        o.result = msg;
                        o.ok = true;
                    }
                    Err(e) => o.result = format!("join FAILED: {}", first_line(&e)),
                }
            };
        let mut cp_failed = false;
        if !joining_cps.is_empty() {
            section(&format!(
                "join: {} control plane{} (one at a time)",
                joining_cps.len(),
                if joining_cps.len() == 1 { "" } else { "s" }
            ));
        }
        for (h, resume) in &joining_cps {
            let t = Instant::now();
            let how = JoinAs::ControlPlane {
                first: &cp_host,
                first_cfg: &first_cfg,
            };
            let r = join_host(&args, &ssh, h, &with, how, *resume);
            cp_failed |= r.is_err();
            record(&mut outcomes, &h.name, r, t.elapsed().as_secs_f64());
            if cp_failed {
                // etcd's quorum may depend on the member that failed: stop adding members.
                break;
            }
        }
        if cp_failed {
            for (h, _) in &joining_cps {
                let o = outcomes
                    .iter_mut()
                    .find(|o| o.host == h.name)
                    .expect("host");
                if o.result == "not run" {
                    o.result = "skipped: an earlier control-plane join failed".into();
                }
            }
        }
        if !workers.is_empty() {
            section(&format!("join: {} workers", workers.len()));
            let results = crate::orchestrate::fan_out(
                &workers,
                args.prepare.concurrency as usize,
                |(h, resume)| {
                    let t = Instant::now();
                    let r = join_host(&args, &ssh, h, &with, JoinAs::Worker, *resume);
                    (h.name.clone(), r, t.elapsed().as_secs_f64())
                },
            );
            for (name, r, secs) in results {
                record(&mut outcomes, &name, r, secs);
            }
        }
        token.delete();
    }
    // 4. The image-free pod network, on every host that is in the cluster.
    let in_cluster: Vec<&ClusterHost> = cluster
        .hosts
        .iter()
        .filter(|h| outcomes.iter().any(|o| o.host == h.name && o.ok))
        .collect();
    let mut problems: Vec<String> = Vec::new();
    if cluster.cni.name == "bridge" {
        section(&format!("pod network (bridge): {} hosts", in_cluster.len()));
        let t = Instant::now();
        match pod_network(
            &cluster,
            &ssh,
            &admin,
            &in_cluster,
            Duration::from_secs(120),
        ) {
            Ok(n) => say(&format!(
                "pod network: {n} of {} hosts changed ({:.1}s)",
                in_cluster.len(),
                t.elapsed().as_secs_f64()
            )),
            Err(e) => {
                say(&format!("pod network FAILED: {e:#}"));
                problems.push(format!("the pod network: {}", first_line(&e)));
            }
        }
    }

    // 5. The cluster's health, within --wait.
    let names: Vec<String> = in_cluster.iter().map(|h| h.name.clone()).collect();
    section(&format!("health (waiting up to {}s)", args.wait.as_secs()));
    let t = Instant::now();
    // With `cni: none` the nodes become Ready only once the user installs a pod network:
    // report, do not wait or fail.
    let no_cni = cluster.cni.name == "none";
    let health = crate::health::wait(
        &admin,
        if no_cni { Duration::ZERO } else { args.wait },
        &names,
    );
    if args.prepare.output == crate::prepare::PrepareOutput::Json {
        crate::ui::JsonLines::emit(serde_json::json!({
            "event": "health",
            "report": health,
            "elapsedMs": t.elapsed().as_millis(),
        }));
    } else {
        say(health.render_text().trim_end());
        say(&format!("({:.1}s)", t.elapsed().as_secs_f64()));
    }
    for o in outcomes.iter_mut() {
        if let Some(n) = health.nodes.iter().find(|n| n.name == o.host)
            && !n.ready
            && o.ok
            && !no_cni
        {
            o.ok = false;
            o.result = format!(
                "{}, but NOT Ready: {}",
                o.result,
                n.reason.as_deref().unwrap_or("unknown")
            );
        }
    }
    print_summary(&outcomes, started);
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| o.host.as_str())
        .collect();
    if !failed.is_empty() || !problems.is_empty() {
        anyhow::bail!(
            "up finished with {} of {} hosts not in the cluster or not Ready{}{}",
            failed.len(),
            outcomes.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(": {}", failed.join(", "))
            },
            if problems.is_empty() {
                String::new()
            } else {
                format!("; {}", problems.join("; "))
            }
        );
    }
    if no_cni && !health.nodes_ready() {
        say(&format!(
            "\nThe cluster is up; its nodes become Ready once you install a pod network (spec.cni.name is none). kubectl --kubeconfig {} get nodes",
            out.display()
        ));
    } else if health.addons_ok() {
        say(&format!(
            "\nThe cluster is up and healthy. kubectl --kubeconfig {} get nodes",
            out.display()
        ));
    } else {
        say(&format!(
            "\nThe cluster is up: every node is Ready; some addons are not available (see the health report above). kubectl --kubeconfig {} get nodes",
            out.display()
        ));
    }
    crate::output::done(serde_json::json!({
        "command": "up",
        "kubeconfig": out,
        "nodesReady": health.nodes_ready(),
        "addonsOk": health.addons_ok(),
    }));
    Ok(())
}

/// A stage of `up` begins: a `== title ==` line, or a `stage` event in JSON.
fn section(title: &str) {
    if crate::output::json() {
        crate::output::emit(serde_json::json!({"event": "stage", "stage": title}));
    } else {
        say(&format!("\n== {title} =="));
    }
}

/// The phase an error stopped in and its root cause, on one line, for the summary.
fn first_line(e: &anyhow::Error) -> String {
    let chain: Vec<String> = e
        .chain()
        .map(|c| c.to_string().lines().next().unwrap_or_default().to_string())
        .collect();
    let text = match (chain.first(), chain.last()) {
        (Some(a), Some(b)) if chain.len() > 1 => format!("{a}: {b}"),
        (Some(a), _) => a.clone(),
        _ => String::new(),
    };
    text.chars().take(240).collect()
}

fn print_summary(outcomes: &[HostOutcome], started: Instant) {
    if crate::output::json() {
        crate::output::emit(serde_json::json!({
            "event": "result",
            "command": "up",
            "hosts": outcomes.iter().map(|o| serde_json::json!({
                "host": o.host, "role": o.role, "prepare": o.prepare, "ok": o.ok,
                "result": o.result, "elapsedMs": (o.seconds * 1000.0) as u64,
            })).collect::<Vec<_>>(),
            "elapsedMs": started.elapsed().as_millis(),
        }));
        return;
    }
    let w = outcomes
        .iter()
        .map(|o| o.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    say(&format!(
        "\n{:w$}  {:13}  {:18}  {:>7}  RESULT",
        "HOST", "ROLE", "PREPARE", "TIME"
    ));
    for o in outcomes {
        say(&format!(
            "{:w$}  {:13}  {:18}  {:>6.1}s  {}",
            o.host, o.role, o.prepare, o.seconds, o.result
        ));
    }
    say(&format!("total {:.1}s", started.elapsed().as_secs_f64()));
}

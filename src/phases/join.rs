//! `kubeboot join`: kubeadm's join phases: preflight, discovery, kubelet-start and
//! kubelet-wait-bootstrap; for `--control-plane` also control-plane-prepare, check-etcd,
//! etcd-join, wait-control-plane and control-plane-join (in `join_cp`).

use super::report;
use crate::apiclient::ApiClient;
use crate::config::join::{Discovery, JoinConfig};
use crate::host::{Host, RunOptions, WriteOptions};
use crate::kubeconfig::{KubeConfig, User};
use anyhow::Context;
use base64::Engine;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use super::join_data::{BOOTSTRAP_KUBELET_CONF, Discovered, JoinContext, Joined, KUBELET_CONF};
use crate::workflow::{Phase, Workflow};

/// Phase names, in kubeadm's order (`--skip-phases` takes these; the control-plane ones
/// run only with `--control-plane`).
pub const PHASES: &[&str] = &[
    "preflight",
    "control-plane-prepare",
    "check-etcd",
    "kubelet-start",
    "etcd-join",
    "kubelet-wait-bootstrap",
    "wait-control-plane",
    "control-plane-join",
];

/// Discovery, then the cluster's configuration read with the bootstrap token.
pub fn discover(ctx: &JoinContext) -> anyhow::Result<Discovered> {
    let cluster_info = discovery(ctx)?;
    let bootstrap = bootstrap_kubeconfig(&cluster_info, ctx.cfg);
    let client = ApiClient::from_kubeconfig(&bootstrap)?.retrying(crate::apiclient::API_CALL_RETRY);
    let kubeadm_cm = client
        .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .context("reading the cluster's kubeadm-config ConfigMap with the bootstrap token")?;
    let cluster_yaml = kubeadm_cm["data"]["ClusterConfiguration"]
        .as_str()
        .context("kubeadm-config has no ClusterConfiguration")?;
    let node_cfg = ctx.cfg.node_config(cluster_yaml, ctx.local)?;
    Ok(Discovered {
        cluster_info,
        bootstrap,
        client,
        node_cfg,
    })
}

/// What join's phases share during one run: discovery's result (made once, when the
/// first phase needs it) and the etcd client check-etcd found.
pub struct JoinData<'c, 'a> {
    pub ctx: &'c JoinContext<'a>,
    discovered: Option<Discovered>,
    etcd: Option<crate::etcdclient::EtcdClient>,
}

impl JoinData<'_, '_> {
    /// Token (or file) discovery and the cluster's configuration, once.
    fn discovered(&mut self) -> anyhow::Result<&Discovered> {
        if self.discovered.is_none() {
            self.discovered = Some(discover(self.ctx).context("discovery")?);
        }
        Ok(self.discovered.as_ref().expect("set above"))
    }
}

fn is_control_plane(d: &JoinData) -> bool {
    d.ctx.cfg.control_plane.is_some()
}

fn says(line: &str) -> anyhow::Result<Vec<String>> {
    Ok(vec![line.to_string()])
}

/// join's phases in kubeadm's order; the control-plane ones run only with
/// `--control-plane` (`controlPlane` in the JoinConfiguration).
pub fn workflow<'c, 'a>() -> Workflow<JoinData<'c, 'a>> {
    use super::join_cp as cp;
    Workflow {
        command: "join",
        phases: vec![
            Phase::<JoinData>::new(
                "preflight",
                "Run join pre-flight checks",
                |d, _| {
                    preflight(d.ctx)?;
                    let ctx = d.ctx;
                    preflight_images(ctx, d.discovered()?)
                },
                |_, _| says("Would check that this node is not part of a cluster yet, discover the cluster and make sure containerd has its images"),
            ),
            Phase::<JoinData>::new(
                "control-plane-prepare",
                "Prepare the machine for serving a control plane",
                |d, _| {
                    let ctx = d.ctx;
                    cp::control_plane_prepare(ctx, d.discovered()?)
                },
                |_, _| says("Would put the shared certificates in place, sign this node's own and write the control-plane manifests"),
            )
            .run_if(is_control_plane),
            Phase::<JoinData>::new(
                "check-etcd",
                "Check that the local etcd cluster is healthy",
                |d, _| {
                    let ctx = d.ctx;
                    let etcd = cp::check_etcd(ctx, d.discovered()?)?;
                    d.etcd = etcd;
                    Ok(())
                },
                |_, _| says("Would check that every etcd member is healthy"),
            )
            .run_if(is_control_plane),
            Phase::<JoinData>::new(
                "kubelet-start",
                "Write kubelet settings, certificates and (re)start the kubelet",
                |d, _| {
                    let ctx = d.ctx;
                    kubelet_start(ctx, d.discovered()?)
                },
                |_, _| says("Would write the kubelet's bootstrap kubeconfig and settings and (re)start the kubelet"),
            ),
            Phase::<JoinData>::new(
                "etcd-join",
                "Add a new local etcd member",
                |d, _| {
                    let ctx = d.ctx;
                    d.discovered()?;
                    let disc = d.discovered.as_ref().expect("discovered above");
                    cp::etcd_join(ctx, disc, d.etcd.as_ref())
                },
                |_, _| says("Would add this node to etcd as a learner and promote it once in sync"),
            )
            .run_if(is_control_plane),
            Phase::<JoinData>::new(
                "kubelet-wait-bootstrap",
                "Wait for the kubelet to bootstrap itself",
                |d, _| kubelet_wait_bootstrap(d.ctx),
                |_, _| says("Would wait for the kubelet's TLS bootstrap (kubelet.conf)"),
            ),
            Phase::<JoinData>::new(
                "wait-control-plane",
                "Wait for the control plane to start",
                |d, _| {
                    let ctx = d.ctx;
                    cp::wait_control_plane(ctx, d.discovered()?)
                },
                |_, _| says("Would wait for this node's API server to be ready"),
            )
            .run_if(is_control_plane),
            Phase::<JoinData>::new(
                "control-plane-join",
                "Join a machine as a control plane instance",
                |d, _| {
                    let ctx = d.ctx;
                    cp::control_plane_join(ctx, d.discovered()?)
                },
                |_, _| says("Would label and taint this node as a control plane"),
            )
            .run_if(is_control_plane),
        ],
    }
}

/// Runs every join phase that is not skipped (`--skip-phases` and the JoinConfiguration's
/// `skipPhases`, both checked against the phase list); every error names the phase it
/// stopped in.
pub fn run(ctx: &JoinContext) -> anyhow::Result<Joined> {
    let start = Instant::now();
    let wf = workflow();
    let from_file = ctx
        .cfg
        .skip_phases_origin
        .as_deref()
        .unwrap_or("skipPhases");
    let skips = wf.skips([
        ("--skip-phases", &ctx.skip[..]),
        (from_file, &ctx.cfg.join.skip_phases[..]),
    ])?;
    let mut data = JoinData {
        ctx,
        discovered: None,
        etcd: None,
    };
    wf.run(&mut data, &skips, |p| report(p, "Skipped (--skip-phases)"))?;
    // Every phase skipped: discovery still tells where the cluster is.
    let server = data
        .discovered()
        .context("join stopped in phase discovery")?
        .cluster_info
        .clusters[0]
        .cluster
        .server
        .clone();
    Ok(Joined {
        server,
        node_name: ctx.cfg.node_name.clone(),
        took: start.elapsed(),
    })
}

/// Refuses to join a node that already belongs to a cluster; a control plane also gets
/// init's control-plane checks (ports, manifests, etcd data, resources).
pub fn preflight(ctx: &JoinContext) -> anyhow::Result<()> {
    match &ctx.cfg.control_plane {
        // init's checks, which announce themselves.
        Some(cp) => super::join_cp::preflight(ctx, cp)?,
        None => report("preflight", "Running pre-flight checks"),
    }
    // A joining control plane may already hold the shared certificates (copied by
    // `kubeboot up` or by hand), so ca.crt is only a sign of an old join on a worker.
    let mut files = vec![KUBELET_CONF, BOOTSTRAP_KUBELET_CONF];
    if ctx.cfg.control_plane.is_none() {
        files.push("/etc/kubernetes/pki/ca.crt");
    }
    for f in files {
        if ctx.host.file_info(Path::new(f))?.is_some() {
            anyhow::bail!(
                "[preflight] {f} already exists: this node seems to be part of a cluster already; run `kubeboot reset` on it first"
            );
        }
    }
    Ok(())
}

/// The image part of preflight, once discovery told the cluster's version and image
/// repository: a worker needs pause, kube-proxy and the CNI's images, a control plane
/// every image; missing ones are pulled, and what cannot be pulled is an `ImagePull` error.
pub fn preflight_images(ctx: &JoinContext, d: &Discovered) -> anyhow::Result<()> {
    let cni = match &ctx.cni {
        Some(c) => Some(c.as_str()),
        None => crate::render::images::default_cni(&d.node_cfg),
    };
    let images =
        crate::render::images::for_node(&d.node_cfg, cni, ctx.cfg.control_plane.is_some())?;
    super::preflight::run_images(
        ctx.host,
        &ctx.containerd,
        &images,
        &ctx.ignore_preflight_errors,
    )
}

/// The cluster-info kubeconfig (server and CA), trusted by token or file discovery.
pub fn discovery(ctx: &JoinContext) -> anyhow::Result<KubeConfig> {
    match &ctx.cfg.discovery {
        Discovery::Token {
            endpoint,
            token,
            ca_cert_hashes,
            unsafe_skip_ca_verification,
        } => {
            report(
                "discovery",
                &format!(
                    "Fetching cluster-info from https://{endpoint} with token {}",
                    token.id()
                ),
            );
            if *unsafe_skip_ca_verification {
                report(
                    "discovery",
                    "WARNING: --discovery-token-unsafe-skip-ca-verification: the cluster CA is NOT pinned; anyone who can answer at this address with a JWS for the token is trusted",
                );
            }
            let kc = crate::discovery::discover_with_token(
                endpoint,
                token,
                ca_cert_hashes,
                *unsafe_skip_ca_verification,
                ctx.cfg.discovery_timeout,
                // One GET per second: the controller-manager signs cluster-info for a new
                // token within seconds, and every second waited here is a second of join.
                Duration::from_secs(1)
                    .min(ctx.cfg.discovery_timeout / 4 + Duration::from_millis(250)),
            )
            .with_context(|| format!("discovery from https://{endpoint} failed"))?;
            report(
                "discovery",
                &format!(
                    "Cluster info signature and contents are valid{}; server is {}",
                    if *unsafe_skip_ca_verification {
                        ""
                    } else {
                        " and the CA matches the pinned hash"
                    },
                    kc.clusters[0].cluster.server
                ),
            );
            Ok(kc)
        }
        Discovery::File { path, .. } => {
            let bytes = ctx
                .host
                .read_file(Path::new(path))?
                .with_context(|| format!("discovery file {path} does not exist"))?;
            let kc = KubeConfig::parse(&String::from_utf8_lossy(&bytes))
                .map_err(|e| anyhow::anyhow!("discovery file {path}: {e}"))?;
            let cluster = kc
                .current_cluster()
                .or(kc.clusters.first().map(|c| &c.cluster))
                .cloned()
                .with_context(|| format!("discovery file {path} names no cluster"))?;
            Ok(KubeConfig {
                api_version: "v1".into(),
                kind: "Config".into(),
                clusters: vec![crate::kubeconfig::NamedCluster {
                    name: String::new(),
                    cluster,
                }],
                ..Default::default()
            })
        }
    }
}

fn bootstrap_token(cfg: &JoinConfig) -> &crate::token::BootstrapToken {
    match &cfg.discovery {
        Discovery::Token { token, .. } => cfg
            .join
            .discovery
            .tls_bootstrap_token
            .as_ref()
            .unwrap_or(token),
        Discovery::File { token, .. } => token,
    }
}

/// The bootstrap kubeconfig: the discovered cluster, user `tls-bootstrap-token-user`
/// with the token (kubeadm's names).
pub fn bootstrap_kubeconfig(cluster_info: &KubeConfig, cfg: &JoinConfig) -> KubeConfig {
    let c = &cluster_info.clusters[0].cluster;
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(&c.certificate_authority_data)
        .unwrap_or_default();
    KubeConfig::basic(
        &c.server,
        "kubernetes",
        "tls-bootstrap-token-user",
        &String::from_utf8_lossy(&ca_pem),
        User {
            token: bootstrap_token(cfg).to_string(),
            ..Default::default()
        },
    )
}

/// The node name the kubelet registers with: `--hostname-override` among the
/// kubeletExtraArgs when given there (the last one wins), else the node's name.
fn kubelet_node_name(cfg: &crate::config::InitConfig) -> String {
    cfg.init
        .node_registration
        .kubelet_extra_args
        .iter()
        .rev()
        .find(|a| a.name == "hostname-override")
        .map(|a| a.value.to_lowercase())
        .unwrap_or_else(|| cfg.node_name.clone())
}

/// Writes the cluster CA, the cluster's kubelet configuration and this node's flags,
/// gets the kubelet's client certificate with the bootstrap token (kubelet.conf pointing
/// at it), then restarts the kubelet.
pub fn kubelet_start(ctx: &JoinContext, d: &Discovered) -> anyhow::Result<()> {
    let (boot, client, node_cfg) = (&d.bootstrap, &d.client, &d.node_cfg);
    let kubelet_cm = client
        .get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
        .context("reading the cluster's kubelet-config ConfigMap with the bootstrap token")?;
    let kubelet_config = kubelet_cm["data"]["kubelet"]
        .as_str()
        .context("kubelet-config has no `kubelet` key")?;
    report(
        "kubelet-start",
        &format!(
            "Writing kubelet configuration to file \"{}\"",
            crate::render::kubelet::CONFIG_PATH
        ),
    );
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(&boot.clusters[0].cluster.certificate_authority_data)?;
    ctx.host.write_file(
        &node_cfg.cert_dir.join("ca.crt"),
        &ca_pem,
        WriteOptions::PUBLIC,
    )?;
    ctx.host.write_file(
        Path::new(crate::render::kubelet::CONFIG_PATH),
        kubelet_config.as_bytes(),
        WriteOptions::PUBLIC.in_dir_mode(0o700),
    )?;
    let opts = crate::render::RenderOptions::default().detect(node_cfg, ctx.host)?;
    crate::render::kubelet::flags_env(node_cfg, &opts)?.write_to(ctx.host)?;
    if let Some(f) = crate::render::kubelet::instance_config(node_cfg)? {
        f.write_to(ctx.host)?;
    }
    report(
        "kubelet-start",
        &format!(
            "Writing kubelet environment file with flags to file \"{}\"",
            crate::render::kubelet::FLAGS_ENV_PATH
        ),
    );
    // The TLS bootstrap, here rather than by the kubelet (see `kubelet_csr`).
    let node = kubelet_node_name(node_cfg);
    report(
        "kubelet-start",
        &format!(
            "Requesting the kubelet's client certificate for system:node:{node} with the bootstrap token (up to {}s)",
            ctx.cfg.tls_bootstrap_timeout.as_secs()
        ),
    );
    let got = crate::phases::kubelet_csr::obtain(
        ctx.host,
        client,
        &node,
        &boot.clusters[0].cluster.server,
        &String::from_utf8_lossy(&ca_pem),
        Path::new(KUBELET_CONF),
        crate::phases::kubelet_csr::Waits::new(ctx.cfg.tls_bootstrap_timeout),
    )
    .context("the kubelet's TLS bootstrap")?;
    report(
        "kubelet-start",
        &match got {
            crate::phases::kubelet_csr::Obtained::Signed { csr, waited } => format!(
                "CSR {csr} approved and signed after {:.1}s; wrote {} and \"{KUBELET_CONF}\" pointing at it",
                waited.as_secs_f64(),
                crate::phases::kubelet_csr::CLIENT_CURRENT
            ),
            crate::phases::kubelet_csr::Obtained::Existing => format!(
                "Using the kubelet's existing client certificate {}",
                crate::phases::kubelet_csr::CLIENT_CURRENT
            ),
        },
    );
    report("kubelet-start", "Starting the kubelet");
    let out = ctx.host.run(
        &format!(
            "{}systemctl restart kubelet",
            crate::host::systemd_reload_if_stale(&["kubelet.service"])
        ),
        &RunOptions {
            stdin: None,
            timeout: Some(Duration::from_secs(60)),
        },
    )?;
    anyhow::ensure!(
        out.success(),
        "could not restart the kubelet on {} (`systemctl restart kubelet` exited {}): {}",
        ctx.host.name(),
        out.status,
        out.stderr_text().trim()
    );
    Ok(())
}

/// The files a kubeconfig's credentials name (client certificate and key paths, each
/// once), or `None` while the kubeconfig is absent or not yet whole. The kubelet writes
/// kubelet.conf once, so it is read until it parses and then only these files are polled.
fn credential_files(host: &dyn Host, kubeconfig: &Path) -> anyhow::Result<Option<Vec<PathBuf>>> {
    let Some(bytes) = host.read_file(kubeconfig)? else {
        return Ok(None);
    };
    let Ok(cfg) = KubeConfig::parse(&String::from_utf8_lossy(&bytes)) else {
        return Ok(None);
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for u in &cfg.users {
        for f in [&u.user.client_certificate, &u.user.client_key] {
            // Relative paths are relative to the kubeconfig's directory (as in kubectl).
            let at = kubeconfig.parent().unwrap_or(Path::new("/")).join(f);
            if !f.is_empty() && !files.contains(&at) {
                files.push(at);
            }
        }
    }
    Ok(Some(files))
}

/// Waits until the kubelet finished its TLS bootstrap, then removes the bootstrap
/// kubeconfig, whose token is no longer needed on this node. Finished means what kubeadm
/// checks (a client can be built from kubelet.conf): with certificate rotation the kubelet
/// writes kubelet.conf, pointing at `kubelet-client-current.pem`, *before* its CSR is
/// signed; removing the bootstrap kubeconfig then would leave a kubelet restarted in that
/// window with neither credential.
pub fn kubelet_wait_bootstrap(ctx: &JoinContext) -> anyhow::Result<()> {
    report(
        "kubelet-wait-bootstrap",
        &format!(
            "Waiting for the kubelet to perform the TLS Bootstrap (up to {}s)",
            ctx.cfg.tls_bootstrap_timeout.as_secs()
        ),
    );
    let start = Instant::now();
    let path = PathBuf::from(KUBELET_CONF);
    let mut files: Option<Vec<PathBuf>> = None;
    loop {
        if files.is_none() {
            files = credential_files(ctx.host, &path)?;
        }
        let missing = match &files {
            Some(f) => {
                let mut m = Vec::new();
                for p in f {
                    if ctx.host.file_info(p)?.is_none_or(|i| i.len == 0) {
                        m.push(p.display().to_string());
                    }
                }
                Some(m)
            }
            None => None,
        };
        if missing.as_ref().is_some_and(|m| m.is_empty()) {
            break;
        }
        if start.elapsed() >= ctx.cfg.tls_bootstrap_timeout {
            let what = match missing {
                None => format!("did not write {KUBELET_CONF}"),
                Some(m) => format!(
                    "wrote {KUBELET_CONF} but has no signed client certificate yet ({} missing)",
                    m.join(", ")
                ),
            };
            anyhow::bail!(
                "the kubelet {what} within {}s: check `journalctl -u kubelet` on {} (the bootstrap token may have expired, or CSRs are not being approved: `kubectl get csr`)",
                ctx.cfg.tls_bootstrap_timeout.as_secs(),
                ctx.host.name()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Left by an earlier join (kubeboot's before 2026-12-02, or kubeadm's) whose kubelet
    // bootstrapped itself: its token is no longer needed here.
    let removed = ctx.host.remove_file(Path::new(BOOTSTRAP_KUBELET_CONF))?;
    report(
        "kubelet-wait-bootstrap",
        &format!(
            "The kubelet has its client certificate ({KUBELET_CONF} and the files it names) after {:.1}s{}",
            start.elapsed().as_secs_f64(),
            if removed {
                format!("; removed {BOOTSTRAP_KUBELET_CONF}")
            } else {
                String::new()
            }
        ),
    );
    Ok(())
}

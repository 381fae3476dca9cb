//! The phases of `kubeboot init` that exist so far, in kubeadm's order.

pub mod cluster;
pub mod rbac;
pub mod workflow;

use super::report;
use crate::config::InitConfig;
use crate::host::Host;
use crate::kubeconfig;
use crate::pki::{self, ensure::CertOptions};
use crate::secret::Secret;
use std::path::PathBuf;

/// What every init phase works with.
pub struct InitContext<'a> {
    pub cfg: &'a InitConfig,
    pub host: &'a dyn Host,
    pub kubeconfig_dir: PathBuf,
    pub cert_options: CertOptions,
}

/// `certs` sub-phases: every certificate of the table plus `sa`, kubeadm's names.
pub fn cert_phase_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = vec!["all"];
    v.extend(pki::spec::CERTS.iter().map(|c| c.name));
    v.push("sa");
    v
}

/// `kubeconfig` sub-phases.
pub fn kubeconfig_phase_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = vec!["all"];
    v.extend(kubeconfig::KUBECONFIGS.iter().map(|k| k.name));
    v
}

/// The `certs` phase: `all`, one certificate, or `sa`.
pub fn certs(ctx: &InitContext, which: &str) -> anyhow::Result<()> {
    let cfg = ctx.cfg;
    report(
        "certs",
        &format!("Using certificateDir folder \"{}\"", cfg.cert_dir.display()),
    );
    let names: Vec<&str> = if which == "all" {
        pki::spec::needed(cfg).map(|c| c.name).collect()
    } else {
        vec![which]
    };
    let cert_names: Vec<&str> = names.iter().copied().filter(|n| *n != "sa").collect();
    if !cert_names.is_empty() {
        for o in pki::ensure::ensure_certs(ctx.host, cfg, &cert_names, ctx.cert_options)? {
            report("certs", &o.message());
        }
    }
    if which == "all" || which == "sa" {
        report("certs", &pki::ensure::ensure_sa(ctx.host, cfg)?.message());
    }
    Ok(())
}

/// The `kubeconfig` phase: `all` or one file.
pub fn kubeconfig(ctx: &InitContext, which: &str) -> anyhow::Result<()> {
    report(
        "kubeconfig",
        &format!(
            "Using kubeconfig folder \"{}\"",
            ctx.kubeconfig_dir.display()
        ),
    );
    let names: Vec<&str> = if which == "all" {
        kubeconfig::KUBECONFIGS.iter().map(|k| k.name).collect()
    } else {
        vec![which]
    };
    for o in kubeconfig::ensure_kubeconfigs(ctx.host, ctx.cfg, &ctx.kubeconfig_dir, &names)? {
        report("kubeconfig", &o.message());
    }
    Ok(())
}

/// The options rendering needs on this node (external CA, hostname, resolv.conf) plus
/// the user's flannel interface.
pub fn render_options(
    ctx: &InitContext,
    flannel_iface: Option<String>,
) -> anyhow::Result<crate::render::RenderOptions> {
    let mut opts = crate::render::RenderOptions::default().detect(ctx.cfg, ctx.host)?;
    opts.flannel_iface = flannel_iface;
    Ok(opts)
}

/// Static Pod manifests a phase writes: `etcd`, or the control plane (`all` or one).
///
/// Unchanged manifests are left as they are (their time too). A changed manifest of a
/// component that runs is removed first and its Pod waited for to stop (the kubelet
/// stops it), then written: the kubelet would otherwise start the new Pod while the old
/// one still holds its ports (see `phases::replacing`).
fn write_static_pods(ctx: &InitContext, phase: &str, names: &[&str]) -> anyhow::Result<()> {
    let opts = render_options(ctx, None)?;
    let mut wanted = Vec::new();
    let mut replaced: Vec<String> = Vec::new();
    for f in crate::render::static_pods(ctx.cfg, ctx.host, &opts)? {
        let stem = f
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !names.contains(&stem.as_str()) {
            continue;
        }
        // The mode is looked at (one more round trip) only when the content is the same.
        let write = match ctx.host.read_file(&f.path)? {
            Some(old) if old == f.contents => ctx
                .host
                .file_info(&f.path)?
                .is_none_or(|i| i.mode & 0o7777 != f.mode),
            Some(_) => {
                ctx.host.remove_file(&f.path)?;
                replaced.push(stem.clone());
                true
            }
            None => true,
        };
        wanted.push((f, stem, write));
    }
    if !replaced.is_empty() {
        let names: Vec<&str> = replaced.iter().map(String::as_str).collect();
        crate::phases::replacing::stop_running(ctx.host, &names, &|line| report(phase, line));
    }
    for (f, stem, write) in wanted {
        if write {
            f.write_to(ctx.host)?;
        }
        report(
            phase,
            &format!(
                "Creating static Pod manifest for \"{stem}\" at {}",
                f.path.display()
            ),
        );
    }
    Ok(())
}

/// `etcd local`: the etcd static Pod.
pub fn etcd(ctx: &InitContext) -> anyhow::Result<()> {
    anyhow::ensure!(
        ctx.cfg.local_etcd().is_some(),
        "the configuration uses an external etcd; there is no local etcd manifest to write"
    );
    write_static_pods(ctx, "etcd", &["etcd"])
}

/// `control-plane all|apiserver|controller-manager|scheduler`.
pub fn control_plane(ctx: &InitContext, which: &str) -> anyhow::Result<()> {
    let names: Vec<&str> = match which {
        "all" => vec![
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ],
        "apiserver" => vec!["kube-apiserver"],
        "controller-manager" => vec!["kube-controller-manager"],
        "scheduler" => vec!["kube-scheduler"],
        other => anyhow::bail!("unknown control-plane component {other:?}"),
    };
    write_static_pods(ctx, "control-plane", &names)
}

/// init's phases in kubeadm's order, plus kubeboot's `cni`. `upload-certs` only acts
/// with `--upload-certs` (as in kubeadm); `kubeboot up` copies the shared certificates
/// to further control planes over SSH instead.
pub const PHASES: &[&str] = &[
    "preflight",
    "certs",
    "kubeconfig",
    "etcd",
    "control-plane",
    "kubelet-start",
    "wait-control-plane",
    "upload-config",
    "upload-certs",
    "mark-control-plane",
    "bootstrap-token",
    "kubelet-finalize",
    "addon",
    "cni",
    "show-join-command",
];

/// Choices of a whole `kubeboot init` run.
#[derive(Debug, Clone, Default)]
pub struct InitRun {
    pub skip_phases: Vec<String>,
    pub ignore_preflight_errors: Vec<String>,
    pub flannel_iface: Option<String>,
    pub node_wait: std::time::Duration,
    /// `--upload-certs`: store the shared certificates in the kubeadm-certs Secret.
    pub upload_certs: bool,
    /// `--certificate-key`: the key to encrypt them with (generated when `None`).
    pub certificate_key: Option<Secret>,
    /// Where preflight finds containerd to check (and pull) the images.
    pub containerd: crate::images::Containerd,
}

/// What a whole init run leaves for the user.
#[derive(Debug, Clone, Default)]
pub struct InitOutcome {
    /// `kubeboot join ...` for workers (with the first bootstrap token, hence secret).
    pub join: Option<Secret>,
    /// The key of the uploaded certificates, for `join --control-plane --certificate-key`.
    pub certificate_key: Option<Secret>,
    /// What the join command is made of, without the token's secret (for `-o json`):
    /// the endpoint, the first token's id and the CA's hash.
    pub endpoint: Option<String>,
    pub token_id: Option<String>,
    pub ca_cert_hash: Option<String>,
}

/// `upload-certs`: encrypts the shared certificates into the kubeadm-certs Secret with
/// `key` (or a new key); returns the key.
pub fn upload_certs(
    ctx: &InitContext,
    client: &crate::apiclient::ApiClient,
    key: Option<&Secret>,
) -> anyhow::Result<Secret> {
    let key = match key {
        Some(k) => Secret::new(k.expose().trim()),
        None => crate::copycerts::new_certificate_key(),
    };
    let raw = crate::copycerts::parse_certificate_key(key.expose())?;
    report(
        "upload-certs",
        &format!(
            "Storing the certificates in Secret \"{}\" in the \"kube-system\" Namespace",
            crate::copycerts::SECRET
        ),
    );
    crate::copycerts::upload(client, ctx.host, ctx.cfg, &raw)?;
    Ok(key)
}

/// The preflight checks of a control-plane init, including that containerd holds every
/// image of the cluster (pulled when missing) with `cni`'s images
/// ([`crate::render::images::list`]).
pub fn preflight(
    ctx: &InitContext,
    ignore: &[String],
    containerd: &crate::images::Containerd,
    cni: Option<&str>,
) -> anyhow::Result<()> {
    let images = crate::render::images::for_node(ctx.cfg, cni, true)?;
    let cri = ctx
        .cfg
        .init
        .node_registration
        .cri_socket
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_CRI_SOCKET.into());
    let data_dir = ctx
        .cfg
        .local_etcd()
        .and_then(|e| e.data_dir.clone())
        .unwrap_or_else(|| crate::config::DEFAULT_ETCD_DATA_DIR.into());
    crate::phases::preflight::run(
        ctx.host,
        &crate::phases::preflight::CheckSet {
            control_plane: true,
            bind_port: ctx.cfg.bind_port,
            local_etcd: ctx.cfg.local_etcd().is_some(),
            etcd_data_dir: &data_dir,
            cri_socket: &cri,
            manifests_dir: crate::render::MANIFESTS_DIR,
            images: &images,
            containerd,
        },
        ignore,
    )
}

/// `kubelet-start`: the kubelet's config, flags (and 1.34's instance config), then a
/// (re)start; like kubeadm, a kubelet that cannot be started yet is a warning.
pub fn kubelet_start(ctx: &InitContext) -> anyhow::Result<()> {
    let opts = render_options(ctx, None)?;
    for f in crate::render::kubelet::files(ctx.cfg, &opts)? {
        if f.path == std::path::Path::new(crate::render::kubelet::DROP_IN_PATH) {
            continue; // installed with the kubelet by `kubeboot prepare`
        }
        f.write_to(ctx.host)?;
        report(
            "kubelet-start",
            &format!("Writing \"{}\"", f.path.display()),
        );
    }
    report("kubelet-start", "Starting the kubelet");
    let out = ctx.host.run(
        &format!(
            "{}systemctl restart kubelet",
            crate::host::systemd_reload_if_stale(&["kubelet.service"])
        ),
        &crate::host::RunOptions {
            stdin: None,
            timeout: Some(std::time::Duration::from_secs(60)),
        },
    )?;
    if !out.success() {
        report(
            "kubelet-start",
            &format!(
                "WARNING: could not start the kubelet (exit {}): {}",
                out.status,
                out.stderr_text().trim()
            ),
        );
    }
    Ok(())
}

/// `kubelet-finalize`: once the kubelet rotated its client certificate, point
/// kubelet.conf at `/var/lib/kubelet/pki/kubelet-client-current.pem` (kubeadm).
pub fn kubelet_finalize(ctx: &InitContext) -> anyhow::Result<()> {
    let current = std::path::Path::new("/var/lib/kubelet/pki/kubelet-client-current.pem");
    if ctx.host.file_info(current)?.is_none() {
        report(
            "kubelet-finalize",
            "The kubelet has not rotated its client certificate yet; kubelet.conf keeps its embedded one",
        );
        return Ok(());
    }
    let path = ctx.kubeconfig_dir.join("kubelet.conf");
    let Some(bytes) = ctx.host.read_file(&path)? else {
        return Ok(());
    };
    let mut kc = crate::kubeconfig::KubeConfig::parse(&String::from_utf8_lossy(&bytes))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for u in &mut kc.users {
        u.user.client_certificate_data.clear();
        u.user.client_key_data.clear();
        u.user.client_certificate = current.display().to_string();
        u.user.client_key = current.display().to_string();
    }
    ctx.host.write_file(
        &path,
        kc.to_yaml().as_bytes(),
        crate::host::WriteOptions::PRIVATE,
    )?;
    report(
        "kubelet-finalize",
        &format!(
            "Updating \"{}\" to point to a rotatable kubelet client certificate and key",
            path.display()
        ),
    );
    Ok(())
}

/// Runs every phase of `kubeboot init` that is not skipped (`--skip-phases` and the
/// config file's `skipPhases`, both checked against the phase list); returns the join
/// command.
pub fn run_all(ctx: &InitContext, run: &InitRun) -> anyhow::Result<InitOutcome> {
    let wf = workflow::workflow();
    let skips = skips(&wf, ctx, run)?;
    let mut data = workflow::InitData::new(ctx, run);
    data.cni_runs = !skips.names().iter().any(|s| s == "cni" || s == "all");
    wf.run(&mut data, &skips, |p| report(p, "Skipped (--skip-phases)"))?;
    Ok(data.outcome)
}

/// What `init --dry-run` says the phases would do, `[phase] line` per line.
pub fn plan(ctx: &InitContext, run: &InitRun) -> anyhow::Result<String> {
    let wf = workflow::workflow();
    let skips = skips(&wf, ctx, run)?;
    let mut data = workflow::InitData::new(ctx, run);
    data.cni_runs = !skips.names().iter().any(|s| s == "cni" || s == "all");
    Ok(crate::workflow::render_plan(&wf.plan(&data, &skips)?))
}

/// `--skip-phases` and the InitConfiguration's `skipPhases`, validated.
fn skips(
    wf: &crate::workflow::Workflow<workflow::InitData>,
    ctx: &InitContext,
    run: &InitRun,
) -> anyhow::Result<crate::workflow::Skips> {
    let from_file = ctx
        .cfg
        .skip_phases_origin
        .as_deref()
        .unwrap_or("skipPhases");
    wf.skips([
        ("--skip-phases", &run.skip_phases[..]),
        (from_file, &ctx.cfg.init.skip_phases[..]),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--certificate-key` in the run's choices, and the join command (with the token)
    /// and certificate key an init leaves: `Debug` shows none of them.
    #[test]
    fn debug_of_run_and_outcome_redacts_secrets() {
        let key = "4f9c2d7e1b8a6035c4e2f1a9d8b7c6e54f9c2d7e1b8a6035c4e2f1a9d8b7c6e5";
        let run = InitRun {
            upload_certs: true,
            certificate_key: Some(key.into()),
            ..Default::default()
        };
        let outcome = InitOutcome {
            join: Some(Secret::new(
                "kubeboot join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00",
            )),
            certificate_key: Some(key.into()),
            token_id: Some("abcdef".into()),
            ..Default::default()
        };
        for dbg in [format!("{run:?}"), format!("{outcome:#?}")] {
            assert!(!dbg.contains(key), "{dbg}");
            assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
            assert!(dbg.contains("<redacted>"), "{dbg}");
        }
    }
}

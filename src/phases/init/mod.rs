//! The phases of `kubeboot init` that exist so far, in kubeadm's order.

pub mod cluster;
pub mod rbac;

use super::report;
use crate::config::InitConfig;
use crate::host::Host;
use crate::kubeconfig;
use crate::pki::{self, ensure::CertOptions};
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
fn write_static_pods(ctx: &InitContext, phase: &str, names: &[&str]) -> anyhow::Result<()> {
    let opts = render_options(ctx, None)?;
    for f in crate::render::static_pods(ctx.cfg, ctx.host, &opts)? {
        let stem = f
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if names.contains(&stem.as_str()) {
            f.write_to(ctx.host)?;
            report(
                phase,
                &format!(
                    "Creating static Pod manifest for \"{stem}\" at {}",
                    f.path.display()
                ),
            );
        }
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

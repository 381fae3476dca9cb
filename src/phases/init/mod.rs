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

//! Fan-out over hosts: `prepare` runs a playbook on every host of an inventory in
//! parallel (one thread per host, at most `concurrency` at once), each over its own SSH
//! connection. A host that fails (unreachable, refused, a step failing, lost mid-run)
//! never stops the others; every host ends with a [`HostReport`].

use crate::config::cluster::{Cluster, ClusterHost};
use crate::host::{Bastion, SshConfig, SshHost};
pub use crate::parallel::fan_out;
use crate::playbook::artifacts::ArtifactStore;
use crate::playbook::run::{self, Event, Observer};
use crate::playbook::{HostReport, Playbook, RunMode, files};
use std::time::Instant;

/// How `prepare` runs.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// Hosts worked on at once.
    pub concurrency: usize,
    pub mode: RunMode,
}

/// The template context of `prepare-node` for this cluster (facts are added per host).
pub fn prepare_vars(cluster: &Cluster, store: &ArtifactStore) -> serde_json::Value {
    let v = cluster.kubernetes_version;
    let repo = cluster
        .image_repository
        .as_deref()
        .unwrap_or(crate::config::DEFAULT_IMAGE_REPOSITORY);
    let kubelet_source = if store.has("kubelet") {
        "artifacts"
    } else {
        "packages"
    };
    serde_json::json!({
        "kubernetes_version": v.to_string(),
        "kubernetes_minor": format!("1.{}", v.minor),
        "kubernetes_deb_version": format!("1.{}.{}-1.1", v.minor, v.patch),
        "kubernetes_rpm_version": format!("1.{}.{}", v.minor, v.patch),
        "pause_image": files::pause_image(v, repo)
            .unwrap_or_else(|e| format!("(unknown: {e})")),
        "image_repository": repo,
        "restrict_oom_score_adj": match cluster.restrict_oom_score_adj {
            None => "auto",
            Some(true) => "true",
            Some(false) => "false",
        },
        "image_archives": cluster.image_archives.len(),
        // Every inventory host with a name of its own (hosts given by address on the
        // command line have none), for the marked block in each host's /etc/hosts.
        "inventory_hosts": cluster
            .hosts
            .iter()
            .filter(|h| h.name != h.address && h.name != h.cluster_address())
            .map(|h| serde_json::json!({"name": h.name, "address": h.cluster_address()}))
            .collect::<Vec<_>>(),
        "kubelet_source": kubelet_source,
        // The "reload systemd" handler's shell: the same test `init`, `join` and the
        // playbook's service step use, so the playbook cannot drift from them.
        "reload_kubelet_if_stale": crate::host::systemd_reload_if_stale(&["kubelet.service"]),
        "artifacts": {
            "kubelet": store.has("kubelet"),
            "kubectl": store.has("kubectl"),
        },
    })
}

/// SSH settings for one host: the shared ones with the host's user and port.
pub fn ssh_config_for(base: &SshConfig, host: &ClusterHost) -> SshConfig {
    let mut cfg = SshConfig {
        user: host.user.clone(),
        port: host.port,
        ..base.clone()
    };
    if let Some(k) = &host.key_path {
        cfg.identity_files = vec![k.clone()];
    }
    cfg
}

/// The shared SSH settings of an inventory, with the passphrase and sudo password from
/// the environment (read here only); flags may override the rest afterwards.
pub fn ssh_config_of(cluster: &Cluster) -> SshConfig {
    SshConfig {
        user: cluster.ssh.user.clone(),
        port: cluster.ssh.port,
        identity_files: cluster.ssh.key_path.iter().cloned().collect(),
        known_hosts: cluster.ssh.known_hosts_path.clone(),
        bastion: cluster.ssh.bastion.as_ref().map(|(a, p, u)| Bastion {
            address: a.clone(),
            port: *p,
            user: u.clone(),
        }),
        // Secrets come from the environment only, never from flags or files.
        key_passphrase: std::env::var("KUBEBOOT_SSH_KEY_PASSPHRASE").ok(),
        sudo_password: std::env::var("KUBEBOOT_SUDO_PASSWORD").ok(),
        ..SshConfig::default()
    }
}

/// Runs `playbook` on every host; reports come back in inventory order.
pub fn run_on_hosts(
    cluster: &Cluster,
    ssh: &SshConfig,
    playbook: &Playbook,
    store: &ArtifactStore,
    opts: &PrepareOptions,
    obs: &dyn Observer,
) -> Vec<HostReport> {
    let vars = prepare_vars(cluster, store);
    store
        .debs
        .expect(cluster.hosts.len().min(opts.concurrency.max(1)));
    fan_out(&cluster.hosts, opts.concurrency, |h| {
        one_host(h, ssh, playbook, &vars, store, opts.mode, obs)
    })
}

fn one_host(
    h: &ClusterHost,
    base: &SshConfig,
    playbook: &Playbook,
    vars: &serde_json::Value,
    store: &ArtifactStore,
    mode: RunMode,
    obs: &dyn Observer,
) -> HostReport {
    let start = Instant::now();
    obs.on(&h.name, Event::Phase("connecting"));
    let cfg = ssh_config_for(base, h);
    let host = match SshHost::connect(&h.name, &h.address, &cfg) {
        Ok(c) => c,
        Err(e) => {
            drop(store.debs.arrival());
            let r = HostReport::unreachable(&h.name, playbook, e.to_string(), start.elapsed());
            obs.on(&h.name, Event::Finished(&r));
            return r;
        }
    };
    for n in host.notes() {
        obs.on(&h.name, Event::Note(n));
    }
    let mut vars = vars.clone();
    vars["host_role"] = serde_json::json!(match h.role {
        crate::config::cluster::Role::ControlPlane => "control-plane",
        crate::config::cluster::Role::Worker => "worker",
    });
    let mut r = run::run(&host, playbook, &vars, store, mode, obs);
    r.notes = host.notes().to_vec();
    r.elapsed_ms = start.elapsed().as_millis();
    obs.on(&h.name, Event::Finished(&r));
    r
}

#[cfg(test)]
mod tests {
    use crate::config::cluster::Cluster;
    use crate::playbook::artifacts::ArtifactStore;
    use crate::playbook::{Playbook, StepKind};

    /// prepare-node's "reload systemd" handler runs the very shell `init`, `join` and the
    /// service step use (`host::systemd_reload_if_stale`), rendered from this context.
    #[test]
    fn the_reload_handler_renders_the_shared_reload_test() {
        let c = Cluster::parse(
            std::path::Path::new("cluster.yaml"),
            "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nmetadata: {name: t}\nspec:\n  hosts:\n  - {name: n1, address: 10.0.0.1, role: control-plane}\n",
        )
        .unwrap();
        let vars = super::prepare_vars(&c, &ArtifactStore::new(c.artifacts.clone()));
        let pb = Playbook::load("prepare-node", None).unwrap();
        let h = pb
            .handlers
            .iter()
            .find(|h| h.name == "reload systemd")
            .expect("the handler");
        let StepKind::Command(cmd) = &h.kind else {
            panic!("the handler is a command step: {:?}", h.kind)
        };
        let ctx = tera::Context::from_serialize(&vars).unwrap();
        let rendered = tera::Tera::one_off(&cmd.apply, &ctx, false).unwrap();
        assert_eq!(
            rendered.trim_end(),
            crate::host::systemd_reload_if_stale(&["kubelet.service"]).trim_end()
        );
    }
}

//! `kubeboot prepare`: run the `prepare-node` playbook on every host of a Cluster
//! inventory (or hosts named on the command line) over SSH, in parallel, with a live row
//! per host, a summary table, and a non-zero exit when any host failed.

use crate::config::cluster::{self, Cluster, ClusterSsh};
use crate::config::version::KubeVersion;
use crate::host::{Bastion, SshConfig};
use crate::orchestrate::{self, PrepareOptions};
use crate::playbook::artifacts::ArtifactStore;
use crate::playbook::run::{Event, Observer};
use crate::playbook::{Playbook, RunMode};
use crate::ui::{self, JsonLines, LiveRows, OutputMode, PlainLines};
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `kubeboot prepare` flags.
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Cluster inventory (kubeboot.io/v1alpha1 Cluster: spec.ssh, spec.hosts, spec.artifacts).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Hosts to prepare instead of (or in addition to) the inventory: ADDRESS, USER@ADDRESS or ADDRESS:PORT.
    #[arg(value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only check, and print per host what would change (with file diffs); change nothing.
    #[arg(long)]
    pub plan: bool,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY as u64, value_parser = crate::config::whole_number_in(1, 1000))]
    pub concurrency: u64,
    /// Output: text (live rows on a terminal, plain lines otherwise) or json (one event per line).
    #[arg(short, long, value_enum, default_value_t = PrepareOutput::Text)]
    pub output: PrepareOutput,
    /// SSH login user [default: the inventory's, else root]; others use sudo (KUBEBOOT_SUDO_PASSWORD if sudo asks).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// SSH port [default: the inventory's, else 22].
    #[arg(long, value_name = "PORT", value_parser = crate::config::parse_port)]
    pub port: Option<u16>,
    /// Private key file (repeatable) [default: the inventory's keyPath, the ssh-agent, ~/.ssh/id_*]; passphrase in KUBEBOOT_SSH_KEY_PASSPHRASE.
    #[arg(short = 'i', long = "ssh-key", value_name = "FILE")]
    pub ssh_keys: Vec<PathBuf>,
    /// known_hosts file [default: the inventory's knownHostsPath, else ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Record host keys of hosts not in known_hosts instead of refusing them (changed keys are always refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Do not use the ssh-agent.
    #[arg(long)]
    pub no_agent: bool,
    /// Jump host: [USER@]HOST[:PORT].
    #[arg(long, value_name = "HOST")]
    pub bastion: Option<String>,
    /// Seconds allowed for connecting and logging in to a host.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = crate::config::whole_number_in(1, 3600))]
    pub connect_timeout: u64,
    /// Kubernetes version [default: the inventory's, else v1.34.2].
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// A pinned binary, repeatable: kubelet=URL_OR_PATH#sha256:HEX (also kubectl). Without a kubelet artifact, kubelet and kubectl come from the pkgs.k8s.io packages.
    #[arg(long = "artifact", value_name = "NAME=SRC#sha256:HEX", value_parser = cluster::parse_artifact_flag)]
    pub artifacts: Vec<cluster::Artifact>,
    /// An image archive (OCI or docker-archive tarball) to import into containerd on every
    /// host, repeatable: PATH_OR_URL#sha256:HEX. Added to the inventory's spec.imageArchives;
    /// a host that already imported the same archive gets nothing uploaded.
    #[arg(long = "image-archive", value_name = "SRC#sha256:HEX", value_parser = cluster::parse_image_archive_flag)]
    pub image_archives: Vec<cluster::Artifact>,
    /// Where the cluster's images come from (kubeadm's imageRepository) [default: the
    /// inventory's spec.imageRepository, else registry.k8s.io].
    #[arg(long, value_name = "REPO")]
    pub image_repository: Option<String>,
    /// Directory with playbooks overriding the embedded ones (NAME.yaml).
    #[arg(long, value_name = "DIR")]
    pub playbook_dir: Option<PathBuf>,
}

/// Hosts a multi-host command works on at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 30;

/// Output of `prepare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrepareOutput {
    Text,
    Json,
}

fn parse_bastion(s: &str, default_user: &str) -> anyhow::Result<Bastion> {
    let (user, rest) = match s.split_once('@') {
        Some((u, r)) => (u.to_string(), r),
        None => (default_user.to_string(), s),
    };
    let (address, port) = match rest.rsplit_once(':') {
        // An IPv6 address without a port.
        Some((h, _)) if h.contains(':') && !h.starts_with('[') => (rest.to_string(), 22),
        Some((h, p)) => {
            let port = crate::config::parse_port(p)
                .map_err(|e| anyhow::anyhow!("--bastion {s:?}: {e}"))?;
            (h.trim_matches(['[', ']']).to_string(), port)
        }
        None => (rest.to_string(), 22),
    };
    if address.is_empty() || user.is_empty() {
        anyhow::bail!("--bastion {s:?}: expected [USER@]HOST[:PORT]");
    }
    Ok(Bastion {
        address,
        port,
        user,
    })
}

/// Everything the flags name on this machine must be there before any host is touched:
/// a missing archive found after half the hosts were prepared would leave them half done.
fn check_local_inputs(args: &PrepareArgs, cluster: &Cluster) -> anyhow::Result<()> {
    if args.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
        anyhow::bail!("--user must not be empty: give the SSH login user, or leave it out");
    }
    let archives = cluster.image_archives.iter().map(|a| &a.artifact);
    for a in cluster.artifacts.values().chain(archives) {
        if let cluster::ArtifactSource::Path(p) = &a.source
            && !p.is_file()
        {
            anyhow::bail!(
                "{}: {} is not a file on this machine; put the file there or point the artifact elsewhere (nothing was changed on any host)",
                a.name,
                p.display()
            );
        }
    }
    Ok(())
}

/// The inventory and SSH settings the flags describe (shared by `prepare` and `up`).
pub fn resolve(args: &PrepareArgs) -> anyhow::Result<(Cluster, SshConfig)> {
    let mut cluster = match &args.file {
        Some(f) => Cluster::load(f)?,
        None if args.hosts.is_empty() => {
            anyhow::bail!("no hosts: give an inventory with -f cluster.yaml, or hosts as arguments")
        }
        None => Cluster::from_addresses(
            &[],
            ClusterSsh {
                user: args.user.clone().unwrap_or_else(|| "root".into()),
                port: args.port.unwrap_or(22),
                key_path: None,
                known_hosts_path: None,
                bastion: None,
            },
        ),
    };
    if !args.hosts.is_empty() {
        let extra = Cluster::from_addresses(
            &args.hosts,
            ClusterSsh {
                user: args
                    .user
                    .clone()
                    .unwrap_or_else(|| cluster.ssh.user.clone()),
                port: args.port.unwrap_or(cluster.ssh.port),
                ..cluster.ssh.clone()
            },
        );
        cluster.hosts.extend(extra.hosts);
    }
    if let Some(v) = &args.kubernetes_version {
        cluster.kubernetes_version = KubeVersion::parse(v).map_err(anyhow::Error::msg)?;
    }
    for a in &args.artifacts {
        cluster.artifacts.insert(a.name.clone(), a.clone());
    }
    cluster.add_image_archives(&args.image_archives);
    if let Some(r) = &args.image_repository {
        cluster.image_repository = Some(r.clone());
    }
    let mut ssh: SshConfig = orchestrate::ssh_config_of(&cluster);
    if let Some(u) = &args.user {
        ssh.user = u.clone();
        for h in cluster.hosts.iter_mut() {
            h.user = u.clone();
        }
    }
    if let Some(p) = args.port {
        for h in cluster.hosts.iter_mut() {
            h.port = p;
        }
        ssh.port = p;
    }
    if !args.ssh_keys.is_empty() {
        ssh.identity_files = args.ssh_keys.clone();
    }
    if let Some(k) = &args.known_hosts {
        ssh.known_hosts = Some(k.clone());
    }
    if let Some(b) = &args.bastion {
        ssh.bastion = Some(parse_bastion(b, &ssh.user)?);
    }
    ssh.accept_new_host_keys = args.accept_new_host_keys;
    ssh.use_agent = !args.no_agent;
    ssh.connect_timeout = Duration::from_secs(args.connect_timeout.max(1));
    check_local_inputs(args, &cluster)?;
    Ok((cluster, ssh))
}

/// Runs `prepare-node` on every host with the chosen output; returns the reports
/// (the summary is printed, nothing fails here).
pub fn prepare_hosts(
    args: &PrepareArgs,
    cluster: &Cluster,
    ssh: &SshConfig,
) -> anyhow::Result<Vec<crate::playbook::HostReport>> {
    prepare_hosts_tapped(args, cluster, ssh, &|_, _| {})
}

/// Passes every event to the output's observer and to a tap.
struct Tap<'a> {
    inner: &'a dyn Observer,
    tap: &'a (dyn Fn(&str, &Event<'_>) + Sync),
}

impl Observer for Tap<'_> {
    fn on(&self, host: &str, event: Event<'_>) {
        (self.tap)(host, &event);
        self.inner.on(host, event);
    }
}

/// [`prepare_hosts`], with `tap` seeing every host's events as they happen (its facts,
/// its end): `up` starts init and joins on hosts that are done while others still work.
pub fn prepare_hosts_tapped(
    args: &PrepareArgs,
    cluster: &Cluster,
    ssh: &SshConfig,
    tap: &(dyn Fn(&str, &Event<'_>) + Sync),
) -> anyhow::Result<Vec<crate::playbook::HostReport>> {
    let started = Instant::now();
    let archives: Vec<(String, Option<String>)> = cluster
        .image_archives
        .iter()
        .map(|a| {
            let when = match a.roles.as_slice() {
                [cluster::Role::ControlPlane] => Some("host_role == 'control-plane'".into()),
                [cluster::Role::Worker] => Some("host_role == 'worker'".into()),
                _ => None,
            };
            (a.artifact.name.clone(), when)
        })
        .collect();
    let playbook = Playbook::load("prepare-node", args.playbook_dir.as_deref())?
        .with_image_archives(&archives);
    let mut artifacts = cluster.artifacts.clone();
    for a in &cluster.image_archives {
        artifacts.insert(a.artifact.name.clone(), a.artifact.clone());
    }
    let store = ArtifactStore::new(artifacts);
    let mode = if args.plan {
        RunMode::Plan
    } else {
        RunMode::Apply
    };
    let opts = PrepareOptions {
        concurrency: args.concurrency as usize,
        mode,
    };
    let output = match args.output {
        PrepareOutput::Json => OutputMode::Json,
        PrepareOutput::Text => OutputMode::Text,
    };
    let names: Vec<String> = cluster.hosts.iter().map(|h| h.name.clone()).collect();
    let live = (output == OutputMode::Text && std::io::stderr().is_terminal())
        .then(|| LiveRows::new(&names));
    let obs: &dyn Observer = match (&live, output) {
        (Some(l), _) => l,
        (None, OutputMode::Json) => &JsonLines,
        (None, OutputMode::Text) => &PlainLines,
    };
    if ssh.accept_new_host_keys && output == OutputMode::Text {
        eprintln!(
            "note: --accept-new-host-keys: keys of hosts not in known_hosts will be recorded"
        );
    }
    let obs = Tap { inner: obs, tap };
    let reports = orchestrate::run_on_hosts(cluster, ssh, &playbook, &store, &opts, &obs);
    if let Some(l) = &live {
        l.clear();
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.host.as_str())
        .collect();
    match output {
        OutputMode::Json => JsonLines::emit(serde_json::json!({
            "event": "summary",
            "mode": if args.plan { "plan" } else { "apply" },
            "hosts": reports,
            "failedHosts": failed,
            "elapsedMs": started.elapsed().as_millis(),
        })),
        OutputMode::Text => {
            if args.plan {
                print!("{}", ui::plan_details(&reports));
                println!();
            }
            print!("{}", ui::summary(&reports, args.plan));
            if cluster.restrict_oom_score_adj.is_none() {
                let limited: Vec<&str> = reports
                    .iter()
                    .filter(|r| r.facts.as_ref().is_some_and(|f| !f.cap_sys_resource))
                    .map(|r| r.host.as_str())
                    .collect();
                if !limited.is_empty() {
                    println!(
                        "note: no CAP_SYS_RESOURCE on {}: containerd there has restrict_oom_score_adj = true (runc cannot lower oom_score_adj); spec.containerd.restrictOOMScoreAdj decides instead",
                        limited.join(", ")
                    );
                }
            }
            println!(
                "\n{} hosts, {} failed, {:.1}s{}",
                reports.len(),
                failed.len(),
                started.elapsed().as_secs_f64(),
                if args.plan {
                    " (plan: nothing was changed)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(reports)
}

/// Runs `kubeboot prepare`.
pub fn run(args: PrepareArgs) -> anyhow::Result<()> {
    let (cluster, ssh) = resolve(&args)?;
    let reports = prepare_hosts(&args, &cluster, &ssh)?;
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.host.as_str())
        .collect();
    if !failed.is_empty() {
        return Err(anyhow::anyhow!(
            "prepare failed on {} of {} hosts: {}",
            failed.len(),
            reports.len(),
            failed.join(", ")
        ))
        .context("see the summary above");
    }
    Ok(())
}

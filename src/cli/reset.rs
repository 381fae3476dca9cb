//! `kubeboot reset`, on this machine or over SSH (`--file`).

use super::flags::*;
use crate::config::{self};
use crate::host::Host;
use clap::Args;
use std::path::PathBuf;

/// `kubeboot reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
    /// Reset the hosts of this inventory over SSH instead of this machine.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// With --file: only these hosts (names, comma-separated).
    #[arg(long, value_delimiter = ',', requires = "file")]
    pub hosts: Vec<String>,
    /// Also revert what `kubeboot prepare` changed (packages, files, sysctls, swap, services),
    /// from the record prepare kept on each host.
    #[arg(long)]
    pub deep: bool,
    /// With --file: record host keys of hosts not in known_hosts instead of refusing them.
    #[arg(long, requires = "file")]
    pub accept_new_host_keys: bool,
    /// The node's certificate directory.
    #[arg(long, value_name = "DIR", default_value = config::DEFAULT_CERT_DIR)]
    pub cert_dir: String,
    /// The local etcd's data directory.
    #[arg(long, value_name = "DIR", default_value = config::DEFAULT_ETCD_DATA_DIR)]
    pub etcd_data_dir: String,
    /// Phases to skip: preflight (the confirmation and the root check),
    /// remove-etcd-member, cleanup-node (everything reset removes on the node) or one of
    /// its steps (`cleanup-node/remove-iptables-rules`); `all` skips every phase.
    #[arg(long, value_delimiter = ',')]
    pub skip_phases: Vec<String>,
    /// Preflight checks whose errors become warnings (IsPrivilegedUser, or `all`).
    #[arg(long, value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    /// containerd's socket, whose Kubernetes containers (namespace k8s.io) reset removes
    /// [default: /run/containerd/containerd.sock].
    #[arg(long, value_name = "URL")]
    pub cri_socket: Option<String>,
    #[command(flatten)]
    pub out: OutputFlag,
}

/// Asks before something destructive, unless `--force`; refuses without a terminal.
pub fn confirm(force: bool, what: &str) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    use std::io::{BufRead, IsTerminal, Write};
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "reset deletes {what}; pass --force to confirm when not on a terminal"
    );
    print!("[reset] This removes {what}. Continue? [y/N]: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    anyhow::ensure!(answer.trim().eq_ignore_ascii_case("y"), "reset aborted");
    Ok(())
}

impl ResetArgs {
    fn options(&self) -> crate::phases::reset::ResetOptions {
        crate::phases::reset::ResetOptions {
            skip_phases: self.skip_phases.clone(),
            cri_socket: self.cri_socket.clone(),
        }
    }

    fn skips_preflight(&self) -> bool {
        self.skip_phases
            .iter()
            .any(|p| p == "preflight" || p == "all")
    }
}

/// reset's preflight on this machine: kubeadm's one check, that reset runs as root.
pub fn reset_preflight(host: &dyn Host, ignore: &[String]) -> anyhow::Result<()> {
    let out = host.run(
        "id -u",
        &crate::host::RunOptions {
            stdin: None,
            timeout: Some(std::time::Duration::from_secs(10)),
        },
    )?;
    if out.stdout_text().trim() != "0" {
        if ignore
            .iter()
            .any(|i| i == "all" || i.eq_ignore_ascii_case("IsPrivilegedUser"))
        {
            println!(
                "[preflight] WARNING: user is not running as root (IsPrivilegedUser, ignored)"
            );
        } else {
            anyhow::bail!(
                "[preflight] user is not running as root (IsPrivilegedUser): run reset as root, or pass --ignore-preflight-errors=IsPrivilegedUser"
            );
        }
    }
    Ok(())
}

pub fn run_reset(host: &dyn Host, a: ResetArgs) -> anyhow::Result<()> {
    a.out.apply();
    // A skip that names no phase is refused before anything is asked or done.
    crate::phases::reset::workflow().skips([("--skip-phases", &a.skip_phases[..])])?;
    if !a.skips_preflight() {
        confirm(
            a.force,
            &format!(
                "the Kubernetes state of {} (PKI, kubeconfigs, etcd data, kubelet state)",
                host.name()
            ),
        )?;
        reset_preflight(host, &a.ignore_preflight_errors)?;
    }
    let rep = crate::phases::reset::reset_host(
        host,
        &a.cert_dir,
        &a.etcd_data_dir,
        a.deep,
        &a.options(),
    )?;
    if crate::output::json() {
        crate::output::done(serde_json::json!({
            "command": "reset",
            "steps": rep.done,
            "deep": a.deep,
        }));
        return Ok(());
    }
    println!(
        "[reset] Done: {} steps{}",
        rep.done.len(),
        if a.deep {
            " and the state before prepare restored"
        } else {
            ""
        }
    );
    Ok(())
}

pub fn run_reset_remote(a: ResetArgs) -> anyhow::Result<()> {
    a.out.apply();
    // A skip that names no phase is refused before anything is asked or done.
    crate::phases::reset::workflow().skips([("--skip-phases", &a.skip_phases[..])])?;
    let file = a.file.clone().expect("checked");
    let cluster = config::cluster::Cluster::load(&file)?;
    let mut ssh = crate::orchestrate::ssh_config_of(&cluster);
    ssh.accept_new_host_keys = a.accept_new_host_keys;
    for h in &a.hosts {
        anyhow::ensure!(
            cluster.hosts.iter().any(|c| &c.name == h),
            "--hosts: {h:?} is not a host of {}",
            file.display()
        );
    }
    let hosts: Vec<&config::cluster::ClusterHost> = cluster
        .hosts
        .iter()
        .filter(|h| a.hosts.is_empty() || a.hosts.contains(&h.name))
        .collect();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    if !a.skips_preflight() {
        confirm(
            a.force,
            &format!("the Kubernetes state of {}", names.join(", ")),
        )?;
    }
    let opts = a.options();
    let reset_one = |h: &config::cluster::ClusterHost| -> anyhow::Result<()> {
        let _label = crate::phases::label_host(&h.name);
        let cfg = crate::orchestrate::ssh_config_for(&ssh, h);
        let host = crate::host::SshHost::connect(&h.name, &h.address, &cfg)?;
        crate::phases::reset::reset_host(&host, &a.cert_dir, &a.etcd_data_dir, a.deep, &opts)?;
        Ok(())
    };
    let results = crate::orchestrate::fan_out(&hosts, crate::prepare::DEFAULT_CONCURRENCY, |h| {
        (h.name.clone(), reset_one(h))
    });
    let mut failed = Vec::new();
    for (name, r) in &results {
        if crate::output::json() {
            crate::output::emit(serde_json::json!({
                "event": "host-done", "host": name, "failed": r.is_err(),
                "error": r.as_ref().err().map(|e| format!("{e:#}")),
            }));
        } else {
            match r {
                Ok(()) => println!("{name}: reset{}", if a.deep { " (deep)" } else { "" }),
                Err(e) => println!("{name}: FAILED: {e:#}"),
            }
        }
        if r.is_err() {
            failed.push(name.as_str());
        }
    }
    anyhow::ensure!(failed.is_empty(), "reset failed on {}", failed.join(", "));
    Ok(())
}

//! Reaching the inventory's hosts, and what `up` knows of them without asking.

use crate::config::LocalFacts;
use crate::config::cluster::ClusterHost;
use crate::host::{Host, RunOptions, SshConfig, SshHost};
use crate::orchestrate::ssh_config_for;
use std::net::IpAddr;
use std::time::Duration;

/// Facts come from the inventory, never from the workstation.
pub(super) struct InventoryFacts;

impl LocalFacts for InventoryFacts {
    fn hostname(&self) -> Option<String> {
        None
    }
    fn default_address(&self) -> Option<IpAddr> {
        None
    }
}

pub(super) fn connect(cluster_ssh: &SshConfig, h: &ClusterHost) -> anyhow::Result<SshHost> {
    Ok(SshHost::connect(
        &h.name,
        &h.address,
        &ssh_config_for(cluster_ssh, h),
    )?)
}

/// Why init stopped, with what the node says about its kubelet.
pub(super) fn kubelet_diagnostics(host: &dyn Host) -> String {
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

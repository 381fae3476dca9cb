//! `kubeboot lab status`: what the state file says, checked against reality (is the
//! recorded nspawn still running, does sshd answer, how much memory does the node use).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::cgroup;
use super::error::Result;
use super::net;
use super::process;
use super::state::{self, LabState};

/// One node's live status.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// Hostname.
    pub hostname: String,
    /// Address.
    pub address: Ipv4Addr,
    /// Inventory role.
    pub role: String,
    /// The recorded nspawn PID.
    pub pid: Option<u32>,
    /// Whether that PID still runs the node.
    pub running: bool,
    /// Whether sshd accepts TCP connections.
    pub ssh_open: bool,
    /// Working-set memory of the node's cgroup in bytes, when known.
    pub memory_bytes: Option<u64>,
}

/// A lab's live status.
#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    /// Lab name.
    pub name: String,
    /// Subnet.
    pub subnet: String,
    /// Bridge interface.
    pub bridge: String,
    /// Whether the bridge exists.
    pub bridge_present: bool,
    /// Nodes.
    pub nodes: Vec<NodeStatus>,
}

/// Reads a lab's status; `None` when it does not exist.
pub fn status(name: &str, state_root: &Path) -> Result<Option<LabStatus>> {
    let Some(state) = LabState::load(&state_root.join(name).join("state.json"))? else {
        return Ok(None);
    };
    let nodes = state
        .nodes
        .iter()
        .map(|n| {
            let running = n.pid.is_some_and(|p| {
                process::is_running(p) && process::is_node_nspawn(p, &n.layout().root())
            });
            NodeStatus {
                hostname: n.hostname.clone(),
                address: n.address,
                role: n.role.clone(),
                pid: n.pid,
                running,
                ssh_open: running && net::tcp_open(n.address, 22, Duration::from_millis(300)),
                memory_bytes: if running {
                    cgroup::memory_working_set(&n.cgroups)
                } else {
                    None
                },
            }
        })
        .collect();
    Ok(Some(LabStatus {
        name: state.name.clone(),
        subnet: state.subnet.to_string(),
        bridge: state.bridge.clone(),
        bridge_present: net::link_exists(&state.bridge),
        nodes,
    }))
}

/// Names of all labs with state (for "no such lab; these exist").
pub fn lab_names(state_root: &Path) -> Vec<String> {
    state::all_labs(state_root)
        .into_iter()
        .map(|l| l.name)
        .collect()
}

/// Prints a status table.
pub fn print(status: &LabStatus) {
    println!(
        "lab {:?}: subnet {}, bridge {} ({})",
        status.name,
        status.subnet,
        status.bridge,
        if status.bridge_present {
            "present"
        } else {
            "missing"
        }
    );
    println!(
        "  {:<24} {:<15} {:<14} {:>8} {:<8} {:<6} {:>8}",
        "NODE", "ADDRESS", "ROLE", "PID", "STATE", "SSH", "MEMORY"
    );
    for n in &status.nodes {
        println!(
            "  {:<24} {:<15} {:<14} {:>8} {:<8} {:<6} {:>8}",
            n.hostname,
            n.address,
            n.role,
            n.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            if n.running { "running" } else { "stopped" },
            if n.ssh_open { "open" } else { "closed" },
            n.memory_bytes
                .map(|b| format!("{:.0} MiB", b as f64 / 1048576.0))
                .unwrap_or_else(|| "-".into()),
        );
    }
}

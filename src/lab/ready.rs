//! Waiting for nodes to be usable: sshd accepts TCP, then an ssh login with the lab key
//! and strict host key checking runs `systemctl is-system-running` and gets `running` or
//! `degraded`. Logging in for real also proves that the known_hosts and key `lab up`
//! hands out work.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use super::command::{output_within, tail};
use super::error::{LabError, Result};
use super::layout::NodeLayout;
use super::net::tcp_open;
use super::ssh::ssh_command;

/// How a node looked once it was ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// `running` or `degraded`.
    pub system_state: String,
    /// Failed units, when degraded.
    pub failed_units: Vec<String>,
}

fn not_ready(node: &NodeLayout, reason: String) -> LabError {
    LabError::NodeNotReady {
        node: node.hostname.clone(),
        address: node.address,
        reason,
        log: node.console_log(),
        tail: tail(&node.console_log(), 20),
    }
}

/// Waits for every booted node at once (one thread each); the readiness of each, in the
/// order given, or the one error (or all of them) of the nodes that did not come up.
pub fn wait_all(
    nodes: &[NodeLayout],
    children: &mut [Child],
    key: &Path,
    known_hosts: &Path,
    limit: Duration,
) -> Result<Vec<Readiness>> {
    let results: Vec<Result<Readiness>> = std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .zip(children.iter_mut())
            .map(|(n, child)| scope.spawn(move || wait_node(n, child, key, known_hosts, limit)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("readiness thread panicked"))
            .collect()
    });
    let (mut ready, mut errors) = (Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok(x) => ready.push(x),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(ready),
        1 => Err(errors.remove(0)),
        _ => Err(LabError::NodesNotReady { errors }),
    }
}

/// Waits for one node; fails early when its nspawn exits.
pub fn wait_node(
    node: &NodeLayout,
    child: &mut Child,
    key: &Path,
    known_hosts: &Path,
    limit: Duration,
) -> Result<Readiness> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("sshd does not accept connections on port 22 yet");
    let exited = |child: &mut Child| -> Option<String> {
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("systemd-nspawn exited ({status}) during boot")),
            _ => None,
        }
    };
    // 1: sshd listens.
    loop {
        if let Some(why) = exited(child) {
            return Err(not_ready(node, why));
        }
        if tcp_open(node.address, 22, Duration::from_millis(500)) {
            break;
        }
        if Instant::now() >= deadline {
            return Err(not_ready(
                node,
                format!("{last} after {} s", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // 2: systemd finished booting.
    loop {
        if let Some(why) = exited(child) {
            return Err(not_ready(node, why));
        }
        let mut cmd = ssh_command(key, known_hosts, &node.address.to_string(), true);
        cmd.args(["systemctl", "is-system-running"]);
        match output_within(&mut cmd, Duration::from_secs(10)) {
            Ok(out) => {
                let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
                match state.as_str() {
                    "running" => {
                        return Ok(Readiness {
                            system_state: state,
                            failed_units: vec![],
                        });
                    }
                    "degraded" => {
                        return Ok(Readiness {
                            system_state: state,
                            failed_units: failed_units(key, known_hosts, node),
                        });
                    }
                    "" => last = format!("ssh login failed: {stderr}"),
                    other => last = format!("systemctl is-system-running says {other:?}"),
                }
            }
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(not_ready(
                node,
                format!("{last} (after {} s)", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn failed_units(key: &Path, known_hosts: &Path, node: &NodeLayout) -> Vec<String> {
    let mut cmd = ssh_command(key, known_hosts, &node.address.to_string(), true);
    cmd.args(["systemctl", "--failed", "--no-legend", "--plain"]);
    output_within(&mut cmd, Duration::from_secs(10))
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

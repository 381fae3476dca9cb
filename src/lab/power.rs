//! `kubeboot lab stop` and `lab start`: power a node off (cleanly, or by cutting the power)
//! and boot it again with everything it had: its overlay root, containerd's store, its
//! network namespace, addresses, host keys and cgroups all stay, so a node that comes back
//! is the same machine after a reboot. This is how failures of a node are tried out (a
//! control plane lost and back), which `lab down` (removing everything) cannot do.

use std::path::Path;
use std::time::Duration;

use super::cgroup;
use super::error::{LabError, Result};
use super::layout::LabLayout;
use super::node::{self, NodeCommon};
use super::process;
use super::ready::{self, Readiness};
use super::ssh::find_node;
use super::state::{LabState, NodeState};

/// How long an orderly poweroff may take before `stop` gives up (use `--kill` then).
const POWEROFF_GRACE: Duration = Duration::from_secs(30);
/// How long the processes of a node whose power was cut get to vanish.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What happened to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerOutcome {
    /// It was running and is off now.
    Stopped,
    /// It was already off.
    WasStopped,
    /// It was off and booted; SSH answers.
    Started(Readiness),
    /// It was already running.
    WasRunning,
}

fn load(name: &str, state_root: &Path) -> Result<(LabLayout, LabState)> {
    let dir = state_root.join(name);
    let state = LabState::load(&dir.join("state.json"))?.ok_or_else(|| LabError::NotFound {
        name: name.to_string(),
        state: dir.clone(),
    })?;
    let layout = LabLayout::new(&state.name, state.subnet, state_root)?;
    Ok((layout, state))
}

/// The indices of the nodes named in `wanted` (every node when `wanted` is empty and
/// `all_when_none`), refusing a name the lab does not have.
fn indices(state: &LabState, wanted: &[String], all_when_none: bool) -> Result<Vec<usize>> {
    if wanted.is_empty() && all_when_none {
        return Ok(state.nodes.iter().map(|n| n.index).collect());
    }
    wanted
        .iter()
        .map(|w| find_node(state, w).map(|n| n.index))
        .collect()
}

/// The recorded node with index `index`.
fn node_mut(state: &mut LabState, index: usize) -> &mut NodeState {
    state
        .nodes
        .iter_mut()
        .find(|n| n.index == index)
        .expect("an index taken from the state")
}

/// The node's nspawn PID when it runs (the recorded PID, checked in /proc).
fn running_pid(node: &NodeState) -> Option<u32> {
    node.pid
        .filter(|p| process::is_running(*p) && process::is_node_nspawn(*p, &node.layout().root()))
}

/// Stops the named nodes of lab `name`. With `kill`, every process of the node is sent
/// SIGKILL at once (through its cgroups: a power cut, nothing inside gets to shut down);
/// without, the node powers off in order (SIGTERM to its nspawn).
pub fn stop(
    name: &str,
    state_root: &Path,
    wanted: &[String],
    kill: bool,
) -> Result<Vec<(String, PowerOutcome)>> {
    super::prereq::require_root()?;
    let (layout, mut state) = load(name, state_root)?;
    let mut outcomes = Vec::new();
    let lab = state.name.clone();
    for index in indices(&state, wanted, false)? {
        let node = node_mut(&mut state, index);
        let host = node.hostname.clone();
        let Some(pid) = running_pid(node) else {
            // Processes a node left behind (shims) would keep its ports: end them too.
            cgroup::kill_tree(&node.cgroups, KILL_WAIT);
            node.pid = None;
            outcomes.push((host, PowerOutcome::WasStopped));
            continue;
        };
        if kill {
            let out = cgroup::kill_tree(&node.cgroups, KILL_WAIT);
            if !out.left.is_empty() {
                return Err(LabError::Stuck {
                    node: host,
                    what: format!(
                        "processes still run {} s after SIGKILL: {}",
                        KILL_WAIT.as_secs(),
                        cgroup::describe_pids(&out.left)
                    ),
                });
            }
        } else {
            process::signal(pid, "TERM");
            if !process::wait_gone(&[pid], POWEROFF_GRACE).is_empty() {
                return Err(LabError::Stuck {
                    node: host,
                    what: format!(
                        "it did not power off within {} s; cut its power with `kubeboot lab stop --kill --name {} {}`",
                        POWEROFF_GRACE.as_secs(),
                        lab,
                        node.index
                    ),
                });
            }
            cgroup::kill_tree(&node.cgroups, KILL_WAIT);
        }
        node.pid = None;
        state.save(&layout.state_file())?;
        outcomes.push((host, PowerOutcome::Stopped));
    }
    state.save(&layout.state_file())?;
    Ok(outcomes)
}

/// Boots the named nodes of lab `name` that are off (all of them when `wanted` is empty)
/// and waits, within `timeout`, until each answers SSH and has finished booting.
pub fn start(
    name: &str,
    state_root: &Path,
    wanted: &[String],
    timeout: Duration,
) -> Result<Vec<(String, PowerOutcome)>> {
    super::prereq::require_root()?;
    super::prereq::require_tools(super::prereq::RUN_TOOLS)?;
    let (layout, mut state) = load(name, state_root)?;
    let indices = indices(&state, wanted, true)?;
    let key = layout.key_path();
    let public_key = std::fs::read_to_string(key.with_extension("pub"))
        .map_err(|e| LabError::io(key.with_extension("pub"), e))?;
    let hosts: Vec<_> = state
        .nodes
        .iter()
        .map(|n| (n.address, n.hostname.clone()))
        .collect();
    let snapshot = state.clone();
    let common = NodeCommon {
        base_rootfs: &snapshot.base_rootfs,
        lab_public_key: &public_key,
        nameserver: layout.bridge_addr(),
        apt_proxy: snapshot.apt_proxy.as_deref(),
        hosts: &hosts,
        artifacts: snapshot.artifacts.as_deref(),
        nspawn_args: &snapshot.nspawn_args,
    };
    let mut outcomes = Vec::new();
    let mut booted = Vec::new();
    for index in indices {
        let node = node_mut(&mut state, index);
        if running_pid(node).is_some() {
            outcomes.push((node.hostname.clone(), PowerOutcome::WasRunning));
            continue;
        }
        // Leftovers of a power cut that outlived it would keep the node's ports.
        cgroup::kill_tree(&node.cgroups, KILL_WAIT);
        let child = node::boot(&node.layout(), &common, &node.cgroups)?;
        node.pid = Some(child.id());
        booted.push((node.layout(), child));
    }
    state.save(&layout.state_file())?;
    let (layouts, mut children): (Vec<_>, Vec<_>) = booted.into_iter().unzip();
    let ready = ready::wait_all(
        &layouts,
        &mut children,
        &key,
        &layout.known_hosts_path(),
        timeout,
    )?;
    for (n, readiness) in layouts.iter().zip(ready) {
        outcomes.push((n.hostname.clone(), PowerOutcome::Started(readiness)));
    }
    Ok(outcomes)
}

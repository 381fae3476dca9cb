//! `kubeboot lab down`: stop the nodes (only the PIDs `up` recorded, after checking they
//! are still those nspawns), end whatever the nodes left in the lab's cgroups (containerd
//! shims and Pod processes outlive their node's nspawn), then remove mounts, overlays,
//! veths, namespaces, cgroups, the bridge and the state directory. Names are derived from the lab name as well as read from the
//! state, so it also cleans up after an `up` that crashed before recording everything.
//! Running it again, or on a lab that does not exist, does nothing and succeeds.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::cgroup;
use super::error::{LabError, Result};
use super::layout::{LabLayout, NodeLayout};
use super::mounts;
use super::net;
use super::process;
use super::state::LabState;

/// How long nodes get for an orderly poweroff before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// How long the processes left in the lab's cgroups get to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What `lab down` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownOutcome {
    /// There was nothing of that lab.
    Absent,
    /// The lab was there and is gone now.
    Removed,
}

/// Removes the lab `name` whose state lives under `state_root`.
pub fn down(name: &str, state_root: &Path) -> Result<DownOutcome> {
    super::prereq::require_root()?;
    // Any subnet will do to derive names; the state has the real one.
    let placeholder = LabLayout::new(name, "10.213.0.0/24".parse().expect("valid"), state_root)?;
    let state = LabState::load(&placeholder.state_file())?;
    let layout = match &state {
        Some(s) => s.layout(state_root),
        None => placeholder,
    };
    // Console logs kept by a failed `up` go with the lab.
    let failed_logs = super::layout::failed_logs_dir(state_root, name);
    let _ = std::fs::remove_dir_all(&failed_logs);
    if let Some(parent) = failed_logs.parent() {
        let _ = std::fs::remove_dir(parent); // only when empty
    }
    let present = state.is_some()
        || layout.state_dir.exists()
        || net::link_exists(&layout.bridge())
        || !net::netns_with_prefix(&layout.netns_prefix()).is_empty()
        || cgroup::lab_dirs(&layout.cgroup_dir_name())
            .iter()
            .any(|d| d.exists());
    if !present {
        return Ok(DownOutcome::Absent);
    }
    teardown(&layout, state.as_ref())?;
    Ok(DownOutcome::Removed)
}

/// Node index from a namespace name `kb.<lab>.node<i>`.
fn index_from_netns(prefix: &str, netns: &str) -> Option<usize> {
    netns
        .strip_prefix(prefix)?
        .strip_prefix("node")?
        .parse()
        .ok()
}

/// Removes everything of a lab; reports what could not be removed.
pub(crate) fn teardown(layout: &LabLayout, state: Option<&LabState>) -> Result<()> {
    let mut left: Vec<String> = Vec::new();

    // Nodes known from the state, plus any whose namespace exists or whose directory
    // was made (an interrupted `up`).
    let mut nodes: BTreeMap<usize, (NodeLayout, Option<u32>, Vec<std::path::PathBuf>)> =
        BTreeMap::new();
    if let Some(s) = state {
        for n in &s.nodes {
            nodes.insert(n.index, (n.layout(), n.pid, n.cgroups.clone()));
        }
    }
    for netns in net::netns_with_prefix(&layout.netns_prefix()) {
        if let Some(i) = index_from_netns(&layout.netns_prefix(), &netns) {
            nodes
                .entry(i)
                .or_insert_with(|| (layout.node(i), None, Vec::new()));
        }
    }
    if let Ok(entries) = std::fs::read_dir(layout.state_dir.join("nodes")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(i) = name
                .strip_prefix(&format!("{}-node", layout.name))
                .and_then(|i| i.parse().ok())
            {
                nodes
                    .entry(i)
                    .or_insert_with(|| (layout.node(i), None, Vec::new()));
            }
        }
    }

    // 1. Stop our nspawns: SIGTERM is an orderly poweroff of the node; all in parallel.
    let pids: Vec<(u32, String)> = nodes
        .values()
        .filter_map(|(n, pid, _)| pid.map(|p| (p, n)))
        .filter(|(p, n)| process::is_running(*p) && process::is_node_nspawn(*p, &n.root()))
        .map(|(p, n)| (p, n.hostname.clone()))
        .collect();
    let only_pids: Vec<u32> = pids.iter().map(|(p, _)| *p).collect();
    for p in &only_pids {
        process::signal(*p, "TERM");
    }
    let stubborn = process::wait_gone(&only_pids, STOP_GRACE);
    for p in &stubborn {
        process::signal(*p, "KILL");
    }
    for p in process::wait_gone(&stubborn, Duration::from_secs(5)) {
        let host = pids
            .iter()
            .find(|(q, _)| *q == p)
            .map(|(_, h)| h.as_str())
            .unwrap_or("?");
        left.push(format!("process {p} (systemd-nspawn of {host}) still runs"));
    }

    let unrecorded = process::unrecorded_nspawns(&layout.netns_prefix());
    for (pid, netns) in &unrecorded {
        left.push(format!(
            "process {pid} (systemd-nspawn with {netns}) belongs to this lab but its PID was never \
             recorded, so it was not stopped; stop it with `kill {pid}`"
        ));
    }

    // 2. What the nodes left in the lab's cgroups: containerd shims and Pod processes (at
    //    times the node's systemd) stay after their nspawn exits. The lab's directory in
    //    every hierarchy (and the parents of recorded node cgroups, should our own cgroup
    //    have moved since `up`).
    let lab_cgroups = cgroup::lab_dirs(&layout.cgroup_dir_name());
    let mut lab_dirs = lab_cgroups.clone();
    for (_, _, recorded) in nodes.values() {
        lab_dirs.extend(
            recorded
                .iter()
                .filter_map(|d| d.parent().map(Path::to_path_buf)),
        );
    }
    lab_dirs.sort();
    lab_dirs.dedup();
    lab_dirs.retain(|d| d.exists());
    // An nspawn of this lab still running (unrecorded or unkillable) is reported above;
    // ending its node from under it is left to the next `down`, after the user acted.
    if unrecorded.is_empty() {
        let killed = cgroup::kill_tree(&lab_dirs, KILL_WAIT);
        if !killed.found.is_empty() {
            eprintln!(
                "ended {} process(es) left in the lab's cgroups after the nodes stopped ({}; \
                 containerd shims, Pods)",
                killed.found.len(),
                if killed.cgroup_kill {
                    "cgroup.kill"
                } else {
                    "SIGKILL"
                }
            );
        }
        if !killed.left.is_empty() {
            left.push(format!(
                "processes still in the lab's cgroups ({}) {} s after SIGKILL: {}; they are \
                 probably blocked in the kernel (state D, e.g. on a hung mount): wait, or find \
                 what holds them (cat /proc/PID/stack), then run `kubeboot lab down --name {}` again",
                lab_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                KILL_WAIT.as_secs(),
                cgroup::describe_pids(&killed.left),
                layout.name
            ));
        }
    }

    // 3. Per node: mounts, overlay, veth, namespace, cgroups, directory.
    for (n, _, recorded) in nodes.values() {
        if let Err(e) = mounts::unmount_below(&n.dir) {
            left.push(format!("mount below {}: {e}", n.dir.display()));
        }
        if let Err(e) = net::delete_link(&n.veth) {
            left.push(format!("interface {}: {e}", n.veth));
        }
        if let Err(e) = net::delete_netns(&n.netns) {
            left.push(format!("network namespace {}: {e}", n.netns));
        }
        let mut cgroups = recorded.clone();
        cgroups.extend(lab_cgroups.iter().map(|d| d.join(&n.hostname)));
        cgroups.sort();
        cgroups.dedup();
        for dir in cgroups {
            if let Err(e) = cgroup::remove_tree(&dir) {
                left.push(format!("cgroup {e}"));
            }
        }
        if mounts::mounts_below(&n.dir).is_empty()
            && let Err(e) = remove_dir(&n.dir)
        {
            left.push(e.to_string());
        }
    }
    // The lab's directories with whatever else was made below them, deepest first.
    for dir in &lab_dirs {
        if let Err(e) = cgroup::remove_tree(dir) {
            left.push(format!("cgroup {e}"));
        }
    }

    // 4. The bridge.
    let bridge = state
        .map(|s| s.bridge.clone())
        .unwrap_or_else(|| layout.bridge());
    if let Err(e) = net::delete_link(&bridge) {
        left.push(format!("bridge {bridge}: {e}"));
    }

    // 5. The state directory, once nothing is mounted below it.
    if let Err(e) = mounts::unmount_below(&layout.state_dir) {
        left.push(format!("mount below {}: {e}", layout.state_dir.display()));
    }
    if left.is_empty() {
        remove_dir(&layout.state_dir)?;
        Ok(())
    } else {
        Err(LabError::Leftovers {
            name: layout.name.clone(),
            left,
        })
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_node_index_from_namespace() {
        assert_eq!(index_from_netns("kb.lab.", "kb.lab.node12"), Some(12));
        assert_eq!(index_from_netns("kb.lab.", "kb.lab-2.node1"), None);
        assert_eq!(index_from_netns("kb.lab.", "kb.lab.nodex"), None);
    }
}

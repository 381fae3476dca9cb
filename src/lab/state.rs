//! The record of a lab on disk (`state.json` in the lab's state directory). `up` writes
//! each resource into it *before* creating the resource, so a failed or interrupted `up`
//! and a later `down` know what to remove; `status` and `ssh` read it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::error::{LabError, Result};
use super::layout::{LabLayout, NodeLayout};

/// One lab as recorded on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// The lab name.
    pub name: String,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// The bridge interface.
    pub bridge: String,
    /// The extracted base rootfs the nodes' overlays sit on.
    pub base_rootfs: PathBuf,
    /// The apt proxy written into the nodes, if any.
    pub apt_proxy: Option<String>,
    /// The artifacts directory bound into the nodes, if any.
    pub artifacts: Option<PathBuf>,
    /// The nodes, in index order.
    pub nodes: Vec<NodeState>,
    /// Extra systemd-nspawn arguments of every node (`lab start` boots with them again).
    #[serde(default)]
    pub nspawn_args: Vec<String>,
}

/// One node as recorded on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    /// 1-based index.
    pub index: usize,
    /// Hostname.
    pub hostname: String,
    /// Address on the bridge.
    pub address: Ipv4Addr,
    /// Role written into the inventory.
    pub role: String,
    /// Network namespace name.
    pub netns: String,
    /// Host side veth.
    pub veth: String,
    /// Per-node state directory.
    pub dir: PathBuf,
    /// PID of the node's systemd-nspawn, once started.
    pub pid: Option<u32>,
    /// The cgroup directories made for the node, one per hierarchy.
    pub cgroups: Vec<PathBuf>,
}

impl NodeState {
    /// Rebuilds the node's path helpers from the record.
    pub fn layout(&self) -> NodeLayout {
        NodeLayout {
            index: self.index,
            hostname: self.hostname.clone(),
            address: self.address,
            netns: self.netns.clone(),
            veth: self.veth.clone(),
            dir: self.dir.clone(),
        }
    }
}

impl LabState {
    /// Reads a lab's state; `Ok(None)` when the lab has none.
    pub fn load(path: &Path) -> Result<Option<LabState>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LabError::io(path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| LabError::BadState {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// Writes the state atomically (temp file + rename), so a crash never leaves half a file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("lab state serializes");
        write_atomic(path, text.as_bytes(), 0o600)
    }

    /// Rebuilds the lab's path helpers from the record.
    pub fn layout(&self, state_root: &Path) -> LabLayout {
        LabLayout {
            name: self.name.clone(),
            subnet: self.subnet,
            state_dir: state_root.join(&self.name),
        }
    }
}

/// Writes a file atomically with the given mode.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| LabError::io(&tmp, e))?;
    file.write_all(contents)
        .and_then(|_| file.sync_all())
        .map_err(|e| LabError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| LabError::io(path, e))
}

/// Lists the labs that have state under `state_root`.
pub fn all_labs(state_root: &Path) -> Vec<LabState> {
    let Ok(entries) = std::fs::read_dir(state_root) else {
        return Vec::new();
    };
    let mut labs: Vec<LabState> = entries
        .flatten()
        .filter_map(|e| LabState::load(&e.path().join("state.json")).ok().flatten())
        .collect();
    labs.sort_by(|a, b| a.name.cmp(&b.name));
    labs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_absence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(LabState::load(&path).unwrap().is_none());
        let state = LabState {
            name: "t".into(),
            subnet: "10.213.9.0/24".parse().unwrap(),
            bridge: "kb-t-br".into(),
            base_rootfs: "/base".into(),
            apt_proxy: None,
            artifacts: None,
            nodes: vec![],
            nspawn_args: vec!["--property=CPUQuota=50%".into()],
        };
        state.save(&path).unwrap();
        let back = LabState::load(&path).unwrap().unwrap();
        assert_eq!(back.subnet, state.subnet);
        assert_eq!(back.nspawn_args, state.nspawn_args);
        // A state written before nspawn_args was recorded still loads.
        let old = serde_json::to_string(&state)
            .unwrap()
            .replace(r#","nspawn_args":["--property=CPUQuota=50%"]"#, "");
        assert!(!old.contains("nspawn_args"));
        std::fs::write(&path, old).unwrap();
        assert!(
            LabState::load(&path)
                .unwrap()
                .unwrap()
                .nspawn_args
                .is_empty()
        );
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            LabState::load(&path),
            Err(LabError::BadState { .. })
        ));
    }
}

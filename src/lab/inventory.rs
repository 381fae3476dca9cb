//! The files `lab up` hands to users and to `kubeboot up`: a `kubeboot.io/v1alpha1`
//! Cluster inventory naming the nodes, and a known_hosts with their real host keys, so
//! SSH with strict host key checking works from the first connection.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::Result;
use super::state::write_atomic;

/// The inventory document (the subset of kubeboot's Cluster kind the lab fills in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInventory {
    /// Always `kubeboot.io/v1alpha1`.
    pub api_version: String,
    /// Always `Cluster`.
    pub kind: String,
    /// The cluster name (the lab name).
    pub metadata: InventoryMetadata,
    /// SSH settings and hosts.
    pub spec: InventorySpec,
}

/// `metadata` of the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryMetadata {
    /// The lab name.
    pub name: String,
}

/// `spec` of the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventorySpec {
    /// How to log in to every host.
    pub ssh: InventorySsh,
    /// The hosts, first one the control plane.
    pub hosts: Vec<InventoryHost>,
    /// Kubelet flags for lab nodes: they share this machine's disk, so its free space
    /// (not theirs) would drive the kubelet's image garbage collection and eviction; a
    /// machine with 15% free would lose the images imported for the cluster. The lab
    /// turns both off but for a nearly full disk (see [`lab_kubelet_args`]).
    #[serde(
        rename = "kubeletExtraArgs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub kubelet_extra_args: Vec<InventoryArg>,
}

/// One `name: value` kubelet flag of the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryArg {
    pub name: String,
    pub value: String,
}

/// The kubelet flags lab nodes get: image GC only on a full disk, eviction only below 1%
/// free disk or 100 MiB free memory.
pub fn lab_kubelet_args() -> Vec<InventoryArg> {
    [
        ("image-gc-high-threshold", "100"),
        ("image-gc-low-threshold", "99"),
        (
            "eviction-hard",
            "imagefs.available<1%,nodefs.available<1%,memory.available<100Mi",
        ),
    ]
    .into_iter()
    .map(|(n, v)| InventoryArg {
        name: n.into(),
        value: v.into(),
    })
    .collect()
}

/// `spec.ssh` of the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventorySsh {
    /// Login user (root).
    pub user: String,
    /// sshd port (22).
    pub port: u16,
    /// Absolute path of the lab private key.
    pub key_path: String,
    /// Absolute path of the lab known_hosts.
    pub known_hosts_path: String,
}

/// One entry of `spec.hosts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryHost {
    /// Node hostname.
    pub name: String,
    /// Node address.
    pub address: Ipv4Addr,
    /// `control-plane` or `worker`.
    pub role: String,
}

/// Role of node `index` (1-based): the first node runs the control plane.
pub fn role_for(index: usize) -> &'static str {
    if index == 1 {
        "control-plane"
    } else {
        "worker"
    }
}

impl ClusterInventory {
    /// Builds the inventory of a lab.
    pub fn new(name: &str, key: &Path, known_hosts: &Path, hosts: Vec<InventoryHost>) -> Self {
        ClusterInventory {
            api_version: "kubeboot.io/v1alpha1".into(),
            kind: "Cluster".into(),
            metadata: InventoryMetadata { name: name.into() },
            spec: InventorySpec {
                ssh: InventorySsh {
                    user: "root".into(),
                    port: 22,
                    key_path: key.display().to_string(),
                    known_hosts_path: known_hosts.display().to_string(),
                },
                hosts,
                kubelet_extra_args: lab_kubelet_args(),
            },
        }
    }

    /// Renders the inventory as YAML.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("inventory serializes")
    }

    /// Writes the inventory.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_yaml().as_bytes(), 0o644)
    }
}

/// Writes known_hosts: one `<address> <type> <key>` line per node.
pub fn write_known_hosts(path: &Path, keys: &[(Ipv4Addr, String)]) -> Result<()> {
    let text: String = keys
        .iter()
        .map(|(addr, key)| format!("{addr} {key}\n"))
        .collect();
    write_atomic(path, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_has_the_agreed_shape() {
        let inv = ClusterInventory::new(
            "lab",
            Path::new("/s/id_ed25519"),
            Path::new("/s/known_hosts"),
            vec![
                InventoryHost {
                    name: "lab-node1".into(),
                    address: "10.213.0.11".parse().unwrap(),
                    role: role_for(1).into(),
                },
                InventoryHost {
                    name: "lab-node2".into(),
                    address: "10.213.0.12".parse().unwrap(),
                    role: role_for(2).into(),
                },
            ],
        );
        let yaml = inv.to_yaml();
        for needle in [
            "apiVersion: kubeboot.io/v1alpha1",
            "kind: Cluster",
            "keyPath: /s/id_ed25519",
            "knownHostsPath: /s/known_hosts",
            "role: control-plane",
            "role: worker",
            "10.213.0.12",
            "kubeletExtraArgs:",
            "name: eviction-hard",
        ] {
            assert!(yaml.contains(needle), "{needle:?} missing in:\n{yaml}");
        }
        let back: ClusterInventory = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, inv);
    }
}

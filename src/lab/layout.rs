//! Names and addresses of everything a lab creates, derived from its name and subnet
//! alone. `up` and `down` compute the same names, so `down` can clean up even what a
//! crashed `up` never recorded, and two labs with different names never collide.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use super::error::{LabError, Result};

/// Longest lab name accepted; keeps hostnames and paths readable.
pub const MAX_NAME_LEN: usize = 24;
/// Offset of the first node address in the subnet (`.11`, `.12`, ...).
pub const NODE_ADDR_OFFSET: u32 = 10;
/// Where per-node artifacts directories appear inside the node.
pub const ARTIFACTS_MOUNT: &str = "/opt/kubeboot-artifacts";

/// The derived names of one lab.
#[derive(Debug, Clone)]
pub struct LabLayout {
    /// The lab name (also the inventory's metadata.name).
    pub name: String,
    /// The lab's IPv4 subnet.
    pub subnet: Ipv4Net,
    /// The lab's state directory (`<state root>/<name>`).
    pub state_dir: PathBuf,
}

/// The derived names and paths of one node.
#[derive(Debug, Clone)]
pub struct NodeLayout {
    /// 1-based index.
    pub index: usize,
    /// Hostname, also the inventory host name: `<lab>-node<i>`.
    pub hostname: String,
    /// Static address on the lab bridge.
    pub address: Ipv4Addr,
    /// Network namespace name (in /run/netns).
    pub netns: String,
    /// Host side of the node's veth pair.
    pub veth: String,
    /// Per-node state directory (overlay upper/work, merged root, console log).
    pub dir: PathBuf,
}

impl NodeLayout {
    /// The merged overlay root the node boots from.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    /// Overlay upper directory: everything the node changes.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    /// Overlay work directory.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// Real directory bound at /var/lib/containerd (overlay-on-overlay fails for runc).
    pub fn containerd_dir(&self) -> PathBuf {
        self.dir.join("containerd")
    }
    /// Where systemd-nspawn's output (the node's console) goes.
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
}

/// Checks a lab name: it becomes part of hostnames, namespace names and paths.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(LabError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad(&format!("use 1 to {MAX_NAME_LEN} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("start with a lowercase letter");
    }
    if name.ends_with('-') {
        return bad("do not end with '-'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("use only lowercase letters, digits and '-'");
    }
    Ok(())
}

/// Checks that a subnet is a network address with room for the bridge and `nodes` nodes.
pub fn validate_subnet(subnet: Ipv4Net, nodes: usize) -> Result<()> {
    let bad = |reason: String| {
        Err(LabError::InvalidSubnet {
            subnet: subnet.to_string(),
            reason,
        })
    };
    if subnet.addr() != subnet.network() {
        return bad(format!(
            "{} is not the network address; did you mean {}?",
            subnet.addr(),
            subnet.trunc()
        ));
    }
    let last_node = u32::from(subnet.network()) + NODE_ADDR_OFFSET + nodes as u32;
    if subnet.prefix_len() > 30 || last_node >= u32::from(subnet.broadcast()) {
        return bad(format!(
            "it has no room for the bridge (.1) and {nodes} nodes from .{}; use a /24",
            NODE_ADDR_OFFSET + 1
        ));
    }
    Ok(())
}

/// A short tag for interface names: Linux allows 15 bytes, so long lab names are
/// shortened to 3 characters plus a hash, which keeps them distinct.
fn iface_tag(name: &str) -> String {
    if name.len() <= 8 {
        return name.to_string();
    }
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    format!("{}{}", &name[..3], &hex[..5])
}

impl LabLayout {
    /// Derives a lab's layout; the state directory is `<state_root>/<name>`.
    pub fn new(name: &str, subnet: Ipv4Net, state_root: &Path) -> Result<Self> {
        validate_name(name)?;
        Ok(LabLayout {
            name: name.to_string(),
            subnet,
            state_dir: state_root.join(name),
        })
    }

    /// The per-lab bridge (at most 14 bytes).
    pub fn bridge(&self) -> String {
        format!("kb-{}-br", iface_tag(&self.name))
    }

    /// The bridge's address: the subnet's first host; the nodes' gateway and the place
    /// an apt proxy listens.
    pub fn bridge_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet.network()) + 1)
    }

    /// Prefix shared by the lab's network namespace names; '.' cannot occur in a lab
    /// name, so no other lab's namespaces match it.
    pub fn netns_prefix(&self) -> String {
        format!("kb.{}.", self.name)
    }

    /// The layout of node `index` (1-based).
    pub fn node(&self, index: usize) -> NodeLayout {
        let hostname = format!("{}-node{index}", self.name);
        NodeLayout {
            index,
            address: Ipv4Addr::from(
                u32::from(self.subnet.network()) + NODE_ADDR_OFFSET + index as u32,
            ),
            netns: format!("{}node{index}", self.netns_prefix()),
            veth: format!("kb-{}-{index}", iface_tag(&self.name)),
            dir: self.state_dir.join("nodes").join(&hostname),
            hostname,
        }
    }

    /// The state file recording what `up` created.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
    /// The lab's SSH private key (ed25519); `.pub` beside it.
    pub fn key_path(&self) -> PathBuf {
        self.state_dir.join("id_ed25519")
    }
    /// known_hosts holding every node's real host key.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.state_dir.join("known_hosts")
    }
    /// The `kubeboot.io/v1alpha1` Cluster inventory for `kubeboot up`.
    pub fn inventory_path(&self) -> PathBuf {
        self.state_dir.join("cluster.yaml")
    }
    /// Name of the per-lab cgroup directory in every hierarchy.
    pub fn cgroup_dir_name(&self) -> String {
        format!("kubeboot-lab-{}", self.name)
    }
}

/// Where a failed `up` keeps the nodes' console logs: outside the lab's state directory
/// (which the clean-up removes); lab names cannot start with '.', so no lab lives there.
pub fn failed_logs_dir(state_root: &Path, name: &str) -> PathBuf {
    state_root.join(".failed").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(name: &str) -> LabLayout {
        LabLayout::new(name, "10.213.0.0/24".parse().unwrap(), Path::new("/state")).unwrap()
    }

    #[test]
    fn interface_names_fit_linux_limit() {
        for name in [
            "a",
            "kubeboot",
            "kubeboot-test-lab",
            "x234567890123456789012-z",
        ] {
            let l = layout(name);
            assert!(l.bridge().len() <= 15, "{}", l.bridge());
            assert!(l.node(999).veth.len() <= 15, "{}", l.node(999).veth);
        }
        assert_ne!(
            layout("kubeboot-aaa").bridge(),
            layout("kubeboot-aab").bridge()
        );
    }

    #[test]
    fn addresses_follow_the_subnet() {
        let l = layout("kubeboot");
        assert_eq!(l.bridge_addr(), Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(l.node(1).address, Ipv4Addr::new(10, 213, 0, 11));
        assert_eq!(l.node(3).hostname, "kubeboot-node3");
        assert_eq!(l.node(2).netns, "kb.kubeboot.node2");
        assert_eq!(
            l.node(2).dir,
            Path::new("/state/kubeboot/nodes/kubeboot-node2")
        );
    }

    #[test]
    fn names_are_checked() {
        for bad in [
            "",
            "Kube",
            "1lab",
            "lab_1",
            "lab.x",
            "lab-",
            "a234567890123456789012345",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        validate_name("lab-1").unwrap();
    }

    #[test]
    fn subnets_are_checked() {
        validate_subnet("10.213.0.0/24".parse().unwrap(), 3).unwrap();
        assert!(validate_subnet("10.213.0.5/24".parse().unwrap(), 3).is_err());
        assert!(validate_subnet("10.213.0.0/28".parse().unwrap(), 5).is_err());
        validate_subnet("10.213.0.0/27".parse().unwrap(), 5).unwrap();
    }
}

//! `kubeboot lab up`: base image, lab key, bridge, then per node overlay, identity,
//! network namespace, cgroups and systemd-nspawn; then wait until every node answers SSH
//! and systemd says it finished booting. Every resource is recorded in the state file
//! before it is created, and a failure part way tears down what was made.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use super::base::{self, BaseRecipe, Mirror};
use super::cgroup;
use super::command::run;
use super::down;
use super::error::{LabError, Result};
use super::inventory::{ClusterInventory, InventoryHost, role_for, write_known_hosts};
use super::layout::{LabLayout, failed_logs_dir, validate_subnet};
use super::net;
use super::node::{self, NodeCommon};
use super::prereq;
use super::ready::{self, Readiness};
use super::state::{LabState, NodeState};

/// Everything `lab up` needs to know.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Lab name.
    pub name: String,
    /// Number of nodes.
    pub nodes: usize,
    /// Lab subnet.
    pub subnet: Ipv4Net,
    /// apt proxy URL for the nodes; `{bridge}` is replaced by the bridge address.
    pub apt_proxy: Option<String>,
    /// Directory bound read-only into every node.
    pub artifacts: Option<PathBuf>,
    /// Debian mirror override for the base image.
    pub mirror: Option<String>,
    /// How long to wait for the nodes.
    pub timeout: Duration,
    /// Extra systemd-nspawn arguments.
    pub nspawn_args: Vec<String>,
    /// Root of all labs' state directories.
    pub state_root: PathBuf,
    /// Base image cache.
    pub cache_dir: PathBuf,
}

/// One node as `lab up` left it.
#[derive(Debug, Clone)]
pub struct UpNode {
    /// The recorded node.
    pub node: NodeState,
    /// How it answered.
    pub readiness: Readiness,
}

/// The result of `lab up`.
#[derive(Debug, Clone)]
pub struct UpSummary {
    /// The lab's layout.
    pub layout: LabLayout,
    /// The nodes.
    pub nodes: Vec<UpNode>,
    /// Time from start (after the base image was ready) to all nodes ready.
    pub boot_time: Duration,
}

/// Resolves the Debian mirror: the override, or the VM's apt configuration.
pub fn resolve_mirror(overridden: Option<&str>) -> Result<Mirror> {
    match overridden {
        Some(url) => Ok(Mirror {
            archive: url.trim_end_matches('/').to_string(),
            security: base::system_mirror().ok().and_then(|m| m.security),
        }),
        None => base::system_mirror(),
    }
}

/// Makes sure the base image exists, building it (which needs debootstrap) if not.
pub fn ensure_base(
    cache_dir: &Path,
    mirror: Option<&str>,
    rebuild: bool,
) -> Result<base::BaseImage> {
    let recipe = BaseRecipe::new(resolve_mirror(mirror)?);
    if rebuild || !base::BaseImage::locate(cache_dir, &recipe).tarball.exists() {
        prereq::require_tools(prereq::BUILD_TOOLS)?;
    }
    base::ensure(cache_dir, &recipe, rebuild)
}

/// Starts a lab; on failure, removes whatever it had created.
pub fn up(opts: &UpOptions) -> Result<UpSummary> {
    prereq::require_root()?;
    prereq::require_tools(prereq::RUN_TOOLS)?;
    let layout = LabLayout::new(&opts.name, opts.subnet, &opts.state_root)?;
    validate_subnet(opts.subnet, opts.nodes)?;
    prereq::ensure_inotify_instances(opts.nodes as u64)?;
    if layout.state_dir.exists() {
        return Err(LabError::AlreadyExists {
            name: layout.name.clone(),
            state: layout.state_dir.clone(),
        });
    }
    if net::link_exists(&layout.bridge()) {
        return Err(LabError::SubnetInUse {
            subnet: opts.subnet,
            user: format!(
                "interface {} exists; run `kubeboot lab down --name {}`",
                layout.bridge(),
                layout.name
            ),
        });
    }
    let artifacts = match &opts.artifacts {
        Some(dir) => Some(std::fs::canonicalize(dir).map_err(|e| LabError::io(dir, e))?),
        None => None,
    };
    net::check_subnet_free(opts.subnet, &opts.state_root)?;
    let image = ensure_base(&opts.cache_dir, opts.mirror.as_deref(), false)?;

    let started = Instant::now();
    let _ = std::fs::remove_dir_all(failed_logs_dir(&opts.state_root, &layout.name));
    std::fs::create_dir_all(&layout.state_dir).map_err(|e| LabError::io(&layout.state_dir, e))?;
    set_mode(&layout.state_dir, 0o700)?;
    let mut state = LabState {
        name: layout.name.clone(),
        subnet: opts.subnet,
        bridge: layout.bridge(),
        base_rootfs: image.rootfs.clone(),
        apt_proxy: opts
            .apt_proxy
            .as_ref()
            .map(|u| u.replace("{bridge}", &layout.bridge_addr().to_string())),
        artifacts,
        nodes: Vec::new(),
        nspawn_args: opts.nspawn_args.clone(),
    };
    state.save(&layout.state_file())?;

    match bring_up(&layout, &mut state, opts) {
        Ok(nodes) => {
            for warning in warnings(&state) {
                eprintln!("warning: {warning}");
            }
            Ok(UpSummary {
                layout,
                nodes,
                boot_time: started.elapsed(),
            })
        }
        Err(err) => {
            eprintln!("lab up failed; removing what it created (console logs are kept)");
            let moved = keep_console_logs(&layout, &state, &opts.state_root);
            if let Err(down_err) = down::teardown(&layout, Some(&state)) {
                eprintln!("warning: {down_err}");
            }
            Err(err.with_moved_logs(&moved))
        }
    }
}

/// `host:port` of an `http://host:port/...` URL when the host is an IPv4 address.
fn proxy_socket(url: &str) -> Option<(Ipv4Addr, u16)> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 80),
    };
    Some((host.parse().ok()?, port))
}

/// Things that do not stop a lab but that the user should know.
fn warnings(state: &LabState) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(url) = &state.apt_proxy {
        match proxy_socket(url) {
            Some((addr, port)) if !net::tcp_open(addr, port, Duration::from_millis(500)) => out.push(format!(
                "nothing answers at the apt proxy {url}; apt inside the nodes will fail until it does \
                 (tests/support/start-tinyproxy.sh starts one)"
            )),
            _ => {}
        }
    }
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    if forwarding.trim() == "1" {
        out.push(
            "IPv4 forwarding is on in this machine: unless a firewall stops it, the nodes' traffic to \
             other addresses is forwarded out of the lab"
                .to_string(),
        );
    }
    out
}

/// Copies every node's console log out of the lab before the clean-up removes it;
/// returns (old path, new path) pairs.
fn keep_console_logs(
    layout: &LabLayout,
    state: &LabState,
    state_root: &Path,
) -> Vec<(PathBuf, PathBuf)> {
    let dir = failed_logs_dir(state_root, &layout.name);
    if std::fs::create_dir_all(&dir).is_err() {
        return Vec::new();
    }
    state
        .nodes
        .iter()
        .filter_map(|n| {
            let from = n.layout().console_log();
            let to = dir.join(format!("{}.console.log", n.hostname));
            std::fs::copy(&from, &to).ok().map(|_| (from, to))
        })
        .collect()
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(path, e))
}

fn bring_up(layout: &LabLayout, state: &mut LabState, opts: &UpOptions) -> Result<Vec<UpNode>> {
    let state_file = layout.state_file();
    let key = layout.key_path();
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("kubeboot-lab-{}", layout.name))
        .arg("-f")
        .arg(&key))?;
    let public_key = std::fs::read_to_string(key.with_extension("pub"))
        .map_err(|e| LabError::io(key.with_extension("pub"), e))?;

    net::create_bridge(
        &layout.bridge(),
        layout.bridge_addr(),
        opts.subnet.prefix_len(),
    )?;

    let nodes: Vec<_> = (1..=opts.nodes).map(|i| layout.node(i)).collect();
    let hosts: Vec<(Ipv4Addr, String)> = nodes
        .iter()
        .map(|n| (n.address, n.hostname.clone()))
        .collect();
    let (base_rootfs, apt_proxy, artifacts) = (
        state.base_rootfs.clone(),
        state.apt_proxy.clone(),
        state.artifacts.clone(),
    );
    let common = NodeCommon {
        base_rootfs: &base_rootfs,
        lab_public_key: &public_key,
        nameserver: layout.bridge_addr(),
        apt_proxy: apt_proxy.as_deref(),
        hosts: &hosts,
        artifacts: artifacts.as_deref(),
        nspawn_args: &opts.nspawn_args,
    };

    let mut host_keys = Vec::new();
    for n in &nodes {
        state.nodes.push(NodeState {
            index: n.index,
            hostname: n.hostname.clone(),
            address: n.address,
            role: role_for(n.index).to_string(),
            netns: n.netns.clone(),
            veth: n.veth.clone(),
            dir: n.dir.clone(),
            pid: None,
            cgroups: Vec::new(),
        });
        state.save(&state_file)?;
        host_keys.push((n.address, node::prepare(n, &common)?));
        net::create_node_net(
            &n.netns,
            &n.veth,
            &layout.bridge(),
            n.address,
            opts.subnet.prefix_len(),
            layout.bridge_addr(),
        )?;
        let cgroups = cgroup::create_node_cgroups(&layout.cgroup_dir_name(), &n.hostname)?;
        // The control plane gets as much CPU as all workers together when every node is
        // busy (nodes share this machine's cores); workers keep the default weight.
        if role_for(n.index) == "control-plane" {
            cgroup::set_cpu_weight(&cgroups, opts.nodes as u32)?;
        }
        state.nodes.last_mut().expect("just pushed").cgroups = cgroups;
        state.save(&state_file)?;
    }

    write_known_hosts(&layout.known_hosts_path(), &host_keys)?;
    let inventory = ClusterInventory::new(
        &layout.name,
        &key,
        &layout.known_hosts_path(),
        state
            .nodes
            .iter()
            .map(|n| InventoryHost {
                name: n.hostname.clone(),
                address: n.address,
                role: n.role.clone(),
            })
            .collect(),
    );
    inventory.write(&layout.inventory_path())?;

    let mut children: Vec<Child> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let child = node::boot(n, &common, &state.nodes[i].cgroups)?;
        state.nodes[i].pid = Some(child.id());
        state.save(&state_file)?;
        children.push(child);
    }

    let kh = layout.known_hosts_path();
    let ready = ready::wait_all(&nodes, &mut children, &key, &kh, opts.timeout)?;
    Ok(state
        .nodes
        .iter()
        .zip(ready)
        .map(|(node, readiness)| UpNode {
            node: node.clone(),
            readiness,
        })
        .collect())
}

/// Prints what a user needs after `lab up`: nodes, files, and how to get in.
pub fn print_summary(summary: &UpSummary) {
    let l = &summary.layout;
    println!(
        "lab {:?} is up: {} node(s) on {} (bridge {} at {}), ready in {:.1} s",
        l.name,
        summary.nodes.len(),
        l.subnet,
        l.bridge(),
        l.bridge_addr(),
        summary.boot_time.as_secs_f64()
    );
    for n in &summary.nodes {
        let failed = if n.readiness.failed_units.is_empty() {
            String::new()
        } else {
            format!(" (failed units: {})", n.readiness.failed_units.join(", "))
        };
        println!(
            "  {:<24} {:<15} {:<14} {}{}",
            n.node.hostname, n.node.address, n.node.role, n.readiness.system_state, failed
        );
    }
    let first = summary
        .nodes
        .first()
        .map(|n| n.node.address.to_string())
        .unwrap_or_default();
    println!("inventory:   {}", l.inventory_path().display());
    println!("ssh key:     {}", l.key_path().display());
    println!("known_hosts: {}", l.known_hosts_path().display());
    println!("log in:      kubeboot lab ssh --name {} node1", l.name);
    println!(
        "        or:  ssh -i {} -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} root@{first}",
        l.key_path().display(),
        l.known_hosts_path().display()
    );
    println!("remove:      kubeboot lab down --name {}", l.name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_proxy_socket() {
        assert_eq!(
            proxy_socket("http://10.213.0.1:3142"),
            Some((Ipv4Addr::new(10, 213, 0, 1), 3142))
        );
        assert_eq!(
            proxy_socket("http://10.213.0.1/"),
            Some((Ipv4Addr::new(10, 213, 0, 1), 80))
        );
        assert_eq!(proxy_socket("http://proxy.example:3142"), None);
        assert_eq!(proxy_socket("socks5://10.0.0.1:1"), None);
    }
}

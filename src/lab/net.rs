//! The lab network: one bridge per lab in the VM's namespace, one network namespace per
//! node with a veth on that bridge and a static address. Nodes can reach each other and
//! the bridge address, nothing else (no forwarding or NAT is set up), so apt inside them
//! goes through a proxy listening on the bridge address.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ipnet::Ipv4Net;

use super::command::run;
use super::error::{LabError, Result};
use super::state;

/// True when a network interface of that name exists in the VM's namespace.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// True when a named network namespace exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

/// Creates the lab bridge with the gateway address and brings it up.
pub fn create_bridge(name: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    ip(&["link", "add", name, "type", "bridge"])?;
    ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", name])?;
    ip(&["link", "set", name, "up"])?;
    Ok(())
}

/// Creates a node's namespace and veth pair, addresses it and routes via the bridge.
pub fn create_node_net(
    netns: &str,
    veth: &str,
    bridge: &str,
    addr: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<()> {
    ip(&["netns", "add", netns])?;
    ip(&[
        "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns,
    ])?;
    ip(&["link", "set", veth, "master", bridge, "up"])?;
    ip(&[
        "-n",
        netns,
        "addr",
        "add",
        &format!("{addr}/{prefix}"),
        "dev",
        "eth0",
    ])?;
    ip(&["-n", netns, "link", "set", "lo", "up"])?;
    ip(&["-n", netns, "link", "set", "eth0", "up"])?;
    ip(&[
        "-n",
        netns,
        "route",
        "add",
        "default",
        "via",
        &gateway.to_string(),
    ])?;
    // No cloud metadata service answers in the lab, and this machine drops what it does
    // not route without a word: clients that probe the metadata address (the v1.20
    // kubelet's AWS credential provider, cloud SDKs) would wait for their timeouts, 6 s
    // of every kubelet start. Unreachable, they fail at once, as on a real LAN.
    ip(&["-n", netns, "route", "add", "unreachable", METADATA_ADDRESS])?;
    Ok(())
}

/// The link-local address of cloud metadata services (AWS, GCE, Azure), unreachable in
/// every lab node.
pub const METADATA_ADDRESS: &str = "169.254.169.254/32";

/// Deletes an interface if it exists.
pub fn delete_link(name: &str) -> Result<()> {
    if link_exists(name) {
        ip(&["link", "del", name])?;
    }
    Ok(())
}

/// Deletes a named network namespace if it exists (this also removes the veth end in it).
pub fn delete_netns(name: &str) -> Result<()> {
    if netns_exists(name) {
        ip(&["netns", "del", name])?;
    }
    Ok(())
}

/// The lab's namespaces present now, found by their name prefix.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Parses `ip -o -4 addr show` lines into (interface, network).
fn parse_addrs(text: &str) -> Vec<(String, Ipv4Net)> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let iface = words.get(1)?.trim_end_matches(':').to_string();
            let pos = words.iter().position(|w| *w == "inet")?;
            let net: Ipv4Net = words.get(pos + 1)?.parse().ok()?;
            Some((iface, net))
        })
        .collect()
}

/// Parses `ip -4 route show table all` lines into destination networks (default and
/// non-unicast routes are ignored).
fn parse_routes(text: &str) -> Vec<(String, Ipv4Net)> {
    text.lines()
        .filter_map(|line| {
            let first = line.split_whitespace().next()?;
            if ["default", "broadcast", "local", "multicast", "unreachable"].contains(&first) {
                return None;
            }
            let net: Ipv4Net = first
                .parse()
                .or_else(|_| first.parse::<Ipv4Addr>().map(Ipv4Net::from))
                .ok()?;
            Some((line.trim().to_string(), net))
        })
        .collect()
}

/// Refuses a subnet that overlaps an address or route on the VM or another lab's subnet:
/// a second bridge in the same range would break both.
pub fn check_subnet_free(subnet: Ipv4Net, state_root: &Path) -> Result<()> {
    let in_use = |user: String| Err(LabError::SubnetInUse { subnet, user });
    for lab in state::all_labs(state_root) {
        if overlaps(lab.subnet, subnet) {
            return in_use(format!("lab {:?} uses {}", lab.name, lab.subnet));
        }
    }
    for (iface, net) in parse_addrs(&ip(&["-o", "-4", "addr", "show"])?) {
        if overlaps(net, subnet) {
            return in_use(format!("interface {iface} has {net}"));
        }
    }
    for (route, net) in parse_routes(&ip(&["-4", "route", "show"])?) {
        if overlaps(net, subnet) {
            return in_use(format!("route `{route}`"));
        }
    }
    Ok(())
}

/// One TCP connect with a deadline. A plain connect to an address on a bridge whose peer
/// is missing can block for seconds, so the deadline is essential.
pub fn tcp_open(addr: Ipv4Addr, port: u16, limit: Duration) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((addr, port)), limit).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_routes() {
        let addrs = parse_addrs(
            "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
             4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\ x\n",
        );
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[1].0, "eth0");
        assert_eq!(addrs[1].1, "192.0.2.2/24".parse::<Ipv4Net>().unwrap());
        let routes = parse_routes(
            "default via 192.0.2.1 dev eth0\n192.0.2.0/24 dev eth0 proto kernel\n10.9.9.9 dev tun0\n",
        );
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[1].1, "10.9.9.9/32".parse::<Ipv4Net>().unwrap());
    }

    #[test]
    fn overlap_in_both_directions() {
        let n = |s: &str| s.parse::<Ipv4Net>().unwrap();
        assert!(overlaps(n("10.0.0.0/8"), n("10.213.0.0/24")));
        assert!(overlaps(n("10.213.0.0/24"), n("10.213.0.7/32")));
        assert!(!overlaps(n("10.213.0.0/24"), n("10.213.1.0/24")));
    }
}

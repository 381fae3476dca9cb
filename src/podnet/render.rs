//! What one node's image-free pod network is: the conflist over its podCIDR, the script
//! with its routes to the other nodes' podCIDRs, and the unit that runs it at boot.

use super::{BRIDGE, CNI_VERSION, NETWORK_NAME, NodeNet, Paths, PodNetError};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::Path;

/// One node's wanted files and routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub node: String,
    pub paths: Paths,
    pub conflist: String,
    pub routes_script: String,
    pub unit: String,
    /// `(destination as ip-route prints it, gateway)` for every other node.
    pub routes: Vec<(String, IpAddr)>,
    pub cluster_pod_subnet: IpNet,
}

/// The files and routes of `node` at the standard paths. `all` is every node of the
/// cluster (from [`node_networks`] or [`wait_pod_cidrs`]), `node` among them.
pub fn wanted(
    node: &str,
    all: &[NodeNet],
    cluster_pod_subnet: &IpNet,
) -> Result<Wanted, PodNetError> {
    wanted_at(&Paths::standard(), node, all, cluster_pod_subnet)
}

/// [`wanted`] with other paths (tests, `--root`).
pub fn wanted_at(
    paths: &Paths,
    node: &str,
    all: &[NodeNet],
    cluster_pod_subnet: &IpNet,
) -> Result<Wanted, PodNetError> {
    let me = all
        .iter()
        .find(|n| n.name == node)
        .ok_or_else(|| PodNetError::UnknownNode {
            node: node.to_string(),
            known: if all.is_empty() {
                "none".into()
            } else {
                all.iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
    wanted_own(paths, node, &me.pod_cidr, all, cluster_pod_subnet)
}

/// The files and routes of `node` from its own `pod_cidr` and the other nodes in `all`
/// (`node` itself need not be there: a Node whose kubelet has not reported its address
/// yet gets its conflist and its routes to the others all the same).
pub fn wanted_own(
    paths: &Paths,
    node: &str,
    pod_cidr: &IpNet,
    all: &[NodeNet],
    cluster_pod_subnet: &IpNet,
) -> Result<Wanted, PodNetError> {
    let subnet = cluster_pod_subnet.trunc();
    let own = [(node, pod_cidr)];
    let nets = all.iter().map(|n| (n.name.as_str(), &n.pod_cidr));
    for (name, cidr) in own.into_iter().chain(nets) {
        if !subnet.contains(cidr) {
            return Err(PodNetError::OutsideSubnet {
                node: name.to_string(),
                cidr: *cidr,
                subnet,
            });
        }
    }
    let mut others: Vec<&NodeNet> = all.iter().filter(|n| n.name != node).collect();
    others.sort_by(|a, b| a.name.cmp(&b.name));
    let routes: Vec<(String, IpAddr)> = others
        .iter()
        .map(|n| (route_dst(&n.pod_cidr), n.address))
        .collect();
    Ok(Wanted {
        node: node.to_string(),
        conflist: render_conflist(pod_cidr),
        routes_script: render_routes_script(node, &others, &subnet),
        unit: render_unit(&paths.routes_script),
        paths: paths.clone(),
        routes,
        cluster_pod_subnet: subnet,
    })
}

/// A destination the way `ip route show` prints it (a host route without `/32`).
fn route_dst(net: &IpNet) -> String {
    let net = net.trunc();
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

pub(super) fn family_flag(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "-4",
        IpNet::V6(_) => "-6",
    }
}

/// The conflist for a node whose pod CIDR is `pod_cidr`.
pub fn render_conflist(pod_cidr: &IpNet) -> String {
    let default = match pod_cidr {
        IpNet::V4(_) => "0.0.0.0/0",
        IpNet::V6(_) => "::/0",
    };
    let v = serde_json::json!({
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr.trunc().to_string()}]],
                    "routes": [{"dst": default}]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    });
    let mut s = serde_json::to_string_pretty(&v).expect("json");
    s.push('\n');
    s
}

fn render_routes_script(node: &str, others: &[&NodeNet], subnet: &IpNet) -> String {
    let fam = family_flag(subnet);
    let mut s = format!(
        "#!/bin/sh\n\
         # Written by kubeboot for node {node} (spec.cni.name: bridge); do not edit.\n\
         # Routes to the other nodes' pod CIDRs, and removal of routes inside the cluster's\n\
         # pod subnet {subnet} through gateways no node owns any more. Idempotent.\n\
         set -eu\n"
    );
    // One `ip` for all the routes: the script runs again whenever a Node comes, and on a
    // 20-node cluster a process per route made that thousands of processes.
    if !others.is_empty() {
        s.push_str(&format!("ip {fam} -batch - <<'KUBEBOOT_ROUTES'\n"));
        for n in others {
            s.push_str(&format!(
                "route replace {} via {}  # {}\n",
                route_dst(&n.pod_cidr),
                n.address,
                n.name
            ));
        }
        s.push_str("KUBEBOOT_ROUTES\n");
    }
    let keep: Vec<String> = others
        .iter()
        .map(|n| format!("{}={}", route_dst(&n.pod_cidr), n.address))
        .collect();
    s.push_str(&format!("keep=' {} '\n", keep.join(" ")));
    s.push_str(&format!(
        "ip {fam} route show root {subnet} | while read -r dst rest; do\n\
         \x20 case \" $rest \" in *\" dev {BRIDGE} \"*) continue ;; esac\n\
         \x20 gw=''\n\
         \x20 set -- $rest\n\
         \x20 while [ $# -gt 1 ]; do\n\
         \x20   if [ \"$1\" = via ]; then gw=$2; break; fi\n\
         \x20   shift\n\
         \x20 done\n\
         \x20 [ -n \"$gw\" ] || continue\n\
         \x20 case \"$keep\" in *\" $dst=$gw \"*) continue ;; esac\n\
         \x20 ip {fam} route del \"$dst\" via \"$gw\"\n\
         done\n"
    ));
    s
}

fn render_unit(script: &Path) -> String {
    format!(
        "# Written by kubeboot (spec.cni.name: bridge): restores the routes to the other\n\
         # nodes' pod CIDRs at boot.\n\
         [Unit]\n\
         Description=kubeboot: routes to the pod CIDRs of the other nodes\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/bin/sh {}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        script.display()
    )
}

//! A pod network that needs no image (`spec.cni.name: bridge`): for hosts on one layer-2
//! network and air-gapped labs where no CNI image can be pulled.
//!
//! Each node gets
//! - a CNI conflist ([`CONFLIST`]): the `bridge` plugin (bridge `cni0`, gateway, masquerade,
//!   hairpin) with `host-local` IPAM over the node's own `spec.podCIDR`, then `portmap`;
//! - a routes script ([`ROUTES_SCRIPT`]): one `ip -batch` of `route replace <podCIDR> via <InternalIP>` for
//!   every *other* node, and removal of routes inside the cluster's pod subnet that point
//!   at a gateway no node owns any more (nodes that left);
//! - a systemd oneshot unit ([`UNIT`]) that runs the script at boot, enabled by its
//!   `multi-user.target.wants` link (what `systemctl enable` makes; written directly so
//!   that hosts without a running systemd, e.g. a chroot or a test, are handled the same).
//!
//! The plugins are Debian's `containernetworking-plugins` (bookworm: 1.1.1), which the
//! prepare playbook installs; no image is involved. The conflist says `cniVersion`
//! 0.4.0: the plugins speak up to 1.0.0, but 0.4.0 is what every containerd still in use
//! (1.4+) accepts.
//!
//! [`sync`] is check-then-apply: one command per host reads the sha256 of the three files,
//! the enable link and the live routes inside the pod subnet, and compares them with the
//! wanted state here; only when something differs does a second command write the
//! differing files (temp file + rename), run the routes script and print the same check
//! again so the result is verified in that round trip. A re-run with nothing to do costs
//! one round trip and changes nothing.
//!
//! The `bridge` plugin's `ipMasq` masquerades traffic leaving the node's pod CIDR, so a
//! Pod on another node sees the node's address as the source. Services, DNS and Pod to
//! Pod traffic all work (measured in the lab, see the shared LAB.md); NetworkPolicy is not
//! provided by this network.

pub mod ahead;
mod render;

use render::family_flag;
pub use render::{Wanted, render_conflist, wanted, wanted_at, wanted_own};

use crate::apiclient::{ApiClient, ApiError};
use crate::host::{Host, HostError, RunOptions};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The CNI configuration kubeboot writes (the kubelet's runtime reads the first file of
/// `/etc/cni/net.d` in lexical order; `10-` sorts before flannel's `10-flannel`).
pub const CONFLIST: &str = "/etc/cni/net.d/10-kubeboot-bridge.conflist";
/// The routes script, run at boot by [`UNIT`] and by [`sync`].
pub const ROUTES_SCRIPT: &str = "/etc/kubeboot/pod-routes.sh";
/// The oneshot unit that restores the routes after a reboot.
pub const UNIT: &str = "/etc/systemd/system/kubeboot-pod-routes.service";
/// The link `systemctl enable` would make for [`UNIT`].
pub const UNIT_LINK: &str =
    "/etc/systemd/system/multi-user.target.wants/kubeboot-pod-routes.service";
/// The bridge the `bridge` plugin creates on every node.
pub const BRIDGE: &str = "cni0";
/// The network name in the conflist (host-local keeps its leases under this name).
pub const NETWORK_NAME: &str = "kubeboot-bridge";
/// The CNI spec version written into the conflist.
pub const CNI_VERSION: &str = "0.4.0";

/// Where the files live. [`Paths::standard`] on nodes; [`Paths::under`] puts them below a
/// directory (tests, `--root`) while the routes still go into the host's routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub conflist: PathBuf,
    pub routes_script: PathBuf,
    pub unit: PathBuf,
    pub unit_link: PathBuf,
}

impl Paths {
    /// The paths on a node.
    pub fn standard() -> Paths {
        Paths {
            conflist: CONFLIST.into(),
            routes_script: ROUTES_SCRIPT.into(),
            unit: UNIT.into(),
            unit_link: UNIT_LINK.into(),
        }
    }

    /// The same paths below `root` (`<root>/etc/cni/net.d/...`).
    pub fn under(root: &Path) -> Paths {
        let j = |p: &str| root.join(p.trim_start_matches('/'));
        Paths {
            conflist: j(CONFLIST),
            routes_script: j(ROUTES_SCRIPT),
            unit: j(UNIT),
            unit_link: j(UNIT_LINK),
        }
    }
}

/// Why the pod network could not be computed or applied. Every message names the node or
/// host and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PodNetError {
    #[error("listing the cluster's Nodes: {0}")]
    Api(#[from] ApiError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(
        "node {node} is not among the cluster's Nodes with a pod CIDR ({known}); wait until its kubelet has registered and the controller-manager has given it a podCIDR (wait_pod_cidrs)"
    )]
    UnknownNode { node: String, known: String },
    #[error(
        "node {node}'s podCIDR {cidr} is outside the cluster's pod subnet {subnet}: the controller-manager's --cluster-cidr and the inventory's spec.networking.podSubnet disagree; make them the same (kubeboot reset and up again)"
    )]
    OutsideSubnet {
        node: String,
        cidr: IpNet,
        subnet: IpNet,
    },
    #[error("{}", waited_message(.waited, .pending))]
    Timeout {
        waited: Duration,
        pending: Vec<PendingNode>,
    },
    #[error(
        "{host}: applying the pod network failed (exit {status}): {stderr}{}",
        route_hint(.stderr)
    )]
    Apply {
        host: String,
        status: i32,
        stderr: String,
    },
    #[error("{host}: checking the pod network failed (exit {status}): {stderr}")]
    Check {
        host: String,
        status: i32,
        stderr: String,
    },
    #[error("{host}: the pod network still differs after applying it: {differences}")]
    NotConverged { host: String, differences: String },
}

fn route_hint(stderr: &str) -> &'static str {
    if stderr.contains("Nexthop has invalid gateway") || stderr.contains("Network is unreachable") {
        " (the `bridge` pod network routes to each node's InternalIP directly, so every node must be on one layer-2 network with the others; use flannel otherwise)"
    } else {
        ""
    }
}

fn waited_message(waited: &Duration, pending: &[PendingNode]) -> String {
    let list: Vec<String> = pending
        .iter()
        .map(|p| format!("{} ({})", p.name, p.missing))
        .collect();
    let mut m = format!(
        "after {}s these nodes still lack what the bridge pod network needs: {}",
        waited.as_secs(),
        list.join(", ")
    );
    if pending.iter().any(|p| p.missing == Missing::PodCidr) {
        m.push_str(
            ". The controller-manager allocates pod CIDRs only when the cluster has a pod subnet (networking.podSubnet, i.e. --allocate-node-cidrs=true --cluster-cidr=...) and the subnet still has room for one more node-sized block (--node-cidr-mask-size); check the kube-controller-manager's log on the control plane",
        );
    }
    if pending.iter().any(|p| p.missing == Missing::Registered) {
        m.push_str(
            ". A node that is not registered has no running kubelet that reached the API server: see `journalctl -u kubelet` on it",
        );
    }
    if pending.iter().any(|p| p.missing == Missing::Address) {
        m.push_str(
            ". A node without an InternalIP of the pod subnet's address family cannot be routed to: give its kubelet --node-ip (spec.hosts[].nodeIP)",
        );
    }
    m
}

/// The pod CIDR of one node and the address other nodes route it through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNet {
    pub name: String,
    pub pod_cidr: IpNet,
    /// The node's `InternalIP` of the same address family as `pod_cidr`.
    pub address: IpAddr,
}

/// What a node still lacks before it can take part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Missing {
    /// No Node object with this name (only from [`wait_pod_cidrs`]).
    Registered,
    /// `spec.podCIDR` is not set yet.
    PodCidr,
    /// No `InternalIP` of the pod CIDR's family in `status.addresses`.
    Address,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Missing::Registered => "not registered",
            Missing::PodCidr => "no spec.podCIDR yet",
            Missing::Address => "no InternalIP address",
        })
    }
}

/// A node that cannot be given its routes yet, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNode {
    pub name: String,
    pub missing: Missing,
    /// Its podCIDR when only the address is missing: the node's own conflist and its
    /// routes to the others need no more ([`wanted_own`]); only the others' routes to
    /// it wait for its address.
    pub pod_cidr: Option<IpNet>,
}

/// Every Node's `spec.podCIDR` and `InternalIP`, sorted by name. Nodes that lack either
/// come back separately so the caller can wait ([`wait_pod_cidrs`]) instead of writing
/// routes for half the cluster.
pub fn node_networks(admin: &ApiClient) -> Result<(Vec<NodeNet>, Vec<PendingNode>), PodNetError> {
    let items = admin.list("/api/v1/nodes", None)?;
    Ok(node_networks_from(&items))
}

/// [`node_networks`] over Node objects already fetched.
pub fn node_networks_from(items: &[serde_json::Value]) -> (Vec<NodeNet>, Vec<PendingNode>) {
    let mut ready = Vec::new();
    let mut pending = Vec::new();
    for n in items {
        let name = n["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let cidr = n["spec"]["podCIDR"]
            .as_str()
            .and_then(|s| s.parse::<IpNet>().ok())
            .map(|c| c.trunc());
        let Some(pod_cidr) = cidr else {
            pending.push(PendingNode {
                name,
                missing: Missing::PodCidr,
                pod_cidr: None,
            });
            continue;
        };
        let address = n["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["type"] == "InternalIP")
            .filter_map(|a| a["address"].as_str()?.parse::<IpAddr>().ok())
            .find(|ip| ip.is_ipv4() == matches!(pod_cidr, IpNet::V4(_)));
        match address {
            Some(address) => ready.push(NodeNet {
                name,
                pod_cidr,
                address,
            }),
            None => pending.push(PendingNode {
                name,
                missing: Missing::Address,
                pod_cidr: Some(pod_cidr),
            }),
        }
    }
    ready.sort_by(|a, b| a.name.cmp(&b.name));
    pending.sort_by(|a, b| a.name.cmp(&b.name));
    (ready, pending)
}

/// Which of `names` are not among the `ready` nodes, and what each lacks (a Node not in
/// `pending` has not registered).
pub fn still_missing(
    names: &[String],
    ready: &[NodeNet],
    pending: &[PendingNode],
) -> Vec<PendingNode> {
    names
        .iter()
        .filter(|n| !ready.iter().any(|r| &r.name == *n))
        .map(|n| {
            pending
                .iter()
                .find(|p| &p.name == n)
                .cloned()
                .unwrap_or(PendingNode {
                    name: n.clone(),
                    missing: Missing::Registered,
                    pod_cidr: None,
                })
        })
        .collect()
}

/// Waits until every node in `names` is registered with a podCIDR and an InternalIP,
/// polling every second, then returns all nodes that have both (including nodes not in
/// `names`: every node needs routes to all of them). Fails after `timeout` naming the
/// nodes still missing something and why.
pub fn wait_pod_cidrs(
    admin: &ApiClient,
    names: &[String],
    timeout: Duration,
) -> Result<Vec<NodeNet>, PodNetError> {
    let start = Instant::now();
    loop {
        let missing = match node_networks(admin) {
            Ok((ready, pending)) => {
                let missing = still_missing(names, &ready, &pending);
                if missing.is_empty() {
                    return Ok(ready);
                }
                Ok(missing)
            }
            Err(e) => Err(e),
        };
        if start.elapsed() >= timeout {
            return Err(match missing {
                Ok(pending) => PodNetError::Timeout {
                    waited: start.elapsed(),
                    pending,
                },
                Err(e) => e,
            });
        }
        std::thread::sleep(Duration::from_secs(1).min(timeout.saturating_sub(start.elapsed())));
    }
}

/// What [`sync`] found and did on one host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncOutcome {
    pub host: String,
    /// What differed, one line each (`write /etc/...`, `add route ...`, `remove route ...`);
    /// empty when the host was already as wanted.
    pub changes: Vec<String>,
    /// Whether the changes were applied (false in plan mode or when nothing differed).
    pub applied: bool,
    /// Commands run on the host (round trips over SSH).
    pub round_trips: u32,
}

impl SyncOutcome {
    /// Whether anything differed.
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The check command: prints `file <name> <sha256|absent>`, `link <target|absent>` and
/// `route <ip route line>` for every route inside the pod subnet.
fn check_script(w: &Wanted) -> String {
    let mut s = String::new();
    for (name, path) in [
        ("conflist", &w.paths.conflist),
        ("script", &w.paths.routes_script),
        ("unit", &w.paths.unit),
    ] {
        let p = sq(&path.display().to_string());
        s.push_str(&format!(
            "if [ -f {p} ]; then echo \"file {name} $(sha256sum < {p} | cut -d' ' -f1)\"; else echo 'file {name} absent'; fi\n"
        ));
    }
    let link = sq(&w.paths.unit_link.display().to_string());
    s.push_str(&format!(
        "if [ -L {link} ]; then echo \"link $(readlink {link})\"; else echo 'link absent'; fi\n"
    ));
    s.push_str(&format!(
        "ip {} route show root {} | sed 's/^/route /'\n",
        family_flag(&w.cluster_pod_subnet),
        w.cluster_pod_subnet
    ));
    s
}

/// Parses the check output into the list of differences.
fn differences(w: &Wanted, out: &str) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut live: BTreeSet<(String, String)> = BTreeSet::new();
    let mut seen_files = BTreeSet::new();
    let mut link_ok = false;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("file ") {
            let (name, sum) = rest.split_once(' ').unwrap_or((rest, ""));
            let (path, want) = match name {
                "conflist" => (&w.paths.conflist, &w.conflist),
                "script" => (&w.paths.routes_script, &w.routes_script),
                "unit" => (&w.paths.unit, &w.unit),
                _ => continue,
            };
            seen_files.insert(name.to_string());
            if sum != sha_hex(want.as_bytes()) {
                let what = if sum == "absent" { "create" } else { "update" };
                diffs.push(format!("{what} {}", path.display()));
            }
        } else if let Some(target) = line.strip_prefix("link ") {
            link_ok = Path::new(target) == w.paths.unit;
        } else if let Some(route) = line.strip_prefix("route ") {
            let words: Vec<&str> = route.split_whitespace().collect();
            let Some(dst) = words.first() else { continue };
            if words.windows(2).any(|p| p == ["dev", BRIDGE]) {
                continue;
            }
            if let Some(i) = words.iter().position(|x| *x == "via") {
                // `via inet6 ADDR` for a v4 route over a v6 next hop.
                let gw = words
                    .get(i + 1)
                    .filter(|g| **g != "inet" && **g != "inet6")
                    .or_else(|| words.get(i + 2))
                    .copied()
                    .unwrap_or_default();
                live.insert((dst.to_string(), gw.to_string()));
            }
        }
    }
    for name in ["conflist", "script", "unit"] {
        if !seen_files.contains(name) {
            diffs.push(format!("check said nothing about the {name} file"));
        }
    }
    if !link_ok {
        diffs.push(format!(
            "enable {} (link {})",
            w.paths.unit.display(),
            w.paths.unit_link.display()
        ));
    }
    let wanted: BTreeSet<(String, String)> = w
        .routes
        .iter()
        .map(|(d, g)| (d.clone(), g.to_string()))
        .collect();
    for (d, g) in wanted.difference(&live) {
        diffs.push(format!("add route {d} via {g}"));
    }
    for (d, g) in live.difference(&wanted) {
        diffs.push(format!("remove route {d} via {g}"));
    }
    diffs
}

fn write_step(s: &mut String, path: &Path, contents: &str, mode: u32) {
    let p = path.display().to_string();
    let dir = path
        .parent()
        .unwrap_or(Path::new("/"))
        .display()
        .to_string();
    let tmp = format!(
        "{dir}/.{}.kubeboot-tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, contents);
    let mut wrapped = String::new();
    for chunk in b64.as_bytes().chunks(76) {
        wrapped.push_str(std::str::from_utf8(chunk).expect("base64"));
        wrapped.push('\n');
    }
    s.push_str(&format!(
        "mkdir -p {d}\nbase64 -d > {t} <<'KUBEBOOT_EOF'\n{wrapped}KUBEBOOT_EOF\nchmod {mode:o} {t}\nmv -f {t} {p}\n",
        d = sq(&dir),
        t = sq(&tmp),
        p = sq(&p),
    ));
}

fn apply_script(w: &Wanted, diffs: &[String]) -> String {
    let mut s = String::from("set -eu\n");
    let differs = |p: &Path| {
        let p = p.display().to_string();
        diffs.iter().any(|d| d.ends_with(&format!(" {p}")))
    };
    if differs(&w.paths.conflist) {
        write_step(&mut s, &w.paths.conflist, &w.conflist, 0o644);
    }
    if differs(&w.paths.routes_script) {
        write_step(&mut s, &w.paths.routes_script, &w.routes_script, 0o755);
    }
    let unit_changed = differs(&w.paths.unit);
    if unit_changed {
        write_step(&mut s, &w.paths.unit, &w.unit, 0o644);
    }
    let link = sq(&w.paths.unit_link.display().to_string());
    let link_dir = sq(&w
        .paths
        .unit_link
        .parent()
        .unwrap_or(Path::new("/"))
        .display()
        .to_string());
    s.push_str(&format!(
        "mkdir -p {link_dir}\nln -sfn {} {link}\n",
        sq(&w.paths.unit.display().to_string())
    ));
    // systemd reads the unit file, not the script it runs: reload only for a new unit.
    if unit_changed {
        s.push_str("if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi\n");
    }
    s.push_str(&format!(
        "/bin/sh {}\n",
        sq(&w.paths.routes_script.display().to_string())
    ));
    s.push_str("echo '--- check'\n");
    s.push_str(&check_script(w));
    s
}

/// Brings one host to `wanted`: one check command; when something differs (and not
/// `plan`), one apply command that writes the differing files, enables the unit, runs the
/// routes script and checks again. Returns what differed.
pub fn sync(host: &dyn Host, wanted: &Wanted, plan: bool) -> Result<SyncOutcome, PodNetError> {
    let opts = RunOptions {
        stdin: None,
        timeout: Some(Duration::from_secs(60)),
    };
    let out = host.run(&check_script(wanted), &opts)?;
    if !out.success() {
        return Err(PodNetError::Check {
            host: host.name().to_string(),
            status: out.status,
            stderr: out.stderr_text().trim().to_string(),
        });
    }
    let changes = differences(wanted, &out.stdout_text());
    if changes.is_empty() || plan {
        return Ok(SyncOutcome {
            host: host.name().to_string(),
            changes,
            applied: false,
            round_trips: 1,
        });
    }
    let out = host.run(&apply_script(wanted, &changes), &opts)?;
    if !out.success() {
        return Err(PodNetError::Apply {
            host: host.name().to_string(),
            status: out.status,
            stderr: out.stderr_text().trim().to_string(),
        });
    }
    let text = out.stdout_text();
    let after = text.split_once("--- check\n").map(|x| x.1).unwrap_or("");
    let left = differences(wanted, after);
    if !left.is_empty() {
        return Err(PodNetError::NotConverged {
            host: host.name().to_string(),
            differences: left.join("; "),
        });
    }
    Ok(SyncOutcome {
        host: host.name().to_string(),
        changes,
        applied: true,
        round_trips: 2,
    })
}

/// Shell for `kubeboot reset`: removes the routes this network added (every route inside
/// the pod subnet with a gateway, read back from the routes script's `route replace`
/// lines), the conflist, the script, the unit and its enable link, and
/// the `cni0` bridge. Safe to run when nothing is there.
pub fn reset_script() -> &'static str {
    concat!(
        "if [ -f /etc/kubeboot/pod-routes.sh ]; then\n",
        // `route replace DST via GW` lines of `ip -batch` (and `ip -4 route replace ...`
        // lines, as scripts before 2026-12-02 wrote them).
        "  sed -n -E 's/^(ip -[46] )?route replace ([^ ]+) via ([^ ]+).*/\\2 \\3/p' /etc/kubeboot/pod-routes.sh | while read -r dst gw; do\n",
        "    case $dst in *:*) fam=-6 ;; *) fam=-4 ;; esac\n",
        "    ip \"$fam\" route del \"$dst\" via \"$gw\" 2>/dev/null || true\n",
        "  done\n",
        "fi\n",
        "rm -f /etc/cni/net.d/10-kubeboot-bridge.conflist /etc/kubeboot/pod-routes.sh\n",
        "rm -f /etc/systemd/system/multi-user.target.wants/kubeboot-pod-routes.service /etc/systemd/system/kubeboot-pod-routes.service\n",
        "if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n",
        "if ip link show cni0 >/dev/null 2>&1; then ip link delete cni0 || true; fi\n",
        "rm -rf /var/lib/cni/networks/kubeboot-bridge\n",
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn still_missing_names_what_each_node_lacks() {
        let ready = vec![NodeNet {
            name: "a".into(),
            pod_cidr: "10.244.0.0/24".parse().unwrap(),
            address: "10.0.0.1".parse().unwrap(),
        }];
        let pending = vec![PendingNode {
            name: "b".into(),
            missing: Missing::PodCidr,
            pod_cidr: None,
        }];
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let m = still_missing(&names, &ready, &pending);
        assert_eq!(
            m.iter()
                .map(|p| (p.name.as_str(), p.missing))
                .collect::<Vec<_>>(),
            [("b", Missing::PodCidr), ("c", Missing::Registered)]
        );
        assert!(still_missing(&names[..1], &ready, &pending).is_empty());
    }

    use super::*;

    fn nodes() -> Vec<NodeNet> {
        [
            ("node1", "10.244.0.0/24", "10.213.0.11"),
            ("node2", "10.244.1.0/24", "10.213.0.12"),
            ("node3", "10.244.2.0/24", "10.213.0.13"),
        ]
        .iter()
        .map(|(n, c, a)| NodeNet {
            name: n.to_string(),
            pod_cidr: c.parse().unwrap(),
            address: a.parse().unwrap(),
        })
        .collect()
    }

    fn subnet() -> IpNet {
        "10.244.0.0/16".parse().unwrap()
    }

    #[test]
    fn conflist_is_json_with_the_nodes_own_subnet() {
        let w = wanted("node2", &nodes(), &subnet()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&w.conflist).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        let p = &v["plugins"];
        assert_eq!(p[0]["type"], "bridge");
        assert_eq!(p[0]["bridge"], "cni0");
        for k in ["isGateway", "ipMasq", "hairpinMode"] {
            assert_eq!(p[0][k], true, "{k}");
        }
        assert_eq!(p[0]["ipam"]["type"], "host-local");
        assert_eq!(p[0]["ipam"]["ranges"][0][0]["subnet"], "10.244.1.0/24");
        assert_eq!(p[0]["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(p[1]["type"], "portmap");
        assert_eq!(p[1]["capabilities"]["portMappings"], true);
    }

    #[test]
    fn routes_go_to_the_others_not_to_itself() {
        let w = wanted("node2", &nodes(), &subnet()).unwrap();
        let s = &w.routes_script;
        assert!(
            s.contains(
                "ip -4 -batch - <<'KUBEBOOT_ROUTES'\nroute replace 10.244.0.0/24 via 10.213.0.11"
            ),
            "{s}"
        );
        assert!(
            s.contains("\nroute replace 10.244.2.0/24 via 10.213.0.13  # node3\nKUBEBOOT_ROUTES\n"),
            "{s}"
        );
        assert!(!s.contains("10.244.1.0/24 via"), "{s}");
        assert!(
            s.contains("keep=' 10.244.0.0/24=10.213.0.11 10.244.2.0/24=10.213.0.13 '"),
            "{s}"
        );
        assert!(s.contains("route show root 10.244.0.0/16"), "{s}");
        assert_eq!(w.routes.len(), 2);
        assert!(
            w.unit
                .contains("ExecStart=/bin/sh /etc/kubeboot/pod-routes.sh")
        );
        assert!(w.unit.contains("After=network-online.target"));
        assert!(w.unit.contains("RemainAfterExit=yes"));
        assert!(w.unit.contains("WantedBy=multi-user.target"));
        // The same input renders the same bytes (a re-run must compare equal).
        assert_eq!(w, wanted("node2", &nodes(), &subnet()).unwrap());
    }

    #[test]
    fn a_node_without_its_address_yet_gets_the_same_files_and_routes() {
        // node2 before its kubelet reported its address: not among the nodes with one.
        let others: Vec<NodeNet> = nodes().into_iter().filter(|n| n.name != "node2").collect();
        let cidr: IpNet = "10.244.1.0/24".parse().unwrap();
        let own = wanted_own(&Paths::standard(), "node2", &cidr, &others, &subnet()).unwrap();
        assert_eq!(own, wanted("node2", &nodes(), &subnet()).unwrap());
        // Its own CIDR is checked against the subnet too.
        let foreign: IpNet = "10.99.0.0/24".parse().unwrap();
        let e = wanted_own(&Paths::standard(), "node2", &foreign, &others, &subnet())
            .unwrap_err()
            .to_string();
        assert!(e.contains("node2") && e.contains("10.99.0.0/24"), "{e}");
    }

    #[test]
    fn unknown_node_and_foreign_cidr_are_plain_errors() {
        let e = wanted("node9", &nodes(), &subnet())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("node9") && e.contains("node1, node2, node3"),
            "{e}"
        );
        let mut n = nodes();
        n[2].pod_cidr = "10.99.0.0/24".parse().unwrap();
        let e = wanted("node1", &n, &subnet()).unwrap_err().to_string();
        assert!(
            e.contains("node3") && e.contains("10.99.0.0/24") && e.contains("podSubnet"),
            "{e}"
        );
    }

    #[test]
    fn nodes_from_api_objects_fixture() {
        // Shaped like `GET /api/v1/nodes` items.
        let items: Vec<serde_json::Value> = serde_json::from_str(
            r#"[
              {"metadata":{"name":"b"},"spec":{"podCIDR":"10.244.1.0/24","podCIDRs":["10.244.1.0/24"]},
               "status":{"addresses":[{"type":"Hostname","address":"b"},{"type":"InternalIP","address":"fd00::2"},{"type":"InternalIP","address":"10.0.0.2"}]}},
              {"metadata":{"name":"a"},"spec":{"podCIDR":"10.244.0.0/24"},
               "status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"}]}},
              {"metadata":{"name":"c"},"spec":{},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.3"}]}},
              {"metadata":{"name":"d"},"spec":{"podCIDR":"10.244.3.0/24"},"status":{"addresses":[{"type":"Hostname","address":"d"}]}}
            ]"#,
        )
        .unwrap();
        let (ready, pending) = node_networks_from(&items);
        assert_eq!(
            ready
                .iter()
                .map(|n| (n.name.as_str(), n.address.to_string()))
                .collect::<Vec<_>>(),
            [("a", "10.0.0.1".to_string()), ("b", "10.0.0.2".to_string())]
        );
        assert_eq!(
            pending,
            [
                PendingNode {
                    name: "c".into(),
                    missing: Missing::PodCidr,
                    pod_cidr: None,
                },
                PendingNode {
                    name: "d".into(),
                    missing: Missing::Address,
                    pod_cidr: Some("10.244.3.0/24".parse().unwrap()),
                },
            ]
        );
        let m = waited_message(&Duration::from_secs(60), &pending);
        assert!(
            m.contains("c (no spec.podCIDR yet)") && m.contains("networking.podSubnet"),
            "{m}"
        );
    }

    #[test]
    fn check_output_parsing_finds_each_difference() {
        let w = wanted("node2", &nodes(), &subnet()).unwrap();
        let good = format!(
            "file conflist {}\nfile script {}\nfile unit {}\nlink {}\n\
             route 10.244.0.0/24 via 10.213.0.11 dev eth0\n\
             route 10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1\n\
             route 10.244.2.0/24 via 10.213.0.13 dev eth0 proto static metric 10\n",
            sha_hex(w.conflist.as_bytes()),
            sha_hex(w.routes_script.as_bytes()),
            sha_hex(w.unit.as_bytes()),
            UNIT
        );
        assert_eq!(differences(&w, &good), Vec::<String>::new());
        let bad = good.replace(&sha_hex(w.unit.as_bytes()), "absent").replace(
            "10.244.2.0/24 via 10.213.0.13",
            "10.244.2.0/24 via 10.213.0.99",
        ) + "route 10.244.7.0/24 via 10.213.0.17 dev eth0\n";
        let d = differences(&w, &bad);
        assert_eq!(
            d,
            [
                format!("create {UNIT}"),
                "add route 10.244.2.0/24 via 10.213.0.13".into(),
                "remove route 10.244.2.0/24 via 10.213.0.99".into(),
                "remove route 10.244.7.0/24 via 10.213.0.17".into(),
            ]
        );
    }

    #[test]
    fn reset_script_removes_everything_it_added() {
        let s = reset_script();
        for p in [CONFLIST, ROUTES_SCRIPT, UNIT, UNIT_LINK] {
            assert!(s.contains(p), "{p}");
        }
    }
}

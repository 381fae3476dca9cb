//! The image-free `bridge` pod network, written on each host as soon as its Node has a
//! podCIDR, while other hosts are still joining.

use super::hosts::connect;
use crate::apiclient::ApiClient;
use crate::config::cluster::{Cluster, ClusterHost};
use crate::host::{SshConfig, SshHost};
use crate::phases::label_host;
use crate::podnet::{NodeNet, Paths, PendingNode, PodNetError, Wanted};
use anyhow::Context;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the Nodes are listed while hosts are still waiting for their podCIDR.
const POLL: Duration = Duration::from_secs(1);
/// Hosts connected to, or synced, at once.
const AT_ONCE: usize = crate::prepare::DEFAULT_CONCURRENCY;

/// Keeps the bridge pod network current on the inventory's hosts while `up` joins them:
/// every second it lists the Nodes, and each host whose Node has a podCIDR gets its
/// conflist and its routes to every other Node that has one, as soon as that is known
/// (a host becomes Ready without waiting for the slowest join). When a Node appears
/// later, the hosts synced before get their routes again (check-then-apply: only the new
/// route is added). `done` receives the hosts that ended up in the cluster once the joins
/// are over; the follow ends when each of them is synced against a Node list holding all
/// of them, or `timeout` after that (naming who lacks what). A sender dropped without
/// sending ends it quietly (up stopped). Returns how many hosts changed.
pub(super) fn follow(
    cluster: &Cluster,
    ssh: &SshConfig,
    admin: &ApiClient,
    candidates: &[&ClusterHost],
    done: Receiver<Vec<String>>,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let subnet: ipnet::IpNet = cluster
        .networking
        .pod_subnet
        .as_deref()
        .unwrap_or(crate::config::cluster::DEFAULT_POD_SUBNET)
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .context("spec.networking.podSubnet is not a CIDR")?;
    let conns: Mutex<HashMap<String, Arc<SshHost>>> = Mutex::new(HashMap::new());
    std::thread::scope(|s| {
        // Connections made ahead, while Nodes register, so a host's first sync is only
        // its round trips (a failure here is met again, and reported, at the sync).
        s.spawn(|| {
            crate::orchestrate::fan_out(candidates, AT_ONCE, |h| {
                let _ = host_for(&conns, ssh, h);
            })
        });
        follow_rounds(ssh, admin, candidates, &done, timeout, &subnet, &conns)
    })
}

/// The rounds of [`follow`] until it ends.
fn follow_rounds(
    ssh: &SshConfig,
    admin: &ApiClient,
    candidates: &[&ClusterHost],
    done: &Receiver<Vec<String>>,
    timeout: Duration,
    subnet: &ipnet::IpNet,
    conns: &Mutex<HashMap<String, Arc<SshHost>>>,
) -> anyhow::Result<usize> {
    // Per host: the state last written (or found) there, or the state whose sync failed
    // with the error (not retried until the wanted state changes).
    let mut synced: HashMap<String, Wanted> = HashMap::new();
    let mut failed: HashMap<String, (Wanted, String)> = HashMap::new();
    let mut changed: std::collections::BTreeSet<String> = Default::default();
    let mut finals: Option<(Vec<String>, Instant)> = None;
    loop {
        if finals.is_none() {
            match done.try_recv() {
                Ok(names) => finals = Some((names, Instant::now())),
                Err(TryRecvError::Disconnected) => return Ok(changed.len()),
                Err(TryRecvError::Empty) => {}
            }
        }
        let (nets, pending, list_error) = match crate::podnet::node_networks(admin) {
            Ok((nets, pending)) => (nets, pending, None),
            Err(e) => (Vec::new(), Vec::new(), Some(e)),
        };
        let hosts: Vec<&ClusterHost> = match &finals {
            Some((names, _)) => candidates
                .iter()
                .copied()
                .filter(|h| names.contains(&h.name))
                .collect(),
            None => candidates.to_vec(),
        };
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        let (due, settled) = round(&names, &nets, &pending, subnet, &synced, &failed)?;
        let todo: Vec<(&ClusterHost, Wanted)> = due
            .into_iter()
            .filter_map(|(n, w)| Some((*hosts.iter().find(|h| h.name == n)?, w)))
            .collect();
        if !todo.is_empty() {
            let results = crate::orchestrate::fan_out(&todo, AT_ONCE, |(h, w)| {
                let _label = label_host(&h.name);
                let r = (|| -> anyhow::Result<bool> {
                    let host = host_for(conns, ssh, h)?;
                    let out = crate::podnet::sync(host.as_ref(), w, false)?;
                    for c in &out.changes {
                        crate::phases::report("pod-network", c);
                    }
                    Ok(out.changed())
                })();
                (h.name.clone(), r)
            });
            for ((_, w), (name, r)) in todo.into_iter().zip(results) {
                match r {
                    Ok(c) => {
                        if c {
                            changed.insert(name.clone());
                        }
                        failed.remove(&name);
                        synced.insert(name, w);
                    }
                    Err(e) => {
                        failed.insert(name, (w, format!("{e:#}")));
                    }
                }
            }
            // Something was written: look again at once (a Node may have come meanwhile).
            continue;
        }
        let Some((names, since)) = &finals else {
            // Joins still running: wait for Nodes, or wake at once when the joins end
            // (a no-op `up` spent a whole poll here).
            match done.recv_timeout(POLL) {
                Ok(names) => finals = Some((names, Instant::now())),
                Err(RecvTimeoutError::Disconnected) => return Ok(changed.len()),
                Err(RecvTimeoutError::Timeout) => {}
            }
            continue;
        };
        if settled {
            let errors: Vec<String> = names
                .iter()
                .filter_map(|n| failed.get(n).map(|(_, e)| format!("{n}: {e}")))
                .collect();
            if !errors.is_empty() {
                anyhow::bail!("the bridge pod network failed on {}", errors.join("; "));
            }
            return Ok(changed.len());
        }
        if since.elapsed() >= timeout {
            if let Some(e) = list_error {
                return Err(e.into());
            }
            return Err(timeout_error(names, &nets, &pending, since.elapsed()).into());
        }
        std::thread::sleep(POLL);
    }
}

/// One round of the follow: the hosts to sync now with their wanted state (their Node
/// has a podCIDR and what they should have differs from what was last synced there or
/// failed there; hosts never synced before the others), and whether every host is
/// settled (has a Node with a podCIDR and an address and was synced, or failed, with the
/// state wanted now). A Node with a podCIDR but no address yet (registered ahead, its
/// kubelet not yet reporting) gets its conflist and routes all the same, so they are in
/// place when its kubelet first reports; the others' routes to it wait for its address.
fn round(
    hosts: &[&str],
    nets: &[NodeNet],
    pending: &[PendingNode],
    subnet: &ipnet::IpNet,
    synced: &HashMap<String, Wanted>,
    failed: &HashMap<String, (Wanted, String)>,
) -> Result<(Vec<(String, Wanted)>, bool), PodNetError> {
    let mut due = Vec::new();
    let mut settled = true;
    for &h in hosts {
        let w = if let Some(me) = nets.iter().find(|n| n.name == h) {
            crate::podnet::wanted_own(&Paths::standard(), h, &me.pod_cidr, nets, subnet)?
        } else if let Some(cidr) = pending
            .iter()
            .find(|p| p.name == h)
            .and_then(|p| p.pod_cidr.as_ref())
        {
            settled = false;
            crate::podnet::wanted_own(&Paths::standard(), h, cidr, nets, subnet)?
        } else {
            settled = false;
            continue;
        };
        let same_failed = failed.get(h).is_some_and(|(fw, _)| *fw == w);
        if synced.get(h) != Some(&w) && !same_failed {
            due.push((h.to_string(), w));
            settled = false;
        }
    }
    // Hosts without any network yet first: their conflist is what makes them Ready;
    // the others only gain routes, in the next round.
    if due
        .iter()
        .any(|(h, _)| !synced.contains_key(h) && !failed.contains_key(h))
    {
        due.retain(|(h, _)| !synced.contains_key(h) && !failed.contains_key(h));
    }
    Ok((due, settled))
}

/// The host's SSH connection, made on first use and kept for later syncs.
fn host_for(
    conns: &Mutex<HashMap<String, Arc<SshHost>>>,
    ssh: &SshConfig,
    h: &ClusterHost,
) -> anyhow::Result<Arc<SshHost>> {
    if let Some(c) = conns.lock().unwrap_or_else(|e| e.into_inner()).get(&h.name) {
        return Ok(c.clone());
    }
    let c = Arc::new(connect(ssh, h)?);
    conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(h.name.clone(), c.clone());
    Ok(c)
}

/// Which of `names` still lack a podCIDR (or an address, or a Node) after the wait.
fn timeout_error(
    names: &[String],
    nets: &[NodeNet],
    pending: &[PendingNode],
    waited: Duration,
) -> PodNetError {
    PodNetError::Timeout {
        waited,
        pending: crate::podnet::still_missing(names, nets, pending),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, cidr: &str, ip: &str) -> NodeNet {
        NodeNet {
            name: name.into(),
            pod_cidr: cidr.parse().unwrap(),
            address: ip.parse().unwrap(),
        }
    }

    #[test]
    fn each_host_is_synced_once_its_node_has_a_pod_cidr_and_again_when_a_peer_appears() {
        let subnet: ipnet::IpNet = "10.244.0.0/16".parse().unwrap();
        let hosts = ["cp", "w1", "w2"];
        let mut synced = HashMap::new();
        let mut failed = HashMap::new();
        // Only the control plane's Node has a podCIDR: it is synced alone, not settled.
        let one = vec![net("cp", "10.244.0.0/24", "10.0.0.1")];
        let (due, settled) = round(&hosts, &one, &[], &subnet, &synced, &failed).unwrap();
        assert_eq!(due.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), ["cp"]);
        assert!(due[0].1.routes.is_empty());
        assert!(!settled);
        synced.insert("cp".to_string(), due[0].1.clone());
        let (due, settled) = round(&hosts, &one, &[], &subnet, &synced, &failed).unwrap();
        assert!(
            due.is_empty() && !settled,
            "nothing new, w1 and w2 still missing"
        );
        // w1 appears: w1 gets its network first, then cp its route to w1.
        let two = [one.clone(), vec![net("w1", "10.244.1.0/24", "10.0.0.2")]].concat();
        let (due, _) = round(&hosts, &two, &[], &subnet, &synced, &failed).unwrap();
        assert_eq!(due.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), ["w1"]);
        for (n, w) in due {
            synced.insert(n, w);
        }
        let (due, settled) = round(&hosts, &two, &[], &subnet, &synced, &failed).unwrap();
        assert_eq!(due.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), ["cp"]);
        assert!(!settled);
        let cp_routes = &due[0].1.routes;
        assert_eq!(cp_routes.len(), 1);
        assert_eq!(cp_routes[0].0, "10.244.1.0/24");
        for (n, w) in due {
            synced.insert(n, w);
        }
        // w2 appears and its sync fails: not retried with the same state; the others get
        // their route to it, and then all is settled.
        let three = [two.clone(), vec![net("w2", "10.244.2.0/24", "10.0.0.3")]].concat();
        let (due, _) = round(&hosts, &three, &[], &subnet, &synced, &failed).unwrap();
        assert_eq!(due.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), ["w2"]);
        for (n, w) in due {
            failed.insert(n, (w, "unreachable".to_string()));
        }
        let (due, _) = round(&hosts, &three, &[], &subnet, &synced, &failed).unwrap();
        assert_eq!(
            due.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
            ["cp", "w1"]
        );
        for (n, w) in due {
            synced.insert(n, w);
        }
        let (due, settled) = round(&hosts, &three, &[], &subnet, &synced, &failed).unwrap();
        assert!(due.is_empty() && settled, "{due:?}");
        // A Node outside the pod subnet is a plain error, not a silent skip.
        let bad = [three, vec![net("w3", "10.99.0.0/24", "10.0.0.4")]].concat();
        assert!(round(&hosts, &bad, &[], &subnet, &synced, &failed).is_err());
    }

    #[test]
    fn a_node_registered_ahead_gets_its_network_before_its_address_is_known() {
        let subnet: ipnet::IpNet = "10.244.0.0/16".parse().unwrap();
        let hosts = ["cp", "w1"];
        let mut synced = HashMap::new();
        let failed = HashMap::new();
        let cp = vec![net("cp", "10.244.0.0/24", "10.0.0.1")];
        synced.insert(
            "cp".to_string(),
            crate::podnet::wanted("cp", &cp, &subnet).unwrap(),
        );
        // w1 has its podCIDR (registered ahead), no address: it is synced, with its
        // route to cp; cp gets no route to it yet; not settled.
        let ahead = [PendingNode {
            name: "w1".into(),
            missing: crate::podnet::Missing::Address,
            pod_cidr: Some("10.244.1.0/24".parse().unwrap()),
        }];
        let (due, settled) = round(&hosts, &cp, &ahead, &subnet, &synced, &failed).unwrap();
        assert_eq!(due.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), ["w1"]);
        assert!(due[0].1.conflist.contains("10.244.1.0/24"));
        assert_eq!(
            due[0].1.routes,
            [("10.244.0.0/24".to_string(), "10.0.0.1".parse().unwrap())]
        );
        assert!(!settled);
        for (n, w) in due {
            synced.insert(n, w);
        }
        let (due, settled) = round(&hosts, &cp, &ahead, &subnet, &synced, &failed).unwrap();
        assert!(due.is_empty() && !settled, "{due:?}");
        // Its kubelet reports the address: w1's own state is unchanged (no second
        // sync there), cp gets its route to w1, then all is settled.
        let both = [cp.clone(), vec![net("w1", "10.244.1.0/24", "10.0.0.2")]].concat();
        let (due, _) = round(&hosts, &both, &[], &subnet, &synced, &failed).unwrap();
        assert_eq!(due.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), ["cp"]);
        for (n, w) in due {
            synced.insert(n, w);
        }
        let (due, settled) = round(&hosts, &both, &[], &subnet, &synced, &failed).unwrap();
        assert!(due.is_empty() && settled, "{due:?}");
    }
}

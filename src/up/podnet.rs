//! The image-free `bridge` pod network, kept current on every host in the cluster.

use super::hosts::connect;
use crate::apiclient::ApiClient;
use crate::config::cluster::{Cluster, ClusterHost};
use crate::host::SshConfig;
use crate::phases::label_host;
use anyhow::Context;
use std::time::Duration;

/// The image-free `bridge` pod network: once every host in the cluster has its podCIDR,
/// each gets its conflist and routes to the others (a re-run changes nothing; hosts that
/// left lose their routes). Returns how many hosts changed.
pub(super) fn pod_network(
    cluster: &Cluster,
    ssh: &SshConfig,
    admin: &ApiClient,
    hosts: &[&ClusterHost],
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
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let nets = crate::podnet::wait_pod_cidrs(admin, &names, timeout)?;
    let results = crate::orchestrate::fan_out(hosts, hosts.len(), |h| {
        let _label = label_host(&h.name);
        let r = (|| -> anyhow::Result<bool> {
            let host = connect(ssh, h)?;
            let w = crate::podnet::wanted(&h.name, &nets, &subnet)?;
            let out = crate::podnet::sync(&host, &w, false)?;
            for c in &out.changes {
                crate::phases::report("pod-network", c);
            }
            Ok(out.changed())
        })();
        (h.name.clone(), r)
    });
    let mut changed = 0;
    let mut failed = Vec::new();
    for (name, r) in results {
        match r {
            Ok(c) => changed += usize::from(c),
            Err(e) => failed.push(format!("{name}: {e:#}")),
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("the bridge pod network failed on {}", failed.join("; "));
    }
    Ok(changed)
}

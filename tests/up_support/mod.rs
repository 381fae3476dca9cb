//! What the `up` lab tests share: reading `up`'s summary table, the test double for a
//! finished `init` on node 1, and the cluster's bootstrap tokens and their Secret events.
#![allow(dead_code)]

use crate::cluster_support::ControlPlane;
use kubeboot::apiclient::ApiClient;
use kubeboot::host::{Host, WriteOptions};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One row of `up`'s summary table (src/up.rs `print_summary`), cut at the header's
/// column positions.
#[derive(Debug)]
pub struct Row {
    pub role: String,
    pub prepare: String,
    pub result: String,
}

/// The rows of the last summary table `up` printed, by host.
pub fn summary(log: &str) -> Vec<(String, Row)> {
    let lines: Vec<&str> = log.lines().collect();
    let head = lines
        .iter()
        .rposition(|l| l.starts_with("HOST") && l.contains("PREPARE") && l.ends_with("RESULT"))
        .unwrap_or_else(|| panic!("no summary table in:\n{log}"));
    let h = lines[head];
    let (role, prepare, time, result) = (
        h.find("ROLE").unwrap(),
        h.find("PREPARE").unwrap(),
        h.find("TIME").unwrap(),
        h.find("RESULT").unwrap(),
    );
    lines[head + 1..]
        .iter()
        .take_while(|l| !l.starts_with("total "))
        .map(|l| {
            let col = |a: usize, b: usize| l.get(a..b.min(l.len())).unwrap_or("").trim();
            (
                col(0, role).to_string(),
                Row {
                    role: col(role, prepare).to_string(),
                    prepare: col(prepare, time - 3).to_string(),
                    result: l.get(result..).unwrap_or("").trim().to_string(),
                },
            )
        })
        .collect()
}

pub fn row<'a>(rows: &'a [(String, Row)], host: &str, log: &str) -> &'a Row {
    rows.iter()
        .find(|(h, _)| h == host)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no summary row for {host}:\n{log}"))
}

/// TEST DOUBLE for a finished `init` on node 1: init's last phases run against the
/// control plane on this machine, and what init writes that `up` reads on a re-run
/// (admin.conf) and the cluster PKI, copied from the control plane that runs on
/// this machine instead of as static Pods on the node. Written over SSH with kubeboot's
/// own `SshHost`, with the modes kubeboot gave them (keys 0600).
pub fn make_node_look_initialized(inv: &Path, cp: &ControlPlane) {
    // What init's last phases leave in the cluster, which `up` checks before it takes init
    // as done: kubeadm-config and the cluster-admins binding (upload-config), kube-proxy
    // and CoreDNS (addon); cluster-info comes from the tests' own bootstrap-token phase.
    let cfg = cp.config.to_str().unwrap().to_string();
    cp.ok(&["init", "phase", "upload-config", "all", "--config", &cfg]);
    cp.ok(&["init", "phase", "addon", "all", "--config", &cfg]);
    let cluster = kubeboot::config::cluster::Cluster::load(inv).unwrap();
    let h = &cluster.hosts[0];
    let ssh =
        kubeboot::orchestrate::ssh_config_for(&kubeboot::orchestrate::ssh_config_of(&cluster), h);
    let host = kubeboot::host::SshHost::connect(&h.name, &h.address, &ssh).unwrap();
    let etc = cp.etc("");
    let mut files = vec![cp.etc("admin.conf")];
    let mut dirs = vec![cp.etc("pki")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    for f in files {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        let target = Path::new("/etc/kubernetes").join(f.strip_prefix(&etc).unwrap());
        host.write_file(
            &target,
            &std::fs::read(&f).unwrap(),
            WriteOptions {
                mode,
                dir_mode: 0o755,
                owner: None,
            },
        )
        .unwrap();
    }
}
/// Ids of the bootstrap tokens in the cluster.
pub fn token_ids(admin: &ApiClient) -> Vec<String> {
    kubeboot::token::list(admin)
        .unwrap()
        .iter()
        .map(|t| t.token.id().to_string())
        .collect()
}

pub const SECRETS: &str = "/api/v1/namespaces/kube-system/secrets";

/// The resourceVersion to replay Secret events from (see [`token_events`]).
pub fn secrets_version(admin: &ApiClient) -> String {
    admin.get(SECRETS).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

/// What happened to bootstrap-token Secrets since `rv`: a watch from that resourceVersion
/// replays every event since, so even a token created and deleted within one `up` shows.
/// Returns (event type, Secret name) pairs.
pub fn token_events(admin: &ApiClient, rv: &str) -> Vec<(String, String)> {
    let v = admin
        .get(&format!(
            "{SECRETS}?watch=1&resourceVersion={rv}&timeoutSeconds=2"
        ))
        .unwrap();
    // ApiClient parses one JSON document; a stream of several comes back as text.
    let events: Vec<Value> = match v {
        Value::Null => vec![],
        Value::String(s) => s
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        one => vec![one],
    };
    events
        .iter()
        .inspect(|e| assert_ne!(e["type"], "ERROR", "watch failed: {e}"))
        .filter(|e| e["object"]["type"] == kubeboot::token::SECRET_TYPE)
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

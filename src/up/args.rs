//! `kubeboot up`'s flags, and where its admin kubeconfig goes by default.

use crate::config::cluster::Cluster;
use crate::prepare::PrepareArgs;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// `kubeboot up` flags: the inventory and SSH flags of `prepare`, plus these.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub prepare: PrepareArgs,
    /// How long init waits for the API server to become ready.
    #[arg(long, default_value = "4m", value_parser = parse_duration)]
    pub control_plane_timeout: Duration,
    /// How long each join waits for the kubelet's TLS bootstrap.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub join_timeout: Duration,
    /// Where to write the cluster's admin.conf on this machine
    /// [default: ~/.kube/kubeboot-<cluster name>.conf].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig_out: Option<PathBuf>,
    /// How long `up` waits at the end for every node to be Ready and the addons to roll
    /// out, then reports the cluster's health (why anything is not: image missing on which
    /// node, crash loop with its last log line, unschedulable). `up` fails when a host is
    /// not in the cluster or not Ready; an addon that is not available (CoreDNS without its
    /// image, say) is reported, not fatal. 0s: report without waiting.
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    pub wait: Duration,
    /// Preflight checks whose errors become warnings on every node (names, or `all`).
    #[arg(long, value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::config::duration::GoDuration::parse(s).map(|d| d.0)
}

pub(super) fn default_kubeconfig_out(cluster: &Cluster) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".kube").join(format!(
        "kubeboot-{}.conf",
        if cluster.name.is_empty() {
            "cluster"
        } else {
            &cluster.name
        }
    ))
}

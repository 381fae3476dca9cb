//! Joining further hosts: one short-lived token for the whole run, the shared
//! certificates copied over SSH to further control planes, join's phases over SSH.

use super::args::UpArgs;
use super::hosts::{InventoryFacts, connect, kubelet_diagnostics};
use crate::apiclient::ApiClient;
use crate::config::InitConfig;
use crate::config::cluster::{Cluster, ClusterHost};
use crate::config::join::{JoinConfig, JoinOverrides};
use crate::config::v1beta4::Arg;
use crate::host::{Host, SshConfig};
use crate::phases::{join as join_phases, label_host};
use crate::podnet::ahead;
use crate::token::{BootstrapToken, TokenInfo};
use anyhow::Context;
use std::time::Duration;

/// The join token of one `up`: created when the first host that is not yet joined needs
/// it, so that a re-run with nothing to join writes nothing to the cluster (no token
/// Secret, no cluster-info signature for it); deleted when `up` ends.
pub(super) struct JoinToken<'a> {
    admin: &'a ApiClient,
    created: std::sync::Mutex<Option<BootstrapToken>>,
}

impl<'a> JoinToken<'a> {
    pub(super) fn new(admin: &'a ApiClient) -> Self {
        JoinToken {
            admin,
            created: std::sync::Mutex::new(None),
        }
    }

    /// The token, created with a 30-minute expiry on first use.
    fn get(&self) -> anyhow::Result<BootstrapToken> {
        let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = created.as_ref() {
            return Ok(t.clone());
        }
        let token = BootstrapToken::generate();
        crate::token::create(
            self.admin,
            &TokenInfo {
                token: token.clone(),
                description: "kubeboot up: joins nodes; deleted when up ends".into(),
                expires: Some(time::OffsetDateTime::now_utc() + time::Duration::minutes(30)),
                usages: vec!["signing".into(), "authentication".into()],
                groups: vec![crate::token::DEFAULT_GROUP.into()],
            },
        )
        .context("creating the join token")?;
        // Signed here, not by the controller-manager some seconds later: joins start now.
        crate::discovery::sign_cluster_info(self.admin, token.id(), token.secret())
            .context("signing cluster-info for the join token")?;
        *created = Some(token.clone());
        Ok(token)
    }

    /// Deletes the token if one was created.
    pub(super) fn delete(self) {
        let created = self.created.into_inner().unwrap_or_else(|e| e.into_inner());
        let Some(token) = created else { return };
        if let Err(e) = crate::token::delete(self.admin, token.id()) {
            eprintln!(
                "warning: could not delete the join token {}: {e}",
                token.id()
            );
        }
        if let Err(e) = crate::discovery::unsign_cluster_info(self.admin, token.id()) {
            eprintln!(
                "warning: could not remove the join token's signature {} from cluster-info: {e}",
                crate::discovery::signature_key(token.id())
            );
        }
    }
}

/// How a host joins: as a worker, or as a control plane with the shared certificates
/// copied from the first control plane's host.
pub(super) enum JoinAs<'a> {
    Worker,
    ControlPlane {
        first: &'a dyn Host,
        first_cfg: &'a InitConfig,
    },
}

/// What every joining host gets: where to join, the token, the CA pin and the
/// inventory's kubelet flags.
pub(super) struct JoinWith<'a> {
    pub(super) endpoint: &'a str,
    pub(super) token: &'a JoinToken<'a>,
    pub(super) ca_hash: &'a str,
    pub(super) kubelet_args: &'a [Arg],
    /// The inventory's CNI, whose images joining nodes need.
    pub(super) cni: &'a str,
    /// The cluster's admin client: workers' Nodes are registered ahead with it.
    pub(super) admin: &'a ApiClient,
}

pub(super) fn join_host(
    args: &UpArgs,
    cluster_ssh: &SshConfig,
    h: &ClusterHost,
    with: &JoinWith,
    how: JoinAs,
    resume: bool,
) -> anyhow::Result<String> {
    let JoinWith {
        endpoint,
        token,
        ca_hash,
        kubelet_args: cluster_kubelet_args,
        cni,
        admin,
    } = *with;
    let _label = label_host(&h.name);
    let host = connect(cluster_ssh, h)?;
    let is_cp = matches!(how, JoinAs::ControlPlane { .. });
    if let JoinAs::ControlPlane { first, first_cfg } = &how {
        let files = crate::copycerts::read_shared(*first, first_cfg)
            .context("reading the shared certificates from the first control plane")?;
        let written = crate::copycerts::write_shared(&host, &first_cfg.cert_dir, &files)?;
        crate::phases::report(
            "copy-certs",
            &format!(
                "Copied {} shared certificate and key files from {} over SSH ({} already in place)",
                written
                    .iter()
                    .filter(|w| matches!(w, crate::copycerts::Written::Created(_)))
                    .count(),
                first.name(),
                written
                    .iter()
                    .filter(|w| matches!(w, crate::copycerts::Written::Kept(_)))
                    .count()
            ),
        );
    }
    let o = JoinOverrides {
        endpoint: Some(endpoint.to_string()),
        token: Some(token.get()?.to_string().into()),
        ca_cert_hashes: vec![ca_hash.to_string()],
        node_name: Some(h.name.clone()),
        discovery_timeout: Some(Duration::from_secs(120)),
        control_plane: is_cp,
        apiserver_advertise_address: is_cp.then(|| h.cluster_address()),
        ..Default::default()
    };
    let mut cfg = JoinConfig::load(None, &o, &InventoryFacts)?;
    cfg.tls_bootstrap_timeout = args.join_timeout;
    cfg.join
        .node_registration
        .kubelet_extra_args
        .extend(cluster_kubelet_args.iter().cloned());
    if let Some(ip) = h.node_ip {
        cfg.join.node_registration.kubelet_extra_args.push(Arg {
            name: "node-ip".into(),
            value: ip.to_string(),
        });
    }
    let ctx = join_phases::JoinContext {
        cfg: &cfg,
        host: &host,
        local: &InventoryFacts,
        skip: if resume {
            // A control plane whose kubelet joined in an earlier run that stopped later.
            vec!["preflight".into()]
        } else {
            vec![]
        },
        ignore_preflight_errors: args.ignore_preflight_errors.clone(),
        containerd: Default::default(),
        cni: Some(cni.to_string()),
    };
    let registered_ahead = !is_cp
        && cni == "bridge"
        && ahead::register(admin, &h.name)
            .with_context(|| format!("registering the Node {} ahead of its kubelet", h.name))?;
    if registered_ahead {
        crate::phases::report(
            "register-ahead",
            &format!(
                "Node {} registered ahead of its kubelet (room for no Pods until it reports), so its pod network is written before the kubelet starts",
                h.name
            ),
        );
    }
    match join_phases::run(&ctx) {
        Ok(j) => Ok(format!(
            "joined{} in {:.1}s",
            if is_cp { " as a control plane" } else { "" },
            j.took.as_secs_f64()
        )),
        Err(e) => {
            let diag = kubelet_diagnostics(&host);
            crate::phases::report(
                "join",
                &format!("FAILED: {e:#}\nwhat the node says:\n{}", diag.trim_end()),
            );
            if registered_ahead {
                match ahead::unregister(admin, &h.name) {
                    Ok(true) => crate::phases::report(
                        "register-ahead",
                        &format!("Node {} deleted again: its kubelet never reported", h.name),
                    ),
                    Ok(false) => {}
                    Err(d) => crate::phases::report(
                        "register-ahead",
                        &format!(
                            "could not delete the Node {} registered ahead: {d:#}; delete it with `kubectl delete node {}`",
                            h.name, h.name
                        ),
                    ),
                }
            }
            Err(e)
        }
    }
}

/// Where joining nodes find the API server: `controlPlaneEndpoint`, else the first
/// control plane's address on the default port.
pub(super) fn join_endpoint(cluster: &Cluster, cp: &ClusterHost) -> String {
    cluster
        .networking
        .control_plane_endpoint
        .clone()
        .unwrap_or_else(|| {
            crate::render::join_host_port(&cp.cluster_address(), crate::config::DEFAULT_BIND_PORT)
        })
}

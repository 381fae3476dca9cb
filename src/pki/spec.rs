//! The cluster's certificates as data: one row per certificate, as kubeadm's certlist.
//! Generation, validation, expiry listing and renewal all read this table.

use super::cert::{CertRequest, Usage};
use crate::config::InitConfig;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use time::OffsetDateTime;

/// How a certificate's Common Name is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommonName {
    Fixed(&'static str),
    /// The node name (etcd server and peer).
    NodeName,
}

/// Which default SANs a certificate gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sans {
    None,
    /// CAs carry their own CN as DNS name (Go's `NewSelfSignedCACert`).
    OwnName,
    ApiServer,
    EtcdServer,
    EtcdPeer,
}

/// One certificate of the cluster PKI.
#[derive(Debug, Clone, Copy)]
pub struct CertSpec {
    /// kubeadm's name of it (`init phase certs <name>`, `certs renew <name>`).
    pub name: &'static str,
    /// File base name under the cert dir (`etcd/server` for `etcd/server.crt|key`).
    pub base: &'static str,
    /// The CA that signs it; `None` for a CA.
    pub ca: Option<&'static str>,
    pub cn: CommonName,
    pub orgs: &'static [&'static str],
    pub sans: Sans,
    pub usages: &'static [Usage],
    /// kubeadm's description, shown in help and messages.
    pub description: &'static str,
    /// Only needed with a local (stacked) etcd.
    pub etcd: bool,
}

use CommonName::*;
use Usage::*;

/// Every certificate, in kubeadm's generation order (CA before the certs it signs).
pub const CERTS: &[CertSpec] = &[
    CertSpec {
        name: "ca",
        base: "ca",
        ca: None,
        cn: Fixed("kubernetes"),
        orgs: &[],
        sans: Sans::OwnName,
        usages: &[],
        description: "self-signed Kubernetes CA to provision identities for other Kubernetes components",
        etcd: false,
    },
    CertSpec {
        name: "apiserver",
        base: "apiserver",
        ca: Some("ca"),
        cn: Fixed("kube-apiserver"),
        orgs: &[],
        sans: Sans::ApiServer,
        usages: &[ServerAuth],
        description: "certificate for serving the Kubernetes API",
        etcd: false,
    },
    CertSpec {
        name: "apiserver-kubelet-client",
        base: "apiserver-kubelet-client",
        ca: Some("ca"),
        cn: Fixed("kube-apiserver-kubelet-client"),
        orgs: &["kubeadm:cluster-admins"],
        sans: Sans::None,
        usages: &[ClientAuth],
        description: "certificate for the API server to connect to kubelet",
        etcd: false,
    },
    CertSpec {
        name: "front-proxy-ca",
        base: "front-proxy-ca",
        ca: None,
        cn: Fixed("front-proxy-ca"),
        orgs: &[],
        sans: Sans::OwnName,
        usages: &[],
        description: "self-signed CA to provision identities for front proxy",
        etcd: false,
    },
    CertSpec {
        name: "front-proxy-client",
        base: "front-proxy-client",
        ca: Some("front-proxy-ca"),
        cn: Fixed("front-proxy-client"),
        orgs: &[],
        sans: Sans::None,
        usages: &[ClientAuth],
        description: "certificate for the front proxy client",
        etcd: false,
    },
    CertSpec {
        name: "etcd-ca",
        base: "etcd/ca",
        ca: None,
        cn: Fixed("etcd-ca"),
        orgs: &[],
        sans: Sans::OwnName,
        usages: &[],
        description: "self-signed CA to provision identities for etcd",
        etcd: true,
    },
    CertSpec {
        name: "etcd-server",
        base: "etcd/server",
        ca: Some("etcd-ca"),
        cn: NodeName,
        orgs: &[],
        sans: Sans::EtcdServer,
        usages: &[ServerAuth, ClientAuth],
        description: "certificate for serving etcd",
        etcd: true,
    },
    CertSpec {
        name: "etcd-peer",
        base: "etcd/peer",
        ca: Some("etcd-ca"),
        cn: NodeName,
        orgs: &[],
        sans: Sans::EtcdPeer,
        usages: &[ServerAuth, ClientAuth],
        description: "certificate for etcd nodes to communicate with each other",
        etcd: true,
    },
    CertSpec {
        name: "etcd-healthcheck-client",
        base: "etcd/healthcheck-client",
        ca: Some("etcd-ca"),
        cn: Fixed("kube-etcd-healthcheck-client"),
        orgs: &[],
        sans: Sans::None,
        usages: &[ClientAuth],
        description: "certificate for liveness probes to healthcheck etcd",
        etcd: true,
    },
    CertSpec {
        name: "apiserver-etcd-client",
        base: "apiserver-etcd-client",
        ca: Some("etcd-ca"),
        cn: Fixed("kube-apiserver-etcd-client"),
        orgs: &[],
        sans: Sans::None,
        usages: &[ClientAuth],
        description: "certificate the apiserver uses to access etcd",
        etcd: true,
    },
];

/// The row for a kubeadm certificate name.
pub fn find(name: &str) -> Option<&'static CertSpec> {
    CERTS.iter().find(|c| c.name == name)
}

/// The certificates this configuration needs (etcd ones only with a local etcd).
pub fn needed(cfg: &InitConfig) -> impl Iterator<Item = &'static CertSpec> + '_ {
    CERTS
        .iter()
        .filter(move |c| !c.etcd || cfg.local_etcd().is_some())
}

/// kubeadm backdates NotBefore by 5 minutes to tolerate small clock skew.
pub const BACKDATE: time::Duration = time::Duration::minutes(5);

impl CertSpec {
    /// Whether this row is a CA.
    pub fn is_ca(&self) -> bool {
        self.ca.is_none()
    }

    /// The certificate this configuration asks for, valid from `now - 5min`.
    pub fn request(&self, cfg: &InitConfig, now: OffsetDateTime) -> CertRequest {
        let cn = match self.cn {
            Fixed(s) => s.to_string(),
            NodeName => cfg.node_name.clone(),
        };
        let (mut dns, mut ips): (Vec<String>, Vec<IpAddr>) = match self.sans {
            Sans::None => (vec![], vec![]),
            Sans::OwnName => (vec![cn.clone()], vec![]),
            Sans::ApiServer => {
                let mut dns = vec![
                    cfg.node_name.clone(),
                    "kubernetes".into(),
                    "kubernetes.default".into(),
                    "kubernetes.default.svc".into(),
                    format!("kubernetes.default.svc.{}", cfg.dns_domain),
                ];
                let mut ips = vec![cfg.api_server_service_ip(), cfg.advertise_address];
                if let Some(ep) = &cfg.control_plane_endpoint {
                    match ep.host.parse::<IpAddr>() {
                        Ok(ip) => ips.push(ip),
                        Err(_) => dns.push(ep.host.clone()),
                    }
                }
                (dns, ips)
            }
            Sans::EtcdServer | Sans::EtcdPeer => (
                vec![cfg.node_name.clone(), "localhost".into()],
                vec![
                    cfg.advertise_address,
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ],
            ),
        };
        let extra: &[String] = match self.sans {
            Sans::ApiServer => &cfg.cluster.api_server.cert_sans,
            Sans::EtcdServer => cfg
                .local_etcd()
                .map(|e| e.server_cert_sans.as_slice())
                .unwrap_or_default(),
            Sans::EtcdPeer => cfg
                .local_etcd()
                .map(|e| e.peer_cert_sans.as_slice())
                .unwrap_or_default(),
            _ => &[],
        };
        for san in extra {
            match san.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => dns.push(san.clone()),
            }
        }
        let validity = if self.is_ca() {
            cfg.ca_validity
        } else {
            cfg.cert_validity
        };
        let mut req = CertRequest {
            cn,
            orgs: self.orgs.iter().map(|s| s.to_string()).collect(),
            dns,
            ips,
            usages: self.usages.to_vec(),
            is_ca: self.is_ca(),
            not_before: now - BACKDATE,
            not_after: now + validity,
        };
        req.normalize_sans();
        req
    }
}

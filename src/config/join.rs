//! `kubeboot join`: kubeadm's `JoinConfiguration` (v1beta4) and flags in, one validated
//! [`JoinConfig`] out; and the configuration of the joining node once the cluster's own
//! `ClusterConfiguration` is known.

use super::v1beta4::{JoinConfiguration, NodeRegistration};
use super::{ConfigError, ConfigFiles, FieldError, InitConfig, InitOverrides, LocalFacts, network};
use crate::secret::Secret;
use crate::token::value::BootstrapToken;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// kubeadm's default discovery timeout.
pub const DEFAULT_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(300);
/// kubeadm's default TLS bootstrap timeout.
pub const DEFAULT_TLS_BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(300);

/// Flags of `kubeboot join`; each wins over the config file. The tokens and the
/// certificate key are [`Secret`]s: `Debug` redacts them.
#[derive(Debug, Clone, Default)]
pub struct JoinOverrides {
    pub endpoint: Option<String>,
    pub token: Option<Secret>,
    /// `--discovery-token`: the token for discovery only (wins over `--token` there).
    pub discovery_token: Option<Secret>,
    /// `--tls-bootstrap-token`: the token for the kubelet's TLS bootstrap only.
    pub tls_bootstrap_token: Option<Secret>,
    pub ca_cert_hashes: Vec<String>,
    pub unsafe_skip_ca_verification: bool,
    pub discovery_file: Option<String>,
    pub node_name: Option<String>,
    pub cri_socket: Option<String>,
    pub discovery_timeout: Option<Duration>,
    /// `--control-plane`: this node becomes another control plane.
    pub control_plane: bool,
    /// `--certificate-key`: decrypts the shared certificates uploaded by `upload-certs`.
    pub certificate_key: Option<Secret>,
    /// `--apiserver-advertise-address` of a joining control plane.
    pub apiserver_advertise_address: Option<String>,
    /// `--apiserver-bind-port` of a joining control plane.
    pub apiserver_bind_port: Option<u16>,
}

/// What a joining control plane serves, and how it gets the shared certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneJoin {
    /// `localAPIEndpoint.advertiseAddress`; `None` = the kubelet's node IP, else this
    /// machine's default address.
    pub advertise_address: Option<std::net::IpAddr>,
    pub bind_port: u16,
    /// The validated `certificateKey` (64 hex digits), if the certificates are to be
    /// downloaded from the `kubeadm-certs` Secret.
    pub certificate_key: Option<Secret>,
}

/// How the joining node finds and trusts the cluster.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// Token discovery: fetch cluster-info from `endpoint`, check its JWS with the token
    /// and the CA against the pins (unless explicitly skipped).
    Token {
        endpoint: String,
        token: BootstrapToken,
        ca_cert_hashes: Vec<String>,
        unsafe_skip_ca_verification: bool,
    },
    /// A kubeconfig file (or HTTPS URL) with the cluster's server and CA; the TLS
    /// bootstrap token comes from `tlsBootstrapToken` / `--token`.
    File { path: String, token: BootstrapToken },
}

/// A validated join configuration.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    pub join: JoinConfiguration,
    pub node_name: String,
    pub discovery: Discovery,
    pub discovery_timeout: Duration,
    pub tls_bootstrap_timeout: Duration,
    /// Set when joining as a control plane.
    pub control_plane: Option<ControlPlaneJoin>,
    /// Where `join.skip_phases` was written (`FILE:LINE: skipPhases`), for the error that
    /// names a phase join does not have.
    pub skip_phases_origin: Option<String>,
}

impl JoinConfig {
    /// Reads `--config` (a JoinConfiguration) if given and applies the flags.
    pub fn load(
        path: Option<&Path>,
        o: &JoinOverrides,
        local: &dyn LocalFacts,
    ) -> Result<JoinConfig, ConfigError> {
        let mut files = ConfigFiles::default();
        if let Some(p) = path {
            files = ConfigFiles::read(p)?;
        }
        Self::resolve(files, path, o, local)
    }

    /// [`JoinConfig::load`] for config text already read; `path` names it in errors.
    /// Public so the fuzz targets and their stable regression tests reach the same code.
    pub fn parse(
        path: &Path,
        text: &str,
        o: &JoinOverrides,
        local: &dyn LocalFacts,
    ) -> Result<JoinConfig, ConfigError> {
        Self::resolve(ConfigFiles::parse(path, text)?, Some(path), o, local)
    }

    fn resolve(
        files: ConfigFiles,
        path: Option<&Path>,
        o: &JoinOverrides,
        local: &dyn LocalFacts,
    ) -> Result<JoinConfig, ConfigError> {
        let (doc, mut join) = match files.join {
            Some((d, j)) => (Some(d), j),
            None => {
                if let Some(p) = path {
                    // kubeadm too: a join config without the join kind is a wrong file.
                    return Err(ConfigError::Invalid(vec![FieldError {
                        origin: p.display().to_string(),
                        field: "kind".into(),
                        message: "no JoinConfiguration document: `join --config` reads a kubeadm.k8s.io/v1beta4 JoinConfiguration".into(),
                    }]));
                }
                (None, JoinConfiguration::default())
            }
        };
        let mut errors = Vec::new();
        let mut problem = |field: &str, flag: Option<&str>, message: String| {
            let origin = match (flag, &doc) {
                (Some(f), _) => format!("flag --{f}"),
                (None, Some(d)) => {
                    let path: Vec<&str> = field.split('.').collect();
                    match d.line_of(&path) {
                        Some(l) => format!("{}:{l}", d.file.display()),
                        None => d.file.display().to_string(),
                    }
                }
                (None, None) => "command line".into(),
            };
            errors.push(FieldError {
                origin,
                field: field.into(),
                message,
            });
        };
        join.api_version = Some(super::v1beta4::API_VERSION.into());
        join.kind = Some("JoinConfiguration".into());
        if let Some(n) = &o.node_name {
            join.node_registration.name = Some(n.clone());
        }
        if let Some(c) = &o.cri_socket {
            join.node_registration.cri_socket = Some(c.clone());
        }
        if join.node_registration.name.is_none() {
            join.node_registration.name = local.hostname().map(|h| h.to_lowercase());
        }
        join.node_registration
            .cri_socket
            .get_or_insert_with(|| super::DEFAULT_CRI_SOCKET.into());
        if o.control_plane
            || o.certificate_key.is_some()
            || o.apiserver_advertise_address.is_some()
            || o.apiserver_bind_port.is_some()
        {
            let cp = join.control_plane.get_or_insert_with(Default::default);
            if let Some(k) = &o.certificate_key {
                cp.certificate_key = Some(k.clone());
            }
            if let Some(a) = &o.apiserver_advertise_address {
                cp.local_api_endpoint.advertise_address = Some(a.clone());
            }
            if let Some(p) = o.apiserver_bind_port {
                cp.local_api_endpoint.bind_port = Some(p);
            }
        }
        let control_plane = match join.control_plane.clone() {
            None => None,
            Some(cp) => {
                let mut advertise = None;
                if let Some(a) = cp
                    .local_api_endpoint
                    .advertise_address
                    .as_deref()
                    .filter(|a| !a.is_empty())
                {
                    match a.parse::<std::net::IpAddr>() {
                        Ok(ip) if !ip.is_unspecified() => advertise = Some(ip),
                        _ => problem(
                            "controlPlane.localAPIEndpoint.advertiseAddress",
                            o.apiserver_advertise_address
                                .as_ref()
                                .map(|_| "apiserver-advertise-address"),
                            format!(
                                "{a:?} is not a usable IP address for this API server to advertise"
                            ),
                        ),
                    }
                }
                let bind_port = cp
                    .local_api_endpoint
                    .bind_port
                    .unwrap_or(super::DEFAULT_BIND_PORT);
                if bind_port == 0 {
                    problem(
                        "controlPlane.localAPIEndpoint.bindPort",
                        o.apiserver_bind_port.map(|_| "apiserver-bind-port"),
                        "the port must be between 1 and 65535".into(),
                    );
                }
                if let Some(k) = &cp.certificate_key
                    && let Err(e) = crate::copycerts::parse_certificate_key(k.expose())
                {
                    problem(
                        "controlPlane.certificateKey",
                        o.certificate_key.as_ref().map(|_| "certificate-key"),
                        e.to_string(),
                    );
                }
                Some(ControlPlaneJoin {
                    advertise_address: advertise,
                    bind_port,
                    certificate_key: cp.certificate_key.clone(),
                })
            }
        };
        if join.node_registration.taints.is_none() && join.control_plane.is_none() {
            join.node_registration.taints = Some(vec![]);
        }
        let node_name = join.node_registration.name.clone().unwrap_or_default();
        if !network::is_dns1123_subdomain(&node_name) {
            problem(
                "nodeRegistration.name",
                o.node_name.as_ref().map(|_| "node-name"),
                format!(
                    "{node_name:?} is not a valid node name (DNS-1123 subdomain); pass --node-name"
                ),
            );
        }
        let bt = join
            .discovery
            .bootstrap_token
            .get_or_insert_with(Default::default);
        if let Some(e) = &o.endpoint {
            bt.api_server_endpoint = Some(e.clone());
        }
        let token_flag = match &o.token {
            Some(t) => match BootstrapToken::parse(t.expose()) {
                Ok(t) => Some(t),
                Err(e) => {
                    problem(
                        "discovery.bootstrapToken.token",
                        Some("token"),
                        e.to_string(),
                    );
                    None
                }
            },
            None => None,
        };
        if let Some(t) = &token_flag {
            bt.token = Some(t.clone());
            if join.discovery.tls_bootstrap_token.is_none() {
                join.discovery.tls_bootstrap_token = Some(t.clone());
            }
        }
        // kubeadm's --discovery-token and --tls-bootstrap-token: one use each, and each
        // wins over --token for its use.
        let mut parse_flag = |value: &Option<Secret>, field: &str, flag: &str| {
            value
                .as_ref()
                .and_then(|t| match BootstrapToken::parse(t.expose()) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        problem(field, Some(flag), e.to_string());
                        None
                    }
                })
        };
        let discovery_flag = parse_flag(
            &o.discovery_token,
            "discovery.bootstrapToken.token",
            "discovery-token",
        );
        let tls_flag = parse_flag(
            &o.tls_bootstrap_token,
            "discovery.tlsBootstrapToken",
            "tls-bootstrap-token",
        );
        if let Some(t) = discovery_flag {
            bt.token = Some(t);
        }
        if let Some(t) = tls_flag {
            join.discovery.tls_bootstrap_token = Some(t);
        }
        bt.ca_cert_hashes.extend(o.ca_cert_hashes.iter().cloned());
        bt.unsafe_skip_ca_verification |= o.unsafe_skip_ca_verification;
        for h in &bt.ca_cert_hashes {
            if let Err(e) = crate::discovery::parse_pin(h) {
                problem(
                    "discovery.bootstrapToken.caCertHashes",
                    (!o.ca_cert_hashes.is_empty()).then_some("discovery-token-ca-cert-hash"),
                    e.to_string(),
                );
            }
        }
        if let Some(f) = &o.discovery_file {
            join.discovery.file = Some(super::v1beta4::FileDiscovery {
                kube_config_path: f.clone(),
            });
        }
        let bt = join.discovery.bootstrap_token.clone().unwrap_or_default();
        let discovery = if let Some(file) = &join.discovery.file {
            match join
                .discovery
                .tls_bootstrap_token
                .clone()
                .or(bt.token.clone())
            {
                Some(token) => Some(Discovery::File {
                    path: file.kube_config_path.clone(),
                    token,
                }),
                None => {
                    problem(
                        "discovery.tlsBootstrapToken",
                        Some("token"),
                        "file discovery needs a bootstrap token for the TLS bootstrap; pass --token".into(),
                    );
                    None
                }
            }
        } else {
            let endpoint = bt.api_server_endpoint.clone().unwrap_or_default();
            if endpoint.is_empty() {
                problem(
                    "discovery.bootstrapToken.apiServerEndpoint",
                    None,
                    "no API server endpoint: give it as `kubeboot join <host:port>`".into(),
                );
            } else if let Err(m) = network::parse_endpoint(&endpoint, super::DEFAULT_BIND_PORT) {
                problem("discovery.bootstrapToken.apiServerEndpoint", None, m);
            }
            if bt.token.is_none()
                && token_flag.is_none()
                && o.token.is_none()
                && o.discovery_token.is_none()
            {
                problem(
                    "discovery.bootstrapToken.token",
                    Some("token"),
                    "a bootstrap token is required: pass --token (see `kubeboot token create --print-join-command`)".into(),
                );
            }
            if bt.ca_cert_hashes.is_empty() && !bt.unsafe_skip_ca_verification {
                problem(
                    "discovery.bootstrapToken.caCertHashes",
                    Some("discovery-token-ca-cert-hash"),
                    "token discovery needs the CA hash to trust the cluster: pass --discovery-token-ca-cert-hash sha256:<hex> (from `kubeboot certs ca-hash`), or explicitly --discovery-token-unsafe-skip-ca-verification".into(),
                );
            }
            bt.token.clone().map(|token| Discovery::Token {
                endpoint: endpoint.clone(),
                token,
                ca_cert_hashes: bt.ca_cert_hashes.clone(),
                unsafe_skip_ca_verification: bt.unsafe_skip_ca_verification,
            })
        };
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors));
        }
        let t = join.timeouts.clone().unwrap_or_default();
        let skip_phases_origin = doc.as_ref().map(|d| d.origin_of(&["skipPhases"]));
        Ok(JoinConfig {
            skip_phases_origin,
            discovery_timeout: o
                .discovery_timeout
                .or(t.discovery.map(|d| d.0))
                .unwrap_or(DEFAULT_DISCOVERY_TIMEOUT),
            tls_bootstrap_timeout: t
                .tls_bootstrap
                .map(|d| d.0)
                .unwrap_or(DEFAULT_TLS_BOOTSTRAP_TIMEOUT),
            node_name,
            discovery: discovery.expect("validated"),
            join,
            control_plane,
        })
    }

    /// This node's configuration in the cluster: the cluster's `ClusterConfiguration`
    /// (from the `kubeadm-config` ConfigMap) with this node's registration.
    pub fn node_config(
        &self,
        cluster_configuration_yaml: &str,
        local: &dyn LocalFacts,
    ) -> Result<InitConfig, ConfigError> {
        let origin = PathBuf::from("ConfigMap kube-system/kubeadm-config");
        let mut files = ConfigFiles::parse(&origin, cluster_configuration_yaml)?;
        let init = super::v1beta4::InitConfiguration {
            node_registration: NodeRegistration {
                taints: self.join.node_registration.taints.clone(),
                ..self.join.node_registration.clone()
            },
            bootstrap_tokens: vec![],
            ..Default::default()
        };
        let doc = super::documents::Document {
            file: PathBuf::from("JoinConfiguration"),
            first_line: 1,
            text: String::new(),
        };
        files.init = Some((doc, init));
        // A worker serves no API; its "advertise address" only has to be valid. A control
        // plane advertises `localAPIEndpoint` when given. Otherwise: the kubelet's node IP
        // when given, else this machine's default address.
        let node_ip = self
            .join
            .node_registration
            .kubelet_extra_args
            .iter()
            .find(|a| a.name == "node-ip")
            .map(|a| a.value.clone());
        let cp_address = self
            .control_plane
            .as_ref()
            .and_then(|c| c.advertise_address)
            .map(|a| a.to_string());
        let advertise = cp_address
            .or(node_ip)
            .or_else(|| local.default_address().map(|a| a.to_string()))
            .unwrap_or_else(|| "127.0.0.1".into());
        let o = InitOverrides {
            node_name: Some(self.node_name.clone()),
            advertise_address: Some(advertise),
            bind_port: self.control_plane.as_ref().map(|c| c.bind_port),
            ..Default::default()
        };
        super::resolve_init(files, &o, local)
    }
}

//! kubeconfig files: kubeadm's users, groups, server addresses and naming, written with
//! embedded certificate data; and the checks that keep re-runs idempotent.

use crate::config::InitConfig;
use crate::host::{Host, WriteOptions};
use crate::pki::{self, Certificate, PkiError, PrivateKey, Usage};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// A kubeconfig file (`apiVersion: v1`, `kind: Config`). Fields are in the order kubectl
/// and kubeadm write them (alphabetical).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubeConfig {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub preferences: serde_json::Map<String, serde_json::Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub users: Vec<NamedUser>,
}

/// client-go writes an empty list as `null`: kubeadm's cluster-info kubeconfig holds
/// `contexts: null` and `users: null`. Read that as empty.
fn null_as_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    pub cluster: Cluster,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub certificate_authority_data: String,
    pub server: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    pub context: Context,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub cluster: String,
    pub user: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    pub user: User,
}

/// Credentials. `Debug` is derived on purpose-free data only via redaction below.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub client_certificate_data: String,
    #[serde(
        rename = "client-key-data",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub client_key_data: String,
    #[serde(
        rename = "client-certificate",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub client_certificate: String,
    #[serde(
        rename = "client-key",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub client_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field(
                "client_certificate_data",
                &!self.client_certificate_data.is_empty(),
            )
            .field("client_key_data", &"<redacted>")
            .field("token", &"<redacted>")
            .finish()
    }
}

impl KubeConfig {
    /// A kubeconfig with one cluster, one user and one current context
    /// `<user>@<cluster>`, as kubeadm's `CreateBasic`.
    pub fn basic(
        server: &str,
        cluster_name: &str,
        user_name: &str,
        ca_pem: &str,
        user: User,
    ) -> Self {
        let context = format!("{user_name}@{cluster_name}");
        KubeConfig {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: cluster_name.into(),
                cluster: Cluster {
                    server: server.into(),
                    certificate_authority_data: B64.encode(ca_pem),
                },
            }],
            contexts: vec![NamedContext {
                name: context.clone(),
                context: Context {
                    cluster: cluster_name.into(),
                    user: user_name.into(),
                },
            }],
            current_context: context,
            preferences: Default::default(),
            users: vec![NamedUser {
                name: user_name.into(),
                user,
            }],
        }
    }

    /// Parses a kubeconfig file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        crate::config::yaml_input::from_str(text).map_err(|p| match p.location {
            Some((line, column)) => format!("line {line}, column {column}: {p}"),
            None => p.to_string(),
        })
    }

    /// The YAML text.
    pub fn to_yaml(&self) -> String {
        crate::yaml::to_string(self).expect("kubeconfig serializes")
    }

    /// The CA certificate of the current context's cluster.
    pub fn ca_cert(&self) -> Option<Certificate> {
        let c = self.current_cluster()?;
        let pem = B64.decode(&c.certificate_authority_data).ok()?;
        Certificate::from_pem(&pem).ok()
    }

    /// The current context's cluster.
    pub fn current_cluster(&self) -> Option<&Cluster> {
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)?;
        self.clusters
            .iter()
            .find(|c| c.name == ctx.context.cluster)
            .map(|c| &c.cluster)
    }

    /// The current context's user.
    pub fn current_user(&self) -> Option<&User> {
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)?;
        self.users
            .iter()
            .find(|u| u.name == ctx.context.user)
            .map(|u| &u.user)
    }

    /// The embedded client certificate and key of the current user.
    pub fn client_pair(&self) -> Option<(Certificate, PrivateKey)> {
        let u = self.current_user()?;
        let cert = Certificate::from_pem(&B64.decode(&u.client_certificate_data).ok()?).ok()?;
        let key_pem = String::from_utf8(B64.decode(&u.client_key_data).ok()?).ok()?;
        let key = PrivateKey::from_pem(&key_pem).ok()?;
        Some((cert, key))
    }
}

/// Which API server address a kubeconfig points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `controlPlaneEndpoint`, else this node's API server.
    Cluster,
    /// This node's own API server (controller-manager, scheduler).
    Local,
}

/// One kubeconfig kubeadm writes at init.
#[derive(Debug, Clone, Copy)]
pub struct KubeconfigSpec {
    /// Phase name (`init phase kubeconfig <name>`).
    pub name: &'static str,
    pub file: &'static str,
    /// The user, `{node}` replaced by the node name.
    pub user: &'static str,
    pub orgs: &'static [&'static str],
    pub server: Server,
    /// Listed by `certs check-expiration` and renewable (kubelet.conf rotates itself).
    pub renewable: bool,
}

/// kubeadm's kubeconfigs, in its order.
pub const KUBECONFIGS: &[KubeconfigSpec] = &[
    KubeconfigSpec {
        name: "admin",
        file: "admin.conf",
        user: "kubernetes-admin",
        orgs: &["kubeadm:cluster-admins"],
        server: Server::Cluster,
        renewable: true,
    },
    KubeconfigSpec {
        name: "super-admin",
        file: "super-admin.conf",
        user: "kubernetes-super-admin",
        orgs: &["system:masters"],
        server: Server::Cluster,
        renewable: true,
    },
    KubeconfigSpec {
        name: "kubelet",
        file: "kubelet.conf",
        user: "system:node:{node}",
        orgs: &["system:nodes"],
        server: Server::Cluster,
        renewable: false,
    },
    KubeconfigSpec {
        name: "controller-manager",
        file: "controller-manager.conf",
        user: "system:kube-controller-manager",
        orgs: &[],
        server: Server::Local,
        renewable: true,
    },
    KubeconfigSpec {
        name: "scheduler",
        file: "scheduler.conf",
        user: "system:kube-scheduler",
        orgs: &[],
        server: Server::Local,
        renewable: true,
    },
];

/// What happened to one kubeconfig file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigAction {
    Written,
    Kept,
    /// Kept, but its server differs from the configuration (a warning, as kubeadm).
    KeptDifferentServer {
        found: String,
        expected: String,
    },
}

/// The outcome for one file.
#[derive(Debug, Clone)]
pub struct KubeconfigOutcome {
    pub file: &'static str,
    pub path: PathBuf,
    pub action: KubeconfigAction,
}

impl KubeconfigOutcome {
    /// The line kubeadm prints.
    pub fn message(&self) -> String {
        match &self.action {
            KubeconfigAction::Written => format!("Writing \"{}\" kubeconfig file", self.file),
            KubeconfigAction::Kept => format!(
                "Using existing kubeconfig file: \"{}\"",
                self.path.display()
            ),
            KubeconfigAction::KeptDifferentServer { found, expected } => format!(
                "WARNING: Using existing kubeconfig file \"{}\" whose server {found} differs from the expected {expected}",
                self.path.display()
            ),
        }
    }
}

/// Finds a kubeconfig spec by phase name.
pub fn find(name: &str) -> Option<&'static KubeconfigSpec> {
    KUBECONFIGS
        .iter()
        .find(|k| k.name == name || k.file == name)
}

fn server_url(cfg: &InitConfig, s: Server) -> String {
    match s {
        Server::Cluster => cfg.cluster_url(),
        Server::Local => cfg.local_endpoint().url(),
    }
}

fn client_user(
    cert_ca: (&Certificate, &PrivateKey),
    cn: &str,
    orgs: &[&str],
    cfg_validity: Duration,
    algorithm: crate::config::EncryptionAlgorithm,
) -> Result<User, PkiError> {
    let now = OffsetDateTime::now_utc();
    let req = pki::CertRequest {
        cn: cn.into(),
        orgs: orgs.iter().map(|s| s.to_string()).collect(),
        dns: vec![],
        ips: vec![],
        usages: vec![Usage::ClientAuth],
        is_ca: false,
        not_before: now - pki::spec::BACKDATE,
        not_after: now + cfg_validity,
    };
    let key = PrivateKey::generate(algorithm)?;
    let cert = Certificate::issue(&req, &key, Some(cert_ca))?;
    Ok(User {
        client_certificate_data: B64.encode(cert.to_pem()),
        client_key_data: B64.encode(key.to_pem()),
        ..Default::default()
    })
}

/// Ensures the named kubeconfig files (phase names) in `dir`. Existing files with the
/// same CA are kept; a file with another CA is an error (remove it to regenerate).
pub fn ensure_kubeconfigs(
    host: &dyn Host,
    cfg: &InitConfig,
    dir: &Path,
    names: &[&str],
) -> Result<Vec<KubeconfigOutcome>, PkiError> {
    let (ca, ca_key) = pki::load_ca(host, &cfg.cert_dir, "ca")?;
    let mut outcomes = Vec::new();
    let mut writes = Vec::new();
    for spec in KUBECONFIGS.iter().filter(|k| names.contains(&k.name)) {
        let path = dir.join(spec.file);
        let expected = server_url(cfg, spec.server);
        if let Some(bytes) = host.read_file(&path)? {
            let invalid = |reason: String| PkiError::Invalid {
                path: path.clone(),
                reason,
                advice: "remove it to have kubeboot write a new one",
            };
            let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
            let kc =
                KubeConfig::parse(&text).map_err(|e| invalid(format!("not a kubeconfig: {e}")))?;
            let existing_ca = kc
                .ca_cert()
                .ok_or_else(|| invalid("its current cluster has no readable CA data".into()))?;
            if existing_ca.der() != ca.der() {
                return Err(invalid(format!(
                    "its CA ({}) is not the cluster CA in {} ({})",
                    existing_ca.spki_sha256(),
                    cfg.cert_dir.display(),
                    ca.spki_sha256()
                )));
            }
            let found = kc
                .current_cluster()
                .map(|c| c.server.clone())
                .unwrap_or_default();
            let action = if found == expected {
                KubeconfigAction::Kept
            } else {
                KubeconfigAction::KeptDifferentServer { found, expected }
            };
            outcomes.push(KubeconfigOutcome {
                file: spec.file,
                path,
                action,
            });
            continue;
        }
        let Some(ca_key) = &ca_key else {
            return Err(PkiError::ExternalCaMissingLeaf {
                ca: "ca".into(),
                cert: path.clone(),
                key: path,
            });
        };
        let user_name = spec.user.replace("{node}", &cfg.node_name);
        let user = client_user(
            (&ca, ca_key),
            &user_name,
            spec.orgs,
            cfg.cert_validity,
            cfg.encryption_algorithm,
        )?;
        let kc = KubeConfig::basic(&expected, &cfg.cluster_name, &user_name, &ca.to_pem(), user);
        writes.push((path.clone(), kc.to_yaml()));
        outcomes.push(KubeconfigOutcome {
            file: spec.file,
            path,
            action: KubeconfigAction::Written,
        });
    }
    for (path, text) in writes {
        host.write_file(&path, text.as_bytes(), WriteOptions::PRIVATE)?;
    }
    Ok(outcomes)
}

/// Reads the client certificate embedded in a kubeconfig file, if the file exists.
pub fn read_client_cert(host: &dyn Host, path: &Path) -> Result<Option<Certificate>, PkiError> {
    let Some(bytes) = host.read_file(path)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(KubeConfig::parse(&text)
        .ok()
        .and_then(|kc| kc.client_pair())
        .map(|(c, _)| c))
}

/// The kubeconfig client certificates `certs check-expiration` lists.
pub fn embedded_certs(
    host: &dyn Host,
    dir: &Path,
) -> Result<Vec<pki::expiry::EmbeddedCert>, PkiError> {
    let mut out = Vec::new();
    for spec in KUBECONFIGS.iter().filter(|k| k.renewable) {
        out.push(pki::expiry::EmbeddedCert {
            file_name: spec.file.to_string(),
            cert: read_client_cert(host, &dir.join(spec.file))?,
        });
    }
    Ok(out)
}

/// A kubeadm kubeconfig file with its embedded client certificate and key, for renewal
/// and `--csr-only`; errors say how to write the file again.
fn read_client_pair(
    host: &dyn Host,
    path: &Path,
) -> Result<(KubeConfig, Certificate, PrivateKey), PkiError> {
    let invalid = |reason: &str| PkiError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
        advice: "run `kubeboot init phase kubeconfig` to write it again",
    };
    let bytes = host
        .read_file(path)?
        .ok_or_else(|| invalid("the file does not exist"))?;
    let kc = KubeConfig::parse(&String::from_utf8_lossy(&bytes))
        .map_err(|e| invalid(&format!("not a kubeconfig: {e}")))?;
    let (cert, key) = kc
        .client_pair()
        .ok_or_else(|| invalid("it holds no embedded client certificate and key"))?;
    Ok((kc, cert, key))
}

/// `certs renew <file>.conf`: re-signs the embedded client certificate with the CA on
/// disk, keeping its subject, with a new key of the same algorithm.
pub fn renew(
    host: &dyn Host,
    cert_dir: &Path,
    dir: &Path,
    file: &str,
    validity: Duration,
) -> Result<Certificate, PkiError> {
    let path = dir.join(file);
    let (mut kc, old, old_key) = read_client_pair(host, &path)?;
    let (cert, key) = pki::renew::resign(host, cert_dir, "ca", &old, &old_key, validity)?;
    let ctx_user = kc
        .contexts
        .iter()
        .find(|c| c.name == kc.current_context)
        .map(|c| c.context.user.clone())
        .unwrap_or_default();
    for u in kc.users.iter_mut().filter(|u| u.name == ctx_user) {
        u.user.client_certificate_data = B64.encode(cert.to_pem());
        u.user.client_key_data = B64.encode(key.to_pem());
    }
    host.write_file(&path, kc.to_yaml().as_bytes(), WriteOptions::PRIVATE)?;
    Ok(cert)
}

/// `certs renew <file>.conf --csr-only`: a request (and new key) for the embedded client
/// certificate, written as `<file>.csr` / `<file>.key` in `csr_dir`; the kubeconfig itself
/// is left as it is. Returns the CSR path.
pub fn write_request(
    host: &dyn Host,
    dir: &Path,
    file: &str,
    csr_dir: &Path,
) -> Result<PathBuf, PkiError> {
    let (_, old, old_key) = read_client_pair(host, &dir.join(file))?;
    pki::renew::write_request(host, csr_dir, file, &old, old_key.algorithm())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EncryptionAlgorithm;

    /// The base64 lines of a PEM (its secret body), each long enough to be telling.
    fn pem_body(pem: &str) -> Vec<&str> {
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .collect()
    }

    /// A private key, a kubeconfig user holding one (and a bearer token) and a whole
    /// kubeconfig: `Debug` shows none of the secret material.
    #[test]
    fn debug_redacts_private_keys_and_client_credentials() {
        let key = PrivateKey::generate(EncryptionAlgorithm::EcdsaP256).unwrap();
        let pem = key.to_pem();
        assert!(pem.contains("PRIVATE KEY"), "{pem}");
        let user = User {
            client_certificate_data: B64.encode("-----BEGIN CERTIFICATE-----\n"),
            client_key_data: B64.encode(&pem),
            token: "abcdef.0123456789abcdef".into(),
            ..Default::default()
        };
        let kc = KubeConfig::basic(
            "https://10.0.0.1:6443",
            "kubernetes",
            "admin",
            "-----BEGIN CERTIFICATE-----\n",
            user.clone(),
        );
        for (what, dbg) in [
            ("PrivateKey", format!("{key:?}")),
            ("User", format!("{user:?}")),
            ("KubeConfig", format!("{kc:#?}")),
        ] {
            assert!(dbg.contains("<redacted>"), "{what}: {dbg}");
            assert!(!dbg.contains("0123456789abcdef"), "{what}: {dbg}");
            assert!(!dbg.contains(&user.client_key_data), "{what}: {dbg}");
            for line in pem_body(&pem) {
                assert!(!dbg.contains(line), "{what} shows the key: {dbg}");
            }
        }
    }
}

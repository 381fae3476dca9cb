//! The kubelet's TLS bootstrap, done by `join` before the kubelet starts.
//!
//! kubeadm starts the kubelet with a bootstrap kubeconfig and lets it get its client
//! certificate: a CSR made with the bootstrap token, approved and signed by the
//! controller-manager. The v1.20 kubelet starts with an anonymous client meanwhile and
//! looks for the signed certificate only every 10 s, then retries its registration with
//! a back-off: its node registers 10-15 s after it started. `join` makes the same CSR
//! itself (the same subject, usages and signer, made with the same bootstrap token, so
//! the same controller approves it), writes the certificate where the kubelet keeps it
//! (`/var/lib/kubelet/pki/kubelet-client-<time>.pem`, `kubelet-client-current.pem`
//! pointing at it) and kubelet.conf pointing there, as the kubelet would; the kubelet then
//! starts with a valid client certificate and registers as soon as it is up. The
//! bootstrap token is never written to the node.

use crate::apiclient::{ApiClient, ApiError};
use crate::config::EncryptionAlgorithm;
use crate::host::{Host, WriteOptions};
use crate::kubeconfig::{KubeConfig, User};
use crate::pki::{CertRequest, Certificate, PrivateKey, Usage};
use anyhow::Context;
use base64::Engine;
use std::path::Path;
use std::time::{Duration, Instant};

/// The kubelet's certificate store (its `--cert-dir` default).
pub const KUBELET_PKI: &str = "/var/lib/kubelet/pki";
/// The link the kubelet reads its current client certificate and key through.
pub const CLIENT_CURRENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
/// The signer of kubelet client certificates.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
/// How often the CSR is looked at while it waits for approval and signing.
const POLL: Duration = Duration::from_millis(200);
/// How long a refusal of the bootstrap token (401) is waited out by default.
pub const TOKEN_REFUSED_GRACE: Duration = Duration::from_secs(45);

/// How long [`obtain`] waits.
#[derive(Clone, Copy, Debug)]
pub struct Waits {
    /// For the controller-manager to approve and sign the CSR (join's
    /// `timeouts.tlsBootstrap`).
    pub signed: Duration,
    /// For the API server to accept the bootstrap token again after refusing it (401).
    /// An API server that has just (re)started refuses every bootstrap token until its
    /// cache of Secrets is filled; the kubelet's own bootstrap retries through that, and
    /// so does `join`. A token that is wrong, deleted or expired fails after this.
    pub refused: Duration,
}

impl Waits {
    /// `signed` for the CSR, [`TOKEN_REFUSED_GRACE`] for a refused token.
    pub fn new(signed: Duration) -> Self {
        Waits {
            signed,
            refused: TOKEN_REFUSED_GRACE,
        }
    }
}

/// What to do about a refused bootstrap token, after `waited`.
fn refused_for_good(e: ApiError, waited: Duration, after_create: bool) -> anyhow::Error {
    let (when, question) = if after_create {
        (
            "accepted the bootstrap token when the request was made, then refused it",
            "was the token deleted, or has it expired?",
        )
    } else {
        (
            "refused the bootstrap token",
            "is it a token of this cluster, and has it not expired?",
        )
    };
    anyhow::anyhow!(
        "{e}\nThe API server {when} for {}s: {question} \
         `kubeboot token list` on a control plane shows the tokens; \
         `kubeboot token create --print-join-command` makes a new one",
        waited.as_secs()
    )
}

/// The CSR object for `node`, as the kubelet makes it (`node-csr-` names, the usages the
/// controller-manager's approver requires).
pub fn csr_object(request_pem: &str) -> serde_json::Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "node-csr-"},
        "spec": {
            "request": b64.encode(request_pem),
            "signerName": SIGNER,
            "usages": ["digital signature", "key encipherment", "client auth"],
        },
    })
}

/// What a CSR object says about itself: signed (the certificate PEM), refused (why), or
/// still waiting.
pub enum CsrState {
    Signed(String),
    Refused(String),
    Waiting,
}

/// Reads a CSR object's status.
pub fn csr_state(csr: &serde_json::Value) -> CsrState {
    for c in csr["status"]["conditions"].as_array().into_iter().flatten() {
        let kind = c["type"].as_str().unwrap_or_default();
        if (kind == "Denied" || kind == "Failed") && c["status"] != "False" {
            let why = [c["reason"].as_str(), c["message"].as_str()]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            return CsrState::Refused(format!(
                "{kind}{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({why})")
                }
            ));
        }
    }
    match csr["status"]["certificate"]
        .as_str()
        .filter(|c| !c.is_empty())
    {
        Some(b) => match base64::engine::general_purpose::STANDARD.decode(b) {
            Ok(pem) => CsrState::Signed(String::from_utf8_lossy(&pem).into_owned()),
            Err(e) => CsrState::Refused(format!("its certificate is not base64 ({e})")),
        },
        None => CsrState::Waiting,
    }
}

/// The dated file name the kubelet's certificate store uses (`kubelet-client-2026-12-02-04-39-27.pem`).
pub fn dated_name(now: time::OffsetDateTime) -> String {
    format!(
        "kubelet-client-{:04}-{:02}-{:02}-{:02}-{:02}-{:02}.pem",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// kubelet.conf as the kubelet writes it after its bootstrap: the cluster, and the
/// client certificate and key both read from [`CLIENT_CURRENT`].
pub fn rotating_kubeconfig(server: &str, ca_pem: &str) -> KubeConfig {
    KubeConfig::basic(
        server,
        "default-cluster",
        "default-auth",
        ca_pem,
        User {
            client_certificate: CLIENT_CURRENT.into(),
            client_key: CLIENT_CURRENT.into(),
            ..Default::default()
        },
    )
}

/// Whether the node already has a usable client certificate for `node` (a join resumed
/// after its kubelet bootstrapped): [`CLIENT_CURRENT`] holds one for `system:node:<node>`
/// valid for at least another hour.
fn has_client_certificate(host: &dyn Host, node: &str) -> anyhow::Result<bool> {
    let Some(pem) = host.read_file(Path::new(CLIENT_CURRENT))? else {
        return Ok(false);
    };
    let Ok(cert) = Certificate::from_pem(&pem) else {
        return Ok(false);
    };
    let hour_ahead = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    Ok(cert.cn == format!("system:node:{node}") && cert.not_after > hour_ahead)
}

/// What [`obtain`] did.
pub enum Obtained {
    /// A CSR was signed: its name and how long approval and signing took.
    Signed { csr: String, waited: Duration },
    /// The node already had a valid client certificate for this node name.
    Existing,
}

/// The kubelet's client certificate for `node`, from a CSR made with the bootstrap
/// `client`; writes the certificate store and `kubeconfig_path` (pointing at it) on
/// `host`. `server` and `ca_pem` are the cluster's, from discovery. Waits up to
/// `waits.signed` for the controller-manager to approve and sign the CSR, and through
/// refusals of the token for up to `waits.refused` at a time (see [`Waits`]).
pub fn obtain(
    host: &dyn Host,
    client: &ApiClient,
    node: &str,
    server: &str,
    ca_pem: &str,
    kubeconfig_path: &Path,
    waits: Waits,
) -> anyhow::Result<Obtained> {
    let timeout = waits.signed;
    let kubeconfig = rotating_kubeconfig(server, ca_pem).to_yaml();
    if has_client_certificate(host, node)? {
        host.write_file(
            kubeconfig_path,
            kubeconfig.as_bytes(),
            WriteOptions::PRIVATE,
        )?;
        return Ok(Obtained::Existing);
    }
    // The kubelet's own choice of key, whatever the cluster's encryptionAlgorithm.
    let key = PrivateKey::generate(EncryptionAlgorithm::EcdsaP256)?;
    let now = time::OffsetDateTime::now_utc();
    let req = CertRequest {
        cn: format!("system:node:{node}"),
        orgs: vec!["system:nodes".into()],
        dns: vec![],
        ips: vec![],
        usages: vec![Usage::ClientAuth],
        is_ca: false,
        not_before: now,
        not_after: now,
    };
    let request = Certificate::request_pem(&req, &key)?;
    let object = csr_object(&request);
    let refused_since = Instant::now();
    let created = loop {
        match client.create(CSRS, &object) {
            Err(e @ ApiError::Unauthorized { .. }) => {
                if refused_since.elapsed() >= waits.refused {
                    return Err(refused_for_good(e, refused_since.elapsed(), false).context(
                        "creating the kubelet's certificate signing request with the bootstrap token",
                    ));
                }
                tracing::debug!("{e}; the API server may have just started: retrying");
                std::thread::sleep(POLL * 2);
            }
            other => {
                break other.context(
                    "creating the kubelet's certificate signing request with the bootstrap token",
                )?;
            }
        }
    };
    let name = created["metadata"]["name"]
        .as_str()
        .context("the API server returned a CSR without a name")?
        .to_string();
    let start = Instant::now();
    // Since when the token has been refused, and the last error that was waited out.
    let mut refused_since: Option<Instant> = None;
    let mut last_error: Option<ApiError> = None;
    let cert_pem = loop {
        match client.get(&format!("{CSRS}/{name}")) {
            Ok(csr) => {
                refused_since = None;
                match csr_state(&csr) {
                    CsrState::Signed(pem) => break pem,
                    CsrState::Refused(why) => anyhow::bail!(
                        "the kubelet's certificate signing request {name} was refused: {why}; see `kubectl get csr {name} -o yaml`"
                    ),
                    CsrState::Waiting => {}
                }
            }
            Err(e @ ApiError::Unauthorized { .. }) => {
                let since = *refused_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= waits.refused {
                    return Err(refused_for_good(e, since.elapsed(), true));
                }
                tracing::debug!("{e}; the API server may have just restarted: retrying");
                last_error = Some(e);
            }
            // Away for longer than the client's own retries (an API server restarting
            // slowly): the kubelet would keep trying too, within the same timeout.
            Err(e)
                if matches!(e, ApiError::Unreachable { .. })
                    || matches!(e, ApiError::Status { status, .. } if status >= 500 || status == 429) =>
            {
                tracing::debug!("{e}; retrying");
                last_error = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
        if start.elapsed() >= timeout {
            anyhow::bail!(
                "the kubelet's certificate signing request {name} was not approved and signed within {}s: is the controller-manager running, and does the cluster approve node CSRs made with bootstrap tokens (`kubectl get csr`)?{}",
                timeout.as_secs(),
                last_error
                    .map(|e| format!(" The last error: {e}"))
                    .unwrap_or_default()
            );
        }
        std::thread::sleep(POLL);
    };
    let waited = start.elapsed();
    let cert = Certificate::from_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("the certificate signed for {name}: {e}"))?;
    anyhow::ensure!(
        cert.matches_key(&key),
        "the certificate signed for {name} is not for the key this request was made with"
    );
    let dated = Path::new(KUBELET_PKI).join(dated_name(now));
    let mut bundle = cert_pem.trim_end().to_string();
    bundle.push('\n');
    bundle.push_str(&key.to_pem());
    host.write_file(
        &dated,
        bundle.as_bytes(),
        WriteOptions::PRIVATE.in_dir_mode(0o755),
    )?;
    // Relative, so the link holds wherever the store is (`--root`); the kubelet reads
    // through it all the same.
    let file_name = dated_name(now);
    host.symlink(&file_name, Path::new(CLIENT_CURRENT))?;
    host.write_file(
        kubeconfig_path,
        kubeconfig.as_bytes(),
        WriteOptions::PRIVATE,
    )?;
    Ok(Obtained::Signed { csr: name, waited })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csr_object_is_the_kubelets() {
        let o = csr_object("-----BEGIN CERTIFICATE REQUEST-----\n");
        assert_eq!(o["metadata"]["generateName"], "node-csr-");
        assert_eq!(o["spec"]["signerName"], SIGNER);
        assert_eq!(
            o["spec"]["usages"],
            serde_json::json!(["digital signature", "key encipherment", "client auth"])
        );
        assert_eq!(
            o["spec"]["request"],
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K"
        );
    }

    #[test]
    fn csr_states() {
        let waiting = serde_json::json!({"status": {}});
        assert!(matches!(csr_state(&waiting), CsrState::Waiting));
        let approved =
            serde_json::json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}});
        assert!(matches!(csr_state(&approved), CsrState::Waiting));
        let signed = serde_json::json!({"status": {"conditions": [{"type": "Approved", "status": "True"}],
            "certificate": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="}});
        match csr_state(&signed) {
            CsrState::Signed(p) => assert_eq!(p, "-----BEGIN CERTIFICATE-----\n"),
            _ => panic!("signed"),
        }
        let denied = serde_json::json!({"status": {"conditions": [{"type": "Denied", "status": "True",
            "reason": "NotMine", "message": "no"}]}});
        match csr_state(&denied) {
            CsrState::Refused(w) => assert_eq!(w, "Denied (NotMine: no)"),
            _ => panic!("denied"),
        }
    }

    #[test]
    fn the_dated_name_is_the_kubelets() {
        let t = time::macros::datetime!(2026-12-02 04:39:07 UTC);
        assert_eq!(dated_name(t), "kubelet-client-2026-12-02-04-39-07.pem");
    }

    #[test]
    fn kubelet_conf_reads_the_current_certificate() {
        let kc = rotating_kubeconfig("https://10.0.0.1:6443", "-----BEGIN CERTIFICATE-----\n");
        assert_eq!(kc.users[0].user.client_certificate, CLIENT_CURRENT);
        assert_eq!(kc.users[0].user.client_key, CLIENT_CURRENT);
        assert!(kc.users[0].user.token.is_empty());
        assert_eq!(kc.clusters[0].cluster.server, "https://10.0.0.1:6443");
    }
}

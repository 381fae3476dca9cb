//! Cluster discovery with a bootstrap token: the `kube-public/cluster-info` ConfigMap,
//! its detached JWS signatures (added by the controller-manager's bootstrapsigner), and
//! pinning the cluster CA by the SHA-256 of its SubjectPublicKeyInfo.

use crate::kubeconfig::{Cluster, KubeConfig, NamedCluster};
use crate::pki::Certificate;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Where cluster-info lives.
pub const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

/// Why discovery refused a cluster; each says what to check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DiscoveryError {
    #[error(
        "token id {0:?} is invalid for this cluster or it has expired (cluster-info has no signature for it); create a new one with `kubeboot token create` on a control-plane node"
    )]
    NoSignature(String),
    #[error(
        "the signature of cluster-info does not match token {0:?}: the token is wrong, or cluster-info was changed after it was signed"
    )]
    BadSignature(String),
    #[error("cluster-info's signature is malformed: {0}")]
    Malformed(String),
    #[error("cluster-info holds no usable kubeconfig: {0}")]
    BadKubeconfig(String),
    #[error(
        "the cluster CA's public key hash {found} matches none of the pinned hashes ({pins}); check --discovery-token-ca-cert-hash against `kubeboot certs ca-hash` on a control-plane node"
    )]
    PinMismatch { found: String, pins: String },
    #[error("invalid CA hash {0:?}: use sha256:<64 hex digits>")]
    BadPin(String),
}

/// The cluster-info kubeconfig: one unnamed cluster, no users, no contexts (kubeadm).
pub fn cluster_info_kubeconfig(server: &str, ca_pem: &str) -> String {
    let kc = KubeConfig {
        api_version: "v1".into(),
        kind: "Config".into(),
        clusters: vec![NamedCluster {
            name: String::new(),
            cluster: Cluster {
                server: server.into(),
                certificate_authority_data: B64.encode(ca_pem),
            },
        }],
        ..Default::default()
    };
    kc.to_yaml()
}

fn protected_header(id: &str) -> String {
    B64URL.encode(format!("{{\"alg\":\"HS256\",\"kid\":\"{id}\"}}"))
}

fn mac(secret: &str) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length")
}

/// The detached JWS the bootstrapsigner stores as `jws-kubeconfig-<id>`: key = the token
/// secret only, header bytes exactly `{"alg":"HS256","kid":"<id>"}`.
pub fn sign(kubeconfig: &str, id: &str, secret: &str) -> String {
    let protected = protected_header(id);
    let payload = B64URL.encode(kubeconfig.as_bytes());
    let mut m = mac(secret);
    m.update(format!("{protected}.{payload}").as_bytes());
    let sig = B64URL.encode(m.finalize().into_bytes());
    format!("{protected}..{sig}")
}

/// The cluster-info key that holds the signature for token `id`.
pub fn signature_key(id: &str) -> String {
    format!("jws-kubeconfig-{id}")
}

/// Signs cluster-info for one token now, as the controller-manager's bootstrapsigner
/// would (the same bytes: it finds its own signature there and leaves it). `up` does this
/// for its join token: right after `init` the bootstrapsigner may start only seconds
/// later (the v1.20 controller-manager starts its controllers one after the other, in no
/// fixed order), and every join would wait for it. Returns whether cluster-info changed.
pub fn sign_cluster_info(
    admin: &crate::apiclient::ApiClient,
    id: &str,
    secret: &str,
) -> Result<bool, crate::apiclient::ApiError> {
    let cm = admin.get(CLUSTER_INFO)?;
    let Some(kubeconfig) = cm["data"]["kubeconfig"].as_str() else {
        return Ok(false);
    };
    let key = signature_key(id);
    let jws = sign(kubeconfig, id, secret);
    if cm["data"][&key].as_str() == Some(jws.as_str()) {
        return Ok(false);
    }
    admin.merge_patch(CLUSTER_INFO, &serde_json::json!({"data": {key: jws}}))?;
    Ok(true)
}

/// Removes token `id`'s signature from cluster-info (the bootstrapsigner would, once it
/// sees the token gone). Returns whether there was one.
pub fn unsign_cluster_info(
    admin: &crate::apiclient::ApiClient,
    id: &str,
) -> Result<bool, crate::apiclient::ApiError> {
    let key = signature_key(id);
    let Some(cm) = admin.get_opt(CLUSTER_INFO)? else {
        return Ok(false);
    };
    if cm["data"].get(&key).is_none() {
        return Ok(false);
    }
    admin.merge_patch(CLUSTER_INFO, &serde_json::json!({"data": {key: null}}))?;
    Ok(true)
}

/// Verifies a stored detached JWS over `kubeconfig`: the header must say HS256 and the
/// token id, and the HMAC is compared in constant time.
pub fn verify(
    stored: &str,
    kubeconfig: &str,
    id: &str,
    secret: &str,
) -> Result<(), DiscoveryError> {
    let parts: Vec<&str> = stored.split('.').collect();
    if parts.len() != 3 || !parts[1].is_empty() {
        return Err(DiscoveryError::Malformed(
            "expected <header>..<signature>".into(),
        ));
    }
    let header = B64URL
        .decode(parts[0])
        .map_err(|e| DiscoveryError::Malformed(format!("header: {e}")))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| DiscoveryError::Malformed(format!("header: {e}")))?;
    if header["alg"] != "HS256" {
        return Err(DiscoveryError::Malformed(format!(
            "algorithm {} is not HS256",
            header["alg"]
        )));
    }
    if header["kid"] != id {
        return Err(DiscoveryError::BadSignature(id.into()));
    }
    let sig = B64URL
        .decode(parts[2])
        .map_err(|e| DiscoveryError::Malformed(format!("signature: {e}")))?;
    let payload = B64URL.encode(kubeconfig.as_bytes());
    let mut m = mac(secret);
    m.update(format!("{}.{payload}", parts[0]).as_bytes());
    m.verify_slice(&sig)
        .map_err(|_| DiscoveryError::BadSignature(id.into()))
}

/// Checks the signature in a cluster-info ConfigMap for a token and returns its
/// kubeconfig, which must hold exactly one cluster.
pub fn verified_kubeconfig(
    cluster_info: &serde_json::Value,
    id: &str,
    secret: &str,
) -> Result<KubeConfig, DiscoveryError> {
    let kubeconfig = cluster_info["data"]["kubeconfig"]
        .as_str()
        .ok_or_else(|| DiscoveryError::BadKubeconfig("no data.kubeconfig".into()))?;
    let jws = cluster_info["data"][format!("jws-kubeconfig-{id}")]
        .as_str()
        .ok_or_else(|| DiscoveryError::NoSignature(id.into()))?;
    verify(jws, kubeconfig, id, secret)?;
    let kc = KubeConfig::parse(kubeconfig).map_err(DiscoveryError::BadKubeconfig)?;
    if kc.clusters.len() != 1 {
        return Err(DiscoveryError::BadKubeconfig(format!(
            "expected one cluster, found {}",
            kc.clusters.len()
        )));
    }
    Ok(kc)
}

/// The CA certificates in a discovered kubeconfig's cluster.
pub fn cluster_cas(kc: &KubeConfig) -> Result<Vec<Certificate>, DiscoveryError> {
    let data = B64
        .decode(&kc.clusters[0].cluster.certificate_authority_data)
        .map_err(|e| DiscoveryError::BadKubeconfig(format!("certificate-authority-data: {e}")))?;
    let mut out = Vec::new();
    for p in ::pem::parse_many(&data).map_err(|e| DiscoveryError::BadKubeconfig(e.to_string()))? {
        out.push(
            Certificate::from_der(p.contents().to_vec()).map_err(DiscoveryError::BadKubeconfig)?,
        );
    }
    if out.is_empty() {
        return Err(DiscoveryError::BadKubeconfig("no CA certificate".into()));
    }
    Ok(out)
}

/// Normalizes and checks `sha256:<hex>` pins.
pub fn parse_pin(pin: &str) -> Result<String, DiscoveryError> {
    let hex = pin
        .strip_prefix("sha256:")
        .ok_or_else(|| DiscoveryError::BadPin(pin.into()))?
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DiscoveryError::BadPin(pin.into()));
    }
    Ok(format!("sha256:{hex}"))
}

/// Passes when any CA certificate matches any pin (kubeadm's `CheckAny`).
pub fn check_pins(cas: &[Certificate], pins: &[String]) -> Result<(), DiscoveryError> {
    let pins: Vec<String> = pins
        .iter()
        .map(|p| parse_pin(p))
        .collect::<Result<_, _>>()?;
    let hashes: Vec<String> = cas.iter().map(|c| c.spki_sha256()).collect();
    if hashes.iter().any(|h| pins.contains(h)) {
        Ok(())
    } else {
        Err(DiscoveryError::PinMismatch {
            found: hashes.join(", "),
            pins: pins.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_match_kubernetes_docs() {
        // bootstrap-tokens.md's example header for token id 07401b.
        assert_eq!(
            protected_header("07401b"),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6IjA3NDAxYiJ9"
        );
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let kc = cluster_info_kubeconfig("https://10.0.0.5:6443", "PEM");
        let jws = sign(&kc, "abcdef", "0123456789abcdef");
        verify(&jws, &kc, "abcdef", "0123456789abcdef").unwrap();
        assert_eq!(
            verify(
                &jws,
                &kc.replace("10.0.0.5", "10.6.6.6"),
                "abcdef",
                "0123456789abcdef"
            ),
            Err(DiscoveryError::BadSignature("abcdef".into()))
        );
        assert!(verify(&jws, &kc, "abcdef", "0123456789abcdeX").is_err());
        assert!(verify(&jws, &kc, "zzzzzz", "0123456789abcdef").is_err());
        assert!(matches!(
            verify("abc", &kc, "abcdef", "x"),
            Err(DiscoveryError::Malformed(_))
        ));
    }

    #[test]
    fn cluster_info_has_one_unnamed_cluster() {
        let kc = KubeConfig::parse(&cluster_info_kubeconfig("https://h:6443", "PEM")).unwrap();
        assert_eq!(kc.clusters.len(), 1);
        assert_eq!(kc.clusters[0].name, "");
        assert!(kc.users.is_empty() && kc.contexts.is_empty());
    }

    #[test]
    fn reads_kubeadm_cluster_info_with_null_lists() {
        // client-go writes the empty lists of kubeadm's cluster-info as `null`.
        let text = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: UEVN\n    server: https://10.0.0.5:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {}\nusers: null\n";
        let jws = sign(text, "abcdef", "0123456789abcdef");
        let cm = serde_json::json!({"data": {"kubeconfig": text, "jws-kubeconfig-abcdef": jws}});
        let kc = verified_kubeconfig(&cm, "abcdef", "0123456789abcdef").unwrap();
        assert_eq!(kc.clusters[0].cluster.server, "https://10.0.0.5:6443");
        assert!(kc.contexts.is_empty() && kc.users.is_empty());
    }

    #[test]
    fn pins() {
        assert!(parse_pin("sha256:ABCDEF").is_err());
        assert!(parse_pin(&format!("sha256:{}", "A".repeat(64))).is_ok());
        assert!(parse_pin("md5:00").is_err());
    }
}

/// Token discovery as kubeadm's `discovery/token`: fetch cluster-info without trusting
/// TLS, wait (retrying every `retry`) for the JWS of `token`, verify it, check the CA
/// pins (unless skipped), then fetch cluster-info again over TLS verified with that CA and
/// require the same kubeconfig. Returns the verified cluster-info kubeconfig.
pub fn discover_with_token(
    endpoint: &str,
    token: &crate::token::BootstrapToken,
    pins: &[String],
    unsafe_skip_ca_verification: bool,
    timeout: std::time::Duration,
    retry: std::time::Duration,
) -> Result<KubeConfig, TokenDiscoveryError> {
    use crate::apiclient::{ApiClient, Trust};
    use std::time::Instant;
    let server = format!("https://{endpoint}");
    let per_request =
        std::time::Duration::from_secs(10).min(timeout.max(std::time::Duration::from_secs(1)));
    let insecure = ApiClient::anonymous(&server, Trust::InsecureSkipVerify, per_request)?;
    let start = Instant::now();
    let (kc, raw) = loop {
        let attempt = insecure
            .get(CLUSTER_INFO)
            .map_err(TokenDiscoveryError::Api)
            .and_then(|cm| {
                let raw = cm["data"]["kubeconfig"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                verified_kubeconfig(&cm, token.id(), token.secret())
                    .map(|kc| (kc, raw))
                    .map_err(TokenDiscoveryError::Refused)
            });
        match attempt {
            Ok(v) => break v,
            // The signature appears asynchronously, and the API server may still be
            // starting: retry these until the deadline; anything else is final.
            Err(e @ TokenDiscoveryError::Refused(DiscoveryError::NoSignature(_)))
            | Err(e @ TokenDiscoveryError::Api(crate::apiclient::ApiError::Unreachable { .. })) => {
                if start.elapsed() + retry > timeout {
                    return Err(e);
                }
                tracing::info!("discovery: {e}; retrying in {}s", retry.as_secs());
                std::thread::sleep(retry);
            }
            // Just after init, the ConfigMap or the Role that lets anonymous read it may not
            // be visible yet (the API server's RBAC cache follows with a delay).
            Err(TokenDiscoveryError::Api(e))
                if (e.is_forbidden() || e.is_not_found()) && start.elapsed() + retry <= timeout =>
            {
                tracing::info!("discovery: {e}; retrying in {}s", retry.as_secs());
                std::thread::sleep(retry);
            }
            Err(e) => return Err(e),
        }
    };
    let cas = cluster_cas(&kc)?;
    if !unsafe_skip_ca_verification {
        check_pins(&cas, pins)?;
    }
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(&kc.clusters[0].cluster.certificate_authority_data)
        .map_err(|e| DiscoveryError::BadKubeconfig(e.to_string()))?;
    let secure = ApiClient::anonymous(&server, Trust::Ca(&ca_pem), per_request)?;
    let again = secure.get(CLUSTER_INFO)?;
    if again["data"]["kubeconfig"].as_str() != Some(raw.as_str()) {
        return Err(TokenDiscoveryError::Refused(DiscoveryError::BadKubeconfig(
            "cluster-info changed between the unverified and the verified fetch".into(),
        )));
    }
    Ok(kc)
}

/// Why token discovery failed: the API server could not be asked, or it was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenDiscoveryError {
    #[error(transparent)]
    Api(#[from] crate::apiclient::ApiError),
    #[error(transparent)]
    Refused(#[from] DiscoveryError),
}

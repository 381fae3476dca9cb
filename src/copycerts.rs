//! The certificates every control plane shares (cluster CA, front-proxy CA, etcd CA and
//! the service-account key pair), moved to a joining control plane the two ways kubeadm
//! users know:
//!
//! - kubeadm's `upload-certs`: each file encrypted with AES-256-GCM under a 32-byte
//!   "certificate key" (hex), stored in the `kube-system/kubeadm-certs` Secret, which is
//!   owned by a short-lived bootstrap token so the garbage collector removes it when the
//!   token expires (two hours); `join --control-plane --certificate-key` downloads and
//!   decrypts them. Same names, same cipher layout (nonce || ciphertext || tag), same
//!   Role, so kubeadm and kubeboot can each read what the other uploaded.
//! - copied host to host (`kubeboot up` reads them over SSH from the first control plane
//!   and writes them to the next; nothing secret goes through the API).
//!
//! Files that already exist on the joining node are kept when identical and refused when
//! different: existing PKI is never overwritten.

use crate::apiclient::ApiClient;
use crate::config::InitConfig;
use crate::host::{Host, WriteOptions};
use crate::secret::Secret;
use crate::token::{BootstrapToken, TokenInfo};
use anyhow::Context;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The Secret holding the encrypted shared certificates.
pub const SECRET: &str = "kubeadm-certs";
/// The Role and RoleBinding that let bootstrap tokens read it.
pub const ROLE: &str = "kubeadm:kubeadm-certs";
/// How long the uploaded certificates live (kubeadm's `DefaultCertTokenDuration`).
pub const TTL: time::Duration = time::Duration::hours(2);
/// The description of the token that owns the Secret (kubeadm's words).
pub const TOKEN_DESCRIPTION: &str = "Proxy for managing TTL for the kubeadm-certs secret";

/// The shared files of a cluster with a local etcd, relative to the certificate
/// directory, in kubeadm's order of mention. The Secret key is the path with `/` -> `-`.
pub const SHARED: &[&str] = &[
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "sa.pub",
    "sa.key",
    "etcd/ca.crt",
    "etcd/ca.key",
];

/// The shared files this configuration needs (no etcd CA with an external etcd).
pub fn shared_files(cfg: &InitConfig) -> Vec<&'static str> {
    SHARED
        .iter()
        .copied()
        .filter(|f| cfg.local_etcd().is_some() || !f.starts_with("etcd/"))
        .collect()
}

/// A shared file's key in the `kubeadm-certs` Secret (`etcd/ca.crt` -> `etcd-ca.crt`).
pub fn secret_key(rel: &str) -> String {
    rel.replace('/', "-")
}

fn is_private(rel: &str) -> bool {
    rel.ends_with(".key")
}

/// A new certificate key: 32 random bytes, hex (kubeadm's `CreateCertificateKey`);
/// a [`Secret`], so `Debug` redacts it.
pub fn new_certificate_key() -> Secret {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).expect("the OS random generator works");
    Secret::new(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

/// Parses a certificate key: 64 hex digits (an AES-256 key).
pub fn parse_certificate_key(hex: &str) -> anyhow::Result<[u8; 32]> {
    let hex = hex.trim();
    anyhow::ensure!(
        hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()),
        "the certificate key must be 64 hexadecimal digits (a 32-byte AES key), as printed by `kubeboot init phase upload-certs --upload-certs`; got {} characters",
        hex.len()
    );
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex");
    }
    Ok(out)
}

fn aead(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"))
}

/// AES-256-GCM with a random nonce; returns nonce || ciphertext || tag (Go's
/// `gcm.Seal(nonce, nonce, data, nil)`, kubeadm's `EncryptBytes`).
pub fn encrypt(data: &[u8], key: &[u8; 32]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).expect("the OS random generator works");
    let mut buf = data.to_vec();
    aead(key)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .expect("sealing cannot fail for in-memory data");
    let mut out = nonce.to_vec();
    out.extend(buf);
    out
}

/// The inverse of [`encrypt`]; fails when the key is wrong or the data was changed.
pub fn decrypt(data: &[u8], key: &[u8; 32]) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        data.len() > NONCE_LEN,
        "the data is too short to be encrypted"
    );
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    let mut buf = sealed.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).expect("NONCE_LEN bytes");
    let plain = aead(key)
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .map_err(|_| {
            anyhow::anyhow!("decryption failed: wrong certificate key, or the data was changed")
        })?;
    Ok(plain.to_vec())
}

/// One shared file: its path relative to the certificate directory and its bytes (a CA
/// or service-account private key for the `.key` files). `Debug` shows the path and the
/// length only, so the payload of `kubeadm-certs` never reaches a log line or a panic.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedFile {
    pub rel: String,
    pub contents: Vec<u8>,
}

impl std::fmt::Debug for SharedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SharedFile({}, {} bytes <redacted>)",
            self.rel,
            self.contents.len()
        )
    }
}

/// Reads the shared files from a node; every one must exist.
pub fn read_shared(host: &dyn Host, cfg: &InitConfig) -> anyhow::Result<Vec<SharedFile>> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for rel in shared_files(cfg) {
        let path = cfg.cert_dir.join(rel);
        match host.read_file(&path)? {
            Some(b) => out.push(SharedFile {
                rel: rel.to_string(),
                contents: b,
            }),
            None => missing.push(path.display().to_string()),
        }
    }
    anyhow::ensure!(
        missing.is_empty(),
        "{}: the shared certificates are incomplete, missing {}",
        host.name(),
        missing.join(", ")
    );
    Ok(out)
}

/// What [`write_shared`] did with each file.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Created(PathBuf),
    Kept(PathBuf),
}

/// Writes shared files to a joining node: keys 0600, certificates 0644. All files are
/// checked first: one that exists with different content is an error naming it, and then
/// nothing is written.
pub fn write_shared(
    host: &dyn Host,
    cert_dir: &Path,
    files: &[SharedFile],
) -> anyhow::Result<Vec<Written>> {
    let mut plan = Vec::new();
    let mut conflicts = Vec::new();
    for SharedFile {
        rel,
        contents: bytes,
    } in files
    {
        let path = cert_dir.join(rel);
        match host.read_file(&path)? {
            Some(existing) if existing == *bytes => plan.push((path, None)),
            Some(_) => conflicts.push(path.display().to_string()),
            None => plan.push((path, Some((rel, bytes)))),
        }
    }
    anyhow::ensure!(
        conflicts.is_empty(),
        "{}: {} already exist{} with different content; this node holds another cluster's PKI. Run `kubeboot reset` on it first (nothing was written)",
        host.name(),
        conflicts.join(", "),
        if conflicts.len() == 1 { "s" } else { "" }
    );
    let mut out = Vec::new();
    for (path, w) in plan {
        match w {
            None => out.push(Written::Kept(path)),
            Some((rel, bytes)) => {
                let opts = if is_private(rel) {
                    WriteOptions::PRIVATE
                } else {
                    WriteOptions::PUBLIC
                };
                host.write_file(&path, bytes, opts.in_dir_mode(0o755))?;
                out.push(Written::Created(path));
            }
        }
    }
    Ok(out)
}

/// `upload-certs`: encrypts the shared files of this control plane with `key` into the
/// `kubeadm-certs` Secret, owned by a new two-hour token, and lets bootstrap tokens read
/// it. Re-running replaces the Secret's data and owner.
pub fn upload(
    client: &ApiClient,
    host: &dyn Host,
    cfg: &InitConfig,
    key: &[u8; 32],
) -> anyhow::Result<()> {
    let files = read_shared(host, cfg)?;
    // The token only carries the TTL: no usages, so it cannot authenticate.
    let token = BootstrapToken::generate();
    crate::token::create(
        client,
        &TokenInfo {
            token: token.clone(),
            description: TOKEN_DESCRIPTION.into(),
            expires: Some(time::OffsetDateTime::now_utc() + TTL),
            usages: vec![],
            groups: vec![],
        },
    )
    .context("creating the token that limits the lifetime of the kubeadm-certs Secret")?;
    let owner = client.get(&format!(
        "/api/v1/namespaces/kube-system/secrets/bootstrap-token-{}",
        token.id()
    ))?;
    let mut data = serde_json::Map::new();
    for SharedFile {
        rel,
        contents: bytes,
    } in &files
    {
        data.insert(secret_key(rel), B64.encode(encrypt(bytes, key)).into());
    }
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SECRET,
            "namespace": "kube-system",
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Secret",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "type": "Opaque",
        "data": data,
    });
    client.apply(&secret)?;
    client.apply(&json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": ROLE, "namespace": "kube-system"},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET]}],
    }))?;
    client.apply(&json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": ROLE, "namespace": "kube-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": crate::token::DEFAULT_GROUP}],
    }))?;
    Ok(())
}

/// `download-certs`: reads and decrypts the `kubeadm-certs` Secret. Every file this
/// configuration needs must be there; a wrong key fails before anything is returned.
pub fn download(
    client: &ApiClient,
    cfg: &InitConfig,
    key: &[u8; 32],
) -> anyhow::Result<Vec<SharedFile>> {
    let path = format!("/api/v1/namespaces/kube-system/secrets/{SECRET}");
    let secret = client.get_opt(&path)?.with_context(|| {
        format!(
            "Secret {SECRET:?} was not found in the \"kube-system\" Namespace. It may have expired (it lives {} hours): run `kubeboot init phase upload-certs --upload-certs` on a control plane to upload the certificates again, and join with the key it prints",
            TTL.whole_hours()
        )
    })?;
    decode_secret(&secret, &shared_files(cfg), key)
}

/// The decrypted `files` (paths relative to the certificate directory) of a
/// `kubeadm-certs` Secret object; every one must be there and decrypt with `key`.
pub fn decode_secret(
    secret: &serde_json::Value,
    files: &[&str],
    key: &[u8; 32],
) -> anyhow::Result<Vec<SharedFile>> {
    let mut out = Vec::new();
    for rel in files {
        let name = secret_key(rel);
        let enc = secret["data"][&name].as_str().with_context(|| {
            format!("the {SECRET} Secret has no {name:?}: it was uploaded from an incomplete control plane")
        })?;
        let enc = B64
            .decode(enc)
            .with_context(|| format!("the {SECRET} Secret's {name:?} is not base64"))?;
        let plain = decrypt(&enc, key)
            .with_context(|| format!("cannot decrypt {name:?} from the {SECRET} Secret"))?;
        out.push(SharedFile {
            rel: rel.to_string(),
            contents: plain,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let key = parse_certificate_key(new_certificate_key().expose()).unwrap();
        let sealed = encrypt(b"-----BEGIN CERTIFICATE-----", &key);
        assert_eq!(sealed.len(), NONCE_LEN + 27 + 16);
        assert_eq!(
            decrypt(&sealed, &key).unwrap(),
            b"-----BEGIN CERTIFICATE-----"
        );
        // A different nonce every time.
        assert_ne!(sealed, encrypt(b"-----BEGIN CERTIFICATE-----", &key));
        let other = parse_certificate_key(new_certificate_key().expose()).unwrap();
        assert!(decrypt(&sealed, &other).is_err());
        let mut changed = sealed.clone();
        changed[NONCE_LEN] ^= 1;
        assert!(decrypt(&changed, &key).is_err());
        assert!(parse_certificate_key("abc").is_err());
        assert!(parse_certificate_key(&"g".repeat(64)).is_err());
        assert_eq!(secret_key("etcd/ca.key"), "etcd-ca.key");
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    /// The kubeadm-certs payload (a CA private key among the files) and the certificate
    /// key that encrypts it: `Debug` shows the file names and sizes, not their bytes.
    #[test]
    fn debug_redacts_the_payload_and_the_key() {
        let pem = crate::pki::PrivateKey::generate(crate::config::EncryptionAlgorithm::EcdsaP256)
            .unwrap()
            .to_pem();
        let files = vec![SharedFile {
            rel: "ca.key".into(),
            contents: pem.clone().into_bytes(),
        }];
        let dbg = format!("{files:?}");
        assert!(
            dbg.contains("ca.key") && dbg.contains("<redacted>"),
            "{dbg}"
        );
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!dbg.contains(line), "{dbg}");
        }
        // Not even the bytes as numbers.
        let bytes = format!("{:?}", &pem.as_bytes()[..8]);
        assert!(!dbg.contains(bytes.trim_matches(['[', ']'])), "{dbg}");
        let key = new_certificate_key();
        assert_eq!(key.expose().len(), 64);
        assert_eq!(format!("{key:?}"), "<redacted>");
        // What decode_secret returns is the same type.
        let k = parse_certificate_key(key.expose()).unwrap();
        let secret =
            serde_json::json!({"data": {"ca.key": B64.encode(encrypt(pem.as_bytes(), &k))}});
        let back = decode_secret(&secret, &["ca.key"], &k).unwrap();
        assert_eq!(back, files);
        assert!(!format!("{back:?}").contains(pem.lines().nth(1).unwrap()));
    }
}

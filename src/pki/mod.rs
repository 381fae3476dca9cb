//! The cluster PKI: the certificate table ([`spec`]), key and certificate generation
//! ([`keys`], [`cert`]), idempotent creation on a host ([`ensure`]), expiry listing and
//! renewal ([`expiry`], [`renew`]). Files are read and written only through [`Host`].

pub mod cert;
pub(crate) mod der;
pub mod ensure;
pub mod expiry;
pub mod keys;
pub mod renew;
pub mod spec;

pub use cert::{CertRequest, Certificate, Usage};
pub use keys::PrivateKey;

use crate::host::{Host, HostError, WriteOptions};
use std::path::{Path, PathBuf};

/// Why a PKI operation failed; each variant names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{}: {reason}; {advice}", path.display())]
    Invalid {
        path: PathBuf,
        reason: String,
        advice: &'static str,
    },
    #[error("{}: private key without its certificate {}; restore the certificate or remove the key", key.display(), cert.display())]
    OrphanKey { key: PathBuf, cert: PathBuf },
    #[error(
        "external CA mode: {ca} has no private key, so kubeboot cannot sign {}; create {} and {} signed by your {ca} CA, then run again",
        cert.display(), cert.display(), key.display()
    )]
    ExternalCaMissingLeaf {
        ca: String,
        cert: PathBuf,
        key: PathBuf,
    },
    #[error("the {name} certificate authority is missing ({}); run `kubeboot init phase certs {name}` first", path.display())]
    MissingCa { name: String, path: PathBuf },
    #[error("{0}")]
    Crypto(String),
    #[error("unknown certificate {name:?}; known: {known}")]
    UnknownCert { name: String, known: String },
}

/// Advice for a broken leaf certificate.
pub const LEAF_ADVICE: &str =
    "remove it (and its key) to have kubeboot generate a new one, or run again with --force";
/// Advice for a broken CA: regenerating it would invalidate every certificate it signed.
pub const CA_ADVICE: &str = "restore it from a backup; kubeboot never replaces a CA because every certificate it signed would stop working";

/// Where `<base>.crt` lives.
pub fn cert_path(dir: &Path, base: &str) -> PathBuf {
    dir.join(format!("{base}.crt"))
}

/// Where `<base>.key` lives.
pub fn key_path(dir: &Path, base: &str) -> PathBuf {
    dir.join(format!("{base}.key"))
}

/// A file that may be absent, readable, or present but unusable.
#[derive(Debug)]
pub enum FileState<T> {
    Absent,
    Ok(T),
    Corrupt(String),
}

/// Reads a certificate file from a host.
pub fn read_cert(host: &dyn Host, path: &Path) -> Result<FileState<Certificate>, PkiError> {
    Ok(match host.read_file(path)? {
        None => FileState::Absent,
        Some(bytes) => match Certificate::from_pem(&bytes) {
            Ok(c) => FileState::Ok(c),
            Err(e) => FileState::Corrupt(e),
        },
    })
}

/// Reads a private key file from a host.
pub fn read_key(host: &dyn Host, path: &Path) -> Result<FileState<PrivateKey>, PkiError> {
    Ok(match host.read_file(path)? {
        None => FileState::Absent,
        Some(bytes) => match std::str::from_utf8(&bytes)
            .map_err(|_| "not a PEM private key".to_string())
            .and_then(PrivateKey::from_pem)
        {
            Ok(k) => FileState::Ok(k),
            Err(e) => FileState::Corrupt(e),
        },
    })
}

/// Writes a key (0600) and then its certificate (0644), each atomically.
pub fn write_pair(
    host: &dyn Host,
    dir: &Path,
    base: &str,
    cert: &Certificate,
    key: &PrivateKey,
) -> Result<(), PkiError> {
    host.write_file(
        &key_path(dir, base),
        key.to_pem().as_bytes(),
        WriteOptions::PRIVATE,
    )?;
    host.write_file(
        &cert_path(dir, base),
        cert.to_pem().as_bytes(),
        WriteOptions::PUBLIC,
    )?;
    Ok(())
}

/// Loads a CA certificate and, if present, its key (absent key = external CA).
pub fn load_ca(
    host: &dyn Host,
    dir: &Path,
    name: &str,
) -> Result<(Certificate, Option<PrivateKey>), PkiError> {
    let spec = spec::find(name).ok_or_else(|| PkiError::UnknownCert {
        name: name.into(),
        known: spec::CERTS
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let cp = cert_path(dir, spec.base);
    let kp = key_path(dir, spec.base);
    let cert = match read_cert(host, &cp)? {
        FileState::Ok(c) => c,
        FileState::Absent => {
            return Err(PkiError::MissingCa {
                name: name.into(),
                path: cp,
            });
        }
        FileState::Corrupt(reason) => {
            return Err(PkiError::Invalid {
                path: cp,
                reason,
                advice: CA_ADVICE,
            });
        }
    };
    let key = match read_key(host, &kp)? {
        FileState::Ok(k) => {
            if !cert.matches_key(&k) {
                return Err(PkiError::Invalid {
                    path: kp,
                    reason: format!("this key does not belong to {}", cp.display()),
                    advice: CA_ADVICE,
                });
            }
            Some(k)
        }
        FileState::Absent => None,
        FileState::Corrupt(reason) => {
            return Err(PkiError::Invalid {
                path: kp,
                reason,
                advice: CA_ADVICE,
            });
        }
    };
    Ok((cert, key))
}

/// `sha256:<hex>` of the cluster CA's public key, for `--discovery-token-ca-cert-hash`.
pub fn ca_hash(host: &dyn Host, dir: &Path) -> Result<String, PkiError> {
    let (ca, _) = load_ca(host, dir, "ca")?;
    Ok(ca.spki_sha256())
}

//! `certs renew`: re-sign a certificate with the CA on disk, keeping its subject, SANs and
//! usages as they are in the existing certificate (kubeadm treats the existing certificate
//! as the source of truth) and giving it a fresh key of the same algorithm.

use super::spec::{self, BACKDATE};
use super::{
    CertRequest, Certificate, FileState, LEAF_ADVICE, PkiError, PrivateKey, cert_path, key_path,
    load_ca, read_cert, read_key, write_pair,
};
use crate::host::Host;
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

/// The request that renews `old`: same names and usages, new validity.
pub fn renewal_request(old: &Certificate, validity: Duration, now: OffsetDateTime) -> CertRequest {
    CertRequest {
        cn: old.cn.clone(),
        orgs: old.orgs.clone(),
        dns: old.dns.clone(),
        ips: old.ips.clone(),
        usages: old.usages.clone(),
        is_ca: false,
        not_before: now - BACKDATE,
        not_after: now + validity,
    }
}

/// Re-signs `old` with the CA `ca_name` in `cert_dir`, with a new key like `old_key`.
pub fn resign(
    host: &dyn Host,
    cert_dir: &Path,
    ca_name: &str,
    old: &Certificate,
    old_key: &PrivateKey,
    validity: Duration,
) -> Result<(Certificate, PrivateKey), PkiError> {
    let (ca, ca_key) = load_ca(host, cert_dir, ca_name)?;
    let Some(ca_key) = ca_key else {
        return Err(PkiError::Crypto(format!(
            "the {ca_name} CA is external (no {ca_name} key on this node): renew this certificate with your own CA"
        )));
    };
    let req = renewal_request(old, validity, OffsetDateTime::now_utc());
    let key = PrivateKey::generate(old_key.algorithm())?;
    let cert = Certificate::issue(&req, &key, Some((&ca, &ca_key)))?;
    Ok((cert, key))
}

/// Renews one certificate of the table by kubeadm name (`apiserver`, `etcd-peer`, ...).
pub fn renew_cert(
    host: &dyn Host,
    cert_dir: &Path,
    name: &str,
    validity: Duration,
) -> Result<Certificate, PkiError> {
    let spec = spec::find(name)
        .filter(|s| !s.is_ca())
        .ok_or_else(|| PkiError::UnknownCert {
            name: name.into(),
            known: renewable_names().join(", "),
        })?;
    let cp = cert_path(cert_dir, spec.base);
    let kp = key_path(cert_dir, spec.base);
    let invalid = |path: &Path, reason: String| PkiError::Invalid {
        path: path.to_path_buf(),
        reason,
        advice: LEAF_ADVICE,
    };
    let old = match read_cert(host, &cp)? {
        FileState::Ok(c) => c,
        FileState::Absent => return Err(invalid(&cp, "there is no certificate to renew".into())),
        FileState::Corrupt(r) => return Err(invalid(&cp, r)),
    };
    let old_key = match read_key(host, &kp)? {
        FileState::Ok(k) => k,
        FileState::Absent => return Err(invalid(&kp, "the private key is missing".into())),
        FileState::Corrupt(r) => return Err(invalid(&kp, r)),
    };
    let (cert, key) = resign(
        host,
        cert_dir,
        spec.ca.unwrap_or("ca"),
        &old,
        &old_key,
        validity,
    )?;
    write_pair(host, cert_dir, spec.base, &cert, &key)?;
    Ok(cert)
}

/// Names `certs renew` accepts for files in the cert dir, sorted like kubeadm lists them.
pub fn renewable_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = spec::CERTS
        .iter()
        .filter(|s| !s.is_ca())
        .map(|s| s.name)
        .collect();
    v.sort();
    v
}

/// `certs renew --csr-only`: instead of renewing, writes `<base>.csr` (same subject, SANs
/// and usages as `old`) and its new key `<base>.key` into `csr_dir` for an external CA to
/// sign, as kubeadm does. In the cert dir the new key replaces the old one, so the signed
/// certificate has to be put beside it before the component restarts. Returns the CSR path.
pub fn write_request(
    host: &dyn Host,
    csr_dir: &Path,
    base: &str,
    old: &Certificate,
    algorithm: crate::config::EncryptionAlgorithm,
) -> Result<std::path::PathBuf, PkiError> {
    let now = OffsetDateTime::now_utc();
    let req = renewal_request(old, Duration::from_secs(0), now);
    let key = PrivateKey::generate(algorithm)?;
    let pem = Certificate::request_pem(&req, &key)?;
    let csr_path = csr_dir.join(format!("{base}.csr"));
    host.write_file(
        &csr_dir.join(format!("{base}.key")),
        key.to_pem().as_bytes(),
        crate::host::WriteOptions::PRIVATE,
    )?;
    host.write_file(&csr_path, pem.as_bytes(), crate::host::WriteOptions::PUBLIC)?;
    Ok(csr_path)
}

/// The existing certificate of a table entry, for `--csr-only`: the certificate and the
/// algorithm of its key.
pub fn existing(
    host: &dyn Host,
    cert_dir: &Path,
    name: &str,
) -> Result<
    (
        &'static str,
        Certificate,
        crate::config::EncryptionAlgorithm,
    ),
    PkiError,
> {
    let spec = spec::find(name)
        .filter(|s| !s.is_ca())
        .ok_or_else(|| PkiError::UnknownCert {
            name: name.into(),
            known: renewable_names().join(", "),
        })?;
    let cp = cert_path(cert_dir, spec.base);
    let invalid = |reason: String| PkiError::Invalid {
        path: cp.clone(),
        reason,
        advice: LEAF_ADVICE,
    };
    let old = match read_cert(host, &cp)? {
        FileState::Ok(c) => c,
        FileState::Absent => return Err(invalid("there is no certificate to renew".into())),
        FileState::Corrupt(r) => return Err(invalid(r)),
    };
    let algorithm = super::keys::algorithm_of_spki(&old.spki).map_err(invalid)?;
    Ok((spec.base, old, algorithm))
}

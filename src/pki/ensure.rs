//! Creating the PKI on a host, idempotently like kubeadm: valid existing files are kept,
//! missing ones are generated, broken ones are errors (or, for leaf certificates with
//! `--force`, replaced). Everything is checked before anything is written, so a run that
//! fails leaves the directory as it found it.

use super::spec::{self, CertSpec};
use super::{
    CA_ADVICE, Certificate, FileState, LEAF_ADVICE, PkiError, PrivateKey, cert_path, key_path,
    read_cert, read_key, write_pair,
};
use crate::config::InitConfig;
use crate::host::{Host, WriteOptions};
use std::collections::HashMap;
use std::path::Path;
use time::OffsetDateTime;

/// What happened to one certificate or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Generated,
    Kept,
    /// A CA certificate without its key: kept and used as an external CA.
    KeptExternal,
    /// Replaced because of `--force`; says what was wrong.
    Regenerated(String),
}

/// The result for one row of the table (or `sa`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub name: &'static str,
    pub is_ca: bool,
    pub action: Action,
    /// For serving certificates: the SANs, as kubeadm prints them.
    pub sans: Option<String>,
}

impl Outcome {
    /// The line kubeadm prints for this outcome.
    pub fn message(&self) -> String {
        let mut m = match (&self.action, self.is_ca, self.name) {
            (Action::Generated, _, "sa") => "Generating \"sa\" key and public key".to_string(),
            (Action::Kept, _, "sa") => "Using the existing \"sa\" key".to_string(),
            (Action::Generated, _, n) => format!("Generating \"{n}\" certificate and key"),
            (Action::Kept, true, n) => format!("Using existing {n} certificate authority"),
            (Action::Kept, false, n) => {
                format!("Using existing {n} certificate and key on disk")
            }
            (Action::KeptExternal, _, n) => format!(
                "Using existing {n} certificate authority without its key (external CA mode)"
            ),
            (Action::Regenerated(why), _, n) => {
                format!("Regenerating \"{n}\" certificate and key (--force): {why}")
            }
        };
        if let (Some(s), Action::Generated | Action::Regenerated(_)) = (&self.sans, &self.action) {
            m.push_str(&format!("\n{} serving cert is signed for {s}", self.name));
        }
        m
    }
}

/// Options of `init phase certs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CertOptions {
    /// Replace leaf certificates that are invalid for the configuration.
    pub force: bool,
}

/// A CA as loaded or planned: its certificate and, unless external, its key.
struct CaState {
    cert: Certificate,
    key: Option<PrivateKey>,
}

/// What a leaf certificate lacks compared with the configuration; empty when valid.
pub fn leaf_problems(
    cert: &Certificate,
    key: &PrivateKey,
    ca: &Certificate,
    want: &super::CertRequest,
    now: OffsetDateTime,
) -> Vec<String> {
    let mut p = Vec::new();
    if !cert.matches_key(key) {
        p.push("the key does not belong to the certificate".to_string());
    }
    if !cert.is_signed_by(ca) {
        p.push(format!("it is not signed by the CA {:?}", ca.cn));
    }
    if cert.not_after < now {
        p.push(format!("it expired on {}", cert.not_after));
    }
    if cert.cn != want.cn {
        p.push(format!("its CN is {:?}, expected {:?}", cert.cn, want.cn));
    }
    if cert.orgs != want.orgs {
        p.push(format!(
            "its O is {:?}, expected {:?}",
            cert.orgs, want.orgs
        ));
    }
    let missing_dns: Vec<String> = want
        .dns
        .iter()
        .filter(|d| !cert.dns.contains(d))
        .map(|d| format!("DNS:{d}"))
        .collect();
    let missing_ip: Vec<String> = want
        .ips
        .iter()
        .filter(|i| !cert.ips.contains(i))
        .map(|i| format!("IP:{i}"))
        .collect();
    let missing: Vec<String> = missing_dns.into_iter().chain(missing_ip).collect();
    if !missing.is_empty() {
        let extra: Vec<String> = cert
            .dns
            .iter()
            .filter(|d| !want.dns.contains(d))
            .map(|d| format!("DNS:{d}"))
            .chain(
                cert.ips
                    .iter()
                    .filter(|i| !want.ips.contains(i))
                    .map(|i| format!("IP:{i}")),
            )
            .collect();
        let mut s = format!(
            "its SANs differ from the configuration: missing {}",
            missing.join(", ")
        );
        if !extra.is_empty() {
            s.push_str(&format!("; not configured: {}", extra.join(", ")));
        }
        p.push(s);
    }
    for u in &want.usages {
        if !cert.usages.contains(u) {
            p.push(format!("it lacks the {u:?} extended key usage"));
        }
    }
    p
}

fn load_or_plan_ca(
    host: &dyn Host,
    cfg: &InitConfig,
    spec: &CertSpec,
    generate: bool,
    now: OffsetDateTime,
) -> Result<(CaState, Action), PkiError> {
    let dir = &cfg.cert_dir;
    let cp = cert_path(dir, spec.base);
    let kp = key_path(dir, spec.base);
    let invalid = |path: &Path, reason: String| PkiError::Invalid {
        path: path.to_path_buf(),
        reason,
        advice: CA_ADVICE,
    };
    match (read_cert(host, &cp)?, read_key(host, &kp)?) {
        (FileState::Corrupt(r), _) => Err(invalid(&cp, r)),
        (_, FileState::Corrupt(r)) => Err(invalid(&kp, r)),
        (FileState::Absent, FileState::Ok(_)) => Err(PkiError::OrphanKey { key: kp, cert: cp }),
        (FileState::Ok(cert), key) => {
            if !cert.is_ca {
                return Err(invalid(&cp, "it is not a CA certificate".into()));
            }
            if cert.not_after < now {
                return Err(invalid(
                    &cp,
                    format!("the CA expired on {}", cert.not_after),
                ));
            }
            match key {
                FileState::Ok(k) if !cert.matches_key(&k) => Err(invalid(
                    &kp,
                    format!("this key does not belong to {}", cp.display()),
                )),
                FileState::Ok(k) => Ok((CaState { cert, key: Some(k) }, Action::Kept)),
                _ => Ok((CaState { cert, key: None }, Action::KeptExternal)),
            }
        }
        (FileState::Absent, FileState::Absent) if generate => {
            let key = PrivateKey::generate(cfg.encryption_algorithm)?;
            let cert = Certificate::issue(&spec.request(cfg, now), &key, None)?;
            Ok((
                CaState {
                    cert,
                    key: Some(key),
                },
                Action::Generated,
            ))
        }
        (FileState::Absent, FileState::Absent) => Err(PkiError::MissingCa {
            name: spec.name.into(),
            path: cp,
        }),
    }
}

/// Ensures the certificates named in `names` (kubeadm names, e.g. `ca`, `apiserver`), in
/// table order. CAs that a named leaf needs but that are not named must already exist.
pub fn ensure_certs(
    host: &dyn Host,
    cfg: &InitConfig,
    names: &[&str],
    opts: CertOptions,
) -> Result<Vec<Outcome>, PkiError> {
    let now = OffsetDateTime::now_utc();
    let dir = &cfg.cert_dir;
    let mut cas: HashMap<&str, CaState> = HashMap::new();
    let mut outcomes = Vec::new();
    let mut writes: Vec<(&'static str, Certificate, PrivateKey)> = Vec::new();
    let mut new_cas: Vec<&'static CertSpec> = Vec::new();
    for spec in spec::needed(cfg) {
        let named = names.contains(&spec.name);
        if spec.is_ca() {
            let leaf_needs_it =
                spec::needed(cfg).any(|l| l.ca == Some(spec.name) && names.contains(&l.name));
            if !named && !leaf_needs_it {
                continue;
            }
            let (state, action) = load_or_plan_ca(host, cfg, spec, named, now)?;
            if named {
                if action == Action::Generated {
                    new_cas.push(spec);
                }
                outcomes.push(Outcome {
                    name: spec.name,
                    is_ca: true,
                    action,
                    sans: None,
                });
            }
            cas.insert(spec.name, state);
            continue;
        }
        if !named {
            continue;
        }
        let ca_name = spec.ca.expect("leaf has a CA");
        let ca = cas.get(ca_name).expect("CA loaded before its leaves");
        let want = spec.request(cfg, now);
        let cp = cert_path(dir, spec.base);
        let kp = key_path(dir, spec.base);
        let problem: Option<(std::path::PathBuf, String)> =
            match (read_cert(host, &cp)?, read_key(host, &kp)?) {
                (FileState::Ok(cert), FileState::Ok(key)) => {
                    let p = leaf_problems(&cert, &key, &ca.cert, &want, now);
                    if p.is_empty() {
                        outcomes.push(Outcome {
                            name: spec.name,
                            is_ca: false,
                            action: Action::Kept,
                            sans: None,
                        });
                        continue;
                    }
                    Some((cp.clone(), p.join("; ")))
                }
                (FileState::Absent, FileState::Absent) => None,
                (FileState::Corrupt(r), _) => Some((cp.clone(), r)),
                (_, FileState::Corrupt(r)) => Some((kp.clone(), r)),
                (FileState::Ok(_), FileState::Absent) => {
                    Some((kp.clone(), "the private key is missing".into()))
                }
                (FileState::Absent, FileState::Ok(_)) => Some((
                    cp.clone(),
                    "the certificate is missing but its key exists".into(),
                )),
            };
        let action = match problem {
            None => Action::Generated,
            Some((path, reason)) if !opts.force || ca.key.is_none() => {
                return Err(PkiError::Invalid {
                    path,
                    reason,
                    advice: LEAF_ADVICE,
                });
            }
            Some((_, reason)) => Action::Regenerated(reason),
        };
        let Some(ca_key) = &ca.key else {
            return Err(PkiError::ExternalCaMissingLeaf {
                ca: ca_name.into(),
                cert: cp,
                key: kp,
            });
        };
        let key = PrivateKey::generate(cfg.encryption_algorithm)?;
        let cert = Certificate::issue(&want, &key, Some((&ca.cert, ca_key)))?;
        let sans = (!want.dns.is_empty() && want.usages.contains(&super::Usage::ServerAuth))
            .then(|| cert.describe_sans());
        outcomes.push(Outcome {
            name: spec.name,
            is_ca: false,
            action,
            sans,
        });
        writes.push((spec.base, cert, key));
    }
    for spec in new_cas {
        let ca = &cas[spec.name];
        let key = ca.key.as_ref().expect("generated CA has its key");
        write_pair(host, dir, spec.base, &ca.cert, key)?;
    }
    for (base, cert, key) in &writes {
        write_pair(host, dir, base, cert, key)?;
    }
    Ok(outcomes)
}

/// Ensures `sa.key` and `sa.pub`, the service-account token signing pair.
pub fn ensure_sa(host: &dyn Host, cfg: &InitConfig) -> Result<Outcome, PkiError> {
    let dir = &cfg.cert_dir;
    let kp = dir.join("sa.key");
    let pp = dir.join("sa.pub");
    let outcome = |action| Outcome {
        name: "sa",
        is_ca: false,
        action,
        sans: None,
    };
    match read_key(host, &kp)? {
        FileState::Corrupt(reason) => Err(PkiError::Invalid {
            path: kp,
            reason,
            advice: "restore it from a backup: replacing it invalidates every service account token",
        }),
        FileState::Ok(key) => {
            let want = key.public_key_pem();
            match host.read_file(&pp)? {
                Some(b) if b == want.as_bytes() => Ok(outcome(Action::Kept)),
                Some(_) => Err(PkiError::Invalid {
                    path: pp,
                    reason: "it is not the public half of sa.key".into(),
                    advice: "remove sa.pub; kubeboot derives it again from sa.key",
                }),
                None => {
                    host.write_file(&pp, want.as_bytes(), WriteOptions::PRIVATE)?;
                    Ok(outcome(Action::Kept))
                }
            }
        }
        FileState::Absent => {
            if host.read_file(&pp)?.is_some() {
                return Err(PkiError::OrphanKey { key: pp, cert: kp });
            }
            let key = PrivateKey::generate(cfg.encryption_algorithm)?;
            host.write_file(&kp, key.to_pem().as_bytes(), WriteOptions::PRIVATE)?;
            host.write_file(&pp, key.public_key_pem().as_bytes(), WriteOptions::PRIVATE)?;
            Ok(outcome(Action::Generated))
        }
    }
}

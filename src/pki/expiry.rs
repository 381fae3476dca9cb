//! `certs check-expiration`: when each certificate and CA expires, as kubeadm lists them.

use super::spec;
use super::{Certificate, FileState, PkiError, cert_path, key_path, read_cert};
use crate::host::Host;
use std::path::Path;
use time::OffsetDateTime;

/// One row of kubeadm's tables.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryRow {
    pub name: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expiration_date: Option<OffsetDateTime>,
    /// Seconds left (negative when expired), like kubeadm's residualTime in spirit.
    pub residual_seconds: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub certificate_authority_name: String,
    pub externally_managed: bool,
    pub missing: bool,
}

/// Both of kubeadm's tables.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryReport {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub certificates: Vec<ExpiryRow>,
    pub certificate_authorities: Vec<ExpiryRow>,
}

/// A client certificate embedded in a kubeconfig, found by the caller.
pub struct EmbeddedCert {
    pub file_name: String,
    pub cert: Option<Certificate>,
}

fn row(
    name: &str,
    cert: Option<&Certificate>,
    ca: &str,
    external: bool,
    now: OffsetDateTime,
) -> ExpiryRow {
    ExpiryRow {
        name: name.to_string(),
        expiration_date: cert.map(|c| c.not_after),
        residual_seconds: cert
            .map(|c| (c.not_after - now).whole_seconds())
            .unwrap_or(0),
        certificate_authority_name: ca.to_string(),
        externally_managed: external,
        missing: cert.is_none(),
    }
}

/// Builds the report from the cert dir and the kubeconfig client certificates given.
pub fn report(
    host: &dyn Host,
    cert_dir: &Path,
    kubeconfigs: &[EmbeddedCert],
    with_etcd: bool,
) -> Result<ExpiryReport, PkiError> {
    let now = OffsetDateTime::now_utc();
    let mut external = std::collections::HashMap::new();
    let mut cas = Vec::new();
    for s in spec::CERTS
        .iter()
        .filter(|s| s.is_ca() && (with_etcd || !s.etcd))
    {
        let cert = match read_cert(host, &cert_path(cert_dir, s.base))? {
            FileState::Ok(c) => Some(c),
            _ => None,
        };
        let ext = cert.is_some() && host.read_file(&key_path(cert_dir, s.base))?.is_none();
        external.insert(s.name, ext);
        cas.push(row(s.name, cert.as_ref(), "", ext, now));
    }
    let mut certs = Vec::new();
    for s in spec::CERTS
        .iter()
        .filter(|s| !s.is_ca() && (with_etcd || !s.etcd))
    {
        let cert = match read_cert(host, &cert_path(cert_dir, s.base))? {
            FileState::Ok(c) => Some(c),
            _ => None,
        };
        let ca = s.ca.unwrap_or_default();
        let ext = external.get(ca).copied().unwrap_or(false);
        certs.push(row(s.name, cert.as_ref(), ca, ext, now));
    }
    for k in kubeconfigs {
        let ext = external.get("ca").copied().unwrap_or(false);
        certs.push(row(&k.file_name, k.cert.as_ref(), "ca", ext, now));
    }
    certs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ExpiryReport {
        kind: "CertificateExpirationInfo",
        api_version: "output.kubeboot.io/v1alpha1",
        certificates: certs,
        certificate_authorities: cas,
    })
}

/// kubeadm's `ShortHumanDuration`: `364d`, `9y`, `<invalid>` once expired.
pub fn short_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 365 * 86400 => format!("{}d", s / 86400),
        s => format!("{}y", s / (365 * 86400)),
    }
}

fn expires(d: Option<OffsetDateTime>) -> String {
    let fmt =
        time::macros::format_description!("[month repr:short] [day], [year] [hour]:[minute] UTC");
    d.and_then(|d| d.to_offset(time::UtcOffset::UTC).format(&fmt).ok())
        .unwrap_or_default()
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Left-aligned columns separated by three spaces, as kubeadm's tables.
pub fn table(rows: Vec<Vec<String>>) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// One of kubeadm's tables: the header, a row per present entry, then `!MISSING!` lines.
fn section(
    header: &[&str],
    entries: &[ExpiryRow],
    row: impl Fn(&ExpiryRow) -> Vec<String>,
) -> String {
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect()];
    let mut missing = String::new();
    for r in entries {
        if r.missing {
            missing.push_str(&format!("!MISSING! {}\n", r.name));
        } else {
            rows.push(row(r));
        }
    }
    table(rows) + &missing
}

impl ExpiryReport {
    /// kubeadm's two text tables; missing certificates are listed as `!MISSING!`.
    pub fn to_text(&self) -> String {
        let certs = section(
            &[
                "CERTIFICATE",
                "EXPIRES",
                "RESIDUAL TIME",
                "CERTIFICATE AUTHORITY",
                "EXTERNALLY MANAGED",
            ],
            &self.certificates,
            |r| {
                vec![
                    r.name.clone(),
                    expires(r.expiration_date),
                    short_duration(r.residual_seconds),
                    r.certificate_authority_name.clone(),
                    yes_no(r.externally_managed).into(),
                ]
            },
        );
        let cas = section(
            &[
                "CERTIFICATE AUTHORITY",
                "EXPIRES",
                "RESIDUAL TIME",
                "EXTERNALLY MANAGED",
            ],
            &self.certificate_authorities,
            |r| {
                vec![
                    r.name.clone(),
                    expires(r.expiration_date),
                    short_duration(r.residual_seconds),
                    yes_no(r.externally_managed).into(),
                ]
            },
        );
        format!("{certs}\n{cas}")
    }
}

#[cfg(test)]
mod tests {
    use super::short_duration;

    #[test]
    fn durations_like_kubeadm() {
        assert_eq!(short_duration(364 * 86400 + 5), "364d");
        assert_eq!(short_duration(10 * 365 * 86400 - 600), "9y");
        assert_eq!(short_duration(30 * 3600), "30h");
        assert_eq!(short_duration(-100), "<invalid>");
        assert_eq!(short_duration(59), "59s");
    }
}

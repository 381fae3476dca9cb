//! X.509 certificates: issued exactly as kubeadm issues them (subject order, key usages,
//! SAN order, serial range, validity), and read back for validation and inspection.

use super::PkiError;
use super::keys::PrivateKey;
use ::time::OffsetDateTime;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use std::net::IpAddr;
use x509_parser::prelude::*;

/// Extended key usage of a leaf certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Usage {
    ServerAuth,
    ClientAuth,
}

/// What a certificate must say; kubeboot's input to issuing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequest {
    pub cn: String,
    pub orgs: Vec<String>,
    /// DNS SANs, de-duplicated and sorted (kubeadm's `RemoveDuplicateAltNames`).
    pub dns: Vec<String>,
    /// IP SANs, de-duplicated with their order kept.
    pub ips: Vec<IpAddr>,
    pub usages: Vec<Usage>,
    pub is_ca: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl CertRequest {
    /// Puts SANs in kubeadm's order: DNS names sorted and unique, IPs unique in order.
    pub fn normalize_sans(&mut self) {
        self.dns.sort();
        self.dns.dedup();
        let mut seen = Vec::new();
        self.ips.retain(|ip| {
            if seen.contains(ip) {
                false
            } else {
                seen.push(*ip);
                true
            }
        });
    }
}

/// A parsed certificate and the facts kubeboot checks about it.
#[derive(Debug, Clone)]
pub struct Certificate {
    der: Vec<u8>,
    pub cn: String,
    pub orgs: Vec<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub usages: Vec<Usage>,
    pub is_ca: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// DER SubjectPublicKeyInfo, for key matching and the CA hash.
    pub spki: Vec<u8>,
}

fn serial() -> SerialNumber {
    // Uniform in [1, 2^63 - 1), like kubeadm; big-endian, minimal, positive.
    let n = (rand::random::<u64>() % (i64::MAX as u64 - 1)) + 1;
    let mut bytes: Vec<u8> = n
        .to_be_bytes()
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    if bytes[0] & 0x80 != 0 {
        bytes.insert(0, 0);
    }
    SerialNumber::from_slice(&bytes)
}

impl Certificate {
    /// Issues a certificate for `key`. With `issuer = None` it is self-signed (a CA).
    pub fn issue(
        req: &CertRequest,
        key: &PrivateKey,
        issuer: Option<(&Certificate, &PrivateKey)>,
    ) -> Result<Certificate, PkiError> {
        let params = Self::params(req)?;
        let crypto = |e: rcgen::Error| PkiError::Crypto(format!("signing {}: {e}", req.cn));
        let cert = match issuer {
            None => params.self_signed(key.pair()).map_err(crypto)?,
            Some((ca, ca_key)) => {
                let issuer = Issuer::from_ca_cert_der(&ca.der.clone().into(), ca_key.pair())
                    .map_err(crypto)?;
                params.signed_by(key.pair(), &issuer).map_err(crypto)?
            }
        };
        Certificate::from_der(cert.der().to_vec()).map_err(PkiError::Crypto)
    }

    /// A PEM `CERTIFICATE REQUEST` for `key` with the subject and SANs of `req`, for an
    /// external CA to sign (`certs renew --csr-only`).
    pub fn request_pem(req: &CertRequest, key: &PrivateKey) -> Result<String, PkiError> {
        let full = Self::params(req)?;
        // A request carries names and usages; validity, serial and CA fields are the CA's.
        let mut params = CertificateParams::default();
        params.distinguished_name = full.distinguished_name;
        params.subject_alt_names = full.subject_alt_names;
        params.key_usages = full.key_usages;
        params.extended_key_usages = full.extended_key_usages;
        let csr = params
            .serialize_request(key.pair())
            .map_err(|e| PkiError::Crypto(format!("a request for {}: {e}", req.cn)))?;
        csr.pem()
            .map_err(|e| PkiError::Crypto(format!("a request for {}: {e}", req.cn)))
    }

    fn params(req: &CertRequest) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        // Go writes O before CN; a second O needs rcgen's custom type (rcgen issue #81).
        for (i, o) in req.orgs.iter().enumerate() {
            let ty = if i == 0 {
                DnType::OrganizationName
            } else {
                DnType::CustomDnType(vec![2, 5, 4, 10])
            };
            dn.push(ty, o.as_str());
        }
        dn.push(DnType::CommonName, req.cn.as_str());
        params.distinguished_name = dn;
        params.serial_number = Some(serial());
        params.not_before = req.not_before;
        params.not_after = req.not_after;
        let mut sans = Vec::new();
        for d in &req.dns {
            sans.push(SanType::DnsName(d.clone().try_into().map_err(|_| {
                PkiError::Crypto(format!("invalid DNS SAN {d:?}"))
            })?));
        }
        sans.extend(req.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if req.is_ca {
            params.key_usages.push(KeyUsagePurpose::KeyCertSign);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        } else {
            params.is_ca = IsCa::ExplicitNoCa;
            params.use_authority_key_identifier_extension = true;
        }
        params.extended_key_usages = req
            .usages
            .iter()
            .map(|u| match u {
                Usage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
                Usage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
            })
            .collect();
        Ok(params)
    }

    /// Parses the first certificate of a PEM file.
    pub fn from_pem(text: &[u8]) -> Result<Certificate, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(text)
            .map_err(|_| "not a PEM certificate".to_string())?;
        if pem.label != "CERTIFICATE" {
            return Err(format!("PEM block is {:?}, not CERTIFICATE", pem.label));
        }
        Certificate::from_der(pem.contents)
    }

    /// Parses DER.
    pub fn from_der(der: Vec<u8>) -> Result<Certificate, String> {
        let (cn, orgs, dns, ips, usages, is_ca, nb, na, spki) = {
            let (_, x) = parse_x509_certificate(&der)
                .map_err(|e| format!("not a valid X.509 certificate ({e})"))?;
            let subject = x.subject();
            let cn = subject
                .iter_common_name()
                .next()
                .and_then(|a| a.as_str().ok())
                .unwrap_or_default()
                .to_string();
            let orgs = subject
                .iter_organization()
                .filter_map(|a| a.as_str().ok().map(String::from))
                .collect();
            let mut dns = Vec::new();
            let mut ips = Vec::new();
            if let Ok(Some(san)) = x.subject_alternative_name() {
                for name in &san.value.general_names {
                    match name {
                        GeneralName::DNSName(d) => dns.push(d.to_string()),
                        GeneralName::IPAddress(b) => {
                            if let Ok(a) = <[u8; 4]>::try_from(*b) {
                                ips.push(IpAddr::from(a));
                            } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                                ips.push(IpAddr::from(a));
                            }
                        }
                        _ => {}
                    }
                }
            }
            let mut usages = Vec::new();
            if let Ok(Some(eku)) = x.extended_key_usage() {
                if eku.value.server_auth {
                    usages.push(Usage::ServerAuth);
                }
                if eku.value.client_auth {
                    usages.push(Usage::ClientAuth);
                }
            }
            (
                cn,
                orgs,
                dns,
                ips,
                usages,
                x.is_ca(),
                x.validity().not_before.to_datetime(),
                x.validity().not_after.to_datetime(),
                x.public_key().raw.to_vec(),
            )
        };
        Ok(Certificate {
            der,
            cn,
            orgs,
            dns,
            ips,
            usages,
            is_ca,
            not_before: nb,
            not_after: na,
            spki,
        })
    }

    /// PEM `CERTIFICATE`.
    pub fn to_pem(&self) -> String {
        ::pem::encode_config(
            &::pem::Pem::new("CERTIFICATE", self.der.clone()),
            ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
        )
    }

    /// DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Whether `ca`'s key signed this certificate.
    pub fn is_signed_by(&self, ca: &Certificate) -> bool {
        let Ok((_, me)) = parse_x509_certificate(&self.der) else {
            return false;
        };
        let Ok((_, issuer)) = parse_x509_certificate(&ca.der) else {
            return false;
        };
        me.issuer() == issuer.subject() && me.verify_signature(Some(issuer.public_key())).is_ok()
    }

    /// Whether `key` is this certificate's private key.
    pub fn matches_key(&self, key: &PrivateKey) -> bool {
        self.spki == key.spki_der()
    }

    /// `sha256:<hex>` of the SubjectPublicKeyInfo: kubeadm's `--discovery-token-ca-cert-hash`.
    pub fn spki_sha256(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(&self.spki);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// The SANs as kubeadm prints them: `DNS names [..] and IPs [..]`.
    pub fn describe_sans(&self) -> String {
        let ips: Vec<String> = self.ips.iter().map(|i| i.to_string()).collect();
        format!(
            "DNS names [{}] and IPs [{}]",
            self.dns.join(" "),
            ips.join(" ")
        )
    }
}

//! Private keys: generated in the configured algorithm, written the way kubeadm writes
//! them, and read back from any of the PEM forms Kubernetes tools produce.

use super::PkiError;
use super::der::{self, Traditional};
use crate::config::EncryptionAlgorithm;
use rcgen::{KeyPair, PublicKeyData};

/// A private key and the algorithm it belongs to.
pub struct PrivateKey {
    pair: KeyPair,
    algorithm: EncryptionAlgorithm,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.algorithm.as_str())
    }
}

impl PrivateKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate(algorithm: EncryptionAlgorithm) -> Result<Self, PkiError> {
        use EncryptionAlgorithm::*;
        let rsa = |size| KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size);
        let pair = match algorithm {
            Rsa2048 => rsa(rcgen::RsaKeySize::_2048),
            Rsa3072 => rsa(rcgen::RsaKeySize::_3072),
            Rsa4096 => rsa(rcgen::RsaKeySize::_4096),
            EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        }
        .map_err(|e| PkiError::Crypto(format!("generating a {} key: {e}", algorithm.as_str())))?;
        Ok(PrivateKey { pair, algorithm })
    }

    /// Reads a PEM key: PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY` or PKCS#8.
    /// Only RSA (2048/3072/4096) and ECDSA (P-256/P-384) keys are accepted, as kubeadm.
    pub fn from_pem(pem_text: &str) -> Result<Self, String> {
        let pair =
            KeyPair::from_pem(pem_text).map_err(|e| format!("not a usable private key ({e})"))?;
        let algorithm = algorithm_of_spki(&pair.subject_public_key_info())?;
        Ok(PrivateKey { pair, algorithm })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> EncryptionAlgorithm {
        self.algorithm
    }

    /// PEM in kubeadm's encoding: `RSA PRIVATE KEY` (PKCS#1) or `EC PRIVATE KEY` (SEC1).
    pub fn to_pem(&self) -> String {
        let spki = self.pair.subject_public_key_info();
        let (tag, der) = match der::pkcs8_to_traditional(self.pair.serialized_der(), &spki) {
            Some(Traditional::Rsa(d)) => ("RSA PRIVATE KEY", d),
            Some(Traditional::Ec(d)) => ("EC PRIVATE KEY", d),
            // Not PKCS#8: a key read from a traditional file is kept in its own form
            // (rcgen holds the DER it was given), so it is written back under its tag.
            None => (
                der_tag(self.pair.serialized_der()),
                self.pair.serialize_der(),
            ),
        };
        pem::encode_config(
            &pem::Pem::new(tag, der),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// The public key as PEM `PUBLIC KEY` (PKIX), the format of `sa.pub`.
    pub fn public_key_pem(&self) -> String {
        self.pair.public_key_pem()
    }

    /// DER SubjectPublicKeyInfo, to match a key with a certificate.
    pub fn spki_der(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// The rcgen key pair, for signing.
    pub(crate) fn pair(&self) -> &KeyPair {
        &self.pair
    }
}

/// The PEM tag of a private key's DER by its structure: the second element of the
/// outer SEQUENCE is the AlgorithmIdentifier (PKCS#8), the private key OCTET STRING
/// (SEC1) or the modulus INTEGER (PKCS#1).
fn der_tag(key: &[u8]) -> &'static str {
    let second = der::read(key)
        .and_then(|(outer, _)| der::children(outer.content))
        .and_then(|c| c.get(1).map(|t| t.tag));
    match second {
        Some(0x04) => "EC PRIVATE KEY",
        Some(0x02) => "RSA PRIVATE KEY",
        _ => "PRIVATE KEY",
    }
}

/// Which of kubeboot's algorithms a SubjectPublicKeyInfo uses.
pub fn algorithm_of_spki(spki: &[u8]) -> Result<EncryptionAlgorithm, String> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
        .map_err(|e| format!("unreadable public key ({e})"))?;
    match info.parsed() {
        Ok(PublicKey::RSA(rsa)) => match rsa.key_size() {
            2048 => Ok(EncryptionAlgorithm::Rsa2048),
            3072 => Ok(EncryptionAlgorithm::Rsa3072),
            4096 => Ok(EncryptionAlgorithm::Rsa4096),
            n => Err(format!(
                "RSA-{n} keys are not supported (use 2048, 3072 or 4096)"
            )),
        },
        Ok(PublicKey::EC(point)) => match point.key_size() {
            256 => Ok(EncryptionAlgorithm::EcdsaP256),
            384 => Ok(EncryptionAlgorithm::EcdsaP384),
            n => Err(format!(
                "ECDSA keys of {n} bits are not supported (use P-256 or P-384)"
            )),
        },
        _ => Err("only RSA and ECDSA keys are supported".into()),
    }
}

#[cfg(test)]
mod round_trip_tests {
    use super::*;

    #[test]
    fn a_key_read_back_is_written_the_same() {
        // A key read from kubeadm's files (SEC1, PKCS#1) and written again (a kubeconfig
        // renewed with its old key) keeps its tag: an `EC PRIVATE KEY` written back as
        // `PRIVATE KEY` is a PEM no TLS library reads.
        for alg in [
            EncryptionAlgorithm::EcdsaP256,
            EncryptionAlgorithm::EcdsaP384,
            EncryptionAlgorithm::Rsa2048,
        ] {
            let first = PrivateKey::generate(alg).unwrap().to_pem();
            let again = PrivateKey::from_pem(&first).unwrap().to_pem();
            assert_eq!(again, first, "{}", alg.as_str());
        }
    }
}

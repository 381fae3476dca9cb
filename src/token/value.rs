//! Bootstrap tokens: the `<id>.<secret>` string kubeadm and the API server agree on.
//!
//! The secret half is a credential: `Debug` redacts it so a token can sit in a config
//! struct that gets logged without leaking. Only `Display` (used for the join command the
//! user asked for) prints the whole token.

use rand::Rng;
use std::fmt;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A bootstrap token `<6 chars id>.<16 chars secret>` over `[a-z0-9]`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

/// Why a string is not a bootstrap token; never echoes the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "malformed bootstrap token: it must be 6 characters of [a-z0-9], a dot, then 16 characters of [a-z0-9] (as printed by `kubeboot token generate`)"
)]
pub struct MalformedToken;

fn is_token_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

impl BootstrapToken {
    /// Parses `abcdef.0123456789abcdef`.
    pub fn parse(s: &str) -> Result<Self, MalformedToken> {
        let (id, secret) = s.split_once('.').ok_or(MalformedToken)?;
        if !is_token_part(id, 6) || !is_token_part(secret, 16) {
            return Err(MalformedToken);
        }
        Ok(BootstrapToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// A fresh token from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut pick = |n: usize| -> String {
            (0..n)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect()
        };
        BootstrapToken {
            id: pick(6),
            secret: pick(16),
        }
    }

    /// The public half: names the Secret `bootstrap-token-<id>` and the user
    /// `system:bootstrap:<id>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret half: the HMAC key of cluster-info's JWS signatures.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether a string is a valid token id (`[a-z0-9]{6}`).
    pub fn is_valid_id(s: &str) -> bool {
        is_token_part(s, 6)
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.<redacted>", self.id)
    }
}

impl serde::Serialize for BootstrapToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for BootstrapToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BootstrapToken::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_redact() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(t.id(), "abcdef");
        assert_eq!(t.secret(), "0123456789abcdef");
        assert_eq!(t.to_string(), "abcdef.0123456789abcdef");
        assert_eq!(format!("{t:?}"), "abcdef.<redacted>");
    }

    #[test]
    fn rejects_bad_tokens() {
        for bad in [
            "",
            "abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcdef0",
            "abc-ef.0123456789abcdef",
        ] {
            assert_eq!(BootstrapToken::parse(bad), Err(MalformedToken), "{bad:?}");
        }
    }

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = BootstrapToken::generate();
        let b = BootstrapToken::generate();
        assert_eq!(BootstrapToken::parse(&a.to_string()).unwrap(), a);
        assert_ne!(a, b);
    }
}

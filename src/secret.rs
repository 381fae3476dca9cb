//! A string that is a credential (a certificate key, a bootstrap token before it is
//! parsed, a join command that carries one): its `Debug` prints `<redacted>`, so a struct
//! holding it can derive `Debug` and be logged, put in a panic or an error without
//! leaking it.
//!
//! There is deliberately no `Display`: `format!("{}", secret)` does not compile, and the
//! one way to the text is [`Secret::expose`], which a reviewer can grep for. Serde sees the
//! plain string (`#[serde(transparent)]`), so config files read and write as before. A leaf
//! module: it imports nothing from the crate.

use std::fmt;

/// A secret string. `Debug` shows `<redacted>`; [`Secret::expose`] gives the text.
///
/// ```compile_fail
/// // No `Display`: a secret cannot slip into a message by accident.
/// let s = kubeboot::secret::Secret::new("abcdef.0123456789abcdef");
/// let _ = format!("{}", s);
/// ```
///
/// ```
/// let s = kubeboot::secret::Secret::new("abcdef.0123456789abcdef");
/// assert_eq!(format!("{s:?}"), "<redacted>");
/// assert_eq!(s.expose(), "abcdef.0123456789abcdef");
/// ```
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret text, for the one place that needs it (a parser, a cipher, output the
    /// user asked for). Never pass it to `{:?}` or a log line.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret text, owned.
    pub fn into_exposed(self) -> String {
        self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

/// For clap: a flag of type `Option<Secret>` takes any text (validation is the config's).
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn debug_redacts_and_expose_gives_the_text() {
        let s = Secret::new(KEY);
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert_eq!(format!("{s:#?}"), "<redacted>");
        assert_eq!(s.expose(), KEY);
        assert_eq!(s.clone().into_exposed(), KEY);
        assert!(!s.is_empty() && Secret::default().is_empty());
    }

    #[test]
    fn serde_is_the_plain_string() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Doc {
            #[serde(rename = "certificateKey")]
            key: Secret,
        }
        let json = serde_json::to_string(&Doc { key: KEY.into() }).unwrap();
        assert_eq!(json, format!("{{\"certificateKey\":\"{KEY}\"}}"));
        let back: Doc = serde_json::from_str(&json).unwrap();
        assert_eq!(back.key.expose(), KEY);
    }
}

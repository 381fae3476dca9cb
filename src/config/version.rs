//! Kubernetes versions kubeboot can set up, and the default one.

use std::fmt;

/// Minor versions of Kubernetes 1.x that kubeboot renders and tests.
pub const SUPPORTED_MINORS: std::ops::RangeInclusive<u32> = 31..=34;

/// The version `init` sets up when none is given.
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.34.2";

/// A Kubernetes release `v1.<minor>.<patch>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion {
    pub minor: u32,
    pub patch: u32,
}

impl KubeVersion {
    /// Parses `v1.34.2` or `1.34.2` and checks kubeboot supports its minor version.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().strip_prefix('v').unwrap_or(s.trim());
        let supported = supported_list();
        let parts: Vec<&str> = t.split('.').collect();
        let numbers: Option<Vec<u32>> = parts.iter().map(|p| p.parse().ok()).collect();
        let Some(numbers) = numbers.filter(|n| n.len() == 3) else {
            return Err(format!(
                "{s:?} is not an exact Kubernetes version; give one like {DEFAULT_KUBERNETES_VERSION} (labels such as \"stable\" would need the internet to resolve). Supported: {supported}"
            ));
        };
        let v = KubeVersion {
            minor: numbers[1],
            patch: numbers[2],
        };
        if numbers[0] != 1 || !SUPPORTED_MINORS.contains(&v.minor) {
            return Err(format!(
                "Kubernetes {s} is not supported by this kubeboot; supported versions: {supported}"
            ));
        }
        Ok(v)
    }
}

/// `v1.31.x, v1.32.x, v1.33.x, v1.34.x`, for error messages.
pub fn supported_list() -> String {
    SUPPORTED_MINORS
        .map(|m| format!("v1.{m}.x"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v1.{}.{}", self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_versions() {
        assert_eq!(
            KubeVersion::parse("v1.34.2").unwrap(),
            KubeVersion {
                minor: 34,
                patch: 2
            }
        );
        assert_eq!(KubeVersion::parse("1.31.0").unwrap().minor, 31);
        assert_eq!(
            KubeVersion::parse("v1.33.1").unwrap().to_string(),
            "v1.33.1"
        );
    }

    #[test]
    fn rejects_unsupported_with_the_list() {
        let err = KubeVersion::parse("v1.30.4").unwrap_err();
        assert!(err.contains("v1.31.x, v1.32.x, v1.33.x, v1.34.x"), "{err}");
        assert!(KubeVersion::parse("stable").unwrap_err().contains("exact"));
        assert!(KubeVersion::parse("v2.34.0").is_err());
        assert!(KubeVersion::parse("v1.34").is_err());
    }
}

//! Shared by the render integration tests: a fixed configuration per Kubernetes version,
//! and helpers to find external tools with a message that says how to install them.
#![allow(dead_code)]

use kubeboot::config::{InitConfig, InitOverrides, LocalFacts};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Facts of the imaginary node every golden file describes.
pub struct TestNode;

impl LocalFacts for TestNode {
    fn hostname(&self) -> Option<String> {
        Some("cp1".into())
    }
    fn default_address(&self) -> Option<IpAddr> {
        Some("192.168.56.10".parse().unwrap())
    }
}

/// Every minor version kubeboot renders.
pub fn minors() -> Vec<u32> {
    kubeboot::config::version::SUPPORTED_MINORS.collect()
}

/// The default render input for 1.`minor`: kubeadm defaults plus a pod CIDR (so the
/// controller-manager's node-CIDR flags and flannel are rendered too).
pub fn config(minor: u32) -> InitConfig {
    let o = InitOverrides {
        kubernetes_version: Some(format!("v1.{minor}.{}", patch(minor))),
        pod_network_cidr: Some("10.244.0.0/16".into()),
        ..Default::default()
    };
    InitConfig::load(None, &o, &TestNode).expect("default config is valid")
}

/// Loads a config text through the normal file path.
pub fn config_from_text(text: &str) -> Result<InitConfig, kubeboot::config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kubeadm.yaml");
    std::fs::write(&p, text).unwrap();
    InitConfig::load(Some(&p), &InitOverrides::default(), &TestNode)
}

/// The patch release used in golden files (any patch renders the same but the image tags).
pub fn patch(minor: u32) -> u32 {
    match minor {
        34 => 2,
        _ => 0,
    }
}

/// Finds `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// An empty directory to use as a node root (no CA directories, so renders are fixed).
pub fn empty_root() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Splits a YAML stream the way kubectl does (on `---` lines), dropping empty documents.
pub fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" {
            docs.push(String::new());
        } else {
            let d = docs.last_mut().unwrap();
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        })
        .collect()
}

/// Where test caches live (outside the repository).
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("KUBEBOOT_TEST_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kubeboot-test")
}

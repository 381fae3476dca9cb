//! Helpers shared by the integration tests: run the real `kubeboot` binary, find the
//! real peer tools (openssl, etcd, kubectl), compare file trees, and the fixed node and
//! configuration per Kubernetes version that golden renders describe.
#![allow(dead_code)]

use kubeboot::config::{InitConfig, InitOverrides, LocalFacts};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The kubeboot binary built for these tests.
pub fn kubeboot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kubeboot"))
}

/// Runs kubeboot with `args` under `root`; returns the output whatever the status.
pub fn run(root: &Path, args: &[&str]) -> Output {
    kubeboot()
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run kubeboot")
}

/// Runs kubeboot and requires success; returns stdout.
pub fn ok(root: &Path, args: &[&str]) -> String {
    let out = run(root, args);
    assert!(
        out.status.success(),
        "kubeboot {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs kubeboot and requires failure; returns stderr.
pub fn fails(root: &Path, args: &[&str]) -> String {
    let out = run(root, args);
    assert!(
        !out.status.success(),
        "kubeboot {args:?} should have failed:\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A peer tool the tests need; fails the test (never skips) with the way to install it.
/// `env` names a variable that may point at the tool instead of PATH.
pub fn tool(name: &str, env: &str, install: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{name} is needed by this test: {install} (or set {env}); .ci/run installs it")
    })
}

/// openssl from Debian's `openssl` package.
pub fn openssl() -> PathBuf {
    tool(
        "openssl",
        "KUBEBOOT_TEST_OPENSSL",
        "apt-get install openssl",
    )
}

/// Runs a tool; returns (success, stdout, stderr).
pub fn exec(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("spawn tool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir` with its bytes and mtime, to prove a re-run changed nothing.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.clone(),
                    (
                        std::fs::read(&p).unwrap(),
                        m.modified().unwrap(),
                        m.permissions().mode() & 0o7777,
                    ),
                );
            }
        }
    }
    out
}

/// The node's PKI directory under a test root.
pub fn pki(root: &Path) -> PathBuf {
    root.join("etc/kubernetes/pki")
}

/// Common flags for a deterministic node.
pub const NODE: &[&str] = &[
    "--apiserver-advertise-address",
    "10.0.0.5",
    "--node-name",
    "cp-1",
];

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

/// The file kubeboot's `.ci/setup` writes: `NAME=value` lines naming the real peers it
/// built or unpacked outside the repo (`set -a; . FILE; set +a` exports them).
pub const TEST_ENV: &str = "/var/cache/kubeboot/test-env";

/// A peer `.ci/setup` provides: `$var` if set, else the `var=` line of [`TEST_ENV`]; None
/// when neither names an existing file (the caller skips with a SKIPPED message).
pub fn test_env_peer(var: &str) -> Option<PathBuf> {
    let path = std::env::var(var).ok().or_else(|| {
        let text = std::fs::read_to_string(TEST_ENV).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(var)?.strip_prefix('=').map(String::from))
    })?;
    let path = PathBuf::from(path);
    path.is_file().then_some(path)
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

/// stdout of a `-o json` run as its events: every line must be one JSON object.
pub fn json_events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

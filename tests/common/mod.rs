//! Helpers shared by the integration tests: run the real `kubeboot` binary, find the
//! real peer tools (openssl, etcd, kubectl), and compare file trees.
#![allow(dead_code)]

use std::collections::BTreeMap;
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

//! The containerd 1.x configuration is accepted by a real containerd (Debian's 1.6,
//! `apt-get install containerd`): `containerd --config <file> config dump` loads and merges
//! it, and the dump shows the settings kubeboot needs. The 2.x (schema 3) file cannot be
//! checked here, as no registry reachable from CI ships containerd 2.

mod common;

use common::which;
use kubeboot::render::containerd;
use std::process::Command;

#[test]
fn containerd_1x_accepts_the_rendered_config() {
    let bin = which("containerd").unwrap_or_else(|| {
        panic!("containerd is not installed; run `apt-get install containerd` (CI installs it)")
    });
    for minor in common::minors() {
        let v = kubeboot::config::version::KubeVersion { minor, patch: 0 };
        let f = containerd::config(1, v, "registry.k8s.io").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &f.contents).unwrap();
        let out = Command::new(&bin)
            .arg("--config")
            .arg(&path)
            .args(["config", "dump"])
            .output()
            .unwrap();
        let dump = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.is_empty(),
            "1.{minor}: {err}\n{dump}"
        );
        let pause = if minor >= 34 { "3.10.1" } else { "3.10" };
        assert!(
            dump.contains(&format!(
                "sandbox_image = \"registry.k8s.io/pause:{pause}\""
            )),
            "{dump}"
        );
        assert!(dump.contains("SystemdCgroup = true"), "{dump}");
        assert!(dump.contains("disabled_plugins = []"), "{dump}");
        assert!(!dump.contains("SystemdCgroup = false"), "{dump}");
    }
    // A broken file is reported, so this test can fail.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "version = 2\n[plugins\n").unwrap();
    let out = Command::new(&bin)
        .arg("--config")
        .arg(&bad)
        .args(["config", "dump"])
        .output()
        .unwrap();
    assert!(!out.status.success() || !out.stderr.is_empty());
}

#[test]
fn containerd_2x_config_uses_schema_3_and_the_pinned_sandbox() {
    let v = kubeboot::config::version::KubeVersion {
        minor: 34,
        patch: 2,
    };
    let f = containerd::config(2, v, "registry.k8s.io").unwrap();
    let t = f.text();
    assert!(t.contains("version = 3\n"));
    assert!(t.contains("[plugins.'io.containerd.cri.v1.images'.pinned_images]\n    sandbox = \"registry.k8s.io/pause:3.10.1\""), "{t}");
    assert!(t.contains("SystemdCgroup = true"));
    let e = containerd::config(3, v, "registry.k8s.io").unwrap_err();
    assert!(
        e.to_string().contains("containerd 3.x is not supported"),
        "{e}"
    );
}

/// Hosts without CAP_SYS_RESOURCE get `restrict_oom_score_adj = true`; the real
/// containerd 1.6 reads it where the CRI plugin looks for it (the dump shows it set),
/// and without the option the dump shows containerd's default (false).
#[test]
fn restrict_oom_score_adj_reaches_containerd() {
    let bin = which("containerd").unwrap_or_else(|| {
        panic!("containerd is not installed; run `apt-get install containerd` (CI installs it)")
    });
    let v = kubeboot::config::version::KubeVersion {
        minor: 31,
        patch: 0,
    };
    let templates = kubeboot::render::Templates::embedded();
    for restrict in [true, false] {
        let f = containerd::config_with(&templates, 1, v, "kubeboot.local/lab", restrict).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &f.contents).unwrap();
        let out = Command::new(&bin)
            .arg("--config")
            .arg(&path)
            .args(["config", "dump"])
            .output()
            .unwrap();
        let dump = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            dump.contains(&format!("restrict_oom_score_adj = {restrict}")),
            "restrict={restrict}: {dump}"
        );
        assert!(
            dump.contains("sandbox_image = \"kubeboot.local/lab/pause:3.10\""),
            "{dump}"
        );
    }
    let t = containerd::config_with(&templates, 2, v, "kubeboot.local/lab", true).unwrap();
    assert!(
        t.text().contains(
            "[plugins.'io.containerd.cri.v1.runtime']\n    # This host has no CAP_SYS_RESOURCE"
        ),
        "{}",
        t.text()
    );
    assert!(t.text().contains("restrict_oom_score_adj = true"));
}

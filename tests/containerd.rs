//! kubeboot's containerd configurations are accepted by real containerds:
//! `containerd --config <file> config dump` loads and merges the file, and the dump shows
//! the settings kubeboot needs. The 1.x (schema 2) file goes to Debian bookworm's 1.6
//! (`apt-get install containerd`); the 2.x (schema 3) file to Debian sid's 2.x, which
//! `tests/controlplane/build-images.sh` unpacks and `.ci/setup` names in
//! `KUBEBOOT_TEST_CONTAINERD2`.

mod common;

use common::{TEST_ENV, test_env_peer, which};
use kubeboot::render::containerd;
use std::path::Path;
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

/// `containerd --config <text> config dump`: the merged configuration, or why containerd
/// refused the file (its status and stderr; a warning on stderr counts as a refusal).
fn config_dump(bin: &Path, text: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .args(["config", "dump"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && err.is_empty() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{}: {err}", out.status))
    }
}

/// The value of `key` in table `table` of a `config dump` ("" is the top level), as
/// containerd 2 writes it (go-toml: a `[table]` header line, then `key = value` lines).
fn dumped<'a>(dump: &'a str, table: &str, key: &str) -> Option<&'a str> {
    let mut current = "";
    for line in dump.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = header.trim_matches(['[', ']']);
        } else if current == table
            && let Some((k, v)) = line.split_once(" = ")
            && k == key
        {
            return Some(v);
        }
    }
    None
}

/// Every containerd 2.x configuration kubeboot renders (each supported Kubernetes minor,
/// with and without `restrict_oom_score_adj`) loads in a real containerd 2.x, and the dump
/// carries what kubeboot meant, each value in the table where containerd reads it.
#[test]
fn containerd_2x_accepts_the_rendered_config() {
    let Some(bin) = test_env_peer("KUBEBOOT_TEST_CONTAINERD2") else {
        eprintln!(
            "SKIPPED: containerd 2.x not found (KUBEBOOT_TEST_CONTAINERD2, written to {TEST_ENV} by .ci/setup)"
        );
        return;
    };
    let version = Command::new(&bin).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.contains("containerd/v2 2."),
        "KUBEBOOT_TEST_CONTAINERD2={} is not containerd 2.x: {version}",
        bin.display()
    );
    eprintln!("{}: {}", bin.display(), version.trim());
    const IMAGES: &str = "plugins.'io.containerd.cri.v1.images'";
    const RUNTIME: &str = "plugins.'io.containerd.cri.v1.runtime'";
    let runc = format!("{RUNTIME}.containerd.runtimes.runc");
    let cni = format!("{RUNTIME}.cni");
    // Where kubeboot puts CNI plugins (the prepare playbook links them into /opt/cni/bin,
    // flannel copies its own there) and its bridge network's conflist.
    let conf_dir = Path::new(kubeboot::podnet::CONFLIST).parent().unwrap();
    let templates = kubeboot::render::Templates::embedded();
    for minor in common::minors() {
        let v = kubeboot::config::version::KubeVersion { minor, patch: 0 };
        let pause = if minor >= 34 { "3.10.1" } else { "3.10" };
        for restrict in [false, true] {
            let f = containerd::config_with(&templates, 2, v, "registry.k8s.io", restrict).unwrap();
            let text = f.text();
            let case = format!("1.{minor}, restrict_oom_score_adj={restrict}");
            // containerd 2 migrates older schemas silently, so the file itself says 3.
            assert!(text.contains("\nversion = 3\n"), "{case}: {text}");
            let dump = config_dump(&bin, text)
                .unwrap_or_else(|e| panic!("{case}: containerd refused\n{text}\n{e}"));
            let want = [
                ("", "version", "3".to_string()),
                ("", "disabled_plugins", "[]".into()),
                (
                    &format!("{IMAGES}.pinned_images"),
                    "sandbox",
                    format!("'registry.k8s.io/pause:{pause}'"),
                ),
                (RUNTIME, "restrict_oom_score_adj", restrict.to_string()),
                (
                    &format!("{RUNTIME}.containerd"),
                    "default_runtime_name",
                    "'runc'".into(),
                ),
                (&runc, "runtime_type", "'io.containerd.runc.v2'".into()),
                (&format!("{runc}.options"), "SystemdCgroup", "true".into()),
                (&cni, "conf_dir", format!("'{}'", conf_dir.display())),
            ];
            for (table, key, value) in want {
                assert_eq!(
                    dumped(&dump, table, key),
                    Some(value.as_str()),
                    "{case}: [{table}] {key}\n{dump}"
                );
            }
            // `bin_dir`, when set, replaces the `bin_dirs` list.
            let bin_dirs = match dumped(&dump, &cni, "bin_dir") {
                Some("''") | None => dumped(&dump, &cni, "bin_dirs").unwrap_or_default(),
                Some(one) => one,
            };
            assert!(
                bin_dirs.contains("'/opt/cni/bin'"),
                "{case}: CNI plugins are not looked up in /opt/cni/bin: {bin_dirs}\n{dump}"
            );
        }
    }
    // The check can fail: a broken file is refused, and so is a key in a table where
    // containerd does not read it (containerd warns "Ignoring unknown key").
    let broken = config_dump(&bin, "version = 3\n[plugins\n");
    assert!(broken.is_err(), "{broken:?}");
    let misplaced = config_dump(
        &bin,
        &format!("version = 3\n[{IMAGES}]\n  restrict_oom_score_adj = true\n"),
    );
    assert!(
        misplaced
            .as_ref()
            .is_err_and(|e| e.contains("unknown key") && e.contains("restrict_oom_score_adj")),
        "{misplaced:?}"
    );
}

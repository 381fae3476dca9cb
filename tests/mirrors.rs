//! No package mirror's or registry's host name is written in the repo: the Debian mirror
//! comes from the machine's own apt sources (`src/lab/base.rs` for `kubeboot lab`,
//! `tests/controlplane/debian-mirror.sh` for the build scripts), or is passed explicitly.
//!
//! `tracked_files_name_no_mirror_or_registry_host` reads every file `git ls-files` lists,
//! except Cargo.lock files (cargo writes its registry's index there) and this file, and
//! fails naming file:line for any host of a package registry or mirror: a host under one
//! of [`REGISTRY_DOMAINS`], a host of this machine's apt sources, or a `mirror...` host
//! outside the domains reserved for examples. Hosts the product itself talks to on real
//! nodes (`registry.k8s.io`, `pkgs.k8s.io`, `dl.k8s.io`, `ghcr.io`) are kubeadm's and
//! flannel's defaults, not a mirror of this machine, and are allowed.

use std::path::Path;
use std::process::Command;

/// Package registries and Debian/Ubuntu archives: a host equal to one of these or under it.
const REGISTRY_DOMAINS: &[&str] = &[
    "debian.org",
    "debian.net",
    "ubuntu.com",
    "pypi.org",
    "pythonhosted.org",
    "crates.io",
    "npmjs.org",
    "npmjs.com",
    "yarnpkg.com",
    "rubygems.org",
    "proxy.golang.org",
    "sum.golang.org",
];

/// Domains reserved for examples and local names (RFC 2606, RFC 6761, RFC 6762).
const RESERVED: &[&str] = &[
    "example",
    "example.com",
    "example.net",
    "example.org",
    "test",
    "invalid",
    "localhost",
    "local",
    "internal",
];

/// Top-level domains that make a `mirror...` word a host name rather than a field access
/// such as `mirror.archive`.
const TLDS: &[&str] = &[
    "com", "org", "net", "io", "dev", "edu", "gov", "info", "cloud", "co", "eu", "de", "fr", "uk",
    "nl", "se", "no", "fi", "dk", "at", "ch", "it", "es", "pl", "cz", "ru", "cn", "jp", "kr", "tw",
    "in", "br", "au", "ca", "us",
];

fn under(host: &str, domain: &str) -> bool {
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// Words of a line that look like host names: runs of `[a-z0-9.-]` with a dot.
fn host_words(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .map(|w| {
            w.trim_matches(|c| c == '.' || c == '-')
                .to_ascii_lowercase()
        })
        .filter(|w| w.contains('.') && !w.contains(".."))
}

/// Why `host` must not be written in the repo, if it must not.
fn forbidden(host: &str, machine_hosts: &[String]) -> Option<String> {
    if RESERVED.iter().any(|d| under(host, d)) {
        return None;
    }
    if let Some(d) = REGISTRY_DOMAINS.iter().find(|d| under(host, d)) {
        return Some(format!("a host of the package registry or archive {d}"));
    }
    if let Some(h) = machine_hosts.iter().find(|h| under(host, h)) {
        return Some(format!("a host of this machine's apt sources ({h})"));
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() >= 2 && labels[0].starts_with("mirror") && TLDS.contains(labels.last().unwrap())
    {
        return Some("a mirror's host name".into());
    }
    None
}

/// The hosts of the URIs in this machine's apt sources (not IP addresses).
fn apt_source_hosts() -> Vec<String> {
    let mut files = vec![Path::new("/etc/apt/sources.list").to_path_buf()];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.flatten().map(|e| e.path()));
    }
    let mut hosts = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for word in text.split_whitespace() {
            let Some((_, rest)) = word.split_once("://") else {
                continue;
            };
            let authority = rest.split('/').next().unwrap_or_default();
            let host = authority.rsplit('@').next().unwrap_or_default();
            let host = host
                .split(':')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if host.contains('.')
                && host.parse::<std::net::IpAddr>().is_err()
                && !hosts.contains(&host)
            {
                hosts.push(host);
            }
        }
    }
    hosts
}

/// `file:line: host (why)` for each forbidden host in `text`.
fn findings(file: &str, text: &str, machine_hosts: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for host in host_words(line) {
            if let Some(why) = forbidden(&host, machine_hosts) {
                out.push(format!("{file}:{}: {host} ({why})", n + 1));
            }
        }
    }
    out
}

#[test]
fn the_host_check_catches_what_it_must() {
    let none: &[String] = &[];
    for (line, bad) in [
        ("URIs: http://deb.debian.org/debian", Some("deb.debian.org")),
        (
            "deb http://ftp.de.debian.org/debian/ bookworm main",
            Some("ftp.de.debian.org"),
        ),
        (
            "# http://snapshot.debian.org/archive/debian/2025",
            Some("snapshot.debian.org"),
        ),
        ("index-url = https://pypi.org/simple", Some("pypi.org")),
        (
            "https://files.pythonhosted.org/packages/x.whl",
            Some("files.pythonhosted.org"),
        ),
        ("source = https://index.crates.io/", Some("index.crates.io")),
        (
            "http://archive.ubuntu.com/ubuntu jammy main",
            Some("archive.ubuntu.com"),
        ),
        (
            "image: mirror.gcr.io/library/busybox",
            Some("mirror.gcr.io"),
        ),
        ("imageRepository: mirror.example.com/k8s", None),
        ("mirror.local/k8s/pause:3.10", None),
        ("URIs: http://apt.example.org/debian", None),
        ("self.mirror.archive, mirror.security", None),
        ("https://registry.k8s.io/v2/", None),
        ("tests/mirrors.rs and debian-mirror.sh", None),
    ] {
        let found = findings("f", line, none);
        match bad {
            Some(host) => assert!(
                found.len() == 1 && found[0].starts_with(&format!("f:1: {host} (")),
                "{line:?}: {found:?}"
            ),
            None => assert!(found.is_empty(), "{line:?}: {found:?}"),
        }
    }
    let machine = vec!["apt.corp.lan".to_string()];
    assert_eq!(
        findings(
            "f",
            "x\ndeb http://apt.corp.lan/debian bookworm main",
            &machine
        ),
        ["f:2: apt.corp.lan (a host of this machine's apt sources (apt.corp.lan))"]
    );
}

#[test]
fn tracked_files_name_no_mirror_or_registry_host() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("git")
        .args(["-C", repo, "ls-files", "-z"])
        .output()
        .expect("git, to list the tracked files");
    assert!(
        out.status.success(),
        "git ls-files in {repo}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let machine_hosts = apt_source_hosts();
    let mut bad = Vec::new();
    let mut read = 0;
    for file in String::from_utf8(out.stdout).unwrap().split('\0') {
        if file.is_empty() || file.ends_with("Cargo.lock") || file == "tests/mirrors.rs" {
            continue;
        }
        // Listed but deleted in the work tree, or a symlink to a directory: nothing to read.
        let Ok(bytes) = std::fs::read(Path::new(repo).join(file)) else {
            continue;
        };
        if bytes.contains(&0) {
            continue; // binary
        }
        read += 1;
        bad.extend(findings(
            file,
            &String::from_utf8_lossy(&bytes),
            &machine_hosts,
        ));
    }
    assert!(read > 100, "only {read} tracked files read");
    assert!(
        bad.is_empty(),
        "package mirror or registry host names written in the repo (take the mirror from the machine's apt sources or a flag instead):\n{}",
        bad.join("\n")
    );
}

/// Runs `debian_mirror APT_DIR` from tests/controlplane/debian-mirror.sh as the build
/// scripts do (`set -euo pipefail`); returns (success, stdout, stderr).
fn debian_mirror(apt_dir: &Path, env_mirror: Option<&str>) -> (bool, String, String) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/controlplane/debian-mirror.sh"
    );
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!(
            "set -euo pipefail; . '{script}'; m=$(debian_mirror \"$1\"); echo \"$m\""
        ))
        .arg("bash")
        .arg(apt_dir)
        .env_remove("KUBEBOOT_DEBIAN_MIRROR");
    if let Some(m) = env_mirror {
        c.env("KUBEBOOT_DEBIAN_MIRROR", m);
    }
    let out = c.output().expect("bash");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn build_scripts_take_the_debian_mirror_from_apt_sources() {
    let write = |dir: &Path, files: &[(&str, &str)]| {
        std::fs::create_dir_all(dir.join("sources.list.d")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    };
    let t = tempfile::tempdir().unwrap();

    // deb822, with a security paragraph, a disabled one and a third-party source that
    // sorts first.
    let d = t.path().join("deb822");
    write(
        &d,
        &[
            (
                "sources.list.d/00-vendor.sources",
                "Types: deb\nURIs: https://vendor.example.com/node_20.x\nSuites: nodistro\nComponents: main\n",
            ),
            (
                "sources.list.d/debian.sources",
                "Types: deb\nURIs: http://off.example.org/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n\
                 Types: deb\n# http://snapshot.example.org/archive/debian/20250520T000000Z\nURIs: http://apt.example.org/debian/\n\
                 Suites: bookworm bookworm-updates\nComponents: main\n\n\
                 Types: deb\nURIs: http://apt.example.org/debian-security\nSuites: bookworm-security\nComponents: main\n",
            ),
        ],
    );
    assert_eq!(
        debian_mirror(&d, None),
        (true, "http://apt.example.org/debian".into(), String::new())
    );

    // One-line format, with options, comments, a security archive and a contrib-only line.
    let d = t.path().join("one-line");
    write(
        &d,
        &[(
            "sources.list",
            "# deb http://old.example.org/debian bookworm main\n\
             deb http://contrib.example.org/debian bookworm contrib\n\
             deb [ arch=amd64 ] http://security.example.org/debian bookworm-security main\n\
             deb [arch=amd64 signed-by=/k.gpg] http://ftp.example.org/debian bookworm main contrib\n",
        )],
    );
    assert_eq!(
        debian_mirror(&d, None),
        (true, "http://ftp.example.org/debian".into(), String::new())
    );

    // KUBEBOOT_DEBIAN_MIRROR wins.
    assert_eq!(
        debian_mirror(&d, Some("http://chosen.example.org/debian/")),
        (
            true,
            "http://chosen.example.org/debian".into(),
            String::new()
        )
    );

    // None: a clear message saying what to do, and failure (the scripts stop).
    let d = t.path().join("none");
    write(
        &d,
        &[(
            "sources.list.d/x.sources",
            "Types: deb-src\nURIs: http://src.example.org/debian\nSuites: bookworm\nComponents: main\n",
        )],
    );
    let (ok, out, err) = debian_mirror(&d, None);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        err.contains(&format!(
            "no Debian mirror found in {}/sources.list",
            d.display()
        )) && err.contains("set KUBEBOOT_DEBIAN_MIRROR"),
        "{err}"
    );
}

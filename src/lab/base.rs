//! The base image every lab node's overlay sits on: a debootstrap of Debian bookworm with
//! the fixes a node needs to boot under systemd-nspawn on this kind of VM. Building it
//! takes a minute or two, so it is made once and cached as a tarball (and as an
//! extracted tree, the overlays' lower layer), keyed by a hash of the recipe: changing
//! the package list, suite, apt sources or a fix makes a new image, nothing else does.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::command::{run, tail};
use super::error::{LabError, Result};
use super::state::write_atomic;

/// The Debian release the nodes run.
pub const SUITE: &str = "bookworm";

/// Packages on top of `--variant=minbase`: what sshd, systemd as PID 1 and kubeboot's
/// host preparation need.
pub const PACKAGES: &[&str] = &[
    "openssh-server",
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "kmod",
    "procps",
    "sudo",
    "ca-certificates",
    "iptables",
    "curl",
];

/// Bumped whenever a fix below changes in a way the texts do not show.
const FIXES_VERSION: u32 = 1;

/// nspawn mounts the cgroup v1 controllers read-only; runc (containerd) needs them
/// writable, so a oneshot remounts them early in boot.
const CGROUP_RW_UNIT: &str = "\
[Unit]
Description=kubeboot lab: make cgroup v1 controller mounts writable (nspawn mounts them read-only)
DefaultDependencies=no
Before=sysinit.target containerd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for c in /sys/fs/cgroup/*/; do mountpoint -q \"$c\" && mount -o remount,bind,rw \"$c\"; done; true'

[Install]
WantedBy=sysinit.target
";

/// Nodes get only an ed25519 host key (generated per node before boot), key-only root login.
const SSHD_CONFIG: &str = "\
# kubeboot lab: per-node ed25519 host key made before boot; key-only logins.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
";

/// Units masked in the image: apt's daily timers would take the dpkg lock (and the
/// proxy) at random moments during tests.
const MASKED_UNITS: &[&str] = &["apt-daily.timer", "apt-daily-upgrade.timer"];

/// Where the Debian packages come from: used by debootstrap and written into the image.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    /// The main archive (`.../debian`).
    pub archive: String,
    /// The security archive, when the VM has one configured.
    pub security: Option<String>,
}

/// One entry of an apt sources file.
#[derive(Debug)]
struct SourceEntry {
    types: Vec<String>,
    uris: Vec<String>,
    suites: Vec<String>,
    components: Vec<String>,
}

fn parse_deb822(text: &str) -> Vec<SourceEntry> {
    text.split("\n\n")
        .filter_map(|para| {
            let mut e = SourceEntry {
                types: vec![],
                uris: vec![],
                suites: vec![],
                components: vec![],
            };
            let mut enabled = true;
            for line in para.lines() {
                let Some((key, value)) = line.split_once(':') else {
                    continue;
                };
                if line.starts_with('#') || line.starts_with(' ') {
                    continue;
                }
                let words = || value.split_whitespace().map(str::to_string).collect();
                match key.trim().to_ascii_lowercase().as_str() {
                    "types" => e.types = words(),
                    "uris" => e.uris = words(),
                    "suites" => e.suites = words(),
                    "components" => e.components = words(),
                    "enabled" => enabled = value.trim() != "no",
                    _ => {}
                }
            }
            (enabled && !e.uris.is_empty()).then_some(e)
        })
        .collect()
}

fn parse_one_line(text: &str) -> Vec<SourceEntry> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let mut words = line.split_whitespace().peekable();
            let kind = words.next()?;
            if kind != "deb" && kind != "deb-src" {
                return None;
            }
            if words.peek().is_some_and(|w| w.starts_with('[')) {
                // skip "[arch=amd64 signed-by=...]"
                for w in words.by_ref() {
                    if w.ends_with(']') {
                        break;
                    }
                }
            }
            let uri = words.next()?.to_string();
            let suite = words.next()?.to_string();
            Some(SourceEntry {
                types: vec![kind.to_string()],
                uris: vec![uri],
                suites: vec![suite],
                components: words.map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Picks the Debian archive and security archive from apt source entries.
fn pick_mirror(entries: &[SourceEntry]) -> Option<Mirror> {
    let debian_main = |e: &&SourceEntry| {
        e.types.iter().any(|t| t == "deb") && e.components.iter().any(|c| c == "main")
    };
    let archive = entries
        .iter()
        .filter(debian_main)
        .filter(|e| {
            e.suites
                .iter()
                .any(|s| !s.contains('-') && !s.contains('/'))
        })
        .flat_map(|e| e.uris.iter())
        .find(|u| !u.contains("security"))?
        .trim_end_matches('/')
        .to_string();
    let security = entries
        .iter()
        .filter(debian_main)
        .filter(|e| e.suites.iter().any(|s| s.ends_with("-security")))
        .flat_map(|e| e.uris.iter())
        .next()
        .map(|u| u.trim_end_matches('/').to_string());
    Some(Mirror { archive, security })
}

/// Reads the VM's configured Debian mirror from /etc/apt (sources.list, *.list, *.sources).
pub fn system_mirror() -> Result<Mirror> {
    let mut entries = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        entries.extend(parse_one_line(&text));
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            match path.extension().and_then(|e| e.to_str()) {
                Some("sources") => entries.extend(parse_deb822(&text)),
                Some("list") => entries.extend(parse_one_line(&text)),
                _ => {}
            }
        }
    }
    pick_mirror(&entries).ok_or(LabError::NoMirror)
}

/// Everything that decides the content of the base image.
#[derive(Debug, Clone)]
pub struct BaseRecipe {
    /// Debian release.
    pub suite: String,
    /// Packages beyond minbase.
    pub packages: Vec<String>,
    /// Package sources.
    pub mirror: Mirror,
}

impl BaseRecipe {
    /// The standard recipe with the given mirror.
    pub fn new(mirror: Mirror) -> Self {
        BaseRecipe {
            suite: SUITE.to_string(),
            packages: PACKAGES.iter().map(|p| p.to_string()).collect(),
            mirror,
        }
    }

    /// The apt sources written into the image (deb822).
    pub fn apt_sources(&self) -> String {
        let mut text = format!(
            "Types: deb\nURIs: {}\nSuites: {s} {s}-updates\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            self.mirror.archive,
            s = self.suite
        );
        if let Some(security) = &self.mirror.security {
            text.push_str(&format!(
                "\nTypes: deb\nURIs: {security}\nSuites: {}-security\nComponents: main\n\
                 Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
                self.suite
            ));
        }
        text
    }

    /// Short hash over every input of the image; names the cache entries.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.suite.as_str(),
            &self.packages.join(","),
            &self.apt_sources(),
            &FIXES_VERSION.to_string(),
            CGROUP_RW_UNIT,
            SSHD_CONFIG,
            &MASKED_UNITS.join(","),
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        let digest = h.finalize();
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }
}

/// The cache entries for one recipe.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The tarball (`base-<suite>-<key>.tar`).
    pub tarball: PathBuf,
    /// The extracted tree the overlays use as lower layer.
    pub rootfs: PathBuf,
    /// Marks `rootfs` as complete (beside it, not inside the image).
    ready_marker: PathBuf,
    /// debootstrap's log.
    pub log: PathBuf,
}

impl BaseImage {
    /// Paths of the cache entries for `recipe` under `cache_dir`.
    pub fn locate(cache_dir: &Path, recipe: &BaseRecipe) -> Self {
        let stem = format!("base-{}-{}", recipe.suite, recipe.key());
        BaseImage {
            tarball: cache_dir.join(format!("{stem}.tar")),
            rootfs: cache_dir.join(&stem),
            ready_marker: cache_dir.join(format!("{stem}.ready")),
            log: cache_dir.join(format!("{stem}.log")),
        }
    }

    /// True when the extracted tree can be used as is.
    pub fn is_ready(&self) -> bool {
        self.ready_marker.exists() && self.rootfs.is_dir()
    }
}

/// Makes sure the base image for `recipe` exists in `cache_dir` (building or extracting it
/// as needed) and returns it. Concurrent callers wait on a lock file.
pub fn ensure(cache_dir: &Path, recipe: &BaseRecipe, rebuild: bool) -> Result<BaseImage> {
    std::fs::create_dir_all(cache_dir).map_err(|e| LabError::io(cache_dir, e))?;
    let image = BaseImage::locate(cache_dir, recipe);
    let lock_path = cache_dir.join("lock");
    let lock = File::create(&lock_path).map_err(|e| LabError::io(&lock_path, e))?;
    lock.lock().map_err(|e| LabError::io(&lock_path, e))?;

    if rebuild {
        remove_rootfs(&image.rootfs)?;
        let _ = std::fs::remove_file(&image.ready_marker);
        let _ = std::fs::remove_file(&image.tarball);
    }
    if image.is_ready() {
        return Ok(image);
    }
    if image.tarball.exists() {
        eprintln!("extracting lab base image {}", image.tarball.display());
        extract(&image)?;
    } else {
        build(recipe, &image)?;
    }
    Ok(image)
}

/// True when an overlay mount uses `rootfs` as its lower layer.
fn in_use(rootfs: &Path) -> bool {
    let needle = format!("lowerdir={}", rootfs.display());
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .any(|opts| opts.split(',').any(|o| o == needle))
}

/// Removes the extracted image, refusing while nodes run on it.
fn remove_rootfs(rootfs: &Path) -> Result<()> {
    if in_use(rootfs) {
        return Err(LabError::BaseInUse {
            path: rootfs.to_path_buf(),
        });
    }
    remove_tree(rootfs)
}

/// Removes a directory tree after unmounting anything a killed debootstrap left mounted
/// in it (it mounts /proc and /sys inside the target).
fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    super::mounts::unmount_below(dir)?;
    std::fs::remove_dir_all(dir).map_err(|e| LabError::io(dir, e))
}

fn extract(image: &BaseImage) -> Result<()> {
    let tmp = image.rootfs.with_extension("tmp");
    remove_tree(&tmp)?;
    remove_rootfs(&image.rootfs)?;
    std::fs::create_dir_all(&tmp).map_err(|e| LabError::io(&tmp, e))?;
    run(Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(&image.tarball)
        .arg("-C")
        .arg(&tmp))?;
    std::fs::rename(&tmp, &image.rootfs).map_err(|e| LabError::io(&image.rootfs, e))?;
    write_atomic(&image.ready_marker, b"", 0o644)
}

fn build(recipe: &BaseRecipe, image: &BaseImage) -> Result<()> {
    let started = Instant::now();
    let tmp = image.rootfs.with_extension("tmp");
    remove_tree(&tmp)?;
    remove_rootfs(&image.rootfs)?;
    eprintln!(
        "building lab base image (debootstrap {} from {}; takes a minute or two, once)\n  log: {}",
        recipe.suite,
        recipe.mirror.archive,
        image.log.display()
    );
    let log = File::create(&image.log).map_err(|e| LabError::io(&image.log, e))?;
    let log_err = log.try_clone().map_err(|e| LabError::io(&image.log, e))?;
    let fail = |reason: String| LabError::BaseBuild {
        reason,
        log: image.log.clone(),
        tail: tail(&image.log, 15),
    };
    let status = Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", recipe.packages.join(",")))
        .arg(&recipe.suite)
        .arg(&tmp)
        .arg(&recipe.mirror.archive)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(|e| LabError::Spawn {
            program: "debootstrap".into(),
            source: e,
        })?;
    if !status.success() {
        let err = fail(format!("debootstrap exited with {status}"));
        let _ = remove_tree(&tmp);
        return Err(err);
    }
    apply_fixes(recipe, &tmp).map_err(|e| fail(e.to_string()))?;
    let tar_tmp = image.tarball.with_extension("tar.tmp");
    run(Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-cpf"])
        .arg(&tar_tmp)
        .arg("-C")
        .arg(&tmp)
        .arg("."))
    .map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tar_tmp, &image.tarball).map_err(|e| LabError::io(&image.tarball, e))?;
    std::fs::rename(&tmp, &image.rootfs).map_err(|e| LabError::io(&image.rootfs, e))?;
    write_atomic(&image.ready_marker, b"", 0o644)?;
    eprintln!(
        "lab base image ready in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        image.tarball.display()
    );
    Ok(())
}

fn write(root: &Path, rel: &str, contents: &str, mode: u32) -> Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    write_atomic(&path, contents.as_bytes(), mode)
}

/// Makes `root/rel` a symlink to `target`, replacing whatever was there.
pub(super) fn symlink(target: &str, root: &Path, rel: &str) -> Result<()> {
    let link = root.join(rel);
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link).map_err(|e| LabError::io(&link, e))
}

fn remove_glob(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep(&name) && entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            std::fs::remove_file(entry.path()).map_err(|e| LabError::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// The changes that make a plain debootstrap boot well as a lab node.
fn apply_fixes(recipe: &BaseRecipe, root: &Path) -> Result<()> {
    // apt sources: the VM's mirror, in deb822 form.
    let _ = std::fs::remove_file(root.join("etc/apt/sources.list"));
    write(
        root,
        "etc/apt/sources.list.d/debian.sources",
        &recipe.apt_sources(),
        0o644,
    )?;
    // Every node gets its own machine-id (empty here = "generate/keep per node").
    write(root, "etc/machine-id", "", 0o444)?;
    symlink("/etc/machine-id", root, "var/lib/dbus/machine-id")?;
    // No host keys baked in: each node gets its own before boot.
    remove_glob(&root.join("etc/ssh"), |n| !n.starts_with("ssh_host_"))?;
    write(
        root,
        "etc/ssh/sshd_config.d/kubeboot-lab.conf",
        SSHD_CONFIG,
        0o644,
    )?;
    std::fs::create_dir_all(root.join("root/.ssh"))
        .map_err(|e| LabError::io(root.join("root/.ssh"), e))?;
    set_mode(&root.join("root/.ssh"), 0o700)?;
    // cgroup v1 controllers writable for runc.
    write(
        root,
        "etc/systemd/system/kubeboot-lab-cgroup-rw.service",
        CGROUP_RW_UNIT,
        0o644,
    )?;
    symlink(
        "/etc/systemd/system/kubeboot-lab-cgroup-rw.service",
        root,
        "etc/systemd/system/sysinit.target.wants/kubeboot-lab-cgroup-rw.service",
    )?;
    for unit in MASKED_UNITS {
        symlink("/dev/null", root, &format!("etc/systemd/system/{unit}"))?;
    }
    // Smaller image: no downloaded packages or lists.
    remove_glob(&root.join("var/cache/apt/archives"), |_| false)?;
    remove_glob(&root.join("var/lib/apt/lists"), |n| n == "lock")?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mirror_in_deb822() {
        let text = "Types: deb\n# http://snapshot.example.org/archive/debian/20250520T000000Z\n\
            URIs: http://apt.example.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
            Types: deb\nURIs: http://apt.example.org/debian-security\nSuites: bookworm-security\nComponents: main\n";
        let m = pick_mirror(&parse_deb822(text)).unwrap();
        assert_eq!(m.archive, "http://apt.example.org/debian");
        assert_eq!(
            m.security.as_deref(),
            Some("http://apt.example.org/debian-security")
        );
    }

    #[test]
    fn finds_mirror_in_one_line_format_and_skips_third_party() {
        let text = "deb [arch=amd64 signed-by=/k.gpg] https://download.example.com/linux bookworm stable\n\
            deb http://ftp.example.org/debian/ bookworm main contrib\n\
            deb http://security.example.org/debian-security bookworm-security main\n";
        let m = pick_mirror(&parse_one_line(text)).unwrap();
        assert_eq!(m.archive, "http://ftp.example.org/debian");
        assert_eq!(
            m.security.as_deref(),
            Some("http://security.example.org/debian-security")
        );
        assert!(pick_mirror(&parse_one_line("# nothing\n")).is_none());
    }

    #[test]
    fn recipe_key_follows_inputs() {
        let m = Mirror {
            archive: "http://a/debian".into(),
            security: None,
        };
        let a = BaseRecipe::new(m.clone());
        let mut b = BaseRecipe::new(m);
        assert_eq!(a.key(), b.key());
        b.packages.push("vim".into());
        assert_ne!(a.key(), b.key());
    }
}

//! Mounts the lab makes in the VM's mount namespace: one overlay per node (the base image
//! below, the node's own changes above). What a node mounts lives in its own mount
//! namespace and normally disappears with it; `lab down` still unmounts anything found
//! below the lab's directories (read from /proc/self/mountinfo), deepest first.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::command::run;
use super::error::{LabError, Result};

/// Decodes the octal escapes (`\040` for space, ...) of /proc/mounts fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let digit = |k: usize| u32::from(bytes[i + k] - b'0');
            out.push((digit(1) * 64 + digit(2) * 8 + digit(3)) as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points listed in a `/proc/<pid>/mountinfo` text, in mount order (field 5).
fn mountinfo_points(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(4)
                .map(|f| PathBuf::from(unescape(f)))
        })
        .collect()
}

/// Mount points currently in the VM's mount namespace, in mount order.
pub fn mount_points() -> Vec<PathBuf> {
    mountinfo_points(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// The mount points of `points` (in mount order) at or below `dir`, deepest first; among
/// equally deep ones the last mounted first (a stacked mount point appears once per mount).
fn deepest_first(points: Vec<PathBuf>, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(usize, PathBuf)> = points
        .into_iter()
        .enumerate()
        .filter(|(_, m)| m.starts_with(dir))
        .collect();
    found.sort_by(|(i, a), (j, b)| {
        let depth = |p: &Path| p.components().count();
        depth(b).cmp(&depth(a)).then(j.cmp(i))
    });
    found.into_iter().map(|(_, m)| m).collect()
}

/// Mount points at or below `dir`, deepest first. Besides the nodes' overlays these can
/// be what runs inside a node left behind (containers' overlay roots, shm, tmpfs volumes
/// under /var/lib/containerd and /var/lib/kubelet) when it was mounted through to the VM.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    deepest_first(mount_points(), dir)
}

/// Unmounts everything at or below `dir`, deepest first; falls back to a lazy unmount for
/// a busy one. Fails naming the mount points still there afterwards.
pub fn unmount_below(dir: &Path) -> Result<()> {
    // A lazy unmount of a parent takes its children along, so re-read after each pass.
    for _ in 0..3 {
        let left = mounts_below(dir);
        if left.is_empty() {
            return Ok(());
        }
        for m in left {
            if !mount_points().contains(&m) {
                continue;
            }
            if run(Command::new("umount").arg(&m)).is_err() {
                let _ = run(Command::new("umount").arg("-l").arg(&m));
            }
        }
    }
    let left = mounts_below(dir);
    if left.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = left.iter().map(|m| m.display().to_string()).collect();
    Err(LabError::io(
        dir,
        std::io::Error::other(format!(
            "still mounted after umount and umount -l: {}",
            list.join(", ")
        )),
    ))
}

/// Refuses paths that cannot appear in overlayfs or nspawn option strings.
pub fn check_usable(path: &Path) -> Result<()> {
    let s = path.to_string_lossy();
    if s.contains(',') || s.contains(':') {
        return Err(LabError::UnusablePath {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Mounts an overlay of `upper` over `lower` at `target`.
pub fn mount_overlay(lower: &Path, upper: &Path, work: &Path, target: &Path) -> Result<()> {
    for p in [lower, upper, work, target] {
        check_usable(p)?;
    }
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        ))
        .arg(target))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mountinfo_and_orders_deepest_first() {
        let info = "22 1 254:0 / / rw - ext4 /dev/vda rw\n\
            30 22 0:40 / /lab/n1/root rw - overlay overlay rw\n\
            31 30 0:41 / /lab/n1/root/var/lib/containerd/a\\040b rw - overlay overlay rw\n\
            32 30 0:42 / /lab/n1/root/dev/shm rw - tmpfs shm rw\n\
            33 32 0:43 / /lab/n1/root/dev/shm rw - tmpfs shm rw\n\
            34 22 0:44 / /lab/n10 rw - tmpfs t rw\n";
        let points = mountinfo_points(info);
        assert_eq!(points.len(), 6);
        assert_eq!(points[2], Path::new("/lab/n1/root/var/lib/containerd/a b"));
        let order = deepest_first(points, Path::new("/lab/n1"));
        assert_eq!(
            order,
            [
                "/lab/n1/root/var/lib/containerd/a b",
                "/lab/n1/root/dev/shm",
                "/lab/n1/root/dev/shm",
                "/lab/n1/root",
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn unescapes_mount_fields() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape(r"/x\\"), r"/x\\");
    }
}

//! Mounts the lab makes in the VM's mount namespace: one overlay per node (the base image
//! below, the node's own changes above). Everything else a node mounts lives in its own
//! mount namespace and disappears with it.

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

/// Mount points currently in the VM's mount namespace, in mount order.
pub fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(1)
                .map(|f| PathBuf::from(unescape(f)))
        })
        .collect()
}

/// Mount points at or below `dir`, deepest (last mounted) first.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect();
    found.reverse();
    found
}

/// Unmounts everything at or below `dir`; falls back to a lazy unmount for a busy one.
pub fn unmount_below(dir: &Path) -> Result<()> {
    for m in mounts_below(dir) {
        if run(Command::new("umount").arg(&m)).is_err() {
            run(Command::new("umount").arg("-l").arg(&m))?;
        }
    }
    Ok(())
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
    fn unescapes_mount_fields() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape(r"/x\\"), r"/x\\");
    }
}

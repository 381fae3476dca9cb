//! What the VM must offer before a lab can start, checked up front so the user gets one
//! clear sentence ("install systemd-container") instead of a failure halfway through.

use super::command::in_path;
use super::error::{LabError, Result};

/// A host program the lab needs and the Debian package that ships it.
pub type Tool = (&'static str, &'static str);

/// Needed to start, inspect and remove labs.
pub const RUN_TOOLS: &[Tool] = &[
    ("systemd-nspawn", "systemd-container"),
    ("ip", "iproute2"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("mount", "mount"),
    ("umount", "mount"),
    ("setsid", "util-linux"),
    ("tar", "tar"),
];

/// Needed to build the base image.
pub const BUILD_TOOLS: &[Tool] = &[("debootstrap", "debootstrap")];

/// The effective UID of this process, from /proc (no libc needed).
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Refuses to go on unless running as root.
pub fn require_root() -> Result<()> {
    match effective_uid() {
        Some(0) => Ok(()),
        _ => Err(LabError::NotRoot),
    }
}

/// Refuses to go on when a tool is missing, naming its package.
pub fn require_tools(tools: &[Tool]) -> Result<()> {
    for (tool, package) in tools {
        if !in_path(tool) {
            return Err(LabError::MissingTool { tool, package });
        }
    }
    Ok(())
}

/// inotify instances one booted node's systemd and its services take (measured: about 8).
const INOTIFY_PER_NODE: u64 = 12;
/// What kubeboot raises the limit to when it is too low for a lab.
const INOTIFY_TARGET: u64 = 1024;

/// Each node's systemd needs several inotify instances, and the kernel's default
/// per-user limit (128) runs out at about ten nodes: systemd then dies at boot with "Failed
/// to allocate manager object: Too many open files". Raise the limit for the lab, and say so.
pub fn ensure_inotify_instances(nodes: u64) -> Result<()> {
    let path = "/proc/sys/fs/inotify/max_user_instances";
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let current: u64 = text.trim().parse().unwrap_or(0);
    let running = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "systemd-nspawn")
                })
                .count() as u64
        })
        .unwrap_or(0);
    // Kubernetes on the nodes (kubelet, containerd) takes more; aim well above the boot need.
    let target = ((running + nodes) * INOTIFY_PER_NODE + 64).max(INOTIFY_TARGET);
    if current >= target {
        return Ok(());
    }
    std::fs::write(path, format!("{target}\n")).map_err(|e| LabError::io(path, e))?;
    eprintln!(
        "note: raised fs.inotify.max_user_instances from {current} to {target}: each lab node's systemd needs about {INOTIFY_PER_NODE}"
    );
    Ok(())
}

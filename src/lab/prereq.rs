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

//! The node processes `lab down` ends. It signals only PIDs recorded by `lab up`, and only
//! after checking in /proc that the PID is still that node's systemd-nspawn (a PID can be
//! reused by an unrelated process after a reboot or a crash).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// True when the process exists and has not exited (zombies count as exited).
pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// True when `pid` runs systemd-nspawn on the given node root.
pub fn is_node_nspawn(pid: u32, root: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let root = root.to_string_lossy();
    args.first().is_some_and(|a| a.ends_with("systemd-nspawn"))
        && args
            .iter()
            .any(|a| a == root.as_ref() || a == &format!("--directory={root}"))
}

/// Running systemd-nspawn processes whose network namespace path starts with
/// `/run/netns/<prefix>`: nodes of a lab whose PIDs were never recorded (an `up` killed
/// at the wrong moment). `down` reports them rather than signalling unrecorded PIDs.
pub fn unrecorded_nspawns(netns_prefix: &str) -> Vec<(u32, String)> {
    let needle = format!("--network-namespace-path=/run/netns/{netns_prefix}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let netns = args.iter().find(|a| a.starts_with(&needle))?;
            (args.first()?.ends_with("systemd-nspawn") && is_running(pid))
                .then(|| (pid, netns.clone()))
        })
        .collect()
}

/// Sends a signal by name (`TERM`, `KILL`) with kill(1).
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Waits until none of `pids` runs, or `limit` passes; returns those still running.
pub fn wait_gone(pids: &[u32], limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| is_running(*p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_itself_running_and_not_as_nspawn() {
        let me = std::process::id();
        assert!(is_running(me));
        assert!(!is_node_nspawn(me, Path::new("/nowhere")));
        assert!(!is_running(u32::MAX - 1));
    }
}

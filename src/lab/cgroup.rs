//! Per-node cgroups. Without systemd on the VM, systemd-nspawn `--keep-unit` boots the
//! node in whatever cgroup it was started from; started from one shared cgroup, all
//! nodes would share (and fight over) one. So each node gets its own directory in every
//! mounted hierarchy, nested below the cgroup `kubeboot lab` runs in (limits set by
//! whoever runs us still apply), and its nspawn is moved there before it execs.

use std::path::{Path, PathBuf};

use super::error::{LabError, Result};

/// One mounted hierarchy: its mount point and the cgroup this process is in there.
#[derive(Debug, Clone, PartialEq)]
struct Hierarchy {
    mount: PathBuf,
    own_path: String,
    /// cpuset (v1) needs cpus/mems copied into new children before tasks can join.
    cpuset_v1: bool,
}

/// Matches `/proc/self/cgroup` lines with cgroup mounts from `/proc/self/mounts`.
fn hierarchies(self_cgroup: &str, mounts: &str) -> Vec<Hierarchy> {
    let mounts: Vec<(PathBuf, String, Vec<String>)> = mounts
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (mount, fstype, opts) = (f.get(1)?, f.get(2)?, f.get(3)?);
            if *fstype != "cgroup" && *fstype != "cgroup2" {
                return None;
            }
            Some((
                PathBuf::from(mount),
                fstype.to_string(),
                opts.split(',').map(str::to_string).collect(),
            ))
        })
        .collect();
    let mut found = Vec::new();
    for line in self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let wanted: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
        let mount = mounts.iter().find(|(_, fstype, opts)| {
            if wanted.is_empty() {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup" && wanted.iter().all(|w| opts.iter().any(|o| o == w))
            }
        });
        if let Some((mount, _, _)) = mount {
            if found.iter().any(|h: &Hierarchy| &h.mount == mount) {
                continue;
            }
            found.push(Hierarchy {
                mount: mount.clone(),
                own_path: path.to_string(),
                cpuset_v1: wanted.contains(&"cpuset"),
            });
        }
    }
    found
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| LabError::io(path, e))
}

fn copy_cpuset(dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(dir);
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let current = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if current.trim().is_empty() {
            let value = std::fs::read_to_string(parent.join(file))
                .map_err(|e| LabError::io(parent.join(file), e))?;
            std::fs::write(dir.join(file), value.trim())
                .map_err(|e| LabError::io(dir.join(file), e))?;
        }
    }
    Ok(())
}

/// Where this process sits in every hierarchy: `(directory, is cpuset v1)`.
fn own_dirs() -> Result<Vec<(PathBuf, bool)>> {
    let list = hierarchies(&read("/proc/self/cgroup")?, &read("/proc/self/mounts")?);
    Ok(list
        .into_iter()
        .map(|h| {
            (
                h.mount.join(h.own_path.trim_start_matches('/')),
                h.cpuset_v1,
            )
        })
        .collect())
}

/// The per-lab cgroup directories (`<own cgroup>/<lab dir>`) in every hierarchy, as this
/// process would make them; `lab down` uses them to sweep what a crashed `up` left.
pub fn lab_dirs(lab_dir_name: &str) -> Vec<PathBuf> {
    own_dirs()
        .unwrap_or_default()
        .into_iter()
        .map(|(d, _)| d.join(lab_dir_name))
        .collect()
}

/// Creates `<lab dir>/<node>` in every hierarchy; returns the directories made (their
/// `cgroup.procs` is where the node's nspawn must be written).
pub fn create_node_cgroups(lab_dir_name: &str, node: &str) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for (base, cpuset_v1) in own_dirs()? {
        let lab = base.join(lab_dir_name);
        let dir = lab.join(node);
        std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
        if cpuset_v1 {
            copy_cpuset(&lab)?;
            copy_cpuset(&dir)?;
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

/// A node's share of the CPU when every node wants more than there is, relative to a
/// node of weight 1: cgroup v1 `cpu.shares` (1024 per unit) or v2 `cpu.weight` (100 per
/// unit, at most 10000), in whichever of `dirs` has the file. Lab nodes share this
/// machine's cores, unlike real hosts; a control-plane node weighted like all workers
/// together keeps its API server answering while the workers install packages.
pub fn set_cpu_weight(dirs: &[PathBuf], weight: u32) -> Result<()> {
    let weight = weight.max(1);
    for dir in dirs {
        let (file, value) = if dir.join("cpu.shares").exists() {
            ("cpu.shares", 1024 * u64::from(weight))
        } else if dir.join("cpu.weight").exists() {
            ("cpu.weight", (100 * u64::from(weight)).min(10_000))
        } else {
            continue;
        };
        let path = dir.join(file);
        std::fs::write(&path, value.to_string()).map_err(|e| LabError::io(&path, e))?;
    }
    Ok(())
}

/// Removes a cgroup directory and everything systemd made below it, deepest first.
/// Only `rmdir` is used: it fails (and we report) while a process is still inside.
pub fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let pids = procs_in(dir);
    if !pids.is_empty() {
        return Err(LabError::io(
            dir,
            std::io::Error::other(format!("processes {pids:?} are still in it")),
        ));
    }
    let mut last_err = None;
    // A cgroup whose last task just exited may stay busy for a moment.
    for _ in 0..40 {
        match remove_once(dir) {
            Ok(()) => return Ok(()),
            Err(e) => last_err = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(last_err.expect("tried at least once"))
}

/// PIDs in a cgroup and its descendants.
fn procs_in(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                pids.extend(procs_in(&entry.path()));
            }
        }
    }
    pids
}

fn remove_once(dir: &Path) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_once(&entry.path())?;
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(dir, e)),
    }
}

/// What [`kill_tree`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KillOutcome {
    /// PIDs that were in the trees when it started.
    pub found: Vec<u32>,
    /// Whether `cgroup.kill` (cgroup v2, Linux >= 5.14) was written in some tree.
    pub cgroup_kill: bool,
    /// PIDs still in the trees when it gave up (empty: the trees are empty).
    pub left: Vec<u32>,
}

/// PIDs in the cgroup trees below `dirs`, sorted, without duplicates; never 0 (a task
/// of another PID namespace) nor this process.
fn procs_in_all(dirs: &[PathBuf]) -> Vec<u32> {
    let me = std::process::id();
    let mut pids: Vec<u32> = dirs
        .iter()
        .flat_map(|d| procs_in(d))
        .filter(|p| *p != 0 && *p != me)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Ends every process in the cgroup trees below `dirs` (a lab's directory in each
/// hierarchy): writes `1` to `cgroup.kill` of each directory that has one (the unified
/// hierarchy on Linux >= 5.14), then sends SIGKILL to every PID still listed in a
/// `cgroup.procs` anywhere in the trees, in every hierarchy, until they are empty or
/// `limit` passes. These are what nodes leave behind when their nspawn is gone
/// (containerd shims, Pod processes, at times the node's systemd); only processes in the
/// lab's own cgroups are touched.
pub fn kill_tree(dirs: &[PathBuf], limit: std::time::Duration) -> KillOutcome {
    let mut outcome = KillOutcome {
        found: procs_in_all(dirs),
        ..KillOutcome::default()
    };
    if outcome.found.is_empty() {
        return outcome;
    }
    for dir in dirs {
        let kill = dir.join("cgroup.kill");
        if kill.exists() && std::fs::write(&kill, "1").is_ok() {
            outcome.cgroup_kill = true;
        }
    }
    let deadline = std::time::Instant::now() + limit;
    let mut first = true;
    loop {
        if !first || !outcome.cgroup_kill {
            let left = procs_in_all(dirs);
            if left.is_empty() {
                return outcome;
            }
            if std::time::Instant::now() >= deadline {
                outcome.left = left;
                return outcome;
            }
            for pid in left {
                let Ok(pid) = libc::pid_t::try_from(pid) else {
                    continue;
                };
                // SAFETY: kill(2) has no memory effects; pid > 0 names one process.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        first = false;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// One line per PID for error messages: `1234 (containerd-shim, state S)`.
pub fn describe_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            let state = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, r)| r.split_whitespace().next().map(str::to_string))
                })
                .unwrap_or_else(|| "?".into());
            format!("{p} ({}, state {state})", comm.trim())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The node's memory use as the kernel charges it (working set: usage minus inactive
/// file cache, as kubelet counts it); `None` without a v1 memory hierarchy.
pub fn memory_working_set(dirs: &[PathBuf]) -> Option<u64> {
    let dir = dirs
        .iter()
        .find(|d| d.join("memory.usage_in_bytes").exists())?;
    let usage: u64 = std::fs::read_to_string(dir.join("memory.usage_in_bytes"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    let inactive_file = stat
        .lines()
        .find_map(|l| l.strip_prefix("total_inactive_file "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Some(usage.saturating_sub(inactive_file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hierarchies_to_mounts() {
        let cg = "9:name=systemd:/\n4:memory:/sup/abc\n3:cpu,cpuacct:/\n0::/\n";
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
            cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0\n\
            cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
            cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0\n\
            cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        let h = hierarchies(cg, mounts);
        assert_eq!(h.len(), 4);
        assert_eq!(h[0].mount, Path::new("/sys/fs/cgroup/systemd"));
        assert_eq!(h[1].own_path, "/sup/abc");
        assert_eq!(h[2].mount, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h[3].mount, Path::new("/sys/fs/cgroup/unified"));
    }
}

//! Host facts, gathered once per host in one command and handed to templates and `when`
//! conditions: OS family and version, architecture, kernel, init system, cgroup version,
//! swap, memory, CPUs, package manager.

use crate::host::{Host, HostError, RunOptions};
use serde::Serialize;
use std::collections::BTreeMap;

/// What kubeboot knows about a host before changing it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Facts {
    pub hostname: String,
    /// `debian` (Debian, Ubuntu, ...), `rhel` (RHEL, Rocky, Alma, Fedora, CentOS), or the
    /// os-release ID when neither.
    pub os_family: String,
    /// os-release `ID` (`debian`, `ubuntu`, `rocky`, ...).
    pub os_id: String,
    /// os-release `VERSION_ID` (`12`, `24.04`, `9.4`).
    pub os_version: String,
    /// `uname -m` (`x86_64`, `aarch64`).
    pub arch: String,
    /// Go-style architecture (`amd64`, `arm64`) for download URLs.
    pub goarch: String,
    pub kernel: String,
    /// `systemd`, or the name of PID 1 when not.
    pub init: String,
    /// 1 or 2.
    pub cgroup_version: u32,
    pub swap_kib: u64,
    pub memory_kib: u64,
    pub cpus: u32,
    /// `apt`, `dnf`, `yum` or empty.
    pub package_manager: String,
    /// Whether the host's processes may hold CAP_SYS_RESOURCE (bit 24 of the bounding
    /// set). Without it (unprivileged containers, some CI runners, labs) runc cannot set
    /// the negative `oom_score_adj` containerd gives pod sandboxes, so containerd needs
    /// `restrict_oom_score_adj`.
    pub cap_sys_resource: bool,
    /// Whether `/proc/sys/net/netfilter/nf_conntrack_max` exists and can be written (it
    /// is read-only outside the initial network namespace). kube-proxy sets it at start
    /// and exits when it cannot, unless `conntrack.maxPerCore` is 0.
    pub conntrack_max_writable: bool,
    /// Whether the host is in a cluster already: the kubelet's kubeconfig
    /// (`/etc/kubernetes/kubelet.conf`, written when its TLS bootstrap finished) and a
    /// local etcd's static Pod (`/etc/kubernetes/manifests/etcd.yaml`) exist. `up` decides
    /// from these which hosts still join, the same way for `--plan` and the run.
    pub kubelet_conf: bool,
    pub etcd_manifest: bool,
    /// A checksum of apt's sources and preferences (empty without apt): hosts with the
    /// same one get the same packages from apt (see `debshare`).
    #[serde(skip)]
    pub apt_sources: String,
    /// dpkg reads packages compressed with zstd (dpkg 1.21.18 and later): the hosts that
    /// receive another host's downloads get them repacked with zstd (see `repack`).
    #[serde(skip)]
    pub dpkg_zstd: bool,
}

/// The one command that prints all facts as `key=value` lines.
pub const SCRIPT: &str = r#"
[ -r /etc/os-release ] && . /etc/os-release
echo "os_id=${ID:-unknown}"
echo "os_like=${ID_LIKE:-}"
echo "os_version=${VERSION_ID:-}"
echo "hostname=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
if [ -d /run/systemd/system ]; then echo init=systemd; else echo "init=$(cat /proc/1/comm 2>/dev/null)"; fi
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo cgroup=2; else echo cgroup=1; fi
awk '/^SwapTotal:/{print "swap_kib=" $2} /^MemTotal:/{print "memory_kib=" $2}' /proc/meminfo
echo "cpus=$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo)"
for pm in apt-get dnf yum; do if command -v $pm >/dev/null 2>&1; then echo "pm=$pm"; break; fi; done
b=$(awk '/^CapBnd:/{print $2}' /proc/self/status 2>/dev/null)
[ -n "$b" ] && echo "cap_sys_resource=$(( (0x$b >> 24) & 1 ))"
f=/proc/sys/net/netfilter/nf_conntrack_max
if [ -f $f ] && v=$(cat $f 2>/dev/null) && (echo "$v" > $f) 2>/dev/null; then echo conntrack_w=1; else echo conntrack_w=0; fi
[ -d /etc/apt ] && echo "apt_sources=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* /etc/apt/preferences /etc/apt/preferences.d/* 2>/dev/null | cksum)"
dpkg-deb --help 2>/dev/null | grep -q zstd && echo dpkg_zstd=1
[ -f /etc/kubernetes/kubelet.conf ] && echo kubelet_conf=1
[ -f /etc/kubernetes/manifests/etcd.yaml ] && echo etcd_manifest=1
true
"#;

impl Facts {
    /// Gathers facts in one round trip.
    pub fn gather(host: &dyn Host) -> Result<Facts, HostError> {
        let out = host.run(SCRIPT, &RunOptions::default())?;
        Ok(Facts::parse(&out.stdout_text()))
    }

    /// Reads the output of [`SCRIPT`].
    pub fn parse(text: &str) -> Facts {
        let kv: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let get = |k: &str| kv.get(k).copied().unwrap_or_default().to_string();
        let id = get("os_id");
        let like = get("os_like");
        let words: Vec<&str> = std::iter::once(id.as_str())
            .chain(like.split_whitespace())
            .collect();
        let os_family = if words.iter().any(|w| matches!(*w, "debian" | "ubuntu")) {
            "debian".to_string()
        } else if words
            .iter()
            .any(|w| matches!(*w, "rhel" | "fedora" | "centos" | "rocky" | "almalinux"))
        {
            "rhel".to_string()
        } else {
            id.clone()
        };
        let arch = get("arch");
        let goarch = match arch.as_str() {
            "x86_64" => "amd64",
            "aarch64" | "arm64" => "arm64",
            "armv7l" => "arm",
            "ppc64le" => "ppc64le",
            "s390x" => "s390x",
            other => other,
        }
        .to_string();
        let package_manager = match get("pm").as_str() {
            "apt-get" => "apt".to_string(),
            other => other.to_string(),
        };
        Facts {
            hostname: get("hostname"),
            os_family,
            os_id: id,
            os_version: get("os_version"),
            arch,
            goarch,
            kernel: get("kernel"),
            init: get("init"),
            cgroup_version: get("cgroup").parse().unwrap_or(1),
            swap_kib: get("swap_kib").parse().unwrap_or(0),
            memory_kib: get("memory_kib").parse().unwrap_or(0),
            cpus: get("cpus").parse().unwrap_or(0),
            package_manager,
            // Unknown (no /proc/self/status) counts as present: the usual case.
            cap_sys_resource: get("cap_sys_resource") != "0",
            conntrack_max_writable: get("conntrack_w") != "0",
            kubelet_conf: get("kubelet_conf") == "1",
            etcd_manifest: get("etcd_manifest") == "1",
            apt_sources: get("apt_sources"),
            dpkg_zstd: get("dpkg_zstd") == "1",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        let f = Facts::parse(
            "os_id=ubuntu\nos_like=debian\nos_version=24.04\narch=aarch64\ncgroup=2\npm=apt-get\ninit=systemd\nswap_kib=0\nmemory_kib=2000000\ncpus=2\n",
        );
        assert_eq!(
            (f.os_family.as_str(), f.goarch.as_str()),
            ("debian", "arm64")
        );
        assert_eq!((f.package_manager.as_str(), f.cgroup_version), ("apt", 2));
        let f = Facts::parse("os_id=rocky\nos_like=rhel centos fedora\npm=dnf\n");
        assert_eq!(f.os_family, "rhel");
    }

    #[test]
    fn host_limits() {
        let f = Facts::parse("cap_sys_resource=0\nconntrack_w=0\n");
        assert!(!f.cap_sys_resource && !f.conntrack_max_writable);
        let f = Facts::parse("cap_sys_resource=1\nconntrack_w=1\n");
        assert!(f.cap_sys_resource && f.conntrack_max_writable);
        assert!(!f.kubelet_conf && !f.etcd_manifest);
        let f = Facts::parse("kubelet_conf=1\netcd_manifest=1\n");
        assert!(f.kubelet_conf && f.etcd_manifest);
    }

    #[test]
    fn gathers_on_this_machine() {
        let f = Facts::gather(&crate::host::LocalHost::new()).unwrap();
        // The bounding set as the kernel reports it, read here independently of the script.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let bnd = status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        assert_eq!(f.cap_sys_resource, bnd >> 24 & 1 == 1, "{f:?}");
        assert!(
            !f.kernel.is_empty() && f.cpus > 0 && f.memory_kib > 0,
            "{f:?}"
        );
    }
}

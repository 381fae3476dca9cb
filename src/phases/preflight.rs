//! Preflight checks as data, named as kubeadm names them so `--ignore-preflight-errors`
//! takes the same names. Facts come from one command on the host (one round trip over
//! SSH); file checks go through the host's filesystem view.

use crate::host::{Host, RunOptions};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Whether a failed check stops the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub name: String,
    pub severity: Severity,
    pub message: String,
}

/// What the host told about itself.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    pub euid: Option<u32>,
    pub cpus: Option<u32>,
    pub mem_mb: Option<u64>,
    pub swaps: Option<u32>,
    pub ip_forward: Option<String>,
    pub binaries: BTreeSet<String>,
    pub listening: BTreeSet<u16>,
    pub cri_socket: bool,
    pub kubelet_enabled: Option<String>,
}

const BINARIES: &[&str] = &[
    "ip", "iptables", "mount", "nsenter", "ethtool", "tc", "touch", "kubelet",
];

/// Gathers the facts in one command.
pub fn gather(host: &dyn Host, cri_socket: &str) -> anyhow::Result<Facts> {
    let socket = cri_socket.trim_start_matches("unix://");
    let bins = BINARIES.join(" ");
    let script = format!(
        r#"echo "euid=$(id -u)"; echo "cpus=$(nproc 2>/dev/null)"
awk '/^MemTotal:/ {{print "memkb=" $2}}' /proc/meminfo
echo "swaps=$(tail -n +2 /proc/swaps 2>/dev/null | wc -l)"
echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)"
for b in {bins}; do command -v "$b" >/dev/null 2>&1 && echo "bin=$b"; done
test -S '{socket}' && echo cri=1
echo "kubelet_enabled=$(systemctl is-enabled kubelet 2>/dev/null)"
cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" {{n = split($2, a, ":"); print "listen=" a[n]}}'
"#
    );
    let out = host.run(
        &script,
        &RunOptions {
            stdin: None,
            timeout: Some(Duration::from_secs(30)),
        },
    )?;
    let mut f = Facts::default();
    for line in out.stdout_text().lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "euid" => f.euid = v.parse().ok(),
            "cpus" => f.cpus = v.parse().ok(),
            "memkb" => f.mem_mb = v.parse::<u64>().ok().map(|kb| kb / 1024),
            "swaps" => f.swaps = v.trim().parse().ok(),
            "ip_forward" => f.ip_forward = Some(v.trim().to_string()),
            "bin" => {
                f.binaries.insert(v.to_string());
            }
            "cri" => f.cri_socket = true,
            "kubelet_enabled" => f.kubelet_enabled = Some(v.trim().to_string()),
            "listen" => {
                if let Ok(p) = u16::from_str_radix(v.trim(), 16) {
                    f.listening.insert(p);
                }
            }
            _ => {}
        }
    }
    Ok(f)
}

/// Which checks to run.
pub struct CheckSet<'a> {
    pub control_plane: bool,
    pub bind_port: u16,
    pub local_etcd: bool,
    pub etcd_data_dir: &'a str,
    pub cri_socket: &'a str,
    pub manifests_dir: &'a str,
}

/// Runs the checks; returns every finding (errors and warnings).
pub fn check(host: &dyn Host, facts: &Facts, set: &CheckSet) -> anyhow::Result<Vec<Finding>> {
    let mut out = Vec::new();
    let mut fail = |name: &str, severity, message: String| {
        out.push(Finding {
            name: name.into(),
            severity,
            message,
        })
    };
    use Severity::*;
    if facts.euid != Some(0) {
        fail(
            "IsPrivilegedUser",
            Error,
            "user is not running as root".into(),
        );
    }
    if set.control_plane {
        if let Some(c) = facts.cpus.filter(|c| *c < 2) {
            fail(
                "NumCPU",
                Error,
                format!("the number of available CPUs {c} is less than the required 2"),
            );
        }
        if let Some(m) = facts.mem_mb.filter(|m| *m < 1700) {
            fail(
                "Mem",
                Error,
                format!("the system RAM ({m} MB) is less than the minimum 1700 MB"),
            );
        }
        let mut ports = vec![set.bind_port, 10259, 10257];
        if set.local_etcd {
            ports.extend([2379, 2380]);
        }
        ports.push(10250);
        for p in ports {
            if facts.listening.contains(&p) {
                fail(&format!("Port-{p}"), Error, format!("Port {p} is in use"));
            }
        }
        for m in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "etcd",
        ] {
            let path = format!("{}/{m}.yaml", set.manifests_dir);
            if host.file_info(Path::new(&path))?.is_some() {
                fail(
                    &format!("FileAvailable-{}", path.replace('/', "-")),
                    Error,
                    format!("{path} already exists"),
                );
            }
        }
        if set.local_etcd
            && let Some(info) = host.file_info(Path::new(set.etcd_data_dir))?
            && info.is_dir
            && !dir_is_empty(host, set.etcd_data_dir)?
        {
            fail(
                &format!("DirAvailable-{}", set.etcd_data_dir.replace('/', "-")),
                Error,
                format!("{} is not empty", set.etcd_data_dir),
            );
        }
    } else if facts.listening.contains(&10250) {
        fail("Port-10250", Error, "Port 10250 is in use".into());
    }
    if facts.swaps.unwrap_or(0) > 0 {
        fail("Swap", Error, "swap is enabled; turn it off (`kubeboot prepare` does) or configure the kubelet for swap".into());
    }
    if facts.ip_forward.as_deref() != Some("1") {
        fail(
            "FileContent--proc-sys-net-ipv4-ip_forward",
            Error,
            "/proc/sys/net/ipv4/ip_forward contents are not set to 1".into(),
        );
    }
    for b in ["ip", "iptables", "mount", "nsenter"] {
        if !facts.binaries.contains(b) {
            fail(
                &format!("FileExisting-{b}"),
                Error,
                format!("{b} not found in system path"),
            );
        }
    }
    for b in ["ethtool", "tc", "touch"] {
        if !facts.binaries.contains(b) {
            fail(
                &format!("FileExisting-{b}"),
                Warning,
                format!("{b} not found in system path"),
            );
        }
    }
    if !facts.binaries.contains("kubelet") {
        fail(
            "FileExisting-kubelet",
            Error,
            "kubelet not found in system path: install it (`kubeboot prepare` does, from a pinned artifact source)".into(),
        );
    }
    if !facts.cri_socket {
        fail(
            "CRI",
            Error,
            format!(
                "container runtime is not running: no socket at {}",
                set.cri_socket
            ),
        );
    }
    if facts.kubelet_enabled.as_deref() != Some("enabled") {
        fail(
            "Service-Kubelet",
            Warning,
            "kubelet service is not enabled, please run 'systemctl enable kubelet.service'".into(),
        );
    }
    Ok(out)
}

fn dir_is_empty(host: &dyn Host, dir: &str) -> anyhow::Result<bool> {
    let out = host.run(
        &format!("ls -A '{dir}' 2>/dev/null | head -n 1"),
        &RunOptions::default(),
    )?;
    Ok(out.stdout_text().trim().is_empty())
}

/// Splits findings into those that stop the run and those reported only, honouring
/// `--ignore-preflight-errors` (names, case-insensitive, or `all`).
pub fn judge(findings: Vec<Finding>, ignore: &[String]) -> (Vec<Finding>, Vec<Finding>) {
    let ignored = |n: &str| {
        ignore
            .iter()
            .any(|i| i.eq_ignore_ascii_case(n) || i.eq_ignore_ascii_case("all"))
    };
    findings
        .into_iter()
        .partition(|f| f.severity == Severity::Error && !ignored(&f.name))
}

/// Runs preflight and fails with every error, kubeadm-style.
pub fn run(host: &dyn Host, set: &CheckSet, ignore: &[String]) -> anyhow::Result<()> {
    super::report("preflight", "Running pre-flight checks");
    let facts = gather(host, set.cri_socket)?;
    let (errors, rest) = judge(check(host, &facts, set)?, ignore);
    for w in &rest {
        let what = if w.severity == Severity::Error {
            "IGNORED"
        } else {
            "WARNING"
        };
        super::report("preflight", &format!("{what} {}: {}", w.name, w.message));
    }
    if !errors.is_empty() {
        let list: Vec<String> = errors
            .iter()
            .map(|e| format!("\t[ERROR {}]: {}", e.name, e.message))
            .collect();
        anyhow::bail!(
            "[preflight] Some fatal errors occurred on {}:\n{}\nTo see the stack trace of this error execute with -v=5 or higher; to ignore a check, add --ignore-preflight-errors=<name> (or =all)",
            host.name(),
            list.join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_by_name_or_all() {
        let f = vec![
            Finding {
                name: "Swap".into(),
                severity: Severity::Error,
                message: String::new(),
            },
            Finding {
                name: "NumCPU".into(),
                severity: Severity::Error,
                message: String::new(),
            },
            Finding {
                name: "FileExisting-tc".into(),
                severity: Severity::Warning,
                message: String::new(),
            },
        ];
        let (e, r) = judge(f.clone(), &["swap".into()]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].name, "NumCPU");
        assert_eq!(r.len(), 2);
        let (e, _) = judge(f, &["all".into()]);
        assert!(e.is_empty());
    }
}

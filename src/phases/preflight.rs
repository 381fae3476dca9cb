//! Preflight checks as data, named as kubeadm names them so `--ignore-preflight-errors`
//! takes the same names. Facts come from one command on the host (one round trip over
//! SSH); file checks go through the host's filesystem view.

use crate::host::{Host, RunOptions};
use crate::images::{Containerd, Present, PullStatus};
use crate::render::images::ImageRef;
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
    /// containerd's images, when the check set asked for them.
    pub images: Option<Present>,
}

const BINARIES: &[&str] = &[
    "ip", "iptables", "mount", "nsenter", "ethtool", "tc", "touch", "kubelet",
];

/// Gathers the facts in one command (with containerd's image list when `set` names images).
pub fn gather(host: &dyn Host, set: &CheckSet) -> anyhow::Result<Facts> {
    let socket = set.cri_socket.trim_start_matches("unix://");
    let images = if set.images.is_empty() {
        String::new()
    } else {
        set.containerd.list_script()
    };
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
{images}"#
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
    if !set.images.is_empty() {
        f.images = Present::parse(&out.stdout_text());
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
    /// Images the node will run, checked in containerd (and pulled when missing).
    pub images: &'a [ImageRef],
    pub containerd: &'a Containerd,
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
    findings
        .into_iter()
        .partition(|f| f.severity == Severity::Error && !ignored(ignore, &f.name))
}

/// kubeadm's name of the image check, for `--ignore-preflight-errors=ImagePull`.
pub const IMAGE_PULL: &str = "ImagePull";

/// The `ImagePull` finding for images that are neither in containerd nor pullable
/// (`(image, why)`), or for a containerd that cannot be asked.
pub fn image_finding(state: &ImageState) -> Option<Finding> {
    let how = "import an archive with `kubeboot prepare --image-archive FILE#sha256:HEX` (or spec.imageArchives), pull them with `kubeboot config images pull`, or point --image-repository at a registry that has them";
    let message = match state {
        ImageState::Ok => return None,
        ImageState::NotInstalled => format!(
            "containerd is not installed (neither ctr nor crictl found), so the images this node runs cannot be checked or pulled; install it (`kubeboot prepare` does), then {how}"
        ),
        ImageState::Unreachable(why) => format!(
            "cannot list containerd's images: {why}; start containerd, then make sure the images are present: {how}"
        ),
        ImageState::Missing(missing) => {
            // Images that failed for the same reason share it: "a, b (connection refused)".
            let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
            for (i, why) in missing {
                let cause = pull_cause(why, &i.image);
                match groups.iter_mut().find(|(c, _)| *c == cause) {
                    Some((_, v)) => v.push(&i.image),
                    None => groups.push((cause, vec![&i.image])),
                }
            }
            let list: Vec<String> = groups
                .iter()
                .map(|(cause, images)| {
                    if cause.is_empty() {
                        images.join(", ")
                    } else {
                        format!("{} ({cause})", images.join(", "))
                    }
                })
                .collect();
            format!(
                "{} image{} missing from containerd (namespace k8s.io) and could not be pulled: {}. To provide {}: {how}",
                missing.len(),
                if missing.len() == 1 { " is" } else { "s are" },
                list.join("; "),
                if missing.len() == 1 { "it" } else { "them" },
            )
        }
    };
    Some(Finding {
        name: IMAGE_PULL.into(),
        severity: Severity::Error,
        message,
    })
}

/// The root cause of a failed pull without the parts that name the image: containerd says
/// `ctr: failed to resolve reference "R": failed to do request: Head "URL": dial tcp ...:
/// connection refused`; the cause is what follows the last quoted part.
fn pull_cause(why: &str, image: &str) -> String {
    let tail = why.rsplit_once("\": ").map_or(why, |(_, t)| t);
    let tail = tail.strip_prefix("ctr: ").unwrap_or(tail);
    tail.replace(&format!("{image}: "), "").trim().to_string()
}

/// Where the node's images stand after preflight's look (and pulls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageState {
    Ok,
    NotInstalled,
    Unreachable(String),
    /// Images missing after a pull was tried, each with why the pull failed (empty when
    /// no pull was tried).
    Missing(Vec<(ImageRef, String)>),
}

/// Checks `images` against containerd's listing; pulls the missing ones (one more
/// command, [`crate::images::PREFLIGHT_PULL_TIMEOUT`] each) unless `ImagePull` is ignored,
/// like kubeadm's preflight.
pub fn check_images(
    host: &dyn Host,
    cd: &Containerd,
    images: &[ImageRef],
    present: Option<&Present>,
    ignore: &[String],
) -> anyhow::Result<ImageState> {
    if images.is_empty() {
        return Ok(ImageState::Ok);
    }
    let have = match present {
        None => return Ok(ImageState::Unreachable("no answer".into())),
        Some(Present::NotInstalled) => return Ok(ImageState::NotInstalled),
        Some(Present::Unreachable(why)) => return Ok(ImageState::Unreachable(why.clone())),
        Some(Present::Images(have)) => have,
    };
    let missing: Vec<ImageRef> = images
        .iter()
        .filter(|i| !have.contains(&i.image))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(ImageState::Ok);
    }
    if ignored(ignore, IMAGE_PULL) {
        return Ok(ImageState::Missing(
            missing.into_iter().map(|i| (i, String::new())).collect(),
        ));
    }
    super::report(
        "preflight",
        &format!(
            "Pulling {} image{} missing from containerd (up to {}s each)",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            crate::images::PREFLIGHT_PULL_TIMEOUT.as_secs()
        ),
    );
    let pulled =
        match crate::images::pull(host, cd, &missing, crate::images::PREFLIGHT_PULL_TIMEOUT) {
            Ok(p) => p,
            Err(e) => return Ok(ImageState::Unreachable(format!("{e:#}"))),
        };
    let mut failed = Vec::new();
    for p in pulled {
        match p.status {
            PullStatus::Failed(why) => failed.push((p.image, why)),
            PullStatus::Pulled => super::report("preflight", &format!("Pulled {}", p.image.image)),
            PullStatus::Present => {}
        }
    }
    Ok(if failed.is_empty() {
        ImageState::Ok
    } else {
        ImageState::Missing(failed)
    })
}

fn ignored(ignore: &[String], name: &str) -> bool {
    ignore
        .iter()
        .any(|i| i.eq_ignore_ascii_case(name) || i.eq_ignore_ascii_case("all"))
}

/// Only the image check (one or two commands): for a worker join, which learns the
/// cluster's version and image repository from discovery after the other checks.
pub fn run_images(
    host: &dyn Host,
    cd: &Containerd,
    images: &[ImageRef],
    ignore: &[String],
) -> anyhow::Result<()> {
    if images.is_empty() {
        return Ok(());
    }
    super::report(
        "preflight",
        &format!(
            "Checking that containerd has the {} images this node runs",
            images.len()
        ),
    );
    let present = crate::images::present(host, cd)?;
    let state = check_images(host, cd, images, Some(&present), ignore)?;
    report_findings(host, image_finding(&state).into_iter().collect(), ignore)
}

/// Runs preflight and fails with every error, kubeadm-style.
pub fn run(host: &dyn Host, set: &CheckSet, ignore: &[String]) -> anyhow::Result<()> {
    super::report("preflight", "Running pre-flight checks");
    let facts = gather(host, set)?;
    let mut findings = check(host, &facts, set)?;
    let state = check_images(
        host,
        set.containerd,
        set.images,
        facts.images.as_ref(),
        ignore,
    )?;
    findings.extend(image_finding(&state));
    report_findings(host, findings, ignore)
}

/// Reports warnings and ignored errors; fails with every remaining error.
fn report_findings(
    host: &dyn Host,
    findings: Vec<Finding>,
    ignore: &[String],
) -> anyhow::Result<()> {
    let (errors, rest) = judge(findings, ignore);
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

    fn img(component: &str, image: &str) -> ImageRef {
        ImageRef {
            component: component.into(),
            image: image.into(),
        }
    }

    #[test]
    fn image_finding_names_every_missing_image_and_the_ways_to_provide_them() {
        assert_eq!(image_finding(&ImageState::Ok), None);
        let f = image_finding(&ImageState::Missing(vec![
            (
                img("etcd", "r.local/etcd:3.6.5-0"),
                r#"ctr: failed to resolve reference "r.local/etcd:3.6.5-0": failed to do request: Head "http://r.local/v2/etcd/manifests/3.6.5-0": dial tcp 10.0.0.9:443: connect: connection refused"#.into(),
            ),
            (
                img("coredns", "r.local/coredns:v1.12.1"),
                r#"ctr: failed to resolve reference "r.local/coredns:v1.12.1": failed to do request: Head "http://r.local/v2/coredns/manifests/v1.12.1": dial tcp 10.0.0.9:443: connect: connection refused"#.into(),
            ),
            (img("pause", "r.local/pause:3.10.1"), String::new()),
        ]))
        .unwrap();
        assert_eq!(f.name, "ImagePull");
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(
            f.message,
            "3 images are missing from containerd (namespace k8s.io) and could not be pulled: r.local/etcd:3.6.5-0, r.local/coredns:v1.12.1 (dial tcp 10.0.0.9:443: connect: connection refused); r.local/pause:3.10.1. To provide them: import an archive with `kubeboot prepare --image-archive FILE#sha256:HEX` (or spec.imageArchives), pull them with `kubeboot config images pull`, or point --image-repository at a registry that has them"
        );
        let f = image_finding(&ImageState::NotInstalled).unwrap();
        assert!(
            f.message.starts_with("containerd is not installed"),
            "{}",
            f.message
        );
        let f = image_finding(&ImageState::Unreachable(
            "no containerd socket at /x".into(),
        ))
        .unwrap();
        assert!(
            f.message.contains("no containerd socket at /x"),
            "{}",
            f.message
        );
        // --ignore-preflight-errors=ImagePull takes it.
        let (e, r) = judge(vec![f], &["imagepull".into()]);
        assert!(e.is_empty() && r.len() == 1);
    }

    #[test]
    fn present_images_need_no_pull() {
        let host = crate::host::LocalHost::new();
        let cd = Containerd::default();
        let want = [img("pause", "r/pause:1")];
        let have = Present::Images(["r/pause:1".to_string()].into());
        assert_eq!(
            check_images(&host, &cd, &want, Some(&have), &[]).unwrap(),
            ImageState::Ok
        );
        // Missing and ignored: reported without pulling.
        let none = Present::Images(Default::default());
        assert_eq!(
            check_images(&host, &cd, &want, Some(&none), &["ImagePull".into()]).unwrap(),
            ImageState::Missing(vec![(want[0].clone(), String::new())])
        );
        assert_eq!(
            check_images(&host, &cd, &want, Some(&Present::NotInstalled), &[]).unwrap(),
            ImageState::NotInstalled
        );
    }
}

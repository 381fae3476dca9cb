//! `kubeboot prepare` end to end on real hosts: `kubeboot lab` nodes (systemd-nspawn
//! Debian with real sshd, apt, systemd, containerd), driven over SSH by the built binary.
//! kubelet and kubectl are STAND-IN files served from a local HTTP server with their real
//! sha256 (no registry reachable here has the real binaries); the download, checksum,
//! upload, install, unit and drop-in paths are real.
//!
//! Needs what `tests/lab_support` lists, plus KUBEBOOT_TEST_APT_PROXY (apt inside the
//! nodes); KUBEBOOT_SKIP_LAB_TESTS=1 skips.

mod http_support;
mod lab_support;

use http_support::{FileServer, sha256sum, write_stand_ins};
use lab_support::{LabEnv, RunningLab, apt_proxy, lab_prerequisites, text};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Artifacts: stand-ins on a loopback HTTP server.
struct Artifacts {
    _dir: tempfile::TempDir,
    server: FileServer,
    kubelet_sha: String,
    kubectl_sha: String,
}

impl Artifacts {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_stand_ins(dir.path());
        let kubelet_sha = sha256sum(&dir.path().join("kubelet"));
        let kubectl_sha = sha256sum(&dir.path().join("kubectl"));
        let server = FileServer::start(dir.path().to_path_buf());
        Artifacts {
            _dir: dir,
            server,
            kubelet_sha,
            kubectl_sha,
        }
    }

    /// `--artifact` flags; `kubelet_pin` replaces kubelet's real sha256.
    fn flags(&self, kubelet_pin: Option<&str>) -> Vec<String> {
        vec![
            "--artifact".into(),
            format!(
                "kubelet={}#sha256:{}",
                self.server.url("kubelet"),
                kubelet_pin.unwrap_or(&self.kubelet_sha)
            ),
            "--artifact".into(),
            format!(
                "kubectl={}#sha256:{}",
                self.server.url("kubectl"),
                self.kubectl_sha
            ),
        ]
    }

    fn requests(&self) -> usize {
        self.server
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn kubeboot(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("KUBEBOOT_SUDO_PASSWORD")
        .output()
        .expect("run kubeboot")
}

fn inventory(lab: &RunningLab) -> String {
    lab.env
        .lab_dir(&lab.name)
        .join("cluster.yaml")
        .display()
        .to_string()
}

/// Runs `prepare -o json`; returns (success, summary event, whole output).
fn prepare_json(args: &[String]) -> (bool, Value, String) {
    let mut a: Vec<String> = vec!["prepare".into(), "-o".into(), "json".into()];
    a.extend_from_slice(args);
    let out = kubeboot(&a);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary event:\n{}", text(&out)));
    (out.status.success(), summary, text(&out))
}

fn host<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == name)
        .unwrap_or_else(|| panic!("{name} not in summary {summary:#}"))
}

fn count(h: &Value, outcome: &str) -> usize {
    h["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["outcome"] == outcome)
        .count()
}

fn failed_steps(h: &Value) -> Vec<String> {
    h["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["outcome"] == "failed")
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

fn step<'a>(h: &'a Value, name: &str) -> &'a Value {
    h["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {h:#}"))
}

/// What `--plan` must not change: files, packages, sysctls, units.
const DIGEST: &str = "(cat /etc/fstab; ls -la --time-style=full-iso /etc /etc/sysctl.d /etc/modules-load.d /etc/systemd/system /usr/bin /opt 2>&1; dpkg -l; sysctl -n net.ipv4.ip_forward; systemctl is-enabled kubelet containerd 2>&1) | sha256sum";

fn ssh_raw(key: &Path, known_hosts: &Path, user_host: &str, command: &str) -> Output {
    Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args(["-o", "StrictHostKeyChecking=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=5",
        ])
        .arg(user_host)
        .arg(command)
        .output()
        .unwrap()
}

fn wait_ssh(lab: &RunningLab, i: usize, kh: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if lab.ssh_with_known_hosts(i, kh, "true").status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("node {i} did not answer SSH again");
}

fn verify_prepared(lab: &RunningLab, i: usize, kh: &Path, art: &Artifacts) {
    let run = |c: &str| {
        let out = lab.ssh_with_known_hosts(i, kh, c);
        assert!(out.status.success(), "node {i}: {c}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let fstab = run("cat /etc/fstab");
    assert!(
        fstab.contains("# /swapfile none swap sw 0 0"),
        "node {i} fstab:\n{fstab}"
    );
    assert!(
        !fstab.lines().any(|l| l.starts_with("/swapfile")),
        "node {i} fstab:\n{fstab}"
    );
    for key in [
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
        "net.ipv4.ip_forward",
    ] {
        assert_eq!(run(&format!("sysctl -n {key}")), "1", "node {i} {key}");
    }
    assert_eq!(
        run("cat /etc/modules-load.d/k8s.conf | grep -v '^#'"),
        "overlay\nbr_netfilter"
    );
    assert!(run("cat /etc/containerd/config.toml").contains("SystemdCgroup = true"));
    let dump = run("containerd config dump");
    assert!(dump.contains("SystemdCgroup = true"), "node {i}: {dump}");
    assert!(
        dump.contains("registry.k8s.io/pause:3.10.1"),
        "node {i}: {dump}"
    );
    assert!(!dump.contains("disabled_plugins = [\"cri\"]"));
    assert_eq!(run("systemctl is-active containerd"), "active");
    // Only what the steps list and its dependencies: runc recommends criu (and criu
    // needs Python 3); neither is installed.
    assert_eq!(
        run(
            "dpkg-query -W -f='${Package} ${Status}\\n' runc criu python3 2>/dev/null | awk '$NF == \"installed\" {print $1}'"
        ),
        "runc",
        "node {i}: recommended packages were installed"
    );
    // apt's lists were refreshed without the description translations, or not at all
    // (a node that installed the .deb files another one downloaded).
    let lists = run("ls /var/lib/apt/lists");
    assert!(
        !lists.contains("_Translation-"),
        "node {i}: apt lists: {lists}"
    );
    assert_eq!(
        run("sha256sum /usr/bin/kubelet | cut -d' ' -f1; stat -c '%a %U' /usr/bin/kubelet"),
        format!("{}\n755 root", art.kubelet_sha)
    );
    assert_eq!(
        run("sha256sum /usr/bin/kubectl | cut -d' ' -f1"),
        art.kubectl_sha
    );
    let unit = run("systemctl cat kubelet");
    assert!(
        unit.contains("ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS"),
        "{unit}"
    );
    assert!(unit.contains("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"));
    assert_eq!(run("systemctl is-enabled kubelet"), "enabled");
    assert!(run("ls /opt/cni/bin").contains("bridge"));
}

#[test]
fn prepare_three_lab_nodes_with_faults_plan_rerun_and_sudo() {
    if !lab_prerequisites(true) {
        return;
    }
    let env = LabEnv::new();
    let lab = env.up(
        "kbprep",
        "10.213.61.0/24",
        3,
        &["--apt-proxy", &apt_proxy()],
    );
    let art = Artifacts::new();
    let inv = inventory(&lab);
    let names: Vec<String> = lab
        .inventory()
        .spec
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .collect();
    let ssh = lab.inventory().spec.ssh.clone();
    // A known_hosts of the test's own, so a node's key can be changed and fixed.
    let work = tempfile::tempdir().unwrap();
    let kh = work.path().join("known_hosts");
    std::fs::copy(&ssh.known_hosts_path, &kh).unwrap();
    let base = |extra: &[String]| -> Vec<String> {
        let mut v = vec![
            "-f".to_string(),
            inv.clone(),
            "--known-hosts".into(),
            kh.display().to_string(),
        ];
        v.extend_from_slice(extra);
        v
    };
    for i in 1..=3 {
        lab.ssh_ok(i, "echo '/swapfile none swap sw 0 0' >> /etc/fstab");
    }

    // --plan on fresh nodes: lists the changes, with diffs, and changes nothing.
    let before: Vec<String> = (1..=3).map(|i| lab.ssh_ok(i, DIGEST)).collect();
    let mut args = vec!["prepare".to_string(), "--plan".into()];
    args.extend(base(&art.flags(None)));
    let out = kubeboot(&args);
    let plan = text(&out);
    assert!(out.status.success(), "{plan}");
    for needle in [
        "to change",
        "+# /swapfile none swap sw 0 0",
        "to install: containerd runc containernetworking-plugins",
        "/usr/bin/kubelet does not exist",
        "restart containerd",
        "(plan: nothing was changed)",
    ] {
        assert!(plan.contains(needle), "{needle:?} missing in plan:\n{plan}");
    }
    assert!(
        plan.lines()
            .any(|l| l.trim_start().starts_with('+') && l.contains("SystemdCgroup = true")),
        "containerd config diff missing in plan:\n{plan}"
    );
    let after: Vec<String> = (1..=3).map(|i| lab.ssh_ok(i, DIGEST)).collect();
    assert_eq!(before, after, "--plan changed a node");
    assert_eq!(art.requests(), 0, "--plan must not fetch artifacts");

    // First run, with two faults: node2's sshd is stopped (a timer inside the node starts
    // it again after 20 s), and the kubelet pin is wrong.
    lab.ssh_ok(
        2,
        "systemd-run --on-active=20 systemctl start ssh >/dev/null 2>&1; systemctl stop ssh",
    );
    let wrong_pin = "0".repeat(64);
    let (ok, s, all) = prepare_json(&base(&art.flags(Some(&wrong_pin))));
    assert!(!ok, "{all}");
    assert!(all.contains("prepare failed on 3 of 3 hosts"), "{all}");
    let n2 = host(&s, &names[1]);
    let err = n2["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("cannot connect") && err.contains("refused"),
        "{err}"
    );
    // Nodes 1 and 3 are alike: one downloaded the packages, the other installed the
    // same files without refreshing apt's lists; the first kept lists, without
    // translations.
    let shared: Vec<(usize, String)> = [0, 2]
        .into_iter()
        .map(|k| {
            let d = step(host(&s, &names[k]), "container runtime packages")["detail"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (k, d)
        })
        .collect();
    let received: Vec<&(usize, String)> = shared
        .iter()
        .filter(|(_, d)| d.starts_with("installed from the "))
        .collect();
    assert_eq!(received.len(), 1, "{shared:?}");
    let (r, d) = received[0];
    let source = if *r == 0 { 2 } else { 0 };
    assert!(
        d.contains(&format!(" packages {} downloaded", names[source]))
            && d.contains("no apt-get update on this host"),
        "{d}"
    );
    // The lab's Debian 12 dpkg reads zstd: the receiver got the packages repacked, and
    // dpkg installed Debian's files all the same (their md5sums from the package hold)
    // with the control fields the source installed from Debian's own file.
    assert!(d.contains("repacked with zstd"), "{d}");
    let fields = "dpkg-query -W -f '${Maintainer} ${Version} ${Installed-Size}' containerd runc";
    // (Only the conffile prepare rewrites, config.toml, may differ: marked ` c `.)
    let verify = lab.ssh_ok(
        r + 1,
        "dpkg --verify containerd runc | grep -v ' c /' || true",
    );
    assert_eq!(verify, "", "dpkg --verify on the receiver");
    let received = lab.ssh_ok(r + 1, fields);
    assert!(!received.is_empty(), "no dpkg fields on the receiver");
    assert_eq!(received, lab.ssh_ok(source + 1, fields), "control fields");
    let lists = |k: usize| lab.ssh_ok(k + 1, "ls /var/lib/apt/lists");
    assert!(
        !lists(*r).contains("_Packages"),
        "the receiving node refreshed apt's lists: {}",
        lists(*r)
    );
    let l = lists(source);
    assert!(
        l.lines().filter(|l| l.ends_with("_Packages")).count() >= 2 && !l.contains("_Translation-"),
        "the downloading node's lists: {l}"
    );
    for n in [&names[0], &names[2]] {
        let h = host(&s, n);
        assert_eq!(failed_steps(h), vec!["kubelet binary"], "{h:#}");
        let d = step(h, "kubelet binary")["detail"].as_str().unwrap();
        assert!(
            d.contains(&art.kubelet_sha) && d.contains(&wrong_pin),
            "{d}"
        );
        assert!(d.contains("nothing was installed"), "{d}");
        assert!(h["error"].is_null());
        assert!(count(h, "changed") >= 12, "{h:#}");
    }
    for i in [1, 3] {
        assert!(!lab.ssh(i, "test -e /usr/bin/kubelet").status.success());
        assert!(
            lab.ssh_ok(i, "ls /usr/bin")
                .lines()
                .all(|l| !l.contains("kubeboot"))
        );
    }

    // Fixed: right pin, sshd back. Every node converges; each artifact is fetched once.
    wait_ssh(&lab, 2, &kh);
    let fetched = art.requests();
    let (ok, s, all) = prepare_json(&base(&art.flags(None)));
    assert!(ok, "{all}");
    assert_eq!(
        art.requests() - fetched,
        2,
        "kubelet and kubectl fetched once each"
    );
    assert_eq!(
        count(host(&s, &names[0]), "changed"),
        1,
        "{:#}",
        host(&s, &names[0])
    );
    assert!(count(host(&s, &names[1]), "changed") >= 14);
    for i in 1..=3 {
        verify_prepared(&lab, i, &kh, &art);
    }

    // A second run changes nothing, in two round trips per host.
    let (ok, s, all) = prepare_json(&base(&art.flags(None)));
    assert!(ok, "{all}");
    for n in &names {
        let h = host(&s, n);
        assert_eq!(count(h, "changed"), 0, "{h:#}");
        assert_eq!(h["roundTrips"], 2, "{h:#}");
    }

    // Host key changed on node3: refused with the new key's fingerprint and where the
    // old one is recorded; the others finish.
    lab.ssh_ok(
        3,
        "rm -f /etc/ssh/ssh_host_ed25519_key*; ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key; systemctl restart ssh",
    );
    let addr3 = lab.address(3).to_string();
    let scan = Command::new("ssh-keyscan")
        .args(["-t", "ed25519", &addr3])
        .output()
        .unwrap();
    let scanned = String::from_utf8_lossy(&scan.stdout).into_owned();
    let scan_file = work.path().join("scan");
    std::fs::write(&scan_file, &scanned).unwrap();
    let fp = String::from_utf8_lossy(
        &Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&scan_file)
            .output()
            .unwrap()
            .stdout,
    )
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_string();
    let (ok, s, all) = prepare_json(&base(&art.flags(None)));
    assert!(!ok);
    assert_eq!(s["failedHosts"], serde_json::json!([names[2]]), "{all}");
    let e = host(&s, &names[2])["error"].as_str().unwrap().to_string();
    assert!(e.contains("HOST KEY CHANGED"), "{e}");
    assert!(e.contains(&fp), "{e} should show {fp}");
    assert!(e.contains(&format!("{}:3", kh.display())), "{e}");
    assert_eq!(count(host(&s, &names[0]), "changed"), 0);
    // Fix: record the new key; converges.
    let fixed: String = std::fs::read_to_string(&kh)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{addr3} ")) {
                scanned.trim().to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&kh, fixed).unwrap();
    let (ok, _, all) = prepare_json(&base(&art.flags(None)));
    assert!(ok, "{all}");

    // Wrong key: node1 accepts only another key now; only node1 fails, saying so.
    let alt = work.path().join("alt");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&alt)
            .status()
            .unwrap()
            .success()
    );
    let alt_pub = std::fs::read_to_string(alt.with_extension("pub")).unwrap();
    let out = lab.ssh_with_known_hosts(
        1,
        &kh,
        &format!("cp /root/.ssh/authorized_keys /root/.ssh/ak.kubeboot-test && echo '{}' > /root/.ssh/authorized_keys", alt_pub.trim()),
    );
    assert!(out.status.success(), "{}", text(&out));
    let (ok, s, all) = prepare_json(&base(&art.flags(None)));
    assert!(!ok);
    assert_eq!(s["failedHosts"], serde_json::json!([names[0]]), "{all}");
    let e = host(&s, &names[0])["error"].as_str().unwrap().to_string();
    assert!(
        e.contains("cannot log in as root") && e.contains("rejected"),
        "{e}"
    );
    assert!(e.contains(&ssh.key_path), "{e}");
    let addr1 = lab.address(1).to_string();
    let out = ssh_raw(
        &alt,
        &kh,
        &format!("root@{addr1}"),
        "mv /root/.ssh/ak.kubeboot-test /root/.ssh/authorized_keys",
    );
    assert!(out.status.success(), "{}", text(&out));
    let (ok, _, all) = prepare_json(&base(&art.flags(None)));
    assert!(ok, "{all}");

    // Non-root users through sudo: NOPASSWD, and a password from KUBEBOOT_SUDO_PASSWORD.
    lab.ssh_ok(
        1,
        "for u in kbadmin kbpw; do useradd -m -s /bin/sh $u && mkdir -p /home/$u/.ssh && cp /root/.ssh/authorized_keys /home/$u/.ssh/ && chown -R $u: /home/$u/.ssh; done; \
         echo 'kbadmin ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/kbadmin; echo 'kbpw ALL=(ALL) ALL' > /etc/sudoers.d/kbpw; chmod 440 /etc/sudoers.d/kb*; \
         echo 'kbpw:Pw-kubeboot-1' | chpasswd; rm /etc/sysctl.d/k8s.conf",
    );
    let direct = |user: &str| -> Vec<String> {
        let mut v = vec![
            addr1.clone(),
            "--user".into(),
            user.into(),
            "-i".into(),
            ssh.key_path.clone(),
            "--known-hosts".into(),
            kh.display().to_string(),
            "--no-agent".into(),
        ];
        v.extend(art.flags(None));
        v
    };
    let (ok, s, all) = prepare_json(&direct("kbadmin"));
    assert!(ok, "{all}");
    let h = host(&s, &addr1);
    assert_eq!(count(h, "changed"), 1, "{h:#}");
    assert_eq!(
        step(h, "Kubernetes networking sysctls")["outcome"],
        "changed"
    );
    assert_eq!(
        lab.ssh_ok(1, "stat -c '%U %a' /etc/sysctl.d/k8s.conf"),
        "root 644"
    );
    lab.ssh_ok(1, "rm /etc/sysctl.d/k8s.conf");
    let (ok, s, _) = prepare_json(&direct("kbpw"));
    assert!(!ok);
    let e = host(&s, &addr1)["error"].as_str().unwrap().to_string();
    assert!(e.contains("KUBEBOOT_SUDO_PASSWORD"), "{e}");
    let mut a: Vec<String> = vec!["prepare".into(), "-o".into(), "json".into()];
    a.extend(direct("kbpw"));
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(&a)
        .env_remove("SSH_AUTH_SOCK")
        .env("KUBEBOOT_SUDO_PASSWORD", "Pw-kubeboot-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"changed\":1"),
        "{}",
        text(&out)
    );
    assert_eq!(
        lab.ssh_ok(
            1,
            "sysctl -n net.ipv4.ip_forward; test -f /etc/sysctl.d/k8s.conf && echo present"
        ),
        "1\npresent"
    );

    // No kubelet artifact: the pkgs.k8s.io packages are used, which nodes here cannot
    // reach; that step fails saying what is missing and how to provide it, and every
    // other step is still reported.
    let mut a = vec![
        addr1.clone(),
        "-i".to_string(),
        ssh.key_path.clone(),
        "--known-hosts".into(),
        kh.display().to_string(),
    ];
    a.push("--no-agent".into());
    let (ok, s, all) = prepare_json(&a);
    assert!(!ok, "{all}");
    let h = host(&s, &addr1);
    let repo = step(h, "pkgs.k8s.io repository");
    assert_eq!(repo["outcome"], "failed", "{h:#}");
    let d = repo["detail"].as_str().unwrap();
    assert!(
        d.contains("pkgs.k8s.io") && d.contains("--artifact kubelet="),
        "{d}"
    );
    assert_eq!(step(h, "containerd enabled and running")["outcome"], "ok");
    assert_eq!(step(h, "kubelet binary")["outcome"], "skipped");
    assert!(h["steps"].as_array().unwrap().len() >= 19, "{h:#}");

    // The text output: a summary table and the exit status name what failed.
    let mut args = vec!["prepare".to_string()];
    args.extend(base(&art.flags(None)));
    let out = kubeboot(&args);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("HOST") && t.contains("ROUND TRIPS"), "{t}");
    assert!(t.contains("3 hosts, 0 failed"), "{t}");
}

#[test]
fn prepare_survives_a_node_killed_mid_run() {
    if !lab_prerequisites(true) {
        return;
    }
    let env = LabEnv::new();
    let art = Artifacts::new();
    let lab = env.up(
        "kbkill",
        "10.213.62.0/24",
        2,
        &["--apt-proxy", &apt_proxy()],
    );
    let inv = inventory(&lab);
    let names: Vec<String> = lab
        .inventory()
        .spec
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .collect();
    let mut args: Vec<String> = vec![
        "prepare".into(),
        "-o".into(),
        "json".into(),
        "-f".into(),
        inv.clone(),
    ];
    args.extend(art.flags(None));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(&args)
        .env_remove("SSH_AUTH_SOCK")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill node1 (its systemd-nspawn, by PID) while apt installs containerd there.
    let (pids, _) = lab.recorded();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut killed = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "step-started"
            && v["host"] == names[0]
            && v["step"] == "container runtime packages"
        {
            std::thread::sleep(Duration::from_secs(2));
            // The node's init (PID 1 of its namespace) is systemd-nspawn's child; when
            // it dies, the kernel kills everything in the node and nspawn exits.
            let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", pids[0]))
                .unwrap_or_default();
            let init: i32 = children
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no init under nspawn pid {}", pids[0]));
            unsafe { libc::kill(init, libc::SIGKILL) };
            killed = true;
            break;
        }
    }
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert!(killed, "never saw node1 install packages: {seen:#?}");
    assert!(!status.success(), "{rest:#?}");
    let summary: Value = rest
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {seen:?} {rest:?}"));
    assert_eq!(
        summary["failedHosts"],
        serde_json::json!([names[0]]),
        "{summary:#}"
    );
    let h1 = host(&summary, &names[0]);
    let e = h1["error"].as_str().unwrap_or_default();
    assert!(e.contains("connection") || e.contains("lost"), "{h1:#}");
    assert_eq!(step(h1, "container runtime packages")["outcome"], "failed");
    let h2 = host(&summary, &names[1]);
    assert!(
        count(h2, "changed") >= 14 && failed_steps(h2).is_empty(),
        "{h2:#}"
    );

    // Fix: the node comes back (a new one of the same name); a re-run converges.
    drop(lab);
    let lab = env.up(
        "kbkill",
        "10.213.62.0/24",
        2,
        &["--apt-proxy", &apt_proxy()],
    );
    lab.ssh_ok(1, "echo '/swapfile none swap sw 0 0' >> /etc/fstab");
    let mut a: Vec<String> = vec!["-f".into(), inventory(&lab)];
    a.extend(art.flags(None));
    let (ok, _, all) = prepare_json(&a);
    assert!(ok, "{all}");
    let (ok, s, all) = prepare_json(&a);
    assert!(ok, "{all}");
    for n in &names {
        assert_eq!(count(host(&s, n), "changed"), 0);
    }
    let kh = PathBuf::from(&lab.inventory().spec.ssh.known_hosts_path);
    verify_prepared(&lab, 1, &kh, &art);
}

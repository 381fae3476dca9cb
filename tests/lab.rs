//! `kubeboot lab` on real hosts: systemd-nspawn nodes reached with the real `ssh` client.
//!
//! Needs root, systemd-nspawn (systemd-container), debootstrap (first run builds the base
//! image, about a minute), openssh-client, iproute2, and an apt proxy for the nodes in
//! `KUBEBOOT_TEST_APT_PROXY` (`tests/support/start-tinyproxy.sh` starts one and prints the
//! value). Without them the test fails and says what is missing, unless
//! `KUBEBOOT_SKIP_LAB_TESTS=1`, when it says it skipped.
//!
//! One `#[test]` tells the whole story, so the slow parts run once and in order.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kubeboot::lab::inventory::ClusterInventory;

/// Names and subnets used only by this test, so it never touches a user's lab.
const LAB: &str = "kbtest";
const SUBNET: &str = "10.213.50.0/24";
const LAB2: &str = "kbtest2";
const SUBNET2: &str = "10.213.51.0/24";

struct Env {
    state_root: tempfile::TempDir,
}

impl Env {
    fn kubeboot(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kubeboot"))
            .args(args)
            .env("KUBEBOOT_LAB_STATE", self.state_root.path())
            .env_remove("KUBEBOOT_LAB_NAME")
            .output()
            .expect("run kubeboot")
    }

    fn kubeboot_ok(&self, args: &[&str]) -> String {
        let out = self.kubeboot(args);
        assert!(
            out.status.success(),
            "kubeboot {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn lab_dir(&self, lab: &str) -> PathBuf {
        self.state_root.path().join(lab)
    }
}

/// Takes the labs down even when an assertion fails half way.
struct Teardown<'a>(&'a Env);

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        for lab in [LAB2, LAB] {
            let out = self.0.kubeboot(&["lab", "down", "--name", lab]);
            if !out.status.success() {
                eprintln!(
                    "cleanup: lab down {lab} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

fn in_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    if kubeboot::lab::prereq::effective_uid() != Some(0) {
        missing.push("root (run the tests as root)".to_string());
    }
    for (tool, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("ip", "iproute2"),
    ] {
        if !in_path(tool) {
            missing.push(format!("{tool} (apt-get install -y {package})"));
        }
    }
    if std::env::var("KUBEBOOT_TEST_APT_PROXY").is_err() {
        missing.push(
            "KUBEBOOT_TEST_APT_PROXY (run tests/support/start-tinyproxy.sh and export what it prints)"
                .to_string(),
        );
    }
    missing
}

/// ssh to a node the way any user would: the real client, lab key, strict host keys.
fn ssh(inv: &ClusterInventory, address: Ipv4Addr, command: &str) -> Output {
    ssh_with_known_hosts(
        inv,
        Path::new(&inv.spec.ssh.known_hosts_path),
        address,
        command,
    )
}

fn ssh_with_known_hosts(
    inv: &ClusterInventory,
    known_hosts: &Path,
    address: Ipv4Addr,
    command: &str,
) -> Output {
    Command::new("ssh")
        .args(["-F", "/dev/null", "-i", &inv.spec.ssh.key_path])
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
        .arg(format!("{}@{address}", inv.spec.ssh.user))
        .arg(command)
        .output()
        .expect("run ssh")
}

fn ssh_ok(inv: &ClusterInventory, address: Ipv4Addr, command: &str) -> String {
    let out = ssh(inv, address, command);
    assert!(
        out.status.success(),
        "ssh {address} {command:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn read_inventory(dir: &Path) -> ClusterInventory {
    let text = std::fs::read_to_string(dir.join("cluster.yaml")).expect("cluster.yaml written");
    serde_saphyr::from_str(&text).expect("cluster.yaml parses")
}

/// PIDs and cgroup directories recorded by `lab up`, read straight from the state file.
fn recorded(dir: &Path) -> (Vec<u32>, Vec<PathBuf>) {
    let text = std::fs::read_to_string(dir.join("state.json")).expect("state.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("state.json parses");
    let nodes = v["nodes"].as_array().expect("nodes");
    let pids = nodes
        .iter()
        .map(|n| n["pid"].as_u64().expect("pid") as u32)
        .collect();
    let cgroups = nodes
        .iter()
        .flat_map(|n| n["cgroups"].as_array().expect("cgroups").clone())
        .map(|c| PathBuf::from(c.as_str().expect("path")))
        .collect();
    (pids, cgroups)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts nothing of lab `name` is left on the machine.
fn assert_gone(env: &Env, name: &str, tag: &str, pids: &[u32], cgroups: &[PathBuf]) {
    let netns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !netns.contains(&format!("kb.{name}.")),
        "namespaces left: {netns}"
    );
    let links = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !links.contains(&format!("kb-{tag}-")),
        "interfaces left: {links}"
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let dir = env.lab_dir(name);
    assert!(
        !mounts.contains(&format!("{}/", dir.display())),
        "mounts left under {}:\n{mounts}",
        dir.display()
    );
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|s| s != "Z");
        assert!(!running, "process {pid} of lab {name} still runs: {stat}");
    }
    for cg in cgroups {
        assert!(!cg.exists(), "cgroup {} left", cg.display());
    }
    assert!(!dir.exists(), "state dir {} left", dir.display());
}

#[test]
fn lab_up_ssh_apt_down() {
    if std::env::var("KUBEBOOT_SKIP_LAB_TESTS").as_deref() == Ok("1") {
        eprintln!("lab test SKIPPED: KUBEBOOT_SKIP_LAB_TESTS=1");
        return;
    }
    let missing = missing_prerequisites();
    assert!(
        missing.is_empty(),
        "lab test prerequisites missing: {}; install them, or set KUBEBOOT_SKIP_LAB_TESTS=1 to skip this test",
        missing.join(", ")
    );
    let proxy = std::env::var("KUBEBOOT_TEST_APT_PROXY").unwrap();
    let env = Env {
        state_root: tempfile::tempdir().expect("tempdir"),
    };
    // Leftovers of an earlier, killed run (down sweeps by name even without state).
    env.kubeboot_ok(&["lab", "down", "--name", LAB]);
    env.kubeboot_ok(&["lab", "down", "--name", LAB2]);
    let _teardown = Teardown(&env);

    // Refusals that must come before anything is created.
    let out = env.kubeboot(&["lab", "up", "--name", LAB, "--subnet", "10.213.50.5/24"]);
    assert!(
        !out.status.success() && text(&out).contains("did you mean 10.213.50.0/24"),
        "{}",
        text(&out)
    );
    let out = env.kubeboot(&["lab", "up", "--name", "Bad_Name", "--subnet", SUBNET]);
    assert!(
        !out.status.success() && text(&out).contains("invalid lab name"),
        "{}",
        text(&out)
    );

    // Up: 3 nodes, an artifacts directory, apt through the proxy.
    let artifacts = tempfile::tempdir().unwrap();
    std::fs::write(artifacts.path().join("stand-in.txt"), "artifact\n").unwrap();
    let started = Instant::now();
    let out = env.kubeboot_ok(&[
        "lab",
        "up",
        "--name",
        LAB,
        "--nodes",
        "3",
        "--subnet",
        SUBNET,
        "--apt-proxy",
        &proxy,
        "--artifacts",
        artifacts.path().to_str().unwrap(),
    ]);
    eprintln!(
        "lab up --nodes 3 took {:.1} s:\n{out}",
        started.elapsed().as_secs_f64()
    );
    let dir = env.lab_dir(LAB);
    assert!(
        out.contains(dir.join("cluster.yaml").to_str().unwrap()),
        "{out}"
    );

    // The inventory has the agreed shape and points at real files.
    let inv = read_inventory(&dir);
    assert_eq!(inv.api_version, "kubeboot.io/v1alpha1");
    assert_eq!(inv.kind, "Cluster");
    assert_eq!(inv.metadata.name, LAB);
    assert_eq!(
        (inv.spec.ssh.user.as_str(), inv.spec.ssh.port),
        ("root", 22)
    );
    assert!(
        Path::new(&inv.spec.ssh.key_path).is_absolute()
            && Path::new(&inv.spec.ssh.key_path).exists()
    );
    assert!(Path::new(&inv.spec.ssh.known_hosts_path).exists());
    let roles: Vec<&str> = inv.spec.hosts.iter().map(|h| h.role.as_str()).collect();
    assert_eq!(roles, ["control-plane", "worker", "worker"]);
    let addrs: Vec<Ipv4Addr> = inv.spec.hosts.iter().map(|h| h.address).collect();
    assert_eq!(
        addrs,
        [[10, 213, 50, 11], [10, 213, 50, 12], [10, 213, 50, 13]].map(Ipv4Addr::from)
    );

    // Real ssh with strict host key checking; each node its own hostname, machine-id, /etc.
    let mut machine_ids = BTreeSet::new();
    for host in &inv.spec.hosts {
        let out = ssh_ok(
            &inv,
            host.address,
            "hostname; cat /etc/machine-id; systemctl is-system-running; cat /opt/kubeboot-artifacts/stand-in.txt; \
             touch /opt/kubeboot-artifacts/x 2>/dev/null && echo artifacts-writable || echo artifacts-read-only",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], host.name, "hostname of {}", host.address);
        assert!(
            lines[1].len() == 32 && lines[1].chars().all(|c| c.is_ascii_hexdigit()),
            "machine-id {:?}",
            lines[1]
        );
        machine_ids.insert(lines[1].to_string());
        assert!(
            ["running", "degraded"].contains(&lines[2]),
            "{}: {}",
            host.name,
            lines[2]
        );
        assert_eq!(
            &lines[3..],
            ["artifact", "artifacts-read-only"],
            "{}",
            host.name
        );
    }
    assert_eq!(
        machine_ids.len(),
        3,
        "machine-ids not distinct: {machine_ids:?}"
    );
    let first = inv.spec.hosts[0].address;
    ssh_ok(
        &inv,
        first,
        "echo only-here > /etc/kubeboot-lab-test-marker",
    );
    assert_eq!(
        ssh_ok(&inv, first, "cat /etc/kubeboot-lab-test-marker"),
        "only-here"
    );
    for host in &inv.spec.hosts[1..] {
        assert_eq!(
            ssh_ok(
                &inv,
                host.address,
                "test -e /etc/kubeboot-lab-test-marker && echo present || echo absent"
            ),
            "absent",
            "{} sees node1's /etc",
            host.name
        );
    }
    // The known_hosts is what makes the login work: an empty one must be refused.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let out = ssh_with_known_hosts(&inv, empty.path(), first, "true");
    assert!(
        !out.status.success() && text(&out).contains("verification failed"),
        "{}",
        text(&out)
    );

    // status, ssh subcommand, and refusals while the lab is up.
    let status = env.kubeboot_ok(&["lab", "status", "--name", LAB]);
    for host in &inv.spec.hosts {
        let row = status
            .lines()
            .find(|l| l.contains(&host.name))
            .unwrap_or_else(|| panic!("{status}"));
        assert!(row.contains("running") && row.contains("open"), "{row}");
    }
    let printed = env.kubeboot_ok(&["lab", "ssh", "--name", LAB, "--print", "node2"]);
    assert!(
        printed.contains("StrictHostKeyChecking=yes") && printed.contains("root@10.213.50.12"),
        "{printed}"
    );
    assert_eq!(
        env.kubeboot_ok(&["lab", "ssh", "--name", LAB, "node3", "--", "hostname"])
            .trim(),
        "kbtest-node3"
    );
    let out = env.kubeboot(&["lab", "up", "--name", LAB, "--subnet", "10.213.59.0/24"]);
    assert!(
        !out.status.success() && text(&out).contains("already exists"),
        "{}",
        text(&out)
    );
    let out = env.kubeboot(&["lab", "up", "--name", LAB2, "--subnet", SUBNET]);
    assert!(
        !out.status.success() && text(&out).contains("already in use"),
        "{}",
        text(&out)
    );

    // A second lab beside the first.
    env.kubeboot_ok(&[
        "lab", "up", "--name", LAB2, "--nodes", "1", "--subnet", SUBNET2,
    ]);
    let inv2 = read_inventory(&env.lab_dir(LAB2));
    assert_eq!(
        ssh_ok(&inv2, inv2.spec.hosts[0].address, "hostname"),
        "kbtest2-node1"
    );
    assert_eq!(ssh_ok(&inv, first, "hostname"), "kbtest-node1");
    let (pids2, cgroups2) = recorded(&env.lab_dir(LAB2));
    env.kubeboot_ok(&["lab", "down", "--name", LAB2]);
    assert_gone(&env, LAB2, LAB2, &pids2, &cgroups2);
    assert_eq!(
        ssh_ok(&inv, first, "hostname"),
        "kbtest-node1",
        "first lab hurt by the second's down"
    );

    // apt through the proxy: containerd installs and runs.
    let out = ssh_ok(
        &inv,
        first,
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/tmp/apt.log 2>&1 && \
         apt-get install -y -q containerd >>/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }; \
         for i in $(seq 1 50); do systemctl is-active -q containerd && break; sleep 0.2; done; \
         systemctl is-active containerd",
    );
    assert_eq!(out.lines().last(), Some("active"), "{out}");
    // Only node1 got it.
    assert_eq!(
        ssh_ok(
            &inv,
            inv.spec.hosts[1].address,
            "command -v containerd || echo none"
        ),
        "none"
    );

    // Down removes everything, and again is a no-op.
    let (pids, cgroups) = recorded(&dir);
    assert_eq!(pids.len(), 3);
    let started = Instant::now();
    let out = env.kubeboot_ok(&["lab", "down", "--name", LAB]);
    eprintln!(
        "lab down took {:.1} s: {out}",
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_gone(&env, LAB, LAB, &pids, &cgroups);
    let again = env.kubeboot_ok(&["lab", "down", "--name", LAB]);
    assert!(again.contains("nothing to remove"), "{again}");
    let status = env.kubeboot_ok(&["lab", "status", "--name", LAB]);
    assert!(status.contains("no lab named"), "{status}");
}

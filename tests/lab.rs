//! `kubeboot lab` on real hosts: systemd-nspawn nodes reached with the real `ssh` client.
//!
//! Needs root, systemd-nspawn (systemd-container), debootstrap (the first run builds the
//! base image, about a minute), openssh-client, iproute2, and an apt proxy for the nodes
//! in `KUBEBOOT_TEST_APT_PROXY` (`tests/support/start-tinyproxy.sh` starts one and prints
//! the value). Without them the test fails and says what is missing, unless
//! `KUBEBOOT_SKIP_LAB_TESTS=1`, when it says it skipped.
//!
//! One `#[test]` tells the whole story, so the slow parts run once and in order.

mod lab_support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lab_support::{LabEnv, lab_prerequisites, text};

/// Names and subnets used only by this test, so it never touches a user's lab.
const LAB: &str = "kbtest";
const SUBNET: &str = "10.213.50.0/24";
const LAB2: &str = "kbtest2";
const SUBNET2: &str = "10.213.51.0/24";

fn stdout_of(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts nothing of lab `name` is left on the machine: namespaces, interfaces, mounts,
/// the recorded processes, cgroups, state.
fn assert_gone(env: &LabEnv, name: &str, pids: &[u32], cgroups: &[PathBuf]) {
    let netns = stdout_of("ip", &["netns", "list"]);
    assert!(
        !netns.contains(&format!("kb.{name}.")),
        "namespaces left: {netns}"
    );
    let links = stdout_of("ip", &["-o", "link"]);
    assert!(
        !links.contains(&format!("kb-{name}-")),
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
    assert!(!cgroups.is_empty());
    for cg in cgroups {
        assert!(!cg.exists(), "cgroup {} left", cg.display());
    }
    assert!(!dir.exists(), "state dir {} left", dir.display());
}

#[test]
fn lab_up_ssh_apt_down() {
    if !lab_prerequisites(true) {
        return;
    }
    let proxy = std::env::var("KUBEBOOT_TEST_APT_PROXY").unwrap();
    let env = LabEnv::new();

    // Refusals that come before anything is created.
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
    let lab = env.up(
        LAB,
        SUBNET,
        3,
        &[
            "--apt-proxy",
            &proxy,
            "--artifacts",
            artifacts.path().to_str().unwrap(),
        ],
    );
    eprintln!(
        "lab up --nodes 3 took {:.1} s:\n{}",
        started.elapsed().as_secs_f64(),
        lab.up_output
    );
    let dir = env.lab_dir(LAB);
    assert!(
        lab.up_output
            .contains(dir.join("cluster.yaml").to_str().unwrap()),
        "{}",
        lab.up_output
    );

    // The inventory has the agreed shape and points at real files.
    let inv = lab.inventory();
    assert_eq!(inv.api_version, "kubeboot.io/v1alpha1");
    assert_eq!(inv.kind, "Cluster");
    assert_eq!(inv.metadata.name, LAB);
    assert_eq!(
        (inv.spec.ssh.user.as_str(), inv.spec.ssh.port),
        ("root", 22)
    );
    assert!(Path::new(&inv.spec.ssh.key_path).is_absolute());
    assert!(Path::new(&inv.spec.ssh.key_path).exists());
    assert!(Path::new(&inv.spec.ssh.known_hosts_path).exists());
    let roles: Vec<&str> = inv.spec.hosts.iter().map(|h| h.role.as_str()).collect();
    assert_eq!(roles, ["control-plane", "worker", "worker"]);
    let addrs: Vec<Ipv4Addr> = inv.spec.hosts.iter().map(|h| h.address).collect();
    assert_eq!(
        addrs,
        [[10, 213, 50, 11], [10, 213, 50, 12], [10, 213, 50, 13]].map(Ipv4Addr::from)
    );

    // Real ssh with strict host key checking; each node has its own hostname, machine-id
    // and /etc, and sees the artifacts read-only.
    let mut machine_ids = BTreeSet::new();
    for (i, host) in inv.spec.hosts.iter().enumerate() {
        let out = lab.ssh_ok(
            i + 1,
            "hostname; cat /etc/machine-id; systemctl is-system-running; \
             cat /opt/kubeboot-artifacts/stand-in.txt; \
             touch /opt/kubeboot-artifacts/x 2>/dev/null && echo artifacts-writable || echo artifacts-read-only",
        );
        // journald keeps off /dev/kmsg (the console here): reading it, it spun at most
        // of a core on some nodes. It may hold the console write-only (its own messages
        // go to /dev/kmsg): counted are the descriptors it could read from.
        let kmsg = lab.ssh_ok(
            i + 1,
            "p=$(pidof systemd-journald); n=0; \
             for f in /proc/$p/fd/*; do \
               case $(readlink \"$f\") in /dev/console|/dev/pts/*|/dev/kmsg) \
                 fl=$(awk '/^flags/ {print $2}' /proc/$p/fdinfo/${f##*/}); \
                 [ $((0$fl & 3)) = 1 ] || n=$((n + 1));; \
               esac; \
             done; echo $n; \
             systemd-analyze cat-config systemd/journald.conf | grep -x 'ReadKMsg=no'",
        );
        assert_eq!(
            kmsg, "0\nReadKMsg=no",
            "{}: journald and /dev/kmsg",
            host.name
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
    lab.ssh_ok(1, "echo only-here > /etc/kubeboot-lab-test-marker");
    assert_eq!(
        lab.ssh_ok(1, "cat /etc/kubeboot-lab-test-marker"),
        "only-here"
    );
    for i in [2, 3] {
        assert_eq!(
            lab.ssh_ok(
                i,
                "test -e /etc/kubeboot-lab-test-marker && echo present || echo absent"
            ),
            "absent",
            "node{i} sees node1's /etc"
        );
    }
    // Nothing outside the lab answers, and nothing makes a client wait for a timeout: the
    // cloud metadata address is unreachable at once (the v1.20 kubelet's AWS credential
    // provider probes it at every start), and name lookups go over TCP to the bridge,
    // which resets them at once (over UDP, the kernel rate-limits its ICMP errors and
    // every other lookup waited 5 s: four lookups took 10 s).
    let out = lab.ssh_ok(
        2,
        "timeout 5 bash -c 'exec 3<>/dev/tcp/169.254.169.254/80' 2>&1; echo \"rc=$?\"; \
         ip route show 169.254.169.254; grep -c '^options use-vc$' /etc/resolv.conf; \
         s=$(date +%s%N); for i in 1 2 3 4; do getent ahosts kubeboot-lab-test.invalid. && echo resolved; done; \
         echo \"lookups-ms=$(( ($(date +%s%N) - s) / 1000000 ))\"",
    );
    assert!(
        out.contains("No route to host") && out.contains("rc=1"),
        "metadata address: {out}"
    );
    assert!(out.contains("unreachable 169.254.169.254"), "{out}");
    assert!(!out.contains("resolved"), "{out}");
    let ms: u64 = out
        .split("lookups-ms=")
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(ms < 4000, "four failing lookups took {ms} ms: {out}");

    // The known_hosts is what makes the login work: an empty one must be refused.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let out = lab.ssh_with_known_hosts(1, empty.path(), "true");
    assert!(
        !out.status.success() && text(&out).contains("verification failed"),
        "{}",
        text(&out)
    );

    // status and ssh subcommands, and refusals while the lab is up.
    let status = env.kubeboot_ok(&["lab", "status", "--name", LAB]);
    for host in &inv.spec.hosts {
        let row = status
            .lines()
            .find(|l| l.contains(&host.name))
            .unwrap_or_else(|| panic!("{status}"));
        assert!(row.contains("running") && row.contains("open"), "{row}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&env.kubeboot_ok(&["lab", "status", "--name", LAB, "--json"]))
            .unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), 3);
    assert!(json["nodes"][2]["running"].as_bool().unwrap());
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

    // A second lab beside the first; its down leaves the first alone.
    {
        let lab2 = env.up(LAB2, SUBNET2, 1, &[]);
        assert_eq!(lab2.ssh_ok(1, "hostname"), "kbtest2-node1");
        assert_eq!(lab.ssh_ok(1, "hostname"), "kbtest-node1");
        let (pids2, cgroups2) = lab2.recorded();
        env.kubeboot_ok(&["lab", "down", "--name", LAB2]);
        assert_gone(&env, LAB2, &pids2, &cgroups2);
    }
    assert_eq!(
        lab.ssh_ok(1, "hostname"),
        "kbtest-node1",
        "first lab hurt by the second's down"
    );

    // apt through the proxy: containerd installs and runs (on node1 only).
    let out = lab.ssh_ok(
        1,
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/tmp/apt.log 2>&1 && \
         apt-get install -y -q containerd >>/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }; \
         for i in $(seq 1 50); do systemctl is-active -q containerd && break; sleep 0.2; done; \
         systemctl is-active containerd",
    );
    assert_eq!(out.lines().last(), Some("active"), "{out}");
    assert_eq!(lab.ssh_ok(2, "command -v containerd || echo none"), "none");

    // Stop and start: a power cut ends every process of node1 at once (containerd too),
    // node2 powers off in order; both boot again as the same machines (files, host keys,
    // addresses: known_hosts still verifies them), and containerd comes back by itself.
    lab.ssh_ok(1, "echo kept > /root/marker");
    let containerd_before = lab.ssh_ok(1, "systemctl show -p MainPID --value containerd");
    let out = env.kubeboot_ok(&["lab", "stop", "--name", LAB, "--kill", "node1"]);
    assert!(out.contains("kbtest-node1: power cut"), "{out}");
    let out = env.kubeboot_ok(&["lab", "stop", "--name", LAB, "2"]);
    assert!(out.contains("kbtest-node2: powered off"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&env.kubeboot_ok(&["lab", "status", "--name", LAB, "--json"]))
            .unwrap();
    for (i, running) in [(0, false), (1, false), (2, true)] {
        assert_eq!(json["nodes"][i]["running"], running, "{json}");
        assert_eq!(json["nodes"][i]["ssh_open"], running, "{json}");
    }
    assert!(
        std::net::TcpStream::connect_timeout(
            &"10.213.50.11:22".parse().unwrap(),
            Duration::from_secs(2)
        )
        .is_err(),
        "node1's sshd still answers after the power cut"
    );
    let out = env.kubeboot(&["lab", "stop", "--name", LAB, "node9"]);
    assert!(
        !out.status.success() && text(&out).contains("has no node \"node9\""),
        "{}",
        text(&out)
    );
    let out = env.kubeboot_ok(&["lab", "start", "--name", LAB]);
    assert!(
        out.contains("kbtest-node1: booted")
            && out.contains("kbtest-node2: booted")
            && out.contains("kbtest-node3: already running"),
        "{out}"
    );
    assert_eq!(lab.ssh_ok(1, "cat /root/marker"), "kept");
    let containerd_after = lab.ssh_ok(
        1,
        "for i in $(seq 1 50); do systemctl is-active -q containerd && break; sleep 0.2; done; \
         systemctl show -p MainPID --value containerd",
    );
    assert!(
        containerd_after != "0" && containerd_after != containerd_before,
        "containerd before {containerd_before}, after {containerd_after}"
    );
    assert_eq!(lab.ssh_ok(2, "hostname"), "kbtest-node2");

    // The control plane (node 1) is weighted like all three nodes together, in whichever
    // hierarchy has a CPU weight (v1 cpu.shares here); workers keep the default.
    let (pids, cgroups) = lab.recorded();
    let weight = |node: &str| -> Option<String> {
        cgroups
            .iter()
            .filter(|d| d.ends_with(node))
            .find_map(|d| {
                ["cpu.shares", "cpu.weight"]
                    .iter()
                    .find_map(|f| std::fs::read_to_string(d.join(f)).ok())
            })
            .map(|v| v.trim().to_string())
    };
    match (weight("kbtest-node1"), weight("kbtest-node2")) {
        (Some(cp), Some(worker)) => assert!(
            (cp == "3072" && worker == "1024") || (cp == "300" && worker == "100"),
            "control plane's CPU weight {cp}, worker's {worker}"
        ),
        other => eprintln!("no CPU weight in the node cgroups (no cpu controller?): {other:?}"),
    }

    // Down removes everything, and again is a no-op.
    assert_eq!(pids.len(), 3);
    let started = Instant::now();
    let out = env.kubeboot_ok(&["lab", "down", "--name", LAB]);
    eprintln!(
        "lab down took {:.1} s: {out}",
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_gone(&env, LAB, &pids, &cgroups);
    let again = env.kubeboot_ok(&["lab", "down", "--name", LAB]);
    assert!(again.contains("nothing to remove"), "{again}");
    let status = env.kubeboot_ok(&["lab", "status", "--name", LAB]);
    assert!(status.contains("no lab named"), "{status}");
}

/// Lab of the test below; its own name and subnet.
const LAB_KILL: &str = "kbkill";
const SUBNET_KILL: &str = "10.219.0.0/24";

/// Starts `sleep 1000` in a new cgroup `dir` (made here); returns a receiver of its exit
/// status (a thread reaps it at once, so no zombie keeps the cgroup busy).
fn sleep_in_cgroup(dir: &Path) -> std::sync::mpsc::Receiver<std::process::ExitStatus> {
    std::fs::create_dir_all(dir).unwrap();
    let mut child = Command::new("sleep").arg("1000").spawn().expect("sleep");
    std::fs::write(dir.join("cgroup.procs"), child.id().to_string())
        .unwrap_or_else(|e| panic!("move {} into {}: {e}", child.id(), dir.display()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait().expect("wait sleep"));
    });
    rx
}

/// What nodes that ran Pods leave behind after their nspawn exits: processes in the lab's
/// cgroups (containerd shims, Pods; here a `sleep` in a child cgroup of the lab's
/// directory in the unified hierarchy, which `cgroup.kill` ends, and one in a v1
/// hierarchy only, which needs the SIGKILL fallback) and mounts below the node's
/// directory (containers' roots, shm, secrets; here two stacked tmpfs). `lab down` must
/// end and remove all of it.
#[test]
fn lab_down_ends_what_nodes_left() {
    use std::os::unix::process::ExitStatusExt;
    if !lab_prerequisites(false) {
        return;
    }
    let env = LabEnv::new();
    let lab = env.up(LAB_KILL, SUBNET_KILL, 1, &[]);
    let (pids, cgroups) = lab.recorded();
    let lab_cgroups: Vec<PathBuf> = cgroups
        .iter()
        .map(|c| c.parent().unwrap().to_path_buf())
        .collect();
    let unified = lab_cgroups
        .iter()
        .find(|d| d.join("cgroup.kill").exists())
        .expect("a lab cgroup in the unified hierarchy with cgroup.kill (Linux >= 5.14)")
        .join("stray");
    let v1 = lab_cgroups
        .iter()
        .find(|d| !d.join("cgroup.kill").exists() && !d.join("cpuset.cpus").exists())
        .map(|d| d.join("stray"));
    let in_unified = sleep_in_cgroup(&unified);
    let in_v1 = v1.as_deref().map(sleep_in_cgroup);

    let leak = env
        .lab_dir(LAB_KILL)
        .join("nodes")
        .join(format!("{LAB_KILL}-node1"))
        .join("containerd/leaked-mount");
    std::fs::create_dir_all(&leak).unwrap();
    for target in [leak.clone(), leak.clone(), leak.join("inner")] {
        std::fs::create_dir_all(&target).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "kbkill-leak"])
            .arg(&target)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {}", text(&out));
    }

    let started = Instant::now();
    let out = env.kubeboot(&["lab", "down", "--name", LAB_KILL]);
    eprintln!(
        "lab down with leftovers took {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        text(&out)
    );
    assert!(out.status.success(), "lab down failed: {}", text(&out));
    assert!(
        text(&out).contains("ended 2 process") || v1.is_none(),
        "{}",
        text(&out)
    );

    let status = in_unified
        .recv_timeout(Duration::from_secs(5))
        .expect("the sleep in the unified cgroup still runs");
    assert_eq!(status.signal(), Some(9), "{status:?}");
    if let Some(rx) = in_v1 {
        let status = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the sleep in the v1 cgroup still runs");
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
    assert!(!unified.exists(), "{} left", unified.display());
    if let Some(v1) = &v1 {
        assert!(!v1.exists(), "{} left", v1.display());
    }
    for d in &lab_cgroups {
        assert!(!d.exists(), "lab cgroup {} left", d.display());
    }
    assert_gone(&env, LAB_KILL, &pids, &cgroups);
    let again = env.kubeboot_ok(&["lab", "down", "--name", LAB_KILL]);
    assert!(again.contains("nothing to remove"), "{again}");
}

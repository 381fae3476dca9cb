//! Helpers for integration tests that need real hosts: start a `kubeboot lab` with a
//! name and subnet of the test's own, log in with the real `ssh` client, and always take
//! the lab down again (also when an assertion fails). Any test file can use it with
//! `mod lab_support;`.
//!
//! Prerequisites: root, systemd-nspawn (systemd-container), debootstrap, openssh-client,
//! iproute2; for apt inside nodes an HTTP proxy in `KUBEBOOT_TEST_APT_PROXY`
//! (`tests/support/start-tinyproxy.sh` starts one). A test that lacks them fails and says
//! what is missing, unless `KUBEBOOT_SKIP_LAB_TESTS=1`, when it is skipped.
#![allow(dead_code)] // each test binary uses a different part

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use kubeboot::lab::inventory::ClusterInventory;

/// Returns false (after saying so) when lab tests are to be skipped; panics with the list
/// of what is missing otherwise.
pub fn lab_prerequisites(needs_apt_proxy: bool) -> bool {
    if std::env::var("KUBEBOOT_SKIP_LAB_TESTS").as_deref() == Ok("1") {
        eprintln!("lab test SKIPPED: KUBEBOOT_SKIP_LAB_TESTS=1");
        return false;
    }
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
        let found = Command::new("sh")
            .args([
                "-c",
                &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            missing.push(format!("{tool} (apt-get install -y {package})"));
        }
    }
    if needs_apt_proxy && std::env::var("KUBEBOOT_TEST_APT_PROXY").is_err() {
        missing.push(
            "KUBEBOOT_TEST_APT_PROXY (run tests/support/start-tinyproxy.sh and export what it prints)"
                .to_string(),
        );
    }
    assert!(
        missing.is_empty(),
        "lab test prerequisites missing: {}; install them, or set KUBEBOOT_SKIP_LAB_TESTS=1 to skip lab tests",
        missing.join(", ")
    );
    true
}

/// stdout and stderr of a finished command, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The state root of test labs: fixed (not a temp dir), so that a test run killed
/// half way leaves state the next run's `lab down` finds and removes completely.
/// Override with `KUBEBOOT_TEST_LAB_STATE`. The base image cache is the user's
/// (`KUBEBOOT_LAB_CACHE` or /var/cache/kubeboot/lab), built once.
pub struct LabEnv {
    pub state_root: PathBuf,
}

impl LabEnv {
    pub fn new() -> Self {
        LabEnv {
            state_root: std::env::var_os("KUBEBOOT_TEST_LAB_STATE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/tmp/kubeboot-lab-tests")),
        }
    }

    /// Runs the built kubeboot with this state root.
    pub fn kubeboot(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kubeboot"))
            .args(args)
            .env("KUBEBOOT_LAB_STATE", &self.state_root)
            .env_remove("KUBEBOOT_LAB_NAME")
            .output()
            .expect("run kubeboot")
    }

    /// Like [`LabEnv::kubeboot`]; panics with the output unless it succeeds; returns stdout.
    pub fn kubeboot_ok(&self, args: &[&str]) -> String {
        let out = self.kubeboot(args);
        assert!(
            out.status.success(),
            "kubeboot {args:?} failed ({}):\n{}",
            out.status,
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The state directory of lab `name`.
    pub fn lab_dir(&self, name: &str) -> PathBuf {
        self.state_root.join(name)
    }

    /// Starts lab `name` (after removing leftovers of an earlier killed run of that name);
    /// `extra` goes to `lab up` as is. The returned handle takes the lab down on drop.
    pub fn up(&self, name: &str, subnet: &str, nodes: usize, extra: &[&str]) -> RunningLab<'_> {
        self.kubeboot_ok(&["lab", "down", "--name", name]);
        let nodes = nodes.to_string();
        let mut args = vec![
            "lab", "up", "--name", name, "--subnet", subnet, "--nodes", &nodes,
        ];
        args.extend_from_slice(extra);
        // Built first so that a panic below still takes the lab down.
        let mut lab = RunningLab {
            env: self,
            name: name.to_string(),
            up_output: String::new(),
            inventory: None,
        };
        lab.up_output = self.kubeboot_ok(&args);
        let text = std::fs::read_to_string(self.lab_dir(name).join("cluster.yaml"))
            .expect("lab up wrote cluster.yaml");
        lab.inventory = Some(serde_saphyr::from_str(&text).expect("cluster.yaml parses"));
        lab
    }
}

impl Default for LabEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// A lab started by a test; `lab down` runs when it is dropped.
pub struct RunningLab<'a> {
    pub env: &'a LabEnv,
    pub name: String,
    /// What `lab up` printed.
    pub up_output: String,
    inventory: Option<ClusterInventory>,
}

impl RunningLab<'_> {
    /// The inventory `lab up` wrote.
    pub fn inventory(&self) -> &ClusterInventory {
        self.inventory.as_ref().expect("inventory read at up")
    }

    /// Address of node `i` (1-based).
    pub fn address(&self, i: usize) -> Ipv4Addr {
        self.inventory().spec.hosts[i - 1].address
    }

    /// Runs `command` on node `i` with the real ssh client, lab key and strict host keys.
    pub fn ssh(&self, i: usize, command: &str) -> Output {
        let known_hosts = self.inventory().spec.ssh.known_hosts_path.clone();
        self.ssh_with_known_hosts(i, Path::new(&known_hosts), command)
    }

    /// Like [`RunningLab::ssh`] with another known_hosts file.
    pub fn ssh_with_known_hosts(&self, i: usize, known_hosts: &Path, command: &str) -> Output {
        let ssh = &self.inventory().spec.ssh;
        Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-i",
                &ssh.key_path,
                "-p",
                &ssh.port.to_string(),
            ])
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
            .arg(format!("{}@{}", ssh.user, self.address(i)))
            .arg(command)
            .output()
            .expect("run ssh")
    }

    /// Like [`RunningLab::ssh`]; panics unless it succeeds; returns trimmed stdout.
    pub fn ssh_ok(&self, i: usize, command: &str) -> String {
        let out = self.ssh(i, command);
        assert!(
            out.status.success(),
            "ssh {} {command:?} failed ({}): {}",
            self.address(i),
            out.status,
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// PIDs and cgroup directories `lab up` recorded, read from the state file.
    pub fn recorded(&self) -> (Vec<u32>, Vec<PathBuf>) {
        let path = self.env.lab_dir(&self.name).join("state.json");
        let text = std::fs::read_to_string(&path).expect("state.json");
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
}

impl Drop for RunningLab<'_> {
    fn drop(&mut self) {
        // KUBEBOOT_TEST_KEEP_LAB=1 leaves a failed test's lab running to look into it.
        if std::thread::panicking() && std::env::var_os("KUBEBOOT_TEST_KEEP_LAB").is_some() {
            eprintln!("KUBEBOOT_TEST_KEEP_LAB: lab {} left running", self.name);
            return;
        }
        let out = self.env.kubeboot(&["lab", "down", "--name", &self.name]);
        if !out.status.success() {
            eprintln!("cleanup: lab down {} failed: {}", self.name, text(&out));
        }
    }
}

/// `--apt-proxy` for `lab up`: the test proxy's port (from `KUBEBOOT_TEST_APT_PROXY`) on
/// each lab's own bridge address.
pub fn apt_proxy() -> String {
    let p = std::env::var("KUBEBOOT_TEST_APT_PROXY").expect("checked by lab_prerequisites");
    let port = p
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    format!("http://{{bridge}}:{port}")
}

//! One lab node: its overlay root with its own identity (hostname, machine-id, SSH host
//! key, authorized lab key) written before boot, and its systemd-nspawn started in its
//! own cgroups and network namespace. Host keys are made here, on the VM side, so `lab up`
//! knows them and can write a known_hosts that strict host key checking accepts.
//!
//! So that a real kubelet runs on a node, the node also gets what a container lacks and a
//! kubelet insists on: /dev/kmsg (pointed at the console) and private, writable copies of
//! the machine-global kernel tunables the kubelet sets (bind-mounted over /proc/sys by a
//! oneshot unit at boot; the VM's own values are never touched).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::command::run;
use super::error::{LabError, Result};
use super::layout::{ARTIFACTS_MOUNT, NodeLayout};
use super::mounts;
use super::state::write_atomic;

/// What every node of a lab shares.
#[derive(Debug, Clone)]
pub struct NodeCommon<'a> {
    /// Lower layer of every overlay.
    pub base_rootfs: &'a Path,
    /// The lab's public key, authorized for root.
    pub lab_public_key: &'a str,
    /// apt proxy URL written into apt.conf.d, if any.
    pub apt_proxy: Option<&'a str>,
    /// The lab bridge address: the only place a node's DNS queries may go.
    pub nameserver: Ipv4Addr,
    /// `(address, hostname)` of every node, for /etc/hosts.
    pub hosts: &'a [(Ipv4Addr, String)],
    /// Directory bound read-only at /opt/kubeboot-artifacts, if any.
    pub artifacts: Option<&'a Path>,
    /// Extra systemd-nspawn arguments.
    pub nspawn_args: &'a [String],
}

/// The machine-global kernel tunables the kubelet's container manager sets (as
/// `/proc/sys` paths). Others it sets (vm.panic_on_oom, kernel.keys.*) already have the
/// values it wants on a stock kernel, so it only reads them.
pub const KERNEL_TUNABLES: &[&str] = &[
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
];

/// The oneshot unit that shadows [`KERNEL_TUNABLES`] inside a node.
const KERNEL_TUNABLES_UNIT: &str = "kubeboot-lab-kernel-tunables.service";
const KERNEL_TUNABLES_SCRIPT_PATH: &str = "usr/local/sbin/kubeboot-lab-kernel-tunables";

/// Run early at boot inside the node: each tunable gets a file in /run/kubeboot-lab/sysctl,
/// filled with the machine's current value, bind-mounted over its /proc/sys entry. The
/// node may write it (a container has CAP_SYS_ADMIN in its own mount namespace, and the
/// bind mount is private to it); the kubelet reads back what it wrote and is satisfied,
/// and the VM and the other nodes keep their values. Idempotent: an entry already shadowed
/// is left alone.
const KERNEL_TUNABLES_SCRIPT: &str = r#"#!/bin/sh
# kubeboot lab: private, writable copies of machine-global kernel tunables the kubelet sets.
set -e
dir=/run/kubeboot-lab/sysctl
mkdir -p "$dir"
for key in "$@"; do
    entry="/proc/sys/$key"
    copy="$dir/$(echo "$key" | tr / .)"
    mountpoint -q "$entry" && continue
    cat "$entry" > "$copy"
    mount --bind "$copy" "$entry"
done
"#;

fn kernel_tunables_unit() -> String {
    format!(
        "[Unit]
Description=kubeboot lab: private copies of the kernel tunables the kubelet sets
DefaultDependencies=no
Before=sysinit.target systemd-sysctl.service kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/{KERNEL_TUNABLES_SCRIPT_PATH} {}

[Install]
WantedBy=sysinit.target
",
        KERNEL_TUNABLES.join(" ")
    )
}

fn write(root: &Path, rel: &str, contents: &str, mode: u32) -> Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    // The base image may ship the file as a symlink or read-only: replace, never follow.
    let _ = std::fs::remove_file(&path);
    write_atomic(&path, contents.as_bytes(), mode)
}

fn mkdirs(dirs: &[PathBuf]) -> Result<()> {
    for d in dirs {
        std::fs::create_dir_all(d).map_err(|e| LabError::io(d, e))?;
    }
    Ok(())
}

/// A fresh machine-id: 32 lowercase hex digits.
fn new_machine_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Mounts the node's overlay and writes its identity; returns its SSH host public key
/// (`ssh-ed25519 AAAA...`).
pub fn prepare(node: &NodeLayout, common: &NodeCommon) -> Result<String> {
    mkdirs(&[
        node.upper(),
        node.work(),
        node.root(),
        node.containerd_dir(),
    ])?;
    if !mounts::mount_points().contains(&node.root()) {
        mounts::mount_overlay(
            common.base_rootfs,
            &node.upper(),
            &node.work(),
            &node.root(),
        )?;
    }
    let root = node.root();
    write(
        &root,
        "etc/hostname",
        &format!("{}\n", node.hostname),
        0o644,
    )?;
    let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
    for (addr, name) in common.hosts {
        hosts.push_str(&format!("{addr} {name}\n"));
    }
    write(&root, "etc/hosts", &hosts, 0o644)?;
    // Not the VM's resolver (unreachable from the lab): the bridge, so lookups stay inside
    // the lab unless someone runs a DNS forwarder there. Over TCP (use-vc): with no
    // server, the bridge answers a reset at once, where UDP gets ICMP errors that the
    // kernel rate-limits (every other lookup would wait out the resolver's 5 s timeout).
    write(
        &root,
        "etc/resolv.conf",
        &format!(
            "# kubeboot lab: nodes reach only the lab bridge\nnameserver {}\noptions use-vc\n",
            common.nameserver
        ),
        0o644,
    )?;
    write(
        &root,
        "etc/machine-id",
        &format!("{}\n", new_machine_id()),
        0o444,
    )?;
    write(
        &root,
        "root/.ssh/authorized_keys",
        &format!("{}\n", common.lab_public_key.trim()),
        0o600,
    )?;
    // The kubelet opens /dev/kmsg (its OOM watcher); a container has none. Point it at
    // the console, as kind does, so a real kubelet can run on lab nodes.
    write(
        &root,
        "etc/tmpfiles.d/kubeboot-lab-kmsg.conf",
        "L /dev/kmsg - - - - /dev/console\n",
        0o644,
    )?;
    // journald must not read that /dev/kmsg: where it finds the link at its start (a race
    // with tmpfiles at boot), it reads the console, gets end-of-file with a hang-up
    // forever and spins at most of a core ("/dev/kmsg buffer overrun" in a loop): on
    // 2026-12-02 one node in three of a lab did, taking CPU from every other node. The
    // kernel's messages are the VM's, not the node's, anyway.
    write(
        &root,
        "etc/systemd/journald.conf.d/kubeboot-lab.conf",
        "# Written by kubeboot lab: /dev/kmsg points at the console (for the kubelet).\n[Journal]\nReadKMsg=no\n",
        0o644,
    )?;
    // The kubelet's container manager sets vm.overcommit_memory, kernel.panic and
    // kernel.panic_on_oops and refuses to start when it cannot. They are global to the
    // machine and /proc/sys is read-only in a container: give the node private copies
    // (see KERNEL_TUNABLES_SCRIPT), so the VM's own values are never changed.
    write(
        &root,
        KERNEL_TUNABLES_SCRIPT_PATH,
        KERNEL_TUNABLES_SCRIPT,
        0o755,
    )?;
    write(
        &root,
        &format!("etc/systemd/system/{KERNEL_TUNABLES_UNIT}"),
        &kernel_tunables_unit(),
        0o644,
    )?;
    super::base::symlink(
        &format!("../{KERNEL_TUNABLES_UNIT}"),
        &root,
        &format!("etc/systemd/system/sysinit.target.wants/{KERNEL_TUNABLES_UNIT}"),
    )?;
    let proxy_conf = "etc/apt/apt.conf.d/01kubeboot-lab-proxy";
    match common.apt_proxy {
        Some(url) => write(
            &root,
            proxy_conf,
            &format!("Acquire::http::Proxy \"{url}\";\nAcquire::https::Proxy \"{url}\";\n"),
            0o644,
        )?,
        None => {
            let _ = std::fs::remove_file(root.join(proxy_conf));
        }
    }
    let key = root.join("etc/ssh/ssh_host_ed25519_key");
    if !key.exists() {
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("root@{}", node.hostname))
            .arg("-f")
            .arg(&key))?;
    }
    let public = std::fs::read_to_string(key.with_extension("pub"))
        .map_err(|e| LabError::io(key.with_extension("pub"), e))?;
    // "ssh-ed25519 AAAA... comment" -> type and key only.
    Ok(public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

/// The systemd-nspawn command line for a node.
fn nspawn_args(node: &NodeLayout, common: &NodeCommon) -> Result<Vec<String>> {
    for p in [node.root(), node.containerd_dir()] {
        mounts::check_usable(&p)?;
    }
    let mut args = vec![
        "systemd-nspawn".to_string(),
        format!("--directory={}", node.root().display()),
        "--boot".into(),
        // No systemd/machined on the VM: do not register, stay in our cgroup.
        "--register=no".into(),
        "--keep-unit".into(),
        // Both together: the node gets CAP_NET_ADMIN and writable net sysctls.
        format!("--network-namespace-path=/run/netns/{}", node.netns),
        "--private-network".into(),
        // runc needs keyctl ("unable to join session keyring" otherwise).
        "--system-call-filter=@keyring".into(),
        // overlay-on-overlay fails for containerd's snapshotter: a real directory.
        format!(
            "--bind={}:/var/lib/containerd",
            node.containerd_dir().display()
        ),
        format!("--machine={}", node.hostname),
        format!("--hostname={}", node.hostname),
        "--console=read-only".into(),
        // Keep the /etc/resolv.conf written above.
        "--resolv-conf=off".into(),
    ];
    if let Some(dir) = common.artifacts {
        mounts::check_usable(dir)?;
        args.push(format!("--bind-ro={}:{ARTIFACTS_MOUNT}", dir.display()));
    }
    args.extend(common.nspawn_args.iter().cloned());
    Ok(args)
}

/// Starts the node: a tiny shell joins the node's cgroups, then execs setsid + nspawn, so
/// the returned child's PID is the nspawn's PID. Console output goes to the console log.
pub fn boot(node: &NodeLayout, common: &NodeCommon, cgroups: &[PathBuf]) -> Result<Child> {
    let log_path = node.console_log();
    // Appended: a node booted again by `lab start` keeps the log of its earlier boots.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| LabError::io(&log_path, e))?;
    let log_err = log.try_clone().map_err(|e| LabError::io(&log_path, e))?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec setsid "$@""#)
        .arg("kubeboot-lab-node");
    for cg in cgroups {
        cmd.arg(cg.join("cgroup.procs"));
    }
    cmd.arg("--");
    cmd.args(nspawn_args(node, common)?);
    // nspawn on this VM must detect the hybrid hierarchy itself.
    cmd.env_remove("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY")
        // A console log without colour escapes (nspawn hands TERM to the node's init).
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    cmd.spawn().map_err(|e| LabError::Spawn {
        program: "systemd-nspawn".into(),
        source: e,
    })
}

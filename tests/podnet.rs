//! The `bridge` pod network (`kubeboot::podnet`) on a real host: `sync` against a real
//! routing table in a throwaway network namespace (files under a temp dir), and the
//! rendered conflist fed to Debian's real CNI `bridge` plugin (containernetworking-plugins)
//! to prove the plugin accepts it and wires a container up with the node's pod CIDR.
//!
//! Needs root (network namespaces); skips with a printed reason otherwise.

use kubeboot::host::{
    CommandOutput, FileInfo, Host, HostError, LocalHost, RunOptions, WriteOptions,
};
use kubeboot::podnet::{self, NodeNet, Paths};
use std::path::Path;
use std::process::Command;

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        sh(&format!("ip netns add {name}"));
        Netns(name)
    }
    fn exec(&self, cmd: &str) -> String {
        sh(&format!(
            "ip netns exec {} sh -c '{}'",
            self.0,
            cmd.replace('\'', "'\\''")
        ))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Test double: this machine's files (no prefix; the test's paths are under a temp dir)
/// with every command run inside a network namespace, standing in for a node whose
/// routing table is that namespace's.
struct NetnsHostDouble {
    local: LocalHost,
    ns: String,
    commands: std::sync::atomic::AtomicU64,
}

impl Host for NetnsHostDouble {
    fn name(&self) -> &str {
        &self.ns
    }
    fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, HostError> {
        self.local.read_file(path)
    }
    fn write_file(
        &self,
        path: &Path,
        contents: &[u8],
        opts: WriteOptions,
    ) -> Result<(), HostError> {
        self.local.write_file(path, contents, opts)
    }
    fn remove_file(&self, path: &Path) -> Result<bool, HostError> {
        self.local.remove_file(path)
    }
    fn file_info(&self, path: &Path) -> Result<Option<FileInfo>, HostError> {
        self.local.file_info(path)
    }
    fn run(&self, command: &str, opts: &RunOptions) -> Result<CommandOutput, HostError> {
        self.commands
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let wrapped = format!(
            "ip netns exec {} sh -c '{}'",
            self.ns,
            command.replace('\'', "'\\''")
        );
        self.local.run(&wrapped, opts)
    }
}

fn node(name: &str, cidr: &str, addr: &str) -> NodeNet {
    NodeNet {
        name: name.into(),
        pod_cidr: cidr.parse().unwrap(),
        address: addr.parse().unwrap(),
    }
}

fn via_routes(ns: &Netns) -> Vec<String> {
    let mut v: Vec<String> = ns
        .exec("ip -4 route show root 10.244.0.0/16")
        .lines()
        .filter(|l| l.contains(" via "))
        .map(|l| l.split(" dev ").next().unwrap().trim().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn sync_converges_a_real_routing_table_and_is_a_no_op_on_rerun() {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let ns = Netns::new(format!("kbtest-podnet-{}", std::process::id()));
    // The node's uplink: a veth (this kernel has no dummy driver) on the "layer-2
    // network" 10.77.0.0/24, and cni0 with the node's own pod CIDR, whose route must
    // never be touched.
    ns.exec(
        "set -e; ip link set lo up; ip link add eth0 type veth peer name eth0p; ip addr add 10.77.0.1/24 dev eth0; \
         ip link set eth0 up; ip link set eth0p up; ip link add cni0 type bridge; ip addr add 10.244.0.1/24 dev cni0; ip link set cni0 up",
    );
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    let host = NetnsHostDouble {
        local: LocalHost::new(),
        ns: ns.0.clone(),
        commands: Default::default(),
    };
    let subnet = "10.244.0.0/16".parse().unwrap();
    let all = vec![
        node("n1", "10.244.0.0/24", "10.77.0.1"),
        node("n2", "10.244.1.0/24", "10.77.0.2"),
        node("n3", "10.244.2.0/24", "10.77.0.3"),
    ];
    let w = podnet::wanted_at(&paths, "n1", &all, &subnet).unwrap();

    // Plan: says what would change, changes nothing.
    let plan = podnet::sync(&host, &w, true).unwrap();
    assert!(plan.changed() && !plan.applied, "{plan:?}");
    assert!(
        plan.changes
            .contains(&"add route 10.244.1.0/24 via 10.77.0.2".to_string()),
        "{plan:?}"
    );
    assert!(via_routes(&ns).is_empty());
    assert!(!paths.conflist.exists());

    // First sync: files, link and routes.
    let first = podnet::sync(&host, &w, false).unwrap();
    assert!(first.applied && first.round_trips == 2, "{first:?}");
    assert_eq!(
        via_routes(&ns),
        ["10.244.1.0/24 via 10.77.0.2", "10.244.2.0/24 via 10.77.0.3"]
    );
    assert_eq!(
        std::fs::read_to_string(&paths.conflist).unwrap(),
        w.conflist
    );
    assert_eq!(
        std::fs::read_to_string(&paths.routes_script).unwrap(),
        w.routes_script
    );
    assert_eq!(std::fs::read_to_string(&paths.unit).unwrap(), w.unit);
    assert_eq!(std::fs::read_link(&paths.unit_link).unwrap(), paths.unit);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&paths.routes_script), 0o755);
    assert_eq!(mode(&paths.conflist), 0o644);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&paths.conflist).unwrap()).unwrap();
    assert_eq!(
        v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
        "10.244.0.0/24"
    );
    assert!(
        ns.exec("ip -4 route show 10.244.0.0/24")
            .contains("dev cni0"),
        "the local bridge route is kept"
    );

    // Re-run: one command, nothing changed.
    let before = std::fs::metadata(&paths.conflist)
        .unwrap()
        .modified()
        .unwrap();
    let again = podnet::sync(&host, &w, false).unwrap();
    assert!(
        !again.changed() && !again.applied && again.round_trips == 1,
        "{again:?}"
    );
    assert_eq!(
        std::fs::metadata(&paths.conflist)
            .unwrap()
            .modified()
            .unwrap(),
        before
    );

    // Drift: a route deleted by hand and a stale one added come back / go away.
    ns.exec("ip route del 10.244.2.0/24; ip route add 10.244.9.0/24 via 10.77.0.9");
    let drift = podnet::sync(&host, &w, false).unwrap();
    assert_eq!(
        drift.changes,
        [
            "add route 10.244.2.0/24 via 10.77.0.3",
            "remove route 10.244.9.0/24 via 10.77.0.9"
        ],
        "{drift:?}"
    );
    assert_eq!(
        via_routes(&ns),
        ["10.244.1.0/24 via 10.77.0.2", "10.244.2.0/24 via 10.77.0.3"]
    );

    // n3 leaves the cluster: its route is removed, the script rewritten, the rest kept.
    let w2 = podnet::wanted_at(&paths, "n1", &all[..2], &subnet).unwrap();
    let left = podnet::sync(&host, &w2, false).unwrap();
    assert!(
        left.changes
            .contains(&"remove route 10.244.2.0/24 via 10.77.0.3".to_string())
            && left
                .changes
                .contains(&format!("update {}", paths.routes_script.display()))
            && !left.changes.iter().any(|c| c.contains("conflist")),
        "{left:?}"
    );
    assert_eq!(via_routes(&ns), ["10.244.1.0/24 via 10.77.0.2"]);
    assert!(!podnet::sync(&host, &w2, false).unwrap().changed());

    // The boot unit's job: after the routes are gone (a reboot), the script alone brings
    // them back.
    ns.exec("ip route del 10.244.1.0/24");
    assert!(via_routes(&ns).is_empty());
    ns.exec(&format!("/bin/sh {}", paths.routes_script.display()));
    assert_eq!(via_routes(&ns), ["10.244.1.0/24 via 10.77.0.2"]);
    let script = std::fs::read_to_string(&paths.routes_script).unwrap();
    assert!(
        script.contains(
            "ip -4 -batch - <<'KUBEBOOT_ROUTES'\nroute replace 10.244.1.0/24 via 10.77.0.2  # n2\n"
        ),
        "one `ip -batch` for the routes:\n{script}"
    );

    // `kubeboot reset`'s route removal (its first block, run against this test's script):
    // the routes of this script, and of one written the way kubeboot did before
    // 2026-12-02 (an `ip -4 route replace` per route).
    let reset = podnet::reset_script();
    let routes_block = &reset[..reset.find("\nfi\n").expect("the routes block") + 4].replace(
        "/etc/kubeboot/pod-routes.sh",
        &paths.routes_script.display().to_string(),
    );
    ns.exec(routes_block);
    assert!(via_routes(&ns).is_empty(), "{:?}", via_routes(&ns));
    std::fs::write(
        &paths.routes_script,
        "#!/bin/sh\nset -eu\nip -4 route replace 10.244.1.0/24 via 10.77.0.2  # n2\n",
    )
    .unwrap();
    ns.exec(&format!("/bin/sh {}", paths.routes_script.display()));
    assert_eq!(via_routes(&ns), ["10.244.1.0/24 via 10.77.0.2"]);
    ns.exec(routes_block);
    assert!(via_routes(&ns).is_empty(), "{:?}", via_routes(&ns));
    std::fs::write(&paths.routes_script, &script).unwrap();
    ns.exec(&format!("/bin/sh {}", paths.routes_script.display()));
    assert_eq!(via_routes(&ns), ["10.244.1.0/24 via 10.77.0.2"]);

    // A gateway that is not on the node's network: the error names the host and says why.
    let far = vec![
        node("n1", "10.244.0.0/24", "10.77.0.1"),
        node("n4", "10.244.4.0/24", "192.0.2.4"),
    ];
    let w3 = podnet::wanted_at(&paths, "n1", &far, &subnet).unwrap();
    let e = podnet::sync(&host, &w3, false).unwrap_err().to_string();
    assert!(e.contains(&ns.0) && e.contains("layer-2"), "{e}");
    assert_eq!(host.commands.load(std::sync::atomic::Ordering::SeqCst), 11);
}

/// The rendered conflist's `bridge` plugin config, given to Debian's real plugin the way
/// a container runtime does (CNI_COMMAND=ADD, the network config on stdin with the
/// list's name and cniVersion), inside a throwaway "node" namespace for a "pod" namespace.
#[test]
fn the_real_cni_bridge_plugin_accepts_the_conflist() {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let cni_path = Path::new("/usr/lib/cni");
    if !cni_path.join("bridge").exists() {
        eprintln!(
            "skipped: /usr/lib/cni/bridge is missing: apt-get install containernetworking-plugins"
        );
        return;
    }
    let pid = std::process::id();
    let node_ns = Netns::new(format!("kbtest-cninode-{pid}"));
    let pod_ns = Netns::new(format!("kbtest-cnipod-{pid}"));
    node_ns.exec("ip link set lo up");
    let conflist: serde_json::Value =
        serde_json::from_str(&podnet::render_conflist(&"10.88.3.0/24".parse().unwrap())).unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let plugin_conf = |cmd: &str| {
        let mut conf = conflist["plugins"][0].clone();
        conf["name"] = conflist["name"].clone();
        conf["cniVersion"] = conflist["cniVersion"].clone();
        // host-local's leases go to a temp dir instead of this machine's /var/lib/cni.
        conf["ipam"]["dataDir"] = data_dir.path().to_str().unwrap().into();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &node_ns.0])
            .arg(cni_path.join("bridge"))
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", format!("kbtest-{pid}"))
            .env("CNI_NETNS", format!("/var/run/netns/{}", pod_ns.0))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", cni_path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "bridge {cmd} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let result: serde_json::Value = serde_json::from_str(&plugin_conf("ADD")).unwrap();
    assert_eq!(result["cniVersion"], "0.4.0", "{result}");
    let ip = result["ips"][0]["address"].as_str().unwrap();
    assert!(
        ip.starts_with("10.88.3.") && ip.ends_with("/24"),
        "{result}"
    );
    assert_eq!(result["ips"][0]["gateway"], "10.88.3.1", "{result}");
    // The node has cni0 as the pod CIDR's gateway; the pod has eth0 and a default route
    // through it, and reaches the gateway.
    assert!(
        node_ns
            .exec("ip -4 addr show cni0")
            .contains("10.88.3.1/24")
    );
    assert!(pod_ns.exec("ip -4 addr show eth0").contains(ip));
    assert!(
        pod_ns
            .exec("ip -4 route show default")
            .contains("via 10.88.3.1")
    );
    if Path::new("/usr/bin/ping").exists() || Path::new("/bin/ping").exists() {
        pod_ns.exec("ping -c 1 -W 2 10.88.3.1 >/dev/null");
    }
    plugin_conf("DEL");
    assert!(!pod_ns.exec("ip link").contains("eth0"));
}

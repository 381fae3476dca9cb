//! A highly available control plane that survives losing a node, all real: `kubeboot up`
//! on four fresh lab nodes (systemd-nspawn, real sshd, apt, systemd, containerd, the
//! real v1.20.2 kubelet running etcd, kube-apiserver, kube-controller-manager and
//! kube-scheduler as static Pods from the local lab images): node 1, 2 and 3 control
//! planes, node 4 a worker, behind Debian's HAProxy on the lab bridge as
//! `controlPlaneEndpoint`. No test doubles.
//!
//! In order:
//! 1. `up --plan` names init on node 1 and the three joins, and changes nothing;
//! 2. `up`: three voting etcd members, every node Ready, control-plane labels and taints;
//! 3. node 1 (where init ran) loses its power (`lab stop --kill`): writes through the
//!    endpoint keep working (the figure: the longest time they failed), etcd keeps
//!    quorum on the other two;
//! 4. node 1 boots again (`lab start`), and `up` converges with nothing to join;
//! 5. `reset` of control plane node 3 leaves two healthy etcd members and a cluster that
//!    serves writes;
//! 6. `up` joining node 3 again is killed (SIGKILL) once node 3 is an etcd member; the
//!    next `up --plan` says it would finish that join, and `up` finishes it;
//! 7. node 4's SSH host key changes: `up` stops that host only, naming the new key's
//!    fingerprint, and reports the other three as they are.

mod cluster_support;
mod lab_support;
mod up_support;

use cluster_support::Kubectl;
use lab_support::{LabEnv, RunningLab, apt_proxy, lab_prerequisites, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use up_support::{row, summary};

const LAB: &str = "kbhaproxy";
const SUBNET: &str = "10.213.64.0/24";
/// HAProxy on the lab bridge, as the nodes and this machine see it.
const ENDPOINT: &str = "10.213.64.1:6443";

/// Debian's HAProxy in front of the three API servers, stopped on drop.
struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(servers: &[(String, String)]) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = format!(
            "global\n  maxconn 2000\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n  \
             retries 2\n  option redispatch\n\
             frontend kube-apiserver\n  bind {ENDPOINT}\n  default_backend control-planes\n\
             backend control-planes\n  option httpchk GET /readyz\n  http-check expect status 200\n  \
             default-server check check-ssl verify none inter 1s fall 2 rise 2\n"
        );
        for (name, addr) in servers {
            cfg.push_str(&format!("  server {name} {addr}:6443\n"));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("haproxy (Debian package haproxy, installed by .ci/setup)");
        assert!(check.status.success(), "haproxy -c: {}", text(&check));
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(ENDPOINT).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "haproxy does not listen on {ENDPOINT}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Haproxy { child, _dir: dir }
    }
}

impl Haproxy {
    /// Panics, with HAProxy's log, unless it still runs.
    fn check_alive(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "haproxy exited ({status}) {when}; its log:\n{}",
                std::fs::read_to_string(self._dir.path().join("haproxy.log")).unwrap_or_default()
            );
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The inventory `up` gets: the working lab inventory with node 1-3 control planes, node 4
/// a worker, and the HAProxy endpoint.
fn ha_inventory(lab_inv: &Path, dir: &Path) -> PathBuf {
    let working = cluster_support::lab_inventory_working(lab_inv, dir, &[]);
    let mut v: Value = serde_saphyr::from_str(&std::fs::read_to_string(&working).unwrap()).unwrap();
    let hosts = v["spec"]["hosts"].as_array_mut().unwrap();
    assert_eq!(hosts.len(), 4);
    for (i, h) in hosts.iter_mut().enumerate() {
        h["role"] = if i < 3 { "control-plane" } else { "worker" }.into();
    }
    v["spec"]["controlPlaneEndpoint"] = ENDPOINT.into();
    let out = dir.join("cluster-ha.yaml");
    std::fs::write(&out, serde_saphyr::to_string(&v).unwrap()).unwrap();
    out
}

/// etcdctl of this machine (Debian's etcd-client) with node 1's apiserver-etcd-client
/// pair, copied out once.
struct Etcdctl {
    dir: tempfile::TempDir,
}

impl Etcdctl {
    fn new(lab: &RunningLab) -> Etcdctl {
        let dir = tempfile::tempdir().unwrap();
        for (remote, local) in [
            ("etcd/ca.crt", "ca.crt"),
            ("apiserver-etcd-client.crt", "client.crt"),
            ("apiserver-etcd-client.key", "client.key"),
        ] {
            let pem = lab.ssh_ok(1, &format!("cat /etc/kubernetes/pki/{remote}"));
            std::fs::write(dir.path().join(local), pem + "\n").unwrap();
        }
        Etcdctl { dir }
    }

    fn run(&self, endpoints: &[String], args: &[&str]) -> std::process::Output {
        let d = self.dir.path();
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!(
                "--endpoints={}",
                endpoints
                    .iter()
                    .map(|e| format!("https://{e}:2379"))
                    .collect::<Vec<_>>()
                    .join(",")
            ))
            .arg(format!("--cacert={}", d.join("ca.crt").display()))
            .arg(format!("--cert={}", d.join("client.crt").display()))
            .arg(format!("--key={}", d.join("client.key").display()))
            .args(["--command-timeout=5s", "--dial-timeout=3s"])
            .args(args)
            .output()
            .expect("etcdctl (Debian package etcd-client)")
    }

    /// `(name, is_learner)` of every member, asked of the first endpoint that answers.
    fn members(&self, endpoints: &[String]) -> Vec<(String, bool)> {
        for e in endpoints {
            let out = self.run(std::slice::from_ref(e), &["member", "list", "-w", "json"]);
            if !out.status.success() {
                continue;
            }
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            let mut members: Vec<(String, bool)> = v["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap_or("").to_string(),
                        m["isLearner"].as_bool().unwrap_or(false),
                    )
                })
                .collect();
            members.sort();
            return members;
        }
        panic!("no etcd endpoint of {endpoints:?} answers member list");
    }

    /// Whether each endpoint is healthy (a quorum read through it succeeds).
    fn healthy(&self, endpoints: &[String]) -> Vec<bool> {
        endpoints
            .iter()
            .map(|e| {
                self.run(std::slice::from_ref(e), &["endpoint", "health"])
                    .status
                    .success()
            })
            .collect()
    }
}

/// Polls `f` every second until it returns Some, or panics after `limit` with `what`.
fn until<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The stage headers and the summary table of an `up` log, for the test's output.
fn stages_and_summary(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let head = lines
        .iter()
        .rposition(|l| l.starts_with("HOST") && l.contains("RESULT"))
        .unwrap_or(lines.len());
    lines
        .iter()
        .enumerate()
        .filter(|(i, l)| *i >= head || l.starts_with("== ") || l.ends_with("s)"))
        .map(|(_, l)| *l)
        .collect::<Vec<_>>()
        .join("\n")
}

fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Writes through the endpoint, one ConfigMap after another, until stopped; each write's
/// start and whether it succeeded.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(Instant, Instant, bool)>>,
}

impl Writer {
    fn start(kubeconfig: &Path, prefix: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (k, stop2, prefix) = (Kubectl::new(kubeconfig), stop.clone(), prefix.to_string());
        let handle = std::thread::spawn(move || {
            let mut log = Vec::new();
            let mut i = 0;
            while !stop2.load(Ordering::Relaxed) {
                let t = Instant::now();
                let name = format!("{prefix}-{i}");
                let ok = k
                    .run(&[
                        "--request-timeout=5s",
                        "create",
                        "configmap",
                        &name,
                        "--from-literal=i=1",
                    ])
                    .status
                    .success();
                log.push((t, Instant::now(), ok));
                i += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            log
        });
        Writer { stop, handle }
    }

    fn finish(self) -> Vec<(Instant, Instant, bool)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// The longest time, from `from` on, without a write completing successfully: from
/// `from` to the first success after it, and between successes.
fn longest_gap(log: &[(Instant, Instant, bool)], from: Instant) -> Duration {
    let mut last = from;
    let mut worst = Duration::ZERO;
    for (_, end, ok) in log {
        if *ok && *end >= from {
            worst = worst.max(end.duration_since(last));
            last = *end;
        }
    }
    worst
}

#[test]
fn ha_control_plane_survives_losing_a_node() {
    if !lab_prerequisites(true) {
        return;
    }
    if Command::new("haproxy").arg("-v").output().is_err() {
        panic!("haproxy is not installed (Debian package haproxy; .ci/setup installs it)");
    }
    let env = LabEnv::new();
    let proxy = apt_proxy();
    let lab = env.up(LAB, SUBNET, 4, &["--apt-proxy", &proxy]);
    let dir = tempfile::tempdir().unwrap();
    let inv = ha_inventory(&env.lab_dir(LAB).join("cluster.yaml"), dir.path());
    let inv_s = inv.to_str().unwrap();
    let kc = dir.path().join("admin.conf");
    let kc_s = kc.to_str().unwrap();
    let n = |i: usize| format!("{LAB}-node{i}");
    let addr = |i: usize| lab.address(i).to_string();
    let cps: Vec<String> = (1..=3).map(addr).collect();
    let mut lb = Haproxy::start(&(1..=3).map(|i| (n(i), addr(i))).collect::<Vec<_>>());
    let up_args = |extra: &[&'static str]| {
        let mut args = vec![
            "up",
            "-f",
            inv_s,
            "--ignore-preflight-errors",
            "ImagePull",
            "--kubeconfig-out",
            kc_s,
        ];
        args.extend_from_slice(extra);
        args
    };
    let up = |extra: &[&'static str]| {
        let mut args = up_args(&["--wait", "5m"]);
        args.extend_from_slice(extra);
        env.kubeboot(&args)
    };

    // 1. The plan names init and the three joins and changes nothing.
    let out = up(&["--plan"]);
    let plan = text(&out);
    assert!(out.status.success(), "{plan}");
    for want in [
        format!("{}: would run `init`", n(1)),
        format!("{}: would join as a control plane", n(2)),
        format!("{}: would join as a control plane", n(3)),
        format!("{}: would join as a worker", n(4)),
    ] {
        assert!(plan.contains(&want), "{want:?} not in the plan:\n{plan}");
    }
    for i in 1..=4 {
        assert_eq!(
            lab.ssh_ok(i, "ls /etc/kubernetes/manifests 2>/dev/null | wc -l"),
            "0",
            "the plan changed node {i}"
        );
    }

    // 2. The cluster.
    let t0 = Instant::now();
    let out = up(&[]);
    let log = text(&out);
    eprintln!(
        "[figure] up, 3 control planes behind HAProxy and a worker, bare to every node Ready: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    eprintln!("[diag] the first up:\n{}", stages_and_summary(&log));
    lb.check_alive("during the first up");
    assert!(out.status.success(), "up failed:\n{log}");
    for phase in [
        "[copy-certs]",
        "[etcd] Adding a new etcd member as a learner",
        "was promoted to a voting member",
        "[mark-control-plane]",
    ] {
        assert!(log.contains(phase), "missing {phase:?} in:\n{log}");
    }
    let rows = summary(&log);
    for i in 2..=3 {
        let r = row(&rows, &n(i), &log);
        assert!(
            r.result.starts_with("joined as a control plane in "),
            "{}: {:?}\n{log}",
            n(i),
            r.result
        );
    }
    let admin = std::fs::read_to_string(&kc).unwrap();
    assert!(
        admin.contains(&format!("server: https://{ENDPOINT}")),
        "admin kubeconfig does not use the endpoint:\n{admin}"
    );
    let k = Kubectl::new(&kc);
    let nodes = k.json(&["get", "nodes"]);
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{nodes}");
    for node in items {
        let name = node["metadata"]["name"].as_str().unwrap();
        assert!(node_ready(node), "{name} not Ready");
        let is_cp = name != n(4);
        assert_eq!(
            node["metadata"]["labels"]
                .get("node-role.kubernetes.io/control-plane")
                .is_some(),
            is_cp,
            "{name}: {node}"
        );
    }
    let tokens = |k: &Kubectl| {
        k.ok(&[
            "-n",
            "kube-system",
            "get",
            "secrets",
            "--field-selector",
            "type=bootstrap.kubernetes.io/token",
            "-o",
            "name",
        ])
    };
    let tokens_after_up = tokens(&k);
    let etcd = Etcdctl::new(&lab);
    let members = etcd.members(&cps);
    assert_eq!(
        members,
        (1..=3).map(|i| (n(i), false)).collect::<Vec<_>>(),
        "three voting members after up"
    );
    assert_eq!(etcd.healthy(&cps), vec![true, true, true]);
    // Every API server is behind the endpoint: each answers /readyz directly too.
    for i in 1..=3 {
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "5"])
            .arg(format!("https://{}:6443/readyz", addr(i)))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ok",
            "node {i}'s API server"
        );
    }

    // 3. Node 1 loses its power; writes through the endpoint go on.
    let writer = Writer::start(&kc, "during-loss");
    std::thread::sleep(Duration::from_secs(5));
    let killed_at = Instant::now();
    let out = env.kubeboot_ok(&["lab", "stop", "--name", LAB, "--kill", "1"]);
    assert!(out.contains("power cut"), "{out}");
    std::thread::sleep(Duration::from_secs(40));
    let log_w = writer.finish();
    lb.check_alive("while node 1 was down");
    // Writes that ended after the power cut (one may have been in flight to node 1).
    let after: Vec<_> = log_w
        .iter()
        .filter(|(_, end, _)| *end >= killed_at)
        .collect();
    let outage = longest_gap(&log_w, killed_at);
    eprintln!(
        "[figure] writes through the endpoint while node 1 was down: {} of {} succeeded; longest time without a completed write {:.1}s",
        after.iter().filter(|(_, _, ok)| *ok).count(),
        after.len(),
        outage.as_secs_f64()
    );
    assert!(after.len() >= 10, "too few writes: {after:?}");
    let last_15s: Vec<_> = after
        .iter()
        .filter(|(t, _, _)| t.duration_since(killed_at) >= Duration::from_secs(25))
        .collect();
    assert!(
        !last_15s.is_empty() && last_15s.iter().all(|(_, _, ok)| *ok),
        "writes still fail 25 s after node 1 went down: {last_15s:?}"
    );
    assert_eq!(
        etcd.healthy(&cps),
        vec![false, true, true],
        "etcd quorum on node 2 and 3"
    );

    // 4. Node 1 back: its kubelet starts the static Pods again; `up` has nothing to join.
    env.kubeboot_ok(&["lab", "start", "--name", LAB, "1"]);
    let back = Instant::now();
    until(
        Duration::from_secs(240),
        "node 1's etcd healthy again",
        || (etcd.healthy(&cps) == vec![true, true, true]).then_some(()),
    );
    eprintln!(
        "[figure] node 1 booted to its etcd member healthy: {:.1}s",
        back.elapsed().as_secs_f64()
    );
    let t0 = Instant::now();
    let out = up(&[]);
    let log = text(&out);
    eprintln!(
        "[figure] up after node 1 came back, to converged: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    eprintln!(
        "[diag] up after node 1 came back:\n{}",
        stages_and_summary(&log)
    );
    lb.check_alive("after node 1 came back");
    assert!(out.status.success(), "up after node 1 came back:\n{log}");
    let rows = summary(&log);
    assert_eq!(
        row(&rows, &n(1), &log).result,
        "already initialized",
        "{log}"
    );
    for i in 2..=4 {
        assert_eq!(row(&rows, &n(i), &log).result, "already joined", "{log}");
    }
    assert_eq!(etcd.members(&cps).len(), 3);
    assert_eq!(
        tokens(&k),
        tokens_after_up,
        "a re-run with nothing to join made a token"
    );

    // 5. reset of control plane node 3: two healthy members, the cluster serves.
    let out = env.kubeboot(&["reset", "-f", inv_s, "--hosts", &n(3), "--force"]);
    assert!(out.status.success(), "reset of node 3:\n{}", text(&out));
    let members = etcd.members(&cps[..2]);
    assert_eq!(
        members,
        vec![(n(1), false), (n(2), false)],
        "node 3's member is removed by its reset"
    );
    assert_eq!(etcd.healthy(&cps[..2]), vec![true, true]);
    until(
        Duration::from_secs(60),
        "a write through the endpoint",
        || {
            k.run(&["--request-timeout=5s", "create", "configmap", "after-reset"])
                .status
                .success()
                .then_some(())
        },
    );
    assert_eq!(
        lab.ssh_ok(3, "ls /etc/kubernetes/manifests 2>/dev/null | wc -l"),
        "0"
    );

    // 6. `up` joins node 3 again and is killed once node 3 is an etcd member.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(up_args(&[]))
        .env("KUBEBOOT_LAB_STATE", &env.state_root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let was_learner = until(Duration::from_secs(300), "node 3 added to etcd", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("up ended ({status}) before node 3 became an etcd member");
        }
        etcd.members(&cps[..2])
            .into_iter()
            .find(|(name, _)| *name == n(3) || name.is_empty())
            .map(|(_, learner)| learner)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!("up killed with node 3 an etcd member (learner: {was_learner})");
    // The killed run's join token stays until it expires (30 minutes), as kubeadm's would.
    let before_plan = tokens(&k);
    let out = up(&["--plan"]);
    let plan = text(&out);
    assert!(
        plan.contains(&format!("{}: would join as a control plane", n(3)))
            && plan.contains(&format!("{}: already joined", n(2))),
        "{plan}"
    );
    assert_eq!(tokens(&k), before_plan, "the plan made a token");
    let t0 = Instant::now();
    let out = up(&[]);
    let log = text(&out);
    eprintln!(
        "[figure] up finishing node 3's interrupted control-plane join: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    lb.check_alive("after the interrupted join");
    assert!(out.status.success(), "up after the killed one:\n{log}");
    assert!(
        log.contains("[etcd] This node is already an etcd member"),
        "the member the killed run added is reused:\n{log}"
    );
    let rows = summary(&log);
    assert!(
        row(&rows, &n(3), &log)
            .result
            .starts_with("joined as a control plane in "),
        "{log}"
    );
    until(
        Duration::from_secs(120),
        "three healthy voting members",
        || {
            (etcd.members(&cps) == (1..=3).map(|i| (n(i), false)).collect::<Vec<_>>()
                && etcd.healthy(&cps) == vec![true, true, true])
            .then_some(())
        },
    );

    // 7. Node 4's host key changes: up stops that host only, with the new fingerprint.
    lab.ssh_ok(
        4,
        "rm -f /etc/ssh/ssh_host_*; ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key; \
         systemctl restart ssh",
    );
    let scan = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ssh-keyscan -t ed25519 {} 2>/dev/null | ssh-keygen -lf -",
            addr(4)
        ))
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&scan.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("ssh-keyscan: {}", text(&scan)))
        .to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    let out = up(&[]);
    let log = text(&out);
    assert!(
        !out.status.success(),
        "up accepted a changed host key:\n{log}"
    );
    assert!(
        log.contains(&fingerprint) && log.contains(&n(4)),
        "the error names node 4 and the new key's fingerprint {fingerprint}:\n{log}"
    );
    eprintln!(
        "[diag] up with node 4's host key changed:\n{}\n{}",
        log.lines()
            .filter(|l| l.contains(&fingerprint))
            .collect::<Vec<_>>()
            .join("\n"),
        stages_and_summary(&log)
    );
    let rows = summary(&log);
    assert!(row(&rows, &n(4), &log).prepare.contains("FAILED"), "{log}");
    assert_eq!(
        row(&rows, &n(1), &log).result,
        "already initialized",
        "{log}"
    );
    for i in 2..=3 {
        assert_eq!(row(&rows, &n(i), &log).result, "already joined", "{log}");
    }
}

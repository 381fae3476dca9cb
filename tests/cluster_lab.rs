//! A cluster that runs Pods: `kubeboot up` on three fresh lab nodes (systemd-nspawn, real
//! sshd, apt, systemd, containerd) with the real v1.20.2 kubelet, the local lab images
//! (`tests/controlplane/build-images.sh`, imported from archives by `prepare`) and the
//! image-free `bridge` pod network. No stand-ins: the control plane runs as static Pods
//! under the real kubelet, kube-proxy and the workload Pods run in containerd.
//!
//! In order:
//! 1. images withheld (no kube-apiserver archive): init stops in wait-control-plane;
//! 2. with every archive, `up` again: init is finished, the workers join, all Ready;
//! 3. the control plane's containers in containerd on node 1, its mirror Pods Ready;
//!    kube-proxy on every node;
//! 4. a 2-replica busybox Deployment lands on both workers with Pod IPs from the pod
//!    CIDR; Pod to Pod across nodes, a ClusterIP Service from a Pod and from a node,
//!    `kubectl logs` and `kubectl exec`;
//! 5. a re-run of `up` changes nothing and imports nothing;
//! 6. bad input: a wrong sha256, a missing archive, a corrupt tarball (other hosts
//!    unaffected), an unknown `cni` name;
//! 7. `reset` of a worker, then `up`: it rejoins and runs Pods again;
//! 8. `lab down` leaves no process, cgroup, mount, netns or bridge.

mod cluster_support;
mod lab_support;

use cluster_support::{Kubectl, pod_ready};
use lab_support::{LabEnv, apt_proxy, lab_prerequisites, text};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const LAB: &str = "kbpods";
const SUBNET: &str = "10.213.61.0/24";

const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - labelSelector: {matchLabels: {app: web}}
              topologyKey: kubernetes.io/hostname
      containers:
        - name: web
          image: kubeboot.local/lab/busybox:TAG
          imagePullPolicy: Never
          command: [sh, -c, "mkdir -p /www && hostname > /www/index.html && echo web-started-$(hostname) && exec busybox httpd -f -v -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

/// An HTTP GET with busybox's nc (its wget crashes in these images).
fn nc_get(ip: &str, port: u16) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc {ip} {port}")
}

#[test]
fn up_builds_a_cluster_that_runs_pods() {
    if !lab_prerequisites(true) {
        return;
    }
    let env = LabEnv::new();
    let proxy = apt_proxy();
    let lab = env.up(LAB, SUBNET, 3, &["--apt-proxy", &proxy]);
    let dir = tempfile::tempdir().unwrap();
    let lab_inv = env.lab_dir(LAB).join("cluster.yaml");
    let withheld =
        cluster_support::lab_inventory_working(&lab_inv, dir.path(), &["kube-apiserver.tar"]);
    let inv = cluster_support::lab_inventory_working(&lab_inv, dir.path(), &[]);
    let inv_s = inv.to_str().unwrap();
    let kc = dir.path().join("admin.conf");
    let kc_s = kc.to_str().unwrap();
    let n = |i: usize| format!("{LAB}-node{i}");

    // 1. Without the kube-apiserver image, init stops in wait-control-plane and says so.
    let t0 = Instant::now();
    let out = env.kubeboot(&[
        "up",
        "-f",
        withheld.to_str().unwrap(),
        "--control-plane-timeout",
        "40s",
        "--ignore-preflight-errors",
        "ImagePull",
        "--kubeconfig-out",
        kc_s,
    ]);
    let log = text(&out);
    eprintln!(
        "[figure] up with the kube-apiserver image withheld, until it stops: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("init stopped in phase wait-control-plane"),
        "{log}"
    );
    assert_eq!(
        lab.ssh_ok(
            1,
            "ctr -n k8s.io images ls -q | grep -c kube-apiserver || true"
        ),
        "0"
    );
    // Workers got no control-plane images (roles: [control-plane]), control planes did.
    assert_eq!(
        lab.ssh_ok(
            2,
            "ctr -n k8s.io images ls -q | grep -c 'etcd\\|kube-scheduler' || true"
        ),
        "0"
    );
    lab.ssh_ok(
        1,
        "ctr -n k8s.io images ls -q | grep -q kubeboot.local/lab/etcd:",
    );
    lab.ssh_ok(
        2,
        "ctr -n k8s.io images ls -q | grep -q kubeboot.local/lab/kube-proxy:",
    );

    // 2. With every archive: the stopped init is finished, the workers join, all Ready.
    let t0 = Instant::now();
    let out = env.kubeboot(&[
        "up",
        "-f",
        inv_s,
        "--ignore-preflight-errors",
        "ImagePull",
        "--kubeconfig-out",
        kc_s,
        "--wait",
        "3m",
    ]);
    let log = text(&out);
    eprintln!(
        "[figure] up after the images were provided, to every node Ready: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    // How often each control-plane container restarted (the figure behind a slow or
    // failed run) and, on failure, what the first control plane's kubelet said.
    let k = Kubectl::new(&kc);
    let pods = text(&k.run(&["-n", "kube-system", "get", "pods", "-o", "wide"]));
    eprintln!("[diag] kube-system after the second up:\n{pods}");
    // Why the first control plane's kubelet stopped containers, if it did (printed
    // first in a failure: CI shows only the beginning and the end of a long message).
    let diag = text(&lab.ssh(
        1,
        "journalctl -u kubelet --no-pager -o short-precise 2>/dev/null \\
           | grep -iE 'killing|kill pod|sandbox changed|cgroup does not exist|probe failed|StartError|Started kubelet|Stopping kubelet' \\
           | cut -c1-400 | tail -25",
    ));
    eprintln!("[diag] the kubelet on {} (stops and starts):\n{diag}", n(1));
    let waits: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("[wait-control-plane]") || l.contains("joined in") || l.starts_with("total")
        })
        .collect();
    eprintln!("[diag] the second up's waits:\n{}", waits.join("\n"));
    assert!(
        out.status.success(),
        "up failed (the kubelet's stops and starts on {}, then up's output):\n{diag}\n{pods}\n{log}",
        n(1)
    );
    let imported: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("image archive") && l.contains("changed"))
        .collect();
    eprintln!("imports in the second run: {imported:#?}");
    assert_eq!(
        imported,
        vec![format!(
            "{}: changed: image archive kube-apiserver.tar",
            n(1)
        )],
        "exactly the withheld archive is imported, on the control plane only:\n{log}"
    );
    // The first up wrote its manifests with a 40 s control-plane timeout (the startup
    // probes follow it, as in kubeadm), this one with the default: the running etcd's Pod
    // was stopped before its new manifest was written, so the new Pod did not race the
    // old one for its ports (they crashed on "address already in use" and waited out
    // back-offs before), and wait-control-plane found no old API server to answer.
    assert!(
        log.contains(&format!(
            "[{}] [etcd] The manifest of etcd changed: the running Pod is stopped first",
            n(1)
        )) && log.contains("[etcd] The old containers stopped after"),
        "{log}"
    );
    assert!(
        !log.contains("[wait-control-plane] The kubelet replaces"),
        "{log}"
    );
    let races = lab.ssh_ok(
        1,
        "grep -l 'address already in use' /var/log/pods/*/*/*.log 2>/dev/null || true",
    );
    assert_eq!(races, "", "static Pods that found their ports taken");
    assert!(log.contains("[pod-network]"), "{log}");
    assert!(
        log.contains("coredns") && log.contains("is missing on"),
        "{log}"
    );
    assert!(
        log.contains("every node is Ready; some addons are not available"),
        "{log}"
    );
    for i in 2..=3 {
        let row = log
            .lines()
            .find(|l| l.starts_with(&n(i)) && l.contains("worker"))
            .unwrap_or_else(|| panic!("{log}"));
        assert!(row.contains("joined in"), "{row}");
        // Its Node was registered ahead of its kubelet (the pod network was written
        // before the kubelet started)...
        assert!(
            log.contains(&format!(
                "[{}] [register-ahead] Node {} registered ahead",
                n(i),
                n(i)
            )),
            "{log}"
        );
    }

    // 3. All nodes Ready, with podCIDRs from the pod subnet; the kubelets took over the
    //    Nodes registered ahead (their labels) and the not-ready taint is gone.
    let nodes = k.json(&["get", "nodes"]);
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{nodes}");
    for node in items {
        let ready = node["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready, "{} not Ready", node["metadata"]["name"]);
        assert_eq!(
            node["metadata"]["labels"]["kubernetes.io/hostname"], node["metadata"]["name"],
            "{node}"
        );
        assert!(
            !node["spec"]["taints"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["key"] == "node.kubernetes.io/not-ready"),
            "{node}"
        );
        assert!(
            node["spec"]["podCIDR"]
                .as_str()
                .unwrap()
                .starts_with("10.244."),
            "{node}"
        );
    }
    // The control plane as static Pods under the real kubelet: containers in containerd...
    let containers = lab.ssh_ok(1, "ctr -n k8s.io containers ls");
    for c in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "etcd",
    ] {
        assert!(
            containers.contains(&format!("kubeboot.local/lab/{c}:")),
            "{c} not running in containerd on node1:\n{containers}"
        );
    }
    // ... and their mirror Pods Running and Ready through the API (the kubelet creates
    // them on its next sync, up to a minute later).
    k.until(Duration::from_secs(180), "the mirror Pods Ready", |k| {
        let pods = k.json(&[
            "get",
            "pods",
            "-n",
            "kube-system",
            "-l",
            "tier=control-plane",
        ]);
        let ready: Vec<String> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| pod_ready(p))
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ]
        .iter()
        .all(|c| ready.contains(&format!("{c}-{}", n(1))))
        .then_some(())
    });
    // kube-proxy Running on every node.
    k.until(Duration::from_secs(120), "kube-proxy on every node", |k| {
        let pods = k.json(&[
            "get",
            "pods",
            "-n",
            "kube-system",
            "-l",
            "k8s-app=kube-proxy",
        ]);
        let on: Vec<String> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| pod_ready(p))
            .map(|p| p["spec"]["nodeName"].as_str().unwrap().to_string())
            .collect();
        (1..=3).all(|i| on.contains(&n(i))).then_some(())
    });

    // 4. A Deployment on both workers; Pod to Pod, Service, logs, exec.
    let busybox = cluster_support::lab_images()
        .into_iter()
        .find(|(_, _, r)| r.contains("/busybox:"))
        .expect("busybox image")
        .2;
    let tag = busybox.rsplit(':').next().unwrap();
    let manifest = dir.path().join("web.yaml");
    std::fs::write(&manifest, WEB.replace("TAG", tag)).unwrap();
    k.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let pods: Vec<(String, String, String)> =
        k.until(Duration::from_secs(120), "2 web Pods Ready", |k| {
            let pods = k.json(&["get", "pods", "-l", "app=web"]);
            let ready: Vec<(String, String, String)> = pods["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| pod_ready(p))
                .map(|p| {
                    (
                        p["metadata"]["name"].as_str().unwrap().to_string(),
                        p["spec"]["nodeName"].as_str().unwrap().to_string(),
                        p["status"]["podIP"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (ready.len() == 2).then_some(ready)
        });
    let mut on: Vec<&str> = pods.iter().map(|p| p.1.as_str()).collect();
    on.sort();
    assert_eq!(on, vec![n(2).as_str(), n(3).as_str()], "{pods:?}");
    for (_, _, ip) in &pods {
        assert!(
            ip.starts_with("10.244."),
            "Pod IP {ip} outside the pod CIDR"
        );
    }
    let (a, b) = (&pods[0], &pods[1]);
    // Pod on one worker to the Pod on the other (kubectl exec through the real kubelet).
    let reply = k.ok(&["exec", &a.0, "--", "sh", "-c", &nc_get(&b.2, 8080)]);
    assert!(reply.contains("200 OK") && reply.contains(&b.0), "{reply}");
    // The ClusterIP Service, from a Pod and from a node (kube-proxy's rules).
    let svc = k.json(&["get", "service", "web"]);
    let cip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let reply = k.ok(&["exec", &a.0, "--", "sh", "-c", &nc_get(&cip, 80)]);
        assert!(reply.contains("200 OK"), "{reply}");
        answered.extend(
            pods.iter()
                .filter(|p| reply.contains(&p.0))
                .map(|p| p.0.clone()),
        );
    }
    eprintln!("[figure] the Service at {cip} was answered by {answered:?}");
    let from_node = lab.ssh_ok(
        1,
        &format!(
            "exec 3<>/dev/tcp/{cip}/80; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; timeout 10 cat <&3"
        ),
    );
    assert!(from_node.contains("200 OK"), "{from_node}");
    // kubectl logs.
    let logs = k.ok(&["logs", &a.0]);
    assert!(logs.contains("web-started-"), "{logs}");

    // 5. A re-run changes nothing and imports nothing.
    let t0 = Instant::now();
    let out = env.kubeboot(&[
        "up",
        "-f",
        inv_s,
        "--ignore-preflight-errors",
        "ImagePull",
        "--kubeconfig-out",
        kc_s,
        "--wait",
        "1m",
    ]);
    let log = text(&out);
    eprintln!(
        "[figure] no-op re-run of up: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "{log}");
    for i in 1..=3 {
        let row = log
            .lines()
            .find(|l| {
                l.starts_with(&n(i))
                    && (l.contains("worker") || l.contains("control-plane"))
                    && l.contains("ok (")
            })
            .unwrap_or_else(|| panic!("{log}"));
        assert!(row.contains("ok (0 changed)"), "{row}");
    }
    assert!(!log.contains("bytes uploaded"), "{log}");
    assert!(log.contains("pod network: 0 of 3 hosts changed"), "{log}");
    assert!(log.contains("Already initialized"), "{log}");
    // prepare's marked block in /etc/hosts: every node resolves every other by name.
    let hosts = lab.ssh_ok(2, "cat /etc/hosts");
    assert!(
        hosts.contains(&format!("{} {}", lab.address(3), n(3)))
            && hosts.contains("# BEGIN kubeboot hosts"),
        "{hosts}"
    );
    assert_eq!(
        lab.ssh_ok(
            2,
            &format!("getent hosts {} | cut -d' ' -f1 | sort -u", n(1))
        ),
        lab.address(1).to_string()
    );
    // The health report as a JSON event.
    let out = env.kubeboot(&[
        "up",
        "-f",
        inv_s,
        "-o",
        "json",
        "--wait",
        "20s",
        "--ignore-preflight-errors",
        "ImagePull",
        "--kubeconfig-out",
        kc_s,
    ]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let health: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "health")
        .unwrap_or_else(|| panic!("no health event:\n{log}"));
    let nodes = health["report"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{health}");
    assert!(nodes.iter().all(|n| n["ready"] == true), "{health}");
    let coredns = health["report"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "coredns")
        .unwrap_or_else(|| panic!("{health}"));
    assert_eq!(coredns["ok"], false, "{health}");
    assert!(
        coredns["reason"]
            .as_str()
            .unwrap()
            .contains("coredns:v1.11.3 is missing on"),
        "{health}"
    );

    // 6. Bad input, each refused clearly; nothing imported.
    let bad = |extra: &str, name: &str| {
        let text = std::fs::read_to_string(&inv).unwrap();
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            text.replacen(
                "  imageArchives:\n",
                &format!("  imageArchives:\n{extra}"),
                1,
            ),
        )
        .unwrap();
        p
    };
    let pause = cluster_support::lab_images()
        .into_iter()
        .find(|(_, _, r)| r.contains("/pause:"))
        .unwrap();
    // A wrong pin: refused before anything reaches a host.
    let copy = dir.path().join("renamed-pause.tar");
    std::fs::copy(&pause.0, &copy).unwrap();
    let wrong = "0".repeat(64);
    let p = bad(
        &format!("    - {{path: {}, sha256: {wrong}}}\n", copy.display()),
        "wrong-sha.yaml",
    );
    let out = env.kubeboot(&["prepare", "-f", p.to_str().unwrap()]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains(&format!("but the pin is {wrong}")) && log.contains("nothing was installed"),
        "{log}"
    );
    assert!(log.contains(&n(1)) && log.contains("FAILED"), "{log}");
    lab.ssh_ok(
        2,
        &format!("test ! -e /var/lib/kubeboot/images/{wrong}.refs"),
    );
    // A missing file.
    let p = bad(
        "    - {path: /nonexistent/images/kube-proxy.tar, sha256: 1111111111111111111111111111111111111111111111111111111111111111}\n",
        "missing.yaml",
    );
    let out = env.kubeboot(&["prepare", "-f", p.to_str().unwrap()]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("/nonexistent/images/kube-proxy.tar is not a file on this machine")
            && log.contains("nothing was changed on any host"),
        "{log}"
    );
    // A corrupt tarball (correctly pinned), for the workers only: they fail naming the
    // archive, the control plane is unaffected.
    let corrupt = dir.path().join("corrupt.tar");
    std::fs::write(&corrupt, b"this is not a tar archive\n".repeat(100)).unwrap();
    let sha = String::from_utf8_lossy(
        &Command::new("sha256sum")
            .arg(&corrupt)
            .output()
            .unwrap()
            .stdout,
    )
    .split_whitespace()
    .next()
    .unwrap()
    .to_string();
    let p = bad(
        &format!(
            "    - {{path: {}, sha256: {sha}, roles: [worker]}}\n",
            corrupt.display()
        ),
        "corrupt.yaml",
    );
    let out = env.kubeboot(&["prepare", "-f", p.to_str().unwrap()]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("containerd could not import corrupt.tar"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "prepare failed on 2 of 3 hosts: {}, {}",
            n(2),
            n(3)
        )),
        "{log}"
    );
    lab.ssh_ok(2, &format!("test ! -e /var/lib/kubeboot/images/{sha}.refs"));
    // An unknown pod network: the file, line and field, and the choices.
    let text_inv = std::fs::read_to_string(&inv).unwrap();
    let p = dir.path().join("cni.yaml");
    std::fs::write(
        &p,
        text_inv.replace("cni: {name: bridge}", "cni: {name: weave}"),
    )
    .unwrap();
    let out = env.kubeboot(&["up", "-f", p.to_str().unwrap()]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("spec.cni.name")
            && log.contains("\"weave\" is not supported")
            && log.contains("bridge"),
        "{log}"
    );
    assert!(
        !log.contains("== prepare"),
        "nothing may run on a bad inventory:\n{log}"
    );

    // 7. reset a worker, then up: it rejoins and runs Pods again.
    let out = env.kubeboot(&["reset", "-f", inv_s, "--hosts", &n(3), "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    lab.ssh_ok(3, "test ! -e /etc/kubernetes/kubelet.conf && test ! -e /etc/cni/net.d/10-kubeboot-bridge.conflist");
    let out = env.kubeboot(&[
        "up",
        "-f",
        inv_s,
        "--ignore-preflight-errors",
        "ImagePull",
        "--kubeconfig-out",
        kc_s,
    ]);
    let log = text(&out);
    assert!(out.status.success(), "up after reset failed:\n{log}");
    let row = log
        .lines()
        .find(|l| l.starts_with(&n(3)) && l.contains("worker"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(row.contains("joined in"), "{row}");
    k.until(
        Duration::from_secs(180),
        "a web Pod Running on node3 again",
        |k| {
            let pods = k.json(&["get", "pods", "-l", "app=web"]);
            pods["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| pod_ready(p) && p["spec"]["nodeName"] == n(3).as_str())
                .then_some(())
        },
    );

    // 8. lab down after Pods ran: nothing left.
    let state_dir = env.lab_dir(LAB);
    drop(lab);
    assert!(!state_dir.exists(), "{} left behind", state_dir.display());
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains(&format!("kb.{LAB}.")),
        "network namespaces left: {}",
        text(&netns)
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(state_dir.to_str().unwrap()),
        "mounts left under {}",
        state_dir.display()
    );
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains(&format!("kb-{LAB}")),
        "links left: {}",
        text(&links)
    );
    for h in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/systemd",
    ] {
        assert!(
            !Path::new(h).join(format!("kubeboot-lab-{LAB}")).exists(),
            "cgroup left in {h}"
        );
    }
}

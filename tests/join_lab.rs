//! `kubeboot join` on a real lab node: the node is prepared by `kubeboot prepare` with the
//! real v1.20.2 kubelet (built from Debian's source, uploaded as a pinned artifact), and
//! joins the real control plane (started from kubeboot's manifests, serving on the lab
//! bridge) over SSH. join performs the kubelet's TLS bootstrap before starting it: its CSR,
//! made with the bootstrap token, is approved and signed by the real controller-manager,
//! and join writes the certificate store and kubelet.conf. Then the kubelet starts with its
//! client certificate, registers its Node object and, with a CNI config in place, the
//! Node becomes Ready.
//!
//! What makes this possible in a systemd-nspawn node is the lab's, not the product's: the
//! node has a /dev/kmsg and private, writable copies of vm.overcommit_memory, kernel.panic
//! and kernel.panic_on_oops (without them the kubelet's container manager stops with
//! "open /proc/sys/vm/overcommit_memory: read-only file system"). The test checks that
//! the VM's own values of those tunables are unchanged.
//!
//! The kubelet still logs, without stopping, what a container does not allow: lowering
//! its oom_score_adj, raising its open-files limit, perf_event cgroups.

mod cluster_support;
mod lab_support;

use cluster_support::*;
use kubeboot::config::join::{JoinConfig, JoinOverrides};
use lab_support::{LabEnv, apt_proxy, lab_prerequisites, text};
use std::time::{Duration, Instant};

/// The node's CNI config: a plain bridge network with host-local addresses.
const CNI_CONFLIST: &str = r#"{
  "cniVersion": "0.3.1",
  "name": "lab-bridge",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
"#;

struct NoFacts;
impl kubeboot::config::LocalFacts for NoFacts {
    fn hostname(&self) -> Option<String> {
        None
    }
    fn default_address(&self) -> Option<std::net::IpAddr> {
        None
    }
}

#[test]
fn a_prepared_lab_node_joins_and_its_real_kubelet_registers_a_ready_node() {
    if !lab_prerequisites(true) {
        return;
    }
    let env = LabEnv::new();
    let proxy = apt_proxy();
    let lab = env.up("kbjoin", "10.213.53.0/24", 1, &["--apt-proxy", &proxy]);
    let vm_tunables = machine_tunables();

    // Prepare the node with the real kubelet.
    let dir = tempfile::tempdir().unwrap();
    let inv =
        lab_inventory_with_real_kubelet(&env.lab_dir("kbjoin").join("cluster.yaml"), dir.path());
    let out = env.kubeboot(&["prepare", "-f", inv.to_str().unwrap()]);
    assert!(out.status.success(), "prepare failed: {}", text(&out));

    // A CNI config, as a CNI's DaemonSet would install it (flannel's needs its own plugin
    // and images, which this machine cannot pull): bridge + host-local + portmap, plugins
    // that `prepare` links into /opt/cni/bin. It is what lets CRI report NetworkReady.
    lab.ssh_ok(
        1,
        &format!("mkdir -p /etc/cni/net.d && printf '%s' '{CNI_CONFLIST}' > /etc/cni/net.d/10-lab-bridge.conflist && ls /opt/cni/bin/bridge /opt/cni/bin/host-local /opt/cni/bin/portmap"),
    );

    // The control plane serves on the lab bridge, where the node can reach it.
    let cp = ControlPlane::start_on("10.213.53.1");
    let cfg = cp.config.to_str().unwrap().to_string();
    cp.ok(&["init", "phase", "bootstrap-token", "--config", &cfg]);
    cp.ok(&["init", "phase", "upload-config", "all", "--config", &cfg]);
    let hash = cp.ok(&["certs", "ca-hash"]).trim().to_string();

    // join over SSH, the same code `kubeboot up` runs for each worker.
    let cluster = kubeboot::config::cluster::Cluster::load(&inv).unwrap();
    let h = &cluster.hosts[0];
    let ssh =
        kubeboot::orchestrate::ssh_config_for(&kubeboot::orchestrate::ssh_config_of(&cluster), h);
    let host = kubeboot::host::SshHost::connect(&h.name, &h.address, &ssh).unwrap();
    let o = JoinOverrides {
        endpoint: Some(format!("10.213.53.1:{}", cp.port)),
        token: Some(INIT_TOKEN.into()),
        ca_cert_hashes: vec![hash],
        node_name: Some(h.name.clone()),
        discovery_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let mut jc = JoinConfig::load(None, &o, &NoFacts).unwrap();
    jc.tls_bootstrap_timeout = Duration::from_secs(120);
    // The inventory's kubelet flags (v1.20 needs --container-runtime=remote), as `up` does.
    jc.join
        .node_registration
        .kubelet_extra_args
        .extend(cluster.kubelet_extra_args.iter().cloned());
    let ctx = kubeboot::phases::join::JoinContext {
        cfg: &jc,
        host: &host,
        local: &NoFacts,
        skip: vec![],
        // The lab reaches no registry with the cluster's images; this test is about joining.
        ignore_preflight_errors: vec!["ImagePull".into()],
        containerd: Default::default(),
        cni: None,
    };
    let t0 = Instant::now();
    let joined = kubeboot::phases::join::run(&ctx);
    let journal = lab.ssh(1, "journalctl -u kubelet --no-pager -o cat | grep -E '^(F|E)[0-9]{4}' | tail -n 3 | cut -c1-300");
    assert!(
        joined.is_ok(),
        "join failed: {:#}\nkubelet:\n{}",
        joined.unwrap_err(),
        text(&journal)
    );
    eprintln!(
        "[figure] join on a lab node with the real kubelet, start to kubelet.conf: {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // The real kubelet wrote kubelet.conf after its CSR was approved and signed.
    lab.ssh_ok(1, "test -f /etc/kubernetes/kubelet.conf && test ! -e /etc/kubernetes/bootstrap-kubelet.conf && ls /var/lib/kubelet/pki/kubelet-client-current.pem");
    let subject = lab.ssh_ok(1, "openssl x509 -noout -subject -in /var/lib/kubelet/pki/kubelet-client-current.pem 2>/dev/null || echo no-openssl");
    if subject != "no-openssl" {
        assert_eq!(
            subject,
            format!("subject=O = system:nodes, CN = system:node:{}", h.name)
        );
    }
    let admin = kubeboot::apiclient::ApiClient::from_kubeconfig(
        &kubeboot::kubeconfig::KubeConfig::parse(
            &std::fs::read_to_string(cp.etc("admin.conf")).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let csrs = admin
        .list(
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            None,
        )
        .unwrap();
    let csr = csrs
        .iter()
        .find(|c| c["spec"]["username"] == "system:bootstrap:abcdef")
        .expect("a CSR made with the bootstrap token");
    assert!(
        csr["status"]["conditions"].to_string().contains("Approved"),
        "{csr}"
    );
    assert!(csr["status"]["certificate"].is_string(), "{csr}");

    // The real kubelet registers its Node object...
    let deadline = Instant::now() + Duration::from_secs(120);
    let node = loop {
        if let Some(node) = admin.get_opt(&format!("/api/v1/nodes/{}", h.name)).unwrap() {
            break node;
        }
        assert!(
            Instant::now() < deadline,
            "the kubelet did not register Node {} within 120s; kubelet:\n{}",
            h.name,
            kubelet_errors(&lab)
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!(
        "[figure] join on a lab node with the real kubelet, start to Node registered: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(node["metadata"]["name"], h.name.as_str());
    assert!(
        node["status"]["nodeInfo"]["kubeletVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.20.")),
        "{}",
        node["status"]["nodeInfo"]
    );

    // ...and, with the CNI config in place, it becomes Ready.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let node = admin.get(&format!("/api/v1/nodes/{}", h.name)).unwrap();
        let ready = node["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        if ready["status"] == "True" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Node {} not Ready within 180s: {ready}\nkubelet:\n{}",
            h.name,
            kubelet_errors(&lab)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!(
        "[figure] join on a lab node with the real kubelet, start to Node Ready: {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // The node's kubelet set its tunables in the node's private copies, not on the VM.
    assert_eq!(
        lab.ssh_ok(1, "echo $(cat /proc/sys/vm/overcommit_memory) $(cat /proc/sys/kernel/panic) $(cat /proc/sys/kernel/panic_on_oops)").trim(),
        "1 10 1"
    );
    assert_eq!(
        machine_tunables(),
        vm_tunables,
        "the VM's kernel tunables changed"
    );
}

/// This machine's values of the tunables the kubelet sets.
fn machine_tunables() -> Vec<String> {
    [
        "vm/overcommit_memory",
        "kernel/panic",
        "kernel/panic_on_oops",
    ]
    .iter()
    .map(|k| {
        std::fs::read_to_string(format!("/proc/sys/{k}"))
            .unwrap()
            .trim()
            .to_string()
    })
    .collect()
}

/// The kubelet's last error and fatal lines on node 1, for failure messages.
fn kubelet_errors(lab: &lab_support::RunningLab) -> String {
    text(&lab.ssh(
        1,
        "journalctl -u kubelet --no-pager -o cat | grep -E '^(F|E)[0-9]{4}' | tail -n 15 | cut -c1-400",
    ))
}

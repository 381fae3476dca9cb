//! `kubeboot join` on a real lab node: the node is prepared by `kubeboot prepare` with the
//! real v1.20.2 kubelet (built from Debian's source, uploaded as a pinned artifact), and
//! joins the real control plane (started from kubeboot's manifests, serving on the lab
//! bridge) over SSH. The kubelet itself performs the TLS bootstrap: its CSR, made with the
//! bootstrap token, is approved and signed by the real controller-manager and it writes
//! kubelet.conf, which `kubelet-wait-bootstrap` waits for.
//!
//! What the kubelet cannot do in a systemd-nspawn node is recorded, not hidden: after the
//! bootstrap it stops in its container manager because /proc/sys is read-only there (it
//! wants to set kernel.panic, kernel.panic_on_oops and vm.overcommit_memory, which are
//! global to the machine), so the Node object is not registered by it.

mod cluster_support;
mod lab_support;

use cluster_support::*;
use kubeboot::config::join::{JoinConfig, JoinOverrides};
use lab_support::{LabEnv, apt_proxy, lab_prerequisites, text};
use std::time::{Duration, Instant};

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
fn a_prepared_lab_node_joins_and_its_real_kubelet_bootstraps() {
    if !lab_prerequisites(true) {
        return;
    }
    let env = LabEnv::new();
    let proxy = apt_proxy();
    let lab = env.up("kbjoin", "10.213.53.0/24", 1, &["--apt-proxy", &proxy]);

    // Prepare the node with the real kubelet.
    let dir = tempfile::tempdir().unwrap();
    let inv =
        lab_inventory_with_real_kubelet(&env.lab_dir("kbjoin").join("cluster.yaml"), dir.path());
    let out = env.kubeboot(&["prepare", "-f", inv.to_str().unwrap()]);
    assert!(out.status.success(), "prepare failed: {}", text(&out));

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
        ignore_preflight_errors: vec![],
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

    // Record what the kubelet says next, and whether the Node registered.
    let deadline = Instant::now() + Duration::from_secs(40);
    let (after, node) = loop {
        let after = text(&lab.ssh(1, "journalctl -u kubelet --no-pager -o cat | grep -E '^F[0-9]{4}' | tail -n 1 | cut -c1-300"));
        let node = admin.get_opt(&format!("/api/v1/nodes/{}", h.name)).unwrap();
        if node.is_some() || !after.trim().is_empty() || Instant::now() > deadline {
            break (after, node);
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    eprintln!(
        "[figure] kubelet after bootstrap: {} ; Node registered: {}",
        after.trim(),
        node.is_some()
    );
}

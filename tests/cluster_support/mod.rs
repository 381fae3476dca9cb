//! A real control plane for the tests: etcd 3.5, kube-apiserver, kube-controller-manager
//! and kube-scheduler (v1.20.2, built from Debian's source by
//! `tests/controlplane/build-k8s.sh`) started as processes **from the `command` of
//! kubeboot's own rendered static Pod manifests**. Only paths are re-rooted into a temp
//! dir, ports moved to free ones on 127.0.0.1, and `--bind-address`/`--secure-port`
//! added so nothing listens on 0.0.0.0. Processes are stopped by PID.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Kubernetes version the manifests are rendered for: 1.31 uses the etcd 3.5 flag
/// spellings that the etcd 3.5 binary here understands.
pub const RENDER_VERSION: &str = "v1.31.0";

/// The bootstrap token the test configuration gives `init`.
pub const INIT_TOKEN: &str = "abcdef.0123456789abcdef";

/// Flags of kubeboot's 1.31 manifests that the v1.20.2 binaries reject, dropped here and
/// nowhere else. Each entry: (component, flag prefix, why).
pub const REJECTED_BY_1_20: &[(&str, &str, &str)] = &[];

#[path = "../port_support/mod.rs"]
mod port_support;
pub use port_support::free_port;

/// Directory holding a binary named by `env`, from the environment or the build cache's
/// env file; fails with how to build it.
pub fn bin_dir(env: &str) -> PathBuf {
    if let Ok(d) = std::env::var(env) {
        return PathBuf::from(d);
    }
    let cache = std::env::var("KUBEBOOT_K8S_CACHE").unwrap_or("/var/cache/kubeboot/k8s".into());
    if let Ok(text) = std::fs::read_to_string(Path::new(&cache).join("env")) {
        for line in text.lines() {
            if let Some(v) = line.strip_prefix(&format!("{env}=")) {
                return PathBuf::from(v);
            }
        }
    }
    panic!(
        "{env} is not set: build the control-plane binaries with `bash tests/controlplane/build-k8s.sh` (.ci/run does)"
    );
}

/// A running control plane under a temp root.
pub struct ControlPlane {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The address the API server advertises and listens on.
    pub address: String,
    pub config: PathBuf,
    procs: Vec<(String, Child)>,
    pub started: Instant,
    pub ready_after: Duration,
    /// etcd's client port on 127.0.0.1 (moved from 2379).
    pub etcd_client_port: u16,
}

impl ControlPlane {
    /// The node root (kubeboot's `--root`).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `https://<address>:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}:{}", self.address, self.port)
    }

    /// A file under the node's /etc/kubernetes.
    pub fn etc(&self, rel: &str) -> PathBuf {
        self.root().join("etc/kubernetes").join(rel)
    }

    /// kubeboot with `--root` set.
    pub fn kubeboot(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubeboot"));
        c.arg("--root").arg(self.root());
        c
    }

    /// Runs kubeboot; returns (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.kubeboot().args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs kubeboot and requires success.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "kubeboot {args:?} failed:\n{out}\n{err}");
        out
    }

    /// The last lines of a component's log, for failure messages.
    pub fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.root().join(format!("logs/{name}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Generates the PKI and kubeconfigs with kubeboot, renders the manifests, starts
    /// the four components and waits for `/readyz`.
    pub fn start() -> ControlPlane {
        Self::start_on("127.0.0.1")
    }

    /// Like [`ControlPlane::start`], advertising and serving the API on `address` (an
    /// address of this machine, e.g. a lab bridge, so lab nodes can join).
    pub fn start_on(address: &str) -> ControlPlane {
        Self::start_with(address, false)
    }

    /// Like [`ControlPlane::start_on`]; with `stable_endpoint` the cluster gets
    /// `controlPlaneEndpoint: <address>:<port>`, which joining control planes require.
    pub fn start_with(address: &str, stable_endpoint: bool) -> ControlPlane {
        let k8s = bin_dir("KUBEBOOT_K8S_BIN");
        let etcd_dir = bin_dir("KUBEBOOT_ETCD35_BIN");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let port = free_port();
        let config = root.join("kubeadm.yaml");
        let endpoint_line = if stable_endpoint {
            format!("controlPlaneEndpoint: {address}:{port}\n")
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!(
                "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {address}
  bindPort: {port}
nodeRegistration:
  name: cp-test
bootstrapTokens:
  - token: {INIT_TOKEN}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {RENDER_VERSION}
{endpoint_line}networking:
  podSubnet: 10.244.0.0/16
"
            ),
        )
        .unwrap();
        let cfg = config.to_str().unwrap().to_string();
        let mut cp = ControlPlane {
            dir,
            port,
            address: address.to_string(),
            config: config.clone(),
            procs: Vec::new(),
            started: Instant::now(),
            ready_after: Duration::ZERO,
            etcd_client_port: 0,
        };
        cp.ok(&["init", "phase", "certs", "all", "--config", &cfg]);
        cp.ok(&["init", "phase", "kubeconfig", "all", "--config", &cfg]);
        cp.ok(&["init", "phase", "etcd", "local", "--config", &cfg]);
        cp.ok(&["init", "phase", "control-plane", "all", "--config", &cfg]);
        std::fs::create_dir_all(root.join("logs")).unwrap();

        let (ec, ep, em) = (free_port(), free_port(), free_port());
        cp.etcd_client_port = ec;
        let ports = [
            (":2379", format!(":{ec}")),
            (":2380", format!(":{ep}")),
            (":2381", format!(":{em}")),
        ];
        let reroot = |arg: &str| -> String {
            let mut a = arg.to_string();
            for p in ["/etc/kubernetes", "/var/lib/etcd"] {
                a = a.replace(p, &format!("{}{p}", root.display()));
            }
            for (from, to) in &ports {
                a = a.replace(from, to);
            }
            // etcd listens on 127.0.0.1 and the advertise address, which are the same here.
            if let Some((flag, value)) = a.split_once('=') {
                let mut seen = Vec::new();
                let parts: Vec<&str> = value
                    .split(',')
                    .filter(|p| {
                        let new = !seen.contains(p);
                        seen.push(*p);
                        new
                    })
                    .collect();
                a = format!("{flag}={}", parts.join(","));
            }
            a
        };
        let start = Instant::now();
        // Added flags: listen only on the chosen address and free ports. The v1.20 binaries
        // also serve insecure HTTP by default (apiserver 127.0.0.1:8080, controller-manager
        // 0.0.0.0:10252, scheduler 0.0.0.0:10251; 1.24+ removed these): turn that off.
        for (name, bin, extra) in [
            ("etcd", etcd_dir.join("etcd"), vec![]),
            (
                "kube-apiserver",
                k8s.join("kube-apiserver"),
                vec![
                    format!("--bind-address={address}"),
                    "--insecure-port=0".into(),
                ],
            ),
            (
                "kube-controller-manager",
                k8s.join("kube-controller-manager"),
                vec![format!("--secure-port={}", free_port()), "--port=0".into()],
            ),
            (
                "kube-scheduler",
                k8s.join("kube-scheduler"),
                vec![format!("--secure-port={}", free_port()), "--port=0".into()],
            ),
        ] {
            let child = spawn_component(&root, name, &bin, &reroot, extra);
            cp.procs.push((name.to_string(), child));
        }
        cp.started = start;
        let out = cp.run(&["init", "phase", "wait-control-plane", "--config", &cfg]);
        assert!(
            out.0,
            "control plane not ready:\n{}{}\napiserver log:\n{}\netcd log:\n{}",
            out.1,
            out.2,
            cp.log_tail("kube-apiserver"),
            cp.log_tail("etcd")
        );
        cp.ready_after = start.elapsed();
        cp.assert_no_wildcard_listeners();
        cp
    }

    /// etcdctl (etcd 3.5's) against `endpoints`, with this control plane's etcd CA and
    /// healthcheck-client certificate; returns (success, stdout, stderr).
    pub fn etcdctl(&self, endpoints: &str, args: &[&str]) -> (bool, String, String) {
        let pki = self.etc("pki/etcd");
        let out = Command::new(bin_dir("KUBEBOOT_ETCD35_BIN").join("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg(format!("--cacert={}", pki.join("ca.crt").display()))
            .arg(format!(
                "--cert={}",
                pki.join("healthcheck-client.crt").display()
            ))
            .arg(format!(
                "--key={}",
                pki.join("healthcheck-client.key").display()
            ))
            .args(args)
            .output()
            .expect("etcdctl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Nothing the harness started listens on all addresses.
    pub fn assert_no_wildcard_listeners(&self) {
        let out = Command::new("ss")
            .args(["-Hltnp"])
            .output()
            .expect("ss (iproute2)");
        let text = String::from_utf8_lossy(&out.stdout);
        for (name, child) in &self.procs {
            let pid = format!("pid={},", child.id());
            for line in text.lines().filter(|l| l.contains(&pid)) {
                let local = line.split_whitespace().nth(3).unwrap_or_default();
                assert!(
                    !(local.starts_with("0.0.0.0:")
                        || local.starts_with("*:")
                        || local.starts_with("[::]:")),
                    "{name} listens on all addresses: {line}"
                );
            }
        }
    }

    /// Sends a signal to a component (e.g. SIGSTOP/SIGCONT to pause the controller-manager).
    pub fn signal(&self, name: &str, sig: i32) {
        let (_, child) = self
            .procs
            .iter()
            .find(|(n, _)| n == name)
            .expect("component");
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
    }

    /// Whether every component is still running.
    pub fn check_alive(&mut self) {
        for (name, child) in &mut self.procs {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited ({status}):\n{}", {
                    let t =
                        std::fs::read_to_string(self.dir.path().join(format!("logs/{name}.log")))
                            .unwrap_or_default();
                    t.lines()
                        .rev()
                        .take(30)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n")
                });
            }
        }
    }
}

/// Starts a component the way a kubelet would start its static Pod: the `command` of
/// `<root>/etc/kubernetes/manifests/<name>.yaml`, each argument passed through `reroot`
/// (paths into the root, ports moved), `extra` appended, flags of 1.31 that v1.20
/// rejects dropped; output to `<root>/logs/<name>.log`; ends with the test process.
pub fn spawn_component(
    root: &Path,
    name: &str,
    bin: &Path,
    reroot: &dyn Fn(&str) -> String,
    extra: Vec<String>,
) -> Child {
    let manifest =
        std::fs::read_to_string(root.join(format!("etc/kubernetes/manifests/{name}.yaml")))
            .unwrap();
    let pod: serde_json::Value = serde_saphyr::from_str(&manifest).unwrap();
    let command: Vec<String> = pod["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        command[0], name,
        "the manifest's command starts with the binary"
    );
    let mut args: Vec<String> = command[1..]
        .iter()
        .filter(|a| {
            !REJECTED_BY_1_20
                .iter()
                .any(|(c, f, _)| *c == name && a.starts_with(f))
        })
        .map(|a| reroot(a))
        .collect();
    args.extend(extra);
    std::fs::create_dir_all(root.join("logs")).unwrap();
    let log = std::fs::File::create(root.join(format!("logs/{name}.log"))).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(&args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null());
    // End with the test even if it panics or is killed.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()))
}

/// Processes a test started, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Default)]
pub struct Procs(pub Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        stop_all(&mut self.0);
    }
}

fn stop_all(procs: &mut [(String, Child)]) {
    for (_, child) in procs.iter_mut().rev() {
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
    }
    for (_, child) in procs.iter_mut().rev() {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        stop_all(&mut self.procs);
    }
}

/// A lab's inventory (`lab up`'s cluster.yaml) for the real v1.20.2 binaries: rendered for
/// 1.31, kubelet and kubectl as pinned path artifacts from the build cache, and the
/// kubelet flag v1.20 needs (`--container-runtime=remote`; 1.24+ has no other runtime).
/// Written to `dir/cluster.yaml`; returns that path.
pub fn lab_inventory_with_real_kubelet(lab_inventory: &Path, dir: &Path) -> PathBuf {
    let bin = bin_dir("KUBEBOOT_K8S_BIN");
    let sha256 = |p: &Path| {
        let out = Command::new("sha256sum").arg(p).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let (kubelet, kubectl) = (bin.join("kubelet"), bin.join("kubectl"));
    let text = std::fs::read_to_string(lab_inventory).expect("lab inventory");
    // The v1.20 kubelet needs --container-runtime=remote: added to the lab's own kubelet
    // flags (image GC and eviction for a shared disk), or as the list when it has none.
    let runtime = "  - {name: container-runtime, value: remote}\n";
    let text = if text.contains("\n  kubeletExtraArgs:\n") {
        text.replacen(
            "\n  kubeletExtraArgs:\n",
            &format!("\n  kubeletExtraArgs:\n{runtime}"),
            1,
        )
    } else {
        format!(
            "{}  kubeletExtraArgs:\n{runtime}",
            text.trim_end().to_string() + "\n"
        )
    };
    let text = text.replacen(
        "spec:\n",
        &format!(
            "spec:\n  kubernetesVersion: v1.31.0\n  artifacts:\n    kubelet: {{path: {}, sha256: {}}}\n    kubectl: {{path: {}, sha256: {}}}\n",
            kubelet.display(),
            sha256(&kubelet),
            kubectl.display(),
            sha256(&kubectl)
        ),
        1,
    );
    let out = dir.join("cluster.yaml");
    std::fs::write(&out, text).unwrap();
    out
}

/// The kubelet's client credentials that `join` obtained under the node root `w` (its
/// CSR, made with the bootstrap token, approved and signed by the real
/// controller-manager): waits for kubelet.conf and the certificate store's current link,
/// checks that kubelet.conf reads the certificate and key through that link, that the
/// certificate is the node's (`system:node:<node>`, `system:nodes`) and that the
/// bootstrap token was never written to the node; returns the same credentials embedded,
/// for the caller to act as the kubelet.
pub fn kubelet_credentials(w: &Path, node: &str) -> kubeboot::kubeconfig::KubeConfig {
    let conf = w.join("etc/kubernetes/kubelet.conf");
    let current = "/var/lib/kubelet/pki/kubelet-client-current.pem";
    let pem_path = w.join(current.trim_start_matches('/'));
    let start = Instant::now();
    while !(conf.exists() && pem_path.exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "join never wrote kubelet.conf and {current}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !w.join("etc/kubernetes/bootstrap-kubelet.conf").exists(),
        "the bootstrap token was written to the node"
    );
    let kc =
        kubeboot::kubeconfig::KubeConfig::parse(&std::fs::read_to_string(&conf).unwrap()).unwrap();
    assert_eq!(kc.users[0].user.client_certificate, current);
    assert_eq!(kc.users[0].user.client_key, current);
    assert!(kc.users[0].user.token.is_empty());
    let link = std::fs::read_link(&pem_path).unwrap();
    assert!(
        link.to_string_lossy().starts_with("kubelet-client-2"),
        "{}",
        link.display()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pem_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the kubelet's key must be private");
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    let cert = kubeboot::pki::Certificate::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(cert.cn, format!("system:node:{node}"));
    assert_eq!(cert.orgs, ["system:nodes"]);
    // The kubelet's store holds the certificate, then the key, in one file.
    let key_at = pem
        .find("-----BEGIN EC PRIVATE KEY-----")
        .expect("an EC key after the certificate");
    let key = kubeboot::pki::PrivateKey::from_pem(&pem[key_at..]).unwrap();
    assert!(
        cert.matches_key(&key),
        "the store's key is not the certificate's"
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let ca = b64
        .decode(&kc.clusters[0].cluster.certificate_authority_data)
        .unwrap();
    kubeboot::kubeconfig::KubeConfig::basic(
        &kc.clusters[0].cluster.server,
        "kubernetes",
        &format!("system:node:{node}"),
        &String::from_utf8_lossy(&ca),
        kubeboot::kubeconfig::User {
            client_certificate_data: b64.encode(&pem[..key_at]),
            client_key_data: b64.encode(&pem[key_at..]),
            ..Default::default()
        },
    )
}

/// A worker's root with the `systemctl` test double first on PATH.
pub fn worker() -> tempfile::TempDir {
    let w = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(w.path().join("bin")).unwrap();
    let fake = w.path().join("bin/systemctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\n# test double for systemd: records the call\necho \"$@\" >> {}/systemctl.log\n", w.path().display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    w
}

pub fn join_cmd(w: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubeboot"));
    c.arg("--root").arg(w).arg("join").args(args);
    // No containerd with the cluster's images runs here (the harness runs the binaries).
    c.arg("--ignore-preflight-errors=ImagePull");
    c.env(
        "PATH",
        format!(
            "{}:{}",
            w.join("bin").display(),
            std::env::var("PATH").unwrap()
        ),
    );
    c
}

/// The local lab images (`tests/controlplane/build-images.sh`, run by `.ci/setup`):
/// `(archive path, sha256, image ref)` per image.
pub fn lab_images() -> Vec<(PathBuf, String, String)> {
    let dir = std::env::var("KUBEBOOT_IMAGES_DIR").unwrap_or_else(|_| {
        let out = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/controlplane/build-images.sh"
            ))
            .output()
            .expect("run build-images.sh");
        assert!(
            out.status.success(),
            "build-images.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("KUBEBOOT_IMAGES_DIR="))
            .expect("KUBEBOOT_IMAGES_DIR from build-images.sh")
            .to_string()
    });
    let dir = PathBuf::from(dir);
    std::fs::read_to_string(dir.join("images.txt"))
        .expect("images.txt in KUBEBOOT_IMAGES_DIR")
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                dir.join(w.next()?),
                w.next()?.to_string(),
                w.next()?.to_string(),
            ))
        })
        .collect()
}

/// A lab inventory for a working cluster: the real kubelet, the lab images (control-plane
/// ones for control planes only) except those whose file name is in `withhold`, the
/// image repository they are tagged under, and the image-free `bridge` pod network.
pub fn lab_inventory_working(lab_inventory: &Path, dir: &Path, withhold: &[&str]) -> PathBuf {
    let base = lab_inventory_with_real_kubelet(lab_inventory, dir);
    let mut extra = String::from("  imageRepository: kubeboot.local/lab\n  cni: {name: bridge}\n");
    let images: Vec<_> = lab_images()
        .into_iter()
        .filter(|(p, _, _)| !withhold.contains(&p.file_name().unwrap().to_str().unwrap()))
        .collect();
    if !images.is_empty() {
        extra.push_str("  imageArchives:\n");
        for (path, sha, reference) in images {
            let cp_only = [
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "etcd",
            ]
            .iter()
            .any(|c| reference.contains(&format!("/{c}:")));
            extra.push_str(&format!(
                "    - {{path: {}, sha256: {sha}{}}}\n",
                path.display(),
                if cp_only {
                    ", roles: [control-plane]"
                } else {
                    ""
                }
            ));
        }
    }
    let text = std::fs::read_to_string(&base).unwrap();
    let out = dir.join(format!("cluster-{}.yaml", withhold.len()));
    std::fs::write(
        &out,
        text.replacen("spec:\n", &format!("spec:\n{extra}"), 1),
    )
    .unwrap();
    out
}

/// kubectl (the v1.20.2 build) with one kubeconfig.
pub struct Kubectl {
    pub bin: std::path::PathBuf,
    pub kubeconfig: std::path::PathBuf,
}

impl Kubectl {
    /// kubectl of the build cache with `kubeconfig`.
    pub fn new(kubeconfig: &Path) -> Kubectl {
        Kubectl {
            bin: bin_dir("KUBEBOOT_K8S_BIN").join("kubectl"),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Polls `what` until it returns Some or `limit` passes.
    pub fn until<T>(&self, limit: Duration, what: &str, f: impl Fn(&Kubectl) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}:\n{}",
                self.ok(&["get", "pods", "-A", "-o", "wide"])
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

/// Running with condition Ready.
pub fn pod_ready(p: &serde_json::Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// stdout and stderr of a finished command, for messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

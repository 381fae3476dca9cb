//! Rendered files, end to end: golden files per Kubernetes version, schema validation with
//! `kubernetes-validate`, YAML round trips, flag and volume invariants, user overrides, and
//! the errors users see for bad input.

mod common;

use common::*;
use kubeboot::host::LocalHost;
use kubeboot::render::{self, RenderOptions, RenderedFile, Target};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn render_default(minor: u32) -> Vec<RenderedFile> {
    let root = empty_root();
    render::render_all(
        &config(minor),
        &LocalHost::with_root(root.path()),
        &RenderOptions::default(),
    )
    .unwrap()
}

fn pods(files: &[RenderedFile]) -> Vec<(String, Value)> {
    files
        .iter()
        .filter(|f| f.path.starts_with(render::MANIFESTS_DIR))
        .map(|f| {
            let name = f.path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, serde_saphyr::from_str::<Value>(f.text()).unwrap())
        })
        .collect()
}

fn golden_dir(minor: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("v1.{minor}"))
}

/// Byte-for-byte comparison with `tests/golden/v1.<minor>/<node path>`.
/// `KUBEBOOT_UPDATE_GOLDEN=1 cargo test --test render golden` rewrites them.
#[test]
fn golden_files_match_byte_for_byte() {
    let update = std::env::var_os("KUBEBOOT_UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut problems = Vec::new();
    for minor in minors() {
        let dir = golden_dir(minor);
        if update {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let files = render_default(minor);
        let mut expected_names = Vec::new();
        for f in &files {
            let rel = f.path.strip_prefix("/").unwrap();
            let golden = dir.join(rel);
            expected_names.push(golden.clone());
            if update {
                std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
                std::fs::write(&golden, &f.contents).unwrap();
                continue;
            }
            match std::fs::read(&golden) {
                Ok(g) if g == f.contents => {}
                Ok(_) => problems.push(format!(
                    "{} differs from the render (run with KUBEBOOT_UPDATE_GOLDEN=1 after reviewing)",
                    golden.display()
                )),
                Err(e) => problems.push(format!("{}: {e}", golden.display())),
            }
        }
        // No stale golden files for files kubeboot no longer renders.
        for entry in walk(&dir) {
            if !expected_names.contains(&entry) {
                problems.push(format!("{} is not rendered any more", entry.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every Kubernetes object (static Pods and addons) validates against the schemas of its
/// Kubernetes version in strict mode (unknown fields are errors).
#[test]
fn objects_validate_against_kubernetes_schemas_strictly() {
    let validator = which("kubernetes-validate").unwrap_or_else(|| {
        panic!(
            "kubernetes-validate is not installed; run `pip install kubernetes-validate` (CI installs it)"
        )
    });
    for minor in minors() {
        let files = render_default(minor);
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let mut docs = 0;
        for f in files
            .iter()
            .filter(|f| f.target == Target::Api || f.path.starts_with(render::MANIFESTS_DIR))
        {
            let p = dir.path().join(
                f.path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .replace(".yaml", "")
                    + ".yaml",
            );
            std::fs::write(&p, &f.contents).unwrap();
            docs += documents(f.text()).len();
            paths.push(p);
        }
        let out = Command::new(&validator)
            .arg("--strict")
            .arg("-k")
            .arg(format!("1.{minor}.0"))
            .args(&paths)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "1.{minor}: kubernetes-validate failed:\n{stdout}\n{stderr}"
        );
        let passed = stdout.lines().filter(|l| l.contains(" passed ")).count();
        assert_eq!(
            passed, docs,
            "1.{minor}: every document must be checked against a schema, not skipped:\n{stdout}\n{stderr}"
        );
    }
}

/// Every YAML file parses, and writing the parsed value again gives the same bytes: what is
/// on disk is exactly the data kubeboot meant, with no quoting or indentation surprises.
#[test]
fn yaml_parses_back_to_the_same_values() {
    for minor in minors() {
        for f in render_default(minor) {
            let is_yaml = f.path.extension().is_some_and(|e| e == "yaml");
            if !is_yaml || f.path.ends_with("flannel.yaml") {
                continue;
            }
            let docs = documents(f.text());
            let mut again = String::new();
            for d in &docs {
                let v: Value = serde_saphyr::from_str(d)
                    .unwrap_or_else(|e| panic!("{}: {e}", f.path.display()));
                if docs.len() > 1 || f.text().starts_with("---") {
                    again.push_str("---\n");
                }
                again.push_str(&render::yaml::to_yaml(&v).unwrap());
            }
            assert_eq!(again, f.text(), "{} (1.{minor})", f.path.display());
        }
        // The flannel template's documents all parse and have the pod CIDR in net-conf.json.
        let cfg = config(minor);
        let fl = render::flannel::manifest(&cfg, &render::Templates::embedded(), None).unwrap();
        let docs: Vec<Value> = documents(&fl)
            .iter()
            .map(|d| serde_saphyr::from_str(d).unwrap())
            .collect();
        let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
        let net: Value =
            serde_json::from_str(cm["data"]["net-conf.json"].as_str().unwrap()).unwrap();
        assert_eq!(net["Network"], "10.244.0.0/16");
    }
}

fn command(pod: &Value) -> Vec<String> {
    pod["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Flags are unique and sorted by name, as kubeadm writes them.
#[test]
fn flags_are_unique_and_sorted_by_name() {
    for minor in minors() {
        for (name, pod) in pods(&render_default(minor)) {
            let cmd = command(&pod);
            let names: Vec<&str> = cmd[1..]
                .iter()
                .map(|a| a.trim_start_matches("--").split('=').next().unwrap())
                .collect();
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(
                names, sorted,
                "{name} 1.{minor}: flags unsorted or repeated"
            );
            assert!(
                cmd[1..]
                    .iter()
                    .all(|a| a.starts_with("--") && a.contains('='))
            );
        }
    }
}

/// Every host path a flag names (certs, keys, kubeconfigs, the data dir) is inside a
/// hostPath volume mounted at the same place, so the component can open it.
#[test]
fn every_path_a_flag_references_is_mounted() {
    for minor in minors() {
        for (name, pod) in pods(&render_default(minor)) {
            let c = &pod["spec"]["containers"][0];
            let volumes = pod["spec"]["volumes"].as_array().unwrap();
            let mounts: Vec<(String, String)> = c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let vname = m["name"].as_str().unwrap();
                    let v = volumes.iter().find(|v| v["name"] == vname).unwrap();
                    (
                        m["mountPath"].as_str().unwrap().to_string(),
                        v["hostPath"]["path"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let mut checked = 0;
            for arg in &command(&pod)[1..] {
                let value = arg.split_once('=').unwrap().1;
                if !value.starts_with('/') {
                    continue;
                }
                checked += 1;
                assert!(
                    mounts
                        .iter()
                        .any(|(mp, hp)| mp == hp && Path::new(value).starts_with(mp)),
                    "{name} 1.{minor}: {arg} is not under any hostPath mount {mounts:?}"
                );
            }
            assert!(checked > 0, "{name}: no path flags found");
        }
    }
}

#[test]
fn version_table_reaches_the_manifests() {
    let get = |minor, name: &str| {
        pods(&render_default(minor))
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
    };
    // Scheduler: /healthz without readiness before 1.32, /livez + /readyz after.
    let s31 = &get(31, "kube-scheduler")["spec"]["containers"][0];
    assert_eq!(s31["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(s31.get("readinessProbe").is_none());
    assert_eq!(s31["livenessProbe"]["httpGet"]["port"], 10259);
    let s32 = &get(32, "kube-scheduler")["spec"]["containers"][0];
    assert_eq!(s32["readinessProbe"]["httpGet"]["path"], "/readyz");
    // Named probe port from 1.34.
    let e34 = &get(34, "etcd")["spec"]["containers"][0];
    assert_eq!(e34["livenessProbe"]["httpGet"]["port"], "probe-port");
    assert_eq!(e34["ports"][0]["containerPort"], 2381);
    assert!(
        get(33, "etcd")["spec"]["containers"][0]
            .get("ports")
            .is_none()
    );
    // etcd flags and image follow the etcd version.
    let c33 = command(&get(33, "etcd"));
    assert!(c33.contains(&"--experimental-initial-corrupt-check=true".to_string()));
    assert!(c33.contains(&"--experimental-watch-progress-notify-interval=5s".to_string()));
    let c34 = command(&get(34, "etcd"));
    assert!(c34.contains(&"--feature-gates=InitialCorruptCheck=true".to_string()));
    assert!(c34.contains(&"--watch-progress-notify-interval=5s".to_string()));
    assert_eq!(e34["image"], "registry.k8s.io/etcd:3.6.5-0");
    assert_eq!(
        get(34, "kube-apiserver")["spec"]["containers"][0]["image"],
        "registry.k8s.io/kube-apiserver:v1.34.2"
    );
    // kubelet: CRI endpoint in flags before 1.34, in the config from 1.34.
    let flags = |minor| {
        render_default(minor)
            .into_iter()
            .find(|f| f.path.ends_with("kubeadm-flags.env"))
            .unwrap()
            .text()
            .to_string()
    };
    assert_eq!(
        flags(31),
        "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10\"\n"
    );
    assert_eq!(
        flags(34),
        "KUBELET_KUBEADM_ARGS=\"--pod-infra-container-image=registry.k8s.io/pause:3.10.1\"\n"
    );
}

const CUSTOM: &str = r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.0.0.5
nodeRegistration:
  name: master-a
  kubeletExtraArgs:
    - name: node-ip
      value: 10.0.0.5
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.33.1
controlPlaneEndpoint: cp.example.com:6443
clusterName: lab
imageRepository: mirror.example.com/k8s
certificatesDir: /srv/pki
networking:
  podSubnet: 10.200.0.0/16
  serviceSubnet: 10.100.0.0/16
  dnsDomain: lab.internal
apiServer:
  certSANs: [lb.example.com]
  extraArgs:
    - name: secure-port
      value: "7443"
    - name: audit-log-path
      value: /var/log/kubernetes/audit.log
  extraVolumes:
    - name: audit
      hostPath: /var/log/kubernetes
      mountPath: /var/log/kubernetes
      pathType: DirectoryOrCreate
  extraEnvs:
    - name: GOMAXPROCS
      value: "2"
controllerManager:
  extraArgs:
    - name: bind-address
      value: 0.0.0.0
etcd:
  local:
    dataDir: /data/etcd
    extraArgs:
      - name: quota-backend-bytes
        value: "8589934592"
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
cgroupDriver: cgroupfs
"#;

#[test]
fn user_settings_reach_the_files() {
    let cfg = config_from_text(CUSTOM).unwrap();
    let root = empty_root();
    let opts = RenderOptions {
        external_ca: true,
        ..RenderOptions::default()
    };
    let files = render::render_all(&cfg, &LocalHost::with_root(root.path()), &opts).unwrap();
    let all = pods(&files);
    let pod = |n: &str| all.iter().find(|(name, _)| name == n).unwrap().1.clone();
    let api = pod("kube-apiserver");
    let cmd = command(&api);
    assert!(cmd.contains(&"--secure-port=7443".to_string()), "{cmd:?}");
    assert!(!cmd.contains(&"--secure-port=6443".to_string()));
    assert!(cmd.contains(&"--client-ca-file=/srv/pki/ca.crt".to_string()));
    assert!(cmd.contains(
        &"--service-account-issuer=https://kubernetes.default.svc.lab.internal".to_string()
    ));
    let c = &api["spec"]["containers"][0];
    assert_eq!(c["image"], "mirror.example.com/k8s/kube-apiserver:v1.33.1");
    assert_eq!(c["env"][0]["name"], "GOMAXPROCS");
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "audit")
    );
    let kcm = pod("kube-controller-manager");
    let kcmd = command(&kcm);
    for f in [
        "--allocate-node-cidrs=true",
        "--cluster-cidr=10.200.0.0/16",
        "--service-cluster-ip-range=10.100.0.0/16",
        "--cluster-name=lab",
        "--cluster-signing-cert-file=",
        "--cluster-signing-key-file=",
        "--bind-address=0.0.0.0",
    ] {
        assert!(kcmd.contains(&f.to_string()), "{f} missing in {kcmd:?}");
    }
    // An unspecified bind address cannot be probed: kubeadm leaves the host out.
    assert!(
        kcm["spec"]["containers"][0]["livenessProbe"]["httpGet"]
            .get("host")
            .is_none()
    );
    let etcd = pod("etcd");
    assert!(command(&etcd).contains(&"--data-dir=/data/etcd".to_string()));
    assert!(command(&etcd).contains(&"--quota-backend-bytes=8589934592".to_string()));
    assert_eq!(
        etcd["spec"]["containers"][0]["image"],
        "mirror.example.com/k8s/etcd:3.5.24-0"
    );
    let text = |suffix: &str| {
        files
            .iter()
            .find(|f| f.path.ends_with(suffix))
            .unwrap()
            .text()
            .to_string()
    };
    let kubelet: Value = serde_saphyr::from_str(&text("config.yaml")).unwrap();
    assert_eq!(kubelet["maxPods"], 50);
    assert!(text("config.yaml").contains("maxPods: 50\n"));
    assert_eq!(kubelet["cgroupDriver"], "cgroupfs");
    assert_eq!(kubelet["clusterDNS"][0], "10.100.0.10");
    assert_eq!(kubelet["clusterDomain"], "lab.internal");
    assert!(text("kubeadm-flags.env").contains("--node-ip=10.0.0.5"));
    assert!(text("kubeadm-flags.env").contains("mirror.example.com/k8s/pause:3.10"));
    assert!(text("config.toml").contains("sandbox_image = \"mirror.example.com/k8s/pause:3.10\""));
    let dns = text("coredns.yaml");
    let svc: Value = documents(&dns)
        .iter()
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap())
        .find(|d| d["kind"] == "Service")
        .unwrap();
    assert_eq!(svc["spec"]["clusterIP"], "10.100.0.10");
    assert!(dns.contains("kubernetes lab.internal in-addr.arpa ip6.arpa"));
    assert!(dns.contains("image: mirror.example.com/k8s/coredns:v1.12.0"));
    let proxy = text("kube-proxy.yaml");
    assert!(
        proxy.contains("server: https://cp.example.com:6443"),
        "{proxy}"
    );
    assert!(proxy.contains("clusterCIDR: 10.200.0.0/16"));
    assert!(text("flannel.yaml").contains("\"Network\": \"10.200.0.0/16\""));
}

#[test]
fn ca_directories_are_mounted_only_where_they_exist() {
    let root = empty_root();
    for d in ["etc/ca-certificates", "etc/pki/tls/certs"] {
        std::fs::create_dir_all(root.path().join(d)).unwrap();
    }
    let cfg = config(34);
    let files = render::static_pods(
        &cfg,
        &LocalHost::with_root(root.path()),
        &RenderOptions::default(),
    )
    .unwrap();
    for (name, pod) in pods(&files) {
        let vols: Vec<&str> = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        let wants = name == "kube-apiserver" || name == "kube-controller-manager";
        for v in ["etc-ca-certificates", "etc-pki-tls-certs"] {
            assert_eq!(vols.contains(&v), wants, "{name}: {vols:?}");
        }
        for v in ["usr-share-ca-certificates", "etc-pki-ca-trust"] {
            assert!(!vols.contains(&v), "{name}: {vols:?}");
        }
    }
}

#[test]
fn flannel_iface_and_template_overrides() {
    let cfg = config(34);
    let t = render::Templates::embedded();
    let m = render::flannel::manifest(&cfg, &t, Some("eth1")).unwrap();
    assert!(m.contains("- \"--iface=eth1\""), "{m}");
    let e = render::flannel::manifest(&cfg, &t, Some("eth1; rm")).unwrap_err();
    assert!(
        e.to_string().contains("not a network interface name"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Corefile.tera"),
        ".:53 {\n    forward . 9.9.9.9\n}\n",
    )
    .unwrap();
    let opts = RenderOptions {
        templates: render::Templates::with_overrides(dir.path()).unwrap(),
        ..RenderOptions::default()
    };
    let files = render::addon_files(&cfg, &opts).unwrap();
    let dns = files
        .iter()
        .find(|f| f.path.ends_with("coredns.yaml"))
        .unwrap();
    assert!(dns.text().contains("forward . 9.9.9.9"), "{}", dns.text());
}

#[test]
fn dry_run_writes_the_tree_under_a_temp_root() {
    let cfg = config(34);
    let node = empty_root();
    let tree = render::dry_run(
        &cfg,
        &LocalHost::with_root(node.path()),
        RenderOptions::default(),
    )
    .unwrap();
    let manifest = tree
        .root
        .join("etc/kubernetes/manifests/kube-apiserver.yaml");
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&manifest).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir = std::fs::metadata(manifest.parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    assert!(
        tree.listing()
            .contains("0600 /etc/kubernetes/manifests/etcd.yaml")
    );
    std::fs::remove_dir_all(&tree.root).unwrap();
}

fn validate_cli(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yaml");
    std::fs::write(&p, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(["config", "validate", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const HEAD: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n";

#[test]
fn bad_input_reaches_the_user_through_config_validate() {
    let cases = [
        (
            "apiServer:\n  extraArgs:\n    - name: --v\n      value: \"2\"\n",
            vec!["apiServer.extraArgs", "\"--v\" is not a flag name"],
        ),
        (
            "controllerManager:\n  extraVolumes:\n    - name: plugins\n      hostPath: relative/dir\n      mountPath: /plugins\n",
            vec![
                "controllerManager.extraVolumes",
                "\"relative/dir\" must be an absolute path",
            ],
        ),
        (
            "kubernetesVersion: v1.30.4\n",
            vec![
                "kubernetesVersion",
                "supported versions: v1.31.x, v1.32.x, v1.33.x, v1.34.x",
            ],
        ),
        (
            "networking:\n  serviceSubnet: 10.96.0.0/12\n  podSubnet: 10.96.128.0/17\n",
            vec![
                "networking.podSubnet",
                "overlaps the service CIDR 10.96.0.0/12",
            ],
        ),
    ];
    for (body, wants) in cases {
        let (ok, out) = validate_cli(&format!("{HEAD}{body}"));
        assert!(!ok, "accepted:\n{body}");
        for w in wants {
            assert!(out.contains(w), "{w:?} missing in:\n{out}");
        }
    }
    let (ok, out) = validate_cli(&format!(
        "{HEAD}kubernetesVersion: v1.32.3\nnetworking:\n  podSubnet: 10.244.0.0/16\n"
    ));
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "ok");
}

#[test]
fn print_init_defaults_reads_back_as_a_valid_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(["config", "print", "init-defaults"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("kind: InitConfiguration") && text.contains("kind: ClusterConfiguration")
    );
    assert!(text.contains("token: abcdef.0123456789abcdef"), "{text}");
    let cfg = config_from_text(&text).unwrap();
    assert_eq!(cfg.node_name, "node");
    assert_eq!(cfg.advertise_address.to_string(), "1.2.3.4");
}

#[test]
fn external_etcd_gets_its_cert_dirs_mounted_and_no_etcd_pod() {
    let cfg = config_from_text(&format!(
        "{HEAD}etcd:\n  external:\n    endpoints: [https://10.0.0.7:2379]\n    caFile: /etc/etcd/pki/ca.crt\n    certFile: /etc/etcd/pki/client.crt\n    keyFile: /etc/etcd/pki/client.key\n"
    ))
    .unwrap();
    let root = empty_root();
    let files = render::static_pods(
        &cfg,
        &LocalHost::with_root(root.path()),
        &RenderOptions::default(),
    )
    .unwrap();
    let all = pods(&files);
    assert!(all.iter().all(|(n, _)| n != "etcd"));
    let api = &all.iter().find(|(n, _)| n == "kube-apiserver").unwrap().1;
    assert!(command(api).contains(&"--etcd-servers=https://10.0.0.7:2379".to_string()));
    let vols = serde_json::to_string(&api["spec"]["volumes"]).unwrap();
    assert!(
        vols.contains("\"etcd-certs-0\"") && vols.contains("/etc/etcd/pki"),
        "{vols}"
    );
}

/// `init phase control-plane --<component>-extra-args name=value,...` reach the manifests
/// and win over the config's extraArgs of the same name.
#[test]
fn control_plane_extra_args_flags() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = root.join("c.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n  - name: v\n    value: \"2\"\n",
    )
    .unwrap();
    let mut args = vec![
        "init",
        "phase",
        "control-plane",
        "all",
        "--config",
        cfg.to_str().unwrap(),
    ];
    args.extend_from_slice(common::NODE);
    args.extend([
        "--apiserver-extra-args",
        "v=4,audit-log-maxage=3",
        "--scheduler-extra-args",
        "v=5",
        "--controller-manager-extra-args",
        "v=6",
    ]);
    common::ok(root, &args);
    let manifest = |n: &str| {
        std::fs::read_to_string(root.join(format!("etc/kubernetes/manifests/{n}.yaml"))).unwrap()
    };
    let api = manifest("kube-apiserver");
    assert!(api.contains("--v=4") && !api.contains("--v=2"), "{api}");
    assert!(api.contains("--audit-log-maxage=3"), "{api}");
    assert!(manifest("kube-scheduler").contains("--v=5"));
    assert!(manifest("kube-controller-manager").contains("--v=6"));
    let err = common::fails(
        root,
        &[
            "init",
            "phase",
            "control-plane",
            "all",
            "--apiserver-extra-args",
            "novalue",
        ],
    );
    assert!(err.contains("name=value"), "{err}");
}

//! Images as an input: `config images list|pull`, `--image-repository` on the phases that
//! render images, and preflight's `ImagePull` check, against a real containerd (Debian's,
//! `apt-get install containerd`) that each test starts on a private socket in a temp dir
//! (`KUBEBOOT_CONTAINERD_ADDRESS` points kubeboot's `ctr` at it) and kills by PID at the end.
//! No registry is reachable here: pulls go to `127.0.0.1:1`, which refuses at once, and
//! the one present image is a tiny docker-archive the test builds and imports.

mod common;

use common::{kubeboot, which};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A containerd of the test's own: `--root`, `--state` and `--address` in a temp dir, the
/// CRI plugin off (nothing here needs it). Killed by PID when dropped.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        let bin = which("containerd").unwrap_or_else(|| {
            panic!("containerd is not installed; run `apt-get install containerd` (CI installs it)")
        });
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--address")
            .arg(dir.path().join("c.sock"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd { child, dir };
        let t0 = Instant::now();
        while !c.ctr(&["version"]).status.success() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "containerd did not start: {}",
                std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .unwrap()
    }

    /// Imports a one-layer docker-archive tagged `reference` (built here by python3).
    fn import_tiny_image(&self, reference: &str) {
        let tar = self.dir.path().join("image.tar");
        let script = r#"
import hashlib, io, json, sys, tarfile
def tarbytes(files):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files:
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
    return b.getvalue()
layer = tarbytes([("hello.txt", b"hi\n")])
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
cname = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{"Config": cname, "RepoTags": [sys.argv[2]], "Layers": ["layer.tar"]}]).encode()
open(sys.argv[1], "wb").write(tarbytes([("manifest.json", manifest), (cname, config), ("layer.tar", layer)]))
"#;
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&tar)
            .arg(reference)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.ctr(&["images", "import", tar.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ls = self.ctr(&["images", "ls", "-q"]);
        assert!(String::from_utf8_lossy(&ls.stdout).contains(reference));
    }

    /// kubeboot with KUBEBOOT_CONTAINERD_ADDRESS pointing here.
    fn kubeboot(&self, args: &[&str]) -> Output {
        kubeboot()
            .env("KUBEBOOT_CONTAINERD_ADDRESS", self.socket())
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn list(args: &[&str]) -> Vec<String> {
    let out = kubeboot()
        .args(["config", "images", "list"])
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    stdout.lines().map(String::from).collect()
}

fn inventory(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("cluster.yaml");
    std::fs::write(
        &p,
        format!(
            "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nmetadata: {{name: t}}\nspec:\n  kubernetesVersion: v1.33.1\n  hosts:\n  - {{name: n1, address: 10.0.0.11, role: control-plane}}\n{extra}"
        ),
    )
    .unwrap();
    p
}

#[test]
fn config_images_list_follows_the_version_repository_and_cni() {
    // kubeadm's list for the default version.
    assert_eq!(
        list(&[]),
        [
            "registry.k8s.io/kube-apiserver:v1.34.2",
            "registry.k8s.io/kube-controller-manager:v1.34.2",
            "registry.k8s.io/kube-scheduler:v1.34.2",
            "registry.k8s.io/kube-proxy:v1.34.2",
            "registry.k8s.io/coredns/coredns:v1.12.1",
            "registry.k8s.io/pause:3.10.1",
            "registry.k8s.io/etcd:3.6.5-0",
        ]
    );
    // A custom repository: CoreDNS without the coredns/ path, like kubeadm.
    let l = list(&[
        "--image-repository",
        "mirror.local/k8s",
        "--kubernetes-version",
        "v1.31.4",
    ]);
    assert!(
        l.contains(&"mirror.local/k8s/coredns:v1.11.3".to_string()),
        "{l:?}"
    );
    assert!(
        l.contains(&"mirror.local/k8s/kube-apiserver:v1.31.4".to_string()),
        "{l:?}"
    );

    // An inventory: its version, imageRepository and flannel.
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(dir.path(), "  imageRepository: kubeboot.local/lab\n");
    let l = list(&["-f", inv.to_str().unwrap()]);
    assert_eq!(l.len(), 9, "{l:?}");
    assert_eq!(l[0], "kubeboot.local/lab/kube-apiserver:v1.33.1");
    assert!(
        l.contains(&"ghcr.io/flannel-io/flannel:v0.28.9".to_string()),
        "{l:?}"
    );
    // --image-repository wins over the inventory; cni none needs no image.
    let inv = inventory(
        dir.path(),
        "  imageRepository: kubeboot.local/lab\n  cni: {name: none}\n",
    );
    let l = list(&["-f", inv.to_str().unwrap(), "--image-repository", "r.local"]);
    assert_eq!(l.len(), 7, "{l:?}");
    assert!(l.iter().all(|i| i.starts_with("r.local/")), "{l:?}");

    // JSON names the component.
    let out = kubeboot()
        .args(["config", "images", "list", "-o", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[4]["component"], "coredns");
    // A bad repository is named with its flag.
    let out = kubeboot()
        .args([
            "config",
            "images",
            "list",
            "--image-repository",
            "https://r.local/",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("--image-repository") && err.contains("not an image repository"),
        "{err}"
    );
}

#[test]
fn image_repository_flag_reaches_the_manifests_and_wins_over_the_file() {
    let root = common::empty_root();
    let cfg = root.path().join("kubeadm.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.33.2\nimageRepository: file.local/x\n",
    )
    .unwrap();
    let args = |phase: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["init", "phase"].iter().map(|s| s.to_string()).collect();
        v.extend(phase.iter().map(|s| s.to_string()));
        v.extend(
            [
                "--config",
                cfg.to_str().unwrap(),
                "--image-repository",
                "kubeboot.local/lab",
                "--apiserver-advertise-address",
                "10.0.0.1",
                "--node-name",
                "n1",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        v
    };
    for phase in [&["control-plane", "all"][..], &["etcd", "local"]] {
        let a = args(phase);
        common::ok(
            root.path(),
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    let m = root.path().join("etc/kubernetes/manifests");
    for (file, image) in [
        (
            "kube-apiserver.yaml",
            "kubeboot.local/lab/kube-apiserver:v1.33.2",
        ),
        (
            "kube-controller-manager.yaml",
            "kubeboot.local/lab/kube-controller-manager:v1.33.2",
        ),
        (
            "kube-scheduler.yaml",
            "kubeboot.local/lab/kube-scheduler:v1.33.2",
        ),
        ("etcd.yaml", "kubeboot.local/lab/etcd:3.5.24-0"),
    ] {
        let text = std::fs::read_to_string(m.join(file)).unwrap();
        assert!(
            text.contains(&format!("image: {image}\n")),
            "{file}:\n{text}"
        );
        assert!(!text.contains("file.local"), "{file}");
    }
    // Without the flag, the file's repository.
    common::ok(
        root.path(),
        &[
            "init",
            "phase",
            "control-plane",
            "scheduler",
            "--config",
            cfg.to_str().unwrap(),
            "--apiserver-advertise-address",
            "10.0.0.1",
            "--node-name",
            "n1",
        ],
    );
    let text = std::fs::read_to_string(m.join("kube-scheduler.yaml")).unwrap();
    assert!(
        text.contains("image: file.local/x/kube-scheduler:v1.33.2\n"),
        "{text}"
    );
}

#[test]
fn pull_reports_each_image_and_fails_fast_on_an_unroutable_repository() {
    let cd = Containerd::start();
    cd.import_tiny_image("127.0.0.1:1/x/pause:3.10.1");
    let t0 = Instant::now();
    let out = cd.kubeboot(&[
        "config",
        "images",
        "pull",
        "--image-repository",
        "127.0.0.1:1/x",
    ]);
    let took = t0.elapsed();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(
        stdout.contains("[config/images] Already present 127.0.0.1:1/x/pause:3.10.1"),
        "{stdout}"
    );
    for image in [
        "kube-apiserver:v1.34.2",
        "kube-controller-manager:v1.34.2",
        "kube-scheduler:v1.34.2",
        "kube-proxy:v1.34.2",
        "coredns:v1.12.1",
        "etcd:3.6.5-0",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("127.0.0.1:1/x/{image}")))
            .unwrap_or_else(|| panic!("no line for {image}:\n{stdout}"));
        assert!(line.starts_with("[config/images] FAILED "), "{line}");
        assert!(line.contains("connection refused"), "{line}");
    }
    assert!(
        stderr.contains("6 of 7 images could not be pulled"),
        "{stderr}"
    );
    // Nothing was added to containerd.
    let ls = cd.ctr(&["images", "ls", "-q"]);
    assert_eq!(
        String::from_utf8_lossy(&ls.stdout).trim(),
        "127.0.0.1:1/x/pause:3.10.1"
    );
    // A containerd that does not answer is said so, not reported per image.
    let out = kubeboot()
        .env(
            "KUBEBOOT_CONTAINERD_ADDRESS",
            cd.dir.path().join("nothing.sock"),
        )
        .args(["config", "images", "pull"])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("containerd is not running"), "{err}");
}

#[test]
fn preflight_names_the_missing_images_and_not_the_imported_one() {
    let cd = Containerd::start();
    cd.import_tiny_image("127.0.0.1:1/x/pause:3.10.1");
    let root = common::empty_root();
    let base = [
        "--root",
        root.path().to_str().unwrap(),
        "init",
        "phase",
        "preflight",
        "--image-repository",
        "127.0.0.1:1/x",
        "--apiserver-advertise-address",
        "10.0.0.1",
        "--node-name",
        "n1",
    ];
    let t0 = Instant::now();
    let out = cd.kubeboot(&base);
    let (stdout, err) = text(&out);
    assert!(!out.status.success());
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert!(
        stdout.contains("[preflight] Pulling 6 images missing from containerd"),
        "{stdout}"
    );
    let line = err
        .lines()
        .find(|l| l.contains("[ERROR ImagePull]"))
        .unwrap_or_else(|| panic!("no ImagePull error:\n{err}"));
    assert!(
        line.contains(
            "6 images are missing from containerd (namespace k8s.io) and could not be pulled"
        ),
        "{line}"
    );
    for image in [
        "kube-apiserver:v1.34.2",
        "kube-proxy:v1.34.2",
        "coredns:v1.12.1",
        "etcd:3.6.5-0",
    ] {
        assert!(
            line.contains(&format!("127.0.0.1:1/x/{image}")),
            "{image}: {line}"
        );
    }
    assert!(
        !line.contains("pause"),
        "the imported image is present: {line}"
    );
    assert!(line.contains("connection refused"), "{line}");
    assert!(
        line.contains("kubeboot prepare --image-archive FILE#sha256:HEX"),
        "{line}"
    );
    assert!(line.contains("kubeboot config images pull"), "{line}");

    // kubeadm's name ignores it (and nothing is pulled then).
    let mut ignore = base.to_vec();
    ignore.extend(["--ignore-preflight-errors", "ImagePull"]);
    let out = cd.kubeboot(&ignore);
    let (stdout, err) = text(&out);
    assert!(
        stdout.contains("[preflight] IGNORED ImagePull: 6 images are missing"),
        "{stdout}"
    );
    assert!(!stdout.contains("Pulling"), "{stdout}");
    assert!(!err.contains("ImagePull"), "{err}");

    // No containerd on the socket: the finding says so.
    let out = kubeboot()
        .env(
            "KUBEBOOT_CONTAINERD_ADDRESS",
            cd.dir.path().join("nothing.sock"),
        )
        .args(base)
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(
        err.contains("[ERROR ImagePull]: cannot list containerd's images: no containerd socket"),
        "{err}"
    );

    // No ctr (nor crictl) on the PATH: containerd is not installed.
    let bin = tempfile::tempdir().unwrap();
    for tool in [
        "sh",
        "id",
        "nproc",
        "awk",
        "tail",
        "wc",
        "cat",
        "systemctl",
        "sed",
        "tr",
        "cut",
    ] {
        if let Some(p) = which(tool) {
            std::os::unix::fs::symlink(p, bin.path().join(tool)).unwrap();
        }
    }
    let out = kubeboot()
        .env("PATH", bin.path())
        .args(base)
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(
        err.contains("[ERROR ImagePull]: containerd is not installed"),
        "{err}"
    );
}

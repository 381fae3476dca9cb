//! The Vagrant lab under `vagrant/`: the Vagrantfile passes Vagrant's own validation for
//! several worker counts and rejects bad settings, it defines exactly the machines and
//! addresses that `cluster-yaml.sh` writes into the inventory, and `cluster-yaml.sh` turns
//! `vagrant ssh-config` output (VirtualBox and libvirt style) into a kubeboot inventory
//! that names the private addresses, not the NAT ones.
//!
//! No VM runs here (no box can be downloaded): `vagrant validate --ignore-provider` is the
//! strongest check Vagrant offers without one. ssh-keyscan is replaced by a stand-in script
//! on PATH; the subnet used with it is a loopback one, so even the real ssh-keyscan could
//! only reach this machine.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every variable nodes.rb reads: cleared so the developer's environment cannot leak in.
const LAB_VARS: &[&str] = &[
    "KUBEBOOT_WORKERS",
    "KUBEBOOT_SUBNET",
    "KUBEBOOT_BOX",
    "KUBEBOOT_CP_CPUS",
    "KUBEBOOT_CP_MEMORY",
    "KUBEBOOT_WORKER_CPUS",
    "KUBEBOOT_WORKER_MEMORY",
    "KUBEBOOT_IFACE",
    "KUBEBOOT_SSH_PUBKEY",
    "KUBEBOOT_RUBY",
];

/// `vagrant ssh-config` of a 3-machine VirtualBox lab, as Vagrant 2.3.4's template
/// (templates/commands/ssh_config/config.erb) prints it: HostName is 127.0.0.1 and Port a
/// NAT forward. worker2 carries the two extra lines newer Vagrant releases add.
const SSH_CONFIG_VIRTUALBOX: &str = "\
Host cp1
  HostName 127.0.0.1
  User vagrant
  Port 2222
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /home/ada/kubeboot/vagrant/.vagrant/machines/cp1/virtualbox/private_key
  IdentitiesOnly yes
  LogLevel FATAL

Host worker1
  HostName 127.0.0.1
  User vagrant
  Port 2200
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /home/ada/kubeboot/vagrant/.vagrant/machines/worker1/virtualbox/private_key
  IdentitiesOnly yes
  LogLevel FATAL

Host worker2
  HostName 127.0.0.1
  User vagrant
  Port 2201
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /home/ada/kubeboot/vagrant/.vagrant/machines/worker2/virtualbox/private_key
  IdentitiesOnly yes
  LogLevel FATAL
  PubkeyAcceptedKeyTypes +ssh-rsa
  HostKeyAlgorithms +ssh-rsa

";

/// The same lab under vagrant-libvirt: HostName is each VM's address on libvirt's
/// management network, Port the guest's sshd. The project path has a space, so Vagrant
/// quotes IdentityFile.
const SSH_CONFIG_LIBVIRT: &str = "\
Host cp1
  HostName 192.168.121.57
  User vagrant
  Port 22
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile \"/home/ada/My Labs/kubeboot/vagrant/.vagrant/machines/cp1/libvirt/private_key\"
  IdentitiesOnly yes
  LogLevel FATAL

Host worker1
  HostName 192.168.121.203
  User vagrant
  Port 22
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile \"/home/ada/My Labs/kubeboot/vagrant/.vagrant/machines/worker1/libvirt/private_key\"
  IdentitiesOnly yes
  LogLevel FATAL

Host worker2
  HostName 192.168.121.144
  User vagrant
  Port 22
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile \"/home/ada/My Labs/kubeboot/vagrant/.vagrant/machines/worker2/libvirt/private_key\"
  IdentitiesOnly yes
  LogLevel FATAL

";

/// Loads the Vagrantfile under a stand-in `Vagrant.configure` that records every setting
/// into a tree and prints it as JSON: what the Vagrantfile asks Vagrant for, machine by
/// machine, without Vagrant.
const RECORDER_RB: &str = r#"
require "json"
class Recorder
  def initialize(tree) = @tree = tree
  def respond_to_missing?(*) = true
  def method_missing(name, *args, **opts, &block)
    name = name.to_s
    if name.end_with?("=")
      @tree[name.chomp("=")] = args.first
      nil
    elsif block
      child = { "options" => opts.transform_keys(&:to_s) }
      (@tree[name] ||= {})[args.first.to_s] = child
      block.call(Recorder.new(child))
    elsif args.empty? && opts.empty?
      Recorder.new(@tree[name] ||= {})
    else
      (@tree[name] ||= []) << { "args" => args.map(&:to_s), "options" => opts.transform_keys(&:to_s) }
      nil
    end
  end
end
module Vagrant
  ROOT = {}
  def self.configure(version)
    ROOT["version"] = version
    yield Recorder.new(ROOT)
  end
end
load ARGV.fetch(0)
puts JSON.generate(Vagrant::ROOT)
"#;

fn vagrant_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vagrant")
}

/// A program from PATH; fails the test (never skips) with how to install it.
fn program(name: &str, install: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{name} is needed by this test: {install}"))
}

fn vagrant() -> PathBuf {
    program("vagrant", "apt-get install vagrant")
}

fn ruby() -> PathBuf {
    program("ruby", "apt-get install vagrant (ruby comes with it)")
}

/// A command with the lab variables cleared and `vars` set.
fn command(program: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(program);
    for v in LAB_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// `vagrant validate --ignore-provider` in vagrant/, with Vagrant's state in `tmp` so the
/// test neither writes into the source tree nor shares ~/.vagrant.d with a parallel run.
fn validate(tmp: &Path, vars: &[(&str, &str)]) -> Output {
    command(&vagrant(), vars)
        .arg("validate")
        .arg("--ignore-provider")
        .current_dir(vagrant_dir())
        .env("VAGRANT_HOME", tmp.join("vagrant.d"))
        .env("VAGRANT_DOTFILE_PATH", tmp.join("dotfile"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("run vagrant")
}

/// `vagrant validate` with `provider` as the default provider, so the provider validates
/// its own block too. libvirt: the real vagrant-libvirt plugin (it validates without a
/// libvirt daemon). VirtualBox is not in Debian 12: a stand-in `VBoxManage` on PATH
/// answers `--version` only, which is all Vagrant asks before validating.
fn validate_with_provider(tmp: &Path, provider: &str, vars: &[(&str, &str)]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let vboxmanage = bin.join("VBoxManage");
    std::fs::write(
        &vboxmanage,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$1\" = --version ] && echo 7.0.20r163906\n",
            tmp.join("vboxmanage.log").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&vboxmanage, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    command(&vagrant(), vars)
        .arg("validate")
        .current_dir(vagrant_dir())
        .env("PATH", path)
        .env("VAGRANT_DEFAULT_PROVIDER", provider)
        .env("VAGRANT_HOME", tmp.join("vagrant.d"))
        .env("VAGRANT_DOTFILE_PATH", tmp.join("dotfile"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("run vagrant")
}

/// Runs cluster-yaml.sh with `stdin` as the ssh-config input and `args` after it.
fn cluster_yaml(vars: &[(&str, &str)], args: &[&str], stdin: &str, path: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = command(Path::new("bash"), vars);
    cmd.arg(vagrant_dir().join("cluster-yaml.sh"))
        .arg("--ssh-config")
        .arg("-")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let mut child = cmd.spawn().expect("run cluster-yaml.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Parses the inventory YAML: kubeboot's own `Cluster` parser must accept it (schema,
/// unknown fields, values), and the raw tree is returned for field-by-field checks.
fn parse(yaml: &str) -> Value {
    let cluster =
        kubeboot::config::cluster::Cluster::parse(std::path::Path::new("cluster.yaml"), yaml)
            .unwrap_or_else(|e| panic!("kubeboot rejects the inventory: {e}\n{yaml}"));
    assert!(cluster.cni.iface.is_some(), "flannel's iface is set");
    assert!(
        cluster.hosts.iter().all(|h| h.node_ip.is_some()),
        "every host has a nodeIP"
    );
    serde_saphyr::from_str::<Value>(yaml)
        .unwrap_or_else(|e| panic!("inventory is not valid YAML: {e}\n{yaml}"))
}

fn inventory_ok(vars: &[(&str, &str)], args: &[&str], ssh_config: &str) -> Value {
    let out = cluster_yaml(vars, args, ssh_config, None);
    assert!(
        out.status.success(),
        "cluster-yaml.sh failed: {}",
        show(&out)
    );
    parse(&text(&out.stdout))
}

fn hosts(inv: &Value) -> &Vec<Value> {
    inv["spec"]["hosts"]
        .as_array()
        .expect("spec.hosts is a list")
}

/// (name, address, role, nodeIP) of every host, in order.
fn host_rows(inv: &Value) -> Vec<(String, String, String, String)> {
    hosts(inv)
        .iter()
        .map(|h| {
            let s = |k: &str| {
                h[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {h}"))
                    .to_string()
            };
            (s("name"), s("address"), s("role"), s("nodeIP"))
        })
        .collect()
}

fn row(name: &str, ip: &str, role: &str) -> (String, String, String, String) {
    (name.into(), ip.into(), role.into(), ip.into())
}

/// The parts of the inventory that do not depend on the provider.
fn check_common(inv: &Value) {
    assert_eq!(inv["apiVersion"], "kubeboot.io/v1alpha1", "{inv}");
    assert_eq!(inv["kind"], "Cluster");
    assert_eq!(inv["metadata"]["name"], "vagrant");
    assert_eq!(inv["spec"]["kubernetesVersion"], "v1.34.2");
    assert_eq!(inv["spec"]["networking"]["podSubnet"], "10.244.0.0/16");
    assert_eq!(inv["spec"]["networking"]["serviceSubnet"], "10.96.0.0/12");
    assert_eq!(inv["spec"]["cni"]["name"], "flannel");
    assert_eq!(inv["spec"]["cni"]["iface"], "eth1");
    assert_eq!(inv["spec"]["ssh"]["user"], "vagrant");
    assert_eq!(inv["spec"]["ssh"]["port"], 22);
    assert_eq!(
        inv["spec"]["ssh"]["knownHostsPath"],
        vagrant_dir().join("known_hosts").display().to_string()
    );
    for h in hosts(inv) {
        let addr = h["address"].as_str().unwrap();
        assert!(
            !addr.starts_with("127.") && addr != "10.0.2.15" && !addr.starts_with("192.168.121."),
            "address {addr} is a NAT or management address, not the private one"
        );
        assert!(
            h["ssh"].get("port").is_none(),
            "no per-host port expected: {h}"
        );
        assert!(
            h["ssh"].get("user").is_none(),
            "no per-host user expected: {h}"
        );
    }
}

#[test]
fn vagrant_validate_accepts_one_and_three_workers() {
    for (workers, machines) in [
        ("1", &["cp1", "worker1"][..]),
        ("3", &["cp1", "worker1", "worker2", "worker3"][..]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = validate(tmp.path(), &[("KUBEBOOT_WORKERS", workers)]);
        assert!(
            out.status.success(),
            "KUBEBOOT_WORKERS={workers}: {}",
            show(&out)
        );
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("Vagrantfile validated successfully"),
            "{stdout}"
        );
        // Vagrant names each machine it validated: exactly the expected ones.
        let seen: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("==> ")?.split(':').next())
            .collect();
        assert_eq!(seen, machines, "KUBEBOOT_WORKERS={workers}: {stdout}");
    }
}

#[test]
fn libvirt_and_virtualbox_validate_their_provider_blocks() {
    for provider in ["libvirt", "virtualbox"] {
        for workers in ["1", "3"] {
            let tmp = tempfile::tempdir().unwrap();
            let out =
                validate_with_provider(tmp.path(), provider, &[("KUBEBOOT_WORKERS", workers)]);
            let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
            if provider == "libvirt" && all.contains("provider 'libvirt' could not be found") {
                panic!(
                    "the libvirt provider is needed by this test: apt-get install vagrant-libvirt\n{}",
                    show(&out)
                );
            }
            assert!(
                out.status.success(),
                "{provider}, KUBEBOOT_WORKERS={workers}: {}",
                show(&out)
            );
            assert!(all.contains("Vagrantfile validated successfully"), "{all}");
            if provider == "virtualbox" {
                let log = std::fs::read_to_string(tmp.path().join("vboxmanage.log"))
                    .expect("Vagrant asked the VBoxManage stand-in");
                assert!(
                    log.lines().all(|l| l == "--version"),
                    "Vagrant asked the stand-in more than its version: {log}"
                );
            }
        }
    }
}

#[test]
fn vagrant_validate_rejects_bad_settings() {
    for (var, value, says) in [
        ("KUBEBOOT_WORKERS", "two", "is not a whole number"),
        ("KUBEBOOT_CP_CPUS", "1", "below the minimum 2"),
        ("KUBEBOOT_CP_MEMORY", "1024", "below the minimum 1700"),
        (
            "KUBEBOOT_SUBNET",
            "10.96.0.0/24",
            "overlaps the service network",
        ),
        (
            "KUBEBOOT_SUBNET",
            "10.0.2.0/24",
            "overlaps Vagrant's NAT network",
        ),
        (
            "KUBEBOOT_SUBNET",
            "192.168.56.0/29",
            "no room for 2 workers",
        ),
        ("KUBEBOOT_SUBNET", "192.168.56.10", "is not an IPv4 CIDR"),
        ("KUBEBOOT_SSH_PUBKEY", "/nonexistent/id.pub", "no such file"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = validate(tmp.path(), &[(var, value)]);
        assert!(
            !out.status.success(),
            "{var}={value} accepted: {}",
            show(&out)
        );
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            all.contains(var) && all.contains(says),
            "{var}={value}: {all}"
        );
    }
}

/// What the Vagrantfile asks of Vagrant, per machine: (hostname, private ip, netmask,
/// virtualbox cpus/memory, libvirt cpus/memory).
fn vagrantfile_machines(vars: &[(&str, &str)]) -> (Value, BTreeMap<String, Value>) {
    let tmp = tempfile::tempdir().unwrap();
    let recorder = tmp.path().join("recorder.rb");
    std::fs::write(&recorder, RECORDER_RB).unwrap();
    let out = command(&ruby(), vars)
        .arg(&recorder)
        .arg(vagrant_dir().join("Vagrantfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loading the Vagrantfile: {}",
        show(&out)
    );
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    let defines = tree["vm"]["define"]
        .as_object()
        .expect("config.vm.define")
        .clone();
    (tree, defines.into_iter().collect())
}

#[test]
fn vagrantfile_and_inventory_name_the_same_machines_and_addresses() {
    let key = tempfile::tempdir().unwrap();
    let pubkey = key.path().join("id_ed25519.pub");
    std::fs::write(
        &pubkey,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKubeBootTestKeyOnly ada@ws\n",
    )
    .unwrap();
    let pubkey = pubkey.display().to_string();
    let vars = [
        ("KUBEBOOT_WORKERS", "3"),
        ("KUBEBOOT_SUBNET", "172.30.8.0/22"),
        ("KUBEBOOT_CP_MEMORY", "4096"),
        ("KUBEBOOT_WORKER_CPUS", "1"),
        ("KUBEBOOT_WORKER_MEMORY", "1024"),
        ("KUBEBOOT_BOX", "generic/debian12"),
        ("KUBEBOOT_SSH_PUBKEY", pubkey.as_str()),
    ];
    let (tree, machines) = vagrantfile_machines(&vars);
    assert_eq!(tree["version"], "2");
    assert_eq!(tree["vm"]["box"], "generic/debian12");
    assert_eq!(
        tree["vm"]["synced_folder"][0]["options"]["disabled"], true,
        "no shared folder: {tree}"
    );
    let provision = &tree["vm"]["provision"][0];
    assert_eq!(provision["args"][0], "kubeboot-ssh-key", "{tree}");
    assert_eq!(
        provision["options"]["args"][0],
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKubeBootTestKeyOnly ada@ws"
    );
    let script = provision["options"]["inline"].as_str().unwrap();
    assert!(script.contains("authorized_keys"), "{script}");
    assert!(
        !script.contains("kube") && !script.contains("apt"),
        "the Vagrantfile must not install Kubernetes: {script}"
    );

    let mut from_vagrantfile = Vec::new();
    for (name, m) in &machines {
        assert_eq!(m["vm"]["hostname"], name.as_str(), "{m}");
        let net = &m["vm"]["network"][0];
        assert_eq!(net["args"][0], "private_network", "{m}");
        assert_eq!(net["options"]["netmask"], "255.255.252.0", "{m}");
        let (cpus, memory) = if name == "cp1" { (2, 4096) } else { (1, 1024) };
        for provider in ["virtualbox", "libvirt"] {
            let p = &m["vm"]["provider"][provider];
            assert_eq!(p["cpus"], cpus, "{name} {provider}: {m}");
            assert_eq!(p["memory"], memory, "{name} {provider}: {m}");
        }
        from_vagrantfile.push((
            name.clone(),
            net["options"]["ip"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(machines["cp1"]["options"]["primary"], true);

    let four = format!(
        "{SSH_CONFIG_VIRTUALBOX}Host worker3\n  HostName 127.0.0.1\n  User vagrant\n  Port 2202\n  \
         IdentityFile /home/ada/kubeboot/vagrant/.vagrant/machines/worker3/virtualbox/private_key\n"
    );
    let inv = inventory_ok(&vars, &["--no-keyscan"], &four);
    let mut from_inventory: Vec<(String, String)> = host_rows(&inv)
        .into_iter()
        .map(|(n, a, _, ip)| {
            assert_eq!(a, ip);
            (n, a)
        })
        .collect();
    from_inventory.sort();
    from_vagrantfile.sort();
    assert_eq!(from_inventory, from_vagrantfile);
    assert_eq!(
        from_inventory,
        [
            ("cp1", "172.30.8.10"),
            ("worker1", "172.30.8.11"),
            ("worker2", "172.30.8.12"),
            ("worker3", "172.30.8.13")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

#[test]
fn virtualbox_ssh_config_gives_private_addresses_and_per_vm_keys() {
    let inv = inventory_ok(&[], &["--no-keyscan"], SSH_CONFIG_VIRTUALBOX);
    check_common(&inv);
    assert_eq!(
        host_rows(&inv),
        [
            row("cp1", "192.168.56.10", "control-plane"),
            row("worker1", "192.168.56.11", "worker"),
            row("worker2", "192.168.56.12", "worker"),
        ]
    );
    let key = |m: &str| {
        format!("/home/ada/kubeboot/vagrant/.vagrant/machines/{m}/virtualbox/private_key")
    };
    assert_eq!(inv["spec"]["ssh"]["keyPath"], key("cp1"));
    let h = hosts(&inv);
    // cp1 uses spec.ssh; each worker has its own Vagrant-generated key.
    assert!(h[0]["ssh"].get("keyPath").is_none(), "{}", h[0]);
    assert_eq!(h[1]["ssh"]["keyPath"], key("worker1"));
    assert_eq!(h[2]["ssh"]["keyPath"], key("worker2"));
}

#[test]
fn libvirt_ssh_config_gives_private_addresses_not_management_ones() {
    let inv = inventory_ok(&[], &["--no-keyscan"], SSH_CONFIG_LIBVIRT);
    check_common(&inv);
    assert_eq!(
        host_rows(&inv),
        [
            row("cp1", "192.168.56.10", "control-plane"),
            row("worker1", "192.168.56.11", "worker"),
            row("worker2", "192.168.56.12", "worker"),
        ]
    );
    let key = |m: &str| {
        format!("/home/ada/My Labs/kubeboot/vagrant/.vagrant/machines/{m}/libvirt/private_key")
    };
    assert_eq!(inv["spec"]["ssh"]["keyPath"], key("cp1"));
    assert_eq!(hosts(&inv)[2]["ssh"]["keyPath"], key("worker2"));
}

#[test]
fn per_host_user_port_and_key_only_where_they_differ() {
    // One shared key (config.ssh.insert_key = false), worker1 logs in as another user, and
    // worker2's guest sshd listens on 2022 (HostName is the guest itself, as with libvirt).
    let cfg = "\
Host cp1
  HostName 192.168.121.10
  User vagrant
  Port 22
  IdentityFile /root/.vagrant.d/insecure_private_key
  IdentityFile /root/.vagrant.d/insecure_private_keys/vagrant.key.ed25519
Host worker1
  HostName 192.168.121.11
  User debian
  Port 22
  IdentityFile /root/.vagrant.d/insecure_private_key
Host worker2
  hostname 192.168.121.12
  user vagrant
  port 2022
  identityfile /root/.vagrant.d/insecure_private_key
";
    let inv = inventory_ok(&[], &["--no-keyscan"], cfg);
    assert_eq!(
        inv["spec"]["ssh"]["keyPath"],
        "/root/.vagrant.d/insecure_private_key"
    );
    let h = hosts(&inv);
    assert!(
        h[0]["ssh"].get("user").is_none() && h[0]["ssh"].get("port").is_none(),
        "{}",
        h[0]
    );
    assert_eq!(h[1]["ssh"]["user"], "debian");
    assert!(h[1]["ssh"].get("port").is_none(), "{}", h[1]);
    assert_eq!(h[2]["ssh"]["port"], 2022);
    assert!(h[2]["ssh"].get("user").is_none(), "{}", h[2]);
    for x in h {
        assert!(x["ssh"].get("keyPath").is_none(), "one key for all: {x}");
    }

    // --key replaces Vagrant's keys everywhere; other options reach the document.
    let inv = inventory_ok(
        &[("KUBEBOOT_IFACE", "enp0s8")],
        &[
            "--no-keyscan",
            "--key",
            "/home/ada/.ssh/id_ed25519",
            "--known-hosts",
            "/tmp/kh",
            "--name",
            "lab2",
            "--kubernetes-version",
            "v1.33.5",
        ],
        SSH_CONFIG_VIRTUALBOX,
    );
    assert_eq!(inv["spec"]["ssh"]["keyPath"], "/home/ada/.ssh/id_ed25519");
    assert_eq!(inv["spec"]["ssh"]["knownHostsPath"], "/tmp/kh");
    assert_eq!(inv["metadata"]["name"], "lab2");
    assert_eq!(inv["spec"]["kubernetesVersion"], "v1.33.5");
    assert_eq!(inv["spec"]["cni"]["iface"], "enp0s8");
    for x in hosts(&inv) {
        assert!(x["ssh"].get("keyPath").is_none(), "--key for all: {x}");
    }
}

#[test]
fn worker_count_must_match_the_running_machines() {
    // The lab was brought up with 2 workers; the inventory is asked for with 3.
    let out = cluster_yaml(
        &[("KUBEBOOT_WORKERS", "3")],
        &["--no-keyscan"],
        SSH_CONFIG_VIRTUALBOX,
        None,
    );
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("no Host worker3"),
        "{}",
        show(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "no inventory on failure: {}",
        show(&out)
    );

    // ... and with 1.
    let out = cluster_yaml(
        &[("KUBEBOOT_WORKERS", "1")],
        &["--no-keyscan"],
        SSH_CONFIG_VIRTUALBOX,
        None,
    );
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("Host worker2, which nodes.rb does not define"),
        "{}",
        show(&out)
    );

    // Bad settings are reported by nodes.rb, as for vagrant up.
    let out = cluster_yaml(
        &[("KUBEBOOT_WORKERS", "-1")],
        &["--no-keyscan"],
        SSH_CONFIG_VIRTUALBOX,
        None,
    );
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("KUBEBOOT_WORKERS=-1 is below the minimum 0"),
        "{}",
        show(&out)
    );

    // Not ssh-config at all.
    let out = cluster_yaml(&[], &["--no-keyscan"], "hello\n", None);
    assert!(!out.status.success(), "{}", show(&out));
}

/// A stand-in ssh-keyscan that logs its arguments and answers with a fixed key per
/// address, except for the addresses listed in `silent`.
fn fake_keyscan(dir: &Path, silent: &str) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\n\
         echo \"$@\" >> '{log}'\n\
         for a; do last=$a; done\n\
         case \" {silent} \" in *\" $last \"*) exit 1 ;; esac\n\
         echo \"# $last:22 SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\"\n\
         echo \"$last ssh-ed25519 AAAAkey-of-$last\"\n",
        log = dir.join("keyscan.log").display(),
    );
    let path = bin.join("ssh-keyscan");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

#[test]
fn keyscan_fills_known_hosts_with_a_trust_on_first_use_note() {
    let tmp = tempfile::tempdir().unwrap();
    let path = fake_keyscan(tmp.path(), "");
    let kh = tmp.path().join("known_hosts");
    let kh_arg = kh.display().to_string();
    // A loopback subnet: nothing outside this machine can be reached, whatever runs.
    let vars = [("KUBEBOOT_SUBNET", "127.0.10.0/24")];
    let out = cluster_yaml(
        &vars,
        &["--known-hosts", &kh_arg],
        SSH_CONFIG_LIBVIRT,
        Some(&path),
    );
    assert!(out.status.success(), "{}", show(&out));
    let inv = parse(&text(&out.stdout));
    assert_eq!(inv["spec"]["ssh"]["knownHostsPath"], kh_arg);
    let yaml = text(&out.stdout);
    assert!(
        yaml.contains("trust on first use"),
        "note in the inventory: {yaml}"
    );
    assert!(
        text(&out.stderr).contains("trust on first use"),
        "{}",
        show(&out)
    );

    let known = std::fs::read_to_string(&kh).unwrap();
    assert!(
        known.starts_with("# kubeboot Vagrant lab known_hosts"),
        "{known}"
    );
    assert!(known.contains("trust on first use"), "{known}");
    let keys: Vec<&str> = known.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        keys,
        [
            "127.0.10.10 ssh-ed25519 AAAAkey-of-127.0.10.10",
            "127.0.10.11 ssh-ed25519 AAAAkey-of-127.0.10.11",
            "127.0.10.12 ssh-ed25519 AAAAkey-of-127.0.10.12",
        ]
    );
    // Scanned: the private addresses on the guest's sshd port, never the management ones.
    let log = std::fs::read_to_string(tmp.path().join("keyscan.log")).unwrap();
    let calls: Vec<&str> = log.lines().collect();
    assert_eq!(
        calls,
        [
            "-T 5 -p 22 127.0.10.10",
            "-T 5 -p 22 127.0.10.11",
            "-T 5 -p 22 127.0.10.12"
        ]
    );

    // A host that does not answer: the run fails and known_hosts stays as it was.
    std::fs::write(&kh, "old\n").unwrap();
    let path = fake_keyscan(tmp.path(), "127.0.10.11");
    let out = cluster_yaml(
        &vars,
        &["--known-hosts", &kh_arg],
        SSH_CONFIG_LIBVIRT,
        Some(&path),
    );
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("no host key from worker1 at 127.0.10.11"),
        "{}",
        show(&out)
    );
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), "old\n");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("known_hosts."))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn output_flag_writes_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cluster.yaml");
    let out = cluster_yaml(
        &[("KUBEBOOT_WORKERS", "2")],
        &["--no-keyscan", "-o", &file.display().to_string()],
        SSH_CONFIG_VIRTUALBOX,
        None,
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(out.stdout.is_empty());
    let inv = parse(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(hosts(&inv).len(), 3);
}

//! Bad input, one table: every kind of input kubeboot reads (kubeadm config files, the
//! cluster inventory, playbooks, flags, bootstrap tokens, CA hashes, certificate keys,
//! kubeconfigs, image archives, known_hosts) given wrong, to the real binary.
//!
//! Each case states the exit status and the words the message must hold: the field path
//! as the user wrote it and what is expected there. Every case also checks that
//! - nothing was written: the case runs in a fresh directory holding its input files,
//!   the `--root` (so the cert dir and kubeconfig dir), `$HOME` (~/.kube, ~/.ssh) and any
//!   output directory, and the whole tree is the same after the run as before;
//! - the message speaks the user's language: no Rust type names, no panic, no backtrace.
//!
//! Host-key cases talk to a real OpenSSH sshd on loopback (`tests/sshd_support`).
//!
//! A file whose name starts with `/` is the node's and is written under `--root`. In
//! `files` and `args`, `{in}` is the case's input directory, `{port}` the sshd port,
//! `{key}` the client key sshd trusts, `{hostkey}` sshd's host public key and `{otherkey}`
//! another public key.

mod common;
mod sshd_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One bad input and what kubeboot must answer.
struct Case {
    name: &'static str,
    /// Files written under `{in}` before the run: (relative path, text).
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    /// Expected exit status: 2 for command-line syntax (clap), 1 for everything else.
    status: i32,
    /// Words the message must contain (field path, what is expected, ...).
    words: &'static [&'static str],
}

const fn c(
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    status: i32,
    words: &'static [&'static str],
) -> Case {
    Case {
        name,
        files,
        args,
        status,
        words,
    }
}

/// A kubeadm `InitConfiguration` document with `$body` after the type header.
macro_rules! init {
    ($body:literal) => {
        concat!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n",
            $body
        )
    };
}
/// A kubeadm `ClusterConfiguration` document.
macro_rules! cluster {
    ($body:literal) => {
        concat!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n",
            $body
        )
    };
}
/// A kubeadm `JoinConfiguration` document.
macro_rules! join {
    ($body:literal) => {
        concat!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n",
            $body
        )
    };
}
/// A kubeboot inventory whose `spec` holds `$spec` (indented by two).
macro_rules! inv {
    ($($spec:tt)*) => {
        concat!(
            "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nmetadata: {name: t}\nspec:\n",
            $($spec)*
        )
    };
}
/// An inventory with one control plane at 127.0.0.1 (port 1: nothing listens, so a run
/// that got past validation fails at once) plus `$spec`.
macro_rules! inv1 {
    ($spec:literal) => {
        inv!(concat!(
            "  ssh: {port: 1, knownHostsPath: known_hosts}\n  hosts:\n    - {name: cp1, address: 127.0.0.1, role: control-plane}\n",
            $spec
        ))
    };
}
/// A `prepare-node` playbook with `$steps` under `steps:`.
macro_rules! playbook {
    ($steps:literal) => {
        concat!("name: prepare-node\nsteps:\n", $steps)
    };
}

const V: &[&str] = &["config", "validate", "--config", "{in}/c.yaml"];
const IMG: &[&str] = &["config", "images", "list", "-f", "{in}/cluster.yaml"];
const TOKEN: &str = "abcdef.0123456789abcdef";
const HASH: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// `prepare --plan` against `{in}/cluster.yaml` plus `$more` flags.
macro_rules! prep {
    ($($more:literal),*) => {
        &["prepare", "--plan", "-f", "{in}/cluster.yaml", "--no-agent", "--connect-timeout", "5" $(, $more)*]
    };
}
/// `prepare --plan` of `{in}/cluster.yaml` with the playbooks in `{in}/pb`.
macro_rules! prep_pb {
    () => {
        &[
            "prepare",
            "--plan",
            "-f",
            "{in}/cluster.yaml",
            "--no-agent",
            "--playbook-dir",
            "{in}/pb",
        ]
    };
}
/// `prepare --plan` against the local sshd with the client key and a known_hosts file.
macro_rules! prep_ssh {
    ($($more:literal),*) => {
        &["prepare", "--plan", "--no-agent", "--connect-timeout", "5", "-i", "{key}", "--user", "root", "--port", "{port}", "127.0.0.1" $(, $more)*]
    };
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // ---- kubeadm config files: InitConfiguration ----
    c("init bindPort a word", &[("c.yaml", init!("localAPIEndpoint:\n  bindPort: sixty\n"))], V, 1,
      &["c.yaml:4", "localAPIEndpoint.bindPort", "a port number 1-65535", "sixty"]),
    c("init bindPort too big", &[("c.yaml", init!("localAPIEndpoint:\n  bindPort: 70000\n"))], V, 1,
      &["localAPIEndpoint.bindPort", "a port number 1-65535", "70000"]),
    c("init bindPort zero", &[("c.yaml", init!("localAPIEndpoint:\n  bindPort: 0\n"))], V, 1,
      &["localAPIEndpoint.bindPort", "a port number 1-65535"]),
    c("init bindPort negative", &[("c.yaml", init!("localAPIEndpoint:\n  bindPort: -1\n"))], V, 1,
      &["localAPIEndpoint.bindPort", "a port number 1-65535"]),
    c("init bindPort flow style", &[("c.yaml", init!("localAPIEndpoint: {bindPort: x}\n"))], V, 1,
      &["localAPIEndpoint.bindPort", "a port number 1-65535"]),
    c("init advertiseAddress", &[("c.yaml", init!("localAPIEndpoint:\n  advertiseAddress: 10.0.0.300\n"))], V, 1,
      &["c.yaml:4", "localAPIEndpoint.advertiseAddress", "10.0.0.300", "not an IP address"]),
    c("init localAPIEndpoint a string", &[("c.yaml", init!("localAPIEndpoint: 10.0.0.1:6443\n"))], V, 1,
      &["c.yaml:3", "localAPIEndpoint", "expected a mapping"]),
    c("init unknown field", &[("c.yaml", init!("nodeRegistration:\n  nmae: cp1\n"))], V, 1,
      &["c.yaml:4", "nodeRegistration.nmae", "unknown field", "name"]),
    c("init unknown top-level field", &[("c.yaml", init!("bootstrapToken: []\n"))], V, 1,
      &["c.yaml:3", "bootstrapToken", "unknown field", "bootstrapTokens"]),
    c("init taints not a list", &[("c.yaml", init!("nodeRegistration:\n  taints: none\n"))], V, 1,
      &["nodeRegistration.taints", "expected a list"]),
    c("init taint effect", &[("c.yaml", init!("nodeRegistration:\n  taints:\n    - key: a\n      effect: Sometimes\n"))], V, 1,
      &["c.yaml:6", "nodeRegistration.taints[0].effect", "Sometimes", "NoSchedule, PreferNoSchedule, NoExecute"]),
    c("init node name", &[("c.yaml", init!("nodeRegistration:\n  name: Bad_Name\n"))], V, 1,
      &["nodeRegistration.name", "Bad_Name", "lowercase"]),
    c("init imagePullSerial", &[("c.yaml", init!("nodeRegistration:\n  imagePullSerial: maybe\n"))], V, 1,
      &["nodeRegistration.imagePullSerial", "true or false", "maybe"]),
    c("init kubeletExtraArgs map", &[("c.yaml", init!("nodeRegistration:\n  kubeletExtraArgs:\n    v: 2\n"))], V, 1,
      &["nodeRegistration.kubeletExtraArgs", "expected a list"]),
    c("init token malformed", &[("c.yaml", init!("bootstrapTokens:\n  - token: nope\n"))], V, 1,
      &["c.yaml:4", "bootstrapTokens[0].token", "6 characters of [a-z0-9], a dot, then 16"]),
    c("init token ttl", &[("c.yaml", init!("bootstrapTokens:\n  - token: abcdef.0123456789abcdef\n    ttl: forever\n"))], V, 1,
      &["bootstrapTokens[0].ttl", "forever", "a duration such as 24h0m0s"]),
    c("init token usages", &[("c.yaml", init!("bootstrapTokens:\n  - token: abcdef.0123456789abcdef\n    usages: [launching]\n"))], V, 1,
      &["bootstrapTokens[0].usages", "launching", "signing and/or authentication"]),
    c("init timeouts duration", &[("c.yaml", init!("timeouts:\n  kubeletHealthCheck: 5 minutes\n"))], V, 1,
      &["timeouts.kubeletHealthCheck", "a duration such as 24h0m0s"]),
    c("init dryRun", &[("c.yaml", init!("dryRun: perhaps\n"))], V, 1,
      &["dryRun", "true or false", "perhaps"]),
    c("init not YAML", &[("c.yaml", init!("localAPIEndpoint: [\n"))], V, 1,
      &["c.yaml:", "invalid YAML"]),
    c("init by init --config", &[("c.yaml", init!("localAPIEndpoint:\n  bindPort: sixty\n"))], &["init", "--config", "{in}/c.yaml"], 1,
      &["localAPIEndpoint.bindPort", "a port number 1-65535"]),
    c("init by init phase certs", &[("c.yaml", init!("localAPIEndpoint:\n  advertiseAddress: nowhere\n"))], &["init", "phase", "certs", "all", "--config", "{in}/c.yaml"], 1,
      &["localAPIEndpoint.advertiseAddress", "not an IP address"]),
    c("init by init phase kubeconfig", &[("c.yaml", init!("nodeRegistration:\n  criSocket: [a]\n"))], &["init", "phase", "kubeconfig", "all", "--config", "{in}/c.yaml"], 1,
      &["nodeRegistration.criSocket", "expected a single value"]),
    c("init by render", &[("c.yaml", init!("localAPIEndpoint:\n  bindPort: sixty\n"))], &["render", "--config", "{in}/c.yaml", "--output-dir", "{in}/out"], 1,
      &["localAPIEndpoint.bindPort", "a port number 1-65535"]),
    // ---- ClusterConfiguration ----
    c("cluster podSubnet prefix", &[("c.yaml", cluster!("networking:\n  podSubnet: 10.244.0.0/33\n"))], V, 1,
      &["c.yaml:4", "networking.podSubnet", "10.244.0.0/33", "address/prefix"]),
    c("cluster serviceSubnet word", &[("c.yaml", cluster!("networking:\n  serviceSubnet: services\n"))], V, 1,
      &["networking.serviceSubnet", "address/prefix"]),
    c("cluster subnets overlap", &[("c.yaml", cluster!("networking:\n  podSubnet: 10.96.0.0/16\n  serviceSubnet: 10.96.0.0/12\n"))], V, 1,
      &["networking.podSubnet", "overlaps"]),
    c("cluster networking typo", &[("c.yaml", cluster!("networking:\n  podSubnett: 10.244.0.0/16\n"))], V, 1,
      &["c.yaml:4", "networking.podSubnett", "unknown field", "podSubnet"]),
    c("cluster dnsDomain", &[("c.yaml", cluster!("networking:\n  dnsDomain: Cluster_Local\n"))], V, 1,
      &["networking.dnsDomain", "Cluster_Local"]),
    c("cluster version old", &[("c.yaml", cluster!("kubernetesVersion: v1.12.0\n"))], V, 1,
      &["c.yaml:3", "kubernetesVersion", "v1.12.0", "supported versions: v1.31.x"]),
    c("cluster version label", &[("c.yaml", cluster!("kubernetesVersion: stable\n"))], V, 1,
      &["kubernetesVersion", "give one like v1.34.2"]),
    c("cluster version number", &[("c.yaml", cluster!("kubernetesVersion: 1.34\n"))], V, 1,
      &["kubernetesVersion", "give one like v1.34.2"]),
    c("cluster controlPlaneEndpoint", &[("c.yaml", cluster!("controlPlaneEndpoint: a:b:c:d\n"))], V, 1,
      &["controlPlaneEndpoint", "host:port"]),
    c("cluster controlPlaneEndpoint port", &[("c.yaml", cluster!("controlPlaneEndpoint: cp.example.com:99999\n"))], V, 1,
      &["controlPlaneEndpoint", "99999"]),
    c("cluster certSANs", &[("c.yaml", cluster!("apiServer:\n  certSANs: [\"not a name\"]\n"))], V, 1,
      &["apiServer.certSANs", "not a name"]),
    c("cluster certSANs mapping", &[("c.yaml", cluster!("apiServer:\n  certSANs: {a: b}\n"))], V, 1,
      &["apiServer.certSANs", "expected a list"]),
    c("cluster extraArgs dashes", &[("c.yaml", cluster!("apiServer:\n  extraArgs:\n    - {name: --v, value: \"2\"}\n"))], V, 1,
      &["apiServer.extraArgs", "--v", "without leading dashes"]),
    c("cluster extraArgs value list", &[("c.yaml", cluster!("apiServer:\n  extraArgs:\n    - name: v\n      value: [2]\n"))], V, 1,
      &["c.yaml:6", "apiServer.extraArgs[0].value", "expected a single value"]),
    c("cluster extraArgs missing name", &[("c.yaml", cluster!("apiServer:\n  extraArgs:\n    - value: \"2\"\n"))], V, 1,
      &["apiServer.extraArgs[0].name", "missing"]),
    c("cluster certificateValidityPeriod", &[("c.yaml", cluster!("certificateValidityPeriod: 10 days\n"))], V, 1,
      &["certificateValidityPeriod", "a duration such as 24h0m0s"]),
    c("cluster encryptionAlgorithm", &[("c.yaml", cluster!("encryptionAlgorithm: DSA-1024\n"))], V, 1,
      &["encryptionAlgorithm", "DSA-1024", "RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384"]),
    c("cluster imageRepository", &[("c.yaml", cluster!("imageRepository: https://registry.example.com/\n"))], V, 1,
      &["imageRepository", "no scheme, no trailing slash"]),
    c("cluster etcd local and external", &[("c.yaml", cluster!("etcd:\n  local: {dataDir: /var/lib/etcd}\n  external: {endpoints: [\"https://10.0.0.1:2379\"]}\n"))], V, 1,
      &["etcd"]),
    c("cluster etcd extraArgs", &[("c.yaml", cluster!("etcd:\n  local:\n    extraArgs: {quota-backend-bytes: 1}\n"))], V, 1,
      &["etcd.local.extraArgs", "expected a list"]),
    c("cluster featureGates", &[("c.yaml", cluster!("featureGates:\n  SomeGate: enabled\n"))], V, 1,
      &["featureGates.SomeGate", "true or false", "enabled"]),
    c("cluster dns disabled", &[("c.yaml", cluster!("dns:\n  disabled: no way\n"))], V, 1,
      &["dns.disabled", "true or false"]),
    c("cluster by images list", &[("c.yaml", cluster!("networking:\n  podSubnet: 10.244.0.0/33\n"))], &["config", "images", "list", "--config", "{in}/c.yaml"], 1,
      &["networking.podSubnet", "address/prefix"]),
    // ---- documents and kinds ----
    c("document v1beta3", &[("c.yaml", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n")], V, 1,
      &["c.yaml:1", "kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4 InitConfiguration"]),
    c("document reset kind", &[("c.yaml", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\n")], V, 1,
      &["c.yaml:1", "ResetConfiguration", "InitConfiguration, ClusterConfiguration and JoinConfiguration"]),
    c("document twice", &[("c.yaml", concat!(cluster!(""), "---\n", cluster!("")))], V, 1,
      &["c.yaml:4", "a second ClusterConfiguration", "at most once"]),
    c("document kind missing", &[("c.yaml", "apiVersion: kubeadm.k8s.io/v1beta4\nnetworking: {}\n")], V, 1,
      &["c.yaml:1", "kind"]),
    c("document kind a list", &[("c.yaml", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: [InitConfiguration]\n")], V, 1,
      &["c.yaml:2", "kind", "expected a single value"]),
    c("document file missing", &[], &["config", "validate", "--config", "{in}/nope.yaml"], 1,
      &["nope.yaml", "cannot read"]),
    c("reset takes no config", &[("c.yaml", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\n")], &["reset", "--force", "--config", "{in}/c.yaml"], 2,
      &["--config"]),
    // ---- JoinConfiguration ----
    c("join token malformed", &[("j.yaml", join!("discovery:\n  bootstrapToken:\n    token: nope\n    apiServerEndpoint: 10.0.0.1:6443\n    unsafeSkipCAVerification: true\n"))], &["join", "--config", "{in}/j.yaml"], 1,
      &["j.yaml:5", "discovery.bootstrapToken.token", "6 characters of [a-z0-9]"]),
    c("join caCertHashes", &[("j.yaml", join!("discovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes: [md5:00]\n"))], &["join", "--config", "{in}/j.yaml"], 1,
      &["discovery.bootstrapToken.caCertHashes", "md5:00", "sha256:<64 hex digits>"]),
    c("join caCertHashes a string", &[("j.yaml", join!("discovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes: sha256:00\n"))], &["join", "--config", "{in}/j.yaml"], 1,
      &["j.yaml:7", "discovery.bootstrapToken.caCertHashes", "expected a list"]),
    c("join unsafeSkip a word", &[("j.yaml", join!("discovery:\n  bootstrapToken:\n    unsafeSkipCAVerification: yes please\n"))], &["join", "--config", "{in}/j.yaml"], 1,
      &["discovery.bootstrapToken.unsafeSkipCAVerification", "true or false"]),
    c("join endpoint", &[("j.yaml", join!("discovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: \"10.0.0.1:port\"\n    unsafeSkipCAVerification: true\n"))], &["join", "--config", "{in}/j.yaml"], 1,
      &["discovery.bootstrapToken.apiServerEndpoint", "10.0.0.1:port"]),
    c("join controlPlane bindPort", &[("j.yaml", join!("controlPlane:\n  localAPIEndpoint:\n    bindPort: https\n"))], &["join", "--config", "{in}/j.yaml"], 1,
      &["j.yaml:5", "controlPlane.localAPIEndpoint.bindPort", "a port number 1-65535"]),
    c("join discovery typo", &[("j.yaml", join!("discovery:\n  bootstrapTokens: {}\n"))], &["join", "--config", "{in}/j.yaml"], 1,
      &["discovery.bootstrapTokens", "unknown field", "bootstrapToken"]),
    c("join timeouts", &[("j.yaml", join!("timeouts:\n  discovery: soon\n"))], &["join", "--config", "{in}/j.yaml"], 1,
      &["timeouts.discovery", "a duration such as 24h0m0s"]),
    c("join an init file", &[("j.yaml", init!(""))], &["join", "--config", "{in}/j.yaml"], 1,
      &["j.yaml", "kind", "no JoinConfiguration document"]),
    // ---- cluster inventory (cluster.yaml) ----
    c("inventory role", &[("cluster.yaml", inv!("  hosts:\n    - {name: a, address: 10.0.0.1, role: master}\n"))], IMG, 1,
      &["cluster.yaml:6", "spec.hosts[0].role", "master", "control-plane or worker"]),
    c("inventory no control plane", &[("cluster.yaml", inv!("  hosts:\n    - {name: a, address: 10.0.0.1, role: worker}\n"))], IMG, 1,
      &["spec.hosts", "no host has role control-plane"]),
    c("inventory no hosts", &[("cluster.yaml", inv!("  hosts: []\n"))], IMG, 1,
      &["spec.hosts", "at least one"]),
    c("inventory hosts a mapping", &[("cluster.yaml", inv!("  hosts: {name: a}\n"))], IMG, 1,
      &["cluster.yaml:5", "spec.hosts", "expected a list"]),
    c("inventory host twice", &[("cluster.yaml", inv!("  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n    - {name: a, address: 10.0.0.2}\n"))], IMG, 1,
      &["cluster.yaml:7", "spec.hosts[1].name", "listed twice"]),
    c("inventory host name", &[("cluster.yaml", inv!("  hosts:\n    - {name: Node_1, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.hosts[0].name", "Node_1", "lowercase"]),
    c("inventory host address missing", &[("cluster.yaml", inv!("  hosts:\n    - {name: a, role: control-plane}\n"))], IMG, 1,
      &["cluster.yaml:6", "spec.hosts[0].address", "missing"]),
    c("inventory host address empty", &[("cluster.yaml", inv!("  hosts:\n    - {name: a, address: \"\", role: control-plane}\n"))], IMG, 1,
      &["spec.hosts[0].address", "must not be empty"]),
    c("inventory host ssh port", &[("cluster.yaml", inv!("  hosts:\n    - name: a\n      address: 10.0.0.1\n      role: control-plane\n      ssh:\n        port: ssh\n"))], IMG, 1,
      &["cluster.yaml:10", "spec.hosts[0].ssh.port", "a port number 1-65535", "ssh"]),
    c("inventory host nodeIP", &[("cluster.yaml", inv!("  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane, nodeIP: 10.0.0.300}\n"))], IMG, 1,
      &["spec.hosts[0].nodeIP", "not an IP address"]),
    c("inventory host typo", &[("cluster.yaml", inv!("  hosts:\n    - {name: a, adress: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.hosts[0].adress", "unknown field", "address"]),
    c("inventory ssh port zero", &[("cluster.yaml", inv!("  ssh: {port: 0}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["cluster.yaml:5", "spec.ssh.port", "a port number 1-65535"]),
    c("inventory ssh user empty", &[("cluster.yaml", inv!("  ssh: {user: \"\"}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.ssh.user", "must not be empty"]),
    c("inventory host ssh user empty", &[("cluster.yaml", inv!("  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane, ssh: {user: \"\"}}\n"))], IMG, 1,
      &["cluster.yaml:6", "spec.hosts[0].ssh.user", "must not be empty"]),
    c("inventory ssh unknown", &[("cluster.yaml", inv!("  ssh: {password: hunter2}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.ssh.password", "unknown field", "keyPath"]),
    c("inventory bastion address", &[("cluster.yaml", inv!("  ssh: {bastion: {port: 22}}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.ssh.bastion.address", "missing"]),
    c("inventory version", &[("cluster.yaml", inv!("  kubernetesVersion: v1.28.0\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["cluster.yaml:5", "spec.kubernetesVersion", "supported versions: v1.31.x"]),
    c("inventory podSubnet", &[("cluster.yaml", inv!("  networking: {podSubnet: 10.244.0.0/33}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.networking.podSubnet", "address/prefix"]),
    c("inventory cni name", &[("cluster.yaml", inv!("  cni: {name: calico}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.cni.name", "calico", "flannel", "bridge", "none"]),
    c("inventory cni a string", &[("cluster.yaml", inv!("  cni: flannel\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["cluster.yaml:5", "spec.cni", "expected a mapping"]),
    c("inventory artifact unpinned", &[("cluster.yaml", inv!("  artifacts:\n    kubelet: {url: \"http://10.0.0.1/kubelet\"}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.artifacts.kubelet.sha256", "pinned by its sha256"]),
    c("inventory artifact name", &[("cluster.yaml", inv!("  artifacts:\n    kubeadm: {url: \"http://10.0.0.1/kubeadm\"}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.artifacts.kubeadm", "unknown field", "kubelet, kubectl"]),
    c("inventory artifact url scheme", &[("cluster.yaml", inv!("  artifacts:\n    kubelet: {url: \"ftp://10.0.0.1/kubelet\", sha256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.artifacts.kubelet.url", "http:// or https://", "path:"]),
    c("inventory imageArchives sha", &[("cluster.yaml", inv!("  imageArchives:\n    - {path: /srv/a.tar, sha256: abc}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.imageArchives[0].sha256", "abc", "64 hex digits"]),
    c("inventory imageArchives both", &[("cluster.yaml", inv!("  imageArchives:\n    - {path: /srv/a.tar, url: \"http://x/a.tar\", sha256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.imageArchives[0]", "exactly one of url or path"]),
    c("inventory imageArchives roles", &[("cluster.yaml", inv!("  imageArchives:\n    - {path: /srv/a.tar, sha256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, roles: [boss]}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.imageArchives[0].roles", "boss", "control-plane or worker"]),
    c("inventory imageArchives a path", &[("cluster.yaml", inv!("  imageArchives: /srv/a.tar\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["cluster.yaml:5", "spec.imageArchives", "expected a list"]),
    c("inventory conntrack", &[("cluster.yaml", inv!("  kubeProxy: {conntrackMaxPerCore: -5}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.kubeProxy.conntrackMaxPerCore", "a whole number", "-5"]),
    c("inventory restrictOOMScoreAdj", &[("cluster.yaml", inv!("  containerd: {restrictOOMScoreAdj: maybe}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.containerd.restrictOOMScoreAdj", "true or false", "maybe"]),
    c("inventory kubeletExtraArgs", &[("cluster.yaml", inv!("  kubeletExtraArgs: [{name: \"--v\", value: \"2\"}]\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], IMG, 1,
      &["spec.kubeletExtraArgs", "without dashes"]),
    c("inventory key twice", &[("cluster.yaml", inv!("  kubeletExtraArgs: []\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n  kubeletExtraArgs: []\n"))], IMG, 1,
      &["cluster.yaml:", "spec.kubeletExtraArgs: given twice"]),
    c("inventory kind", &[("cluster.yaml", "apiVersion: kubeboot.io/v1alpha2\nkind: Cluster\nspec: {}\n")], IMG, 1,
      &["cluster.yaml:2", "kubeboot.io/v1alpha1", "v1alpha2"]),
    c("inventory no spec", &[("cluster.yaml", "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\n")], IMG, 1,
      &["spec", "missing"]),
    c("inventory empty file", &[("cluster.yaml", "# nothing\n")], IMG, 1,
      &["cluster.yaml", "no document", "kubeboot.io/v1alpha1 Cluster"]),
    c("inventory bad indentation", &[("cluster.yaml", inv!("  hosts:\n  - name: a\n   address: x\n"))], IMG, 1,
      &["cluster.yaml:7", "invalid YAML"]),
    c("inventory by prepare", &[("cluster.yaml", inv!("  hosts:\n    - {name: a, address: 10.0.0.1, role: master}\n"))], prep!(), 1,
      &["spec.hosts[0].role", "control-plane or worker"]),
    c("inventory by up", &[("cluster.yaml", inv!("  ssh: {port: 65536}\n  hosts:\n    - {name: a, address: 10.0.0.1, role: control-plane}\n"))], &["up", "--plan", "-f", "{in}/cluster.yaml", "--no-agent"], 1,
      &["spec.ssh.port", "a port number 1-65535"]),
    // ---- playbooks (prepare --playbook-dir) ----
    c("playbook step list body", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    file: [a]\n"))], prep_pb!(), 1,
      &["prepare-node.yaml:4", "step \"a\"", "file", "expected a mapping"]),
    c("playbook file mode", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    file: {path: /etc/x, content: y, mode: rwx}\n"))], prep_pb!(), 1,
      &["file.mode", "rwx", "octal file mode like \"0644\""]),
    c("playbook service enabled", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    service: {name: x, enabled: sometimes}\n"))], prep_pb!(), 1,
      &["service.enabled", "true or false", "sometimes"]),
    c("playbook kind typo", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    pakage: {apt: [x]}\n"))], prep_pb!(), 1,
      &["pakage", "unknown step kind", "package"]),
    c("playbook steps a mapping", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", "name: prepare-node\nsteps: {a: b}\n")], prep_pb!(), 1,
      &["prepare-node.yaml", "steps", "list of steps"]),
    c("playbook unknown top field", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", "name: prepare-node\nstepz: []\n")], prep_pb!(), 1,
      &["stepz", "name, description, steps, handlers"]),
    c("playbook command missing apply", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    command: {check: \"true\"}\n"))], prep_pb!(), 1,
      &["command.apply", "missing"]),
    c("playbook notify nobody", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    command: {check: \"true\", apply: \"true\"}\n    notify: [nobody]\n"))], prep_pb!(), 1,
      &["prepare-node.yaml:5", "notify", "nobody", "no handlers"]),
    c("playbook body typo", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    file: {path: /x, content: y, colour: red}\n"))], prep_pb!(), 1,
      &["file.colour", "unknown field", "content"]),
    c("playbook line action", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    line: {path: /x, regexp: \"^a\", action: explode}\n"))], prep_pb!(), 1,
      &["line.action", "explode", "comment, remove or present"]),
    c("playbook step name twice", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    command: {check: \"true\", apply: \"true\"}\n  - name: a\n    command: {check: \"true\", apply: \"true\"}\n"))], prep_pb!(), 1,
      &["prepare-node.yaml:5", "name", "two steps"]),
    c("playbook two kinds", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    file: {path: /x, content: y}\n    command: {check: \"true\", apply: \"true\"}\n"))], prep_pb!(), 1,
      &["more than one step kind", "one per step"]),
    c("playbook template", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    file: {path: /x, template: nosuch}\n"))], prep_pb!(), 1,
      &["file.template", "nosuch", "containerd-config.toml"]),
    c("playbook sysctl values", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n    sysctl: {file: /etc/sysctl.d/x.conf, values: [1, 2]}\n"))], prep_pb!(), 1,
      &["sysctl.values", "expected a mapping"]),
    c("playbook bad YAML", &[("cluster.yaml", inv1!("")), ("pb/prepare-node.yaml", playbook!("  - name: a\n   file: {}\n"))], prep_pb!(), 1,
      &["prepare-node.yaml:4", "invalid YAML"]),
    c("playbook dir missing", &[("cluster.yaml", inv1!(""))], prep_pb!(), 1,
      &["pb", "--playbook-dir", "no such directory"]),
    // ---- command-line flags ----
    c("flag bind port word", &[], &["init", "--apiserver-bind-port", "sixty"], 2,
      &["--apiserver-bind-port", "a port number 1-65535"]),
    c("flag bind port big", &[], &["init", "--apiserver-bind-port", "70000"], 2,
      &["--apiserver-bind-port", "a port number 1-65535"]),
    c("flag bind port zero", &[], &["init", "--apiserver-bind-port", "0"], 2,
      &["--apiserver-bind-port", "a port number 1-65535"]),
    c("flag join bind port", &[], &["join", "--control-plane", "--apiserver-bind-port", "x"], 2,
      &["--apiserver-bind-port", "a port number 1-65535"]),
    c("flag prepare port", &[], &["prepare", "--port", "ssh", "10.0.0.1"], 2,
      &["--port", "a port number 1-65535"]),
    c("flag concurrency", &[], &["prepare", "--concurrency", "0", "10.0.0.1"], 2,
      &["--concurrency", "a whole number from 1 to 1000"]),
    c("flag connect timeout", &[], &["prepare", "--connect-timeout", "soon", "10.0.0.1"], 2,
      &["--connect-timeout", "a whole number from 1 to 3600"]),
    c("flag containerd major", &[], &["render", "--output-dir", "{in}/out", "--containerd-major", "three"], 2,
      &["--containerd-major", "a whole number from 1 to 2"]),
    c("flag advertise address", &[], &["init", "--apiserver-advertise-address", "1.2.3"], 1,
      &["flag --apiserver-advertise-address", "localAPIEndpoint.advertiseAddress", "not an IP address"]),
    c("flag service cidr", &[], &["init", "phase", "certs", "all", "--service-cidr", "10.0.0.0/40"], 1,
      &["flag --service-cidr", "networking.serviceSubnet", "address/prefix"]),
    c("flag pod cidr", &[], &["init", "--pod-network-cidr", "pods"], 1,
      &["flag --pod-network-cidr", "networking.podSubnet", "address/prefix"]),
    c("flag control plane endpoint", &[], &["init", "--control-plane-endpoint", "a:b:c:d"], 1,
      &["flag --control-plane-endpoint", "controlPlaneEndpoint", "host:port"]),
    c("flag node name", &[], &["init", "phase", "kubeconfig", "all", "--node-name", "Bad_Name"], 1,
      &["flag --node-name", "Bad_Name", "lowercase"]),
    c("flag kubernetes version", &[], &["init", "--kubernetes-version", "1.34"], 1,
      &["flag --kubernetes-version", "kubernetesVersion", "give one like v1.34.2"]),
    c("flag node wait", &[], &["init", "--node-wait", "5x"], 2,
      &["--node-wait", "a duration such as 24h0m0s"]),
    c("flag skip phase", &[], &["init", "--skip-phases", "cerst"], 1,
      &["--skip-phases", "cerst", "certs"]),
    c("flag cert dir relative", &[], &["init", "phase", "certs", "all", "--cert-dir", "pki"], 1,
      &["flag --cert-dir", "certificatesDir", "absolute"]),
    c("flag bastion port", &[("cluster.yaml", inv1!(""))], prep!("--bastion", "jump:abc"), 1,
      &["--bastion", "jump:abc", "a port number 1-65535"]),
    c("flag user empty", &[("cluster.yaml", inv1!(""))], prep!("--user", ""), 1,
      &["--user", "must not be empty"]),
    // ---- bootstrap tokens ----
    c("token create malformed", &[], &["token", "create", "nope"], 1,
      &["bootstrap token", "6 characters of [a-z0-9], a dot, then 16"]),
    c("token create upper case", &[], &["token", "create", "ABCDEF.0123456789ABCDEF"], 1,
      &["6 characters of [a-z0-9]"]),
    c("token create ttl", &[], &["token", "create", "--ttl", "1y"], 2,
      &["--ttl", "a duration such as 24h0m0s"]),
    c("token create usages", &[], &["token", "create", "--usages", "launching"], 2,
      &["--usages", "launching", "signing"]),
    c("token create groups", &[], &["token", "create", "--groups", "admins"], 1,
      &["admins", "system:bootstrappers:"]),
    c("token delete malformed", &[], &["token", "delete", "no.pe"], 1,
      &["\"no.<redacted>\"", "[a-z0-9]"]),
    c("join token malformed flag", &[], &["join", "--token", "abc", "--discovery-token-unsafe-skip-ca-verification", "10.0.0.1:6443"], 1,
      &["flag --token", "discovery.bootstrapToken.token", "6 characters of [a-z0-9]"]),
    c("join token missing", &[], &["join", "--discovery-token-unsafe-skip-ca-verification", "10.0.0.1:6443"], 1,
      &["--token"]),
    // ---- CA hashes ----
    c("hash not hex", &[], &["join", "--token", TOKEN, "--discovery-token-ca-cert-hash", "sha256:xyz", "10.0.0.1:6443"], 1,
      &["flag --discovery-token-ca-cert-hash", "discovery.bootstrapToken.caCertHashes", "sha256:xyz", "sha256:<64 hex digits>"]),
    c("hash md5", &[], &["join", "--token", TOKEN, "--discovery-token-ca-cert-hash", "md5:0123", "10.0.0.1:6443"], 1,
      &["md5:0123", "sha256:<64 hex digits>"]),
    c("hash without prefix", &[], &["join", "--token", TOKEN, "--discovery-token-ca-cert-hash", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "10.0.0.1:6443"], 1,
      &["sha256:<64 hex digits>"]),
    c("hash short", &[], &["join", "--token", TOKEN, "--discovery-token-ca-cert-hash", "sha256:abcd", "10.0.0.1:6443"], 1,
      &["sha256:abcd", "sha256:<64 hex digits>"]),
    c("hash missing", &[], &["join", "--token", TOKEN, "10.0.0.1:6443"], 1,
      &["--discovery-token-ca-cert-hash sha256:<hex>", "kubeboot certs ca-hash", "--discovery-token-unsafe-skip-ca-verification"]),
    c("hash no cert dir", &[], &["certs", "ca-hash", "--cert-dir", "/nowhere"], 1,
      &["/nowhere", "ca.crt"]),
    // ---- certificate keys ----
    c("certificate key short on init", &[], &["init", "--upload-certs", "--certificate-key", "zz"], 1,
      &["--certificate-key", "64 hexadecimal digits", "got 2 characters"]),
    c("certificate key not hex on init", &[], &["init", "--upload-certs", "--certificate-key", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg"], 1,
      &["--certificate-key", "64 hexadecimal digits"]),
    c("certificate key on upload phase", &[], &["init", "phase", "upload-certs", "--upload-certs", "--certificate-key", "abc"], 1,
      &["--certificate-key", "64 hexadecimal digits"]),
    c("certificate key on join", &[], &["join", "--control-plane", "--certificate-key", "zz", "--token", TOKEN, "--discovery-token-ca-cert-hash", HASH, "10.0.0.1:6443"], 1,
      &["flag --certificate-key", "controlPlane.certificateKey", "64 hexadecimal digits"]),
    c("certificate key on token create", &[], &["token", "create", "--print-join-command", "--certificate-key", "xyz"], 1,
      &["--certificate-key", "64 hexadecimal digits"]),
    c("certificate key without join command", &[], &["token", "create", "--certificate-key", KEY64], 2,
      &["--print-join-command"]),
    c("certificate key in join config", &[("j.yaml", join!("controlPlane:\n  certificateKey: 1234\ndiscovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.1:6443\n    unsafeSkipCAVerification: true\n"))], &["join", "--config", "{in}/j.yaml"], 1,
      &["controlPlane.certificateKey", "64 hexadecimal digits"]),
    // ---- kubeconfigs ----
    c("kubeconfig not YAML", &[("/k.conf", "clusters: [\n")], &["token", "list", "--kubeconfig", "/k.conf"], 1,
      &["k.conf", "invalid YAML"]),
    c("kubeconfig a list", &[("/k.conf", "- a\n- b\n")], &["token", "list", "--kubeconfig", "/k.conf"], 1,
      &["k.conf", "line 1", "expected a mapping"]),
    c("kubeconfig clusters a mapping", &[("/k.conf", "apiVersion: v1\nkind: Config\nclusters: {name: k}\n")], &["token", "list", "--kubeconfig", "/k.conf"], 1,
      &["k.conf", "line 3", "clusters", "expected a list"]),
    c("kubeconfig server missing", &[("/k.conf", "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster: {insecure-skip-tls-verify: true}\n")], &["token", "list", "--kubeconfig", "/k.conf"], 1,
      &["k.conf", "clusters[0].cluster.server", "missing"]),
    c("kubeconfig no current context", &[("/k.conf", "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n")], &["token", "list", "--kubeconfig", "/k.conf"], 1,
      &["k.conf", "no current cluster", "current-context"]),
    c("kubeconfig CA not base64", &[("/k.conf", "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster: {server: \"https://10.0.0.1:6443\", certificate-authority-data: \"!!\"}\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: abc}\n")], &["token", "list", "--kubeconfig", "/k.conf"], 1,
      &["k.conf", "certificate-authority-data", "base64"]),
    c("kubeconfig missing", &[], &["token", "list", "--kubeconfig", "/none.conf"], 1,
      &["none.conf", "does not exist", "--kubeconfig"]),
    c("kubeconfig discovery file", &[("/k.conf", "clusters: 5\n")], &["join", "--discovery-file", "/k.conf", "--token", TOKEN], 1,
      &["k.conf", "clusters", "expected a list"]),
    c("kubeconfig discovery file missing", &[], &["join", "--discovery-file", "/none.conf", "--token", TOKEN], 1,
      &["none.conf"]),
    // ---- image archives ----
    c("archive unpinned", &[("cluster.yaml", inv1!(""))], prep!("--image-archive", "/srv/a.tar"), 2,
      &["--image-archive", "needs a pin", "#sha256:<64 hex digits>"]),
    c("archive md5", &[("cluster.yaml", inv1!(""))], prep!("--image-archive", "/srv/a.tar#md5:0123"), 2,
      &["--image-archive", "#sha256:<64 hex digits>"]),
    c("archive short hash", &[("cluster.yaml", inv1!(""))], prep!("--image-archive", "/srv/a.tar#sha256:12"), 2,
      &["--image-archive", "\"12\"", "64 hex digits"]),
    c("archive missing file", &[("cluster.yaml", inv1!(""))], prep!("--image-archive", "{in}/none.tar#sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 1,
      &["none.tar", "not a file", "nothing was changed"]),
    c("archive on up", &[("cluster.yaml", inv1!(""))], &["up", "--plan", "-f", "{in}/cluster.yaml", "--image-archive", "/srv/a.tar#sha256:zz"], 2,
      &["--image-archive", "64 hex digits"]),
    c("artifact name", &[("cluster.yaml", inv1!(""))], prep!("--artifact", "kubeadm=/srv/kubeadm#sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 2,
      &["--artifact", "kubelet and kubectl", "kubeadm"]),
    c("artifact missing file", &[("cluster.yaml", inv1!(""))], prep!("--artifact", "kubelet={in}/kubelet#sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 1,
      &["kubelet", "not a file", "nothing was changed"]),
    c("images list version", &[], &["config", "images", "list", "--kubernetes-version", "v1.2"], 1,
      &["flag --kubernetes-version", "give one like v1.34.2"]),
    c("images list repository", &[], &["config", "images", "list", "--image-repository", "http://registry.example.com/"], 1,
      &["flag --image-repository", "imageRepository", "no scheme, no trailing slash"]),
    c("images list output", &[], &["config", "images", "list", "-o", "yaml"], 2,
      &["--output", "text, json"]),
    c("images pull timeout", &[], &["config", "images", "pull", "--timeout", "forever"], 2,
      &["--timeout", "a duration such as 24h0m0s"]),
    c("images list both sources", &[("cluster.yaml", inv1!("")), ("c.yaml", cluster!(""))], &["config", "images", "list", "-f", "{in}/cluster.yaml", "--config", "{in}/c.yaml"], 2,
      &["--file", "--config", "cannot be used with"]),
    // ---- host keys (known_hosts) against a local sshd ----
    c("host key unknown", &[("known_hosts", "")], prep_ssh!("--known-hosts", "{in}/known_hosts"), 1,
      &["unknown", "known_hosts", "SHA256:", "--accept-new-host-keys"]),
    c("host key changed", &[("known_hosts", "# a comment\n[127.0.0.1]:{port} {otherkey}\n")], prep_ssh!("--known-hosts", "{in}/known_hosts"), 1,
      &["HOST KEY CHANGED", "known_hosts:2", "SHA256:"]),
    c("host key changed with accept-new", &[("known_hosts", "[127.0.0.1]:{port} {otherkey}\n")], prep_ssh!("--known-hosts", "{in}/known_hosts", "--accept-new-host-keys"), 1,
      &["HOST KEY CHANGED", "known_hosts:1"]),
    c("host key revoked", &[("known_hosts", "@revoked * {hostkey}\n[127.0.0.1]:{port} {hostkey}\n")], prep_ssh!("--known-hosts", "{in}/known_hosts"), 1,
      &["revoked", "known_hosts:1"]),
    c("host key malformed line", &[("known_hosts", "[127.0.0.1]:{port} ssh-ed25519 not-base64!!\n")], prep_ssh!("--known-hosts", "{in}/known_hosts"), 1,
      &["is unknown", "known_hosts has lines that are not known_hosts entries", "line 1", "SHA256:"]),
    c("host key file is a directory", &[("known_hosts/x", "")], prep_ssh!("--known-hosts", "{in}/known_hosts"), 1,
      &["cannot read known_hosts", "known_hosts"]),
];

/// Words no message may contain: Rust's types and serde's, and the signs of a panic.
const RUST_WORDS: &[&str] = &[
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "usize",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "isize",
    "f32",
    "f64",
    "String",
    "str",
    "Vec",
    "Option",
    "Some",
    "None",
    "Box",
    "Result",
    "serde",
    "struct",
    "enum",
    "panicked",
    "RUST_BACKTRACE",
    "unwrap",
];

fn rust_words(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let camel_error = word.len() > 5
            && word.ends_with("Error")
            && word.starts_with(|c: char| c.is_ascii_uppercase());
        let raw_type = word.len() > 3
            && word.starts_with("Raw")
            && word[3..].starts_with(|c: char| c.is_ascii_uppercase());
        if RUST_WORDS.contains(&word) || camel_error || raw_type {
            found.push(word.to_string());
        }
    }
    if text.contains("::") {
        found.push("::".into());
    }
    found
}

/// Every directory and file under `dir`, with file contents, to prove nothing was written.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(p.clone(), None);
                stack.push(p);
            } else {
                out.insert(p.clone(), Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

struct Env {
    sshd: sshd_support::Sshd,
    hostkey: String,
    otherkey: String,
}

impl Env {
    fn fill(&self, text: &str, input: &Path) -> String {
        text.replace("{in}", input.to_str().unwrap())
            .replace("{port}", &self.sshd.port.to_string())
            .replace("{key}", self.sshd.client_key().to_str().unwrap())
            .replace("{hostkey}", &self.hostkey)
            .replace("{otherkey}", &self.otherkey)
    }
}

fn public_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut parts = text.split_whitespace();
    format!("{} {}", parts.next().unwrap(), parts.next().unwrap())
}

/// Runs one case; returns what is wrong with kubeboot's answer, if anything.
fn check(case: &Case, env: &Env) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let root = dir.path().join("root");
    let home = dir.path().join("home");
    for d in [&input, &root, &home] {
        std::fs::create_dir_all(d).unwrap();
    }
    for (rel, text) in case.files {
        // Absolute paths are the node's, under --root (kubeconfigs); others are inputs.
        let p = match rel.strip_prefix('/') {
            Some(node_path) => root.join(node_path),
            None => input.join(rel),
        };
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, env.fill(text, &input)).unwrap();
    }
    let before = tree(dir.path());
    let args: Vec<String> = case.args.iter().map(|a| env.fill(a, &input)).collect();
    let out = common::kubeboot()
        .arg("--root")
        .arg(&root)
        .args(&args)
        .current_dir(&input)
        .env("HOME", &home)
        .env_remove("KUBEBOOT_ROOT")
        .env_remove("KUBEBOOT_TOKEN")
        .env_remove("KUBEBOOT_CERTIFICATE_KEY")
        .env_remove("KUBEBOOT_LOG")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run kubeboot");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if std::env::var_os("BAD_INPUT_SHOW").is_some() {
        eprintln!(
            "[{}] {}{}",
            case.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = format!("{stdout}{stderr}");
    let mut problems = Vec::new();
    if out.status.code() != Some(case.status) {
        problems.push(format!(
            "exit status {:?}, expected {}",
            out.status.code(),
            case.status
        ));
    }
    for w in case.words {
        if !text.contains(&env.fill(w, &input)) {
            problems.push(format!("message lacks {w:?}"));
        }
    }
    let rust = rust_words(&text);
    if !rust.is_empty() {
        problems.push(format!("message speaks Rust: {rust:?}"));
    }
    let after = tree(dir.path());
    if before != after {
        let changed: Vec<_> = after
            .keys()
            .chain(before.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        problems.push(format!("wrote {changed:?}"));
    }
    if !problems.is_empty() {
        problems.insert(
            0,
            format!(
                "kubeboot {}\n    stdout: {stdout}\n    stderr: {stderr}",
                args.join(" ")
            ),
        );
    }
    problems
}

#[test]
fn bad_input_is_refused_in_the_users_words_and_writes_nothing() {
    let started = Instant::now();
    let sshd = sshd_support::Sshd::start();
    let hostkey = public_key(&sshd.dir.path().join("host_ed25519.pub"));
    let other = sshd.dir.path().join("other");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let env = Env {
        otherkey: public_key(&other.with_extension("pub")),
        sshd,
        hostkey,
    };
    let cases: Vec<&Case> = CASES.iter().collect();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "two cases named {:?}", c.name);
    }
    // Run the cases on both cores; report every failure, not just the first.
    let failures: Vec<String> = std::thread::scope(|s| {
        let chunks: Vec<_> = cases
            .chunks(cases.len().div_ceil(4))
            .map(|chunk| {
                let env = &env;
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|c| {
                            let p = check(c, env);
                            (!p.is_empty()).then(|| format!("[{}] {}", c.name, p.join("\n  ")))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    eprintln!(
        "{} cases in {:.1}s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The checks above can fail: a Rust-speaking message is caught, and so is a write.
#[test]
fn the_checks_see_rust_words_and_writes() {
    let old = "error: /x/c.yaml:4:13: field `bindPort`: invalid u16";
    assert_eq!(rust_words(old), ["u16"]);
    assert_eq!(
        rust_words("expected struct RawFile with 5 elements"),
        ["struct", "RawFile"]
    );
    assert!(rust_words("thread 'main' panicked at src/cli.rs:1:1").contains(&"panicked".into()));
    assert!(rust_words("localAPIEndpoint.bindPort: expected a port number 1-65535").is_empty());

    let dir = tempfile::tempdir().unwrap();
    let before = tree(dir.path());
    let out = common::run(dir.path(), &["init", "phase", "certs", "ca"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        tree(dir.path()),
        before,
        "a real write must show in the tree"
    );
}

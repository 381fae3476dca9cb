//! One entry point per parser of outside input, shared by the `cargo fuzz` targets in
//! `fuzz/` and by the stable test `tests/fuzz_corpus.rs`, which replays the committed
//! corpus and every saved crash through the same functions. Each takes raw bytes the way
//! the input arrives (a file, an API object, a flag value) and drives the parser and what
//! kubeboot derives from its result without I/O. None may panic: a panic here is a bug in
//! the parser, which must return an error instead.
//!
//! Inputs that cannot be forged by a fuzzer (an HMAC, an AES-GCM tag) are re-signed with a
//! fixed key here so the code behind the check is reached too.

use crate::config::cluster::{self, Cluster};
use crate::config::join::{JoinConfig, JoinOverrides};
use crate::config::{InitConfig, InitOverrides, LocalFacts};
use crate::host::known_hosts::KnownHosts;
use crate::kubeconfig::KubeConfig;
use crate::pki::{Certificate, PrivateKey};
use crate::token::{BootstrapToken, TokenInfo};
use crate::{copycerts, discovery};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::OnceLock;

/// A fuzz target: its name (the file in `fuzz/fuzz_targets/` and the directory of its
/// corpus) and its entry point.
pub struct Target {
    pub name: &'static str,
    /// Runs one input; `true` when the input was accepted by the parser under test (the
    /// corpus test checks each target has seeds that get past parsing).
    pub run: fn(&[u8]) -> bool,
}

/// Every target, in the order `fuzz/run.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "init_config",
        run: init_config,
    },
    Target {
        name: "join_config",
        run: join_config,
    },
    Target {
        name: "cluster_inventory",
        run: cluster_inventory,
    },
    Target {
        name: "playbook",
        run: playbook,
    },
    Target {
        name: "kubeconfig",
        run: kubeconfig,
    },
    Target {
        name: "known_hosts",
        run: known_hosts,
    },
    Target {
        name: "pem",
        run: pem,
    },
    Target {
        name: "der",
        run: der,
    },
    Target {
        name: "bootstrap_token",
        run: bootstrap_token,
    },
    Target {
        name: "ca_pin",
        run: ca_pin,
    },
    Target {
        name: "certificate_key",
        run: certificate_key,
    },
    Target {
        name: "cluster_info",
        run: cluster_info,
    },
    Target {
        name: "kubeadm_certs",
        run: kubeadm_certs,
    },
    Target {
        name: "flag_values",
        run: flag_values,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The token every re-signed input uses.
const TOKEN: &str = "abcdef.0123456789abcdef";
/// The certificate key every re-encrypted input uses.
const CERT_KEY: [u8; 32] = [7; 32];

/// Fixed local facts, so a run depends on the input alone.
struct Facts;

impl LocalFacts for Facts {
    fn hostname(&self) -> Option<String> {
        Some("Node-1".into())
    }
    fn default_address(&self) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)))
    }
}

fn text(data: &[u8]) -> Option<&str> {
    // Files are read with `read_to_string`, which refuses invalid UTF-8 before any parser.
    std::str::from_utf8(data).ok()
}

fn now() -> time::OffsetDateTime {
    time::macros::datetime!(2026-01-01 0:00 UTC)
}

/// A kubeadm config file for `init` (any mix of Init/Cluster/Join/Kubelet/KubeProxy
/// documents), and what `init` derives from it without I/O: the certificate requests.
pub fn init_config(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let Ok(cfg) = InitConfig::parse(
        Path::new("kubeadm.yaml"),
        text,
        &InitOverrides::default(),
        &Facts,
    ) else {
        return false;
    };
    let _ = cfg.cluster_url();
    let _ = cfg.dns_service_ip();
    for spec in crate::pki::spec::needed(&cfg) {
        let _ = spec.request(&cfg, now());
    }
    true
}

/// A kubeadm config file for `join`; the same text as the `kubeadm-config` ConfigMap's
/// `ClusterConfiguration` a joining node reads from the cluster.
pub fn join_config(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let joined = JoinConfig::parse(
        Path::new("join.yaml"),
        text,
        &JoinOverrides::default(),
        &Facts,
    )
    .is_ok();
    static JOIN: OnceLock<JoinConfig> = OnceLock::new();
    let join = JOIN.get_or_init(|| {
        let o = JoinOverrides {
            endpoint: Some("10.0.0.5:6443".into()),
            token: Some(TOKEN.into()),
            unsafe_skip_ca_verification: true,
            ..Default::default()
        };
        // Flags only, no file (a file must hold a JoinConfiguration).
        JoinConfig::load(None, &o, &Facts).expect("a valid join")
    });
    let Ok(cfg) = join.node_config(text, &Facts) else {
        return joined;
    };
    for spec in crate::pki::spec::needed(&cfg) {
        let _ = spec.request(&cfg, now());
    }
    true
}

/// A `kubeboot.io/v1alpha1` `Cluster` inventory and the SSH settings and template
/// context `prepare` and `up` derive from it.
pub fn cluster_inventory(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let Ok(c) = Cluster::parse(Path::new("cluster.yaml"), text) else {
        return false;
    };
    let ssh = crate::orchestrate::ssh_config_of(&c);
    for h in &c.hosts {
        let _ = h.cluster_address();
        let _ = crate::orchestrate::ssh_config_for(&ssh, h);
    }
    let store = crate::playbook::artifacts::ArtifactStore::new(c.artifacts.clone());
    let _ = crate::orchestrate::prepare_vars(&c, &store);
    true
}

/// A playbook file (`--playbook-dir`), with image archives added as `prepare` does.
pub fn playbook(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let Ok(p) = crate::playbook::Playbook::parse("fuzz.yaml", text) else {
        return false;
    };
    let _ = p.with_image_archives(&[("image-archive/0/a.tar".into(), None)]);
    true
}

/// A kubeconfig file, and the credentials read from it.
pub fn kubeconfig(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let Ok(kc) = KubeConfig::parse(text) else {
        return false;
    };
    let _ = kc.current_cluster();
    let _ = kc.ca_cert();
    let _ = kc.client_pair();
    let _ = kc.to_yaml();
    true
}

/// An OpenSSH known_hosts file, asked about a few hosts; accepted when it holds an entry.
pub fn known_hosts(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let k = KnownHosts::parse(Path::new("known_hosts"), text);
    static KEY: OnceLock<russh::keys::PublicKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        russh::keys::parse_public_key_base64(
            "AAAAC3NzaC1lZDI1NTE5AAAAIA2ExKZADbNpzQrxD6bolNx2X/y+/LYhOx/9gCTmkqSC",
        )
        .expect("a valid key")
    });
    let mut known = false;
    for (host, port) in [
        ("10.0.0.1", 22),
        ("node-1.example.com", 2222),
        ("fe80::1", 22),
    ] {
        known |= k.check(host, port, key) != crate::host::known_hosts::HostKeyVerdict::Unknown;
        let _ = k.algorithms_for(host, port);
    }
    known
}

/// PEM files: certificates (`*.crt`, CA bundles), private keys (`*.key`).
pub fn pem(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(c) = Certificate::from_pem(data) {
        let _ = c.spki_sha256();
        let _ = c.describe_sans();
        let _ = c.to_pem();
        accepted = true;
    }
    if let Ok(blocks) = ::pem::parse_many(data) {
        for b in blocks {
            let _ = Certificate::from_der(b.contents().to_vec());
        }
    }
    if let Some(text) = text(data)
        && let Ok(k) = PrivateKey::from_pem(text)
    {
        let _ = k.to_pem();
        let _ = k.public_key_pem();
        let _ = k.algorithm();
        accepted = true;
    }
    accepted
}

/// DER: certificates, SubjectPublicKeyInfo, PKCS#8 keys.
pub fn der(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(c) = Certificate::from_der(data.to_vec()) {
        let _ = c.spki_sha256();
        let _ = c.is_signed_by(&c);
        let _ = c.describe_sans();
        accepted = true;
    }
    accepted |= crate::pki::keys::algorithm_of_spki(data).is_ok();
    let _ = crate::pki::der::children(data);
    accepted |= crate::pki::der::pkcs8_to_traditional(data, data).is_some();
    accepted
}

/// A bootstrap token (`--token`, `token delete`), and a bootstrap token Secret as the API
/// returns it (`token list`).
pub fn bootstrap_token(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Some(text) = text(data)
        && let Ok(t) = BootstrapToken::parse(text)
    {
        let _ = (t.id(), t.secret(), t.to_string());
        accepted = true;
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data)
        && let Some(info) = TokenInfo::from_secret(&v)
    {
        let _ = info.row(now());
        let _ = info.to_secret();
        accepted = true;
    }
    accepted
}

/// CA pins (`--discovery-token-ca-cert-hash sha256:HEX`), one per line, checked against
/// no CA.
pub fn ca_pin(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let pins: Vec<String> = text.lines().map(String::from).collect();
    let mut accepted = false;
    for p in &pins {
        accepted |= discovery::parse_pin(p).is_ok();
    }
    let _ = discovery::check_pins(&[], &pins);
    accepted
}

/// A certificate key (`--certificate-key`, 64 hex digits), and data decrypted with it.
pub fn certificate_key(data: &[u8]) -> bool {
    let _ = copycerts::decrypt(data, &CERT_KEY);
    let Some(text) = text(data) else {
        return false;
    };
    let Ok(key) = copycerts::parse_certificate_key(text) else {
        return false;
    };
    let _ = copycerts::decrypt(data, &key);
    true
}

/// The `kube-public/cluster-info` ConfigMap (JSON, as fetched without TLS verification):
/// its JWS as given, then re-signed with the token so the kubeconfig, CA and pin checks
/// behind the signature are reached.
pub fn cluster_info(data: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    let token = BootstrapToken::parse(TOKEN).expect("a valid token");
    let _ = discovery::verified_kubeconfig(&v, token.id(), token.secret());
    let Some(kubeconfig) = v["data"]["kubeconfig"].as_str() else {
        return false;
    };
    let signed = serde_json::json!({"data": {
        "kubeconfig": kubeconfig,
        format!("jws-kubeconfig-{}", token.id()):
            discovery::sign(kubeconfig, token.id(), token.secret()),
    }});
    let kc = match discovery::verified_kubeconfig(&signed, token.id(), token.secret()) {
        Ok(kc) => kc,
        Err(discovery::DiscoveryError::BadKubeconfig(_)) => return false,
        Err(e) => panic!("a kubeconfig signed with the token must verify: {e}"),
    };
    let Ok(cas) = discovery::cluster_cas(&kc) else {
        return false;
    };
    let pin = format!("sha256:{}", "0".repeat(64));
    let _ = discovery::check_pins(&cas, &[pin]);
    true
}

/// The `kube-system/kubeadm-certs` Secret (JSON) as `join --control-plane` downloads it:
/// as given, then with each value re-encrypted so the whole path is reached.
pub fn kubeadm_certs(data: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    let _ = copycerts::decode_secret(&v, copycerts::SHARED, &CERT_KEY);
    let Some(map) = v["data"].as_object() else {
        return false;
    };
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sealed: serde_json::Map<String, serde_json::Value> = map
        .iter()
        .map(|(k, v)| {
            let plain = v.as_str().unwrap_or_default().as_bytes();
            (
                k.clone(),
                b64.encode(copycerts::encrypt(plain, &CERT_KEY)).into(),
            )
        })
        .collect();
    let secret = serde_json::json!({ "data": sealed });
    let Ok(files) = copycerts::decode_secret(&secret, copycerts::SHARED, &CERT_KEY) else {
        return false;
    };
    for f in files {
        if f.rel.ends_with(".crt") {
            let _ = Certificate::from_pem(&f.contents);
        }
    }
    true
}

/// Values of flags and inventory fields parsed by hand, one per line: versions,
/// endpoints, CIDRs, durations, `--artifact`/`--image-archive`, image repositories; and
/// the `key=value` facts hosts report.
pub fn flag_values(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let mut accepted = false;
    for line in text.lines() {
        accepted |= crate::config::version::KubeVersion::parse(line).is_ok();
        accepted |= crate::config::network::parse_endpoint(line, 6443).is_ok();
        accepted |= crate::config::network::parse_cidrs(line).is_ok();
        let _ = crate::config::network::check_san(line);
        accepted |= crate::config::duration::GoDuration::parse(line).is_ok();
        accepted |= crate::config::EncryptionAlgorithm::parse(line).is_ok();
        let _ = crate::config::check_image_repository(line);
        accepted |= cluster::parse_artifact_flag(line).is_ok();
        accepted |= cluster::parse_image_archive_flag(line).is_ok();
    }
    let _ = crate::playbook::facts::Facts::parse(text);
    accepted |= crate::images::Present::parse(text).is_some();
    accepted
}

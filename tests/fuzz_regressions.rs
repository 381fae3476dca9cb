//! What each input in `fuzz/regressions/` now gets: a clear error (or, for an input that
//! was wrongly refused, success), in the user's words, quickly. `tests/fuzz_corpus.rs`
//! replays the same files through the fuzz entry points for "no panic".

use kubeboot::config::{InitConfig, InitOverrides, LocalFacts};
use kubeboot::fuzzing;
use kubeboot::host::known_hosts::{HostKeyVerdict, KnownHosts};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

fn regression(target: &str, name: &str) -> Vec<u8> {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "fuzz",
        "regressions",
        target,
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `f` on another thread and fails (instead of hanging) when it takes over `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("took longer than {limit:?} (a hang on hostile input)"))
}

struct Facts;
impl LocalFacts for Facts {
    fn hostname(&self) -> Option<String> {
        Some("node-1".into())
    }
    fn default_address(&self) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)))
    }
}

/// `certificateValidityPeriod: 270000000h` (30,800 years) was accepted, and computing
/// the certificates' expiry then panicked ("overflow adding duration to date"). Go's
/// durations, and so kubeadm, stop at 2562047h.
#[test]
fn huge_certificate_validity_is_refused_with_the_field() {
    let data = regression("init_config", "validity-overflows-expiry.yaml");
    let text = String::from_utf8(data.clone()).unwrap();
    let e = InitConfig::parse(
        Path::new("kubeadm.yaml"),
        &text,
        &InitOverrides::default(),
        &Facts,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("kubeadm.yaml:3"), "{e}");
    assert!(e.contains("certificateValidityPeriod"), "{e}");
    assert!(e.contains("too large: the longest is 2562047h"), "{e}");
    assert!(!fuzzing::init_config(&data));
}

/// A known_hosts pattern of many `*` made the recursive glob take exponential time: an
/// ssh connection hung while checking the host key.
#[test]
fn many_star_pattern_is_checked_at_once() {
    let data = regression("known_hosts", "many-stars");
    let verdict = within(Duration::from_secs(20), move || {
        let k = KnownHosts::parse(
            Path::new("known_hosts"),
            std::str::from_utf8(&data).unwrap(),
        );
        let key = russh::keys::parse_public_key_base64(
            "AAAAC3NzaC1lZDI1NTE5AAAAIA2ExKZADbNpzQrxD6bolNx2X/y+/LYhOx/9gCTmkqSC",
        )
        .unwrap();
        k.check("node-1.example.com", 2222, &key)
    });
    assert_eq!(verdict, HostKeyVerdict::Unknown);
}

/// Found while seeding the corpus: kubeadm's own cluster-info kubeconfig
/// (`contexts: null`, `users: null`, as client-go writes empty lists) was refused as "no
/// usable kubeconfig", so `join` could not discover a kubeadm-made cluster.
#[test]
fn kubeadm_cluster_info_with_null_lists_is_read() {
    let data = regression("cluster_info", "kubeadm-null-lists.json");
    assert!(fuzzing::cluster_info(&data));
}

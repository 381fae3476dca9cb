//! Pinned binaries (kubelet, kubectl) from the configured source: fetched from a URL or
//! read from a local path by kubeboot, checked against their sha256, then uploaded to
//! each host that needs them (where the sha256 is checked again before the file is moved
//! into place). Each artifact is fetched at most once per run, however many hosts need
//! it, and not at all when every host already has it.

use crate::config::cluster::{Artifact, ArtifactSource};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

type Fetched = Arc<OnceLock<Result<Arc<Vec<u8>>, String>>>;

/// The artifacts of a run and what has been fetched so far.
#[derive(Debug, Default)]
pub struct ArtifactStore {
    artifacts: BTreeMap<String, Artifact>,
    fetched: Mutex<BTreeMap<String, Fetched>>,
}

impl ArtifactStore {
    pub fn new(artifacts: BTreeMap<String, Artifact>) -> Self {
        ArtifactStore {
            artifacts,
            fetched: Mutex::new(BTreeMap::new()),
        }
    }

    /// The configured artifact `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.get(name)
    }

    /// Whether a source is configured for `name`.
    pub fn has(&self, name: &str) -> bool {
        self.artifacts.contains_key(name)
    }

    /// The verified bytes of `name`, fetching them on first use (other threads wait for
    /// that fetch instead of starting their own).
    pub fn bytes(&self, name: &str) -> Result<Arc<Vec<u8>>, String> {
        let a = self.artifacts.get(name).ok_or_else(|| {
            format!("no source for {name}: give --artifact {name}=<URL or PATH>#sha256:<HEX>")
        })?;
        let cell = self
            .fetched
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| fetch(a).map(Arc::new)).clone()
    }
}

fn fetch(a: &Artifact) -> Result<Vec<u8>, String> {
    let (bytes, from) = match &a.source {
        ArtifactSource::Path(p) => (
            std::fs::read(p).map_err(|e| {
                format!(
                    "{}: cannot read {}: {e}; put the file there or point the artifact elsewhere",
                    a.name,
                    p.display()
                )
            })?,
            p.display().to_string(),
        ),
        ArtifactSource::Url(u) => (download(u).map_err(|e| {
            format!(
                "{}: cannot download {u}: {e}; make the URL reachable from this machine or use a local path",
                a.name
            )
        })?, u.clone()),
    };
    let got = super::steps::sha256_hex(&bytes);
    if got != a.sha256 {
        return Err(format!(
            "{} from {from} has sha256 {got}, but the pin is {}: refusing it, nothing was installed",
            a.name, a.sha256
        ));
    }
    Ok(bytes)
}

fn download(url: &str) -> Result<Vec<u8>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string())
    })
}

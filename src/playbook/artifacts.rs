//! Pinned binaries (kubelet, kubectl) and image archives from the configured source:
//! fetched from a URL or read from a local path by kubeboot, checked against their sha256,
//! then uploaded to each host that needs them (where the sha256 is checked again before
//! the file is moved into place). Each artifact is fetched (or its file hashed) at most
//! once per run, however many hosts need it, and not at all when every host already has
//! it. A local file is streamed from disk to every host and never held in memory (image
//! archives are hundreds of MB); only downloads are kept, once.

use crate::config::cluster::{Artifact, ArtifactSource};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

type Fetched = Arc<OnceLock<Result<Payload, String>>>;

/// What an upload sends: a local file whose sha256 matched the pin (read again as it is
/// sent; the host checks the sha256 of what it received), or downloaded bytes.
#[derive(Debug, Clone)]
pub enum Payload {
    File { path: std::path::PathBuf, len: u64 },
    Bytes(Arc<Vec<u8>>),
}

impl Payload {
    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Payload::File { len, .. } => *len,
            Payload::Bytes(b) => b.len() as u64,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The artifacts of a run and what has been fetched so far.
#[derive(Debug, Default)]
pub struct ArtifactStore {
    artifacts: BTreeMap<String, Artifact>,
    fetched: Mutex<BTreeMap<String, Fetched>>,
    /// Packages downloaded by one host for the others alike.
    pub debs: super::debshare::DebShares,
}

impl ArtifactStore {
    pub fn new(artifacts: BTreeMap<String, Artifact>) -> Self {
        ArtifactStore {
            artifacts,
            fetched: Mutex::new(BTreeMap::new()),
            debs: Default::default(),
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

    /// The verified content of `name`, fetched (or its file hashed) on first use; other
    /// threads wait for that instead of starting their own.
    pub fn payload(&self, name: &str) -> Result<Payload, String> {
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
        cell.get_or_init(|| fetch(a)).clone()
    }
}

fn fetch(a: &Artifact) -> Result<Payload, String> {
    let (got, payload, from) = match &a.source {
        ArtifactSource::Path(p) => {
            let cannot = |e: std::io::Error| {
                format!(
                    "{}: cannot read {}: {e}; put the file there or point the artifact elsewhere",
                    a.name,
                    p.display()
                )
            };
            let (sum, len) = file_sha256(p).map_err(cannot)?;
            let payload = Payload::File {
                path: p.clone(),
                len,
            };
            (sum, payload, p.display().to_string())
        }
        ArtifactSource::Url(u) => {
            let bytes = download(u).map_err(|e| {
                format!(
                    "{}: cannot download {u}: {e}; make the URL reachable from this machine or use a local path",
                    a.name
                )
            })?;
            let sum = super::steps::sha256_hex(&bytes);
            (sum, Payload::Bytes(Arc::new(bytes)), u.clone())
        }
    };
    if got != a.sha256 {
        return Err(format!(
            "{} from {from} has sha256 {got}, but the pin is {}: refusing it, nothing was installed",
            a.name, a.sha256
        ));
    }
    Ok(payload)
}

/// The sha256 (hex) and length of a file, read in pieces.
fn file_sha256(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((
        h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        len,
    ))
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

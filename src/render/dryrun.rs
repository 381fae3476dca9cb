//! `init --dry-run`: render everything for a node and write it under a fresh temporary
//! directory (through [`LocalHost::with_root`], the same write path as a real run), so
//! users can inspect the exact files without touching the node.

use super::{RenderError, RenderOptions, RenderedFile, render_all};
use crate::config::InitConfig;
use crate::host::{Host, LocalHost};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Files of a dry run: `root` on this machine holds each file at its node path.
#[derive(Debug)]
pub struct DryRunTree {
    /// The temporary directory; the caller removes it when done (or keeps it to inspect).
    pub root: PathBuf,
    /// What was written, in kubeadm's order; `path` is the node path under `root`.
    pub files: Vec<RenderedFile>,
}

impl DryRunTree {
    /// One line per file: mode and node path, for printing.
    pub fn listing(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("{:04o} {}\n", f.mode, f.path.display()))
            .collect()
    }
}

/// Renders `cfg` as it would be on `host` (CA directories, external-CA mode, hostname are
/// read from `host`) and writes the files under a new temporary directory.
pub fn dry_run(
    cfg: &InitConfig,
    host: &dyn Host,
    opts: RenderOptions,
) -> Result<DryRunTree, RenderError> {
    let opts = opts.detect(cfg, host)?;
    let files = render_all(cfg, host, &opts)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let root =
        std::env::temp_dir().join(format!("kubeboot-dry-run-{}-{nanos}", std::process::id()));
    let out = LocalHost::with_root(&root);
    for f in &files {
        f.write_to(&out)?;
    }
    Ok(DryRunTree { root, files })
}

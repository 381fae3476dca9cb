//! Host preparation as data. A playbook (`playbooks/*.yaml`, embedded in the binary and
//! overridable from a directory) is an ordered list of steps; each step knows how to
//! check whether the host is already in the wanted state and how to get it there, so a
//! re-run changes nothing and `--plan` can say what would change without changing it.
//!
//! Round trips are the cost that matters over SSH, so the engine ([`run`]) batches: facts
//! in one command, every step's check in one script, then the applies of all steps that
//! differ in as few scripts as possible (a binary upload is its own command).
//!
//! Step kinds: `file`, `line`, `package`, `service`, `sysctl`, `module`, `command` and
//! `artifact` (a pinned binary), `image_archives` (the run's image archives imported
//! into containerd, one step per archive: see [`Playbook::with_image_archives`]); steps may `notify` handlers (run once, at the end, when
//! a notifying step changed something) and carry a `when` condition over facts.

pub mod artifacts;
pub mod debshare;
mod diff;
pub mod facts;
pub mod files;
mod parse;
mod repack;
pub mod run;
pub(crate) mod steps;

pub use facts::Facts;
pub use parse::PlaybookError;
pub use run::{HostReport, RunMode, StepOutcome, StepReport};

use std::collections::BTreeMap;
use std::path::Path;

/// A parsed playbook.
#[derive(Debug, Clone)]
pub struct Playbook {
    /// The playbook's name (`prepare-node`).
    pub name: String,
    /// Where it was read from (an embedded name or a file path), for messages.
    pub origin: String,
    pub description: String,
    pub steps: Vec<Step>,
    /// Steps run only when notified, after all steps, in this order.
    pub handlers: Vec<Step>,
}

/// One step: a name, an optional condition, the handlers it notifies, and what it does.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    /// A template expression over the context (`facts.os_family == 'debian'`); the step
    /// is skipped when it renders false.
    pub when: Option<String>,
    pub notify: Vec<String>,
    pub kind: StepKind,
}

/// What a step manages.
#[derive(Debug, Clone)]
pub enum StepKind {
    File(FileStep),
    Line(LineStep),
    Package(PackageStep),
    Service(ServiceStep),
    Sysctl(SysctlStep),
    Module(ModuleStep),
    Command(CommandStep),
    Artifact(ArtifactStep),
    /// Where the run's image archives are imported; replaced by one
    /// [`StepKind::ImageArchive`] per archive before a run.
    ImageArchives(ImageArchivesStep),
    /// One pinned image archive imported into containerd.
    ImageArchive(ImageArchiveStep),
}

impl StepKind {
    /// The YAML key of the kind.
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKind::File(_) => "file",
            StepKind::Line(_) => "line",
            StepKind::Package(_) => "package",
            StepKind::Service(_) => "service",
            StepKind::Sysctl(_) => "sysctl",
            StepKind::Module(_) => "module",
            StepKind::Command(_) => "command",
            StepKind::Artifact(_) => "artifact",
            StepKind::ImageArchives(_) => "image_archives",
            StepKind::ImageArchive(_) => "image_archive",
        }
    }
}

/// A whole file: literal `content` or a named `template` (both rendered with the
/// context), with mode and owner.
#[derive(Debug, Clone)]
pub struct FileStep {
    pub path: String,
    pub content: Option<String>,
    pub template: Option<String>,
    pub mode: u32,
    /// `user:group`.
    pub owner: String,
}

/// Lines of a file matching a POSIX extended regular expression (`grep -E`).
#[derive(Debug, Clone)]
pub struct LineStep {
    pub path: String,
    pub regexp: String,
    pub action: LineAction,
}

/// What to do with matching lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineAction {
    /// Prefix them with `# ` (e.g. swap entries in /etc/fstab).
    Comment,
    /// Delete them.
    Remove,
    /// Make sure this exact line is present (appended when no line matches the regexp;
    /// a matching line is replaced).
    Present(String),
}

/// Packages through the host's package manager. Names may pin a version as
/// `name=version` (apt's syntax; kubeboot turns it into `name-version` for dnf).
/// Only the listed packages and their dependencies are installed, not the packages they
/// merely recommend (apt `--no-install-recommends`, dnf `install_weak_deps=False`): on a
/// Debian node, runc's recommended criu alone pulls in Python 3 and doubles the time
/// of the container runtime step.
#[derive(Debug, Clone)]
pub struct PackageStep {
    pub apt: Vec<String>,
    pub dnf: Vec<String>,
}

/// A systemd unit's enablement and state.
#[derive(Debug, Clone)]
pub struct ServiceStep {
    pub name: String,
    pub enabled: Option<bool>,
    pub state: Option<ServiceState>,
}

/// Wanted state of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Running,
    Stopped,
    /// Only meaningful in handlers: restart it.
    Restarted,
}

/// sysctl values persisted in a file and applied with `sysctl -p FILE`, then read back.
#[derive(Debug, Clone)]
pub struct SysctlStep {
    pub file: String,
    pub values: BTreeMap<String, String>,
}

/// A kernel module that must be available: loaded, or built into the kernel.
#[derive(Debug, Clone)]
pub struct ModuleStep {
    pub name: String,
    /// Paths whose existence shows the module's function is built in (e.g.
    /// `/proc/sys/net/bridge` for br_netfilter).
    pub builtin_if: Vec<String>,
}

/// Free-form: `check` exits 0 when nothing is to do (1 when `apply` must run; other
/// codes are errors); `apply` makes it so.
#[derive(Debug, Clone)]
pub struct CommandStep {
    pub check: String,
    pub apply: String,
}

/// A pinned binary from the configured artifact source, installed at `path`.
#[derive(Debug, Clone)]
pub struct ArtifactStep {
    /// `kubelet` or `kubectl`: the key into the artifact source.
    pub name: String,
    pub path: String,
    pub mode: u32,
}

/// The place in a playbook where image archives are imported (`image_archives: {}`).
#[derive(Debug, Clone)]
pub struct ImageArchivesStep {
    /// containerd namespace; the CRI (the kubelet's view) uses `k8s.io`.
    pub namespace: String,
}

/// One image archive (OCI or docker-archive tarball, possibly gzip-compressed): uploaded
/// only when the host has not imported this exact archive (by sha256) or has lost one of
/// the images it held.
#[derive(Debug, Clone)]
pub struct ImageArchiveStep {
    /// Key into the artifact store (`image-archive/<i>/<file>`).
    pub archive: String,
    pub namespace: String,
}

impl Playbook {
    /// This playbook with each `image_archives` step replaced by one step per archive
    /// (store name, and a `when` condition limiting it to some hosts), in order; without
    /// archives the step disappears.
    pub fn with_image_archives(&self, archives: &[(String, Option<String>)]) -> Playbook {
        let mut pb = self.clone();
        pb.steps = self
            .steps
            .iter()
            .flat_map(|s| match &s.kind {
                StepKind::ImageArchives(a) => archives
                    .iter()
                    .map(|(name, when)| Step {
                        name: format!("image archive {}", name.rsplit('/').next().unwrap_or(name)),
                        when: match (&s.when, when) {
                            (Some(a), Some(b)) => Some(format!("({a}) and ({b})")),
                            (a, b) => a.clone().or(b.clone()),
                        },
                        notify: s.notify.clone(),
                        kind: StepKind::ImageArchive(ImageArchiveStep {
                            archive: name.clone(),
                            namespace: a.namespace.clone(),
                        }),
                    })
                    .collect::<Vec<_>>(),
                _ => vec![s.clone()],
            })
            .collect();
        pb
    }
}

/// Playbooks shipped in the binary.
pub const EMBEDDED: &[(&str, &str)] = &[(
    "prepare-node",
    include_str!("../../playbooks/prepare-node.yaml"),
)];

impl Playbook {
    /// Loads playbook `name`: from `dir/NAME.yaml` when a directory is given and the file
    /// exists there, else the embedded one.
    pub fn load(name: &str, dir: Option<&Path>) -> Result<Playbook, PlaybookError> {
        if let Some(dir) = dir {
            if !dir.is_dir() {
                // A typo in --playbook-dir must not silently run the embedded playbook.
                return Err(PlaybookError {
                    origin: dir.display().to_string(),
                    step: None,
                    field: None,
                    message: "--playbook-dir: no such directory; give a directory holding playbooks named NAME.yaml".into(),
                });
            }
            let p = dir.join(format!("{name}.yaml"));
            if p.exists() {
                let text = std::fs::read_to_string(&p).map_err(|e| PlaybookError {
                    origin: p.display().to_string(),
                    step: None,
                    field: None,
                    message: format!("cannot read: {e}"),
                })?;
                return Self::parse(&p.display().to_string(), &text);
            }
        }
        let (_, text) = EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| PlaybookError {
                origin: name.to_string(),
                step: None,
                field: None,
                message: format!(
                    "no such playbook; embedded: {}",
                    EMBEDDED
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        Self::parse(&format!("playbooks/{name}.yaml (embedded)"), text)
    }

    /// Parses playbook text; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Playbook, PlaybookError> {
        parse::parse(origin, text)
    }
}

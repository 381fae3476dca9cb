//! Everything kubeboot does to a machine goes through [`Host`]: the local machine
//! ([`LocalHost`], optionally under a root prefix for `--root` and tests) or a remote one
//! over SSH ([`SshHost`]). Phases, PKI and rendering never touch a filesystem directly, so
//! the same code runs on a node, against a temp dir, and from a workstation.
//!
//! The trait is synchronous on purpose: a phase is a sequence of steps on one host, and
//! parallelism across hosts is a thread per host. Remote hosts keep their async SSH
//! machinery inside.

pub mod known_hosts;
mod local;
pub mod ssh;

pub use local::LocalHost;
pub use ssh::{Bastion, SshConfig, SshHost};

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Permission bits of the file (e.g. 0o600 for private keys).
    pub mode: u32,
    /// Permission bits of parent directories created on the way.
    pub dir_mode: u32,
    /// Owner `(uid, gid)`, or `None` to leave it to the writer (root).
    pub owner: Option<(u32, u32)>,
}

impl WriteOptions {
    /// A private file: 0600 in 0755 directories (keys, kubeconfigs).
    pub const PRIVATE: WriteOptions = WriteOptions {
        mode: 0o600,
        dir_mode: 0o755,
        owner: None,
    };
    /// A world-readable file: 0644 in 0755 directories (certificates, configs).
    pub const PUBLIC: WriteOptions = WriteOptions {
        mode: 0o644,
        dir_mode: 0o755,
        owner: None,
    };

    /// The same options with other parent-directory permissions.
    pub const fn in_dir_mode(self, dir_mode: u32) -> WriteOptions {
        WriteOptions { dir_mode, ..self }
    }
}

/// Mode and modification time of a file, for idempotency checks and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub mode: u32,
    pub len: u64,
    pub modified: std::time::SystemTime,
    pub is_dir: bool,
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// stdout as text, lossily.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text, lossily.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Input and limits of a command.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Bytes written to the command's stdin (then closed).
    pub stdin: Option<Vec<u8>>,
    /// Kill the command after this long.
    pub timeout: Option<Duration>,
}

/// Why an operation on a host failed. Every variant names the host and the path or
/// command, and the text says what to do where that is knowable.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{host}: cannot {op} {}: {error}{}", path.display(), hint(error))]
    Io {
        host: String,
        op: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{host}: cannot run `{command}`: {error}")]
    Spawn {
        host: String,
        command: String,
        error: std::io::Error,
    },
    #[error("{host}: `{command}` did not finish within {}s and was killed", timeout.as_secs_f32())]
    Timeout {
        host: String,
        command: String,
        timeout: Duration,
    },
    /// The host could not be reached or the SSH handshake failed.
    #[error("{host}: {message}")]
    Connect { host: String, message: String },
    /// The host key was refused (unknown, changed, revoked).
    #[error("{host}: {message}")]
    HostKey { host: String, message: String },
    /// No key was accepted for the login user.
    #[error("{host}: {message}")]
    Auth { host: String, message: String },
    /// The SSH connection failed while running a command.
    #[error("{host}: `{command}`: {message}")]
    Ssh {
        host: String,
        command: String,
        message: String,
    },
    /// A file operation on a remote host failed.
    #[error("{host}: cannot {op} {}: {message}", path.display())]
    Remote {
        host: String,
        op: &'static str,
        path: PathBuf,
        message: String,
    },
}

impl HostError {
    /// Whether the host itself is unusable (unreachable, refused, connection lost), as
    /// opposed to one operation failing on a working host.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            HostError::Connect { .. }
                | HostError::HostKey { .. }
                | HostError::Auth { .. }
                | HostError::Ssh { .. }
        )
    }
}

fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            " (run as root, or choose a directory you may write)"
        }
        std::io::ErrorKind::ReadOnlyFilesystem => {
            " (the filesystem is read-only; choose another directory)"
        }
        std::io::ErrorKind::NotADirectory => " (a parent of this path is a file, not a directory)",
        _ => "",
    }
}

/// A machine kubeboot acts on.
pub trait Host: Send + Sync {
    /// Name used in messages: the node name or address, or `localhost`.
    fn name(&self) -> &str;

    /// Reads a whole file; `Ok(None)` when it does not exist.
    fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, HostError>;

    /// Writes a file atomically (temp file in the same directory, then rename), creating
    /// parent directories. Readers see the old content or the new, never a mix, and a
    /// failed write leaves the old file in place.
    fn write_file(&self, path: &Path, contents: &[u8], opts: WriteOptions)
    -> Result<(), HostError>;

    /// Removes a file; `Ok(false)` when it was already absent.
    fn remove_file(&self, path: &Path) -> Result<bool, HostError>;

    /// Mode, size and mtime of a path; `Ok(None)` when it does not exist.
    fn file_info(&self, path: &Path) -> Result<Option<FileInfo>, HostError>;

    /// Points the symbolic link `link` at `target` (taken as written: a relative target
    /// is relative to the link's directory), replacing a link that is there. The default
    /// runs `ln -sfn`.
    fn symlink(&self, target: &str, link: &Path) -> Result<(), HostError> {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let command = format!(
            "ln -sfn {} {}",
            quote(target),
            quote(&link.display().to_string())
        );
        let out = self.run(&command, &RunOptions::default())?;
        if out.success() {
            return Ok(());
        }
        Err(HostError::Remote {
            host: self.name().to_string(),
            op: "link",
            path: link.to_path_buf(),
            message: out.stderr_text().trim().to_string(),
        })
    }

    /// Runs a shell command line (`sh -c`) as root.
    fn run(&self, command: &str, opts: &RunOptions) -> Result<CommandOutput, HostError>;

    /// Like [`Host::run`], and hands stdout to `on_stdout` as it arrives, so callers can
    /// show progress of a long script. The default calls it once at the end.
    fn run_streaming(
        &self,
        command: &str,
        opts: &RunOptions,
        on_stdout: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<CommandOutput, HostError> {
        let out = self.run(command, opts)?;
        on_stdout(&out.stdout);
        Ok(out)
    }

    /// Like [`Host::run`] with a local file as stdin. Hosts over SSH read the file as
    /// they send it, so a large upload (an image archive) is never held in memory; the
    /// default reads it whole.
    fn run_with_stdin_file(
        &self,
        command: &str,
        file: &Path,
        timeout: Option<Duration>,
    ) -> Result<CommandOutput, HostError> {
        let bytes = std::fs::read(file).map_err(|error| HostError::Io {
            host: self.name().to_string(),
            op: "read",
            path: file.to_path_buf(),
            error,
        })?;
        self.run(
            command,
            &RunOptions {
                stdin: Some(bytes),
                timeout,
            },
        )
    }

    /// Commands (SSH channels) run so far, for hosts where each is a network round trip.
    fn round_trips(&self) -> Option<u64> {
        None
    }
}

/// Shell that runs `systemctl daemon-reload` only when systemd needs it for `units`: when
/// it has not loaded a unit's file (`LoadState=not-found`) or holds an older copy of the
/// file or its drop-ins (`NeedDaemonReload=yes`). Every reload re-runs all of systemd's
/// generators, about 0.2 CPU-seconds and 0.3-0.7 s on a busy node, and the commands that
/// follow wait for it; an unconditional reload before each `systemctl` call made nine per
/// worker in `up`, where one or two were needed.
pub fn systemd_reload_if_stale(units: &[&str]) -> String {
    let names: Vec<String> = units
        .iter()
        .map(|u| format!("'{}'", u.replace('\'', r"'\''")))
        .collect();
    format!(
        "case \"$(systemctl show -p LoadState -p NeedDaemonReload {} 2>/dev/null)\" in \
         *LoadState=not-found*|*NeedDaemonReload=yes*) systemctl daemon-reload ;; esac\n",
        names.join(" ")
    )
}

#[cfg(test)]
mod reload_tests {
    use super::systemd_reload_if_stale;

    /// The shell against a `systemctl` stand-in that answers `show` as systemd would for
    /// each state, and records whether it was asked to reload (systemd itself cannot run
    /// here; the lab tests run the real one).
    fn reloads(show: &str) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let fake = dir.path().join("systemctl");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\ncase \"$1\" in show) printf '%s\\n' '{}' | tr '|' '\\n' ;; *) echo \"$*\" >> {} ;; esac\n",
                show,
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = systemd_reload_if_stale(&["kubelet.service", "it's.service"]);
        let st = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    dir.path().display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .status()
            .unwrap();
        assert!(st.success(), "{script}");
        std::fs::read_to_string(&log).unwrap_or_default() == "daemon-reload\n"
    }

    #[test]
    fn reloads_only_for_a_unit_systemd_lacks_or_holds_stale() {
        assert!(!reloads("LoadState=loaded|NeedDaemonReload=no"));
        assert!(reloads("LoadState=not-found|NeedDaemonReload=no"));
        assert!(reloads("LoadState=loaded|NeedDaemonReload=yes"));
        assert!(reloads(
            "LoadState=loaded|NeedDaemonReload=no||LoadState=loaded|NeedDaemonReload=yes"
        ));
        assert!(!reloads(
            "LoadState=loaded|NeedDaemonReload=no||LoadState=masked|NeedDaemonReload=no"
        ));
    }
}

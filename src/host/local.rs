//! The machine kubeboot runs on, optionally with every path placed under a root prefix.

use super::{CommandOutput, FileInfo, Host, HostError, RunOptions, WriteOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// This machine. With a root prefix, every file path is taken relative to it (the node's
/// `/etc/kubernetes` becomes `<root>/etc/kubernetes`); commands still run on this machine.
#[derive(Debug, Clone)]
pub struct LocalHost {
    root: Option<PathBuf>,
    name: String,
}

impl LocalHost {
    /// This machine's real filesystem.
    pub fn new() -> Self {
        LocalHost {
            root: None,
            name: "localhost".into(),
        }
    }

    /// This machine with every path under `root` (for `--root`, `--dry-run` and tests).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        LocalHost {
            name: format!("localhost (root {})", root.display()),
            root: Some(root),
        }
    }

    /// Where a node path lives on this machine.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match &self.root {
            None => path.to_path_buf(),
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        }
    }

    fn io(&self, op: &'static str, path: &Path, error: std::io::Error) -> HostError {
        HostError::Io {
            host: self.name.clone(),
            op,
            path: path.to_path_buf(),
            error,
        }
    }
}

/// A path is absent when it, or a parent directory, does not exist.
fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

impl Default for LocalHost {
    fn default() -> Self {
        Self::new()
    }
}

impl Host for LocalHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, HostError> {
        let real = self.resolve(path);
        match std::fs::read(&real) {
            Ok(b) => Ok(Some(b)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(self.io("read", &real, e)),
        }
    }

    fn write_file(
        &self,
        path: &Path,
        contents: &[u8],
        opts: WriteOptions,
    ) -> Result<(), HostError> {
        let real = self.resolve(path);
        let dir = real.parent().unwrap_or(Path::new("/"));
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(opts.dir_mode)
                .create(dir)
                .map_err(|e| self.io("create directory", dir, e))?;
        }
        let file_name = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(
            ".{file_name}.kubeboot-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(opts.mode)
                .open(&tmp)?;
            // The umask may have narrowed the mode; set it exactly.
            f.set_permissions(std::fs::Permissions::from_mode(opts.mode))?;
            f.write_all(contents)?;
            f.sync_all()?;
            if let Some((uid, gid)) = opts.owner {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
            }
            std::fs::rename(&tmp, &real)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io("write", &real, e));
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> Result<bool, HostError> {
        let real = self.resolve(path);
        match std::fs::remove_file(&real) {
            Ok(()) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(self.io("remove", &real, e)),
        }
    }

    fn symlink(&self, target: &str, link: &Path) -> Result<(), HostError> {
        // A new link beside the old one, renamed over it: never a moment without one.
        let real = self.resolve(link);
        let tmp = real.with_file_name(format!(
            ".{}.kubeboot-link",
            real.file_name().unwrap_or_default().to_string_lossy()
        ));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).map_err(|e| self.io("link", &tmp, e))?;
        std::fs::rename(&tmp, &real).map_err(|e| self.io("link", &real, e))
    }

    fn file_info(&self, path: &Path) -> Result<Option<FileInfo>, HostError> {
        let real = self.resolve(path);
        match std::fs::metadata(&real) {
            Ok(m) => Ok(Some(FileInfo {
                mode: m.mode() & 0o7777,
                len: m.len(),
                modified: m.modified().map_err(|e| self.io("stat", &real, e))?,
                is_dir: m.is_dir(),
            })),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(self.io("stat", &real, e)),
        }
    }

    fn run(&self, command: &str, opts: &RunOptions) -> Result<CommandOutput, HostError> {
        let spawn_err = |error| HostError::Spawn {
            host: self.name.clone(),
            command: command.to_string(),
            error,
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(if opts.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        if let Some(input) = &opts.stdin {
            let mut stdin = child.stdin.take().expect("piped");
            let input = input.clone();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let out_t = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out.read_to_end(&mut b);
            b
        });
        let err_t = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            b
        });
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().map_err(spawn_err)? {
                break s;
            }
            if let Some(t) = opts.timeout
                && start.elapsed() > t
            {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HostError::Timeout {
                    host: self.name.clone(),
                    command: command.to_string(),
                    timeout: t,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ok(CommandOutput {
            status: status.code().unwrap_or(-1),
            stdout: out_t.join().unwrap_or_default(),
            stderr: err_t.join().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_with_mode_under_root() {
        let dir = tempfile::tempdir().unwrap();
        let h = LocalHost::with_root(dir.path());
        let p = Path::new("/etc/kubernetes/pki/ca.key");
        h.write_file(p, b"secret", WriteOptions::PRIVATE).unwrap();
        let real = dir.path().join("etc/kubernetes/pki/ca.key");
        assert_eq!(std::fs::read(&real).unwrap(), b"secret");
        assert_eq!(h.file_info(p).unwrap().unwrap().mode, 0o600);
        assert_eq!(h.read_file(p).unwrap().unwrap(), b"secret");
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(real.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(h.remove_file(p).unwrap());
        assert!(!h.remove_file(p).unwrap());
        assert!(h.read_file(p).unwrap().is_none());
    }

    #[test]
    fn write_under_a_file_fails_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blocker"), b"").unwrap();
        let h = LocalHost::with_root(dir.path());
        let err = h
            .write_file(Path::new("/blocker/pki/ca.crt"), b"x", WriteOptions::PUBLIC)
            .unwrap_err()
            .to_string();
        assert!(err.contains("blocker/pki"), "{err}");
    }

    #[test]
    fn runs_commands_with_stdin_and_timeout() {
        let h = LocalHost::new();
        let out = h
            .run(
                "cat; echo err >&2; exit 3",
                &RunOptions {
                    stdin: Some(b"hello".to_vec()),
                    timeout: None,
                },
            )
            .unwrap();
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr_text().trim(), "err");
        let e = h
            .run(
                "sleep 5",
                &RunOptions {
                    stdin: None,
                    timeout: Some(Duration::from_millis(100)),
                },
            )
            .unwrap_err();
        assert!(matches!(e, HostError::Timeout { .. }));
    }
}

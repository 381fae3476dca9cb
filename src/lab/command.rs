//! Running host programs (`ip`, `mount`, `ssh-keygen`, `ssh`, ...) with errors that carry
//! the command line and its stderr, and with a deadline where a program may hang (ssh to
//! a node that is still booting).

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::error::{LabError, Result};

/// Renders a command line for messages, quoting arguments that need it.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut parts = vec![shell_quote(&cmd.get_program().to_string_lossy())];
    parts.extend(cmd.get_args().map(|a| shell_quote(&a.to_string_lossy())));
    parts.join(" ")
}

/// Quotes one word for a POSIX shell, only when it needs it.
pub(crate) fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn spawn_error(cmd: &Command, source: std::io::Error) -> LabError {
    LabError::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    }
}

fn failed(cmd: &Command, status: ExitStatus, stderr: &[u8]) -> LabError {
    LabError::CommandFailed {
        command: describe(cmd),
        status: status.to_string(),
        stderr: String::from_utf8_lossy(stderr).trim().to_string(),
    }
}

/// Runs a command to completion; returns its stdout, or an error with its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(cmd, e))?;
    if !out.status.success() {
        return Err(failed(cmd, out.status, &out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command, but stops it (SIGKILL) when it exceeds `limit`. Returns the output
/// whatever the exit status; the caller decides what a failure means.
pub(crate) fn output_within(cmd: &mut Command, limit: Duration) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(cmd, e))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let status = match wait_within(&mut child, limit).map_err(|e| spawn_error(cmd, e))? {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = out_reader.join();
            let _ = err_reader.join();
            return Err(LabError::CommandTimeout {
                command: describe(cmd),
                secs: limit.as_secs().max(1),
            });
        }
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// Polls a child until it exits or `limit` passes (`None` then).
pub(crate) fn wait_within(
    child: &mut Child,
    limit: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// True when `program` is an executable file somewhere in PATH (or an absolute path).
pub(crate) fn in_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &std::path::Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        return is_exec(std::path::Path::new(program));
    }
    // Root's usual PATH may lack the sbin directories when run through some sudo setups.
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(Into::into))
        .any(|dir| is_exec(&dir.join(program)))
}

/// Returns the last `n` lines of a text file, or a note when it cannot be read.
pub(crate) fn tail(path: &std::path::Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n);
            lines[start..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("root@10.0.0.1"), "root@10.0.0.1");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn deadline_stops_a_hanging_command() {
        let started = Instant::now();
        let err =
            output_within(Command::new("sleep").arg("5"), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, LabError::CommandTimeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn failure_carries_stderr() {
        let err = run(Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("boom") && msg.contains("sh -c"), "{msg}");
    }
}

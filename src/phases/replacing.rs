//! Control-plane processes the kubelet is about to replace.
//!
//! When `init` (or a control plane's `join`) runs again on a node whose static Pods
//! already run and a manifest changed (another `controlPlaneComponentHealthCheck` changes
//! every startup probe, as in kubeadm; a new flag; a new image), the kubelet replaces
//! that Pod: it stops the old container a few seconds later and starts a new one. Until
//! then the old API server still answers `/readyz`, so `wait-control-plane` would pass at
//! once and the next phases would meet the restart (CI's `up` failed its joins on it).
//! So before waiting for `/readyz`, kubeboot waits for every control-plane process that
//! started before its manifest was last written to stop, as kubeadm's `upgrade` waits for
//! a static Pod's hash to change. Manifests are only rewritten when their content
//! changes, so a process older than its manifest is one the kubelet will replace.

use crate::host::{Host, RunOptions};
use std::time::Duration;

/// The static Pods whose processes are looked at, by manifest name (the container's
/// command starts with the same name, possibly with a directory).
pub const COMPONENTS: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// How long the old processes are given to stop: the kubelet sees a manifest change at
/// once (inotify) or within its 20 s file check, then stops the old container within
/// its grace period.
pub const STOP_WAIT: Duration = Duration::from_secs(60);

/// A process counts as older than its manifest when it started this much before the
/// manifest's last write: a process's start is known in clock ticks since boot (turned
/// into wall-clock time through `/proc/uptime`), a file's time from the wall clock, and
/// a replacement never starts this fast.
const MARGIN_SECONDS: &str = "0.5";

/// One shell command (one round trip) that finds the processes of `components` that
/// started before their manifest in `dir` was written, prints `stale <name>:<pid> ...`,
/// then waits up to `wait` for them to exit and prints `gone` or `left <name>:<pid> ...`.
/// Prints nothing when there is none.
pub fn script(dir: &str, components: &[&str], wait: Duration) -> String {
    let names = components.join(" ");
    let dir = crate::host::ssh::shell_quote(dir);
    format!(
        r#"hz=$(getconf CLK_TCK); now=$(date +%s.%N); up=$(cut -d' ' -f1 /proc/uptime); stale=""
for c in {names}; do
  f={dir}/$c.yaml; [ -f "$f" ] || continue
  m=$(stat -c %.3Y "$f") || continue
  for p in $(pgrep -f "^([^ ]*/)?$c( |\$)"); do
    s=$(awk -v n="$now" -v u="$up" -v hz="$hz" '{{ sub(/^.*\) /, ""); printf "%.3f", n - u + $20 / hz }}' "/proc/$p/stat" 2>/dev/null) || continue
    [ -n "$s" ] && awk -v s="$s" -v m="$m" 'BEGIN {{ exit !(s + {MARGIN_SECONDS} < m) }}' && stale="$stale $c:$p"
  done
done
[ -z "$stale" ] && exit 0
echo "stale$stale"
end=$(( $(date +%s) + {wait} ))
while :; do
  left=""
  for cp in $stale; do kill -0 "${{cp#*:}}" 2>/dev/null && left="$left $cp"; done
  [ -z "$left" ] && {{ echo gone; exit 0; }}
  [ "$(date +%s)" -ge "$end" ] && {{ echo "left$left"; exit 0; }}
  sleep 0.2
done"#,
        wait = wait.as_secs().max(1),
    )
}

/// What [`wait_for_replacements`] saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replacements {
    /// Components with a process older than their manifest (each named once, in order).
    pub stale: Vec<String>,
    /// Those still running when the wait ended.
    pub left: Vec<String>,
}

/// Reads the script's output.
pub fn parse(out: &str) -> Replacements {
    let names = |rest: &str| {
        let mut v: Vec<String> = Vec::new();
        for item in rest.split_whitespace() {
            let name = item.split(':').next().unwrap_or(item).to_string();
            if !v.contains(&name) {
                v.push(name);
            }
        }
        v
    };
    let mut r = Replacements::default();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("stale") {
            r.stale = names(rest);
        } else if let Some(rest) = line.strip_prefix("left") {
            r.left = names(rest);
        }
    }
    r
}

/// Finds the control-plane processes on `host` that are older than their manifest in
/// `dir` and waits up to `wait` for the kubelet to stop them. `report` gets one line when
/// there are any and one when the wait ends. An error running the check is reported and
/// otherwise ignored: `/readyz` is still waited for.
pub fn wait_for_replacements(
    host: &dyn Host,
    dir: &str,
    wait: Duration,
    report: &dyn Fn(&str),
) -> Replacements {
    let started = std::time::Instant::now();
    let out = host.run(
        &script(dir, COMPONENTS, wait),
        &RunOptions {
            stdin: None,
            timeout: Some(wait + Duration::from_secs(30)),
        },
    );
    let r = match out {
        Ok(o) if o.success() => parse(&o.stdout_text()),
        Ok(o) => {
            report(&format!(
                "could not look for control-plane processes older than their manifests (exit {}): {}",
                o.status,
                o.stderr_text().trim()
            ));
            return Replacements::default();
        }
        Err(e) => {
            report(&format!(
                "could not look for control-plane processes older than their manifests: {e}"
            ));
            return Replacements::default();
        }
    };
    if r.stale.is_empty() {
        return r;
    }
    report(&format!(
        "The kubelet replaces {} (changed manifests): waited for the old containers to stop",
        r.stale.join(", ")
    ));
    if r.left.is_empty() {
        report(&format!(
            "The old containers stopped after {:.1}s",
            started.elapsed().as_secs_f64()
        ));
    } else {
        report(&format!(
            "WARNING: {} still running after {}s: is the kubelet running (`journalctl -u kubelet`)? Waiting for the API server all the same",
            r.left.join(", "),
            wait.as_secs()
        ));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_scripts_output() {
        assert_eq!(parse(""), Replacements::default());
        let r = parse("stale etcd:10 kube-apiserver:11 kube-apiserver:12\ngone\n");
        assert_eq!(r.stale, vec!["etcd", "kube-apiserver"]);
        assert!(r.left.is_empty());
        let r = parse("stale etcd:10 kube-scheduler:13\nleft kube-scheduler:13\n");
        assert_eq!(r.left, vec!["kube-scheduler"]);
    }

    /// Real processes on this machine: one started before its "manifest" was written
    /// (stale, stopped 1 s later), one started after (not stale); names unique to the test.
    #[test]
    fn finds_processes_older_than_their_manifest_and_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let old = format!("kbtest-old-{}", std::process::id());
        let new = format!("kbtest-new-{}", std::process::id());
        let spawn = |name: &str| {
            std::process::Command::new("bash")
                .args(["-c", &format!("exec -a {name} sleep 30")])
                .spawn()
                .unwrap()
        };
        let mut old_proc = spawn(&old);
        std::thread::sleep(Duration::from_millis(1200));
        std::fs::write(dir.path().join(format!("{old}.yaml")), "x").unwrap();
        std::fs::write(dir.path().join(format!("{new}.yaml")), "x").unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        let mut new_proc = spawn(&new);
        std::thread::sleep(Duration::from_millis(300));
        let host = crate::host::LocalHost::new();
        let cmd = script(
            dir.path().to_str().unwrap(),
            &[&old, &new],
            Duration::from_secs(2),
        );
        // Still running: the wait ends with it left.
        let out = host.run(&cmd, &RunOptions::default()).unwrap();
        assert!(out.success(), "{}", out.stderr_text());
        let r = parse(&out.stdout_text());
        assert_eq!(r.stale, vec![old.clone()], "{}", out.stdout_text());
        assert_eq!(r.left, vec![old.clone()]);
        // Stopped 1 s into the wait: gone.
        // (Killed and reaped: a zombie still answers `kill -0`; containerd's shim reaps.)
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            let _ = old_proc.kill();
            let _ = old_proc.wait();
        });
        let t0 = std::time::Instant::now();
        let out = host
            .run(
                &script(
                    dir.path().to_str().unwrap(),
                    &[&old, &new],
                    Duration::from_secs(20),
                ),
                &RunOptions::default(),
            )
            .unwrap();
        killer.join().unwrap();
        let r = parse(&out.stdout_text());
        assert_eq!(r.stale, vec![old.clone()], "{}", out.stdout_text());
        assert!(r.left.is_empty(), "{}", out.stdout_text());
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        // Nothing older than its manifest any more: prints nothing.
        let out = host.run(&cmd, &RunOptions::default()).unwrap();
        assert_eq!(out.stdout_text(), "");
        let _ = new_proc.kill();
        let _ = new_proc.wait();
    }
}

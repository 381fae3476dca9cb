//! Control-plane processes the kubelet replaces.
//!
//! When `init` (or a control plane's `join`) runs again on a node whose static Pods
//! already run and a manifest changed (another `controlPlaneComponentHealthCheck` changes
//! every startup probe, as in kubeadm; a new flag; a new image), the kubelet replaces
//! that Pod. The v1.20 kubelet starts the new one while it stops the old one, so the new
//! etcd, controller-manager and scheduler found their ports taken, crashed and waited out
//! back-offs (the API server was ready 47 s later), and until then the old API server
//! still answered `/readyz`: `wait-control-plane` passed at once and the next phases or
//! the joins met the restart (CI's `up` failed its joins on it). So:
//! - a changed manifest of a running component is first removed, its old processes are
//!   waited for to stop (the kubelet stops them), then the new manifest is written
//!   ([`stop_running`], from init's `etcd` and `control-plane` phases);
//! - before waiting for `/readyz`, kubeboot waits for every control-plane process that
//!   started before its manifest was last written to stop (a kubelet that was not running
//!   when the manifest changed), as kubeadm's `upgrade` waits for a static Pod's hash to
//!   change ([`wait_for_replacements`]). Manifests are only rewritten when their content
//!   changes, so a process older than its manifest is one the kubelet will replace.

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

/// How long the kubelet is given to stop a removed manifest's processes before kubeboot
/// sends them SIGTERM itself. A running kubelet stops them within a second or two; the
/// v1.20 kubelet deletes Pods only once it has heard from the API server, which is not
/// up when init runs again after stopping in wait-control-plane.
pub const TERM_AFTER: Duration = Duration::from_secs(5);

/// A process counts as older than its manifest when it started this much before the
/// manifest's last write: a process's start is known in clock ticks since boot (turned
/// into wall-clock time through `/proc/uptime`), a file's time from the wall clock, and
/// a replacement never starts this fast.
const MARGIN_SECONDS: &str = "0.5";

/// Whether the kubelet runs (it is what stops a removed manifest's Pod).
pub const KUBELET_RUNS: &str =
    "command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet kubelet";

/// Which processes of the components a [`Look`] waits for.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// Those older than their manifest in this directory (`wait-control-plane`).
    OlderThanManifestIn(&'a str),
    /// Every running one (their manifests were just removed).
    Every,
}

/// What to look for and how long to wait.
#[derive(Debug, Clone)]
pub struct Look<'a> {
    /// Components by manifest name (the container's command starts with the same name,
    /// possibly with a directory).
    pub components: &'a [&'a str],
    pub select: Select<'a>,
    pub wait: Duration,
    /// A command that succeeds when the kubelet runs; when it fails nothing is waited
    /// for, as nothing would stop the processes. `None`: no such check.
    pub kubelet_runs: Option<&'a str>,
    /// Sends SIGTERM to the processes still running after this long (what the kubelet
    /// would do to stop them); `None`: only waits.
    pub term_after: Option<Duration>,
}

/// One shell command (one round trip) that finds the processes of `look.components`
/// (those older than their manifest, or all), prints `stale <name>:<pid> ...`, then waits
/// up to `look.wait` for them to exit and prints `gone` or `left <name>:<pid> ...`.
/// Prints nothing when there is none, and `no-kubelet` when the kubelet does not run.
pub fn script(look: &Look) -> String {
    let names = look.components.join(" ");
    let kubelet = match look.kubelet_runs {
        Some(check) => format!("if ! {{ {check}; }}; then echo no-kubelet; exit 0; fi\n"),
        None => String::new(),
    };
    let select = match look.select {
        Select::OlderThanManifestIn(dir) => {
            let dir = crate::host::ssh::shell_quote(dir);
            format!(
                r#"  f={dir}/$c.yaml; [ -f "$f" ] || continue
  m=$(stat -c %.3Y "$f") || continue
  for p in $(pgrep -f "^([^ ]*/)?$c( |\$)"); do
    s=$(awk -v n="$now" -v u="$up" -v hz="$hz" '{{ sub(/^.*\) /, ""); printf "%.3f", n - u + $20 / hz }}' "/proc/$p/stat" 2>/dev/null) || continue
    [ -n "$s" ] && awk -v s="$s" -v m="$m" 'BEGIN {{ exit !(s + {MARGIN_SECONDS} < m) }}' && stale="$stale $c:$p"
  done"#
            )
        }
        Select::Every => {
            r#"  for p in $(pgrep -f "^([^ ]*/)?$c( |\$)"); do stale="$stale $c:$p"; done"#
                .to_string()
        }
    };
    format!(
        r#"{kubelet}hz=$(getconf CLK_TCK); now=$(date +%s.%N); up=$(cut -d' ' -f1 /proc/uptime); stale=""
for c in {names}; do
{select}
done
[ -z "$stale" ] && exit 0
echo "stale$stale"
start=$(date +%s); end=$(( start + {wait} )); term={term}
while :; do
  left=""
  for cp in $stale; do kill -0 "${{cp#*:}}" 2>/dev/null && left="$left $cp"; done
  [ -z "$left" ] && {{ echo gone; exit 0; }}
  [ "$(date +%s)" -ge "$end" ] && {{ echo "left$left"; exit 0; }}
  if [ "$term" -ge 0 ] && [ "$(date +%s)" -ge $(( start + term )) ]; then
    echo "terminated$left"; for cp in $left; do kill -TERM "${{cp#*:}}" 2>/dev/null; done; term=-1
  fi
  sleep 0.2
done"#,
        wait = look.wait.as_secs().max(1),
        term = look
            .term_after
            .map(|d| d.as_secs().to_string())
            .unwrap_or_else(|| "-1".into()),
    )
}

/// What [`wait_for_replacements`] saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replacements {
    /// Components with a process older than their manifest (each named once, in order).
    pub stale: Vec<String>,
    /// Those still running when the wait ended.
    pub left: Vec<String>,
    /// Those kubeboot sent SIGTERM to, the kubelet not having stopped them in time.
    pub terminated: Vec<String>,
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
        } else if let Some(rest) = line.strip_prefix("terminated") {
            r.terminated = names(rest);
        }
    }
    r
}

/// Runs a [`Look`] on `host`; an error running it is reported and otherwise ignored.
fn look_on(host: &dyn Host, look: &Look, report: &dyn Fn(&str)) -> Replacements {
    let out = host.run(
        &script(look),
        &RunOptions {
            stdin: None,
            timeout: Some(look.wait + Duration::from_secs(30)),
        },
    );
    match out {
        Ok(o) if o.success() => parse(&o.stdout_text()),
        Ok(o) => {
            report(&format!(
                "could not look for running control-plane processes (exit {}): {}",
                o.status,
                o.stderr_text().trim()
            ));
            Replacements::default()
        }
        Err(e) => {
            report(&format!(
                "could not look for running control-plane processes: {e}"
            ));
            Replacements::default()
        }
    }
}

/// The end of a wait, in words.
fn report_end(
    r: &Replacements,
    started: std::time::Instant,
    wait: Duration,
    report: &dyn Fn(&str),
) {
    if r.left.is_empty() {
        report(&format!(
            "The old containers stopped after {:.1}s",
            started.elapsed().as_secs_f64()
        ));
    } else {
        report(&format!(
            "WARNING: {} still running after {}s: is the kubelet running (`journalctl -u kubelet`)? Going on all the same",
            r.left.join(", "),
            wait.as_secs()
        ));
    }
}

/// After the manifests of `components` were removed (to be written anew):
/// waits up to [`STOP_WAIT`] for the kubelet to stop their running processes, so the new
/// Pods do not race the old ones for their ports. Nothing is waited for when the kubelet
/// does not run.
pub fn stop_running(host: &dyn Host, components: &[&str], report: &dyn Fn(&str)) -> Replacements {
    let started = std::time::Instant::now();
    let look = Look {
        components,
        select: Select::Every,
        wait: STOP_WAIT,
        kubelet_runs: Some(KUBELET_RUNS),
        term_after: Some(TERM_AFTER),
    };
    let r = look_on(host, &look, report);
    if !r.stale.is_empty() {
        report(&format!(
            "The manifest of {} changed: the running Pod is stopped first, so the new one does not race it for its ports",
            r.stale.join(", ")
        ));
        if !r.terminated.is_empty() {
            report(&format!(
                "The kubelet did not stop {} within {}s (it deletes Pods only once it has heard from the API server): sent SIGTERM, as the kubelet would",
                r.terminated.join(", "),
                TERM_AFTER.as_secs()
            ));
        }
        report_end(&r, started, STOP_WAIT, report);
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
    let look = Look {
        components: COMPONENTS,
        select: Select::OlderThanManifestIn(dir),
        wait,
        kubelet_runs: Some(KUBELET_RUNS),
        term_after: None,
    };
    let r = look_on(host, &look, report);
    if !r.stale.is_empty() {
        report(&format!(
            "The kubelet replaces {} (changed manifests): waited for the old containers to stop",
            r.stale.join(", ")
        ));
        report_end(&r, started, wait, report);
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
        let dir_s = dir.path().to_str().unwrap();
        let old = format!("kbtest-old-{}", std::process::id());
        let new = format!("kbtest-new-{}", std::process::id());
        let mut old_proc = spawn(&old);
        std::thread::sleep(Duration::from_millis(1200));
        std::fs::write(dir.path().join(format!("{old}.yaml")), "x").unwrap();
        std::fs::write(dir.path().join(format!("{new}.yaml")), "x").unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        let mut new_proc = spawn(&new);
        std::thread::sleep(Duration::from_millis(300));
        let host = crate::host::LocalHost::new();
        let components = [old.as_str(), new.as_str()];
        let look = |wait: u64| Look {
            components: &components,
            select: Select::OlderThanManifestIn(dir_s),
            wait: Duration::from_secs(wait),
            kubelet_runs: None,
            term_after: None,
        };
        // Still running: the wait ends with it left.
        let out = host.run(&script(&look(2)), &RunOptions::default()).unwrap();
        assert!(out.success(), "{}", out.stderr_text());
        let r = parse(&out.stdout_text());
        assert_eq!(r.stale, vec![old.clone()], "{}", out.stdout_text());
        assert_eq!(r.left, vec![old.clone()]);
        // Every running one, when the manifests are not looked at.
        let all = Look {
            select: Select::Every,
            ..look(1)
        };
        let r = parse(
            &host
                .run(&script(&all), &RunOptions::default())
                .unwrap()
                .stdout_text(),
        );
        assert_eq!(r.stale, vec![old.clone(), new.clone()]);
        // Without a kubelet, nothing is waited for.
        let no_kubelet = Look {
            kubelet_runs: Some("false"),
            ..look(20)
        };
        let t0 = std::time::Instant::now();
        let out = host
            .run(&script(&no_kubelet), &RunOptions::default())
            .unwrap();
        assert_eq!(out.stdout_text().trim(), "no-kubelet");
        assert_eq!(parse(&out.stdout_text()), Replacements::default());
        assert!(t0.elapsed() < Duration::from_secs(5));
        // Stopped 1 s into the wait: gone.
        // (Killed and reaped: a zombie still answers `kill -0`; containerd's shim reaps.)
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            let _ = old_proc.kill();
            let _ = old_proc.wait();
        });
        let t0 = std::time::Instant::now();
        let out = host
            .run(&script(&look(20)), &RunOptions::default())
            .unwrap();
        killer.join().unwrap();
        let r = parse(&out.stdout_text());
        assert_eq!(r.stale, vec![old.clone()], "{}", out.stdout_text());
        assert!(r.left.is_empty(), "{}", out.stdout_text());
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        // Nothing older than its manifest any more: prints nothing.
        let out = host.run(&script(&look(2)), &RunOptions::default()).unwrap();
        assert_eq!(out.stdout_text(), "");
        // Still running after a second: sent SIGTERM, and gone (reaped by a waiting
        // thread, as containerd's shim would).
        let reaper = std::thread::spawn(move || new_proc.wait());
        let term = Look {
            select: Select::Every,
            term_after: Some(Duration::from_secs(1)),
            components: &components[1..],
            ..look(20)
        };
        let t0 = std::time::Instant::now();
        let out = host.run(&script(&term), &RunOptions::default()).unwrap();
        let r = parse(&out.stdout_text());
        assert_eq!(r.stale, vec![new.clone()], "{}", out.stdout_text());
        assert_eq!(r.terminated, vec![new.clone()], "{}", out.stdout_text());
        assert!(r.left.is_empty(), "{}", out.stdout_text());
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            reaper.join().unwrap().unwrap().signal(),
            Some(libc::SIGTERM)
        );
    }

    fn spawn(name: &str) -> std::process::Child {
        std::process::Command::new("bash")
            .args(["-c", &format!("exec -a {name} sleep 30")])
            .spawn()
            .unwrap()
    }
}

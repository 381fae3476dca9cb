//! Running a playbook on one host with few round trips:
//!
//! 1. facts: one command;
//! 2. checks: one script printing the state of every step;
//! 3. (apply mode) the applies of the steps that differ, batched into as few scripts as
//!    possible (an artifact upload is its own command), each apply followed by its check
//!    again so a step only counts as done when the host really is in the wanted state;
//!    handlers notified by changed steps run at the end of the last script. An apt
//!    package step is shared by the hosts alike of a run (`debshare`): the first one
//!    downloads, and its .deb files are read once more and uploaded to the others.
//!
//! A no-op run therefore costs two round trips. A failing step does not stop the others
//! (they are mostly independent, and the report should say everything that is wrong);
//! losing the connection does.

use super::artifacts::{ArtifactStore, Payload};
use super::debshare;
use super::diff;
use super::steps::{self, Resolved};
use super::{Facts, Playbook, ServiceState, Step, StepKind};
use crate::host::{Host, HostError, RunOptions};
use base64::Engine;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Whether to change the host or only say what would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    Apply,
    Plan,
}

/// How one step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    /// Already as wanted.
    Ok,
    /// Changed, and checked afterwards.
    Changed,
    /// `--plan`: would be changed.
    WouldChange,
    /// Its `when` condition is false.
    Skipped,
    Failed,
    /// Not attempted (the host could not be reached or was lost).
    NotRun,
}

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub name: String,
    pub kind: &'static str,
    pub outcome: StepOutcome,
    /// What the check found, what was done, or why it failed.
    pub detail: String,
    /// For files, the difference between the host's content and the wanted one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    pub handler: bool,
}

/// One host's result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostReport {
    pub host: String,
    pub playbook: String,
    pub steps: Vec<StepReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<Facts>,
    /// Why the host failed as a whole (unreachable, refused, connection lost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub elapsed_ms: u128,
    /// SSH round trips (commands) this host cost, connection setup excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trips: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl HostReport {
    /// A report for a host that could not be reached.
    pub fn unreachable(host: &str, playbook: &Playbook, error: String, elapsed: Duration) -> Self {
        HostReport {
            host: host.to_string(),
            playbook: playbook.name.clone(),
            steps: Vec::new(),
            facts: None,
            error: Some(error),
            elapsed_ms: elapsed.as_millis(),
            round_trips: None,
            notes: Vec::new(),
        }
    }

    fn count(&self, o: StepOutcome) -> usize {
        self.steps.iter().filter(|s| s.outcome == o).count()
    }

    /// Steps already as wanted.
    pub fn ok(&self) -> usize {
        self.count(StepOutcome::Ok)
    }

    /// Steps changed (or, in plan mode, that would change).
    pub fn changed(&self) -> usize {
        self.count(StepOutcome::Changed) + self.count(StepOutcome::WouldChange)
    }

    /// Steps that failed.
    pub fn failed_steps(&self) -> usize {
        self.count(StepOutcome::Failed)
    }

    /// Whether the host failed (a step failed, or the host could not be used).
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.failed_steps() > 0
    }
}

/// Progress of one host, for live display and `--output json`.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A phase of the run: `connecting`, `facts`, `checking`, `applying`.
    Phase(&'a str),
    /// A step's apply started.
    StepStarted(&'a str),
    /// A step finished (checks in plan mode and unchanged steps are reported after the
    /// check script; changed steps as their apply finishes).
    Step(&'a StepReport),
    /// Something worth telling (e.g. a host key accepted).
    Note(&'a str),
    /// The host's facts, gathered before any check (`up` decides from them early).
    Facts(&'a Facts),
    /// The host is done.
    Finished(&'a HostReport),
}

/// Receives events from host threads.
pub trait Observer: Sync {
    fn on(&self, host: &str, event: Event<'_>);
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn on(&self, _: &str, _: Event<'_>) {}
}

struct Entry<'a> {
    step: &'a Step,
    handler: bool,
    resolved: Option<Resolved>,
    report: StepReport,
}

/// Renders templates and `when` expressions with the host's context.
struct Renderer {
    tera: tera::Tera,
    ctx: tera::Context,
}

impl Renderer {
    fn render(&self, s: &str) -> Result<String, String> {
        if !s.contains("{{") && !s.contains("{%") {
            return Ok(s.to_string());
        }
        self.tera
            .render_str(s, &self.ctx, false)
            .map_err(|e| format!("template error: {e}"))
    }

    fn condition(&self, when: &str) -> Result<bool, String> {
        let expr = when.trim();
        let expr = expr
            .strip_prefix("{{")
            .and_then(|e| e.strip_suffix("}}"))
            .unwrap_or(expr)
            .trim();
        let out = self
            .tera
            .render_str(
                &format!("{{% if {expr} %}}true{{% else %}}false{{% endif %}}"),
                &self.ctx,
                false,
            )
            .map_err(|e| format!("when: {e}"))?;
        Ok(out == "true")
    }
}

const MARK: &str = "@@kb ";

/// Per-step output of the check script.
#[derive(Debug, Default)]
struct CheckOutput {
    rc: Option<i32>,
    text: String,
    current: Option<Vec<u8>>,
    wanted: Option<Vec<u8>>,
}

fn parse_checks(out: &str) -> BTreeMap<usize, CheckOutput> {
    let mut map: BTreeMap<usize, CheckOutput> = BTreeMap::new();
    let mut cur: Option<usize> = None;
    let b64 = base64::engine::general_purpose::STANDARD;
    for line in out.lines() {
        if let Some(m) = line.strip_prefix(MARK) {
            let parts: Vec<&str> = m.split_whitespace().collect();
            match parts.as_slice() {
                ["check", i] => {
                    cur = i.parse().ok();
                    if let Some(i) = cur {
                        map.entry(i).or_default();
                    }
                }
                ["rc", i, rc] => {
                    if let (Ok(i), Ok(rc)) = (i.parse::<usize>(), rc.parse()) {
                        map.entry(i).or_default().rc = Some(rc);
                    }
                    cur = None;
                }
                _ => {}
            }
            continue;
        }
        let Some(i) = cur else { continue };
        let e = map.entry(i).or_default();
        if let Some(d) = line.strip_prefix("@@b64 ") {
            e.current = b64.decode(d.trim()).ok();
        } else if let Some(d) = line.strip_prefix("@@new64 ") {
            e.wanted = b64.decode(d.trim()).ok();
        } else {
            e.text.push_str(line);
            e.text.push('\n');
        }
    }
    map
}

/// Incremental reader of an apply script's output.
#[derive(Default)]
struct ApplyParser {
    buf: Vec<u8>,
    cur: Option<usize>,
    verifying: bool,
    apply_out: BTreeMap<usize, String>,
    verify_out: BTreeMap<usize, String>,
    done: BTreeMap<usize, (i32, Option<i32>)>,
}

impl ApplyParser {
    /// Feeds bytes; returns the markers completed: (index, started) or (index, done).
    fn feed(&mut self, bytes: &[u8]) -> Vec<(usize, bool)> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if let Some(m) = line.strip_prefix(MARK) {
                let parts: Vec<&str> = m.split_whitespace().collect();
                match parts.as_slice() {
                    ["apply", i] => {
                        if let Ok(i) = i.parse() {
                            self.cur = Some(i);
                            self.verifying = false;
                            events.push((i, true));
                        }
                    }
                    ["verify", _] => self.verifying = true,
                    ["done", i, rc, vrc] => {
                        if let (Ok(i), Ok(rc)) = (i.parse(), rc.parse()) {
                            self.done.insert(i, (rc, vrc.parse().ok()));
                            events.push((i, false));
                        }
                        self.cur = None;
                    }
                    _ => {}
                }
                continue;
            }
            if let Some(i) = self.cur {
                let target = if self.verifying {
                    &mut self.verify_out
                } else {
                    &mut self.apply_out
                };
                let s = target.entry(i).or_default();
                s.push_str(&line);
                s.push('\n');
            }
        }
        events
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.trim_end().lines().collect();
    let start = v.len().saturating_sub(lines);
    v[start..].join("\n")
}

/// One apply script block for step `i`.
fn apply_block(i: usize, r: &Resolved, verify: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "echo '{MARK}apply {i}'");
    let _ = writeln!(
        s,
        "( set -e\n{}\n) 2>&1 </dev/null\nrc=$?",
        r.apply.trim_end()
    );
    if verify {
        let _ = writeln!(
            s,
            "if [ $rc -eq 0 ]; then echo '{MARK}verify {i}'; ( {}\n) 2>&1 </dev/null; vrc=$?; else vrc=-; fi",
            r.check.trim_end()
        );
    } else {
        s.push_str("vrc=0\n");
    }
    let _ = writeln!(s, "[ $rc -eq 0 ] && [ \"$vrc\" = 0 ] && ok_{i}=1");
    let _ = writeln!(s, "echo \"{MARK}done {i} $rc $vrc\"");
    s
}

/// Runs `pb` on `host`. Never panics on host problems: everything ends up in the report.
pub fn run(
    host: &dyn Host,
    pb: &Playbook,
    vars: &serde_json::Value,
    store: &ArtifactStore,
    mode: RunMode,
    obs: &dyn Observer,
) -> HostReport {
    let start = Instant::now();
    let arrival = store.debs.arrival();
    let name = host.name().to_string();
    let mut report = HostReport {
        host: name.clone(),
        playbook: pb.name.clone(),
        steps: Vec::new(),
        facts: None,
        error: None,
        elapsed_ms: 0,
        round_trips: None,
        notes: Vec::new(),
    };
    let finish = |mut report: HostReport, entries: Vec<Entry>| {
        report.steps = entries.into_iter().map(|e| e.report).collect();
        report.elapsed_ms = start.elapsed().as_millis();
        report.round_trips = host.round_trips();
        report
    };
    let mut entries: Vec<Entry> = pb
        .steps
        .iter()
        .map(|s| (s, false))
        .chain(pb.handlers.iter().map(|s| (s, true)))
        .map(|(step, handler)| Entry {
            step,
            handler,
            resolved: None,
            report: StepReport {
                name: step.name.clone(),
                kind: step.kind.keyword(),
                outcome: StepOutcome::NotRun,
                detail: String::new(),
                diff: None,
                handler,
            },
        })
        .collect();

    obs.on(&name, Event::Phase("facts"));
    let facts = match Facts::gather(host) {
        Ok(f) => f,
        Err(e) => {
            report.error = Some(e.to_string());
            entries.retain(|e| !e.handler);
            return finish(report, entries);
        }
    };
    report.facts = Some(facts.clone());
    obs.on(&name, Event::Facts(&facts));
    let mut ctx_json = vars.clone();
    ctx_json["facts"] = serde_json::to_value(&facts).expect("facts serialize");
    let renderer = Renderer {
        tera: tera::Tera::new(),
        ctx: tera::Context::from_serialize(&ctx_json).expect("context is a map"),
    };

    // Conditions and rendering, locally.
    for e in entries.iter_mut() {
        if let Some(w) = &e.step.when {
            match renderer.condition(w) {
                Ok(true) => {}
                Ok(false) => {
                    e.report.outcome = StepOutcome::Skipped;
                    e.report.detail = format!("when: {w}");
                    continue;
                }
                Err(m) => {
                    e.report.outcome = StepOutcome::Failed;
                    e.report.detail = m;
                    continue;
                }
            }
        }
        let sha = |n: &str| store.get(n).map(|a| a.sha256.clone());
        match steps::resolve(e.step, &facts, &|s| renderer.render(s), &sha) {
            Ok(r) => e.resolved = Some(r),
            Err(m) => {
                e.report.outcome = StepOutcome::Failed;
                e.report.detail = m;
            }
        }
    }

    // One script checks every step. Checks may keep what several of them ask (containerd's
    // image list) in $KB_CHECK_DIR, a directory that lives as long as the script.
    obs.on(&name, Event::Phase("checking"));
    let mut script = String::from(
        "KB_CHECK_DIR=$(mktemp -d 2>/dev/null) || KB_CHECK_DIR=\n\
         trap '[ -z \"$KB_CHECK_DIR\" ] || rm -rf \"$KB_CHECK_DIR\"' EXIT\n",
    );
    for (i, e) in entries.iter().enumerate() {
        if e.handler {
            continue;
        }
        if let Some(r) = &e.resolved {
            let _ = writeln!(
                script,
                "echo '{MARK}check {i}'\n( {}\n) 2>&1 </dev/null\necho \"{MARK}rc {i} $?\"",
                r.check.trim_end()
            );
        }
    }
    let checks = match host.run(&script, &RunOptions::default()) {
        Ok(out) => parse_checks(&out.stdout_text()),
        Err(e) => {
            report.error = Some(e.to_string());
            entries.retain(|e| !e.handler);
            return finish(report, entries);
        }
    };
    let mut to_apply: Vec<usize> = Vec::new();
    for (i, e) in entries.iter_mut().enumerate() {
        if e.handler || e.resolved.is_none() {
            continue;
        }
        let c = checks.get(&i);
        let text = c.map(|c| c.text.trim_end().to_string()).unwrap_or_default();
        match c.and_then(|c| c.rc) {
            Some(0) => {
                e.report.outcome = StepOutcome::Ok;
                e.report.detail = text;
            }
            Some(1) => {
                e.report.detail = text;
                let c = c.expect("present");
                if let Some(wanted) = &c.wanted {
                    let old = c.current.clone().unwrap_or_default();
                    let label = match &e.step.kind {
                        StepKind::File(f) => renderer.render(&f.path).unwrap_or_default(),
                        StepKind::Line(l) => l.path.clone(),
                        StepKind::Sysctl(s) => s.file.clone(),
                        _ => e.step.name.clone(),
                    };
                    e.report.diff = diff::unified(
                        &label,
                        &String::from_utf8_lossy(&old),
                        &String::from_utf8_lossy(wanted),
                        3,
                    );
                }
                to_apply.push(i);
            }
            Some(rc) => {
                e.report.outcome = StepOutcome::Failed;
                e.report.detail = format!("check failed (exit {rc}): {}", tail(&text, 10));
            }
            None => {
                e.report.outcome = StepOutcome::Failed;
                e.report.detail = format!("check did not finish: {}", tail(&text, 10));
            }
        }
        if e.report.outcome != StepOutcome::NotRun {
            obs.on(&name, Event::Step(&e.report));
        }
    }

    if mode == RunMode::Plan {
        let mut notified: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for &i in &to_apply {
            entries[i].report.outcome = StepOutcome::WouldChange;
            obs.on(&name, Event::Step(&entries[i].report));
            for n in &entries[i].step.notify {
                notified.entry(n).or_default().push(&pb.steps[i].name);
            }
        }
        for e in entries.iter_mut().filter(|e| e.handler) {
            if let Some(by) = notified.get(e.step.name.as_str()) {
                e.report.outcome = StepOutcome::WouldChange;
                e.report.detail = format!("would run, notified by: {}", by.join(", "));
                obs.on(&name, Event::Step(&e.report));
            }
        }
        entries.retain(|e| !e.handler || e.report.outcome != StepOutcome::NotRun);
        return finish(report, entries);
    }

    // Package steps of apt hosts alike: the first host downloads for the others, which
    // install its .deb files without an `apt-get update` of their own (see debshare).
    let mut sources: Vec<(usize, debshare::Source)> = Vec::new();
    let mut receivers: BTreeMap<usize, debshare::Receiver> = BTreeMap::new();
    let shared: Vec<(usize, String)> = to_apply
        .iter()
        .filter_map(|&i| {
            let specs = entries[i].resolved.as_ref()?.share.as_ref()?;
            Some((i, debshare::key(&facts, specs)?))
        })
        .collect();
    let keys: Vec<String> = shared.iter().map(|(_, k)| k.clone()).collect();
    for ((i, _), role) in shared.iter().zip(arrival.keys(&keys)) {
        match role {
            debshare::Role::Source(s) => sources.push((*i, s)),
            debshare::Role::Receiver(r) => {
                receivers.insert(*i, r);
            }
        }
    }

    // Apply: consecutive script steps share one command; uploads and receiving package
    // steps go alone.
    if !to_apply.is_empty() {
        obs.on(&name, Event::Phase("applying"));
    }
    let alone = |i: usize| receivers.contains_key(&i) || is_upload(&entries, i);
    let mut segments: Vec<Vec<usize>> = Vec::new();
    for &i in &to_apply {
        match segments.last_mut() {
            Some(seg) if !alone(i) && !seg.is_empty() && !alone(seg[0]) => seg.push(i),
            _ => segments.push(vec![i]),
        }
    }
    let handler_idx: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].handler).collect();
    let mut lost: Option<String> = None;
    let n_segments = segments.len();
    let mut handlers_done = handler_idx.is_empty();
    let mut skip = 0;
    for (k, seg) in segments.iter().enumerate() {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        let last = k + 1 == n_segments;
        if lost.is_some() {
            break;
        }
        if let Some(r) = receivers.get(&seg[0]) {
            let i = seg[0];
            let specs = entries[i]
                .resolved
                .as_ref()
                .and_then(|r| r.share.clone())
                .unwrap_or_default();
            obs.on(&name, Event::StepStarted(&entries[i].step.name));
            let sent = match r.wait() {
                Ok(d) => {
                    host.run_with_stdin_file(&debshare::receiver_apply(&specs, &d), d.path(), None)
                }
                Err(why) => host.run(&debshare::usual_apply(&specs, &why), &RunOptions::default()),
            };
            let e = &mut entries[i];
            match sent {
                Ok(out) if out.success() => {
                    e.report.outcome = StepOutcome::Changed;
                    e.report.detail = debshare::summary(&out.stdout_text());
                }
                Ok(out) => {
                    e.report.outcome = StepOutcome::Failed;
                    e.report.detail = format!(
                        "apply failed (exit {}): {}",
                        out.status,
                        tail(&(out.stdout_text() + &out.stderr_text()), 15)
                    );
                }
                Err(err) => {
                    e.report.outcome = StepOutcome::Failed;
                    e.report.detail = err.to_string();
                    if err.is_connection() {
                        lost = Some(err.to_string());
                    }
                }
            }
            obs.on(&name, Event::Step(&e.report));
            continue;
        }
        if is_upload(&entries, seg[0]) {
            // This upload and the ones right after it, two at a time: the host imports
            // (or checks) one file while the next is on its way, which took a third
            // off the control-plane images (4 archives, 295 MB) on an idle lab node.
            let mut batch = vec![seg[0]];
            while let Some(next) = segments.get(k + batch.len()) {
                if !is_upload(&entries, next[0]) {
                    break;
                }
                batch.push(next[0]);
            }
            skip = batch.len() - 1;
            let jobs: Vec<(usize, &Resolved, String)> = batch
                .iter()
                .map(|&i| {
                    let r = entries[i].resolved.as_ref().expect("resolved");
                    (i, r, entries[i].report.detail.clone())
                })
                .collect();
            let done = upload_all(host, store, &name, &entries, &jobs, obs);
            for (i, outcome, detail, gone) in done {
                entries[i].report.outcome = outcome;
                entries[i].report.detail = detail;
                if lost.is_none() {
                    lost = gone;
                }
            }
            continue;
        }
        // A script segment; the last one also runs the handlers.
        let mut script = String::new();
        for &i in seg {
            script.push_str(&apply_block(
                i,
                entries[i].resolved.as_ref().expect("resolved"),
                true,
            ));
        }
        if last {
            script.push_str(&handler_script(&entries, &handler_idx, pb, &renderer, seg));
            handlers_done = true;
        }
        if let Some(k) = sources.iter().position(|(i, _)| seg.contains(i)) {
            let (i, source) = sources.swap_remove(k);
            let specs = entries[i].resolved.as_ref().and_then(|r| r.share.clone());
            let specs = specs.unwrap_or_default();
            debshare::share(host, &name, &specs, facts.dpkg_zstd, source, &store.debs);
        }
        run_script(host, &script, &mut entries, &name, obs, &mut lost);
    }
    if !handlers_done && lost.is_none() {
        let script = handler_script(&entries, &handler_idx, pb, &renderer, &[]);
        if script.contains(MARK) {
            run_script(host, &script, &mut entries, &name, obs, &mut lost);
        }
    }
    if let Some(e) = &lost {
        report.error = Some(e.clone());
        for e in entries.iter_mut() {
            if e.report.outcome == StepOutcome::NotRun && !e.handler && e.resolved.is_some() {
                e.report.outcome = StepOutcome::Failed;
                e.report.detail = "not applied: the connection to the host was lost".into();
            }
        }
    }
    entries.retain(|e| !e.handler || e.report.outcome != StepOutcome::NotRun);
    finish(report, entries)
}

fn is_upload(entries: &[Entry], i: usize) -> bool {
    entries[i]
        .resolved
        .as_ref()
        .is_some_and(|r| r.upload.is_some())
}

/// How many uploads to one host are on their way at once.
const UPLOADS_IN_FLIGHT: usize = 2;

/// Runs upload steps (`jobs`: entry, resolved step, its check's detail) on `host`,
/// [`UPLOADS_IN_FLIGHT`] at a time, in order of start; reports each step as it starts and
/// ends. Returns each step's outcome, detail and, when the connection was lost, why (no
/// further upload starts then: those steps are left out, still not run).
fn upload_all(
    host: &dyn Host,
    store: &ArtifactStore,
    name: &str,
    entries: &[Entry],
    jobs: &[(usize, &Resolved, String)],
    obs: &dyn Observer,
) -> Vec<(usize, StepOutcome, String, Option<String>)> {
    let gone = std::sync::atomic::AtomicBool::new(false);
    let done = crate::parallel::fan_out(jobs, UPLOADS_IN_FLIGHT, |(i, r, checked)| {
        if gone.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        obs.on(name, Event::StepStarted(&entries[*i].step.name));
        let (outcome, detail, lost) = upload_one(host, store, r, checked);
        if lost.is_some() {
            gone.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let mut report = entries[*i].report.clone();
        report.outcome = outcome;
        report.detail = detail.clone();
        obs.on(name, Event::Step(&report));
        Some((*i, outcome, detail, lost))
    });
    done.into_iter().flatten().collect()
}

/// One upload step: the artifact's bytes to the step's apply command (which checks their
/// sha256 and installs or imports them). `checked`: what the check said before.
fn upload_one(
    host: &dyn Host,
    store: &ArtifactStore,
    r: &Resolved,
    checked: &str,
) -> (StepOutcome, String, Option<String>) {
    let (art, _) = r.upload.clone().expect("an upload step");
    let payload = match store.payload(&art) {
        Err(m) => return (StepOutcome::Failed, m, None),
        Ok(p) => p,
    };
    let sent = match &payload {
        Payload::File { path, .. } => host.run_with_stdin_file(&r.apply, path, None),
        Payload::Bytes(b) => host.run(
            &r.apply,
            &RunOptions {
                stdin: Some(b.to_vec()),
                timeout: None,
            },
        ),
    };
    match sent {
        Ok(out) if out.success() => {
            let said = out.stdout_text().trim().to_string();
            let detail = if said.is_empty() {
                format!(
                    "installed {} bytes, sha256 checked on the host (was: {checked})",
                    payload.len()
                )
            } else {
                format!(
                    "{said} ({} bytes uploaded, sha256 checked on the host)",
                    payload.len()
                )
            };
            (StepOutcome::Changed, detail, None)
        }
        Ok(out) => (
            StepOutcome::Failed,
            format!(
                "upload failed (exit {}): {}",
                out.status,
                tail(&(out.stdout_text() + &out.stderr_text()), 10)
            ),
            None,
        ),
        Err(e) => {
            let lost = e.is_connection().then(|| e.to_string());
            (StepOutcome::Failed, e.to_string(), lost)
        }
    }
}

/// Handler blocks, each guarded by "a notifying step changed": steps finished in earlier
/// commands are known here; steps of `this_segment` are tested in the script (`ok_N`).
fn handler_script(
    entries: &[Entry],
    handler_idx: &[usize],
    pb: &Playbook,
    renderer: &Renderer,
    this_segment: &[usize],
) -> String {
    let mut out = String::new();
    for &h in handler_idx {
        let hname = &entries[h].step.name;
        let mut known = false;
        let mut vars = Vec::new();
        for (i, s) in pb.steps.iter().enumerate() {
            if !s.notify.iter().any(|n| n == hname) {
                continue;
            }
            if this_segment.contains(&i) {
                vars.push(format!("${{ok_{i}:-}}"));
            } else if entries[i].report.outcome == StepOutcome::Changed {
                known = true;
            }
        }
        if !known && vars.is_empty() {
            continue;
        }
        let apply = match &entries[h].step.kind {
            StepKind::Service(s) if s.state == Some(ServiceState::Restarted) => {
                format!(
                    "systemctl restart {}",
                    crate::host::ssh::shell_quote(&s.name)
                )
            }
            StepKind::Command(c) => match renderer.render(&c.apply) {
                Ok(a) => a,
                Err(m) => format!("echo {} >&2; exit 2", crate::host::ssh::shell_quote(&m)),
            },
            _ => match &entries[h].resolved {
                Some(r) => r.apply.clone(),
                None => continue,
            },
        };
        let block = apply_block(
            h,
            &Resolved {
                check: String::new(),
                apply,
                upload: None,
                share: None,
            },
            false,
        );
        if known {
            out.push_str(&block);
        } else {
            let _ = writeln!(out, "if [ -n \"{}\" ]; then\n{block}fi", vars.join(""));
        }
    }
    out
}

fn run_script(
    host: &dyn Host,
    script: &str,
    entries: &mut [Entry],
    name: &str,
    obs: &dyn Observer,
    lost: &mut Option<String>,
) {
    let mut parser = ApplyParser::default();
    // Events are emitted as markers arrive; reports are filled in after the command.
    let result = {
        let names: Vec<String> = entries.iter().map(|e| e.step.name.clone()).collect();
        let mut on_out = |b: &[u8]| {
            for (i, started) in parser.feed(b) {
                if started {
                    obs.on(name, Event::StepStarted(&names[i]));
                }
            }
        };
        host.run_streaming(script, &RunOptions::default(), &mut on_out)
    };
    let in_script: BTreeSet<usize> = script
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("echo '{MARK}apply ")))
        .filter_map(|l| l.trim_end_matches('\'').parse().ok())
        .collect();
    for i in in_script {
        let e = &mut entries[i];
        let applied = parser.apply_out.get(&i).cloned().unwrap_or_default();
        let verified = parser.verify_out.get(&i).cloned().unwrap_or_default();
        match parser.done.get(&i) {
            Some((0, Some(0))) => {
                e.report.outcome = StepOutcome::Changed;
                if e.handler {
                    e.report.detail = "ran".into();
                }
            }
            Some((0, _)) => {
                e.report.outcome = StepOutcome::Failed;
                e.report.detail = format!(
                    "applied, but the check still finds a difference: {}",
                    tail(&verified, 10)
                );
            }
            Some((rc, _)) => {
                e.report.outcome = StepOutcome::Failed;
                e.report.detail = format!("apply failed (exit {rc}): {}", tail(&applied, 15));
            }
            None => {
                let why = match &result {
                    Err(err) => err.to_string(),
                    Ok(out) => format!(
                        "the apply script ended early (exit {}): {}",
                        out.status,
                        tail(&out.stderr_text(), 5)
                    ),
                };
                e.report.outcome = StepOutcome::Failed;
                e.report.detail = why;
            }
        }
        obs.on(name, Event::Step(&e.report));
    }
    if let Err(e) = result
        && (e.is_connection() || matches!(e, HostError::Timeout { .. }))
    {
        *lost = Some(e.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::LocalHost;
    use std::sync::Mutex;
    use std::time::Duration;

    fn vars() -> serde_json::Value {
        serde_json::json!({"greeting": "hello"})
    }

    /// Applies the playbook `text` on this machine, with no artifacts.
    fn apply_locally(text: &str) -> HostReport {
        let pb = Playbook::parse("t.yaml", text).unwrap();
        run(
            &LocalHost::new(),
            &pb,
            &vars(),
            &ArtifactStore::default(),
            RunMode::Apply,
            &Quiet,
        )
    }

    /// The checks of one run share $KB_CHECK_DIR (containerd's image list is asked once
    /// per run); it is gone when the check script ends, and an apply's check after it
    /// runs without it.
    #[test]
    fn checks_share_a_directory_that_lives_as_long_as_the_check_script() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let text = format!(
            r#"name: t
steps:
  - name: writer
    command: {{check: 'echo "$KB_CHECK_DIR" > {d}/dir; echo one > "$KB_CHECK_DIR/shared"', apply: "true"}}
  - name: reader
    command: {{check: 'test "$(cat "$KB_CHECK_DIR/shared")" = one', apply: "true"}}
"#
        );
        let r = apply_locally(&text);
        assert!(!r.failed(), "{:#?}", r.steps);
        assert_eq!(
            r.changed(),
            0,
            "the reader saw the writer's file: {:#?}",
            r.steps
        );
        let shared = std::fs::read_to_string(dir.path().join("dir")).unwrap();
        assert!(!shared.trim().is_empty(), "no KB_CHECK_DIR");
        assert!(
            !std::path::Path::new(shared.trim()).exists(),
            "{shared} outlived the check script"
        );
    }

    /// Records how many uploads are under way at once; holds the first upload's start
    /// until a second one has started (or 5 s passed), so that sequential uploads show as
    /// one at a time.
    #[derive(Default)]
    struct Overlap {
        started: Mutex<Vec<String>>,
        came: std::sync::Condvar,
        open: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    impl Observer for Overlap {
        fn on(&self, _: &str, event: Event<'_>) {
            use std::sync::atomic::Ordering::SeqCst;
            match event {
                Event::StepStarted(step) => {
                    let n = self.open.fetch_add(1, SeqCst) + 1;
                    self.most.fetch_max(n, SeqCst);
                    let mut started = self.started.lock().unwrap();
                    started.push(step.to_string());
                    self.came.notify_all();
                    if started.len() == 1 {
                        let _ =
                            self.came
                                .wait_timeout_while(started, Duration::from_secs(5), |s| {
                                    s.len() < 2
                                });
                    }
                }
                Event::Step(r) if r.outcome == StepOutcome::Changed => {
                    self.open.fetch_sub(1, SeqCst);
                }
                _ => {}
            }
        }
    }

    /// Consecutive uploads to one host go two at a time (the second starts while the
    /// first is under way, never a third), each installed and reported.
    #[test]
    fn uploads_go_two_at_a_time() {
        use crate::config::cluster::{Artifact, ArtifactSource};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let mut artifacts = BTreeMap::new();
        let mut steps = String::new();
        for n in ["a", "b", "c"] {
            let src = dir.path().join(format!("src-{n}"));
            std::fs::write(&src, format!("content of {n}\n")).unwrap();
            let sha256 = steps::sha256_hex(&std::fs::read(&src).unwrap());
            artifacts.insert(
                n.to_string(),
                Artifact {
                    name: n.to_string(),
                    source: ArtifactSource::Path(src),
                    sha256,
                },
            );
            steps.push_str(&format!(
                "  - name: upload {n}\n    artifact: {{name: {n}, path: \"{d}/out/{n}\", mode: \"0644\"}}\n"
            ));
        }
        let pb = Playbook::parse("t.yaml", &format!("name: t\nsteps:\n{steps}")).unwrap();
        let obs = Overlap::default();
        let r = run(
            &LocalHost::new(),
            &pb,
            &vars(),
            &ArtifactStore::new(artifacts),
            RunMode::Apply,
            &obs,
        );
        assert!(!r.failed(), "{:#?}", r.steps);
        assert_eq!(r.changed(), 3, "{:#?}", r.steps);
        let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["upload a", "upload b", "upload c"]);
        for n in ["a", "b", "c"] {
            let got = std::fs::read_to_string(dir.path().join("out").join(n)).unwrap();
            assert_eq!(got, format!("content of {n}\n"));
        }
        let most = obs.most.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(most, 2, "uploads under way at once");
    }

    #[test]
    fn check_apply_and_rerun_on_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("fstab"),
            "UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n",
        )
        .unwrap();
        let text = format!(
            r#"name: t
steps:
  - name: config file
    file: {{path: "{d}/etc/app.conf", content: "{{{{ greeting }}}} from {{{{ facts.os_family }}}}\n", mode: "0640"}}
    notify: [touch marker]
  - name: swap commented
    line: {{path: "{d}/fstab", regexp: '^[^#].*[[:space:]]swap[[:space:]]', action: comment}}
  - name: never on this host
    when: "facts.os_family == 'plan9'"
    command: {{check: "exit 1", apply: "false"}}
  - name: flag file
    command: {{check: "test -e {d}/flag", apply: "touch {d}/flag"}}
handlers:
  - name: touch marker
    command: {{check: "true", apply: "echo x >> {d}/marker"}}
"#
        );
        let pb = Playbook::parse("t.yaml", &text).unwrap();
        let h = LocalHost::new();
        let store = ArtifactStore::default();

        let plan = run(&h, &pb, &vars(), &store, RunMode::Plan, &Quiet);
        assert!(plan.error.is_none(), "{plan:?}");
        assert_eq!(plan.changed(), 4, "{:#?}", plan.steps); // 3 steps + handler
        let fstab = plan
            .steps
            .iter()
            .find(|s| s.name == "swap commented")
            .unwrap();
        assert!(
            fstab
                .diff
                .as_deref()
                .unwrap()
                .contains("+# /swapfile none swap sw 0 0"),
            "{fstab:?}"
        );
        assert!(!dir.path().join("flag").exists(), "plan changed nothing");

        let r = run(&h, &pb, &vars(), &store, RunMode::Apply, &Quiet);
        assert!(!r.failed(), "{:#?}", r.steps);
        assert_eq!(r.changed(), 4, "{:#?}", r.steps);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("fstab")).unwrap(),
            "UUID=1 / ext4 defaults 0 1\n# /swapfile none swap sw 0 0\n"
        );
        let conf = std::fs::read_to_string(dir.path().join("etc/app.conf")).unwrap();
        assert!(conf.starts_with("hello from "), "{conf}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("etc/app.conf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o640);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("marker")).unwrap(),
            "x\n"
        );

        let again = run(&h, &pb, &vars(), &store, RunMode::Apply, &Quiet);
        assert_eq!(again.changed(), 0, "{:#?}", again.steps);
        assert_eq!(again.failed_steps(), 0);
        assert_eq!(again.count(StepOutcome::Skipped), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("marker")).unwrap(),
            "x\n"
        );
    }

    #[test]
    fn failures_are_reported_and_others_still_run() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let text = format!(
            r#"name: t
steps:
  - name: broken apply
    command: {{check: "exit 1", apply: "echo boom >&2; exit 7"}}
  - name: apply does not fix
    command: {{check: "echo still wrong; exit 1", apply: "true"}}
  - name: broken check
    command: {{check: "exit 5", apply: "true"}}
  - name: fine
    command: {{check: "test -e {d}/ok", apply: "touch {d}/ok"}}
  - name: missing artifact
    artifact: {{name: kubelet, path: "{d}/kubelet"}}
"#
        );
        let r = apply_locally(&text);
        let by = |n: &str| r.steps.iter().find(|s| s.name == n).unwrap().clone();
        assert_eq!(by("broken apply").outcome, StepOutcome::Failed);
        assert!(
            by("broken apply").detail.contains("exit 7")
                && by("broken apply").detail.contains("boom")
        );
        assert!(
            by("apply does not fix").detail.contains("still wrong"),
            "{:?}",
            by("apply does not fix")
        );
        assert!(by("broken check").detail.contains("exit 5"));
        assert_eq!(by("fine").outcome, StepOutcome::Changed);
        assert!(
            by("missing artifact")
                .detail
                .contains("--artifact kubelet="),
            "{:?}",
            by("missing artifact")
        );
        assert!(r.failed());
        assert_eq!(r.failed_steps(), 4);
    }
}

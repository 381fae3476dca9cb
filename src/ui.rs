//! How multi-host runs look: a live row per host on a terminal (indicatif), plain lines
//! otherwise, one JSON event per line with `--output json`; then a summary table.

use crate::playbook::HostReport;
use crate::playbook::run::{Event, Observer, StepOutcome, StepReport};
use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Output format of multi-host commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Live rows on a terminal, plain lines otherwise.
    Text,
    Json,
}

/// Live rows, one per host.
pub struct LiveRows {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, (ProgressBar, usize)>>,
}

impl LiveRows {
    pub fn new(hosts: &[String]) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let width = hosts.iter().map(|h| h.len()).max().unwrap_or(8).min(40);
        let style = ProgressStyle::with_template(&format!(
            "{{spinner:.cyan}} {{prefix:{width}.bold}} {{elapsed:>4}} {{msg}}"
        ))
        .expect("valid template")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        let mut bars = HashMap::new();
        for h in hosts {
            let b = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
            b.set_prefix(h.clone());
            b.set_message("waiting");
            b.enable_steady_tick(Duration::from_millis(120));
            bars.insert(h.clone(), (b, 0));
        }
        // Lines printed while the rows are drawn (up's init and joins run meanwhile)
        // go above them.
        crate::output::set_live_rows(Some(multi.clone()));
        LiveRows {
            multi,
            bars: Mutex::new(bars),
        }
    }

    /// Marks a host done with its summary.
    pub fn finish(&self, r: &HostReport) {
        let bars = self.bars.lock().unwrap();
        if let Some((b, _)) = bars.get(&r.host) {
            let msg = if r.failed() {
                format!(
                    "{} {}",
                    style("failed").red().bold(),
                    first_failure(r).unwrap_or_default()
                )
            } else {
                format!(
                    "{} ok {} changed {}",
                    style("done").green(),
                    r.ok(),
                    r.changed()
                )
            };
            b.finish_with_message(msg);
        }
    }

    /// Stops drawing (after all hosts finished).
    pub fn clear(&self) {
        crate::output::set_live_rows(None);
        let _ = self.multi.clear();
    }
}

impl Observer for LiveRows {
    fn on(&self, host: &str, event: Event<'_>) {
        let mut bars = self.bars.lock().unwrap();
        let Some((b, changed)) = bars.get_mut(host) else {
            return;
        };
        match event {
            Event::Phase(p) => b.set_message(format!("{p} · changed {changed}")),
            Event::StepStarted(s) => b.set_message(format!("{s} · changed {changed}")),
            Event::Step(r) => {
                if r.outcome == StepOutcome::Changed {
                    *changed += 1;
                    b.set_message(format!("{} · changed {changed}", r.name));
                }
            }
            Event::Note(n) => {
                let _ = self.multi.println(format!("{host}: {n}"));
            }
            Event::Facts(_) => {}
            Event::Finished(r) => {
                drop(bars);
                self.finish(r);
            }
        }
    }
}

/// Plain lines (not a terminal): phases, and every step that changed or failed.
pub struct PlainLines;

impl Observer for PlainLines {
    fn on(&self, host: &str, event: Event<'_>) {
        let line = match event {
            Event::Phase(p) => format!("{host}: {p}"),
            Event::StepStarted(_) | Event::Facts(_) => return,
            Event::Step(r) => match r.outcome {
                StepOutcome::Changed => format!("{host}: changed: {}", r.name),
                StepOutcome::Failed => {
                    format!("{host}: FAILED: {}: {}", r.name, one_line(&r.detail))
                }
                StepOutcome::WouldChange => format!("{host}: would change: {}", r.name),
                _ => return,
            },
            Event::Note(n) => format!("{host}: {n}"),
            Event::Finished(r) => match first_failure(r) {
                Some(f) => format!("{host}: FAILED: {f}"),
                None => format!(
                    "{host}: done: ok {} changed {} in {:.1}s",
                    r.ok(),
                    r.changed(),
                    r.elapsed_ms as f64 / 1000.0
                ),
            },
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

/// One JSON object per line on stdout.
pub struct JsonLines;

impl JsonLines {
    /// Writes one event.
    pub fn emit(v: serde_json::Value) {
        crate::output::emit(v);
    }
}

impl Observer for JsonLines {
    fn on(&self, host: &str, event: Event<'_>) {
        let v = match event {
            Event::Phase(p) => serde_json::json!({"event": "phase", "host": host, "phase": p}),
            Event::StepStarted(s) => {
                serde_json::json!({"event": "step-started", "host": host, "step": s})
            }
            Event::Step(r) => serde_json::json!({"event": "step", "host": host, "step": r}),
            Event::Note(n) => serde_json::json!({"event": "note", "host": host, "note": n}),
            Event::Facts(_) => return,
            Event::Finished(r) => serde_json::json!({
                "event": "host-done", "host": host, "failed": r.failed(), "ok": r.ok(),
                "changed": r.changed(), "failedSteps": r.failed_steps(), "error": r.error,
                "elapsedMs": r.elapsed_ms, "roundTrips": r.round_trips,
            }),
        };
        Self::emit(v);
    }
}

fn one_line(s: &str) -> String {
    let s = s.trim().replace('\n', " | ");
    if s.chars().count() > 300 {
        format!("{}...", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

fn first_failure(r: &HostReport) -> Option<String> {
    if let Some(e) = &r.error {
        return Some(one_line(e));
    }
    r.steps
        .iter()
        .find(|s| s.outcome == StepOutcome::Failed)
        .map(|s| format!("{}: {}", s.name, one_line(&s.detail)))
}

/// The summary table and, for failed hosts, what failed.
pub fn summary(reports: &[HostReport], plan: bool) -> String {
    let width = reports
        .iter()
        .map(|r| r.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    let changed_head = if plan { "TO CHANGE" } else { "CHANGED" };
    out.push_str(&format!(
        "{:width$}  {:7}  {:>4}  {:>9}  {:>6}  {:>7}  {:>11}\n",
        "HOST", "STATUS", "OK", changed_head, "FAILED", "TIME", "ROUND TRIPS"
    ));
    for r in reports {
        let status = if r.error.is_some() && r.steps.is_empty() {
            "ERROR"
        } else if r.failed() {
            "FAILED"
        } else {
            "ok"
        };
        out.push_str(&format!(
            "{:width$}  {:7}  {:>4}  {:>9}  {:>6}  {:>6.1}s  {:>11}\n",
            r.host,
            status,
            r.ok(),
            r.changed(),
            r.failed_steps() + usize::from(r.error.is_some() && r.failed_steps() == 0),
            r.elapsed_ms as f64 / 1000.0,
            r.round_trips
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
        ));
    }
    let failed: Vec<&HostReport> = reports.iter().filter(|r| r.failed()).collect();
    for r in &failed {
        out.push_str(&format!("\n{}:\n", r.host));
        if let Some(e) = &r.error {
            out.push_str(&format!("  error: {}\n", e.trim()));
        }
        for s in r.steps.iter().filter(|s| s.outcome == StepOutcome::Failed) {
            out.push_str(&format!(
                "  step {:?} failed: {}\n",
                s.name,
                indent(s.detail.trim(), 4)
            ));
        }
    }
    out
}

fn indent(s: &str, n: usize) -> String {
    s.replace('\n', &format!("\n{}", " ".repeat(n)))
}

/// What `--plan` found, per host: every step that would change, with diffs.
pub fn plan_details(reports: &[HostReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let changes: Vec<&StepReport> = r
            .steps
            .iter()
            .filter(|s| s.outcome == StepOutcome::WouldChange)
            .collect();
        if r.error.is_some() {
            continue;
        }
        if changes.is_empty() {
            out.push_str(&format!("{}: nothing to change\n", r.host));
            continue;
        }
        out.push_str(&format!("{}: {} to change\n", r.host, changes.len()));
        for s in changes {
            out.push_str(&format!("  ~ {} ({})\n", s.name, s.kind));
            let detail: Vec<&str> = s
                .detail
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(8)
                .collect();
            for l in detail {
                out.push_str(&format!("      {l}\n"));
            }
            if let Some(d) = &s.diff {
                for l in d.lines() {
                    out.push_str(&format!("      {l}\n"));
                }
            }
        }
    }
    out
}

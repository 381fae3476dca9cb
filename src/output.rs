//! The one output channel of init, join, reset and `up`: phases report lines here, and
//! here alone it is decided whether they become kubeadm-style text lines
//! (`[host] [phase] message`) or JSON events on stdout (`-o json`), one object per line,
//! the same events `prepare` emits.
//!
//! JSON events carry `"event"` and, where a host is known, `"host"`:
//! - `phase`: `{"phase", "message"}`, a progress line of a phase;
//! - `message`: `{"text"}`, any other line (a section of `up`, a note);
//! - `step-started`, `step`, `note`, `host-done`: `prepare`'s per-host events;
//! - `stage`: a stage of `up` begins (`prepare: 3 hosts`, `init: node1`, ...);
//! - `health-wait`: `{"pending", "elapsedMs"}`, what `up`'s health wait still waits
//!   for, every 15 s;
//! - `summary` (prepare's hosts), `health` (the cluster's health at the end of `up`),
//!   `result` (`up`'s table: each host's role, prepare, result and time);
//! - `done` / `error`: how the command ended.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);

/// prepare's live rows while they are drawn: text lines are printed above them.
static LIVE_ROWS: std::sync::Mutex<Option<indicatif::MultiProgress>> = std::sync::Mutex::new(None);

/// Text lines printed from now on go above these live rows (`None`: plainly).
pub fn set_live_rows(rows: Option<indicatif::MultiProgress>) {
    *LIVE_ROWS.lock().unwrap_or_else(|e| e.into_inner()) = rows;
}

/// Writes text to stdout, with live rows (if drawn) hidden meanwhile.
fn write_text(f: impl FnOnce(&mut std::io::StdoutLock<'static>)) {
    let rows = LIVE_ROWS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match rows {
        Some(m) => m.suspend(|| f(&mut std::io::stdout().lock())),
        None => f(&mut std::io::stdout().lock()),
    }
}

thread_local! {
    /// The host the current thread works on, when several hosts run at once (`up`).
    static HOST_LABEL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Switches this process to JSON events (`-o json`).
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::SeqCst);
}

/// Whether output is JSON events.
pub fn json() -> bool {
    JSON.load(Ordering::SeqCst)
}

/// Labels this thread's lines and events with `host` until the guard is dropped.
pub fn label_host(host: &str) -> HostLabel {
    HOST_LABEL.with(|l| *l.borrow_mut() = Some(host.to_string()));
    HostLabel
}

/// Ends a [`label_host`] label.
pub struct HostLabel;

impl Drop for HostLabel {
    fn drop(&mut self) {
        HOST_LABEL.with(|l| *l.borrow_mut() = None);
    }
}

fn host() -> Option<String> {
    HOST_LABEL.with(|l| l.borrow().clone())
}

/// Writes one JSON event on its own line, with this thread's host unless it has one.
pub fn emit(mut v: serde_json::Value) {
    if let (Some(h), Some(o)) = (host(), v.as_object_mut()) {
        o.entry("host").or_insert(serde_json::Value::String(h));
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
}

/// One line of progress of `phase`, printed like kubeadm (`[certs] Generating "ca" ...`),
/// prefixed with the host when one is set for this thread; a `phase` event in JSON.
pub fn report(phase: &str, message: &str) {
    if json() {
        for line in message.lines() {
            emit(serde_json::json!({"event": "phase", "phase": phase, "message": line}));
        }
        return;
    }
    let host = host();
    write_text(|out| {
        for line in message.lines() {
            let _ = match &host {
                Some(h) => writeln!(out, "[{h}] [{phase}] {line}"),
                None => writeln!(out, "[{phase}] {line}"),
            };
        }
    });
}

/// Any other line of output: as is in text, a `message` event in JSON.
pub fn say(text: &str) {
    if json() {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            emit(serde_json::json!({"event": "message", "text": line}));
        }
        return;
    }
    write_text(|out| {
        let _ = writeln!(out, "{text}");
    });
}

/// How a command ended, in JSON only (text output says it in its own words).
pub fn done(fields: serde_json::Value) {
    if json() {
        let mut v = serde_json::json!({"event": "done"});
        if let (Some(o), Some(f)) = (v.as_object_mut(), fields.as_object()) {
            o.extend(f.clone());
        }
        emit(v);
    }
}

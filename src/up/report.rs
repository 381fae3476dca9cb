//! What `up` tells the user: stage headings, the result table, one-line errors; text or
//! JSON events through the one output channel.

use crate::output::say;
use std::time::Instant;

/// What happened on one host, for the summary.
#[derive(Debug, Clone)]
pub struct HostOutcome {
    pub host: String,
    pub role: &'static str,
    pub prepare: String,
    pub result: String,
    pub ok: bool,
    pub seconds: f64,
}

impl HostOutcome {
    /// One row per host of the inventory, nothing done yet.
    pub(super) fn table(cluster: &crate::config::cluster::Cluster) -> Vec<HostOutcome> {
        cluster
            .hosts
            .iter()
            .map(|h| HostOutcome {
                host: h.name.clone(),
                role: if h.role == crate::config::cluster::Role::ControlPlane {
                    "control-plane"
                } else {
                    "worker"
                },
                prepare: "-".into(),
                result: "not run".into(),
                ok: false,
                seconds: 0.0,
            })
            .collect()
    }
}

/// A stage of `up` begins: a `== title ==` line, or a `stage` event in JSON.
pub(super) fn section(title: &str) {
    if crate::output::json() {
        crate::output::emit(serde_json::json!({"event": "stage", "stage": title}));
    } else {
        say(&format!("\n== {title} =="));
    }
}

/// The phase an error stopped in and its root cause, on one line, for the summary.
pub(super) fn first_line(e: &anyhow::Error) -> String {
    let chain: Vec<String> = e
        .chain()
        .map(|c| c.to_string().lines().next().unwrap_or_default().to_string())
        .collect();
    let text = match (chain.first(), chain.last()) {
        (Some(a), Some(b)) if chain.len() > 1 => format!("{a}: {b}"),
        (Some(a), _) => a.clone(),
        _ => String::new(),
    };
    text.chars().take(240).collect()
}

pub(super) fn print_summary(outcomes: &[HostOutcome], started: Instant) {
    if crate::output::json() {
        crate::output::emit(serde_json::json!({
            "event": "result",
            "command": "up",
            "hosts": outcomes.iter().map(|o| serde_json::json!({
                "host": o.host, "role": o.role, "prepare": o.prepare, "ok": o.ok,
                "result": o.result, "elapsedMs": (o.seconds * 1000.0) as u64,
            })).collect::<Vec<_>>(),
            "elapsedMs": started.elapsed().as_millis(),
        }));
        return;
    }
    let w = outcomes
        .iter()
        .map(|o| o.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    say(&format!(
        "\n{:w$}  {:13}  {:18}  {:>7}  RESULT",
        "HOST", "ROLE", "PREPARE", "TIME"
    ));
    for o in outcomes {
        say(&format!(
            "{:w$}  {:13}  {:18}  {:>6.1}s  {}",
            o.host, o.role, o.prepare, o.seconds, o.result
        ));
    }
    say(&format!("total {:.1}s", started.elapsed().as_secs_f64()));
}

//! kubeadm's flags, checked by kubeadm (issue 13.3): walks the command tree of the real
//! kubeadm v1.20.2 (`--help` of every command and phase), and for every command kubeboot
//! shares with it (the same words give kubeboot a help text) requires each kubeadm flag on
//! kubeboot's command too, unless [`NOT_APPLICABLE`] says why it does not apply there.
//! A script written for kubeadm then does not fail on `unexpected argument`.
//!
//! kubeadm is found through `KUBEBOOT_K8S_BIN` (set by /var/cache/kubeboot/test-env, as
//! `.ci/run` does); without it the test says so and passes, like the other peer tests.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a kubeadm flag is not on kubeboot's command. `command` is a kubeadm command path
/// or a prefix of one ending in `*` (`*` alone: every command).
struct NotApplicable {
    command: &'static str,
    flag: &'static str,
    why: Why,
}

enum Why {
    /// kubeadm renamed the flag since v1.20; kubeboot has the new name (checked).
    Renamed(&'static str),
    /// The flag does not apply to kubeboot, for the reason given.
    Reason(&'static str),
}

use Why::*;

const KLOG: &str = "klog logging flag: kubeboot logs with -v/-vv (or KUBEBOOT_LOG=debug) on stderr, and kubeadm 1.31+ dropped most of them";

/// kubeadm flags kubeboot does not have on a shared command, each with its reason.
const NOT_APPLICABLE: &[NotApplicable] = &[
    // Global flags of every kubeadm command.
    NotApplicable {
        command: "*",
        flag: "help",
        why: Reason("clap's -h/--help"),
    },
    NotApplicable {
        command: "*",
        flag: "add-dir-header",
        why: Reason(KLOG),
    },
    NotApplicable {
        command: "*",
        flag: "log-file",
        why: Reason(KLOG),
    },
    NotApplicable {
        command: "*",
        flag: "log-file-max-size",
        why: Reason(KLOG),
    },
    NotApplicable {
        command: "*",
        flag: "one-output",
        why: Reason(KLOG),
    },
    NotApplicable {
        command: "*",
        flag: "skip-headers",
        why: Reason(KLOG),
    },
    NotApplicable {
        command: "*",
        flag: "skip-log-headers",
        why: Reason(KLOG),
    },
    NotApplicable {
        command: "*",
        flag: "v",
        why: Renamed("verbose"),
    },
    NotApplicable {
        command: "*",
        flag: "rootfs",
        why: Renamed("root"),
    },
    // Output format flags.
    NotApplicable {
        command: "*",
        flag: "experimental-output",
        why: Renamed("output"),
    },
    NotApplicable {
        command: "*",
        flag: "allow-missing-template-keys",
        why: Reason("only for kubeadm's go-template/jsonpath output; kubeboot prints text or JSON"),
    },
    // Patches and feature gates.
    NotApplicable {
        command: "*",
        flag: "experimental-patches",
        why: Reason(
            "renamed --patches in kubeadm 1.22; kubeboot has no patch support (its templates are overridden with `kubeboot render --templates-dir` instead)",
        ),
    },
    NotApplicable {
        command: "*",
        flag: "feature-gates",
        why: Reason(
            "kubeadm v1.20's gates (IPv6DualStack, PublicKeysECDSA) are GA or removed in 1.31+ (dual-stack is always on, `encryptionAlgorithm` replaced PublicKeysECDSA); kubeboot implements no kubeadm feature gate",
        ),
    },
    // `config` (persistent --kubeconfig of `kubeadm config`).
    NotApplicable {
        command: "config *",
        flag: "kubeconfig",
        why: Reason(
            "only `kubeadm config view`/`upload` used it (both removed); printing defaults and listing or pulling images never talk to a cluster",
        ),
    },
    // token.
    NotApplicable {
        command: "token generate",
        flag: "kubeconfig",
        why: Reason(
            "kubeadm's persistent `token --kubeconfig`; generating a token talks to no cluster",
        ),
    },
    // init phase bootstrap-token.
    NotApplicable {
        command: "init phase bootstrap-token",
        flag: "skip-token-print",
        why: Reason(
            "kubeboot's bootstrap-token phase never prints a token's secret (only `<id>.<secret>`); `init --skip-token-print` withholds it from the join command",
        ),
    },
    // reset.
    NotApplicable {
        command: "reset",
        flag: "kubeconfig",
        why: Reason(
            "kubeadm reads the cluster's configuration through it to find the etcd member and cert dir; kubeboot's reset takes both from this node (its etcd manifest and --cert-dir), so there is nothing to read from the cluster",
        ),
    },
    NotApplicable {
        command: "token *",
        flag: "dry-run",
        why: Reason(
            "kubeadm's token --dry-run only logs the API calls it would make; kubeboot's token commands make one call each, and `token generate` already creates nothing",
        ),
    },
];

fn kubeadm() -> Option<PathBuf> {
    let dir = std::env::var("KUBEBOOT_K8S_BIN").ok().or_else(|| {
        let text = std::fs::read_to_string("/var/cache/kubeboot/test-env").ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("KUBEBOOT_K8S_BIN=").map(String::from))
    })?;
    let k = Path::new(&dir).join("kubeadm");
    k.exists().then_some(k)
}

/// The long flags in a `--help` text (kubeadm's cobra or kubeboot's clap layout).
fn flags(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_flags = false;
    for line in help.lines() {
        let t = line.trim_end();
        if !t.starts_with(' ') {
            in_flags = matches!(t, "Flags:" | "Global Flags:" | "Options:");
            continue;
        }
        if !in_flags {
            continue;
        }
        let body = t.trim_start();
        let body = match body.strip_prefix('-') {
            Some(rest) if !rest.starts_with('-') => match body.split_once(", ") {
                Some((_, long)) => long,
                None => continue,
            },
            _ => body,
        };
        if let Some(rest) = body.strip_prefix("--") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The subcommands in a cobra help text.
fn subcommands(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut on = false;
    for line in help.lines() {
        if !line.starts_with(' ') {
            on = line.trim_end() == "Available Commands:";
            continue;
        }
        if on
            && let Some(word) = line.split_whitespace().next()
            && word != "help"
            && word != "completion"
        {
            out.push(word.to_string());
        }
    }
    out
}

fn help_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().expect("run --help");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every kubeadm command path (words after `kubeadm`) with its flags, depth first.
fn kubeadm_tree(kubeadm: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<Vec<String>> = ["init", "join", "reset", "token", "certs", "config"]
        .iter()
        .map(|c| vec![c.to_string()])
        .collect();
    while let Some(path) = todo.pop() {
        let help = help_of(Command::new(kubeadm).args(&path).arg("--help"))
            .unwrap_or_else(|| panic!("kubeadm {} --help failed", path.join(" ")));
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        out.insert(path.join(" "), flags(&help));
    }
    out
}

fn applies(pattern: &str, command: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => command.starts_with(prefix) || command == prefix.trim_end(),
        None => pattern == command,
    }
}

#[test]
fn kubeboot_has_kubeadms_flags() {
    let Some(kubeadm) = kubeadm() else {
        eprintln!(
            "SKIPPED: kubeadm v1.20.2 not found (set KUBEBOOT_K8S_BIN from /var/cache/kubeboot/test-env)"
        );
        return;
    };
    let tree = kubeadm_tree(&kubeadm);
    let mut shared = Vec::new();
    let mut not_shared = Vec::new();
    let mut missing = Vec::new();
    let mut excused = BTreeSet::new();
    let (mut total, mut has) = (0, 0);
    for (command, kubeadm_flags) in &tree {
        let words: Vec<&str> = command.split(' ').collect();
        let Some(help) = help_of(common::kubeboot().args(&words).arg("--help")) else {
            not_shared.push(command.clone());
            continue;
        };
        // A group that only holds subcommands: its flags are checked on them.
        let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap_or("");
        if usage.trim_end().ends_with("<COMMAND>") {
            continue;
        }
        shared.push(command.clone());
        let ours = flags(&help);
        for f in kubeadm_flags {
            let excuse = NOT_APPLICABLE
                .iter()
                .find(|n| n.flag == f && applies(n.command, command));
            match excuse.map(|n| &n.why) {
                Some(Reason(why)) if !ours.contains(f) => {
                    assert!(!why.is_empty(), "--{f}: say why it does not apply");
                    excused.insert(format!("--{f} ({}): {why}", excuse.unwrap().command));
                    continue;
                }
                Some(Renamed(new)) => {
                    assert!(
                        ours.contains(*new),
                        "kubeboot {command}: kubeadm's --{f} is listed as renamed --{new}, but kubeboot has no --{new}"
                    );
                    continue;
                }
                _ => {}
            }
            total += 1;
            if ours.contains(f) {
                has += 1;
            } else {
                missing.push(format!("kubeboot {command}: --{f}"));
            }
        }
    }
    eprintln!(
        "kubeboot has {has} of {total} kubeadm flags on {} shared commands (not-applicable flags left out)",
        shared.len()
    );
    eprintln!(
        "kubeadm commands kubeboot does not have: {}",
        not_shared.join(", ")
    );
    eprintln!(
        "not applicable:\n  {}",
        excused.into_iter().collect::<Vec<_>>().join("\n  ")
    );
    // The walk found the commands both have, not just an empty intersection.
    for must in [
        "init",
        "join",
        "reset",
        "token create",
        "token list",
        "certs renew all",
        "init phase bootstrap-token",
        "init phase upload-certs",
        "init phase addon coredns",
        "config images list",
    ] {
        assert!(
            shared.iter().any(|s| s == must),
            "{must} not compared: {shared:?}"
        );
    }
    assert!(
        missing.is_empty(),
        "kubeadm flags kubeboot lacks (add them, or say in NOT_APPLICABLE why they do not apply):\n{}",
        missing.join("\n")
    );
}

/// The help parser and the table's command patterns, without kubeadm.
#[test]
fn parser_reads_both_help_layouts() {
    let cobra = "Flags:\n      --cert-dir string   dir\n  -h, --help   help\n\nGlobal Flags:\n  -v, --v Level   verbosity\n";
    assert_eq!(
        flags(cobra),
        ["cert-dir", "help", "v"].map(String::from).into()
    );
    let clap = "Usage: kubeboot x [OPTIONS]\n\nOptions:\n      --root <DIR>\n          root\n  -v, --verbose...\n  -o, --output <OUTPUT>\n          [possible values: text, json]\n";
    assert_eq!(
        flags(clap),
        ["root", "verbose", "output"].map(String::from).into()
    );
    assert_eq!(
        subcommands("Available Commands:\n  create  Create\n  help  Help\n\nFlags:\n"),
        vec!["create".to_string()]
    );
    assert!(applies("*", "init"));
    assert!(applies("config *", "config images list"));
    assert!(!applies("config *", "certs renew all"));
    assert!(applies("token create", "token create"));
}

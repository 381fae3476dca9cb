//! Secrets stay secret: bootstrap tokens, certificate keys, private keys and the client
//! keys of kubeconfigs never appear in what kubeboot prints (stdout, stderr, with `-vv`,
//! which also turns on the debug logs of reqwest, hyper, rustls) or in any file it writes
//! outside the places that exist to hold them.
//!
//! Runs against the real control plane of `tests/cluster_support` (see `tests/init.rs`
//! and `tests/join.rs`): `init` with every phase it can run here, `init phase
//! upload-certs`, the `token` commands in text and JSON, and a worker `join`. The kubelet
//! cannot run here: a `systemctl` test double records its restart and the test registers
//! the control plane's Node; the worker's TLS bootstrap is join's own (its CSR signed by
//! the real controller-manager).
//!
//! The places where a secret may be printed are listed explicitly in [`ALLOWED_PLACES`]; every
//! other line of every output, and every file under the nodes' roots, `$HOME` and
//! `$TMPDIR` except those listed in [`SECRET_FILES`], is searched for every secret.
//! `up` and `prepare` need lab nodes and are not run here.

mod cluster_support;
mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cluster_support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Files that hold secrets by design, relative to a node root, with why; they are checked
/// for mode 0600 (kubeconfigs and keys kubeboot wrote) instead of searched. `dir/` is a
/// whole tree, `dir/*.ext` the files directly in dir, `dir/**.ext` those anywhere under it.
const SECRET_FILES: &[(&str, &str)] = &[
    (
        "kubeadm.yaml",
        "the test's own InitConfiguration, with the bootstrap token",
    ),
    ("etc/kubernetes/pki/**.key", "private keys, mode 0600"),
    (
        "etc/kubernetes/*.conf",
        "kubeconfigs with client keys, mode 0600",
    ),
    (
        "var/lib/etcd/",
        "etcd's database, where the cluster's Secrets live",
    ),
    (
        "var/lib/kubelet/pki/*.pem",
        "the kubelet's client certificate and key (join's TLS bootstrap writes them there)",
    ),
    (
        "logs/",
        "output of the control-plane components the harness runs, not kubeboot's",
    ),
];

/// The only places a secret may be printed, all on stdout, because the user asked for it
/// and needs it (kubeadm prints the same): (command, what).
const ALLOWED_PLACES: &[(&str, &str)] = &[
    (
        "init",
        "the join commands at its end: the token, and with --upload-certs the certificate \
         key (--skip-token-print and --skip-certificate-key-print withhold them)",
    ),
    (
        "init phase upload-certs --upload-certs",
        "the certificate key it generated, after \"Using certificate key:\" \
         (--skip-certificate-key-print withholds it)",
    ),
    ("token create", "the token it created: its whole output"),
    (
        "token create --print-join-command",
        "the join command: the token, and the --certificate-key given",
    ),
];

/// Where one output may carry a secret: a place of [`ALLOWED_PLACES`] and the exact lines
/// there, each of which must appear in that output (so an allowance cannot outlive what
/// it allows).
#[derive(Default, Clone)]
struct Allowed {
    place: Option<&'static str>,
    lines: Vec<String>,
}

/// One command's output, kept to be searched once every secret of the run is known.
struct Captured {
    what: String,
    stdout: String,
    stderr: String,
    allowed: Allowed,
}

/// The secrets of the run as the strings to search for, each with what it is: short
/// secrets (token secrets, certificate keys) whole, long base64 texts (private keys) as
/// overlapping pieces.
#[derive(Default)]
struct Secrets {
    whole: Vec<(String, String)>,
    pieces: std::collections::HashMap<Vec<u8>, String>,
}

/// Pieces of long base64 texts: [`PIECE`] characters every [`STEP`], so any leaked run of
/// `PIECE + STEP - 1` characters or more contains a whole piece.
const PIECE: usize = 24;
const STEP: usize = 8;

fn stripped(text: &str) -> Vec<u8> {
    text.bytes().filter(|b| !b.is_ascii_whitespace()).collect()
}

impl Secrets {
    fn add(&mut self, what: &str, needle: &str) {
        assert!(needle.len() >= 16, "{what}: too short to search for");
        if !self.whole.iter().any(|(_, n)| n == needle) {
            self.whole.push((what.to_string(), needle.to_string()));
        }
    }

    fn pieces(&mut self, what: &str, b64: &str) {
        let b = stripped(b64);
        let mut at = 0;
        while at + PIECE <= b.len() {
            self.pieces
                .entry(b[at..at + PIECE].to_vec())
                .or_insert_with(|| what.to_string());
            at += STEP;
        }
    }

    /// A bootstrap token: its secret half, also as base64 (the Secret's data).
    fn token(&mut self, token: &str) {
        let secret = token.split_once('.').expect("a token").1;
        self.add(&format!("secret of token {token}"), secret);
        self.add(
            &format!("secret of token {token}, base64"),
            B64.encode(secret).trim_end_matches('='),
        );
    }

    /// A PEM private key: its body, and the whole PEM as base64 (the way kubeconfigs
    /// embed it).
    fn pem(&mut self, what: &str, pem: &str) {
        assert!(pem.contains("PRIVATE KEY"), "{what} is not a private key");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        self.pieces(what, &body);
        self.pieces(&format!("{what}, as base64"), &B64.encode(pem));
    }

    /// Every private key under `root`'s pki dir and every client key or token in its
    /// kubeconfigs; returns the public material beside them (certificates, public keys),
    /// which [`Secrets::drop_public`] takes out again.
    fn add_node(&mut self, root: &Path) -> Vec<String> {
        let mut public = Vec::new();
        let etc = root.join("etc/kubernetes");
        for f in files(&etc.join("pki")) {
            let text = std::fs::read_to_string(&f).unwrap();
            if f.extension().is_some_and(|e| e == "key") {
                self.pem(&f.display().to_string(), &text);
            } else {
                public.push(text);
            }
        }
        for f in std::fs::read_dir(&etc).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_none_or(|e| e != "conf") {
                continue;
            }
            let kc = kubeboot::kubeconfig::KubeConfig::parse(&std::fs::read_to_string(&f).unwrap())
                .unwrap();
            for c in &kc.clusters {
                public.push(c.cluster.certificate_authority_data.clone());
            }
            for u in &kc.users {
                let what = format!("{} user {}", f.display(), u.name);
                if !u.user.client_key_data.is_empty() {
                    self.pieces(&format!("{what} client-key-data"), &u.user.client_key_data);
                    let pem =
                        String::from_utf8(B64.decode(&u.user.client_key_data).unwrap()).unwrap();
                    self.pem(&format!("{what} client key"), &pem);
                    public.push(u.user.client_certificate_data.clone());
                }
                if !u.user.token.is_empty() {
                    self.token(&u.user.token);
                }
            }
        }
        for p in public.clone() {
            if let Ok(pem) = B64.decode(stripped(&p)) {
                public.push(String::from_utf8_lossy(&pem).into_owned());
            }
        }
        public
    }

    /// Takes out the pieces that are public: a private key's encoding contains its public
    /// key, which certificates carry too. Every key keeps pieces to search for.
    fn drop_public(&mut self, public: &[String]) {
        let keys: std::collections::BTreeSet<String> = self.pieces.values().cloned().collect();
        for p in public {
            let b = stripped(p);
            for w in b.windows(PIECE) {
                self.pieces.remove(w);
            }
        }
        for k in keys {
            assert!(
                self.pieces.values().any(|v| *v == k),
                "nothing of {k} is left to search for"
            );
        }
    }

    fn len(&self) -> usize {
        self.whole.len() + self.pieces.len()
    }

    /// Panics naming the secret and where it was found.
    fn assert_absent(&self, place: &str, text: &str) {
        let line_of = |at: usize| text[..at].lines().count().max(1);
        if let Some(at) = text.find("PRIVATE KEY") {
            panic!(
                "a PEM private key in {place} (line {}):\n{text}",
                line_of(at)
            );
        }
        for (what, needle) in &self.whole {
            if let Some(at) = text.find(needle.as_str()) {
                panic!("{what} leaked into {place} (line {}):\n{text}", line_of(at));
            }
        }
        for (at, w) in text.as_bytes().windows(PIECE).enumerate() {
            if let Some(what) = self.pieces.get(w) {
                panic!("{what} leaked into {place} (line {}):\n{text}", line_of(at));
            }
        }
    }
}

/// Every regular file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn is_secret_file(rel: &str) -> bool {
    SECRET_FILES.iter().any(|(pattern, _)| {
        if let Some((dir, ext)) = pattern.split_once("**.") {
            rel.starts_with(dir) && rel.ends_with(&format!(".{ext}"))
        } else if let Some((dir, ext)) = pattern.split_once("*.") {
            rel.starts_with(dir)
                && !rel[dir.len()..].contains('/')
                && rel.ends_with(&format!(".{ext}"))
        } else if pattern.ends_with('/') {
            rel.starts_with(pattern)
        } else {
            rel == *pattern
        }
    })
}

/// The run: where commands are started and what they printed.
struct Run {
    /// `$HOME` and `$TMPDIR` of every command, searched like the roots.
    scratch: tempfile::TempDir,
    captured: Vec<Captured>,
}

impl Run {
    fn new() -> Run {
        let scratch = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(scratch.path().join("home")).unwrap();
        std::fs::create_dir_all(scratch.path().join("tmp")).unwrap();
        Run {
            scratch,
            captured: Vec::new(),
        }
    }

    /// kubeboot under `root`, with `-vv`, the `systemctl` test double of `bin` first on
    /// PATH, and its own `$HOME`/`$TMPDIR`.
    fn command(&self, root: &Path, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubeboot"));
        c.arg("--root").arg(root).arg("-vv").args(args);
        c.env_remove("KUBEBOOT_LOG")
            .env_remove("KUBEBOOT_CERTIFICATE_KEY")
            .env("HOME", self.scratch.path().join("home"))
            .env("TMPDIR", self.scratch.path().join("tmp"))
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            );
        c
    }

    /// Keeps a finished command's output (no secret allowed in it until
    /// [`Run::allow_last`]); requires status `ok`; returns stdout.
    fn keep(&mut self, what: String, out: std::process::Output, ok: bool) -> String {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.success(),
            ok,
            "{what}: unexpected exit status {}:\n{stdout}\n{stderr}",
            out.status
        );
        self.captured.push(Captured {
            what,
            stdout: stdout.clone(),
            stderr,
            allowed: Allowed::default(),
        });
        stdout
    }

    /// Runs kubeboot `args` on `root`; requires status `ok`; returns stdout.
    fn run(&mut self, root: &Path, bin: &Path, args: &[&str], ok: bool) -> String {
        let out = self.command(root, bin, args).output().unwrap();
        self.keep(format!("kubeboot -vv {}", args.join(" ")), out, ok)
    }

    /// Allows secrets in the last output: `lines` at `place` of [`ALLOWED_PLACES`].
    fn allow_last(&mut self, place: &'static str, lines: Vec<String>) {
        assert!(
            ALLOWED_PLACES.iter().any(|(p, _)| *p == place),
            "{place:?} is not in ALLOWED_PLACES"
        );
        self.captured.last_mut().unwrap().allowed = Allowed {
            place: Some(place),
            lines,
        };
    }
}

/// The `systemctl` test double (records its calls) in `dir/bin`; returns `dir/bin`.
fn systemctl_double(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("systemctl"),
        format!(
            "#!/bin/sh\n# test double for systemd: records the call\necho \"$@\" >> {}/systemctl.log\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    bin
}

#[test]
fn no_secret_in_output_logs_or_files() {
    let cp = ControlPlane::start_with("127.0.0.1", true);
    let cfg = cp.config.to_str().unwrap().to_string();
    let root = cp.root().to_path_buf();
    let cp_bin = systemctl_double(&root);
    let mut run = Run::new();
    let mut secrets = Secrets::default();
    secrets.token(INIT_TOKEN);
    let hash = cp.ok(&["certs", "ca-hash"]).trim().to_string();
    let endpoint = format!("127.0.0.1:{}", cp.port);
    let join_line = |token: &str| {
        format!("kubeboot join {endpoint} --token {token} --discovery-token-ca-cert-hash {hash}")
    };

    // The kubelet's Node registration, done by the test (see the module doc).
    let super_admin = kubeboot::kubeconfig::KubeConfig::parse(
        &std::fs::read_to_string(cp.etc("super-admin.conf")).unwrap(),
    )
    .unwrap();
    kubeboot::apiclient::ApiClient::from_kubeconfig(&super_admin)
        .unwrap()
        .create("/api/v1/nodes", &serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp-test"}}))
        .unwrap();

    // init: preflight alone (it fails on a node that already runs a control plane), then
    // every other phase, uploading the certificates.
    run.run(
        &root,
        &cp_bin,
        &[
            "init",
            "phase",
            "preflight",
            "--config",
            &cfg,
            "--ignore-preflight-errors",
            "all",
        ],
        true,
    );
    let init = [
        "init",
        "--config",
        &cfg,
        "--skip-phases",
        "preflight",
        "--node-wait",
        "30s",
    ];
    let out = run.run(
        &root,
        &cp_bin,
        &[&init[..], &["--upload-certs"]].concat(),
        true,
    );
    // The one place init prints secrets: the join commands at its end.
    let key = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("--control-plane --certificate-key "))
        .unwrap_or_else(|| panic!("no control-plane join command:\n{out}"))
        .to_string();
    secrets.add("certificate key of init --upload-certs", &key);
    run.allow_last(
        "init",
        vec![
            format!("{} \\", join_line(INIT_TOKEN)),
            format!("--control-plane --certificate-key {key}"),
            join_line(INIT_TOKEN),
        ],
    );
    // --skip-token-print and --skip-certificate-key-print withhold both.
    let chosen = "c0ffee".repeat(10) + "0123";
    secrets.add("certificate key chosen for init", &chosen);
    let out = run.run(
        &root,
        &cp_bin,
        &[
            &init[..],
            &[
                "--upload-certs",
                "--certificate-key",
                &chosen,
                "--skip-token-print",
                "--skip-certificate-key-print",
            ],
        ]
        .concat(),
        true,
    );
    assert!(out.contains("--token <value withheld> "), "{out}");
    assert!(out.contains("--certificate-key <key>"), "{out}");

    // init phase upload-certs: a generated key is printed (the user needs it), a chosen
    // one is not with --skip-certificate-key-print.
    let out = run.run(
        &root,
        &cp_bin,
        &[
            "init",
            "phase",
            "upload-certs",
            "--upload-certs",
            "--config",
            &cfg,
        ],
        true,
    );
    let key = out
        .lines()
        .skip_while(|l| !l.contains("Using certificate key:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no certificate key printed:\n{out}"))
        .trim()
        .to_string();
    secrets.add("certificate key of init phase upload-certs", &key);
    run.allow_last("init phase upload-certs --upload-certs", vec![key.clone()]);
    let chosen = "5ec2e7".repeat(10) + "4567";
    secrets.add("certificate key chosen for upload-certs", &chosen);
    run.run(
        &root,
        &cp_bin,
        &[
            "init",
            "phase",
            "upload-certs",
            "--upload-certs",
            "--config",
            &cfg,
            "--certificate-key",
            &chosen,
            "--skip-certificate-key-print",
        ],
        true,
    );

    // token create: the token it printed is its output; --print-join-command prints the
    // join command, with --certificate-key the control-plane one.
    let out = run.run(
        &root,
        &cp_bin,
        &["token", "create", "--description", "secrets test"],
        true,
    );
    let created = out.trim().to_string();
    kubeboot::token::BootstrapToken::parse(&created).unwrap_or_else(|_| panic!("{out}"));
    secrets.token(&created);
    run.allow_last("token create", vec![created.clone()]);
    let out = run.run(
        &root,
        &cp_bin,
        &["token", "create", "--print-join-command"],
        true,
    );
    let printed = out
        .split_whitespace()
        .nth(4)
        .unwrap_or_default()
        .to_string();
    kubeboot::token::BootstrapToken::parse(&printed).unwrap_or_else(|_| panic!("{out}"));
    secrets.token(&printed);
    run.allow_last(
        "token create --print-join-command",
        vec![join_line(&printed)],
    );
    let out = run.run(
        &root,
        &cp_bin,
        &[
            "token",
            "create",
            "--print-join-command",
            "--certificate-key",
            &key,
        ],
        true,
    );
    let printed = out
        .split_whitespace()
        .nth(4)
        .unwrap_or_default()
        .to_string();
    kubeboot::token::BootstrapToken::parse(&printed).unwrap_or_else(|_| panic!("{out}"));
    secrets.token(&printed);
    run.allow_last(
        "token create --print-join-command",
        vec![format!(
            "{} --control-plane --certificate-key {key}",
            join_line(&printed)
        )],
    );

    // token list, text and JSON: every token, none of their secrets.
    let list = run.run(&root, &cp_bin, &["token", "list"], true);
    let json = run.run(&root, &cp_bin, &["token", "list", "-o", "json"], true);
    let json: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    // Every token of the cluster, from the API (upload-certs makes its own).
    let admin = kubeboot::apiclient::ApiClient::from_kubeconfig(&super_admin).unwrap();
    let tokens = kubeboot::token::list(&admin).unwrap();
    for t in &tokens {
        secrets.token(&t.token.to_string());
    }
    assert!(tokens.len() >= 4, "{tokens:?}");
    assert_eq!(json.len(), tokens.len(), "{json:?}");
    for t in [INIT_TOKEN, &created] {
        let id = t.split('.').next().unwrap();
        assert!(
            list.lines()
                .any(|l| l.starts_with(&format!("{id}.<redacted> "))),
            "{id} missing from token list:\n{list}"
        );
        assert!(
            json.iter()
                .any(|e| e["id"] == id && e["token"] == format!("{id}.<redacted>")),
            "{id} missing from token list -o json:\n{json:?}"
        );
    }
    // A kubeconfig whose user is a bearer token (here a bootstrap token, which may not
    // list Secrets): the Authorization header stays out of the debug logs, also at trace
    // level (KUBEBOOT_LOG=trace) where hyper and h2 log every frame.
    let token_user = cp.etc("token-user.conf");
    let mut kc = super_admin.clone();
    kc.users[0].user = kubeboot::kubeconfig::User {
        token: INIT_TOKEN.into(),
        ..Default::default()
    };
    std::fs::write(&token_user, kc.to_yaml()).unwrap();
    std::fs::set_permissions(&token_user, std::fs::Permissions::from_mode(0o600)).unwrap();
    let as_token = [
        "token",
        "list",
        "--kubeconfig",
        "/etc/kubernetes/token-user.conf",
    ];
    run.run(&root, &cp_bin, &as_token, false);
    assert!(
        run.captured
            .last()
            .unwrap()
            .stderr
            .contains("system:bootstrap:abcdef"),
        "{}",
        run.captured.last().unwrap().stderr
    );
    let out = run
        .command(&root, &cp_bin, &as_token)
        .env("KUBEBOOT_LOG", "trace")
        .output()
        .unwrap();
    run.keep(
        "KUBEBOOT_LOG=trace kubeboot token list as a token user".into(),
        out,
        false,
    );
    assert!(
        run.captured.last().unwrap().stderr.contains("TRACE"),
        "KUBEBOOT_LOG=trace logged nothing at trace level"
    );

    // A mistyped token is refused without echoing its secret part.
    run.run(
        &root,
        &cp_bin,
        &["token", "delete", "abcdef.0123456789ABCDEF"],
        false,
    );
    secrets.add("secret of the mistyped token", "0123456789ABCDEF");
    run.run(&root, &cp_bin, &["token", "delete", &created], true);
    run.run(
        &root,
        &cp_bin,
        &["certs", "check-expiration", "-o", "json"],
        true,
    );

    // join (worker), with its TLS bootstrap; then a join that discovery refuses.
    let w = tempfile::tempdir().unwrap();
    let w_bin = systemctl_double(w.path());
    let child = run
        .command(
            w.path(),
            &w_bin,
            &[
                "join",
                &endpoint,
                "--token",
                INIT_TOKEN,
                "--discovery-token-ca-cert-hash",
                &hash,
                "--node-name",
                "worker-1",
                "--ignore-preflight-errors=ImagePull",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    kubelet_credentials(w.path(), "worker-1");
    let out = child.wait_with_output().unwrap();
    let stdout = run.keep("kubeboot -vv join (worker)".into(), out, true);
    assert!(stdout.contains("has joined the cluster"), "{stdout}");
    let w2 = tempfile::tempdir().unwrap();
    let wrong = format!("sha256:{}", "0".repeat(64));
    run.run(
        w2.path(),
        &w_bin,
        &[
            "join",
            &endpoint,
            "--token",
            INIT_TOKEN,
            "--discovery-token-ca-cert-hash",
            &wrong,
            "--skip-phases",
            "kubelet-start,kubelet-wait-bootstrap",
            "--discovery-timeout",
            "4s",
        ],
        false,
    );

    // Every secret of the nodes, now that all are written.
    let mut public = secrets.add_node(&root);
    public.extend(secrets.add_node(w.path()));
    secrets.drop_public(&public);
    assert!(
        secrets.len() > 100,
        "too few secrets found: {}",
        secrets.len()
    );

    // -vv turned on the dependencies' debug logs, so they were searched too.
    for target in ["reqwest::connect", "hyper_util::", "h2::codec"] {
        assert!(
            run.captured.iter().any(|c| c
                .stderr
                .lines()
                .any(|l| l.contains(" DEBUG ") && l.contains(target))),
            "-vv showed no debug log of {target}: the test would miss its leaks"
        );
    }

    for (place, _) in ALLOWED_PLACES {
        assert!(
            run.captured.iter().any(|c| c.allowed.place == Some(*place)),
            "ALLOWED_PLACES lists {place:?}, which the test never runs"
        );
    }
    for c in &run.captured {
        let mut rest = c.stdout.clone();
        for line in &c.allowed.lines {
            let kept = rest
                .lines()
                .filter(|l| l.trim() != line)
                .collect::<Vec<_>>()
                .join("\n");
            assert_ne!(
                kept.len(),
                rest.len(),
                "{}: allowed line {line:?} not printed:\n{}",
                c.what,
                c.stdout
            );
            rest = kept;
        }
        secrets.assert_absent(&format!("the stdout of {}", c.what), &rest);
        secrets.assert_absent(&format!("the stderr of {}", c.what), &c.stderr);
    }

    // Files: everything under the roots, $HOME and $TMPDIR, except the secret files,
    // which must be 0600 where kubeboot wrote them.
    // Secret files not written by kubeboot: the worker's kubelet.conf (the kubelet test
    // double's).
    let not_kubeboots = [w.path().join("etc/kubernetes/kubelet.conf")];
    let (mut searched, mut modes) = (0, 0);
    for (base, is_node) in [
        (root.as_path(), true),
        (w.path(), true),
        (w2.path(), true),
        (run.scratch.path(), false),
    ] {
        for f in files(base) {
            let rel = f.strip_prefix(base).unwrap().to_str().unwrap().to_string();
            if is_node && is_secret_file(&rel) {
                if rel.starts_with("etc/kubernetes/") && !not_kubeboots.contains(&f) {
                    let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
                    assert_eq!(mode, 0o600, "{} has mode {mode:o}", f.display());
                    modes += 1;
                }
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            secrets.assert_absent(&f.display().to_string(), &text);
            searched += 1;
        }
    }
    assert!(searched > 20, "only {searched} files searched");
    assert!(modes >= 15, "only {modes} modes checked");
    eprintln!(
        "[figure] secrets: {} strings searched in {} outputs and {searched} files; {modes} secret files are 0600",
        secrets.len(),
        run.captured.len()
    );
}

//! `SshHost` against a real OpenSSH sshd on loopback: key auth, known_hosts refusals with
//! fingerprints, accept-new, exit codes and streams, atomic writes with mode, timeouts,
//! connect timeout, parallel commands over one connection.

mod sshd_support;

use kubeboot::host::{Host, HostError, RunOptions, SshConfig, SshHost, WriteOptions};
use sshd_support::Sshd;
use std::path::Path;
use std::time::{Duration, Instant};

fn config(s: &Sshd) -> SshConfig {
    SshConfig {
        port: s.port,
        identity_files: vec![s.client_key()],
        use_agent: false,
        known_hosts: Some(s.known_hosts()),
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn connect(s: &Sshd) -> SshHost {
    SshHost::connect("loop", "127.0.0.1", &config(s)).unwrap_or_else(|e| panic!("{e}\n{}", s.log()))
}

#[test]
fn runs_commands_with_exit_codes_stdin_and_streams() {
    let s = Sshd::start();
    let h = connect(&s);
    let out = h
        .run(
            "cat; echo err >&2; id -u; exit 3",
            &RunOptions {
                stdin: Some(b"hello\n".to_vec()),
                timeout: None,
            },
        )
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout_text(), "hello\n0\n");
    assert_eq!(out.stderr_text().trim(), "err");
    assert_eq!(h.round_trips(), Some(1));
    // A large stdin goes through the channel's flow control intact.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let out = h
        .run(
            "sha256sum | cut -d' ' -f1",
            &RunOptions {
                stdin: Some(big.clone()),
                timeout: None,
            },
        )
        .unwrap();
    use sha2::Digest;
    let want: String = sha2::Sha256::digest(&big)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(out.stdout_text().trim(), want);
    // The same bytes streamed from a file (image archives are uploaded this way), and a
    // missing file is an error naming it, with nothing run.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("archive.tar");
    std::fs::write(&file, &big).unwrap();
    let out = h
        .run_with_stdin_file("sha256sum | cut -d' ' -f1", &file, None)
        .unwrap();
    assert_eq!(out.stdout_text().trim(), want);
    let before = h.round_trips();
    let e = h
        .run_with_stdin_file("cat", &dir.path().join("absent.tar"), None)
        .unwrap_err();
    assert!(e.to_string().contains("absent.tar"), "{e}");
    assert_eq!(h.round_trips(), before);
}

#[test]
fn writes_atomically_with_mode_and_reads_back() {
    let s = Sshd::start();
    let h = connect(&s);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("new/sub/file.conf");
    h.write_file(&p, b"one\n", WriteOptions::PRIVATE).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"one\n");
    let info = h.file_info(&p).unwrap().unwrap();
    assert_eq!((info.mode, info.len, info.is_dir), (0o600, 4, false));
    assert_eq!(h.read_file(&p).unwrap().unwrap(), b"one\n");
    h.write_file(
        &p,
        b"two\n",
        WriteOptions {
            mode: 0o644,
            dir_mode: 0o755,
            owner: Some((65534, 65534)),
        },
    )
    .unwrap();
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&p).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o644, 65534, 65534));
    // No temp files left beside it.
    let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // A failed write leaves the old file.
    let blocked = dir.path().join("new/sub/file.conf/below");
    assert!(h.write_file(&blocked, b"x", WriteOptions::PUBLIC).is_err());
    assert_eq!(std::fs::read(&p).unwrap(), b"two\n");
    assert!(
        h.file_info(&dir.path().join("new"))
            .unwrap()
            .unwrap()
            .is_dir
    );
    assert!(h.remove_file(&p).unwrap());
    assert!(!h.remove_file(&p).unwrap());
    assert!(h.read_file(&p).unwrap().is_none());
    assert!(h.file_info(Path::new("/nonexistent/x")).unwrap().is_none());
}

#[test]
fn command_timeout_kills_and_reports() {
    let s = Sshd::start();
    let h = connect(&s);
    let start = Instant::now();
    let e = h
        .run(
            "sleep 30",
            &RunOptions {
                stdin: None,
                timeout: Some(Duration::from_millis(300)),
            },
        )
        .unwrap_err();
    assert!(matches!(e, HostError::Timeout { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(5));
    // The connection is still usable.
    assert_eq!(
        h.run("echo ok", &RunOptions::default())
            .unwrap()
            .stdout_text(),
        "ok\n"
    );
}

#[test]
fn unknown_host_key_is_refused_with_fingerprint_then_accepted_on_request() {
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    let mut cfg = config(&s);
    cfg.known_hosts = Some(kh.clone());
    let e = SshHost::connect("loop", "127.0.0.1", &cfg).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, HostError::HostKey { .. }), "{msg}");
    assert!(msg.contains(&s.fingerprint()), "{msg}");
    assert!(
        msg.contains("unknown") && msg.contains(&kh.display().to_string()),
        "{msg}"
    );
    assert!(!kh.exists(), "refusal must not write known_hosts");

    cfg.accept_new_host_keys = true;
    let h = SshHost::connect("loop", "127.0.0.1", &cfg).unwrap();
    let note = h.notes().join("\n");
    assert!(
        note.contains("accepted new host key") && note.contains(&s.fingerprint()),
        "{note}"
    );
    assert!(note.contains(&format!("{}:1", kh.display())), "{note}");
    // Now known: no note, no second line.
    cfg.accept_new_host_keys = false;
    let h = SshHost::connect("loop", "127.0.0.1", &cfg).unwrap();
    assert!(h.notes().is_empty());
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 1);
}

#[test]
fn changed_host_key_is_refused_even_with_accept_new() {
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    let other = dir.path().join("other");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let pubkey = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut parts = pubkey.split_whitespace();
    std::fs::write(
        &kh,
        format!(
            "# a comment\n[127.0.0.1]:{} {} {}\n",
            s.port,
            parts.next().unwrap(),
            parts.next().unwrap()
        ),
    )
    .unwrap();
    let mut cfg = config(&s);
    cfg.known_hosts = Some(kh.clone());
    cfg.accept_new_host_keys = true;
    let msg = SshHost::connect("loop", "127.0.0.1", &cfg)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("HOST KEY CHANGED"), "{msg}");
    assert!(msg.contains(&s.fingerprint()), "{msg}");
    assert!(msg.contains(&format!("{}:2", kh.display())), "{msg}");
}

#[test]
fn wrong_key_and_encrypted_key_are_reported() {
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    let enc = dir.path().join("enc");
    for (p, pass) in [(&wrong, ""), (&enc, "sesame")] {
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", pass, "-f"])
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let mut cfg = config(&s);
    cfg.identity_files = vec![wrong.clone()];
    let e = SshHost::connect("loop", "127.0.0.1", &cfg).unwrap_err();
    assert!(matches!(e, HostError::Auth { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("rejected") && msg.contains(&wrong.display().to_string()),
        "{msg}"
    );

    cfg.identity_files = vec![enc.clone()];
    let msg = SshHost::connect("loop", "127.0.0.1", &cfg)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("KUBEBOOT_SSH_KEY_PASSPHRASE"), "{msg}");

    // An encrypted key that the server accepts, with its passphrase.
    std::fs::copy(
        enc.with_extension("pub"),
        s.dir.path().join("authorized_keys"),
    )
    .unwrap();
    cfg.key_passphrase = Some("sesame".into());
    let h = SshHost::connect("loop", "127.0.0.1", &cfg).unwrap();
    assert!(h.run("true", &RunOptions::default()).unwrap().success());
}

#[test]
fn rsa_and_ecdsa_keys_and_agent() {
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut auth = String::new();
    let mut keys = Vec::new();
    for (name, args) in [
        ("rsa", &["-t", "rsa", "-b", "2048"][..]),
        ("ecdsa", &["-t", "ecdsa"][..]),
        ("pem", &["-t", "rsa", "-b", "2048", "-m", "PEM"][..]),
    ] {
        let p = dir.path().join(name);
        let st = std::process::Command::new("ssh-keygen")
            .arg("-q")
            .args(args)
            .args(["-N", "", "-f"])
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
        auth += &std::fs::read_to_string(p.with_extension("pub")).unwrap();
        keys.push(p);
    }
    std::fs::write(s.dir.path().join("authorized_keys"), &auth).unwrap();
    for k in &keys {
        let mut cfg = config(&s);
        cfg.identity_files = vec![k.clone()];
        let h = SshHost::connect("loop", "127.0.0.1", &cfg)
            .unwrap_or_else(|e| panic!("{}: {e}", k.display()));
        assert!(h.run("true", &RunOptions::default()).unwrap().success());
    }
    // ssh-agent holding the RSA key; no key files given.
    let sock = dir.path().join("agent.sock");
    let agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn();
    let Ok(mut agent) = agent else {
        panic!("ssh-agent is needed (apt-get install openssh-client)");
    };
    let start = Instant::now();
    while !sock.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = std::process::Command::new("ssh-add")
        .arg(&keys[0])
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    // SSH_AUTH_SOCK is process-wide; this is the only test that sets it.
    unsafe { std::env::set_var("SSH_AUTH_SOCK", &sock) };
    let mut cfg = config(&s);
    cfg.identity_files.clear();
    cfg.use_agent = true;
    let r = SshHost::connect("loop", "127.0.0.1", &cfg);
    unsafe { std::env::remove_var("SSH_AUTH_SOCK") };
    let _ = agent.kill();
    let _ = agent.wait();
    let h = r.unwrap();
    assert!(h.run("true", &RunOptions::default()).unwrap().success());
}

#[test]
fn connect_timeout_and_refused_port() {
    // A listener that accepts but never speaks SSH.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let cfg = SshConfig {
        port,
        use_agent: false,
        connect_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let start = Instant::now();
    let e = SshHost::connect("mute", "127.0.0.1", &cfg).unwrap_err();
    assert!(matches!(e, HostError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("timeout"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(3));
    drop(l);
    let cfg = SshConfig {
        port: sshd_support::free_port(),
        use_agent: false,
        ..Default::default()
    };
    let e = SshHost::connect("closed", "127.0.0.1", &cfg).unwrap_err();
    assert!(e.to_string().contains("refused"), "{e}");
}

/// With AES instructions on this machine, kubeboot asks for AES-GCM first (half the CPU per
/// byte of ChaCha20-Poly1305, on this side and in sshd); sshd's debug log names the cipher
/// both sides agreed on. A server that offers only ChaCha20-Poly1305 is still reached.
#[test]
fn aes_gcm_first_where_the_cpu_has_aes_and_chacha_still_works() {
    let s = Sshd::start_with("LogLevel DEBUG1\n");
    let out = connect(&s).run("echo hi", &RunOptions::default()).unwrap();
    assert_eq!(out.stdout_text(), "hi\n");
    let want = if kubeboot::host::ssh::aes_in_hardware() {
        "aes256-gcm@openssh.com"
    } else {
        "chacha20-poly1305@openssh.com"
    };
    let log = s.log();
    assert!(
        log.contains(&format!("kex: client->server cipher: {want} ")),
        "sshd's log does not name {want}:\n{log}"
    );

    let s = Sshd::start_with("LogLevel DEBUG1\nCiphers chacha20-poly1305@openssh.com\n");
    let out = connect(&s).run("echo hi", &RunOptions::default()).unwrap();
    assert_eq!(out.stdout_text(), "hi\n");
    assert!(
        s.log()
            .contains("kex: client->server cipher: chacha20-poly1305@openssh.com "),
        "{}",
        s.log()
    );
}

#[test]
fn one_connection_many_parallel_channels() {
    let s = Sshd::start();
    let h = std::sync::Arc::new(connect(&s));
    let start = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let h = h.clone();
            std::thread::spawn(move || {
                h.run(&format!("sleep 0.5; echo {i}"), &RunOptions::default())
                    .unwrap()
                    .stdout_text()
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(t.join().unwrap(), format!("{i}\n"));
    }
    // Eight half-second commands at once, not one after the other.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(h.round_trips(), Some(8));
}

#[test]
fn connection_loss_mid_command_is_an_ssh_error() {
    let s = Sshd::start();
    let h = connect(&s);
    // The sshd process serving this connection (the ancestor named sshd).
    let pid = h
        .run(
            "p=$$; while [ \"$(cat /proc/$p/comm)\" != sshd ]; do p=$(awk '{print $4}' /proc/$p/stat); done; echo $p",
            &RunOptions::default(),
        )
        .unwrap()
        .stdout_text();
    let pid: i32 = pid.trim().parse().unwrap();
    let t = std::thread::spawn(move || h.run("sleep 20", &RunOptions::default()));
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let start = Instant::now();
    let r = t.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    let e = r.unwrap_err();
    assert!(e.is_connection(), "{e}");
}

#[test]
fn through_a_jump_host() {
    let bastion = Sshd::start();
    let target = Sshd::start();
    // Both servers trust the bastion's client key; known_hosts lists both host keys.
    std::fs::copy(
        bastion.client_key().with_extension("pub"),
        target.dir.path().join("authorized_keys"),
    )
    .unwrap();
    let kh = bastion.dir.path().join("both_known_hosts");
    let both = std::fs::read_to_string(bastion.known_hosts()).unwrap()
        + &std::fs::read_to_string(target.known_hosts()).unwrap();
    std::fs::write(&kh, both).unwrap();
    let cfg = SshConfig {
        port: target.port,
        identity_files: vec![bastion.client_key()],
        use_agent: false,
        known_hosts: Some(kh),
        bastion: Some(kubeboot::host::Bastion {
            address: "127.0.0.1".into(),
            port: bastion.port,
            user: "root".into(),
        }),
        ..Default::default()
    };
    let h = SshHost::connect("behind", "127.0.0.1", &cfg).unwrap_or_else(|e| panic!("{e}"));
    // The target sees the connection coming from the bastion's sshd (loopback here), and
    // it is the target's sshd: its config file is the target's.
    let out = h
        .run("echo $SSH_CONNECTION", &RunOptions::default())
        .unwrap()
        .stdout_text();
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        fields.get(3),
        Some(&target.port.to_string().as_str()),
        "{out}"
    );
    // Stopping the bastion's listener does not matter; its session carries the tunnel.
    drop(bastion);
    assert!(h.run("true", &RunOptions::default()).unwrap().success());
}

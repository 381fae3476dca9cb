//! A remote machine over SSH (russh): one connection per host, one channel per command,
//! multiplexed, so many threads may run commands on the same host at once.
//!
//! The [`Host`] trait is synchronous. russh is async, so every `SshHost` shares one small
//! tokio runtime and callers `block_on` it from their own thread (one thread per host in
//! `prepare`); the runtime's workers drive all connections' I/O.
//!
//! Security posture, like OpenSSH's `StrictHostKeyChecking=yes`: a host key must be in
//! known_hosts. Unknown and changed keys are refused with the presented key's SHA256
//! fingerprint and the file and line to look at; `accept_new_host_keys` records unknown
//! keys (never changed ones), like `StrictHostKeyChecking=accept-new`.

use super::known_hosts::{HostKeyVerdict, KnownHosts, fingerprint, host_port_name};
use super::{CommandOutput, FileInfo, Host, HostError, RunOptions, WriteOptions};
use russh::ChannelMsg;
use russh::client::{self, AuthResult, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

/// Exit status the helper scripts use for "no such file".
const ABSENT: i32 = 100;

/// How to reach and log in to hosts. Shared by every host of a run. `Debug` redacts the
/// key passphrase and the sudo password.
#[derive(Clone)]
pub struct SshConfig {
    /// Login user; anything but `root` runs commands through `sudo`.
    pub user: String,
    /// sshd port.
    pub port: u16,
    /// Private key files (OpenSSH ed25519/ECDSA/RSA, or PEM RSA), tried in order. When
    /// empty and no agent is usable, `~/.ssh/id_ed25519`, `id_ecdsa` and `id_rsa`.
    pub identity_files: Vec<PathBuf>,
    /// Passphrase for encrypted key files (`KUBEBOOT_SSH_KEY_PASSPHRASE`).
    pub key_passphrase: Option<String>,
    /// Also try the keys of the ssh-agent at `SSH_AUTH_SOCK`.
    pub use_agent: bool,
    /// known_hosts file; `None` means `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Record keys of unknown hosts instead of refusing them (changed keys are still
    /// refused).
    pub accept_new_host_keys: bool,
    /// Limit for TCP connect + SSH handshake + authentication.
    pub connect_timeout: Duration,
    /// Keepalive interval; three unanswered keepalives close the connection.
    pub keepalive_interval: Duration,
    /// Jump host (`bastion`): connections go through it, as `ssh -J`.
    pub bastion: Option<Bastion>,
    /// Password for `sudo` when the user's sudo asks for one (`KUBEBOOT_SUDO_PASSWORD`).
    pub sudo_password: Option<String>,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            user: "root".into(),
            port: 22,
            identity_files: Vec::new(),
            key_passphrase: None,
            use_agent: true,
            known_hosts: None,
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(15),
            bastion: None,
            sudo_password: None,
        }
    }
}

fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

impl std::fmt::Debug for SshConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConfig")
            .field("user", &self.user)
            .field("port", &self.port)
            .field("identity_files", &self.identity_files)
            .field("key_passphrase", &redacted(&self.key_passphrase))
            .field("use_agent", &self.use_agent)
            .field("known_hosts", &self.known_hosts)
            .field("accept_new_host_keys", &self.accept_new_host_keys)
            .field("connect_timeout", &self.connect_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("bastion", &self.bastion)
            .field("sudo_password", &redacted(&self.sudo_password))
            .finish()
    }
}

/// A jump host; it uses the same keys and known_hosts as the targets.
#[derive(Debug, Clone)]
pub struct Bastion {
    pub address: String,
    pub port: u16,
    pub user: String,
}

impl SshConfig {
    fn known_hosts_path(&self) -> PathBuf {
        self.known_hosts.clone().unwrap_or_else(|| {
            std::env::home_dir()
                .unwrap_or_else(|| PathBuf::from("/root"))
                .join(".ssh/known_hosts")
        })
    }
}

/// The runtime every SSH connection lives on (two workers are plenty: the work is I/O).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kubeboot-ssh")
            .enable_all()
            .build()
            .expect("tokio runtime for SSH")
    })
}

/// What happened to the host key during the handshake, for the error message or the
/// "accepted new key" note.
#[derive(Debug, Clone)]
enum KeyOutcome {
    Accepted(String),
    Refused(String),
}

struct Client {
    address: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
    outcome: Arc<Mutex<Option<KeyOutcome>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(_) => {
                self.set(KeyOutcome::Refused(
                    "the server presented a host certificate; kubeboot checks plain host keys only"
                        .into(),
                ));
                return Ok(false);
            }
        };
        let file = self.known_hosts.display().to_string();
        let name = host_port_name(&self.address, self.port);
        let fp = fingerprint(key);
        let algo = key.algorithm().to_string();
        let known = match KnownHosts::load(&self.known_hosts) {
            Ok(k) => k,
            Err(e) => {
                self.set(KeyOutcome::Refused(format!(
                    "cannot read known_hosts {file}: {e}"
                )));
                return Ok(false);
            }
        };
        match known.check(&self.address, self.port, key) {
            HostKeyVerdict::Known { .. } => Ok(true),
            HostKeyVerdict::Unknown if self.accept_new => {
                match KnownHosts::append(&self.known_hosts, &self.address, self.port, key) {
                    Ok(line) => {
                        self.set(KeyOutcome::Accepted(format!(
                            "accepted new host key {algo} {fp} for {name} (--accept-new-host-keys), recorded in {file}:{line}"
                        )));
                        Ok(true)
                    }
                    Err(e) => {
                        self.set(KeyOutcome::Refused(format!(
                            "cannot record the host key of {name} in {file}: {e}"
                        )));
                        Ok(false)
                    }
                }
            }
            HostKeyVerdict::Unknown => {
                let unreadable = match known.unreadable.as_slice() {
                    [] => String::new(),
                    lines => format!(
                        " ({file} has lines that are not known_hosts entries and were skipped: {}; an entry is HOSTS KEYTYPE BASE64-KEY)",
                        lines
                            .iter()
                            .map(|l| format!("line {l}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.set(KeyOutcome::Refused(format!(
                    "host key of {name} is unknown: the server offers {algo} {fp}, and {file} has no entry for {name}{unreadable}. Check the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then add it to {file} (ssh-keyscan) or run again with --accept-new-host-keys"
                )));
                Ok(false)
            }
            HostKeyVerdict::Changed { line } => {
                self.set(KeyOutcome::Refused(format!(
                    "HOST KEY CHANGED for {name}: the server offers {algo} {fp}, which differs from the key recorded in {file}:{line}. Someone may be intercepting the connection, or the host was reinstalled; if that is expected, remove line {line} (ssh-keygen -R {name} -f {file}) and connect again"
                )));
                Ok(false)
            }
            HostKeyVerdict::OtherType { line, recorded } => {
                self.set(KeyOutcome::Refused(format!(
                    "host key of {name}: the server offers {algo} {fp}, but {file}:{line} records a {recorded} key for it; add the {algo} key to {file} if it is genuine"
                )));
                Ok(false)
            }
            HostKeyVerdict::Revoked { line } => {
                self.set(KeyOutcome::Refused(format!(
                    "host key {algo} {fp} of {name} is marked @revoked in {file}:{line}"
                )));
                Ok(false)
            }
        }
    }
}

impl Client {
    fn set(&self, o: KeyOutcome) {
        *self.outcome.lock().unwrap() = Some(o);
    }
}

/// How commands get root. `Debug` redacts the password.
#[derive(Clone)]
enum Privilege {
    Root,
    Sudo,
    SudoPassword(String),
}

impl std::fmt::Debug for Privilege {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Privilege::Root => write!(f, "Root"),
            Privilege::Sudo => write!(f, "Sudo"),
            Privilege::SudoPassword(_) => write!(f, "SudoPassword(<redacted>)"),
        }
    }
}

/// A remote host reached over SSH.
pub struct SshHost {
    name: String,
    address: String,
    privilege: Privilege,
    handle: Arc<Handle<Client>>,
    // Keeps the jump host's connection open for as long as this one.
    _bastion: Option<Arc<Handle<Client>>>,
    round_trips: AtomicU64,
    notes: Vec<String>,
}

impl std::fmt::Debug for SshHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshHost")
            .field("name", &self.name)
            .field("address", &self.address)
            .finish()
    }
}

fn connect_error(host: &str, message: impl Into<String>) -> HostError {
    HostError::Connect {
        host: host.to_string(),
        message: message.into(),
    }
}

/// Shell-quotes one word for `sh`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl SshHost {
    /// Connects to `address` (IP or DNS name), checks its host key and logs in. `name` is
    /// what messages call the host.
    pub fn connect(name: &str, address: &str, cfg: &SshConfig) -> Result<SshHost, HostError> {
        let deadline = cfg.connect_timeout;
        let fut = async {
            tokio::time::timeout(deadline, Self::connect_async(name, address, cfg))
                .await
                .unwrap_or_else(|_| {
                    Err(connect_error(
                        name,
                        format!(
                            "no SSH session with {} within {}s (connect timeout): is the host up and sshd running?",
                            host_port_name(address, cfg.port),
                            deadline.as_secs_f32()
                        ),
                    ))
                })
        };
        runtime().block_on(fut)
    }

    async fn connect_async(
        name: &str,
        address: &str,
        cfg: &SshConfig,
    ) -> Result<SshHost, HostError> {
        let mut notes = Vec::new();
        let (handle, bastion) = match &cfg.bastion {
            None => {
                let stream = tokio::net::TcpStream::connect((address, cfg.port))
                    .await
                    .map_err(|e| {
                        connect_error(
                            name,
                            format!(
                                "cannot connect to {}: {e}",
                                host_port_name(address, cfg.port)
                            ),
                        )
                    })?;
                let _ = stream.set_nodelay(true);
                let h =
                    Self::handshake(name, address, cfg.port, &cfg.user, cfg, stream, &mut notes)
                        .await?;
                (h, None)
            }
            Some(b) => {
                let stream = tokio::net::TcpStream::connect((b.address.as_str(), b.port))
                    .await
                    .map_err(|e| {
                        connect_error(
                            name,
                            format!(
                                "cannot connect to bastion {}: {e}",
                                host_port_name(&b.address, b.port)
                            ),
                        )
                    })?;
                let _ = stream.set_nodelay(true);
                let bh =
                    Self::handshake(name, &b.address, b.port, &b.user, cfg, stream, &mut notes)
                        .await
                        .map_err(|e| {
                            connect_error(name, format!("via bastion {}: {e}", b.address))
                        })?;
                let ch = bh
                    .channel_open_direct_tcpip(address, u32::from(cfg.port), "127.0.0.1", 0)
                    .await
                    .map_err(|e| {
                        connect_error(
                            name,
                            format!(
                                "bastion {} cannot reach {}: {e}",
                                b.address,
                                host_port_name(address, cfg.port)
                            ),
                        )
                    })?;
                let h = Self::handshake(
                    name,
                    address,
                    cfg.port,
                    &cfg.user,
                    cfg,
                    ch.into_stream(),
                    &mut notes,
                )
                .await?;
                (h, Some(Arc::new(bh)))
            }
        };
        let privilege = if cfg.user == "root" {
            Privilege::Root
        } else if let Some(p) = &cfg.sudo_password {
            Privilege::SudoPassword(p.clone())
        } else {
            Privilege::Sudo
        };
        Ok(SshHost {
            name: name.to_string(),
            address: address.to_string(),
            privilege,
            handle: Arc::new(handle),
            _bastion: bastion,
            round_trips: AtomicU64::new(0),
            notes,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn handshake<S>(
        name: &str,
        address: &str,
        port: u16,
        user: &str,
        cfg: &SshConfig,
        stream: S,
        notes: &mut Vec<String>,
    ) -> Result<Handle<Client>, HostError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let known_hosts = cfg.known_hosts_path();
        let mut config = client::Config {
            keepalive_interval: Some(cfg.keepalive_interval),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        };
        config.preferred.cipher = cipher_order(&config.preferred.cipher).into();
        // Ask for a host key type known_hosts has for this host first, as OpenSSH does,
        // so a host with several keys is checked against the one we know.
        if let Ok(k) = KnownHosts::load(&known_hosts) {
            let known = k.algorithms_for(address, port);
            if !known.is_empty() {
                let mut order: Vec<_> = config
                    .preferred
                    .key
                    .iter()
                    .filter(|a| known.iter().any(|k| same_family(k, a)))
                    .cloned()
                    .collect();
                order.extend(
                    config
                        .preferred
                        .key
                        .iter()
                        .filter(|a| !known.iter().any(|k| same_family(k, a)))
                        .cloned(),
                );
                config.preferred.key = order.into();
            }
        }
        let outcome = Arc::new(Mutex::new(None));
        let handler = Client {
            address: address.to_string(),
            port,
            known_hosts,
            accept_new: cfg.accept_new_host_keys,
            outcome: outcome.clone(),
        };
        let res = client::connect_stream(Arc::new(config), stream, handler).await;
        let key_outcome = outcome.lock().unwrap().clone();
        let mut handle = match (res, key_outcome) {
            (Err(_), Some(KeyOutcome::Refused(msg))) => {
                return Err(HostError::HostKey {
                    host: name.to_string(),
                    message: msg,
                });
            }
            (Err(e), _) => {
                return Err(connect_error(
                    name,
                    format!(
                        "SSH handshake with {} failed: {e}",
                        host_port_name(address, port)
                    ),
                ));
            }
            (Ok(h), outcome) => {
                if let Some(KeyOutcome::Accepted(note)) = outcome {
                    notes.push(note);
                }
                h
            }
        };
        authenticate(&mut handle, name, user, cfg).await?;
        Ok(handle)
    }

    /// Notes from connecting (e.g. a host key accepted with `--accept-new-host-keys`).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The address connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Wraps a command so it runs as root.
    fn privileged(&self, command: &str) -> (String, Option<Vec<u8>>) {
        let quoted = shell_quote(command);
        match &self.privilege {
            Privilege::Root => (format!("sh -c {quoted}"), None),
            Privilege::Sudo => (format!("sudo -n -- sh -c {quoted}"), None),
            // -k: always ask, so the password line is consumed by sudo, never by the
            // command; -p '': no prompt text on stderr.
            Privilege::SudoPassword(p) => (
                format!("sudo -k -S -p '' -- sh -c {quoted}"),
                Some(format!("{p}\n").into_bytes()),
            ),
        }
    }

    async fn exec(
        &self,
        command: &str,
        opts: &RunOptions,
        file: Option<std::fs::File>,
        on_stdout: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<CommandOutput, HostError> {
        let (wrapped, prefix) = self.privileged(command);
        let ssh_err = |e: russh::Error| {
            HostError::Ssh {
            host: self.name.clone(),
            command: short(command),
            message: match e {
                // The session ended under us (russh says "Channel send error").
                russh::Error::SendError | russh::Error::Disconnect => {
                    "the connection was lost before the command started (host down or sshd stopped?)".into()
                }
                e => e.to_string(),
            },
        }
        };
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut ch = self.handle.channel_open_session().await.map_err(ssh_err)?;
        ch.exec(true, wrapped.as_bytes()).await.map_err(ssh_err)?;
        let mut input = prefix.unwrap_or_default();
        if let Some(s) = &opts.stdin {
            input.extend_from_slice(s);
        }
        let mut writer = ch.make_writer();
        let feeder = tokio::spawn(async move {
            if !input.is_empty() {
                writer.write_all(&input).await?;
            }
            // A file goes in pieces, as fast as the channel's window lets it. Read in
            // 1 MiB pieces: tokio's file reads are each a hop to a blocking thread, and
            // `copy`'s own 8 KiB buffer made that 14,000 hops for a kubelet binary (on 2
            // cores, kubeboot's own CPU was then a noticeable share of a 10-node `up`).
            if let Some(f) = file {
                let mut f =
                    tokio::io::BufReader::with_capacity(1 << 20, tokio::fs::File::from_std(f));
                tokio::io::copy_buf(&mut f, &mut writer).await?;
            }
            writer.shutdown().await
        });
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut status = None;
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    on_stdout(&data);
                    stdout.extend_from_slice(&data);
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status as i32),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    stderr.extend_from_slice(
                        format!("killed by signal {signal_name:?}\n").as_bytes(),
                    );
                    status = Some(128 + 9);
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        feeder.abort();
        let Some(status) = status else {
            return Err(HostError::Ssh {
                host: self.name.clone(),
                command: short(command),
                message: "the connection was lost before the command finished (host down or sshd stopped?)".into(),
            });
        };
        if !matches!(self.privilege, Privilege::Root)
            && status == 1
            && stdout.is_empty()
            && String::from_utf8_lossy(&stderr).contains("sudo: a password is required")
        {
            return Err(HostError::Ssh {
                host: self.name.clone(),
                command: short(command),
                message: "sudo needs a password for this user: allow NOPASSWD in sudoers or set KUBEBOOT_SUDO_PASSWORD".into(),
            });
        }
        Ok(CommandOutput {
            status,
            stdout,
            stderr,
        })
    }

    fn run_blocking(
        &self,
        command: &str,
        opts: &RunOptions,
        file: Option<std::fs::File>,
        on_stdout: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<CommandOutput, HostError> {
        let fut = self.exec(command, opts, file, on_stdout);
        match opts.timeout {
            None => runtime().block_on(fut),
            Some(t) => runtime().block_on(async {
                match tokio::time::timeout(t, fut).await {
                    Ok(r) => r,
                    // Dropping the channel closes it; sshd then hangs up on the command.
                    Err(_) => Err(HostError::Timeout {
                        host: self.name.clone(),
                        command: short(command),
                        timeout: t,
                    }),
                }
            }),
        }
    }

    fn helper(
        &self,
        op: &'static str,
        path: &Path,
        script: &str,
        stdin: Option<Vec<u8>>,
    ) -> Result<CommandOutput, HostError> {
        let out = self.run(
            script,
            &RunOptions {
                stdin,
                timeout: None,
            },
        )?;
        if out.status != 0 && out.status != ABSENT {
            return Err(HostError::Remote {
                host: self.name.clone(),
                op,
                path: path.to_path_buf(),
                message: format!("exit status {}: {}", out.status, out.stderr_text().trim()),
            });
        }
        Ok(out)
    }
}

/// The ciphers to offer, best first: with AES instructions on this machine (AES-NI and
/// carry-less multiply), AES-GCM before ChaCha20-Poly1305, since it costs this side and
/// an OpenSSH server about a third less CPU per byte uploaded (1 GB to a lab node:
/// kubeboot 1.10 CPU-s instead of 1.75, sshd 0.95 instead of 1.45); without them, russh's order
/// (ChaCha20-Poly1305 first, which is fast in software and constant-time). Both are AEAD
/// ciphers OpenSSH offers by default.
fn cipher_order(default: &[russh::cipher::Name]) -> Vec<russh::cipher::Name> {
    let mut order = default.to_vec();
    if aes_in_hardware() {
        let gcm = [russh::cipher::AES_256_GCM, russh::cipher::AES_128_GCM];
        order.retain(|c| !gcm.contains(c));
        for c in gcm.into_iter().rev() {
            order.insert(0, c);
        }
    }
    order
}

/// Whether this machine's CPU has AES and carry-less multiply instructions (AES-GCM in
/// hardware).
pub fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

fn same_family(a: &russh::keys::Algorithm, b: &russh::keys::Algorithm) -> bool {
    use russh::keys::Algorithm;
    matches!((a, b), (Algorithm::Rsa { .. }, Algorithm::Rsa { .. })) || a == b
}

fn short(command: &str) -> String {
    if command.contains("@@kb ") {
        return "playbook script".into();
    }
    let first = command.trim_start().lines().next().unwrap_or_default();
    if first.len() > 80 || command.lines().count() > 1 {
        format!("{}...", first.chars().take(80).collect::<String>())
    } else {
        first.to_string()
    }
}

async fn authenticate(
    handle: &mut Handle<Client>,
    name: &str,
    user: &str,
    cfg: &SshConfig,
) -> Result<(), HostError> {
    let mut tried: Vec<String> = Vec::new();
    let auth_err = |tried: &[String], extra: &str| HostError::Auth {
        host: name.to_string(),
        message: format!(
            "cannot log in as {user}: {}{extra}",
            if tried.is_empty() {
                "no key to try (give --ssh-key or start an ssh-agent)".to_string()
            } else {
                format!("tried {}", tried.join("; "))
            }
        ),
    };
    let mut files = cfg.identity_files.clone();
    let agent_sock = std::env::var_os("SSH_AUTH_SOCK").filter(|_| cfg.use_agent);
    if files.is_empty() && agent_sock.is_none() {
        let home = std::env::home_dir().unwrap_or_else(|| PathBuf::from("/root"));
        for f in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let p = home.join(".ssh").join(f);
            if p.exists() {
                files.push(p);
            }
        }
    }
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    for file in &files {
        let key = match russh::keys::load_secret_key(file, cfg.key_passphrase.as_deref()) {
            Ok(k) => k,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                tried.push(format!(
                    "key {} (encrypted: set KUBEBOOT_SSH_KEY_PASSPHRASE)",
                    file.display()
                ));
                continue;
            }
            Err(e) => {
                tried.push(format!("key {} (unreadable: {e})", file.display()));
                continue;
            }
        };
        let res = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash))
            .await
            .map_err(|e| auth_err(&tried, &format!("; connection failed: {e}")))?;
        if matches!(res, AuthResult::Success) {
            return Ok(());
        }
        tried.push(format!("key {} (rejected by the server)", file.display()));
    }
    if let Some(sock) = agent_sock {
        match russh::keys::agent::client::AgentClient::connect_uds(&sock).await {
            Ok(mut agent) => {
                let ids = agent.request_identities().await.unwrap_or_default();
                let n = ids.len();
                for id in ids {
                    let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = id else {
                        continue;
                    };
                    let hash = if key.algorithm().is_rsa() {
                        rsa_hash
                    } else {
                        None
                    };
                    if let Ok(AuthResult::Success) = handle
                        .authenticate_publickey_with(user, key, hash, &mut agent)
                        .await
                    {
                        return Ok(());
                    }
                }
                tried.push(format!("ssh-agent ({n} keys, none accepted)"));
            }
            Err(e) => tried.push(format!("ssh-agent at {} ({e})", sock.to_string_lossy())),
        }
    }
    Err(auth_err(&tried, ""))
}

impl Host for SshHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, HostError> {
        let p = shell_quote(&path.to_string_lossy());
        let out = self.helper(
            "read",
            path,
            &format!("[ -e {p} ] || exit {ABSENT}; exec cat -- {p}"),
            None,
        )?;
        Ok((out.status == 0).then_some(out.stdout))
    }

    fn write_file(
        &self,
        path: &Path,
        contents: &[u8],
        opts: WriteOptions,
    ) -> Result<(), HostError> {
        let script = write_script(path, opts);
        self.helper("write", path, &script, Some(contents.to_vec()))?;
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> Result<bool, HostError> {
        let p = shell_quote(&path.to_string_lossy());
        let out = self.helper(
            "remove",
            path,
            &format!("if [ -e {p} ] || [ -L {p} ]; then rm -f -- {p}; else exit {ABSENT}; fi"),
            None,
        )?;
        Ok(out.status == 0)
    }

    fn file_info(&self, path: &Path) -> Result<Option<FileInfo>, HostError> {
        let p = shell_quote(&path.to_string_lossy());
        let out = self.helper(
            "stat",
            path,
            &format!("[ -e {p} ] || exit {ABSENT}; exec stat -L -c '%a %s %Y %F' -- {p}"),
            None,
        )?;
        if out.status == ABSENT {
            return Ok(None);
        }
        let text = out.stdout_text();
        let mut f = text.split_whitespace();
        let parse_err = || HostError::Remote {
            host: self.name.clone(),
            op: "stat",
            path: path.to_path_buf(),
            message: format!("unexpected stat output {text:?}"),
        };
        let mode =
            u32::from_str_radix(f.next().ok_or_else(parse_err)?, 8).map_err(|_| parse_err())?;
        let len = f
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(parse_err)?;
        let mtime: u64 = f
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(parse_err)?;
        let kind: Vec<&str> = f.collect();
        Ok(Some(FileInfo {
            mode,
            len,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(mtime),
            is_dir: kind.join(" ") == "directory",
        }))
    }

    fn run(&self, command: &str, opts: &RunOptions) -> Result<CommandOutput, HostError> {
        self.run_blocking(command, opts, None, &mut |_| {})
    }

    fn run_streaming(
        &self,
        command: &str,
        opts: &RunOptions,
        on_stdout: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<CommandOutput, HostError> {
        self.run_blocking(command, opts, None, on_stdout)
    }

    fn run_with_stdin_file(
        &self,
        command: &str,
        file: &Path,
        timeout: Option<Duration>,
    ) -> Result<CommandOutput, HostError> {
        // Opened here so that a missing file is this error, not a short upload.
        let f = std::fs::File::open(file).map_err(|error| HostError::Io {
            host: self.name.clone(),
            op: "read",
            path: file.to_path_buf(),
            error,
        })?;
        let opts = RunOptions {
            stdin: None,
            timeout,
        };
        self.run_blocking(command, &opts, Some(f), &mut |_| {})
    }

    fn round_trips(&self) -> Option<u64> {
        Some(self.round_trips.load(Ordering::Relaxed))
    }
}

/// The shell script that atomically installs stdin at `path`: parent directories, a
/// temp file in the same directory written by `install` with mode and owner, then `mv`.
pub fn write_script(path: &Path, opts: WriteOptions) -> String {
    let p = path.to_string_lossy();
    let dir = path
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/".into());
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let owner = match opts.owner {
        Some((u, g)) => format!(" -o {u} -g {g}"),
        None => String::new(),
    };
    let d = shell_quote(&dir);
    let t = shell_quote(&format!("{dir}/.{base}.kubeboot-tmp"));
    format!(
        "set -e; [ -d {d} ] || mkdir -p -m {dm:o} {d}; t={t}.$$; trap 'rm -f \"$t\"' EXIT; install -m {m:o}{owner} /dev/stdin \"$t\"; mv -f \"$t\" {p}; trap - EXIT",
        dm = opts.dir_mode,
        m = opts.mode,
        p = shell_quote(&p),
    )
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_redacts_the_passphrase_and_the_sudo_password() {
        let cfg = SshConfig {
            key_passphrase: Some("pass-phrase-1".into()),
            sudo_password: Some("sudo-pw-2".into()),
            ..Default::default()
        };
        let text = format!(
            "{cfg:?} {:?}",
            Privilege::SudoPassword(cfg.sudo_password.clone().unwrap())
        );
        assert!(
            !text.contains("pass-phrase-1") && !text.contains("sudo-pw-2"),
            "{text}"
        );
        assert!(
            text.contains("key_passphrase: Some(\"<redacted>\")")
                && text.contains("SudoPassword(<redacted>)"),
            "{text}"
        );
    }
}

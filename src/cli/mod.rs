//! The command line: clap definitions and the dispatch from a parsed command to the
//! module that does the work. Flags become typed overrides here; nothing below `config`
//! reads flags.
//!
//! One file per command: each turns its flags into options and calls the library;
//! `flags.rs` holds the flags several commands share.

mod certs;
mod config_cmd;
mod flags;
mod init;
mod join;
mod reset;
mod token;

pub use certs::*;
pub use config_cmd::*;
pub use flags::*;
pub use init::*;
pub use join::*;
pub use reset::*;
pub use token::*;

use crate::config::{self};
use crate::host::LocalHost;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "kubeboot",
    version,
    about = "Bootstrap Kubernetes clusters the way kubeadm does: on a node, or over SSH",
    propagate_version = true
)]
pub struct Cli {
    /// Treat DIR as the node's root filesystem: every file kubeboot reads or writes goes
    /// under it (for trying things out and for tests). Commands still run on this machine.
    #[arg(long, global = true, value_name = "DIR", env = "KUBEBOOT_ROOT")]
    pub root: Option<PathBuf>,

    /// More log output on stderr (-v, -vv). KUBEBOOT_LOG=debug works too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// Every top-level command kubeboot exposes. Only commands that work are listed.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up a control-plane node: every phase in order, or one (`kubeboot init phase <name>`).
    Init(Box<InitCommand>),
    /// Join this node to a cluster: discovery pinned by the CA hash, then kubelet TLS bootstrap.
    Join(JoinArgs),
    /// Undo init/join on this node: kubelet, static Pods, etcd data, PKI, kubeconfigs,
    /// kubelet state, CNI config, Kubernetes/flannel iptables and nftables rules.
    Reset(ResetArgs),
    /// Inspect and renew the cluster's certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Manage bootstrap tokens (create, list, delete, generate).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Local test hosts: Debian systemd-nspawn nodes with SSH (up, down, status, ssh).
    Lab(crate::lab::LabArgs),
    /// Inspect and check kubeadm-style configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Render every file `init` would write (manifests, kubelet, containerd, addons) into a
    /// directory, for review or debugging; nothing on this machine is changed.
    Render(RenderArgs),
    /// Prepare hosts over SSH for Kubernetes: swap off, modules, sysctls, containerd, kubelet.
    Prepare(crate::prepare::PrepareArgs),
    /// A whole cluster from one inventory over SSH: prepare all, init the first control
    /// plane, join the workers (`--plan` shows what each host would get).
    Up(Box<crate::up::UpArgs>),
    /// Print the kubeboot version.
    Version {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = VersionFormat::Short)]
        output: VersionFormat,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VersionFormat {
    Short,
    Json,
}

pub fn host_for(root: &Option<PathBuf>) -> LocalHost {
    match root {
        Some(r) => LocalHost::with_root(r),
        None => LocalHost::new(),
    }
}

pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEBOOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.verbose);
    let host = host_for(&cli.root);
    match cli.command {
        Command::Init(init) => match *init {
            InitCommand {
                command: Some(InitSubcommand::Phase(phase)),
                ..
            } => run_init_phase(&host, phase),
            InitCommand { command: None, run } => run_init(&host, run),
        },
        Command::Join(j) => run_join(&host, j),
        Command::Reset(r) if r.file.is_some() => run_reset_remote(r),
        Command::Reset(r) => {
            anyhow::ensure!(
                cli.root.is_none(),
                "kubeboot reset runs commands on the machine itself (systemctl, umount, iptables); it does not support --root"
            );
            run_reset(&host, r)
        }
        Command::Certs(c) => run_certs(&host, c),
        Command::Token(t) => run_token(&host, t),
        Command::Lab(args) => crate::lab::run(args),
        Command::Config(ConfigCommand::Images(ConfigImages::Pull { .. })) if cli.root.is_some() => {
            anyhow::bail!(
                "kubeboot config images pull talks to this machine's containerd; it does not support --root"
            )
        }
        Command::Config(c) => run_config(c),
        Command::Render(r) => run_render(r),
        Command::Prepare(args) => crate::prepare::run(args),
        Command::Up(args) => crate::up::run(*args),
        Command::Version { output } => {
            let v = env!("CARGO_PKG_VERSION");
            match output {
                VersionFormat::Short => println!("kubeboot v{v}"),
                VersionFormat::Json => println!(
                    "{}",
                    serde_json::json!({"kubebootVersion": format!("v{v}"),
                        "supportedKubernetesVersions": config::version::supported_list(),
                        "defaultKubernetesVersion": config::version::DEFAULT_KUBERNETES_VERSION})
                ),
            }
            Ok(())
        }
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "kubeboot",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks (unique short flags, valid defaults) over every command.
    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag and argument that takes a secret (tokens, certificate keys) is held so
    /// that `Debug` of the parsed command line redacts it, and still reaches the command.
    #[test]
    fn debug_of_parsed_flags_redacts_secrets() {
        const KEY: &str = "4f9c2d7e1b8a6035c4e2f1a9d8b7c6e54f9c2d7e1b8a6035c4e2f1a9d8b7c6e5";
        const TOKEN: &str = "abcdef.0123456789abcdef";
        let lines: &[&[&str]] = &[
            &[
                "init",
                "--token",
                TOKEN,
                "--upload-certs",
                "--certificate-key",
                KEY,
            ],
            &[
                "init",
                "phase",
                "upload-certs",
                "--upload-certs",
                "--certificate-key",
                KEY,
            ],
            &[
                "join",
                "10.0.0.1:6443",
                "--token",
                TOKEN,
                "--discovery-token",
                TOKEN,
                "--tls-bootstrap-token",
                TOKEN,
                "--control-plane",
                "--certificate-key",
                KEY,
            ],
            &[
                "token",
                "create",
                TOKEN,
                "--print-join-command",
                "--certificate-key",
                KEY,
            ],
            &["token", "delete", TOKEN],
        ];
        for line in lines {
            let cli = Cli::try_parse_from(std::iter::once("kubeboot").chain(line.iter().copied()))
                .unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let dbg = format!("{cli:?}");
            assert!(!dbg.contains(KEY), "{line:?}: {dbg}");
            assert!(!dbg.contains("0123456789abcdef"), "{line:?}: {dbg}");
            assert!(dbg.contains("<redacted>"), "{line:?}: {dbg}");
        }
        // The value itself reaches the command.
        let Cli {
            command: Command::Join(j),
            ..
        } = Cli::try_parse_from([
            "kubeboot",
            "join",
            "--token",
            TOKEN,
            "--certificate-key",
            KEY,
        ])
        .unwrap()
        else {
            panic!("not join")
        };
        assert_eq!(j.token.as_ref().map(|t| t.expose()), Some(TOKEN));
        assert_eq!(j.certificate_key.as_ref().map(|t| t.expose()), Some(KEY));
    }
}

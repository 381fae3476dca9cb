//! The command line: clap definitions and the dispatch from a parsed command to the
//! module that does the work. Nothing below `config` reads flags; flags are turned into
//! typed overrides here.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "kubeboot",
    version,
    about = "Bootstrap Kubernetes clusters the way kubeadm does"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Every top-level command kubeboot exposes. Only commands that work are listed.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the kubeboot version.
    Version,
    /// Inspect and check kubeadm-style configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Render every file `init` would write (manifests, kubelet, containerd, addons) into a
    /// directory, for review or debugging; nothing on this machine is changed.
    Render(RenderArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("kubeboot {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Config(c) => run_config(c),
        Command::Render(r) => run_render(r),
    }
}

// ---- `config` and `render` (rendered files, issue 5) ----

/// `kubeboot config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print kubeadm-style defaults.
    #[command(subcommand)]
    Print(ConfigPrint),
    /// Check a config file; prints `ok` or every problem with its file, line and field.
    Validate {
        /// The kubeadm v1beta4 config file (InitConfiguration, ClusterConfiguration, ...).
        #[arg(long)]
        config: PathBuf,
    },
}

/// `kubeboot config print ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigPrint {
    /// The InitConfiguration and ClusterConfiguration kubeboot uses when given none, as a
    /// starting point for a config file (placeholder node name and address, like kubeadm).
    InitDefaults,
}

/// `kubeboot render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The kubeadm v1beta4 config file; kubeboot's defaults when omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory to write into (each file at its node path below it).
    #[arg(long)]
    output_dir: PathBuf,
    /// Directory with template overrides (`templates/*.tera` names).
    #[arg(long)]
    templates_dir: Option<PathBuf>,
    /// Network interface flannel uses between hosts (multi-NIC hosts such as Vagrant VMs).
    #[arg(long)]
    flannel_iface: Option<String>,
    /// containerd major version of the node (1 or 2).
    #[arg(long, default_value_t = 1)]
    containerd_major: u32,
}

/// Placeholder facts for `config print init-defaults`, as kubeadm prints them.
struct PlaceholderNode;

impl crate::config::LocalFacts for PlaceholderNode {
    fn hostname(&self) -> Option<String> {
        Some("node".into())
    }
    fn default_address(&self) -> Option<std::net::IpAddr> {
        Some(std::net::IpAddr::from([1, 2, 3, 4]))
    }
}

fn run_config(cmd: ConfigCommand) -> anyhow::Result<()> {
    use crate::config::{InitConfig, InitOverrides, ThisMachine};
    match cmd {
        ConfigCommand::Print(ConfigPrint::InitDefaults) => {
            let mut cfg = InitConfig::load(None, &InitOverrides::default(), &PlaceholderNode)?;
            for t in &mut cfg.init.bootstrap_tokens {
                t.token = crate::token::BootstrapToken::parse("abcdef.0123456789abcdef").ok();
            }
            print!("{}", crate::render::yaml::to_yaml(&cfg.init)?);
            println!("---");
            print!("{}", crate::render::yaml::to_yaml(&cfg.cluster)?);
            Ok(())
        }
        ConfigCommand::Validate { config } => {
            let cfg = InitConfig::load(Some(&config), &InitOverrides::default(), &ThisMachine)?;
            crate::render::render_all(
                &cfg,
                &crate::host::LocalHost::new(),
                &crate::render::RenderOptions::default(),
            )?;
            println!("ok");
            Ok(())
        }
    }
}

fn run_render(args: RenderArgs) -> anyhow::Result<()> {
    use crate::config::{InitConfig, InitOverrides, ThisMachine};
    use crate::render::{RenderOptions, Templates};
    let cfg = InitConfig::load(
        args.config.as_deref(),
        &InitOverrides::default(),
        &ThisMachine,
    )?;
    let templates = match &args.templates_dir {
        Some(d) => Templates::with_overrides(d)?,
        None => Templates::embedded(),
    };
    let node = crate::host::LocalHost::new();
    let opts = RenderOptions {
        templates,
        flannel_iface: args.flannel_iface,
        containerd_major: args.containerd_major,
        ..RenderOptions::default()
    }
    .detect(&cfg, &node)?;
    let out = crate::host::LocalHost::with_root(&args.output_dir);
    for f in crate::render::render_all(&cfg, &node, &opts)? {
        f.write_to(&out)?;
        println!("{:04o} {}", f.mode, f.path.display());
    }
    Ok(())
}

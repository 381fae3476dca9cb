//! The command line: clap definitions and the dispatch from a parsed command to the
//! module that does the work. Nothing below `config` reads flags; flags are turned into
//! typed overrides here.

use clap::{Parser, Subcommand};

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
    /// Local test hosts (systemd-nspawn Debian nodes) to try kubeboot on.
    Lab(crate::lab::LabArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("kubeboot {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Lab(args) => crate::lab::run(args),
    }
}

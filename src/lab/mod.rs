//! `kubeboot lab`: real local test hosts. Each node is a Debian bookworm system booted by
//! systemd-nspawn (systemd as PID 1, its own /etc, /var, dpkg, hostname, machine-id and
//! SSH host key) in its own network namespace on a per-lab bridge. Users try kubeboot on
//! them; kubeboot's own tests use them as real SSH hosts. Written for VMs without systemd
//! as PID 1 and with cgroup v1 (see shared/LAB.md for the measured facts behind it).
//!
//! One file per job: `layout` derives names, `base` builds the cached image, `node`
//! prepares and boots one node, `net`/`cgroup`/`mounts` own the kernel objects, `ready`
//! waits for boot, `inventory` writes cluster.yaml and known_hosts, `state` records it
//! all, and `up`/`down`/`status`/`ssh` are the subcommands.

pub mod base;
pub mod cgroup;
mod command;
pub mod down;
pub mod error;
pub mod inventory;
pub mod layout;
pub mod mounts;
pub mod net;
pub mod node;
pub mod power;
pub mod prereq;
pub mod process;
pub mod ready;
pub mod ssh;
pub mod state;
pub mod status;
pub mod up;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use ipnet::Ipv4Net;

pub use error::LabError;

/// Default root of the labs' state directories (`<root>/<name>/`).
pub const DEFAULT_STATE_ROOT: &str = "/var/lib/kubeboot/lab";
/// Default base image cache.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/kubeboot/lab";
/// Default lab name.
pub const DEFAULT_NAME: &str = "kubeboot";
/// Default lab subnet.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/24";

/// `kubeboot lab ...`
#[derive(Debug, Args)]
#[command(
    about = "Local test hosts: Debian nodes under systemd-nspawn, reachable over SSH (needs root)",
    long_about = "Local test hosts: Debian bookworm nodes booted with systemd-nspawn, each in its \
own network namespace on a per-lab bridge, with sshd and root login by a per-lab key. \
`lab up` writes an inventory (cluster.yaml) and known_hosts for `kubeboot up` and plain ssh. \
Needs root, systemd-nspawn (package systemd-container) and, to build the base image once, debootstrap."
)]
pub struct LabArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: LabCommand,

    /// Directory holding each lab's state (DIR/NAME: key, known_hosts, cluster.yaml, node overlays).
    #[arg(long, global = true, value_name = "DIR", env = "KUBEBOOT_LAB_STATE", default_value = DEFAULT_STATE_ROOT)]
    pub state_dir: PathBuf,

    /// Directory caching the base image (a debootstrap tarball and its extracted tree).
    #[arg(long, global = true, value_name = "DIR", env = "KUBEBOOT_LAB_CACHE", default_value = DEFAULT_CACHE_DIR)]
    pub cache_dir: PathBuf,
}

/// The `lab` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start a lab: build the base image if needed, boot the nodes, wait for SSH.
    Up(UpArgs),
    /// Stop a lab and remove everything it created (safe to repeat).
    Down(NameArgs),
    /// Show a lab's nodes, addresses and whether they run.
    Status(StatusArgs),
    /// Log in to a node (or run a command there) with the lab key.
    Ssh(SshArgs),
    /// Power nodes off (in order, or with --kill by cutting the power); they keep their disks.
    Stop(StopArgs),
    /// Boot nodes that are off, as they were, and wait for SSH.
    Start(StartArgs),
    /// Build the cached base image without starting a lab.
    Base(BaseArgs),
}

/// Selects a lab.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// Lab name; node hostnames are NAME-node1, NAME-node2, ...
    #[arg(long, value_name = "NAME", env = "KUBEBOOT_LAB_NAME", default_value = DEFAULT_NAME)]
    pub name: String,
}

/// `lab status` options.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub name: NameArgs,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Debian mirror selection.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Debian mirror for debootstrap and the nodes' apt sources [default: the VM's apt sources].
    #[arg(long, value_name = "URL", env = "KUBEBOOT_LAB_MIRROR")]
    pub mirror: Option<String>,
}

/// `lab up` options.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub name: NameArgs,

    /// Number of nodes; the first is the control plane in cluster.yaml.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub nodes: u16,

    /// IPv4 subnet of the lab: the bridge gets .1, the nodes .11, .12, ...
    #[arg(long, value_name = "CIDR", default_value = DEFAULT_SUBNET)]
    pub subnet: Ipv4Net,

    /// HTTP proxy for apt inside the nodes, e.g. http://{bridge}:3142 ({bridge} = the bridge address).
    /// Nodes reach only the lab bridge, so this is how they get packages.
    #[arg(long, value_name = "URL", env = "KUBEBOOT_LAB_APT_PROXY")]
    pub apt_proxy: Option<String>,

    /// Directory bound read-only into every node at /opt/kubeboot-artifacts.
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,

    #[command(flatten)]
    pub mirror: MirrorArgs,

    /// Seconds to wait for every node to answer SSH and finish booting.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub timeout: u64,

    /// Extra systemd-nspawn argument for every node (repeatable).
    #[arg(long = "nspawn-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub nspawn_args: Vec<String>,
}

/// `lab ssh` options.
#[derive(Debug, Args)]
pub struct SshArgs {
    #[command(flatten)]
    pub name: NameArgs,

    /// Node: hostname (kubeboot-node1), short name (node1), index (1) or address.
    pub node: String,

    /// Print the ssh command instead of running it.
    #[arg(long)]
    pub print: bool,

    /// Command to run on the node (after `--`); an interactive shell when empty.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `lab stop` options.
#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub name: NameArgs,

    /// Cut the power: SIGKILL every process of the node at once, nothing inside shuts
    /// down (what a crashed or unplugged machine looks like to the others).
    #[arg(long)]
    pub kill: bool,

    /// Nodes: hostname (kubeboot-node2), short name (node2), index (2) or address.
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// `lab start` options.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub name: NameArgs,

    /// Seconds to wait for every node to answer SSH and finish booting.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub timeout: u64,

    /// Nodes to boot (as for `lab stop`); every node that is off when none is named.
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// `lab base` options.
#[derive(Debug, Args)]
pub struct BaseArgs {
    #[command(flatten)]
    pub mirror: MirrorArgs,

    /// Build again even when a cached image exists.
    #[arg(long)]
    pub rebuild: bool,
}

/// Runs a `lab` subcommand.
pub fn run(args: LabArgs) -> anyhow::Result<()> {
    match args.command {
        LabCommand::Up(up_args) => {
            let opts = up::UpOptions {
                name: up_args.name.name,
                nodes: usize::from(up_args.nodes),
                subnet: up_args.subnet,
                apt_proxy: up_args.apt_proxy,
                artifacts: up_args.artifacts,
                mirror: up_args.mirror.mirror,
                timeout: Duration::from_secs(up_args.timeout),
                nspawn_args: up_args.nspawn_args,
                state_root: args.state_dir,
                cache_dir: args.cache_dir,
            };
            let summary = up::up(&opts)?;
            up::print_summary(&summary);
        }
        LabCommand::Down(name) => {
            let started = std::time::Instant::now();
            match down::down(&name.name, &args.state_dir)? {
                down::DownOutcome::Absent => {
                    println!("no lab named {:?}; nothing to remove", name.name)
                }
                down::DownOutcome::Removed => println!(
                    "lab {:?} removed in {:.1} s",
                    name.name,
                    started.elapsed().as_secs_f64()
                ),
            }
        }
        LabCommand::Status(StatusArgs { name, json }) => {
            match status::status(&name.name, &args.state_dir)? {
                Some(s) if json => println!("{}", serde_json::to_string_pretty(&s)?),
                Some(s) => status::print(&s),
                None if json => {
                    return Err(LabError::NotFound {
                        name: name.name.clone(),
                        state: args.state_dir.join(&name.name),
                    }
                    .into());
                }
                None => {
                    let others = status::lab_names(&args.state_dir);
                    if others.is_empty() {
                        println!(
                            "no lab named {:?} (no labs in {})",
                            name.name,
                            args.state_dir.display()
                        );
                    } else {
                        println!("no lab named {:?}; labs: {}", name.name, others.join(", "));
                    }
                }
            }
        }
        LabCommand::Ssh(ssh_args) => {
            let dir = args.state_dir.join(&ssh_args.name.name);
            let state = state::LabState::load(&dir.join("state.json"))?.ok_or_else(|| {
                LabError::NotFound {
                    name: ssh_args.name.name.clone(),
                    state: dir.clone(),
                }
            })?;
            let node = ssh::find_node(&state, &ssh_args.node)?;
            ssh::print_or_exec(
                ssh::command_for(&dir, node, &ssh_args.command),
                ssh_args.print,
            )?;
        }
        LabCommand::Stop(stop) => {
            let started = std::time::Instant::now();
            for (host, outcome) in
                power::stop(&stop.name.name, &args.state_dir, &stop.nodes, stop.kill)?
            {
                match outcome {
                    power::PowerOutcome::WasStopped => println!("{host}: already off"),
                    _ if stop.kill => println!("{host}: power cut (every process killed)"),
                    _ => println!("{host}: powered off"),
                }
            }
            println!("done in {:.1} s", started.elapsed().as_secs_f64());
        }
        LabCommand::Start(start) => {
            let started = std::time::Instant::now();
            let timeout = Duration::from_secs(start.timeout);
            for (host, outcome) in
                power::start(&start.name.name, &args.state_dir, &start.nodes, timeout)?
            {
                match outcome {
                    power::PowerOutcome::Started(r) if r.failed_units.is_empty() => {
                        println!("{host}: booted ({})", r.system_state)
                    }
                    power::PowerOutcome::Started(r) => println!(
                        "{host}: booted ({}; failed units: {})",
                        r.system_state,
                        r.failed_units.join(", ")
                    ),
                    _ => println!("{host}: already running"),
                }
            }
            println!("done in {:.1} s", started.elapsed().as_secs_f64());
        }
        LabCommand::Base(base_args) => {
            prereq::require_root()?;
            prereq::require_tools(&[("tar", "tar")])?;
            let image = up::ensure_base(
                &args.cache_dir,
                base_args.mirror.mirror.as_deref(),
                base_args.rebuild,
            )?;
            println!("base image: {}", image.tarball.display());
            println!("extracted:  {}", image.rootfs.display());
        }
    }
    Ok(())
}

//! `kubeboot config` (print, validate, images) and `kubeboot render`.

use super::flags::*;
use crate::config::{self, InitConfig, InitOverrides};
use crate::host::LocalHost;
use clap::{Args, Subcommand};
use std::path::PathBuf;

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
    /// The images a cluster runs: list them, or pull them into this node's containerd.
    #[command(subcommand)]
    Images(ConfigImages),
}

/// `kubeboot config images ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigImages {
    /// Print every image the cluster needs for its version and settings (control plane,
    /// etcd, pause, kube-proxy, CoreDNS, and the CNI's with -f or a pod CIDR).
    List {
        #[command(flatten)]
        select: ImageSelection,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
    },
    /// Pull every image the cluster needs into this node's containerd (namespace k8s.io)
    /// with ctr (or crictl); images already there are not pulled again.
    Pull {
        #[command(flatten)]
        select: ImageSelection,
        /// How long one image may take to pull, Go syntax.
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
        timeout: std::time::Duration,
        /// containerd's socket to pull into [default: /run/containerd/containerd.sock].
        #[arg(long, value_name = "URL")]
        cri_socket: Option<String>,
    },
}

/// Which cluster's images: a kubeadm config file, a kubeboot inventory, or the defaults.
#[derive(Debug, Args, Clone)]
pub struct ImageSelection {
    /// A kubeadm v1beta4 config file (ClusterConfiguration's version, imageRepository,
    /// dns and etcd image settings).
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    pub config: Option<PathBuf>,
    /// A kubeboot inventory (kubeboot.io/v1alpha1 Cluster): its version, imageRepository and CNI.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Kubernetes version (default v1.34.2; supported v1.31-v1.34).
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    #[command(flatten)]
    pub images: ImageRepositoryFlag,
    /// containerd's socket [default: /run/containerd/containerd.sock].
    #[arg(long, hide = true, value_name = "PATH", env = crate::images::ADDRESS_ENV)]
    pub containerd_address: Option<String>,
}

impl ImageSelection {
    /// The images, from one source: [`crate::render::images::list`].
    fn list(&self) -> anyhow::Result<Vec<crate::render::images::ImageRef>> {
        let mut o = InitOverrides {
            kubernetes_version: self.kubernetes_version.clone(),
            image_repository: self.images.image_repository.clone(),
            ..Default::default()
        };
        let (cfg, cni) = match &self.file {
            Some(f) => {
                let cluster = config::cluster::Cluster::load(f)?;
                o.kubernetes_version = o
                    .kubernetes_version
                    .or_else(|| Some(cluster.kubernetes_version.to_string()));
                o.image_repository = o.image_repository.or(cluster.image_repository.clone());
                o.pod_network_cidr = cluster.networking.pod_subnet.clone();
                // Address and name do not change images; placeholders keep this working
                // on a workstation without a default route.
                let cfg = InitConfig::load(None, &o, &PlaceholderNode)?;
                (cfg, Some(cluster.cni.name))
            }
            None => {
                let cfg = InitConfig::load(self.config.as_deref(), &o, &PlaceholderNode)?;
                let cni = crate::render::images::default_cni(&cfg).map(String::from);
                (cfg, cni)
            }
        };
        Ok(crate::render::images::list(&cfg, cni.as_deref())?)
    }
}

/// `kubeboot config print ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigPrint {
    /// The InitConfiguration and ClusterConfiguration kubeboot uses when given none, as a
    /// starting point for a config file (placeholder node name and address, like kubeadm).
    InitDefaults {
        /// Also print these component configurations, as kubeboot renders them for the
        /// defaults (KubeletConfiguration, KubeProxyConfiguration; comma-separated).
        #[arg(long, value_delimiter = ',', value_parser = ["KubeletConfiguration", "KubeProxyConfiguration"])]
        component_configs: Vec<String>,
    },
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
    #[arg(long, default_value_t = 1, value_parser = config::whole_number_in(1, 2))]
    containerd_major: u64,
}

pub fn run_config(cmd: ConfigCommand) -> anyhow::Result<()> {
    use crate::config::{InitConfig, InitOverrides, ThisMachine};
    match cmd {
        ConfigCommand::Print(ConfigPrint::InitDefaults { component_configs }) => {
            let mut cfg = InitConfig::load(None, &InitOverrides::default(), &PlaceholderNode)?;
            for t in &mut cfg.init.bootstrap_tokens {
                t.token = crate::token::BootstrapToken::parse("abcdef.0123456789abcdef").ok();
            }
            print!("{}", crate::render::yaml::to_yaml(&cfg.init)?);
            println!("---");
            print!("{}", crate::render::yaml::to_yaml(&cfg.cluster)?);
            for c in &component_configs {
                let doc = match c.as_str() {
                    "KubeletConfiguration" => crate::render::kubelet::config(
                        &cfg,
                        &crate::render::RenderOptions::default(),
                    )?,
                    _ => crate::render::kubeproxy::config(&cfg),
                };
                println!("---");
                print!("{}", crate::render::yaml::to_yaml(&doc)?);
            }
            Ok(())
        }
        ConfigCommand::Images(ConfigImages::List { select, output }) => {
            let images = select.list()?;
            match output {
                ReportFormat::Text => {
                    for i in &images {
                        println!("{}", i.image);
                    }
                }
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&images)?),
            }
            Ok(())
        }
        ConfigCommand::Images(ConfigImages::Pull {
            mut select,
            timeout,
            cri_socket,
        }) => {
            if cri_socket.is_some() {
                select.containerd_address = cri_socket;
            }
            pull_images(&select, timeout)
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

/// `config images pull`: one line per image, exit 1 when any failed.
pub fn pull_images(select: &ImageSelection, timeout: std::time::Duration) -> anyhow::Result<()> {
    use crate::images::{Containerd, PullStatus};
    let images = select.list()?;
    let cd = Containerd {
        address: select
            .containerd_address
            .clone()
            .map(|a| a.trim_start_matches("unix://").to_string())
            .filter(|a| !a.is_empty()),
    };
    let host = LocalHost::new();
    let results = crate::images::pull(&host, &cd, &images, timeout)?;
    let mut failed = 0;
    for r in &results {
        match &r.status {
            PullStatus::Present => println!("[config/images] Already present {}", r.image.image),
            PullStatus::Pulled => println!("[config/images] Pulled {}", r.image.image),
            PullStatus::Failed(why) => {
                failed += 1;
                println!("[config/images] FAILED {}: {why}", r.image.image);
            }
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} images could not be pulled into containerd at {}; check that the registry is reachable from this node, or import an archive with `kubeboot prepare --image-archive FILE#sha256:HEX`",
        results.len(),
        cd.socket()
    );
    Ok(())
}

pub fn run_render(args: RenderArgs) -> anyhow::Result<()> {
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
        containerd_major: args.containerd_major as u32,
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

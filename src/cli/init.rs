//! `kubeboot init` and `kubeboot init phase <name>`.

use super::flags::*;
use crate::apiclient::ApiClient;
use crate::config::{self};
use crate::host::{Host, LocalHost};
use crate::phases::init::{self as init_phases, InitContext};
use crate::pki::ensure::CertOptions;
use crate::secret::Secret;
use crate::{kubeconfig, pki};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `kubeboot init`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct InitCommand {
    #[command(subcommand)]
    pub command: Option<InitSubcommand>,
    #[command(flatten)]
    pub run: InitRunArgs,
}

/// Flags of a whole `kubeboot init`.
#[derive(Debug, Args, Clone)]
pub struct InitRunArgs {
    #[command(flatten)]
    pub flags: InitFlags,
    #[command(flatten)]
    pub images: ImageRepositoryFlag,
    /// Phases to skip (preflight, certs, kubeconfig, etcd, control-plane, kubelet-start,
    /// wait-control-plane, upload-config, upload-certs, mark-control-plane,
    /// bootstrap-token, kubelet-finalize, addon, cni, show-join-command), or part of one
    /// (`addon/kube-proxy`, `certs/etcd-ca`); `all` skips every phase.
    #[arg(long, value_delimiter = ',')]
    pub skip_phases: Vec<String>,
    /// Preflight checks whose errors become warnings (names as reported, or `all`).
    #[arg(long, value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    /// Render every file into a temporary directory and list it; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The interface flannel uses between hosts (multi-NIC hosts such as Vagrant VMs).
    #[arg(long, value_name = "IFACE")]
    pub flannel_iface: Option<String>,
    /// How long mark-control-plane waits for this node's Node object.
    #[arg(long, default_value = "4m", value_parser = parse_duration)]
    pub node_wait: std::time::Duration,
    #[command(flatten)]
    pub upload: UploadCertsFlags,
    #[command(flatten)]
    pub token: InitTokenFlags,
    #[command(flatten)]
    pub cri: CriSocketFlag,
    #[command(flatten)]
    pub out: OutputFlag,
}

/// kubeadm's `init` flags for the first bootstrap token (`bootstrapTokens[0]`).
#[derive(Debug, Args, Clone, Default)]
pub struct InitTokenFlags {
    /// The bootstrap token to create (`[a-z0-9]{6}.[a-z0-9]{16}`); generated when omitted.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<Secret>,
    /// Lifetime of that token before it is deleted automatically, Go syntax (1s, 2m, 3h);
    /// 0 = it never expires [default: 24h0m0s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub token_ttl: Option<std::time::Duration>,
    /// Do not print the token: the join commands show `<value withheld>` in its place.
    #[arg(long)]
    pub skip_token_print: bool,
}

/// kubeadm's `--<component>-extra-args` on `init phase control-plane`.
#[derive(Debug, Args, Clone, Default)]
pub struct ExtraArgsFlags {
    /// Extra kube-apiserver flags, `name=value` (comma-separated); they win over
    /// `apiServer.extraArgs` of the same name.
    #[arg(long, value_name = "NAME=VALUE", value_delimiter = ',', value_parser = parse_pair)]
    pub apiserver_extra_args: Vec<(String, String)>,
    /// Extra kube-controller-manager flags, `name=value` (comma-separated).
    #[arg(long, value_name = "NAME=VALUE", value_delimiter = ',', value_parser = parse_pair)]
    pub controller_manager_extra_args: Vec<(String, String)>,
    /// Extra kube-scheduler flags, `name=value` (comma-separated).
    #[arg(long, value_name = "NAME=VALUE", value_delimiter = ',', value_parser = parse_pair)]
    pub scheduler_extra_args: Vec<(String, String)>,
}

pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => {
            Ok((k.trim().trim_start_matches("--").to_string(), v.to_string()))
        }
        _ => Err(format!("{s:?} is not name=value (e.g. v=4)")),
    }
}

/// `--upload-certs` and its key (init and `init phase upload-certs`).
#[derive(Debug, Args, Clone, Default)]
pub struct UploadCertsFlags {
    /// Upload the certificates every control plane shares to the kubeadm-certs Secret
    /// (encrypted, deleted after two hours), for `join --control-plane --certificate-key`.
    #[arg(long)]
    pub upload_certs: bool,
    /// The key (64 hex digits) to encrypt them with; a new one is generated when omitted.
    #[arg(
        long,
        value_name = "HEX",
        env = "KUBEBOOT_CERTIFICATE_KEY",
        hide_env_values = true
    )]
    pub certificate_key: Option<Secret>,
    /// Do not print the key.
    #[arg(long)]
    pub skip_certificate_key_print: bool,
}

impl UploadCertsFlags {
    /// Refuses a malformed `--certificate-key` before anything runs (without echoing it:
    /// it is a secret).
    fn check(&self) -> anyhow::Result<()> {
        if let Some(k) = &self.certificate_key {
            crate::copycerts::parse_certificate_key(k.expose()).context("--certificate-key")?;
        }
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
pub enum InitSubcommand {
    /// Run one phase of init on its own.
    #[command(subcommand)]
    Phase(InitPhase),
}

#[derive(Debug, Subcommand)]
pub enum InitPhase {
    /// Generate the cluster PKI: `all`, one certificate (ca, apiserver, ...), or `sa`.
    Certs {
        /// Which certificate: all, ca, apiserver, apiserver-kubelet-client, front-proxy-ca,
        /// front-proxy-client, etcd-ca, etcd-server, etcd-peer, etcd-healthcheck-client,
        /// apiserver-etcd-client, sa.
        #[arg(default_value = "all", value_parser = clap::builder::PossibleValuesParser::new(init_phases::cert_phase_names()))]
        which: String,
        #[command(flatten)]
        flags: InitFlags,
        /// Replace leaf certificates that are invalid for the configuration (wrong SANs,
        /// corrupt, expired, not signed by the CA). CAs are never replaced.
        #[arg(long)]
        force: bool,
    },
    /// Write kubeconfig files: `all`, admin, super-admin, kubelet, controller-manager or scheduler.
    Kubeconfig {
        #[arg(default_value = "all", value_parser = clap::builder::PossibleValuesParser::new(init_phases::kubeconfig_phase_names()))]
        which: String,
        #[command(flatten)]
        flags: InitFlags,
        /// Where kubeconfig files are written.
        #[arg(long, value_name = "DIR", default_value = config::DEFAULT_KUBECONFIG_DIR)]
        kubeconfig_dir: PathBuf,
    },
    /// Check that this machine can become a control plane.
    Preflight {
        #[command(flatten)]
        flags: InitFlags,
        #[command(flatten)]
        images: ImageRepositoryFlag,
        #[command(flatten)]
        cri: CriSocketFlag,
        /// Checks whose errors become warnings (or `all`).
        #[arg(long, value_delimiter = ',')]
        ignore_preflight_errors: Vec<String>,
    },
    /// Write the kubelet's configuration and flags, and (re)start it.
    KubeletStart {
        #[command(flatten)]
        flags: InitFlags,
        #[command(flatten)]
        images: ImageRepositoryFlag,
        #[command(flatten)]
        cri: CriSocketFlag,
    },
    /// Point kubelet.conf at the kubelet's rotated client certificate.
    KubeletFinalize(ClusterPhaseFlags),
    /// Wait until the API server answers /readyz.
    WaitControlPlane(ClusterPhaseFlags),
    /// Label and taint this node as a control plane (waits for its Node to register).
    MarkControlPlane {
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        /// How long to wait for the Node object.
        #[arg(long, default_value = "4m", value_parser = parse_duration)]
        node_wait: std::time::Duration,
    },
    /// Bootstrap tokens, node-bootstrap RBAC and the public cluster-info ConfigMap.
    BootstrapToken {
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        #[command(flatten)]
        admin: AdminKubeconfigFlag,
    },
    /// Upload the shared certificates (CAs, service-account keys) to the kubeadm-certs
    /// Secret, encrypted with a certificate key (needs --upload-certs).
    UploadCerts {
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        #[command(flatten)]
        upload: UploadCertsFlags,
        #[command(flatten)]
        admin: AdminKubeconfigFlag,
    },
    /// Write the local etcd static Pod manifest (`local`).
    Etcd {
        #[arg(default_value = "local", value_parser = ["local"])]
        which: String,
        #[command(flatten)]
        flags: InitFlags,
        #[command(flatten)]
        images: ImageRepositoryFlag,
    },
    /// Write the control-plane static Pod manifests: all, apiserver, controller-manager, scheduler.
    ControlPlane {
        #[arg(default_value = "all", value_parser = ["all", "apiserver", "controller-manager", "scheduler"])]
        which: String,
        #[command(flatten)]
        flags: InitFlags,
        #[command(flatten)]
        images: ImageRepositoryFlag,
        #[command(flatten)]
        extra: ExtraArgsFlags,
    },
    /// Upload the kubeadm-config and kubelet-config ConfigMaps: all, kubeadm, kubelet.
    UploadConfig {
        #[arg(default_value = "all", value_parser = ["all", "kubeadm", "kubelet"])]
        which: String,
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        #[command(flatten)]
        admin: AdminKubeconfigFlag,
    },
    /// Install the essential addons: all, coredns, kube-proxy.
    Addon {
        #[arg(default_value = "all", value_parser = ["all", "coredns", "kube-proxy"])]
        which: String,
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        #[command(flatten)]
        images: ImageRepositoryFlag,
        #[command(flatten)]
        admin: AdminKubeconfigFlag,
    },
    /// Install the pod network (flannel) for the pod CIDR.
    Cni {
        #[command(flatten)]
        flags: ClusterPhaseFlags,
        /// The interface flannel uses between hosts (multi-NIC hosts such as Vagrant VMs).
        #[arg(long, value_name = "IFACE")]
        flannel_iface: Option<String>,
    },
}

pub fn run_init_phase(host: &dyn Host, phase: InitPhase) -> anyhow::Result<()> {
    use init_phases::workflow::{InitData, run_phase};
    // Each arm turns its flags into the configuration and the run's choices, then runs
    // the phase from the same list a whole init uses.
    let mut run = init_phases::InitRun {
        containerd: crate::images::Containerd::from_env(),
        ..Default::default()
    };
    let one = |ctx: &InitContext,
               run: &init_phases::InitRun,
               name: &str,
               which: Option<&str>,
               client: Option<ApiClient>| {
        let mut data = InitData::new(ctx, run);
        if let Some(c) = client {
            data = data.with_client(c);
        }
        run_phase(&mut data, name, which)?;
        Ok::<_, anyhow::Error>(data.outcome)
    };
    match phase {
        InitPhase::Certs {
            which,
            flags,
            force,
        } => {
            let cfg = flags.load()?;
            let ctx = InitContext {
                cfg: &cfg,
                host,
                kubeconfig_dir: config::DEFAULT_KUBECONFIG_DIR.into(),
                cert_options: CertOptions { force },
            };
            one(&ctx, &run, "certs", Some(&which), None)?;
        }
        InitPhase::Kubeconfig {
            which,
            flags,
            kubeconfig_dir,
        } => {
            let cfg = flags.load()?;
            let ctx = InitContext {
                cfg: &cfg,
                host,
                kubeconfig_dir,
                cert_options: CertOptions::default(),
            };
            one(&ctx, &run, "kubeconfig", Some(&which), None)?;
        }
        InitPhase::Preflight {
            flags,
            images,
            cri,
            ignore_preflight_errors,
        } => {
            let cfg = flags.load_edit(|o| {
                o.image_repository = images.image_repository.clone();
                o.cri_socket = cri.cri_socket.clone();
            })?;
            run.ignore_preflight_errors = ignore_preflight_errors;
            one(&file_ctx(&cfg, host), &run, "preflight", None, None)?;
        }
        InitPhase::KubeletStart { flags, images, cri } => {
            let cfg = flags.load_edit(|o| {
                o.image_repository = images.image_repository.clone();
                o.cri_socket = cri.cri_socket.clone();
            })?;
            one(&file_ctx(&cfg, host), &run, "kubelet-start", None, None)?;
        }
        InitPhase::KubeletFinalize(f) => {
            let cfg = f.init.load()?;
            one(
                &cluster_ctx(&cfg, host, &f),
                &run,
                "kubelet-finalize",
                None,
                None,
            )?;
        }
        InitPhase::WaitControlPlane(f) => {
            let cfg = f.init.load()?;
            one(
                &cluster_ctx(&cfg, host, &f),
                &run,
                "wait-control-plane",
                None,
                None,
            )?;
        }
        InitPhase::MarkControlPlane { flags, node_wait } => {
            let cfg = flags.init.load()?;
            run.node_wait = node_wait;
            one(
                &cluster_ctx(&cfg, host, &flags),
                &run,
                "mark-control-plane",
                None,
                None,
            )?;
        }
        InitPhase::BootstrapToken { flags, admin } => {
            let cfg = flags.init.load()?;
            let ctx = cluster_ctx(&cfg, host, &flags);
            let client = phase_client(&ctx, &admin)?;
            one(&ctx, &run, "bootstrap-token", None, Some(client))?;
        }
        InitPhase::UploadCerts {
            flags,
            upload,
            admin,
        } => {
            if !upload.upload_certs {
                crate::output::report("upload-certs", "Skipping phase. Please see --upload-certs");
                return Ok(());
            }
            let cfg = flags.init.load()?;
            upload.check()?;
            let ctx = cluster_ctx(&cfg, host, &flags);
            let client = phase_client(&ctx, &admin)?;
            run.upload_certs = true;
            run.certificate_key = upload.certificate_key.clone();
            let out = one(&ctx, &run, "upload-certs", None, Some(client))?;
            if let Some(key) = out.certificate_key
                && !upload.skip_certificate_key_print
            {
                println!("[upload-certs] Using certificate key:\n{}", key.expose());
            }
        }
        InitPhase::Etcd { flags, images, .. } => {
            let cfg = flags.load_with(&images)?;
            one(&file_ctx(&cfg, host), &run, "etcd", None, None)?;
        }
        InitPhase::ControlPlane {
            which,
            flags,
            images,
            extra,
        } => {
            let cfg = flags.load_edit(|o| {
                o.image_repository = images.image_repository.clone();
                o.apiserver_extra_args = extra.apiserver_extra_args.clone();
                o.controller_manager_extra_args = extra.controller_manager_extra_args.clone();
                o.scheduler_extra_args = extra.scheduler_extra_args.clone();
            })?;
            one(
                &file_ctx(&cfg, host),
                &run,
                "control-plane",
                Some(&which),
                None,
            )?;
        }
        InitPhase::UploadConfig {
            which,
            flags,
            admin,
        } => {
            let cfg = flags.init.load()?;
            let ctx = cluster_ctx(&cfg, host, &flags);
            let client = phase_client(&ctx, &admin)?;
            one(&ctx, &run, "upload-config", Some(&which), Some(client))?;
        }
        InitPhase::Addon {
            which,
            flags,
            images,
            admin,
        } => {
            let cfg = flags.init.load_with(&images)?;
            let ctx = cluster_ctx(&cfg, host, &flags);
            let client = phase_client(&ctx, &admin)?;
            one(&ctx, &run, "addon", Some(&which), Some(client))?;
        }
        InitPhase::Cni {
            flags,
            flannel_iface,
        } => {
            let cfg = flags.init.load()?;
            run.flannel_iface = flannel_iface;
            one(&cluster_ctx(&cfg, host, &flags), &run, "cni", None, None)?;
        }
    }
    Ok(())
}

/// The client a cluster phase uses: `--kubeconfig` as given, else admin.conf (with its
/// rights granted through super-admin.conf when a new cluster needs that).
pub fn phase_client(ctx: &InitContext, admin: &AdminKubeconfigFlag) -> anyhow::Result<ApiClient> {
    match &admin.kubeconfig {
        Some(path) => init_phases::cluster::client_from_path(ctx.host, path),
        None => init_phases::cluster::admin_client(ctx),
    }
}

pub fn run_init(host: &dyn Host, a: InitRunArgs) -> anyhow::Result<()> {
    a.out.apply();
    let cfg = a.flags.load_edit(|o| {
        o.image_repository = a.images.image_repository.clone();
        o.cri_socket = a.cri.cri_socket.clone();
        o.token = a.token.token.clone();
        o.token_ttl = a.token.token_ttl;
    })?;
    // Every input is checked before the first phase changes anything.
    a.upload.check()?;
    let ctx = InitContext {
        cfg: &cfg,
        host,
        kubeconfig_dir: config::DEFAULT_KUBECONFIG_DIR.into(),
        cert_options: CertOptions::default(),
    };
    let run = init_phases::InitRun {
        skip_phases: a.skip_phases,
        ignore_preflight_errors: a.ignore_preflight_errors,
        flannel_iface: a.flannel_iface,
        node_wait: a.node_wait,
        upload_certs: a.upload.upload_certs,
        certificate_key: a.upload.certificate_key.clone(),
        containerd: crate::images::Containerd::from_env(),
    };
    if a.dry_run {
        // What each phase says it would do on this node, then every file rendered (the
        // PKI and kubeconfigs generated fresh) inside a dry-run directory to inspect.
        print!("{}", init_phases::plan(&ctx, &run)?);
        let opts = crate::render::RenderOptions {
            flannel_iface: run.flannel_iface.clone(),
            ..Default::default()
        };
        let tree = crate::render::dry_run(&cfg, host, opts)?;
        let scratch = LocalHost::with_root(&tree.root);
        let sctx = file_ctx(&cfg, &scratch);
        pki::ensure::ensure_certs(
            &scratch,
            &cfg,
            &pki::spec::needed(&cfg).map(|c| c.name).collect::<Vec<_>>(),
            CertOptions::default(),
        )?;
        pki::ensure::ensure_sa(&scratch, &cfg)?;
        kubeconfig::ensure_kubeconfigs(
            &scratch,
            &cfg,
            &sctx.kubeconfig_dir,
            &init_phases::kubeconfig_phase_names()[1..],
        )?;
        println!("[dry-run] The files a fresh node would get:");
        print!("{}", tree.listing());
        println!(
            "[dry-run] Everything was rendered under {} for inspection; nothing else was changed.",
            tree.root.display()
        );
        return Ok(());
    }
    let mut outcome = init_phases::run_all(&ctx, &run)?;
    if a.token.skip_token_print {
        outcome.join = outcome
            .join
            .map(|j| Secret::new(withhold_token(j.expose())));
    }
    if crate::output::json() {
        // No secret in JSON: the token's id, the CA's hash and whether a certificate key
        // was made; `token create --print-join-command` prints a whole join command.
        crate::output::done(serde_json::json!({
            "command": "init",
            "node": cfg.node_name,
            "endpoint": outcome.endpoint,
            "tokenId": outcome.token_id,
            "caCertHash": outcome.ca_cert_hash,
            "certificatesUploaded": outcome.certificate_key.is_some(),
            "adminKubeconfig": "/etc/kubernetes/admin.conf",
        }));
        return Ok(());
    }
    println!("\nYour Kubernetes control-plane has initialized successfully!\n");
    println!(
        "To start using your cluster, run as a regular user:\n\n  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n"
    );
    println!(
        "/etc/kubernetes/super-admin.conf has unrestricted rights (system:masters): move it somewhere safe.\n"
    );
    if let (Some(join), Some(key)) = (&outcome.join, &outcome.certificate_key) {
        let (join, key) = (join.expose(), key.expose());
        if cfg.control_plane_endpoint.is_none() {
            println!(
                "The certificates were uploaded, but this cluster has no controlPlaneEndpoint: control planes cannot be added to it (set one before the first init).\n"
            );
        } else if a.upload.skip_certificate_key_print {
            println!(
                "You can now join any number of control-plane nodes by running the following on each as root, with the certificate key you chose:\n\n  {join} \\\n    --control-plane --certificate-key <key>\n"
            );
        } else {
            println!(
                "You can now join any number of control-plane nodes by running the following on each as root:\n\n  {join} \\\n    --control-plane --certificate-key {key}\n\nPlease note that the certificate-key gives access to cluster sensitive data, keep it secret!\nAs a safeguard, uploaded-certs will be deleted in two hours; if necessary, you can use\n\"kubeboot init phase upload-certs --upload-certs\" to reload certs afterward.\n"
            );
        }
    }
    if let Some(join) = outcome.join.as_ref().map(Secret::expose) {
        println!(
            "Then join any number of worker nodes by running the following on each as root:\n\n  {join}\n"
        );
    }
    Ok(())
}

/// `--skip-token-print`: the join command with `<value withheld>` for the token.
pub fn withhold_token(join: &str) -> String {
    let mut words: Vec<&str> = join.split(' ').collect();
    for i in 1..words.len() {
        if words[i - 1] == "--token" {
            words[i] = "<value withheld>";
        }
    }
    words.join(" ")
}

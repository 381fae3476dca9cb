//! `kubeboot certs`: check-expiration, renew, ca-hash, certificate-key.

use super::flags::*;
use crate::config::{self, InitConfig, InitOverrides};
use crate::host::Host;
use crate::{kubeconfig, pki};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// `kubeboot certs`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List when each certificate and CA expires (kubeadm's tables, or JSON).
    CheckExpiration {
        #[command(flatten)]
        dirs: CertDirs,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
    },
    /// Re-sign certificates with the CA on disk, keeping their names (`all` or one name).
    Renew {
        /// all, a certificate (apiserver, etcd-server, ...) or a kubeconfig (admin.conf, ...).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(renew_names()))]
        which: String,
        #[command(flatten)]
        dirs: CertDirs,
        /// Validity of the renewed certificates, Go syntax (default 8760h = 1 year).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        validity: Option<std::time::Duration>,
        /// Renew nothing: write a certificate signing request and a new key for each
        /// certificate (<name>.csr, <name>.key) for an external CA to sign. The new key
        /// replaces the old one there: put the signed certificate beside it next.
        #[arg(long)]
        csr_only: bool,
        /// Where --csr-only writes the requests and keys [default: the cert dir].
        #[arg(long, value_name = "DIR", requires = "csr_only")]
        csr_dir: Option<PathBuf>,
    },
    /// Print a new random certificate key (64 hex digits) for `init --upload-certs
    /// --certificate-key` and `join --control-plane --certificate-key`.
    CertificateKey,
    /// Print the CA public-key hash for `--discovery-token-ca-cert-hash` (sha256:<hex>).
    CaHash {
        /// Where certificates are stored.
        #[arg(long, value_name = "DIR", default_value = config::DEFAULT_CERT_DIR)]
        cert_dir: PathBuf,
    },
}

/// Where `certs` subcommands look for files.
#[derive(Debug, Args)]
pub struct CertDirs {
    /// Where certificates are stored [default: the configuration's certificatesDir, else
    /// /etc/kubernetes/pki].
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// A kubeadm config file whose ClusterConfiguration gives certificatesDir and tells
    /// whether etcd is external.
    #[arg(long, value_name = "FILE", conflicts_with = "kubeconfig")]
    pub config: Option<PathBuf>,
    /// Read that ClusterConfiguration from the cluster (the kubeadm-config ConfigMap)
    /// with this kubeconfig instead.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Where kubeconfig files are stored.
    #[arg(long, value_name = "DIR", default_value = config::DEFAULT_KUBECONFIG_DIR)]
    pub kubeconfig_dir: PathBuf,
    /// The cluster uses an external etcd: skip the etcd certificates.
    #[arg(long)]
    pub external_etcd: bool,
}

pub fn renew_names() -> Vec<&'static str> {
    let mut v = vec!["all"];
    v.extend(pki::renew::renewable_names());
    v.extend(
        kubeconfig::KUBECONFIGS
            .iter()
            .filter(|k| k.renewable)
            .map(|k| k.file),
    );
    v
}

pub fn run_certs(host: &dyn Host, cmd: CertsCommand) -> anyhow::Result<()> {
    match cmd {
        CertsCommand::CaHash { cert_dir } => {
            println!("{}", pki::ca_hash(host, &cert_dir)?);
            Ok(())
        }
        CertsCommand::CertificateKey => {
            println!("{}", crate::copycerts::new_certificate_key().expose());
            Ok(())
        }
        CertsCommand::CheckExpiration { dirs, output } => {
            let dirs = dirs.resolve(host)?;
            let embedded = kubeconfig::embedded_certs(host, &dirs.kubeconfig_dir)?;
            let report = pki::expiry::report(host, &dirs.cert_dir, &embedded, !dirs.external_etcd)?;
            match output {
                ReportFormat::Text => print!("{}", report.to_text()),
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(())
        }
        CertsCommand::Renew {
            which,
            dirs,
            validity,
            csr_only,
            csr_dir,
        } => {
            let dirs = dirs.resolve(host)?;
            let validity = validity.unwrap_or(config::DEFAULT_CERT_VALIDITY);
            let names: Vec<&str> = if which == "all" {
                renew_names().into_iter().skip(1).collect()
            } else {
                vec![which.as_str()]
            };
            if csr_only {
                let csr_dir = csr_dir.unwrap_or_else(|| dirs.cert_dir.clone());
                for name in names {
                    request_one(host, &dirs, &csr_dir, name)
                        .with_context(|| format!("a signing request for {name}"))?;
                }
                return Ok(());
            }
            for name in names {
                renew_one(host, &dirs, name, validity)
                    .with_context(|| format!("renewing {name}"))?;
            }
            println!(
                "\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates."
            );
            Ok(())
        }
    }
}

/// `certs renew --csr-only` for one name: a CSR and new key in `csr_dir`.
pub fn request_one(
    host: &dyn Host,
    dirs: &CertFiles,
    csr_dir: &Path,
    name: &str,
) -> anyhow::Result<()> {
    let is_etcd = pki::spec::find(name).is_some_and(|s| s.etcd);
    if is_etcd && dirs.external_etcd {
        return Ok(());
    }
    let csr = if name.ends_with(".conf") {
        if host.read_file(&dirs.kubeconfig_dir.join(name))?.is_none() && name == "super-admin.conf"
        {
            return Ok(());
        }
        kubeconfig::write_request(host, &dirs.kubeconfig_dir, name, csr_dir)?
    } else {
        let (base, old, algorithm) = pki::renew::existing(host, &dirs.cert_dir, name)?;
        pki::renew::write_request(host, csr_dir, base, &old, algorithm)?
    };
    println!(
        "[certs] Wrote a signing request for {name} to {} (key beside it)",
        csr.display()
    );
    Ok(())
}

/// Where `certs` finds its files, with `--config` / `--kubeconfig` applied.
pub struct CertFiles {
    cert_dir: PathBuf,
    kubeconfig_dir: PathBuf,
    external_etcd: bool,
}

impl CertDirs {
    /// `--cert-dir` wins; else the ClusterConfiguration of `--config` or of the cluster
    /// (`--kubeconfig`), else kubeadm's default.
    fn resolve(self, host: &dyn Host) -> anyhow::Result<CertFiles> {
        let cfg = match (&self.config, &self.kubeconfig) {
            (Some(file), _) => Some(InitConfig::load(
                Some(file),
                &InitOverrides::default(),
                &PlaceholderNode,
            )?),
            (None, Some(kubeconfig)) => {
                let (client, _) = api_client(
                    host,
                    &ApiFlags {
                        kubeconfig: kubeconfig.clone(),
                    },
                )?;
                let cm = client
                    .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
                    .context("reading the cluster's kubeadm-config ConfigMap (--kubeconfig)")?;
                let yaml = cm["data"]["ClusterConfiguration"]
                    .as_str()
                    .context("the kubeadm-config ConfigMap has no ClusterConfiguration")?;
                Some(InitConfig::from_cluster(yaml, &PlaceholderNode)?)
            }
            (None, None) => None,
        };
        Ok(CertFiles {
            cert_dir: self
                .cert_dir
                .or_else(|| cfg.as_ref().map(|c| c.cert_dir.clone()))
                .unwrap_or_else(|| config::DEFAULT_CERT_DIR.into()),
            kubeconfig_dir: self.kubeconfig_dir,
            external_etcd: self.external_etcd
                || cfg.is_some_and(|c| c.cluster.etcd.external.is_some()),
        })
    }
}

pub fn renew_one(
    host: &dyn Host,
    dirs: &CertFiles,
    name: &str,
    validity: std::time::Duration,
) -> anyhow::Result<()> {
    let is_etcd = pki::spec::find(name).is_some_and(|s| s.etcd);
    if is_etcd && dirs.external_etcd {
        return Ok(());
    }
    if name.ends_with(".conf") {
        let path: &Path = &dirs.kubeconfig_dir.join(name);
        if host.read_file(path)?.is_none() && name == "super-admin.conf" {
            // Only the first control plane has one; like kubeadm, skip it elsewhere.
            return Ok(());
        }
        kubeconfig::renew(host, &dirs.cert_dir, &dirs.kubeconfig_dir, name, validity)?;
        println!("certificate embedded in the kubeconfig file for {name} renewed");
    } else {
        pki::renew::renew_cert(host, &dirs.cert_dir, name, validity)?;
        let spec = pki::spec::find(name).expect("validated name");
        println!("{} renewed", spec.description);
    }
    Ok(())
}

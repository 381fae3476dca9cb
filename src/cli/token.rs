//! `kubeboot token create|list|delete|generate`.

use super::flags::*;
use crate::config::{self, InitConfig, InitOverrides};
use crate::host::Host;
use crate::kubeconfig::KubeConfig;
use crate::secret::Secret;
use crate::token::BootstrapToken;
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

/// `kubeboot token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token on the cluster (prints it, or the whole join command).
    Create {
        /// The token to create (`[a-z0-9]{6}.[a-z0-9]{16}`); generated when omitted.
        token: Option<Secret>,
        /// Lifetime before the token is deleted automatically, Go syntax; 0 = never
        /// [default: 24h0m0s].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
        /// A human-friendly description of what the token is for.
        #[arg(long)]
        description: Option<String>,
        /// Extra groups the token authenticates as (system:bootstrappers:...)
        /// [default: system:bootstrappers:kubeadm:default-node-token].
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// How the token may be used [default: signing,authentication].
        #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(crate::token::USAGES))]
        usages: Vec<String>,
        /// A kubeadm config file: the first `bootstrapTokens` entry of its
        /// InitConfiguration gives the token and its settings; flags given win over it.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the whole `kubeboot join` command instead of only the token.
        #[arg(long)]
        print_join_command: bool,
        /// With --print-join-command: print the control-plane variant with this
        /// certificate key (from `init phase upload-certs --upload-certs`).
        #[arg(long, value_name = "HEX", requires = "print_join_command")]
        certificate_key: Option<Secret>,
        #[command(flatten)]
        api: ApiFlags,
    },
    /// List bootstrap tokens (kubeadm's columns, or JSON); their secrets are not shown
    /// (`<id>.<redacted>`).
    List {
        #[arg(short, long, value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Delete bootstrap tokens by id or full token.
    Delete {
        #[arg(required = true)]
        tokens: Vec<Secret>,
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Print a new random token without creating it.
    Generate,
}

/// `kubeboot join <endpoint> --token T --discovery-token-ca-cert-hash H` for a kubeconfig's cluster.
pub fn join_command(kc: &KubeConfig, token: &BootstrapToken) -> anyhow::Result<String> {
    let cluster = kc
        .current_cluster()
        .context("the kubeconfig has no current cluster")?;
    let endpoint = cluster
        .server
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let ca = kc
        .ca_cert()
        .context("the kubeconfig's cluster has no readable CA")?;
    Ok(format!(
        "kubeboot join {endpoint} --token {token} --discovery-token-ca-cert-hash {}",
        ca.spki_sha256()
    ))
}

pub fn run_token(host: &dyn Host, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Generate => {
            println!("{}", BootstrapToken::generate());
            Ok(())
        }
        TokenCommand::Create {
            token,
            ttl,
            description,
            groups,
            usages,
            print_join_command,
            certificate_key,
            config: config_file,
            api,
        } => {
            if let Some(k) = &certificate_key {
                crate::copycerts::parse_certificate_key(k.expose()).context("--certificate-key")?;
            }
            // --config: the first bootstrap token of the file; flags given win over it.
            let spec = match &config_file {
                Some(f) => {
                    let cfg =
                        InitConfig::load(Some(f), &InitOverrides::default(), &PlaceholderNode)?;
                    cfg.init.bootstrap_tokens.into_iter().next()
                }
                None => None,
            }
            .unwrap_or_default();
            let token = match token {
                Some(t) => BootstrapToken::parse(t.expose())?,
                None => spec.token.clone().unwrap_or_else(BootstrapToken::generate),
            };
            let description = description
                .or(spec.description)
                .filter(|d| d != config::DEFAULT_TOKEN_DESCRIPTION)
                .unwrap_or_default();
            let groups = match (groups.is_empty(), spec.groups.is_empty()) {
                (false, _) => groups,
                (true, false) => spec.groups,
                (true, true) => vec![crate::token::DEFAULT_GROUP.to_string()],
            };
            let usages = match (usages.is_empty(), spec.usages.is_empty()) {
                (false, _) => usages,
                (true, false) => spec.usages,
                (true, true) => vec!["signing".into(), "authentication".into()],
            };
            let now = time::OffsetDateTime::now_utc();
            let expires = match (ttl, &spec.expires, spec.ttl) {
                (Some(ttl), _, _) => (!ttl.is_zero()).then(|| now + ttl),
                (None, Some(e), _) => Some(
                    time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                        .map_err(|err| {
                            anyhow::anyhow!(
                                "bootstrapTokens[0].expires: {e:?} is not an RFC 3339 time ({err})"
                            )
                        })?,
                ),
                (None, None, Some(ttl)) => (!ttl.0.is_zero()).then(|| now + ttl.0),
                (None, None, None) => Some(now + std::time::Duration::from_secs(24 * 3600)),
            };
            for g in &groups {
                anyhow::ensure!(
                    g.starts_with("system:bootstrappers:")
                        && g.len() > "system:bootstrappers:".len(),
                    "--groups: {g:?} is not a bootstrap group (system:bootstrappers:<name>)"
                );
            }
            let (client, kc) = api_client(host, &api)?;
            let info = crate::token::TokenInfo {
                token: token.clone(),
                description,
                expires,
                usages,
                groups,
            };
            crate::token::create(&client, &info).map_err(|e| match e {
                crate::apiclient::ApiError::Conflict { .. } => anyhow::anyhow!(
                    "a token with id {} already exists; delete it first or choose another",
                    token.id()
                ),
                e => e.into(),
            })?;
            if print_join_command {
                match certificate_key {
                    Some(k) => println!(
                        "{} --control-plane --certificate-key {}",
                        join_command(&kc, &token)?,
                        k.expose().trim()
                    ),
                    None => println!("{}", join_command(&kc, &token)?),
                }
            } else {
                println!("{token}");
            }
            Ok(())
        }
        TokenCommand::List { output, api } => {
            let (client, _) = api_client(host, &api)?;
            let tokens = crate::token::list(&client)?;
            let now = time::OffsetDateTime::now_utc();
            match output {
                ReportFormat::Json => {
                    let v: Vec<serde_json::Value> = tokens
                        .iter()
                        .map(|t| {
                            let r = t.row(now);
                            serde_json::json!({"id": t.token.id(), "token": r[0], "ttl": r[1], "expires": t.expires.map(|_| r[2].clone()),
                                "usages": t.usages, "description": t.description, "groups": t.groups})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                ReportFormat::Text => {
                    let mut rows = vec![
                        [
                            "TOKEN",
                            "TTL",
                            "EXPIRES",
                            "USAGES",
                            "DESCRIPTION",
                            "EXTRA GROUPS",
                        ]
                        .map(String::from)
                        .to_vec(),
                    ];
                    rows.extend(tokens.iter().map(|t| t.row(now)));
                    print!("{}", crate::pki::expiry::table(rows));
                }
            }
            Ok(())
        }
        TokenCommand::Delete { tokens, api } => {
            // Every argument is checked before the first token is deleted.
            let mut ids = Vec::new();
            for t in tokens.iter().map(Secret::expose) {
                let id = t.split('.').next().unwrap_or_default();
                let ok = if t.contains('.') {
                    BootstrapToken::parse(t).is_ok()
                } else {
                    BootstrapToken::is_valid_id(id)
                };
                // Only the part before the dot is echoed: the rest may be a secret.
                anyhow::ensure!(
                    ok,
                    "{:?} is neither a token id ([a-z0-9]{{6}}) nor a token (6 characters of [a-z0-9], a dot, then 16)",
                    if t.contains('.') {
                        format!("{id}.<redacted>")
                    } else {
                        t.to_string()
                    }
                );
                ids.push(id);
            }
            let (client, _) = api_client(host, &api)?;
            for id in ids {
                if crate::token::delete(&client, id)? {
                    println!("bootstrap token {id:?} deleted");
                } else {
                    anyhow::bail!("bootstrap token {id:?} not found");
                }
            }
            Ok(())
        }
    }
}

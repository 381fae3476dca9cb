//! The phases only a joining control plane runs (kubeadm's `join --control-plane`):
//! control-plane-prepare (download-certs, certs, kubeconfig, control-plane), check-etcd,
//! etcd-join (member added as a learner, the etcd Pod, promotion once in sync),
//! wait-control-plane and control-plane-join (mark-control-plane).
//!
//! The shared certificates (cluster, front-proxy and etcd CAs, service-account keys) come
//! from the `kubeadm-certs` Secret with `--certificate-key`, or are already on the node
//! (copied by `kubeboot up` or by hand). Either way the cluster CA on the node must be
//! the CA the discovery pinned: a control plane is never built on another cluster's CA.

use super::join_data::{Discovered, JoinContext};
use super::report;
use crate::apiclient::ApiClient;
use crate::config::join::ControlPlaneJoin;
use crate::etcdclient::{EtcdClient, Member};
use crate::phases::init::{self as init_phases, InitContext};
use anyhow::Context;
use std::time::Duration;

/// kubeadm's default for etcd API calls (`timeouts.etcdAPICall`).
pub const DEFAULT_ETCD_TIMEOUT: Duration = Duration::from_secs(120);
/// The annotation a kubeadm etcd Pod carries with its client URL.
pub const ETCD_URL_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";

fn init_ctx<'a>(ctx: &'a JoinContext, d: &'a Discovered) -> InitContext<'a> {
    InitContext {
        cfg: &d.node_cfg,
        host: ctx.host,
        kubeconfig_dir: crate::config::DEFAULT_KUBECONFIG_DIR.into(),
        cert_options: Default::default(),
    }
}

/// init's control-plane checks on the joining node (ports, manifests, etcd data dir,
/// CPUs, memory, swap, forwarding), with a stacked etcd.
pub fn preflight(ctx: &JoinContext, cp: &ControlPlaneJoin) -> anyhow::Result<()> {
    let cri = ctx
        .cfg
        .join
        .node_registration
        .cri_socket
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_CRI_SOCKET.into());
    crate::phases::preflight::run(
        ctx.host,
        &crate::phases::preflight::CheckSet {
            control_plane: true,
            bind_port: cp.bind_port,
            local_etcd: true,
            etcd_data_dir: crate::config::DEFAULT_ETCD_DATA_DIR,
            cri_socket: &cri,
            manifests_dir: crate::render::MANIFESTS_DIR,
            // Checked after discovery, which tells the version and image repository.
            images: &[],
            containerd: &ctx.containerd,
        },
        &ctx.ignore_preflight_errors,
    )
}

/// The admin client for the cluster: this node's new admin.conf, pointed at the server
/// discovery found (this node's own API server is not running yet).
pub fn admin_client(ctx: &JoinContext, d: &Discovered) -> anyhow::Result<ApiClient> {
    let server = &d.cluster_info.clusters[0].cluster.server;
    init_phases::cluster::client_at(&init_ctx(ctx, d), "admin.conf", Some(server))
}

/// `control-plane-prepare`: download-certs (with a certificate key), certs (this node's
/// own serving and client certificates from the shared CAs), kubeconfig (admin,
/// controller-manager, scheduler) and the control-plane static Pods.
pub fn control_plane_prepare(ctx: &JoinContext, d: &Discovered) -> anyhow::Result<()> {
    let cp = ctx.cfg.control_plane.as_ref().expect("control plane join");
    let cfg = &d.node_cfg;
    anyhow::ensure!(
        cfg.control_plane_endpoint.is_some(),
        "unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address: set controlPlaneEndpoint in the ClusterConfiguration (a load balancer or DNS name in front of all control planes; `networking.controlPlaneEndpoint` in a kubeboot inventory) before the first init"
    );
    anyhow::ensure!(
        cfg.local_etcd().is_some(),
        "this cluster uses an external etcd; kubeboot joins control planes with a stacked etcd only"
    );
    if let Some(key) = &cp.certificate_key {
        report(
            "download-certs",
            &format!(
                "Downloading the certificates in Secret \"{}\" in the \"kube-system\" Namespace",
                crate::copycerts::SECRET
            ),
        );
        let key = crate::copycerts::parse_certificate_key(key.expose())?;
        let files = crate::copycerts::download(&d.client, cfg, &key)?;
        check_cluster_ca(&files[0].contents, d)?;
        for w in crate::copycerts::write_shared(ctx.host, &cfg.cert_dir, &files)? {
            if let crate::copycerts::Written::Created(p) = w {
                report("download-certs", &format!("Saved {}", p.display()));
            }
        }
    } else {
        let missing: Vec<String> = crate::copycerts::shared_files(cfg)
            .iter()
            .map(|rel| cfg.cert_dir.join(rel))
            .filter(|p| !matches!(ctx.host.file_info(p), Ok(Some(_))))
            .map(|p| p.display().to_string())
            .collect();
        anyhow::ensure!(
            missing.is_empty(),
            "a control plane needs the cluster's shared certificates, and {} {} missing on {}: join with --certificate-key <key> (from `kubeboot init phase upload-certs --upload-certs` on a control plane), or copy them from the first control plane (`kubeboot up` does)",
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" },
            ctx.host.name()
        );
        let ca = ctx
            .host
            .read_file(&cfg.cert_dir.join("ca.crt"))?
            .unwrap_or_default();
        check_cluster_ca(&ca, d)?;
    }
    let ictx = init_ctx(ctx, d);
    init_phases::certs(&ictx, "all")?;
    report(
        "kubeconfig",
        &format!(
            "Using kubeconfig folder \"{}\"",
            ictx.kubeconfig_dir.display()
        ),
    );
    for o in crate::kubeconfig::ensure_kubeconfigs(
        ctx.host,
        cfg,
        &ictx.kubeconfig_dir,
        &["admin", "controller-manager", "scheduler"],
    )? {
        report("kubeconfig", &o.message());
    }
    init_phases::control_plane(&ictx, "all")?;
    Ok(())
}

/// The CA on this node (downloaded or copied) must be the one discovery trusted.
fn check_cluster_ca(ca_pem: &[u8], d: &Discovered) -> anyhow::Result<()> {
    use base64::Engine;
    let theirs = base64::engine::general_purpose::STANDARD.decode(
        &d.cluster_info.clusters[0]
            .cluster
            .certificate_authority_data,
    )?;
    let ours = crate::pki::Certificate::from_pem(ca_pem)
        .map_err(|e| anyhow::anyhow!("the shared ca.crt: {e}"))?;
    let theirs = crate::pki::Certificate::from_pem(&theirs)
        .map_err(|e| anyhow::anyhow!("the cluster's CA: {e}"))?;
    anyhow::ensure!(
        ours.spki_sha256() == theirs.spki_sha256(),
        "the shared ca.crt ({}) is not the CA of the cluster being joined ({}): the certificates come from another cluster",
        ours.spki_sha256(),
        theirs.spki_sha256()
    );
    Ok(())
}

/// How long a joining control plane waits for the etcd mirror Pods to appear: right after
/// `init` the first control plane's kubelet may not have posted them yet (kubeadm waits
/// as long for them).
const ETCD_PODS_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// The client URLs of the annotated etcd mirror Pods (empty when there are none yet).
pub fn annotated_etcd_urls(admin: &ApiClient) -> anyhow::Result<Vec<String>> {
    let pods = admin.list(
        "/api/v1/namespaces/kube-system/pods",
        Some("labelSelector=component%3Detcd%2Ctier%3Dcontrol-plane"),
    )?;
    let mut urls: Vec<String> = pods
        .iter()
        .filter_map(|p| p["metadata"]["annotations"][ETCD_URL_ANNOTATION].as_str())
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    urls.sort();
    urls.dedup();
    Ok(urls)
}

/// The client URLs of the cluster's etcd members: the annotation of the etcd mirror Pods
/// (kubeadm's way), waited for up to [`ETCD_PODS_WAIT`]. Without any by then, the
/// discovered API server's host on port 2379: right for a single control plane whose
/// endpoint is its own address, and named in the error otherwise (a load balancer in
/// front of the API servers does not forward etcd's port).
pub fn etcd_endpoints(admin: &ApiClient, d: &Discovered) -> anyhow::Result<Vec<String>> {
    let deadline = std::time::Instant::now() + ETCD_PODS_WAIT;
    let mut said = false;
    loop {
        let urls = annotated_etcd_urls(admin)?;
        if !urls.is_empty() {
            return Ok(urls);
        }
        if std::time::Instant::now() >= deadline {
            break;
        }
        if !said {
            report(
                "check-etcd",
                &format!(
                    "Waiting up to {}s for the etcd Pods (the control planes' kubelets post them with {ETCD_URL_ANNOTATION})",
                    ETCD_PODS_WAIT.as_secs()
                ),
            );
            said = true;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let server = &d.cluster_info.clusters[0].cluster.server;
    let host = server
        .trim_start_matches("https://")
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(server);
    let url = format!("https://{host}:{}", crate::render::etcd::CLIENT_PORT);
    report(
        "check-etcd",
        &format!(
            "No etcd Pods carry {ETCD_URL_ANNOTATION} after {}s; trying {url}",
            ETCD_PODS_WAIT.as_secs()
        ),
    );
    Ok(vec![url])
}

/// `check-etcd`: the cluster's etcd answers with its member list; returns the client.
pub fn check_etcd(ctx: &JoinContext, d: &Discovered) -> anyhow::Result<Option<EtcdClient>> {
    let admin = admin_client(ctx, d)?;
    let endpoints = etcd_endpoints(&admin, d)?;
    let etcd = EtcdClient::from_cert_dir(ctx.host, &d.node_cfg.cert_dir, endpoints)?;
    let members = etcd.member_list()?;
    report(
        "check-etcd",
        &format!(
            "Checking that the etcd cluster is healthy: {} member(s) at {}",
            members.len(),
            etcd.endpoints().join(",")
        ),
    );
    Ok(Some(etcd))
}

fn peer_url(cfg: &crate::config::InitConfig) -> String {
    format!(
        "https://{}",
        crate::render::join_host_port(
            &cfg.advertise_address.to_string(),
            crate::render::etcd::PEER_PORT
        )
    )
}

/// `etcd-join`: adds this node to etcd as a learner (or finds it added by an earlier
/// run), writes its etcd static Pod with the current members, then promotes it to a
/// voting member once it has caught up (kubeadm's learner mode: the cluster keeps its
/// quorum while the new member starts).
pub fn etcd_join(
    ctx: &JoinContext,
    d: &Discovered,
    etcd: Option<&EtcdClient>,
) -> anyhow::Result<()> {
    let owned;
    let etcd = match etcd {
        Some(e) => e,
        None => {
            let admin = admin_client(ctx, d)?;
            owned = EtcdClient::from_cert_dir(
                ctx.host,
                &d.node_cfg.cert_dir,
                etcd_endpoints(&admin, d)?,
            )?;
            &owned
        }
    };
    let cfg = &d.node_cfg;
    let me = peer_url(cfg);
    let members = etcd.member_list()?;
    let (member, members): (Member, Vec<Member>) =
        match members.iter().find(|m| m.peer_urls.contains(&me)) {
            Some(m) => {
                report(
                    "etcd",
                    &format!(
                        "This node is already an etcd member ({:x}, {})",
                        m.id,
                        if m.is_learner { "learner" } else { "voting" }
                    ),
                );
                (m.clone(), members.clone())
            }
            None => {
                report(
                    "etcd",
                    &format!("Adding a new etcd member as a learner: {me}"),
                );
                add_member_retrying(etcd, &me)?
            }
        };
    let initial = crate::etcdclient::initial_cluster(&members, &cfg.node_name, &me);
    let f = crate::render::etcd::manifest_for(
        cfg,
        crate::render::etcd::Membership::Joining {
            initial_cluster: &initial,
        },
    )?;
    f.write_to(ctx.host)?;
    report(
        "etcd",
        &format!(
            "Creating static Pod manifest for \"etcd\" at {} (initial cluster {initial})",
            f.path.display()
        ),
    );
    if member.is_learner {
        let timeout = ctx
            .cfg
            .join
            .timeouts
            .as_ref()
            .and_then(|t| t.etcd_api_call)
            .map(|t| t.0)
            .unwrap_or(DEFAULT_ETCD_TIMEOUT);
        report(
            "etcd",
            &format!(
                "Waiting for the new etcd member to catch up, then promoting it (up to {}s)",
                timeout.as_secs()
            ),
        );
        let took = etcd.promote_when_ready(member.id, timeout).with_context(|| {
            format!(
                "the new etcd member {me} did not become ready for promotion within {}s: is the kubelet running the etcd Pod on {}? (`crictl ps -a --name etcd`)",
                timeout.as_secs(),
                ctx.host.name()
            )
        })?;
        report(
            "etcd",
            &format!(
                "The etcd member {:x} was promoted to a voting member after {:.1}s",
                member.id,
                took.as_secs_f64()
            ),
        );
    }
    Ok(())
}

/// `wait-control-plane`: this node's own API server answers /readyz.
pub fn wait_control_plane(ctx: &JoinContext, d: &Discovered) -> anyhow::Result<()> {
    init_phases::cluster::wait_local_api(&init_ctx(ctx, d))
}

/// `control-plane-join` (mark-control-plane): labels and taints this node.
pub fn control_plane_join(ctx: &JoinContext, d: &Discovered) -> anyhow::Result<()> {
    let admin = admin_client(ctx, d)?;
    init_phases::cluster::mark_control_plane(
        &init_ctx(ctx, d),
        &admin,
        ctx.cfg.tls_bootstrap_timeout,
    )
}

/// How long a member add is retried while etcd refuses it for a passing reason.
const MEMBER_ADD_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether etcd refused a member add for a reason that passes by itself: it adds a member
/// only when every voting member has been connected for 5 s ("unhealthy cluster"; right
/// after the previous control plane's member was promoted) and one learner at a time
/// ("too many learner members").
fn passing_refusal(message: &str) -> bool {
    [
        "unhealthy cluster",
        "too many learner members",
        "not enough started members",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// `member_add` as a learner, retried within [`MEMBER_ADD_RETRY`] while etcd's refusal is
/// one that passes (see [`passing_refusal`]), as kubeadm retries its member add.
fn add_member_retrying(
    etcd: &crate::etcdclient::EtcdClient,
    me: &str,
) -> Result<(Member, Vec<Member>), crate::etcdclient::EtcdError> {
    let start = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(500);
    loop {
        match etcd.member_add(me, true) {
            Err(crate::etcdclient::EtcdError::Refused { message, .. })
                if passing_refusal(&message) && start.elapsed() + delay < MEMBER_ADD_RETRY =>
            {
                tracing::debug!("etcd refused adding {me}: {message}; retrying in {delay:?}");
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod member_add_tests {
    /// etcd's refusals that pass by themselves are retried (its own messages); others,
    /// such as a peer URL already in use, fail the join at once.
    #[test]
    fn which_refusals_are_retried() {
        for m in [
            "etcdserver: unhealthy cluster",
            "etcdserver: too many learner members in cluster",
            "etcdserver: re-configuration failed due to not enough started members",
        ] {
            assert!(super::passing_refusal(m), "{m}");
        }
        assert!(!super::passing_refusal(
            "etcdserver: Peer URLs already exists"
        ));
        assert!(!super::passing_refusal("etcdserver: permission denied"));
    }
}

//! kube-apiserver, kube-controller-manager and kube-scheduler static Pods, with kubeadm's
//! flags (`phases/controlplane/manifests.go`) and hostPath volumes (`volumes.go`).

use super::args::{flags, to_command, user_value};
use super::staticpod::{self, Component, Mount, Mounts, ProbeTarget};
use super::versions::{self, ProbePaths};
use super::{KUBERNETES_DIR, MANIFESTS_DIR, RenderError, RenderOptions, RenderedFile, yaml};
use crate::config::InitConfig;
use crate::host::Host;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Directories `/etc/ssl/certs` may link into; kubeadm mounts each one that exists on the
/// host into the API server and controller-manager (only these, not all of `/etc/pki`,
/// which can hold private keys: PR 124361).
pub const CA_CERT_EXTRA_DIRS: [&str; 5] = [
    "/etc/pki/ca-trust",
    "/etc/pki/tls/certs",
    "/etc/ca-certificates",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
];

const FLEXVOLUME_DIR: &str = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec";
/// kube-controller-manager's secure port (probes).
pub const KCM_PORT: u16 = 10257;
/// kube-scheduler's secure port (probes).
pub const SCHEDULER_PORT: u16 = 10259;

fn cert(cfg: &InitConfig, name: &str) -> String {
    cfg.cert_dir.join(name).display().to_string()
}

fn kubeconfig(name: &str) -> String {
    Path::new(KUBERNETES_DIR).join(name).display().to_string()
}

/// The CA directories of [`CA_CERT_EXTRA_DIRS`] that exist on `host`, as named mounts.
fn ca_mounts(host: &dyn Host) -> Result<Mounts, RenderError> {
    let mut m = Mounts::new();
    m.insert(
        "ca-certs".into(),
        Mount::same("/etc/ssl/certs", true, "DirectoryOrCreate"),
    );
    for dir in CA_CERT_EXTRA_DIRS {
        if host.file_info(Path::new(dir))?.is_some() {
            m.insert(
                dir[1..].replace('/', "-"),
                Mount::same(dir, true, "DirectoryOrCreate"),
            );
        }
    }
    Ok(m)
}

/// The API server's command (`getAPIServerCommand`).
pub fn apiserver_command(cfg: &InitConfig) -> Vec<String> {
    let adv = cfg.advertise_address.to_string();
    let mut d = flags([
        ("advertise-address", adv.clone()),
        ("allow-privileged", "true".into()),
        ("client-ca-file", cert(cfg, "ca.crt")),
        ("enable-admission-plugins", "NodeRestriction".into()),
        ("enable-bootstrap-token-auth", "true".into()),
        (
            "kubelet-client-certificate",
            cert(cfg, "apiserver-kubelet-client.crt"),
        ),
        (
            "kubelet-client-key",
            cert(cfg, "apiserver-kubelet-client.key"),
        ),
        (
            "kubelet-preferred-address-types",
            "InternalIP,ExternalIP,Hostname".into(),
        ),
        (
            "proxy-client-cert-file",
            cert(cfg, "front-proxy-client.crt"),
        ),
        ("proxy-client-key-file", cert(cfg, "front-proxy-client.key")),
        ("requestheader-allowed-names", "front-proxy-client".into()),
        (
            "requestheader-client-ca-file",
            cert(cfg, "front-proxy-ca.crt"),
        ),
        (
            "requestheader-extra-headers-prefix",
            "X-Remote-Extra-".into(),
        ),
        ("requestheader-group-headers", "X-Remote-Group".into()),
        ("requestheader-username-headers", "X-Remote-User".into()),
        ("secure-port", cfg.bind_port.to_string()),
        (
            "service-account-issuer",
            format!("https://kubernetes.default.svc.{}", cfg.dns_domain),
        ),
        ("service-account-key-file", cert(cfg, "sa.pub")),
        ("service-account-signing-key-file", cert(cfg, "sa.key")),
        (
            "service-cluster-ip-range",
            cfg.cluster
                .networking
                .service_subnet
                .clone()
                .unwrap_or_default(),
        ),
        ("tls-cert-file", cert(cfg, "apiserver.crt")),
        ("tls-private-key-file", cert(cfg, "apiserver.key")),
    ]);
    match &cfg.cluster.etcd.external {
        Some(ext) => {
            d.insert("etcd-servers".into(), ext.endpoints.join(","));
            if !ext.ca_file.is_empty() {
                d.insert("etcd-cafile".into(), ext.ca_file.clone());
            }
            if !ext.cert_file.is_empty() && !ext.key_file.is_empty() {
                d.insert("etcd-certfile".into(), ext.cert_file.clone());
                d.insert("etcd-keyfile".into(), ext.key_file.clone());
            }
        }
        None => {
            let localhost = if cfg.advertise_address.is_ipv6() {
                "::1"
            } else {
                "127.0.0.1"
            };
            let mut servers = format!("https://{}", super::join_host_port(localhost, 2379));
            if let Some(v) = cfg
                .local_etcd()
                .and_then(|e| user_value(&e.extra_args, "advertise-client-urls"))
            {
                servers = v.to_string();
            }
            d.insert("etcd-servers".into(), servers);
            d.insert("etcd-cafile".into(), cert(cfg, "etcd/ca.crt"));
            d.insert(
                "etcd-certfile".into(),
                cert(cfg, "apiserver-etcd-client.crt"),
            );
            d.insert(
                "etcd-keyfile".into(),
                cert(cfg, "apiserver-etcd-client.key"),
            );
        }
    }
    let extra = &cfg.cluster.api_server.extra_args;
    if user_value(extra, "authorization-config").is_none() {
        d.insert("authorization-mode".into(), "Node,RBAC".into());
    }
    to_command("kube-apiserver", &d, extra)
}

/// The controller-manager's command (`getControllerManagerCommand`).
pub fn controller_manager_command(cfg: &InitConfig, external_ca: bool) -> Vec<String> {
    let kc = kubeconfig("controller-manager.conf");
    let ca = cert(cfg, "ca.crt");
    let (sign_cert, sign_key) = if external_ca {
        (String::new(), String::new())
    } else {
        (ca.clone(), cert(cfg, "ca.key"))
    };
    let mut d = flags([
        ("authentication-kubeconfig", kc.clone()),
        ("authorization-kubeconfig", kc.clone()),
        ("bind-address", "127.0.0.1".into()),
        ("client-ca-file", ca.clone()),
        ("cluster-name", cfg.cluster_name.clone()),
        ("cluster-signing-cert-file", sign_cert),
        ("cluster-signing-key-file", sign_key),
        ("controllers", "*,bootstrapsigner,tokencleaner".into()),
        ("kubeconfig", kc),
        ("leader-elect", "true".into()),
        (
            "requestheader-client-ca-file",
            cert(cfg, "front-proxy-ca.crt"),
        ),
        ("root-ca-file", ca),
        ("service-account-private-key-file", cert(cfg, "sa.key")),
        ("use-service-account-credentials", "true".into()),
    ]);
    if let Some(pod) = &cfg.cluster.networking.pod_subnet {
        d.insert("allocate-node-cidrs".into(), "true".into());
        d.insert("cluster-cidr".into(), pod.clone());
        if let Some(svc) = &cfg.cluster.networking.service_subnet {
            d.insert("service-cluster-ip-range".into(), svc.clone());
        }
    }
    to_command(
        "kube-controller-manager",
        &d,
        &cfg.cluster.controller_manager.extra_args,
    )
}

/// The scheduler's command (`getSchedulerCommand`).
pub fn scheduler_command(cfg: &InitConfig) -> Vec<String> {
    let kc = kubeconfig("scheduler.conf");
    let d = flags([
        ("authentication-kubeconfig", kc.clone()),
        ("authorization-kubeconfig", kc.clone()),
        ("bind-address", "127.0.0.1".into()),
        ("kubeconfig", kc),
        ("leader-elect", "true".into()),
    ]);
    to_command("kube-scheduler", &d, &cfg.cluster.scheduler.extra_args)
}

/// Directories of an external etcd's cert files that are not already mounted, like
/// kubeadm's `getEtcdCertVolumes` (`etcd-certs-0`, ...).
fn external_etcd_mounts(cfg: &InitConfig, mounts: &mut Mounts) {
    let Some(ext) = &cfg.cluster.etcd.external else {
        return;
    };
    let cert_dir = cfg.cert_dir.display().to_string();
    let mut dirs: Vec<String> = Vec::new();
    for f in [&ext.ca_file, &ext.cert_file, &ext.key_file] {
        let Some(dir) = Path::new(f.as_str())
            .parent()
            .map(|p| p.display().to_string())
        else {
            continue;
        };
        if dir.is_empty()
            || dir.starts_with("/etc/ssl/certs")
            || dir.starts_with(&cert_dir)
            || CA_CERT_EXTRA_DIRS.iter().any(|c| dir.starts_with(c))
        {
            continue;
        }
        if dirs.iter().any(|d| dir.starts_with(d.as_str())) {
            continue;
        }
        dirs.retain(|d| !d.starts_with(&dir));
        dirs.push(dir);
    }
    dirs.sort();
    for (i, d) in dirs.iter().enumerate() {
        mounts.insert(
            format!("etcd-certs-{i}"),
            Mount::same(d, true, "DirectoryOrCreate"),
        );
    }
}

/// The API server, controller-manager and scheduler manifests.
pub fn manifests(
    cfg: &InitConfig,
    host: &dyn Host,
    opts: &RenderOptions,
) -> Result<Vec<RenderedFile>, RenderError> {
    let profile = versions::profile(cfg.kubernetes_version)?;
    let startup = staticpod::startup_failure_threshold(cfg);
    let cert_dir = cfg.cert_dir.display().to_string();
    let ca = ca_mounts(host)?;

    // kube-apiserver
    let mut mounts = ca.clone();
    mounts.insert(
        "k8s-certs".into(),
        Mount::same(&cert_dir, true, "DirectoryOrCreate"),
    );
    external_etcd_mounts(cfg, &mut mounts);
    staticpod::add_extra_volumes(&mut mounts, &cfg.cluster.api_server.extra_volumes);
    let adv = cfg.advertise_address.to_string();
    let apiserver = Component {
        name: "kube-apiserver",
        image: super::kubernetes_image(cfg, "kube-apiserver"),
        command: apiserver_command(cfg),
        mounts,
        probe_paths: ProbePaths {
            liveness: "/livez",
            readiness: Some("/readyz"),
            startup: "/livez",
        },
        probe: ProbeTarget {
            host: staticpod::probe_host(&adv),
            port: cfg.bind_port,
            scheme: "HTTPS",
        },
        cpu: "250m",
        memory: None,
        env: staticpod::merge_env(&opts.proxy_env, &cfg.cluster.api_server.extra_envs),
        annotations: BTreeMap::from([(
            "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint".to_string(),
            super::join_host_port(&adv, cfg.bind_port),
        )]),
    };

    // kube-controller-manager
    let kcm_extra = &cfg.cluster.controller_manager.extra_args;
    let mut mounts = ca;
    mounts.insert(
        "k8s-certs".into(),
        Mount::same(&cert_dir, true, "DirectoryOrCreate"),
    );
    mounts.insert(
        "kubeconfig".into(),
        Mount::same(&kubeconfig("controller-manager.conf"), true, "FileOrCreate"),
    );
    let flex = user_value(kcm_extra, "flex-volume-plugin-dir").unwrap_or(FLEXVOLUME_DIR);
    mounts.insert(
        "flexvolume-dir".into(),
        Mount::same(flex, false, "DirectoryOrCreate"),
    );
    staticpod::add_extra_volumes(&mut mounts, &cfg.cluster.controller_manager.extra_volumes);
    let kcm = Component {
        name: "kube-controller-manager",
        image: super::kubernetes_image(cfg, "kube-controller-manager"),
        command: controller_manager_command(cfg, opts.external_ca),
        mounts,
        probe_paths: ProbePaths {
            liveness: "/healthz",
            readiness: None,
            startup: "/healthz",
        },
        probe: ProbeTarget {
            host: staticpod::probe_host(
                user_value(kcm_extra, "bind-address").unwrap_or("127.0.0.1"),
            ),
            port: KCM_PORT,
            scheme: "HTTPS",
        },
        cpu: "200m",
        memory: None,
        env: staticpod::merge_env(&opts.proxy_env, &cfg.cluster.controller_manager.extra_envs),
        annotations: BTreeMap::new(),
    };

    // kube-scheduler
    let sched_extra = &cfg.cluster.scheduler.extra_args;
    let mut mounts = Mounts::new();
    mounts.insert(
        "kubeconfig".into(),
        Mount::same(&kubeconfig("scheduler.conf"), true, "FileOrCreate"),
    );
    staticpod::add_extra_volumes(&mut mounts, &cfg.cluster.scheduler.extra_volumes);
    let scheduler = Component {
        name: "kube-scheduler",
        image: super::kubernetes_image(cfg, "kube-scheduler"),
        command: scheduler_command(cfg),
        mounts,
        probe_paths: profile.scheduler_probes,
        probe: ProbeTarget {
            host: staticpod::probe_host(
                user_value(sched_extra, "bind-address").unwrap_or("127.0.0.1"),
            ),
            port: SCHEDULER_PORT,
            scheme: "HTTPS",
        },
        cpu: "100m",
        memory: None,
        env: staticpod::merge_env(&opts.proxy_env, &cfg.cluster.scheduler.extra_envs),
        annotations: BTreeMap::new(),
    };

    [apiserver, kcm, scheduler]
        .iter()
        .map(|c| manifest_file(c.name, &staticpod::pod(c, profile, startup)))
        .collect()
}

/// A static Pod as kubeadm writes it: `/etc/kubernetes/manifests/<name>.yaml`, 0600 in a
/// 0700 directory.
pub(crate) fn manifest_file(name: &str, pod: &Value) -> Result<RenderedFile, RenderError> {
    Ok(RenderedFile::node(
        Path::new(MANIFESTS_DIR).join(format!("{name}.yaml")),
        yaml::to_yaml(pod)?,
        0o600,
        0o700,
    ))
}

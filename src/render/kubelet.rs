//! The kubelet's files as kubeadm's `kubelet-start` phase writes them:
//! `/var/lib/kubelet/config.yaml` (KubeletConfiguration: kubeadm's defaults with the user's
//! document laid over them), `/var/lib/kubelet/kubeadm-flags.env` (node-specific flags), on
//! 1.34+ `/var/lib/kubelet/instance-config.yaml` (the CRI endpoint, `NodeLocalCRISocket`),
//! and the packaged systemd drop-in `10-kubeadm.conf` that ties them together.

use super::args::command_flags;
use super::{MANIFESTS_DIR, RenderError, RenderOptions, RenderedFile, pause_image, versions, yaml};
use crate::config::InitConfig;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The kubelet's configuration file.
pub const CONFIG_PATH: &str = "/var/lib/kubelet/config.yaml";
/// The env file with `KUBELET_KUBEADM_ARGS`.
pub const FLAGS_ENV_PATH: &str = "/var/lib/kubelet/kubeadm-flags.env";
/// Per-node kubelet configuration (1.34+).
pub const INSTANCE_CONFIG_PATH: &str = "/var/lib/kubelet/instance-config.yaml";
/// The systemd drop-in.
pub const DROP_IN_PATH: &str = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf";

fn cri_socket(cfg: &InitConfig) -> String {
    cfg.init
        .node_registration
        .cri_socket
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_CRI_SOCKET.to_string())
}

/// The KubeletConfiguration kubeadm writes: its defaults (`componentconfigs/kubelet.go`)
/// under the user's `KubeletConfiguration` document, so every field the user sets wins.
pub fn config(cfg: &InitConfig, opts: &RenderOptions) -> Result<Value, RenderError> {
    let profile = versions::profile(cfg.kubernetes_version)?;
    let mut c = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": { "enabled": false },
            "webhook": { "enabled": true },
            "x509": { "clientCAFile": cfg.cert_dir.join("ca.crt").display().to_string() },
        },
        "authorization": { "mode": "Webhook" },
        "cgroupDriver": "systemd",
        "clusterDNS": [cfg.dns_service_ip().to_string()],
        "clusterDomain": cfg.dns_domain,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "rotateCertificates": true,
        "staticPodPath": MANIFESTS_DIR,
    });
    if let Some(r) = &opts.resolv_conf {
        c["resolvConf"] = json!(r);
    }
    if profile.cri_endpoint_in_kubelet_config {
        c["containerRuntimeEndpoint"] = json!(cri_socket(cfg));
    }
    if let Some(user) = &cfg.kubelet {
        let mut user = user.clone();
        yaml::normalize_numbers(&mut user);
        yaml::merge(&mut c, &user);
    }
    Ok(c)
}

/// The flags in `KUBELET_KUBEADM_ARGS` (`buildKubeletArgs` plus `kubeletExtraArgs`).
pub fn flags(cfg: &InitConfig, opts: &RenderOptions) -> Result<Vec<String>, RenderError> {
    let profile = versions::profile(cfg.kubernetes_version)?;
    let mut d = BTreeMap::new();
    if !profile.cri_endpoint_in_kubelet_config {
        d.insert("container-runtime-endpoint".to_string(), cri_socket(cfg));
    }
    if profile.kubelet_pod_infra_flag {
        d.insert(
            "pod-infra-container-image".to_string(),
            pause_image(super::image_repository(cfg), profile),
        );
    }
    if let Some(h) = &opts.hostname
        && *h != cfg.node_name
    {
        d.insert("hostname-override".to_string(), cfg.node_name.clone());
    }
    Ok(command_flags(
        &d,
        &cfg.init.node_registration.kubelet_extra_args,
    ))
}

/// `/var/lib/kubelet/kubeadm-flags.env` with this node's flags.
pub fn flags_env(cfg: &InitConfig, opts: &RenderOptions) -> Result<RenderedFile, RenderError> {
    let mut ctx = tera::Context::new();
    ctx.insert("args", &flags(cfg, opts)?);
    Ok(RenderedFile::node(
        FLAGS_ENV_PATH,
        opts.templates.render("kubeadm-flags.env.tera", &ctx)?,
        0o644,
        0o700,
    ))
}

/// `/var/lib/kubelet/instance-config.yaml` (the CRI endpoint) on versions that move it
/// out of the flags (1.34+); `None` before.
pub fn instance_config(cfg: &InitConfig) -> Result<Option<RenderedFile>, RenderError> {
    let profile = versions::profile(cfg.kubernetes_version)?;
    if !profile.cri_endpoint_in_kubelet_config {
        return Ok(None);
    }
    let instance = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": cri_socket(cfg),
    });
    Ok(Some(RenderedFile::node(
        INSTANCE_CONFIG_PATH,
        yaml::to_yaml(&instance)?,
        0o644,
        0o700,
    )))
}

/// All kubelet files of a control-plane node.
pub fn files(cfg: &InitConfig, opts: &RenderOptions) -> Result<Vec<RenderedFile>, RenderError> {
    let mut out = vec![RenderedFile::node(
        CONFIG_PATH,
        yaml::to_yaml(&config(cfg, opts)?)?,
        0o644,
        0o700,
    )];
    out.push(flags_env(cfg, opts)?);
    out.extend(instance_config(cfg)?);
    out.push(drop_in(&opts.templates)?);
    Ok(out)
}

/// The systemd drop-in of kubeadm's kubelet package (kubeboot installs the kubelet binary
/// itself, so it also writes this file).
pub fn drop_in(templates: &super::Templates) -> Result<RenderedFile, RenderError> {
    let mut ctx = tera::Context::new();
    ctx.insert("kubelet_path", "/usr/bin/kubelet");
    ctx.insert("defaults_file", "/etc/default/kubelet");
    Ok(RenderedFile::node(
        DROP_IN_PATH,
        templates.render("10-kubeadm.conf.tera", &ctx)?,
        0o644,
        0o755,
    ))
}

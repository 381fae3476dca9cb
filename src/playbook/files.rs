//! File contents the playbooks install by `template:` name. The containerd config and
//! kubeadm's kubelet drop-in come from `render` (the same files `init` writes), so a
//! prepared node and an initialised one never disagree; the kubelet unit, which render
//! does not ship, is kept here.

use crate::config::version::KubeVersion;
use crate::render;

/// The kubelet unit as the pkgs.k8s.io packages ship it (for hosts that get the kubelet
/// as a binary).
const KUBELET_SERVICE: &str = r#"# Written by kubeboot (playbook prepare-node), as the pkgs.k8s.io packages ship it.
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"#;

/// Template names a playbook may use.
const NAMES: &[&str] = &[
    "containerd-config.toml",
    "kubelet.service",
    "10-kubeadm.conf",
];

/// Whether `name` is a known template.
pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Names of all templates, for error messages.
pub fn names() -> Vec<&'static str> {
    NAMES.to_vec()
}

/// The content of template `name`. `render_str` renders text with the step context
/// (facts and vars); the Kubernetes version is read through it.
///
/// containerd's config is written in schema version 2 (containerd 1.x), which containerd
/// 2.x also reads (it migrates it on load): the containerd version is not known before
/// the playbook installs it, and the file must not change between the first run and the
/// next, or a re-run would not be a no-op.
pub fn render(
    name: &str,
    render_str: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    match name {
        "containerd-config.toml" => {
            let v = render_str("{{ kubernetes_version }}")?;
            let version = KubeVersion::parse(&v)?;
            let repo = render_str("{{ image_repository }}")?;
            // `restrict_oom_score_adj` is true, false or auto (from the host's facts).
            let restrict = render_str(
                "{% if restrict_oom_score_adj is defined and restrict_oom_score_adj != 'auto' %}{{ restrict_oom_score_adj }}{% elif facts is defined and facts.cap_sys_resource is defined and not facts.cap_sys_resource %}true{% else %}false{% endif %}",
            )?;
            render::containerd::config_with(
                &render::templates::Templates::embedded(),
                1,
                version,
                &repo,
                restrict == "true",
            )
            .map(|f| f.text().to_string())
            .map_err(|e| e.to_string())
        }
        "10-kubeadm.conf" => render::kubelet::drop_in(&render::templates::Templates::embedded())
            .map(|f| f.text().to_string())
            .map_err(|e| e.to_string()),
        "kubelet.service" => render_str(KUBELET_SERVICE),
        other => Err(format!(
            "no template {other:?}; templates: {}",
            NAMES.join(", ")
        )),
    }
}

/// The pause (sandbox) image kubeadm of this Kubernetes version expects.
pub fn pause_image(version: KubeVersion, repo: &str) -> Result<String, String> {
    let profile = render::versions::profile(version).map_err(|e| e.to_string())?;
    Ok(render::pause_image(repo, profile))
}

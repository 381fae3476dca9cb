//! File contents the playbooks install by `template:` name.
//!
//! TODO(render): these belong to the `render` module (`src/render/` + `templates/`),
//! which is not on main yet. This is the ONE place to switch: make [`template`] return
//! `render::` templates (containerd `config.toml`, the kubelet unit and the kubeadm
//! drop-in `10-kubeadm.conf`) and [`pause_image`] read render's version data, and delete
//! the constants below. Nothing else in the playbook code names these files.

/// containerd config (format `version = 2`: containerd 1.6/1.7 read it natively and 2.x
/// migrates it on load). systemd cgroups for runc, the pause image kubeadm expects, CNI
/// in the standard directories, and no disabled plugins (package defaults sometimes
/// disable `cri`).
const CONTAINERD_CONFIG: &str = r#"# Written by kubeboot (playbook prepare-node). Changes are overwritten.
version = 2
disabled_plugins = []

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{ pause_image }}"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
"#;

/// The kubelet unit as the pkgs.k8s.io packages ship it.
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

/// kubeadm's drop-in (`kubelet-integration.md`); the environment file is
/// `/etc/default/kubelet` on Debian-family hosts and `/etc/sysconfig/kubelet` on RPM ones.
const KUBEADM_DROPIN: &str = r#"# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-{% if facts.os_family == "rhel" %}/etc/sysconfig/kubelet{% else %}/etc/default/kubelet{% endif %}
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"#;

const TEMPLATES: &[(&str, &str)] = &[
    ("containerd-config.toml", CONTAINERD_CONFIG),
    ("kubelet.service", KUBELET_SERVICE),
    ("10-kubeadm.conf", KUBEADM_DROPIN),
];

/// The template source named `name` (rendered by the engine with the step context).
pub fn template(name: &str) -> Option<&'static str> {
    TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Names of all templates, for error messages.
pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|(n, _)| *n).collect()
}

/// The pause (sandbox) image kubeadm of Kubernetes 1.`minor` expects
/// (`kubeadm config images list`).
pub fn pause_image(minor: u32) -> &'static str {
    match minor {
        0..=30 => "registry.k8s.io/pause:3.9",
        31..=33 => "registry.k8s.io/pause:3.10",
        _ => "registry.k8s.io/pause:3.10.1",
    }
}

//! flannel, the CNI kubeboot installs: the upstream `kube-flannel.yml` objects as a
//! template (users can drop in a newer upstream file), with net-conf.json's `Network` set
//! to the cluster's pod CIDR (flannel's `--kube-subnet-mgr` needs them equal) and an
//! optional `--iface` for hosts with several NICs. Applied as raw YAML documents, so the
//! API server parses them, not kubeboot.

use super::{RenderError, Templates};
use crate::config::InitConfig;

/// The flannel release the embedded template deploys.
pub const FLANNEL_VERSION: &str = "v0.28.9";
/// The flannel CNI plugin image of that release.
pub const CNI_PLUGIN_IMAGE: &str = "ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3";

/// The images of the embedded manifest, as `(component, reference)`: the CNI plugin
/// (init container) and flannel itself. They come from ghcr.io whatever `imageRepository`
/// says, as upstream's manifest.
pub fn images() -> [(&'static str, String); 2] {
    [
        ("flannel-cni-plugin", CNI_PLUGIN_IMAGE.to_string()),
        (
            "flannel",
            format!("ghcr.io/flannel-io/flannel:{FLANNEL_VERSION}"),
        ),
    ]
}

/// Checks an interface name the way Linux allows them (1-15 chars, no `/`, `:` or space),
/// which also keeps it safe to place in YAML and on a command line.
pub fn check_iface(name: &str) -> Result<(), RenderError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(RenderError::Invalid {
            field: "flannel --iface".into(),
            message: format!(
                "{name:?} is not a network interface name (1-15 letters, digits, '-', '_', '.')"
            ),
        })
    }
}

/// The flannel manifest (a YAML stream) for `cfg`'s IPv4 pod CIDR.
pub fn manifest(
    cfg: &InitConfig,
    templates: &Templates,
    iface: Option<&str>,
) -> Result<String, RenderError> {
    let network = cfg
        .pod_subnets
        .iter()
        .find(|n| matches!(n, ipnet::IpNet::V4(_)))
        .ok_or_else(|| RenderError::Invalid {
            field: "networking.podSubnet".into(),
            message: "flannel needs an IPv4 pod CIDR (for example 10.244.0.0/16); set networking.podSubnet or --pod-network-cidr".into(),
        })?;
    if let Some(i) = iface {
        check_iface(i)?;
    }
    let mut ctx = tera::Context::new();
    ctx.insert("network", &network.to_string());
    ctx.insert("iface", &iface.unwrap_or(""));
    ctx.insert("flannel_version", FLANNEL_VERSION);
    let [(_, cni_plugin), (_, flannel)] = images();
    ctx.insert("flannel_image", &flannel);
    ctx.insert("cni_plugin_image", &cni_plugin);
    templates.render("kube-flannel.yml.tera", &ctx)
}

//! `/etc/containerd/config.toml`: the smallest containerd configuration a kubeadm node
//! needs (CRI enabled, runc with `SystemdCgroup = true`, the sandbox image kubeadm expects),
//! in the schema of the node's containerd: version 2 for containerd 1.x, version 3 for 2.x.
//! Host preparation calls [`config`] directly; it depends on nothing but its arguments.

use super::{RenderError, RenderedFile, Templates, pause_image, versions};
use crate::config::version::KubeVersion;

/// Where containerd reads its configuration.
pub const CONFIG_PATH: &str = "/etc/containerd/config.toml";

/// The containerd configuration for `containerd_major` (1 or 2), Kubernetes `version`, and
/// images from `image_repository`, from the embedded templates.
pub fn config(
    containerd_major: u32,
    version: KubeVersion,
    image_repository: &str,
) -> Result<RenderedFile, RenderError> {
    config_with(
        &Templates::embedded(),
        containerd_major,
        version,
        image_repository,
        false,
    )
}

/// [`config`] with user-overridable templates. `restrict_oom_score_adj` turns on the
/// CRI option of that name, for hosts without CAP_SYS_RESOURCE (unprivileged containers,
/// some CI runners and labs): there runc cannot set the negative `oom_score_adj`
/// containerd gives pod sandboxes, and every sandbox fails with "can't get final
/// child's PID from pipe: EOF".
pub fn config_with(
    templates: &Templates,
    containerd_major: u32,
    version: KubeVersion,
    image_repository: &str,
    restrict_oom_score_adj: bool,
) -> Result<RenderedFile, RenderError> {
    let template = match containerd_major {
        1 => "containerd-config-v2.toml.tera",
        2 => "containerd-config-v3.toml.tera",
        m => {
            return Err(RenderError::Invalid {
                field: "containerd version".into(),
                message: format!(
                    "containerd {m}.x is not supported; kubeboot writes configs for containerd 1.x and 2.x"
                ),
            });
        }
    };
    let profile = versions::profile(version)?;
    let mut ctx = tera::Context::new();
    ctx.insert("sandbox_image", &pause_image(image_repository, profile));
    ctx.insert("kubernetes_version", &version.to_string());
    ctx.insert("restrict_oom_score_adj", &restrict_oom_score_adj);
    Ok(RenderedFile::node(
        CONFIG_PATH,
        templates.render(template, &ctx)?,
        0o644,
        0o755,
    ))
}

//! The text templates (`templates/*.tera`): files that are not Kubernetes objects (systemd
//! drop-in, env file, containerd TOML, Corefile) and the third-party flannel manifest. They
//! are embedded in the binary and each can be replaced by a file of the same name in a
//! directory the user gives (`--templates-dir`), so a site can adapt them without a rebuild.
//!
//! Values are inserted with the `quote` filter where the target syntax needs quoting
//! (`{{ v | quote }}` writes a JSON string, which is also a valid YAML and TOML basic
//! string), so a value can never break the file's syntax.

use super::RenderError;
use std::collections::BTreeMap;
use std::path::Path;

/// Every template kubeboot renders, with its embedded default text.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "10-kubeadm.conf.tera",
        include_str!("../../templates/10-kubeadm.conf.tera"),
    ),
    (
        "kubeadm-flags.env.tera",
        include_str!("../../templates/kubeadm-flags.env.tera"),
    ),
    (
        "containerd-config-v2.toml.tera",
        include_str!("../../templates/containerd-config-v2.toml.tera"),
    ),
    (
        "containerd-config-v3.toml.tera",
        include_str!("../../templates/containerd-config-v3.toml.tera"),
    ),
    (
        "Corefile.tera",
        include_str!("../../templates/Corefile.tera"),
    ),
    (
        "kube-flannel.yml.tera",
        include_str!("../../templates/kube-flannel.yml.tera"),
    ),
];

/// A set of templates: the embedded ones, some possibly replaced from a directory.
#[derive(Debug, Clone)]
pub struct Templates {
    sources: BTreeMap<&'static str, (String, String)>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::embedded()
    }
}

impl Templates {
    /// The templates built into the binary.
    pub fn embedded() -> Self {
        let sources = EMBEDDED
            .iter()
            .map(|(n, t)| (*n, (t.to_string(), "(embedded)".to_string())))
            .collect();
        Templates { sources }
    }

    /// The embedded templates, each replaced by `dir/<name>` when that file exists. A file
    /// in `dir` whose name kubeboot does not know is an error, so a typo in a file name does
    /// not silently leave the default in force.
    pub fn with_overrides(dir: &Path) -> Result<Self, RenderError> {
        let mut t = Self::embedded();
        let read_dir = std::fs::read_dir(dir).map_err(|e| RenderError::TemplateDir {
            dir: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        for entry in read_dir {
            let entry = entry.map_err(|e| RenderError::TemplateDir {
                dir: dir.to_path_buf(),
                message: e.to_string(),
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((known, _)) = EMBEDDED.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = EMBEDDED.iter().map(|(n, _)| *n).collect();
                return Err(RenderError::TemplateDir {
                    dir: dir.to_path_buf(),
                    message: format!(
                        "{name:?} is not a kubeboot template; known templates: {}",
                        names.join(", ")
                    ),
                });
            };
            let text =
                std::fs::read_to_string(entry.path()).map_err(|e| RenderError::TemplateDir {
                    dir: dir.to_path_buf(),
                    message: format!("{name}: {e}"),
                })?;
            t.sources
                .insert(known, (text, entry.path().display().to_string()));
        }
        Ok(t)
    }

    /// Renders template `name` with `context`.
    pub fn render(&self, name: &str, context: &tera::Context) -> Result<String, RenderError> {
        let (text, origin) = self
            .sources
            .get(name)
            .ok_or_else(|| RenderError::Template {
                name: name.to_string(),
                message: "no such template".into(),
            })?;
        let err = |e: tera::Error| RenderError::Template {
            name: format!("{name} {origin}"),
            message: format!("{e:#}"),
        };
        let mut tera = tera::Tera::new();
        tera.register_filter("quote", quote);
        tera.add_raw_template(name, text).map_err(err)?;
        tera.render(name, context).map_err(err)
    }
}

/// `{{ v | quote }}`: a JSON string literal, valid as a YAML or TOML basic string.
fn quote(val: &str, _: tera::Kwargs, _: &tera::State) -> String {
    serde_json::to_string(val).expect("a string always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_by_name_and_reject_unknown_files() {
        let dir = std::env::temp_dir().join(format!("kubeboot-tpl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Corefile.tera"), "custom {{ domain | quote }}\n").unwrap();
        let t = Templates::with_overrides(&dir).unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("domain", "a\"b");
        assert_eq!(
            t.render("Corefile.tera", &ctx).unwrap(),
            "custom \"a\\\"b\"\n"
        );
        std::fs::write(dir.join("Corefile.tmpl"), "x").unwrap();
        let e = Templates::with_overrides(&dir).unwrap_err().to_string();
        assert!(
            e.contains("Corefile.tmpl") && e.contains("known templates"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! YAML output the way Kubernetes tools read it: YAML-1.1-ambiguous strings quoted (so
//! kubectl never reads `yes` as a bool), and long strings such as base64 certificate data
//! kept as plain one-line scalars, as kubeadm writes them.

/// Serializes `value` as one YAML document.
pub fn to_string<T: serde::Serialize>(value: &T) -> Result<String, String> {
    let mut opts = serde_saphyr::SerializerOptions::default();
    opts.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, opts).map_err(|e| e.to_string())
}

/// Splits a YAML stream into its documents the way kubectl's YAMLReader does (on `---`
/// lines), dropping documents that hold only comments or blanks.
pub fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.starts_with("---") && line[3..].trim().is_empty() {
            docs.push(String::new());
        } else {
            let d = docs.last_mut().expect("one document");
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

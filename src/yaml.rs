//! YAML output the way Kubernetes tools read it: YAML-1.1-ambiguous strings quoted (so
//! kubectl never reads `yes` as a bool), and long strings such as base64 certificate data
//! kept as plain one-line scalars, as kubeadm writes them.

/// Serializes `value` as one YAML document.
pub fn to_string<T: serde::Serialize>(value: &T) -> Result<String, String> {
    let mut opts = serde_saphyr::SerializerOptions::default();
    opts.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, opts).map_err(|e| e.to_string())
}

//! Everything that differs between the Kubernetes minor versions kubeboot renders, in one
//! table. Templates and builders read a [`VersionProfile`]; none of them compares version
//! numbers themselves, so supporting a new minor means adding one row here (and its golden
//! files), not hunting for `if`s.
//!
//! Sources (kubeadm, `cmd/kubeadm/app/...`): `constants/constants.go` (`SupportedEtcdVersion`,
//! `PauseVersion`, `CoreDNSVersion`), `phases/etcd/local.go` (etcd flags),
//! `util/staticpod/utils.go` (probes, PR 126945 scheduler /livez, PR 132776 `probe-port`),
//! `phases/addons/dns/manifests.go` (PR 128359 Corefile cache), `features.NodeLocalCRISocket`
//! (beta, on by default in 1.34: the CRI endpoint moves from kubeadm-flags.env into the kubelet
//! configuration).

use crate::config::version::KubeVersion;

/// How etcd spells two flags kubeadm always passes: etcd 3.5 has them as `--experimental-*`,
/// etcd 3.6 graduated them (kubeadm 1.34 switched with its etcd 3.6 image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcdFlagStyle {
    /// `--experimental-initial-corrupt-check=true`, `--experimental-watch-progress-notify-interval=5s`.
    Etcd35,
    /// `--feature-gates=InitialCorruptCheck=true`, `--watch-progress-notify-interval=5s`.
    Etcd36,
}

impl EtcdFlagStyle {
    /// The two version-dependent etcd flags as `(name, value)`.
    pub fn flags(self) -> [(&'static str, &'static str); 2] {
        match self {
            EtcdFlagStyle::Etcd35 => [
                ("experimental-initial-corrupt-check", "true"),
                ("experimental-watch-progress-notify-interval", "5s"),
            ],
            EtcdFlagStyle::Etcd36 => [
                ("feature-gates", "InitialCorruptCheck=true"),
                ("watch-progress-notify-interval", "5s"),
            ],
        }
    }
}

/// The HTTP paths of one component's probes; `None` means kubeadm sets no such probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbePaths {
    pub liveness: &'static str,
    pub readiness: Option<&'static str>,
    pub startup: &'static str,
}

/// What kubeadm of one Kubernetes minor version renders differently from the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionProfile {
    /// Kubernetes 1.`minor`.
    pub minor: u32,
    /// `registry.k8s.io/etcd:<tag>`. Taken from kubeadm 1.34's `SupportedEtcdVersion` map
    /// (latest patch releases); kubeadm moves these tags in patch releases, so
    /// `etcd.local.imageTag` overrides it.
    pub etcd_image_tag: &'static str,
    /// etcd flag spellings matching that etcd.
    pub etcd_flags: EtcdFlagStyle,
    /// `pause` image tag (sandbox image) kubeadm expects.
    pub pause_tag: &'static str,
    /// `coredns/coredns` image tag.
    pub coredns_tag: &'static str,
    /// kube-scheduler probes (moved from /healthz to /livez,/readyz in 1.32).
    pub scheduler_probes: ProbePaths,
    /// etcd probes on the metrics listener (/livez,/readyz since 1.31; needs etcd >= 3.5.11).
    pub etcd_probes: ProbePaths,
    /// Probes refer to a named container port `probe-port` (1.34+).
    pub named_probe_port: bool,
    /// The Corefile's `cache` block excludes the cluster domain (1.32+).
    pub corefile_cache_excludes_cluster_domain: bool,
    /// The CRI endpoint lives in the kubelet configuration (`containerRuntimeEndpoint`,
    /// `instance-config.yaml`) instead of `--container-runtime-endpoint` (1.34+).
    pub cri_endpoint_in_kubelet_config: bool,
    /// kubeadm still passes `--pod-infra-container-image` to the kubelet (dropped in 1.35).
    pub kubelet_pod_infra_flag: bool,
}

const HEALTHZ: ProbePaths = ProbePaths {
    liveness: "/healthz",
    readiness: None,
    startup: "/healthz",
};
const LIVEZ_READYZ: ProbePaths = ProbePaths {
    liveness: "/livez",
    readiness: Some("/readyz"),
    startup: "/livez",
};
const ETCD_LIVEZ_READYZ: ProbePaths = ProbePaths {
    liveness: "/livez",
    readiness: Some("/readyz"),
    startup: "/readyz",
};

/// One row per supported minor version (must match `config::version::SUPPORTED_MINORS`).
pub const PROFILES: [VersionProfile; 4] = [
    VersionProfile {
        minor: 31,
        etcd_image_tag: "3.5.24-0",
        etcd_flags: EtcdFlagStyle::Etcd35,
        pause_tag: "3.10",
        coredns_tag: "v1.11.3",
        scheduler_probes: HEALTHZ,
        etcd_probes: ETCD_LIVEZ_READYZ,
        named_probe_port: false,
        corefile_cache_excludes_cluster_domain: false,
        cri_endpoint_in_kubelet_config: false,
        kubelet_pod_infra_flag: true,
    },
    VersionProfile {
        minor: 32,
        etcd_image_tag: "3.5.24-0",
        etcd_flags: EtcdFlagStyle::Etcd35,
        pause_tag: "3.10",
        coredns_tag: "v1.11.3",
        scheduler_probes: LIVEZ_READYZ,
        etcd_probes: ETCD_LIVEZ_READYZ,
        named_probe_port: false,
        corefile_cache_excludes_cluster_domain: true,
        cri_endpoint_in_kubelet_config: false,
        kubelet_pod_infra_flag: true,
    },
    VersionProfile {
        minor: 33,
        etcd_image_tag: "3.5.24-0",
        etcd_flags: EtcdFlagStyle::Etcd35,
        pause_tag: "3.10",
        coredns_tag: "v1.12.0",
        scheduler_probes: LIVEZ_READYZ,
        etcd_probes: ETCD_LIVEZ_READYZ,
        named_probe_port: false,
        corefile_cache_excludes_cluster_domain: true,
        cri_endpoint_in_kubelet_config: false,
        kubelet_pod_infra_flag: true,
    },
    VersionProfile {
        minor: 34,
        etcd_image_tag: "3.6.5-0",
        etcd_flags: EtcdFlagStyle::Etcd36,
        pause_tag: "3.10.1",
        coredns_tag: "v1.12.1",
        scheduler_probes: LIVEZ_READYZ,
        etcd_probes: ETCD_LIVEZ_READYZ,
        named_probe_port: true,
        corefile_cache_excludes_cluster_domain: true,
        cri_endpoint_in_kubelet_config: true,
        kubelet_pod_infra_flag: true,
    },
];

/// The profile of a (validated) Kubernetes version. Config validation already rejects
/// unsupported minors, so a miss here is a programming error reported as such.
pub fn profile(version: KubeVersion) -> Result<&'static VersionProfile, super::RenderError> {
    PROFILES
        .iter()
        .find(|p| p.minor == version.minor)
        .ok_or_else(|| super::RenderError::UnsupportedVersion {
            version: version.to_string(),
            supported: crate::config::version::supported_list(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::version::SUPPORTED_MINORS;

    #[test]
    fn one_row_per_supported_minor() {
        let minors: Vec<u32> = PROFILES.iter().map(|p| p.minor).collect();
        assert_eq!(minors, SUPPORTED_MINORS.collect::<Vec<_>>());
    }

    #[test]
    fn etcd_flag_style_follows_the_etcd_image() {
        for p in PROFILES {
            let is36 = p.etcd_image_tag.starts_with("3.6.");
            assert_eq!(is36, p.etcd_flags == EtcdFlagStyle::Etcd36, "1.{}", p.minor);
        }
    }
}

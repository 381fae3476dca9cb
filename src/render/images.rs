//! Every container image a cluster runs, in one list: what `config images list|pull`
//! print and pull and what preflight looks for in containerd. Each reference comes from the
//! same function the manifests use ([`super::kubernetes_image`], [`super::etcd::image`],
//! [`super::coredns::image`], [`super::pause_image`], [`super::flannel::images`]), so the
//! list cannot drift from what is rendered.
//!
//! Order and contents follow `kubeadm config images list` (`images.GetControlPlaneImages`):
//! kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, CoreDNS, pause,
//! etcd (local etcd only); kube-proxy and CoreDNS are left out when their addon is
//! disabled. The CNI's images come last.

use super::{RenderError, versions};
use crate::config::InitConfig;
use serde::Serialize;

/// One image and the component that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    /// `kube-apiserver`, `etcd`, `coredns`, `pause`, `flannel`, `flannel-cni-plugin`, ...
    pub component: String,
    /// The full reference, `<repository>/<name>:<tag>`.
    pub image: String,
}

/// The CNI kubeboot's `init` installs for `cfg` when nothing else says: flannel when a pod
/// CIDR is set (the `cni` phase), else none.
pub fn default_cni(cfg: &InitConfig) -> Option<&'static str> {
    (!cfg.pod_subnets.is_empty()).then_some("flannel")
}

/// Every image the cluster needs at `cfg`'s version and settings, plus the images of
/// `cni` (`Some("flannel")`; any other name, and `None`, needs no image).
pub fn list(cfg: &InitConfig, cni: Option<&str>) -> Result<Vec<ImageRef>, RenderError> {
    let profile = versions::profile(cfg.kubernetes_version)?;
    let mut out = Vec::new();
    let mut push = |component: &str, image: String| {
        out.push(ImageRef {
            component: component.to_string(),
            image,
        })
    };
    for c in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        push(c, super::kubernetes_image(cfg, c));
    }
    if !cfg.cluster.proxy.disabled {
        push("kube-proxy", super::kubernetes_image(cfg, "kube-proxy"));
    }
    if !cfg.cluster.dns.disabled {
        push("coredns", super::coredns::image(cfg)?);
    }
    push(
        "pause",
        super::pause_image(super::image_repository(cfg), profile),
    );
    if cfg.local_etcd().is_some() {
        push("etcd", super::etcd::image(cfg)?);
    }
    if cni == Some("flannel") {
        for (component, image) in super::flannel::images() {
            push(component, image);
        }
    }
    Ok(out)
}

/// The images a node of this kind runs: every one on a control plane; on a worker only
/// the pause image, kube-proxy and the CNI's (the DaemonSets that run on every node).
pub fn for_node(
    cfg: &InitConfig,
    cni: Option<&str>,
    control_plane: bool,
) -> Result<Vec<ImageRef>, RenderError> {
    let all = list(cfg, cni)?;
    if control_plane {
        return Ok(all);
    }
    let worker = |c: &str| matches!(c, "pause" | "kube-proxy") || c.starts_with("flannel");
    Ok(all.into_iter().filter(|i| worker(&i.component)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{InitOverrides, LocalFacts};

    struct Facts;
    impl LocalFacts for Facts {
        fn hostname(&self) -> Option<String> {
            Some("node".into())
        }
        fn default_address(&self) -> Option<std::net::IpAddr> {
            Some([10, 0, 0, 1].into())
        }
    }

    fn cfg(o: InitOverrides) -> InitConfig {
        InitConfig::load(None, &o, &Facts).unwrap()
    }

    fn images(l: &[ImageRef]) -> Vec<&str> {
        l.iter().map(|i| i.image.as_str()).collect()
    }

    #[test]
    fn default_repository_matches_kubeadm_for_1_34() {
        let c = cfg(InitOverrides {
            kubernetes_version: Some("v1.34.2".into()),
            ..Default::default()
        });
        assert_eq!(
            images(&list(&c, None).unwrap()),
            [
                "registry.k8s.io/kube-apiserver:v1.34.2",
                "registry.k8s.io/kube-controller-manager:v1.34.2",
                "registry.k8s.io/kube-scheduler:v1.34.2",
                "registry.k8s.io/kube-proxy:v1.34.2",
                "registry.k8s.io/coredns/coredns:v1.12.1",
                "registry.k8s.io/pause:3.10.1",
                "registry.k8s.io/etcd:3.6.5-0",
            ]
        );
    }

    #[test]
    fn a_custom_repository_flattens_coredns_and_flannel_stays_on_ghcr() {
        let c = cfg(InitOverrides {
            kubernetes_version: Some("v1.33.1".into()),
            image_repository: Some("kubeboot.local/lab".into()),
            ..Default::default()
        });
        let l = list(&c, Some("flannel")).unwrap();
        assert_eq!(
            images(&l),
            [
                "kubeboot.local/lab/kube-apiserver:v1.33.1",
                "kubeboot.local/lab/kube-controller-manager:v1.33.1",
                "kubeboot.local/lab/kube-scheduler:v1.33.1",
                "kubeboot.local/lab/kube-proxy:v1.33.1",
                "kubeboot.local/lab/coredns:v1.12.0",
                "kubeboot.local/lab/pause:3.10",
                "kubeboot.local/lab/etcd:3.5.24-0",
                "ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3",
                "ghcr.io/flannel-io/flannel:v0.28.9",
            ]
        );
        // Any other CNI name (bridge, none) needs no image.
        assert_eq!(list(&c, Some("bridge")).unwrap().len(), 7);
        // A worker runs pause, kube-proxy and the CNI only.
        let w = for_node(&c, Some("flannel"), false).unwrap();
        let comps: Vec<&str> = w.iter().map(|i| i.component.as_str()).collect();
        assert_eq!(
            comps,
            ["kube-proxy", "pause", "flannel-cni-plugin", "flannel"]
        );
    }

    #[test]
    fn dns_and_etcd_overrides_and_disabled_addons_are_honoured() {
        let mut c = cfg(InitOverrides::default());
        c.cluster.dns.image_repository = Some("dns.local/x".into());
        c.cluster.dns.image_tag = Some("v9".into());
        let e = c.cluster.etcd.local.as_mut().unwrap();
        e.image_repository = Some("etcd.local".into());
        e.image_tag = Some("3.9.9-0".into());
        let l = list(&c, None).unwrap();
        assert!(images(&l).contains(&"dns.local/x/coredns:v9"), "{l:?}");
        assert!(images(&l).contains(&"etcd.local/etcd:3.9.9-0"), "{l:?}");
        c.cluster.proxy.disabled = true;
        c.cluster.dns.disabled = true;
        let comps: Vec<String> = list(&c, None)
            .unwrap()
            .into_iter()
            .map(|i| i.component)
            .collect();
        assert!(!comps.iter().any(|c| c == "kube-proxy" || c == "coredns"));
    }

    /// Every `image:` in every rendered static Pod, kubelet/containerd file and addon, for
    /// every supported minor, is in the list (and so is pulled and checked by preflight).
    #[test]
    fn every_rendered_image_is_listed() {
        let host = crate::host::LocalHost::with_root(std::env::temp_dir().join("kubeboot-none"));
        for minor in crate::config::version::SUPPORTED_MINORS {
            for repo in [None, Some("mirror.local/k8s")] {
                let c = cfg(InitOverrides {
                    kubernetes_version: Some(format!("v1.{minor}.0")),
                    pod_network_cidr: Some("10.244.0.0/16".into()),
                    image_repository: repo.map(String::from),
                    ..Default::default()
                });
                let l = list(&c, default_cni(&c)).unwrap();
                let listed = images(&l);
                let files = super::super::render_all(&c, &host, &Default::default()).unwrap();
                let mut seen = 0;
                for f in &files {
                    for line in f.text().lines() {
                        let t = line.trim_start().trim_start_matches("- ");
                        let Some(img) = t.strip_prefix("image:") else {
                            continue;
                        };
                        let img = img.trim().trim_matches(['"', '\'']);
                        assert!(
                            listed.contains(&img),
                            "1.{minor}: {} uses {img}, not in {listed:?}",
                            f.path.display()
                        );
                        seen += 1;
                    }
                    // The sandbox image in containerd's config and the kubelet's flags.
                    for key in [
                        "sandbox_image = ",
                        "sandbox = ",
                        "--pod-infra-container-image=",
                    ] {
                        if let Some(rest) = f.text().split(key).nth(1) {
                            let img: String = rest
                                .trim_start_matches(['"', '\''])
                                .chars()
                                .take_while(|c| !matches!(c, '"' | '\'' | '\n' | ' '))
                                .collect();
                            assert!(listed.contains(&img.as_str()), "1.{minor}: {img}");
                            seen += 1;
                        }
                    }
                }
                // apiserver, controller-manager, scheduler, etcd, kube-proxy, coredns,
                // flannel (3 containers) and the sandbox image.
                assert!(seen >= 10, "1.{minor}: only {seen} images found");
            }
        }
    }
}

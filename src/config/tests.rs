use super::*;
use std::net::Ipv4Addr;

struct Facts;
impl LocalFacts for Facts {
    fn hostname(&self) -> Option<String> {
        Some("CP-1".into())
    }
    fn default_address(&self) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)))
    }
}

fn load_text(text: &str, o: &InitOverrides) -> Result<InitConfig, ConfigError> {
    let files = ConfigFiles::parse(Path::new("kubeadm.yaml"), text)?;
    resolve_init(files, o, &Facts)
}

#[test]
fn defaults_match_kubeadm() {
    let c = load_text("", &InitOverrides::default()).unwrap();
    assert_eq!(c.node_name, "cp-1");
    assert_eq!(c.advertise_address.to_string(), "192.0.2.10");
    assert_eq!(c.bind_port, 6443);
    assert_eq!(c.api_server_service_ip().to_string(), "10.96.0.1");
    assert_eq!(c.dns_service_ip().to_string(), "10.96.0.10");
    assert_eq!(c.dns_domain, "cluster.local");
    assert_eq!(c.cluster_name, "kubernetes");
    assert_eq!(c.cert_dir, PathBuf::from("/etc/kubernetes/pki"));
    assert_eq!(c.encryption_algorithm, EncryptionAlgorithm::EcdsaP256);
    assert_eq!(c.cluster_url(), "https://192.0.2.10:6443");
    assert_eq!(c.cert_validity, DEFAULT_CERT_VALIDITY);
    assert!(c.pod_subnets.is_empty());
    let tok = &c.init.bootstrap_tokens[0];
    assert_eq!(tok.ttl.unwrap().to_string(), "24h0m0s");
    assert_eq!(tok.usages, vec!["signing", "authentication"]);
    assert_eq!(
        c.init.node_registration.taints.as_ref().unwrap()[0].key,
        "node-role.kubernetes.io/control-plane"
    );
}

const FULL: &str = r#"# a kubeadm config
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.0.0.5
  bindPort: 7443
nodeRegistration:
  name: master-a
  kubeletExtraArgs:
    - name: node-ip
      value: 10.0.0.5
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.4
controlPlaneEndpoint: cp.example.com
clusterName: lab
encryptionAlgorithm: RSA-2048
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.100.0.0/16
apiServer:
  certSANs: [lb.example.com, 203.0.113.7]
  extraArgs:
    - name: audit-log-maxage
      value: "7"
certificateValidityPeriod: 8760h0m0s
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
"#;

#[test]
fn reads_kubeadm_files_and_flags_win() {
    let c = load_text(FULL, &InitOverrides::default()).unwrap();
    assert_eq!(c.node_name, "master-a");
    assert_eq!(c.bind_port, 7443);
    assert_eq!(c.kubernetes_version.minor, 31);
    assert_eq!(c.cluster_url(), "https://cp.example.com:7443");
    assert_eq!(c.encryption_algorithm, EncryptionAlgorithm::Rsa2048);
    assert_eq!(c.pod_subnets[0].to_string(), "10.244.0.0/16");
    assert_eq!(c.cluster.api_server.cert_sans.len(), 2);
    assert_eq!(c.kubelet.as_ref().unwrap()["maxPods"], 50.0);

    let o = InitOverrides {
        advertise_address: Some("10.0.0.9".into()),
        node_name: Some("other".into()),
        cert_extra_sans: vec!["extra.example.com".into()],
        ..Default::default()
    };
    let c = load_text(FULL, &o).unwrap();
    assert_eq!(c.advertise_address.to_string(), "10.0.0.9");
    assert_eq!(c.node_name, "other");
    assert_eq!(c.cluster.api_server.cert_sans.len(), 3);
}

fn err(text: &str, o: &InitOverrides) -> String {
    load_text(text, o).unwrap_err().to_string()
}

#[test]
fn unknown_field_names_file_line_and_field() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnett: 10.244.0.0/16\n";
    let e = err(text, &InitOverrides::default());
    assert!(e.starts_with("kubeadm.yaml:4:"), "{e}");
    assert!(e.contains("podSubnett"), "{e}");
}

#[test]
fn wrong_type_names_line() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: many\n";
    let e = err(text, &InitOverrides::default());
    assert!(e.starts_with("kubeadm.yaml:4:"), "{e}");
}

#[test]
fn malformed_yaml_is_located() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: [\n";
    let e = err(text, &InitOverrides::default());
    assert!(e.starts_with("kubeadm.yaml:"), "{e}");
}

#[test]
fn unknown_kind_is_an_error() {
    let e = err(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n",
        &InitOverrides::default(),
    );
    assert!(e.contains("kubeadm.yaml:1") && e.contains("v1beta3"), "{e}");
}

#[test]
fn semantic_errors_name_line_or_flag() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  serviceSubnet: 10.96.0.0/12\n  podSubnet: 10.96.128.0/17\n";
    let e = err(text, &InitOverrides::default());
    assert!(e.contains("kubeadm.yaml:5: networking.podSubnet"), "{e}");
    assert!(e.contains("overlaps"), "{e}");

    let o = InitOverrides {
        pod_network_cidr: Some("10.244.0/16".into()),
        advertise_address: Some("not-an-ip".into()),
        node_name: Some("Bad_Name".into()),
        ..Default::default()
    };
    let e = err("", &o);
    assert!(
        e.contains("flag --pod-network-cidr: networking.podSubnet"),
        "{e}"
    );
    assert!(e.contains("flag --apiserver-advertise-address"), "{e}");
    assert!(e.contains("\"not-an-ip\" is not an IP address"), "{e}");
    assert!(
        e.contains("flag --node-name") && e.contains("Bad_Name"),
        "{e}"
    );
}

#[test]
fn unsupported_algorithm_and_version() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: DSA-1024\nkubernetesVersion: v1.29.0\n";
    let e = err(text, &InitOverrides::default());
    assert!(e.contains("kubeadm.yaml:3: encryptionAlgorithm"), "{e}");
    assert!(
        e.contains("RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384"),
        "{e}"
    );
    assert!(e.contains("kubeadm.yaml:4: kubernetesVersion"), "{e}");
}

#[test]
fn extra_args_and_volumes_are_checked() {
    let text = r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
apiServer:
  extraArgs:
    - name: --v
      value: "2"
  extraVolumes:
    - name: audit
      hostPath: relative/dir
      mountPath: /var/log/audit
"#;
    let e = err(text, &InitOverrides::default());
    assert!(e.contains("kubeadm.yaml:4: apiServer.extraArgs"), "{e}");
    assert!(e.contains("\"--v\" is not a flag name"), "{e}");
    assert!(
        e.contains("apiServer.extraVolumes") && e.contains("relative/dir"),
        "{e}"
    );
}

#[test]
fn token_debug_is_redacted_in_config() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n  - token: abcdef.0123456789abcdef\n";
    let c = load_text(text, &InitOverrides::default()).unwrap();
    let dbg = format!("{:?}", c.init);
    assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
}

/// `--discovery-token` and `--tls-bootstrap-token` each win over `--token` for their use.
#[test]
fn join_discovery_and_tls_bootstrap_tokens() {
    let o = join::JoinOverrides {
        endpoint: Some("10.0.0.1:6443".into()),
        token: Some("aaaaaa.aaaaaaaaaaaaaaaa".into()),
        discovery_token: Some("bbbbbb.bbbbbbbbbbbbbbbb".into()),
        tls_bootstrap_token: Some("cccccc.cccccccccccccccc".into()),
        unsafe_skip_ca_verification: true,
        ..Default::default()
    };
    let cfg = join::JoinConfig::load(None, &o, &Facts).unwrap();
    match &cfg.discovery {
        join::Discovery::Token { token, .. } => assert_eq!(token.id(), "bbbbbb"),
        d => panic!("{d:?}"),
    }
    let tls = cfg.join.discovery.tls_bootstrap_token.as_ref().unwrap();
    assert_eq!(tls.id(), "cccccc");
    // --discovery-token alone is enough for discovery; a bad one names its flag.
    let o = join::JoinOverrides {
        endpoint: Some("10.0.0.1:6443".into()),
        discovery_token: Some("bbbbbb.bbbbbbbbbbbbbbbb".into()),
        unsafe_skip_ca_verification: true,
        ..Default::default()
    };
    join::JoinConfig::load(None, &o, &Facts).unwrap();
    let o = join::JoinOverrides {
        tls_bootstrap_token: Some("nope".into()),
        ..o
    };
    let err = join::JoinConfig::load(None, &o, &Facts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--tls-bootstrap-token") && err.contains("discovery.tlsBootstrapToken"),
        "{err}"
    );
}

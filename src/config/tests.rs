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

/// A certificate key (64 hex digits) and a bootstrap token, to look for in `Debug` output.
const CERT_KEY: &str = "4f9c2d7e1b8a6035c4e2f1a9d8b7c6e54f9c2d7e1b8a6035c4e2f1a9d8b7c6e5";
const TOKEN: &str = "abcdef.0123456789abcdef";
const TOKEN_SECRET: &str = "0123456789abcdef";

fn assert_redacted(what: &str, dbg: &str) {
    assert!(
        !dbg.contains(CERT_KEY),
        "{what} shows the certificate key: {dbg}"
    );
    assert!(
        !dbg.contains(TOKEN_SECRET),
        "{what} shows the token secret: {dbg}"
    );
    assert!(dbg.contains("<redacted>"), "{what}: {dbg}");
}

/// `certificateKey` of an InitConfiguration and of a JoinConfiguration's controlPlane, the
/// init flag `--token`, and every secret of `join`'s flags: `Debug` (plain and `{:#?}`)
/// shows none of them, through every struct that holds them.
#[test]
fn debug_of_configs_and_overrides_redacts_secrets() {
    let text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\ncertificateKey: {CERT_KEY}\nbootstrapTokens:\n  - token: {TOKEN}\n"
    );
    let o = InitOverrides {
        token: Some(TOKEN.into()),
        ..Default::default()
    };
    assert_redacted("InitOverrides", &format!("{o:?}"));
    let c = load_text(&text, &o).unwrap();
    assert_eq!(
        c.init.certificate_key.as_ref().map(|k| k.expose()),
        Some(CERT_KEY)
    );
    assert_redacted("InitConfiguration", &format!("{:?}", c.init));
    assert_redacted("InitConfig", &format!("{c:#?}"));

    let o = join::JoinOverrides {
        endpoint: Some("10.0.0.1:6443".into()),
        token: Some(TOKEN.into()),
        discovery_token: Some(TOKEN.into()),
        tls_bootstrap_token: Some(TOKEN.into()),
        unsafe_skip_ca_verification: true,
        control_plane: true,
        certificate_key: Some(CERT_KEY.into()),
        ..Default::default()
    };
    assert_redacted("JoinOverrides", &format!("{o:?}"));
    let cfg = join::JoinConfig::load(None, &o, &Facts).unwrap();
    let cp = cfg.control_plane.as_ref().unwrap();
    assert_eq!(cp.certificate_key.as_ref().unwrap().expose(), CERT_KEY);
    assert_redacted("ControlPlaneJoin", &format!("{cp:?}"));
    let jcp = cfg.join.control_plane.as_ref().unwrap();
    assert_redacted("JoinControlPlane", &format!("{jcp:?}"));
    assert_redacted("JoinConfig", &format!("{cfg:#?}"));

    // The same through a JoinConfiguration file.
    let text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ncontrolPlane:\n  certificateKey: {CERT_KEY}\ndiscovery:\n  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: 10.0.0.1:6443\n    unsafeSkipCAVerification: true\n"
    );
    let cfg = join::JoinConfig::parse(
        Path::new("join.yaml"),
        &text,
        &join::JoinOverrides::default(),
        &Facts,
    )
    .unwrap();
    assert_redacted("JoinConfig from a file", &format!("{cfg:?}"));
}

/// `Secret` is `#[serde(transparent)]`: a kubeadm config with `certificateKey` and
/// `bootstrapTokens` reads and renders (as `config print` renders) byte for byte as
/// before, and the values survive.
#[test]
fn configs_with_secrets_round_trip_unchanged() {
    let init = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
bootstrapTokens:
- groups:
  - system:bootstrappers:kubeadm:default-node-token
  token: {TOKEN}
  ttl: 24h0m0s
  usages:
  - signing
  - authentication
certificateKey: {CERT_KEY}
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: \"192.0.2.10\"
  bindPort: 6443
nodeRegistration:
  name: cp-1
"
    );
    let parsed: v1beta4::InitConfiguration = yaml_input::from_str(&init).unwrap();
    assert_eq!(parsed.certificate_key.as_ref().unwrap().expose(), CERT_KEY);
    assert_eq!(
        parsed.bootstrap_tokens[0]
            .token
            .as_ref()
            .unwrap()
            .to_string(),
        TOKEN
    );
    assert_eq!(crate::render::yaml::to_yaml(&parsed).unwrap(), init);

    let join = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
controlPlane:
  certificateKey: {CERT_KEY}
  localAPIEndpoint:
    bindPort: 6443
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.0.1:6443
    token: {TOKEN}
    unsafeSkipCAVerification: true
  tlsBootstrapToken: {TOKEN}
kind: JoinConfiguration
nodeRegistration: {{}}
"
    );
    let parsed: v1beta4::JoinConfiguration = yaml_input::from_str(&join).unwrap();
    assert_eq!(
        parsed
            .control_plane
            .as_ref()
            .and_then(|c| c.certificate_key.as_ref())
            .unwrap()
            .expose(),
        CERT_KEY
    );
    assert_eq!(crate::render::yaml::to_yaml(&parsed).unwrap(), join);
    // And the whole loaded config renders its certificateKey as the plain string.
    let c = load_text(&init, &InitOverrides::default()).unwrap();
    let out = crate::render::yaml::to_yaml(&c.init).unwrap();
    assert!(
        out.contains(&format!("certificateKey: {CERT_KEY}\n")),
        "{out}"
    );
}

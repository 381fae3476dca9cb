use super::*;

#[test]
fn host_port_brackets_ipv6() {
    assert_eq!(join_host_port("10.0.0.1", 6443), "10.0.0.1:6443");
    assert_eq!(join_host_port("fd00::1", 2379), "[fd00::1]:2379");
}

#[test]
fn pause_image_follows_the_table() {
    let p = versions::profile(crate::config::version::KubeVersion {
        minor: 33,
        patch: 1,
    })
    .unwrap();
    assert_eq!(pause_image("mirror.local", p), "mirror.local/pause:3.10");
}

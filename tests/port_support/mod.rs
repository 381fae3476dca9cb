//! Free ports on 127.0.0.1 for the servers a test starts (etcd, kube-apiserver, sshd).
//!
//! A port is free when asked for and taken later by the server, so two requests must not
//! get the same one: the kernel may hand a just-released port out again, and a test whose
//! API server got etcd's port then probed etcd ("address already in use", then
//! "UnknownIssuer"). Ports handed out once in this test process are never handed out again.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port on 127.0.0.1 that nothing listens on and no earlier call returned.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

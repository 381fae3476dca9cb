//! kubeadm-style workflows as ordered lists of named phases. A phase takes a context
//! (configuration and host) and reports what it did; `init` runs them in order and
//! `init phase <name>` runs one alone.

pub mod init;
pub mod join;
pub mod join_cp;
pub mod join_data;
pub mod kubelet_csr;
pub mod preflight;
pub mod replacing;
pub mod reset;

/// The output channel's progress line and host label, where the phases have always
/// found them.
pub use crate::output::{HostLabel, label_host, report};

#[cfg(test)]
mod tests {
    /// The workflows run exactly the pinned phases, in that order.
    #[test]
    fn workflows_follow_the_pinned_order() {
        let top = |names: Vec<String>| -> Vec<String> {
            names.into_iter().filter(|n| !n.contains('/')).collect()
        };
        assert_eq!(
            top(super::init::workflow::workflow().names()),
            super::init::PHASES
        );
        assert_eq!(top(super::join::workflow().names()), super::join::PHASES);
    }

    /// The phase order of init and join, pinned before the phases moved onto the
    /// workflow runner: the runner must keep kubeadm's order exactly.
    #[test]
    fn phase_order_is_pinned() {
        assert_eq!(
            super::init::PHASES,
            [
                "preflight",
                "certs",
                "kubeconfig",
                "etcd",
                "control-plane",
                "kubelet-start",
                "wait-control-plane",
                "upload-config",
                "upload-certs",
                "mark-control-plane",
                "bootstrap-token",
                "kubelet-finalize",
                "addon",
                "cni",
                "show-join-command",
            ]
        );
        assert_eq!(
            super::join::PHASES,
            [
                "preflight",
                "control-plane-prepare",
                "check-etcd",
                "kubelet-start",
                "etcd-join",
                "kubelet-wait-bootstrap",
                "wait-control-plane",
                "control-plane-join",
            ]
        );
    }
}

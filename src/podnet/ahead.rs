//! Workers' Nodes registered before their kubelets start, for the `bridge` pod network.
//!
//! A Node registered by its kubelet gets its podCIDR from the controller manager just
//! after the kubelet's first report, and the pod network can be written for it only
//! then: the kubelet's first reports find no network. A Node registered ahead has its
//! podCIDR, and so its conflist and routes, before the kubelet starts. Kubelets since
//! v1.27 report quickly until their Node is Ready, which is then as soon as the kubelet
//! is up; the v1.20 kubelet reports once early (when it sees its podCIDR, before its
//! own checks of the runtime have passed) and then every 10 s, so its Node is Ready at
//! its second report either way. The kubelet takes the Node over as a re-registration
//! (it adds its labels, addresses and status).
//!
//! The Node says room for no Pods until its kubelet reports its own capacity, so nothing
//! is scheduled there before. (A taint would not hold: the node lifecycle controller
//! removes the not-ready taint from a Node that has no conditions yet.)

use crate::apiclient::{ApiClient, ApiError};
use serde_json::{Value, json};

/// The Node object registered ahead for `name`. Its status (a Node's status can be set
/// when it is created) says room for no Pods until the kubelet reports its own: the
/// v1.20 kubelet's re-registration also assumes the existing Node has a capacity and
/// panics on one without (a nil map in `reconcileHugePageResource`, fixed in v1.21).
pub fn node_object(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"capacity": {"pods": "0"}, "allocatable": {"pods": "0"}},
    })
}

/// Registers the Node `name` ahead of its kubelet. Returns whether it was created here
/// (`false`: a Node of that name exists, e.g. the host joined before, and is left as it
/// is).
pub fn register(admin: &ApiClient, name: &str) -> Result<bool, ApiError> {
    match admin.create("/api/v1/nodes", &node_object(name)) {
        Ok(_) => Ok(true),
        Err(ApiError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Undoes [`register`] after a failed join: deletes the Node if its kubelet never
/// reported, so no Node without a kubelet is left behind. Returns whether it was
/// deleted (`false`: gone already, or its kubelet reported and it stays).
pub fn unregister(admin: &ApiClient, name: &str) -> Result<bool, ApiError> {
    let path = format!("/api/v1/nodes/{name}");
    let Some(node) = admin.get_opt(&path)? else {
        return Ok(false);
    };
    if kubelet_reported(&node) {
        return Ok(false);
    }
    admin.delete(&path)
}

/// Whether a Node's kubelet has reported its status (a Node registered ahead has none).
pub fn kubelet_reported(node: &Value) -> bool {
    node["status"]["nodeInfo"]["kubeletVersion"]
        .as_str()
        .is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_has_room_for_no_pods() {
        let n = node_object("w1");
        assert_eq!(n["metadata"]["name"], "w1");
        assert!(n.get("spec").is_none());
        assert_eq!(
            n["metadata"]["labels"],
            json!({"kubernetes.io/hostname": "w1"})
        );
        // Room for no Pods until the kubelet reports, and no kubelet version yet.
        assert_eq!(n["status"]["capacity"], json!({"pods": "0"}));
        assert_eq!(n["status"]["allocatable"], json!({"pods": "0"}));
        assert!(!kubelet_reported(&n));
    }

    #[test]
    fn a_kubelet_version_in_the_status_means_the_kubelet_reported() {
        let mut n = node_object("w1");
        n["status"] = json!({"nodeInfo": {"kubeletVersion": ""}});
        assert!(!kubelet_reported(&n));
        n["status"]["nodeInfo"]["kubeletVersion"] = json!("v1.20.2");
        assert!(kubelet_reported(&n));
    }
}

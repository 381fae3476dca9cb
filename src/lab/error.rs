//! The lab's error type. Every variant names the thing that failed (node, path, command)
//! and, where there is one, what the user should do about it, because lab failures happen
//! on a user's machine mid-setup and "operation failed" helps nobody.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

/// Everything that can go wrong while building, starting, inspecting or removing a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab creates network namespaces, mounts and cgroups: only root may.
    #[error(
        "kubeboot lab must run as root: it creates network namespaces, overlay mounts and cgroups (try: sudo kubeboot lab ...)"
    )]
    NotRoot,

    /// A host program the lab drives is missing.
    #[error(
        "`{tool}` is not installed: install the Debian package `{package}` (apt-get install -y {package})"
    )]
    MissingTool {
        /// The program looked up in PATH.
        tool: &'static str,
        /// The Debian package that ships it.
        package: &'static str,
    },

    /// The lab name cannot be used to derive host, interface and namespace names.
    #[error("invalid lab name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: String,
    },

    /// The subnet cannot hold the bridge and the nodes.
    #[error("invalid subnet {subnet}: {reason}")]
    InvalidSubnet {
        /// The subnet given.
        subnet: String,
        /// Why it was refused.
        reason: String,
    },

    /// Another interface, route or lab already uses (part of) the subnet.
    #[error("subnet {subnet} is already in use ({user}); pick another one with --subnet")]
    SubnetInUse {
        /// The subnet asked for.
        subnet: Ipv4Net,
        /// Who uses it: an interface, a route or another lab.
        user: String,
    },

    /// A lab of that name has state already.
    #[error(
        "lab {name:?} already exists (state in {}); run `kubeboot lab down --name {name}` first",
        state.display()
    )]
    AlreadyExists {
        /// The lab name.
        name: String,
        /// Its state directory.
        state: PathBuf,
    },

    /// No lab of that name exists.
    #[error("no lab named {name:?} (no state in {}); start one with `kubeboot lab up --name {name}`", state.display())]
    NotFound {
        /// The lab name.
        name: String,
        /// Where its state would be.
        state: PathBuf,
    },

    /// A node did not stop.
    #[error("node {node} did not stop: {what}")]
    Stuck {
        /// The node's hostname.
        node: String,
        /// What is still there, and what to do.
        what: String,
    },

    /// A node name given to `lab ssh` matches no node.
    #[error("lab {lab:?} has no node {node:?}; its nodes are: {known}")]
    UnknownNode {
        /// The lab name.
        lab: String,
        /// What the user typed.
        node: String,
        /// The nodes the lab has.
        known: String,
    },

    /// A helper program exited non-zero.
    #[error("`{command}` failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    CommandFailed {
        /// The command line, for copy and paste.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },

    /// A helper program did not finish in time and was killed.
    #[error("`{command}` did not finish within {secs} s and was stopped")]
    CommandTimeout {
        /// The command line.
        command: String,
        /// The time it was given.
        secs: u64,
    },

    /// A helper program could not be started at all.
    #[error("could not run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why exec failed.
        source: std::io::Error,
    },

    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// No Debian mirror could be found for debootstrap.
    #[error(
        "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/; pass --mirror URL or set KUBEBOOT_LAB_MIRROR"
    )]
    NoMirror,

    /// Building the base image failed.
    #[error("building the lab base image failed: {reason}\nlog: {}\n--- last lines ---\n{tail}", log.display())]
    BaseBuild {
        /// What failed.
        reason: String,
        /// The build log.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },

    /// The extracted base image is the lower layer of running nodes.
    #[error("the base image {} is in use by running lab nodes; run `kubeboot lab down` for those labs first", path.display())]
    BaseInUse {
        /// The extracted base image.
        path: PathBuf,
    },

    /// A path cannot be used in an overlay mount option or an nspawn bind.
    #[error("path {} contains ',' or ':', which overlayfs and systemd-nspawn options cannot carry; use another directory", path.display())]
    UnusablePath {
        /// The offending path.
        path: PathBuf,
    },

    /// A node did not come up.
    #[error(
        "node {node} ({address}) is not ready: {reason}\nconsole log: {}\n--- last lines of the console log ---\n{tail}",
        log.display()
    )]
    NodeNotReady {
        /// The node hostname.
        node: String,
        /// Its address.
        address: Ipv4Addr,
        /// What was seen last.
        reason: String,
        /// Its console log.
        log: PathBuf,
        /// The last lines of the console log.
        tail: String,
    },

    /// Several nodes did not come up.
    #[error("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    NodesNotReady {
        /// One error per node.
        errors: Vec<LabError>,
    },

    /// The state file of a lab cannot be read.
    #[error("lab state file {} is unreadable: {reason}", path.display())]
    BadState {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },

    /// `lab down` could not remove everything.
    #[error("lab {name:?} was not removed completely; still left:\n  {}\nfix the cause and run `kubeboot lab down --name {name}` again", left.join("\n  "))]
    Leftovers {
        /// The lab name.
        name: String,
        /// One line per resource that is still there.
        left: Vec<String>,
    },
}

impl LabError {
    /// Points console-log paths at the copies kept after a failed `up` removed the node
    /// directories, so the message names a file that exists.
    pub(crate) fn with_moved_logs(self, moved: &[(PathBuf, PathBuf)]) -> Self {
        match self {
            LabError::NodeNotReady {
                node,
                address,
                reason,
                log,
                tail,
            } => LabError::NodeNotReady {
                log: moved
                    .iter()
                    .find(|(from, _)| *from == log)
                    .map(|(_, to)| to.clone())
                    .unwrap_or(log),
                node,
                address,
                reason,
                tail,
            },
            LabError::NodesNotReady { errors } => LabError::NodesNotReady {
                errors: errors
                    .into_iter()
                    .map(|e| e.with_moved_logs(moved))
                    .collect(),
            },
            other => other,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for the lab module.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

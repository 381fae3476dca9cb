//! `kubeboot lab ssh`: log in to a node with the lab key and known_hosts, the way any
//! SSH client (and kubeboot's own SshHost) would, with strict host key checking.

use std::path::Path;
use std::process::Command;

use super::command::describe;
use super::error::{LabError, Result};
use super::state::{LabState, NodeState};

/// An ssh command line for a lab node: lab key only, strict host key checking against the
/// lab's known_hosts. `batch` adds what unattended use needs (no prompts, no user config,
/// short connect timeout, quiet).
pub fn ssh_command(key: &Path, known_hosts: &Path, address: &str, batch: bool) -> Command {
    let mut cmd = Command::new("ssh");
    if batch {
        cmd.args(["-F", "/dev/null"]);
    }
    cmd.arg("-i")
        .arg(key)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
        ])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()));
    if batch {
        cmd.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=3",
            "-o",
            "LogLevel=ERROR",
        ]);
    }
    cmd.arg(format!("root@{address}"));
    cmd
}

/// Finds a node by hostname (`kubeboot-node2`), short name (`node2`), index (`2`) or address.
pub fn find_node<'a>(state: &'a LabState, wanted: &str) -> Result<&'a NodeState> {
    state
        .nodes
        .iter()
        .find(|n| {
            n.hostname == wanted
                || n.hostname == format!("{}-{wanted}", state.name)
                || n.index.to_string() == wanted
                || n.address.to_string() == wanted
        })
        .ok_or_else(|| LabError::UnknownNode {
            lab: state.name.clone(),
            node: wanted.to_string(),
            known: state
                .nodes
                .iter()
                .map(|n| format!("{} ({})", n.hostname, n.address))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The full command for `lab ssh`, optionally running `remote` on the node.
pub fn command_for(state_dir: &Path, node: &NodeState, remote: &[String]) -> Command {
    let mut cmd = ssh_command(
        &state_dir.join("id_ed25519"),
        &state_dir.join("known_hosts"),
        &node.address.to_string(),
        false,
    );
    if !remote.is_empty() {
        cmd.arg("--").args(remote);
    }
    cmd
}

/// Prints the command (`--print`) or replaces this process with it.
pub fn print_or_exec(mut cmd: Command, print: bool) -> Result<()> {
    if print {
        println!("{}", describe(&cmd));
        return Ok(());
    }
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    Err(LabError::Spawn {
        program: "ssh".into(),
        source: err,
    })
}

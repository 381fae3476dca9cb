//! kubeadm-style workflows as ordered lists of named phases. A phase takes a context
//! (configuration and host) and reports what it did; `init` runs them in order and
//! `init phase <name>` runs one alone.

pub mod init;
pub mod join;
pub mod preflight;
pub mod reset;

/// One line of progress, printed like kubeadm (`[certs] Generating "ca" ...`).
pub fn report(phase: &str, message: &str) {
    for line in message.lines() {
        println!("[{phase}] {line}");
    }
}

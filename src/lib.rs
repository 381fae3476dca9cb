//! kubeboot: bootstrap Kubernetes clusters the way kubeadm does, on one node or over SSH.
//!
//! The binary (`src/main.rs`) is a thin shell around this library so that integration
//! tests and benchmarks drive the same code paths as users. See `ARCHITECTURE.md` for
//! where things live and which module may call which.

pub mod apiclient;
pub mod cli;
pub mod config;
pub mod copycerts;
pub mod discovery;
pub mod etcdclient;
pub mod fuzzing;
pub mod health;
pub mod host;
pub mod images;
pub mod kubeconfig;
pub mod lab;
pub mod orchestrate;
pub mod output;
pub mod parallel;
pub mod phases;
pub mod pki;
pub mod playbook;
pub mod podnet;
pub mod prepare;
pub mod render;
pub mod secret;
pub mod token;
pub mod ui;
pub mod up;
pub mod workflow;
pub mod yaml;

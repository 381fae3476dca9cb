//! `kubeboot up -f cluster.yaml`: a whole cluster from one inventory, over SSH. Prepare
//! every host in parallel, `init` the first control plane, fetch its admin.conf to this
//! workstation, join further control planes one at a time (the shared certificates copied
//! over SSH from the first, never through the API; one etcd membership change at a time),
//! then the workers in parallel, all with a fresh short-lived token that is deleted
//! afterwards. Every phase runs from here through `SshHost`; nothing is copied to
//! the nodes but the files the phases write. A re-run skips what is already done, so
//! adding a host to the file and re-running joins just that host.
//!
//! `up` is facts, then stages: `prepare` gathers each host's facts once (one round trip),
//! [`decide`] turns them and the cluster's state into decisions, and each stage below
//! picks its hosts from those decisions; `--plan` prints the same decisions and stops.

mod args;
mod decide;
mod hosts;
mod init;
mod join;
mod podnet;
mod prepared;
mod report;

pub use args::UpArgs;
pub use init::init_config;
pub use report::HostOutcome;

use crate::apiclient::ApiClient;
use crate::config::cluster::{Cluster, ClusterHost, Role};
use crate::health::HealthReport;
use crate::host::{Host, SshConfig, SshHost, WriteOptions};
use crate::kubeconfig::KubeConfig;
use crate::output::say;
use crate::playbook::HostReport;
use crate::prepare;
use anyhow::Context;
use decide::JoinDecision;
use report::{first_line, print_summary, section};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One run of `up`, handed from stage to stage.
struct Up<'a> {
    args: &'a UpArgs,
    cluster: &'a Cluster,
    ssh: &'a SshConfig,
    /// The first control plane: init runs there.
    cp: &'a ClusterHost,
    started: Instant,
    /// One row per host of the result table, filled in by the stages.
    outcomes: Vec<HostOutcome>,
    /// prepare's report per host, in inventory order, with the facts it gathered.
    reports: Vec<HostReport>,
    /// What is wrong with the cluster as a whole (the pod network), for the end.
    problems: Vec<String>,
}

impl Up<'_> {
    fn outcome(&mut self, host: &str) -> &mut HostOutcome {
        self.outcomes
            .iter_mut()
            .find(|o| o.host == host)
            .expect("every host has a row")
    }

    /// The hosts other than the first control plane, with their prepare reports.
    fn others(&self) -> impl Iterator<Item = (&ClusterHost, &HostReport)> {
        self.cluster
            .hosts
            .iter()
            .zip(&self.reports)
            .filter(|(h, _)| h.name != self.cp.name)
    }

    /// Ends the run early: the table so far, then the error.
    fn stop(&self, e: anyhow::Error) -> anyhow::Error {
        print_summary(&self.outcomes, self.started);
        e
    }
}

/// Runs `kubeboot up`: the stages in order. prepare runs in its own thread: init starts
/// once the first control plane is prepared and each join once its host is, while the
/// other hosts are still being prepared.
pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    crate::output::set_json(args.prepare.output == prepare::PrepareOutput::Json);
    let (cluster, ssh) = prepare::resolve(&args.prepare)?;
    let cp = cluster
        .hosts
        .iter()
        .find(|h| h.role == Role::ControlPlane)
        .context("the inventory has no control-plane host")?;
    let mut up = Up {
        args: &args,
        cluster: &cluster,
        ssh: &ssh,
        cp,
        started,
        outcomes: HostOutcome::table(&cluster),
        reports: Vec::new(),
        problems: Vec::new(),
    };
    if args.prepare.plan {
        stage_prepare(&mut up)?;
        let facts: Vec<_> = up
            .reports
            .iter()
            .filter_map(|r| Some((r.host.clone(), r.facts.clone()?)))
            .collect();
        let conntrack = init::conntrack_setting(&cluster, &facts);
        return stage_plan(&up, conntrack);
    }
    let out = args
        .kubeconfig_out
        .clone()
        .unwrap_or_else(|| args::default_kubeconfig_out(&cluster));
    std::thread::scope(|s| {
        section(&format!("prepare: {} hosts", cluster.hosts.len()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (pargs, pcluster, pssh) = (&args.prepare, &cluster, &ssh);
        let prep = s.spawn(move || {
            prepare::prepare_hosts_tapped(pargs, pcluster, pssh, &prepared::tap(tx))
        });
        let mut prepared = prepared::Prepared::new(rx);
        // Everything prepare found and said, then the reports in inventory order.
        let finish_prepare = |up: &mut Up, prepared: &mut prepared::Prepared| {
            while let Some(r) = prepared.next() {
                note_prepared(up, &r);
            }
            match prep.join() {
                Ok(Ok(reports)) => {
                    up.reports = reports;
                    Ok(())
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(anyhow::anyhow!("the prepare thread panicked")),
            }
        };
        let names: Vec<String> = cluster.hosts.iter().map(|h| h.name.clone()).collect();
        let cp_ready = prepared.wait_for(&cp.name, &names);
        let mut early = Vec::new();
        while cp_ready && let Some(r) = prepared.next_ready() {
            early.push(r);
        }
        let cp_ok = early.iter().any(|r| r.host == cp.name && !r.failed());
        if !cp_ok {
            for r in &early {
                note_prepared(&mut up, r);
            }
            finish_prepare(&mut up, &mut prepared)?;
            return Err(up.stop(anyhow::anyhow!(
                "up stopped after prepare: the control plane {} failed to prepare (see the summary)",
                cp.name
            )));
        }
        let conntrack = init::conntrack_setting(&cluster, &prepared.facts);
        // The control plane's row now; the others' as stage_join takes them.
        let (cp_report, early): (Vec<_>, Vec<_>) =
            early.into_iter().partition(|r| r.host == cp.name);
        cp_report.iter().for_each(|r| note_prepared(&mut up, r));
        let (admin_kc, admin, cp_host) = match stage_init(&mut up, conntrack) {
            Ok(x) => x,
            Err(e) => {
                early.iter().for_each(|r| note_prepared(&mut up, r));
                finish_prepare(&mut up, &mut prepared)?;
                return Err(up.stop(e));
            }
        };
        crate::host::LocalHost::new().write_file(
            &out,
            admin_kc.to_yaml().as_bytes(),
            WriteOptions::PRIVATE.in_dir_mode(0o700),
        )?;
        say(&format!("admin kubeconfig written to {}", out.display()));
        // The bridge pod network follows the Nodes from here on: each host gets its
        // conflist and routes once its Node has a podCIDR, while the others still join.
        let in_cluster = std::thread::scope(|s| {
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let follower = (cluster.cni.name == "bridge").then(|| {
                let (cluster, ssh, admin) = (&cluster, &ssh, &admin);
                s.spawn(move || {
                    let candidates: Vec<&ClusterHost> = cluster.hosts.iter().collect();
                    podnet::follow(cluster, ssh, admin, &candidates, done_rx, POD_NETWORK_WAIT)
                })
            });
            let joined = stage_join(
                &mut up,
                &mut prepared,
                early,
                &admin_kc,
                &admin,
                &cp_host,
                conntrack,
            );
            finish_prepare(&mut up, &mut prepared)?;
            joined?;
            anyhow::Ok(stage_pod_network(&mut up, follower, done_tx))
        })?;
        let health = stage_health(&mut up, &admin, &in_cluster);
        finish(&up, &health, &out)
    })
}

/// How long the pod network waits, after the joins, for the last Node's podCIDR.
const POD_NETWORK_WAIT: Duration = Duration::from_secs(120);

/// A host's prepare result in its row.
fn note_prepared(up: &mut Up, r: &HostReport) {
    let o = up.outcome(&r.host);
    o.prepare = if r.failed() {
        "FAILED".into()
    } else {
        format!("ok ({} changed)", r.changed())
    };
    o.seconds += r.elapsed_ms as f64 / 1000.0;
}

/// 1. Prepare every host in parallel; its facts feed every later decision (`--plan`).
fn stage_prepare(up: &mut Up) -> anyhow::Result<()> {
    section(&format!("prepare: {} hosts", up.cluster.hosts.len()));
    up.reports = prepare::prepare_hosts(&up.args.prepare, up.cluster, up.ssh)?;
    for r in up.reports.clone() {
        note_prepared(up, &r);
    }
    Ok(())
}

/// `--plan`: what init and the joins would do, from the same decisions a run takes.
fn stage_plan(up: &Up, conntrack: Option<u32>) -> anyhow::Result<()> {
    let (cluster, cp) = (up.cluster, up.cp);
    section("plan: init and join");
    // The first control plane's API server tells whether init is done; the other hosts
    // are decided from prepare's facts, as the run decides them.
    let cp_conn = hosts::connect(up.ssh, cp).ok();
    let cp_admin = cp_conn.as_ref().and_then(|x| decide::healthy_admin(x));
    let missing = cp_admin
        .as_ref()
        .map(|(_, admin)| decide::init_missing(cluster, admin))
        .unwrap_or_default();
    let init_runs = cp_admin.is_none() || !missing.is_empty();
    if cp_admin.is_some() && !missing.is_empty() {
        say(&format!(
            "{}: an earlier init stopped part of the way (the cluster lacks {}): would finish it",
            cp.name,
            missing.join(", ")
        ));
    } else if cp_admin.is_some() {
        say(&format!(
            "{}: already initialized (its API server answers with admin.conf): init would be skipped",
            cp.name
        ));
    } else {
        say(&format!(
            "{}: would run `init` (every phase) for Kubernetes {} and fetch admin.conf to {}",
            cp.name,
            cluster.kubernetes_version,
            up.args
                .kubeconfig_out
                .clone()
                .unwrap_or_else(|| args::default_kubeconfig_out(cluster))
                .display()
        ));
    }
    // What each of init's phases says it would do there (the host as it is now).
    if let (true, Some(host)) = (init_runs, &cp_conn) {
        match init::init_plan(up.args, cluster, host, cp, conntrack) {
            Ok(lines) => lines
                .lines()
                .for_each(|l| say(&format!("{}: {l}", cp.name))),
            Err(e) => say(&format!("{}: init's phases cannot say yet: {e:#}", cp.name)),
        }
    }
    let endpoint = join::join_endpoint(cluster, up.cp);
    let view = cp_admin
        .as_ref()
        .zip(cp_conn.as_ref())
        .map(|((_, a), host)| decide::ClusterView::new(a, host));
    for (h, r) in up.others() {
        let as_cp = h.role == Role::ControlPlane;
        say(&match decide::decide_join(h, Some(r), view.as_ref()) {
            JoinDecision::Joined if as_cp => {
                format!("{}: already joined as a control plane", h.name)
            }
            JoinDecision::Joined => format!("{}: already joined", h.name),
            JoinDecision::Join { .. } if as_cp => format!(
                "{}: would join as a control plane through https://{endpoint}: the shared certificates copied over SSH from {}, its own certificates and kubeconfigs, the control-plane static Pods, an etcd member (added as a learner, promoted once in sync)",
                h.name, cp.name
            ),
            JoinDecision::Join { .. } => format!(
                "{}: would join as a worker through https://{endpoint}",
                h.name
            ),
            JoinDecision::NotPrepared => format!(
                "{}: would not join: prepare could not check it (see above)",
                h.name
            ),
        });
    }
    say("(plan: nothing was changed)");
    Ok(())
}

/// 2. init on the first control plane, or finish or skip it as the cluster says.
fn stage_init(
    up: &mut Up,
    conntrack: Option<u32>,
) -> anyhow::Result<(KubeConfig, ApiClient, SshHost)> {
    let cp = up.cp;
    section(&format!("init: {}", cp.name));
    let t0 = Instant::now();
    let cp_host = hosts::connect(up.ssh, cp)?;
    match init::init_control_plane(up.args, up.cluster, &cp_host, cp, conntrack) {
        Ok((kc, admin, fresh)) => {
            let o = up.outcome(&cp.name);
            o.result = if fresh {
                "initialized".into()
            } else {
                "already initialized".into()
            };
            o.ok = true;
            o.seconds += t0.elapsed().as_secs_f64();
            Ok((kc, admin, cp_host))
        }
        Err(e) => {
            let o = up.outcome(&cp.name);
            o.result = format!("init FAILED: {}", first_line(&e));
            o.seconds += t0.elapsed().as_secs_f64();
            Err(e.context(format!(
                "up stopped at init on {} ({})",
                cp.name, cp.address
            )))
        }
    }
}

/// How a join ended, from a join thread.
enum JoinEnd {
    Ran(anyhow::Result<String>, f64),
    /// Not tried: an earlier control-plane join failed.
    Skipped,
}

/// 3. Joins, each as soon as its host is prepared: further control planes one at a time
///    (one etcd membership change at a time), workers in parallel up to --concurrency,
///    with one short-lived token made when the first host joins and deleted afterwards.
///    `early` are the hosts prepared before init ended; the rest come from `prepared`.
///    Hosts already in the cluster are left alone.
fn stage_join(
    up: &mut Up,
    prepared: &mut prepared::Prepared,
    early: Vec<HostReport>,
    admin_kc: &KubeConfig,
    admin: &ApiClient,
    cp_host: &SshHost,
    conntrack: Option<u32>,
) -> anyhow::Result<()> {
    let (cluster, args, ssh) = (up.cluster, up.args, up.ssh);
    let view = decide::ClusterView::new(admin, cp_host);
    let token = join::JoinToken::new(admin);
    let ca_hash = admin_kc
        .ca_cert()
        .context("admin.conf has no CA")?
        .spki_sha256();
    let endpoint = join::join_endpoint(cluster, up.cp);
    let first_cfg = init::init_config(cluster, up.cp, args.control_plane_timeout, conntrack)?;
    let with = join::JoinWith {
        endpoint: &endpoint,
        token: &token,
        ca_hash: &ca_hash,
        kubelet_args: &cluster.kubelet_extra_args,
        cni: &cluster.cni.name,
        admin,
    };
    let workers = cluster
        .hosts
        .iter()
        .filter(|h| h.role == Role::Worker)
        .count();
    let (cp_tx, cp_rx) = std::sync::mpsc::channel::<(&ClusterHost, bool)>();
    let (w_tx, w_rx) = std::sync::mpsc::channel::<(&ClusterHost, bool)>();
    let w_rx = std::sync::Mutex::new(w_rx);
    let (end_tx, end_rx) = std::sync::mpsc::channel::<(String, JoinEnd)>();
    std::thread::scope(|s| {
        let (with, first_cfg) = (&with, &first_cfg);
        let ends = end_tx.clone();
        s.spawn(move || {
            let mut failed = false;
            for (h, resume) in cp_rx {
                if failed {
                    // etcd's quorum may depend on the member that failed: add no more.
                    let _ = ends.send((h.name.clone(), JoinEnd::Skipped));
                    continue;
                }
                let t = Instant::now();
                let how = join::JoinAs::ControlPlane {
                    first: cp_host,
                    first_cfg,
                };
                let r = join::join_host(args, ssh, h, with, how, resume);
                failed = r.is_err();
                let _ = ends.send((h.name.clone(), JoinEnd::Ran(r, t.elapsed().as_secs_f64())));
            }
        });
        let cap = (args.prepare.concurrency as usize).clamp(1, workers.max(1));
        for _ in 0..cap {
            let (ends, w_rx) = (end_tx.clone(), &w_rx);
            s.spawn(move || {
                loop {
                    let job = w_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((h, resume)) = job else { break };
                    let t = Instant::now();
                    let r = join::join_host(args, ssh, h, with, join::JoinAs::Worker, resume);
                    let _ = ends.send((h.name.clone(), JoinEnd::Ran(r, t.elapsed().as_secs_f64())));
                }
            });
        }
        drop(end_tx);
        // Each host as prepare finishes it; the section once the first one joins.
        let mut sectioned = false;
        let mut reports = early.into_iter();
        while let Some(r) = reports.next().or_else(|| prepared.next()) {
            note_prepared(up, &r);
            let Some(h) = cluster.hosts.iter().find(|h| h.name == r.host) else {
                continue;
            };
            if h.name == up.cp.name {
                continue;
            }
            match decide::decide_join(h, Some(&r), Some(&view)) {
                JoinDecision::Joined => {
                    let o = up.outcome(&h.name);
                    o.result = "already joined".into();
                    o.ok = true;
                }
                JoinDecision::Join { resume } => {
                    if !sectioned {
                        section("join: each host once prepared (control planes one at a time)");
                        sectioned = true;
                    }
                    let _ = if h.role == Role::ControlPlane {
                        cp_tx.send((h, resume))
                    } else {
                        w_tx.send((h, resume))
                    };
                }
                JoinDecision::NotPrepared => {}
            }
        }
        drop(cp_tx);
        drop(w_tx);
        for (name, end) in end_rx {
            let o = up.outcome(&name);
            match end {
                JoinEnd::Ran(r, secs) => {
                    o.seconds += secs;
                    match r {
                        Ok(msg) => {
                            o.result = msg;
                            o.ok = true;
                        }
                        Err(e) => o.result = format!("join FAILED: {}", first_line(&e)),
                    }
                }
                JoinEnd::Skipped => {
                    o.result = "skipped: an earlier control-plane join failed".into();
                }
            }
        }
    });
    token.delete();
    Ok(())
}

/// 4. The image-free pod network: the follower started after init is told which hosts
///    are in the cluster and finishes (most hosts were synced during the joins already);
///    returns the hosts in the cluster.
fn stage_pod_network<'a>(
    up: &mut Up<'a>,
    follower: Option<std::thread::ScopedJoinHandle<'_, anyhow::Result<usize>>>,
    done: std::sync::mpsc::Sender<Vec<String>>,
) -> Vec<&'a ClusterHost> {
    let in_cluster: Vec<&ClusterHost> = up
        .cluster
        .hosts
        .iter()
        .filter(|h| up.outcomes.iter().any(|o| o.host == h.name && o.ok))
        .collect();
    let Some(follower) = follower else {
        return in_cluster;
    };
    section(&format!("pod network (bridge): {} hosts", in_cluster.len()));
    let t = Instant::now();
    let _ = done.send(in_cluster.iter().map(|h| h.name.clone()).collect());
    let r = follower
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the pod network thread panicked")));
    match r {
        Ok(n) => say(&format!(
            "pod network: {n} of {} hosts changed ({:.1}s after the joins)",
            in_cluster.len(),
            t.elapsed().as_secs_f64()
        )),
        Err(e) => {
            say(&format!("pod network FAILED: {e:#}"));
            up.problems
                .push(format!("the pod network: {}", first_line(&e)));
        }
    }
    in_cluster
}

/// 5. The cluster's health, within --wait; a host not Ready fails its row (unless there
///    is no pod network yet: `cni: none`).
fn stage_health(up: &mut Up, admin: &ApiClient, in_cluster: &[&ClusterHost]) -> HealthReport {
    let names: Vec<String> = in_cluster.iter().map(|h| h.name.clone()).collect();
    section(&format!(
        "health (waiting up to {}s)",
        up.args.wait.as_secs()
    ));
    let t = Instant::now();
    let no_cni = up.cluster.cni.name == "none";
    let health = crate::health::wait(
        admin,
        if no_cni { Duration::ZERO } else { up.args.wait },
        &names,
        crate::health::PROGRESS_EVERY,
        &mut |waited, pending| {
            if crate::output::json() {
                crate::output::emit(serde_json::json!({
                    "event": "health-wait",
                    "pending": pending,
                    "elapsedMs": waited.as_millis(),
                }));
            } else {
                say(&format!(
                    "still waiting after {:.0}s for: {}",
                    waited.as_secs_f64(),
                    pending.join("; ")
                ));
            }
        },
    );
    if crate::output::json() {
        crate::output::emit(serde_json::json!({
            "event": "health",
            "report": health,
            "elapsedMs": t.elapsed().as_millis(),
        }));
    } else {
        say(health.render_text().trim_end());
        say(&format!("({:.1}s)", t.elapsed().as_secs_f64()));
    }
    for o in up.outcomes.iter_mut() {
        if let Some(n) = health.nodes.iter().find(|n| n.name == o.host)
            && !n.ready
            && o.ok
            && !no_cni
        {
            o.ok = false;
            o.result = format!(
                "{}, but NOT Ready: {}",
                o.result,
                n.reason.as_deref().unwrap_or("unknown")
            );
        }
    }
    health
}

/// The table, then whether up succeeded and where the kubeconfig is.
fn finish(up: &Up, health: &HealthReport, out: &PathBuf) -> anyhow::Result<()> {
    print_summary(&up.outcomes, up.started);
    let failed: Vec<&str> = up
        .outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| o.host.as_str())
        .collect();
    if !failed.is_empty() || !up.problems.is_empty() {
        anyhow::bail!(
            "up finished with {} of {} hosts not in the cluster or not Ready{}{}",
            failed.len(),
            up.outcomes.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(": {}", failed.join(", "))
            },
            if up.problems.is_empty() {
                String::new()
            } else {
                format!("; {}", up.problems.join("; "))
            }
        );
    }
    let tail = if up.cluster.cni.name == "none" && !health.nodes_ready() {
        "The cluster is up; its nodes become Ready once you install a pod network (spec.cni.name is none)."
    } else if health.addons_ok() {
        "The cluster is up and healthy."
    } else {
        "The cluster is up: every node is Ready; some addons are not available (see the health report above)."
    };
    say(&format!(
        "\n{tail} kubectl --kubeconfig {} get nodes",
        out.display()
    ));
    crate::output::done(serde_json::json!({
        "command": "up",
        "kubeconfig": out,
        "nodesReady": health.nodes_ready(),
        "addonsOk": health.addons_ok(),
    }));
    Ok(())
}

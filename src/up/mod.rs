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

/// Runs `kubeboot up`: the stages in order.
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
    stage_prepare(&mut up)?;
    let conntrack = init::conntrack_setting(&cluster, &up.reports);
    if args.prepare.plan {
        return stage_plan(&up, conntrack);
    }
    if up.reports.iter().any(|r| r.host == cp.name && r.failed()) {
        return Err(up.stop(anyhow::anyhow!(
            "up stopped after prepare: the control plane {} failed to prepare (see the summary)",
            cp.name
        )));
    }
    let (admin_kc, admin, cp_host) = stage_init(&mut up, conntrack)?;
    let out = args
        .kubeconfig_out
        .clone()
        .unwrap_or_else(|| args::default_kubeconfig_out(&cluster));
    crate::host::LocalHost::new().write_file(
        &out,
        admin_kc.to_yaml().as_bytes(),
        WriteOptions::PRIVATE.in_dir_mode(0o700),
    )?;
    say(&format!("admin kubeconfig written to {}", out.display()));
    stage_join(&mut up, &admin_kc, &admin, &cp_host, conntrack)?;
    let in_cluster = stage_pod_network(&mut up, &admin);
    let health = stage_health(&mut up, &admin, &in_cluster);
    finish(&up, &health, &out)
}

/// 1. Prepare every host in parallel; its facts feed every later decision.
fn stage_prepare(up: &mut Up) -> anyhow::Result<()> {
    section(&format!("prepare: {} hosts", up.cluster.hosts.len()));
    up.reports = prepare::prepare_hosts(&up.args.prepare, up.cluster, up.ssh)?;
    for (o, r) in up.outcomes.iter_mut().zip(&up.reports) {
        o.prepare = if r.failed() {
            "FAILED".into()
        } else {
            format!("ok ({} changed)", r.changed())
        };
        o.seconds += r.elapsed_ms as f64 / 1000.0;
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
            Err(up.stop(e.context(format!(
                "up stopped at init on {} ({})",
                cp.name, cp.address
            ))))
        }
    }
}

/// 3. Further control planes one at a time, then the workers in parallel, with a fresh
///    short-lived token deleted afterwards; hosts already in the cluster are left alone.
fn stage_join(
    up: &mut Up,
    admin_kc: &KubeConfig,
    admin: &ApiClient,
    cp_host: &SshHost,
    conntrack: Option<u32>,
) -> anyhow::Result<()> {
    let cluster: &Cluster = up.cluster;
    let mut to_join: Vec<(&ClusterHost, bool)> = Vec::new();
    let mut joined = Vec::new();
    let view = decide::ClusterView::new(admin, cp_host);
    for (h, r) in cluster.hosts.iter().zip(&up.reports) {
        if h.name == up.cp.name {
            continue;
        }
        match decide::decide_join(h, Some(r), Some(&view)) {
            JoinDecision::Joined => joined.push(h.name.clone()),
            JoinDecision::Join { resume } => to_join.push((h, resume)),
            JoinDecision::NotPrepared => {}
        }
    }
    for name in joined {
        let o = up.outcome(&name);
        o.result = "already joined".into();
        o.ok = true;
    }
    if to_join.is_empty() {
        return Ok(());
    }
    let (args, ssh) = (up.args, up.ssh);
    // Made only when a host still has to join, so a re-run changes nothing.
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
    };
    let record = |up: &mut Up, name: &str, r: anyhow::Result<String>, secs: f64| {
        let o = up.outcome(name);
        o.seconds += secs;
        match r {
            Ok(msg) => {
                o.result = msg;
                o.ok = true;
            }
            Err(e) => o.result = format!("join FAILED: {}", first_line(&e)),
        }
    };
    let (cps, workers): (Vec<_>, Vec<_>) = to_join
        .into_iter()
        .partition(|(h, _)| h.role == Role::ControlPlane);
    if !cps.is_empty() {
        section(&format!(
            "join: {} control plane{} (one at a time)",
            cps.len(),
            if cps.len() == 1 { "" } else { "s" }
        ));
    }
    for (i, (h, resume)) in cps.iter().enumerate() {
        let t = Instant::now();
        let how = join::JoinAs::ControlPlane {
            first: cp_host,
            first_cfg: &first_cfg,
        };
        let r = join::join_host(args, ssh, h, &with, how, *resume);
        let failed = r.is_err();
        record(up, &h.name, r, t.elapsed().as_secs_f64());
        if failed {
            // etcd's quorum may depend on the member that failed: stop adding members.
            for (rest, _) in &cps[i + 1..] {
                up.outcome(&rest.name).result =
                    "skipped: an earlier control-plane join failed".into();
            }
            break;
        }
    }
    if !workers.is_empty() {
        section(&format!("join: {} workers", workers.len()));
        let results = crate::orchestrate::fan_out(
            &workers,
            args.prepare.concurrency as usize,
            |(h, resume)| {
                let t = Instant::now();
                let r = join::join_host(args, ssh, h, &with, join::JoinAs::Worker, *resume);
                (h.name.clone(), r, t.elapsed().as_secs_f64())
            },
        );
        for (name, r, secs) in results {
            record(up, &name, r, secs);
        }
    }
    token.delete();
    Ok(())
}

/// 4. The image-free pod network, on every host that is in the cluster; returns them.
fn stage_pod_network<'a>(up: &mut Up<'a>, admin: &ApiClient) -> Vec<&'a ClusterHost> {
    let in_cluster: Vec<&ClusterHost> = up
        .cluster
        .hosts
        .iter()
        .filter(|h| up.outcomes.iter().any(|o| o.host == h.name && o.ok))
        .collect();
    if up.cluster.cni.name != "bridge" {
        return in_cluster;
    }
    section(&format!("pod network (bridge): {} hosts", in_cluster.len()));
    let t = Instant::now();
    match podnet::pod_network(
        up.cluster,
        up.ssh,
        admin,
        &in_cluster,
        Duration::from_secs(120),
    ) {
        Ok(n) => say(&format!(
            "pod network: {n} of {} hosts changed ({:.1}s)",
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

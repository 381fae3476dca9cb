//! `kubeboot reset`: undo what init/join did on a node, best effort, step by step, like
//! kubeadm's reset, and further: kubeboot also removes the CNI configuration, the
//! iptables/nftables rules Kubernetes and flannel created and their interfaces, because a
//! node that is to join again should start clean. Each step reports what it did; a
//! failing step is reported and the rest still run.

use super::report;
use crate::host::{Host, RunOptions};
use crate::workflow::{Part, Phase, Workflow};
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

/// Files init and join write (kubeadm's reset removes the same).
pub const FILES: &[&str] = &[
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/bootstrap-kubelet.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
    "/etc/kubernetes/manifests/etcd.yaml",
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    "/etc/kubernetes/manifests/kube-controller-manager.yaml",
    "/etc/kubernetes/manifests/kube-scheduler.yaml",
    "/var/lib/kubelet/config.yaml",
    "/var/lib/kubelet/kubeadm-flags.env",
    "/var/lib/kubelet/instance-config.yaml",
    "/etc/cni/net.d/10-flannel.conflist",
];

/// kubeadm's reset phases (`--skip-phases`): `preflight` is the confirmation and the
/// root check (in the command), `remove-etcd-member` leaves the etcd cluster,
/// `cleanup-node` is every step of [`steps`] (see [`workflow`]).
pub const PHASES: &[&str] = &["preflight", "remove-etcd-member", "cleanup-node"];

/// How a reset runs.
#[derive(Debug, Clone, Default)]
pub struct ResetOptions {
    /// Phases not to run (names of [`PHASES`]).
    pub skip_phases: Vec<String>,
    /// `--cri-socket`: containerd's socket whose k8s.io containers are removed
    /// (default /run/containerd/containerd.sock).
    pub cri_socket: Option<String>,
}

/// One step of reset: what it is for, and the shell it runs.
pub struct ResetStep {
    pub name: &'static str,
    pub script: String,
}

/// The steps, in order. Directories are removed with their contents; the cert dir and
/// etcd data dir come from the node's configuration when known.
pub fn steps(cert_dir: &str, etcd_data_dir: &str, cri_socket: Option<&str>) -> Vec<ResetStep> {
    let quoted: Vec<String> = FILES.iter().map(|f| format!("'{f}'")).collect();
    let socket = cri_socket
        .map(|s| s.trim_start_matches("unix://"))
        .filter(|s| !s.is_empty())
        .unwrap_or("/run/containerd/containerd.sock")
        .replace('\'', "");
    vec![
        ResetStep {
            name: "stop-kubelet",
            script: "if command -v systemctl >/dev/null; then systemctl stop kubelet 2>/dev/null; fi; true".into(),
        },
        ResetStep {
            name: "stop-containers",
            // Pods of the k8s.io namespace: stop their tasks, then delete their containers.
            script: format!("s='{socket}'; if command -v ctr >/dev/null && [ -S \"$s\" ]; then \
                       for t in $(ctr -a \"$s\" -n k8s.io task ls -q 2>/dev/null); do ctr -a \"$s\" -n k8s.io task kill -s SIGKILL \"$t\" >/dev/null 2>&1; done; sleep 1; \
                       for c in $(ctr -a \"$s\" -n k8s.io containers ls -q 2>/dev/null); do ctr -a \"$s\" -n k8s.io task delete -f \"$c\" >/dev/null 2>&1; ctr -a \"$s\" -n k8s.io containers delete \"$c\" >/dev/null 2>&1; done; fi; true"),
        },
        ResetStep {
            name: "unmount-kubelet",
            script: "awk '$2 ~ \"^/var/lib/kubelet/\" {print $2}' /proc/mounts | sort -r | while read -r m; do umount \"$m\" || umount -l \"$m\"; done; true".into(),
        },
        ResetStep {
            name: "remove-files",
            script: format!("rm -f {}", quoted.join(" ")),
        },
        ResetStep {
            name: "remove-pki",
            script: format!("rm -rf '{cert_dir}'"),
        },
        ResetStep {
            name: "remove-etcd-data",
            script: format!("if [ -d '{etcd_data_dir}' ]; then find '{etcd_data_dir}' -mindepth 1 -delete; fi"),
        },
        ResetStep {
            name: "remove-kubelet-state",
            script: "rm -rf /var/lib/kubelet/pki /var/lib/kubelet/pods /var/lib/kubelet/plugins /var/lib/kubelet/plugins_registry /var/lib/kubelet/pod-resources /var/lib/kubelet/cpu_manager_state /var/lib/kubelet/memory_manager_state".into(),
        },
        ResetStep {
            name: "remove-iptables-rules",
            // Drop every chain and rule of kube-proxy (KUBE-*), flannel (FLANNEL-*) and CNI
            // plugins (CNI-*), in every table, for IPv4 and IPv6, atomically per family.
            script: "for f in iptables ip6tables; do \
                       if command -v $f-save >/dev/null && $f-save >/dev/null 2>&1; then \
                         $f-save | grep -Ev '(KUBE-|FLANNEL|CNI-)' | $f-restore; fi; done; true"
                .into(),
        },
        ResetStep {
            name: "remove-nftables-tables",
            script: "if command -v nft >/dev/null; then for t in 'ip kube-proxy' 'ip6 kube-proxy' 'ip flannel' 'ip6 flannel'; do nft delete table $t 2>/dev/null; done; fi; true".into(),
        },
        ResetStep {
            name: "remove-pod-network",
            // The image-free `bridge` pod network: conflist, routes to other nodes, boot unit.
            script: crate::podnet::reset_script().into(),
        },
        ResetStep {
            name: "remove-interfaces",
            script: "for i in flannel.1 flannel-v6.1 cni0 kube-ipvs0; do ip link show \"$i\" >/dev/null 2>&1 && ip link delete \"$i\"; done; true".into(),
        },
    ]
}

/// What a reset did.
#[derive(Debug, Default)]
pub struct ResetReport {
    pub failed: Vec<(String, String)>,
    pub done: Vec<String>,
}

/// A flag's value in a static Pod manifest's command (`--name=value`).
fn manifest_flag(manifest: &str, name: &str) -> Option<String> {
    let prefix = format!("--{name}=");
    manifest.lines().find_map(|l| {
        let l = l
            .trim()
            .trim_start_matches("- ")
            .trim_matches(|c| c == '"' || c == '\'');
        l.strip_prefix(&prefix).map(|v| v.to_string())
    })
}

/// Removes this node's member from its etcd cluster, as kubeadm's reset does, so the
/// other control planes keep their quorum. The member and the endpoint come from this
/// node's etcd manifest, the client certificate from its PKI. Nothing to do without a
/// local etcd, or when this is the last member. Returns what was done.
pub fn remove_etcd_member(host: &dyn Host, cert_dir: &str) -> anyhow::Result<String> {
    let manifest_path = Path::new(crate::render::MANIFESTS_DIR).join("etcd.yaml");
    let Some(manifest) = host.read_file(&manifest_path)? else {
        return Ok("no local etcd manifest: nothing to remove".into());
    };
    let manifest = String::from_utf8_lossy(&manifest);
    let peer = manifest_flag(&manifest, "initial-advertise-peer-urls")
        .context("the etcd manifest has no --initial-advertise-peer-urls")?;
    let clients = manifest_flag(&manifest, "advertise-client-urls")
        .context("the etcd manifest has no --advertise-client-urls")?;
    let etcd = crate::etcdclient::EtcdClient::from_cert_dir(
        host,
        Path::new(cert_dir),
        clients.split(',').map(String::from).collect(),
    )?;
    let members = etcd.member_list()?;
    let Some(me) = members.iter().find(|m| m.peer_urls.contains(&peer)) else {
        return Ok(format!("{peer} is not an etcd member: nothing to remove"));
    };
    if members.len() == 1 {
        return Ok("this node is the only etcd member: the cluster's data goes with it".into());
    }
    etcd.remove_when_allowed(me.id, Duration::from_secs(30))?;
    Ok(format!(
        "removed etcd member {} ({:x}); {} member(s) remain",
        if me.name.is_empty() { &peer } else { &me.name },
        me.id,
        members.len() - 1
    ))
}

/// What reset's phases share during one run.
pub struct ResetData<'a> {
    pub host: &'a dyn Host,
    pub cert_dir: &'a str,
    pub etcd_data_dir: &'a str,
    pub opts: &'a ResetOptions,
    pub rep: ResetReport,
}

fn cleanup_children() -> Vec<&'static str> {
    steps("/", "/", None).iter().map(|s| s.name).collect()
}

/// reset's phases, kubeadm's names: `preflight` (the confirmation and the root check,
/// which the command does before this runs, so here it has nothing left to do),
/// `remove-etcd-member`, and `cleanup-node` with one sub-phase per step
/// (`cleanup-node/remove-iptables-rules`).
pub fn workflow<'a>() -> Workflow<ResetData<'a>> {
    Workflow {
        command: "reset",
        phases: vec![
            Phase::new(
                "preflight",
                "Run reset pre-flight checks",
                |_, _| Ok(()),
                |_, _| {
                    Ok(vec![
                        "Would ask for confirmation and check that reset runs as root".into(),
                    ])
                },
            ),
            Phase::new(
                "remove-etcd-member",
                "Remove a local etcd member",
                remove_etcd_member_phase,
                |_, _| {
                    Ok(vec![
                        "Would remove this node's member from its etcd cluster".into(),
                    ])
                },
            ),
            Phase::new(
                "cleanup-node",
                "Run cleanup node",
                cleanup_node,
                |_, part| {
                    Ok(cleanup_children()
                        .into_iter()
                        .filter(|c| part.has(c))
                        .map(|c| format!("Would run {c}"))
                        .collect())
                },
            )
            .children(cleanup_children()),
        ],
    }
}

fn remove_etcd_member_phase(d: &mut ResetData, _: &Part) -> anyhow::Result<()> {
    // First, while etcd still runs. Best effort, as in kubeadm: say what the user has to
    // do by hand.
    match remove_etcd_member(d.host, d.cert_dir) {
        Ok(what) => {
            report("reset", &format!("remove-etcd-member: {what}"));
            d.rep.done.push("remove-etcd-member".into());
        }
        Err(e) => report(
            "reset",
            &format!(
                "remove-etcd-member: WARNING: {e:#}; if this node was an etcd member of a cluster that lives on, remove it there with `etcdctl member remove`"
            ),
        ),
    }
    Ok(())
}

/// Every chosen step, each on its own: a step that fails is recorded and the rest still
/// run; `Err` only when the host cannot be reached before any step ran.
fn cleanup_node(d: &mut ResetData, part: &Part) -> anyhow::Result<()> {
    let chosen = steps(d.cert_dir, d.etcd_data_dir, d.opts.cri_socket.as_deref())
        .into_iter()
        .filter(|s| part.has(s.name));
    for step in chosen {
        let out = d.host.run(
            &step.script,
            &RunOptions {
                stdin: None,
                timeout: Some(Duration::from_secs(120)),
            },
        );
        match out {
            Ok(o) if o.success() => {
                report("reset", &format!("{}: done", step.name));
                d.rep.done.push(step.name.into());
            }
            Ok(o) => {
                let why = format!("exit {}: {}", o.status, o.stderr_text().trim());
                report("reset", &format!("{}: FAILED ({why})", step.name));
                d.rep.failed.push((step.name.into(), why));
            }
            Err(e) if d.rep.done.is_empty() => return Err(e.into()),
            Err(e) => {
                report("reset", &format!("{}: FAILED ({e})", step.name));
                d.rep.failed.push((step.name.into(), e.to_string()));
            }
        }
    }
    Ok(())
}

/// Runs every phase of reset that is not skipped (checked against the phase list);
/// `Err` only when the host cannot be reached at all or a skip names no phase.
pub fn run(
    host: &dyn Host,
    cert_dir: &str,
    etcd_data_dir: &str,
    opts: &ResetOptions,
) -> anyhow::Result<ResetReport> {
    let wf = workflow();
    let skips = wf.skips([("--skip-phases", &opts.skip_phases[..])])?;
    let mut data = ResetData {
        host,
        cert_dir,
        etcd_data_dir,
        opts,
        rep: ResetReport::default(),
    };
    wf.run(&mut data, &skips, |p| {
        if p != "preflight" {
            report("reset", &format!("{p}: skipped (--skip-phases)"))
        }
    })?;
    // Leftovers a user should know about, as kubeadm says.
    if host.file_info(Path::new("/root/.kube/config"))?.is_some() {
        report(
            "reset",
            "/root/.kube/config was left in place; remove it if it points at this cluster",
        );
    }
    Ok(data.rep)
}

/// `reset --deep`: put the host back as it was before `kubeboot prepare`, from the record
/// prepare's first step kept in /var/lib/kubeboot/pre-prepare: purge the packages prepare
/// installed, restore or remove the files it wrote, the CNI links it added, sysctl values,
/// masked swap units and swap, and the services' enabled/active states.
pub const DEEP_SCRIPT: &str = r#"d=/var/lib/kubeboot/pre-prepare
if [ ! -f "$d/done" ]; then
  echo "no record of this host's state before prepare ($d): it was not prepared by kubeboot, or the record was removed" >&2
  exit 3
fi
systemctl stop kubelet 2>/dev/null; systemctl disable kubelet 2>/dev/null
# Every package that was not installed before prepare (prepare's and their dependencies).
if command -v dpkg-query >/dev/null; then dpkg-query -W -f '${Package}\n' | sort > "$d/now"
else rpm -qa --qf '%{NAME}\n' | sort > "$d/now"; fi
sort "$d/packages" > "$d/before"
purge=$(comm -13 "$d/before" "$d/now" | tr '\n' ' ')
if [ -n "$purge" ]; then
  if command -v apt-get >/dev/null; then DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $purge >/dev/null
  else dnf remove -y -q $purge >/dev/null; fi || { echo "could not remove $purge" >&2; exit 1; }
  echo "removed packages: $purge"
fi
while read -r f; do
  if [ -e "$d/files$f" ]; then cp -a "$d/files$f" "$f"; else rm -f "$f"; fi
done < "$d/paths"
rmdir /etc/systemd/system/kubelet.service.d 2>/dev/null
# The inventory's hosts block prepare keeps in /etc/hosts (the rest of the file is kept).
if grep -q '^# BEGIN kubeboot hosts' /etc/hosts 2>/dev/null; then
  t=$(mktemp /etc/.hosts.kubeboot.XXXXXX) && sed '/^# BEGIN kubeboot hosts/,/^# END kubeboot hosts/d' /etc/hosts > "$t" && chmod 644 "$t" && cat "$t" > /etc/hosts; rm -f "$t"
fi
# The static Pod directory prepare creates for an artifact kubelet (empty after reset).
[ -e "$d/had-manifests-dir" ] || rmdir /etc/kubernetes/manifests /etc/kubernetes 2>/dev/null
for l in /opt/cni/bin/*; do [ -e "$l" ] || [ -L "$l" ] || continue; grep -qx "${l##*/}" "$d/cni-bin" || rm -f "$l"; done
rmdir /opt/cni/bin /opt/cni 2>/dev/null
for u in $(find /etc/systemd/system /run/systemd/system -maxdepth 1 -name '*.swap' -lname /dev/null -printf '%f\n' 2>/dev/null); do
  grep -qx "$u" "$d/masked" || systemctl unmask "$u"
done
while read -r k v; do sysctl -w "$k=$v" >/dev/null 2>&1; done < "$d/sysctls"
[ -s "$d/swaps" ] && swapon -a
systemctl daemon-reload 2>/dev/null
while read -r s enabled active; do
  [ "$enabled" = absent ] && continue
  case "$enabled" in enabled) systemctl enable "$s" 2>/dev/null ;; disabled) systemctl disable "$s" 2>/dev/null ;; esac
  case "$active" in active) systemctl start "$s" 2>/dev/null ;; *) systemctl stop "$s" 2>/dev/null ;; esac
done < "$d/services"
rm -rf "$d"
echo "restored the state recorded before prepare""#;

/// Runs the deep revert on `host`.
pub fn deep(host: &dyn Host) -> anyhow::Result<String> {
    let out = host.run(
        DEEP_SCRIPT,
        &RunOptions {
            stdin: None,
            timeout: Some(Duration::from_secs(600)),
        },
    )?;
    anyhow::ensure!(
        out.success(),
        "{}: reset --deep failed (exit {}): {}",
        host.name(),
        out.status,
        out.stderr_text().trim()
    );
    let text = out.stdout_text();
    report("reset", &format!("deep: {}", text.trim()));
    Ok(text)
}

/// A whole reset of one host: every step, failing if any step failed, then `--deep`.
pub fn reset_host(
    host: &dyn Host,
    cert_dir: &str,
    etcd_data_dir: &str,
    deep_too: bool,
    opts: &ResetOptions,
) -> anyhow::Result<ResetReport> {
    let rep = run(host, cert_dir, etcd_data_dir, opts)?;
    anyhow::ensure!(
        rep.failed.is_empty(),
        "reset finished with failed steps: {}",
        rep.failed
            .iter()
            .map(|(n, w)| format!("{n} ({w})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if deep_too {
        deep(host)?;
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::LocalHost;

    /// Skipped phases run nothing: no command, no file removed.
    #[test]
    fn skip_phases_skips_them() {
        let dir = tempfile::tempdir().unwrap();
        let host = LocalHost::with_root(dir.path());
        let admin = dir.path().join("etc/kubernetes/admin.conf");
        std::fs::create_dir_all(admin.parent().unwrap()).unwrap();
        std::fs::write(&admin, "x").unwrap();
        let opts = ResetOptions {
            skip_phases: vec!["remove-etcd-member".into(), "cleanup-node".into()],
            ..Default::default()
        };
        let rep = run(&host, "/etc/kubernetes/pki", "/var/lib/etcd", &opts).unwrap();
        assert!(rep.done.is_empty() && rep.failed.is_empty(), "{rep:?}");
        assert!(admin.exists());
        // Skipping steps of cleanup-node leaves the others: asked of the plan, since the
        // steps themselves would act on this machine.
        let skips = workflow()
            .skips([(
                "--skip-phases",
                &[
                    "cleanup-node/stop-kubelet".to_string(),
                    "remove-etcd-member".into(),
                ][..],
            )])
            .unwrap();
        let opts = ResetOptions::default();
        let data = ResetData {
            host: &host,
            cert_dir: "/p",
            etcd_data_dir: "/e",
            opts: &opts,
            rep: ResetReport::default(),
        };
        let plan = workflow().plan(&data, &skips).unwrap();
        let text = crate::workflow::render_plan(&plan);
        assert!(text.contains("[remove-etcd-member] skipped"), "{text}");
        assert!(!text.contains("stop-kubelet"), "{text}");
        assert!(
            text.contains("[cleanup-node] Would run stop-containers\n"),
            "{text}"
        );
        assert_eq!(
            text.matches("[cleanup-node] Would run").count(),
            10,
            "{text}"
        );
        // A name that is no phase of reset is refused before anything runs.
        let opts = ResetOptions {
            skip_phases: vec!["cleanup-node/remove-everything".into()],
            ..Default::default()
        };
        let err = run(&host, "/p", "/e", &opts).unwrap_err().to_string();
        assert!(err.contains("is not a phase of reset"), "{err}");
        // Only cleanup-node skipped: remove-etcd-member runs (no etcd manifest here).
        let opts = ResetOptions {
            skip_phases: vec!["cleanup-node".into()],
            ..Default::default()
        };
        let rep = run(&host, "/etc/kubernetes/pki", "/var/lib/etcd", &opts).unwrap();
        assert_eq!(rep.done, vec!["remove-etcd-member".to_string()]);
        assert!(admin.exists());
    }

    #[test]
    fn cri_socket_is_the_socket_containers_are_removed_from() {
        let script = |s: Option<&str>| {
            steps("/p", "/e", s)
                .into_iter()
                .find(|s| s.name == "stop-containers")
                .unwrap()
                .script
        };
        assert!(script(None).contains("s='/run/containerd/containerd.sock'"));
        assert!(
            script(Some("unix:///run/k3s/containerd.sock"))
                .contains("s='/run/k3s/containerd.sock'")
        );
    }
}

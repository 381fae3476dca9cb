#!/usr/bin/env bash
# A whole cluster from bare nodes: `kubeboot up` vs the kubeadm way (a plain shell script
# over ssh), on two labs of N fresh `kubeboot lab` nodes (one lab per tool, identical
# fresh nodes), in one invocation; then a no-op re-run of `kubeboot up`. Prints one table:
# wall time per phase and in total per tool, the ratio kubeadm/kubeboot, kubeboot's SSH
# round trips per host and its peak memory (max RSS, `/usr/bin/time -v`).
#
#   bash benches/up-vs-kubeadm.sh [NODES]        (root; default 3 nodes; node1 = control plane)
#
#   KUBEBOOT_BENCH_ONLY=kubeboot   kubeboot's runs only (no anchor): for profiling
#   KUBEBOOT_BENCH_PERF=1          `perf record -a` during kubeboot's full run; prints the
#                                  machine's CPU samples by process (needs perf)
#
# Both clusters get the same inputs (what .ci/lab-cluster gives kubeboot):
#   - packages (containerd, runc, containernetworking-plugins, conntrack, socat, iptables,
#     ethtool) through the local apt proxy (tests/support/start-tinyproxy.sh);
#   - kubelet and kubectl: the v1.20.2 binaries of tests/controlplane/build-k8s.sh;
#   - images: the archives of tests/controlplane/build-images.sh (LOCAL LAB BUILDS under
#     kubeboot.local/lab), control-plane archives on the control plane only;
#   - the image-free pod network: a bridge conflist per node over its podCIDR, plus
#     routes to the other nodes' podCIDRs (what src/podnet.rs renders).
# CoreDNS has no image here: neither cluster runs it (kubeboot reports it; nodes are
# Ready without it).
#
# The anchor ("kubeadm"), step by step, all nodes in parallel where the seed flow allows:
#   host preparation  swapoff, fstab, modules-load file, sysctl file (`sysctl -p`, as
#                     `sysctl --system` fails in lab nodes), /etc/hosts block, apt-get
#                     install (apt-get update only when the lists are older than an hour,
#                     as kubeboot does), /opt/cni/bin links, containerd config.toml COPIED
#                     from kubeboot's control-plane node (so: the same sandbox image,
#                     SystemdCgroup, restrict_oom_score_adj = true), containerd restart,
#                     kubelet/kubectl/kubeadm binaries (scp), the kubelet unit and kubeadm
#                     drop-in COPIED from the same node, kubelet enabled.
#   image import      `ctr -n k8s.io images import -` of each archive over ssh.
#   init              `kubeadm init` on node1; admin.conf fetched to this machine.
#   joins             `kubeadm join` on every worker in parallel (token and CA hash from
#                     init's output).
#   until Ready       wait for every Node's podCIDR, write the bridge conflist and routes
#                     on every node (one ssh each, in parallel), wait for every node Ready.
# Adaptations the anchor needs here (kubeadm v1.20.2 from build-k8s.sh, the only kubeadm
# this machine has):
#   1. kubeadm 1.20 names control-plane images <repo>/<name>:<kubernetesVersion> and
#      cannot override their tag, but the archives tag them v1.31.0 (the version kubeboot
#      renders manifests for; the binaries inside are v1.20.2). The anchor deploys
#      kubernetesVersion v1.20.2 (what the binaries are) and adds a v1.20.2 tag to the
#      imported images (`ctr images tag`, counted in image import). (With v1.31.0,
#      kubeadm 1.20's init would write a kubelet-config-1.31 ConfigMap while its join
#      looks for kubelet-config-<the kubelet's minor>, 1.20.)
#   2. etcd's tag (3.5.24-0) and the sandbox image (pause:3.10) through the config:
#      `etcd.local.imageTag`, and containerd's sandbox image (kubelet 1.20 with a remote
#      runtime takes the sandbox image from containerd).
#   3. `--skip-phases=preflight` on init and join: kubeadm's preflight needs crictl for
#      its image pull check and no registry here has cri-tools (LAB.md).
#   4. KubeletConfiguration `cgroupDriver: systemd` (containerd's SystemdCgroup) and
#      KubeProxyConfiguration `conntrack.maxPerCore: 0` (nf_conntrack_max is read-only in
#      lab nodes); kubeboot sets both by itself.
#   5. The kubeadm binary is uploaded too (kubeboot drives init/join from this machine).
#   6. (Both clusters) kubelet eviction thresholds imagefs/nodefs.available<1% and image GC
#      at 99/98%: the lab nodes see this machine's disk, and with less than 15% free the
#      kubelet taints every node with disk-pressure and deletes imported images.
# ssh uses one multiplexed connection per node (ControlMaster), as kubeboot keeps one
# session per host. Both labs come from `kubeboot lab up`, which gives node1 (the control
# plane) a CPU weight of N and every worker 1 (the nodes share this machine's cores), and
# whose nodes fail fast on what nothing answers (the cloud metadata address, DNS).
#
# kubeboot's phases come from `up -o json` (its `stage` events), every line timestamped
# on arrival: host preparation and image import split the time until init starts
# (import = the slowest host's span of image-archive steps), init, joins, and "until
# Ready" = the pod network stage until a watcher here sees every node Ready (`up` then
# still prints its health report: the "up exits" row). "total" is the start of the run
# until every node is Ready. up's stages overlap: init starts once the control plane is
# prepared (other hosts may still be preparing), each host joins once it is prepared,
# and the pod network is written per host during the joins; the phases are therefore
# the stretches of the critical path between those stage starts.
#
# Needs: root, what `kubeboot lab` needs, tinyproxy, /usr/bin/time, the caches of
# tests/controlplane/build-k8s.sh and build-images.sh (built on first use, long).
# Labs: kbbench-k (10.213.81.0/24) and kbbench-a (10.213.82.0/24). Each tool runs alone:
# kbbench-k (kubeboot's cluster) is removed before the anchor starts, kbbench-a on exit
# (until 2026-12-01 kubeboot's idle cluster kept running during the anchor, which slowed
# the anchor and overstated the ratio). Logs stay in $KUBEBOOT_BENCH_LOGS (default
# /tmp/kubeboot-bench-up-logs).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3}
[ "$N" -ge 1 ] || { echo "NODES must be at least 1" >&2; exit 2; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q
K=$CARGO_TARGET_DIR/release/kubeboot
eval "$(bash tests/controlplane/build-k8s.sh)"
eval "$(bash tests/controlplane/build-images.sh)"
B=$KUBEBOOT_K8S_BIN
IMG=$KUBEBOOT_IMAGES_DIR
REPO=$KUBEBOOT_IMAGE_REPO
KUBECTL=$B/kubectl
for f in kubelet kubectl kubeadm; do [ -x "$B/$f" ] || { echo "$B/$f is missing" >&2; exit 1; }; done
PORT=$(bash tests/support/start-tinyproxy.sh start | grep -o 'http://[0-9.]*:[0-9]*' | tail -1)
PORT=${PORT##*:}
STATE=$(mktemp -d /tmp/kbbench-up.XXXXXX)
W=$STATE/work; mkdir -p "$W"
KEEP=${KUBEBOOT_BENCH_LOGS:-/tmp/kubeboot-bench-up-logs}
LK=kbbench-k; NETK=10.213.81
LA=kbbench-a; NETA=10.213.82
cleanup() {
  set +e
  rm -rf "$KEEP"; mkdir -p "$KEEP"; cp -r "$W"/. "$KEEP"/ 2>/dev/null
  for s in "$W"/ssh-ctl-*; do [ -S "$s" ] && ssh -o ControlPath="$s" -O exit x >/dev/null 2>&1; done
  $K lab down --name $LK --state-dir "$STATE" >/dev/null 2>&1
  $K lab down --name $LA --state-dir "$STATE" >/dev/null 2>&1
  rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
# Prefix every line with the time it arrived (seconds since the epoch).
stamp() { python3 -u -c '
import sys, time
for l in sys.stdin:
    sys.stdout.write(f"{time.time():.3f} {l}")'; }

echo "== $N nodes per lab; kubeboot $($K version); kubeadm $("$B/kubeadm" version -o short); images $IMG"
# Anything else busy on this machine (another lab's cluster above all) takes CPU from both
# tools, unevenly since they run one after the other: say so before measuring.
others=$(find /sys/fs/cgroup -maxdepth 2 -type d -name 'kubeboot-lab-*' 2>/dev/null | sed 's@.*/kubeboot-lab-@@' | sort -u | tr '\n' ' ')
[ -z "$others" ] || echo "warning: kubeboot labs already run on this machine (${others% }): their nodes take CPU from both tools; remove them (kubeboot lab down --name NAME) for figures that compare"
read -ra s1 < /proc/stat; sleep 2; read -ra s2 < /proc/stat
t=0; for k in 1 2 3 4 5 6 7 8; do t=$((t + s2[k] - s1[k])); done
idle=$((s2[4] + s2[5] - s1[4] - s1[5]))
busy=$(( t > 0 ? 100 * (t - idle) / t : 0 ))
[ "$busy" -lt 15 ] || echo "warning: this machine was ${busy}% busy in the 2 s before the bench; the figures will be slower than the tools are"
$K lab up --name $LK --subnet $NETK.0/24 --nodes "$N" --state-dir "$STATE" --apt-proxy "http://{bridge}:$PORT" >/dev/null

# ---- kubeboot ------------------------------------------------------------------------
sha() { sha256sum "$1" | cut -d' ' -f1; }
# The lab nodes see this machine's disk, which may have less free space than the
# kubelet's default eviction thresholds want (imagefs.available 15%): the kubelet would
# then taint every node with disk-pressure and garbage-collect imported images. Both
# clusters get the same low thresholds.
EVICTION='imagefs.available<1%,nodefs.available<1%'
INV=$W/cluster-kubeboot.yaml
{
  sed -n '1,/^spec:/p' "$STATE/$LK/cluster.yaml"
  cat <<EOF
  kubernetesVersion: v1.31.0
  imageRepository: $REPO
  cni: {name: bridge}
  kubeletExtraArgs:
    - {name: container-runtime, value: remote}
    - {name: eviction-hard, value: "$EVICTION"}
    - {name: image-gc-high-threshold, value: "99"}
    - {name: image-gc-low-threshold, value: "98"}
  artifacts:
    kubelet: {path: $B/kubelet, sha256: $(sha "$B/kubelet")}
    kubectl: {path: $B/kubectl, sha256: $(sha "$B/kubectl")}
  imageArchives:
EOF
  while read -r file sum _ref; do
    case $file in kube-apiserver.*|kube-controller-manager.*|kube-scheduler.*|etcd.*) roles=", roles: [control-plane]" ;; *) roles="" ;; esac
    echo "    - {path: $IMG/$file, sha256: $sum$roles}"
  done < "$IMG/images.txt"
  # The lab's own kubeletExtraArgs (the last block) give way to the list above.
  sed '1,/^spec:/d' "$STATE/$LK/cluster.yaml" | sed '/^  kubeletExtraArgs:$/,$d'
} > "$INV"
ready_count() { # kubeconfig
  "$KUBECTL" --kubeconfig "$1" get nodes --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l
}
# Writes the time every node is Ready to out-file; exits 1 after `seconds` without.
# One `kubectl get nodes --watch` (started again while the API server does not answer),
# not a kubectl every half second: each costs about 0.1 CPU-s, which the cluster being
# measured would lose on this machine's two cores (2026-12-02: 6% of a 10-node run).
# The machine's busy CPU time so far, in seconds (/proc/stat: user, nice, system, irq,
# softirq, steal; not idle or iowait): the table's "busy CPU" row is its difference
# between a tool's start and every node Ready.
cpu_busy() { awk '/^cpu /{printf "%.2f\n", ($2+$3+$4+$7+$8+$9)/100}' /proc/stat; }
ready_watch() { # kubeconfig out-file [seconds]
  python3 - "$KUBECTL" "$1" "$2" "$N" "${3:-3600}" <<'PY'
import os, subprocess, sys, time
def busy():
    f = open("/proc/stat").readline().split()
    return sum(int(f[i]) for i in (1, 2, 3, 6, 7, 8)) / 100
kubectl, conf, out, n, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
end = time.time() + limit
first_ready = {}
while time.time() < end:
    if os.path.exists(conf) and os.path.getsize(conf) > 0:
        p = subprocess.Popen([kubectl, "--kubeconfig", conf, "get", "nodes", "--no-headers", "--watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        status = {}
        for line in p.stdout:
            f = line.split()
            if len(f) >= 2:
                status[f[0]] = f[1]
                if f[1] == "Ready":
                    first_ready.setdefault(f[0], time.time())
            if sum(s == "Ready" for s in status.values()) == n:
                with open(out + ".nodes", "w") as o:
                    o.writelines(f"{t:.3f} {node}\n" for node, t in sorted(first_ready.items(), key=lambda x: x[1]))
                with open(out, "w") as o:
                    o.write(f"{time.time():.9f}\n{busy():.2f}\n")
                p.kill()
                sys.exit(0)
            if time.time() >= end:
                p.kill()
                break
        p.wait()
    time.sleep(0.5)
sys.exit(1)
PY
}
kb_up() { # log-name
  local rc
  echo "$(now) START" > "$W/$1.log"
  cpu_busy > "$W/$1.cpu0"
  set +e
  /usr/bin/time -v -o "$W/$1.time" "$K" up -f "$INV" -o json --wait 5m \
    --kubeconfig-out "$W/kubeboot.conf" --ignore-preflight-errors ImagePull 2>"$W/$1.err" |
    stamp >> "$W/$1.log"
  rc=${PIPESTATUS[0]}
  set -e
  echo "$(now) END $rc" >> "$W/$1.log"
  return "$rc"
}
echo "kubeboot up ..."
ready_watch "$W/kubeboot.conf" "$W/kb-full.ready" & WATCH=$!
if [ -n "${KUBEBOOT_BENCH_PERF:-}" ]; then
  perf record -a -F 199 -q -o "$W/kb-full.perf" </dev/null 2>/dev/null & PERF=$!
fi
kb_up kb-full || { echo "kubeboot up failed; logs in $KEEP" >&2; kill "$WATCH"; exit 1; }
for _ in $(seq 1 100); do [ -s "$W/kb-full.ready" ] && break; sleep 0.2; done
kill "$WATCH" 2>/dev/null || true
if [ -n "${KUBEBOOT_BENCH_PERF:-}" ]; then
  kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
  echo "where kubeboot's run spent the machine's CPU (perf, by process; $KEEP/kb-full.perf):"
  perf report -i "$W/kb-full.perf" --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -25
fi
echo "kubeboot up (no-op re-run) ..."
kb_up kb-noop || { echo "kubeboot up (re-run) failed; logs in $KEEP" >&2; exit 1; }

# ---- the kubeadm way -----------------------------------------------------------------
if [ "${KUBEBOOT_BENCH_ONLY:-}" != kubeboot ]; then
A=$STATE/$LA
SSHO=(-i "$A/id_ed25519" -o UserKnownHostsFile="$A/known_hosts" -o StrictHostKeyChecking=yes
  -o BatchMode=yes -o ControlMaster=auto -o ControlPath="$W/ssh-ctl-%h" -o ControlPersist=600)
on() { local ip=$1; shift; ssh "${SSHO[@]}" "root@$ip" "$@"; }
ip_a() { echo "$NETA.$((10 + $1))"; }
name_a() { echo "$LA-node$1"; }
CP=$(ip_a 1)

# The files kubeboot installed, taken from its control-plane node (not timed).
KS=(-i "$STATE/$LK/id_ed25519" -o UserKnownHostsFile="$STATE/$LK/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes)
mkdir -p "$W/files"
for f in /etc/containerd/config.toml /etc/systemd/system/kubelet.service \
         /etc/systemd/system/kubelet.service.d/10-kubeadm.conf /etc/sysctl.d/k8s.conf \
         /etc/modules-load.d/k8s.conf; do
  case $f in /etc/sysctl.d/*) to=sysctl-k8s.conf ;; /etc/modules-load.d/*) to=modules-k8s.conf ;; *) to=$(basename "$f") ;; esac
  ssh "${KS[@]}" "root@$NETK.11" cat "$f" < /dev/null > "$W/files/$to"
done
grep -q 'restrict_oom_score_adj = true' "$W/files/config.toml" ||
  echo "note: kubeboot's containerd config has no restrict_oom_score_adj = true" >&2
# kubeboot's cluster is removed before the anchor runs: its kubelets, control plane and
# kube-proxies would otherwise take their share of the cores from the anchor's nodes.
"$KUBECTL" --kubeconfig "$W/kubeboot.conf" get nodes -o wide > "$W/kb-nodes.txt" 2>&1 || true
"$KUBECTL" --kubeconfig "$W/kubeboot.conf" get pods -A -o wide > "$W/kb-pods.txt" 2>&1 || true
$K lab down --name $LK --state-dir "$STATE" >/dev/null
# The anchor's nodes are made only now, as kubeboot's were just before its run: freshly
# booted nodes still settle for a while (until 2026-12-02 they were made with kubeboot's,
# so they settled during kubeboot's run and took CPU from it).
$K lab up --name $LA --subnet $NETA.0/24 --nodes "$N" --state-dir "$STATE" --apt-proxy "http://{bridge}:$PORT" >/dev/null
HOSTS_BLOCK=$(for i in $(seq 1 "$N"); do echo "$(ip_a "$i") $(name_a "$i")"; done)

cat > "$W/kubeadm.yaml" <<EOF
apiVersion: kubeadm.k8s.io/v1beta2
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: $CP, bindPort: 6443}
nodeRegistration:
  criSocket: /run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterConfiguration
kubernetesVersion: v1.20.2
imageRepository: $REPO
etcd: {local: {imageTag: $(sed -n 's/^etcd\.tar [0-9a-f]* .*:\(.*\)$/\1/p' "$IMG/images.txt")}}
networking: {podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
evictionHard: {$(echo "$EVICTION" | sed 's/</: /g; s/,/, /g')}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
conntrack: {maxPerCore: 0}
EOF

prep_node() { # i
  local ip; ip=$(ip_a "$1")
  on "$ip" true </dev/null
  scp -q "${SSHO[@]}" "$W/files/config.toml" "$W/files/kubelet.service" "$W/files/10-kubeadm.conf" \
    "$W/files/sysctl-k8s.conf" "$W/files/modules-k8s.conf" "$B/kubelet" "$B/kubectl" "$B/kubeadm" "root@$ip:/tmp/"
  on "$ip" bash -s <<EOF
set -euo pipefail
swapoff -a
sed -i -E 's@^([[:space:]]*[^#[:space:]][^[:space:]]*[[:space:]]+[^[:space:]]+[[:space:]]+swap([[:space:]]|\$))@#\1@' /etc/fstab
install -m 644 /tmp/modules-k8s.conf /etc/modules-load.d/k8s.conf
modprobe overlay 2>/dev/null || grep -qw overlay /proc/filesystems
modprobe br_netfilter 2>/dev/null || [ -d /proc/sys/net/bridge ]
install -m 644 /tmp/sysctl-k8s.conf /etc/sysctl.d/k8s.conf
sysctl -q -p /etc/sysctl.d/k8s.conf
printf '%s\n' '$HOSTS_BLOCK' >> /etc/hosts
export DEBIAN_FRONTEND=noninteractive
if [ -z "\$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 | head -n1)" ]; then apt-get update -q >/dev/null; fi
apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  containerd runc containernetworking-plugins conntrack socat iptables ethtool >/dev/null
mkdir -p /opt/cni/bin
for f in /usr/lib/cni/*; do [ -e "/opt/cni/bin/\${f##*/}" ] || ln -s "\$f" "/opt/cni/bin/\${f##*/}"; done
install -D -m 644 /tmp/config.toml /etc/containerd/config.toml
systemctl enable containerd >/dev/null 2>&1
systemctl restart containerd
install -m 755 /tmp/kubelet /tmp/kubectl /tmp/kubeadm /usr/bin/
install -m 644 /tmp/kubelet.service /etc/systemd/system/kubelet.service
install -D -m 644 /tmp/10-kubeadm.conf /etc/systemd/system/kubelet.service.d/10-kubeadm.conf
mkdir -p -m 755 /etc/kubernetes/manifests
rm -f /tmp/config.toml /tmp/kubelet.service /tmp/10-kubeadm.conf /tmp/sysctl-k8s.conf /tmp/modules-k8s.conf /tmp/kubelet /tmp/kubectl /tmp/kubeadm
systemctl daemon-reload
systemctl enable kubelet >/dev/null 2>&1
EOF
}

import_node() { # i
  local ip file _sum ref; ip=$(ip_a "$1")
  while read -r file _sum ref <&3; do
    case $file in kube-apiserver.*|kube-controller-manager.*|kube-scheduler.*|etcd.*) [ "$1" = 1 ] || continue ;; esac
    on "$ip" ctr -n k8s.io images import - < "$IMG/$file" >/dev/null
    case $file in kube-*)
      on "$ip" ctr -n k8s.io images tag --force "$ref" "${ref%:*}:v1.20.2" </dev/null >/dev/null ;;
    esac
  done 3< "$IMG/images.txt"
}

# Runs "$1 i" for every node index in $2.. in parallel; fails if any fails.
parallel() {
  local fn=$1 pids=() p rc=0; shift
  for i in "$@"; do "$fn" "$i" > "$W/an-$fn-$i.log" 2>&1 & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ $rc = 0 ] || { echo "kubeadm way: $fn failed; see $KEEP/an-$fn-*.log" >&2; tail -5 "$W"/an-"$fn"-*.log >&2; }
  return $rc
}

join_node() { # i
  on "$(ip_a "$1")" kubeadm join "$CP:6443" --token "$TOKEN" --discovery-token-ca-cert-hash "$HASH" \
    --cri-socket /run/containerd/containerd.sock --skip-phases=preflight </dev/null
}

podnet_node() { # i: conflist over the node's podCIDR and routes to the others (src/podnet.rs)
  local ip name cidr routes="" j
  ip=$(ip_a "$1"); name=$(name_a "$1"); cidr=${CIDRS[$name]}
  for j in $(seq 1 "$N"); do
    [ "$j" = "$1" ] || routes+="ip -4 route replace ${CIDRS[$(name_a "$j")]} via $(ip_a "$j")"$'\n'
  done
  on "$ip" bash -s <<EOF
set -eu
mkdir -p /etc/cni/net.d
cat > /etc/cni/net.d/10-kubeboot-bridge.conflist <<'JSON'
{
  "cniVersion": "0.4.0",
  "name": "kubeboot-bridge",
  "plugins": [
    {
      "bridge": "cni0",
      "hairpinMode": true,
      "ipMasq": true,
      "ipam": {
        "ranges": [[{"subnet": "$cidr"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "type": "host-local"
      },
      "isGateway": true,
      "type": "bridge"
    },
    {"capabilities": {"portMappings": true}, "type": "portmap"}
  ]
}
JSON
$routes
EOF
}

AK=$W/kubeadm.conf
kc() { "$KUBECTL" --kubeconfig "$AK" "$@"; }
WORKERS=$(seq 2 "$N")
echo "the kubeadm way ..."
a0=$(now); c0=$(cpu_busy)
parallel prep_node $(seq 1 "$N") || exit 1
a1=$(now)
parallel import_node $(seq 1 "$N") || exit 1
a2=$(now)
scp -q "${SSHO[@]}" "$W/kubeadm.yaml" "root@$CP:/tmp/kubeadm.yaml"
if ! on "$CP" kubeadm init --config /tmp/kubeadm.yaml --skip-phases=preflight </dev/null > "$W/an-init.log" 2>&1; then
  echo "kubeadm init failed; see $KEEP/an-init.log" >&2; tail -20 "$W/an-init.log" >&2; exit 1
fi
on "$CP" cat /etc/kubernetes/admin.conf </dev/null > "$AK"
a3=$(now)
TOKEN=$(grep -o -- '--token [a-z0-9.]*' "$W/an-init.log" | head -n1 | cut -d' ' -f2)
HASH=$(grep -o -- 'sha256:[0-9a-f]*' "$W/an-init.log" | head -n1)
if [ "$N" -gt 1 ]; then parallel join_node $WORKERS || exit 1; fi
a4=$(now)
declare -A CIDRS
for _ in $(seq 1 600); do
  CIDRS=()
  while read -r n c; do [ -n "$c" ] && [ "$c" != "<none>" ] && CIDRS[$n]=$c; done < <(kc get nodes -o custom-columns=N:.metadata.name,C:.spec.podCIDR --no-headers 2>/dev/null)
  [ "${#CIDRS[@]}" = "$N" ] && break
  sleep 0.2
done
[ "${#CIDRS[@]}" = "$N" ] || { echo "kubeadm way: not every node got a podCIDR" >&2; kc get nodes -o wide >&2; exit 1; }
parallel podnet_node $(seq 1 "$N") || exit 1
rm -f "$W/an.ready"
ready_watch "$AK" "$W/an.ready" 300 || true
if [ -s "$W/an.ready" ]; then ready=$N; a5=$(head -n1 "$W/an.ready"); c5=$(sed -n 2p "$W/an.ready")
else ready=$(ready_count "$AK"); a5=$(now); c5=$(cpu_busy); fi
kc get nodes -o wide > "$W/an-nodes.txt" 2>&1 || true
kc get pods -A -o wide > "$W/an-pods.txt" 2>&1 || true
[ "$ready" = "$N" ] || { echo "kubeadm way: $ready of $N nodes Ready after 5m"; cat "$W/an-nodes.txt"; exit 1; }
printf '%s\n' "$a0" "$a1" "$a2" "$a3" "$a4" "$a5" > "$W/an-times.txt"
awk -v a="$c0" -v b="$c5" 'BEGIN{printf "%.2f\n", b - a}' > "$W/an-cpu.txt"
else
  # Profiling: each node's kubelet journal, for when it started, registered and was Ready.
  for i in $(seq 1 "$N"); do
    ssh -i "$STATE/$LK/id_ed25519" -o UserKnownHostsFile="$STATE/$LK/known_hosts" -o BatchMode=yes \
      "root@$NETK.$((10 + i))" journalctl -u kubelet -o short-precise --no-pager < /dev/null > "$W/kb-kubelet-node$i.log" 2>&1 || true
  done
fi # KUBEBOOT_BENCH_ONLY

# ---- the table -----------------------------------------------------------------------
python3 - "$W" "$N" <<'PY'
import json, re, sys
w, n = sys.argv[1], int(sys.argv[2])

def kb(name):
    marks, seq, images, hostdone, booted, cp_init_end = {}, {}, set(), {}, {}, None
    for line in open(f"{w}/{name}.log"):
        ts, _, rest = line.partition(" ")
        ts = float(ts)
        rest = rest.strip()
        if rest.startswith("START"): marks["start"] = ts
        elif rest.startswith("END"): marks["end"] = ts
        elif rest.startswith("{"):
            e = json.loads(rest)
            ev = e.get("event")
            if ev == "stage":
                marks.setdefault(e["stage"].split(":")[0].split(" (")[0], ts)
            elif ev == "step-started":
                seq.setdefault(e["host"], []).append((ts, e["step"]))
            elif ev == "step" and e["step"].get("kind") == "image_archive":
                images.add(e["step"]["name"])
            elif ev == "host-done":
                marks.setdefault("rt", {})[e["host"]] = e.get("roundTrips")
                hostdone[e["host"]] = ts
            elif ev == "phase" and e.get("phase") == "kubelet-wait-bootstrap" and ("performed" in e.get("message", "") or "has its client certificate" in e.get("message", "")):
                booted[e["host"]] = ts
            elif ev == "phase" and "init" in marks and e.get("phase") not in ("pod-network", None) and e.get("host", "").endswith("node1"):
                cp_init_end = ts
    # up's stages overlap (init once the control plane is prepared, each join once its
    # host is, the pod network during the joins), so its rows are the critical path to
    # the last node: preparation until the LAST host is prepared (split into that host's
    # image import and the rest), init on the control plane (overlapping the workers'
    # preparation: not part of the total's path when workers are slower), the joins
    # still running after the last host is prepared, then until every node is Ready.
    def import_span(h):
        steps = seq.get(h, [])
        idx = [i for i, (_, s) in enumerate(steps) if s in images]
        if not idx:
            return 0.0
        end = steps[idx[-1] + 1][0] if idx[-1] + 1 < len(steps) else hostdone.get(h, steps[idx[-1]][0])
        return end - steps[idx[0]][0]
    m = marks
    ph = dict.fromkeys(["host preparation", "image import", "init", "joins", "until Ready", "total", "busy CPU"])
    if hostdone and "start" in m:
        last = max(hostdone, key=hostdone.get)
        prepared = hostdone[last]
        imp = import_span(last)
        ph["host preparation"] = prepared - m["start"] - imp
        ph["image import"] = imp
        if "init" in m and cp_init_end:
            ph["init"] = cp_init_end - m["init"]
        joined = max([prepared] + list(booted.values()))
        ph["joins"] = joined - prepared
        end = m.get("end")
        try:
            ready = open(f"{w}/{name}.ready").read().split()
            end = float(ready[0])
            ph["busy CPU"] = float(ready[1]) - float(open(f"{w}/{name}.cpu0").read())
        except (OSError, ValueError, IndexError):
            pass
        if end is not None:
            ph["until Ready"] = end - joined
            ph["total"] = end - m["start"]
    ph["up exits"] = m["end"] - m["start"] if "end" in m and "start" in m else None
    rss = None
    for line in open(f"{w}/{name}.time"):
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1]) / 1024
    return ph, m.get("rt", {}), rss

full, rt_full, rss_full = kb("kb-full")
noop, rt_noop, rss_noop = kb("kb-noop")
an = dict.fromkeys(list(full), None)
try:
    a = [float(x) for x in open(f"{w}/an-times.txt")]
    an = {
        "host preparation": a[1] - a[0], "image import": a[2] - a[1], "init": a[3] - a[2],
        "joins": a[4] - a[3], "until Ready": a[5] - a[4], "total": a[5] - a[0],
        "busy CPU": float(open(f"{w}/an-cpu.txt").read()), "up exits": None,
    }
except OSError:
    pass  # KUBEBOOT_BENCH_ONLY=kubeboot: no anchor
f = lambda v: "-" if v is None else f"{v:.1f}s"
print()
print(f"{'phase':18} {'kubeboot up':>12} {'kubeadm way':>12} {'kubeadm/kubeboot':>17} {'kubeboot re-run':>16}")
for k in ["host preparation", "image import", "init", "joins", "until Ready", "total", "busy CPU", "up exits"]:
    r = f"{an[k] / full[k]:.2f}x" if full[k] and an[k] is not None else "-"
    print(f"{k:18} {f(full[k]):>12} {f(an[k]):>12} {r:>17} {f(noop[k]):>16}")
def rts(d): return ", ".join(f"{h.split('-')[-1]}={v}" for h, v in sorted(d.items()))
print(f"kubeboot SSH round trips per host (prepare): full: {rts(rt_full)}; re-run: {rts(rt_noop)}")
print("total: start to every node Ready; up exits: when `kubeboot up` returned (after its health report)")
print("busy CPU: CPU-seconds this machine spent (all processes, lab nodes included) from the start to every node Ready")
print("kubeboot's rows are its critical path: preparation until the last host is prepared (that host's")
print("image import split out), init (overlaps the workers' preparation), joins still running after the")
print("last host is prepared, then until Ready; the kubeadm way's rows follow one another")
print(f"kubeboot peak memory (max RSS): full {rss_full:.1f} MiB, re-run {rss_noop:.1f} MiB")
PY
echo "nodes Ready: kubeboot $(grep -c ' Ready ' "$W/kb-nodes.txt" || true)/$N, kubeadm way $(grep -c ' Ready ' "$W/an-nodes.txt" || true)/$N; logs: $KEEP"

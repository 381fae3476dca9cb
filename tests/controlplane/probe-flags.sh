#!/usr/bin/env bash
# Which flags of kubeadm 1.31-1.34 static Pod manifests (and kubeadm-flags.env)
# do the v1.20.2 binaries and etcd 3.5 reject?  Prints a Markdown table.
#
#   tests/controlplane/probe-flags.sh > /tmp/flags.md
#
# Method:
#   * kube-apiserver / kube-controller-manager / kube-scheduler / kubelet:
#     `BINARY <flag> --help`. cobra (or kubelet's own parser) parses every flag
#     before acting on --help, so an unknown flag, a bad value, or an unknown
#     feature gate fails exactly as it would at start-up (same message), and an
#     accepted one prints help and exits 0. Nothing is started.
#   * etcd and kube-scheduler --config: a real start on 127.0.0.1 (high ports,
#     temp dir); "rejected" = exited within a few seconds, "accepted" = still
#     running (then stopped by PID).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -z ${KUBEBOOT_K8S_BIN:-} || -z ${KUBEBOOT_ETCD35_BIN:-} ]]; then
  eval "$("$HERE/build-k8s.sh")"
fi
K=$KUBEBOOT_K8S_BIN
E=$KUBEBOOT_ETCD35_BIN
D=$(mktemp -d /tmp/kubeboot-probe.XXXXXX)
PID=
cleanup() {
  [[ -n $PID ]] && { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  rm -rf "$D"
}
trap cleanup EXIT

row() {  # component flag verdict message
  local msg=${4//|/\\|}
  printf '| %s | `%s` | %s | %s |\n' "$1" "$2" "$3" "${msg:+\`$msg\`}"
}

probe_parse() {  # component flag
  local comp=$1 flag=$2 out rc=0
  out=$(timeout 30 "$K/$comp" "$flag" --help 2>&1 >/dev/null) || rc=$?
  if ((rc == 0)); then
    row "$comp" "$flag" accepted ""
  else
    # first line that looks like the error (cobra: "Error: ..."; kubelet: "F... failed to parse")
    local m
    m=$(grep -m1 -E '^(Error:|[FE][0-9]{4} )' <<<"$out" \
        || grep -m1 -E 'invalid|unknown|unrecognized|failed' <<<"$out" || head -n1 <<<"$out")
    row "$comp" "$flag" "**rejected** (exit $rc)" "$(sed -E 's/^[IWEF][0-9]{4} [0-9:.]+ +[0-9]+ [a-z_.]+:[0-9]+\] //' <<<"$m")"
  fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while port_busy "$p"; do p=$((p + 1)); done; echo "$p"; }

probe_run() {  # component flag-for-table -- command...
  local comp=$1 shown=$2; shift 3
  local log=$D/run.log n=0
  "$@" >"$log" 2>&1 &
  PID=$!
  while kill -0 "$PID" 2>/dev/null && ((n < 40)); do sleep 0.1; n=$((n + 1)); done
  if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=
    row "$comp" "$shown" "accepted (ran 4 s)" ""
  else
    local rc=0; wait "$PID" || rc=$?; PID=
    local m
    m=$(grep -m1 -E '"level":"(fatal|error)"|error|Error|invalid|not defined|unknown|unrecognized' "$log" || tail -n1 "$log")
    # etcd logs JSON; keep the message part
    m=$(sed -E 's/.*"msg":"([^"]*)".*"error":"([^"]*)".*/\1: \2/' <<<"$m")
    row "$comp" "$shown" "**rejected** (exit $rc)" "$(sed -E 's/^[IWEF][0-9]{4} [0-9:.]+ +[0-9]+ [a-z_.]+:[0-9]+\] //' <<<"$m")"
  fi
}

etcd_probe() {  # flag
  local c p m
  c=$(free_port 22379); p=$(free_port $((c + 1))); m=$(free_port $((p + 1)))
  rm -rf "$D/etcd"
  probe_run etcd "$1" -- "$E/etcd" --name=probe --data-dir="$D/etcd" \
    --listen-client-urls=http://127.0.0.1:$c --advertise-client-urls=http://127.0.0.1:$c \
    --listen-peer-urls=http://127.0.0.1:$p --initial-advertise-peer-urls=http://127.0.0.1:$p \
    --initial-cluster=probe=http://127.0.0.1:$p --listen-metrics-urls=http://127.0.0.1:$m "$1"
}

echo "| component | flag | verdict | message |"
echo "| --- | --- | --- | --- |"

# negative controls: prove that each method does detect a bad flag
etcd_probe --no-such-flag=1
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
  probe_parse "$c" --no-such-flag=1
done

# ---- etcd 3.5 (kubeadm 1.31-1.33 render the experimental spellings, 1.34 with etcd 3.6 the new ones)
for f in \
  --experimental-initial-corrupt-check=true \
  --experimental-watch-progress-notify-interval=5s \
  --feature-gates=InitialCorruptCheck=true \
  --watch-progress-notify-interval=5s \
  --snapshot-count=10000 \
  --client-cert-auth=true \
  --peer-client-cert-auth=true; do
  etcd_probe "$f"
done

# ---- kube-apiserver: every flag kubeadm 1.31-1.34 renders by default, plus candidates
P=/etc/kubernetes/pki
for f in \
  --advertise-address=127.0.0.1 \
  --allow-privileged=true \
  --authorization-mode=Node,RBAC \
  --client-ca-file=$P/ca.crt \
  --enable-admission-plugins=NodeRestriction \
  --enable-bootstrap-token-auth=true \
  --etcd-cafile=$P/etcd/ca.crt \
  --etcd-certfile=$P/apiserver-etcd-client.crt \
  --etcd-keyfile=$P/apiserver-etcd-client.key \
  --etcd-servers=https://127.0.0.1:2379 \
  --kubelet-client-certificate=$P/apiserver-kubelet-client.crt \
  --kubelet-client-key=$P/apiserver-kubelet-client.key \
  --kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname \
  --proxy-client-cert-file=$P/front-proxy-client.crt \
  --proxy-client-key-file=$P/front-proxy-client.key \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-client-ca-file=$P/front-proxy-ca.crt \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-username-headers=X-Remote-User \
  --secure-port=6443 \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file=$P/sa.pub \
  --service-account-signing-key-file=$P/sa.key \
  --service-cluster-ip-range=10.96.0.0/12 \
  --tls-cert-file=$P/apiserver.crt \
  --tls-private-key-file=$P/apiserver.key \
  --bind-address=127.0.0.1 \
  --authorization-config=/etc/kubernetes/authz.yaml \
  --feature-gates=StructuredAuthorizationConfiguration=true \
  --feature-gates=AuthorizeNodeWithSelectors=true \
  --encryption-provider-config-automatic-reload=true \
  --insecure-port=0; do
  probe_parse kube-apiserver "$f"
done

# ---- kube-controller-manager
for f in \
  --allocate-node-cidrs=true \
  --authentication-kubeconfig=/etc/kubernetes/controller-manager.conf \
  --authorization-kubeconfig=/etc/kubernetes/controller-manager.conf \
  --bind-address=127.0.0.1 \
  --client-ca-file=$P/ca.crt \
  --cluster-cidr=10.244.0.0/16 \
  --cluster-name=kubernetes \
  --cluster-signing-cert-file=$P/ca.crt \
  --cluster-signing-key-file=$P/ca.key \
  '--controllers=*,bootstrapsigner,tokencleaner' \
  --kubeconfig=/etc/kubernetes/controller-manager.conf \
  --leader-elect=true \
  --requestheader-client-ca-file=$P/front-proxy-ca.crt \
  --root-ca-file=$P/ca.crt \
  --service-account-private-key-file=$P/sa.key \
  --service-cluster-ip-range=10.96.0.0/12 \
  --use-service-account-credentials=true \
  --port=0; do
  probe_parse kube-controller-manager "$f"
done

# ---- kube-scheduler
for f in \
  --authentication-kubeconfig=/etc/kubernetes/scheduler.conf \
  --authorization-kubeconfig=/etc/kubernetes/scheduler.conf \
  --bind-address=127.0.0.1 \
  --kubeconfig=/etc/kubernetes/scheduler.conf \
  --leader-elect=true \
  --port=0; do
  probe_parse kube-scheduler "$f"
done
# a kubeconfig for a closed loopback port: a config that parses makes the
# scheduler run (and retry the connection), one that does not makes it exit
cat > "$D/unreachable.conf" <<'KC'
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
KC
for v in v1 v1beta3 v1beta2 v1beta1; do
  printf 'apiVersion: kubescheduler.config.k8s.io/%s\nkind: KubeSchedulerConfiguration\nclientConnection:\n  kubeconfig: %s\nleaderElection:\n  leaderElect: false\n' "$v" "$D/unreachable.conf" > "$D/sched-$v.yaml"
  sp=$(free_port 23259)
  probe_run kube-scheduler "--config=<KubeSchedulerConfiguration $v>" -- \
    "$K/kube-scheduler" --config="$D/sched-$v.yaml" --bind-address=127.0.0.1 --secure-port="$sp" --port=0
done

# ---- kubelet: kubeadm 1.31-1.34 kubeadm-flags.env + the systemd drop-in's flags
for f in \
  --container-runtime-endpoint=unix:///var/run/containerd/containerd.sock \
  --pod-infra-container-image=registry.k8s.io/pause:3.10 \
  --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
  --kubeconfig=/etc/kubernetes/kubelet.conf \
  --config=/var/lib/kubelet/config.yaml \
  --node-ip=127.0.0.1 \
  --container-runtime=remote; do
  probe_parse kubelet "$f"
done

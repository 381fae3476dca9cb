#!/usr/bin/env bash
# (arg arrays are built from fixed addresses and numeric ports)
# shellcheck disable=SC2206,SC2054,SC2191
# Smoke test: a real Kubernetes v1.20.2 control plane (etcd 3.5 +
# kube-apiserver + kube-controller-manager + kube-scheduler) started as plain
# processes on 127.0.0.1, with a PKI and kubeconfigs made by kubeadm v1.20.2.
#
#   tests/controlplane/smoke.sh
#
# Binaries: $KUBEBOOT_K8S_BIN / $KUBEBOOT_ETCD35_BIN if set, else whatever
# build-k8s.sh prints (a cache hit is instant; a cold cache builds first).
#
# Env knobs:
#   KUBEBOOT_SMOKE_FLAVOR=1.20 (default)  flags exactly as kubeadm 1.20 renders them
#   KUBEBOOT_SMOKE_FLAVOR=1.31            flags as kubeadm 1.31 renders them, plus
#                                         the few a 1.20 binary needs to keep every
#                                         listener on 127.0.0.1 (see README.md)
#   KUBEBOOT_SMOKE_KEEP=1                 keep the temp dir (certs, logs, etcd data)
#   KUBEBOOT_SMOKE_TIMEOUT=120            seconds to wait for each readiness step
#   KUBEBOOT_SMOKE_{APISERVER,ETCD_CLIENT,ETCD_PEER,ETCD_METRICS,KCM,SCHED}_PORT
#                                         preferred ports (next free one is used)
# Every process listens on 127.0.0.1 only and is stopped by PID on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FLAVOR=${KUBEBOOT_SMOKE_FLAVOR:-1.20}
TIMEOUT=${KUBEBOOT_SMOKE_TIMEOUT:-120}
NODE=smoke
ADDR=127.0.0.1

log() { printf '[smoke %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }

if [[ -z ${KUBEBOOT_K8S_BIN:-} || -z ${KUBEBOOT_ETCD35_BIN:-} ]]; then
  eval "$("$HERE/build-k8s.sh")"
fi
K=$KUBEBOOT_K8S_BIN
E=$KUBEBOOT_ETCD35_BIN
for b in "$K/kubeadm" "$K/kube-apiserver" "$K/kube-controller-manager" "$K/kube-scheduler" "$K/kubectl" "$E/etcd"; do
  [[ -x $b ]] || die "missing binary $b"
done

# ---- ports ----------------------------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
USED_PORTS=" "
pick_port() {  # first free port >= $1 that we have not handed out yet
  local p=$1
  while port_busy "$p" || [[ $USED_PORTS == *" $p "* ]]; do p=$((p + 1)); done
  USED_PORTS+="$p "
  echo "$p"
}
API_PORT=$(pick_port "${KUBEBOOT_SMOKE_APISERVER_PORT:-16443}")
ETCD_CLIENT_PORT=$(pick_port "${KUBEBOOT_SMOKE_ETCD_CLIENT_PORT:-12379}")
ETCD_PEER_PORT=$(pick_port "${KUBEBOOT_SMOKE_ETCD_PEER_PORT:-12380}")
ETCD_METRICS_PORT=$(pick_port "${KUBEBOOT_SMOKE_ETCD_METRICS_PORT:-12381}")
KCM_PORT=$(pick_port "${KUBEBOOT_SMOKE_KCM_PORT:-20257}")
SCHED_PORT=$(pick_port "${KUBEBOOT_SMOKE_SCHED_PORT:-20259}")

# ---- temp dir + cleanup -------------------------------------------------------------
D=$(mktemp -d /tmp/kubeboot-smoke.XXXXXX)
PIDS=()
NAMES=()
cleanup() {
  local rc=$?
  local i n t
  # reverse start order (scheduler, KCM, apiserver, etcd), one at a time, so
  # that the apiserver can still reach etcd while it shuts down
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    t=$(now)
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    n=0
    while kill -0 "${PIDS[$i]}" 2>/dev/null && ((n < 150)); do sleep 0.1; n=$((n + 1)); done
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
      log "${NAMES[$i]} (pid ${PIDS[$i]}) still running 15s after SIGTERM, sending SIGKILL"
      kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    fi
    wait "${PIDS[$i]}" 2>/dev/null || true
    log "stopped ${NAMES[$i]} (pid ${PIDS[$i]}) in $(since "$t")s"
  done
  if ((rc != 0)); then
    for n in "${NAMES[@]}"; do
      log "---- last lines of $n.log ----"
      tail -n 15 "$D/$n.log" >&2 2>/dev/null || true
    done
  fi
  if [[ -n ${KUBEBOOT_SMOKE_KEEP:-} ]]; then
    log "kept $D"
  else
    rm -rf "$D"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() {  # start NAME BINARY ARGS...: background process, log in $D/NAME.log
  local name=$1; shift
  "$@" >"$D/$name.log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
  log "started $name pid $! ($(basename "$1"), ${#@} args)"
}
alive() {
  local i
  for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || die "${NAMES[$i]} exited early"
  done
}
wait_for() {  # wait_for DESCRIPTION COMMAND...
  local what=$1; shift
  local t0; t0=$(now)
  until "$@" >/dev/null 2>&1; do
    alive
    if awk -v a="$t0" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN{exit !(b-a > t)}'; then
      die "timed out after ${TIMEOUT}s waiting for $what"
    fi
    sleep 0.1
  done
}

# ---- PKI and kubeconfigs, made by kubeadm v1.20.2 ---------------------------------
# kubeadm 1.20 refuses a loopback advertise address ("unable to select an IP
# from lo network interface": it treats 127.0.0.1 as "use the global IP found on
# lo"), so the PKI is made the way an HA setup would be: a controlPlaneEndpoint of
# 127.0.0.1:$API_PORT (which also puts 127.0.0.1 into the apiserver cert).
# The advertise address kubeadm picks itself (the default-route IP) ends up
# only as an extra SAN and in controller-manager.conf/scheduler.conf, which
# are re-pointed at 127.0.0.1 below; nothing ever connects to it.
T=$(now)
PKI=$D/pki
ADV=()
[[ -n ${KUBEBOOT_SMOKE_ADVERTISE_ADDRESS:-} ]] && ADV=(--apiserver-advertise-address="$KUBEBOOT_SMOKE_ADVERTISE_ADDRESS")
"$K/kubeadm" init phase certs all --cert-dir "$PKI" "${ADV[@]}" \
  --control-plane-endpoint=$ADDR:$API_PORT --apiserver-cert-extra-sans=$ADDR,localhost \
  --kubernetes-version v1.20.2 >"$D/kubeadm-certs.log" 2>&1 \
  || { cat "$D/kubeadm-certs.log" >&2; die "kubeadm init phase certs all"; }
"$K/kubeadm" init phase kubeconfig all --cert-dir "$PKI" --kubeconfig-dir "$D" "${ADV[@]}" \
  --control-plane-endpoint=$ADDR:$API_PORT --apiserver-bind-port "$API_PORT" \
  --node-name $NODE --kubernetes-version v1.20.2 >"$D/kubeadm-kubeconfig.log" 2>&1 \
  || { cat "$D/kubeadm-kubeconfig.log" >&2; die "kubeadm init phase kubeconfig all"; }
grep -h 'serving cert is signed' "$D/kubeadm-certs.log" >&2 || true
for f in admin.conf controller-manager.conf scheduler.conf kubelet.conf; do
  [[ -s $D/$f ]] || die "kubeadm did not write $f"
  # cluster name in kubeadm's kubeconfigs is "kubernetes"
  "$K/kubectl" --kubeconfig "$D/$f" config set-cluster kubernetes --server="https://$ADDR:$API_PORT" >/dev/null
done
log "kubeadm PKI + kubeconfigs in $(since "$T")s"

# ---- flags ----------------------------------------------------------------------
ETCD_ARGS=(
  --name=$NODE
  --data-dir="$D/etcd"
  --advertise-client-urls=https://$ADDR:$ETCD_CLIENT_PORT
  --listen-client-urls=https://$ADDR:$ETCD_CLIENT_PORT
  --listen-peer-urls=https://$ADDR:$ETCD_PEER_PORT
  --initial-advertise-peer-urls=https://$ADDR:$ETCD_PEER_PORT
  --initial-cluster=$NODE=https://$ADDR:$ETCD_PEER_PORT
  --listen-metrics-urls=http://$ADDR:$ETCD_METRICS_PORT
  --cert-file="$PKI/etcd/server.crt"
  --key-file="$PKI/etcd/server.key"
  --trusted-ca-file="$PKI/etcd/ca.crt"
  --client-cert-auth=true
  --peer-cert-file="$PKI/etcd/peer.crt"
  --peer-key-file="$PKI/etcd/peer.key"
  --peer-trusted-ca-file="$PKI/etcd/ca.crt"
  --peer-client-cert-auth=true
  --snapshot-count=10000
)
API_ARGS=(
  --advertise-address=$ADDR
  --bind-address=$ADDR
  --secure-port="$API_PORT"
  --allow-privileged=true
  --authorization-mode=Node,RBAC
  --client-ca-file="$PKI/ca.crt"
  --enable-admission-plugins=NodeRestriction
  --enable-bootstrap-token-auth=true
  --etcd-cafile="$PKI/etcd/ca.crt"
  --etcd-certfile="$PKI/apiserver-etcd-client.crt"
  --etcd-keyfile="$PKI/apiserver-etcd-client.key"
  --etcd-servers=https://$ADDR:$ETCD_CLIENT_PORT
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt"
  --kubelet-client-key="$PKI/apiserver-kubelet-client.key"
  --kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname
  --proxy-client-cert-file="$PKI/front-proxy-client.crt"
  --proxy-client-key-file="$PKI/front-proxy-client.key"
  --requestheader-allowed-names=front-proxy-client
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt"
  --requestheader-extra-headers-prefix=X-Remote-Extra-
  --requestheader-group-headers=X-Remote-Group
  --requestheader-username-headers=X-Remote-User
  --service-account-issuer=https://kubernetes.default.svc.cluster.local
  --service-account-key-file="$PKI/sa.pub"
  --service-account-signing-key-file="$PKI/sa.key"
  --service-cluster-ip-range=10.96.0.0/12
  --tls-cert-file="$PKI/apiserver.crt"
  --tls-private-key-file="$PKI/apiserver.key"
  # 1.20 only (removed in 1.24): without it the apiserver also serves
  # unauthenticated HTTP on 127.0.0.1:8080
  --insecure-port=0
)
KCM_ARGS=(
  --bind-address=$ADDR
  --secure-port="$KCM_PORT"
  --authentication-kubeconfig="$D/controller-manager.conf"
  --authorization-kubeconfig="$D/controller-manager.conf"
  --kubeconfig="$D/controller-manager.conf"
  --client-ca-file="$PKI/ca.crt"
  --cluster-name=kubernetes
  --cluster-signing-cert-file="$PKI/ca.crt"
  --cluster-signing-key-file="$PKI/ca.key"
  --controllers='*,bootstrapsigner,tokencleaner'
  --leader-elect=true
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt"
  --root-ca-file="$PKI/ca.crt"
  --service-account-private-key-file="$PKI/sa.key"
  --use-service-account-credentials=true
  # 1.20 only (removed in 1.24): without it KCM also serves insecure HTTP on 0.0.0.0:10252
  --port=0
)
SCHED_ARGS=(
  --bind-address=$ADDR
  --secure-port="$SCHED_PORT"
  --authentication-kubeconfig="$D/scheduler.conf"
  --authorization-kubeconfig="$D/scheduler.conf"
  --kubeconfig="$D/scheduler.conf"
  --leader-elect=true
  # 1.20 only (removed in 1.24): without it the scheduler also serves insecure HTTP on 0.0.0.0:10251
  --port=0
)
case $FLAVOR in
  1.20) ;;
  1.31)
    # What kubeadm 1.31-1.33 adds on top of the 1.20 set (etcd 3.5 accepts
    # these spellings; kubeadm 1.34 with etcd 3.6 renders
    # --feature-gates=InitialCorruptCheck=true and
    # --watch-progress-notify-interval=5s instead, which etcd 3.5 rejects).
    ETCD_ARGS+=(--experimental-initial-corrupt-check=true --experimental-watch-progress-notify-interval=5s)
    KCM_ARGS+=(--service-cluster-ip-range=10.96.0.0/12)
    ;;
  *) die "unknown KUBEBOOT_SMOKE_FLAVOR=$FLAVOR (1.20 or 1.31)" ;;
esac

# ---- start ----------------------------------------------------------------------
KC=("$K/kubectl" --kubeconfig "$D/admin.conf" --request-timeout=5s)
T0=$(now)
start etcd "$E/etcd" "${ETCD_ARGS[@]}"
etcd_healthy() {
  ETCDCTL_API=3 "$E/etcdctl" --endpoints=https://$ADDR:$ETCD_CLIENT_PORT \
    --cacert="$PKI/etcd/ca.crt" --cert="$PKI/apiserver-etcd-client.crt" --key="$PKI/apiserver-etcd-client.key" \
    --command-timeout=2s endpoint health
}
if [[ -x $E/etcdctl ]]; then
  wait_for "etcd health" etcd_healthy
  log "etcd healthy after $(since "$T0")s"
fi
T_API=$(now)
start kube-apiserver "$K/kube-apiserver" "${API_ARGS[@]}"
start kube-controller-manager "$K/kube-controller-manager" "${KCM_ARGS[@]}"
start kube-scheduler "$K/kube-scheduler" "${SCHED_ARGS[@]}"

wait_for "kube-apiserver /readyz" "${KC[@]}" get --raw /readyz
READY_API=$(since "$T_API")
READY_ALL=$(since "$T0")
log "kube-apiserver /readyz ok: ${READY_API}s after kube-apiserver start, ${READY_ALL}s after etcd start"

# ---- checks ---------------------------------------------------------------------
"${KC[@]}" version --short >&2
log "kubectl get ns:"
NS=$("${KC[@]}" get ns)
printf '%s\n' "$NS" >&2
for ns in default kube-system kube-public kube-node-lease; do
  grep -q "^$ns " <<<"$NS" || die "namespace $ns missing"
done

lease_held() { "${KC[@]}" -n kube-system get lease "$1" -o 'jsonpath={.spec.holderIdentity}' | grep -q .; }
secure_healthz() {  # the component's own https /healthz on 127.0.0.1 (anonymous is allowed for /healthz)
  "$K/kubectl" --kubeconfig "$D/admin.conf" --server "https://$ADDR:$1" --insecure-skip-tls-verify \
    --request-timeout=5s get --raw /healthz | grep -qx ok
}
wait_for "kube-controller-manager leader lease" lease_held kube-controller-manager
wait_for "kube-scheduler leader lease" lease_held kube-scheduler
wait_for "kube-controller-manager /healthz on :$KCM_PORT" secure_healthz "$KCM_PORT"
wait_for "kube-scheduler /healthz on :$SCHED_PORT" secure_healthz "$SCHED_PORT"
# the serviceaccount controller (in KCM) makes the default ServiceAccount
wait_for "default ServiceAccount (made by kube-controller-manager)" "${KC[@]}" -n default get sa default
READY_CP=$(since "$T0")
log "controller-manager + scheduler leading and serving: ${READY_CP}s after etcd start"

# all our listeners must be on loopback
LISTEN=""
if command -v ss >/dev/null; then
  for pid in "${PIDS[@]}"; do
    LISTEN+=$(ss -Hltnp 2>/dev/null | grep "pid=$pid," | awk '{print $4}' | tr '\n' ' ')
  done
  log "listening: $LISTEN"
  for a in $LISTEN; do
    [[ $a == 127.0.0.1:* ]] || die "listener not on 127.0.0.1: $a"
  done
fi

# ---- memory ---------------------------------------------------------------------
sleep "${KUBEBOOT_SMOKE_SETTLE:-5}"
total=0
for i in "${!PIDS[@]}"; do
  kb=$(awk '/^VmRSS:/{print $2}' "/proc/${PIDS[$i]}/status")
  total=$((total + kb))
  log "$(printf 'RSS %-24s %6d MiB' "${NAMES[$i]}" $((kb / 1024)))"
done
log "$(printf 'RSS %-24s %6d MiB' total $((total / 1024)))"

echo "smoke: flavor=$FLAVOR apiserver_start_to_readyz=${READY_API}s etcd_start_to_readyz=${READY_ALL}s control_plane_ready=${READY_CP}s rss_total=$((total / 1024))MiB"
echo "1 passed, 0 failed"

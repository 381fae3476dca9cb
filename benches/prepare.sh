#!/usr/bin/env bash
# Host preparation, kubeboot vs ansible-core, on kubeboot lab nodes (systemd-nspawn
# Debian with real sshd). Two labs of N nodes each (one per tool, so both start from the
# same fresh state); the .deb files are downloaded into every node's apt cache first and
# not timed ("full run excluding package download"); then:
#   1. full run: kubeboot prepare  vs  ansible-playbook benches/ansible/prepare-node.yml
#   2. no-op re-run of both
# and kubeboot's SSH round trips per host. kubelet/kubectl are 64 MiB / 16 MiB STAND-IN
# files (random bytes, not the real binaries) given to both tools as local files pinned
# by sha256.
#
#   bash benches/prepare.sh [NODES] [--latency MS] [--preinstalled]   (root; default 10 nodes)
#
# --preinstalled installs the packages (not only downloads them) before the timed runs,
# so the full run measures the tools' own work: files, sysctls, modules, services, the
# 80 MiB of binaries to every host, handlers. Without it, the full run includes dpkg
# unpacking and configuring containerd & co., which is the same work for both tools.
#
# Needs: root, what `kubeboot lab` needs, tinyproxy (tests/support/start-tinyproxy.sh),
# python3-venv; installs ansible-core into /var/tmp/kubeboot-bench-venv with pip.
# --latency MS adds that much delay each way with `tc qdisc ... netem` on the lab bridges.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10}
LAT=""
PRE=""
shift || true
while [ $# -gt 0 ]; do
  case $1 in
    --latency) LAT=${2:?--latency needs milliseconds}; shift 2 ;;
    --preinstalled) PRE=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q
K=$CARGO_TARGET_DIR/release/kubeboot
VENV=/var/tmp/kubeboot-bench-venv
if [ ! -x $VENV/bin/ansible-playbook ]; then
  python3 -m venv $VENV && $VENV/bin/pip install -q ansible-core
fi
ANSIBLE_VERSION=$($VENV/bin/ansible --version | sed -n 1p)
PROXY_LINE=$(bash tests/support/start-tinyproxy.sh start | grep -o 'http://[0-9.]*:[0-9]*' | tail -1)
PORT=${PROXY_LINE##*:}
STATE=$(mktemp -d /tmp/kubeboot-bench.XXXXXX)
export KUBEBOOT_LAB_STATE=$STATE
WORK=$STATE/work; mkdir -p $WORK
KEEP=${KUBEBOOT_BENCH_LOGS:-/tmp/kubeboot-bench-logs}
cleanup() {
  rm -rf "$KEEP"; mkdir -p "$KEEP"; cp "$WORK"/*.json "$WORK"/*.log "$KEEP"/ 2>/dev/null || true
  $K lab down --name kbb-k >/dev/null 2>&1 || true
  $K lab down --name kbb-a >/dev/null 2>&1 || true
  rm -rf "$STATE"
}
trap cleanup EXIT

echo "== $N nodes per lab; $ANSIBLE_VERSION; kubeboot $($K version)${LAT:+; netem delay ${LAT}ms}${PRE:+; packages preinstalled}"
$K lab up --name kbb-k --subnet 10.213.71.0/24 --nodes "$N" --apt-proxy "http://{bridge}:$PORT" >/dev/null
$K lab up --name kbb-a --subnet 10.213.72.0/24 --nodes "$N" --apt-proxy "http://{bridge}:$PORT" >/dev/null

# Stand-in binaries.
head -c $((64 << 20)) /dev/urandom > $WORK/kubelet
head -c $((16 << 20)) /dev/urandom > $WORK/kubectl
KUBELET_SHA=$(sha256sum $WORK/kubelet | cut -d' ' -f1)
KUBECTL_SHA=$(sha256sum $WORK/kubectl | cut -d' ' -f1)
# ansible's copy module verifies the transfer by SHA-1 only.
KUBELET_SHA1=$(sha1sum $WORK/kubelet | cut -d' ' -f1)
KUBECTL_SHA1=$(sha1sum $WORK/kubectl | cut -d' ' -f1)

# Pre-download the packages on every node (not timed).
pids=()
for lab in kbb-k kbb-a; do
  for i in $(seq 1 "$N"); do
    # ansible needs python3 on its targets (kubeboot needs only sh): installed, not timed.
    extra=""; [ $lab = kbb-a ] && extra="&& apt-get install -qq -y python3 >/dev/null"
    [ -n "$PRE" ] && extra="$extra && apt-get install -qq -y containerd runc containernetworking-plugins conntrack socat iptables ethtool >/dev/null"
    (for try in 1 2 3; do
       $K lab ssh --name $lab node$i -- "apt-get update -qq && apt-get install -qq --download-only -y containerd runc containernetworking-plugins conntrack socat iptables ethtool >/dev/null $extra" && exit 0
       echo "pre-download on $lab node$i failed (try $try)" >&2; sleep 3
     done; exit 1) &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p"; done

if [ -n "$LAT" ]; then
  for lab in kbb-k kbb-a; do tc qdisc add dev "kb-$lab-br" root netem delay "${LAT}ms"; done
fi

# ansible inventory from lab kbb-a's cluster.yaml.
A=$STATE/kbb-a
{
  echo "[all]"
  for i in $(seq 1 "$N"); do echo "kbb-a-node$i ansible_host=10.213.72.$((10 + i))"; done
  echo "[all:vars]"
  echo "ansible_user=root"
  echo "ansible_ssh_private_key_file=$A/id_ed25519"
  echo "ansible_ssh_common_args='-o UserKnownHostsFile=$A/known_hosts -o StrictHostKeyChecking=yes'"
  echo "ansible_python_interpreter=/usr/bin/python3"
} > $WORK/inventory.ini
cat > $WORK/ansible.cfg <<CFG
[defaults]
forks = $N
host_key_checking = True
interpreter_python = /usr/bin/python3
[ssh_connection]
pipelining = True
CFG

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
kb() {
  $K prepare -f $STATE/kbb-k/cluster.yaml -o json --concurrency 30 \
    --artifact "kubelet=$WORK/kubelet#sha256:$KUBELET_SHA" \
    --artifact "kubectl=$WORK/kubectl#sha256:$KUBECTL_SHA" > "$1" || echo "kubeboot exit $?" >&2
}
an() {
  ANSIBLE_CONFIG=$WORK/ansible.cfg $VENV/bin/ansible-playbook -i $WORK/inventory.ini \
    -e "kubelet_src=$WORK/kubelet kubelet_sha1=$KUBELET_SHA1 kubectl_src=$WORK/kubectl kubectl_sha1=$KUBECTL_SHA1 pause_image=registry.k8s.io/pause:3.10.1" \
    benches/ansible/prepare-node.yml > "$1" || echo "ansible-playbook exit $?" >&2
}

t0=$(now); kb $WORK/kb-full.json; t1=$(now)
t2=$(now); an $WORK/an-full.log; t3=$(now)
t4=$(now); kb $WORK/kb-noop.json; t5=$(now)
t6=$(now); an $WORK/an-noop.log; t7=$(now)

KB_FULL=$(secs $t0 $t1); AN_FULL=$(secs $t2 $t3); KB_NOOP=$(secs $t4 $t5); AN_NOOP=$(secs $t6 $t7)
summary() { python3 - "$1" <<'PY'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
s = [e for e in s if e.get("event") == "summary"][0]
hosts = s["hosts"]
rt = sorted({h.get("roundTrips") for h in hosts})
ch = sorted({sum(1 for st in h["steps"] if st["outcome"] == "changed") for h in hosts})
print(f"failed={len(s['failedHosts'])} changed/host={ch} round-trips/host={rt}")
PY
}
echo "kubeboot full:  ${KB_FULL}s  ($(summary $WORK/kb-full.json))"
echo "ansible  full:  ${AN_FULL}s  ($(grep -E '^kbb-a-node1 ' $WORK/an-full.log | tr -s ' '))"
echo "kubeboot no-op: ${KB_NOOP}s  ($(summary $WORK/kb-noop.json))"
echo "ansible  no-op: ${AN_NOOP}s  ($(grep -E '^kbb-a-node1 ' $WORK/an-noop.log | tr -s ' '))"
python3 -c "print(f'ratio ansible/kubeboot: full {$AN_FULL/$KB_FULL:.1f}x, no-op {$AN_NOOP/$KB_NOOP:.1f}x')"
echo "logs: $KEEP"
grep -q '"failedHosts":\[\]' $WORK/kb-full.json || { echo "kubeboot run failed"; exit 1; }
if grep -qE '(failed|unreachable)=[1-9]' $WORK/an-full.log; then echo "ansible run failed"; tail -30 $WORK/an-full.log; exit 1; fi

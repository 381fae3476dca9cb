#!/usr/bin/env bash
# Writes the kubeboot inventory (a kubeboot.io/v1alpha1 Cluster) for the Vagrant lab.
#
#   cd vagrant && vagrant up && ./cluster-yaml.sh > cluster.yaml
#
# Where each value comes from:
#   - machines, private addresses, roles, NIC: nodes.rb, the definition the Vagrantfile
#     uses too (run with the same KUBEBOOT_* environment as `vagrant up`);
#   - SSH user and private key per machine: `vagrant ssh-config`. Its HostName/Port are
#     NOT used as the address: VirtualBox reports 127.0.0.1 and a forwarded port, libvirt
#     the management NIC. kubeboot connects to the private address, port 22, instead;
#   - host keys: ssh-keyscan of each private address, written to known_hosts. That trusts
#     whatever keys answer the first time (trust on first use).
# The YAML itself is written in one place: emit_inventory below.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: cluster-yaml.sh [options] > cluster.yaml

  --ssh-config FILE          read `vagrant ssh-config` output from FILE (- for stdin)
                             instead of running `vagrant ssh-config`
  --known-hosts FILE         known_hosts to fill and name in the inventory
                             [vagrant/known_hosts]
  --no-keyscan               do not run ssh-keyscan; known_hosts is left as it is
  --key FILE                 private key for every host instead of Vagrant's per-VM keys
                             (authorize its .pub with KUBEBOOT_SSH_PUBKEY at vagrant up)
  --name NAME                cluster name [vagrant]
  --kubernetes-version VER   [v1.34.2]
  -o, --output FILE          write the inventory to FILE (atomically) instead of stdout
  -h, --help

Environment: the KUBEBOOT_* variables of nodes.rb (same values as at `vagrant up`);
KUBEBOOT_RUBY picks the ruby that runs nodes.rb.
EOF
}

die() {
  echo "cluster-yaml.sh: $*" >&2
  exit 1
}

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ssh_config_file=""
known_hosts="$dir/known_hosts"
keyscan=1
key=""
name="vagrant"
k8s_version="v1.34.2"
output=""

while [ $# -gt 0 ]; do
  case "$1" in
    --ssh-config) [ $# -ge 2 ] || die "$1 needs a value"; ssh_config_file=$2; shift 2 ;;
    --known-hosts) [ $# -ge 2 ] || die "$1 needs a value"; known_hosts=$2; shift 2 ;;
    --no-keyscan) keyscan=0; shift ;;
    --key) [ $# -ge 2 ] || die "$1 needs a value"; key=$2; shift 2 ;;
    --name) [ $# -ge 2 ] || die "$1 needs a value"; name=$2; shift 2 ;;
    --kubernetes-version) [ $# -ge 2 ] || die "$1 needs a value"; k8s_version=$2; shift 2 ;;
    -o | --output) [ $# -ge 2 ] || die "$1 needs a value"; output=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

[[ $name =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "--name $name: use lowercase letters, digits and dashes"
[[ $k8s_version =~ ^v?[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "--kubernetes-version $k8s_version: expected e.g. v1.34.2"

# Absolute paths: kubeboot may run from another directory than this script.
absolute() {
  case "$1" in
    /*) printf '%s' "$1" ;;
    \~/*) printf '%s/%s' "$HOME" "${1#\~/}" ;;
    *) printf '%s/%s' "$(pwd)" "$1" ;;
  esac
}
known_hosts=$(absolute "$known_hosts")
[ -z "$key" ] || key=$(absolute "$key")
[[ $known_hosts$key != *[[:cntrl:]]* ]] || die "control character in a path"

# --- the machines, from the shared definition --------------------------------------------
ruby=${KUBEBOOT_RUBY:-}
if [ -z "$ruby" ]; then
  # Debian's vagrant depends on ruby; HashiCorp's packages carry their own.
  ruby=$(command -v ruby || true)
  [ -n "$ruby" ] || [ ! -x /opt/vagrant/embedded/bin/ruby ] || ruby=/opt/vagrant/embedded/bin/ruby
fi
[ -n "$ruby" ] || die "needs ruby to read nodes.rb (it comes with vagrant; or set KUBEBOOT_RUBY)"
lab=$("$ruby" "$dir/nodes.rb") || die "nodes.rb rejected the KUBEBOOT_* settings (see above)"

iface="" pod_subnet="" service_subnet=""
node_names=() node_ips=() node_roles=()
while IFS=$'\t' read -r kind a b c; do
  case "$kind" in
    iface) iface=$a ;;
    podSubnet) pod_subnet=$a ;;
    serviceSubnet) service_subnet=$a ;;
    node) node_names+=("$a"); node_ips+=("$b"); node_roles+=("$c") ;;
  esac
done <<<"$lab"
if [ ${#node_names[@]} -eq 0 ] || [ -z "$iface" ]; then
  die "nodes.rb printed no machines"
fi

# --- SSH settings, from `vagrant ssh-config` ----------------------------------------------
if [ -z "$ssh_config_file" ]; then
  command -v vagrant >/dev/null || die "vagrant not found (apt-get install vagrant), or pass --ssh-config FILE"
  ssh_config=$(cd "$dir" && vagrant ssh-config) ||
    die "vagrant ssh-config failed: are all machines up (vagrant status)?"
elif [ "$ssh_config_file" = - ]; then
  ssh_config=$(cat)
else
  [ -r "$ssh_config_file" ] || die "--ssh-config $ssh_config_file: cannot read it"
  ssh_config=$(cat "$ssh_config_file")
fi

# One line per Host block: name, HostName, User, Port, first IdentityFile, separated by
# \037 (not tabs, so that an empty field stays a field).
# Keywords are case-insensitive in ssh_config; Vagrant quotes paths that contain spaces.
parsed=$(awk '
  function flush() { if (host != "") print host "\037" hn "\037" user "\037" port "\037" id }
  function value(   v) {
    v = $0
    sub(/^[ \t]*[A-Za-z]+[ \t=]+/, "", v)
    sub(/[ \t\r]+$/, "", v)
    if (v ~ /^".*"$/) v = substr(v, 2, length(v) - 2)
    return v
  }
  {
    k = tolower($1)
    if (k == "host") { flush(); host = $2; hn = ""; user = ""; port = "22"; id = "" }
    else if (k == "hostname") hn = value()
    else if (k == "user") user = value()
    else if (k == "port") port = value()
    else if (k == "identityfile" && id == "") id = value()
  }
  END { flush() }
' <<<"$ssh_config")
[ -n "$parsed" ] || die "no Host entries in the ssh-config input"

# Plain indexed arrays (macOS still ships bash 3.2: no associative arrays).
cfg_names=() cfg_hostnames=() cfg_users=() cfg_ports=() cfg_keys=()
while IFS=$'\037' read -r h hn u p id; do
  [[ $u =~ ^[A-Za-z0-9._][A-Za-z0-9._-]*$ ]] || die "ssh-config: Host $h: bad or missing User '$u'"
  [[ $p =~ ^[0-9]+$ ]] || die "ssh-config: Host $h: bad Port '$p'"
  [ -n "$id" ] || [ -n "$key" ] || die "ssh-config: Host $h has no IdentityFile (pass --key FILE)"
  [[ $id != *[[:cntrl:]]* ]] || die "ssh-config: Host $h: control character in IdentityFile"
  cfg_names+=("$h") cfg_hostnames+=("$hn") cfg_users+=("$u") cfg_ports+=("$p")
  if [ -n "$id" ]; then cfg_keys+=("$(absolute "$id")"); else cfg_keys+=(""); fi
done <<<"$parsed"

# Index of Host $1 in the ssh-config arrays, or nothing.
cfg_index() {
  local j
  for j in "${!cfg_names[@]}"; do
    if [ "${cfg_names[j]}" = "$1" ]; then
      echo "$j"
      return
    fi
  done
}

# The two lists must name the same machines: a difference means KUBEBOOT_WORKERS (or the
# directory) is not the one `vagrant up` ran with.
for h in "${cfg_names[@]}"; do
  found=0
  for n in "${node_names[@]}"; do [ "$n" != "$h" ] || found=1; done
  [ $found = 1 ] || die "ssh-config has Host $h, which nodes.rb does not define: is KUBEBOOT_WORKERS the value vagrant up ran with?"
done

# Per host: user and key as Vagrant reports them (or --key); port 22 on the private
# address, except when ssh-config names the guest directly (libvirt), whose Port is the
# guest's sshd port. A loopback HostName (VirtualBox) means Port is a NAT forward.
host_user=() host_port=() host_key=()
for i in "${!node_names[@]}"; do
  n=${node_names[i]}
  j=$(cfg_index "$n")
  [ -n "$j" ] || die "ssh-config has no Host $n, which nodes.rb defines: run with the KUBEBOOT_* settings of vagrant up, and vagrant up all machines"
  host_user[i]=${cfg_users[j]}
  case "${cfg_hostnames[j]}" in
    127.* | localhost | ::1 | "") host_port[i]=22 ;;
    *) host_port[i]=${cfg_ports[j]} ;;
  esac
  host_key[i]=${key:-${cfg_keys[j]}}
done

# --- host keys -------------------------------------------------------------------------
tofu_note="trust on first use: these are the host keys that answered ssh-keyscan when cluster-yaml.sh ran; nothing verified them"
if [ $keyscan = 1 ]; then
  command -v ssh-keyscan >/dev/null || die "ssh-keyscan not found (apt-get install openssh-client), or pass --no-keyscan"
  kh_tmp=$(mktemp "${known_hosts}.XXXXXX") || die "cannot write next to $known_hosts"
  trap 'rm -f "$kh_tmp"' EXIT
  printf '# kubeboot Vagrant lab known_hosts, written by cluster-yaml.sh.\n# %s.\n' "$tofu_note" >"$kh_tmp"
  for i in "${!node_names[@]}"; do
    keys=$(ssh-keyscan -T 5 -p "${host_port[$i]}" "${node_ips[$i]}" 2>/dev/null | grep -v '^#' || true)
    [ -n "$keys" ] || die "no host key from ${node_names[$i]} at ${node_ips[$i]}:${host_port[$i]}: is it up, and is KUBEBOOT_SUBNET the one vagrant up ran with?"
    printf '%s\n' "$keys" >>"$kh_tmp"
  done
  chmod 644 "$kh_tmp"
  mv "$kh_tmp" "$known_hosts"
  trap - EXIT
  echo "cluster-yaml.sh: wrote $known_hosts ($tofu_note)" >&2
  kh_note="$tofu_note."
else
  kh_note="cluster-yaml.sh --no-keyscan did not fill this file; put the nodes' host keys in it."
  echo "cluster-yaml.sh: --no-keyscan: $known_hosts was not filled; kubeboot will check host keys against it" >&2
fi

# --- the inventory -------------------------------------------------------------------------
# YAML double-quoted scalar (paths may hold spaces, colons, '#').
q() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

# All field names of the inventory are here.
emit_inventory() {
  echo "# kubeboot inventory for the Vagrant lab, written by vagrant/cluster-yaml.sh."
  echo "# Addresses are the private network (${iface}), not Vagrant's NAT eth0."
  echo "apiVersion: kubeboot.io/v1alpha1"
  echo "kind: Cluster"
  echo "metadata:"
  echo "  name: $name"
  echo "spec:"
  echo "  ssh:"
  echo "    user: ${host_user[0]}"
  echo "    port: ${host_port[0]}"
  echo "    keyPath: $(q "${host_key[0]}")"
  echo "    # $kh_note"
  echo "    knownHostsPath: $(q "$known_hosts")"
  echo "  kubernetesVersion: $k8s_version"
  echo "  networking:"
  echo "    podSubnet: $pod_subnet"
  echo "    serviceSubnet: $service_subnet"
  echo "  cni:"
  echo "    name: flannel"
  echo "    iface: $iface"
  echo "  hosts:"
  for i in "${!node_names[@]}"; do
    echo "    - name: ${node_names[$i]}"
    echo "      address: ${node_ips[$i]}"
    echo "      role: ${node_roles[$i]}"
    echo "      nodeIP: ${node_ips[$i]}"
    # Only what differs from spec.ssh, under the host's own ssh block.
    ssh_lines=""
    [ "${host_user[$i]}" = "${host_user[0]}" ] || ssh_lines+="        user: ${host_user[$i]}"$'\n'
    [ "${host_port[$i]}" = "${host_port[0]}" ] || ssh_lines+="        port: ${host_port[$i]}"$'\n'
    [ "${host_key[$i]}" = "${host_key[0]}" ] || ssh_lines+="        keyPath: $(q "${host_key[$i]}")"$'\n'
    if [ -n "$ssh_lines" ]; then
      echo "      ssh:"
      printf '%s' "$ssh_lines"
    fi
  done
}

inventory=$(emit_inventory)
if [ -n "$output" ]; then
  out_tmp=$(mktemp "$(absolute "$output").XXXXXX") || die "cannot write next to $output"
  printf '%s\n' "$inventory" >"$out_tmp"
  chmod 644 "$out_tmp"
  mv "$out_tmp" "$output"
  echo "cluster-yaml.sh: wrote $output" >&2
else
  printf '%s\n' "$inventory"
fi

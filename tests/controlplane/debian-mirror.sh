# Sourced by build-k8s.sh and build-images.sh: the Debian mirror their private apt
# downloads from. No mirror is written in the repo or assumed: it is
# $KUBEBOOT_DEBIAN_MIRROR when set, otherwise the Debian archive this machine's apt
# already uses, read from the files `kubeboot lab` reads too (src/lab/base.rs):
# sources.list, then sources.list.d/ in name order, *.list in the one-line format and
# *.sources in deb822 format. The first enabled `deb` source with component `main`
# whose URI ends in /debian and is no security archive wins.

# debian_mirror [APT_DIR]   (APT_DIR: /etc/apt by default)
# Prints the mirror without a trailing slash; otherwise prints what to do on stderr and
# returns 1.
debian_mirror() {
  local apt=${1:-/etc/apt} f found=
  if [[ -n ${KUBEBOOT_DEBIAN_MIRROR:-} ]]; then
    echo "${KUBEBOOT_DEBIAN_MIRROR%/}"
    return 0
  fi
  local files=("$apt/sources.list" "$apt"/sources.list.d/*.list "$apt"/sources.list.d/*.sources)
  # sources.list first, then sources.list.d in name order whatever the format
  local sorted
  sorted=$(printf '%s\n' "${files[@]:1}" | LC_ALL=C sort)
  while IFS= read -r f; do
    [[ -f $f ]] || continue
    case $f in
      *.sources) found=$(_debian_mirror_deb822 < "$f") ;;
      *) found=$(_debian_mirror_one_line < "$f") ;;
    esac
    found=$(printf '%s\n' "$found" | grep -E '/debian/?$' | grep -v security | head -n1 || true)
    if [[ -n $found ]]; then
      echo "${found%/}"
      return 0
    fi
  done < <(printf '%s\n' "${files[0]}" "$sorted")
  echo "no Debian mirror found in $apt/sources.list or $apt/sources.list.d/ (*.list, *.sources): set KUBEBOOT_DEBIAN_MIRROR to the Debian archive to download from (an http(s) URI ending in /debian)" >&2
  return 1
}

# URIs of `deb ... main` lines: deb [options] URI SUITE COMPONENT...
_debian_mirror_one_line() {
  awk '{ sub(/#.*/, "") }
    $1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; break }
    }'
}

# URIs of enabled deb822 paragraphs with Types: deb and Components: main
_debian_mirror_deb822() {
  awk 'BEGIN { RS = ""; FS = "\n" }
    {
      types = ""; uris = ""; comps = ""; enabled = 1
      for (n = 1; n <= NF; n++) {
        line = $n
        if (line ~ /^[#[:space:]]/ || index(line, ":") == 0) continue
        key = tolower(substr(line, 1, index(line, ":") - 1))
        val = " " substr(line, index(line, ":") + 1) " "
        gsub(/[[:space:]]+/, " ", val)
        if (key == "types") types = val
        else if (key == "uris") uris = val
        else if (key == "components") comps = val
        else if (key == "enabled") enabled = (val != " no ")
      }
      if (enabled && types ~ / deb / && comps ~ / main /) {
        k = split(uris, u, " ")
        for (j = 1; j <= k; j++) print u[j]
      }
    }'
}

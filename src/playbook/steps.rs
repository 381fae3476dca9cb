//! Each step kind as two POSIX shell snippets: `check` (exit 0 = in the wanted state,
//! 1 = differs, anything else = error; what it prints explains) and `apply`. The engine
//! concatenates the snippets of many steps into one script, so a step never needs a
//! round trip of its own (binary uploads aside).
//!
//! A check that finds a file different prints its current content after `@@b64 ` and
//! the content it would have after `@@new64 ` (base64, small files only), so `--plan`
//! can show a diff without another round trip.

use super::*;
use crate::host::ssh::shell_quote as q;
use base64::Engine;
use sha2::Digest;

/// Largest file whose content a check sends back for diffs.
const DIFF_LIMIT: u64 = 256 * 1024;

/// A step with its templates rendered: the scripts to run, and for artifacts what to
/// upload.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub check: String,
    pub apply: String,
    /// For artifact steps: (artifact name, sha256); the apply script reads the file from
    /// stdin and is run on its own.
    pub upload: Option<(String, String)>,
    /// For apt package steps: the package specs, so that hosts alike can install what one
    /// of them downloaded (see `debshare`).
    pub share: Option<Vec<String>>,
}

/// Lower-case hex sha256.
pub fn sha256_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A heredoc delimiter that cannot occur in base64 text.
const EOF: &str = "KUBEBOOT_EOF_7f3a";

/// Shell function `kb_sha256 FILE`: the file's sha256 as the first word, from openssl
/// where the host has it (it uses the CPU's SHA instructions: 0.14 s for 114 MB where
/// coreutils' sha256sum takes 0.64 s), else from sha256sum. For the uploads of artifacts
/// and image archives, hundreds of MB a host.
pub(crate) const SHA256_FN: &str =
    "kb_sha256() { openssl dgst -sha256 -r \"$1\" 2>/dev/null || sha256sum \"$1\"; }\n";

/// Check snippet for "file at `p` has content with sha `sha`, mode and owner".
fn file_check(p: &str, sha: &str, mode: u32, owner: &str, desired: &[u8]) -> String {
    let qp = q(p);
    let new64 = if (desired.len() as u64) < DIFF_LIMIT {
        format!("echo \"@@new64 {}\"", b64(desired))
    } else {
        ":".to_string()
    };
    format!(
        r#"p={qp}
if [ ! -e "$p" ]; then echo "$p does not exist"; {new64}; exit 1; fi
r=0
set -- $(sha256sum "$p")
if [ "$1" != {sha} ]; then
  echo "$p content differs"
  set -- $(stat -c '%s' "$p")
  if [ "$1" -lt {DIFF_LIMIT} ]; then echo "@@b64 $(base64 -w0 "$p")"; {new64}; fi
  r=1
fi
st=$(stat -c '%a %U:%G' "$p")
if [ "$st" != {want} ]; then echo "$p has mode/owner $st, want {mode:o} {owner}"; r=1; fi
exit $r
"#,
        want = q(&format!("{mode:o} {owner}")),
    )
}

/// Apply snippet that writes `content` to `p` atomically (temp file in the same
/// directory, then `mv`), with mode and owner.
fn file_apply(p: &str, content: &[u8], mode: u32, owner: &str) -> String {
    let mut wrapped = String::new();
    for chunk in b64(content).as_bytes().chunks(76) {
        wrapped.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        wrapped.push('\n');
    }
    format!(
        r#"p={qp}
d=$(dirname "$p"); [ -d "$d" ] || mkdir -p "$d"
t=$(mktemp "$p.kubeboot-XXXXXX"); trap 'rm -f "$t"' EXIT
base64 -d > "$t" <<'{EOF}'
{wrapped}{EOF}
chmod {mode:o} "$t"; chown {owner} "$t"; mv -f "$t" "$p"; trap - EXIT
"#,
        qp = q(p),
        owner = q(owner),
    )
}

/// The awk program that turns a file into its wanted form for a line step.
fn line_awk(step: &LineStep) -> (String, String) {
    let prog = match &step.action {
        LineAction::Comment => {
            r##"BEGIN{re=ENVIRON["KB_RE"]} $0 ~ re {print "# " $0; next} {print}"##
        }
        LineAction::Remove => r#"BEGIN{re=ENVIRON["KB_RE"]} $0 ~ re {next} {print}"#,
        LineAction::Present(_) => {
            r#"BEGIN{re=ENVIRON["KB_RE"]; l=ENVIRON["KB_LINE"]} $0 ~ re && !done {print l; done=1; next} $0 ~ re {next} {print} END{if(!done) print l}"#
        }
    };
    let line = match &step.action {
        LineAction::Present(l) => l.clone(),
        _ => String::new(),
    };
    (
        format!(
            "KB_RE={} KB_LINE={} awk {}",
            q(&step.regexp),
            q(&line),
            q(prog)
        ),
        line,
    )
}

fn line_check(step: &LineStep) -> String {
    let (awk, _) = line_awk(step);
    let absent_ok = !matches!(step.action, LineAction::Present(_));
    format!(
        r#"p={qp}
if [ ! -e "$p" ]; then {absent}; fi
set -- $({awk} "$p" | sha256sum); new=$1
set -- $(sha256sum "$p"); cur=$1
[ "$new" = "$cur" ] && exit 0
echo "lines of $p to change:"; grep -En -- {re} "$p" | head -20
if [ "$(stat -c %s "$p")" -lt {DIFF_LIMIT} ]; then echo "@@b64 $(base64 -w0 "$p")"; echo "@@new64 $({awk} "$p" | base64 -w0)"; fi
exit 1
"#,
        qp = q(&step.path),
        re = q(&step.regexp),
        absent = if absent_ok {
            "echo \"$p does not exist\"; exit 0".to_string()
        } else {
            "echo \"$p does not exist\"; exit 1".to_string()
        },
    )
}

fn line_apply(step: &LineStep) -> String {
    let (awk, _) = line_awk(step);
    format!(
        r#"p={qp}
[ -e "$p" ] || {{ mkdir -p "$(dirname "$p")"; : > "$p"; }}
t=$(mktemp "$p.kubeboot-XXXXXX"); trap 'rm -f "$t"' EXIT
{awk} "$p" > "$t"
chmod --reference="$p" "$t"; chown --reference="$p" "$t"; mv -f "$t" "$p"; trap - EXIT
"#,
        qp = q(&step.path),
    )
}

fn package_names(step: &PackageStep, facts: &Facts) -> Result<(String, Vec<String>), String> {
    match facts.package_manager.as_str() {
        "apt" if !step.apt.is_empty() => Ok(("apt".into(), step.apt.clone())),
        "dnf" | "yum" if !step.dnf.is_empty() => {
            Ok((facts.package_manager.clone(), step.dnf.clone()))
        }
        "" => Err(format!(
            "no supported package manager on this host ({} {}): kubeboot uses apt-get, dnf or yum",
            facts.os_id, facts.os_version
        )),
        pm => Err(format!(
            "this step lists no packages for {pm} (os {} {})",
            facts.os_id, facts.os_version
        )),
    }
}

pub(crate) fn package_check(pm: &str, names: &[String]) -> String {
    let specs: Vec<String> = names.iter().map(|n| q(n)).collect();
    let bare: Vec<String> = names
        .iter()
        .map(|n| q(n.split_once('=').map(|(b, _)| b).unwrap_or(n)))
        .collect();
    // One query for all packages: "name installed-version" for installed ones.
    let query = if pm == "apt" {
        format!(
            r#"dpkg-query -W -f='${{Package}} ${{Status}} ${{Version}}\n' {} 2>/dev/null | awk '$2=="install" && $3=="ok" && $4=="installed" {{print $1, $5}}'"#,
            bare.join(" ")
        )
    } else {
        format!(
            "rpm -q --qf '%{{NAME}} %{{VERSION}}-%{{RELEASE}}\\n' {} 2>/dev/null | grep -v 'is not installed'",
            bare.join(" ")
        )
    };
    format!(
        r#"have=$({query})
missing=""
for spec in {specs}; do
  n=${{spec%%=*}}; v=${{spec#*=}}; [ "$v" = "$spec" ] && v=""
  iv=$(printf '%s\n' "$have" | while read -r hn hv; do [ "$hn" = "$n" ] && echo "$hv"; done)
  if [ -z "$iv" ]; then missing="$missing $spec"; elif [ -n "$v" ] && [ "$iv" != "$v" ] && [ "${{iv%-*}}" != "$v" ]; then missing="$missing $spec(installed $iv)"; fi
done
[ -z "$missing" ] && {{ echo installed; exit 0; }}
echo "to install:$missing"; exit 1
"#,
        specs = specs.join(" ")
    )
}

/// `apt-get install` as kubeboot runs it: without what packages only recommend, keeping
/// configuration files the host changed.
pub(crate) const APT_INSTALL: &str = "apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";

/// apt's lists refreshed without the description translations, a third of
/// `apt-get update`'s CPU (apt's next plain update fetches them again).
pub(crate) const APT_UPDATE: &str = "apt-get update -q -o Acquire::Languages=none";

/// Shell test: apt's lists are missing or older than an hour.
pub(crate) const APT_LISTS_STALE: &str = "[ -z \"$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | head -n1)\" ]";

pub(crate) fn package_apply(pm: &str, names: &[String]) -> String {
    if pm == "apt" {
        let list: Vec<String> = names.iter().map(|n| q(n)).collect();
        let list = list.join(" ");
        format!(
            r#"export DEBIAN_FRONTEND=noninteractive
install() {{ {APT_INSTALL} {list}; }}
update() {{ {APT_UPDATE}; }}
if {APT_LISTS_STALE}; then update; fi
install || {{ update && install; }}
"#
        )
    } else {
        let list: Vec<String> = names.iter().map(|n| q(&n.replacen('=', "-", 1))).collect();
        // dnf's weak dependencies are apt's recommendations (yum 3 has none).
        let weak = if pm == "dnf" {
            " --setopt=install_weak_deps=False"
        } else {
            ""
        };
        format!("{pm} install -y{weak} {}\n", list.join(" "))
    }
}

const NEED_SYSTEMD: &str = "[ -d /run/systemd/system ] || { echo \"init is $(cat /proc/1/comm), not systemd: kubeboot manages services with systemd only\"; exit 2; }\n";

fn service_check(s: &ServiceStep) -> String {
    let n = q(&s.name);
    let name = &s.name;
    let mut out = String::from(NEED_SYSTEMD);
    // `is-enabled` reads the links on disk; `show -p UnitFileState` would give systemd's
    // copy, which `systemctl enable --no-reload` (the apply) leaves as it was.
    out.push_str(&format!(
        "r=0\nac=$(systemctl show -p ActiveState --value {n} 2>/dev/null)\nuf=\"\"\n"
    ));
    if s.enabled.is_some() {
        out.push_str(&format!("uf=$(systemctl is-enabled {n} 2>/dev/null)\n"));
    }
    match s.enabled {
        Some(true) => out.push_str(&format!(
            "[ \"$uf\" = enabled ] || {{ echo \"{name} is ${{uf:-not installed}}, want enabled\"; r=1; }}\n"
        )),
        Some(false) => out.push_str(&format!(
            "[ \"$uf\" = enabled ] && {{ echo \"{name} is enabled, want disabled\"; r=1; }}\n"
        )),
        None => {}
    }
    match s.state {
        Some(ServiceState::Running) => out.push_str(&format!(
            "[ \"$ac\" = active ] || {{ echo \"{name} is ${{ac:-unknown}}, want running\"; r=1; }}\n"
        )),
        Some(ServiceState::Stopped) => out.push_str(&format!(
            "[ \"$ac\" = active ] && {{ echo \"{name} is running, want stopped\"; r=1; }}\n"
        )),
        Some(ServiceState::Restarted) => out.push_str("r=1\n"),
        None => {}
    }
    out.push_str(&format!(
        "[ $r = 0 ] && echo \"{name} as wanted\"\nexit $r\n"
    ));
    out
}

fn service_apply(s: &ServiceStep) -> String {
    let n = q(&s.name);
    let mut out = String::from(NEED_SYSTEMD);
    // `--no-reload`: `systemctl enable` would reload systemd again just for the link.
    out.push_str(&crate::host::systemd_reload_if_stale(&[&s.name]));
    match s.enabled {
        Some(true) => out.push_str(&format!("systemctl enable --no-reload {n}\n")),
        Some(false) => out.push_str(&format!("systemctl disable --no-reload {n}\n")),
        None => {}
    }
    match s.state {
        Some(ServiceState::Running) => out.push_str(&format!("systemctl start {n}\n")),
        Some(ServiceState::Stopped) => out.push_str(&format!("systemctl stop {n}\n")),
        Some(ServiceState::Restarted) => out.push_str(&format!("systemctl restart {n}\n")),
        None => {}
    }
    out
}

fn sysctl_content(s: &SysctlStep) -> Vec<u8> {
    let mut c = String::from("# Written by kubeboot (playbook prepare-node).\n");
    for (k, v) in &s.values {
        c.push_str(&format!("{k} = {v}\n"));
    }
    c.into_bytes()
}

fn sysctl_check(s: &SysctlStep, content: &[u8]) -> String {
    let mut out = format!(
        "fr=0; (\n{}) || fr=$?\n[ $fr -le 1 ] || exit $fr\nr=$fr\n",
        file_check(&s.file, &sha256_hex(content), 0o644, "root:root", content)
    );
    for (k, v) in &s.values {
        out.push_str(&format!(
            "cv=$(sysctl -n {qk} 2>&1); [ \"$cv\" = {qv} ] || {{ echo \"{k} is $cv, want {v}\"; r=1; }}\n",
            qk = q(k),
            qv = q(v),
        ));
    }
    out.push_str("exit $r\n");
    out
}

fn module_check(m: &ModuleStep) -> String {
    let n = q(&m.name);
    let mut paths = String::new();
    for p in &m.builtin_if {
        paths.push_str(&format!(
            "[ -e {qp} ] && {{ echo \"built-in ({p} exists)\"; exit 0; }}\n",
            qp = q(p)
        ));
    }
    format!(
        r#"n={n}
if [ -f /sys/module/$n/initstate ]; then echo loaded; exit 0; fi
if grep -qE "/$n\.ko(\.[a-z]+)?$" /lib/modules/$(uname -r)/modules.builtin 2>/dev/null; then echo built-in; exit 0; fi
if [ -d /sys/module/$n ]; then echo built-in; exit 0; fi
if grep -qw "$n" /proc/filesystems 2>/dev/null; then echo "built-in (filesystem $n registered)"; exit 0; fi
{paths}echo "module $n is not loaded"; exit 1
"#
    )
}

/// Renders and resolves one step into scripts.
/// Where a host records which images each archive (by sha256) brought in.
pub const IMAGE_RECORDS: &str = "/var/lib/kubeboot/images";

/// Check and import of one image archive. The check needs no upload: the host keeps,
/// per archive sha256, the image references its import created, and the archive counts
/// as imported while containerd still has every one of them.
fn image_archive(file: &str, sha: &str, namespace: &str, store_name: String) -> Resolved {
    let ns = q(namespace);
    let rec = format!("{IMAGE_RECORDS}/{sha}.refs");
    let qfile = q(file);
    Resolved {
        check: format!(
            r#"m={rec}
command -v ctr >/dev/null 2>&1 || {{ echo "archive "{qfile}" not imported yet (containerd is not installed)"; exit 1; }}
[ -s "$m" ] || {{ echo "archive "{qfile}" (sha256 {short}) not imported yet"; exit 1; }}
# One listing per check script ($KB_CHECK_DIR, see run.rs), not one per archive.
c=${{KB_CHECK_DIR:+$KB_CHECK_DIR/ctr-images-{nsfile}}}
if [ -n "$c" ] && [ -f "$c" ]; then have=$(cat "$c"); else
  have=$(ctr -n {ns} images ls -q 2>/dev/null) || {{ echo "archive "{qfile}": containerd does not answer, will import"; exit 1; }}
  [ -z "$c" ] || printf '%s\n' "$have" > "$c"
fi
r=0
while read -r ref; do
  printf '%s
' "$have" | grep -qxF "$ref" || {{ echo "$ref (from "{qfile}") is missing from containerd"; r=1; }}
done < "$m"
[ $r = 0 ] && echo "imported: $(tr '
' ' ' < "$m")"
exit $r
"#,
            short = &sha[..12],
            nsfile = namespace
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>(),
        ),
        apply: format!(
            r#"set -e
d={IMAGE_RECORDS}
mkdir -p "$d"; chmod 700 /var/lib/kubeboot "$d"
t=$(mktemp "$d/upload-XXXXXX"); trap 'rm -f "$t" "$t.refs"' EXIT
cat > "$t"
{SHA256_FN}set -- $(kb_sha256 "$t")
[ "$1" = {sha} ] || {{ echo "the uploaded archive "{qfile}" has sha256 $1, want {sha}; nothing imported" >&2; exit 1; }}
command -v ctr >/dev/null 2>&1 || {{ echo "cannot import "{qfile}": containerd's ctr is not installed on this host" >&2; exit 1; }}
if ! out=$(ctr -n {ns} images import "$t" 2>&1); then
  echo "containerd could not import "{qfile}" (is it an OCI or docker-archive tarball?): $(printf '%s' "$out" | tail -n 3)" >&2
  exit 1
fi
printf '%s
' "$out" | awk '/^unpacking /{{print $2}}' > "$t.refs"
if [ ! -s "$t.refs" ]; then
  tar -xOf "$t" manifest.json 2>/dev/null | tr ',[]' '


' | sed -n 's/^ *"\([^"]*:[^"]*\)" *$//p' | grep -v '^sha256:' | grep -v '\.json$' | grep -v '/layer.tar$' > "$t.refs" || true
fi
[ -s "$t.refs" ] || {{ echo "containerd imported "{qfile}" but named no image in it: give the archive image names (RepoTags)" >&2; exit 1; }}
mv -f "$t.refs" "$d/{sha}.refs"
echo "imported $(tr '
' ' ' < "$d/{sha}.refs")"
"#
        ),
        upload: Some((store_name, sha.to_string())),
        share: None,
    }
}

pub fn resolve(
    step: &Step,
    facts: &Facts,
    render: &dyn Fn(&str) -> Result<String, String>,
    artifact_sha: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, String> {
    Ok(match &step.kind {
        StepKind::File(f) => {
            let content = match (&f.content, &f.template) {
                (Some(c), _) => render(c)?,
                (None, Some(t)) => files::render(t, render)?,
                _ => unreachable!("parser checks content or template"),
            }
            .into_bytes();
            let path = render(&f.path)?;
            Resolved {
                check: file_check(&path, &sha256_hex(&content), f.mode, &f.owner, &content),
                apply: file_apply(&path, &content, f.mode, &f.owner),
                upload: None,
                share: None,
            }
        }
        StepKind::Line(l) => {
            let l = LineStep {
                path: render(&l.path)?,
                regexp: l.regexp.clone(),
                action: match &l.action {
                    LineAction::Present(x) => LineAction::Present(render(x)?),
                    a => a.clone(),
                },
            };
            Resolved {
                check: line_check(&l),
                apply: line_apply(&l),
                upload: None,
                share: None,
            }
        }
        StepKind::Package(p) => {
            let (pm, names) = package_names(p, facts)?;
            let names = names
                .iter()
                .map(|n| render(n))
                .collect::<Result<Vec<_>, _>>()?;
            Resolved {
                check: package_check(&pm, &names),
                apply: package_apply(&pm, &names),
                upload: None,
                share: (pm == "apt").then(|| names.clone()),
            }
        }
        StepKind::Service(s) => Resolved {
            check: service_check(s),
            apply: service_apply(s),
            upload: None,
            share: None,
        },
        StepKind::Sysctl(s) => {
            let s = SysctlStep {
                file: render(&s.file)?,
                values: s
                    .values
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), render(v)?)))
                    .collect::<Result<_, String>>()?,
            };
            let content = sysctl_content(&s);
            Resolved {
                check: sysctl_check(&s, &content),
                apply: format!(
                    "{}sysctl -p {} >/dev/null\n",
                    file_apply(&s.file, &content, 0o644, "root:root"),
                    q(&s.file)
                ),
                upload: None,
                share: None,
            }
        }
        StepKind::Module(m) => Resolved {
            check: module_check(m),
            apply: format!("modprobe {}\n", q(&m.name)),
            upload: None,
            share: None,
        },
        StepKind::Command(c) => Resolved {
            check: render(&c.check)?,
            apply: render(&c.apply)?,
            upload: None,
            share: None,
        },
        StepKind::ImageArchives(_) => {
            return Err(
                "image_archives steps are expanded per archive before a run (internal error)"
                    .into(),
            );
        }
        StepKind::ImageArchive(a) => {
            let sha = artifact_sha(&a.archive)
                .ok_or_else(|| format!("no source for image archive {}", a.archive))?;
            let file = a.archive.rsplit('/').next().unwrap_or(&a.archive);
            image_archive(file, &sha, &a.namespace, a.archive.clone())
        }
        StepKind::Artifact(a) => {
            let path = render(&a.path)?;
            let sha = artifact_sha(&a.name).ok_or_else(|| {
                format!(
                    "no source for {n}: give --artifact {n}=<URL or PATH>#sha256:<HEX> or spec.artifacts.{n} {{url|path, sha256}} in the Cluster file",
                    n = a.name
                )
            })?;
            let qp = q(&path);
            // Where the install records the file's stat after verifying its sha256, so
            // later checks hash it again only when it changed.
            let stamp = q(&format!(
                "/var/lib/kubeboot/artifacts/{}.verified",
                path.trim_start_matches('/').replace('/', "_")
            ));
            Resolved {
                check: format!(
                    r#"p={qp}
m={stamp}
[ -f "$p" ] || {{ echo "$p does not exist"; exit 1; }}
st=$(stat -c '%s %Y %Z %i %a %U' "$p")
if [ -f "$m" ] && [ "$(cat "$m")" = "{sha} $st" ]; then echo "sha256 {sha} (verified at install; size, times and inode unchanged)"; exit 0; fi
{SHA256_FN}set -- $(kb_sha256 "$p")
[ "$1" = {sha} ] || {{ echo "$p has sha256 $1, want {sha}"; exit 1; }}
set -- $st
[ "$5 $6" = '{mode:o} root' ] || {{ echo "$p has mode/owner $5 $6, want {mode:o} root"; exit 1; }}
echo "sha256 {sha}"
"#,
                    mode = a.mode
                ),
                apply: format!(
                    r#"set -e
p={qp}
m={stamp}
d=$(dirname "$p"); [ -d "$d" ] || mkdir -p "$d"
t=$(mktemp "$p.kubeboot-XXXXXX"); trap 'rm -f "$t"' EXIT
cat > "$t"
{SHA256_FN}set -- $(kb_sha256 "$t")
[ "$1" = {sha} ] || {{ echo "uploaded file has sha256 $1, want {sha}; $p left as it was" >&2; exit 1; }}
chmod {mode:o} "$t"; chown root:root "$t"; mv -f "$t" "$p"; trap - EXIT
mkdir -p "$(dirname "$m")"; echo "{sha} $(stat -c '%s %Y %Z %i %a %U' "$p")" > "$m"
"#,
                    mode = a.mode
                ),
                upload: Some((a.name.clone(), sha)),
                share: None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kb_sha256` in bash: with openssl on PATH, and without it (sha256sum only).
    #[test]
    fn sha256_function_with_and_without_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a file");
        std::fs::write(&file, b"kubeboot\n").unwrap();
        // sha256 of "kubeboot\n" (printf 'kubeboot\n' | sha256sum)
        let want = "b5949e7229a7e3497ea0193420fdca90f0dc13c4b8b3873fa023a31d41d96c90";
        let only_sha256sum = dir.path().join("bin");
        std::fs::create_dir(&only_sha256sum).unwrap();
        let sha256sum = ["/usr/bin/sha256sum", "/bin/sha256sum"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap();
        std::os::unix::fs::symlink(sha256sum, only_sha256sum.join("sha256sum")).unwrap();
        let system_path = std::env::var("PATH").unwrap();
        let openssl = std::process::Command::new("/bin/sh")
            .args(["-c", "command -v openssl"])
            .env("PATH", &system_path)
            .output()
            .unwrap();
        assert!(openssl.status.success(), "this test needs openssl on PATH");
        for (path, what) in [
            (system_path.as_str(), "with openssl"),
            (only_sha256sum.to_str().unwrap(), "sha256sum only"),
        ] {
            let out = std::process::Command::new("/bin/bash")
                .arg("-c")
                .arg(format!(
                    "{SHA256_FN}set -- $(kb_sha256 \"$0\"); echo \"$1\""
                ))
                .arg(&file)
                .env("PATH", path)
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "{what}");
        }
    }

    #[test]
    fn packages_are_installed_without_what_they_only_recommend() {
        let names = vec!["containerd".to_string(), "kubelet=1.31.0".to_string()];
        let apt = package_apply("apt", &names);
        assert!(
            apt.contains("apt-get install -y -q --no-install-recommends ")
                && apt.contains("apt-get update -q -o Acquire::Languages=none"),
            "{apt}"
        );
        let dnf = package_apply("dnf", &names);
        assert!(
            dnf.starts_with("dnf install -y --setopt=install_weak_deps=False ")
                && dnf.contains("kubelet-1.31.0"),
            "{dnf}"
        );
        // yum 3 has no weak dependencies (and no such option).
        let yum = package_apply("yum", &names);
        assert!(
            yum.starts_with("yum install -y ") && !yum.contains("weak"),
            "{yum}"
        );
    }
}

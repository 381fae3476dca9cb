//! Images in a node's containerd, in the CRI's `k8s.io` namespace (what the kubelet runs
//! from): which are present, and pulling the missing ones. Everything goes through
//! [`Host::run`] as one shell command, with `ctr` (shipped with containerd), or `crictl`
//! where `ctr` is absent. Which images a cluster needs is [`crate::render::images`].

use crate::host::{Host, RunOptions, ssh::shell_quote};
use crate::render::images::ImageRef;
use std::collections::BTreeSet;
use std::time::Duration;

/// Overrides containerd's socket (for tests and unusual installs); the default is
/// containerd's own, `/run/containerd/containerd.sock`.
pub const ADDRESS_ENV: &str = "KUBEBOOT_CONTAINERD_ADDRESS";
/// containerd's default socket.
pub const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";
/// The containerd namespace the CRI (and so the kubelet) uses.
pub const NAMESPACE: &str = "k8s.io";
/// How long preflight lets one image pull take before calling it failed.
pub const PREFLIGHT_PULL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `config images pull` lets one image pull take.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// How to reach containerd on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Containerd {
    /// containerd's socket; `None` is [`DEFAULT_ADDRESS`].
    pub address: Option<String>,
}

impl Containerd {
    /// The socket from `KUBEBOOT_CONTAINERD_ADDRESS`, else containerd's default.
    pub fn from_env() -> Self {
        Containerd {
            address: std::env::var(ADDRESS_ENV)
                .ok()
                .map(|a| a.trim_start_matches("unix://").to_string())
                .filter(|a| !a.is_empty()),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &str {
        self.address.as_deref().unwrap_or(DEFAULT_ADDRESS)
    }

    /// Shell functions `img_client` (prints ctr, crictl or none), `img_ls` (one image
    /// name per line, fails with containerd's error) and `img_pull REF`.
    fn shell_functions(&self) -> String {
        let sock = shell_quote(self.socket());
        let ctr = format!("ctr --address {sock} --connect-timeout 5s -n {NAMESPACE}");
        let crictl = format!(
            "crictl --runtime-endpoint {} --timeout 10s",
            shell_quote(&format!("unix://{}", self.socket()))
        );
        format!(
            r#"img_client() {{ if command -v ctr >/dev/null 2>&1; then echo ctr; elif command -v crictl >/dev/null 2>&1; then echo crictl; else echo none; fi; }}
img_ls() {{
  [ -S {sock} ] || {{ echo "no containerd socket at "{sock}": containerd is not running"; return 1; }}
  case "$(img_client)" in
    ctr) {ctr} images ls -q 2>&1 ;;
    crictl) o=$({crictl} images 2>&1) || {{ echo "$o"; return 1; }}; echo "$o" | awk 'NR > 1 {{ print $1 ":" $2 }}' ;;
  esac
}}
img_pull() {{
  case "$(img_client)" in
    ctr) timeout "$2" {ctr} images pull "$1" 2>&1 ;;
    crictl) timeout "$2" {crictl} pull "$1" 2>&1 ;;
  esac
}}
"#
        )
    }

    /// Shell lines that print `imgclient=<ctr|crictl|none>`, then either `image=<name>`
    /// for every image and `images=ok`, or `images_error=<why>`: for a facts script.
    pub fn list_script(&self) -> String {
        format!(
            r#"{}c=$(img_client); echo "imgclient=$c"
if [ "$c" != none ]; then
  if out=$(img_ls); then printf '%s\n' "$out" | sed -n 's/^./image=&/p'; echo images=ok
  else echo "images_error=$(printf '%s' "$out" | tr '\r\n' '  ' | cut -c1-300)"; fi
fi
"#,
            self.shell_functions()
        )
    }

    /// The shell that pulls each of `refs` that is not present, with `timeout` per image;
    /// prints one `present|pulled|failed<TAB>ref<TAB>message` line per image. Once a pull
    /// from a registry times out, further images from it are not tried.
    fn pull_script(&self, refs: &[&str], timeout: Duration) -> String {
        let t = timeout.as_secs().max(1);
        let mut s = self.shell_functions();
        s.push_str(&format!(
            r#"[ "$(img_client)" = none ] && {{ echo "containerd is not installed: neither ctr nor crictl is on this host" >&2; exit 3; }}
have=$(img_ls) || {{ printf '%s\n' "$have" >&2; exit 4; }}
dead=" "
p() {{
  r="$1"; h="${{r%%/*}}"
  if printf '%s\n' "$have" | grep -qxF -- "$r"; then printf 'present\t%s\t\n' "$r"; return; fi
  case "$dead" in *" $h "*) printf 'failed\t%s\tnot tried: %s did not answer within {t}s for an earlier image\n' "$r" "$h"; return ;; esac
  out=$(img_pull "$r" {t}); rc=$?
  if [ $rc -eq 0 ]; then printf 'pulled\t%s\t\n' "$r"; return; fi
  msg=$(printf '%s\n' "$out" | tr '\r' '\n' | grep -v '^[[:space:]]*$' | tail -n 1 | cut -c1-400)
  if [ $rc -eq 124 ]; then dead="$dead$h "; msg="no answer within {t}s${{msg:+ ($msg)}}"; fi
  printf 'failed\t%s\t%s\n' "$r" "${{msg:-exit status $rc}}"
}}
"#
        ));
        for r in refs {
            s.push_str(&format!("p {}\n", shell_quote(r)));
        }
        s
    }
}

/// What a host's containerd holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Present {
    /// Neither `ctr` nor `crictl` is installed: there is no containerd yet.
    NotInstalled,
    /// Listing failed (containerd not running, socket unreachable): containerd's words.
    Unreachable(String),
    /// The image names in the `k8s.io` namespace.
    Images(BTreeSet<String>),
}

impl Present {
    /// Reads the `imgclient=`/`image=`/`images=`/`images_error=` lines of [`Containerd::list_script`].
    pub fn parse(facts: &str) -> Option<Present> {
        let mut client = None;
        let mut images = BTreeSet::new();
        let mut ok = false;
        let mut error = None;
        for line in facts.lines() {
            match line.split_once('=') {
                Some(("imgclient", v)) => client = Some(v.trim().to_string()),
                Some(("image", v)) => {
                    images.insert(v.trim().to_string());
                }
                Some(("images", "ok")) => ok = true,
                Some(("images_error", v)) => error = Some(v.trim().to_string()),
                _ => {}
            }
        }
        Some(match client?.as_str() {
            "none" => Present::NotInstalled,
            _ if ok => Present::Images(images),
            _ => Present::Unreachable(error.unwrap_or_else(|| "no answer".into())),
        })
    }
}

/// Lists the images in `host`'s containerd (one command).
pub fn present(host: &dyn Host, cd: &Containerd) -> anyhow::Result<Present> {
    let out = host.run(
        &cd.list_script(),
        &RunOptions {
            stdin: None,
            timeout: Some(Duration::from_secs(30)),
        },
    )?;
    Present::parse(&out.stdout_text()).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: listing containerd's images printed nothing: {}",
            host.name(),
            out.stderr_text().trim()
        )
    })
}

/// How one image fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullStatus {
    /// Already in containerd; not pulled again.
    Present,
    Pulled,
    /// containerd's (or the timeout's) words.
    Failed(String),
}

/// One image and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub image: ImageRef,
    pub status: PullStatus,
}

/// Pulls every image of `images` that `host`'s containerd does not hold yet (one command),
/// each within `per_image`. Fails only when containerd is missing or does not answer; a
/// failed pull is a [`PullStatus::Failed`] entry.
pub fn pull(
    host: &dyn Host,
    cd: &Containerd,
    images: &[ImageRef],
    per_image: Duration,
) -> anyhow::Result<Vec<Pulled>> {
    let refs: Vec<&str> = images.iter().map(|i| i.image.as_str()).collect();
    let out = host.run(
        &cd.pull_script(&refs, per_image),
        &RunOptions {
            stdin: None,
            timeout: Some(per_image * (refs.len() as u32 + 1) + Duration::from_secs(30)),
        },
    )?;
    match out.status {
        0 => {}
        3 => anyhow::bail!(
            "{}: containerd is not installed (neither ctr nor crictl found); `kubeboot prepare` installs it",
            host.name()
        ),
        4 => anyhow::bail!(
            "{}: containerd at {} does not answer: {}",
            host.name(),
            cd.socket(),
            out.stderr_text().trim()
        ),
        s => anyhow::bail!(
            "{}: pulling images failed (exit status {s}): {}",
            host.name(),
            out.stderr_text().trim()
        ),
    }
    let text = out.stdout_text();
    let mut results = Vec::new();
    for img in images {
        let line = text
            .lines()
            .find(|l| l.split('\t').nth(1) == Some(img.image.as_str()));
        let status = match line.map(|l| l.splitn(3, '\t').collect::<Vec<_>>()) {
            Some(f) if f[0] == "present" => PullStatus::Present,
            Some(f) if f[0] == "pulled" => PullStatus::Pulled,
            Some(f) => PullStatus::Failed(f.get(2).unwrap_or(&"").trim().to_string()),
            None => PullStatus::Failed("no result reported".into()),
        };
        results.push(Pulled {
            image: img.clone(),
            status,
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listing() {
        assert_eq!(Present::parse("euid=0\n"), None);
        assert_eq!(
            Present::parse("imgclient=none\n"),
            Some(Present::NotInstalled)
        );
        assert_eq!(
            Present::parse("imgclient=ctr\nimages_error=no containerd socket\n"),
            Some(Present::Unreachable("no containerd socket".into()))
        );
        assert_eq!(
            Present::parse("imgclient=ctr\nimage=a/b:1\nimage=c:2\nimages=ok\n"),
            Some(Present::Images(["a/b:1", "c:2"].map(String::from).into()))
        );
    }

    #[test]
    fn the_address_comes_quoted() {
        let cd = Containerd {
            address: Some("/tmp/x y/c.sock".into()),
        };
        let s = cd.pull_script(&["r/a:1"], Duration::from_secs(5));
        assert!(s.contains("--address '/tmp/x y/c.sock'"), "{s}");
        assert!(s.contains("p r/a:1\n"), "{s}");
    }
}

//! Packages downloaded once per run for hosts alike.
//!
//! When several apt hosts of one run need the same packages, and they run the same OS
//! release and architecture with the same apt sources, the first of them (the *source*)
//! refreshes its lists and downloads the packages first (`apt-get install
//! --print-uris`, then `--download-only`, into a directory of its own), in one command
//! that also sends the .deb files back with their sha256. apt checks each download against its signed indexes
//! before it keeps it in its cache. kubeboot checks the files and uploads them to the
//! other hosts, which check the sha256 again and install them with `apt-get install
//! ./x.deb ...` without an `apt-get update` of their own, while the source installs from
//! its cache.
//!
//! On a 2-core lab machine that is 4.7 CPU-s a host instead of 9.4 (the lists' download
//! and parsing, the .deb downloads and apt's solver over full lists). Any difference
//! falls back to the usual path on that host: a sha256 or size that does not match, a
//! dependency the host lacks, a package that is still missing afterwards, or a source
//! that failed or had nothing to share.

use super::facts::Facts;
use super::steps::{
    APT_INSTALL, APT_LISTS_STALE, APT_UPDATE, SHA256_FN, package_apply, package_check,
};
use crate::host::ssh::shell_quote as q;
use crate::host::{Host, RunOptions};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Between the list and the .deb bytes in the source's answer.
const END: &[u8] = b"KUBEBOOT-DEBS-END\n";

/// The most kubeboot passes on (it holds the files in memory once while it reads them
/// from the source); larger sets are downloaded by each host.
const MAX_BYTES: u64 = 256 << 20;

/// How long a host waits for the source before it updates and installs on its own.
const WAIT: Duration = Duration::from_secs(600);

/// One downloaded .deb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebFile {
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

/// The .deb files of a source host, checked, in one local file (one after the other).
#[derive(Debug)]
pub struct SharedDebs {
    pub from: String,
    pub files: Vec<DebFile>,
    /// The bytes the source downloaded, where kubeboot repacked them with zstd
    /// ([`super::repack`]); `files` then lists the repacked files.
    pub repacked_from: Option<u64>,
    path: tempfile::TempPath,
}

impl SharedDebs {
    /// The local file holding every .deb, in the order of `files`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in all.
    pub fn len(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Whether there is nothing.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[derive(Debug)]
enum State {
    Pending,
    Ready(Arc<SharedDebs>),
    Unavailable(String),
}

#[derive(Debug)]
struct Slot {
    state: Mutex<(State, usize)>,
    changed: Condvar,
}

/// The shared downloads of a run, one per kind of host and package list.
#[derive(Debug, Default)]
pub struct DebShares {
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
    /// Hosts expected to check in at the start, and how many did.
    peers: Mutex<(usize, usize)>,
    peers_changed: Condvar,
}

/// What a host does for a package step: download for the others, or wait for that.
pub enum Role {
    Source(Source),
    Receiver(Receiver),
}

/// The first host of its kind: publishes what it downloaded (or why not).
pub struct Source {
    slot: Arc<Slot>,
    published: bool,
}

/// A later host of the same kind.
pub struct Receiver {
    slot: Arc<Slot>,
}

impl DebShares {
    /// How many hosts start at once; a source waits (briefly) until they all checked in,
    /// so that it knows whether anyone needs its downloads.
    pub fn expect(&self, hosts: usize) {
        self.peers.lock().unwrap().0 = hosts;
    }

    /// A host has run its checks: the roles of its package steps that need applying,
    /// one per key (see [`key`]), in order. Every host of the run calls this once, also
    /// with no keys, or when it could not be checked at all.
    pub fn check_in(&self, keys: &[String]) -> Vec<Role> {
        let roles = {
            let mut slots = self.slots.lock().unwrap();
            keys.iter()
                .map(|key| {
                    if let Some(slot) = slots.get(key) {
                        slot.state.lock().unwrap().1 += 1;
                        return Role::Receiver(Receiver { slot: slot.clone() });
                    }
                    let slot = Arc::new(Slot {
                        state: Mutex::new((State::Pending, 0)),
                        changed: Condvar::new(),
                    });
                    slots.insert(key.to_string(), slot.clone());
                    Role::Source(Source {
                        slot,
                        published: false,
                    })
                })
                .collect()
        };
        self.peers.lock().unwrap().1 += 1;
        self.peers_changed.notify_all();
        roles
    }

    /// A host's check-in, made with no package steps to share if it is dropped before
    /// [`CheckIn::keys`] (a host that failed or only plans).
    pub fn arrival(&self) -> CheckIn<'_> {
        CheckIn {
            shares: self,
            done: false,
        }
    }

    /// Waits until every expected host checked in, at most `max`.
    fn all_checked_in(&self, max: Duration) {
        let deadline = Instant::now() + max;
        let mut g = self.peers.lock().unwrap();
        while g.1 < g.0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            g = self.peers_changed.wait_timeout(g, left).unwrap().0;
        }
    }
}

/// See [`DebShares::arrival`].
pub struct CheckIn<'a> {
    shares: &'a DebShares,
    done: bool,
}

impl CheckIn<'_> {
    /// Checks in with these keys: [`DebShares::check_in`].
    pub fn keys(mut self, keys: &[String]) -> Vec<Role> {
        self.done = true;
        self.shares.check_in(keys)
    }
}

impl Drop for CheckIn<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shares.check_in(&[]);
        }
    }
}

impl Source {
    /// Whether any host waits for this source's downloads: once the hosts that start
    /// with it checked in (at most 5 s; later ones find the outcome published).
    pub fn wanted(&self, shares: &DebShares) -> bool {
        shares.all_checked_in(Duration::from_secs(5));
        self.slot.state.lock().unwrap().1 > 0
    }

    /// Hands the downloads (or why there are none) to the hosts that wait.
    pub fn publish(mut self, result: Result<SharedDebs, String>) {
        self.set(match result {
            Ok(d) => State::Ready(Arc::new(d)),
            Err(why) => State::Unavailable(why),
        });
    }

    fn set(&mut self, s: State) {
        self.slot.state.lock().unwrap().0 = s;
        self.published = true;
        self.slot.changed.notify_all();
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if !self.published {
            self.set(State::Unavailable(
                "its run ended before the packages were installed".into(),
            ));
        }
    }
}

impl Receiver {
    /// Waits for the source (at most 10 minutes).
    pub fn wait(&self) -> Result<Arc<SharedDebs>, String> {
        let deadline = Instant::now() + WAIT;
        let mut g = self.slot.state.lock().unwrap();
        loop {
            match &g.0 {
                State::Ready(d) => return Ok(d.clone()),
                State::Unavailable(why) => return Err(why.clone()),
                State::Pending => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "the host that downloads them did not finish within {} s",
                    WAIT.as_secs()
                ));
            }
            g = self.slot.changed.wait_timeout(g, left).unwrap().0;
        }
    }
}

/// Hosts with the same key install the same files: apt hosts of one OS release and
/// architecture, with the same apt sources and preferences, asking for the same packages.
/// None where the host is not such an apt host.
pub fn key(facts: &Facts, specs: &[String]) -> Option<String> {
    (facts.package_manager == "apt" && !facts.apt_sources.is_empty()).then(|| {
        format!(
            "{} {} {} {} zstd={} | {}",
            facts.os_id,
            facts.os_version,
            facts.arch,
            facts.apt_sources,
            facts.dpkg_zstd,
            specs.join(" ")
        )
    })
}

/// Run on the source before its package step: refreshes apt's lists where they are
/// older than an hour (as the step would), downloads what the step will install into a
/// directory of its own (so that files already in apt's cache are listed too), then
/// prints "file size sha256" for each file (the sha256 of the file apt checked against
/// its signed index), [`END`], and the files one after the other. The files then go to
/// apt's cache, where the step's own install finds them.
pub fn download_script(specs: &[String]) -> String {
    let list: Vec<String> = specs.iter().map(|n| q(n)).collect();
    let list = list.join(" ");
    let max_mb = MAX_BYTES >> 20;
    format!(
        r#"export DEBIAN_FRONTEND=noninteractive
{SHA256_FN}c=$(mktemp -d /var/cache/apt/archives/kubeboot-share.XXXXXX) || exit 3
trap 'rm -rf "$c"' EXIT
chmod 755 "$c"; mkdir -m 700 "$c/partial"; chown _apt "$c/partial" 2>/dev/null || true
if {APT_LISTS_STALE}; then
  {APT_UPDATE} >/dev/null 2>&1 || {{ echo "apt-get update failed" >&2; exit 3; }}
fi
get() {{ {APT_INSTALL} -o Dir::Cache::archives="$c/" "$@" {list}; }}
get --print-uris 2>/dev/null | sed -n "s/^'[^']*' \([A-Za-z0-9.+~%:_-]*\.deb\) \([0-9][0-9]*\) .*$/\1 \2/p" > "$c/list"
[ -s "$c/list" ] || {{ echo "apt has nothing to download for these packages on this host" >&2; exit 3; }}
[ "$(awk '{{s += $2}} END {{print s + 0}}' "$c/list")" -le {MAX_BYTES} ] || {{ echo "the packages are more than {max_mb} MB, too many to pass through kubeboot" >&2; exit 3; }}
get --download-only >/dev/null 2>&1 || {{ echo "apt-get install --download-only failed" >&2; exit 3; }}
while read -r f s; do
  [ "$(stat -c %s "$c/$f" 2>/dev/null)" = "$s" ] || {{ echo "$f is missing or not $s bytes" >&2; exit 4; }}
  set -- $(kb_sha256 "$c/$f"); echo "$f $s $1"
done < "$c/list"
printf 'KUBEBOOT-DEBS-END\n'
while read -r f s; do cat "$c/$f" || exit 4; done < "$c/list"
while read -r f s; do mv -f "$c/$f" /var/cache/apt/archives/; done < "$c/list"
"#
    )
}

/// Before the package step of a source: when another host waits for its downloads,
/// downloads the .deb files there ([`download_script`]), then reads them and hands them
/// over in a thread of its own, while the source goes on with its own install;
/// otherwise, or when that fails, tells the waiting hosts why not. The step itself then
/// installs from apt's cache. `zstd`: the hosts alike read zstd packages, so the files
/// are repacked for them ([`super::repack`]).
pub fn share(
    host: &dyn Host,
    name: &str,
    specs: &[String],
    zstd: bool,
    source: Source,
    shares: &DebShares,
) {
    if !source.wanted(shares) {
        source.publish(Err("no other host waited for them".into()));
        return;
    }
    let out = match host.run(&download_script(specs), &RunOptions::default()) {
        Ok(out) if out.success() => out,
        Ok(out) => {
            let why = format!(
                "downloading them on {name} failed (exit {}): {}",
                out.status,
                out.stderr_text().trim()
            );
            source.publish(Err(format!("the downloads of {name}: {why}")));
            return;
        }
        Err(e) => {
            let why = format!("downloading them on {name} failed: {e}");
            source.publish(Err(format!("the downloads of {name}: {why}")));
            return;
        }
    };
    // Checking and repacking the files (a second or two of CPU) is for the hosts that
    // wait: the source's own install (from apt's cache) goes on meanwhile. A thread that
    // ends without publishing (a panic) still tells the waiting hosts (`Source`'s drop).
    let name = name.to_string();
    std::thread::spawn(move || {
        let got = parse_fetch(&out.stdout, &name, zstd);
        source.publish(got.map_err(|e| format!("the downloads of {name}: {e}")));
    });
}

/// What a receiving host's package step reports: the lines of its apply script that say
/// which path it took (not apt's own output).
pub fn summary(stdout: &str) -> String {
    stdout
        .lines()
        .filter(|l| {
            ["installed from", "the packages", "not installed from"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn safe_name(f: &str) -> bool {
    f.ends_with(".deb")
        && !f.starts_with('.')
        && f.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~%:-".contains(&b))
}

/// How many packages are repacked at once: each holds an xz decoder (up to 64 MiB of
/// dictionary) and its output, so this bounds kubeboot's memory; the biggest package
/// (containerd) takes most of the time anyway.
const REPACK_AT_ONCE: usize = 2;

/// Each package repacked with zstd ([`super::repack::to_zstd`]), [`REPACK_AT_ONCE`] at a
/// time; `None` for one that has no xz archives or cannot be repacked, even by a panic
/// of the repack (it goes as it came; the reason is logged).
fn repack_all(files: &[DebFile], chunks: &[&[u8]], from: &str) -> Vec<Option<Vec<u8>>> {
    let jobs: Vec<(&DebFile, &[u8])> = files.iter().zip(chunks.iter().copied()).collect();
    crate::parallel::fan_out(&jobs, REPACK_AT_ONCE, |(f, c)| {
        let packed = std::panic::catch_unwind(|| super::repack::to_zstd(c))
            .unwrap_or_else(|_| Err("the repack panicked".into()));
        packed.unwrap_or_else(|e| {
            tracing::warn!("{} from {from}: not repacked: {e}", f.file);
            None
        })
    })
}

/// Reads the source's answer to [`download_script`]: every file's size and sha256 must be
/// as listed. The .deb bytes go to a temporary local file, repacked with zstd first when
/// `zstd` ([`repack_all`]; a file that cannot be repacked goes as it came).
pub fn parse_fetch(out: &[u8], from: &str, zstd: bool) -> Result<SharedDebs, String> {
    let at = out
        .windows(END.len())
        .position(|w| w == END)
        .ok_or("its answer has no end of the list")?;
    let head = String::from_utf8_lossy(&out[..at]);
    let body = &out[at + END.len()..];
    let mut files = Vec::new();
    for line in head.lines().filter(|l| !l.trim().is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let ok = w.len() == 3
            && safe_name(w[0])
            && w[2].len() == 64
            && w[2].bytes().all(|b| b.is_ascii_hexdigit());
        let size = w.get(1).and_then(|s| s.parse::<u64>().ok());
        match (ok, size) {
            (true, Some(size)) => files.push(DebFile {
                file: w[0].to_string(),
                size,
                sha256: w[2].to_ascii_lowercase(),
            }),
            _ => return Err(format!("unexpected line in its list: {line:?}")),
        }
    }
    if files.is_empty() {
        return Err("its list is empty".into());
    }
    let want: u64 = files.iter().map(|f| f.size).sum();
    if body.len() as u64 != want {
        return Err(format!(
            "it sent {} bytes of .deb files, the list adds up to {want}",
            body.len()
        ));
    }
    let mut chunks = Vec::with_capacity(files.len());
    let mut off = 0usize;
    for f in &files {
        let chunk = &body[off..off + f.size as usize];
        let got = super::steps::sha256_hex(chunk);
        if got != f.sha256 {
            return Err(format!(
                "{} has sha256 {got}, apt's index says {}",
                f.file, f.sha256
            ));
        }
        chunks.push(chunk);
        off += f.size as usize;
    }
    let mut tmp = tempfile::Builder::new()
        .prefix("kubeboot-debs-")
        .tempfile()
        .map_err(|e| format!("cannot create a temporary file here: {e}"))?;
    let write_err = |e: std::io::Error| format!("cannot write a temporary file here: {e}");
    let mut repacked_from = None;
    if zstd {
        let packed = repack_all(&files, &chunks, from);
        if packed.iter().any(Option::is_some) {
            repacked_from = Some(body.len() as u64);
            for ((f, c), p) in files.iter_mut().zip(&chunks).zip(&packed) {
                let bytes: &[u8] = p.as_deref().unwrap_or(c);
                if p.is_some() {
                    f.size = bytes.len() as u64;
                    f.sha256 = super::steps::sha256_hex(bytes);
                }
                tmp.write_all(bytes).map_err(write_err)?;
            }
        }
    }
    if repacked_from.is_none() {
        tmp.write_all(body).map_err(write_err)?;
    }
    tmp.flush().map_err(write_err)?;
    Ok(SharedDebs {
        from: from.to_string(),
        files,
        repacked_from,
        path: tmp.into_temp_path(),
    })
}

/// The package name in a .deb file name (`name_version_arch.deb`).
fn package_of(file: &str) -> &str {
    file.split('_').next().unwrap_or(file)
}

/// The apply script of a receiving host; stdin is [`SharedDebs::path`]. It installs the
/// shared files where each is as listed and the package step's check passes afterwards,
/// marks what was only pulled in as automatically installed (as apt would have), and
/// otherwise updates and installs the usual way.
pub fn receiver_apply(specs: &[String], d: &SharedDebs) -> String {
    let listed: String = d
        .files
        .iter()
        .map(|f| format!("{} {} {}\n", f.file, f.size, f.sha256))
        .collect();
    let wanted: Vec<&str> = specs
        .iter()
        .map(|s| s.split_once('=').map(|(n, _)| n).unwrap_or(s))
        .collect();
    let deps: Vec<String> = d
        .files
        .iter()
        .map(|f| package_of(&f.file))
        .filter(|p| !wanted.contains(p))
        .map(q)
        .collect();
    let auto = if deps.is_empty() {
        String::new()
    } else {
        format!(
            "  apt-mark auto {} >/dev/null 2>&1 || true\n",
            deps.join(" ")
        )
    };
    let from = q(&d.from);
    format!(
        r#"export DEBIAN_FRONTEND=noninteractive
{SHA256_FN}d=$(mktemp -d /var/tmp/kubeboot-debs.XXXXXX) || exit 1
trap 'rm -rf "$d"' EXIT
ok=1
while read -r f s h <&3; do
  head -c "$s" > "$d/$f"
  set -- $(kb_sha256 "$d/$f")
  [ "$1" = "$h" ] || {{ ok=0; echo "$f differs from what {from} downloaded"; }}
done 3<<'KUBEBOOT_DEBS'
{listed}KUBEBOOT_DEBS
cat > /dev/null
kb_check() (
{check}
)
if [ $ok = 1 ] && {APT_INSTALL} "$d"/*.deb > "$d/log" 2>&1 && kb_check > /dev/null 2>&1; then
{auto}  echo "installed from the {n} packages {from} downloaded ({mb}): no apt-get update on this host"
else
  [ -f "$d/log" ] && tail -n 5 "$d/log"
  echo "the packages {from} downloaded do not install here: updating apt's lists and installing as usual"
  (
{usual}  ) || exit $?
fi
kb_check > "$d/check" 2>&1 || {{ echo "installed, but the check still finds a difference:"; cat "$d/check"; exit 1; }}
"#,
        check = package_check("apt", specs).trim_end(),
        n = d.files.len(),
        mb = match d.repacked_from {
            Some(was) => format!(
                "{:.1} MB, repacked with zstd: {:.1} MB",
                was as f64 / 1e6,
                d.len() as f64 / 1e6
            ),
            None => format!("{:.1} MB", d.len() as f64 / 1e6),
        },
        usual = package_apply("apt", specs),
    )
}

/// The apply script of a receiving host whose source had nothing to share: the usual
/// one, saying why first, and the step's check after it.
pub fn usual_apply(specs: &[String], why: &str) -> String {
    let check = package_check("apt", specs);
    format!(
        "echo {why}\n(\n{usual}) || exit $?\nkb_check() (\n{check}\n)\nkb_check > /dev/null 2>&1 || {{ echo 'installed, but the check still finds a difference:'; kb_check; exit 1; }}\n",
        why = q(&format!(
            "not installed from another host's downloads: {why}"
        )),
        usual = package_apply("apt", specs),
        check = check.trim_end(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (f, b) in files {
            out.extend(format!("{f} {} {}\n", b.len(), super::super::steps::sha256_hex(b)).bytes());
        }
        out.extend_from_slice(END);
        for (_, b) in files {
            out.extend_from_slice(b);
        }
        out
    }

    #[test]
    fn the_source_answer_is_checked_file_by_file() {
        let ok = answer(&[
            ("a_1_amd64.deb", b"first"),
            ("lib-b_1%3a2_amd64.deb", b"second!"),
        ]);
        let d = parse_fetch(&ok, "node1", false).unwrap();
        assert_eq!(d.files.len(), 2);
        assert_eq!(d.len(), 12);
        assert_eq!(std::fs::read(d.path()).unwrap(), b"firstsecond!");
        assert_eq!(d.files[1].file, "lib-b_1%3a2_amd64.deb");

        // One byte changed in the second file: refused, naming it.
        let mut bad = ok.clone();
        let n = bad.len();
        bad[n - 1] = b'?';
        let e = parse_fetch(&bad, "node1", false).unwrap_err();
        assert!(e.contains("lib-b_1%3a2_amd64.deb has sha256"), "{e}");
        // Short: the sizes do not add up.
        let e = parse_fetch(&ok[..ok.len() - 3], "node1", false).unwrap_err();
        assert!(
            e.contains("sent 9 bytes") && e.contains("adds up to 12"),
            "{e}"
        );
        // A name that would leave the directory, or no end marker.
        let e = parse_fetch(&answer(&[("../x.deb", b"x")]), "node1", false).unwrap_err();
        assert!(e.contains("unexpected line"), "{e}");
        assert!(parse_fetch(b"a.deb 1 00\n", "node1", false).is_err());
        assert!(
            parse_fetch(END, "node1", false)
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn receivers_wait_for_the_source_and_hear_why_when_it_stops() {
        let shares = DebShares::default();
        shares.expect(2);
        let k = |s: &str| vec![s.to_string()];
        let Some(Role::Source(src)) = shares.check_in(&k("k")).pop() else {
            panic!("the first host downloads")
        };
        // The source waits until the host that started with it checked in (300 ms later).
        let t0 = Instant::now();
        let r = std::thread::scope(|s| {
            let peer = s.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                shares.check_in(&k("k")).pop()
            });
            assert!(src.wanted(&shares), "the second host needs the packages");
            peer.join().unwrap()
        });
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(5));
        let Some(Role::Receiver(r)) = r else {
            panic!("the second host receives")
        };
        assert!(
            matches!(shares.check_in(&k("other")).pop(), Some(Role::Source(_))),
            "another kind of host has its own source"
        );
        let t = std::thread::spawn(move || r.wait());
        std::thread::sleep(Duration::from_millis(50));
        let d = parse_fetch(&answer(&[("a_1_amd64.deb", b"deb")]), "node1", false).unwrap();
        src.publish(Ok(d));
        assert_eq!(t.join().unwrap().unwrap().from, "node1");

        // A source dropped without publishing (its host failed): receivers go on alone.
        let mut roles = shares.check_in(&[k("k2"), k("k2")].concat()).into_iter();
        let (Some(Role::Source(src)), Some(Role::Receiver(r))) = (roles.next(), roles.next())
        else {
            panic!("first a source, then a receiver")
        };
        drop(src);
        assert!(r.wait().unwrap_err().contains("ended before"));
    }

    #[test]
    fn only_apt_hosts_alike_share() {
        let mut f = Facts {
            os_id: "debian".into(),
            os_version: "12".into(),
            arch: "x86_64".into(),
            package_manager: "apt".into(),
            apt_sources: "123 456".into(),
            ..Facts::default()
        };
        let specs = vec!["containerd".to_string()];
        let a = key(&f, &specs).unwrap();
        let mut g = f.clone();
        g.apt_sources = "999 456".into();
        assert_ne!(
            Some(a.clone()),
            key(&g, &specs),
            "other sources, other downloads"
        );
        assert_ne!(Some(a), key(&f, &["runc".to_string()]));
        f.package_manager = "dnf".into();
        assert_eq!(key(&f, &specs), None);
    }

    /// Runs the receiver script here with a TEST DOUBLE `apt-get` (and `apt-mark`) on
    /// PATH that logs its arguments and "installs" by writing a dpkg-query double's
    /// answers: the real ones cannot run on this machine. head, openssl/sha256sum, mktemp
    /// and sh are real.
    fn receive(d: &SharedDebs, install_ok: bool) -> (String, String) {
        receive_for(&["containerd"], d, install_ok)
    }

    fn receive_for(specs: &[&str], d: &SharedDebs, install_ok: bool) -> (String, String) {
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        run_doubled(&receiver_apply(&specs, d), d.path(), install_ok)
    }

    fn run_doubled(script: &str, stdin: &Path, install_ok: bool) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = dir.path().join("log");
        let installed = dir.path().join("installed");
        let write = |n: &str, body: String| {
            let p = bin.join(n);
            std::fs::write(&p, body).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let fail = if install_ok {
            ""
        } else {
            "case \"$*\" in *.deb*) exit 100;; esac\n"
        };
        write(
            "apt-get",
            format!(
                "#!/bin/sh\necho \"apt-get $*\" >> {log}\n{fail}[ \"$1\" = install ] || exit 0\nfor a in \"$@\"; do case $a in\n  *.deb) ls -l \"$a\" | awk '{{print $5}}' >> {log}; n=${{a##*/}}; echo \"${{n%%_*}} install ok installed 1\" >> {inst};;\n  -*|install|*=*) ;;\n  *) echo \"$a install ok installed 1\" >> {inst};;\nesac; done\n",
                log = log.display(),
                inst = installed.display()
            ),
        );
        write(
            "apt-mark",
            format!("#!/bin/sh\necho \"apt-mark $*\" >> {}\n", log.display()),
        );
        write(
            "dpkg-query",
            format!("#!/bin/sh\ncat {} 2>/dev/null\n", installed.display()),
        );
        write("find", "#!/bin/sh\n".into());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .stdin(std::fs::File::open(stdin).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            std::fs::read_to_string(&log).unwrap_or_default(),
        )
    }

    /// With `zstd`, a package with xz archives is sent repacked (listed with its new size
    /// and sha256, which the temporary file holds), one that cannot be repacked as it
    /// came, after both were checked against the source's list.
    #[test]
    fn the_source_files_are_repacked_for_zstd_hosts() {
        let deb = super::super::repack::test_deb(b"control", b"data of the package");
        let both = answer(&[("a_1_amd64.deb", &deb), ("b_1_amd64.deb", b"not ar")]);
        let d = parse_fetch(&both, "node1", true).unwrap();
        assert_eq!(d.repacked_from, Some(deb.len() as u64 + 6));
        let bytes = std::fs::read(d.path()).unwrap();
        let a = &d.files[0];
        let packed = &bytes[..a.size as usize];
        assert_eq!(a.sha256, super::super::steps::sha256_hex(packed));
        assert_ne!(packed, &deb[..]);
        assert!(packed.windows(12).any(|w| w == b"data.tar.zst"));
        assert_eq!(&bytes[a.size as usize..], b"not ar");
        assert_eq!((d.files[1].size, d.len()), (6, bytes.len() as u64));
        let (out, _) = receive_for(&["a", "b"], &d, true);
        assert!(
            out.contains("downloaded (0.0 MB, repacked with zstd: 0.0 MB)"),
            "{out}"
        );
        // Without zstd, or when nothing has xz archives, the files go as they came.
        let plain = parse_fetch(&both, "node1", false).unwrap();
        assert_eq!(plain.repacked_from, None);
        assert_eq!(
            std::fs::read(plain.path()).unwrap(),
            [&deb[..], b"not ar"].concat()
        );
        let none = parse_fetch(&answer(&[("b_1_amd64.deb", b"x")]), "n", true);
        assert_eq!(none.unwrap().repacked_from, None);
    }

    #[test]
    fn a_receiver_installs_the_shared_files_or_falls_back_to_apt() {
        let d = parse_fetch(
            &answer(&[
                ("containerd_1.6_amd64.deb", b"containerd bytes"),
                ("runc_1.1_amd64.deb", b"runc"),
            ]),
            "node1",
            false,
        )
        .unwrap();
        let (out, log) = receive(&d, true);
        assert!(
            out.contains("installed from the 2 packages node1 downloaded"),
            "{out}"
        );
        // Both files arrived whole (the double prints their sizes), no update ran, and
        // the dependency apt pulled in is marked automatic.
        assert!(log.contains("\n16\n4\n"), "{log}");
        assert!(!log.contains("apt-get update"), "{log}");
        assert!(log.contains("apt-mark auto runc"), "{log}");

        // apt refuses the files (a dependency this host lacks): the usual path.
        let (out, log) = receive(&d, false);
        assert!(out.contains("do not install here"), "{out}");
        assert!(
            log.contains("apt-get update -q -o Acquire::Languages=none"),
            "{log}"
        );

        // A file that is not what the list says: never given to apt.
        let mut bad = std::fs::read(d.path()).unwrap();
        bad[0] = b'C';
        std::fs::write(d.path(), &bad).unwrap();
        let (out, log) = receive(&d, true);
        assert!(
            out.contains("containerd_1.6_amd64.deb differs from what node1 downloaded"),
            "{out}"
        );
        assert!(!log.contains(".deb"), "{log}");
        assert!(log.contains("apt-get update"), "{log}");

        // The files install, but a package asked for is not among them (the source had
        // it already): the usual path installs it.
        std::fs::write(d.path(), b"containerd bytesrunc").unwrap();
        let (out, log) = receive_for(&["containerd", "iptables"], &d, true);
        assert!(out.contains("do not install here"), "{out}");
        assert!(
            log.contains("apt-get update") && log.contains(" containerd iptables"),
            "{log}"
        );

        // The source had nothing to share: the usual path, saying why.
        let script = usual_apply(&["containerd".to_string()], "no other host waited");
        let (out, log) = run_doubled(&script, Path::new("/dev/null"), true);
        assert!(
            out.contains("another host's downloads: no other host waited"),
            "{out}"
        );
        assert!(
            log.contains("apt-get update") && log.contains("install -y"),
            "{log}"
        );
    }
}

//! OpenSSH `known_hosts` checking for [`super::SshHost`]: host patterns with wildcards
//! and negation, `[host]:port` entries, hashed (`|1|`) entries and the `@revoked` marker,
//! with the file and line of every verdict so refusals can say where to look.
//!
//! russh ships a helper, but it splits on single spaces and knows neither wildcards nor
//! markers (see shared/CRATES.md section 2), so kubeboot reads the file itself.

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::PublicKey;
use russh::keys::{Algorithm, HashAlg};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What known_hosts says about the key a server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyVerdict {
    /// The key is recorded for this host at `line`.
    Known { line: usize },
    /// Nothing is recorded for this host (or the file does not exist).
    Unknown,
    /// Another key of the same type is recorded at `line`: possibly an attack, or a
    /// reinstalled host.
    Changed { line: usize },
    /// Only keys of other types are recorded (first at `line`).
    OtherType { line: usize, recorded: String },
    /// The key is marked `@revoked` at `line`.
    Revoked { line: usize },
}

/// A parsed known_hosts file.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    pub path: PathBuf,
    entries: Vec<Entry>,
    /// Lines that are not known_hosts entries (skipped, as OpenSSH does), so a refusal
    /// can point at a mangled line that may have been meant for the host.
    pub unreadable: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    revoked: bool,
    patterns: String,
    key: PublicKey,
}

/// The name a host is recorded under: `host`, or `[host]:port` when the port is not 22.
pub fn host_port_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...` as OpenSSH prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Same key type, treating the RSA signature hashes as one type.
fn same_type(a: &Algorithm, b: &Algorithm) -> bool {
    match (a, b) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
        _ => a == b,
    }
}

impl KnownHosts {
    /// Reads `path`; a missing file is an empty one. Lines that cannot be parsed are
    /// skipped (as OpenSSH does), as are `@cert-authority` lines.
    pub fn load(path: &Path) -> std::io::Result<KnownHosts> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        Ok(Self::parse(path, &text))
    }

    /// [`KnownHosts::load`] for text already read; `path` is where `append` writes.
    pub fn parse(path: &Path, text: &str) -> KnownHosts {
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut revoked = false;
            if let Some(marker) = first.strip_prefix('@') {
                match marker {
                    "revoked" => revoked = true,
                    _ => continue, // @cert-authority: host certificates are not supported
                }
                first = match fields.next() {
                    Some(f) => f,
                    None => {
                        unreadable.push(i + 1);
                        continue;
                    }
                };
            }
            let (Some(_kind), Some(b64)) = (fields.next(), fields.next()) else {
                unreadable.push(i + 1);
                continue;
            };
            let Ok(key) = russh::keys::parse_public_key_base64(b64) else {
                unreadable.push(i + 1);
                continue;
            };
            entries.push(Entry {
                line: i + 1,
                revoked,
                patterns: first.to_string(),
                key,
            });
        }
        KnownHosts {
            path: path.to_path_buf(),
            entries,
            unreadable,
        }
    }

    /// Checks the key `host:port` presented.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> HostKeyVerdict {
        let name = host_port_name(host, port);
        let matching: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| host_matches(&name, &e.patterns))
            .collect();
        if let Some(e) = matching
            .iter()
            .find(|e| e.revoked && e.key.key_data() == key.key_data())
        {
            return HostKeyVerdict::Revoked { line: e.line };
        }
        let live: Vec<&&Entry> = matching.iter().filter(|e| !e.revoked).collect();
        if let Some(e) = live.iter().find(|e| e.key.key_data() == key.key_data()) {
            return HostKeyVerdict::Known { line: e.line };
        }
        if let Some(e) = live
            .iter()
            .find(|e| same_type(&e.key.algorithm(), &key.algorithm()))
        {
            return HostKeyVerdict::Changed { line: e.line };
        }
        match live.first() {
            Some(e) => HostKeyVerdict::OtherType {
                line: e.line,
                recorded: e.key.algorithm().to_string(),
            },
            None => HostKeyVerdict::Unknown,
        }
    }

    /// Key types recorded for `host:port`, so the client can ask the server for one of
    /// them first (OpenSSH orders its host key algorithms the same way).
    pub fn algorithms_for(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = host_port_name(host, port);
        let mut out: Vec<Algorithm> = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| !e.revoked && host_matches(&name, &e.patterns))
        {
            let a = e.key.algorithm();
            if !out.iter().any(|o| same_type(o, &a)) {
                out.push(a);
            }
        }
        out
    }

    /// Appends `host:port key` to the file (creating it and its directory); returns the
    /// line number written.
    pub fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<usize> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let existing = std::fs::read_to_string(path).unwrap_or_default();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let mut prefix = "";
        if !existing.is_empty() && !existing.ends_with('\n') {
            prefix = "\n";
        }
        let openssh = key
            .to_openssh()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // Drop the comment, if any: `type base64`.
        let mut parts = openssh.split_whitespace();
        let line = format!(
            "{prefix}{} {} {}\n",
            host_port_name(host, port),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default()
        );
        f.write_all(line.as_bytes())?;
        Ok(existing.lines().count() + 1)
    }
}

/// OpenSSH host pattern-list matching: comma-separated patterns with `*` and `?`, `!`
/// negation (a negated match wins), and hashed `|1|salt|hash` entries.
fn host_matches(name: &str, patterns: &str) -> bool {
    let mut matched = false;
    for pat in patterns.split(',') {
        if let Some(hashed) = pat.strip_prefix("|1|") {
            if hashed_matches(name, hashed) {
                matched = true;
            }
            continue;
        }
        let (negated, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        if wildcard(pat.as_bytes(), name.as_bytes()) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

fn hashed_matches(name: &str, hashed: &str) -> bool {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut parts = hashed.split('|');
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    // HMAC-SHA1 as OpenSSH uses; sha1 comes with russh.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` and `?` glob, case-insensitive as OpenSSH host matching is. Iterative with one
/// backtrack point, so a pattern of many `*` takes time linear in pattern times name (the
/// recursive form took exponential time: a hang on a hostile known_hosts line).
fn wildcard(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    // Where the last `*` was, and the name position it currently swallows up to.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
            }
            Some(c) if *c == b'?' || c.eq_ignore_ascii_case(&s[i]) => {
                p += 1;
                i += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    star = Some((sp, si + 1));
                    p = sp + 1;
                    i = si + 1;
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA2ExKZADbNpzQrxD6bolNx2X/y+/LYhOx/9gCTmkqSC";
    const ED2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAICBOjUKwb2YfCpYsEiPqS5BJq+9RFhsrYnIZ5uXcWnc4";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    fn file(text: &str) -> (tempfile::TempDir, KnownHosts) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("known_hosts");
        std::fs::write(&p, text).unwrap();
        let k = KnownHosts::load(&p).unwrap();
        (d, k)
    }

    #[test]
    fn verdicts_with_lines() {
        let (_d, k) = file(&format!(
            "# comment\n10.0.0.1 ssh-ed25519 {ED}\n[10.0.0.2]:2222 ssh-ed25519 {ED2}\n10.0.0.3  ssh-ed25519  {ED}\n"
        ));
        assert_eq!(
            k.check("10.0.0.1", 22, &key(ED)),
            HostKeyVerdict::Known { line: 2 }
        );
        assert_eq!(
            k.check("10.0.0.1", 22, &key(ED2)),
            HostKeyVerdict::Changed { line: 2 }
        );
        assert_eq!(
            k.check("10.0.0.2", 2222, &key(ED2)),
            HostKeyVerdict::Known { line: 3 }
        );
        assert_eq!(k.check("10.0.0.2", 22, &key(ED2)), HostKeyVerdict::Unknown);
        assert_eq!(
            k.check("10.0.0.3", 22, &key(ED)),
            HostKeyVerdict::Known { line: 4 }
        );
    }

    #[test]
    fn glob_like_openssh_and_in_linear_time() {
        for (pat, name, want) in [
            ("*", "", true),
            ("*", "abc", true),
            ("a*c", "abc", true),
            ("a*c", "abd", false),
            ("?", "", false),
            ("??", "ab", true),
            ("10.1.*", "10.1.0.5", true),
            ("*.EXAMPLE.com", "a.example.COM", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "acb", false),
            ("**", "x", true),
            ("x*", "", false),
        ] {
            assert_eq!(
                wildcard(pat.as_bytes(), name.as_bytes()),
                want,
                "{pat} {name}"
            );
        }
        // The recursive glob took exponential time on many stars (a hang).
        let stars = "*".repeat(60) + "x";
        assert!(!wildcard(stars.as_bytes(), b"node-1.example.com:2222"));
    }

    #[test]
    fn wildcards_negation_revoked_and_hashed() {
        // |1| entry for "10.9.9.9", made with `ssh-keygen -H`.
        let (_d, k) = file(&format!(
            "10.1.*,!10.1.0.5 ssh-ed25519 {ED}\n@revoked * ssh-ed25519 {ED2}\n|1|KWqjKRyAAL9XNDzohfepO+RJILg=|QK8y006LnPyWOdE8+0PE6wmC+Qs= ssh-ed25519 {ED}\n"
        ));
        assert_eq!(
            k.check("10.1.2.3", 22, &key(ED)),
            HostKeyVerdict::Known { line: 1 }
        );
        assert_eq!(k.check("10.1.0.5", 22, &key(ED)), HostKeyVerdict::Unknown);
        assert_eq!(
            k.check("10.1.2.3", 22, &key(ED2)),
            HostKeyVerdict::Revoked { line: 2 }
        );
        assert_eq!(
            k.check("10.9.9.9", 22, &key(ED)),
            HostKeyVerdict::Known { line: 3 }
        );
        assert_eq!(k.algorithms_for("10.1.2.3", 22).len(), 1);
    }

    #[test]
    fn append_then_known() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/known_hosts");
        assert_eq!(KnownHosts::append(&p, "h", 2200, &key(ED)).unwrap(), 1);
        assert_eq!(KnownHosts::append(&p, "g", 22, &key(ED2)).unwrap(), 2);
        let k = KnownHosts::load(&p).unwrap();
        assert_eq!(
            k.check("h", 2200, &key(ED)),
            HostKeyVerdict::Known { line: 1 }
        );
        assert_eq!(
            k.check("g", 22, &key(ED2)),
            HostKeyVerdict::Known { line: 2 }
        );
    }
}

//! .deb files repacked with zstd for the hosts that receive another host's downloads.
//!
//! Debian compresses a package's two archives (`control.tar.xz`, `data.tar.xz`) with xz,
//! and every host that installs it pays xz's decompression: about 3 of the 5.3
//! CPU-seconds of `apt-get install` for the container runtime's packages (measured on a
//! lab node; containerd's package alone 2.3), the largest single cost of preparing a node
//! when many share a machine. kubeboot decompresses each archive once, after it has
//! checked the file against the sha256 apt's signed index gave the source, and compresses
//! it again with zstd, which dpkg reads about ten times faster: the same install takes
//! 2.1 CPU-s. The tar archives inside are byte for byte Debian's, so dpkg installs the
//! same files with the same md5sums (`dpkg --verify` holds); only the outer `.deb` file
//! differs (its member names end in `.zst`). Only for hosts whose dpkg reads zstd (dpkg
//! 1.21.18 and later: Debian 12, Ubuntu 22.04).

use std::io::{Read, Write};

const MAGIC: &[u8] = b"!<arch>\n";
const HEADER: usize = 60;

/// One member of an `ar` archive: its header fields as written and its bytes.
struct Member<'a> {
    name: String,
    /// mtime, uid, gid and mode: header bytes 16..48, kept as they were.
    meta: &'a [u8],
    data: &'a [u8],
}

fn members(deb: &[u8]) -> Result<Vec<Member<'_>>, String> {
    if !deb.starts_with(MAGIC) {
        return Err("not an ar archive (no !<arch> header)".into());
    }
    let mut out = Vec::new();
    let mut at = MAGIC.len();
    while at < deb.len() {
        let h = deb
            .get(at..at + HEADER)
            .ok_or("an ar member header is cut short")?;
        if &h[58..60] != b"`\n" {
            return Err(format!("the ar member header at byte {at} is damaged"));
        }
        let name = String::from_utf8_lossy(&h[..16])
            .trim_end()
            .trim_end_matches('/')
            .to_string();
        let size: usize = std::str::from_utf8(&h[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("the ar member {name:?} has no readable size"))?;
        let start = at + HEADER;
        let data = deb
            .get(start..start + size)
            .ok_or_else(|| format!("the ar member {name:?} is cut short"))?;
        out.push(Member {
            name,
            meta: &h[16..48],
            data,
        });
        at = start + size + size % 2;
    }
    Ok(out)
}

/// A member's 60-byte header: name, the kept fields, size.
fn header(name: &str, meta: &[u8], len: usize) -> Vec<u8> {
    let mut h = format!("{name:<16}").into_bytes();
    h.extend_from_slice(meta);
    h.extend_from_slice(format!("{len:<10}`\n").as_bytes());
    h
}

fn write_member(out: &mut Vec<u8>, name: &str, meta: &[u8], data: &[u8]) {
    out.extend_from_slice(&header(name, meta, data.len()));
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
}

/// zstd level: 3 (zstd's default) packs containerd's 101 MB data archive into 34 MB in
/// about a second; xz had it in 26 MB.
const LEVEL: i32 = 3;

/// The package with its xz archives as zstd archives; `None` when it has none in xz
/// (nothing to gain). The members keep their order, dates, owners and modes.
pub fn to_zstd(deb: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let list = members(deb)?;
    if list.first().map(|m| m.name.as_str()) != Some("debian-binary") {
        return Err("its first member is not debian-binary".into());
    }
    if !list.iter().any(|m| m.name.ends_with(".tar.xz")) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(deb.len() * 3 / 2);
    out.extend_from_slice(MAGIC);
    for m in &list {
        match m.name.strip_suffix(".xz") {
            Some(stem) if stem.ends_with(".tar") => {
                // Streamed into `out` itself: neither the tar (containerd's is 101 MB) nor
                // the zstd archive is held apart. The header's size is filled in after.
                let at = out.len();
                out.resize(at + HEADER, b' ');
                let mut z = zstd::stream::Encoder::new(&mut out, LEVEL)
                    .map_err(|e| format!("{}: zstd: {e}", m.name))?;
                let mut xz = liblzma::read::XzDecoder::new(m.data);
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = match xz.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(format!("{}: xz: {e}", m.name)),
                    };
                    z.write_all(&buf[..n])
                        .map_err(|e| format!("{}: zstd: {e}", m.name))?;
                }
                z.finish().map_err(|e| format!("{}: zstd: {e}", m.name))?;
                let len = out.len() - at - HEADER;
                out[at..at + HEADER].copy_from_slice(&header(&format!("{stem}.zst"), m.meta, len));
                if len % 2 == 1 {
                    out.push(b'\n');
                }
            }
            _ => write_member(&mut out, &m.name, m.meta, m.data),
        }
    }
    Ok(Some(out))
}

/// A small .deb with xz archives, for tests.
#[cfg(test)]
pub(super) fn test_deb(control: &[u8], data: &[u8]) -> Vec<u8> {
    let xz = |d: &[u8]| {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(d).unwrap();
        e.finish().unwrap()
    };
    let mut out = MAGIC.to_vec();
    let meta = b"0           0     0     100644  ";
    write_member(&mut out, "debian-binary", meta, b"2.0\n");
    write_member(&mut out, "control.tar.xz", meta, &xz(control));
    write_member(&mut out, "data.tar.xz", meta, &xz(data));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (n, d) in members {
            write_member(&mut out, n, b"0           0     0     100644  ", d);
        }
        out
    }

    /// A .deb built by the real dpkg-deb (xz, Debian's default), repacked, reads back
    /// with the real dpkg-deb: the same control fields and the same data tar, byte for
    /// byte. Skipped where dpkg-deb is missing or cannot read zstd.
    #[test]
    fn a_real_package_repacked_is_read_by_dpkg_deb_with_the_same_tars() {
        let zstd_ok = std::process::Command::new("sh")
            .args(["-c", "dpkg-deb --help 2>/dev/null | grep -q zstd"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !zstd_ok {
            eprintln!("skipped: no dpkg-deb that reads zstd here");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pkg");
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            "Package: kb-test\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.invalid>\nDescription: test\n",
        )
        .unwrap();
        // Odd-sized, hard to compress content so the members' padding is exercised.
        let blob: Vec<u8> = (0..200_001u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(root.join("usr/bin/kb-test"), &blob).unwrap();
        let deb = dir.path().join("kb-test.deb");
        let st = std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "-b"])
            .arg(&root)
            .arg(&deb)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let original = std::fs::read(&deb).unwrap();
        let packed = to_zstd(&original).unwrap().expect("it had xz members");
        let names: Vec<String> = members(&packed)
            .unwrap()
            .iter()
            .map(|m| m.name.clone())
            .collect();
        assert_eq!(
            names,
            ["debian-binary", "control.tar.zst", "data.tar.zst"],
            "member names"
        );
        let zdeb = dir.path().join("kb-test-zst.deb");
        std::fs::write(&zdeb, &packed).unwrap();
        let run = |args: &[&str], f: &std::path::Path| {
            let o = std::process::Command::new("dpkg-deb")
                .args(args)
                .arg(f)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            o.stdout
        };
        for args in [&["--fsys-tarfile"][..], &["--ctrl-tarfile"], &["-f"]] {
            assert_eq!(run(args, &deb), run(args, &zdeb), "dpkg-deb {args:?}");
        }
        // Repacking a repacked file gains nothing.
        assert!(to_zstd(&packed).unwrap().is_none());
    }

    #[test]
    fn odd_members_keep_their_padding_and_others_pass_through() {
        let deb = ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz", &xz(b"abc")),
            ("data.tar.xz", &xz(b"hello")),
            ("_extra", b"x"),
        ]);
        let packed = to_zstd(&deb).unwrap().unwrap();
        let m = members(&packed).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].data, b"2.0\n");
        assert_eq!(zstd::decode_all(m[1].data).unwrap(), b"abc");
        assert_eq!(m[2].name, "data.tar.zst");
        assert_eq!(zstd::decode_all(m[2].data).unwrap(), b"hello");
        assert_eq!((m[3].name.as_str(), m[3].data), ("_extra", &b"x"[..]));
    }

    #[test]
    fn damaged_files_are_refused_with_what_is_wrong() {
        assert!(
            to_zstd(b"PK\x03\x04")
                .unwrap_err()
                .contains("not an ar archive")
        );
        let mut cut = ar(&[("debian-binary", b"2.0\n"), ("data.tar.xz", &xz(b"x"))]);
        cut.truncate(cut.len() - 3);
        assert!(to_zstd(&cut).unwrap_err().contains("cut short"));
        let bad = ar(&[("debian-binary", b"2.0\n"), ("data.tar.xz", b"not xz")]);
        assert!(to_zstd(&bad).unwrap_err().contains("data.tar.xz: xz"));
        let first = ar(&[("data.tar.xz", &xz(b"x"))]);
        assert!(to_zstd(&first).unwrap_err().contains("debian-binary"));
    }
}

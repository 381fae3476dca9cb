//! Just enough DER to turn the PKCS#8 keys the crypto library produces into the
//! traditional key files kubeadm writes (PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`).

/// One DER element: its tag, and the whole encoding (header + content).
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// Reads the next element from `input`; returns it and the rest.
pub fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if end > input.len() {
        return None;
    }
    Some((
        Tlv {
            tag,
            content: &input[header..end],
            raw: &input[..end],
        },
        &input[end..],
    ))
}

/// Reads every element of a constructed value's content.
pub fn children(mut content: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (tlv, rest) = read(content)?;
        out.push(tlv);
        content = rest;
    }
    Some(out)
}

/// Encodes an element with `tag` around `content`.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// A private key in its traditional (non-PKCS#8) encoding.
pub enum Traditional {
    /// PKCS#1 RSAPrivateKey DER.
    Rsa(Vec<u8>),
    /// SEC1 ECPrivateKey DER, with the named-curve parameters and public key included.
    Ec(Vec<u8>),
}

/// Converts PKCS#8 PrivateKeyInfo to PKCS#1 (RSA) or SEC1 (EC). `spki` is the key's
/// SubjectPublicKeyInfo, used to add the public key to SEC1 when PKCS#8 left it out.
pub fn pkcs8_to_traditional(pkcs8: &[u8], spki: &[u8]) -> Option<Traditional> {
    let (info, _) = read(pkcs8)?;
    let fields = children(info.content)?;
    let alg = children(fields.get(1)?.content)?;
    let oid = alg.first()?.content;
    let private = fields.get(2)?;
    if private.tag != OCTET_STRING {
        return None;
    }
    if oid == OID_RSA {
        return Some(Traditional::Rsa(private.content.to_vec()));
    }
    if oid != OID_EC {
        return None;
    }
    let curve = alg.get(1)?; // the namedCurve OID element
    let (ec, _) = read(private.content)?;
    let parts = children(ec.content)?;
    let version = parts.first()?;
    let d = parts.get(1)?;
    let has = |tag: u8| parts.iter().find(|p| p.tag == tag).map(|p| p.raw.to_vec());
    let params = has(0xa0).unwrap_or_else(|| encode(0xa0, curve.raw));
    let public = match has(0xa1) {
        Some(p) => p,
        None => {
            // subjectPublicKey BIT STRING is the second field of the SPKI.
            let (s, _) = read(spki)?;
            let bits = children(s.content)?.get(1)?.raw.to_vec();
            encode(0xa1, &bits)
        }
    };
    let mut content = Vec::new();
    content.extend_from_slice(version.raw);
    content.extend_from_slice(d.raw);
    content.extend(params);
    content.extend(public);
    Some(Traditional::Ec(encode(SEQUENCE, &content)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_long_lengths() {
        let content = vec![7u8; 300];
        let enc = encode(0x04, &content);
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (tlv, rest) = read(&enc).unwrap();
        assert_eq!(tlv.content.len(), 300);
        assert!(rest.is_empty());
    }
}

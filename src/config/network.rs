//! Address and name rules that config validation applies: CIDRs, endpoints, SANs,
//! DNS-1123 names, flag names; and finding this machine's default address.

use super::Endpoint;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Parses one CIDR or a comma-separated dual-stack pair (`10.96.0.0/12,fd00::/108`).
pub fn parse_cidrs(text: &str) -> Result<Vec<IpNet>, String> {
    let mut nets = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let net: IpNet = part.parse().map_err(|_| {
            format!("{part:?} is not a CIDR; write it as address/prefix, e.g. 10.96.0.0/12")
        })?;
        nets.push(net.trunc());
    }
    if nets.len() > 2
        || (nets.len() == 2
            && matches!(
                (&nets[0], &nets[1]),
                (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
            ))
    {
        return Err(format!(
            "{text:?}: give one CIDR, or two of different IP families for dual-stack"
        ));
    }
    Ok(nets)
}

/// The service CIDR must hold the API server IP (.1) and the DNS IP (.10), and, like
/// kubeadm, an IPv6 range may not be wider than 20 host bits.
pub fn check_service_subnet_size(net: &IpNet) -> Result<(), String> {
    let host_bits = net.max_prefix_len() - net.prefix_len();
    if host_bits < 4 {
        return Err(format!(
            "service CIDR {net} is too small: it needs at least 16 addresses (the DNS Service takes the 10th)"
        ));
    }
    if matches!(net, IpNet::V6(_)) && host_bits > 20 {
        return Err(format!(
            "IPv6 service CIDR {net} is too large: use a prefix of /108 or longer"
        ));
    }
    Ok(())
}

/// Whether two CIDRs share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The `n`th address after the network address (n = 1 is the API server Service IP).
pub fn nth_ip(net: &IpNet, n: u128) -> IpAddr {
    match net {
        IpNet::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4.network()) + n as u32)),
        IpNet::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6.network()) + n)),
    }
}

/// The first usable address of a CIDR.
pub fn first_ip(net: &IpNet) -> IpAddr {
    nth_ip(net, 1)
}

/// Parses `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
pub fn parse_endpoint(text: &str, default_port: u16) -> Result<Endpoint, String> {
    let bad = || {
        format!("{text:?} is not host or host:port (e.g. cp.example.com:6443 or 10.0.0.10:6443)")
    };
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Endpoint {
            host: ip.to_string(),
            port: default_port,
        });
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, p) = rest.split_once(']').ok_or_else(bad)?;
        let port = match p.strip_prefix(':') {
            Some(p) => p.parse::<u16>().map_err(|_| bad())?,
            None if p.is_empty() => default_port,
            None => return Err(bad()),
        };
        (h.to_string(), port)
    } else if let Some((h, p)) = text.rsplit_once(':') {
        (h.to_string(), p.parse::<u16>().map_err(|_| bad())?)
    } else {
        (text.to_string(), default_port)
    };
    if port == 0 || (host.parse::<IpAddr>().is_err() && !is_dns1123_subdomain(&host)) {
        return Err(bad());
    }
    Ok(Endpoint { host, port })
}

/// A certificate SAN must be an IP address or a DNS name (a leading `*.` is allowed).
pub fn check_san(san: &str) -> Result<(), String> {
    if san.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let name = san.strip_prefix("*.").unwrap_or(san);
    if is_dns1123_subdomain(name) {
        Ok(())
    } else {
        Err(format!(
            "{san:?} is neither an IP address nor a DNS name (lowercase letters, digits, '-', '.')"
        ))
    }
}

/// DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// A command-line flag name as written without dashes: `v`, `feature-gates`, `tls-min-version`.
pub fn is_flag_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_' || *c == b'.')
}

/// `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`, the groups a bootstrap token may add.
pub fn is_bootstrap_group(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    let b = rest.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b':' || *c == b'-')
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
}

/// The IPv4 address of the interface that holds the default route, like kubeadm's
/// `ChooseHostInterface`. Reads /proc/net/route and the interface list; sends nothing.
pub fn default_route_address() -> Option<IpAddr> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    let iface = routes.lines().skip(1).find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.len() > 2 && cols[1] == "00000000").then(|| cols[0].to_string())
    })?;
    interface_ipv4(&iface)
}

fn interface_ipv4(name: &str) -> Option<IpAddr> {
    // SAFETY: getifaddrs fills a linked list we only read and then free with freeifaddrs.
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) != 0 {
            return None;
        }
        let mut found = None;
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null()
                && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
                && std::ffi::CStr::from_ptr(ifa.ifa_name).to_str() == Ok(name)
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                found = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
                break;
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_ips() {
        let n = parse_cidrs("10.96.0.0/12").unwrap();
        assert_eq!(first_ip(&n[0]).to_string(), "10.96.0.1");
        assert_eq!(nth_ip(&n[0], 10).to_string(), "10.96.0.10");
        let dual = parse_cidrs("10.96.0.0/16, fd00::/108").unwrap();
        assert_eq!(first_ip(&dual[1]).to_string(), "fd00::1");
        assert!(parse_cidrs("10.96.0.0").is_err());
        assert!(parse_cidrs("10.0.0.0/8,10.1.0.0/16").is_err());
        let pod = parse_cidrs("10.100.0.0/16").unwrap();
        assert!(overlaps(&pod[0], &n[0]));
        assert!(!overlaps(&parse_cidrs("10.244.0.0/16").unwrap()[0], &n[0]));
    }

    #[test]
    fn endpoints() {
        let e = parse_endpoint("cp.example.com:7443", 6443).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("cp.example.com", 7443));
        assert_eq!(parse_endpoint("10.0.0.1", 6443).unwrap().port, 6443);
        assert_eq!(
            parse_endpoint("[fd00::1]:443", 6443).unwrap().url(),
            "https://[fd00::1]:443"
        );
        assert_eq!(parse_endpoint("fd00::1", 6443).unwrap().host, "fd00::1");
        assert!(parse_endpoint("bad host:1", 6443).is_err());
        assert!(parse_endpoint("host:99999", 6443).is_err());
    }

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("node-1.example"));
        assert!(!is_dns1123_subdomain("Node_1"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(is_flag_name("feature-gates"));
        assert!(!is_flag_name("--v"));
        assert!(!is_flag_name("v=2"));
        assert!(is_bootstrap_group(
            "system:bootstrappers:kubeadm:default-node-token"
        ));
        assert!(!is_bootstrap_group("system:masters"));
        assert!(check_san("*.example.com").is_ok());
        assert!(check_san("not a san").is_err());
    }
}

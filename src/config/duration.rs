//! Go-style durations (`24h0m0s`, `8760h`, `90s`), the way kubeadm's config files and flags
//! write them. Kept here because config is the only place that parses user input.

use std::fmt;
use std::time::Duration;

/// What every duration error says is expected.
const EXPECTED: &str =
    "expected a duration such as 24h0m0s, 90s or 500ms (units h, m, s, ms, us, ns)";
/// The longest Go duration, in seconds (`i64::MAX` nanoseconds).
const MAX_SECS: f64 = i64::MAX as f64 / 1e9;

/// A duration written the way Go's `time.Duration` prints and parses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// Parses `1h30m`, `24h0m0s`, `500ms`, `0` (units ns, us, µs, ms, s, m, h; decimals allowed).
    /// Every error says what a duration looks like.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_inner(s).map_err(|e| format!("{e}; {EXPECTED}"))
    }

    fn parse_inner(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty duration".into());
        }
        if t == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        if t.starts_with('-') {
            return Err(format!("negative duration {t:?} is not allowed"));
        }
        let t = t.strip_prefix('+').unwrap_or(t);
        let mut total: f64 = 0.0;
        let mut rest = t;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| format!("duration {s:?} has no unit"))?;
            if num_len == 0 {
                return Err(format!("{s:?} is not a duration"));
            }
            let num: f64 = rest[..num_len]
                .parse()
                .map_err(|_| format!("invalid duration {s:?}"))?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let secs = match unit {
                "ns" => 1e-9,
                "us" | "µs" | "μs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => {
                    return Err(format!("unknown unit {unit:?} in duration {s:?}"));
                }
            };
            total += num * secs;
        }
        // Go's durations are int64 nanoseconds: about 292 years. Larger ones are refused
        // by kubeadm too, and would overflow the dates computed from them (certificate
        // expiry, token expiration).
        if !total.is_finite() || total > MAX_SECS {
            return Err(format!(
                "duration {s:?} is too large: the longest is 2562047h (about 292 years)"
            ));
        }
        Ok(GoDuration(Duration::from_secs_f64(total)))
    }
}

impl fmt::Display for GoDuration {
    /// Prints like Go for whole seconds: `24h0m0s`, `1m30s`, `45s`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h{m}m{s}s")
        } else if m > 0 {
            write!(f, "{m}m{s}s")
        } else {
            write!(f, "{s}s")
        }
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_like_go() {
        let d = GoDuration::parse("24h0m0s").unwrap();
        assert_eq!(d.0, Duration::from_secs(86400));
        assert_eq!(d.to_string(), "24h0m0s");
        assert_eq!(GoDuration::parse("1h30m").unwrap().0.as_secs(), 5400);
        assert_eq!(GoDuration::parse("1.5h").unwrap().0.as_secs(), 5400);
        assert_eq!(GoDuration::parse("500ms").unwrap().0.as_millis(), 500);
        assert_eq!(GoDuration::parse("0").unwrap().0, Duration::ZERO);
        assert_eq!(GoDuration::parse("90s").unwrap().to_string(), "1m30s");
    }

    #[test]
    fn rejects_nonsense() {
        assert!(GoDuration::parse("2562047h").is_ok());
        for bad in ["", "abc", "10", "10x", "-5m", "h", "1e400h", "2562048h"] {
            assert!(GoDuration::parse(bad).is_err(), "{bad:?} should fail");
        }
    }
}

//! Bootstrap tokens in the cluster: the Secrets the API server's bootstrap authenticator
//! reads (create, apply, list, delete). The token value itself ([`BootstrapToken`]) is a
//! leaf type in [`value`], so configuration and the API client use it without importing
//! these API calls.

pub mod value;

pub use value::{BootstrapToken, MalformedToken};

/// Where bootstrap token Secrets live.
pub const TOKEN_SECRETS: &str = "/api/v1/namespaces/kube-system/secrets";
/// The Secret type the API server's bootstrap authenticator reads.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// kubeadm's default extra group for node-joining tokens.
pub const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

/// A bootstrap token as stored in its Secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub token: BootstrapToken,
    pub description: String,
    pub expires: Option<time::OffsetDateTime>,
    /// `signing`, `authentication`.
    pub usages: Vec<String>,
    pub groups: Vec<String>,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 ns")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

impl TokenInfo {
    /// The `kube-system/bootstrap-token-<id>` Secret, as kubeadm writes it.
    pub fn to_secret(&self) -> serde_json::Value {
        let mut data = serde_json::Map::new();
        let mut put = |k: &str, v: &str| {
            use base64::Engine;
            data.insert(
                k.to_string(),
                base64::engine::general_purpose::STANDARD.encode(v).into(),
            );
        };
        put("token-id", self.token.id());
        put("token-secret", self.token.secret());
        if !self.description.is_empty() {
            put("description", &self.description);
        }
        if let Some(e) = self.expires {
            put("expiration", &rfc3339(e));
        }
        for u in &self.usages {
            put(&format!("usage-bootstrap-{u}"), "true");
        }
        if !self.groups.is_empty() {
            put("auth-extra-groups", &self.groups.join(","));
        }
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": format!("bootstrap-token-{}", self.token.id()), "namespace": "kube-system"},
            "type": SECRET_TYPE,
            "data": data,
        })
    }

    /// Reads a bootstrap token Secret; `None` if it is not a well-formed one.
    pub fn from_secret(s: &serde_json::Value) -> Option<TokenInfo> {
        use base64::Engine;
        let get = |k: &str| -> Option<String> {
            let b = base64::engine::general_purpose::STANDARD
                .decode(s["data"][k].as_str()?)
                .ok()?;
            String::from_utf8(b).ok()
        };
        let token =
            BootstrapToken::parse(&format!("{}.{}", get("token-id")?, get("token-secret")?))
                .ok()?;
        let expires = get("expiration").and_then(|e| {
            time::OffsetDateTime::parse(&e, &time::format_description::well_known::Rfc3339).ok()
        });
        let mut usages = Vec::new();
        for u in ["authentication", "signing"] {
            if get(&format!("usage-bootstrap-{u}")).as_deref() == Some("true") {
                usages.push(u.to_string());
            }
        }
        let groups = get("auth-extra-groups")
            .map(|g| {
                g.split(',')
                    .map(String::from)
                    .filter(|g| !g.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Some(TokenInfo {
            token,
            description: get("description").unwrap_or_default(),
            expires,
            usages,
            groups,
        })
    }

    /// kubeadm's `token list` row: TOKEN, TTL, EXPIRES, USAGES, DESCRIPTION, EXTRA GROUPS.
    /// Unlike kubeadm, TOKEN is `<id>.<redacted>`: secrets never reach output meant for
    /// reading or parsing (a token to join with comes from `token create`).
    pub fn row(&self, now: time::OffsetDateTime) -> Vec<String> {
        let (ttl, expires) = match self.expires {
            None => ("<forever>".to_string(), "<never>".to_string()),
            Some(e) => {
                let left = (e - now).whole_seconds();
                (
                    if left <= 0 {
                        "<invalid>".to_string()
                    } else {
                        crate::pki::expiry::short_duration(left)
                    },
                    rfc3339(e),
                )
            }
        };
        let mut usages = self.usages.clone();
        usages.sort();
        vec![
            format!("{:?}", self.token),
            ttl,
            expires,
            usages.join(","),
            if self.description.is_empty() {
                "<none>".into()
            } else {
                self.description.clone()
            },
            self.groups.join(","),
        ]
    }
}

/// Creates a token Secret; an existing token with the same id is an error (409).
pub fn create(
    client: &crate::apiclient::ApiClient,
    info: &TokenInfo,
) -> Result<(), crate::apiclient::ApiError> {
    client.create(TOKEN_SECRETS, &info.to_secret()).map(|_| ())
}

/// Creates or updates a token Secret (init's tokens, so re-runs converge).
pub fn apply(
    client: &crate::apiclient::ApiClient,
    info: &TokenInfo,
) -> Result<(), crate::apiclient::ApiError> {
    client.apply(&info.to_secret()).map(|_| ())
}

/// Every bootstrap token in the cluster, sorted by id.
pub fn list(
    client: &crate::apiclient::ApiClient,
) -> Result<Vec<TokenInfo>, crate::apiclient::ApiError> {
    let items = client.list(
        TOKEN_SECRETS,
        Some(&format!(
            "fieldSelector=type%3D{}",
            SECRET_TYPE.replace('/', "%2F")
        )),
    )?;
    let mut v: Vec<TokenInfo> = items.iter().filter_map(TokenInfo::from_secret).collect();
    v.sort_by(|a, b| a.token.id().cmp(b.token.id()));
    Ok(v)
}

/// Deletes a token by id or full token; `Ok(false)` if it did not exist.
pub fn delete(
    client: &crate::apiclient::ApiClient,
    id_or_token: &str,
) -> Result<bool, crate::apiclient::ApiError> {
    let id = id_or_token.split('.').next().unwrap_or_default();
    client.delete(&format!("{TOKEN_SECRETS}/bootstrap-token-{id}"))
}

/// The usages a token may have.
pub const USAGES: [&str; 2] = ["signing", "authentication"];

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn secret_round_trip_like_kubeadm() {
        let info = TokenInfo {
            token: BootstrapToken::parse("abcdef.0123456789abcdef").unwrap(),
            description: "d".into(),
            expires: Some(time::macros::datetime!(2030-01-02 03:04:05 UTC)),
            usages: vec!["signing".into(), "authentication".into()],
            groups: vec![DEFAULT_GROUP.into()],
        };
        let s = info.to_secret();
        assert_eq!(s["metadata"]["name"], "bootstrap-token-abcdef");
        assert_eq!(s["type"], "bootstrap.kubernetes.io/token");
        assert_eq!(s["data"]["usage-bootstrap-signing"], "dHJ1ZQ==");
        assert_eq!(s["data"]["expiration"], "MjAzMC0wMS0wMlQwMzowNDowNVo=");
        let back = TokenInfo::from_secret(&s).unwrap();
        assert_eq!(back.token, info.token);
        assert_eq!(back.expires, info.expires);
        assert_eq!(back.groups, info.groups);
        let row = back.row(time::macros::datetime!(2030-01-01 03:04:05 UTC));
        assert_eq!(row[0], "abcdef.<redacted>");
        assert!(!row.concat().contains("0123456789abcdef"), "{row:?}");
        assert_eq!(row[1], "24h");
        assert_eq!(row[3], "authentication,signing");
    }
}

//! A small client for etcd's cluster API, through etcd's own JSON gateway
//! (`/v3/cluster/member/*` over HTTPS with an etcd client certificate): what a joining
//! control plane needs (list, add as learner, promote) and what `reset` needs (remove).
//! The gRPC gateway is part of every etcd 3.x server, so no gRPC stack is pulled in.

use serde::Deserialize;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// One member, as etcd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    /// Empty until the member has started for the first time.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

#[derive(Deserialize)]
struct RawMember {
    #[serde(rename = "ID", default)]
    id: Value,
    #[serde(default)]
    name: String,
    #[serde(rename = "peerURLs", default)]
    peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    is_learner: bool,
}

fn parse_id(v: &Value) -> u64 {
    // proto3 JSON writes uint64 as a string; accept a number too.
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

impl From<RawMember> for Member {
    fn from(r: RawMember) -> Member {
        Member {
            id: parse_id(&r.id),
            name: r.name,
            peer_urls: r.peer_urls,
            client_urls: r.client_urls,
            is_learner: r.is_learner,
        }
    }
}

/// Why an etcd call failed; every variant names the endpoints tried.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd client credentials: {0}")]
    Credentials(String),
    #[error("no etcd endpoint answered ({endpoints}): {last}")]
    Unreachable { endpoints: String, last: String },
    #[error("etcd at {endpoint} refused {what}: {message}")]
    Refused {
        endpoint: String,
        what: String,
        message: String,
    },
}

/// A client for a set of etcd endpoints with one client certificate.
pub struct EtcdClient {
    http: reqwest::blocking::Client,
    endpoints: Vec<String>,
}

impl EtcdClient {
    /// A client trusting only the etcd CA (PEM), authenticating with a client certificate
    /// and key (PEM).
    pub fn new(
        endpoints: Vec<String>,
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<EtcdClient, EtcdError> {
        let ca = reqwest::Certificate::from_pem_bundle(ca_pem)
            .map_err(|e| EtcdError::Credentials(format!("etcd CA: {e}")))?;
        let mut id = cert_pem.to_vec();
        id.extend_from_slice(key_pem);
        let id = reqwest::Identity::from_pem(&id)
            .map_err(|e| EtcdError::Credentials(format!("client certificate and key: {e}")))?;
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .tls_certs_only(ca)
            .identity(id)
            .build()
            .map_err(|e| EtcdError::Credentials(format!("TLS setup: {e}")))?;
        Ok(EtcdClient { http, endpoints })
    }

    /// A client with the certificates in a node's `etcd/` directory: the CA and
    /// `healthcheck-client` (what kubeadm uses to manage members), read through `host`.
    pub fn from_cert_dir(
        host: &dyn crate::host::Host,
        cert_dir: &Path,
        endpoints: Vec<String>,
    ) -> anyhow::Result<EtcdClient> {
        let read = |rel: &str| -> anyhow::Result<Vec<u8>> {
            let p = cert_dir.join(rel);
            host.read_file(&p)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "{} is missing on {}: etcd cannot be managed without it",
                    p.display(),
                    host.name()
                )
            })
        };
        Ok(EtcdClient::new(
            endpoints,
            &read("etcd/ca.crt")?,
            &read("etcd/healthcheck-client.crt")?,
            &read("etcd/healthcheck-client.key")?,
        )?)
    }

    /// The endpoints this client uses.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// POSTs to the first endpoint that answers; etcd's refusals are returned as such.
    fn call(&self, path: &str, what: &str, body: &Value) -> Result<Value, EtcdError> {
        let mut last = String::from("no endpoints");
        for ep in &self.endpoints {
            let url = format!("{}{path}", ep.trim_end_matches('/'));
            match self.http.post(&url).json(body).send() {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().unwrap_or_default();
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if status.is_success() {
                        return Ok(v);
                    }
                    let message = v["message"]
                        .as_str()
                        .or(v["error"].as_str())
                        .map(String::from)
                        .unwrap_or_else(|| format!("HTTP {status}: {}", text.trim()));
                    return Err(EtcdError::Refused {
                        endpoint: ep.clone(),
                        what: what.into(),
                        message,
                    });
                }
                Err(e) => last = format!("{ep}: {}", crate::apiclient::error_chain(&e)),
            }
        }
        Err(EtcdError::Unreachable {
            endpoints: self.endpoints.join(", "),
            last,
        })
    }

    fn members_of(v: &Value) -> Vec<Member> {
        v["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| serde_json::from_value::<RawMember>(m.clone()).ok())
                    .map(Member::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every member.
    pub fn member_list(&self) -> Result<Vec<Member>, EtcdError> {
        let v = self.call("/v3/cluster/member/list", "the member list", &json!({}))?;
        Ok(Self::members_of(&v))
    }

    /// Adds a member (as a learner when `learner`); returns it and the new member list.
    pub fn member_add(
        &self,
        peer_url: &str,
        learner: bool,
    ) -> Result<(Member, Vec<Member>), EtcdError> {
        let v = self.call(
            "/v3/cluster/member/add",
            &format!("adding the member {peer_url}"),
            &json!({"peerURLs": [peer_url], "isLearner": learner}),
        )?;
        let added: Member = serde_json::from_value::<RawMember>(v["member"].clone())
            .map(Member::from)
            .map_err(|e| EtcdError::Refused {
                endpoint: self.endpoints.join(","),
                what: "adding a member".into(),
                message: format!("unexpected answer: {e}"),
            })?;
        Ok((added, Self::members_of(&v)))
    }

    /// Promotes a learner to a voting member (etcd refuses until it caught up).
    pub fn member_promote(&self, id: u64) -> Result<(), EtcdError> {
        self.call(
            "/v3/cluster/member/promote",
            &format!("promoting the member {id:x}"),
            &json!({"ID": id.to_string()}),
        )
        .map(|_| ())
    }

    /// Removes a member.
    pub fn member_remove(&self, id: u64) -> Result<(), EtcdError> {
        self.call(
            "/v3/cluster/member/remove",
            &format!("removing the member {id:x}"),
            &json!({"ID": id.to_string()}),
        )
        .map(|_| ())
    }

    /// Removes a member, retrying while etcd refuses because the cluster is not fully
    /// connected yet (its strict reconfiguration check, e.g. right after a member joined).
    pub fn remove_when_allowed(&self, id: u64, timeout: Duration) -> Result<(), EtcdError> {
        let start = Instant::now();
        loop {
            match self.member_remove(id) {
                Err(EtcdError::Refused { ref message, .. })
                    if message.contains("unhealthy cluster") && start.elapsed() < timeout =>
                {
                    std::thread::sleep(Duration::from_millis(500));
                }
                r => return r,
            }
        }
    }

    /// Promotes a learner, retrying while etcd says it is not in sync yet.
    pub fn promote_when_ready(&self, id: u64, timeout: Duration) -> Result<Duration, EtcdError> {
        let start = Instant::now();
        loop {
            match self.member_promote(id) {
                Ok(()) => return Ok(start.elapsed()),
                Err(e) if start.elapsed() < timeout => {
                    tracing::debug!("promote {id:x}: {e}");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// `name1=url1,name2=url2`: etcd's `--initial-cluster` for a member joining `members`
/// as `name` with `peer_url` (the unstarted new member has no name yet).
pub fn initial_cluster(members: &[Member], name: &str, peer_url: &str) -> String {
    let mut parts = Vec::new();
    for m in members {
        let n = if m.peer_urls.iter().any(|u| u == peer_url) {
            name.to_string()
        } else if m.name.is_empty() {
            continue; // another member that never started: etcd would refuse it
        } else {
            m.name.clone()
        };
        for u in &m.peer_urls {
            parts.push(format!("{n}={u}"));
        }
    }
    if !members
        .iter()
        .any(|m| m.peer_urls.iter().any(|u| u == peer_url))
    {
        parts.push(format!("{name}={peer_url}"));
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_initial_cluster() {
        let v = json!({"members": [
            {"ID": "1234", "name": "cp1", "peerURLs": ["https://10.0.0.1:2380"], "clientURLs": ["https://10.0.0.1:2379"]},
            {"ID": "99", "peerURLs": ["https://10.0.0.2:2380"], "isLearner": true},
        ]});
        let m = EtcdClient::members_of(&v);
        assert_eq!(m[0].id, 1234);
        assert!(m[1].is_learner && m[1].name.is_empty());
        assert_eq!(
            initial_cluster(&m, "cp2", "https://10.0.0.2:2380"),
            "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380"
        );
        assert_eq!(
            initial_cluster(&m[..1], "cp2", "https://10.0.0.2:2380"),
            "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380"
        );
    }
}

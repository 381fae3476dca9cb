//! Talking to kube-apiserver with the credentials of a kubeconfig: client certificates
//! (ECDSA or RSA), bearer tokens (bootstrap tokens), or anonymously with a pinned CA.
//!
//! Plain `reqwest` with rustls rather than kube-rs: kubeboot makes a few dozen kinds of
//! calls (get, create, server-side apply, patch, delete, list, readyz), and the typed
//! client would add 32 crates and about 30% to clean builds for no call we need.
//! Objects are `serde_json::Value`; third-party manifests go to the server as YAML via
//! server-side apply so the API server, not kubeboot, parses them.

use crate::kubeconfig::KubeConfig;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The field manager kubeboot's server-side applies use.
pub const FIELD_MANAGER: &str = "kubeboot";

/// How long workflow steps (init's phases after `wait-control-plane`, join, `up`) retry
/// an API call while the server is briefly away; kubeadm's `KubernetesAPICall` timeout.
pub const API_CALL_RETRY: Duration = Duration::from_secs(60);

/// Why a call failed. Every variant names the URL; auth failures name the identity.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the API server at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url}: {user} is not allowed to do this: {message}")]
    Forbidden {
        url: String,
        user: String,
        message: String,
    },
    #[error("{url}: the API server did not accept the credentials of {user} (401): {message}")]
    Unauthorized {
        url: String,
        user: String,
        message: String,
    },
    #[error("{url}: not found")]
    NotFound { url: String },
    #[error("{url}: conflict: {message}")]
    Conflict { url: String, message: String },
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: unexpected response: {message}")]
    Decode { url: String, message: String },
    #[error("invalid credentials: {0}")]
    Credentials(String),
    #[error("the API server at {url} was not ready within {}s: {last}", waited.as_secs())]
    NotReady {
        url: String,
        waited: Duration,
        last: String,
    },
    #[error("{0}")]
    Discovery(String),
}

impl ApiError {
    /// Whether the error is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::NotFound { .. })
    }
    /// Whether the error is a 403.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ApiError::Forbidden { .. })
    }
}

/// How requests are authenticated.
#[derive(Clone)]
enum Auth {
    None,
    /// The bearer token; a [`crate::secret::Secret`] so a `Debug` added later redacts it.
    Bearer(crate::secret::Secret),
}

/// A client for one API server with one identity.
pub struct ApiClient {
    http: reqwest::blocking::Client,
    server: String,
    auth: Auth,
    user: String,
    resources: Mutex<HashMap<String, (String, bool)>>,
    /// How long a request is retried while the server refuses connections or answers
    /// 429/503 (a control-plane component restarting); zero: fail at once.
    retry_window: Duration,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiClient({} as {})", self.server, self.user)
    }
}

/// How the server's certificate is trusted.
pub enum Trust<'a> {
    /// Only this CA bundle (PEM).
    Ca(&'a [u8]),
    /// Nothing: for token discovery's first fetch, whose answer is verified separately.
    InsecureSkipVerify,
}

fn builder(trust: &Trust, timeout: Duration) -> Result<reqwest::blocking::ClientBuilder, ApiError> {
    let b = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .user_agent(concat!("kubeboot/", env!("CARGO_PKG_VERSION")));
    Ok(match trust {
        Trust::Ca(pem) => {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ApiError::Credentials(format!("CA data: {e}")))?;
            b.tls_certs_only(certs)
        }
        Trust::InsecureSkipVerify => b.tls_danger_accept_invalid_certs(true),
    })
}

impl ApiClient {
    /// A client with the current context of a kubeconfig.
    pub fn from_kubeconfig(kc: &KubeConfig) -> Result<ApiClient, ApiError> {
        Self::from_kubeconfig_with_timeout(kc, Duration::from_secs(30))
    }

    /// Like [`ApiClient::from_kubeconfig`], with a per-request timeout.
    pub fn from_kubeconfig_with_timeout(
        kc: &KubeConfig,
        timeout: Duration,
    ) -> Result<ApiClient, ApiError> {
        let cluster = kc
            .current_cluster()
            .ok_or_else(|| {
                ApiError::Credentials(
                    "the kubeconfig has no current cluster: current-context must name a context whose cluster is listed under clusters".into(),
                )
            })?;
        let ca = B64
            .decode(&cluster.certificate_authority_data)
            .map_err(|e| {
                ApiError::Credentials(format!(
                    "certificate-authority-data is not base64 ({e}); expected the cluster's CA certificate (PEM), base64-encoded"
                ))
            })?;
        let mut b = builder(&Trust::Ca(&ca), timeout)?;
        let user = kc
            .current_user()
            .ok_or_else(|| {
                ApiError::Credentials(
                    "the kubeconfig has no current user: current-context must name a context whose user is listed under users".into(),
                )
            })?;
        let mut auth = Auth::None;
        let mut who = "system:anonymous".to_string();
        if !user.client_certificate_data.is_empty() {
            let mut pem = B64
                .decode(&user.client_certificate_data)
                .map_err(|e| ApiError::Credentials(format!("client-certificate-data: {e}")))?;
            let cert = crate::pki::Certificate::from_pem(&pem).map_err(ApiError::Credentials)?;
            who = format!("user {:?} (groups {:?})", cert.cn, cert.orgs);
            pem.extend(
                B64.decode(&user.client_key_data)
                    .map_err(|e| ApiError::Credentials(format!("client-key-data: {e}")))?,
            );
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| ApiError::Credentials(format!("client certificate and key: {e}")))?;
            b = b.identity(id);
        } else if !user.token.is_empty() {
            who = match crate::token::value::BootstrapToken::parse(&user.token) {
                Ok(t) => format!("user \"system:bootstrap:{}\"", t.id()),
                Err(_) => "the token user".into(),
            };
            auth = Auth::Bearer(user.token.as_str().into());
        }
        let http = b
            .build()
            .map_err(|e| ApiError::Credentials(format!("TLS setup: {e}")))?;
        Ok(ApiClient {
            http,
            server: cluster.server.trim_end_matches('/').to_string(),
            auth,
            user: who,
            resources: Mutex::new(HashMap::new()),
            retry_window: Duration::ZERO,
        })
    }

    /// An anonymous client (discovery).
    pub fn anonymous(server: &str, trust: Trust, timeout: Duration) -> Result<ApiClient, ApiError> {
        let http = builder(&trust, timeout)?
            .build()
            .map_err(|e| ApiError::Credentials(format!("TLS setup: {e}")))?;
        Ok(ApiClient {
            http,
            server: server.trim_end_matches('/').to_string(),
            auth: Auth::None,
            user: "system:anonymous".into(),
            resources: Mutex::new(HashMap::new()),
            retry_window: Duration::ZERO,
        })
    }

    /// Retries requests for up to `window` while the API server is briefly away: the
    /// connection is refused (no request reached it, so retrying is safe for any method),
    /// a read's connection breaks (reset while the server restarts), or it answers 429
    /// Too Many Requests or 503 Service Unavailable. kubeadm retries its
    /// API calls the same way for up to a minute; a static Pod restarting right after
    /// `wait-control-plane` is the usual cause.
    pub fn retrying(mut self, window: Duration) -> Self {
        self.retry_window = window;
        self
    }

    /// The server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Who this client authenticates as, for messages.
    pub fn user(&self) -> &str {
        &self.user
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Value, ApiError> {
        let text = self.send_text(method, path, body)?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Sends a request, retried within the client's retry window (see
    /// [`ApiClient::retrying`]); a 2xx answer's body as text, other statuses as typed errors.
    fn send_text(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<String, ApiError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            match self.send_once(method.clone(), path, body.clone()) {
                Err((e, true)) if start.elapsed() + delay <= self.retry_window => {
                    tracing::debug!("{e}; retrying in {delay:?}");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err((e, _)) => return Err(e),
                Ok(text) => return Ok(text),
            }
        }
    }

    /// One attempt; an error comes with whether it is transient (see
    /// [`ApiClient::retrying`]).
    fn send_once(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<String, (ApiError, bool)> {
        let url = format!("{}{}", self.server, path);
        let idempotent = method == reqwest::Method::GET || method == reqwest::Method::HEAD;
        let mut req = self
            .http
            .request(method, &url)
            .header("Accept", "application/json");
        if let Auth::Bearer(t) = &self.auth {
            req = req.bearer_auth(t.expose());
        }
        if let Some((ct, bytes)) = body {
            req = req.header("Content-Type", ct).body(bytes);
        }
        let resp = req.send().map_err(|e| {
            // Refused: no request reached the server. A read (GET) is also retried when
            // the connection broke under it (reset by an API server restarting).
            let transient = e.is_connect() || (idempotent && e.is_request());
            (
                ApiError::Unreachable {
                    url: url.clone(),
                    message: error_chain(&e),
                },
                transient,
            )
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().map_err(|e| {
            (
                ApiError::Unreachable {
                    url: url.clone(),
                    message: error_chain(&e),
                },
                false,
            )
        })?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let transient = status == 429 || status == 503;
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| text.trim().chars().take(300).collect());
        Err((
            match status {
                401 => ApiError::Unauthorized {
                    url,
                    user: self.user.clone(),
                    message,
                },
                403 => ApiError::Forbidden {
                    url,
                    user: self.user.clone(),
                    message,
                },
                404 => ApiError::NotFound { url },
                409 => ApiError::Conflict { url, message },
                _ => ApiError::Status {
                    url,
                    status,
                    message,
                },
            },
            transient,
        ))
    }

    /// GET a path (`/api/v1/namespaces/kube-system/configmaps/x`).
    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.send(reqwest::Method::GET, path, None)
    }

    /// GET a path whose answer is text, not JSON (a Pod's log).
    pub fn get_text(&self, path: &str) -> Result<String, ApiError> {
        self.send_text(reqwest::Method::GET, path, None)
    }

    /// GET, with 404 as `None`.
    pub fn get_opt(&self, path: &str) -> Result<Option<Value>, ApiError> {
        match self.get(path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// POST an object to a collection path.
    pub fn create(&self, collection: &str, obj: &Value) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::POST,
            collection,
            Some(("application/json", serde_json::to_vec(obj).expect("json"))),
        )
    }

    /// PUT an object (replace).
    pub fn replace(&self, path: &str, obj: &Value) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::PUT,
            path,
            Some(("application/json", serde_json::to_vec(obj).expect("json"))),
        )
    }

    /// JSON merge patch (`application/merge-patch+json`).
    pub fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, ApiError> {
        self.send(
            reqwest::Method::PATCH,
            path,
            Some((
                "application/merge-patch+json",
                serde_json::to_vec(patch).expect("json"),
            )),
        )
    }

    /// DELETE; `Ok(false)` when it was already gone.
    pub fn delete(&self, path: &str) -> Result<bool, ApiError> {
        match self.send(reqwest::Method::DELETE, path, None) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The items of a collection, optionally filtered by a label or field selector.
    pub fn list(&self, collection: &str, selector: Option<&str>) -> Result<Vec<Value>, ApiError> {
        let path = match selector {
            Some(s) => format!("{collection}?{s}"),
            None => collection.to_string(),
        };
        let v = self.get(&path)?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// Server-side apply of one object (JSON or YAML text), owned by kubeboot and forcing
    /// conflicts, so re-runs converge. Returns the object as stored.
    pub fn apply(&self, obj: &Value) -> Result<Value, ApiError> {
        let path = self.object_path(obj)?;
        self.send(
            reqwest::Method::PATCH,
            &format!("{path}?fieldManager={FIELD_MANAGER}&force=true"),
            Some((
                "application/apply-patch+yaml",
                serde_json::to_vec(obj).expect("json"),
            )),
        )
    }

    /// Server-side apply of a YAML document exactly as written (third-party manifests):
    /// only `apiVersion`, `kind` and `metadata` are read here; the server parses the rest.
    pub fn apply_yaml(&self, doc: &str) -> Result<Value, ApiError> {
        let meta: Value = serde_saphyr::from_str(doc).map_err(|e| ApiError::Decode {
            url: self.server.clone(),
            message: format!("manifest document: {e}"),
        })?;
        let meta = serde_json::json!({
            "apiVersion": meta["apiVersion"], "kind": meta["kind"],
            "metadata": {"name": meta["metadata"]["name"], "namespace": meta["metadata"]["namespace"]}
        });
        let path = self.object_path(&meta)?;
        self.send(
            reqwest::Method::PATCH,
            &format!("{path}?fieldManager={FIELD_MANAGER}&force=true"),
            Some(("application/apply-patch+yaml", doc.as_bytes().to_vec())),
        )
    }

    /// The REST path of an object from its apiVersion, kind, namespace and name, using
    /// the server's discovery documents (cached) to find the resource name.
    pub fn object_path(&self, obj: &Value) -> Result<String, ApiError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(ApiError::Discovery(
                "an object needs apiVersion, kind and metadata.name".into(),
            ));
        }
        let (plural, namespaced) = self.resource_for(api_version, kind)?;
        let base = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        Ok(if namespaced {
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
            format!("{base}/namespaces/{ns}/{plural}/{name}")
        } else {
            format!("{base}/{plural}/{name}")
        })
    }

    fn resource_for(&self, api_version: &str, kind: &str) -> Result<(String, bool), ApiError> {
        let key = format!("{api_version}/{kind}");
        if let Some(r) = self.resources.lock().unwrap().get(&key) {
            return Ok(r.clone());
        }
        let path = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        let doc = self.get(&path)?;
        let mut found = None;
        let mut cache = self.resources.lock().unwrap();
        for r in doc["resources"].as_array().into_iter().flatten() {
            let name = r["name"].as_str().unwrap_or_default();
            if name.contains('/') {
                continue;
            }
            let k = r["kind"].as_str().unwrap_or_default();
            let entry = (name.to_string(), r["namespaced"].as_bool().unwrap_or(false));
            if k == kind {
                found = Some(entry.clone());
            }
            cache.insert(format!("{api_version}/{k}"), entry);
        }
        found.ok_or_else(|| {
            ApiError::Discovery(format!(
                "the API server at {} does not serve {kind} in {api_version}",
                self.server
            ))
        })
    }

    /// Waits until `/readyz` answers `ok`, retrying with backoff until `deadline`.
    pub fn wait_ready(&self, deadline: Duration) -> Result<Duration, ApiError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            // One attempt at a time: this loop is the retry, bounded by `deadline`.
            let last = match self.send_once(reqwest::Method::GET, "/readyz", None) {
                Ok(s) if s.trim() == "ok" => return Ok(start.elapsed()),
                Ok(v) => format!("answered {v}"),
                Err((e, _)) => e.to_string(),
            };
            if start.elapsed() + delay > deadline {
                return Err(ApiError::NotReady {
                    url: format!("{}/readyz", self.server),
                    waited: start.elapsed(),
                    last,
                });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// An error and its causes in one line (reqwest hides the interesting part in sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The collection path for a core or group resource (`/api/v1/namespaces/ns/secrets`).
pub fn collection(api_version: &str, namespace: Option<&str>, plural: &str) -> String {
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    match namespace {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}"),
        None => format!("{base}/{plural}"),
    }
}

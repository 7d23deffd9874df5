//! The auth proxy (`--auth-proxy-url`, docs/protocol.md §10.4): how an app
//! with its own sessions (a session cookie) lets its users onto a plain
//! WebSocket without sharing a secret with Tidings.
//!
//! For an upgrade request that carries cookies or one of the
//! `--auth-proxy-headers`, Tidings POSTs them as JSON,
//! `{ "cookies": { name: value }, "headers": { name: value } }`, to the
//! app's session endpoint, and reads the answer:
//!
//! - `200 { "userId": "...", "rooms"?: [...] }`: that user (an outside id,
//!   mapped as every outside id is) with those room grants;
//! - any `4xx`, or a redirect (the usual "go and sign in"): a refusal, whose
//!   status Tidings passes on to the client (a redirect becomes 401);
//! - a `5xx`, an unreadable answer, no connection, or no answer within
//!   `--auth-proxy-timeout-ms`: the proxy's failure, never taken as a yes
//!   or a no; the client gets 502, 503 or 504 saying which.
//!
//! Definite answers (a user, or a refusal) are kept for
//! `--auth-proxy-cache-ms`, keyed by a keyed digest of exactly what was
//! forwarded: a page that opens several sockets, or reconnects, costs the
//! app one request, and a signed-out session stops working at the latest
//! that long after. Failures are never kept, so a proxy that comes back is
//! used at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use rand::RngCore;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Answers kept at once; the oldest go first beyond it.
const CACHE_CAPACITY: usize = 10_000;
/// Largest answer body read from the proxy: a user id and some rooms.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProxyConfigError {
    #[error("--auth-proxy-url: {0}")]
    Url(String),
    #[error("--auth-proxy-headers: {0:?} is not a header name")]
    Header(String),
    #[error("auth proxy HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// What the proxy said about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `200 { userId, rooms? }`: `rooms` as sent, checked by the caller.
    User { id: String, rooms: Option<Value> },
    /// A refusal, with the status to pass on (4xx).
    Refused(StatusCode),
}

/// The proxy did not give a definite answer; never cached.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("the auth proxy did not answer in time")]
    Timeout,
    #[error("the auth proxy is unavailable")]
    Down,
    #[error("the auth proxy failed ({0})")]
    Failed(StatusCode),
    #[error("the auth proxy's answer could not be read")]
    Unreadable,
}

/// What is forwarded for one request: the JSON body, and the cache key.
pub struct Forwarded {
    body: String,
    has_cookies: bool,
}

impl Forwarded {
    /// Whether cookies are among what is forwarded (an `Origin` check is
    /// then due: cross-site WebSocket hijacking).
    pub fn has_cookies(&self) -> bool {
        self.has_cookies
    }
}

#[derive(Clone)]
pub struct AuthProxy {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: Vec<HeaderName>,
    cache: std::sync::Arc<AnswerCache>,
}

impl AuthProxy {
    /// The proxy of `--auth-proxy-url`, if set.
    pub fn from_config(config: &crate::config::Config) -> Result<Option<Self>, ProxyConfigError> {
        let Some(url) = &config.auth_proxy_url else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(url).map_err(|e| ProxyConfigError::Url(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ProxyConfigError::Url("must be http:// or https://".into()));
        }
        let headers = config
            .auth_proxy_headers
            .iter()
            .map(|name| {
                HeaderName::try_from(name.to_ascii_lowercase())
                    .map_err(|_| ProxyConfigError::Header(name.clone()))
            })
            .collect::<Result<_, _>>()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.auth_proxy_timeout_ms))
            // A redirect is the app's "sign in first": a refusal, not a
            // page to follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Some(Self {
            client,
            url,
            headers,
            cache: std::sync::Arc::new(AnswerCache::new(Duration::from_millis(
                config.auth_proxy_cache_ms,
            ))),
        }))
    }

    /// What this request would forward: `None` when it carries neither a
    /// cookie nor a configured header (then there is nothing to ask about).
    pub fn forwarded(&self, headers: &HeaderMap) -> Option<Forwarded> {
        let cookies: BTreeMap<String, String> = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .map(|c| (c.name().to_owned(), c.value().to_owned()))
            .collect();
        let forwarded_headers: BTreeMap<&str, &str> = self
            .headers
            .iter()
            .filter_map(|name| {
                let value = headers.get(name)?.to_str().ok()?;
                Some((name.as_str(), value))
            })
            .collect();
        if cookies.is_empty() && forwarded_headers.is_empty() {
            return None;
        }
        // BTreeMaps: the same request always gives the same text, hence
        // the same cache key.
        let body = serde_json::json!({ "cookies": cookies, "headers": forwarded_headers });
        Some(Forwarded {
            body: body.to_string(),
            has_cookies: !cookies.is_empty(),
        })
    }

    /// The proxy's answer for `forwarded`, from the cache while it is
    /// fresh at `now`.
    #[tracing::instrument(skip_all)]
    pub async fn ask(&self, forwarded: &Forwarded, now: Instant) -> Result<Answer, ProxyError> {
        let key = self.cache.key(&forwarded.body);
        if let Some(answer) = self.cache.get(&key, now) {
            return Ok(answer);
        }
        let answer = self.request(&forwarded.body).await?;
        self.cache.put(key, answer.clone(), now);
        Ok(answer)
    }

    async fn request(&self, body: &str) -> Result<Answer, ProxyError> {
        let sent = self
            .client
            .post(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => return Err(classify(&err)),
        };
        let status = response.status();
        if status.is_redirection() {
            return Ok(Answer::Refused(StatusCode::UNAUTHORIZED));
        }
        if status.is_client_error() {
            return Ok(Answer::Refused(status));
        }
        if status != StatusCode::OK {
            tracing::warn!(%status, "the auth proxy failed");
            return Err(ProxyError::Failed(status));
        }
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                        tracing::warn!("the auth proxy's answer is too large");
                        return Err(ProxyError::Unreadable);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => return Err(classify(&err)),
            }
        }
        parse_user(&bytes).ok_or_else(|| {
            tracing::warn!("the auth proxy's 200 answer has no userId");
            ProxyError::Unreadable
        })
    }
}

fn classify(err: &reqwest::Error) -> ProxyError {
    if err.is_timeout() {
        tracing::warn!(error = %err, "the auth proxy did not answer in time");
        ProxyError::Timeout
    } else {
        tracing::warn!(error = %err, "the auth proxy is unavailable");
        ProxyError::Down
    }
}

/// `{ userId, rooms? }`; `userId` a string or an integer (apps often number
/// their users).
fn parse_user(bytes: &[u8]) -> Option<Answer> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        user_id: Value,
        #[serde(default)]
        rooms: Option<Value>,
    }
    let body: Body = serde_json::from_slice(bytes).ok()?;
    let id = match body.user_id {
        Value::String(id) => id,
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return None,
    };
    Some(Answer::User {
        id,
        rooms: body.rooms,
    })
}

/// Definite answers by keyed digest of what was forwarded, each fresh for
/// `ttl` from when it was received (clock passed in).
struct AnswerCache {
    ttl: Duration,
    /// Keys the digests: the cache holds no plain hash of a session cookie.
    digest_key: [u8; 32],
    entries: quick_cache::sync::Cache<[u8; 32], (Answer, Instant)>,
}

impl AnswerCache {
    fn new(ttl: Duration) -> Self {
        let mut digest_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut digest_key);
        Self {
            ttl,
            digest_key,
            entries: quick_cache::sync::Cache::new(CACHE_CAPACITY),
        }
    }

    fn key(&self, body: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.digest_key);
        hasher.update(body.as_bytes());
        hasher.finalize().into()
    }

    fn get(&self, key: &[u8; 32], now: Instant) -> Option<Answer> {
        let (answer, received) = self.entries.get(key)?;
        if now.saturating_duration_since(received) < self.ttl {
            Some(answer)
        } else {
            self.entries.remove(key);
            None
        }
    }

    fn put(&self, key: [u8; 32], answer: Answer, now: Instant) {
        if !self.ttl.is_zero() {
            self.entries.insert(key, (answer, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_for_the_ttl_and_not_a_moment_longer() {
        let cache = AnswerCache::new(Duration::from_secs(5));
        let key = cache.key(r#"{"cookies":{"sid":"a"},"headers":{}}"#);
        let other = cache.key(r#"{"cookies":{"sid":"b"},"headers":{}}"#);
        let t0 = Instant::now();
        let answer = Answer::User {
            id: "42".into(),
            rooms: None,
        };
        cache.put(key, answer.clone(), t0);
        assert_eq!(
            cache.get(&key, t0 + Duration::from_millis(4999)),
            Some(answer)
        );
        assert_eq!(cache.get(&other, t0), None);
        assert_eq!(cache.get(&key, t0 + Duration::from_secs(5)), None);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = AnswerCache::new(Duration::ZERO);
        let key = cache.key("x");
        cache.put(
            key,
            Answer::Refused(StatusCode::UNAUTHORIZED),
            Instant::now(),
        );
        assert_eq!(cache.get(&key, Instant::now()), None);
    }

    #[test]
    fn a_user_answer_names_a_string_or_integer_id() {
        assert_eq!(
            parse_user(br#"{"userId":"github:ferbs","rooms":["topic:a"]}"#),
            Some(Answer::User {
                id: "github:ferbs".into(),
                rooms: Some(serde_json::json!(["topic:a"]))
            })
        );
        assert_eq!(
            parse_user(br#"{"userId":17}"#),
            Some(Answer::User {
                id: "17".into(),
                rooms: None
            })
        );
        for bad in [
            &br#"{"userId":1.5}"#[..],
            br#"{"user":"x"}"#,
            b"<html>",
            b"",
        ] {
            assert_eq!(parse_user(bad), None);
        }
    }
}

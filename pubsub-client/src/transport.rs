//! One REST call: URL, auth header, optional gzip body, error mapping.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use crate::auth::Authorizer;
use crate::error::{Error, Result};

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const GZIP: HeaderValue = HeaderValue::from_static("gzip");

/// A request body, already encoded.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub(crate) bytes: Bytes,
    pub(crate) gzipped: bool,
}

impl Body {
    pub(crate) fn json(bytes: impl Into<Bytes>) -> Self {
        Body { bytes: bytes.into(), gzipped: false }
    }
}

/// Sends requests to one Pub/Sub endpoint.
pub(crate) struct Transport {
    http: reqwest::Client,
    /// `{scheme}://{host}/v1/`
    base: String,
    auth: Option<Authorizer>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base)
            .field("authenticated", &self.auth.is_some())
            .finish()
    }
}

/// Settings of the underlying HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) pool_max_idle_per_host: usize,
    pub(crate) user_agent: String,
}

impl Transport {
    pub(crate) fn new(endpoint: &str, auth: Option<Authorizer>, settings: &HttpSettings) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .tcp_nodelay(true)
            .user_agent(settings.user_agent.clone())
            .build()
            .map_err(|e| Error::InvalidConfig(format!("cannot build the HTTP client: {e}")))?;
        Ok(Transport { http, base: format!("{}/v1/", endpoint.trim_end_matches('/')), auth })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    #[cfg(test)]
    pub(crate) fn authorizer(&self) -> Option<&Authorizer> {
        self.auth.as_ref()
    }

    /// Sends `method base+path` with an optional JSON body and returns the response body of a
    /// 2xx answer, or the error the service described.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Body>) -> Result<Bytes> {
        self.call_with_timeout(method, path, body, None).await
    }

    /// Like [`call`](Self::call) with a time limit other than the client's request timeout.
    pub(crate) async fn call_with_timeout(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
        timeout: Option<Duration>,
    ) -> Result<Bytes> {
        let mut url = String::with_capacity(self.base.len() + path.len());
        url.push_str(&self.base);
        url.push_str(path);
        let mut req = self.http.request(method, url);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.header().await?);
        }
        if let Some(body) = body {
            req = req.header(CONTENT_TYPE, JSON);
            if body.gzipped {
                req = req.header(CONTENT_ENCODING, GZIP);
            }
            req = req.body(body.bytes);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.is_success() { Ok(bytes) } else { Err(api_error(status, &bytes)) }
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
}

/// Builds an [`Error::Api`] from a non-2xx answer, keeping the server's own message.
pub(crate) fn api_error(status: StatusCode, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(env) => Error::Api { code: status.as_u16(), status: env.error.status, message: env.error.message },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let mut end = text.len().min(512);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("no message").to_owned()
            } else {
                text[..end].to_owned()
            };
            Error::Api { code: status.as_u16(), status: String::new(), message }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_error_bodies_are_decoded() {
        let e = api_error(
            StatusCode::NOT_FOUND,
            br#"{"error":{"code":404,"message":"Topic not found","status":"NOT_FOUND"}}"#,
        );
        match e {
            Error::Api { code, status, message } => {
                assert_eq!((code, status.as_str(), message.as_str()), (404, "NOT_FOUND", "Topic not found"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn other_bodies_become_the_message() {
        let e = api_error(StatusCode::BAD_GATEWAY, b"upstream connect error");
        assert!(e.to_string().contains("upstream connect error"), "{e}");
        assert!(e.is_retryable());
        let e = api_error(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert!(e.to_string().contains("Service Unavailable"), "{e}");
    }
}

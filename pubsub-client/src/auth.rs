//! Credentials and access tokens.
//!
//! Tokens come from [`gcp_auth`], which caches them per scope set and fetches a new one 20 s
//! before the old one expires. This module keeps the ready-made `Authorization` header for the
//! current token so the hot path neither formats nor re-validates it, and marks that header
//! sensitive so it never appears in logs or debug output.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gcp_auth::{Token, TokenProvider};
use reqwest::header::HeaderValue;

use crate::error::{Error, Result};

/// OAuth scope the client asks for.
pub const PUBSUB_SCOPE: &str = "https://www.googleapis.com/auth/pubsub";

/// Where the client gets its credentials from.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Credentials {
    /// Application default credentials, found the way Google's clients find them:
    /// `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's user credentials, then the GCE/GKE metadata
    /// server (workload identity). This is the default.
    #[default]
    ApplicationDefault,
    /// A service-account key file (JSON).
    ServiceAccountFile(PathBuf),
    /// A service-account key as a JSON string.
    ServiceAccountJson(String),
    /// The GCE/GKE metadata server only.
    MetadataServer,
    /// Any token provider, e.g. for impersonation or tests.
    Provider(Arc<dyn TokenProvider>),
    /// No credentials: requests carry no `Authorization` header (emulator, local proxies).
    Anonymous,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ApplicationDefault => f.write_str("ApplicationDefault"),
            Credentials::ServiceAccountFile(p) => f.debug_tuple("ServiceAccountFile").field(p).finish(),
            Credentials::ServiceAccountJson(_) => f.write_str("ServiceAccountJson(****)"),
            Credentials::MetadataServer => f.write_str("MetadataServer"),
            Credentials::Provider(_) => f.write_str("Provider(..)"),
            Credentials::Anonymous => f.write_str("Anonymous"),
        }
    }
}

impl Credentials {
    /// Resolves the credentials into a token provider, or `None` for anonymous access.
    pub(crate) async fn into_provider(self) -> Result<Option<Arc<dyn TokenProvider>>> {
        Ok(Some(match self {
            Credentials::ApplicationDefault => gcp_auth::provider().await?,
            Credentials::ServiceAccountFile(path) => {
                Arc::new(gcp_auth::CustomServiceAccount::from_file(&path).map_err(|e| {
                    Error::InvalidConfig(format!(
                        "cannot use service-account key file {}: {e}",
                        path.display()
                    ))
                })?)
            }
            Credentials::ServiceAccountJson(json) => Arc::new(
                gcp_auth::CustomServiceAccount::from_json(&json)
                    .map_err(|e| Error::InvalidConfig(format!("cannot use service-account key JSON: {e}")))?,
            ),
            Credentials::MetadataServer => Arc::new(gcp_auth::MetadataServiceAccount::new().await?),
            Credentials::Provider(p) => p,
            Credentials::Anonymous => return Ok(None),
        }))
    }
}

/// Hands out `Authorization` headers for the current token.
pub(crate) struct Authorizer {
    provider: Arc<dyn TokenProvider>,
    cached: Mutex<Option<(Arc<Token>, HeaderValue)>>,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorizer { .. }")
    }
}

impl Authorizer {
    pub(crate) fn new(provider: Arc<dyn TokenProvider>) -> Self {
        Authorizer { provider, cached: Mutex::new(None) }
    }

    /// The header for the provider's current token; a new token gives a new header.
    pub(crate) async fn header(&self) -> Result<HeaderValue> {
        let token = self.provider.token(&[PUBSUB_SCOPE]).await?;
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, h)) = cached.as_ref()
            && Arc::ptr_eq(t, &token)
        {
            return Ok(h.clone());
        }
        let mut header = HeaderValue::try_from(format!("Bearer {}", token.as_str())).map_err(|_| {
            Error::Protocol("access token contains characters not allowed in a header".into())
        })?;
        header.set_sensitive(true);
        *cached = Some((token, header.clone()));
        Ok(header)
    }

    /// The project the credentials belong to, if they name one.
    pub(crate) async fn project_id(&self) -> Option<String> {
        self.provider.project_id().await.ok().map(|p| p.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Rotating {
        calls: AtomicUsize,
        tokens: Vec<Arc<Token>>,
    }

    fn token(s: &str) -> Arc<Token> {
        Arc::new(
            serde_json::from_value(serde_json::json!({"access_token": s, "expires_in": 3600}))
                .expect("token json"),
        )
    }

    #[async_trait::async_trait]
    impl TokenProvider for Rotating {
        async fn token(&self, scopes: &[&str]) -> Result<Arc<Token>, gcp_auth::Error> {
            assert_eq!(scopes, [PUBSUB_SCOPE]);
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(self.tokens[(n / 2).min(self.tokens.len() - 1)].clone())
        }
        async fn project_id(&self) -> Result<Arc<str>, gcp_auth::Error> {
            Ok(Arc::from("from-creds"))
        }
    }

    #[tokio::test]
    async fn headers_follow_the_providers_token_and_stay_secret() {
        let auth = Authorizer::new(Arc::new(Rotating {
            calls: AtomicUsize::new(0),
            tokens: vec![token("first"), token("second")],
        }));
        let a = auth.header().await.expect("header");
        let b = auth.header().await.expect("header");
        let c = auth.header().await.expect("header");
        assert_eq!(a.to_str().ok(), Some("Bearer first"));
        assert_eq!(a, b);
        assert_eq!(c.to_str().ok(), Some("Bearer second"));
        assert!(c.is_sensitive());
        assert!(!format!("{c:?}").contains("second"), "token leaked into Debug: {c:?}");
        assert_eq!(auth.project_id().await.as_deref(), Some("from-creds"));
    }

    #[tokio::test]
    async fn broken_key_material_names_the_problem() {
        let err = Credentials::ServiceAccountJson("{not json".into()).into_provider().await.err();
        assert!(err.expect("must fail").to_string().contains("service-account key JSON"));
        let err = Credentials::ServiceAccountFile("/nonexistent/key.json".into()).into_provider().await.err();
        assert!(err.expect("must fail").to_string().contains("/nonexistent/key.json"));
        assert!(!format!("{:?}", Credentials::ServiceAccountJson("secret".into())).contains("secret"));
    }
}

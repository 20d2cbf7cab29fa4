//! TLS on the listener (rustls with the ring provider), for tailers that send across data
//! centres. Handshakes run in each connection's task (at most [`MAX_HANDSHAKES`] at once, each
//! within [`HANDSHAKE_TIMEOUT`]; see `listener.rs`) so a slow client cannot stall the accept
//! loop.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::ServiceError;

/// Most TLS handshakes in progress at once.
pub const MAX_HANDSHAKES: usize = 256;
/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the acceptor from PEM files, naming the file that is wrong.
pub(crate) fn acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, ServiceError> {
    let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        ServiceError::Config(format!("tls.{what} {}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .map_err(|e| bad("cert", &cfg.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad("cert", &cfg.cert, &e))?;
    if certs.is_empty() {
        return Err(bad("cert", &cfg.cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| bad("key", &cfg.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServiceError::Config(format!("tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("key", &cfg.key, &e))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

//! The rustls client configuration of webhook deliveries: the `ring` provider and Mozilla's
//! roots compiled in (webpki-roots), as the Stripe client in `hakken-api` builds it, so no
//! system trust store and no C library beyond what the workspace already builds. (Three
//! lines shared with `payments/stripe.rs`, which another change owns: repeated, not moved.)

use std::sync::Arc;

/// A TLS connector that offers `alpn` (HTTP/1.1 for webhooks, none for SMTPS) and
/// trusts `roots`.
pub(crate) fn connector(
    roots: rustls::RootCertStore,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::TlsConnector, rustls::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Mozilla's root certificates.
pub(crate) fn mozilla_roots() -> rustls::RootCertStore {
    rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

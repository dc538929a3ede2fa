//! TLS set-up shared by every client of the process (WebSocket and REST).

/// Installs rustls's `ring` crypto provider as the process default. Call once at start-up,
/// before any TLS or HTTP client is built; later calls are harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

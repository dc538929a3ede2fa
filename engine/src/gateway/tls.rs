//! TLS (rustls, `ring` provider) and token authentication for client connections.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_tungstenite::tungstenite::handshake::server::Request;

/// Where the server's certificate chain and private key are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Builds the TLS acceptor; errors name the file and what is wrong with it.
pub fn acceptor(files: &TlsFiles) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    tickwire_feed::tls::install_crypto_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading TLS certificate {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", files.cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)",
        files.cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| {
        format!(
            "reading TLS key {} (expected a PEM private key)",
            files.key.display()
        )
    })?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not go together")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// True if the handshake request carries `token` as a bearer token or a `token` query
/// parameter. Compared in constant time.
pub fn authorized(req: &Request, token: &str) -> bool {
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    [bearer, query]
        .into_iter()
        .flatten()
        .any(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, auth: Option<&str>) -> Request {
        let mut b = Request::builder().uri(uri);
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn tokens_by_header_or_query() {
        assert!(authorized(&req("/ws", Some("Bearer s3cret")), "s3cret"));
        assert!(authorized(&req("/ws?token=s3cret", None), "s3cret"));
        assert!(authorized(&req("/ws?a=1&token=s3cret", None), "s3cret"));
        assert!(!authorized(&req("/ws", None), "s3cret"));
        assert!(!authorized(&req("/ws", Some("Bearer wrong")), "s3cret"));
        assert!(!authorized(&req("/ws?token=s3cre", None), "s3cret"));
        assert!(!authorized(&req("/ws", Some("Basic s3cret")), "s3cret"));
    }
}

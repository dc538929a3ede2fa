//! Token authentication and TLS at the gateway, over real sockets.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use tickwire_engine::gateway::tls::TlsFiles;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_when_configured() {
    let sim = capture_sim().await;
    let server = server_for(&sim, &["BTCUSDT"], |c| {
        c.gateway.token = Some("s3cret".into())
    })
    .await;
    let url = server.ws_url();
    // No token, or the wrong one: HTTP 401 at the handshake.
    for bad in [url.clone(), format!("{url}?token=nope")] {
        match tokio_tungstenite::connect_async(bad.as_str()).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), 401),
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
    }
    // The token as a query parameter (browsers) or a bearer header (everyone else).
    let mut ws = ws_connect(&format!("{url}?token=s3cret")).await;
    send_json(&mut ws, json!({"op":"ping","id":1})).await;
    assert_eq!(reply_of(&mut ws, "pong").await["id"], 1);
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", "Bearer s3cret".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("bearer token accepted");
    send_json(&mut ws, json!({"op":"list","id":2})).await;
    assert_eq!(
        reply_of(&mut ws, "instruments").await["symbols"],
        json!(["binance:BTCUSDT"])
    );
    server.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_connect_with_tls_when_configured() {
    tickwire_feed::tls::install_crypto_provider();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let dir = std::env::temp_dir().join(format!("tickwire-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, cert.cert.pem()).unwrap();
    std::fs::write(&files.key, cert.signing_key.serialize_pem()).unwrap();

    let sim = capture_sim().await;
    let server = server_for(&sim, &["BTCUSDT"], |c| c.gateway.tls = Some(files.clone())).await;
    assert!(server.ws_url().starts_with("wss://"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let url = server.ws_url().replace("127.0.0.1", "localhost");
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(Arc::new(client))),
        ),
    )
    .await
    .unwrap()
    .expect("TLS handshake with the server's certificate");
    send_json(&mut ws, json!({"op":"ping","id":7})).await;
    assert_eq!(reply_of(&mut ws, "pong").await["id"], 7);
    // A plain-text client cannot talk to a TLS port.
    assert!(
        tokio_tungstenite::connect_async(server.ws_url().replace("wss://", "ws://").as_str())
            .await
            .is_err()
    );
    // Bad files are a clear error at start-up.
    let missing = TlsFiles {
        cert: dir.join("nope.pem"),
        key: files.key.clone(),
    };
    let err = tickwire_engine::gateway::tls::acceptor(&missing)
        .err()
        .expect("an error");
    assert!(format!("{err:#}").contains("nope.pem"), "{err:#}");
    let swapped = TlsFiles {
        cert: files.key.clone(),
        key: files.cert.clone(),
    };
    assert!(tickwire_engine::gateway::tls::acceptor(&swapped).is_err());
    server.shutdown().await;
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

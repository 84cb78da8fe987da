//! Webhook notifications recorded in MariaDB: a plain-http receiver that fails twice (500)
//! then accepts, and one that is down; an HTTPS receiver with a certificate from a CA made
//! for the test, trusted through `notify.ca_file`, in the Slack shape; the same receiver
//! untrusted; the delivery thread. Every attempt lands in `alert_notifications`, and the
//! webhook's path (its secret) appears in no error, row or log line.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use dataflows::alert::{AlertEvent, AlertKind};
use edgeflow::notify::{Delivery, Dispatcher, MysqlDeliveryLog, NotifyConfig, Notifier, PayloadFormat};
use edgeflow::sink::schema::connection_opts;
use mysql_async::prelude::Queryable;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// 2026-03-01T10:00:00Z.
const OPENED: u64 = 1_772_359_200;

/// The part of the webhook URL that is its credential, as Slack's are.
const SECRET_PATH: &str = "/services/T0EDGE/B0FLOW/s3cretToken0123";

fn event(domain: &str, resolved: Option<u64>) -> AlertEvent {
    AlertEvent {
        domain: domain.into(),
        kind: AlertKind::ErrorRate,
        opened_minute: OPENED,
        resolved_minute: resolved,
        observed: 0.2,
        baseline: 0.05,
        detail: "5xx 20.0% of 1000 requests (threshold 5.0%)".into(),
    }
}

fn config(webhook: &str) -> NotifyConfig {
    NotifyConfig {
        webhook_url: Some(webhook.to_string()),
        timeout_ms: 2_000,
        max_attempts: 4,
        backoff_initial_ms: 10,
        backoff_max_ms: 40,
        ..NotifyConfig::default()
    }
}

/// One request as a receiver saw it: request target and JSON body.
#[derive(Clone, Debug)]
struct Received {
    target: String,
    body: serde_json::Value,
}

/// Reads one request (head, then Content-Length bytes of body) and answers `status`.
async fn serve_one(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), status: u16) -> Option<Received> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body) = loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => data.extend_from_slice(&chunk[..read]),
        }
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(read) => data.extend_from_slice(&chunk[..read]),
                }
            }
            break (head, data[end + 4..end + 4 + length].to_vec());
        }
    };
    let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    let target = head.split(' ').nth(1).unwrap_or_default().to_string();
    Some(Received { target, body: serde_json::from_slice(&body).expect("a JSON body") })
}

/// Answers the n-th request with `statuses[n]` (the last repeated), over plain TCP or, with
/// `tls`, over TLS; returns the port and what was received.
async fn receiver(statuses: Vec<u16>, tls: Option<TlsAcceptor>) -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let status = statuses[seen.lock().unwrap().len().min(statuses.len() - 1)];
            let request = match &tls {
                // A client that does not trust the certificate ends the handshake here.
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(mut stream) => serve_one(&mut stream, status).await,
                    Err(_) => None,
                },
                None => serve_one(&mut { stream }, status).await,
            };
            if let Some(request) = request {
                seen.lock().unwrap().push(request);
            }
        }
    });
    (port, received)
}

/// A CA and a certificate it signed for `127.0.0.1` and `localhost`: the receiver's TLS
/// settings and the CA as PEM.
fn test_pki(name: &str) -> (TlsAcceptor, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("edgeflow test CA {name}"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let chain: Vec<CertificateDer<'static>> = vec![server.der().clone(), ca.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    (TlsAcceptor::from(Arc::new(tls)), ca.pem())
}

fn write_pem(dir: &Path, name: &str, pem: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path).and_then(|mut f| f.write_all(pem.as_bytes())).unwrap();
    path
}

/// Tracing output collected in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

/// Every log line of this test binary, both tests' (a subscriber scoped to one thread
/// misses events whose callsites another test thread registered first).
fn captured_logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_max_level(tracing::Level::DEBUG).with_writer(move || writer.clone()).finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this test binary");
        logs
    })
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

type NotificationRow = (String, String, i64, String, u32, bool, Option<String>);

async fn notification_rows(pool: &mysql_async::Pool) -> Vec<NotificationRow> {
    let mut conn = pool.get_conn().await.unwrap();
    conn.query(
        "SELECT domain, kind, CAST(UNIX_TIMESTAMP(opened_minute) AS SIGNED), event, attempts, \
         delivered_at IS NOT NULL, last_error FROM alert_notifications ORDER BY domain, event",
    )
    .await
    .unwrap()
}

#[test]
fn delivery_attempts_are_recorded_in_alert_notifications() {
    captured_logs();
    let services = Services::from_env();
    let url = fresh_database(&services, "notify");
    assert_success(&edgeflow(&["migrate"], &[("EDGEFLOW__MYSQL__URL", &url)]), "migrate");

    runtime().block_on(async {
        let pool = mysql_async::Pool::new(connection_opts(&url).expect("url"));

        let (port, flaky_requests) = receiver(vec![500, 500, 200], None).await;
        let flaky = Notifier::new(&config(&format!("http://127.0.0.1:{port}/hook")), MysqlDeliveryLog { pool: pool.clone() }).unwrap().unwrap();
        assert_eq!(flaky.notify(&event("flaky.example", None)).await.unwrap(), Delivery::Delivered { attempts: 3 });
        // Resolved: a separate notification, delivered at once.
        assert_eq!(flaky.notify(&event("flaky.example", Some(OPENED + 240))).await.unwrap(), Delivery::Delivered { attempts: 1 });
        // Re-emitted after a restart: recorded as delivered, not sent again.
        assert_eq!(flaky.notify(&event("flaky.example", None)).await.unwrap(), Delivery::AlreadyDelivered);
        assert_eq!(flaky_requests.lock().unwrap().len(), 4);

        let down = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let down_port = down.local_addr().unwrap().port();
        drop(down);
        let notifier = Notifier::new(&config(&format!("http://127.0.0.1:{down_port}/hook")), MysqlDeliveryLog { pool: pool.clone() }).unwrap().unwrap();
        assert!(matches!(notifier.notify(&event("down.example", None)).await.unwrap(), Delivery::Failed { attempts: 4, .. }));

        let rows = notification_rows(&pool).await;
        pool.disconnect().await.unwrap();
        let opened = OPENED as i64;
        assert_eq!(rows.len(), 3, "{rows:?}");
        let (domain, kind, minute, event, attempts, delivered, error) = &rows[0];
        assert_eq!((domain.as_str(), kind.as_str(), *minute, event.as_str(), *attempts, *delivered), ("down.example", "error_rate", opened, "opened", 4, false));
        assert!(error.as_deref().is_some_and(|e| e.starts_with(&format!("connect 127.0.0.1:{down_port}: "))), "{error:?}");
        assert_eq!(rows[1], ("flaky.example".into(), "error_rate".into(), opened, "opened".into(), 3, true, Some("http 500".into())));
        assert_eq!(rows[2], ("flaky.example".into(), "error_rate".into(), opened, "resolved".into(), 1, true, None));
    });
}

#[test]
fn https_webhooks_trust_the_configured_ca_and_never_show_their_path() {
    let services = Services::from_env();
    let url = fresh_database(&services, "notify_tls");
    assert_success(&edgeflow(&["migrate"], &[("EDGEFLOW__MYSQL__URL", &url)]), "migrate");
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca_pem) = test_pki("receiver");
    let ca_file = write_pem(dir.path(), "ca.pem", &ca_pem);
    // A CA of its own that did not sign the receiver's certificate.
    let (_, other_ca_pem) = test_pki("other");
    let other_ca_file = write_pem(dir.path(), "other-ca.pem", &other_ca_pem);

    let logs = captured_logs();
    // Worker threads keep the receiver answering while the delivery thread runs, outside
    // `block_on`.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let port = {
        runtime.block_on(async {
            let pool = mysql_async::Pool::new(connection_opts(&url).expect("url"));
            let (port, received) = receiver(vec![503, 200], Some(acceptor.clone())).await;
            let webhook = format!("https://127.0.0.1:{port}{SECRET_PATH}?channel=ops");

            // Trusted through ca_file, in the Slack shape: retried once, then delivered.
            let slack = NotifyConfig { format: PayloadFormat::Slack, ca_file: Some(ca_file.clone()), ..config(&webhook) };
            let notifier = Notifier::new(&slack, MysqlDeliveryLog { pool: pool.clone() }).unwrap().unwrap();
            assert_eq!(notifier.endpoint().to_string(), format!("https://127.0.0.1:{port}/***"));
            assert_eq!(notifier.notify(&event("tls.example", None)).await.unwrap(), Delivery::Delivered { attempts: 2 });
            let requests = received.lock().unwrap().clone();
            assert_eq!(requests.len(), 2, "{requests:?}");
            assert!(requests.iter().all(|r| r.target == format!("{SECRET_PATH}?channel=ops")), "{requests:?}");
            assert_eq!(
                requests[1].body,
                serde_json::json!({"text": ":rotating_light: error rate on *tls.example* since 2026-03-01T10:00:00+00:00: \
                    5xx 20.0% of 1000 requests (threshold 5.0%)"})
            );

            // A CA that did not sign the certificate: refused in the handshake, not retried.
            let untrusted = NotifyConfig { ca_file: Some(other_ca_file.clone()), ..config(&webhook) };
            let notifier = Notifier::new(&untrusted, MysqlDeliveryLog { pool: pool.clone() }).unwrap().unwrap();
            match notifier.notify(&event("untrusted.example", None)).await.unwrap() {
                Delivery::Failed { attempts: 1, last_error } => {
                    assert!(last_error.starts_with(&format!("tls 127.0.0.1:{port}: invalid peer certificate")), "{last_error}")
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(received.lock().unwrap().len(), 2, "no request got past the handshake");
            pool.disconnect().await.unwrap();
            port
        })
    };

    // The delivery thread: the resolution goes out in the JSON shape and is recorded.
    let json = NotifyConfig { ca_file: Some(ca_file), ..config(&format!("https://127.0.0.1:{port}{SECRET_PATH}")) };
    let dispatcher = Dispatcher::spawn(&json, &url).unwrap().expect("a webhook is configured");
    dispatcher.send(event("tls.example", Some(OPENED + 240)));
    dispatcher.close(Duration::from_secs(20));

    let rows = runtime.block_on(async {
        let pool = mysql_async::Pool::new(connection_opts(&url).expect("url"));
        let rows = notification_rows(&pool).await;
        pool.disconnect().await.unwrap();
        rows
    });
    let opened = OPENED as i64;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0], ("tls.example".into(), "error_rate".into(), opened, "opened".into(), 2, true, Some("http 503".into())));
    assert_eq!(rows[1], ("tls.example".into(), "error_rate".into(), opened, "resolved".into(), 1, true, None));
    let (domain, _, _, event, attempts, delivered, error) = &rows[2];
    assert_eq!((domain.as_str(), event.as_str(), *attempts, *delivered), ("untrusted.example", "opened", 1, false));
    assert!(error.as_deref().is_some_and(|e| e.contains("invalid peer certificate")), "{error:?}");

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains(&format!("https://127.0.0.1:{port}/***")), "the endpoint is logged redacted:\n{logs}");
    assert!(logs.contains("retrying") && logs.contains("giving up"), "{logs}");
    for secret in ["s3cretToken", "/services/", "channel=ops"] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs:\n{logs}");
        assert!(rows.iter().all(|row| !row.6.as_deref().unwrap_or_default().contains(secret)), "{secret} leaked into last_error: {rows:?}");
    }
}

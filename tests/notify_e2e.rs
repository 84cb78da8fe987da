//! Webhook notifications recorded in MariaDB: a local receiver that fails twice (500) then
//! accepts, and one that is down; every attempt lands in `alert_notifications`.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use dataflows::alert::{AlertEvent, AlertKind};
use edgeflow::notify::{Delivery, MysqlDeliveryLog, NotifyConfig, Notifier};
use edgeflow::sink::schema::connection_opts;
use mysql_async::prelude::Queryable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// 2026-03-01T10:00:00Z.
const OPENED: u64 = 1_772_359_200;

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

/// Answers the n-th request with `statuses[n]` (the last repeated); counts requests.
async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<u32>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let count = Arc::new(Mutex::new(0u32));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let served = {
                let mut seen = seen.lock().unwrap();
                *seen += 1;
                *seen as usize
            };
            let status = statuses[(served - 1).min(statuses.len() - 1)];
            // Read the request head and body (the client sends it all before reading).
            let mut data = Vec::new();
            let mut chunk = [0u8; 4096];
            while !data.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => data.extend_from_slice(&chunk[..read]),
                }
            }
            let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (url, count)
}

#[test]
fn delivery_attempts_are_recorded_in_alert_notifications() {
    let services = Services::from_env();
    let url = fresh_database(&services, "notify");
    assert_success(&edgeflow(&["migrate"], &[("EDGEFLOW__MYSQL__URL", &url)]), "migrate");

    runtime().block_on(async {
        let pool = mysql_async::Pool::new(connection_opts(&url).expect("url"));
        let config = |webhook: &str| NotifyConfig {
            webhook_url: Some(webhook.to_string()),
            timeout_ms: 2_000,
            max_attempts: 4,
            backoff_initial_ms: 10,
            backoff_max_ms: 40,
            auth_header: None,
        };

        let (flaky_url, flaky_requests) = receiver(vec![500, 500, 200]).await;
        let flaky = Notifier::new(&config(&flaky_url), MysqlDeliveryLog { pool: pool.clone() }).unwrap().unwrap();
        assert_eq!(flaky.notify(&event("flaky.example", None)).await.unwrap(), Delivery::Delivered { attempts: 3 });
        // Resolved: a separate notification, delivered at once.
        assert_eq!(flaky.notify(&event("flaky.example", Some(OPENED + 240))).await.unwrap(), Delivery::Delivered { attempts: 1 });
        // Re-emitted after a restart: recorded as delivered, not sent again.
        assert_eq!(flaky.notify(&event("flaky.example", None)).await.unwrap(), Delivery::AlreadyDelivered);
        assert_eq!(*flaky_requests.lock().unwrap(), 4);

        let down = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let down_url = format!("http://{}/hook", down.local_addr().unwrap());
        drop(down);
        let notifier = Notifier::new(&config(&down_url), MysqlDeliveryLog { pool: pool.clone() }).unwrap().unwrap();
        assert!(matches!(notifier.notify(&event("down.example", None)).await.unwrap(), Delivery::Failed { attempts: 4, .. }));

        let mut conn = pool.get_conn().await.unwrap();
        let rows: Vec<(String, String, i64, String, u32, bool, Option<String>)> = conn
            .query(
                "SELECT domain, kind, CAST(UNIX_TIMESTAMP(opened_minute) AS SIGNED), event, attempts, \
                 delivered_at IS NOT NULL, last_error FROM alert_notifications ORDER BY domain, event",
            )
            .await
            .unwrap();
        drop(conn);
        pool.disconnect().await.unwrap();
        let opened = OPENED as i64;
        assert_eq!(rows.len(), 3, "{rows:?}");
        let (domain, kind, minute, event, attempts, delivered, error) = &rows[0];
        assert_eq!((domain.as_str(), kind.as_str(), *minute, event.as_str(), *attempts, *delivered), ("down.example", "error_rate", opened, "opened", 4, false));
        assert!(error.as_deref().is_some_and(|e| e.starts_with("connect 127.0.0.1:")), "{error:?}");
        assert_eq!(rows[1], ("flaky.example".into(), "error_rate".into(), opened, "opened".into(), 3, true, Some("http 500".into())));
        assert_eq!(rows[2], ("flaky.example".into(), "error_rate".into(), opened, "resolved".into(), 1, true, None));
    });
}

//! Alerts computed in the dataflow (issue 7): steady traffic on four domains with an injected
//! outage (−90% for 3 minutes), a spike (×4 for 3 minutes) and a 5xx burst (20% for 3
//! minutes). Each opens and resolves exactly once, at the right minutes, in the `alerts`
//! table, and the webhook receives one POST per opening and per resolution.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::*;
use dataflows::parse::time::format_time_local;
use mysql_async::prelude::Queryable;

/// 2026-03-02T00:00:00Z.
const T0: i64 = 1_772_409_600;
const MINUTES: i64 = 70;
const PER_MINUTE: i64 = 120;

fn line(sec: i64, host: &str, client: i64, status: u16) -> String {
    format!(
        r#"10.0.0.1 - - [{}] "GET /i HTTP/1.1" {status} 5000 "-" "curl/8" "-" "198.51.100.{}" {host} 0.010 0.005 HIT 5200"#,
        format_time_local(sec * 1000, 0),
        client % 200 + 1
    )
}

/// Requests of `host` in minute `m`, and how many of them are 503s.
fn shape(host: &str, m: i64) -> (i64, i64) {
    match host {
        "outage.example" if (40..43).contains(&m) => (PER_MINUTE / 10, 0),
        "spike.example" if (45..48).contains(&m) => (PER_MINUTE * 4, 0),
        "errors.example" if (50..53).contains(&m) => (PER_MINUTE, PER_MINUTE / 5),
        _ => (PER_MINUTE, 0),
    }
}

/// A webhook receiver: answers 200 to every POST and keeps the bodies.
fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                kept.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or_default());
            }
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

#[test]
fn outage_spike_and_5xx_burst_each_open_and_resolve_once() {
    let services = Services::from_env();
    let hosts = ["steady.example", "outage.example", "spike.example", "errors.example"];
    let mut lines = Vec::new();
    for m in 0..MINUTES {
        for host in hosts {
            let (requests, errors) = shape(host, m);
            for i in 0..requests {
                let sec = T0 + m * 60 + i * 60 / requests;
                lines.push(line(sec, host, i, if i < errors { 503 } else { 200 }));
            }
        }
    }
    lines.sort_by_key(|l| l[15..35].to_string());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let url = fresh_database(&services, "alerts");
    let (hook, bodies) = receiver();
    let source = format!("file:{}", path.display());
    let env = [("EDGEFLOW__MYSQL__URL", url.as_str()), ("EDGEFLOW__NOTIFY__WEBHOOK_URL", hook.as_str())];
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");
    assert_success(&edgeflow(&["run", "-c", "config/local.toml", "--source", &source], &env), "run");

    let minute = |m: i64| (T0 + 60 * m) as u64;
    let rows: Vec<(String, String, u64, Option<u64>)> = runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(&url).await.unwrap();
        conn.query(
            "SELECT domain, CAST(kind AS CHAR), CAST(UNIX_TIMESTAMP(opened_minute) AS UNSIGNED), \
             CAST(UNIX_TIMESTAMP(resolved_minute) AS UNSIGNED) FROM alerts ORDER BY opened_minute",
        )
        .await
        .unwrap()
    });
    let expected = vec![
        ("outage.example".to_string(), "traffic_collapse".to_string(), minute(40), Some(minute(43))),
        ("spike.example".to_string(), "traffic_spike".to_string(), minute(45), Some(minute(48))),
        ("errors.example".to_string(), "error_rate".to_string(), minute(50), Some(minute(53))),
    ];
    assert_eq!(rows, expected);

    // The notifier runs off the commit path: give it a moment after the job's exit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while bodies.lock().unwrap().len() < 6 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut events: Vec<(String, String, String)> = bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| (b["domain"].as_str().unwrap_or("").to_string(), b["kind"].as_str().unwrap_or("").to_string(), b["event"].as_str().unwrap_or("").to_string()))
        .collect();
    events.sort();
    let mut want: Vec<(String, String, String)> = expected
        .iter()
        .flat_map(|(d, k, _, _)| ["opened", "resolved"].map(|e| (d.clone(), k.clone(), e.to_string())))
        .collect();
    want.sort();
    assert_eq!(events, want);
}

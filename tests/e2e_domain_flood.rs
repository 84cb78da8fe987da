//! Bounded cardinality end to end (issue 16): 100,000 random hosts in one minute between
//! steady traffic create at most `clean.new_domains_per_minute` domains' rows and alert
//! detectors; every other flood line is in `rejects` as `domain_flood`, and the steady
//! domains lose nothing.

mod common;

use common::*;
use dataflows::parse::time::format_time_local;
use mysql_async::prelude::Queryable;

/// 2026-03-03T00:00:00Z.
const T0: i64 = 1_772_496_000;
const CAP: usize = 100;
const FLOOD: usize = 100_000;
const STEADY: [&str; 3] = ["a.example", "b.example", "c.example"];

fn line(sec: i64, host: &str, client: usize) -> String {
    format!(
        r#"10.0.0.1 - - [{}] "GET /i HTTP/1.1" 200 5000 "-" "curl/8" "-" "198.51.100.{}" {host} 0.010 0.005 HIT 5200"#,
        format_time_local(sec * 1000, 0),
        client % 200 + 1
    )
}

#[test]
fn a_flood_of_random_hosts_creates_at_most_the_cap_of_domains() {
    let services = Services::from_env();
    let mut lines = Vec::new();
    // Ten minutes of steady traffic; the flood fills minute 5 (seconds 10 to 50, so the
    // watermark stays in that minute too).
    let mut random = 0x9e37_79b9_7f4a_7c15u64;
    for m in 0..10i64 {
        for s in 0..60i64 {
            let sec = T0 + m * 60 + s;
            lines.push(line(sec, STEADY[s as usize % 3], s as usize));
            if m == 5 && (10..50).contains(&s) {
                for i in 0..FLOOD / 40 {
                    random ^= random << 13;
                    random ^= random >> 7;
                    random ^= random << 17;
                    lines.push(line(sec, &format!("{random:016x}.flood.example"), i));
                }
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let url = fresh_database(&services, "flood");
    let source = format!("file:{}", path.display());
    let cap = CAP.to_string();
    let env = [("EDGEFLOW__MYSQL__URL", url.as_str()), ("EDGEFLOW__CLEAN__NEW_DOMAINS_PER_MINUTE", cap.as_str())];
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");
    assert_success(&edgeflow(&["run", "-c", "config/local.toml", "-w", "1", "--source", &source], &env), "run");

    let (domains, windowed, bandwidth, detectors, steady_requests): (Vec<String>, u64, u64, u64, u64) = runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(&url).await.unwrap();
        let domains = conn.query("SELECT DISTINCT domain FROM domain_minute").await.unwrap();
        let windowed: Option<u64> = conn.query_first("SELECT COUNT(DISTINCT domain) FROM domain_window").await.unwrap();
        let bandwidth: Option<u64> = conn.query_first("SELECT COUNT(DISTINCT domain) FROM domain_bandwidth_5m").await.unwrap();
        let detectors: Option<u64> = conn.query_first("SELECT COUNT(*) FROM alert_detectors").await.unwrap();
        let steady: Option<u64> =
            conn.query_first("SELECT CAST(SUM(requests) AS UNSIGNED) FROM domain_minute WHERE domain NOT LIKE '%.flood.example'").await.unwrap();
        conn.disconnect().await.unwrap();
        (domains, windowed.unwrap_or(0), bandwidth.unwrap_or(0), detectors.unwrap_or(0), steady.unwrap_or(0))
    });
    let flooded = domains.iter().filter(|d| d.ends_with(".flood.example")).count();
    assert_eq!(flooded, CAP, "the cap of new domains in the flooded minute, and no more");
    assert_eq!(domains.len(), CAP + STEADY.len());
    assert_eq!(windowed as usize, CAP + STEADY.len());
    assert_eq!(bandwidth as usize, CAP + STEADY.len());
    assert!((STEADY.len()..=CAP + STEADY.len()).contains(&(detectors as usize)), "{detectors} alert detectors");
    assert_eq!(steady_requests, 600, "every steady line is counted");
    let rejects = read_reject_counts(&url);
    assert_eq!(rejects.get("domain_flood").copied(), Some((FLOOD - CAP) as u64), "{rejects:?}");
    assert_eq!(rejects.values().sum::<u64>(), (FLOOD - CAP) as u64, "{rejects:?}");
}

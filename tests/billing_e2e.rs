//! `edgeflow billing` end to end: hand-made `domain_bandwidth_5m` rows in a fresh database,
//! the binary as a subprocess, and its JSON (and table/CSV) checked against bills computed by
//! hand for April 2025 (30 days: N = 8640, M = 432, the 433rd sample billed).
//!
//! The rows (sample v of a ramp is v MB):
//! - `www.shop.example` (account `acme` through `*.shop.example`): v = 1..=500 at interval
//!   (v − 1) × 16 of the month, plus one sample just before and one just after the month, so
//!   it is billed over the whole month. Billed: 500 − 432 = 68 MB at interval 1072 =
//!   2025-04-04T17:20Z.
//! - `img.shop.example` (acme): first sample ever on 21 April, still active in May: billed
//!   over 10 days, N = 2880, M = 144. v = 1..=200 at interval 1 + (v − 1) × 10 after 21 April
//!   00:00: billed 200 − 144 = 56 MB at interval 551 = 2025-04-22T21:55Z.
//! - `acme`: the two domains never share an interval; per-interval sums are the 700 samples.
//!   Descending: 500 … 201 (ranks 1..=300), then 200, 200, 199, 199, …; rank 433 is the
//!   133rd of the pairs, the earlier 134 MB sample: www's, interval 2128 = 2025-04-08T09:20Z.
//! - `solo.example` (no account): 10 samples at intervals 0..10, active before and after the
//!   month: ranks 11..=8640 are zeros in time order, so rank 433 is the zero at interval 432
//!   = 2025-04-02T12:00Z.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use serde_json::Value as Json;

/// 2025-04-01T00:00:00Z.
const APRIL: i64 = 1_743_465_600;
const MAY: i64 = APRIL + 30 * 86_400;
const MB: u64 = 1_000_000;

fn rows() -> Vec<(&'static str, i64, u64)> {
    let mut rows = Vec::new();
    for v in 1..=500u64 {
        rows.push(("www.shop.example", APRIL + (v as i64 - 1) * 16 * 300, v * MB));
    }
    rows.push(("www.shop.example", APRIL - 300, 5 * MB));
    rows.push(("www.shop.example", MAY, 5 * MB));
    let april_21 = APRIL + 20 * 86_400;
    for v in 1..=200u64 {
        rows.push(("img.shop.example", april_21 + (1 + (v as i64 - 1) * 10) * 300, v * MB));
    }
    rows.push(("img.shop.example", MAY + 86_400, MB));
    for i in 0..10 {
        rows.push(("solo.example", APRIL + i * 300, 900 * MB));
    }
    rows.push(("solo.example", APRIL - 86_400, MB));
    rows.push(("solo.example", MAY + 3_600, MB));
    rows
}

fn insert_samples(url: &str, rows: &[(&str, i64, u64)]) {
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
        conn.query_drop("SET time_zone = '+00:00'").await.expect("utc session");
        for chunk in rows.chunks(200) {
            let placeholders = vec!["(?, FROM_UNIXTIME(?), ?, ?)"; chunk.len()].join(", ");
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|&(domain, start, bytes)| [Value::from(domain), Value::from(start), Value::from(bytes), Value::from(1u64)])
                .collect();
            conn.exec_drop(format!("INSERT INTO domain_bandwidth_5m (domain, sample_start, bytes, requests) VALUES {placeholders}"), params)
                .await
                .expect("insert samples");
        }
        conn.disconnect().await.unwrap();
    });
}

struct Setup {
    _dir: tempfile::TempDir,
    config: String,
}

/// A fresh, migrated database with the rows, and a config file naming it and the accounts.
fn setup() -> Setup {
    let services = Services::from_env();
    let url = fresh_database(&services, "billing");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("edgeflow.toml");
    std::fs::write(&config, format!("[mysql]\nurl = \"{url}\"\n\n[clean.accounts]\n\"*.shop.example\" = \"acme\"\n")).expect("write config");
    let config = config.to_str().expect("utf-8 path").to_string();
    assert_success(&edgeflow(&["migrate", "-c", &config], &[]), "migrate");
    insert_samples(&url, &rows());
    Setup { _dir: dir, config }
}

fn billing(setup: &Setup, extra: &[&str]) -> String {
    let mut args = vec!["billing", "-c", setup.config.as_str(), "--month", "2025-04"];
    args.extend_from_slice(extra);
    let output = edgeflow(&args, &[]);
    assert_success(&output, "edgeflow billing");
    String::from_utf8(output.stdout).expect("utf-8 report")
}

fn billing_json(setup: &Setup, extra: &[&str]) -> Json {
    let mut args = extra.to_vec();
    args.extend_from_slice(&["--format", "json"]);
    let text = billing(setup, &args);
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

fn bill<'a>(report: &'a Json, kind: &str, name: &str) -> &'a Json {
    report["bills"]
        .as_array()
        .expect("bills")
        .iter()
        .find(|b| b["kind"] == kind && b["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} bill for {name} in {report:#}"))
}

/// (N, M, rank, billed bytes, billed at) of a percentile.
fn percentile(p: &Json) -> (u64, u64, u64, u64, &str) {
    (
        p["samples"].as_u64().expect("samples"),
        p["dropped"].as_u64().expect("dropped"),
        p["billed_rank"].as_u64().expect("rank"),
        p["billed_bytes"].as_u64().expect("bytes"),
        p["billed_at"].as_str().expect("time"),
    )
}

#[test]
fn billing_reports_hand_computed_bills() {
    let setup = setup();
    let report = billing_json(&setup, &[]);
    assert_eq!(report["month"], "2025-04");
    assert_eq!(report["days_in_month"], 30);
    let names: Vec<(String, String)> = report["bills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["kind"].as_str().unwrap().to_string(), b["name"].as_str().unwrap().to_string()))
        .collect();
    let expected = [("domain", "img.shop.example"), ("domain", "solo.example"), ("domain", "www.shop.example"), ("account", "acme")];
    assert_eq!(names, expected.map(|(k, n)| (k.to_string(), n.to_string())));

    let www = bill(&report, "domain", "www.shop.example");
    assert_eq!(percentile(&www["p95"]), (8640, 432, 433, 68 * MB, "2025-04-04T17:20:00Z"));
    assert!((www["p95"]["billed_mbps"].as_f64().unwrap() - 68.0 * 8.0 / 300.0).abs() < 1e-9);
    assert_eq!(www["account"], "acme");
    assert_eq!((www["effective_days"].as_f64(), www["effective_days_factor"].as_f64()), (Some(30.0), Some(1.0)));
    assert_eq!(www["days_with_traffic"], 28);
    // Sum of 1..=500 MB = 125.25 GB; the samples outside April are not billed.
    assert_eq!(www["traffic_gb"].as_f64(), Some(125.25));
    assert_eq!(www["peak"]["at"], "2025-04-28T17:20:00Z");

    let img = bill(&report, "domain", "img.shop.example");
    assert_eq!((img["period_start"].as_str(), img["period_end"].as_str()), (Some("2025-04-21T00:00:00Z"), Some("2025-05-01T00:00:00Z")));
    assert_eq!(img["effective_days"].as_f64(), Some(10.0));
    assert!((img["effective_days_factor"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(percentile(&img["p95"]), (2880, 144, 145, 56 * MB, "2025-04-22T21:55:00Z"));
    // Traffic on 7 days (intervals 1..=1991 after 21 April): N = 2016, M = 100, billed
    // 200 − 100 = 100 MB at interval 991.
    assert_eq!(img["days_with_traffic"], 7);
    assert_eq!(percentile(&img["p95_days_with_traffic"]), (2016, 100, 101, 100 * MB, "2025-04-24T10:35:00Z"));

    let acme = bill(&report, "account", "acme");
    assert_eq!(acme["domains"], serde_json::json!(["img.shop.example", "www.shop.example"]));
    assert_eq!(percentile(&acme["p95"]), (8640, 432, 433, 134 * MB, "2025-04-08T09:20:00Z"));
    assert_eq!(acme["traffic_gb"].as_f64(), Some(145.35));

    let solo = bill(&report, "domain", "solo.example");
    assert_eq!(solo["account"], Json::Null);
    assert_eq!(percentile(&solo["p95"]), (8640, 432, 433, 0, "2025-04-02T12:00:00Z"));
    // Only 1 April has traffic: N = 288, M = 14, rank 15 is the 5th zero, interval 14.
    assert_eq!(percentile(&solo["p95_days_with_traffic"]), (288, 14, 15, 0, "2025-04-01T01:10:00Z"));
}

#[test]
fn billing_scopes_and_formats() {
    let setup = setup();
    // --domain normalises like the job: upper case and a port are fine.
    let report = billing_json(&setup, &["--domain", "IMG.Shop.Example:443"]);
    assert_eq!(report["bills"].as_array().map(Vec::len), Some(1));
    assert_eq!(percentile(&bill(&report, "domain", "img.shop.example")["p95"]).3, 56 * MB);

    // --account: the account first, then its domains; --whole-month drops proration.
    let report = billing_json(&setup, &["--account", "acme", "--whole-month"]);
    let kinds: Vec<&str> = report["bills"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["acme", "img.shop.example", "www.shop.example"]);
    let img = bill(&report, "domain", "img.shop.example");
    assert_eq!((img["effective_days"].as_f64(), percentile(&img["p95"]).0), (Some(30.0), 8640));

    let csv = billing(&setup, &["--format", "csv", "--domain", "www.shop.example"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("kind,name,account,days,factor,n,m,p95_mbps,p95_at,"), "{csv}");
    assert!(lines[1].starts_with("domain,www.shop.example,acme,30.00,1.0000,8640,432,1.813,2025-04-04T17:20:00Z,"), "{csv}");

    let table = billing(&setup, &[]);
    assert!(table.contains("edgeflow billing 2025-04 (30 days)"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("account") && l.contains("acme") && l.contains("2025-04-08 09:20")), "{table}");

    // A month without samples, and bad arguments, fail or report cleanly.
    let empty = edgeflow(&["billing", "-c", &setup.config, "--month", "2024-01", "--format", "json"], &[]);
    assert_success(&empty, "billing of an empty month");
    let empty: Json = serde_json::from_slice(&empty.stdout).unwrap();
    assert_eq!(empty["bills"], serde_json::json!([]));
    let unknown = billing_json(&setup, &["--domain", "nosuch.example"]);
    assert_eq!(unknown["bills"], serde_json::json!([]));
    let bad = edgeflow(&["billing", "-c", &setup.config, "--month", "2025-13"], &[]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected YYYY-MM"), "{}", String::from_utf8_lossy(&bad.stderr));
}

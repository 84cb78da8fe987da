//! Dashboard router tests without a socket: `edgeflow::dashboard::app(state)` called through
//! `tower::ServiceExt::oneshot`. The first group needs no database (the pool points at a
//! closed port); the `api_*` tests read a fresh MariaDB database, filled with known rows,
//! through the read-only user, and check every number the API computes.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use base64::Engine;
use common::*;
use edgeflow::dashboard::assets::Assets;
use edgeflow::dashboard::config::{default_assets_dir, DashboardConfig};
use edgeflow::dashboard::{app, AccountLookup, AppState};
use http_body_util::BodyExt;
use mysql_async::prelude::Queryable;
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "router-test-token-0123";

fn no_accounts() -> AccountLookup {
    Arc::new(|_: &str| None)
}

fn state_with(config: DashboardConfig, assets: Assets, accounts: AccountLookup) -> AppState {
    AppState::new(config.validate().expect("valid dashboard config"), assets, accounts).expect("state")
}

/// A router whose database is unreachable (port 1): for tests that must not reach it.
fn offline(token: Option<&str>) -> Router {
    let config = DashboardConfig {
        mysql_url: "mysql://nobody:nothing@127.0.0.1:1/edgeflow_none".into(),
        auth_token: token.map(Into::into),
        query_timeout_ms: 3_000,
        ..DashboardConfig::default()
    };
    app(state_with(config, Assets::builtin(), no_accounts()))
}

async fn call(router: &Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::builder().uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

async fn json(router: &Router, uri: &str) -> Value {
    let (status, _, body) = call(router, uri, &[]).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{uri}: {e}: {body}"))
}

#[tokio::test]
async fn pages_are_html_shells_with_a_strict_content_security_policy() {
    let router = offline(None);
    for (uri, page) in [("/", "overview"), ("/domains/www.shop-01.example?range=6h", "domain"), ("/billing?month=2026-10", "billing")] {
        let (status, headers, body) = call(&router, uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"), "{uri}");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(body.contains(&format!("data-page=\"{page}\"")), "{uri}: {body}");
        assert!(body.contains("/assets/uPlot.iife.min.js") && body.contains("/assets/app.js"));
        // No inline script: every <script> has a src.
        assert_eq!(body.matches("<script").count(), body.matches("<script defer src=").count(), "{uri}");
    }
    let (status, _, body) = call(&router, "/nowhere", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Not found"));
}

#[tokio::test]
async fn a_hostile_domain_in_the_url_is_escaped_in_the_page() {
    let router = offline(None);
    let (status, _, body) =
        call(&router, "/domains/%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(2)%3E.example", &[])
            .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;.example"), "{body}");
    assert!(!body.contains("<script>alert") && !body.contains("<img src=x"), "{body}");
    // The data attribute is escaped too.
    assert!(body.contains("data-domain=\"&lt;script&gt;"), "{body}");
}

#[tokio::test]
async fn assets_are_served_with_their_types_and_nothing_else() {
    let router = offline(None);
    let (status, headers, body) = call(&router, "/assets/app.js", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(body.contains("textContent") && !body.contains(".innerHTML"), "app.js must never write HTML");
    let (status, headers, _) = call(&router, "/assets/style.css", &[]).await;
    assert_eq!((status, headers[header::CONTENT_TYPE].to_str().unwrap()), (StatusCode::OK, "text/css; charset=utf-8"));
    for uri in ["/assets/nope.js", "/assets/..%2F..%2FCargo.toml", "/assets/%2Fetc%2Fpasswd"] {
        assert_eq!(call(&router, uri, &[]).await.0, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn the_charting_library_comes_from_npm() {
    // scripts/setup.sh runs `npm ci --prefix dashboard`.
    let assets = Assets::load(&default_assets_dir()).expect("run `npm ci --prefix dashboard` (scripts/setup.sh does)");
    let router = app(state_with(DashboardConfig::default(), assets, no_accounts()));
    let (status, headers, body) = call(&router, "/assets/uPlot.iife.min.js", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(body.contains("uPlot"));
    assert_eq!(call(&router, "/assets/uPlot.min.css", &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let router = offline(Some(TOKEN));
    let (status, headers, _) = call(&router, "/", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic realm=\"edgeflow\""));
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY), "errors carry the security headers too");
    for uri in ["/api/domains", "/api/events", "/assets/app.js", "/api/billing.csv"] {
        assert_eq!(call(&router, uri, &[]).await.0, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(call(&router, "/", &[("authorization", &bearer)]).await.0, StatusCode::OK);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("ops:{TOKEN}")));
    assert_eq!(call(&router, "/billing", &[("authorization", &basic)]).await.0, StatusCode::OK);
    assert_eq!(call(&router, "/", &[("authorization", "Bearer router-test-token-0124")]).await.0, StatusCode::UNAUTHORIZED);
    // With a token, any Host is fine (the token is the protection).
    assert_eq!(call(&router, "/", &[("authorization", &bearer), ("host", "dash.example.net")]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn without_a_token_only_local_host_names_are_served() {
    let router = offline(None);
    assert_eq!(call(&router, "/", &[("host", "127.0.0.1:8080")]).await.0, StatusCode::OK);
    assert_eq!(call(&router, "/", &[("host", "localhost")]).await.0, StatusCode::OK);
    assert_eq!(call(&router, "/", &[("host", "rebind.attacker.example:8080")]).await.0, StatusCode::FORBIDDEN);
}

#[test]
fn binding_beyond_loopback_without_a_token_is_refused() {
    let config = DashboardConfig { bind: "0.0.0.0:8080".into(), ..DashboardConfig::default() };
    let problems = config.validate().unwrap_err();
    assert!(problems.iter().any(|p| p.contains("auth_token")), "{problems:?}");
}

#[tokio::test]
async fn bad_parameters_are_400_with_a_reason_before_any_query() {
    let router = offline(None);
    for (uri, fragment) in [
        ("/api/domains?range=2h", "unknown range"),
        ("/api/series?from=%27%3B%20DROP%20TABLE%20domain_minute%3B%20--", "cannot read"),
        ("/api/series?from=2026-11-02&to=2026-11-01", "before"),
        ("/api/alerts?from=2020-01-01&to=2026-01-01", "longer than"),
        ("/api/top_clients?range=1h", "domain is required"),
        ("/api/top_clients?domain=x&metric=1%20OR%201", "metric"),
        ("/api/rejects?limit=0", "limit"),
        ("/api/billing?month=2026-13", "YYYY-MM"),
        ("/api/billing.csv?by=everything", "by must be"),
    ] {
        let (status, headers, body) = call(&router, uri, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert!(error["error"].as_str().unwrap().contains(fragment), "{uri}: {body}");
    }
}

#[tokio::test]
async fn an_unreachable_database_is_503_not_a_crash() {
    let router = offline(None);
    let (status, _, body) = call(&router, "/api/domains?range=15m", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "database unavailable");
}

#[tokio::test]
async fn the_api_index_and_the_event_stream() {
    let router = offline(None);
    let index = json(&router, "/api").await;
    assert!(index["endpoints"].as_array().unwrap().len() >= 9);
    let response = router.clone().oneshot(Request::builder().uri("/api/events").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = response.into_body();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let text = String::from_utf8_lossy(&frame);
    assert!(text.contains("event: hello") && text.contains("retry: 1000"), "{text}");
}

// ------------------------------------------------------------------ against MariaDB

/// The read-only user's URL for database `url` (same name, `EDGEFLOW_MYSQL_RO_URL`'s user).
pub fn read_only_url(url: &str) -> String {
    let ro = std::env::var("EDGEFLOW_MYSQL_RO_URL").expect("EDGEFLOW_MYSQL_RO_URL: run through scripts/test.sh");
    let (base, _) = ro.rsplit_once('/').unwrap();
    let (_, name) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// 2026-10-01T00:00:00Z: a past month (N = 8928 intervals, M = 446 dropped).
const OCT: i64 = 1_790_812_800;
/// 2026-10-10T12:00:00Z: start of the minute rows.
const T0: i64 = OCT + 9 * 86_400 + 12 * 3_600;

async fn seed(url: &str) {
    let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    // a.example: 3 minutes, with cache and latency columns; b.example: 1 minute, no cache data.
    #[allow(clippy::type_complexity)]
    let minutes: Vec<(&str, i64, u64, u64, [u64; 5], Option<[u64; 3]>, Option<f64>)> = vec![
        ("a.example", T0, 100, 600_000, [0, 90, 5, 4, 1], Some([70, 20, 10]), Some(12.0)),
        ("a.example", T0 + 60, 200, 1_200_000, [0, 180, 10, 8, 2], Some([150, 40, 10]), Some(24.0)),
        ("a.example", T0 + 120, 300, 1_800_000, [1, 270, 15, 12, 2], Some([200, 80, 20]), None),
        ("b.example", T0 + 60, 60, 60_000, [0, 30, 0, 30, 0], None, None),
        // Outside the queried range: must not count.
        ("a.example", T0 + 600, 999, 999, [0, 999, 0, 0, 0], None, None),
    ];
    for (domain, minute, requests, bytes, s, cache, p95) in minutes {
        conn.exec_drop(
            "INSERT INTO domain_minute (domain, minute_start, requests, bytes, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx, \
             cache_hit, cache_miss, cache_other, request_time_p95_ms) VALUES (?, FROM_UNIXTIME(?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                domain.into(),
                minute.into(),
                requests.into(),
                bytes.into(),
                s[0].into(),
                s[1].into(),
                s[2].into(),
                s[3].into(),
                s[4].into(),
                cache.map(|c| c[0]).into(),
                cache.map(|c| c[1]).into(),
                cache.map(|c| c[2]).into(),
                p95.into(),
            ] as Vec<mysql_async::Value>,
        )
        .await
        .unwrap();
    }
    // 500 samples of a.example in October: sample i has i × 300 bytes = 8·i bit/s.
    let samples: Vec<(i64, u64)> = (1..=500).map(|i| (OCT + i * 300, (i as u64) * 300)).collect();
    for chunk in samples.chunks(100) {
        let values = vec!["('a.example', FROM_UNIXTIME(?), ?, 1)"; chunk.len()].join(", ");
        let params: Vec<mysql_async::Value> = chunk.iter().flat_map(|(t, b)| [(*t).into(), (*b).into()]).collect();
        conn.exec_drop(format!("INSERT INTO domain_bandwidth_5m (domain, sample_start, bytes, requests) VALUES {values}"), params)
            .await
            .unwrap();
    }
    conn.exec_drop(
        "INSERT INTO domain_bandwidth_5m (domain, sample_start, bytes, requests) VALUES ('b.example', FROM_UNIXTIME(?), 30000000, 5)",
        (OCT + 300,),
    )
    .await
    .unwrap();
    // Rankings are JSON columns of the window rows, best first.
    conn.exec_drop(
        "UPDATE domain_minute SET top_by_requests = '[{\"ip\":\"192.0.2.1\",\"requests\":50,\"bytes\":5000}]' \
         WHERE domain = 'a.example' AND minute_start = FROM_UNIXTIME(?)",
        (T0,),
    )
    .await
    .unwrap();
    conn.exec_drop(
        "INSERT INTO domain_window (domain, window_secs, window_start, top_by_requests) VALUES ('a.example', 300, FROM_UNIXTIME(?), \
         '[{\"ip\":\"192.0.2.9\",\"requests\":400,\"bytes\":9000},{\"ip\":\"2001:db8::7\",\"requests\":100,\"bytes\":700}]') \
         ON DUPLICATE KEY UPDATE top_by_requests = VALUES(top_by_requests)",
        (T0,),
    )
    .await
    .unwrap();
    conn.exec_drop(
        "INSERT INTO alerts (domain, kind, opened_minute, resolved_minute, observed, baseline, detail) VALUES \
         ('a.example', 'error_rate', FROM_UNIXTIME(?), NULL, 0.2, 0.05, 'five percent of requests failed'), \
         ('b.example', 'traffic_spike', FROM_UNIXTIME(?), FROM_UNIXTIME(?), 600, 60, 'ten times the baseline'), \
         ('b.example', 'traffic_spike', FROM_UNIXTIME(?), FROM_UNIXTIME(?), 600, 60, 'long before')",
        (T0 + 60, T0, T0 + 120, T0 - 86_400, T0 - 86_000),
    )
    .await
    .unwrap();
    conn.exec_drop(
        "INSERT INTO rejects (source, partition_id, msg_offset, reason, detail, sample, epoch) VALUES \
         ('file:x', 0, 1, 'bad_format', 'no match', 'junk for a.example here', FROM_UNIXTIME(?)), \
         ('file:x', 0, 2, 'bad_format', 'no match', 'other junk', FROM_UNIXTIME(?)), \
         ('file:x', 0, 3, 'too_late', 'window closed', 'late line of a.example', FROM_UNIXTIME(?))",
        (T0, T0 + 30, T0 + 60),
    )
    .await
    .unwrap();
    conn.disconnect().await.unwrap();
}

/// A fresh database seeded with known rows; returns its (read-write) URL.
fn seeded_database() -> String {
    let services = Services::from_env();
    let url = fresh_database(&services, "dashrouter");
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &[("EDGEFLOW__MYSQL__URL", &url)]), "migrate");
    runtime().block_on(seed(&url));
    url
}

/// The router over `url`'s database through the read-only user (inside a runtime: the
/// pool starts a task).
fn seeded_router(url: &str) -> Router {
    let config = DashboardConfig { mysql_url: read_only_url(url), ..DashboardConfig::default() };
    let accounts: AccountLookup = Arc::new(|d: &str| (d == "a.example").then(|| "acme".to_string()));
    app(state_with(config, Assets::builtin(), accounts))
}

fn close(actual: &Value, expected: f64) {
    let actual = actual.as_f64().unwrap_or_else(|| panic!("{actual} is not a number"));
    assert!((actual - expected).abs() <= 1e-9 * expected.abs().max(1.0), "got {actual}, expected {expected}");
}

#[test]
fn api_numbers_equal_the_rows() {
    let url = seeded_database();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let router = seeded_router(&url);
        // A 5-minute range from T0: 300 s.
        let range = format!("from={T0}&to={}", T0 + 300);
        let domains = json(&router, &format!("/api/domains?{range}")).await;
        assert_eq!(domains["range"]["secs"], 300);
        let list = domains["domains"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        let a = &list[0];
        assert_eq!(a["domain"], "a.example");
        assert_eq!(a["account"], "acme");
        assert_eq!(a["requests"], 600);
        close(&a["requests_per_min"], 600.0 / 5.0);
        close(&a["mbit_per_s"], 3_600_000.0 * 8.0 / 300.0 / 1e6);
        close(&a["rate_4xx"], 24.0 / 600.0);
        close(&a["rate_5xx"], 5.0 / 600.0);
        close(&a["cache_hit_ratio"], 420.0 / 600.0);
        assert_eq!(a["spark"], serde_json::json!([100, 200, 300, 0, 0]));
        let b = &list[1];
        assert_eq!((b["account"].clone(), b["cache_hit_ratio"].clone()), (Value::Null, Value::Null), "no cache data is null, not 0");
        close(&b["rate_4xx"], 0.5);
        assert_eq!(domains["totals"]["requests"], 660);

        let series = json(&router, &format!("/api/series?{range}&domain=a.example")).await;
        assert_eq!(series["step"], 60);
        assert_eq!(series["series"]["t"], serde_json::json!([T0, T0 + 60, T0 + 120, T0 + 180, T0 + 240]));
        assert_eq!(series["series"]["requests"], serde_json::json!([100, 200, 300, 0, 0]));
        close(&series["series"]["requests_per_min"][1], 200.0);
        assert_eq!(series["series"]["status_4xx"], serde_json::json!([4, 8, 12, 0, 0]));
        close(&series["series"]["cache_hit_ratio"][0], 0.7);
        assert_eq!(series["series"]["request_time_p95_ms"][2], Value::Null);
        // Request-weighted: (12·100 + 24·200) / 300.
        close(&series["summary"]["request_time_p95_ms"], 20.0);
        // Month to date as of the range end: October, samples up to T0 + 300 (all 500 are
        // before it), N = intervals started by then = 9·288 + 144 + 1 = 2737, M = 136:
        // the 137th largest of 8·1 … 8·500 is 8·364.
        let p95 = &series["p95_month_to_date"];
        assert_eq!(p95["month"], "2026-10");
        assert_eq!(p95["intervals"], 2_737);
        close(&p95["p95_mbit_per_s"], 8.0 * 364.0 / 1e6);
        let rows = json(&router, &format!("/api/series?{range}&format=rows")).await;
        assert_eq!(rows["series"][1]["requests"], 260);
        assert_eq!(rows["series"][1]["t"], T0 + 60);

        // Parameterised: a quote in the domain is a domain that does not exist.
        let injected = json(&router, &format!("/api/series?{range}&domain=x%27%20OR%20%271%27%3D%271")).await;
        assert_eq!(injected["summary"]["requests"], 0);

        let top = json(&router, &format!("/api/top_clients?{range}&domain=a.example")).await;
        assert_eq!(top["window_secs"], 300, "the longest window by default");
        assert_eq!(top["clients"][0]["client_ip"], "192.0.2.9");
        assert_eq!(top["clients"][1]["client_ip"], "2001:db8::7");
        let top60 = json(&router, &format!("/api/top_clients?{range}&domain=a.example&window_secs=60")).await;
        assert_eq!(top60["clients"][0]["requests"], 50);

        let alerts = json(&router, &format!("/api/alerts?{range}")).await;
        let kinds: Vec<(&str, &str)> = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["domain"].as_str().unwrap(), a["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(kinds, [("a.example", "error_rate"), ("b.example", "traffic_spike")], "the day-old one is not in range");
        assert_eq!(alerts["alerts"][0]["resolved"], Value::Null);

        let rejects = json(&router, &format!("/api/rejects?{range}")).await;
        assert_eq!(rejects["total"], 3);
        assert_eq!(rejects["reasons"][0], serde_json::json!({"reason": "bad_format", "count": 2}));
        let mine = json(&router, &format!("/api/rejects?{range}&domain=a.example")).await;
        assert_eq!(mine["total"], 2);
        assert_eq!(mine["samples"][0]["sample"], "late line of a.example");

        // October is over: N = 8928, M = 446; a.example bills the 447th largest: 8·54 bit/s.
        let bills = json(&router, "/api/billing?month=2026-10").await;
        assert_eq!(bills["intervals"], 8_928);
        let a = bills["domains"].as_array().unwrap().iter().find(|d| d["name"] == "a.example").unwrap().clone();
        close(&a["p95_bps"], 8.0 * 54.0);
        assert_eq!(a["samples"], 500);
        assert_eq!(a["bytes"], 300 * 500 * 501 / 2);
        assert_eq!(a["account"], "acme");
        let unassigned = bills["accounts"].as_array().unwrap().iter().find(|d| d["name"].is_null()).unwrap().clone();
        assert_eq!(unassigned["domains"], serde_json::json!(["b.example"]));
        close(&unassigned["p95_bps"], 0.0);
        close(&unassigned["traffic_gb"], 0.03);

        // The month's samples for the chart: every interval, missing ones as 0.
        let bw = json(&router, "/api/bandwidth?month=2026-10&account=acme").await;
        assert_eq!(bw["intervals"], 8_928);
        assert_eq!(bw["series"]["t"].as_array().unwrap().len(), 8_928);
        assert_eq!(bw["series"]["t"][1], OCT + 300);
        close(&bw["series"]["mbit_per_s"][1], 8.0 / 1e6);
        close(&bw["series"]["mbit_per_s"][0], 0.0);
        close(&bw["p95_mbit_per_s"], 432.0 / 1e6);
        assert_eq!(bw["total_bytes"], 37_575_000);
        let all = json(&router, "/api/bandwidth?month=2026-10").await;
        assert_eq!(all["total_bytes"], 67_575_000);
        close(&all["series"]["mbit_per_s"][1], (300.0 + 30_000_000.0) * 8.0 / 300.0 / 1e6);
        assert_eq!(call(&router, "/api/bandwidth?domain=a.example&account=acme", &[]).await.0, StatusCode::BAD_REQUEST);

        let (status, headers, csv) = call(&router, "/api/billing.csv?month=2026-10&by=account", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        assert!(headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("edgeflow-billing-2026-10-accounts.csv"));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[1].starts_with("2026-10,acme,a.example,0.000432,0.037575,37575000,"), "{csv}");
    });
    // The read-only user really is read-only.
    let denied = runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(read_only_url(&url)).await.unwrap();
        conn.query_drop("DELETE FROM domain_minute").await
    });
    assert!(denied.is_err(), "the dashboard's user must not be able to write");
}

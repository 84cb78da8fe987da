//! The dashboard in a real browser: Debian's headless Chromium driven through chromedriver
//! (the W3C WebDriver protocol over plain HTTP), against `edgeflow serve` as a subprocess
//! reading a fresh MariaDB database, through the read-only user, that `edgeflow run` filled.
//!
//! - `pages_show_the_tables`: every page loads; the numbers shown equal the tables; the
//!   time-range selector (a preset and a custom from/to) changes them accordingly; a row
//!   written while a page is open appears without a reload within 2 s; screenshots go to
//!   `target/screenshots/`.
//! - `hostile_log_fields_are_inert`: domains, client addresses, alert details and reject
//!   samples holding HTML/JS and SQL show as literal text, execute nothing, and change no table.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use edgeflow::gen::{GenConfig, OutputFormat, TrafficGen};
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

// ------------------------------------------------------------------ WebDriver client

#[derive(Debug)]
struct WebDriverError {
    error: String,
    /// Shown when a command fails (`{:?}`).
    #[allow(dead_code)]
    message: String,
}

/// One Chromium session through its own chromedriver; both end when this is dropped.
struct Browser {
    agent: ureq::Agent,
    base: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    fn start() -> Browser {
        for binary in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(Path::new(binary).exists(), "{binary} is missing: scripts/setup.sh installs chromium and chromium-driver");
        }
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = agent
                .get(format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1440,1000",
            "--force-device-scale-factor=1",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let mut response = agent.post(format!("{base}/session")).send_json(&capabilities).expect("new session");
        let created: Value = response.body_mut().read_json().expect("session json");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromium did not start: {created}"))
            .to_owned();
        Browser { agent, base, session, driver, _profile: profile }
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self.agent.post(&url).send_json(body.unwrap_or_else(|| json!({}))),
        };
        let mut response = response.unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        let ok = response.status().is_success();
        let value: Value = response.body_mut().read_json().expect("webdriver json");
        let value = value["value"].clone();
        if ok {
            Ok(value)
        } else {
            Err(WebDriverError {
                error: value["error"].as_str().unwrap_or("").to_owned(),
                message: value["message"].as_str().unwrap_or("").chars().take(400).collect(),
            })
        }
    }

    fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({"url": url}))).unwrap_or_else(|e| panic!("open {url}: {e:?}"));
    }

    fn js(&self, script: &str, args: Value) -> Value {
        self.command("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
            .unwrap_or_else(|e| panic!("script failed: {e:?}\n{script}"))
    }

    /// Waits until `script` returns something truthy; returns it.
    fn wait_for(&self, what: &str, script: &str, args: Value, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.js(script, args.clone());
            if !(value.is_null() || value == false || value == 0 || value == "") {
                return value;
            }
            if Instant::now() > deadline {
                let error = self.js("return document.getElementById('error')?.textContent || ''", json!([]));
                panic!("timed out waiting for {what} (page error: {error})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The number of completed data loads of the page (app.js counts them in `data-loaded`).
    fn loads(&self) -> u64 {
        self.js("return Number(document.body.dataset.loaded || 0)", json!([])).as_u64().unwrap_or(0)
    }

    fn wait_loaded_after(&self, before: u64, what: &str) {
        self.wait_for(
            what,
            "return Number(document.body.dataset.loaded || 0) > arguments[0]",
            json!([before]),
            Duration::from_secs(20),
        );
    }

    fn open(&self, url: &str) {
        self.goto(url);
        self.wait_loaded_after(0, url);
    }

    /// An open `alert()`/`confirm()` dialog's text, if any.
    fn dialog(&self) -> Option<String> {
        match self.command("GET", "/alert/text", None) {
            Ok(text) => Some(text.to_string()),
            Err(e) if e.error == "no such alert" => None,
            Err(e) => panic!("alert/text: {e:?}"),
        }
    }

    /// A screenshot of the whole page (the window is made as tall as the page first).
    fn screenshot(&self, name: &str) -> PathBuf {
        let height = self.js("return Math.ceil(document.documentElement.scrollHeight)", json!([])).as_u64().unwrap_or(1000);
        self.command("POST", "/window/rect", Some(json!({"width": 1440, "height": height.clamp(600, 6000)}))).unwrap();
        std::thread::sleep(Duration::from_millis(400)); // charts redraw after the resize
        let png = self.command("GET", "/screenshot", None).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        self.command("POST", "/window/rect", Some(json!({"width": 1440, "height": 1000}))).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

// ------------------------------------------------------------------ edgeflow serve

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// `edgeflow serve` on a free loopback port, reading `database_url`'s database through
    /// the read-only user, with `accounts` as the domain → account map.
    fn start(database_url: &str, accounts: &BTreeMap<String, String>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("serve.toml");
        let mut text = format!("[dashboard]\nmysql_url = \"{}\"\nlive_poll_ms = 250\n\n[clean.accounts]\n", read_only_url(database_url));
        for (domain, account) in accounts {
            text.push_str(&format!("\"{domain}\" = \"{account}\"\n"));
        }
        std::fs::write(&config, text).unwrap();
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgeflow"))
            .args(["serve", "-c"])
            .arg(&config)
            .args(["--bind", "127.0.0.1:0"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start edgeflow serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = match line.trim().strip_prefix("listening on ") {
            Some(url) => url.to_owned(),
            None => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
                panic!("edgeflow serve did not start: {line:?}\n{log}");
            }
        };
        Server { child, url, _dir: dir }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_only_url(url: &str) -> String {
    let ro = std::env::var("EDGEFLOW_MYSQL_RO_URL").expect("EDGEFLOW_MYSQL_RO_URL: run through scripts/test.sh");
    let (base, _) = ro.rsplit_once('/').unwrap();
    let (_, name) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

// ------------------------------------------------------------------ data

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn job_env(url: &str) -> Vec<(&'static str, &str)> {
    vec![("EDGEFLOW__MYSQL__URL", url), ("EDGEFLOW__PARSE__FORMAT", "cdn"), ("EDGEFLOW__WINDOW__OUT_OF_ORDERNESS_SECS", "5")]
}

/// Runs the job over `lines` (a file source) into `url`'s database.
fn run_job(url: &str, lines: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let mut file = std::fs::File::create(&path).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    drop(file);
    let env = job_env(url);
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");
    let source = format!("file:{}", path.display());
    assert_success(&edgeflow(&["run", "-c", "config/local.toml", "--source", &source], &env), "edgeflow run");
}

fn generator(lines: u64, domains: usize, start_ms: i64, rate: f64) -> TrafficGen {
    TrafficGen::new(GenConfig {
        seed: 11,
        domains,
        lines,
        rate_per_sec: rate,
        start_ms,
        format: OutputFormat::Cdn,
        filebeat: false,
        disorder_ms: 2_000,
        late_fraction: 0.0,
        ..GenConfig::default()
    })
    .expect("valid generator config")
}

async fn connect(url: &str) -> mysql_async::Conn {
    let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    conn
}

/// Per domain over `[from, to)`: requests, bytes, 4xx, 5xx, cache hit/miss/other.
type DomainRow = (u64, u64, u64, u64, Option<u64>, Option<u64>, Option<u64>);

fn domain_rows(url: &str, from: i64, to: i64) -> BTreeMap<String, DomainRow> {
    runtime().block_on(async {
        let mut conn = connect(url).await;
        #[allow(clippy::type_complexity)]
        let rows: Vec<(String, u64, u64, u64, u64, Option<u64>, Option<u64>, Option<u64>)> = conn
            .exec(
                "SELECT domain, CAST(SUM(requests) AS UNSIGNED), CAST(SUM(bytes) AS UNSIGNED), CAST(SUM(status_4xx) AS UNSIGNED), \
                 CAST(SUM(status_5xx) AS UNSIGNED), CAST(SUM(cache_hit) AS UNSIGNED), CAST(SUM(cache_miss) AS UNSIGNED), \
                 CAST(SUM(cache_other) AS UNSIGNED) FROM domain_minute \
                 WHERE minute_start >= FROM_UNIXTIME(?) AND minute_start < FROM_UNIXTIME(?) GROUP BY domain",
                (from, to),
            )
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
        rows.into_iter().map(|(d, r, b, s4, s5, h, m, o)| (d, (r, b, s4, s5, h, m, o))).collect()
    })
}

/// What the page should show for a row, formatted numbers parsed back.
#[derive(Debug)]
struct Expected {
    rpm: f64,
    mbps: f64,
    rate4: f64,
    rate5: f64,
    hit: Option<f64>,
}

fn expected(row: &DomainRow, secs: i64) -> Expected {
    let (requests, bytes, s4, s5, hit, miss, other) = *row;
    let cached = hit.map(|h| h + miss.unwrap_or(0) + other.unwrap_or(0)).filter(|all| *all > 0);
    Expected {
        rpm: requests as f64 * 60.0 / secs as f64,
        mbps: bytes as f64 * 8.0 / secs as f64 / 1e6,
        rate4: s4 as f64 / requests as f64 * 100.0,
        rate5: s5 as f64 / requests as f64 * 100.0,
        hit: cached.map(|all| hit.unwrap() as f64 / all as f64 * 100.0),
    }
}

/// A number as the page shows it (`1,234.5`, `12.34%`, `—`).
fn shown(text: &str) -> Option<f64> {
    let t = text.trim();
    if t == "—" {
        return None;
    }
    Some(t.trim_end_matches('%').trim_end_matches(" ms").replace(',', "").parse().unwrap_or_else(|_| panic!("not a number: {t:?}")))
}

/// `shown` equals `want` to the precision displayed (`digits` decimals).
fn assert_shown(what: &str, text: &str, want: f64, digits: i32) {
    let got = shown(text).unwrap_or_else(|| panic!("{what}: shows {text:?}, expected {want}"));
    let tolerance = 0.5 * 10f64.powi(-digits) + 1e-9;
    assert!((got - want).abs() <= tolerance, "{what}: shows {text:?}, the tables give {want}");
}

const READ_TABLE: &str = "return [...document.querySelectorAll('#domains tbody tr')].map(tr => ({
    domain: tr.dataset.domain,
    link: tr.querySelector('a').textContent,
    rpm: tr.querySelector('[data-col=rpm]').textContent,
    mbps: tr.querySelector('[data-col=mbps]').textContent,
    rate4: tr.querySelector('[data-col=rate4]').textContent,
    rate5: tr.querySelector('[data-col=rate5]').textContent,
    hit: tr.querySelector('[data-col=hit]').textContent,
    spark: tr.querySelectorAll('svg.spark polyline').length }))";

fn shown_range(browser: &Browser) -> (i64, i64) {
    let r = browser.js("return [Number(document.body.dataset.from), Number(document.body.dataset.to)]", json!([]));
    (r[0].as_i64().unwrap(), r[1].as_i64().unwrap())
}

/// Checks the overview table and tiles against the tables for the range the page shows.
fn check_overview(browser: &Browser, url: &str, what: &str) -> BTreeMap<String, DomainRow> {
    let (from, to) = shown_range(browser);
    let rows = domain_rows(url, from, to);
    let table = browser.js(READ_TABLE, json!([]));
    let table = table.as_array().unwrap();
    let shown_domains: Vec<&str> = table.iter().map(|r| r["domain"].as_str().unwrap()).collect();
    let mut want_domains: Vec<&str> = rows.keys().map(String::as_str).collect();
    let mut sorted = shown_domains.clone();
    sorted.sort_unstable();
    want_domains.sort_unstable();
    assert_eq!(sorted, want_domains, "{what}: domains shown");
    for row in table {
        let domain = row["domain"].as_str().unwrap();
        assert_eq!(row["link"], domain);
        let want = expected(&rows[domain], to - from);
        let cell = |name: &str| row[name].as_str().unwrap().to_owned();
        assert_shown(&format!("{what} {domain} req/min"), &cell("rpm"), want.rpm, 1);
        assert_shown(&format!("{what} {domain} Mbit/s"), &cell("mbps"), want.mbps, 3);
        assert_shown(&format!("{what} {domain} 4xx"), &cell("rate4"), want.rate4, 2);
        assert_shown(&format!("{what} {domain} 5xx"), &cell("rate5"), want.rate5, 2);
        match want.hit {
            Some(hit) => assert_shown(&format!("{what} {domain} cache"), &cell("hit"), hit, 2),
            None => assert_eq!(cell("hit"), "—", "{what} {domain}: no cache data"),
        }
        assert_eq!(row["spark"], 1, "{what} {domain}: a sparkline");
    }
    // Tiles: the totals over every domain.
    let total = rows.values().fold((0u64, 0u64), |acc, r| (acc.0 + r.0, acc.1 + r.1));
    let tile = |name: &str| {
        browser.js(&format!("return document.querySelector('[data-stat={name}]').textContent"), json!([])).as_str().unwrap().to_owned()
    };
    assert_shown(&format!("{what} total req/min"), &tile("rpm"), total.0 as f64 * 60.0 / (to - from) as f64, 1);
    assert_shown(&format!("{what} total Mbit/s"), &tile("mbps"), total.1 as f64 * 8.0 / (to - from) as f64 / 1e6, 3);
    assert_eq!(shown(&tile("domains")), Some(rows.len() as f64), "{what}: domain count");
    rows
}

fn count_charts(browser: &Browser) -> u64 {
    browser.js("return document.querySelectorAll('.uplot canvas').length", json!([])).as_u64().unwrap()
}

/// Month-to-date 95th percentile (vendor method) computed here from the samples, Mbit/s,
/// for `as_of` (the `N` of both `as_of` values given, since the page computed it in between).
fn p95_candidates(samples: &[u64], month_start: i64, as_of: &[i64]) -> Vec<f64> {
    as_of
        .iter()
        .map(|at| {
            let n = ((at - month_start + 299) / 300).max(samples.len() as i64) as usize;
            let mut bps: Vec<f64> = samples.iter().filter(|b| **b > 0).map(|b| *b as f64 * 8.0 / 300.0).collect();
            bps.sort_by(|a, b| b.total_cmp(a));
            bps.get(n / 20).copied().unwrap_or(0.0) / 1e6
        })
        .collect()
}

fn month_start(t: i64) -> i64 {
    // Days since the epoch → civil (Hinnant), then back to the first of the month.
    let z = t.div_euclid(86_400) + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    (t.div_euclid(86_400) - (day - 1)) * 86_400
}

fn samples_by_domain(url: &str, from: i64, to: i64) -> BTreeMap<String, Vec<u64>> {
    runtime().block_on(async {
        let mut conn = connect(url).await;
        let rows: Vec<(String, u64)> = conn
            .exec(
                "SELECT domain, bytes FROM domain_bandwidth_5m WHERE sample_start >= FROM_UNIXTIME(?) AND sample_start < FROM_UNIXTIME(?)",
                (from, to),
            )
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
        let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (domain, bytes) in rows {
            out.entry(domain).or_default().push(bytes);
        }
        out
    })
}

/// The 5-minute bandwidth samples: the job's if it writes them; otherwise derived from
/// `domain_minute` here (the same definition). Then a synthetic history from the first of
/// the month up to the job's data, scaled to each domain's traffic with a daily rhythm, so
/// the month-to-date percentile has a month to work on.
fn fill_bandwidth(url: &str, first_minute: i64) {
    runtime().block_on(async {
        let mut conn = connect(url).await;
        let count: u64 = conn.query_first("SELECT COUNT(*) FROM domain_bandwidth_5m").await.unwrap().unwrap();
        if count == 0 {
            conn.query_drop(
                "INSERT INTO domain_bandwidth_5m (domain, sample_start, bytes, requests) \
                 SELECT domain, FROM_UNIXTIME(FLOOR(UNIX_TIMESTAMP(minute_start) / 300) * 300) AS s, SUM(bytes), SUM(requests) \
                 FROM domain_minute GROUP BY domain, s",
            )
            .await
            .unwrap();
        }
        let averages: Vec<(String, f64)> = conn
            .query("SELECT domain, AVG(bytes) FROM domain_bandwidth_5m GROUP BY domain")
            .await
            .unwrap();
        let start = month_start(first_minute);
        let end = first_minute - first_minute.rem_euclid(300) - 3_600;
        for (domain, average) in averages {
            let rows: Vec<(i64, u64)> = (start..end)
                .step_by(300)
                .map(|t| {
                    let hour = (t.rem_euclid(86_400) / 3_600) as f64;
                    let daily = 0.6 + 0.5 * (std::f64::consts::PI * (hour - 4.0) / 12.0).sin().abs();
                    let wobble = 0.85 + 0.3 * (((t / 300) * 7_919 % 101) as f64 / 100.0);
                    (t, (average * daily * wobble) as u64)
                })
                .collect();
            for chunk in rows.chunks(1_000) {
                let values = vec!["(?, FROM_UNIXTIME(?), ?, 0)"; chunk.len()].join(", ");
                let params: Vec<mysql_async::Value> =
                    chunk.iter().flat_map(|(t, b)| [domain.as_str().into(), (*t).into(), (*b).into()]).collect();
                conn.exec_drop(format!("INSERT INTO domain_bandwidth_5m (domain, sample_start, bytes, requests) VALUES {values}"), params)
                    .await
                    .unwrap();
            }
        }
        conn.disconnect().await.unwrap();
    });
}

fn minute_input(t: i64) -> String {
    // YYYY-MM-DDTHH:MM for <input type="datetime-local"> (UTC).
    let (year, month, day) = edgeflow::dashboard::range::civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}", s / 3_600, s / 60 % 60)
}

// ------------------------------------------------------------------ the tests

#[test]
fn pages_show_the_tables() {
    let started = Instant::now();
    let services = Services::from_env();
    let url = fresh_database(&services, "dashe2e");
    // 22 minutes of traffic ending about 2 minutes ago, plus two unusable lines.
    let start_ms = (now() - 24 * 60) * 1_000;
    let gen = generator(13_200, 10, start_ms, 10.0);
    let domains: Vec<String> = gen.domains().map(str::to_owned).collect();
    let mut lines: Vec<String> = gen.map(|l| l.line).collect();
    lines.insert(500, "this is not an access log line".into());
    lines.insert(900, "GET / HTTP/1.1 garbage".into());
    run_job(&url, &lines);
    let minutes = read_domain_minutes(&url);
    let first_minute = minutes.keys().map(|(_, m)| *m).min().expect("the job wrote rows");
    fill_bandwidth(&url, first_minute);
    let accounts: BTreeMap<String, String> =
        domains.iter().take(5).enumerate().map(|(i, d)| (d.clone(), if i < 3 { "acme" } else { "globex" }.to_string())).collect();
    eprintln!("data ready in {:?}", started.elapsed());

    let server = Server::start(&url, &accounts);
    let browser = Browser::start();

    // Overview, last hour: every domain, numbers equal the tables, charts drawn.
    browser.open(&format!("{}/?range=1h", server.url));
    let (from, to) = shown_range(&browser);
    assert_eq!(to - from, 3_600);
    let rows = check_overview(&browser, &url, "1h");
    assert!(rows.len() >= 5, "several domains: {rows:?}");
    assert!(count_charts(&browser) >= 3, "three charts on the overview");
    let accounts_shown = browser.js(
        "return Object.fromEntries([...document.querySelectorAll('#domains tbody tr')].map(tr => [tr.dataset.domain, tr.querySelector('[data-col=account]').textContent]))",
        json!([]),
    );
    for (domain, account) in &accounts {
        if rows.contains_key(domain) {
            assert_eq!(accounts_shown[domain], account.as_str(), "{domain}'s account");
        }
    }
    let rejects_text = browser.js("return document.getElementById('rejects-bars').textContent", json!([]));
    assert!(rejects_text.as_str().unwrap().contains("bad_format"), "rejects panel: {rejects_text}");
    let shot = browser.screenshot("overview.png");
    eprintln!("screenshot {}", shot.display());

    // Sorting: by domain name, ascending.
    let before = browser.js("return document.querySelector('#domains tbody tr').dataset.domain", json!([]));
    browser.js("document.querySelector('#domains th[data-key=domain]').click()", json!([]));
    let names = browser.js("return [...document.querySelectorAll('#domains tbody tr')].map(tr => tr.dataset.domain)", json!([]));
    let names: Vec<String> = names.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by domain");
    assert_ne!(before.as_str(), None);

    // The time-range selector: the 15-minute preset…
    let loads = browser.loads();
    browser.js("document.querySelector('#range button[data-range=\"15m\"]').click()", json!([]));
    browser.wait_loaded_after(loads, "15m preset");
    let (from, to) = shown_range(&browser);
    assert_eq!(to - from, 900);
    assert!(browser.js("return location.search", json!([])).as_str().unwrap().contains("range=15m"));
    check_overview(&browser, &url, "15m");

    // …and a custom range: ten minutes inside the data, typed into the from/to fields.
    let custom_from = first_minute + 5 * 60;
    let custom_to = custom_from + 10 * 60;
    let loads = browser.loads();
    browser.js(
        "const f = document.getElementById('custom'); f.elements.from.value = arguments[0]; f.elements.to.value = arguments[1];
         f.querySelector('button[type=submit]').click();",
        json!([minute_input(custom_from), minute_input(custom_to)]),
    );
    browser.wait_loaded_after(loads, "custom range");
    assert_eq!(shown_range(&browser), (custom_from, custom_to), "the custom range is applied");
    let custom_rows = check_overview(&browser, &url, "custom");

    // Domain page, reached by its link (the custom range goes along): tiles equal the tables.
    let domain = custom_rows.iter().max_by_key(|(_, r)| r.0).map(|(d, _)| d.clone()).unwrap();
    browser.js(
        "[...document.querySelectorAll('#domains tbody tr')].find(tr => tr.dataset.domain === arguments[0]).querySelector('a').click()",
        json!([domain]),
    );
    browser.wait_for(
        "the domain page",
        "return document.body.dataset.page === 'domain' && Number(document.body.dataset.loaded || 0) > 0",
        json!([]),
        Duration::from_secs(20),
    );
    assert_eq!(browser.js("return document.getElementById('domain-name').textContent", json!([])), domain.as_str());
    assert_eq!(shown_range(&browser), (custom_from, custom_to), "the range follows the link");
    let want = expected(&custom_rows[&domain], custom_to - custom_from);
    let stat = |name: &str| {
        browser.js(&format!("return document.querySelector('[data-stat={name}]').textContent"), json!([])).as_str().unwrap().to_owned()
    };
    assert_shown("domain req/min", &stat("rpm"), want.rpm, 1);
    assert_shown("domain Mbit/s", &stat("mbps"), want.mbps, 3);
    assert_shown("domain 4xx", &stat("rate4"), want.rate4, 2);
    assert_shown("domain 5xx", &stat("rate5"), want.rate5, 2);
    // The month-to-date p95 as of the range's end (a past instant: deterministic).
    let month = month_start(custom_to - 1);
    let samples = samples_by_domain(&url, month, custom_to);
    let p95 = p95_candidates(samples.get(&domain).map_or(&[][..], Vec::as_slice), month, &[custom_to]);
    assert_shown("domain p95 month to date", &stat("p95"), p95[0], 3);
    if custom_to - month > 2 * 86_400 {
        assert!(p95[0] > 0.0, "the synthetic month gives a real percentile");
    }
    assert!(count_charts(&browser) >= 5, "five charts on the domain page");
    let legend = browser.js("return document.querySelector('#chart-bandwidth').textContent", json!([]));
    assert!(legend.as_str().unwrap().contains("p95"), "the bandwidth chart has the p95 line: {legend}");
    // Top clients: the job's ranking when it writes one, else the empty note.
    let top = browser.js("return [...document.querySelectorAll('#bars-clients .bar-label')].map(e => e.textContent)", json!([]));
    let ranked: Vec<String> = runtime().block_on(async {
        let mut conn = connect(&url).await;
        let windows: Option<(u32, i64)> = conn
            .exec_first(
                "SELECT window_secs, CAST(UNIX_TIMESTAMP(MAX(window_start)) AS SIGNED) FROM top_clients WHERE domain = ? AND metric = 'requests' \
                 AND window_start >= FROM_UNIXTIME(?) AND window_start < FROM_UNIXTIME(?) GROUP BY window_secs ORDER BY window_secs DESC LIMIT 1",
                (&domain, custom_from, custom_to),
            )
            .await
            .unwrap();
        let ranked = match windows {
            Some((secs, start)) => conn
                .exec(
                    "SELECT client_ip FROM top_clients WHERE domain = ? AND window_secs = ? AND window_start = FROM_UNIXTIME(?) \
                     AND metric = 'requests' ORDER BY rank_no",
                    (&domain, secs, start),
                )
                .await
                .unwrap(),
            None => Vec::new(),
        };
        conn.disconnect().await.unwrap();
        ranked
    });
    assert_eq!(top, json!(ranked), "top clients shown = the newest ranking in the table");
    let shot = browser.screenshot("domain.png");
    eprintln!("screenshot {}", shot.display());

    // Billing: per domain and per account, p95 and GB equal the samples' vendor computation.
    let before_load = now();
    browser.open(&format!("{}/billing", server.url));
    let after_load = now();
    let month = month_start(after_load);
    let samples = samples_by_domain(&url, month, month + 40 * 86_400);
    let bill_rows = browser.js(
        "return [...document.querySelectorAll('#bill-domains tbody tr')].map(tr => ({domain: tr.dataset.domain,
           p95: tr.querySelector('[data-col=p95]').textContent, gb: tr.querySelector('[data-col=gb]').textContent}))",
        json!([]),
    );
    let bill_rows = bill_rows.as_array().unwrap();
    assert_eq!(bill_rows.len(), samples.len(), "one billing row per domain with samples");
    for row in bill_rows {
        let domain = row["domain"].as_str().unwrap();
        let domain_samples = &samples[domain];
        let candidates = p95_candidates(domain_samples, month, &[before_load, after_load]);
        let got = shown(row["p95"].as_str().unwrap()).unwrap();
        assert!(candidates.iter().any(|c| (got - c).abs() <= 0.0005 + 1e-9), "{domain} p95 shows {got}, samples give {candidates:?}");
        let gb = domain_samples.iter().sum::<u64>() as f64 / 1e9;
        assert_shown(&format!("{domain} GB"), row["gb"].as_str().unwrap(), gb, 3);
    }
    let account_rows = browser.js(
        "return Object.fromEntries([...document.querySelectorAll('#bill-accounts tbody tr')].map(tr => [tr.dataset.account, tr.querySelector('[data-col=gb]').textContent]))",
        json!([]),
    );
    let acme_gb: u64 = accounts
        .iter()
        .filter(|(_, a)| a.as_str() == "acme")
        .map(|(d, _)| samples.get(d).map_or(0, |s| s.iter().sum::<u64>()))
        .sum();
    assert_shown("acme GB", account_rows["acme"].as_str().unwrap(), acme_gb as f64 / 1e9, 3);
    assert!(account_rows.get("(no account)").is_some(), "unmapped domains are billed together: {account_rows}");
    // An account's bandwidth is its domains' samples summed per interval: the table's p95 and
    // the month chart (selected for the account) show the percentile of those sums.
    let acme: Vec<&String> = accounts.iter().filter(|(_, a)| a.as_str() == "acme").map(|(d, _)| d).collect();
    let acme_sums: Vec<u64> = runtime().block_on(async {
        let mut conn = connect(&url).await;
        let sums: Vec<u64> = conn
            .exec(
                "SELECT CAST(SUM(bytes) AS UNSIGNED) FROM domain_bandwidth_5m WHERE domain IN (?, ?, ?)                  AND sample_start >= FROM_UNIXTIME(?) GROUP BY sample_start",
                (acme[0], acme[1], acme[2], month),
            )
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
        sums
    });
    let acme_p95 = p95_candidates(&acme_sums, month, &[before_load, after_load]);
    let acme_shown = browser.js("return document.querySelector('#bill-accounts tr[data-account=acme] [data-col=p95]').textContent", json!([]));
    let acme_shown = shown(acme_shown.as_str().unwrap()).unwrap();
    assert!(acme_p95.iter().any(|c| (acme_shown - c).abs() <= 0.0005 + 1e-9), "acme p95 shows {acme_shown}, sums give {acme_p95:?}");
    assert_eq!(count_charts(&browser), 1, "the month chart");
    let loads = browser.loads();
    browser.js("const s = document.getElementById('bw-select'); s.value = 'a:acme'; s.dispatchEvent(new Event('change'))", json!([]));
    browser.wait_loaded_after(loads, "the account's month chart");
    let label = browser.js("return document.getElementById('bw-p95').textContent", json!([]));
    let label = label.as_str().unwrap();
    let value = label.strip_prefix("p95 ").and_then(|r| r.split(' ').next()).unwrap_or_else(|| panic!("{label}"));
    assert_shown("acme month chart p95", value, acme_shown, 3);
    // A synchronous script may return a promise; WebDriver waits for it.
    let csv = browser.js("return fetch(document.getElementById('csv-accounts').href).then(r => r.text())", json!([]));
    let csv = csv.as_str().unwrap();
    assert!(csv.starts_with("month,account,domains,p95_mbit_per_s,traffic_gb"), "{csv}");
    assert!(csv.lines().any(|l| l.contains(",acme,")), "{csv}");
    let shot = browser.screenshot("billing.png");
    eprintln!("screenshot {}", shot.display());

    // Live: a row written while the overview is open shows within 2 s, without a reload.
    browser.open(&format!("{}/?range=1h", server.url));
    browser.js("window.__still_here = true", json!([]));
    let minute = now() - now().rem_euclid(60);
    let written = Instant::now();
    runtime().block_on(async {
        let mut conn = connect(&url).await;
        conn.exec_drop(
            "INSERT INTO domain_minute (domain, minute_start, requests, bytes, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx) \
             VALUES ('live.example', FROM_UNIXTIME(?), 1234, 5678900, 0, 1200, 0, 34, 0)",
            (minute,),
        )
        .await
        .unwrap();
        conn.disconnect().await.unwrap();
    });
    browser.wait_for(
        "the new row",
        "return !!document.querySelector('#domains tbody tr[data-domain=\"live.example\"]')",
        json!([]),
        Duration::from_secs(5),
    );
    let latency = written.elapsed();
    assert!(latency <= Duration::from_secs(2), "the new row took {latency:?} to appear");
    assert_eq!(browser.js("return window.__still_here === true", json!([])), true, "the page was not reloaded");
    check_overview(&browser, &url, "live");
    eprintln!("live row shown after {latency:?}; whole test {:?}", started.elapsed());
}

const SCRIPT_DOMAIN: &str = "<script>alert(1)</script>.example";
const IMG_DOMAIN: &str = "\"><img src=x onerror=window.__xss=1>.example";
const SQL_DOMAIN: &str = "'; DROP TABLE domain_minute; --";
const IMG_SAMPLE: &str = "\"><img src=x onerror=alert(1)>";
const SQL_SAMPLE: &str = "'; DROP TABLE domain_minute; --";
const IMG_CLIENT: &str = "<img src=x onerror=window.__xss=3>";
const SCRIPT_DETAIL: &str = "<script>window.__xss=4</script> spike";

/// No dialog, no flag, no injected element; and the literal texts are visible.
fn assert_inert(browser: &Browser, what: &str, visible: &[&str]) {
    assert_eq!(browser.dialog(), None, "{what}: a dialog opened");
    let state = browser.js(
        "return {xss: window.__xss === undefined ? null : window.__xss, imgs: document.querySelectorAll('img').length,
                 scripts: document.scripts.length, text: document.body.innerText}",
        json!([]),
    );
    assert_eq!(state["xss"], Value::Null, "{what}: injected script ran");
    assert_eq!(state["imgs"], 0, "{what}: an injected <img> exists");
    assert_eq!(state["scripts"], 2, "{what}: only the page's own two scripts");
    let text = state["text"].as_str().unwrap();
    for literal in visible {
        assert!(text.contains(literal), "{what}: {literal:?} is not shown as text");
    }
}

#[test]
fn hostile_log_fields_are_inert() {
    let services = Services::from_env();
    let url = fresh_database(&services, "dashxss");
    // Through the job: a few good lines, one whose $host is a script (rejected as a domain),
    // and one that is all attack (rejected as a line); both end up as reject samples.
    let gen = generator(300, 3, (now() - 10 * 60) * 1_000, 1.0);
    let domain0 = gen.domains().next().unwrap().to_owned();
    let mut lines: Vec<String> = gen.map(|l| l.line).collect();
    let host = format!(" {domain0} ");
    let victim = lines.iter().position(|l| l.contains(&host)).expect("a line of the first domain");
    let with_host = lines[victim].replacen(&host, &format!(" {SCRIPT_DOMAIN} "), 1);
    lines.push(with_host);
    lines.push(format!("{IMG_SAMPLE} {SQL_SAMPLE}"));
    run_job(&url, &lines);

    // Straight into the tables: what the job would never write, shown by every page.
    let minute = now() - now().rem_euclid(60) - 120;
    let counts_before = runtime().block_on(async {
        let mut conn = connect(&url).await;
        for domain in [SCRIPT_DOMAIN, IMG_DOMAIN, SQL_DOMAIN] {
            conn.exec_drop(
                "INSERT INTO domain_minute (domain, minute_start, requests, bytes, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx) \
                 VALUES (?, FROM_UNIXTIME(?), 100, 100000, 0, 90, 0, 10, 0)",
                (domain, minute),
            )
            .await
            .unwrap();
            conn.exec_drop(
                "INSERT INTO domain_bandwidth_5m (domain, sample_start, bytes, requests) VALUES (?, FROM_UNIXTIME(?), 100000, 100)",
                (domain, minute - minute.rem_euclid(300)),
            )
            .await
            .unwrap();
        }
        // The ranking is a JSON column of the minute row inserted above.
        let ranking = serde_json::json!([{"ip": IMG_CLIENT, "requests": 100, "bytes": 100000}]).to_string();
        conn.exec_drop(
            "UPDATE domain_minute SET top_by_requests = ? WHERE domain = ? AND minute_start = FROM_UNIXTIME(?)",
            (ranking, SCRIPT_DOMAIN, minute),
        )
        .await
        .unwrap();
        conn.exec_drop(
            "INSERT INTO alerts (domain, kind, opened_minute, resolved_minute, observed, baseline, detail) \
             VALUES (?, 'traffic_spike', FROM_UNIXTIME(?), NULL, 100, 10, ?)",
            (SCRIPT_DOMAIN, minute, SCRIPT_DETAIL),
        )
        .await
        .unwrap();
        conn.exec_drop(
            "INSERT INTO rejects (source, partition_id, msg_offset, reason, detail, sample, epoch) \
             VALUES ('kafka:<b>topic</b>', 0, 99, 'bad_format', ?, ?, FROM_UNIXTIME(?))",
            (SQL_SAMPLE, format!("{IMG_SAMPLE} {SCRIPT_DOMAIN}").into_bytes(), minute),
        )
        .await
        .unwrap();
        let count: u64 = conn.query_first("SELECT COUNT(*) FROM domain_minute").await.unwrap().unwrap();
        conn.disconnect().await.unwrap();
        count
    });
    let job_rejects = read_reject_counts(&url);
    assert!(job_rejects.values().sum::<u64>() >= 3, "the job recorded the hostile lines: {job_rejects:?}");

    let server = Server::start(&url, &BTreeMap::new());
    let browser = Browser::start();

    browser.open(&format!("{}/?range=1h", server.url));
    assert_inert(&browser, "overview", &[SCRIPT_DOMAIN, IMG_DOMAIN, SQL_DOMAIN, IMG_SAMPLE, SQL_SAMPLE, "<b>topic</b>"]);
    let shot = browser.screenshot("hostile-overview.png");
    eprintln!("screenshot {}", shot.display());

    // The hostile domain's page, reached through its link.
    browser.js(
        "[...document.querySelectorAll('#domains tbody tr')].find(tr => tr.dataset.domain === arguments[0]).querySelector('a').click()",
        json!([SCRIPT_DOMAIN]),
    );
    browser.wait_for(
        "the hostile domain's page",
        "return document.body.dataset.page === 'domain' && Number(document.body.dataset.loaded || 0) > 0",
        json!([]),
        Duration::from_secs(20),
    );
    assert_eq!(browser.js("return document.getElementById('domain-name').textContent", json!([])), SCRIPT_DOMAIN);
    assert_eq!(browser.js("return document.title", json!([])), format!("{SCRIPT_DOMAIN} · edgeflow").as_str());
    assert_inert(&browser, "domain page", &[SCRIPT_DOMAIN, IMG_CLIENT, "<script>window.__xss=4</script>", IMG_SAMPLE]);
    let shot = browser.screenshot("hostile-domain.png");
    eprintln!("screenshot {}", shot.display());

    for page in ["/billing", "/domains/%22%3E%3Cimg%20src%3Dx%20onerror%3Dwindow.__xss%3D1%3E.example?range=1h"] {
        browser.open(&format!("{}{page}", server.url));
        assert_inert(&browser, page, &[IMG_DOMAIN]);
    }
    browser.open(&format!("{}/domains/{}?range=1h", server.url, "%27%3B%20DROP%20TABLE%20domain_minute%3B%20--"));
    assert_inert(&browser, "sql domain page", &[SQL_DOMAIN]);
    let rpm = browser.js("return document.querySelector('[data-stat=rpm]').textContent", json!([]));
    assert_shown("the SQL-named domain's own rows", rpm.as_str().unwrap(), 100.0 / 60.0, 1);

    // SQL through every parameter: bound as values, so they match nothing and break nothing.
    let answers = browser.js(
        "const q = [
           '/api/series?range=1h&domain=' + encodeURIComponent(\"x' OR '1'='1\"),
           '/api/rejects?range=1h&domain=' + encodeURIComponent(\"%' OR 1=1 -- \"),
           '/api/top_clients?range=1h&domain=' + encodeURIComponent(\"x' UNION SELECT 1,2,3,4 -- \"),
           '/api/alerts?range=1h&domain=' + encodeURIComponent(\"x'); DROP TABLE alerts; --\"),
           '/api/domains?range=' + encodeURIComponent(\"1h'; DROP TABLE rejects; --\"),
         ];
         return Promise.all(q.map(u => fetch(u).then(async r => [r.status, await r.json()])));",
        json!([]),
    );
    assert_eq!(answers[0][0], 200);
    assert_eq!(answers[0][1]["summary"]["requests"], 0, "a quote is part of the domain, not SQL");
    assert_eq!(answers[1][1]["total"], 0);
    assert_eq!(answers[2][1]["clients"], json!([]));
    assert_eq!(answers[3][1]["alerts"], json!([]));
    assert_eq!(answers[4][0], 400, "a bad range is refused");

    let counts_after = runtime().block_on(async {
        let mut conn = connect(&url).await;
        let tables: Vec<String> = conn.query("SHOW TABLES").await.unwrap();
        for table in ["domain_minute", "rejects", "alerts", "top_clients", "domain_bandwidth_5m"] {
            assert!(tables.iter().any(|t| t == table), "{table} is gone: {tables:?}");
        }
        let count: u64 = conn.query_first("SELECT COUNT(*) FROM domain_minute").await.unwrap().unwrap();
        conn.disconnect().await.unwrap();
        count
    });
    assert_eq!(counts_after, counts_before, "no row changed");
}

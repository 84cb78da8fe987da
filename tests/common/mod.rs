//! Shared helpers of the end-to-end tests: real Kafka and MariaDB started by
//! `scripts/services.sh` (via `scripts/test.sh`), a fresh topic and database per test, the job
//! binary as a subprocess, and an independent oracle that computes the expected rows from
//! the raw lines with its own (regex) parser.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use regex::Regex;

pub struct Services {
    pub brokers: String,
    pub mysql_url: String,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: end-to-end tests need the services; run them through scripts/test.sh")
    })
}

impl Services {
    pub fn from_env() -> Services {
        Services { brokers: required_env("EDGEFLOW_KAFKA_BROKERS"), mysql_url: required_env("EDGEFLOW_MYSQL_URL") }
    }
}

/// A name unique to this test process and call, usable as a topic or database name.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}_{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), nanos % 100_000)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Creates a fresh database and returns its URL (same user as `EDGEFLOW_MYSQL_URL`).
pub fn fresh_database(services: &Services, prefix: &str) -> String {
    let name = unique_name(&format!("edgeflow_{prefix}"));
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(&services.mysql_url).await.expect("connect to mariadb");
        conn.query_drop(format!("CREATE DATABASE `{name}`")).await.expect("create database");
        conn.disconnect().await.unwrap();
    });
    let (base, _db) = services.mysql_url.rsplit_once('/').expect("url has a database");
    format!("{base}/{name}")
}

pub fn fresh_topic(services: &Services, partitions: i32) -> String {
    let name = unique_name("access_logs");
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &services.brokers).create().expect("admin client");
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let results = runtime()
        .block_on(admin.create_topics([&topic], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))))
        .expect("create topic");
    for result in results {
        result.expect("topic created");
    }
    name
}

/// Produces `(partition, payload)` messages and waits until all are acknowledged.
pub fn produce(services: &Services, topic: &str, messages: impl IntoIterator<Item = (i32, Vec<u8>)>) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &services.brokers)
        .set("acks", "all")
        .set("linger.ms", "10")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for (partition, payload) in messages {
        let mut record = BaseRecord::<(), [u8]>::to(topic).payload(&payload).partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((err, back)) => {
                    assert!(matches!(err, rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)), "{err}");
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush producer");
}

/// Runs the `edgeflow` binary with `args` and `EDGEFLOW__*` overrides; returns its output.
pub fn edgeflow(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeflow"));
    command.args(args).current_dir(Path::new(env!("CARGO_MANIFEST_DIR")));
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("start edgeflow")
}

pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A job running in the background; its log goes to a file kept for failures.
pub struct Job {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Job {
    /// Starts `edgeflow` with `args` and `EDGEFLOW__*` overrides, logging to `log`.
    pub fn spawn(args: &[&str], env: &[(&str, &str)], log: &Path) -> Job {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("job log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_edgeflow"));
        command.args(args).current_dir(Path::new(env!("CARGO_MANIFEST_DIR")));
        command.stdout(file.try_clone().unwrap()).stderr(file);
        for (key, value) in env {
            command.env(key, value);
        }
        Job { child: command.spawn().expect("start edgeflow"), log: log.to_path_buf() }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then waits; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        assert!(sent.success(), "kill -TERM {pid}");
        self.wait()
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for edgeflow")
    }

    /// The log so far, for assertion messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Every output table, row by row, as text (`QUOTE`d columns in primary-key order), without
/// the columns that record when a row was written. Two runs over the same input must give
/// equal dumps.
pub fn dump_tables(url: &str) -> BTreeMap<String, Vec<String>> {
    const TABLES: [&str; 8] =
        ["domain_minute", "domain_window", "domain_status_minute", "domain_bandwidth_5m", "top_clients", "abuse_minute", "rejects", "alerts"];
    const WRITE_TIMES: [&str; 3] = ["updated_at", "recorded_at", "started_at"];
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
        let mut dump = BTreeMap::new();
        for table in TABLES {
            let columns: Vec<String> = conn
                .exec(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
                    (table,),
                )
                .await
                .expect("columns");
            let quoted: Vec<String> =
                columns.iter().filter(|c| !WRITE_TIMES.contains(&c.as_str())).map(|c| format!("QUOTE(`{c}`)")).collect();
            let rows: Vec<String> = conn
                .query(format!("SELECT CONCAT_WS('|', {}) AS r FROM {table} ORDER BY r", quoted.join(", ")))
                .await
                .expect("dump table");
            dump.insert(table.to_string(), rows);
        }
        conn.disconnect().await.unwrap();
        dump
    })
}

/// Panics with the first differences if two dumps differ.
pub fn assert_same_tables(actual: &BTreeMap<String, Vec<String>>, expected: &BTreeMap<String, Vec<String>>, what: &str) {
    let mut problems = Vec::new();
    for (table, want) in expected {
        let got = actual.get(table).cloned().unwrap_or_default();
        if &got != want {
            let missing: Vec<&String> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
            let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
            problems.push(format!("{table}: {} rows, expected {}; missing {missing:?}; unexpected {extra:?}", got.len(), want.len()));
        }
    }
    assert!(problems.is_empty(), "{what}: tables differ from the uninterrupted run:\n{}", problems.join("\n"));
}

/// Next offset of every partition of `topic` (its high watermark).
pub fn end_offsets(services: &Services, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &services.brokers).create().expect("consumer");
    (0..partitions).map(|p| (p, consumer.fetch_watermarks(topic, p, Duration::from_secs(30)).expect("watermarks").1)).collect()
}

/// Waits until the job has committed a checkpoint past `ends` on every partition (it has
/// read and committed everything produced), or panics after `limit`.
pub fn wait_until_committed(url: &str, ends: &BTreeMap<i32, i64>, limit: Duration, job: &Job) {
    let started = std::time::Instant::now();
    loop {
        let committed: BTreeMap<i32, i64> = runtime().block_on(async {
            let Ok(mut conn) = mysql_async::Conn::from_url(url).await else { return BTreeMap::new() };
            let rows: Vec<(i32, Option<i64>)> = conn.query("SELECT partition_id, resume_offset FROM checkpoints").await.unwrap_or_default();
            let _ = conn.disconnect().await;
            rows.into_iter().filter_map(|(p, o)| o.map(|o| (p, o))).collect()
        });
        if ends.iter().all(|(p, end)| committed.get(p).is_some_and(|c| c >= end)) {
            return;
        }
        assert!(started.elapsed() < limit, "not caught up after {limit:?}: committed {committed:?}, ends {ends:?}\n{}", job.log_text());
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `(domain, minute_start)` → `[requests, bytes, 1xx, 2xx, 3xx, 4xx, 5xx]`.
pub type MinuteRows = BTreeMap<(String, i64), [u64; 7]>;

pub fn read_domain_minutes(url: &str) -> MinuteRows {
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
        conn.query_drop("SET time_zone = '+00:00'").await.expect("utc session");
        let rows: Vec<(String, i64, u64, u64, u64, u64, u64, u64, u64)> = conn
            .query(
                "SELECT domain, CAST(UNIX_TIMESTAMP(minute_start) AS SIGNED), \
                 requests, bytes, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx FROM domain_minute",
            )
            .await
            .expect("read domain_minute");
        conn.disconnect().await.unwrap();
        rows.into_iter().map(|(d, m, r, b, s1, s2, s3, s4, s5)| ((d, m), [r, b, s1, s2, s3, s4, s5])).collect()
    })
}

/// `(reason, count)` of the rejects table.
pub fn read_reject_counts(url: &str) -> BTreeMap<String, u64> {
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
        let rows: Vec<(String, u64)> =
            conn.query("SELECT reason, COUNT(*) FROM rejects GROUP BY reason").await.expect("read rejects");
        conn.disconnect().await.unwrap();
        rows.into_iter().collect()
    })
}

/// The oracle: an independent parse of nginx `cdn`-format lines (regex, its own date math)
/// and a plain batch aggregation per (domain, minute).
pub struct Oracle {
    cdn: Regex,
}

impl Default for Oracle {
    fn default() -> Self {
        Oracle {
            cdn: Regex::new(
                r#"^(\S+) - (\S+) \[(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)" (\S+) (\S+) (.+) (\S+) (\d+)$"#,
            )
            .unwrap(),
        }
    }
}

pub struct OracleLine {
    pub domain: String,
    pub event_sec: i64,
    pub status: u16,
    pub bytes_sent: u64,
}

impl Oracle {
    /// The raw capture groups of a `cdn` line (see `parse_cdn` for their numbers).
    pub fn captures<'l>(&self, line: &'l str) -> Option<regex::Captures<'l>> {
        self.cdn.captures(line)
    }

    pub fn parse_cdn(&self, line: &str) -> Option<OracleLine> {
        let c = self.cdn.captures(line)?;
        let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            .iter()
            .position(|m| *m == &c[4])? as i64
            + 1;
        let n = |i: usize| c[i].parse::<i64>().unwrap();
        let local = days_from_civil(n(5), month, n(3)) * 86_400 + n(6) * 3600 + n(7) * 60 + n(8);
        let offset = (n(10) * 3600 + n(11) * 60) * if &c[9] == "-" { -1 } else { 1 };
        // Groups: 12 request, 13 status, 14 body bytes, 15 referer, 16 user agent, 17 XFF,
        // 18 X-Real-IP, 19 host, 20 request time, 21 upstream time(s), 22 cache, 23 bytes sent.
        let host = c[19].to_ascii_lowercase();
        let domain = match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|ch| ch.is_ascii_digit()) => name.to_string(),
            _ => host,
        };
        Some(OracleLine { domain, event_sec: local - offset, status: c[13].parse().ok()?, bytes_sent: c[23].parse().ok()? })
    }

    /// Per (domain, minute) totals of `lines`, each of which must parse.
    pub fn domain_minutes<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> MinuteRows {
        let mut rows = MinuteRows::new();
        for line in lines {
            let parsed = self.parse_cdn(line).unwrap_or_else(|| panic!("oracle cannot parse {line:?}"));
            let minute = parsed.event_sec - parsed.event_sec.rem_euclid(60);
            let row = rows.entry((parsed.domain, minute)).or_insert([0; 7]);
            row[0] += 1;
            row[1] += parsed.bytes_sent;
            row[2 + usize::from(parsed.status / 100 - 1)] += 1;
        }
        rows
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Compares two row sets and reports the first differences in a readable form.
pub fn assert_rows_equal(actual: &MinuteRows, expected: &MinuteRows) {
    let mut problems = Vec::new();
    for (key, want) in expected {
        match actual.get(key) {
            None => problems.push(format!("missing row {key:?}: expected {want:?}")),
            Some(got) if got != want => problems.push(format!("row {key:?}: got {got:?}, expected {want:?}")),
            Some(_) => {}
        }
    }
    for key in actual.keys().filter(|k| !expected.contains_key(*k)) {
        problems.push(format!("unexpected row {key:?}: {:?}", actual[key]));
    }
    assert!(
        problems.is_empty(),
        "{} of {} expected rows differ; first ones:\n{}",
        problems.len(),
        expected.len(),
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

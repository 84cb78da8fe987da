//! Windows and aggregates end to end: generated traffic with disorder, late and too-late
//! records through real Kafka (4 partitions) and MariaDB, with 1, 2 and 4 workers; every row
//! of every output table is compared with a plain batch computation done here, from the raw
//! lines, with the documented time policy replayed per partition.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use common::*;
use edgeflow::gen::{GenConfig, OutputFormat, TrafficGen};
use mysql_async::prelude::Queryable;

const PARTITIONS: usize = 4;
const OUT_OF_ORDERNESS: i64 = 10;
const LATENESS: i64 = 60;
const SLIDING: i64 = 300;
const SLIDE: i64 = 60;

/// One line as the oracle reads it.
struct Line {
    domain: String,
    event_sec: i64,
    status: u16,
    bytes: u64,
    client: IpAddr,
    request_us: u64,
    upstream_us: Option<u64>,
    cache: &'static str,
}

fn read_line(oracle: &Oracle, text: &str) -> Line {
    let base = oracle.parse_cdn(text).expect("oracle parses generated lines");
    let c = oracle.captures(text).unwrap();
    let seconds_to_us = |s: &str| (s.parse::<f64>().unwrap() * 1e6).round() as u64;
    let upstream = c[21].rsplit([',', ':']).next().unwrap().trim();
    let cache = match c[22].to_ascii_uppercase().as_str() {
        "HIT" | "STALE" | "UPDATING" | "REVALIDATED" => "hit",
        "MISS" | "EXPIRED" => "miss",
        _ => "other",
    };
    Line {
        domain: base.domain,
        event_sec: base.event_sec,
        status: base.status,
        bytes: base.bytes_sent,
        client: c[18].parse().expect("x-real-ip is the client"),
        request_us: seconds_to_us(&c[20]),
        upstream_us: (upstream != "-").then(|| seconds_to_us(upstream)),
        cache,
    }
}

/// The time policy of README/window.rs replayed on one partition's sequence: which lines are
/// accepted (their minute still live at their stamp).
fn accepted(partition: &[&Line]) -> Vec<bool> {
    let mut watermark = 0i64;
    let mut max_event: Option<i64> = None;
    partition
        .iter()
        .map(|line| {
            let stamp = line.event_sec.max(watermark);
            max_event = Some(max_event.map_or(line.event_sec, |m| m.max(line.event_sec)));
            watermark = watermark.max(max_event.unwrap() - OUT_OF_ORDERNESS);
            let minute_end = line.event_sec - line.event_sec.rem_euclid(60) + 60;
            stamp < minute_end + LATENESS
        })
        .collect()
}

#[derive(Default, Clone)]
struct Window {
    requests: u64,
    bytes: u64,
    status: [u64; 5],
    cache: BTreeMap<&'static str, u64>,
    clients: BTreeMap<IpAddr, (u64, u64)>,
    request_us: Vec<u64>,
    upstream_us: Vec<u64>,
    seconds: BTreeMap<i64, u64>,
    codes: BTreeMap<u16, u64>,
}

impl Window {
    fn add(&mut self, line: &Line) {
        self.requests += 1;
        self.bytes += line.bytes;
        self.status[usize::from(line.status / 100 - 1)] += 1;
        *self.cache.entry(line.cache).or_default() += 1;
        let client = self.clients.entry(line.client).or_default();
        client.0 += 1;
        client.1 += line.bytes;
        self.request_us.push(line.request_us);
        self.upstream_us.extend(line.upstream_us);
        *self.seconds.entry(line.event_sec).or_default() += line.bytes;
        *self.codes.entry(line.status).or_default() += 1;
    }
}

fn nearest_rank(values: &[u64], p: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted.get(rank - 1).map(|v| *v as f64)
}

fn top(clients: &BTreeMap<IpAddr, (u64, u64)>, k: usize, by_bytes: bool) -> Vec<(String, u64, u64)> {
    let mut ranked: Vec<(IpAddr, u64, u64)> = clients.iter().map(|(ip, (r, b))| (*ip, *r, *b)).collect();
    ranked.sort_by(|a, b| {
        let (ka, kb) = if by_bytes { (a.2, b.2) } else { (a.1, b.1) };
        kb.cmp(&ka).then(a.0.cmp(&b.0))
    });
    ranked.into_iter().take(k).map(|(ip, r, b)| (ip.to_string(), r, b)).collect()
}

struct Expected {
    minutes: BTreeMap<(String, i64), Window>,
    sliding: BTreeMap<(String, i64), Window>,
    samples: BTreeMap<(String, i64), (u64, u64)>,
    abusers: BTreeMap<i64, BTreeMap<IpAddr, (u64, u64)>>,
    too_late: u64,
}

fn expected(lines: &[Line]) -> Expected {
    let mut by_partition: Vec<Vec<&Line>> = vec![Vec::new(); PARTITIONS];
    for (i, line) in lines.iter().enumerate() {
        by_partition[i % PARTITIONS].push(line);
    }
    let mut e = Expected { minutes: BTreeMap::new(), sliding: BTreeMap::new(), samples: BTreeMap::new(), abusers: BTreeMap::new(), too_late: 0 };
    for partition in &by_partition {
        for (line, ok) in partition.iter().zip(accepted(partition)) {
            if !ok {
                e.too_late += 1;
                continue;
            }
            let minute = line.event_sec - line.event_sec.rem_euclid(60);
            e.minutes.entry((line.domain.clone(), minute)).or_default().add(line);
            let last = line.event_sec - line.event_sec.rem_euclid(SLIDE);
            for i in 0..SLIDING / SLIDE {
                e.sliding.entry((line.domain.clone(), last - i * SLIDE)).or_default().add(line);
            }
            let sample = line.event_sec - line.event_sec.rem_euclid(300);
            let s = e.samples.entry((line.domain.clone(), sample)).or_default();
            s.0 += line.bytes;
            s.1 += 1;
            let a = e.abusers.entry(minute).or_default().entry(line.client).or_default();
            a.0 += 1;
            a.1 += line.bytes;
        }
    }
    e
}

type WindowRow = (String, i64, Vec<u64>, Vec<Option<f64>>);

/// Rows of `domain_minute` (window_secs = 60) or `domain_window`.
fn read_windows(url: &str, table: &str) -> BTreeMap<(String, i64), (Vec<u64>, Vec<Option<f64>>)> {
    let start = if table == "domain_minute" { "minute_start" } else { "window_start" };
    let sql = format!(
        "SELECT domain, CAST(UNIX_TIMESTAMP({start}) AS SIGNED), requests, bytes, status_1xx, status_2xx, status_3xx, \
         status_4xx, status_5xx, cache_hit, cache_miss, cache_other, distinct_clients, avg_bps, peak_bps, \
         request_time_p50_ms, request_time_p95_ms, request_time_p99_ms, upstream_time_p95_ms FROM {table}"
    );
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
        conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
        let rows: Vec<mysql_async::Row> = conn.query(sql).await.unwrap();
        conn.disconnect().await.unwrap();
        rows.into_iter()
            .map(|row| {
                let mut row: Vec<mysql_async::Value> = row.unwrap();
                let domain: String = mysql_async::from_value(row.remove(0));
                let start: i64 = mysql_async::from_value(row.remove(0));
                let ints: Vec<u64> = row.drain(..11).map(|v| mysql_async::from_value::<Option<u64>>(v).unwrap_or(u64::MAX)).collect();
                let floats: Vec<Option<f64>> = row.into_iter().map(mysql_async::from_value::<Option<f64>>).collect();
                let r: WindowRow = (domain, start, ints, floats);
                ((r.0, r.1), (r.2, r.3))
            })
            .collect()
    })
}

fn query<T: mysql_async::prelude::FromRow + Send + 'static>(url: &str, sql: &str) -> Vec<T> {
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
        conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
        let rows = conn.query(sql).await.unwrap();
        conn.disconnect().await.unwrap();
        rows
    })
}

fn within_one_percent(got: Option<f64>, exact: Option<f64>) -> bool {
    match (got, exact) {
        (None, None) => true,
        (Some(g), Some(e)) => (g - e).abs() <= 0.01 * e + 1e-6,
        _ => false,
    }
}

fn check_windows(url: &str, table: &str, expected: &BTreeMap<(String, i64), Window>, length: f64, problems: &mut Vec<String>) {
    let actual = read_windows(url, table);
    let expected_keys: BTreeSet<_> = expected.keys().cloned().collect();
    let actual_keys: BTreeSet<_> = actual.keys().cloned().collect();
    if expected_keys != actual_keys {
        problems.push(format!(
            "{table}: {} keys missing, {} unexpected",
            expected_keys.difference(&actual_keys).count(),
            actual_keys.difference(&expected_keys).count()
        ));
    }
    for (key, w) in expected {
        let Some((ints, floats)) = actual.get(key) else { continue };
        let cache = |k: &str| w.cache.get(k).copied().unwrap_or(0);
        let want = vec![
            w.requests, w.bytes, w.status[0], w.status[1], w.status[2], w.status[3], w.status[4],
            cache("hit"), cache("miss"), cache("other"),
        ];
        if ints[..10] != want[..] {
            problems.push(format!("{table} {key:?}: counts {:?}, expected {want:?}", &ints[..10]));
        }
        let [avg, peak, p50, p95, p99, up95] = [floats[0], floats[1], floats[2], floats[3], floats[4], floats[5]];
        let exact_avg = w.bytes as f64 * 8.0 / length;
        let exact_peak = *w.seconds.values().max().unwrap() as f64 * 8.0;
        if (avg.unwrap() - exact_avg).abs() > 1e-6 * exact_avg.max(1.0) || (peak.unwrap() - exact_peak).abs() > 1e-6 {
            problems.push(format!("{table} {key:?}: avg/peak bps {avg:?}/{peak:?}, expected {exact_avg}/{exact_peak}"));
        }
        let ms = |v: Option<f64>| v.map(|us| us / 1000.0);
        for (name, got, exact) in [
            ("p50", p50, ms(nearest_rank(&w.request_us, 0.5))),
            ("p95", p95, ms(nearest_rank(&w.request_us, 0.95))),
            ("p99", p99, ms(nearest_rank(&w.request_us, 0.99))),
            ("upstream p95", up95, ms(nearest_rank(&w.upstream_us, 0.95))),
        ] {
            if !within_one_percent(got, exact) {
                problems.push(format!("{table} {key:?}: {name} {got:?} ms, exact {exact:?} ms"));
            }
        }
    }
}

fn check_everything(url: &str, e: &Expected, workers: &str) {
    let mut problems = Vec::new();
    check_windows(url, "domain_minute", &e.minutes, 60.0, &mut problems);
    check_windows(url, "domain_window", &e.sliding, SLIDING as f64, &mut problems);

    // Distinct clients, in both window tables.
    for (table, start, windows) in [("domain_minute", "minute_start", &e.minutes), ("domain_window", "window_start", &e.sliding)] {
        let rows: Vec<(String, i64, u64)> =
            query(url, &format!("SELECT domain, CAST(UNIX_TIMESTAMP({start}) AS SIGNED), distinct_clients FROM {table}"));
        for (domain, start, distinct) in rows {
            if let Some(w) = windows.get(&(domain.clone(), start)) {
                if distinct != w.clients.len() as u64 {
                    problems.push(format!("{table} ({domain}, {start}): distinct {distinct}, expected {}", w.clients.len()));
                }
            }
        }
    }

    // Bandwidth samples.
    let samples: BTreeMap<(String, i64), (u64, u64)> =
        query::<(String, i64, u64, u64)>(url, "SELECT domain, CAST(UNIX_TIMESTAMP(sample_start) AS SIGNED), bytes, requests FROM domain_bandwidth_5m")
            .into_iter()
            .map(|(d, s, b, r)| ((d, s), (b, r)))
            .collect();
    if samples != e.samples {
        problems.push(format!("domain_bandwidth_5m differs: {} rows, expected {}", samples.len(), e.samples.len()));
    }

    // Status codes per minute.
    let statuses: BTreeMap<(String, i64, u16), u64> = query::<(String, i64, u16, u64)>(
        url,
        "SELECT domain, CAST(UNIX_TIMESTAMP(minute_start) AS SIGNED), status, requests FROM domain_status_minute",
    )
    .into_iter()
    .map(|(d, m, s, n)| ((d, m, s), n))
    .collect();
    let want_statuses: BTreeMap<(String, i64, u16), u64> = e
        .minutes
        .iter()
        .flat_map(|((domain, minute), w)| w.codes.iter().map(move |(code, n)| ((domain.clone(), *minute, *code), *n)))
        .collect();
    if statuses != want_statuses {
        problems.push(format!("domain_status_minute differs: {} rows, expected {}", statuses.len(), want_statuses.len()));
    }

    // Top clients of every window, by requests and by bytes.
    let mut top_rows: BTreeMap<(String, u32, i64, String), Vec<(String, u64, u64)>> = BTreeMap::new();
    for (domain, secs, start, metric, _rank, ip, r, b) in query::<(String, u32, i64, String, u8, String, u64, u64)>(
        url,
        "SELECT domain, window_secs, CAST(UNIX_TIMESTAMP(window_start) AS SIGNED), metric, rank_no, client_ip, requests, bytes \
         FROM top_clients ORDER BY domain, window_secs, window_start, metric, rank_no",
    ) {
        top_rows.entry((domain, secs, start, metric)).or_default().push((ip, r, b));
    }
    for (secs, windows) in [(60u32, &e.minutes), (SLIDING as u32, &e.sliding)] {
        for ((domain, start), w) in windows {
            for (metric, by_bytes) in [("requests", false), ("bytes", true)] {
                let want = top(&w.clients, 10, by_bytes);
                let got = top_rows.get(&(domain.clone(), secs, *start, metric.to_string())).cloned().unwrap_or_default();
                if got != want {
                    problems.push(format!("top_clients ({domain}, {secs}, {start}, {metric}): {got:?}, expected {want:?}"));
                }
            }
        }
    }

    // The abuse view: top 20 clients per minute across all domains.
    let mut abuse: BTreeMap<i64, Vec<(String, u64, u64)>> = BTreeMap::new();
    for (minute, _rank, ip, r, b) in query::<(i64, u8, String, u64, u64)>(
        url,
        "SELECT CAST(UNIX_TIMESTAMP(minute_start) AS SIGNED), rank_no, client_ip, requests, bytes FROM abuse_minute ORDER BY minute_start, rank_no",
    ) {
        abuse.entry(minute).or_default().push((ip, r, b));
    }
    for (minute, clients) in &e.abusers {
        let want = top(clients, 20, false);
        if abuse.get(minute) != Some(&want) {
            problems.push(format!("abuse_minute {minute}: {:?}, expected {want:?}", abuse.get(minute)));
        }
    }

    let rejects = read_reject_counts(url);
    if rejects.get("too_late").copied().unwrap_or(0) != e.too_late || rejects.len() > usize::from(e.too_late > 0) {
        problems.push(format!("rejects {rejects:?}, expected {} too_late", e.too_late));
    }
    assert!(problems.is_empty(), "with -w {workers}: {} problems:\n{}", problems.len(), problems.iter().take(25).cloned().collect::<Vec<_>>().join("\n"));
}

#[test]
fn every_table_matches_the_oracle_with_1_2_and_4_workers() {
    let services = Services::from_env();
    let config = GenConfig {
        seed: 11,
        domains: 8,
        clients: 3_000,
        lines: 40_000,
        rate_per_sec: 15.0,
        format: OutputFormat::Cdn,
        disorder_ms: 8_000,
        // 2% of the lines arrive 100 s after their event time: depending on where in its
        // minute a line falls, it is still within the lateness or already too late.
        late_fraction: 0.02,
        late_ms: 100_000,
        ..GenConfig::default()
    };
    let payloads: Vec<String> = TrafficGen::new(config).expect("valid config").map(|l| l.line).collect();
    let oracle = Oracle::default();
    let lines: Vec<Line> = payloads.iter().map(|p| read_line(&oracle, p)).collect();
    let want = expected(&lines);
    assert!(want.too_late > 0, "the stream must contain too-late records");
    assert!(want.minutes.len() > 200, "the stream must span many windows and domains");

    let topic = fresh_topic(&services, PARTITIONS as i32);
    produce(&services, &topic, payloads.iter().enumerate().map(|(i, p)| ((i % PARTITIONS) as i32, p.clone().into_bytes())));

    for workers in ["1", "2", "4"] {
        let url = fresh_database(&services, &format!("windows_w{workers}"));
        let env = vec![
            ("EDGEFLOW__KAFKA__BROKERS", services.brokers.as_str()),
            ("EDGEFLOW__KAFKA__TOPIC", topic.as_str()),
            ("EDGEFLOW__MYSQL__URL", url.as_str()),
            ("EDGEFLOW__WINDOW__OUT_OF_ORDERNESS_SECS", "10"),
            ("EDGEFLOW__WINDOW__ALLOWED_LATENESS_SECS", "60"),
            ("EDGEFLOW__WINDOW__SLIDING_WINDOW_SECS", "300"),
            ("EDGEFLOW__WINDOW__SLIDE_SECS", "60"),
            // Long enough that no partition goes idle during the run.
            ("EDGEFLOW__WINDOW__IDLE_TIMEOUT_SECS", "3600"),
        ];
        assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");
        let output = edgeflow(&["run", "-c", "config/local.toml", "-w", workers, "--exit-at-end"], &env);
        assert_success(&output, &format!("edgeflow run -w {workers}"));
        check_everything(&url, &want, workers);
    }
}

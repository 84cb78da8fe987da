//! Issue 3: the same traffic written in every format preset (`combined`, `main`, `cdn`,
//! `json`), each as raw lines and as Filebeat 8 events, gives the same MySQL aggregates.
//!
//! One generator seed, eight topics, eight databases, eight runs of the job with the same
//! settings apart from `parse.format`. What "the same" can mean is set by what each format
//! logs:
//! - `cdn` and `json` log `$host`, timings and cache status: their four runs must agree on
//!   every table, row by row.
//! - `combined` and `main` log none of those, so every line lands in `clean.default_domain`
//!   and the cache and latency columns stay NULL: their four runs must agree on every table,
//!   row by row, too (the client is `$remote_addr` in `combined` and the rightmost untrusted
//!   `X-Forwarded-For` entry in `main`, the same address).
//! - Across the two groups, totals over domains must agree (minutes, sliding windows, status
//!   codes, bandwidth samples), and so must the cross-domain abuse view.
//! - `bytes_field = body_bytes_sent` in every run, as only `cdn` and `json` have `$bytes_sent`.
//!
//! Each group is also checked against the generator's ground truth, so agreeing on a wrong
//! answer fails as well.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use edgeflow::gen::{GenConfig, GeneratedLine, OutputFormat, TrafficGen, Truth};

const LINES: u64 = 24_000;
const PARTITIONS: i32 = 4;
/// Where `combined` and `main` put every line (they have no `$host`).
const DEFAULT_DOMAIN: &str = "all-sites.example.net";

#[derive(Clone, Copy, Debug)]
struct Variant {
    format: OutputFormat,
    filebeat: bool,
}

impl Variant {
    fn all() -> Vec<Variant> {
        OutputFormat::ALL.into_iter().flat_map(|format| [false, true].map(|filebeat| Variant { format, filebeat })).collect()
    }

    fn name(self) -> String {
        format!("{}{}", self.format, if self.filebeat { "+filebeat" } else { "" })
    }

    /// Whether the format logs `$host`, timings and cache status.
    fn has_host(self) -> bool {
        matches!(self.format, OutputFormat::Cdn | OutputFormat::Json)
    }
}

fn traffic(variant: Variant) -> Vec<GeneratedLine> {
    let config = GenConfig {
        seed: 33,
        domains: 10,
        clients: 3_000,
        lines: LINES,
        // About 7 minutes of event time: several minutes, sliding windows and 5-minute samples.
        rate_per_sec: 60.0,
        hosts: 8,
        format: variant.format,
        filebeat: variant.filebeat,
        // Bounded disorder within out_of_orderness, nothing late: no run may reject anything.
        disorder_ms: 3_000,
        late_fraction: 0.0,
        ..GenConfig::default()
    };
    TrafficGen::new(config).expect("valid generator config").collect()
}

/// Produces `lines` to a fresh topic, runs the job over it into a fresh database, and returns
/// the database URL. Every web server's lines go to one partition (as a shipper keyed by host
/// sends them), the same partition in every variant.
fn run_job(services: &Services, variant: Variant, lines: &[GeneratedLine]) -> String {
    let topic = fresh_topic(services, PARTITIONS);
    let messages =
        lines.iter().map(|l| ((l.host_index % PARTITIONS as usize) as i32, l.payload.clone().into_bytes())).collect::<Vec<_>>();
    produce(services, &topic, messages);
    let url = fresh_database(services, &format!("formats_{}", variant.format));
    let env = [
        ("EDGEFLOW__KAFKA__BROKERS", services.brokers.as_str()),
        ("EDGEFLOW__KAFKA__TOPIC", topic.as_str()),
        ("EDGEFLOW__MYSQL__URL", url.as_str()),
        ("EDGEFLOW__PARSE__FORMAT", variant.format.name()),
        ("EDGEFLOW__PARSE__BYTES_FIELD", "body_bytes_sent"),
        ("EDGEFLOW__CLEAN__DEFAULT_DOMAIN", DEFAULT_DOMAIN),
        ("EDGEFLOW__WINDOW__OUT_OF_ORDERNESS_SECS", "10"),
        ("EDGEFLOW__WINDOW__IDLE_TIMEOUT_SECS", "3600"),
    ];
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), &format!("migrate ({})", variant.name()));
    let output = edgeflow(&["run", "-c", "config/local.toml", "-w", "2", "--exit-at-end"], &env);
    assert_success(&output, &format!("edgeflow run ({})", variant.name()));
    url
}

/// The rows of `sql` (one text column each), sorted.
fn rows(url: &str, sql: &str) -> Vec<String> {
    use mysql_async::prelude::Queryable;
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
        conn.query_drop("SET time_zone = '+00:00'").await.expect("utc session");
        let mut rows: Vec<String> = conn.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.disconnect().await.unwrap();
        rows.sort();
        rows
    })
}

/// The views that must agree between formats with and without `$host`: totals over domains,
/// and the cross-domain abuse view.
fn domain_totals(url: &str) -> BTreeMap<&'static str, Vec<String>> {
    const STATUS: &str = "SUM(status_1xx), SUM(status_2xx), SUM(status_3xx), SUM(status_4xx), SUM(status_5xx)";
    BTreeMap::from([
        (
            "domain_minute by minute",
            rows(url, &format!("SELECT CONCAT_WS('|', minute_start, SUM(requests), SUM(bytes), {STATUS}) FROM domain_minute GROUP BY minute_start")),
        ),
        (
            "domain_window by window",
            rows(
                url,
                &format!(
                    "SELECT CONCAT_WS('|', window_secs, window_start, SUM(requests), SUM(bytes), {STATUS}) \
                     FROM domain_window GROUP BY window_secs, window_start"
                ),
            ),
        ),
        (
            "domain_status_minute by minute and status",
            rows(
                url,
                "SELECT CONCAT_WS('|', minute_start, status, SUM(requests)) FROM domain_status_minute GROUP BY minute_start, status",
            ),
        ),
        (
            "domain_bandwidth_5m by sample",
            rows(
                url,
                "SELECT CONCAT_WS('|', sample_start, SUM(bytes), SUM(requests)) FROM domain_bandwidth_5m GROUP BY sample_start",
            ),
        ),
        ("abuse_minute", rows(url, "SELECT CONCAT_WS('|', minute_start, rank_no, client_ip, requests, bytes) FROM abuse_minute")),
    ])
}

/// Expected `domain_minute` rows and distinct clients from the generator's truth, with every
/// line under `domain(truth)`.
fn expected_minutes(truths: &[(i64, Truth)], domain: impl Fn(&Truth) -> String) -> (MinuteRows, BTreeMap<(String, i64), u64>) {
    let mut minutes = MinuteRows::new();
    let mut clients: BTreeMap<(String, i64), BTreeSet<std::net::IpAddr>> = BTreeMap::new();
    for (event_ms, truth) in truths {
        let second = event_ms.div_euclid(1000);
        let key = (domain(truth), second - second.rem_euclid(60));
        let row = minutes.entry(key.clone()).or_insert([0; 7]);
        row[0] += 1;
        row[1] += truth.body_bytes;
        row[2 + usize::from(truth.status / 100 - 1)] += 1;
        clients.entry(key).or_default().insert(truth.client_ip);
    }
    (minutes, clients.into_iter().map(|(k, set)| (k, set.len() as u64)).collect())
}

fn read_distinct_clients(url: &str) -> BTreeMap<(String, i64), u64> {
    rows(url, "SELECT CONCAT_WS('|', domain, UNIX_TIMESTAMP(minute_start), distinct_clients) FROM domain_minute")
        .into_iter()
        .map(|r| {
            let mut parts = r.split('|');
            let domain = parts.next().unwrap().to_owned();
            let minute = parts.next().unwrap().parse().unwrap();
            ((domain, minute), parts.next().unwrap().parse().unwrap())
        })
        .collect()
}

#[test]
fn every_preset_raw_and_as_filebeat_gives_the_same_aggregates() {
    let services = Services::from_env();
    let variants = Variant::all();
    let traffics: Vec<Vec<GeneratedLine>> = variants.iter().map(|v| traffic(*v)).collect();

    // The premise: one seed, the same requests at the same times in every variant.
    let truths: Vec<(i64, Truth)> = traffics[0].iter().map(|l| (l.event_ms, l.truth.clone())).collect();
    assert_eq!(truths.len() as u64, LINES);
    for (variant, lines) in variants.iter().zip(&traffics) {
        assert!(
            lines.iter().map(|l| (l.event_ms, &l.truth, l.host_index)).eq(traffics[0].iter().map(|l| (l.event_ms, &l.truth, l.host_index))),
            "{} differs from {} in the generated requests",
            variant.name(),
            variants[0].name()
        );
        assert_eq!(lines[0].payload.starts_with("{\"@timestamp\""), variant.filebeat, "{}: {}", variant.name(), lines[0].payload);
    }
    let domains: BTreeSet<&str> = truths.iter().map(|(_, t)| &*t.domain).collect();
    assert!(domains.len() >= 5, "need several domains, got {domains:?}");

    // Run the eight jobs two at a time (the machine may have few cores).
    let mut urls: Vec<String> = Vec::new();
    for pair in variants.iter().zip(&traffics).collect::<Vec<_>>().chunks(2) {
        let services = &services;
        urls.extend(std::thread::scope(|scope| {
            let handles: Vec<_> = pair.iter().map(|(v, lines)| scope.spawn(move || run_job(services, **v, lines))).collect();
            handles.into_iter().map(|h| h.join().expect("job thread")).collect::<Vec<_>>()
        }));
    }
    let runs: Vec<(Variant, String)> = variants.into_iter().zip(urls).collect();

    // Every run read everything and rejected nothing (all runs' problems at once).
    let mut problems = Vec::new();
    for (variant, url) in &runs {
        let rejects = read_reject_counts(url);
        let minutes = read_domain_minutes(url);
        let requests = minutes.values().map(|r| r[0]).sum::<u64>();
        if !rejects.is_empty() || minutes.is_empty() || requests != LINES {
            let sample = rows(url, "SELECT CONCAT_WS('|', reason, detail) FROM rejects LIMIT 1");
            problems.push(format!(
                "{}: {} domain_minute rows, {requests} of {LINES} requests, rejects {rejects:?}, e.g. {sample:?}",
                variant.name(),
                minutes.len()
            ));
        }
    }
    assert!(problems.is_empty(), "runs that lost lines:\n{}", problems.join("\n"));

    let (with_host, without_host): (Vec<&(Variant, String)>, Vec<&(Variant, String)>) = runs.iter().partition(|(v, _)| v.has_host());
    let reference_with = &with_host[0];
    let reference_without = &without_host[0];

    // Ground truth: cdn per real domain, combined all under the default domain.
    let (expected, expected_clients) = expected_minutes(&truths, |t| t.domain.to_string());
    assert_rows_equal(&read_domain_minutes(&reference_with.1), &expected);
    assert_eq!(read_distinct_clients(&reference_with.1), expected_clients, "{}: distinct clients", reference_with.0.name());
    let (expected, expected_clients) = expected_minutes(&truths, |_| DEFAULT_DOMAIN.to_owned());
    assert_rows_equal(&read_domain_minutes(&reference_without.1), &expected);
    assert_eq!(read_distinct_clients(&reference_without.1), expected_clients, "{}: distinct clients", reference_without.0.name());

    // Within each group: every table, row by row (cache counts and latency percentiles too).
    for group in [&with_host, &without_host] {
        let reference = dump_tables(&group[0].1);
        assert!(reference["domain_window"].len() > 10 && reference["top_clients"].len() > 10, "{}: too little output", group[0].0.name());
        for (variant, url) in &group[1..] {
            assert_same_tables(&dump_tables(url), &reference, &format!("{} against {}", variant.name(), group[0].0.name()));
        }
    }

    // Which columns exist: cache and latency in every row with $host (and the cache counts
    // add up), none without.
    let with_fields = rows(
        &reference_with.1,
        "SELECT CONCAT_WS('|', COUNT(*), SUM(cache_hit IS NOT NULL AND cache_hit + cache_miss + cache_other = requests), \
         SUM(request_time_p50_ms IS NOT NULL AND request_time_p99_ms >= request_time_p50_ms), SUM(cache_hit > 0)) FROM domain_minute",
    );
    let counts: Vec<u64> = with_fields[0].split('|').map(|c| c.parse().unwrap()).collect();
    assert!(counts[0] > 0 && counts[1] == counts[0] && counts[2] == counts[0] && counts[3] > 0, "{}: {counts:?}", reference_with.0.name());
    let without_fields = rows(
        &reference_without.1,
        "SELECT CONCAT_WS('|', COUNT(*), SUM(cache_hit IS NULL AND cache_miss IS NULL AND cache_other IS NULL \
         AND request_time_p50_ms IS NULL AND request_time_p95_ms IS NULL AND request_time_p99_ms IS NULL \
         AND upstream_time_p95_ms IS NULL)) FROM domain_minute",
    );
    let counts: Vec<u64> = without_fields[0].split('|').map(|c| c.parse().unwrap()).collect();
    assert!(counts[0] > 0 && counts[1] == counts[0], "{}: cache or latency without the fields: {counts:?}", reference_without.0.name());

    // Across the groups: totals over domains, and the abuse view.
    let with = domain_totals(&reference_with.1);
    let without = domain_totals(&reference_without.1);
    for (view, want) in &with {
        assert!(!want.is_empty(), "{view}: no rows");
        let got = &without[view];
        let missing: Vec<&String> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
        let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
        assert!(
            got == want,
            "{view}: {} differs from {}: {} rows against {}; missing {missing:?}; unexpected {extra:?}",
            reference_without.0.name(),
            reference_with.0.name(),
            got.len(),
            want.len()
        );
    }
}

//! Foundation end-to-end test: generated CDN traffic through real Kafka (4 partitions, every
//! domain on every partition) and through the file source, job with 2 workers, and every
//! `domain_minute` row compared with the oracle's batch computation over the same lines.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use common::*;
use edgeflow::gen::{GenConfig, OutputFormat, TrafficGen};

const LINES: u64 = 60_000;
const PARTITIONS: i32 = 4;

fn generated_lines() -> Vec<String> {
    let config = GenConfig {
        seed: 7,
        domains: 12,
        lines: LINES,
        rate_per_sec: 400.0,
        format: OutputFormat::Cdn,
        filebeat: false,
        // Bounded disorder only: this test checks aggregation, not late data.
        disorder_ms: 3_000,
        late_fraction: 0.0,
        ..GenConfig::default()
    };
    TrafficGen::new(config).expect("valid generator config").map(|line| line.line).collect()
}

fn job_env<'a>(services: &'a Services, topic: &'a str, url: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("EDGEFLOW__KAFKA__BROKERS", services.brokers.as_str()),
        ("EDGEFLOW__KAFKA__TOPIC", topic),
        ("EDGEFLOW__MYSQL__URL", url),
        ("EDGEFLOW__PARSE__FORMAT", "cdn"),
        // Generated disorder is ≤ 3 s: no record may be too late.
        ("EDGEFLOW__WINDOW__OUT_OF_ORDERNESS_SECS", "5"),
    ]
}

#[test]
fn kafka_to_mysql_matches_the_oracle() {
    let services = Services::from_env();
    let lines = generated_lines();
    let topic = fresh_topic(&services, PARTITIONS);
    let url = fresh_database(&services, "kafka");

    // Round-robin over partitions, so every domain's lines are scattered as Filebeat's
    // default partitioner scatters them.
    let oracle = Oracle::default();
    let mut seen: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    let messages: Vec<(i32, Vec<u8>)> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let partition = (i % PARTITIONS as usize) as i32;
            let domain = oracle.parse_cdn(line).expect("oracle parses generated lines").domain;
            seen.entry(domain).or_default().insert(partition);
            (partition, line.clone().into_bytes())
        })
        .collect();
    assert!(seen.len() >= 5, "need several domains, got {}", seen.len());
    for (domain, partitions) in &seen {
        assert_eq!(partitions.len(), PARTITIONS as usize, "{domain} is not on every partition");
    }
    produce(&services, &topic, messages);

    let env = job_env(&services, &topic, &url);
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");
    let output = edgeflow(&["run", "-c", "config/local.toml", "--source", "kafka", "-w", "2", "--exit-at-end"], &env);
    assert_success(&output, "edgeflow run (kafka)");

    let expected = oracle.domain_minutes(lines.iter().map(String::as_str));
    assert_eq!(expected.values().map(|r| r[0]).sum::<u64>(), LINES);
    assert_rows_equal(&read_domain_minutes(&url), &expected);
    assert!(read_reject_counts(&url).is_empty(), "clean input produced rejects: {:?}", read_reject_counts(&url));
}

#[test]
fn file_source_matches_the_oracle_and_records_rejects() {
    let services = Services::from_env();
    let lines = generated_lines();
    let url = fresh_database(&services, "file");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let mut file = std::fs::File::create(&path).unwrap();
    // Two unusable lines among the good ones: both must be rejected, nothing else lost.
    for (i, line) in lines.iter().enumerate() {
        writeln!(file, "{line}").unwrap();
        if i == 100 {
            writeln!(file, "this is not an access log line").unwrap();
        }
        if i == 200 {
            file.write_all(b"\xff\xfe binary \x00 garbage\n").unwrap();
        }
    }
    drop(file);

    let source = format!("file:{}", path.display());
    let env = job_env(&services, "unused", &url);
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");
    let output = edgeflow(&["run", "-c", "config/local.toml", "--source", &source, "-w", "2"], &env);
    assert_success(&output, "edgeflow run (file)");

    let oracle = Oracle::default();
    let expected = oracle.domain_minutes(lines.iter().map(String::as_str));
    assert_rows_equal(&read_domain_minutes(&url), &expected);
    let rejects = read_reject_counts(&url);
    assert_eq!(rejects.values().sum::<u64>(), 2, "rejects: {rejects:?}");
}

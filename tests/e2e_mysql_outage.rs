//! MariaDB unavailable for 20 s in the middle of a live stream (issue 5): the sink retries
//! with back-off, the sources hold back, nothing is lost or doubled. Its own test binary:
//! stopping the shared MariaDB must not disturb other tests.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use edgeflow::gen::{GenConfig, OutputFormat, TrafficGen};

const PARTITIONS: i32 = 4;

fn services_script(args: &[&str]) {
    let status = Command::new("scripts/services.sh").args(args).current_dir(env!("CARGO_MANIFEST_DIR")).status().expect("services.sh");
    assert!(status.success(), "scripts/services.sh {args:?} failed");
}

#[test]
fn a_20_second_mariadb_outage_changes_nothing() {
    let services = Services::from_env();
    let logs = tempfile::tempdir().unwrap();
    let config = GenConfig { seed: 31, domains: 10, clients: 4_000, lines: 40_000, rate_per_sec: 40.0, format: OutputFormat::Cdn, ..GenConfig::default() };
    let messages: Vec<(i32, Vec<u8>)> =
        TrafficGen::new(config).unwrap().enumerate().map(|(i, l)| ((i % PARTITIONS as usize) as i32, l.line.into_bytes())).collect();
    let topic = fresh_topic(&services, PARTITIONS);
    let url = fresh_database(&services, "outage");
    let env = vec![
        ("EDGEFLOW__KAFKA__BROKERS", services.brokers.as_str()),
        ("EDGEFLOW__KAFKA__TOPIC", topic.as_str()),
        ("EDGEFLOW__MYSQL__URL", url.as_str()),
        ("EDGEFLOW__WINDOW__IDLE_TIMEOUT_SECS", "3600"),
        ("EDGEFLOW__SINK__RETRY_MAX_MS", "2000"),
        // Small, so the outage visibly holds the sources back.
        ("EDGEFLOW__SINK__MAX_UNCOMMITTED_SECS", "120"),
    ];
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");

    let (first, rest) = messages.split_at(16_000);
    produce(&services, &topic, first.to_vec());
    let job = Job::spawn(&["run", "-c", "config/local.toml", "-w", "2"], &env, &logs.path().join("outage.log"));
    wait_until_committed(&url, &end_offsets(&services, &topic, PARTITIONS), Duration::from_secs(120), &job);

    services_script(&["stop", "mariadb"]);
    // The rest arrives while MariaDB is down.
    produce(&services, &topic, rest.to_vec());
    std::thread::sleep(Duration::from_secs(20));
    services_script(&["start", "mariadb"]);

    wait_until_committed(&url, &end_offsets(&services, &topic, PARTITIONS), Duration::from_secs(180), &job);
    let log = job.log_text();
    assert!(log.contains("mysql commit failed; retrying"), "the outage must have been noticed:\n{log}");
    let status = job.terminate();
    assert!(status.success(), "SIGTERM after the outage: {status}\n{log}");

    let reference = fresh_database(&services, "outage_ref");
    let ref_env: Vec<(&str, &str)> = env.iter().map(|&(k, v)| if k == "EDGEFLOW__MYSQL__URL" { (k, reference.as_str()) } else { (k, v) }).collect();
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &ref_env), "migrate reference");
    assert_success(&edgeflow(&["run", "-c", "config/local.toml", "-w", "2", "--exit-at-end"], &ref_env), "uninterrupted run");
    assert_same_tables(&dump_tables(&url), &dump_tables(&reference), "after a 20 s MariaDB outage");
}

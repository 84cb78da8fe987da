//! Idle partitions do not stall results: with one of two partitions empty, the job (running
//! live, not `--exit-at-end`) still closes epochs and writes every line once the empty
//! partition has been idle for `idle_timeout_secs` and follows the wall clock.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use edgeflow::gen::{GenConfig, OutputFormat, TrafficGen};

#[test]
fn an_empty_partition_does_not_hold_results_back() {
    let services = Services::from_env();
    let topic = fresh_topic(&services, 2);
    let url = fresh_database(&services, "idle");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let config = GenConfig {
        seed: 3,
        domains: 4,
        lines: 2_000,
        // Live traffic: the last two minutes, so the wall clock is just ahead of it.
        start_ms: now_ms - 120_000,
        rate_per_sec: 20.0,
        format: OutputFormat::Cdn,
        late_fraction: 0.0,
        ..GenConfig::default()
    };
    let lines: Vec<String> = TrafficGen::new(config).unwrap().map(|l| l.line).collect();
    // Everything on partition 0; partition 1 stays empty.
    produce(&services, &topic, lines.iter().map(|l| (0, l.clone().into_bytes())));

    let env = [
        ("EDGEFLOW__KAFKA__BROKERS", services.brokers.as_str()),
        ("EDGEFLOW__KAFKA__TOPIC", topic.as_str()),
        ("EDGEFLOW__MYSQL__URL", url.as_str()),
        ("EDGEFLOW__WINDOW__IDLE_TIMEOUT_SECS", "2"),
    ];
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeflow"));
    command.args(["run", "-c", "config/local.toml", "-w", "2"]).current_dir(env!("CARGO_MANIFEST_DIR"));
    command.stdout(Stdio::null()).stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut job = command.spawn().expect("start edgeflow");

    // Not a performance bound: a generous limit on waiting for something that, without the
    // idle rule, would never happen.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut counted = 0;
    while Instant::now() < deadline {
        counted = read_domain_minutes(&url).values().map(|r| r[0]).sum::<u64>();
        if counted == lines.len() as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = job.kill();
    let _ = job.wait();
    assert_eq!(counted, lines.len() as u64, "lines written while partition 1 was empty");
    let oracle = Oracle::default();
    assert_rows_equal(&read_domain_minutes(&url), &oracle.domain_minutes(lines.iter().map(String::as_str)));
}

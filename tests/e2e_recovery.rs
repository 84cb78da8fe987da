//! Exactly-once across crashes, restarts and rescaling, and Filebeat re-sends (issue 5), with
//! real Kafka and MariaDB. Each test compares every output table, row by row, with an
//! uninterrupted run of the job over the same topic into another database.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use edgeflow::gen::{GenConfig, OutputFormat, TrafficGen};
use rand::{Rng, SeedableRng};

const PARTITIONS: i32 = 4;

fn traffic(seed: u64, lines: u64, filebeat: bool) -> Vec<(i32, Vec<u8>)> {
    let config = GenConfig {
        seed,
        domains: 12,
        clients: 5_000,
        lines,
        rate_per_sec: 40.0,
        format: OutputFormat::Cdn,
        filebeat,
        disorder_ms: 8_000,
        late_fraction: 0.01,
        late_ms: 100_000,
        ..GenConfig::default()
    };
    // Raw lines round robin; Filebeat events keyed by their web server, as the README's
    // Filebeat output does, so a re-send lands in the partition of the original.
    TrafficGen::new(GenConfig { hosts: PARTITIONS as usize, ..config })
        .expect("valid config")
        .enumerate()
        .map(|(i, l)| {
            let partition = if filebeat { l.host_index } else { i } % PARTITIONS as usize;
            (partition as i32, l.payload.into_bytes())
        })
        .collect()
}

/// Overrides shared by every run: the topic, the database, a small sliding window and no
/// wall-clock idleness (producer pauses must not count as idle partitions).
fn settings<'a>(services: &'a Services, topic: &'a str, url: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("EDGEFLOW__KAFKA__BROKERS", services.brokers.as_str()),
        ("EDGEFLOW__KAFKA__TOPIC", topic),
        ("EDGEFLOW__MYSQL__URL", url),
        ("EDGEFLOW__WINDOW__OUT_OF_ORDERNESS_SECS", "10"),
        ("EDGEFLOW__WINDOW__ALLOWED_LATENESS_SECS", "60"),
        ("EDGEFLOW__WINDOW__IDLE_TIMEOUT_SECS", "3600"),
        ("EDGEFLOW__SINK__MIN_COMMIT_INTERVAL_MS", "50"),
    ]
}

fn migrate(env: &[(&str, &str)]) {
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], env), "migrate");
}

/// The reference: one run over the whole topic, start to end.
fn uninterrupted(services: &Services, topic: &str, name: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let url = fresh_database(services, name);
    let env = settings(services, topic, &url);
    migrate(&env);
    assert_success(&edgeflow(&["run", "-c", "config/local.toml", "-w", "2", "--exit-at-end"], &env), "uninterrupted run");
    dump_tables(&url)
}

fn log_path(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.log"))
}

#[test]
fn kill_9_while_producing_then_restart_matches_an_uninterrupted_run() {
    let services = Services::from_env();
    let logs = tempfile::tempdir().unwrap();
    let topic = fresh_topic(&services, PARTITIONS);
    let messages = traffic(21, 48_000, false);
    let url = fresh_database(&services, "recovery_kill");
    let env = settings(&services, &topic, &url);
    migrate(&env);

    // Produce in 24 chunks with pauses, while the job is killed and restarted.
    let producer = {
        let services = Services::from_env();
        let topic = topic.clone();
        let chunks: Vec<Vec<(i32, Vec<u8>)>> = messages.chunks(2_000).map(|c| c.to_vec()).collect();
        std::thread::spawn(move || {
            for chunk in chunks {
                produce(&services, &topic, chunk);
                std::thread::sleep(Duration::from_millis(400));
            }
        })
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut kills = 0;
    while kills < 5 || !producer.is_finished() {
        let mut job = Job::spawn(&["run", "-c", "config/local.toml", "-w", "2"], &env, &log_path(logs.path(), "kill"));
        std::thread::sleep(Duration::from_millis(rng.random_range(1_500..4_000)));
        if let Ok(Some(status)) = job.child.try_wait() {
            panic!("the job exited by itself with {status}:\n{}", job.log_text());
        }
        job.kill_9();
        kills += 1;
    }
    producer.join().unwrap();
    let finish = edgeflow(&["run", "-c", "config/local.toml", "-w", "2", "--exit-at-end"], &env);
    assert_success(&finish, "the run after the last kill");

    let expected = uninterrupted(&services, &topic, "recovery_kill_ref");
    assert!(expected["domain_minute"].len() > 200, "the stream must span many windows");
    assert!(!expected["rejects"].is_empty(), "the stream must hold too-late records");
    assert_same_tables(&dump_tables(&url), &expected, &format!("after {kills} kill -9"));
}

#[test]
fn restarts_with_other_worker_and_process_counts_match_an_uninterrupted_run() {
    let services = Services::from_env();
    let logs = tempfile::tempdir().unwrap();
    let topic = fresh_topic(&services, PARTITIONS);
    let messages = traffic(22, 36_000, false);
    let (first, rest) = messages.split_at(20_000);
    produce(&services, &topic, first.to_vec());
    let url = fresh_database(&services, "recovery_rescale");
    let env = settings(&services, &topic, &url);
    migrate(&env);

    // 2 workers, killed mid-stream.
    let job = Job::spawn(&["run", "-c", "config/local.toml", "-w", "2"], &env, &log_path(logs.path(), "w2"));
    std::thread::sleep(Duration::from_millis(2_500));
    job.kill_9();
    // 3 workers (partitions 0 and 3 on one worker now), stopped by SIGTERM after the rest
    // of the input arrived: it commits what it read and exits 0.
    let job = Job::spawn(&["run", "-c", "config/local.toml", "-w", "3"], &env, &log_path(logs.path(), "w3"));
    produce(&services, &topic, rest.to_vec());
    std::thread::sleep(Duration::from_millis(2_000));
    let log = job.log_text();
    let status = job.terminate();
    assert!(status.success(), "SIGTERM must finish the epochs and exit 0, got {status}:\n{log}");
    // 2 processes of 1 worker each, to the end.
    let hosts = logs.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1:2311\n127.0.0.1:2312\n").unwrap();
    let hosts = hosts.to_str().unwrap();
    let mut second = Job::spawn(
        &["run", "-c", "config/local.toml", "-n", "2", "-p", "1", "-w", "1", "-h", hosts, "--exit-at-end"],
        &env,
        &log_path(logs.path(), "p1"),
    );
    let first_process = edgeflow(&["run", "-c", "config/local.toml", "-n", "2", "-p", "0", "-w", "1", "-h", hosts, "--exit-at-end"], &env);
    assert_success(&first_process, "process 0 of 2");
    assert!(second.wait().success(), "process 1 of 2 failed:\n{}", second.log_text());

    let expected = uninterrupted(&services, &topic, "recovery_rescale_ref");
    assert_same_tables(&dump_tables(&url), &expected, "after -w 2 (kill -9), -w 3 (SIGTERM), -n 2");
}

#[test]
fn filebeat_resends_of_processed_events_change_nothing() {
    let services = Services::from_env();
    let topic = fresh_topic(&services, PARTITIONS);
    let messages = traffic(23, 24_000, true);
    produce(&services, &topic, messages.clone());
    let url = fresh_database(&services, "recovery_resend");
    let env = settings(&services, &topic, &url);
    migrate(&env);
    assert_success(&edgeflow(&["run", "-c", "config/local.toml", "-w", "2", "--exit-at-end"], &env), "first run");
    let before = dump_tables(&url);

    // Filebeat re-sends the last 3,000 events it had already delivered (well inside the
    // 600 s horizon), to the same partitions; the job resumes from its checkpoints.
    produce(&services, &topic, messages[messages.len() - 3_000..].to_vec());
    assert_success(&edgeflow(&["run", "-c", "config/local.toml", "-w", "2", "--exit-at-end"], &env), "run after the re-send");
    assert_same_tables(&dump_tables(&url), &before, "after a Filebeat re-send");

    // And a fresh run over everything, re-sends included, agrees too.
    let expected = uninterrupted(&services, &topic, "recovery_resend_ref");
    assert_same_tables(&before, &expected, "a single run over events and re-sends");
}

#[test]
fn a_newer_instance_fences_out_the_older_one() {
    let services = Services::from_env();
    let logs = tempfile::tempdir().unwrap();
    let topic = fresh_topic(&services, PARTITIONS);
    let messages = traffic(24, 8_000, false);
    let (first, rest) = messages.split_at(4_000);
    produce(&services, &topic, first.to_vec());
    let url = fresh_database(&services, "recovery_fence");
    let env = settings(&services, &topic, &url);
    migrate(&env);
    let mut old = Job::spawn(&["run", "-c", "config/local.toml", "-w", "1"], &env, &log_path(logs.path(), "old"));
    wait_until_committed(&url, &end_offsets(&services, &topic, PARTITIONS), Duration::from_secs(60), &old);
    // A second instance takes over while the first still runs; new data makes both want to
    // commit. Only the newer may: the older exits with status 75 without committing.
    let new = Job::spawn(&["run", "-c", "config/local.toml", "-w", "1"], &env, &log_path(logs.path(), "new"));
    std::thread::sleep(Duration::from_secs(2));
    produce(&services, &topic, rest.to_vec());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = old.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the older instance kept running:\n{}", old.log_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(75), "{}", old.log_text());
    assert!(old.log_text().contains("fenced"), "{}", old.log_text());
    wait_until_committed(&url, &end_offsets(&services, &topic, PARTITIONS), Duration::from_secs(60), &new);
    assert!(new.terminate().success());
    let expected = uninterrupted(&services, &topic, "recovery_fence_ref");
    assert_same_tables(&dump_tables(&url), &expected, "after a take-over");
}

#[test]
fn a_replay_point_lost_to_retention_stops_the_start_unless_the_loss_is_accepted() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::{Offset, TopicPartitionList};

    let services = Services::from_env();
    let topic = fresh_topic(&services, PARTITIONS);
    produce(&services, &topic, traffic(25, 8_000, false));
    let url = fresh_database(&services, "recovery_retention");
    let env = settings(&services, &topic, &url);
    migrate(&env);
    assert_success(&edgeflow(&["run", "-c", "config/local.toml", "-w", "2", "--exit-at-end"], &env), "first run");

    // Retention deletes partition 0 up to its end: the replay point is gone.
    let end = end_offsets(&services, &topic, PARTITIONS)[&0];
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &services.brokers).create().unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&topic, 0, Offset::Offset(end)).unwrap();
    runtime().block_on(admin.delete_records(&offsets, &AdminOptions::new())).expect("delete records");

    let refused = edgeflow(&["run", "-c", "config/local.toml", "-w", "2", "--exit-at-end"], &env);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a start that would skip deleted messages must fail:\n{stderr}");
    assert!(stderr.contains("retention has deleted") && stderr.contains("--accept-data-loss"), "{stderr}");
    assert_success(
        &edgeflow(&["run", "-c", "config/local.toml", "-w", "2", "--exit-at-end", "--accept-data-loss"], &env),
        "run accepting the loss",
    );
}

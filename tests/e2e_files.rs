//! Issue 13: a directory of rotated gzip logs from two web servers backfills in one run.
//!
//! Eight files (four rotations per server, the servers' logs overlapping in time), read with
//! `--source file:DIR/` by two workers: each file is its own partition with its own
//! watermark, so the disorder between files is not lateness, and every `domain_minute` row
//! equals the oracle's batch computation over all lines. A second run over the same files
//! writes the same rows (absolute values), so nothing counts twice; a run killed with
//! `kill -9` in the middle resumes from its checkpoints (file, line) and ends with every table
//! equal to an uninterrupted run.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use edgeflow::gen::{GenConfig, GeneratedLine, OutputFormat, TrafficGen};

const LINES: u64 = 40_000;
const SERVERS: usize = 2;
const ROTATIONS: usize = 4;

fn traffic(lines: u64) -> Vec<GeneratedLine> {
    let config = GenConfig {
        seed: 41,
        domains: 10,
        clients: 4_000,
        lines,
        // About 11 minutes of event time, so each rotated file holds a few minutes.
        rate_per_sec: 60.0,
        hosts: SERVERS,
        format: OutputFormat::Cdn,
        // Bounded disorder within a file, nothing late: no line may be rejected.
        disorder_ms: 3_000,
        late_fraction: 0.0,
        ..GenConfig::default()
    };
    TrafficGen::new(config).expect("valid generator config").collect()
}

/// Writes each server's lines as `web-N.access.log.R.gz`, rotation 1 the newest (as
/// logrotate names them), and returns the directory.
fn rotated_files(lines: &[GeneratedLine]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for server in 0..SERVERS {
        let own: Vec<&GeneratedLine> = lines.iter().filter(|l| l.host_index == server).collect();
        for (chunk, part) in own.chunks(own.len().div_ceil(ROTATIONS)).enumerate() {
            let rotation = ROTATIONS - chunk;
            let file = std::fs::File::create(dir.path().join(format!("web-{}.access.log.{rotation}.gz", server + 1))).unwrap();
            let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            for line in part {
                writeln!(gz, "{}", line.line).unwrap();
            }
            gz.finish().unwrap();
        }
    }
    dir
}

#[test]
fn a_directory_of_rotated_gzip_files_from_two_servers_backfills_in_one_run() {
    let services = Services::from_env();
    let lines = traffic(LINES);
    let dir = rotated_files(&lines);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), SERVERS * ROTATIONS);
    let url = fresh_database(&services, "files");
    let source = format!("file:{}/", dir.path().display());
    let env = [
        ("EDGEFLOW__MYSQL__URL", url.as_str()),
        ("EDGEFLOW__PARSE__FORMAT", "cdn"),
        ("EDGEFLOW__WINDOW__OUT_OF_ORDERNESS_SECS", "5"),
    ];
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");
    let output = edgeflow(&["run", "-c", "config/local.toml", "--source", &source, "-w", "2"], &env);
    assert_success(&output, "edgeflow run (8 files)");

    // Every file is a partition, and both workers read four of them.
    let log = String::from_utf8_lossy(&output.stderr);
    for worker in 0..2 {
        let files = log.lines().filter(|l| l.contains("file source partition") && l.contains(&format!("worker={worker} "))).count();
        assert_eq!(files, 4, "worker {worker}:\n{log}");
    }

    let oracle = Oracle::default();
    let expected = oracle.domain_minutes(lines.iter().map(|l| l.line.as_str()));
    assert_eq!(expected.values().map(|r| r[0]).sum::<u64>(), LINES);
    assert!(read_reject_counts(&url).is_empty(), "rejects: {:?}", read_reject_counts(&url));
    assert_rows_equal(&read_domain_minutes(&url), &expected);

    // A rerun over the same files rewrites the same values: nothing counts twice.
    let before = dump_tables(&url);
    assert_success(&edgeflow(&["run", "-c", "config/local.toml", "--source", &source, "-w", "2"], &env), "second run");
    assert_same_tables(&dump_tables(&url), &before, "a second run over the same files");
}

/// `job_state.committed_upto` of the only source in `url`, once there is one.
fn committed_upto(url: &str) -> Option<i64> {
    use mysql_async::prelude::Queryable;
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.ok()?;
        let upto: Option<Option<i64>> = conn.query_first("SELECT committed_upto FROM job_state").await.ok()?;
        let _ = conn.disconnect().await;
        upto.flatten()
    })
}

#[test]
fn a_backfill_killed_in_the_middle_resumes_from_its_checkpoints_without_a_row_changing() {
    let services = Services::from_env();
    // Enough lines that the run is still going when its first commits land.
    let lines = traffic(400_000);
    let dir = rotated_files(&lines);
    let logs = tempfile::tempdir().unwrap();
    let source = format!("file:{}/", dir.path().display());
    let env_for = |url: &str| -> Vec<(&'static str, String)> {
        vec![
            ("EDGEFLOW__MYSQL__URL", url.to_owned()),
            ("EDGEFLOW__PARSE__FORMAT", "cdn".to_owned()),
            ("EDGEFLOW__WINDOW__OUT_OF_ORDERNESS_SECS", "5".to_owned()),
        ]
    };
    let run_args = ["run", "-c", "config/local.toml", "--source", &source, "-w", "2"];

    let reference = fresh_database(&services, "files_ref");
    let env: Vec<(&str, String)> = env_for(&reference);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");
    assert_success(&edgeflow(&run_args, &env), "uninterrupted run");
    let expected = dump_tables(&reference);

    let url = fresh_database(&services, "files_kill");
    let env: Vec<(&str, String)> = env_for(&url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");
    let mut job = Job::spawn(&run_args, &env, &logs.path().join("killed.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed_upto(&url).is_none() {
        assert!(job.child.try_wait().unwrap().is_none(), "finished before its first commit was seen:\n{}", job.log_text());
        assert!(Instant::now() < deadline, "no commit after 60 s:\n{}", job.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(job.child.try_wait().unwrap().is_none(), "finished before it could be killed:\n{}", job.log_text());
    job.kill_9();
    let killed_at = committed_upto(&url);
    let partial = read_domain_minutes(&url).values().map(|row| row[0]).sum::<u64>();
    assert!(partial < 400_000, "the killed run had written everything");

    let resumed = edgeflow(&run_args, &env);
    assert_success(&resumed, "resumed run");
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(log.contains("partitions=8"), "resumed without the checkpoints of the 8 files:\n{log}");
    assert_same_tables(&dump_tables(&url), &expected, &format!("after kill -9 at committed_upto {killed_at:?} ({partial} requests written) and a resume"));
}

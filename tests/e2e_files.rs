//! Issue 13: a directory of rotated gzip logs from two web servers backfills in one run.
//!
//! Eight files (four rotations per server, the servers' logs overlapping in time), read with
//! `--source file:DIR/` by two workers: each file is its own partition with its own
//! watermark, so the disorder between files is not lateness, and every `domain_minute` row
//! equals the oracle's batch computation over all lines. A second run over the same files
//! writes the same rows (absolute values), so nothing counts twice.

mod common;

use std::io::Write;

use common::*;
use edgeflow::gen::{GenConfig, GeneratedLine, OutputFormat, TrafficGen};

const LINES: u64 = 40_000;
const SERVERS: usize = 2;
const ROTATIONS: usize = 4;

fn traffic() -> Vec<GeneratedLine> {
    let config = GenConfig {
        seed: 41,
        domains: 10,
        clients: 4_000,
        lines: LINES,
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
    let lines = traffic();
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

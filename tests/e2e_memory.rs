//! Bounded state: windows retire at end + lateness, so the job's memory follows the number of
//! live windows and keys, not the length of the stream. The same steady traffic is run for
//! three times as long; the peak resident memory must stay flat.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use edgeflow::gen::{GenConfig, OutputFormat, TrafficGen};

/// Peak resident set (VmHWM) of a finished-soon process, sampled until it exits.
fn run_and_measure_peak_kib(args: &[&str], env: &[(&str, &str)]) -> u64 {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeflow"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR")).stdout(Stdio::null()).stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start edgeflow");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                peak = peak.max(kib);
            }
        }
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "edgeflow run failed: {exit}");
            return peak;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_stream(path: &std::path::Path, lines: u64) {
    let config = GenConfig {
        seed: 5,
        domains: 20,
        clients: 2_000,
        lines,
        // Steady event-time rate: a longer stream spans proportionally more windows.
        rate_per_sec: 100.0,
        format: OutputFormat::Cdn,
        late_fraction: 0.0,
        ..GenConfig::default()
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for line in TrafficGen::new(config).unwrap() {
        writeln!(file, "{}", line.line).unwrap();
    }
}

#[test]
fn peak_memory_stays_flat_as_the_stream_grows() {
    let services = Services::from_env();
    let dir = tempfile::tempdir().unwrap();
    let mut peaks = Vec::new();
    for lines in [100_000u64, 300_000] {
        let path = dir.path().join(format!("stream-{lines}.log"));
        write_stream(&path, lines);
        let url = fresh_database(&services, "memory");
        // The commit gap bounds the output waiting behind a commit (an hour of event time by
        // default); both streams must span more than it for their peaks to be steady states.
        let env = [("EDGEFLOW__MYSQL__URL", url.as_str()), ("EDGEFLOW__SINK__MAX_UNCOMMITTED_SECS", "300")];
        assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");
        let source = format!("file:{}", path.display());
        let peak = run_and_measure_peak_kib(&["run", "-c", "config/local.toml", "--source", &source, "-w", "2"], &env);
        let rows: u64 = read_domain_minutes(&url).values().map(|r| r[0]).sum();
        assert_eq!(rows, lines, "every line counted");
        peaks.push((lines, peak));
    }
    let (short, long) = (peaks[0].1, peaks[1].1);
    eprintln!("peak RSS: {:?} (lines, KiB)", peaks);
    // Three times the stream (and windows) must not mean materially more memory: allow 25%
    // for allocator and buffer noise, far below the 3x that unbounded state would show.
    assert!(long * 4 <= short * 5, "peak RSS grew from {short} KiB to {long} KiB with a 3x longer stream");
}

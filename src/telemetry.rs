//! Logs and metrics. Logs go through `tracing` (level from `RUST_LOG`, default `info`).
//! Metrics are process-wide counters; `render_prometheus` writes them in Prometheus' text
//! format, and the job logs a summary when it ends.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use dataflows::record::RejectReason;

/// A monotonically increasing counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Raises the value to `n` if it is lower (for peak gauges).
    pub fn raise_to(&self, n: u64) {
        self.0.fetch_max(n, Ordering::Relaxed);
    }
}

/// Peak resident memory of this process (Linux `VmHWM`), KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub struct Metrics {
    pub messages: Counter,
    pub accepted: Counter,
    pub rejected: [Counter; RejectReason::ALL.len()],
    pub commits: Counter,
    pub commit_retries: Counter,
    pub commit_latency_ms_sum: Counter,
    pub rows_written: Counter,
    /// Shipper events dropped as re-sends.
    pub resends: Counter,
    /// Source activations that waited for commits to catch up.
    pub backpressure_waits: Counter,
    /// Most live window keys the closing worker held (state size).
    pub live_keys_peak: Counter,
}

pub static METRICS: Metrics = Metrics {
    messages: Counter::new(),
    accepted: Counter::new(),
    rejected: [const { Counter::new() }; RejectReason::ALL.len()],
    commits: Counter::new(),
    commit_retries: Counter::new(),
    commit_latency_ms_sum: Counter::new(),
    rows_written: Counter::new(),
    resends: Counter::new(),
    backpressure_waits: Counter::new(),
    live_keys_peak: Counter::new(),
};

impl Metrics {
    pub fn reject(&self, reason: RejectReason, n: u64) {
        let index = RejectReason::ALL.iter().position(|r| *r == reason).expect("ALL lists every reason");
        self.rejected[index].add(n);
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(Counter::get).sum()
    }

    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter("edgeflow_messages_total", "messages read from the source", self.messages.get());
        counter("edgeflow_accepted_total", "messages parsed, cleaned and aggregated", self.accepted.get());
        counter("edgeflow_commits_total", "MySQL transactions committed", self.commits.get());
        counter("edgeflow_commit_retries_total", "failed MySQL commit attempts", self.commit_retries.get());
        counter("edgeflow_commit_latency_ms_total", "time spent committing, in ms", self.commit_latency_ms_sum.get());
        counter("edgeflow_rows_written_total", "rows upserted, deleted or inserted", self.rows_written.get());
        counter("edgeflow_resends_total", "Shipper events dropped as re-sends", self.resends.get());
        counter("edgeflow_backpressure_waits_total", "source activations waiting for commits", self.backpressure_waits.get());
        let _ = writeln!(
            out,
            "# HELP edgeflow_live_keys_peak most live window keys held\n# TYPE edgeflow_live_keys_peak gauge\nedgeflow_live_keys_peak {}",
            self.live_keys_peak.get()
        );
        let _ = writeln!(out, "# HELP edgeflow_rejects_total rejected messages by reason\n# TYPE edgeflow_rejects_total counter");
        for (reason, count) in RejectReason::ALL.iter().zip(self.rejected.iter()) {
            let _ = writeln!(out, "edgeflow_rejects_total{{reason=\"{}\"}} {}", reason.as_str(), count.get());
        }
        out
    }
}

/// Installs the tracing subscriber; `RUST_LOG` overrides the default level.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    // Colours only on a terminal: logs in files and pipes stay greppable.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_lists_every_reject_reason() {
        let metrics = Metrics {
            messages: Counter::new(),
            accepted: Counter::new(),
            rejected: [const { Counter::new() }; RejectReason::ALL.len()],
            commits: Counter::new(),
            commit_retries: Counter::new(),
            commit_latency_ms_sum: Counter::new(),
            rows_written: Counter::new(),
            resends: Counter::new(),
            backpressure_waits: Counter::new(),
            live_keys_peak: Counter::new(),
        };
        metrics.reject(RejectReason::TooLate, 3);
        let text = metrics.render_prometheus();
        assert!(text.contains("edgeflow_rejects_total{reason=\"too_late\"} 3"), "{text}");
        assert_eq!(text.matches("edgeflow_rejects_total{").count(), RejectReason::ALL.len());
    }
}

//! Issue 13: rsyslog, Vector and Fluent Bit events through Kafka and the job, re-sends
//! included, give exactly the generator's ground truth.
//!
//! One generator seed with re-send bursts (a shipper restarting and delivering its last events
//! again, see `edgeflow::gen`), each line re-wrapped the way each shipper's configuration in
//! `config/shippers/` sends it, keyed by web server as those configurations do. Nothing tells
//! the job which shipper it reads: the envelope is detected, and a re-sent line carries the
//! same host, file and offset as the first delivery, so it must count once. Were the origin
//! not read, every re-send would count again and the minutes would exceed the truth.

mod common;

use std::collections::BTreeMap;

use common::*;
use dataflows::parse::time::format_time_iso8601;
use edgeflow::gen::{GenConfig, GeneratedLine, OutputFormat, TrafficGen};

const LINES: u64 = 12_000;
const PARTITIONS: i32 = 4;
const PATH: &str = "/var/log/nginx/access.log";

#[derive(Clone, Copy, Debug)]
enum Shipper {
    Rsyslog,
    Vector,
    FluentBit,
}

impl Shipper {
    const ALL: [Shipper; 3] = [Shipper::Rsyslog, Shipper::Vector, Shipper::FluentBit];

    fn name(self) -> &'static str {
        match self {
            Shipper::Rsyslog => "rsyslog",
            Shipper::Vector => "vector",
            Shipper::FluentBit => "fluent_bit",
        }
    }

    /// The event this shipper's Kafka output writes for `line` (see `config/shippers/` and
    /// `dataflows/tests/fixtures/`).
    fn wrap(self, line: &GeneratedLine) -> String {
        let host = format!("web-{}", line.host_index + 1);
        let text = serde_json::to_string(&line.line).expect("a string");
        let read_secs = line.read_ms as f64 / 1000.0;
        match self {
            // jsonf: `/` escaped, a space after each comma, a newline at the end.
            Shipper::Rsyslog => format!(
                "{{\"message\":{}, \"host\":\"{host}\", \"file\":\"{}\", \"offset\":{}}}\n",
                text.replace('/', "\\/"),
                PATH.replace('/', "\\/"),
                line.offset
            ),
            // Keys sorted, as Vector's JSON codec writes them.
            Shipper::Vector => format!(
                "{{\"file\":\"{PATH}\",\"host\":\"{host}\",\"message\":{text},\"offset\":{},\"source_type\":\"file\",\"timestamp\":\"{}\"}}",
                line.offset,
                format_time_iso8601(line.read_ms, 0)
            ),
            Shipper::FluentBit => format!(
                "{{\"@timestamp\":{read_secs:.6},\"file\":\"{PATH}\",\"offset\":{},\"log\":{text},\"host\":\"{host}\"}}",
                line.offset
            ),
        }
    }
}

fn traffic() -> Vec<GeneratedLine> {
    let config = GenConfig {
        seed: 13,
        domains: 8,
        clients: 2_000,
        lines: LINES,
        rate_per_sec: 50.0,
        hosts: 6,
        format: OutputFormat::Cdn,
        // The generator's re-send bursts are Filebeat events; only their lines, hosts and
        // offsets are used here.
        filebeat: true,
        resend_fraction: 0.002,
        // Bounded disorder within out_of_orderness, nothing late: no line may be rejected.
        disorder_ms: 3_000,
        late_fraction: 0.0,
        ..GenConfig::default()
    };
    TrafficGen::new(config).expect("valid generator config").collect()
}

fn run_job(services: &Services, shipper: Shipper, lines: &[GeneratedLine]) -> String {
    let topic = fresh_topic(services, PARTITIONS);
    let messages = lines.iter().map(|l| ((l.host_index % PARTITIONS as usize) as i32, shipper.wrap(l).into_bytes()));
    produce(services, &topic, messages.collect::<Vec<_>>());
    let url = fresh_database(services, &format!("shippers_{}", shipper.name()));
    let env = [
        ("EDGEFLOW__KAFKA__BROKERS", services.brokers.as_str()),
        ("EDGEFLOW__KAFKA__TOPIC", topic.as_str()),
        ("EDGEFLOW__MYSQL__URL", url.as_str()),
        ("EDGEFLOW__PARSE__FORMAT", "cdn"),
        ("EDGEFLOW__PARSE__BYTES_FIELD", "body_bytes_sent"),
        ("EDGEFLOW__WINDOW__OUT_OF_ORDERNESS_SECS", "10"),
        ("EDGEFLOW__WINDOW__IDLE_TIMEOUT_SECS", "3600"),
    ];
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), &format!("migrate ({})", shipper.name()));
    let output = edgeflow(&["run", "-c", "config/local.toml", "-w", "2", "--exit-at-end"], &env);
    assert_success(&output, &format!("edgeflow run ({})", shipper.name()));
    url
}

#[test]
fn rsyslog_vector_and_fluent_bit_events_with_resends_give_the_ground_truth() {
    let services = Services::from_env();
    let lines = traffic();
    let resent = lines.iter().filter(|l| l.resent).count();
    assert!(resent > 20, "need re-sends to count once, got {resent}");
    assert_eq!(lines.iter().filter(|l| !l.resent).count() as u64, LINES);

    // Ground truth: the first deliveries only.
    let mut expected = MinuteRows::new();
    for line in lines.iter().filter(|l| !l.resent) {
        let second = line.event_ms.div_euclid(1000);
        let row = expected.entry((line.truth.domain.to_string(), second - second.rem_euclid(60))).or_insert([0; 7]);
        row[0] += 1;
        row[1] += line.truth.body_bytes;
        row[2 + usize::from(line.truth.status / 100 - 1)] += 1;
    }

    let (services, lines) = (&services, &lines);
    let urls: BTreeMap<&str, String> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            Shipper::ALL.iter().map(|&shipper| (shipper.name(), scope.spawn(move || run_job(services, shipper, lines)))).collect();
        handles.into_iter().map(|(name, handle)| (name, handle.join().expect("job thread"))).collect()
    });
    for (name, url) in &urls {
        assert_eq!(read_reject_counts(url), BTreeMap::new(), "{name}: rejects");
        let minutes = read_domain_minutes(url);
        assert_eq!(minutes.values().map(|row| row[0]).sum::<u64>(), LINES, "{name}: requests ({resent} re-sends must count once)");
        assert_rows_equal(&minutes, &expected);
    }
    // Every table agrees between the shippers, row by row.
    let reference = dump_tables(&urls["rsyslog"]);
    for name in ["vector", "fluent_bit"] {
        assert_same_tables(&dump_tables(&urls[name]), &reference, &format!("{name} against rsyslog"));
    }
}

//! Parse + clean throughput on realistic `cdn` lines, against a naive baseline.
//!
//! `cargo bench -p dataflows --bench parse` (add `-- --quick` for a short run). Lines are
//! generated up front (varied addresses, hosts, user agents, sizes, timings; time advancing a
//! few milliseconds per line as in a busy log), then each iteration decodes all of them.
//!
//! Time is the bench thread's CPU time, not wall time: the target is per core, and on a shared
//! 2-core machine wall time also counts whatever else held the core (builds, other tests). On
//! a quiet machine the two agree.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataflows::clean::CleanConfig;
use dataflows::parse::presets;
use dataflows::parse::time::{format_time_iso8601, format_time_local};
use dataflows::parse::{Decoder, Escape, LogFormat, ParseConfig};

const LINES: usize = 4096;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const USER_AGENTS: [&str; 8] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.135 Mobile Safari/537.36",
    "curl/8.5.0",
    "VLC/3.0.20 LibVLC/3.0.20",
    "Go-http-client/2.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html) \"quoted\"",
];

const PATHS: [&str; 8] =
    ["/", "/static/app.js", "/static/css/site.css", "/video/seg-", "/img/photo-", "/api/v1/items?page=", "/download/pkg-", "/favicon.ico"];

/// One request's variable values, rendered by the format like nginx would.
fn generate_values(rng: &mut Rng, utc_ms: i64) -> HashMap<&'static str, Vec<u8>> {
    let mut values = HashMap::new();
    let mut put = |name: &'static str, value: String| {
        values.insert(name, value.into_bytes());
    };
    let client = if rng.below(10) == 0 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, rng.below(65536) as u16, 0, 0, 0, 0, rng.below(65536) as u16))
    } else {
        IpAddr::V4(Ipv4Addr::from((rng.next() as u32) | 0x0100_0000))
    };
    let balancer = Ipv4Addr::new(10, 0, 0, 1 + rng.below(4) as u8);
    put("remote_addr", balancer.to_string());
    put("remote_user", if rng.below(50) == 0 { "alice".into() } else { "-".into() });
    put("time_local", format_time_local(utc_ms, 480));
    put("time_iso8601", format_time_iso8601(utc_ms, 480));
    let method = *rng.pick(&["GET", "GET", "GET", "GET", "GET", "HEAD", "POST", "OPTIONS"]);
    let path = rng.pick(&PATHS);
    put("request", format!("{method} {path}{} HTTP/{}", rng.below(10_000), rng.pick(&["1.1", "2.0", "1.1"])));
    let status = *rng.pick(&[200u16, 200, 200, 200, 206, 304, 301, 404, 499, 502]);
    put("status", status.to_string());
    let body = match status {
        304 | 499 => 0,
        206 => 1_048_576,
        _ => rng.below(2_000_000),
    };
    put("body_bytes_sent", body.to_string());
    put("bytes_sent", (body + 250 + rng.below(200)).to_string());
    put("http_referer", if rng.below(3) == 0 { "-".into() } else { format!("https://www.example{}.com/", rng.below(20)) });
    put("http_user_agent", rng.pick(&USER_AGENTS).to_string());
    put("http_x_forwarded_for", match rng.below(4) {
        0 => format!("{client}"),
        1 => format!("198.51.100.{}, {client}", rng.below(255)),
        _ => "-".into(),
    });
    put("http_x_real_ip", client.to_string());
    put("host", format!("{}.cdn{}.example.com", rng.pick(&["img", "video", "static", "www", "api"]), rng.below(40)));
    let request_ms = rng.below(3_000);
    put("request_time", format!("{}.{:03}", request_ms / 1000, request_ms % 1000));
    let cache = *rng.pick(&["HIT", "HIT", "HIT", "MISS", "MISS", "EXPIRED", "-", "STALE"]);
    put("upstream_cache_status", cache.into());
    let upstream = match (cache, rng.below(20)) {
        ("HIT" | "STALE", _) => "-".to_owned(),
        (_, 0) => format!("0.{:03}, 0.{:03}", rng.below(1000), rng.below(1000)),
        _ => format!("0.{:03}", request_ms.min(999)),
    };
    put("upstream_response_time", upstream);
    values
}

fn generate_lines(format: &LogFormat) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut utc_ms = 1_795_162_539_000;
    (0..LINES)
        .map(|_| {
            utc_ms += rng.below(5) as i64;
            let values = generate_values(&mut rng, utc_ms);
            let mut line = Vec::with_capacity(512);
            format.render(|name| values.get(name).map(Vec::as_slice), &mut line);
            line
        })
        .collect()
}

fn decoder(format: &str) -> Decoder {
    let clean = CleanConfig {
        accounts: (0..40).map(|n| (format!("*.cdn{n}.example.com"), format!("account-{}", n % 7))).collect(),
        ..CleanConfig::default()
    };
    Decoder::new(&ParseConfig { format: format.into(), ..ParseConfig::default() }, &clean).expect("valid config")
}

/// Messages back to back in one buffer, as in a Kafka fetch response. (One `Vec` per line,
/// each with spare capacity, spread 4,096 lines over 2 MB and made the bench measure cache
/// misses, ~170 ns a line here, more than parsing.)
fn back_to_back(lines: &[Vec<u8>]) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
    let mut buffer = Vec::with_capacity(lines.iter().map(Vec::len).sum());
    let ranges = lines
        .iter()
        .map(|line| {
            buffer.extend_from_slice(line);
            buffer.len() - line.len()..buffer.len()
        })
        .collect();
    (buffer, ranges)
}

fn decode_all(decoder: &mut Decoder, lines: &[&[u8]]) -> u64 {
    let mut accepted = 0;
    for line in lines {
        if let Ok(decoded) = decoder.decode(line) {
            accepted += decoded.record.bytes & 1;
            black_box(decoded);
        }
    }
    accepted
}

/// The baseline many log tools start from: split on quotes and whitespace into a map of
/// `&str`, then `str::parse` every field.
mod naive {
    use super::*;

    /// Field names of the whitespace-separated words between the quoted parts.
    const UNQUOTED: [&[&str]; 6] = [
        &["remote_addr", "-", "remote_user", "time_local_date", "time_local_zone"],
        &["status", "body_bytes_sent"],
        &[],
        &[],
        &[],
        &["host", "request_time", "upstream_response_time", "upstream_cache_status", "bytes_sent"],
    ];
    const QUOTED: [&str; 5] = ["request", "http_referer", "http_user_agent", "http_x_forwarded_for", "http_x_real_ip"];

    pub fn parse(line: &[u8]) -> Option<(u64, IpAddr, u16, u64, String, f64)> {
        let line = std::str::from_utf8(line).ok()?;
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for (index, part) in line.split('"').enumerate() {
            if index % 2 == 1 {
                fields.insert(QUOTED.get(index / 2)?, part);
            } else {
                // Upstream lists such as "0.1, 0.2" are not handled, as in most such tools.
                for (name, value) in UNQUOTED.get(index / 2)?.iter().zip(part.split_whitespace()) {
                    fields.insert(name, value);
                }
            }
        }
        let time = fields.get("time_local_date")?.trim_start_matches('[');
        let (date, clock) = time.split_once(':')?;
        let mut date = date.split('/');
        let day: u64 = date.next()?.parse().ok()?;
        let month_name = date.next()?;
        let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].iter().position(|m| *m == month_name)?;
        let year: u64 = date.next()?.parse().ok()?;
        let seconds: u64 = clock.split(':').map(|part| part.parse::<u64>().ok()).sum::<Option<u64>>()?;
        let event = ((year * 12 + month as u64) * 31 + day) * 86_400 + seconds;
        let client: IpAddr = match fields.get("http_x_real_ip") {
            Some(&ip) if ip != "-" => ip.parse().ok()?,
            _ => fields.get("remote_addr")?.parse().ok()?,
        };
        let status: u16 = fields.get("status")?.parse().ok()?;
        let bytes: u64 = fields.get("bytes_sent")?.parse().ok()?;
        let host = fields.get("host")?.to_lowercase();
        let request_time: f64 = fields.get("request_time")?.parse().ok()?;
        Some((event, client, status, bytes, host, request_time))
    }
}

fn benches(c: &mut Criterion<ThreadCpuTime>) {
    let cdn = LogFormat::compile(presets::CDN.format, Escape::Default).expect("preset compiles");
    let cdn_lines = generate_lines(&cdn);
    let json = LogFormat::compile(presets::JSON.format, Escape::Json).expect("preset compiles");
    let json_lines = generate_lines(&json);
    let events: Vec<Vec<u8>> = cdn_lines
        .iter()
        .enumerate()
        .map(|(offset, line)| {
            let message = std::str::from_utf8(line).expect("generated lines are ascii");
            serde_json::json!({
                "@timestamp": "2026-11-20T08:15:42.118Z",
                "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.15.0"},
                "log": {"offset": offset * 300, "file": {"path": "/var/log/nginx/access.log"}},
                "message": message,
                "input": {"type": "filestream"},
                "host": {"name": "web-1"},
                "agent": {"type": "filebeat", "version": "8.15.0", "id": "5b0e6a3e-92f4-4b1b-8a0e-2d7f55c2a1b9", "name": "web-1"},
            })
            .to_string()
            .into_bytes()
        })
        .collect();

    // For profiling outside criterion: the generated lines, one per line.
    if let Some(path) = std::env::var_os("EDGEFLOW_BENCH_DUMP") {
        let text: Vec<u8> = cdn_lines.iter().flat_map(|line| line.iter().chain(b"\n")).copied().collect();
        std::fs::write(path, text).expect("dump written");
    }

    // Every generated line must be accepted, or the bench measures the reject path.
    let mut check = decoder("cdn");
    for line in &cdn_lines {
        if let Err(reject) = check.decode(line) {
            panic!("generated line rejected: {reject}: {}", line.escape_ascii());
        }
    }
    let naive_parsed = cdn_lines.iter().filter(|line| naive::parse(line).is_some()).count();
    assert!(naive_parsed * 10 > LINES * 9, "the baseline parses most lines ({naive_parsed})");

    let (cdn_buffer, cdn_ranges) = back_to_back(&cdn_lines);
    let cdn_lines: Vec<&[u8]> = cdn_ranges.into_iter().map(|range| &cdn_buffer[range]).collect();
    let (json_buffer, json_ranges) = back_to_back(&json_lines);
    let json_lines: Vec<&[u8]> = json_ranges.into_iter().map(|range| &json_buffer[range]).collect();
    let (event_buffer, event_ranges) = back_to_back(&events);
    let events: Vec<&[u8]> = event_ranges.into_iter().map(|range| &event_buffer[range]).collect();

    let mut group = c.benchmark_group("parse_clean");
    group.throughput(Throughput::Elements(LINES as u64));
    group.measurement_time(Duration::from_secs(5));
    let mut cdn_decoder = decoder("cdn");
    group.bench_function("cdn_raw_line", |b| b.iter(|| decode_all(&mut cdn_decoder, &cdn_lines)));
    let mut json_decoder = decoder("json");
    group.bench_function("json_raw_line", |b| b.iter(|| decode_all(&mut json_decoder, &json_lines)));
    let mut event_decoder = decoder("cdn");
    group.bench_function("cdn_in_filebeat_event", |b| b.iter(|| decode_all(&mut event_decoder, &events)));
    group.bench_function("naive_split_hashmap_baseline", |b| {
        b.iter(|| cdn_lines.iter().filter_map(|line| black_box(naive::parse(line))).count())
    });
    group.finish();
}

/// CPU time of the calling thread (see the module doc).
struct ThreadCpuTime;

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec to write to; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Formats like wall time (seconds, lines per second).
static AS_WALL_TIME: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }

    fn end(&self, started: Duration) -> Duration {
        thread_cpu_time().saturating_sub(started)
    }

    fn add(&self, first: &Duration, second: &Duration) -> Duration {
        *first + *second
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        AS_WALL_TIME.formatter()
    }
}

criterion_group! {
    name = parse;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = benches
}
criterion_main!(parse);

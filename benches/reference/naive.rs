//! Naive single-thread reference for `benches/engine.sh`: what a plain Rust program with a
//! hash map does with a `cdn` access log, to put the job's throughput beside.
//!
//! Usage: `cargo bench --bench naive_reference -- FILE [OUT.tsv]` (or the built binary with
//! the same arguments). Reads nginx `cdn`-format lines
//! (`dataflows/src/parse/presets.rs`) and aggregates per (domain, minute): requests, bytes
//! (`$bytes_sent`), status classes and exact distinct client IPs (a hash set per row;
//! client = `$http_x_real_ip` if it is an address, else `$remote_addr`). No windows, no
//! lateness rules: every line counts. Writes one row per (domain, minute), sorted by domain
//! (bytes) then minute, as TSV:
//!
//! `domain \t minute_start_unix \t requests \t bytes \t distinct \t 1xx \t 2xx \t 3xx \t 4xx \t 5xx`
//!
//! to OUT.tsv (default: standard output), and lines/s to standard error. Lines it cannot
//! split are counted and skipped (the benchmark expects none). Only std: no edgeflow code.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::IpAddr;
use std::time::Instant;

#[derive(Default)]
struct Row {
    requests: u64,
    bytes: u64,
    status: [u64; 5],
    clients: HashSet<IpAddr>,
}

struct Line<'a> {
    domain: &'a str,
    minute: i64,
    status: u16,
    bytes: u64,
    client: IpAddr,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `dd/Mon/yyyy:HH:MM:SS +zzzz` -> Unix seconds.
fn time_local(text: &str) -> Option<i64> {
    let (date, zone) = text.split_once(' ')?;
    let mut parts = date.split(|c| c == '/' || c == ':');
    let day: i64 = parts.next()?.parse().ok()?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as i64 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let hour: i64 = parts.next()?.parse().ok()?;
    let minute: i64 = parts.next()?.parse().ok()?;
    let second: i64 = parts.next()?.parse().ok()?;
    if zone.len() != 5 {
        return None;
    }
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let offset = sign * (zone[1..3].parse::<i64>().ok()? * 3600 + zone[3..5].parse::<i64>().ok()? * 60);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Splits a `cdn` line on its double quotes (nginx escapes `"` inside values as `\x22`):
/// 0 `remote_addr - user [time] `, 1 request, 2 ` status body `, 3 referer, 5 user agent,
/// 7 X-Forwarded-For, 9 X-Real-IP, 10 ` host request_time upstream_time(s) cache bytes_sent`.
fn split(line: &str) -> Option<Line<'_>> {
    let mut parts = [""; 11];
    let mut count = 0;
    for part in line.split('"') {
        if count == parts.len() {
            return None;
        }
        parts[count] = part;
        count += 1;
    }
    if count != parts.len() {
        return None;
    }
    let head = parts[0];
    let remote_addr = head.split(' ').next()?;
    let time = &head[head.find('[')? + 1..head.rfind(']')?];
    let mut middle = parts[2].split_ascii_whitespace();
    let status: u16 = middle.next()?.parse().ok()?;
    let mut tail = parts[10].split_ascii_whitespace();
    let host = tail.next()?;
    let bytes: u64 = tail.next_back()?.parse().ok()?;
    let domain = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let client = parts[9].parse().or_else(|_| remote_addr.parse()).ok()?;
    let second = time_local(time)?;
    if !(100..600).contains(&status) {
        return None;
    }
    Some(Line { domain, minute: second - second.rem_euclid(60), status, bytes, client })
}

fn main() {
    // `cargo bench` passes `--bench`: skip flags.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let Some(input) = args.first() else {
        eprintln!("usage: naive_reference FILE [OUT.tsv]");
        std::process::exit(2);
    };
    let started = Instant::now();
    let mut reader = BufReader::with_capacity(1 << 20, File::open(input).unwrap_or_else(|e| panic!("{input}: {e}")));
    // domain -> minute -> row: a lookup by &str allocates nothing once the domain is known.
    let mut rows: HashMap<String, HashMap<i64, Row>> = HashMap::new();
    let (mut lines, mut skipped) = (0u64, 0u64);
    let mut buf = String::new();
    loop {
        buf.clear();
        if reader.read_line(&mut buf).expect("read") == 0 {
            break;
        }
        let text = buf.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            continue;
        }
        lines += 1;
        let Some(line) = split(text) else {
            skipped += 1;
            continue;
        };
        let domain = line.domain.to_ascii_lowercase();
        let minutes = match rows.get_mut(&domain) {
            Some(minutes) => minutes,
            None => rows.entry(domain).or_default(),
        };
        let row = minutes.entry(line.minute).or_default();
        row.requests += 1;
        row.bytes += line.bytes;
        row.status[usize::from(line.status / 100 - 1)] += 1;
        row.clients.insert(line.client);
    }
    let mut sorted: Vec<(&String, &i64, &Row)> =
        rows.iter().flat_map(|(d, minutes)| minutes.iter().map(move |(m, r)| (d, m, r))).collect();
    sorted.sort_unstable_by(|a, b| (a.0.as_bytes(), a.1).cmp(&(b.0.as_bytes(), b.1)));
    let out: Box<dyn Write> = match args.get(1) {
        Some(path) => Box::new(File::create(path).unwrap_or_else(|e| panic!("{path}: {e}"))),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    for (domain, minute, r) in &sorted {
        let s = r.status;
        writeln!(out, "{domain}\t{minute}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}", r.requests, r.bytes, r.clients.len(), s[0], s[1], s[2], s[3], s[4])
            .expect("write");
    }
    out.flush().expect("flush");
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "naive_reference: {lines} lines ({skipped} skipped), {} rows, {secs:.3} s, {:.0} lines/s",
        sorted.len(),
        lines as f64 / secs
    );
    if skipped > 0 {
        std::process::exit(1);
    }
}

//! The whole pipeline in one process, no services: generated `cdn` traffic on 4 partitions is
//! fed through `ingest::Ingest` by a timely source per worker (1, 2 and 4 workers), then
//! `pipeline::build` and `output::close_epochs`; the `OutputBatch`es are folded into final
//! tables and compared, table by table and key by key, with a naive reference computed here
//! from the generator's ground truth (not from a parse of the lines).
//!
//! Only the public surface the engine keeps across rewrites is used: `Ingest` (messages with
//! partition and offset in, `Ingested` out, `watermark()` for the capability),
//! `pipeline::build`, `output::close_epochs`, the `OutputBatch`/`Changes` types, and the pure
//! time functions of `window` (`PartitionClock::stamp`, `WindowPolicy`), which are the
//! specification of time: the reference replays each partition's watermark with them to
//! decide what is accepted and what is too late.
//!
//! The reference is deliberately naive: hash maps for sums, hash sets for distinct clients,
//! a full sort for top-k (ties by address ascending), exact nearest-rank percentiles (the
//! engine's histogram must be within its 1% relative bound of them), and the maximum of
//! per-second byte sums.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dataflows::aggregate::{ClientSummary, LatencySummary, RankedClient, Traffic, WindowRow};
use dataflows::changes::Changes;
use dataflows::clean::CleanConfig;
use dataflows::ingest::{Ingest, Ingested};
use dataflows::key::DomainWindow;
use dataflows::output::{self, OutputBatch};
use dataflows::parse::{Decoder, ParseConfig};
use dataflows::pipeline;
use dataflows::record::RejectReason;
use dataflows::window::{PartitionClock, Time, Window, WindowKind, WindowPolicy};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Inspect;
use timely::dataflow::{Scope, StreamVec};

const PARTITIONS: usize = 4;
/// 2026-03-01T00:00:00Z.
const T0: u64 = 1_772_323_200;

// ---------------------------------------------------------------------------------------
// Deterministic traffic
// ---------------------------------------------------------------------------------------

/// xorshift64*: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A skewed pick in `0..n`: low values are much more likely (a few heavy hitters).
    fn skewed(&mut self, n: u64) -> u64 {
        self.below(n) * self.below(n) / n
    }
    fn pick<T: Copy>(&mut self, weighted: &[(T, u64)]) -> T {
        let total: u64 = weighted.iter().map(|(_, w)| w).sum();
        let mut r = self.below(total);
        for (value, weight) in weighted {
            if r < *weight {
                return *value;
            }
            r -= weight;
        }
        unreachable!()
    }
}

/// What the generator wrote into one access-log line: the ground truth of the reference.
#[derive(Clone, Debug)]
struct Line {
    event_sec: u64,
    /// As the engine must report it: lower-cased, without port.
    domain: &'static str,
    client: IpAddr,
    status: u16,
    /// `$bytes_sent`, the billed byte count.
    bytes: u64,
    request_us: u64,
    /// `None` when the line has `-` (served from cache).
    upstream_us: Option<u64>,
    cache: &'static str,
}

#[derive(Clone, Debug)]
enum Truth {
    Line(Line),
    /// A message the engine must reject, and why.
    Garbage(RejectReason),
}

struct Message {
    payload: Vec<u8>,
    truth: Truth,
}

/// How the arrival time of a line relates to its event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delay {
    /// Within the out-of-orderness: stamped at its own event time.
    Disorder,
    /// Behind the watermark but well within the allowed lateness.
    Late,
    /// Around the minute's retirement: accepted or not depending on where in its minute.
    Borderline,
    /// Far behind: its minute has retired.
    VeryLate,
}

struct Scenario {
    policy: WindowPolicy,
    /// Messages of each partition, in offset order.
    partitions: Vec<Vec<Message>>,
}

const DOMAINS: [(&str, &str, u64); 8] = [
    // (as the engine reports it, as written in the Host field, weight)
    ("www.example.com", "www.example.com", 30),
    ("img.example.com", "IMG.example.com", 20),
    ("video.example.net", "video.example.net:443", 15),
    ("api.example.org", "api.example.org", 12),
    ("static.example.com", "Static.Example.COM", 10),
    ("cdn.example.io", "cdn.example.io:8080", 6),
    ("m.example.com", "m.example.com", 5),
    ("dl.example.net", "dl.example.net", 2),
];

const CLIENTS: u64 = 320;

/// Client number `n` (0..CLIENTS): mostly IPv4, every fifth one IPv6.
fn client_ip(n: u64) -> IpAddr {
    if n % 5 == 4 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, n as u16, 0, 0, 0, 0x10 + (n % 7) as u16))
    } else if n < 160 {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, (n + 1) as u8))
    } else {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, (n - 159) as u8))
    }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `$time_local` of a UTC second at a time-zone offset (minutes), with its own date math.
fn time_local(utc_sec: u64, offset_minutes: i64) -> String {
    let local = utc_sec as i64 + offset_minutes * 60;
    let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let off = offset_minutes.abs();
    format!(
        "{day:02}/{}/{year:04}:{:02}:{:02}:{:02} {sign}{:02}{:02}",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        off / 60,
        off % 60
    )
}

fn seconds(us: u64) -> String {
    format!("{}.{:03}", us / 1_000_000, us / 1000 % 1000)
}

/// A `cdn`-format line (see `parse::presets::CDN`): the client in `$http_x_real_ip`, behind a
/// trusted load balancer.
fn cdn_line(line: &Line, host: &str, offset_minutes: i64, status_text: &str) -> String {
    let upstream = line.upstream_us.map_or("-".to_string(), seconds);
    format!(
        r#"10.0.0.{} - - [{}] "GET /assets/{}.bin HTTP/1.1" {status_text} {} "-" "Mozilla/5.0 (X11; Linux x86_64)" "-" "{}" {host} {} {upstream} {} {}"#,
        1 + line.bytes % 7,
        time_local(line.event_sec, offset_minutes),
        line.bytes % 1000,
        line.bytes.saturating_sub(250),
        line.client,
        seconds(line.request_us),
        line.cache,
        line.bytes,
    )
}

/// `lines` messages over `span_secs` of event time, spread over the partitions at random.
fn generate(seed: u64, lines: usize, span_secs: u64, policy: WindowPolicy) -> Scenario {
    let mut rng = Rng::new(seed);
    let mut partitions: Vec<Vec<Message>> = (0..PARTITIONS).map(|_| Vec::new()).collect();
    let domain_weights: Vec<(usize, u64)> = DOMAINS.iter().enumerate().map(|(i, d)| (i, d.2)).collect();
    let statuses = [(200u16, 700), (206, 50), (304, 80), (301, 20), (404, 80), (403, 10), (500, 30), (502, 20), (503, 10)];
    let caches = [("HIT", 50), ("MISS", 25), ("EXPIRED", 5), ("STALE", 3), ("BYPASS", 7), ("-", 10)];
    let sizes = [300u64, 1024, 4096, 16_384, 65_536];
    let ooo = policy.out_of_orderness_secs;
    for i in 0..lines {
        let partition = rng.below(PARTITIONS as u64) as usize;
        let nominal = T0 + i as u64 * span_secs / lines as u64;
        let delay = rng.pick(&[(Delay::Disorder, 9_720), (Delay::Late, 200), (Delay::Borderline, 30), (Delay::VeryLate, 50)]);
        let behind = match delay {
            Delay::Disorder => rng.below(ooo.max(1)),
            Delay::Late => ooo + 5 + rng.below(policy.allowed_lateness_secs.saturating_sub(ooo + 10).max(1)),
            Delay::Borderline => policy.allowed_lateness_secs + rng.below(70),
            Delay::VeryLate => policy.allowed_lateness_secs + 90 + rng.below(400),
        };
        let (domain, host, _) = DOMAINS[rng.pick(&domain_weights)];
        let client = client_ip((rng.skewed(CLIENTS) * 7 + 3) % CLIENTS);
        let cache = rng.pick(&caches);
        let request_us = match rng.below(50) {
            0 => 0,
            _ => (rng.skewed(3000) + rng.below(40)) * 1000,
        };
        let upstream_us = match cache {
            "HIT" | "STALE" => None,
            _ => Some(request_us * rng.below(11) / 10 / 1000 * 1000),
        };
        let mut status = rng.pick(&statuses);
        let bytes = match rng.below(200) {
            // A client that went away before the response: nothing sent.
            0 | 1 => {
                status = 499;
                0
            }
            r if r % 2 == 0 => sizes[rng.below(sizes.len() as u64) as usize],
            _ => 260 + rng.below(2_000_000),
        };
        let line = Line { event_sec: nominal - behind, domain, client, status, bytes, request_us, upstream_us, cache };
        let offset_minutes = [480, 0, -300, 330][rng.below(4) as usize];
        let message = match rng.below(1000) {
            // A few garbage messages, each with the reason it must be rejected for.
            0 => Message { payload: Vec::new(), truth: Truth::Garbage(RejectReason::Empty) },
            1 => Message { payload: b"GET /favicon.ico -- not an access log line".to_vec(), truth: Truth::Garbage(RejectReason::BadFormat) },
            2 => Message {
                payload: cdn_line(&line, host, offset_minutes, "999").into_bytes(),
                truth: Truth::Garbage(RejectReason::BadStatus),
            },
            _ => Message {
                payload: cdn_line(&line, host, offset_minutes, &line.status.to_string()).into_bytes(),
                truth: Truth::Line(line),
            },
        };
        partitions[partition].push(message);
    }
    Scenario { policy, partitions }
}

fn policy() -> WindowPolicy {
    WindowPolicy {
        tick_secs: 1,
        out_of_orderness_secs: 10,
        allowed_lateness_secs: 60,
        // No wall clock here: partitions never go idle.
        idle_timeout_secs: 3600,
        sliding_window_secs: 300,
        slide_secs: 60,
        ..WindowPolicy::default()
    }
}

// ---------------------------------------------------------------------------------------
// The engine, driven through its public surface
// ---------------------------------------------------------------------------------------

fn decoder() -> Decoder {
    Decoder::new(&ParseConfig { format: "cdn".into(), ..ParseConfig::default() }, &CleanConfig::default()).expect("cdn decoder")
}

/// How many messages partition `p` gets in feeding round `round`: uneven, so the partitions'
/// watermarks advance at different speeds, and now and then a partition pauses.
fn batch_size(partition: i32, round: u64) -> usize {
    let p = partition as u64;
    if (round + p) % 7 == 0 {
        return 0;
    }
    let spread = 10 + 35 * p;
    (1 + round.wrapping_mul(2_654_435_761).wrapping_add(p * 97) % spread) as usize
}

/// The source of one worker: feeds its partitions in per-partition order, interleaved in
/// uneven batches, and holds its capability at `Ingest::watermark()` as the job's source does.
fn feed<'s>(scope: Scope<'s, Time>, mut ingest: Ingest, scenario: Arc<Scenario>, mine: Vec<i32>) -> StreamVec<'s, Time, Ingested> {
    source::<_, CapacityContainerBuilder<Vec<Ingested>>, _, _>(scope, "Feed", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = Some(capability);
        let mut next = vec![0usize; mine.len()];
        let mut round = 0u64;
        let mut out = Vec::new();
        move |output| {
            let Some(cap) = capability.as_mut() else { return };
            round += 1;
            for (slot, &partition) in mine.iter().enumerate() {
                let messages = &scenario.partitions[partition as usize];
                let end = (next[slot] + batch_size(partition, round)).min(messages.len());
                for offset in next[slot]..end {
                    ingest.ingest(partition, offset as i64, &messages[offset].payload);
                }
                next[slot] = end;
            }
            ingest.drain_into(&mut out);
            if !out.is_empty() {
                output.session(&*cap).give_iterator(out.drain(..));
            }
            let finished = mine.iter().zip(&next).all(|(&p, &n)| n == scenario.partitions[p as usize].len());
            match ingest.watermark() {
                Some(watermark) if !finished => {
                    if watermark > *cap.time() {
                        cap.downgrade(&watermark);
                    }
                    activator.activate();
                }
                _ => capability = None,
            }
        }
    })
}

/// Runs the scenario on `workers` timely workers and returns the batches `close_epochs`
/// emitted, in order.
fn run_engine(scenario: &Arc<Scenario>, workers: usize) -> Vec<OutputBatch> {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let sink = captured.clone();
    let scenario = scenario.clone();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let policy = scenario.policy;
        let mut ingest = Ingest::new(decoder(), policy);
        let mine: Vec<i32> = (0..PARTITIONS as i32).filter(|p| *p as usize % peers == index).collect();
        for &partition in &mine {
            ingest.add_partition(partition, PartitionClock::default());
        }
        let scenario = scenario.clone();
        let sink = sink.clone();
        worker.dataflow::<Time, _, _>(move |scope| {
            let ingested = feed(scope, ingest, scenario, mine);
            let outputs = pipeline::build(ingested, policy);
            output::close_epochs(outputs, policy, None).inspect(move |batch: &OutputBatch| sink.lock().unwrap().push(batch.clone()));
        });
        while worker.step() {}
    })
    .expect("timely starts");
    for result in guards.join() {
        result.expect("worker finished without panicking");
    }
    let batches = std::mem::take(&mut *captured.lock().unwrap());
    batches
}

// ---------------------------------------------------------------------------------------
// Final tables
// ---------------------------------------------------------------------------------------

/// A rejected message: (partition, offset, reason).
type RejectKey = (i32, i64, RejectReason);

#[derive(Default)]
struct Tables {
    /// As the batches carry them: whole rows of minute and sliding windows, and samples.
    windows: BTreeMap<DomainWindow, Arc<WindowRow>>,
    samples: BTreeMap<DomainWindow, Traffic>,
    /// The series compared with the reference, taken from the rows and samples.
    traffic: BTreeMap<DomainWindow, Traffic>,
    status: BTreeMap<(DomainWindow, u16), i64>,
    clients: BTreeMap<DomainWindow, ClientSummary>,
    latency: BTreeMap<DomainWindow, LatencySummary>,
    peaks: BTreeMap<DomainWindow, u64>,
    abusers: BTreeMap<Window, Vec<RankedClient>>,
    rejects: Vec<RejectKey>,
    /// Live keys the closing worker reported after the last batch.
    live_keys_at_end: usize,
    /// Rejects delivered in a batch that does not cover their epoch.
    misplaced_rejects: Vec<String>,
    /// Deletes seen while folding, per table: no value here ever returns to zero before its
    /// window retires, and retirement is not a deletion (changes.rs), so any is a bug.
    deletes: Vec<String>,
}

fn fold<K: Ord + Debug, V>(table: &mut BTreeMap<K, V>, changes: Changes<K, V>, name: &str, deletes: &mut Vec<String>) {
    for (key, value) in changes.0 {
        match value {
            Some(value) => {
                table.insert(key, value);
            }
            None => {
                deletes.push(format!("{name} {key:?}"));
                table.remove(&key);
            }
        }
    }
}

/// Folds the batches in order (later values win, `None` deletes), checking the batch
/// contract: epochs in order, and only the last batch with `upto = None`.
fn fold_batches(batches: Vec<OutputBatch>) -> Tables {
    let mut tables = Tables::default();
    assert!(!batches.is_empty(), "close_epochs emitted no batch at all");
    let last = batches.len() - 1;
    let mut previous: Option<Time> = None;
    let mut closed_before: Option<Time> = None;
    for (i, batch) in batches.into_iter().enumerate() {
        assert!(!batch.replayed, "batch {i} is marked replayed without a resume point");
        match batch.upto {
            Some(upto) => {
                assert!(i < last, "the last batch must have upto = None, it has {upto}");
                assert!(previous.is_none_or(|p| p < upto), "batch {i} closes up to {upto} after a batch up to {previous:?}");
                previous = Some(upto);
            }
            None => assert_eq!(i, last, "batch {i} of {} says the input is complete", last + 1),
        }
        fold(&mut tables.windows, batch.windows, "windows", &mut tables.deletes);
        fold(&mut tables.samples, batch.samples, "samples", &mut tables.deletes);
        fold(&mut tables.abusers, batch.abusers, "abusers", &mut tables.deletes);
        // A batch holds the epochs from the previous batch's `upto` up to its own.
        let from = if i == 0 { None } else { closed_before };
        for (row, epoch) in batch.rejects {
            if from.is_some_and(|f| epoch < f) || batch.upto.is_some_and(|u| epoch >= u) {
                tables.misplaced_rejects.push(format!("{row:?} at epoch {epoch} in the batch from {from:?} up to {:?}", batch.upto));
            }
            tables.rejects.push((row.partition, row.offset, row.reason));
        }
        closed_before = batch.upto;
        tables.live_keys_at_end = batch.live_keys;
    }
    tables.rejects.sort();
    for (key, row) in &tables.windows {
        tables.traffic.insert(key.clone(), row.traffic);
        tables.status.extend(row.statuses.iter().map(|&(code, n)| ((key.clone(), code), n as i64)));
        tables.clients.insert(key.clone(), row.clients.clone());
        tables.latency.insert(key.clone(), row.latency.clone());
        tables.peaks.insert(key.clone(), row.peak_second_bytes);
    }
    tables.traffic.extend(tables.samples.iter().map(|(k, t)| (k.clone(), *t)));
    tables
}

// ---------------------------------------------------------------------------------------
// The naive reference
// ---------------------------------------------------------------------------------------

/// Everything one (domain, window) cell saw.
#[derive(Default)]
struct Cell {
    traffic: Traffic,
    clients: HashMap<IpAddr, (u64, u64)>,
    request_us: Vec<u64>,
    upstream_us: Vec<u64>,
    bytes_per_second: HashMap<u64, u64>,
}

/// Exact percentiles in µs: request p50/p95/p99 and upstream p95.
#[derive(Clone, Debug, PartialEq)]
struct ExactLatency {
    request: Option<[u64; 3]>,
    upstream_p95: Option<u64>,
}

struct Expected {
    traffic: BTreeMap<DomainWindow, Traffic>,
    status: BTreeMap<(DomainWindow, u16), i64>,
    clients: BTreeMap<DomainWindow, ClientSummary>,
    latency: BTreeMap<DomainWindow, ExactLatency>,
    peaks: BTreeMap<DomainWindow, u64>,
    abusers: BTreeMap<Window, Vec<RankedClient>>,
    rejects: Vec<RejectKey>,
    /// Accepted lines stamped behind their own event time (behind the watermark).
    accepted_late: usize,
    accepted: usize,
    /// (line, window) pairs skipped because the window retired before the line's stamp.
    skipped_windows: usize,
}

fn traffic_of(line: &Line) -> Traffic {
    let mut status_class = [0; 5];
    status_class[usize::from(line.status / 100) - 1] = 1;
    let mut cache = [0; 3];
    cache[match line.cache {
        "HIT" | "STALE" | "UPDATING" | "REVALIDATED" => 0,
        "MISS" | "EXPIRED" => 1,
        _ => 2,
    }] = 1;
    Traffic { requests: 1, bytes: line.bytes as i64, status_class, cache }
}

fn add(a: &mut Traffic, b: &Traffic) {
    a.requests += b.requests;
    a.bytes += b.bytes;
    for i in 0..5 {
        a.status_class[i] += b.status_class[i];
    }
    for i in 0..3 {
        a.cache[i] += b.cache[i];
    }
}

/// The `k` largest clients by `metric` after a full sort, ties by address ascending.
fn top(clients: &HashMap<IpAddr, (u64, u64)>, k: usize, metric: impl Fn(&(u64, u64)) -> u64) -> Vec<RankedClient> {
    let mut all: Vec<(&IpAddr, &(u64, u64))> = clients.iter().collect();
    all.sort_by(|a, b| metric(b.1).cmp(&metric(a.1)).then(a.0.cmp(b.0)));
    all.into_iter().take(k).map(|(ip, (requests, bytes))| RankedClient { ip: *ip, requests: *requests, bytes: *bytes }).collect()
}

/// Exact nearest-rank percentile (`percent` of 100): the smallest value with at least that
/// share of the values at or below it.
fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

fn reference(scenario: &Scenario) -> Expected {
    let policy = &scenario.policy;
    let mut cells: HashMap<DomainWindow, Cell> = HashMap::new();
    let mut status: HashMap<(DomainWindow, u16), i64> = HashMap::new();
    let mut abusers: HashMap<Window, HashMap<IpAddr, (u64, u64)>> = HashMap::new();
    let mut rejects = Vec::new();
    let (mut accepted, mut accepted_late, mut skipped_windows) = (0, 0, 0);
    for (partition, messages) in scenario.partitions.iter().enumerate() {
        // The partition's clock, replayed exactly as window.rs defines it.
        let mut clock = PartitionClock::default();
        for (offset, message) in messages.iter().enumerate() {
            let line = match &message.truth {
                Truth::Garbage(reason) => {
                    rejects.push((partition as i32, offset as i64, *reason));
                    continue;
                }
                Truth::Line(line) => line,
            };
            let stamp = clock.stamp(line.event_sec, policy);
            let minute = policy.windows_of(WindowKind::Minute, line.event_sec).next().expect("a minute per second");
            // Too late: its minute retired at or before its stamp.
            if !policy.is_live(&minute, stamp) {
                rejects.push((partition as i32, offset as i64, RejectReason::TooLate));
                continue;
            }
            accepted += 1;
            accepted_late += usize::from(stamp > policy.align(line.event_sec));
            let traffic = traffic_of(line);
            for kind in [WindowKind::Minute, WindowKind::Sliding, WindowKind::Sample5m] {
                for window in policy.windows_of(kind, line.event_sec) {
                    // A window that retired before the stamp is final; the line skips it.
                    if !policy.is_live(&window, stamp) {
                        skipped_windows += 1;
                        continue;
                    }
                    let key = DomainWindow::new(line.domain.to_string(), window);
                    let cell = cells.entry(key.clone()).or_default();
                    add(&mut cell.traffic, &traffic);
                    if kind == WindowKind::Sample5m {
                        continue;
                    }
                    let client = cell.clients.entry(line.client).or_default();
                    client.0 += 1;
                    client.1 += line.bytes;
                    cell.request_us.push(line.request_us);
                    cell.upstream_us.extend(line.upstream_us);
                    *cell.bytes_per_second.entry(line.event_sec).or_default() += line.bytes;
                    if kind == WindowKind::Minute {
                        *status.entry((key, line.status)).or_default() += 1;
                        let abuser = abusers.entry(window).or_default().entry(line.client).or_default();
                        abuser.0 += 1;
                        abuser.1 += line.bytes;
                    }
                }
            }
        }
    }
    rejects.sort();
    let mut expected = Expected {
        traffic: BTreeMap::new(),
        status: status.into_iter().collect(),
        clients: BTreeMap::new(),
        latency: BTreeMap::new(),
        peaks: BTreeMap::new(),
        abusers: abusers.into_iter().map(|(minute, clients)| (minute, top(&clients, 20, |c| c.0))).collect(),
        rejects,
        accepted_late,
        accepted,
        skipped_windows,
    };
    for (key, mut cell) in cells {
        expected.traffic.insert(key.clone(), cell.traffic);
        if key.window.kind == WindowKind::Sample5m {
            continue;
        }
        let distinct: HashSet<&IpAddr> = cell.clients.keys().collect();
        expected.clients.insert(
            key.clone(),
            ClientSummary { distinct: distinct.len() as u64, by_requests: top(&cell.clients, 10, |c| c.0), by_bytes: top(&cell.clients, 10, |c| c.1) },
        );
        cell.request_us.sort_unstable();
        cell.upstream_us.sort_unstable();
        let request = match (nearest_rank(&cell.request_us, 50), nearest_rank(&cell.request_us, 95), nearest_rank(&cell.request_us, 99)) {
            (Some(p50), Some(p95), Some(p99)) => Some([p50, p95, p99]),
            _ => None,
        };
        expected.latency.insert(key.clone(), ExactLatency { request, upstream_p95: nearest_rank(&cell.upstream_us, 95) });
        expected.peaks.insert(key, cell.bytes_per_second.values().copied().max().expect("a cell has a line"));
    }
    expected
}

// ---------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------

/// Compares one table key by key; adds a readable problem naming the first differing key.
fn compare<K: Ord + Debug, V: Debug, W: Debug>(
    name: &str,
    engine: &BTreeMap<K, V>,
    reference: &BTreeMap<K, W>,
    same: impl Fn(&V, &W) -> bool,
    problems: &mut Vec<String>,
) {
    let missing: Vec<&K> = reference.keys().filter(|k| !engine.contains_key(k)).collect();
    let unexpected: Vec<&K> = engine.keys().filter(|k| !reference.contains_key(k)).collect();
    let differing: Vec<&K> = reference.iter().filter(|(k, w)| engine.get(k).is_some_and(|v| !same(v, w))).map(|(k, _)| k).collect();
    if missing.is_empty() && unexpected.is_empty() && differing.is_empty() {
        return;
    }
    let mut problem = format!(
        "{name}: {} keys in the engine, {} in the reference; {} missing, {} unexpected, {} differing",
        engine.len(),
        reference.len(),
        missing.len(),
        unexpected.len(),
        differing.len()
    );
    if let Some(key) = differing.first() {
        problem += &format!("\n  first differing key {key:?}:\n    engine    {:?}\n    reference {:?}", engine[key], reference[key]);
    }
    if let Some(key) = missing.first() {
        problem += &format!("\n  first missing key {key:?}: reference {:?}", reference[key]);
    }
    if let Some(key) = unexpected.first() {
        problem += &format!("\n  first unexpected key {key:?}: engine {:?}", engine[key]);
    }
    problems.push(problem);
}

/// Within the histogram's relative error of the exact value (plus the engine's rounding to
/// whole microseconds).
fn close_enough(engine: u64, exact: u64) -> bool {
    (engine as f64 - exact as f64).abs() <= dataflows::aggregate::LATENCY_RELATIVE_ERROR * exact as f64 + 0.5 + 1e-9
}

fn latency_matches(engine: &LatencySummary, exact: &ExactLatency) -> bool {
    let request = match (engine.request, exact.request) {
        (None, None) => true,
        (Some(e), Some(x)) => e.iter().zip(x.iter()).all(|(e, x)| close_enough(*e, *x)),
        _ => false,
    };
    let upstream = match (engine.upstream_p95, exact.upstream_p95) {
        (None, None) => true,
        (Some(e), Some(x)) => close_enough(e, x),
        _ => false,
    };
    request && upstream
}

fn count_by_reason(rejects: &[RejectKey]) -> BTreeMap<RejectReason, usize> {
    let mut counts = BTreeMap::new();
    for (_, _, reason) in rejects {
        *counts.entry(*reason).or_default() += 1;
    }
    counts
}

/// Runs the engine on `scenario` and panics with every table that differs from the reference.
/// Returns the reference, for checks on what the scenario exercised.
fn assert_engine_matches_reference(workers: usize, scenario: Scenario) -> Expected {
    let expected = reference(&scenario);
    let scenario = Arc::new(scenario);
    let started = Instant::now();
    let batches = run_engine(&scenario, workers);
    let batch_count = batches.len();
    let tables = fold_batches(batches);
    eprintln!(
        "{workers} worker(s): {} messages, {} accepted ({} behind the watermark, {} window skips), {} rejected, {batch_count} batches, engine {:?}",
        scenario.partitions.iter().map(Vec::len).sum::<usize>(),
        expected.accepted,
        expected.accepted_late,
        expected.skipped_windows,
        expected.rejects.len(),
        started.elapsed()
    );

    let mut problems = Vec::new();
    compare("traffic", &tables.traffic, &expected.traffic, |a, b| a == b, &mut problems);
    compare("status", &tables.status, &expected.status, |a, b| a == b, &mut problems);
    compare("clients", &tables.clients, &expected.clients, |a, b| a == b, &mut problems);
    compare("latency", &tables.latency, &expected.latency, latency_matches, &mut problems);
    // A window whose busiest second sent nothing may have no peak row at all (the sink's
    // column defaults to 0), so zero peaks are compared as absent on both sides.
    let nonzero = |peaks: &BTreeMap<DomainWindow, u64>| -> BTreeMap<DomainWindow, u64> {
        peaks.iter().filter(|(_, v)| **v > 0).map(|(k, v)| (k.clone(), *v)).collect()
    };
    compare("peaks", &nonzero(&tables.peaks), &nonzero(&expected.peaks), |a, b| a == b, &mut problems);
    compare("abusers", &tables.abusers, &expected.abusers, |a, b| a == b, &mut problems);
    let (got_counts, want_counts) = (count_by_reason(&tables.rejects), count_by_reason(&expected.rejects));
    if got_counts != want_counts {
        problems.push(format!("reject counts by reason: engine {got_counts:?}, reference {want_counts:?}"));
    }
    if tables.rejects != expected.rejects {
        let missing = expected.rejects.iter().find(|r| !tables.rejects.contains(r));
        let unexpected = tables.rejects.iter().find(|r| !expected.rejects.contains(r));
        let duplicate = tables.rejects.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]);
        problems.push(format!(
            "rejected messages (partition, offset, reason): engine {} rows, reference {}; first missing {missing:?}, \
             first unexpected {unexpected:?}, first duplicate {duplicate:?}",
            tables.rejects.len(),
            expected.rejects.len()
        ));
    }
    if let Some(first) = tables.misplaced_rejects.first() {
        problems.push(format!("{} rejects in a batch that does not close their epoch, first {first}", tables.misplaced_rejects.len()));
    }
    if tables.live_keys_at_end != 0 {
        problems.push(format!("the closing worker still holds {} live keys after the input is complete", tables.live_keys_at_end));
    }
    if !tables.deletes.is_empty() {
        problems.push(format!("{} deletes, first {:?}: no value returns to zero before retirement here", tables.deletes.len(), tables.deletes[0]));
    }
    assert!(problems.is_empty(), "with {workers} worker(s), the engine disagrees with the reference:\n{}", problems.join("\n"));
    expected
}

/// The default scenario: ~30 minutes of event time, 8 domains, 320 clients, 4 partitions.
fn scenario() -> Scenario {
    generate(0x5EED, 12_000, 1_800, policy())
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn the_generated_traffic_exercises_disorder_lateness_and_garbage() {
    let scenario = scenario();
    let expected = reference(&scenario);
    let counts = count_by_reason(&expected.rejects);
    let messages: usize = scenario.partitions.iter().map(Vec::len).sum();
    assert!(scenario.partitions.iter().all(|p| p.len() > messages / 8), "every partition has a share of the traffic");
    assert!(expected.accepted_late > messages / 100, "about 2% are late but accepted: {}", expected.accepted_late);
    let too_late = counts.get(&RejectReason::TooLate).copied().unwrap_or(0);
    assert!(too_late > messages / 400 && too_late < messages / 50, "about 0.5% are too late: {too_late}");
    for reason in [RejectReason::Empty, RejectReason::BadFormat, RejectReason::BadStatus] {
        assert!(counts.get(&reason).is_some_and(|n| *n > 0), "some messages are rejected {reason}: {counts:?}");
    }
    let minutes = expected.traffic.keys().filter(|k| k.window.kind == WindowKind::Minute).count();
    assert!(minutes > 200, "many (domain, minute) windows: {minutes}");
    let ipv6 = expected.clients.values().flat_map(|c| &c.by_requests).any(|c| c.ip.is_ipv6());
    assert!(ipv6, "IPv6 clients make the top lists");
    assert!(scenario.partitions.iter().flatten().any(|m| matches!(&m.truth, Truth::Line(l) if l.upstream_us.is_none())));
}

#[test]
fn every_table_matches_the_reference_with_one_worker() {
    assert_engine_matches_reference(1, scenario());
}

#[test]
fn every_table_matches_the_reference_with_two_workers() {
    assert_engine_matches_reference(2, scenario());
}

#[test]
fn every_table_matches_the_reference_with_four_workers() {
    assert_engine_matches_reference(4, scenario());
}

/// Coarse ticks align stamps down and retirements up; ten-minute windows sliding by two
/// minutes. Windows are whole minutes, so an accepted line reaches every window containing
/// it (half-minute slides are refused by validation: minute panes could not assemble them).
#[test]
fn coarse_ticks_and_two_minute_slides_match_the_reference() {
    let policy = WindowPolicy { tick_secs: 5, out_of_orderness_secs: 10, allowed_lateness_secs: 30, sliding_window_secs: 600, slide_secs: 120, ..policy() };
    policy.validate().expect("valid policy");
    assert!(WindowPolicy { slide_secs: 30, ..policy }.validate().is_err(), "half-minute slides are refused");
    let expected = assert_engine_matches_reference(2, generate(0xC0A5E, 8_000, 1_200, policy));
    assert_eq!(expected.skipped_windows, 0, "an accepted line reaches every window containing it");
    assert!(expected.rejects.iter().any(|r| r.2 == RejectReason::TooLate), "some lines are too late");
}

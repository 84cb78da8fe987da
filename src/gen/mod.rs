//! `edgeflow gen`: a realistic, deterministic CDN access-log generator (the pure core; the CLI
//! and the Kafka writer live elsewhere).
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | [`GenConfig`], [`OutputFormat`], [`GeneratedLine`]/[`Truth`], the [`TrafficGen`] iterator, [`write_lines`] |
//! | `model.rs` | the traffic model: catalog of domains, clients and user agents; sampling of one request |
//! | `render.rs` | nginx rendering (`escape=default` and `escape=json`) and the Filebeat 8.x envelope |
//! | `civil.rs` | civil dates without a date library: `$time_local`, `$time_iso8601`, `@timestamp` |
//! | `dist.rs` | samplers: alias-table Zipf, exponential, lognormal, Pareto, small weighted tables |
//!
//! # Topology
//! Clients reach two nginx load balancers (`10.0.0.2`, `10.0.0.3`), which set
//! `X-Real-IP: $remote_addr` and `X-Forwarded-For: $proxy_add_x_forwarded_for` and spread the
//! requests over `hosts` web servers (`web-1` … `web-N`), each writing its own `access.log`.
//! - `combined` models an edge server that faces clients directly: `$remote_addr` is the client.
//! - `main`, `cdn` and `json` are written behind the load balancers: `$remote_addr` is a load
//!   balancer, `$http_x_real_ip` is the client, and `$http_x_forwarded_for` always ends with the
//!   client, after 0–2 hops the client's side added (private proxy addresses or a forged
//!   public one: the rightmost untrusted address is the client, the leftmost is not).
//!
//! # Time
//! A stream clock starts at `start_ms` and advances by exponential gaps (mean
//! `1000 / rate_per_sec` ms). The first line's event time is `start_ms`; after it each line's
//! event time is `clock − U[0, disorder_ms]`, or `clock − late_ms` for a `late_fraction` of the
//! lines. Lines come out in clock order (the iterator order). nginx writes times with
//! whole-second resolution, so the line shows `floor(event_ms / 1000)`. Filebeat's
//! `@timestamp` (read time) is the clock plus 5–1500 ms.
//!
//! # Determinism
//! Same configuration (seed included) gives byte-identical output: everything is drawn from
//! ChaCha8 streams derived from the seed, no hash-map order is ever observed, and the sampling
//! never looks at the output format, so one seed yields the same requests ([`Truth`]) in every
//! format, with or without the Filebeat envelope. Floating-point `ln`/`exp` come from the
//! platform's libm, so identity across different platforms is likely but not promised.
//!
//! # Filebeat re-sends
//! With `filebeat = true` and `resend_fraction > 0`, after a line, with that probability, the
//! host's Filebeat "restarts" and delivers its last few events again (at-least-once delivery:
//! it resumes from the last acknowledged offset). As after a real restart, the re-sent events
//! have the same `message`, `log.offset`, `log.file.path`, `host.name` and `agent.id`, but a
//! new `@timestamp` (read again) and a new `agent.ephemeral_id` (a new process), which that
//! host's later events keep. So only (host, file, offset) identifies a duplicate, not the
//! payload bytes. Re-sent events are marked [`GeneratedLine::resent`], do not count towards
//! `lines`, and are drawn from a separate stream: the first deliveries have the same lines,
//! times and truth as without re-sends.

mod civil;
mod dist;
mod model;
mod render;
pub mod output;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::sync::Arc;

use rand::Rng;

pub use civil::{civil_from_days, days_from_civil};
pub use model::{CacheStatus, DomainKind, Method};
pub use render::{
    push_escaped_default, push_escaped_nginx_json, ACCESS_LOG_PATH, FILEBEAT_VERSION,
    LOAD_BALANCERS,
};

use dist::{chance, exp1, unit, GenRng};
use model::{sample_request, Catalog, TextScratch};

/// 2026-11-20T08:15:39Z.
pub const DEFAULT_START_MS: i64 = 1_795_162_539_000;

/// The line format nginx writes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// nginx's predefined `combined`.
    Combined,
    /// `combined` + `"$http_x_forwarded_for"` (the `main` of nginx's sample nginx.conf).
    Main,
    /// `main` + real IP, host, timings, cache status and `$bytes_sent`.
    #[default]
    Cdn,
    /// A JSON object per line, `log_format … escape=json`.
    Json,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 4] = [
        OutputFormat::Combined,
        OutputFormat::Main,
        OutputFormat::Cdn,
        OutputFormat::Json,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Combined => "combined",
            OutputFormat::Main => "main",
            OutputFormat::Cdn => "cdn",
            OutputFormat::Json => "json",
        }
    }

    /// The `log_format` string that produces these lines: the parser's preset of the same
    /// name (paste into nginx), so generator and parser cannot drift apart.
    pub fn nginx_log_format(self) -> &'static str {
        dataflows::parse::presets::find(self.name()).expect("every output format is a parser preset").format
    }

    /// The `escape=` parameter of the `log_format` directive: `default` or `json`.
    pub fn nginx_escape(self) -> &'static str {
        if self == OutputFormat::Json {
            "json"
        } else {
            "default"
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OutputFormat {
    type Err = GenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutputFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| GenError::UnknownFormat(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// Every problem of the configuration, not only the first.
    #[error("invalid gen config: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    #[error("unknown output format {0:?} (combined, main, cdn or json)")]
    UnknownFormat(String),
}

/// What to generate. Missing fields take their defaults; unknown fields are rejected.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenConfig {
    pub seed: u64,
    /// Number of domains; popularity is Zipf(`domain_zipf`) over them.
    pub domains: usize,
    /// Number of distinct client addresses; popularity is Zipf(`client_zipf`), so the first
    /// few are heavy hitters (they are scripts: python-requests, curl, a scanner).
    pub clients: usize,
    /// Stream clock (and event time) of the first line, UTC Unix milliseconds.
    pub start_ms: i64,
    /// Mean event-time rate of the stream clock (exponential gaps).
    pub rate_per_sec: f64,
    /// Lines to generate, re-sends not counted; 0 = endless.
    pub lines: u64,
    pub format: OutputFormat,
    /// Wrap each line in a Filebeat 8.x JSON event (the Kafka payload).
    pub filebeat: bool,
    /// Web servers writing the lines (`web-1` … `web-N`), each with its own file offsets.
    pub hosts: usize,
    /// Zone of `$time_local`/`$time_iso8601` in minutes east of UTC (+480 is `+0800`).
    pub tz_offset_minutes: i32,
    /// Most a line's event time lags the stream clock (bounded disorder).
    pub disorder_ms: i64,
    /// Fraction of lines whose event time is `late_ms` behind the stream clock.
    pub late_fraction: f64,
    pub late_ms: i64,
    /// Zipf exponent of domain popularity.
    pub domain_zipf: f64,
    /// Zipf exponent of client popularity.
    pub client_zipf: f64,
    /// Fraction of client addresses that are IPv6 (in 2001:db8::/32).
    pub ipv6_fraction: f64,
    /// Probability per line of a Filebeat re-send burst after it (needs `filebeat`).
    pub resend_fraction: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            domains: 50,
            clients: 100_000,
            start_ms: DEFAULT_START_MS,
            rate_per_sec: 1000.0,
            lines: 100_000,
            format: OutputFormat::Cdn,
            filebeat: false,
            hosts: 4,
            tz_offset_minutes: 480,
            disorder_ms: 2_000,
            late_fraction: 0.001,
            late_ms: 120_000,
            domain_zipf: 1.1,
            client_zipf: 1.0,
            ipv6_fraction: 0.1,
            resend_fraction: 0.0,
        }
    }
}

/// 9999-12-31T00:00:00Z: beyond it `$time_local` would need five-digit years.
const MAX_START_MS: i64 = 253_402_214_400_000;

impl GenConfig {
    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), GenError> {
        let mut p = Vec::new();
        let mut need = |ok: bool, msg: String| {
            if !ok {
                p.push(msg);
            }
        };
        let fraction = |x: f64| (0.0..=1.0).contains(&x);
        let exponent = |x: f64| (0.0..=10.0).contains(&x);
        need(
            (1..=1_000_000).contains(&self.domains),
            format!("domains must be in 1..=1000000 (got {})", self.domains),
        );
        need(
            (1..=50_000_000).contains(&self.clients),
            format!("clients must be in 1..=50000000 (got {})", self.clients),
        );
        need(
            (1..=10_000).contains(&self.hosts),
            format!("hosts must be in 1..=10000 (got {})", self.hosts),
        );
        need(
            self.rate_per_sec > 0.0 && self.rate_per_sec <= 1e6,
            format!(
                "rate_per_sec must be in (0, 1000000] (got {})",
                self.rate_per_sec
            ),
        );
        need(
            (-1439..=1439).contains(&self.tz_offset_minutes),
            format!(
                "tz_offset_minutes must be in -1439..=1439 (got {})",
                self.tz_offset_minutes
            ),
        );
        need(
            self.disorder_ms >= 0,
            format!(
                "disorder_ms must not be negative (got {})",
                self.disorder_ms
            ),
        );
        need(
            self.late_ms >= 0,
            format!("late_ms must not be negative (got {})", self.late_ms),
        );
        need(
            fraction(self.late_fraction),
            format!(
                "late_fraction must be in [0, 1] (got {})",
                self.late_fraction
            ),
        );
        need(
            fraction(self.ipv6_fraction),
            format!(
                "ipv6_fraction must be in [0, 1] (got {})",
                self.ipv6_fraction
            ),
        );
        need(
            fraction(self.resend_fraction),
            format!(
                "resend_fraction must be in [0, 1] (got {})",
                self.resend_fraction
            ),
        );
        need(
            self.resend_fraction == 0.0 || self.filebeat,
            "resend_fraction needs filebeat = true (re-sends are Filebeat events)".to_owned(),
        );
        need(
            exponent(self.domain_zipf),
            format!("domain_zipf must be in [0, 10] (got {})", self.domain_zipf),
        );
        need(
            exponent(self.client_zipf),
            format!("client_zipf must be in [0, 10] (got {})", self.client_zipf),
        );
        let earliest = self
            .start_ms
            .checked_sub(self.late_ms.max(0))
            .and_then(|t| t.checked_sub(self.disorder_ms.max(0)));
        need(
            earliest.is_some_and(|t| t >= 0) && self.start_ms <= MAX_START_MS,
            format!(
                "start_ms minus late_ms and disorder_ms must not precede 1970, and start_ms must precede year 9999 (got start_ms {})",
                self.start_ms
            ),
        );
        if p.is_empty() {
            Ok(())
        } else {
            Err(GenError::InvalidConfig(p))
        }
    }
}

/// Ground truth of one line, as the generator decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truth {
    /// Popularity rank of the domain (0 = most requested).
    pub domain_index: usize,
    /// `$host`.
    pub domain: Arc<str>,
    /// Popularity rank of the client (0 = heaviest hitter).
    pub client_index: usize,
    /// The client: `$remote_addr` in `combined`, `$http_x_real_ip` otherwise.
    pub client_ip: IpAddr,
    pub method: Method,
    pub status: u16,
    /// `$body_bytes_sent`.
    pub body_bytes: u64,
    /// `$bytes_sent` (body + headers; 0 for 499).
    pub bytes_sent: u64,
    /// `$request_time` in µs; always whole milliseconds, nginx's resolution.
    pub request_time_us: u64,
    /// Sum over the upstream attempts of `$upstream_response_time` in µs; `None` when unset.
    pub upstream_time_us: Option<u64>,
    pub cache: CacheStatus,
}

impl Default for Truth {
    fn default() -> Self {
        Truth {
            domain_index: 0,
            domain: Arc::from(""),
            client_index: 0,
            client_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            method: Method::Get,
            status: 0,
            body_bytes: 0,
            bytes_sent: 0,
            request_time_us: 0,
            upstream_time_us: None,
            cache: CacheStatus::Unset,
        }
    }
}

/// One generated line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeneratedLine {
    /// Event time (UTC Unix ms); the line shows it floored to the second.
    pub event_ms: i64,
    /// The stream clock at emission: non-decreasing in iterator order (pace on this).
    pub clock_ms: i64,
    /// When Filebeat read the line (its `@timestamp`): a little after `clock_ms`.
    pub read_ms: i64,
    /// Which web server wrote it (`web-{host_index + 1}`).
    pub host_index: usize,
    /// Byte offset of the line in its host's access.log (Filebeat's `log.offset`).
    pub offset: u64,
    /// The nginx log line, without newline.
    pub line: String,
    /// What goes to Kafka: the line, or the Filebeat event when `filebeat = true`.
    pub payload: String,
    /// A Filebeat re-send of an event delivered before (same payload).
    pub resent: bool,
    pub truth: Truth,
}

impl GeneratedLine {
    /// An empty line with buffers sized for typical output, for [`TrafficGen::next_into`].
    pub fn new() -> Self {
        GeneratedLine {
            line: String::with_capacity(512),
            payload: String::with_capacity(1024),
            ..Default::default()
        }
    }
}

/// How many recent events a re-send can repeat.
const RESEND_WINDOW: usize = 64;

/// The generator: an iterator of [`GeneratedLine`]s (see the module docs for the model).
pub struct TrafficGen {
    cfg: GenConfig,
    /// Requests and times.
    rng: GenRng,
    /// Re-send decisions only, so that re-sends never change the first deliveries.
    resend_rng: GenRng,
    catalog: Catalog,
    /// Per host: its Filebeat `agent.id`, and the event's tail after `message` (which holds
    /// the current `ephemeral_id`).
    agent_ids: Vec<String>,
    host_tails: Vec<String>,
    offsets: Vec<u64>,
    mean_gap_us: f64,
    /// Stream clock minus `start_ms`, in µs (fractional, so fast rates do not drift).
    elapsed_us: f64,
    emitted: u64,
    text: TextScratch,
    time: civil::TimeCache,
    recent: VecDeque<GeneratedLine>,
    pending: VecDeque<GeneratedLine>,
    /// Where [`Iterator::next`] renders before copying out exactly sized strings.
    scratch: GeneratedLine,
}

fn push_uuid<R: Rng>(rng: &mut R, out: &mut String) {
    let a: u64 = rng.random();
    let b: u64 = rng.random();
    let a = (a & !0xf000) | 0x4000; // version 4
    let b = (b & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    render::push_hex(out, a >> 32, 8);
    out.push('-');
    render::push_hex(out, (a >> 16) & 0xffff, 4);
    out.push('-');
    render::push_hex(out, a & 0xffff, 4);
    out.push('-');
    render::push_hex(out, b >> 48, 4);
    out.push('-');
    render::push_hex(out, b & 0xffff_ffff_ffff, 12);
}

impl TrafficGen {
    /// Validates the configuration and builds the catalog (O(domains + clients)).
    pub fn new(cfg: GenConfig) -> Result<Self, GenError> {
        cfg.validate()?;
        let catalog = Catalog::build(
            &mut GenRng::new(cfg.seed, 1),
            cfg.domains,
            cfg.clients,
            cfg.domain_zipf,
            cfg.client_zipf,
            cfg.ipv6_fraction,
        );
        let mut ids = GenRng::new(cfg.seed, 3);
        let mut agent_ids = Vec::with_capacity(cfg.hosts);
        let mut host_tails = Vec::with_capacity(cfg.hosts);
        for h in 0..cfg.hosts {
            let (mut agent, mut ephemeral) = (String::new(), String::new());
            push_uuid(&mut ids, &mut agent);
            push_uuid(&mut ids, &mut ephemeral);
            host_tails.push(render::filebeat_tail(
                &Self::host_name(h),
                &agent,
                &ephemeral,
            ));
            agent_ids.push(agent);
        }
        Ok(TrafficGen {
            rng: GenRng::new(cfg.seed, 0),
            resend_rng: GenRng::new(cfg.seed, 2),
            catalog,
            agent_ids,
            host_tails,
            offsets: vec![0; cfg.hosts],
            mean_gap_us: 1e6 / cfg.rate_per_sec,
            elapsed_us: 0.0,
            emitted: 0,
            text: TextScratch::default(),
            time: civil::TimeCache::new(cfg.format == OutputFormat::Json, cfg.tz_offset_minutes),
            recent: VecDeque::new(),
            pending: VecDeque::new(),
            scratch: GeneratedLine::new(),
            cfg,
        })
    }

    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }

    /// `web-1` for host index 0, and so on.
    pub fn host_name(host_index: usize) -> String {
        format!("web-{}", host_index + 1)
    }

    /// Domain names in popularity order.
    pub fn domains(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.catalog.domains.iter().map(|d| &*d.name)
    }

    /// What a domain serves.
    pub fn domain_kind(&self, rank: usize) -> Option<DomainKind> {
        self.catalog.domains.get(rank).map(|d| d.kind)
    }

    /// Client address by popularity rank (0 = heaviest hitter).
    pub fn client(&self, rank: usize) -> Option<IpAddr> {
        self.catalog.clients.get(rank).map(|c| c.ip)
    }

    /// Lines generated so far, re-sends not counted.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Fills `out` with the next line, reusing its buffers (the fast path; [`Iterator::next`]
    /// allocates a fresh line). Returns false at the end.
    pub fn next_into(&mut self, out: &mut GeneratedLine) -> bool {
        if let Some(again) = self.pending.pop_front() {
            out.clone_from(&again);
            return true;
        }
        if self.cfg.lines != 0 && self.emitted >= self.cfg.lines {
            return false;
        }
        let cfg = &self.cfg;
        let rng = &mut self.rng;
        if self.emitted > 0 {
            self.elapsed_us += exp1(rng) * self.mean_gap_us;
        }
        let clock_ms = cfg.start_ms + (self.elapsed_us / 1000.0) as i64;
        // Always the same draws, whatever the knobs, so they move nothing else.
        let late = chance(rng, cfg.late_fraction);
        let jitter = (unit(rng) * (cfg.disorder_ms as f64 + 1.0)) as i64;
        let event_ms = if self.emitted == 0 {
            clock_ms
        } else if late {
            clock_ms - cfg.late_ms
        } else {
            clock_ms - jitter.min(cfg.disorder_ms)
        };
        let host = rng.random_range(0..cfg.hosts);
        let read_ms = clock_ms + rng.random_range(5..=1500);
        let req = sample_request(rng, &self.catalog, &mut self.text);

        out.line.clear();
        render::render_line(
            &mut out.line,
            cfg.format,
            &mut self.time,
            event_ms,
            &req,
            &self.catalog,
            &self.text,
        );
        let offset = self.offsets[host];
        self.offsets[host] += out.line.len() as u64 + 1;
        out.payload.clear();
        if cfg.filebeat {
            render::render_filebeat(
                &mut out.payload,
                read_ms,
                offset,
                &out.line,
                &self.host_tails[host],
            );
        } else {
            out.payload.push_str(&out.line);
        }
        out.event_ms = event_ms;
        out.clock_ms = clock_ms;
        out.read_ms = read_ms;
        out.host_index = host;
        out.offset = offset;
        out.resent = false;
        let client = &self.catalog.clients[req.client];
        let t = &mut out.truth;
        t.domain_index = req.domain;
        if !Arc::ptr_eq(&t.domain, &self.catalog.domains[req.domain].name) {
            t.domain = Arc::clone(&self.catalog.domains[req.domain].name);
        }
        t.client_index = req.client;
        t.client_ip = client.ip;
        t.method = req.method;
        t.status = req.status;
        t.body_bytes = req.body;
        t.bytes_sent = req.bytes_sent;
        t.request_time_us = req.request_ms * 1000;
        t.upstream_time_us = (req.upstreams > 0).then(|| {
            req.upstream_ms[..usize::from(req.upstreams)]
                .iter()
                .sum::<u64>()
                * 1000
        });
        t.cache = req.cache;
        self.emitted += 1;

        if self.cfg.resend_fraction > 0.0 {
            self.remember_and_maybe_resend(out);
        }
        true
    }

    fn remember_and_maybe_resend(&mut self, line: &GeneratedLine) {
        if self.recent.len() == RESEND_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(line.clone());
        if !chance(&mut self.resend_rng, self.cfg.resend_fraction) {
            return;
        }
        // The host's Filebeat restarts (a new ephemeral id from now on) and reads again, from
        // the last acknowledged offset, the events it had not seen acknowledged.
        let host = line.host_index;
        let mut ephemeral = String::new();
        push_uuid(&mut self.resend_rng, &mut ephemeral);
        self.host_tails[host] =
            render::filebeat_tail(&Self::host_name(host), &self.agent_ids[host], &ephemeral);
        let same_host: Vec<&GeneratedLine> = self
            .recent
            .iter()
            .filter(|l| l.host_index == host)
            .collect();
        let k = self.resend_rng.random_range(1..=same_host.len());
        let unacked = &same_host[same_host.len() - k..];
        let last_read = unacked
            .iter()
            .map(|l| l.read_ms)
            .max()
            .unwrap_or(line.read_ms);
        let restart_ms = last_read.max(line.read_ms) + self.resend_rng.random_range(1..=50);
        for (i, l) in unacked.iter().enumerate() {
            let mut again = (*l).clone();
            again.resent = true;
            again.read_ms = restart_ms + i as i64;
            again.payload.clear();
            render::render_filebeat(
                &mut again.payload,
                again.read_ms,
                again.offset,
                &again.line,
                &self.host_tails[host],
            );
            self.pending.push_back(again);
        }
    }
}

impl Iterator for TrafficGen {
    type Item = GeneratedLine;

    fn next(&mut self) -> Option<GeneratedLine> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let line = self.next_into(&mut scratch).then(|| scratch.clone());
        self.scratch = scratch;
        line
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.cfg.lines == 0 {
            return (usize::MAX, None);
        }
        let left = usize::try_from(self.cfg.lines - self.emitted).unwrap_or(usize::MAX);
        let low = left.saturating_add(self.pending.len());
        (
            low,
            if self.cfg.resend_fraction > 0.0 {
                None
            } else {
                Some(low)
            },
        )
    }
}

/// Writes payloads (the line, or the Filebeat event), one per line, until the generator ends
/// or `max_lines` have been written (re-sends count here); returns how many were written.
/// With `lines = 0` and no `max_lines` it never returns. Wrap `w` in a `BufWriter`.
pub fn write_lines<W: Write>(
    w: &mut W,
    gen: &mut TrafficGen,
    max_lines: Option<u64>,
) -> io::Result<u64> {
    let mut line = GeneratedLine::new();
    let mut n = 0;
    while max_lines.is_none_or(|m| n < m) && gen.next_into(&mut line) {
        w.write_all(line.payload.as_bytes())?;
        w.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

//! Aggregates. Two kinds:
//!
//! - Those that form a commutative group ride inside differential's difference type:
//!   `Traffic` (requests, bytes, status classes, cache outcomes) and `ClientTraffic`. Adding two
//!   values merges two sets of lines, negating one retracts them, so totals stay incremental
//!   without a per-record allocation or a `reduce`.
//! - Those that do not (distinct clients, top-k, percentiles, peak second) are kept
//!   incrementally by the window engine (`panes`, `topk`); the summaries they produce and the
//!   batch definitions they must agree with (`top_clients`, `percentile_of`) live here.
//!
//! Latency percentiles come from a log-bucket histogram with ratio `1 + 2ε` (ε = 1%): a value
//! reported as its bucket's geometric midpoint is within 1% of any value in the bucket.

use std::net::IpAddr;

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Semigroup};
use serde::{Deserialize, Serialize};

use crate::key::{CacheOutcome, Hit};

/// Request, byte, status-class and cache totals of a set of lines. Signed, because a
/// retraction is a negative set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Traffic {
    pub requests: i64,
    /// Response bytes (see `CleanRecord::bytes`).
    pub bytes: i64,
    /// Requests by status class: index 0 is 1xx, 1 is 2xx, … 4 is 5xx.
    pub status_class: [i64; 5],
    /// Requests by cache outcome: hit (HIT, STALE, UPDATING, REVALIDATED), miss (MISS,
    /// EXPIRED), other (BYPASS, `-`). Lines whose format lacks the field count in none.
    pub cache: [i64; 3],
}

/// One line's contribution to `Traffic`, worked out once and added to each of the line's
/// windows (four additions instead of a ten-field sum per window).
#[derive(Clone, Copy, Debug)]
pub struct LineTraffic {
    bytes: i64,
    status_class: usize,
    cache: Option<usize>,
}

impl LineTraffic {
    pub fn of_hit(hit: &Hit) -> LineTraffic {
        LineTraffic {
            bytes: i64::try_from(hit.bytes).unwrap_or(i64::MAX),
            // Cleaning guarantees 100..=599.
            status_class: usize::from(hit.status / 100).clamp(1, 5) - 1,
            cache: match hit.cache {
                CacheOutcome::Hit => Some(0),
                CacheOutcome::Miss => Some(1),
                CacheOutcome::Other => Some(2),
                CacheOutcome::Unknown => None,
            },
        }
    }
}

impl Traffic {
    pub fn of_hit(hit: &Hit) -> Traffic {
        let mut traffic = Traffic::default();
        traffic.add_line(&LineTraffic::of_hit(hit));
        traffic
    }

    pub fn add_line(&mut self, line: &LineTraffic) {
        self.requests += 1;
        self.bytes += line.bytes;
        self.status_class[line.status_class] += 1;
        if let Some(outcome) = line.cache {
            self.cache[outcome] += 1;
        }
    }

    pub fn plus(&mut self, rhs: &Traffic) {
        self.plus_equals(rhs);
    }

    /// `self - rhs`.
    pub fn minus(&self, rhs: &Traffic) -> Traffic {
        let mut difference = *self;
        difference.plus_equals(&rhs.negated());
        difference
    }

    pub fn negated(mut self) -> Traffic {
        self.negate();
        self
    }

    /// Requests whose cache outcome is known; zero means the format has no cache field.
    pub fn cache_known(&self) -> i64 {
        self.cache.iter().sum()
    }
}

impl IsZero for Traffic {
    fn is_zero(&self) -> bool {
        *self == Traffic::default()
    }
}

impl Semigroup for Traffic {
    fn plus_equals(&mut self, rhs: &Self) {
        self.requests += rhs.requests;
        self.bytes += rhs.bytes;
        for (mine, theirs) in self.status_class.iter_mut().zip(rhs.status_class.iter()) {
            *mine += theirs;
        }
        for (mine, theirs) in self.cache.iter_mut().zip(rhs.cache.iter()) {
            *mine += theirs;
        }
    }
}

impl Monoid for Traffic {
    fn zero() -> Self {
        Traffic::default()
    }
}

impl Abelian for Traffic {
    fn negate(&mut self) {
        self.requests = -self.requests;
        self.bytes = -self.bytes;
        for count in self.status_class.iter_mut().chain(self.cache.iter_mut()) {
            *count = -*count;
        }
    }
}

/// Requests and bytes of one client: the difference type of the per-client collections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientTraffic {
    pub requests: i64,
    pub bytes: i64,
}

impl IsZero for ClientTraffic {
    fn is_zero(&self) -> bool {
        self.requests == 0 && self.bytes == 0
    }
}

impl Semigroup for ClientTraffic {
    fn plus_equals(&mut self, rhs: &Self) {
        self.requests += rhs.requests;
        self.bytes += rhs.bytes;
    }
}

impl Monoid for ClientTraffic {
    fn zero() -> Self {
        ClientTraffic::default()
    }
}

impl Abelian for ClientTraffic {
    fn negate(&mut self) {
        self.requests = -self.requests;
        self.bytes = -self.bytes;
    }
}

/// How many clients the per-domain rankings keep.
pub const TOP_CLIENTS: usize = 10;
/// How many clients the cross-domain abuse view keeps per minute.
pub const TOP_ABUSERS: usize = 20;

/// One ranked client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RankedClient {
    pub ip: IpAddr,
    pub requests: u64,
    pub bytes: u64,
}

/// Distinct clients of a window and its top clients by requests and by bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientSummary {
    pub distinct: u64,
    pub by_requests: Vec<RankedClient>,
    pub by_bytes: Vec<RankedClient>,
}

/// Everything one output row of a minute or sliding window holds: its traffic totals,
/// client statistics, latency percentiles, busiest second and, for a minute, requests per
/// exact status code. The window engine emits it whole, so the sink writes each changed row
/// once with all its columns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowRow {
    pub traffic: Traffic,
    pub clients: ClientSummary,
    pub latency: LatencySummary,
    /// Bytes of the busiest second.
    pub peak_second_bytes: u64,
    /// Requests per status code, by code; minute windows only (empty for sliding ones).
    pub statuses: Vec<(u16, u64)>,
}

/// The `k` largest clients by `metric`, ties broken by address so the result is
/// deterministic whatever order the input came in.
pub fn top_clients(group: &[(&IpAddr, ClientTraffic)], k: usize, metric: impl Fn(&ClientTraffic) -> i64) -> Vec<RankedClient> {
    let mut ranked: Vec<(i64, IpAddr, ClientTraffic)> =
        group.iter().filter(|(_, t)| t.requests > 0).map(|(ip, t)| (metric(t), **ip, *t)).collect();
    let order = |a: &(i64, IpAddr, ClientTraffic), b: &(i64, IpAddr, ClientTraffic)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
    if ranked.len() > k {
        ranked.select_nth_unstable_by(k - 1, order);
        ranked.truncate(k);
    }
    ranked.sort_unstable_by(order);
    ranked
        .into_iter()
        .map(|(_, ip, t)| RankedClient { ip, requests: t.requests.max(0) as u64, bytes: t.bytes.max(0) as u64 })
        .collect()
}

/// The latency measures histogrammed per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LatencyMetric {
    /// `$request_time`.
    Request,
    /// `$upstream_response_time` (the last upstream tried).
    Upstream,
}

/// Relative error bound of reported percentiles.
pub const LATENCY_RELATIVE_ERROR: f64 = 0.01;
/// Bucket growth factor: a bucket `[lo, lo·γ)` reported at `lo·√γ` is within ε of any value
/// in it when `√γ ≤ 1 + ε`; γ = (1 + ε)² is the widest such bucket.
const GAMMA: f64 = (1.0 + LATENCY_RELATIVE_ERROR) * (1.0 + LATENCY_RELATIVE_ERROR);

/// Histogram bucket of a latency in microseconds. Bucket 0 holds exactly 0 µs.
pub fn latency_bucket(micros: u32) -> u16 {
    if micros == 0 {
        return 0;
    }
    // ln(u32::MAX) / ln(γ) ≈ 1115, so the index fits a u16 with room.
    1 + ((micros as f64).ln() / GAMMA.ln()).floor() as u16
}

/// The value a bucket reports, in microseconds (its geometric midpoint).
pub fn bucket_value_us(bucket: u16) -> f64 {
    if bucket == 0 {
        return 0.0;
    }
    GAMMA.powf(f64::from(bucket - 1) + 0.5)
}

/// Percentiles of one window, in microseconds (`None` if the format lacks the field).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LatencySummary {
    /// p50, p95, p99 of `$request_time`, µs, rounded.
    pub request: Option<[u64; 3]>,
    /// p95 of `$upstream_response_time`, µs, rounded.
    pub upstream_p95: Option<u64>,
}

/// Nearest-rank percentile `p` (0 < p ≤ 1) of a histogram given as sorted (bucket, count).
pub fn percentile_of(histogram: &[(u16, i64)], p: f64) -> Option<f64> {
    let total: i64 = histogram.iter().map(|(_, c)| *c).filter(|c| *c > 0).sum();
    if total <= 0 {
        return None;
    }
    let rank = ((p * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (bucket, count) in histogram {
        seen += (*count).max(0);
        if seen >= rank {
            return Some(bucket_value_us(*bucket));
        }
    }
    histogram.last().map(|(b, _)| bucket_value_us(*b))
}

/// Percentiles of a window from its latency histograms, given as sorted (bucket, count).
pub fn latency_summary(request: &[(u16, i64)], upstream: &[(u16, i64)]) -> LatencySummary {
    let at = |h: &[(u16, i64)], p: f64| percentile_of(h, p).map(|v| v.round() as u64);
    LatencySummary {
        request: match (at(request, 0.50), at(request, 0.95), at(request, 0.99)) {
            (Some(p50), Some(p95), Some(p99)) => Some([p50, p95, p99]),
            _ => None,
        },
        upstream_p95: at(upstream, 0.95),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(requests: i64, bytes: i64, class: usize) -> Traffic {
        let mut status_class = [0; 5];
        status_class[class] = requests;
        Traffic { requests, bytes, status_class, cache: [requests, 0, 0] }
    }

    #[test]
    fn traffic_is_an_abelian_group() {
        let a = traffic(1, 100, 1);
        let b = traffic(2, 50, 3);
        let mut sum = a;
        sum.plus_equals(&b);
        assert_eq!(sum, Traffic { requests: 3, bytes: 150, status_class: [0, 1, 0, 2, 0], cache: [3, 0, 0] });
        let mut back = sum;
        back.plus_equals(&b.negated());
        assert_eq!(back, a);
        let mut zero = a;
        zero.plus_equals(&a.negated());
        assert!(zero.is_zero());
    }

    #[test]
    fn buckets_keep_the_relative_error_bound() {
        for micros in [1u32, 2, 7, 99, 1_000, 12_345, 250_000, 1_000_000, 59_999_000, u32::MAX] {
            let reported = bucket_value_us(latency_bucket(micros));
            let error = (reported - f64::from(micros)).abs() / f64::from(micros);
            assert!(error <= LATENCY_RELATIVE_ERROR + 1e-12, "{micros} µs reported as {reported} ({error})");
        }
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(bucket_value_us(0), 0.0);
        assert!(latency_bucket(u32::MAX) < 1200);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        // 100 values 1..=100 ms: p50 = 50 ms, p95 = 95 ms, p99 = 99 ms.
        let mut histogram: Vec<(u16, i64)> = Vec::new();
        for ms in 1..=100u32 {
            let bucket = latency_bucket(ms * 1000);
            match histogram.last_mut() {
                Some((b, c)) if *b == bucket => *c += 1,
                _ => histogram.push((bucket, 1)),
            }
        }
        for (p, exact) in [(0.5, 50_000.0), (0.95, 95_000.0), (0.99, 99_000.0)] {
            let got = percentile_of(&histogram, p).unwrap();
            assert!((got - exact).abs() / exact <= LATENCY_RELATIVE_ERROR, "p{p}: {got} vs {exact}");
        }
        assert_eq!(percentile_of(&[], 0.5), None);
    }

    #[test]
    fn top_clients_rank_deterministically() {
        let ips: Vec<IpAddr> = (1..=5).map(|i| format!("192.0.2.{i}").parse().unwrap()).collect();
        let group: Vec<(&IpAddr, ClientTraffic)> = vec![
            (&ips[0], ClientTraffic { requests: 5, bytes: 10 }),
            (&ips[1], ClientTraffic { requests: 9, bytes: 1 }),
            (&ips[2], ClientTraffic { requests: 5, bytes: 900 }),
            (&ips[3], ClientTraffic { requests: 1, bytes: 50 }),
            (&ips[4], ClientTraffic { requests: 0, bytes: 0 }),
        ];
        let top = top_clients(&group, 3, |t| t.requests);
        assert_eq!(top.iter().map(|c| c.ip).collect::<Vec<_>>(), vec![ips[1], ips[0], ips[2]]);
        let by_bytes = top_clients(&group, 10, |t| t.bytes);
        assert_eq!(by_bytes[0].ip, ips[2]);
        assert_eq!(by_bytes.len(), 4);
    }

    #[test]
    fn latency_summary_per_metric() {
        let request = [(latency_bucket(10_000), 3i64)];
        let upstream = [(latency_bucket(8_000), 2i64)];
        let summary = latency_summary(&request, &upstream);
        let [p50, _, p99] = summary.request.unwrap();
        assert!((p50 as f64 - 10_000.0).abs() <= 100.0 && (p99 as f64 - 10_000.0).abs() <= 100.0);
        assert!((summary.upstream_p95.unwrap() as f64 - 8_000.0).abs() <= 80.0);
        assert_eq!(latency_summary(&request, &[]).upstream_p95, None);
    }
}

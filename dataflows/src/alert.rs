//! Traffic alerts per domain, computed from the closed minute series.
//!
//! Contract: an [`AlertDetector`] is a pure, deterministic state machine for ONE domain. It is
//! fed the final values of that domain's closed minutes ([`MinuteStats`]), one per minute, in
//! minute order with no gaps, and returns the [`AlertEvent`]s (opened or resolved incidents)
//! that minute causes. Same input sequence, same events: no clocks, no randomness, no I/O.
//!
//! How to feed it (the caller, a timely operator after the minute series):
//! - Feed a minute only once it is final (its window has retired: the frontier has passed
//!   `minute_start + 60 + allowed_lateness`). A corrected minute cannot be fed again.
//! - Feed EVERY minute, in order. A minute in which the domain had no traffic produces no row
//!   in the minute series, but it is exactly what a collapse looks like, so the caller must
//!   feed it as zeros: [`MinuteStats::quiet`], or [`AlertDetector::feed_quiet_until`] to fill
//!   a gap before the next row. [`AlertDetector::feed`] rejects a gap or a repeated minute
//!   ([`FeedError`]) rather than guessing.
//! - The first minute fed may be any minute; history starts there.
//! - Store the returned events with [`AlertRow::from_event`]: an upsert on
//!   `(domain, kind, opened_minute)` writes the opened row, and the resolved event rewrites the
//!   same row with `resolved_minute` set.
//!
//! What is judged, per minute:
//! - `traffic_spike` / `traffic_collapse`: requests against the traffic baseline, the MEDIAN
//!   requests/minute of the last `baseline_minutes` normal minutes. The median, not the mean:
//!   the spike or outage being measured barely moves it. "Normal" means no traffic condition
//!   (spike or collapse) held in that minute: anomalous minutes never enter the history, so an
//!   outage does not become the new normal, and a long incident is judged against the level
//!   before it (the baseline is frozen while traffic stays anomalous). Until `baseline_minutes`
//!   normal minutes have been seen (warm-up), or while the baseline is below
//!   `min_baseline_requests` (a quiet site), traffic is not judged.
//! - `error_rate`: 5xx / requests above `error_ratio`, judged only in minutes with at least
//!   `error_min_requests` requests. A fixed threshold, not a baseline, so it is judged from the
//!   first minute fed (no warm-up).
//! - `cache_collapse`: cache hit ratio `hit / (hit + miss)` (BYPASS and uncacheable requests
//!   are neither) dropping by at least `cache_hit_drop` (absolute) below its baseline, the
//!   median ratio of the last `baseline_minutes` normal minutes that had at least
//!   `cache_min_requests` hits + misses. Judged only in such minutes, after that warm-up.
//!
//! Hysteresis: a condition must hold `open_after_minutes` consecutive judged minutes to open
//! an incident, and be absent `resolve_after_minutes` consecutive judged minutes to resolve
//! it. The event is emitted when the streak completes, but it carries the minute the streak
//! began: `opened_minute` is the first minute the condition held, `resolved_minute` the first
//! minute it no longer held. A minute that cannot be judged (too little traffic, no baseline)
//! neither extends nor breaks a streak. So one incident opens once and resolves once, and a
//! blip shorter than `open_after_minutes` opens nothing.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

/// `[alerts]` thresholds; see the module doc for how each is used.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertPolicy {
    /// Normal minutes the baselines (traffic, cache hit ratio) are the median of; also the
    /// warm-up before those kinds are judged.
    pub baseline_minutes: u32,
    /// Traffic baseline (requests/minute) below which spikes and collapses are not judged,
    /// so quiet sites do not flap.
    pub min_baseline_requests: f64,
    /// Spike: requests >= spike_factor × baseline.
    pub spike_factor: f64,
    /// Collapse: requests <= collapse_factor × baseline (0.3 = a drop of 70% or more).
    pub collapse_factor: f64,
    /// Error rate: 5xx / requests > error_ratio.
    pub error_ratio: f64,
    /// Fewest requests in a minute for its error rate to be judged.
    pub error_min_requests: u64,
    /// Cache collapse: hit ratio <= baseline ratio − cache_hit_drop (absolute, 0..1).
    pub cache_hit_drop: f64,
    /// Fewest cache hits + misses in a minute for its hit ratio to be judged.
    pub cache_min_requests: u64,
    /// Consecutive judged minutes a condition must hold to open an incident.
    pub open_after_minutes: u32,
    /// Consecutive judged minutes a condition must be absent to resolve an incident.
    pub resolve_after_minutes: u32,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            baseline_minutes: 30,
            min_baseline_requests: 60.0,
            spike_factor: 3.0,
            collapse_factor: 0.3,
            error_ratio: 0.05,
            error_min_requests: 60,
            cache_hit_drop: 0.3,
            cache_min_requests: 60,
            open_after_minutes: 2,
            resolve_after_minutes: 3,
        }
    }
}

impl AlertPolicy {
    /// Every problem with the thresholds, as `alerts.<key> ...` messages.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !(3..=1440).contains(&self.baseline_minutes) {
            problems.push(format!("alerts.baseline_minutes must be in 3..=1440, got {}", self.baseline_minutes));
        }
        if !(self.min_baseline_requests.is_finite() && self.min_baseline_requests >= 0.0) {
            problems.push(format!("alerts.min_baseline_requests must be >= 0, got {}", self.min_baseline_requests));
        }
        if !(self.spike_factor.is_finite() && self.spike_factor > 1.0) {
            problems.push(format!("alerts.spike_factor must be > 1, got {}", self.spike_factor));
        }
        if !(self.collapse_factor > 0.0 && self.collapse_factor < 1.0) {
            problems.push(format!("alerts.collapse_factor must be in (0, 1), got {}", self.collapse_factor));
        }
        if !(self.error_ratio > 0.0 && self.error_ratio < 1.0) {
            problems.push(format!("alerts.error_ratio must be in (0, 1), got {}", self.error_ratio));
        }
        if !(self.cache_hit_drop > 0.0 && self.cache_hit_drop <= 1.0) {
            problems.push(format!("alerts.cache_hit_drop must be in (0, 1], got {}", self.cache_hit_drop));
        }
        for (name, value) in [("open_after_minutes", self.open_after_minutes), ("resolve_after_minutes", self.resolve_after_minutes)] {
            if !(1..=60).contains(&value) {
                problems.push(format!("alerts.{name} must be in 1..=60, got {value}"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// The final values of one closed minute of one domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteStats {
    /// Unix seconds of the minute's start (a multiple of 60), UTC.
    pub minute_start: u64,
    pub requests: u64,
    pub status_5xx: u64,
    /// Cache hits and misses (`$upstream_cache_status`); `None` when the format lacks it.
    pub cache_hit: Option<u64>,
    pub cache_miss: Option<u64>,
}

impl MinuteStats {
    /// A minute without traffic: what the caller feeds for a minute the series has no row for.
    pub fn quiet(minute_start: u64) -> MinuteStats {
        MinuteStats { minute_start, requests: 0, status_5xx: 0, cache_hit: None, cache_miss: None }
    }
}

/// What an incident is about. The names match the `alerts.kind` ENUM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    TrafficSpike,
    TrafficCollapse,
    ErrorRate,
    CacheCollapse,
}

impl AlertKind {
    pub const ALL: [AlertKind; 4] = [AlertKind::TrafficSpike, AlertKind::TrafficCollapse, AlertKind::ErrorRate, AlertKind::CacheCollapse];

    /// The value stored in `alerts.kind` and sent in notifications.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::TrafficSpike => "traffic_spike",
            AlertKind::TrafficCollapse => "traffic_collapse",
            AlertKind::ErrorRate => "error_rate",
            AlertKind::CacheCollapse => "cache_collapse",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an event opens or resolves its incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Opened,
    Resolved,
}

impl Transition {
    /// The value of `alert_notifications.event`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Opened => "opened",
            Transition::Resolved => "resolved",
        }
    }
}

/// An incident opened (`resolved_minute` is `None`) or resolved (`Some`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub domain: String,
    pub kind: AlertKind,
    /// Unix seconds of the first minute the condition held.
    pub opened_minute: u64,
    /// Unix seconds of the first minute it no longer held; `None` on the opened event.
    pub resolved_minute: Option<u64>,
    /// The value that opened the incident: requests/minute, or a ratio for error rate and
    /// cache hits. A resolved event repeats the opening values.
    pub observed: f64,
    /// What `observed` was compared with: the traffic or hit-ratio baseline, or the error-rate
    /// threshold.
    pub baseline: f64,
    /// For a person; a resolved event appends what the first normal minute looked like.
    pub detail: String,
}

impl AlertEvent {
    #[cfg(test)]
    fn with_domain(mut self, domain: &str) -> AlertEvent {
        self.domain = domain.to_owned();
        self
    }

    pub fn transition(&self) -> Transition {
        if self.resolved_minute.is_some() { Transition::Resolved } else { Transition::Opened }
    }
}

/// One row of the `alerts` table (`src/sink/schema.rs`), ready to be upserted on its primary
/// key `(domain, kind, opened_minute)`. Times are Unix seconds (UTC).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertRow {
    pub domain: String,
    /// `alerts.kind` ENUM value.
    pub kind: &'static str,
    pub opened_minute: u64,
    pub resolved_minute: Option<u64>,
    pub observed: f64,
    pub baseline: f64,
    /// At most [`AlertRow::DETAIL_MAX_CHARS`] characters (the column is `VARCHAR(255)`).
    pub detail: String,
}

impl AlertRow {
    pub const DETAIL_MAX_CHARS: usize = 255;

    pub fn from_event(event: &AlertEvent) -> AlertRow {
        AlertRow {
            domain: event.domain.clone(),
            kind: event.kind.as_str(),
            opened_minute: event.opened_minute,
            resolved_minute: event.resolved_minute,
            observed: event.observed,
            baseline: event.baseline,
            detail: event.detail.chars().take(Self::DETAIL_MAX_CHARS).collect(),
        }
    }
}

/// A minute the detector cannot take; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("minute {minute_start} is not aligned to 60 s")]
    Unaligned { minute_start: u64 },
    #[error("minute {got} fed out of order: expected {expected} (feed every minute, quiet ones as zeros)")]
    OutOfOrder { expected: u64, got: u64 },
}

/// One minute's judgement of one condition.
#[derive(Clone, Debug, PartialEq)]
enum Verdict {
    Holds { observed: f64, baseline: f64, detail: String },
    Absent { detail: String },
    /// Not judged: warm-up, too little traffic, or no cache data.
    Unknown,
}

/// Where one kind's incident stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Track {
    Idle,
    /// The condition has held `held` consecutive judged minutes, fewer than needed to open.
    Pending { first_minute: u64, held: u32, observed: f64, baseline: f64, detail: String },
    Open { opened_minute: u64, observed: f64, baseline: f64, detail: String, clearing: Option<Clearing> },
}

/// An open incident's streak of judged minutes without the condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Clearing {
    first_minute: u64,
    absent: u32,
    detail: String,
}

/// The per-domain detector; see the module doc for the contract and how to feed it.
///
/// Its serialised form (the `alert_detectors.state` column) holds only what it observed:
/// the thresholds are never stored, so a restart judges every domain by the current
/// `[alerts]` ([`AlertStage::restore`] sets them). State written when the policy was stored
/// still loads: the old `policy` field is ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertDetector {
    domain: String,
    /// Not stored: deserialised as the default, replaced by [`AlertDetector::with_policy`].
    #[serde(skip)]
    policy: AlertPolicy,
    next_minute: Option<u64>,
    /// Requests of the most recent normal minutes (no spike or collapse), oldest first.
    request_history: VecDeque<u64>,
    /// Hit ratios of the most recent normal minutes with enough cache traffic, oldest first.
    hit_ratio_history: VecDeque<f64>,
    /// Indexed by `AlertKind as usize`.
    tracks: [Track; 4],
}

impl AlertDetector {
    /// A detector for `domain` with `policy` (validated by the configuration).
    pub fn new(domain: impl Into<String>, policy: AlertPolicy) -> AlertDetector {
        let history = policy.baseline_minutes as usize;
        AlertDetector {
            domain: domain.into(),
            policy,
            next_minute: None,
            request_history: VecDeque::with_capacity(history),
            hit_ratio_history: VecDeque::with_capacity(history),
            tracks: [Track::Idle, Track::Idle, Track::Idle, Track::Idle],
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The detector judging from now on by `policy` (a restored one: see the type's doc).
    /// Histories longer than the new `baseline_minutes` keep their latest minutes; shorter
    /// ones fill up as a warm-up would.
    pub fn with_policy(mut self, policy: AlertPolicy) -> AlertDetector {
        let keep = policy.baseline_minutes as usize;
        let excess = |len: usize| len.saturating_sub(keep);
        self.request_history.drain(..excess(self.request_history.len()));
        self.hit_ratio_history.drain(..excess(self.hit_ratio_history.len()));
        self.policy = policy;
        self
    }

    pub fn policy(&self) -> &AlertPolicy {
        &self.policy
    }

    /// The minute `feed` expects next; `None` before the first.
    pub fn next_minute(&self) -> Option<u64> {
        self.next_minute
    }

    /// The kinds with an open incident and their opened minutes.
    pub fn open_incidents(&self) -> impl Iterator<Item = (AlertKind, u64)> + '_ {
        AlertKind::ALL.into_iter().filter_map(|kind| match &self.tracks[kind.index()] {
            Track::Open { opened_minute, .. } => Some((kind, *opened_minute)),
            _ => None,
        })
    }

    /// Takes the next closed minute; returns the incidents it opens or resolves.
    pub fn feed(&mut self, minute: &MinuteStats) -> Result<Vec<AlertEvent>, FeedError> {
        if minute.minute_start % 60 != 0 {
            return Err(FeedError::Unaligned { minute_start: minute.minute_start });
        }
        if let Some(expected) = self.next_minute {
            if minute.minute_start != expected {
                return Err(FeedError::OutOfOrder { expected, got: minute.minute_start });
            }
        }
        self.next_minute = Some(minute.minute_start + 60);

        let traffic_baseline = median_u64(&self.request_history, self.policy.baseline_minutes);
        let spike = self.judge_spike(minute, traffic_baseline);
        let collapse = self.judge_collapse(minute, traffic_baseline);
        let errors = self.judge_error_rate(minute);
        let hit_ratio = hit_ratio(minute, self.policy.cache_min_requests);
        let cache = self.judge_cache(hit_ratio);

        // History takes only normal minutes, so an incident never becomes its own baseline.
        let traffic_anomalous = matches!(spike, Verdict::Holds { .. }) || matches!(collapse, Verdict::Holds { .. });
        if !traffic_anomalous {
            push_bounded(&mut self.request_history, minute.requests, self.policy.baseline_minutes);
        }
        if let (Some(ratio), false) = (hit_ratio, matches!(cache, Verdict::Holds { .. })) {
            push_bounded(&mut self.hit_ratio_history, ratio, self.policy.baseline_minutes);
        }

        let mut events = Vec::new();
        for (kind, verdict) in [
            (AlertKind::TrafficSpike, spike),
            (AlertKind::TrafficCollapse, collapse),
            (AlertKind::ErrorRate, errors),
            (AlertKind::CacheCollapse, cache),
        ] {
            if let Some(event) = self.advance(kind, minute.minute_start, verdict) {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// Feeds [`MinuteStats::quiet`] for every minute from [`Self::next_minute`] up to, not
    /// including, `minute_start`: the gap before a domain's next row. Does nothing before the
    /// first minute or when there is no gap.
    pub fn feed_quiet_until(&mut self, minute_start: u64) -> Result<Vec<AlertEvent>, FeedError> {
        let mut events = Vec::new();
        while let Some(next) = self.next_minute.filter(|&next| next < minute_start) {
            events.extend(self.feed(&MinuteStats::quiet(next))?);
        }
        Ok(events)
    }

    fn judge_spike(&self, minute: &MinuteStats, baseline: Option<f64>) -> Verdict {
        let Some(baseline) = baseline.filter(|&b| b >= self.policy.min_baseline_requests && b > 0.0) else {
            return Verdict::Unknown;
        };
        let observed = minute.requests as f64;
        let detail = format!(
            "requests {observed:.0}/min vs baseline {baseline:.0}/min ({}), spike at x{}",
            percent_change(observed, baseline),
            self.policy.spike_factor
        );
        if observed >= self.policy.spike_factor * baseline {
            Verdict::Holds { observed, baseline, detail }
        } else {
            Verdict::Absent { detail }
        }
    }

    fn judge_collapse(&self, minute: &MinuteStats, baseline: Option<f64>) -> Verdict {
        let Some(baseline) = baseline.filter(|&b| b >= self.policy.min_baseline_requests && b > 0.0) else {
            return Verdict::Unknown;
        };
        let observed = minute.requests as f64;
        let detail = format!(
            "requests {observed:.0}/min vs baseline {baseline:.0}/min ({}), collapse at x{}",
            percent_change(observed, baseline),
            self.policy.collapse_factor
        );
        if observed <= self.policy.collapse_factor * baseline {
            Verdict::Holds { observed, baseline, detail }
        } else {
            Verdict::Absent { detail }
        }
    }

    fn judge_error_rate(&self, minute: &MinuteStats) -> Verdict {
        if minute.requests == 0 || minute.requests < self.policy.error_min_requests {
            return Verdict::Unknown;
        }
        let observed = (minute.status_5xx as f64 / minute.requests as f64).min(1.0);
        let threshold = self.policy.error_ratio;
        let detail = format!(
            "5xx {:.1}% of {} requests (threshold {:.1}%)",
            observed * 100.0,
            minute.requests,
            threshold * 100.0
        );
        if observed > threshold {
            Verdict::Holds { observed, baseline: threshold, detail }
        } else {
            Verdict::Absent { detail }
        }
    }

    fn judge_cache(&self, observed: Option<f64>) -> Verdict {
        let (Some(observed), Some(baseline)) = (observed, median_f64(&self.hit_ratio_history, self.policy.baseline_minutes)) else {
            return Verdict::Unknown;
        };
        let detail = format!(
            "cache hit ratio {observed:.2} vs baseline {baseline:.2} (drop {:.2}, threshold {:.2})",
            baseline - observed,
            self.policy.cache_hit_drop
        );
        // A small epsilon keeps a drop of exactly the threshold on the alerting side despite
        // binary fractions.
        if baseline - observed >= self.policy.cache_hit_drop - 1e-12 {
            Verdict::Holds { observed, baseline, detail }
        } else {
            Verdict::Absent { detail }
        }
    }

    /// Moves `kind`'s track by one minute's verdict; returns the event it completes.
    fn advance(&mut self, kind: AlertKind, minute_start: u64, verdict: Verdict) -> Option<AlertEvent> {
        let open_after = self.policy.open_after_minutes.max(1);
        let resolve_after = self.policy.resolve_after_minutes.max(1);
        let domain = &self.domain;
        let track = &mut self.tracks[kind.index()];
        let (next, event) = match (std::mem::replace(track, Track::Idle), verdict) {
            // Unjudged minutes neither extend nor break a streak.
            (state, Verdict::Unknown) => (state, None),
            (Track::Idle | Track::Pending { .. }, Verdict::Absent { .. }) => (Track::Idle, None),
            (Track::Idle, Verdict::Holds { observed, baseline, detail }) => {
                let streak = Track::Pending { first_minute: minute_start, held: 1, observed, baseline, detail };
                open_if_due(domain, kind, streak, open_after)
            }
            (Track::Pending { first_minute, held, observed, baseline, detail }, Verdict::Holds { .. }) => {
                let streak = Track::Pending { first_minute, held: held + 1, observed, baseline, detail };
                open_if_due(domain, kind, streak, open_after)
            }
            (Track::Open { opened_minute, observed, baseline, detail, .. }, Verdict::Holds { .. }) => {
                (Track::Open { opened_minute, observed, baseline, detail, clearing: None }, None)
            }
            (Track::Open { opened_minute, observed, baseline, detail, clearing }, Verdict::Absent { detail: now }) => {
                let clearing = match clearing {
                    Some(Clearing { first_minute, absent, detail }) => Clearing { first_minute, absent: absent + 1, detail },
                    None => Clearing { first_minute: minute_start, absent: 1, detail: now },
                };
                if clearing.absent >= resolve_after {
                    let event = AlertEvent {
                        domain: domain.clone(),
                        kind,
                        opened_minute,
                        resolved_minute: Some(clearing.first_minute),
                        observed,
                        baseline,
                        detail: format!("{detail}; resolved: {}", clearing.detail),
                    };
                    (Track::Idle, Some(event))
                } else {
                    (Track::Open { opened_minute, observed, baseline, detail, clearing: Some(clearing) }, None)
                }
            }
        };
        *track = next;
        event
    }
}

impl AlertDetector {
    /// Like [`Self::feed_quiet_until`], but stops feeding once a quiet minute leaves the state
    /// unchanged (history settled, no streak moving): every further quiet minute would be
    /// the same, so the detector jumps to `minute_start`. Keeps a long gap (a silent night, a
    /// jump in event time) at O(`baseline_minutes`) instead of O(gap).
    pub fn skip_quiet_until(&mut self, minute_start: u64) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        while let Some(next) = self.next_minute.filter(|&next| next < minute_start) {
            let before = (self.request_history.clone(), self.hit_ratio_history.clone(), self.tracks.clone());
            let fed = self.feed(&MinuteStats::quiet(next)).unwrap_or_default();
            let settled = fed.is_empty()
                && before.0 == self.request_history
                && before.1 == self.hit_ratio_history
                && before.2 == self.tracks;
            events.extend(fed);
            if settled {
                self.next_minute = Some(minute_start);
            }
        }
        events
    }

    /// True for a domain silent for a whole baseline with nothing open or pending: it can
    /// judge nothing until traffic returns, so the stage may forget it. If it returns it
    /// starts a new warm-up, as a new domain does.
    pub fn is_dormant(&self) -> bool {
        self.tracks.iter().all(|t| *t == Track::Idle)
            && self.request_history.len() >= self.policy.baseline_minutes as usize
            && self.request_history.iter().all(|&r| r == 0)
    }
}

/// What the stage's detectors look like after a close: new or changed detectors, and
/// `None` for forgotten ones. The sink persists this with the epoch so a restart resumes
/// exactly where the committed epochs left the alerts.
pub type DetectorChanges = crate::changes::Changes<String, AlertDetector>;

/// Alerts for every domain: collects the minute series as epochs close and feeds each
/// domain's detector every final minute, in order, quiet minutes included.
///
/// A minute is final once the frontier has passed its retirement (`minute end + allowed
/// lateness`); the caller says which minutes are final with [`AlertStage::finalize`].
/// Observations of minutes already judged are ignored: after a restart the replay shows
/// them again, partially, and they were judged from their final values before the crash.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertStage {
    policy: AlertPolicy,
    detectors: BTreeMap<String, AlertDetector>,
    /// Latest values of minutes not yet final, by minute, then domain.
    pending: BTreeMap<u64, BTreeMap<String, MinuteStats>>,
    /// Every minute before this one has been fed to every detector.
    next_minute: Option<u64>,
}

impl AlertStage {
    pub fn new(policy: AlertPolicy) -> AlertStage {
        AlertStage { policy, ..Default::default() }
    }

    /// A stage resuming from persisted detectors and progress (see [`DetectorChanges`]); every
    /// detector judges by `policy`, the current configuration, whatever it was before.
    pub fn restore(policy: AlertPolicy, next_minute: Option<u64>, detectors: impl IntoIterator<Item = AlertDetector>) -> AlertStage {
        let detectors = detectors.into_iter().map(|d| (d.domain.clone(), d.with_policy(policy))).collect();
        AlertStage { policy, detectors, pending: BTreeMap::new(), next_minute }
    }

    /// Every minute before this one has been judged.
    pub fn next_minute(&self) -> Option<u64> {
        self.next_minute
    }

    /// Number of domains with a detector.
    pub fn domains(&self) -> usize {
        self.detectors.len()
    }

    /// Records the current value of a minute row (`None`: the row vanished).
    pub fn observe(&mut self, domain: &str, minute_start: u64, stats: Option<MinuteStats>) {
        if self.next_minute.is_some_and(|next| minute_start < next) {
            return;
        }
        let minute = self.pending.entry(minute_start).or_default();
        match stats {
            Some(stats) => {
                minute.insert(domain.to_owned(), stats);
            }
            None => {
                minute.remove(domain);
            }
        }
    }

    /// Judges every minute before `until` (a minute start): returns the events and the
    /// detector changes. Minutes must be final; a later `until` than before is required for
    /// anything to happen.
    pub fn finalize(&mut self, until: u64) -> (Vec<AlertEvent>, DetectorChanges) {
        let mut events = Vec::new();
        let mut changes = DetectorChanges::default();
        if self.next_minute.is_some_and(|next| until <= next) {
            return (events, changes);
        }
        let later = self.pending.split_off(&until);
        let rows = std::mem::replace(&mut self.pending, later);
        for (minute_start, domains) in rows {
            for (domain, stats) in domains {
                let policy = self.policy;
                let detector = self.detectors.entry(domain).or_insert_with_key(|domain| AlertDetector::new(domain.clone(), policy));
                events.extend(detector.skip_quiet_until(minute_start));
                // In order by construction: the detector is at `minute_start` or new.
                match detector.feed(&stats) {
                    Ok(fed) => events.extend(fed),
                    Err(err) => debug_assert!(false, "alert stage fed out of order: {err}"),
                }
            }
        }
        let mut dormant = Vec::new();
        for (domain, detector) in &mut self.detectors {
            events.extend(detector.skip_quiet_until(until));
            if detector.is_dormant() {
                dormant.push(domain.clone());
            } else {
                changes.0.insert(domain.clone(), Some(detector.clone()));
            }
        }
        for domain in dormant {
            self.detectors.remove(&domain);
            changes.0.insert(domain, None);
        }
        self.next_minute = Some(until);
        (events, changes)
    }
}

/// Opens a pending streak that has reached `open_after` minutes; leaves it pending otherwise.
fn open_if_due(domain: &str, kind: AlertKind, streak: Track, open_after: u32) -> (Track, Option<AlertEvent>) {
    match streak {
        Track::Pending { first_minute, held, observed, baseline, detail } if held >= open_after => {
            let event = AlertEvent {
                domain: domain.to_owned(),
                kind,
                opened_minute: first_minute,
                resolved_minute: None,
                observed,
                baseline,
                detail: detail.clone(),
            };
            (Track::Open { opened_minute: first_minute, observed, baseline, detail, clearing: None }, Some(event))
        }
        other => (other, None),
    }
}

/// Appends `value`, dropping the oldest beyond `limit`.
fn push_bounded<T>(history: &mut VecDeque<T>, value: T, limit: u32) {
    while history.len() >= limit as usize && !history.is_empty() {
        history.pop_front();
    }
    history.push_back(value);
}

/// Median of a full history (`needed` values); `None` during warm-up.
fn median_u64(history: &VecDeque<u64>, needed: u32) -> Option<f64> {
    if history.len() < needed as usize || history.is_empty() {
        return None;
    }
    let mut values: Vec<u64> = history.iter().copied().collect();
    values.sort_unstable();
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] as f64 } else { (values[mid - 1] as f64 + values[mid] as f64) / 2.0 })
}

fn median_f64(history: &VecDeque<f64>, needed: u32) -> Option<f64> {
    if history.len() < needed as usize || history.is_empty() {
        return None;
    }
    let mut values: Vec<f64> = history.iter().copied().collect();
    values.sort_unstable_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 })
}

/// `hit / (hit + miss)` when the minute has at least `min_requests` of them.
fn hit_ratio(minute: &MinuteStats, min_requests: u64) -> Option<f64> {
    let hit = minute.cache_hit?;
    let miss = minute.cache_miss?;
    let judged = hit.saturating_add(miss);
    (judged > 0 && judged >= min_requests).then(|| hit as f64 / judged as f64)
}

fn percent_change(observed: f64, baseline: f64) -> String {
    format!("{:+.0}%", (observed / baseline - 1.0) * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-01T00:00:00Z.
    const T0: u64 = 1_772_323_200;

    fn minute(index: u64) -> u64 {
        T0 + 60 * index
    }

    /// A minute of `requests` with 0.5% 5xx and a 0.9 hit ratio on 80% of requests.
    fn normal(index: u64, requests: u64) -> MinuteStats {
        let cacheable = requests * 8 / 10;
        let hits = cacheable * 9 / 10;
        MinuteStats {
            minute_start: minute(index),
            requests,
            status_5xx: requests / 200,
            cache_hit: Some(hits),
            cache_miss: Some(cacheable - hits),
        }
    }

    /// SplitMix64: deterministic pseudo-random numbers without a dependency.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in [1 − spread, 1 + spread].
        fn jitter(&mut self, spread: f64) -> f64 {
            let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
            1.0 - spread + 2.0 * spread * unit
        }
    }

    /// Every event of feeding `minutes`, with the index of the minute that emitted it.
    fn run(policy: AlertPolicy, minutes: &[MinuteStats]) -> Vec<(u64, AlertEvent)> {
        let mut detector = AlertDetector::new("shop.example.com", policy);
        let mut all = Vec::new();
        for stats in minutes {
            for event in detector.feed(stats).expect("in order") {
                all.push(((stats.minute_start - T0) / 60, event));
            }
        }
        all
    }

    /// (emitted at, kind, opened index, resolved index) per event.
    fn summary(events: &[(u64, AlertEvent)]) -> Vec<(u64, AlertKind, u64, Option<u64>)> {
        events
            .iter()
            .map(|(at, e)| (*at, e.kind, (e.opened_minute - T0) / 60, e.resolved_minute.map(|m| (m - T0) / 60)))
            .collect()
    }

    /// Minutes 0..total at 1000 req/min, with `shape` applied to the minutes it returns Some for.
    fn series(total: u64, shape: impl Fn(u64, MinuteStats) -> Option<MinuteStats>) -> Vec<MinuteStats> {
        (0..total).map(|i| shape(i, normal(i, 1000)).unwrap_or_else(|| normal(i, 1000))).collect()
    }

    /// Feeds `rows` (domain, minute index, stats) to a stage minute by minute; every minute
    /// up to `until` is final after its own row. Returns the events.
    fn stage_run(stage: &mut AlertStage, rows: &[(&str, MinuteStats)], until: u64) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let mut minutes: Vec<u64> = rows.iter().map(|(_, m)| m.minute_start).collect();
        minutes.dedup();
        for m in minutes.into_iter().chain([minute(until)]) {
            for (domain, stats) in rows.iter().filter(|(_, s)| s.minute_start == m) {
                stage.observe(domain, m, Some(*stats));
            }
            events.extend(stage.finalize(m).0);
        }
        events
    }

    #[test]
    fn the_stage_judges_each_domain_like_its_own_detector_quiet_minutes_included() {
        // shop: an outage at 40..43; blog: steady, then silent from minute 50 (a total outage
        // has no rows at all: the stage must feed quiet minutes itself).
        let shop = series(60, |i, m| (40..43).contains(&i).then(|| normal(i, 100)).or(Some(m)));
        let blog: Vec<MinuteStats> = (0..50).map(|i| normal(i, 1000)).collect();
        let mut rows: Vec<(&str, MinuteStats)> = shop.iter().map(|m| ("shop", *m)).chain(blog.iter().map(|m| ("blog", *m))).collect();
        rows.sort_by_key(|(d, m)| (m.minute_start, *d));
        let mut stage = AlertStage::new(AlertPolicy::default());
        let events = stage_run(&mut stage, &rows, 60);
        let expected_shop = run(AlertPolicy::default(), &shop).into_iter().map(|(_, e)| e.with_domain("shop"));
        let blog_fed: Vec<MinuteStats> = (0..60).map(|i| if i < 50 { normal(i, 1000) } else { MinuteStats::quiet(minute(i)) }).collect();
        let expected_blog = run(AlertPolicy::default(), &blog_fed).into_iter().map(|(_, e)| e.with_domain("blog"));
        let mut expected: Vec<AlertEvent> = expected_shop.chain(expected_blog).collect();
        let mut got = events.clone();
        let key = |e: &AlertEvent| (e.domain.clone(), e.opened_minute, e.resolved_minute);
        expected.sort_by_key(key);
        got.sort_by_key(key);
        assert_eq!(got, expected);
        assert!(got.iter().any(|e| e.domain == "blog" && e.kind == AlertKind::TrafficCollapse), "{got:?}");
    }

    #[test]
    fn a_restored_stage_continues_exactly_and_ignores_replayed_minutes() {
        let shop = series(70, |i, m| (40..43).contains(&i).then(|| normal(i, 100)).or(Some(m)));
        let rows: Vec<(&str, MinuteStats)> = shop.iter().map(|m| ("shop", *m)).collect();
        let mut whole = AlertStage::new(AlertPolicy::default());
        let all = stage_run(&mut whole, &rows, 70);

        let mut first = AlertStage::new(AlertPolicy::default());
        let mut events = stage_run(&mut first, &rows[..41], 41);
        let (next, detectors) = (first.next_minute(), first.detectors.values().cloned().collect::<Vec<_>>());
        let mut resumed = AlertStage::restore(AlertPolicy::default(), next, detectors);
        // The replay shows minutes before the restart again, partially: they are ignored.
        resumed.observe("shop", minute(39), Some(normal(39, 5)));
        events.extend(stage_run(&mut resumed, &rows[41..], 70));
        assert_eq!(events, all);
    }

    /// Detectors as the sink stores and reads them (`alert_detectors.state`).
    fn stored(stage: &AlertStage) -> Vec<AlertDetector> {
        stage.detectors.values().map(|d| serde_json::from_str(&serde_json::to_string(d).unwrap()).unwrap()).collect()
    }

    #[test]
    fn a_restart_with_a_new_spike_factor_judges_existing_domains_by_it() {
        // 40 normal minutes of 1000 requests, then 3 of 2000: a spike at x1.5, not at x3.
        let shop = series(43, |i, m| (40..43).contains(&i).then(|| normal(i, 2000)).or(Some(m)));
        let rows: Vec<(&str, MinuteStats)> = shop.iter().map(|m| ("shop", *m)).collect();
        let old = AlertPolicy { spike_factor: 3.0, ..AlertPolicy::default() };
        let new = AlertPolicy { spike_factor: 1.5, ..AlertPolicy::default() };
        let mut first = AlertStage::new(old);
        assert!(stage_run(&mut first, &rows[..40], 40).is_empty());
        let detectors = stored(&first);
        assert!(!serde_json::to_string(&detectors[0]).unwrap().contains("spike_factor"), "the policy is not stored");

        let mut kept = AlertStage::restore(old, first.next_minute(), detectors.clone());
        assert!(stage_run(&mut kept, &rows[40..], 43).is_empty(), "x2 is no spike at x3");
        let mut changed = AlertStage::restore(new, first.next_minute(), detectors);
        assert_eq!(changed.detectors["shop"].policy(), &new);
        let events = stage_run(&mut changed, &rows[40..], 43);
        assert_eq!(
            events.iter().map(|e| (e.kind, e.opened_minute)).collect::<Vec<_>>(),
            [(AlertKind::TrafficSpike, minute(40))],
            "{events:?}"
        );
    }

    #[test]
    fn state_stored_with_the_policy_still_loads_and_the_stored_policy_is_ignored() {
        let shop = series(40, |_, m| Some(m));
        let rows: Vec<(&str, MinuteStats)> = shop.iter().map(|m| ("shop", *m)).collect();
        let mut stage = AlertStage::new(AlertPolicy::default());
        stage_run(&mut stage, &rows, 40);
        // The old format: the detector with its policy inside (spike_factor 10 here).
        let mut old: serde_json::Value = serde_json::to_value(&stage.detectors["shop"]).unwrap();
        let stale = AlertPolicy { spike_factor: 10.0, baseline_minutes: 50, ..AlertPolicy::default() };
        old["policy"] = serde_json::to_value(stale).unwrap();
        let loaded: AlertDetector = serde_json::from_str(&old.to_string()).expect("old rows load");
        let current = AlertPolicy { baseline_minutes: 10, ..AlertPolicy::default() };
        let restored = AlertStage::restore(current, stage.next_minute(), [loaded]);
        let detector = &restored.detectors["shop"];
        assert_eq!(detector.policy(), &current);
        assert_eq!(detector.domain(), "shop");
        assert_eq!(detector.next_minute(), Some(minute(40)));
        // A shorter baseline keeps the latest minutes of the history.
        assert_eq!(detector.request_history.len(), 10);
        assert_eq!(detector.request_history, stage.detectors["shop"].request_history.iter().skip(20).copied().collect::<VecDeque<_>>());
    }

    #[test]
    fn silent_domains_are_forgotten_and_long_gaps_are_cheap() {
        let mut stage = AlertStage::new(AlertPolicy::default());
        stage.observe("gone", minute(0), Some(normal(0, 5)));
        stage.finalize(minute(1));
        assert_eq!(stage.domains(), 1);
        // A jump of a year: the detector settles within a baseline and is dropped.
        let (_, changes) = stage.finalize(minute(60 * 24 * 365));
        assert_eq!(stage.domains(), 0);
        assert_eq!(changes.deletes().count(), 1);
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let policy = AlertPolicy::default();
        assert_eq!(policy.validate(), Ok(()));
        assert_eq!((policy.baseline_minutes, policy.open_after_minutes, policy.resolve_after_minutes), (30, 2, 3));
    }

    #[test]
    fn outage_of_three_minutes_opens_and_resolves_traffic_collapse_once() {
        // Warm-up 0..30, normal to 39, -90% at minutes 40, 41, 42, normal again from 43.
        let minutes = series(60, |i, m| (40..43).contains(&i).then(|| normal(i, 100)).or(Some(m)));
        let events = run(AlertPolicy::default(), &minutes);
        // Opened when the 2nd outage minute completes the streak, dated at the 1st (40);
        // resolved when the 3rd normal minute completes the clearing streak, dated at 43.
        assert_eq!(summary(&events), [(41, AlertKind::TrafficCollapse, 40, None), (45, AlertKind::TrafficCollapse, 40, Some(43))]);
        let opened = &events[0].1;
        assert_eq!((opened.observed, opened.baseline), (100.0, 1000.0));
        assert_eq!(opened.transition(), Transition::Opened);
        assert_eq!(opened.domain, "shop.example.com");
        assert!(opened.detail.contains("-90%"), "{}", opened.detail);
        let resolved = &events[1].1;
        assert_eq!(resolved.transition(), Transition::Resolved);
        assert_eq!((resolved.observed, resolved.baseline), (100.0, 1000.0));
        assert!(resolved.detail.contains("resolved: requests 1000/min"), "{}", resolved.detail);
    }

    #[test]
    fn a_total_outage_fed_as_quiet_minutes_is_a_collapse() {
        let mut detector = AlertDetector::new("a.example", AlertPolicy::default());
        let mut events = Vec::new();
        for i in 0..40 {
            events.extend(detector.feed(&normal(i, 1000)).unwrap());
        }
        // No rows at all for minutes 40..43: the caller fills the gap before minute 43's row.
        events.extend(detector.feed_quiet_until(minute(43)).unwrap());
        assert_eq!(detector.next_minute(), Some(minute(43)));
        assert_eq!(detector.open_incidents().collect::<Vec<_>>(), [(AlertKind::TrafficCollapse, minute(40))]);
        for i in 43..50 {
            events.extend(detector.feed(&normal(i, 1000)).unwrap());
        }
        let got: Vec<_> = events.iter().map(|e| (e.kind, e.opened_minute, e.resolved_minute)).collect();
        assert_eq!(got, [(AlertKind::TrafficCollapse, minute(40), None), (AlertKind::TrafficCollapse, minute(40), Some(minute(43)))]);
        assert_eq!(events[0].observed, 0.0);
    }

    #[test]
    fn spike_of_five_times_for_three_minutes_opens_and_resolves_once() {
        let minutes = series(60, |i, m| (40..43).contains(&i).then(|| normal(i, 5000)).or(Some(m)));
        let events = run(AlertPolicy::default(), &minutes);
        assert_eq!(summary(&events), [(41, AlertKind::TrafficSpike, 40, None), (45, AlertKind::TrafficSpike, 40, Some(43))]);
        assert_eq!((events[0].1.observed, events[0].1.baseline), (5000.0, 1000.0));
        assert!(events[0].1.detail.contains("+400%"), "{}", events[0].1.detail);
    }

    #[test]
    fn five_xx_burst_opens_and_resolves_error_rate_once() {
        let minutes = series(60, |i, m| (40..43).contains(&i).then_some(MinuteStats { status_5xx: 200, ..m }).or(Some(m)));
        let events = run(AlertPolicy::default(), &minutes);
        assert_eq!(summary(&events), [(41, AlertKind::ErrorRate, 40, None), (45, AlertKind::ErrorRate, 40, Some(43))]);
        assert_eq!((events[0].1.observed, events[0].1.baseline), (0.2, 0.05));
        assert_eq!(events[0].1.detail, "5xx 20.0% of 1000 requests (threshold 5.0%)");
    }

    #[test]
    fn cache_hit_ratio_collapse_opens_and_resolves_once() {
        // Hit ratio 0.9 -> 0.2 (origin overload) for minutes 40..43, traffic unchanged.
        let minutes = series(60, |i, m| (40..43).contains(&i).then_some(MinuteStats { cache_hit: Some(160), cache_miss: Some(640), ..m }).or(Some(m)));
        let events = run(AlertPolicy::default(), &minutes);
        assert_eq!(summary(&events), [(41, AlertKind::CacheCollapse, 40, None), (45, AlertKind::CacheCollapse, 40, Some(43))]);
        let (observed, baseline) = (events[0].1.observed, events[0].1.baseline);
        assert!((observed - 0.2).abs() < 1e-9 && (baseline - 0.9).abs() < 1e-9, "{observed} {baseline}");
    }

    #[test]
    fn cache_is_not_judged_without_cache_data() {
        let minutes: Vec<_> = (0..60).map(|i| MinuteStats { cache_hit: None, cache_miss: None, ..normal(i, 1000) }).collect();
        assert!(run(AlertPolicy::default(), &minutes).is_empty());
    }

    #[test]
    fn quiet_site_below_min_volume_never_alerts() {
        // 20 req/min baseline; drops to 0, spikes x10 and serves 50% 5xx: all too small to judge.
        let minutes: Vec<_> = (0..120)
            .map(|i| match i {
                40..=45 => MinuteStats::quiet(minute(i)),
                60..=65 => normal(i, 200),
                80..=85 => MinuteStats { status_5xx: 10, ..normal(i, 20) },
                _ => normal(i, 20),
            })
            .collect();
        assert_eq!(summary(&run(AlertPolicy::default(), &minutes)), []);
    }

    #[test]
    fn noisy_traffic_never_alerts() {
        let mut noise = Noise(7);
        let minutes: Vec<_> = (0..24 * 60)
            .map(|i| {
                let requests = (1000.0 * noise.jitter(0.1)).round() as u64;
                let hits_share = 0.9 * noise.jitter(0.03);
                let cacheable = requests * 8 / 10;
                let hits = (cacheable as f64 * hits_share).round() as u64;
                MinuteStats {
                    minute_start: minute(i),
                    requests,
                    status_5xx: (requests as f64 * 0.01 * noise.jitter(0.5)).round() as u64,
                    cache_hit: Some(hits),
                    cache_miss: Some(cacheable - hits.min(cacheable)),
                }
            })
            .collect();
        assert_eq!(summary(&run(AlertPolicy::default(), &minutes)), []);
    }

    #[test]
    fn warm_up_never_judges_traffic_or_cache() {
        // 29 minutes of history (< baseline_minutes), with a collapse, a spike and a cache drop.
        let minutes: Vec<_> = (0..29)
            .map(|i| match i {
                5..=9 => normal(i, 1000),
                10..=14 => normal(i, 10),
                15..=19 => normal(i, 10_000),
                20..=24 => MinuteStats { cache_hit: Some(0), cache_miss: Some(800), ..normal(i, 1000) },
                _ => normal(i, 1000),
            })
            .collect();
        assert_eq!(summary(&run(AlertPolicy::default(), &minutes)), []);
    }

    #[test]
    fn one_minute_blips_do_not_open_anything() {
        let minutes = series(90, |i, m| match i {
            40 | 50 => Some(normal(i, 50)),
            42 | 52 => Some(normal(i, 9000)),
            44 | 54 => Some(MinuteStats { status_5xx: 500, ..m }),
            _ => Some(m),
        });
        assert_eq!(summary(&run(AlertPolicy::default(), &minutes)), []);
    }

    #[test]
    fn long_outage_keeps_the_pre_outage_baseline_and_resolves_once() {
        // 90 minutes at -90%: longer than the baseline, which must not adapt to the outage.
        let minutes = series(200, |i, m| (40..130).contains(&i).then(|| normal(i, 100)).or(Some(m)));
        let events = run(AlertPolicy::default(), &minutes);
        assert_eq!(summary(&events), [(41, AlertKind::TrafficCollapse, 40, None), (132, AlertKind::TrafficCollapse, 40, Some(130))]);
    }

    #[test]
    fn a_flapping_recovery_stays_one_incident() {
        // After the outage: normal, down, normal, normal, down, then normal for good.
        let down = [40, 41, 42, 44, 47];
        let minutes = series(70, |i, m| down.contains(&i).then(|| normal(i, 100)).or(Some(m)));
        let events = run(AlertPolicy::default(), &minutes);
        assert_eq!(summary(&events), [(41, AlertKind::TrafficCollapse, 40, None), (50, AlertKind::TrafficCollapse, 40, Some(48))]);
    }

    #[test]
    fn unjudged_minutes_neither_extend_nor_break_a_streak() {
        // 5xx burst at 40 and 42; minute 41 has too few requests to judge its error rate.
        let minutes = series(60, |i, m| match i {
            40 | 42 | 43 => Some(MinuteStats { status_5xx: 300, ..m }),
            41 => Some(MinuteStats { requests: 30, status_5xx: 30, ..m }),
            _ => Some(m),
        });
        let errors: Vec<_> =
            summary(&run(AlertPolicy::default(), &minutes)).into_iter().filter(|e| e.1 == AlertKind::ErrorRate).collect();
        assert_eq!(errors, [(42, AlertKind::ErrorRate, 40, None), (46, AlertKind::ErrorRate, 40, Some(44))]);
    }

    #[test]
    fn single_minute_hysteresis_opens_and_resolves_on_the_minute() {
        let policy = AlertPolicy { open_after_minutes: 1, resolve_after_minutes: 1, ..AlertPolicy::default() };
        let minutes = series(60, |i, m| (40..43).contains(&i).then(|| normal(i, 100)).or(Some(m)));
        assert_eq!(summary(&run(policy, &minutes)), [(40, AlertKind::TrafficCollapse, 40, None), (43, AlertKind::TrafficCollapse, 40, Some(43))]);
    }

    #[test]
    fn feed_rejects_gaps_repeats_and_unaligned_minutes() {
        let mut detector = AlertDetector::new("a.example", AlertPolicy::default());
        assert_eq!(detector.feed(&normal(0, 1000) ).map(|e| e.len()), Ok(0));
        assert_eq!(detector.feed(&normal(2, 1000)), Err(FeedError::OutOfOrder { expected: minute(1), got: minute(2) }));
        assert_eq!(detector.feed(&normal(0, 1000)), Err(FeedError::OutOfOrder { expected: minute(1), got: minute(0) }));
        let unaligned = MinuteStats { minute_start: minute(1) + 5, ..normal(1, 1000) };
        assert_eq!(detector.feed(&unaligned), Err(FeedError::Unaligned { minute_start: minute(1) + 5 }));
        assert_eq!(detector.next_minute(), Some(minute(1)));
        // Before the first minute there is no gap to fill.
        let mut fresh = AlertDetector::new("b.example", AlertPolicy::default());
        assert_eq!(fresh.feed_quiet_until(minute(10)), Ok(Vec::new()));
        assert_eq!(fresh.next_minute(), None);
    }

    #[test]
    fn alert_rows_match_the_schema() {
        let event = AlertEvent {
            domain: "a.example".into(),
            kind: AlertKind::CacheCollapse,
            opened_minute: minute(3),
            resolved_minute: Some(minute(9)),
            observed: 0.2,
            baseline: 0.9,
            detail: "é".repeat(300),
        };
        let row = AlertRow::from_event(&event);
        assert_eq!((row.kind, row.opened_minute, row.resolved_minute), ("cache_collapse", minute(3), Some(minute(9))));
        assert_eq!(row.detail.chars().count(), 255);
        let kinds: Vec<_> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds, ["traffic_spike", "traffic_collapse", "error_rate", "cache_collapse"]);
        assert_eq!(serde_json::to_string(&AlertKind::TrafficCollapse).unwrap(), "\"traffic_collapse\"");
    }

    #[test]
    fn invalid_policies_report_every_problem() {
        let policy = AlertPolicy {
            baseline_minutes: 1,
            spike_factor: 0.5,
            collapse_factor: 1.5,
            error_ratio: 0.0,
            cache_hit_drop: 2.0,
            open_after_minutes: 0,
            ..AlertPolicy::default()
        };
        let problems = policy.validate().unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(problems.iter().all(|p| p.starts_with("alerts.")));
        let parsed: AlertPolicy = serde_json::from_str(r#"{"spike_factor": 4.0}"#).unwrap();
        assert_eq!(parsed, AlertPolicy { spike_factor: 4.0, ..AlertPolicy::default() });
        assert!(serde_json::from_str::<AlertPolicy>(r#"{"spike": 4.0}"#).is_err());
    }
}

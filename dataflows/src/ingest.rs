//! The per-worker front of the pipeline: parse → clean → stamp → key.
//!
//! A source operator owns one `Ingest`, feeds it raw messages with their partition and
//! offset, and periodically drains the result as `Ingested` items: compact `Copy` records
//! for the window engines, each domain's name once per drain, rejects and progress.
//! Everything here is pure and synchronous, so it is unit-tested and benchmarked without
//! Kafka, and it is the hot path: for a record whose domain is already known nothing is
//! allocated.
//!
//! Time contract: every drained item is stamped at or after the partition watermark that
//! was current when its message was ingested, so a source holding a capability at
//! `Ingest::watermark()` (taken before the drain) may emit everything it drains.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use rustc_hash::FxHashMap;

use crate::dedup::ResendFilter;
use crate::key::{ClientHit, DomainKey, Hit};
use crate::parse::Decoder;
use crate::progress::{PartitionProgress, ReplayPoint};
use crate::record::{Reject, RejectReason};
use crate::window::{PartitionClock, Time, Window, WindowKind, WindowPolicy};

/// How much of a rejected message is kept for the rejects table.
pub const REJECT_SAMPLE_BYTES: usize = 1024;

/// A message that could not be used, as recorded in the rejects table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RejectRow {
    /// Kafka partition, or 0 for a file.
    pub partition: i32,
    /// Kafka offset, or the 1-based line number for a file.
    pub offset: i64,
    pub reason: RejectReason,
    pub detail: String,
    /// The first `REJECT_SAMPLE_BYTES` of the message, as received.
    pub sample: Vec<u8>,
}

/// What an `Ingest` hands to the dataflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ingested {
    /// An accepted line, for the per-domain windows (routed by domain).
    Hit(Hit),
    /// The same line, for the cross-domain client view (routed by client).
    ClientHit(ClientHit),
    /// A domain's name, sent in every drain that has lines of it, before them.
    Name(DomainKey, String),
    /// A rejected message, to be written with the epoch `Time` it was stamped in.
    Reject(Box<(RejectRow, Time)>),
    /// Where a partition stands, for its checkpoint (see `progress`).
    Progress(i32, Box<PartitionProgress>),
}

/// Interns domain names to their keys and notes which were announced in the current drain.
/// Cleared when it grows past `MAX_INTERNED`, so hostile Host headers cannot grow it without
/// bound (a cleared name is simply interned and announced again).
#[derive(Default)]
struct DomainNames {
    keys: FxHashMap<Box<str>, (DomainKey, u64)>,
    /// Every key handed out, to catch two names with one key.
    names: FxHashMap<DomainKey, Box<str>>,
    /// The current drain; a name whose entry holds an older one is announced again.
    drain: u64,
}

const MAX_INTERNED: usize = 100_000;

impl DomainNames {
    /// The key of `name`, pushing its announcement into `out` if this drain has not had it.
    /// `None` if the key is already another name's (a hash collision).
    fn key(&mut self, name: &str, out: &mut Vec<Ingested>) -> Option<DomainKey> {
        if let Some((key, announced)) = self.keys.get_mut(name) {
            if *announced != self.drain {
                *announced = self.drain;
                out.push(Ingested::Name(*key, name.to_owned()));
            }
            return Some(*key);
        }
        let key = DomainKey::of(name);
        if self.names.contains_key(&key) {
            return None;
        }
        self.names.insert(key, name.into());
        self.keys.insert(name.into(), (key, self.drain));
        out.push(Ingested::Name(key, name.to_owned()));
        Some(key)
    }

    fn next_drain(&mut self) {
        self.drain += 1;
        if self.keys.len() > MAX_INTERNED {
            self.keys.clear();
            self.names.clear();
        }
    }
}

/// Counters an operator exports as metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestCounters {
    pub messages: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Filebeat events dropped as re-sends of events already counted.
    pub resends: u64,
}

/// Per-partition state: clock and replay progress, re-send memory, idleness.
#[derive(Clone, Debug)]
struct PartitionState {
    progress: PartitionProgress,
    resends: ResendFilter,
    /// A progress change not yet emitted.
    progress_dirty: bool,
    /// Wall-clock second since which the partition has been at the end of its log; `None`
    /// while data is flowing.
    idle_since: Option<u64>,
}

/// How long Filebeat re-sends are recognised by default, in event-time seconds.
pub const DEFAULT_RESEND_HORIZON_SECS: u64 = 600;

pub struct Ingest {
    decoder: Decoder,
    policy: WindowPolicy,
    resend_horizon_secs: u64,
    partitions: BTreeMap<i32, PartitionState>,
    domains: DomainNames,
    /// Records, names and rejects waiting to be drained.
    pending: Vec<Ingested>,
    counters: IngestCounters,
}

impl Ingest {
    pub fn new(decoder: Decoder, policy: WindowPolicy) -> Self {
        Ingest {
            decoder,
            policy,
            resend_horizon_secs: DEFAULT_RESEND_HORIZON_SECS,
            partitions: BTreeMap::new(),
            domains: DomainNames::default(),
            pending: Vec::new(),
            counters: IngestCounters::default(),
        }
    }

    /// How long re-sent Filebeat events are recognised (see `dedup`); set before reading.
    pub fn with_resend_horizon(mut self, secs: u64) -> Self {
        self.resend_horizon_secs = secs;
        self
    }

    /// Registers a partition this worker reads, starting fresh with `clock`.
    pub fn add_partition(&mut self, partition: i32, clock: PartitionClock) {
        self.resume_partition(partition, &ReplayPoint { clock, ..Default::default() });
    }

    /// Registers a partition this worker reads from a checkpoint's replay point.
    pub fn resume_partition(&mut self, partition: i32, point: &ReplayPoint) {
        self.partitions.insert(partition, self.new_partition(PartitionProgress::resume(point)));
    }

    fn new_partition(&self, progress: PartitionProgress) -> PartitionState {
        PartitionState { progress, resends: ResendFilter::new(self.resend_horizon_secs), progress_dirty: true, idle_since: None }
    }

    /// Forgets progress that cannot matter once every epoch before `committed` is in MySQL.
    pub fn prune(&mut self, committed: Time) {
        for state in self.partitions.values_mut() {
            state.progress.prune(committed);
        }
    }

    pub fn counters(&self) -> &IngestCounters {
        &self.counters
    }

    pub fn clock(&self, partition: i32) -> Option<PartitionClock> {
        self.partitions.get(&partition).map(|state| state.progress.clock())
    }

    /// The least watermark over this worker's partitions: nothing it drains later is stamped
    /// earlier. `None` if it reads no partition.
    pub fn watermark(&self) -> Option<Time> {
        self.partitions.values().map(|state| state.progress.clock().watermark).min()
    }

    /// Number of records, names and rejects waiting to be drained.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Decodes one message and folds it into the pending output.
    pub fn ingest(&mut self, partition: i32, offset: i64, payload: &[u8]) {
        self.counters.messages += 1;
        if !self.partitions.contains_key(&partition) {
            let fresh = self.new_partition(PartitionProgress::default());
            self.partitions.insert(partition, fresh);
        }
        let state = self.partitions.get_mut(&partition).expect("registered above");
        state.idle_since = None;
        state.progress_dirty = true;
        state.progress.apply_marks_before(offset);
        let clock_before = state.progress.clock();
        let policy = &self.policy;
        // `Ok(last epoch the record reaches)`, or the reject and the epoch it is written in.
        let result = match self.decoder.decode(payload) {
            Ok(decoded) => {
                let record = decoded.record;
                match u64::try_from(record.event_ms.div_euclid(1000)) {
                    Ok(event_sec) => {
                        let watermark = clock_before.watermark;
                        let resend = match &decoded.origin {
                            Some(origin) => state.resends.is_resend(origin, &record, event_sec, watermark),
                            None => false,
                        };
                        // A remembered identity keeps its record in the replay (see `dedup`).
                        let remembered = decoded.origin.as_ref().map_or(0, |_| policy.align(state.resends.remembered_until(event_sec)));
                        if resend {
                            self.counters.resends += 1;
                            state.progress.record(offset, clock_before, 0);
                            return;
                        }
                        let time = state.progress.clock_mut().stamp(event_sec, policy);
                        match last_retirement(policy, event_sec, time) {
                            None => Err((
                                Reject::new(RejectReason::TooLate, format!("event second {event_sec} is in a minute retired before {time}")),
                                time,
                                remembered,
                            )),
                            Some(last_retire) => match self.domains.key(&record.domain, &mut self.pending) {
                                Some(domain) => {
                                    let hit = Hit::new(domain, time, event_sec, &record);
                                    self.pending.push(Ingested::Hit(hit));
                                    self.pending.push(Ingested::ClientHit(ClientHit { client: hit.client, stamp: time, minute: hit.minute(), bytes: hit.bytes }));
                                    Ok(last_retire.max(remembered))
                                }
                                None => Err((
                                    Reject::new(RejectReason::BadDomain, "the domain's 64-bit key collides with another domain's"),
                                    time,
                                    remembered,
                                )),
                            },
                        }
                    }
                    Err(_) => Err((Reject::new(RejectReason::BadTime, "event time before 1970"), clock_before.watermark, 0)),
                }
            }
            Err(reject) => Err((reject, clock_before.watermark, 0)),
        };
        match result {
            Ok(last_time) => {
                self.counters.accepted += 1;
                state.progress.record(offset, clock_before, last_time);
            }
            Err((reject, time, remembered)) => {
                *self.counters.rejected.entry(reject.reason).or_default() += 1;
                state.progress.record(offset, clock_before, time.max(remembered));
                let sample = payload[..payload.len().min(REJECT_SAMPLE_BYTES)].to_vec();
                let row = RejectRow { partition, offset, reason: reject.reason, detail: reject.detail.into_owned(), sample };
                self.pending.push(Ingested::Reject(Box::new((row, time))));
            }
        }
    }

    /// Notes that `partition` is at the end of its log at wall-clock second `now_sec`.
    pub fn mark_end_of_log(&mut self, partition: i32, now_sec: u64) {
        if let Some(state) = self.partitions.get_mut(&partition) {
            state.idle_since.get_or_insert(now_sec);
        }
    }

    /// Lets partitions idle for at least the idle timeout follow the wall clock, so a quiet
    /// or empty partition does not hold the frontier back. See `window` for the trade-off.
    pub fn advance_idle(&mut self, now_sec: u64) {
        let policy = self.policy;
        for state in self.partitions.values_mut() {
            if let Some(since) = state.idle_since {
                if now_sec.saturating_sub(since) >= policy.idle_timeout_secs {
                    let before = state.progress.clock().watermark;
                    state.progress.idle_advance(policy.align(now_sec.saturating_sub(policy.out_of_orderness_secs)));
                    state.progress_dirty |= state.progress.clock().watermark != before;
                }
            }
        }
    }

    /// Moves everything pending into `out`, with the progress of partitions that moved.
    pub fn drain_into(&mut self, out: &mut Vec<Ingested>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.pending);
        } else {
            out.append(&mut self.pending);
        }
        self.domains.next_drain();
        for (&partition, state) in &mut self.partitions {
            if std::mem::take(&mut state.progress_dirty) {
                out.push(Ingested::Progress(partition, Box::new(state.progress.clone())));
            }
        }
    }
}

/// The retirement of the last window a record stamped `time` at `event_sec` reaches, or
/// `None` if its minute has retired (the record is too late). Windows are minute-aligned, so
/// a record in a live minute is live in every window containing it; the last of them to
/// retire is the latest-starting sliding window, or its five-minute sample.
fn last_retirement(policy: &WindowPolicy, event_sec: u64, time: Time) -> Option<Time> {
    let minute = Window { kind: WindowKind::Minute, start: event_sec - event_sec % 60 };
    if !policy.is_live(&minute, time) {
        return None;
    }
    let latest = |kind: WindowKind| policy.windows_of(kind, event_sec).last().map(|w| policy.retire_time(&w));
    [latest(WindowKind::Minute), latest(WindowKind::Sliding), latest(WindowKind::Sample5m)].into_iter().flatten().max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::CleanConfig;
    use crate::parse::time::format_time_local;
    use crate::parse::ParseConfig;

    /// 2026-03-01T00:00:00Z.
    const T0_MS: i64 = 1_772_323_200_000;

    fn ingest() -> Ingest {
        let decoder = Decoder::new(&ParseConfig { format: "cdn".into(), ..ParseConfig::default() }, &CleanConfig::default()).unwrap();
        let policy = WindowPolicy { tick_secs: 1, out_of_orderness_secs: 10, allowed_lateness_secs: 30, idle_timeout_secs: 5, ..Default::default() };
        Ingest::new(decoder, policy).with_resend_horizon(120)
    }

    fn cdn_line(ms: i64, host: &str, client: u8, bytes: u64) -> String {
        format!(
            r#"10.0.0.1 - - [{}] "GET /a HTTP/1.1" 200 {bytes} "-" "curl/8" "-" "198.51.100.{client}" {host} 0.010 0.005 HIT {bytes}"#,
            format_time_local(ms, 480)
        )
    }

    fn filebeat(line: &str, offset: u64) -> Vec<u8> {
        serde_json::json!({"message": line, "log": {"offset": offset, "file": {"path": "/var/log/nginx/access.log"}}, "agent": {"id": "web-1"}})
            .to_string()
            .into_bytes()
    }

    fn drain(ingest: &mut Ingest) -> Vec<Ingested> {
        let mut out = Vec::new();
        ingest.drain_into(&mut out);
        out
    }

    #[test]
    fn a_filebeat_resend_counts_once_within_the_horizon() {
        let mut ingest = ingest();
        ingest.add_partition(0, PartitionClock::default());
        let event = filebeat(&cdn_line(T0_MS, "a.example", 1, 100), 4096);
        ingest.ingest(0, 0, &event);
        ingest.ingest(0, 1, &event);
        assert_eq!((ingest.counters().accepted, ingest.counters().resends), (1, 1));
        // The same line at another offset is another line.
        ingest.ingest(0, 2, &filebeat(&cdn_line(T0_MS, "a.example", 1, 100), 8192));
        assert_eq!(ingest.counters().accepted, 2);
        // Once the watermark has passed the horizon the identity is forgotten (and the old
        // line is now too late, which is a reject, not a silent drop).
        ingest.ingest(0, 3, &filebeat(&cdn_line(T0_MS + 200_000, "a.example", 1, 100), 9000));
        ingest.ingest(0, 4, &event);
        assert_eq!(ingest.counters().resends, 1);
        assert_eq!(ingest.counters().rejected.get(&RejectReason::TooLate), Some(&1));
    }

    /// Hits reaching a window that retires at or after `from` (the state a replay must
    /// rebuild) and rejects stamped at or after it, in a canonical order.
    fn outputs_from(items: &[Ingested], from: Time) -> (Vec<String>, Vec<(i64, Time)>) {
        let policy = ingest().policy;
        let mut hits = Vec::new();
        let mut rejects = Vec::new();
        for item in items {
            match item {
                Ingested::Hit(hit) if last_retirement(&policy, hit.event_sec, hit.stamp).is_some_and(|r| r >= from) => hits.push(format!("{hit:?}")),
                Ingested::Reject(reject) if reject.1 >= from => rejects.push((reject.0.offset, reject.1)),
                _ => {}
            }
        }
        hits.sort();
        rejects.sort();
        (hits, rejects)
    }

    #[test]
    fn replaying_from_a_replay_point_reproduces_every_later_epoch() {
        // Disordered, late and too-late lines, Filebeat re-sends, and an idle advance.
        let mut messages = Vec::new();
        for i in 0..3000i64 {
            let jitter = (i * 7919) % 9000;
            let late = if i % 97 == 0 { 50_000 } else { 0 };
            let too_late = if i % 401 == 0 { 400_000 } else { 0 };
            let ms = T0_MS + i * 200 - jitter - late - too_late;
            let line = cdn_line(ms, ["a.example", "b.example", "c.example"][i as usize % 3], (i % 50) as u8, 100 + i as u64);
            messages.push(filebeat(&line, 1000 + i as u64 * 300));
            if i % 50 == 7 {
                messages.push(messages[messages.len() - 3].clone());
            }
        }
        let idle_at = 2000;
        let run = |ingest: &mut Ingest, from: usize, outputs: &mut Vec<Ingested>, snapshot_at: Option<usize>| {
            let mut snapshot = None;
            for (offset, message) in messages.iter().enumerate().skip(from) {
                if offset == idle_at {
                    // What a wall-clock idle advance did in the first run, at this offset.
                    let _ = ingest.partitions.get_mut(&0).map(|s| s.progress.idle_advance(policy_align(ingest.policy, s.progress.clock().watermark + 20)));
                }
                ingest.ingest(0, offset as i64, message);
                if offset % 100 == 0 {
                    outputs.extend(drain(ingest));
                }
                if Some(offset) == snapshot_at {
                    outputs.extend(drain(ingest));
                    snapshot = ingest.partitions.get(&0).map(|s| s.progress.clone());
                }
            }
            outputs.extend(drain(ingest));
            snapshot
        };
        let mut whole = ingest();
        whole.add_partition(0, PartitionClock::default());
        let mut all = Vec::new();
        let snapshot = run(&mut whole, 0, &mut all, Some(2500)).unwrap();

        for committed_secs in [300u64, 420, 480, 560] {
            let committed = (T0_MS / 1000) as u64 + committed_secs;
            let point = snapshot.replay_point(committed);
            let mut resumed = ingest();
            resumed.resume_partition(0, &point);
            let mut replayed = Vec::new();
            // The replay re-applies the idle advance from the recorded mark, not by itself.
            let replay_messages_from = point.offset.unwrap() as usize;
            for (offset, message) in messages.iter().enumerate().skip(replay_messages_from) {
                resumed.ingest(0, offset as i64, message);
            }
            replayed.extend(drain(&mut resumed));
            assert_eq!(outputs_from(&replayed, committed), outputs_from(&all, committed), "committed at +{committed_secs} s");
        }
    }

    fn policy_align(policy: WindowPolicy, secs: u64) -> Time {
        policy.align(secs)
    }
}

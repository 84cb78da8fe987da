//! The per-worker front of the pipeline: parse → clean → time checks → stamp → key.
//!
//! A source operator owns one `Ingest`, feeds it raw messages with their partition and
//! offset, and periodically drains the result as `Ingested` items: compact `Copy` records
//! for the window engines, each domain's name once per drain, rejects and progress.
//! Everything here is pure and synchronous, so it is unit-tested and benchmarked without
//! Kafka, and it is the hot path: for a record whose domain is already known nothing is
//! allocated.
//!
//! Domain contract: a record whose time is settled passes the domain gate (`domain_gate`:
//! `unknown_domain`, `domain_flood`) before its domain is interned, so a refused domain never
//! reaches the window engine, a row or an alert detector. Domain keys are SipHash under the
//! run's seed (`Ingest::with_domain_seed`, see `key`).
//!
//! Time contract: every drained item is stamped at or after the partition watermark that
//! was current when its message was ingested (for a record released from a held time jump,
//! the watermark before the hold's first record, at which `Ingest::watermark()` waits while
//! the hold is open), so a source holding a capability at `Ingest::watermark()` (taken
//! before the drain) may emit everything it drains.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use rustc_hash::FxHashMap;

use crate::dedup::ResendFilter;
use crate::domain_gate::{DomainGate, NewDomains, Refusal};
use crate::key::{ClientHit, DomainKey, DomainSeed, Hit};
use crate::parse::{Decoded, Decoder};
use crate::progress::{PartitionProgress, Pin, ReplayPoint};
use crate::record::{CleanRecord, Reject, RejectReason};
use crate::time_guard::{self, Fate, Held, Hold, Resolution};
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
struct DomainNames {
    seed: DomainSeed,
    keys: FxHashMap<Box<str>, (DomainKey, u64)>,
    /// Every key handed out, to catch two names with one key.
    names: FxHashMap<DomainKey, Box<str>>,
    /// The current drain; a name whose entry holds an older one is announced again.
    drain: u64,
}

const MAX_INTERNED: usize = 100_000;

impl DomainNames {
    fn new(seed: DomainSeed) -> DomainNames {
        DomainNames { seed, keys: FxHashMap::default(), names: FxHashMap::default(), drain: 0 }
    }

    /// The key of an interned `name`, pushing its announcement into `out` if this drain has
    /// not had it; `None` if `name` is not interned.
    fn interned(&mut self, name: &str, out: &mut Vec<Ingested>) -> Option<DomainKey> {
        let (key, announced) = self.keys.get_mut(name)?;
        if *announced != self.drain {
            *announced = self.drain;
            out.push(Ingested::Name(*key, name.to_owned()));
        }
        Some(*key)
    }

    /// Interns `name` under `key` (its key under this seed) and announces it. `None` if the
    /// key is already another name's (a hash collision).
    fn intern(&mut self, name: &str, key: DomainKey, out: &mut Vec<Ingested>) -> Option<DomainKey> {
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
    /// Shipper events dropped as re-sends of events already counted.
    pub resends: u64,
}

/// Per-partition state: clock and replay progress, re-send memory, held time jump, idleness.
#[derive(Clone, Debug)]
struct PartitionState {
    progress: PartitionProgress,
    resends: ResendFilter,
    /// A time jump waiting for confirmation (see `time_guard`).
    hold: Option<Hold>,
    /// A progress change not yet emitted.
    progress_dirty: bool,
    /// Wall-clock second since which the partition has been at the end of its log; `None`
    /// while data is flowing.
    idle_since: Option<u64>,
    /// The domains it admitted recently, for the cap on new ones (see `domain_gate`).
    new_domains: NewDomains,
    /// The message being ingested is below the offset a previous run had read: the cap
    /// repeats that run's decisions (a record released from a hold is decided by the
    /// message that released it).
    replaying: bool,
    /// The partition's input ended for good (one of several files): it no longer bounds the
    /// watermark.
    finished: bool,
}

/// How long shipper re-sends are recognised by default, in event-time seconds.
pub const DEFAULT_RESEND_HORIZON_SECS: u64 = 600;

pub struct Ingest {
    decoder: Decoder,
    policy: WindowPolicy,
    resend_horizon_secs: u64,
    partitions: BTreeMap<i32, PartitionState>,
    domains: DomainNames,
    gate: DomainGate,
    /// Records, names and rejects waiting to be drained.
    pending: Vec<Ingested>,
    counters: IngestCounters,
    /// The wall clock for `future_time`, set by the source before each read.
    now_sec: Option<u64>,
}

impl Ingest {
    pub fn new(decoder: Decoder, policy: WindowPolicy) -> Self {
        Ingest {
            decoder,
            policy,
            resend_horizon_secs: DEFAULT_RESEND_HORIZON_SECS,
            partitions: BTreeMap::new(),
            domains: DomainNames::new(DomainSeed::FIXED),
            gate: DomainGate::open(),
            pending: Vec::new(),
            counters: IngestCounters::default(),
            now_sec: None,
        }
    }

    /// How long re-sent shipper events are recognised (see `dedup`); set before reading.
    pub fn with_resend_horizon(mut self, secs: u64) -> Self {
        self.resend_horizon_secs = secs;
        self
    }

    /// The seed domain names are hashed with: the same in every worker of the cluster (see
    /// `key`); set before reading.
    pub fn with_domain_seed(mut self, seed: DomainSeed) -> Self {
        self.domains = DomainNames::new(seed);
        self
    }

    /// Which domains may create rows (see `domain_gate`); set before reading.
    pub fn with_domain_gate(mut self, gate: DomainGate) -> Self {
        self.gate = gate;
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
        PartitionState {
            progress,
            resends: ResendFilter::new(self.resend_horizon_secs),
            hold: None,
            progress_dirty: true,
            idle_since: None,
            new_domains: NewDomains::default(),
            replaying: false,
            finished: false,
        }
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

    /// The least watermark over this worker's partitions that are not finished: nothing it
    /// drains later is stamped earlier. `None` if it reads no (unfinished) partition. A held
    /// time jump keeps its partition at the watermark before its first record, where its
    /// records may still be written.
    pub fn watermark(&self) -> Option<Time> {
        self.partitions
            .values()
            .filter(|state| !state.finished)
            .map(|state| {
                let watermark = state.progress.clock().watermark;
                state.hold.as_ref().map_or(watermark, |hold| watermark.min(hold.pin.1.watermark))
            })
            .min()
    }

    /// The longest message the decoder accepts; a reader need keep no more than one byte
    /// beyond it for the message to be rejected as `too_long`.
    pub fn max_line_bytes(&self) -> usize {
        self.decoder.max_line_bytes()
    }

    /// Number of records, names and rejects waiting to be drained.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The wall clock (Unix seconds) for the messages ingested next: a line more than
    /// `max_future_secs` ahead of it is rejected as `future_time`. Until it is set, lines are
    /// checked only against decisions replayed from a checkpoint.
    pub fn set_wall_clock(&mut self, now_sec: u64) {
        self.now_sec = Some(now_sec);
    }

    /// Decodes one message and folds it into the pending output.
    pub fn ingest(&mut self, partition: i32, offset: i64, payload: &[u8]) {
        self.counters.messages += 1;
        if !self.partitions.contains_key(&partition) {
            let fresh = self.new_partition(PartitionProgress::default());
            self.partitions.insert(partition, fresh);
        }
        let Ingest { decoder, policy, partitions, domains, gate, pending, counters, now_sec, .. } = self;
        let state = partitions.get_mut(&partition).expect("registered above");
        state.idle_since = None;
        state.replaying = state.progress.replayed_decision(offset).is_some();
        state.progress_dirty = true;
        state.progress.apply_marks_before(offset);
        state.progress.note_read(offset);
        let clock_before = state.progress.clock();
        // While a time jump is held, a replay must start at its first record (see `progress`).
        let at = state.hold.as_ref().map_or((offset, clock_before), |hold| hold.pin);
        let mut emit = Emit { policy, domains, gate, pending, counters, partition };
        let resolution = match decoder.decode(payload) {
            Ok(decoded) => match u64::try_from(decoded.record.event_ms.div_euclid(1000)) {
                Ok(event_sec) => emit.check_time(state, offset, payload, &decoded, event_sec, clock_before, at, *now_sec),
                Err(_) => {
                    emit.reject(state, offset, payload, Reject::new(RejectReason::BadTime, "event time before 1970"), clock_before.watermark, 0, at);
                    None
                }
            },
            Err(reject) => {
                emit.reject(state, offset, payload, reject, clock_before.watermark, 0, at);
                None
            }
        };
        if let Some(resolution) = resolution {
            emit.resolve(decoder, state, resolution);
        }
        state.progress.set_pin(state.hold.as_ref().map(|hold| hold.pin));
    }

    /// Ends the input: every open time jump is decided as if no more records came, so its
    /// records are rejected as `time_outlier` (recorded for replays, see `time_guard`).
    pub fn finish(&mut self) {
        let Ingest { policy, partitions, domains, gate, pending, counters, .. } = self;
        for (&partition, state) in partitions.iter_mut() {
            Emit { policy, domains, gate, pending, counters, partition }.end_hold(state);
        }
    }

    /// Ends one partition's input (a file read to its end while the worker reads others): an
    /// open time jump there is decided as at the end of the input, and the partition stops
    /// holding the watermark back, so a worker's finished file does not keep the windows of
    /// its later files open. Nothing may be ingested into it afterwards: its records would be
    /// stamped below the watermark.
    pub fn finish_partition(&mut self, partition: i32) {
        let Ingest { policy, partitions, domains, gate, pending, counters, .. } = self;
        if let Some(state) = partitions.get_mut(&partition) {
            Emit { policy, domains, gate, pending, counters, partition }.end_hold(state);
            state.finished = true;
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
    /// An open time jump there is decided first, as at the end of the input.
    pub fn advance_idle(&mut self, now_sec: u64) {
        let policy = self.policy;
        let Ingest { partitions, domains, gate, pending, counters, .. } = self;
        for (&partition, state) in partitions.iter_mut() {
            if let Some(since) = state.idle_since {
                if now_sec.saturating_sub(since) >= policy.idle_timeout_secs {
                    Emit { policy: &policy, domains, gate, pending, counters, partition }.end_hold(state);
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

/// Where a record goes once its time is settled, fresh or released from a hold: `Ingest`'s
/// outputs, borrowed apart from the decoder and the partitions.
struct Emit<'a> {
    policy: &'a WindowPolicy,
    domains: &'a mut DomainNames,
    gate: &'a DomainGate,
    pending: &'a mut Vec<Ingested>,
    counters: &'a mut IngestCounters,
    partition: i32,
}

impl Emit<'_> {
    /// The time checks before the clock: the wall clock (or its replayed decision), re-sends,
    /// then time jumps. Commits the record if it passes; returns a hold's decision for the
    /// caller to carry out once the decoded record is dropped.
    #[allow(clippy::too_many_arguments)]
    fn check_time(
        &mut self,
        state: &mut PartitionState,
        offset: i64,
        payload: &[u8],
        decoded: &Decoded<'_>,
        event_sec: u64,
        clock_before: PartitionClock,
        at: Pin,
        now_sec: Option<u64>,
    ) -> Option<Resolution> {
        let policy = self.policy;
        let replayed = state.progress.replayed_decision(offset);
        let future = match replayed {
            Some(decision) => decision == Some(RejectReason::FutureTime),
            None => now_sec.is_some_and(|now| policy.is_future(event_sec, now)),
        };
        if future {
            // The detail leaves the wall clock out: a replay writes the same row.
            let detail = format!("event second {event_sec} is more than {} s ahead of the wall clock", policy.max_future_secs);
            state.progress.decide(offset, RejectReason::FutureTime);
            self.reject(state, offset, payload, Reject::new(RejectReason::FutureTime, detail), clock_before.watermark, 0, at);
            return None;
        }
        let record = &decoded.record;
        let resend = match &decoded.origin {
            Some(origin) => state.resends.is_resend(origin, record, event_sec, clock_before.watermark),
            None => false,
        };
        // A remembered identity keeps its record in the replay (see `dedup`).
        let remembered = decoded.origin.as_ref().map_or(0, |_| policy.align(state.resends.remembered_until(event_sec)));
        if resend {
            self.counters.resends += 1;
            state.progress.record_at(offset, at, 0);
            return None;
        }
        if replayed == Some(Some(RejectReason::TimeOutlier)) {
            // Still held when the first run's input ended; there it passed any hold then open.
            self.reject(state, offset, payload, outlier_reject(event_sec, policy), clock_before.watermark, remembered, at);
            return time_guard::pass_unconfirmed(&mut state.hold, policy);
        }
        let held = || Held { offset, payload: payload.to_vec(), event_sec, clock_before, remembered };
        let (fate, resolution) = time_guard::observe(&mut state.hold, policy, &clock_before, event_sec, None, held);
        if fate == Fate::Pass {
            self.commit(state, offset, payload, record, event_sec, remembered, at);
        }
        resolution
    }

    /// Stamp → combine → progress: the path of every record whose time is settled.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        state: &mut PartitionState,
        offset: i64,
        payload: &[u8],
        record: &CleanRecord<'_>,
        event_sec: u64,
        remembered: Time,
        at: Pin,
    ) {
        let policy = self.policy;
        let time = state.progress.clock_mut().stamp(event_sec, policy);
        let Some(last_retire) = last_retirement(policy, event_sec, time) else {
            let detail = format!("event second {event_sec} is in a minute retired before {time}");
            self.reject(state, offset, payload, Reject::new(RejectReason::TooLate, detail), time, remembered, at);
            return;
        };
        // An interned name passed the list when it was interned; only the cap looks again.
        let name = &*record.domain;
        let interned = self.domains.interned(name, self.pending);
        if interned.is_none() && self.gate.check_known(name).is_err() {
            let reject = Reject::new(RejectReason::UnknownDomain, format!("domain '{name}' is not in clean.domains"));
            self.reject(state, offset, payload, reject, time, remembered, at);
            return;
        }
        let key = interned.unwrap_or_else(|| self.domains.seed.key(name));
        let mut reach = last_retire.max(remembered);
        if self.gate.caps_new_domains() {
            let replayed = match state.progress.replayed_bounded_decision(offset) {
                Some(decision) if state.replaying => Some(decision == Some(RejectReason::DomainFlood)),
                _ => None,
            };
            match state.new_domains.admit(self.gate, key, state.progress.clock().watermark, replayed) {
                Ok(admitted) => reach = reach.max(admitted.reach.unwrap_or(0)),
                Err(Refusal::Flood | Refusal::Unknown) => {
                    let detail = format!(
                        "domain '{name}' is new and partition {} already admitted {} new domains in this minute (clean.new_domains_per_minute)",
                        self.partition,
                        self.gate.new_per_minute()
                    );
                    // A replay below the first run's reach repeats this (see `domain_gate`).
                    state.progress.decide_bounded(offset, RejectReason::DomainFlood);
                    self.reject(state, offset, payload, Reject::new(RejectReason::DomainFlood, detail), time, remembered, at);
                    return;
                }
            }
        }
        let domain = match interned {
            Some(key) => key,
            None => match self.domains.intern(name, key, self.pending) {
                Some(key) => key,
                None => {
                    let reject = Reject::new(RejectReason::BadDomain, "the domain's 64-bit key collides with another domain's");
                    self.reject(state, offset, payload, reject, time, remembered, at);
                    return;
                }
            },
        };
        let hit = Hit::new(domain, time, event_sec, record);
        self.pending.push(Ingested::Hit(hit));
        self.pending.push(Ingested::ClientHit(ClientHit { client: hit.client, stamp: time, minute: hit.minute(), bytes: hit.bytes }));
        self.counters.accepted += 1;
        state.progress.record_at(offset, at, reach);
    }

    /// Counts a reject and records it for the rejects table in epoch `time`.
    #[allow(clippy::too_many_arguments)]
    fn reject(&mut self, state: &mut PartitionState, offset: i64, payload: &[u8], reject: Reject, time: Time, remembered: Time, at: Pin) {
        *self.counters.rejected.entry(reject.reason).or_default() += 1;
        state.progress.record_at(offset, at, time.max(remembered));
        let sample = payload[..payload.len().min(REJECT_SAMPLE_BYTES)].to_vec();
        let row = RejectRow { partition: self.partition, offset, reason: reject.reason, detail: reject.detail.into_owned(), sample };
        self.pending.push(Ingested::Reject(Box::new((row, time))));
    }

    /// Commits a record released from a hold, decoding it again (decoding is pure).
    fn commit_held(&mut self, decoder: &mut Decoder, state: &mut PartitionState, held: &Held, at: Pin) {
        match decoder.decode(&held.payload) {
            Ok(decoded) => self.commit(state, held.offset, &held.payload, &decoded.record, held.event_sec, held.remembered, at),
            // It decoded when it was held; a decoder that disagrees now still gets a reject.
            Err(reject) => self.reject(state, held.offset, &held.payload, reject, held.clock_before.watermark, held.remembered, at),
        }
    }

    /// Rejects a held record as `time_outlier`, in the epoch of its own arrival.
    fn reject_held(&mut self, state: &mut PartitionState, held: &Held, at: Pin) {
        let reject = outlier_reject(held.event_sec, self.policy);
        self.reject(state, held.offset, &held.payload, reject, held.clock_before.watermark, held.remembered, at);
    }

    /// Carries out a hold's decision, then checks the records it let go again, in offset
    /// order; one of them may open (and even decide) the next hold, which keeps the pin.
    fn resolve(&mut self, decoder: &mut Decoder, state: &mut PartitionState, resolution: Resolution) {
        let (pin, recheck) = match resolution {
            Resolution::Confirmed { pin, candidate, recheck } => {
                self.commit_held(decoder, state, &candidate, pin);
                (pin, recheck)
            }
            Resolution::Refuted { pin, rejected, recheck } => {
                for held in &rejected {
                    self.reject_held(state, held, pin);
                }
                (pin, recheck)
            }
        };
        for held in recheck {
            let clock = state.progress.clock();
            let event_sec = held.event_sec;
            let mut kept = Some(held);
            let (fate, next) =
                time_guard::observe(&mut state.hold, self.policy, &clock, event_sec, Some(pin), || kept.take().expect("held once"));
            if fate == Fate::Pass {
                let held = kept.take().expect("not held");
                self.commit_held(decoder, state, &held, pin);
            }
            if let Some(next) = next {
                self.resolve(decoder, state, next);
            }
        }
    }

    /// Decides an open hold as if no more records came: every record it holds is rejected as
    /// `time_outlier`. A replay cannot know where the input ended, so the rejects are recorded
    /// as decisions (see `progress`).
    fn end_hold(&mut self, state: &mut PartitionState) {
        let Some(hold) = state.hold.take() else { return };
        let pin = hold.pin;
        for held in hold.into_held() {
            state.progress.decide(held.offset, RejectReason::TimeOutlier);
            self.reject_held(state, &held, pin);
        }
        state.progress.set_pin(None);
        state.progress_dirty = true;
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

fn outlier_reject(event_sec: u64, policy: &WindowPolicy) -> Reject {
    let detail = format!("event second {event_sec} jumped more than {} s ahead of its partition, unconfirmed", policy.max_time_jump_secs);
    Reject::new(RejectReason::TimeOutlier, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use crate::clean::CleanConfig;
    use crate::progress::Decided;
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
    fn a_finished_partition_stops_holding_the_watermark_back() {
        let mut ingest = ingest();
        ingest.add_partition(0, PartitionClock::default());
        ingest.add_partition(1, PartitionClock::default());
        // An unread partition holds the watermark at the start.
        ingest.ingest(1, 1, cdn_line(T0_MS + 600_000, "a.example", 1, 100).as_bytes());
        assert_eq!(ingest.watermark(), Some(0));
        ingest.ingest(0, 1, cdn_line(T0_MS, "a.example", 1, 100).as_bytes());
        let first = ingest.watermark().expect("two partitions");
        assert_eq!(first, ingest.clock(0).expect("partition 0").watermark);
        // A time jump held in partition 0 is decided when it finishes.
        ingest.ingest(0, 2, cdn_line(T0_MS + 86_400_000, "a.example", 1, 100).as_bytes());
        ingest.finish_partition(0);
        assert_eq!(ingest.counters().rejected.get(&RejectReason::TimeOutlier), Some(&1));
        assert_eq!(ingest.watermark(), Some(ingest.clock(1).expect("partition 1").watermark));
        assert!(ingest.watermark() > Some(first));
        ingest.finish_partition(1);
        assert_eq!(ingest.watermark(), None);
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

    /// Hits (rendered, sorted) and rejects as (offset, epoch, reason).
    type Outputs = (Vec<String>, Vec<(i64, Time, RejectReason)>);

    /// Hits reaching a window that retires at or after `from` (the state a replay must
    /// rebuild) and rejects stamped at or after it, in a canonical order.
    fn outputs_from(items: &[Ingested], from: Time) -> Outputs {
        let policy = ingest().policy;
        let mut hits = Vec::new();
        let mut rejects = Vec::new();
        for item in items {
            match item {
                Ingested::Hit(hit) if last_retirement(&policy, hit.event_sec, hit.stamp).is_some_and(|r| r >= from) => hits.push(format!("{hit:?}")),
                Ingested::Reject(reject) if reject.1 >= from => rejects.push((reject.0.offset, reject.1, reject.0.reason)),
                _ => {}
            }
        }
        hits.sort();
        rejects.sort();
        (hits, rejects)
    }

    #[test]
    fn replaying_from_a_replay_point_reproduces_every_later_epoch() {
        // Disordered, late and too-late lines, Filebeat re-sends, an idle advance, lines a year
        // ahead (future_time), a hostile jump of 3 h that nothing confirms (time_outlier), a
        // legit jump of 1 h that later lines confirm (a night without traffic), and a jump
        // still held when the input ends.
        const YEAR_MS: i64 = 365 * 86_400_000;
        let mut messages = Vec::new();
        let mut hostile_at = 0;
        let mut legit_at = 0;
        for i in 0..3000i64 {
            let jitter = (i * 7919) % 9000;
            let late = if i % 97 == 0 { 50_000 } else { 0 };
            let too_late = if i % 401 == 0 { 400_000 } else { 0 };
            let gap = if i >= 1500 { 3_600_000 } else { 0 };
            let mut ms = T0_MS + i * 200 - jitter - late - too_late + gap;
            if i % 613 == 5 || i == 2700 {
                ms = T0_MS + YEAR_MS;
            }
            if i == 700 {
                hostile_at = messages.len();
                ms = T0_MS + 3 * 3_600_000;
            }
            if i == 1500 {
                legit_at = messages.len();
            }
            if i == 2999 {
                ms = T0_MS + 9 * 3_600_000;
            }
            let line = cdn_line(ms, ["a.example", "b.example", "c.example"][i as usize % 3], (i % 50) as u8, 100 + i as u64);
            // The hostile line comes without a Filebeat envelope: a remembered identity would
            // keep it in every replay for hours of event time (see `dedup`), hiding the pin.
            messages.push(if i == 700 { line.into_bytes() } else { filebeat(&line, 1000 + i as u64 * 300) });
            if i % 50 == 7 {
                messages.push(messages[messages.len() - 3].clone());
            }
        }
        let t0 = (T0_MS / 1000) as u64;
        // The first run's wall clock: 5 h after T0, then two years after (lines a year ahead
        // are then no longer future_time, only jumps).
        let (early, late) = (t0 + 5 * 3600, t0 + 2 * 365 * 86_400);
        let switch_at = 2600;
        let first_clock = |offset: usize| if offset < switch_at { early } else { late };
        let idle_at = 2000;
        let run = |ingest: &mut Ingest, from: usize, wall: &dyn Fn(usize) -> u64, outputs: &mut Vec<Ingested>, snapshots_at: &[usize]| {
            let mut snapshots = Vec::new();
            for (offset, message) in messages.iter().enumerate().skip(from) {
                if offset == idle_at {
                    // What a wall-clock idle advance did in the first run, at this offset.
                    let _ = ingest.partitions.get_mut(&0).map(|s| s.progress.idle_advance(policy_align(ingest.policy, s.progress.clock().watermark + 20)));
                }
                ingest.set_wall_clock(wall(offset));
                ingest.ingest(0, offset as i64, message);
                if offset % 100 == 0 {
                    outputs.extend(drain(ingest));
                }
                if snapshots_at.contains(&offset) {
                    outputs.extend(drain(ingest));
                    snapshots.push(ingest.partitions[&0].progress.clone());
                }
            }
            ingest.finish();
            outputs.extend(drain(ingest));
            snapshots
        };
        let mut whole = ingest();
        whole.add_partition(0, PartitionClock::default());
        let mut all = Vec::new();
        // Inside the hostile hold, inside the legit hold, after both, and after the switch.
        let snapshots_at = [hostile_at + 3, legit_at + 1, 2500, 2800];
        let snapshots = run(&mut whole, 0, &first_clock, &mut all, &snapshots_at);
        let counted = |reason| whole.counters().rejected.get(&reason).copied().unwrap_or(0);
        // Five lines a year ahead before the switch, one of them re-sent (rejected before the
        // re-send check, so twice).
        assert_eq!(counted(RejectReason::FutureTime), 6);
        // The hostile line, the line a year ahead after the switch, and the one held at the end.
        assert_eq!(counted(RejectReason::TimeOutlier), 3);
        assert!(whole.counters().accepted > 2900, "the hour after the gap is kept: {:?}", whole.counters());
        assert!(whole.partitions[&0].hold.is_none());

        let mut points = Vec::new();
        for snapshot in &snapshots {
            for committed in (t0..t0 + 4 * 3600 + 900).step_by(20) {
                let point = snapshot.replay_point(committed);
                points.push((committed, point));
            }
        }
        assert!(points.iter().any(|(_, p)| !p.decided.is_empty()), "some replay repeats recorded decisions");
        let mut replays: Vec<(ReplayPoint, Vec<Ingested>)> = Vec::new();
        for (committed, point) in points {
            if !replays.iter().any(|(p, _)| *p == point) {
                let mut resumed = ingest();
                resumed.resume_partition(0, &point);
                let read_until = point.read_until.unwrap_or(0) as usize;
                // A restart runs later: offsets read before must repeat the recorded decisions,
                // not consult this clock; offsets never read see the first run's clock.
                let wall = |offset: usize| if offset < read_until { late } else { first_clock(offset) };
                let mut replayed = Vec::new();
                // The replay re-applies the idle advance from the recorded mark, not by itself.
                let from = point.offset.unwrap() as usize;
                for (offset, message) in messages.iter().enumerate().skip(from) {
                    if offset == idle_at && offset >= read_until {
                        // Not read before the snapshot: the idle advance happens as it did.
                        let _ = resumed.partitions.get_mut(&0).map(|s| s.progress.idle_advance(policy_align(resumed.policy, s.progress.clock().watermark + 20)));
                    }
                    resumed.set_wall_clock(wall(offset));
                    resumed.ingest(0, offset as i64, message);
                }
                resumed.finish();
                replayed.extend(drain(&mut resumed));
                replays.push((point.clone(), replayed));
            }
            let replayed = &replays.iter().find(|(p, _)| *p == point).expect("replayed above").1;
            let (replayed, first) = (outputs_from(replayed, committed), outputs_from(&all, committed));
            if replayed != first {
                let only = |a: &[String], b: &[String]| a.iter().filter(|hit| !b.contains(hit)).take(5).cloned().collect::<Vec<_>>();
                let rejects = |a: &[(i64, Time, RejectReason)], b: &[(i64, Time, RejectReason)]| a.iter().filter(|r| !b.contains(r)).copied().collect::<Vec<_>>();
                panic!(
                    "committed at {committed}, {point:?}\nreplay only: {:?} {:?}\nfirst run only: {:?} {:?}",
                    only(&replayed.0, &first.0),
                    rejects(&replayed.1, &first.1),
                    only(&first.0, &replayed.0),
                    rejects(&first.1, &replayed.1)
                );
            }
        }
    }

    /// Plain lines (no Filebeat identity) at T0 + the given seconds.
    fn plain_lines(secs: &[i64]) -> Vec<Vec<u8>> {
        secs.iter().enumerate().map(|(i, s)| cdn_line(T0_MS + s * 1000, "a.example", i as u8, 100).into_bytes()).collect()
    }

    fn rejects_of(items: &[Ingested]) -> Vec<(i64, RejectReason, Time)> {
        items.iter().filter_map(|item| if let Ingested::Reject(reject) = item { Some((reject.0.offset, reject.0.reason, reject.1)) } else { None }).collect()
    }

    #[test]
    fn a_line_dated_2030_is_rejected_as_future_time_and_the_lines_after_it_are_kept() {
        let mut ingest = ingest();
        ingest.set_wall_clock((T0_MS / 1000) as u64 + 60);
        let mut lines = plain_lines(&[0, 1, 2]);
        lines.push(cdn_line(1_893_456_000_000, "a.example", 9, 100).into_bytes()); // 2030-01-01
        lines.extend(plain_lines(&[3, 4, 5, 6]));
        for (offset, line) in lines.iter().enumerate() {
            ingest.ingest(0, offset as i64, line);
        }
        assert_eq!(ingest.counters().accepted, 7);
        assert_eq!(rejects_of(&drain(&mut ingest)).iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), vec![(3, RejectReason::FutureTime)]);
        assert_eq!(ingest.clock(0).unwrap().max_event_sec, Some((T0_MS / 1000) as u64 + 6));
    }

    #[test]
    fn a_held_jump_keeps_the_watermark_until_it_is_decided() {
        let mut ingest = ingest();
        let t0 = (T0_MS / 1000) as u64;
        for (offset, line) in plain_lines(&[100, 101, 7300, 102]).iter().enumerate() {
            ingest.ingest(0, offset as i64, line);
        }
        // The jump at offset 2 is held: the clock and the capability stay at the old time.
        assert_eq!(ingest.clock(0).unwrap().max_event_sec, Some(t0 + 102));
        assert_eq!(ingest.watermark(), Some(t0 + 91));
        let point = ingest.partitions[&0].progress.replay_point(t0 + 100_000);
        assert_eq!((point.offset, point.clock.watermark), (Some(2), t0 + 91), "pinned at the held record");
        // Two records near it confirm the jump: the clock follows.
        for (offset, line) in plain_lines(&[7301, 7302]).iter().enumerate() {
            ingest.ingest(0, offset as i64 + 4, line);
        }
        assert_eq!(ingest.counters().accepted, 6);
        assert_eq!(ingest.clock(0).unwrap().max_event_sec, Some(t0 + 7302));
        assert_eq!(ingest.watermark(), Some(t0 + 7292));
        assert!(rejects_of(&drain(&mut ingest)).is_empty());
    }

    #[test]
    fn a_jump_nothing_confirms_is_rejected_as_time_outlier_after_the_patience() {
        let mut ingest = ingest();
        let mut secs = vec![100, 101, 3 * 3600];
        secs.extend(102..118);
        for (offset, line) in plain_lines(&secs).iter().enumerate() {
            ingest.ingest(0, offset as i64, line);
        }
        let rejects = rejects_of(&drain(&mut ingest));
        assert_eq!(rejects.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), vec![(2, RejectReason::TimeOutlier)]);
        // Written in the epoch it arrived in, not where the jump pointed.
        assert_eq!(rejects[0].2, (T0_MS / 1000) as u64 + 91);
        assert_eq!(ingest.counters().accepted, 18);
        assert!(ingest.partitions[&0].hold.is_none());
    }

    #[test]
    fn a_jump_held_when_the_input_ends_is_rejected_and_a_replay_reading_further_repeats_it() {
        let t0 = (T0_MS / 1000) as u64;
        let mut secs: Vec<i64> = (100..120).collect();
        secs.push(7300);
        let first_lines = plain_lines(&secs);
        let mut first = ingest();
        for (offset, line) in first_lines.iter().enumerate() {
            ingest_at(&mut first, offset, line);
        }
        first.finish();
        let first_rejects = rejects_of(&drain(&mut first));
        assert_eq!(first_rejects, vec![(20, RejectReason::TimeOutlier, t0 + 109)]);
        let point = first.partitions[&0].progress.replay_point(t0);
        assert_eq!(point.decided, vec![Decided { offset: 20, reason: RejectReason::TimeOutlier }]);

        // After a restart the partition goes on with lines that would have confirmed the jump.
        let mut replay = ingest();
        replay.resume_partition(0, &point);
        let mut more = first_lines.clone();
        more.extend(plain_lines(&[7301, 7302, 7303]));
        for (offset, line) in more.iter().enumerate().skip(point.offset.unwrap_or(0) as usize) {
            ingest_at(&mut replay, offset, line);
        }
        replay.finish();
        assert_eq!(rejects_of(&drain(&mut replay)), first_rejects, "the end-of-input decision is repeated");
        // The later lines are a jump of their own, confirmed among themselves.
        assert_eq!(replay.clock(0).unwrap().max_event_sec, Some(t0 + 7303));
    }

    #[test]
    fn a_jump_held_on_a_partition_gone_idle_is_rejected_before_the_idle_advance() {
        let mut ingest = ingest();
        let t0 = (T0_MS / 1000) as u64;
        for (offset, line) in plain_lines(&[100, 101, 7300]).iter().enumerate() {
            ingest.ingest(0, offset as i64, line);
        }
        assert_eq!(ingest.watermark(), Some(t0 + 91));
        ingest.mark_end_of_log(0, t0 + 8000);
        ingest.advance_idle(t0 + 8004);
        assert!(ingest.partitions[&0].hold.is_some(), "not idle for the timeout yet");
        ingest.advance_idle(t0 + 8005);
        assert!(ingest.partitions[&0].hold.is_none());
        assert_eq!(rejects_of(&drain(&mut ingest)), vec![(2, RejectReason::TimeOutlier, t0 + 91)]);
        // The partition then follows the wall clock, and the decision is in its replay point.
        assert_eq!(ingest.watermark(), Some(t0 + 7995));
        let point = ingest.partitions[&0].progress.replay_point(t0);
        assert_eq!(point.decided, vec![Decided { offset: 2, reason: RejectReason::TimeOutlier }]);
    }

    /// An ingest capping new domains at `cap` per minute with `memory_secs` of memory.
    fn capped(cap: u32, memory_secs: u64) -> Ingest {
        ingest().with_domain_gate(DomainGate::new(&[], cap, memory_secs).expect("valid"))
    }

    /// The distinct domains announced (what reaches the window engine) and the hits.
    fn announced_and_hits(items: &[Ingested]) -> (BTreeSet<String>, usize) {
        let names = items.iter().filter_map(|item| if let Ingested::Name(_, name) = item { Some(name.clone()) } else { None }).collect();
        (names, items.iter().filter(|item| matches!(item, Ingested::Hit(_))).count())
    }

    #[test]
    fn a_flood_of_random_hosts_in_a_minute_admits_at_most_the_cap_and_rejects_the_rest() {
        let mut ingest = capped(50, 600);
        let mut random = 0x2545_f491_4f6c_dd1du64;
        // A minute before the flood, 30 steady sites.
        let mut lines: Vec<String> = (0..300).map(|i| cdn_line(T0_MS - 50_000 + i * 100, &format!("site{}.example", i % 30), 1, 100)).collect();
        for i in 0..100_000u64 {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            // Steady domains between the random ones, all in one minute of event time and of
            // the partition's watermark (10 s behind).
            let host = if i % 10 == 0 { format!("site{}.example", i / 10 % 30) } else { format!("{random:x}.flood.example") };
            lines.push(cdn_line(T0_MS + 10_000 + (i as i64 * 49_000) / 100_000, &host, (i % 200) as u8, 100));
        }
        let mut items = Vec::new();
        for (offset, line) in lines.iter().enumerate() {
            ingest.ingest(0, offset as i64, line.as_bytes());
            if offset % 4096 == 0 {
                items.extend(drain(&mut ingest));
            }
        }
        items.extend(drain(&mut ingest));
        let (names, hits) = announced_and_hits(&items);
        let flooded = names.iter().filter(|name| name.ends_with(".flood.example")).count();
        assert_eq!(flooded, 50, "exactly the cap of new domains reaches the window engine");
        assert_eq!(names.len(), 80);
        let flood = ingest.counters().rejected.get(&RejectReason::DomainFlood).copied().unwrap_or(0);
        assert_eq!(hits as u64 + flood, 100_300, "every line is admitted or rejected, none dropped");
        assert_eq!(ingest.counters().accepted, hits as u64);
        let rejects: Vec<_> = items.iter().filter_map(|item| if let Ingested::Reject(r) = item { Some(&r.0) } else { None }).collect();
        assert_eq!(rejects.len() as u64, flood);
        assert!(rejects.iter().all(|r| r.reason == RejectReason::DomainFlood && r.detail.contains("clean.new_domains_per_minute")));
        // The steady sites are known: every one of their lines passes during the flood.
        assert!((0..30).all(|i| names.contains(&format!("site{i}.example"))));
        assert_eq!(hits, 300 + 10_000 + 50);
        assert_eq!(ingest.partitions[&0].new_domains.len(), 80);
        let checkpoint = serde_json::to_string(&ingest.partitions[&0].progress.replay_point(0)).unwrap();
        assert!(checkpoint.len() < 32 * 1024, "the checkpoint fits checkpoints.replay_state: {} bytes", checkpoint.len());
    }

    #[test]
    fn known_domains_pass_and_every_other_domain_is_rejected_as_unknown_domain() {
        let gate = DomainGate::new(&["a.example".into(), "*.cdn.example".into()], 1, 600).expect("valid");
        let mut ingest = ingest().with_domain_gate(gate);
        for (offset, host) in ["a.example", "x.cdn.example", "b.example", "cdn.example", "y.cdn.example", "b.example"].iter().enumerate() {
            ingest.ingest(0, offset as i64, cdn_line(T0_MS + offset as i64 * 1000, host, 1, 100).as_bytes());
        }
        let items = drain(&mut ingest);
        let (names, hits) = announced_and_hits(&items);
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a.example", "x.cdn.example", "y.cdn.example"], "the list turns the cap off");
        assert_eq!(hits, 3);
        assert_eq!(rejects_of(&items).iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), [
            (2, RejectReason::UnknownDomain),
            (3, RejectReason::UnknownDomain),
            (5, RejectReason::UnknownDomain)
        ]);
    }

    #[test]
    fn domain_keys_follow_the_seed() {
        let line = cdn_line(T0_MS, "a.example", 1, 100);
        let key_with = |seed: DomainSeed| {
            let mut ingest = ingest().with_domain_seed(seed);
            ingest.ingest(0, 0, line.as_bytes());
            drain(&mut ingest).into_iter().find_map(|item| if let Ingested::Hit(hit) = item { Some(hit.domain) } else { None }).expect("a hit")
        };
        assert_eq!(key_with(DomainSeed([1, 2])), DomainSeed([1, 2]).key("a.example"));
        assert_ne!(key_with(DomainSeed([1, 2])), key_with(DomainSeed([3, 4])));
    }

    #[test]
    fn replaying_from_a_replay_point_repeats_every_domain_flood_decision() {
        // 20 minutes, a line every 2 s: steady domains, one that comes back after 12 minutes
        // (longer than the memory: new again), one every 9 minutes (still known), and bursts
        // of flood hosts in some minutes that exhaust the cap of 4, so later newcomers in
        // those minutes are refused. The memory outlasts the windows (about 6 minutes), so
        // only the footprints that renew it keep a replay early enough to know the domain
        // seen every 9 minutes when it comes back in a flooded minute.
        let (cap, memory) = (4, 600);
        let mut messages = Vec::new();
        for i in 0..600i64 {
            let minute = i / 30;
            let host = match i % 30 {
                0 | 10 | 20 => "a.example".to_string(),
                5 | 15 => "b.example".to_string(),
                25 if minute % 12 == 0 => "rare.example".to_string(),
                28 if minute % 9 == 0 => "sometimes.example".to_string(),
                6..=9 | 11..=14 if minute % 3 == 1 || (minute > 0 && minute % 9 == 0) => format!("f{i}.flood.example"),
                27 if minute % 3 == 1 => format!("late{i}.example"),
                _ => "c.example".to_string(),
            };
            messages.push(cdn_line(T0_MS + i * 2000 - (i % 5) * 1000, &host, (i % 40) as u8, 100 + i as u64).into_bytes());
        }
        let mut first = capped(cap, memory);
        let mut all = Vec::new();
        let mut snapshots = Vec::new();
        for (offset, message) in messages.iter().enumerate() {
            first.ingest(0, offset as i64, message);
            if offset % 37 == 0 {
                all.extend(drain(&mut first));
                snapshots.push(first.partitions[&0].progress.clone());
            }
        }
        all.extend(drain(&mut first));
        let flood = first.counters().rejected.get(&RejectReason::DomainFlood).copied().unwrap_or(0);
        assert!(flood >= 5, "the bursts exceed the cap: {flood}");
        let t0 = (T0_MS / 1000) as u64;
        let mut replays = 0;
        for snapshot in &snapshots {
            // The committed frontier never passes the watermark of the progress it is
            // checkpointed with (`output::close_epochs`).
            for committed in (t0..=snapshot.clock().watermark).step_by(30) {
                let point = snapshot.replay_point(committed);
                let mut resumed = capped(cap, memory);
                resumed.resume_partition(0, &point);
                for (offset, message) in messages.iter().enumerate().skip(point.offset.unwrap_or(0) as usize) {
                    resumed.ingest(0, offset as i64, message);
                }
                let replayed = drain(&mut resumed);
                replays += 1;
                let (replayed, first) = (outputs_from(&replayed, committed), outputs_from(&all, committed));
                assert!(replayed == first, "committed at {committed}, replayed from {:?}: {:?} against {:?} rejects", point.offset, replayed.1, first.1);
            }
        }
        assert!(replays > 100, "{replays}");
    }

    fn ingest_at(ingest: &mut Ingest, offset: usize, line: &[u8]) {
        ingest.ingest(0, offset as i64, line);
    }

    fn policy_align(policy: WindowPolicy, secs: u64) -> Time {
        policy.align(secs)
    }
}

//! The per-worker front of the pipeline: parse → clean → stamp → key → local combine.
//!
//! A source operator owns one `Ingest`, feeds it raw messages with their partition and
//! offset, and periodically drains the result as `Ingested` items: pre-combined differential
//! updates and rejects. Everything here is pure and synchronous, so it is unit-tested and
//! benchmarked without Kafka, and it is the hot path: for a record whose key is already
//! known nothing is allocated.
//!
//! Time contract: every drained item is stamped at or after the partition watermark that
//! was current when its message was ingested, so a source holding a capability at
//! `Ingest::watermark()` (taken before the drain) may emit everything it drains.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::{LocalCombiner, Traffic};
use crate::key::{domain_windows, DomainWindow};
use crate::parse::Decoder;
use crate::record::{Reject, RejectReason};
use crate::window::{PartitionClock, Time, WindowPolicy};

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
    /// A differential update of one domain-series cell.
    Traffic(DomainWindow, Time, Traffic),
    /// A rejected message, to be written with the epoch `Time` it was stamped in.
    Reject(RejectRow, Time),
}

/// Counters an operator exports as metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestCounters {
    pub messages: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<RejectReason, u64>,
}

/// Per-partition state beyond the watermark: where the partition's log ended, for idleness.
#[derive(Clone, Copy, Debug, Default)]
struct PartitionState {
    clock: PartitionClock,
    /// Wall-clock second since which the partition has been at the end of its log; `None`
    /// while data is flowing.
    idle_since: Option<u64>,
}

pub struct Ingest {
    decoder: Decoder,
    policy: WindowPolicy,
    partitions: BTreeMap<i32, PartitionState>,
    combiner: LocalCombiner,
    rejects: Vec<(RejectRow, Time)>,
    counters: IngestCounters,
}

impl Ingest {
    pub fn new(decoder: Decoder, policy: WindowPolicy) -> Self {
        Ingest {
            decoder,
            policy,
            partitions: BTreeMap::new(),
            combiner: LocalCombiner::default(),
            rejects: Vec::new(),
            counters: IngestCounters::default(),
        }
    }

    /// Registers a partition this worker reads, with the clock it resumes from.
    pub fn add_partition(&mut self, partition: i32, clock: PartitionClock) {
        self.partitions.insert(partition, PartitionState { clock, idle_since: None });
    }

    pub fn counters(&self) -> &IngestCounters {
        &self.counters
    }

    pub fn clock(&self, partition: i32) -> Option<PartitionClock> {
        self.partitions.get(&partition).map(|state| state.clock)
    }

    /// The least watermark over this worker's partitions: nothing it drains later is stamped
    /// earlier. `None` if it reads no partition.
    pub fn watermark(&self) -> Option<Time> {
        self.partitions.values().map(|state| state.clock.watermark).min()
    }

    /// Number of combined cells and rejects waiting to be drained.
    pub fn pending(&self) -> usize {
        self.combiner.pending() + self.rejects.len()
    }

    /// Decodes one message and folds it into the pending output.
    pub fn ingest(&mut self, partition: i32, offset: i64, payload: &[u8]) {
        self.counters.messages += 1;
        let state = self.partitions.entry(partition).or_default();
        state.idle_since = None;
        let policy = &self.policy;
        let result = match self.decoder.decode(payload) {
            Ok(decoded) => {
                let record = decoded.record;
                match u64::try_from(record.event_ms.div_euclid(1000)) {
                    Ok(event_sec) => {
                        let time = state.clock.stamp(event_sec, policy);
                        let delta = Traffic::of(&record);
                        let mut live = false;
                        for window in domain_windows(event_sec) {
                            if policy.is_live(&window, time) {
                                live = true;
                                let retire = policy.retire_time(&window);
                                self.combiner.add(&record.domain, window, time, delta);
                                self.combiner.add(&record.domain, window, retire, delta.negated());
                            }
                        }
                        if live {
                            Ok(())
                        } else {
                            Err((
                                Reject::new(
                                    RejectReason::TooLate,
                                    format!("event second {event_sec} is in a window retired before {time}"),
                                ),
                                time,
                            ))
                        }
                    }
                    Err(_) => Err((Reject::new(RejectReason::BadTime, "event time before 1970"), state.clock.watermark)),
                }
            }
            Err(reject) => Err((reject, state.clock.watermark)),
        };
        match result {
            Ok(()) => self.counters.accepted += 1,
            Err((reject, time)) => {
                *self.counters.rejected.entry(reject.reason).or_default() += 1;
                let sample = payload[..payload.len().min(REJECT_SAMPLE_BYTES)].to_vec();
                let row = RejectRow { partition, offset, reason: reject.reason, detail: reject.detail.into_owned(), sample };
                self.rejects.push((row, time));
            }
        }
    }

    /// Notes that `partition` is at the end of its log at wall-clock second `now_sec`.
    pub fn mark_end_of_log(&mut self, partition: i32, now_sec: u64) {
        let state = self.partitions.entry(partition).or_default();
        state.idle_since.get_or_insert(now_sec);
    }

    /// Lets partitions idle for at least the idle timeout follow the wall clock, so a quiet
    /// or empty partition does not hold the frontier back. See `window` for the trade-off.
    pub fn advance_idle(&mut self, now_sec: u64) {
        let policy = self.policy;
        for state in self.partitions.values_mut() {
            if let Some(since) = state.idle_since {
                if now_sec.saturating_sub(since) >= policy.idle_timeout_secs {
                    state.clock.advance_idle(now_sec.saturating_sub(policy.out_of_orderness_secs), &policy);
                }
            }
        }
    }

    /// Moves everything pending into `out`.
    pub fn drain_into(&mut self, out: &mut Vec<Ingested>, scratch: &mut Vec<(DomainWindow, Time, Traffic)>) {
        self.combiner.drain_into(scratch);
        out.extend(scratch.drain(..).map(|(key, time, diff)| Ingested::Traffic(key, time, diff)));
        out.extend(self.rejects.drain(..).map(|(row, time)| Ingested::Reject(row, time)));
    }
}

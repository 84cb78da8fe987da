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

use std::net::IpAddr;

use crate::aggregate::{latency_bucket, ClientTraffic, LatencyMetric, Traffic};
use crate::combine::{Cells, DomainId, Interner};
use crate::key::{series, DomainWindow};
use crate::parse::Decoder;
use crate::record::{CleanRecord, Reject, RejectReason};
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

/// What an `Ingest` hands to the dataflow: differential updates `(data, time, diff)` of each
/// output collection, and rejects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ingested {
    /// Totals per (domain, window), every window kind.
    Traffic(DomainWindow, Time, Traffic),
    /// Requests per (domain, minute, status code).
    Status((DomainWindow, u16), Time, i64),
    /// Requests and bytes per (domain, window, client).
    Client((DomainWindow, IpAddr), Time, ClientTraffic),
    /// Latency histogram counts per (domain, window, metric, bucket).
    Latency((DomainWindow, (LatencyMetric, u16)), Time, i64),
    /// Bytes per (domain, window, second of the window), for the peak second.
    Second((DomainWindow, u64), Time, i64),
    /// Requests and bytes per (minute, client) across all domains: the abuse view.
    Abuser((Window, IpAddr), Time, ClientTraffic),
    /// A rejected message, to be written with the epoch `Time` it was stamped in.
    Reject(RejectRow, Time),
}

impl Ingested {
    /// The output this item belongs to, in `Ingested`'s variant order.
    pub fn output_index(&self) -> u64 {
        match self {
            Ingested::Traffic(..) => 0,
            Ingested::Status(..) => 1,
            Ingested::Client(..) => 2,
            Ingested::Latency(..) => 3,
            Ingested::Second(..) => 4,
            Ingested::Abuser(..) => 5,
            Ingested::Reject(..) => 6,
        }
    }

    pub const OUTPUTS: u64 = 7;
}

/// The pending cells of every output, keyed by worker-local domain ids.
#[derive(Default)]
struct Combiner {
    interner: Interner,
    traffic: Cells<(DomainId, Window), Traffic>,
    status: Cells<(DomainId, Window, u16), i64>,
    clients: Cells<(DomainId, Window, IpAddr), ClientTraffic>,
    latency: Cells<(DomainId, Window, LatencyMetric, u16), i64>,
    seconds: Cells<(DomainId, Window, u64), i64>,
    abusers: Cells<(Window, IpAddr), ClientTraffic>,
}

impl Combiner {
    fn pending(&self) -> usize {
        self.traffic.len() + self.status.len() + self.clients.len() + self.latency.len() + self.seconds.len() + self.abusers.len()
    }

    /// Adds a record stamped `time` to every live window it falls in; false if its minute
    /// has retired (the record is too late). A minute's sliding and sample windows end no
    /// earlier than it unless the slide is not minute-aligned; windows already retired are
    /// final and skipped.
    fn add(&mut self, record: &CleanRecord<'_>, event_sec: u64, time: Time, policy: &WindowPolicy) -> bool {
        let minute = policy.windows_of(WindowKind::Minute, event_sec).next().expect("one minute per second");
        if !policy.is_live(&minute, time) {
            return false;
        }
        let domain = self.interner.id(&record.domain);
        let traffic = Traffic::of(record);
        let client = ClientTraffic::of(record);
        let bytes = client.bytes;
        let neg_client = ClientTraffic { requests: -client.requests, bytes: -client.bytes };
        for kind in series::TRAFFIC {
            for window in policy.windows_of(kind, event_sec) {
                if !policy.is_live(&window, time) {
                    continue;
                }
                let retire = policy.retire_time(&window);
                self.traffic.add_until((domain, window), time, retire, traffic, traffic.negated());
                if !series::has_window_statistics(kind) {
                    continue;
                }
                self.clients.add_until((domain, window, record.client_ip), time, retire, client, neg_client);
                self.seconds.add_until((domain, window, event_sec), time, retire, bytes, -bytes);
                if let Some(us) = record.request_time_us {
                    self.latency.add_until((domain, window, LatencyMetric::Request, latency_bucket(us)), time, retire, 1, -1);
                }
                if let Some(us) = record.upstream_time_us {
                    self.latency.add_until((domain, window, LatencyMetric::Upstream, latency_bucket(us)), time, retire, 1, -1);
                }
                if kind == WindowKind::Minute {
                    self.status.add_until((domain, window, record.status), time, retire, 1, -1);
                    self.abusers.add_until((window, record.client_ip), time, retire, client, neg_client);
                }
            }
        }
        true
    }

    fn drain_into(&mut self, out: &mut Vec<Ingested>) {
        let interner = &self.interner;
        let key = |domain: DomainId, window: Window| DomainWindow { domain: interner.name(domain).to_owned(), window };
        let mut traffic = Vec::new();
        self.traffic.drain(|(d, w)| key(d, w), &mut traffic);
        out.extend(traffic.into_iter().map(|(k, t, r)| Ingested::Traffic(k, t, r)));
        let mut status = Vec::new();
        self.status.drain(|(d, w, s)| (key(d, w), s), &mut status);
        out.extend(status.into_iter().map(|(k, t, r)| Ingested::Status(k, t, r)));
        let mut clients = Vec::new();
        self.clients.drain(|(d, w, ip)| (key(d, w), ip), &mut clients);
        out.extend(clients.into_iter().map(|(k, t, r)| Ingested::Client(k, t, r)));
        let mut latency = Vec::new();
        self.latency.drain(|(d, w, m, b)| (key(d, w), (m, b)), &mut latency);
        out.extend(latency.into_iter().map(|(k, t, r)| Ingested::Latency(k, t, r)));
        let mut seconds = Vec::new();
        self.seconds.drain(|(d, w, s)| (key(d, w), s), &mut seconds);
        out.extend(seconds.into_iter().map(|(k, t, r)| Ingested::Second(k, t, r)));
        let mut abusers = Vec::new();
        self.abusers.drain(|k| k, &mut abusers);
        out.extend(abusers.into_iter().map(|(k, t, r)| Ingested::Abuser(k, t, r)));
        self.interner.clear_if_large();
    }
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
    combiner: Combiner,
    rejects: Vec<(RejectRow, Time)>,
    counters: IngestCounters,
}

impl Ingest {
    pub fn new(decoder: Decoder, policy: WindowPolicy) -> Self {
        Ingest {
            decoder,
            policy,
            partitions: BTreeMap::new(),
            combiner: Combiner::default(),
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
                        if self.combiner.add(&record, event_sec, time, policy) {
                            Ok(())
                        } else {
                            Err((
                                Reject::new(
                                    RejectReason::TooLate,
                                    format!("event second {event_sec} is in a minute retired before {time}"),
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
    pub fn drain_into(&mut self, out: &mut Vec<Ingested>) {
        self.combiner.drain_into(out);
        out.extend(self.rejects.drain(..).map(|(row, time)| Ingested::Reject(row, time)));
    }
}

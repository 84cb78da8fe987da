//! Sources: the I/O at the head of the pipeline. A `Reader` pulls raw messages from Kafka or a
//! file into the worker's `Ingest`; `ingest_source` is the one timely operator that drives
//! any reader, holds the capability at the worker's watermark and emits what `Ingest` drains.

pub mod file;
pub mod kafka;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dataflows::ingest::{Ingest, IngestCounters, Ingested};
use dataflows::window::Time;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::{Scope, StreamVec};

use crate::telemetry::METRICS;

/// Set on SIGTERM or SIGINT: the sources stop reading, the dataflow drains, the sink commits
/// what was read with its checkpoint, and `run` returns.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Messages one activation may read before yielding to the other operators (and before the
/// pacing below is looked at again).
pub const READ_BUDGET: usize = 8_192;

/// How the sources are paced against the rest of the dataflow.
#[derive(Clone)]
pub struct Pacing {
    /// The sink's committed frontier: every epoch before it is in MySQL.
    pub committed: ProbeHandle<Time>,
    /// The frontier of everything the sources emitted: the slowest worker's watermark.
    pub read: ProbeHandle<Time>,
    /// Stop reading this far (event-time seconds) ahead of the committed frontier.
    pub max_uncommitted_secs: u64,
}

/// Stop reading this far (event-time seconds) ahead of the slowest worker: a worker whose
/// partitions are ahead would otherwise fill the window state with panes that cannot retire
/// until the slowest catches up (a backfill's workers drifted hours apart without it).
pub const MAX_READ_AHEAD_SECS: u64 = 120;
/// How soon an idle source looks again.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// What a reader's poll found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// Read a full budget: more may be waiting.
    More,
    /// Nothing (more) available right now.
    Idle,
    /// The input is finished: no message will ever follow.
    Finished,
}

/// A source of raw messages for one worker.
pub trait Reader: 'static {
    /// Feeds up to `budget` messages into `ingest`.
    fn read(&mut self, ingest: &mut Ingest, budget: usize) -> ReadStatus;
}

/// The source operator: drives `reader`, emits `Ingested` items and advances its capability
/// to the worker's watermark; drops it when the reader is finished.
///
/// The source prunes its replay progress behind the committed frontier, and stops reading
/// while its watermark is more than `max_uncommitted_secs` of event time ahead of it
/// (back-pressure: a slow or unavailable MySQL holds the input back instead of filling
/// memory), or more than [`MAX_READ_AHEAD_SECS`] ahead of the slowest worker (so the workers
/// stay together and window state stays at the live windows). Both gaps are measured
/// from the worker's slowest partition, so the partition holding the frontier back is never
/// the one stopped.
pub fn ingest_source<'scope, R: Reader>(
    scope: Scope<'scope, Time>,
    name: &str,
    mut reader: R,
    mut ingest: Ingest,
    pacing: Pacing,
) -> StreamVec<'scope, Time, Ingested> {
    source(scope, name, move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = Some(capability);
        let mut out = Vec::new();
        let mut reported = IngestCounters::default();
        let mut pruned_at: Time = 0;
        move |output| {
            let Some(cap) = capability.as_mut() else { return };
            // Everything ingested from here on is stamped at or after this watermark.
            if let Some(watermark) = ingest.watermark() {
                if watermark > *cap.time() {
                    cap.downgrade(&watermark);
                }
            }
            let committed_upto = pacing.committed.with_frontier(|f| f.iter().next().copied());
            if let Some(upto) = committed_upto.filter(|&upto| upto > pruned_at) {
                ingest.prune(upto);
                pruned_at = upto;
            }
            let slowest = pacing.read.with_frontier(|f| f.iter().next().copied());
            let held_back = match (ingest.watermark(), committed_upto, slowest) {
                (Some(watermark), Some(upto), Some(slowest)) => {
                    (upto > 0 && watermark.saturating_sub(upto) > pacing.max_uncommitted_secs)
                        || (slowest > 0 && watermark.saturating_sub(slowest) > MAX_READ_AHEAD_SECS)
                }
                _ => false,
            };
            let stopping = STOP.load(Ordering::Relaxed);
            if held_back && !stopping {
                METRICS.backpressure_waits.inc();
                activator.activate_after(IDLE_POLL);
                return;
            }
            // The wall clock enters as data: future_time is judged against it (see `time_guard`).
            let now = unix_now_secs();
            ingest.set_wall_clock(now);
            let status = if stopping { ReadStatus::Finished } else { reader.read(&mut ingest, READ_BUDGET) };
            if status == ReadStatus::Finished {
                // No record will confirm a held time jump any more: decide it before the drain.
                ingest.finish();
            }
            ingest.advance_idle(now);
            report_counters(ingest.counters(), &mut reported);
            ingest.drain_into(&mut out);
            if !out.is_empty() {
                output.session(&*cap).give_container(&mut out);
                out.clear();
            }
            match status {
                ReadStatus::Finished => capability = None,
                _ if ingest.watermark().is_none() => capability = None,
                ReadStatus::More => {
                    if let Some(watermark) = ingest.watermark() {
                        cap.downgrade(&watermark.max(*cap.time()));
                    }
                    activator.activate();
                }
                ReadStatus::Idle => {
                    if let Some(watermark) = ingest.watermark() {
                        cap.downgrade(&watermark.max(*cap.time()));
                    }
                    activator.activate_after(IDLE_POLL);
                }
            }
        }
    })
}

pub fn unix_now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Adds what `Ingest` counted since the last report to the process metrics.
fn report_counters(now: &IngestCounters, reported: &mut IngestCounters) {
    METRICS.messages.add(now.messages - reported.messages);
    METRICS.accepted.add(now.accepted - reported.accepted);
    METRICS.resends.add(now.resends - reported.resends);
    for (reason, count) in &now.rejected {
        let before = reported.rejected.get(reason).copied().unwrap_or(0);
        METRICS.reject(*reason, count - before);
    }
    reported.clone_from(now);
}

//! Closing epochs: every output's changes travel to one worker, which waits until the
//! frontier has passed an epoch and then emits one `OutputBatch` with the absolute values of
//! every key that changed, ready for one transaction. (`inspect` would see updates in
//! arbitrary time order; only the frontier says an epoch is complete.)
//!
//! Contract: batches come out in epoch order; a batch with `upto = Some(t)` holds every change
//! of the epochs before `t`; the last batch has `upto = None`. Sinks only write what they
//! receive, so this is where tests observe the pipeline without a database.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Operator};
use timely::dataflow::StreamVec;

use crate::aggregate::{RankedClient, Traffic, WindowRow};
use crate::alert::{AlertEvent, AlertStage, DetectorChanges, MinuteStats};
use crate::changes::{Changes, Latest, Materializer, Sum};
use crate::progress::{PartitionProgress, ReplayPoint};
use crate::ingest::RejectRow;
use crate::key::{DomainWindow, Windowed};
use crate::panes::WindowChange;
use crate::pipeline::Outputs;
use crate::window::{Time, Window, WindowKind, WindowPolicy};

/// Where each partition's replay starts if the job restarts after a batch commits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Every epoch before this one is committed with the batch.
    pub committed_upto: Time,
    pub partitions: BTreeMap<i32, PartitionCheckpoint>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionCheckpoint {
    /// The next offset the partition's reader had reached; `None`: nothing read yet.
    pub resume_offset: Option<i64>,
    pub replay: ReplayPoint,
}

/// The table changes of one or more closed epochs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputBatch {
    /// Every epoch before this time is complete and included; `None`: the input is complete.
    pub upto: Option<Time>,
    /// Epochs committed before a restart, rebuilt by the replay: not to be written again.
    pub replayed: bool,
    /// The partitions' replay points as of `upto`; `None` for replayed batches.
    pub checkpoint: Option<Checkpoint>,
    /// Minute and sliding window rows, each with all its columns.
    pub windows: Changes<DomainWindow, Arc<WindowRow>>,
    /// Five-minute bandwidth samples.
    pub samples: Changes<DomainWindow, Traffic>,
    pub abusers: Changes<Window, Vec<RankedClient>>,
    pub rejects: Vec<(RejectRow, Time)>,
    /// Alerts opened or resolved by the minutes these epochs made final, in order.
    pub alerts: Vec<AlertEvent>,
    /// The alert detectors those minutes changed (`None`: forgotten).
    pub detectors: DetectorChanges,
    /// Every minute before this one has been judged for alerts.
    pub alerts_next_minute: Option<u64>,
    /// Live window keys the closing worker held after these epochs (a state-size gauge).
    pub live_keys: usize,
}

impl OutputBatch {
    /// Number of rows this batch writes.
    pub fn rows(&self) -> usize {
        self.windows.len() + self.samples.len() + self.abusers.len()
            + self.rejects.len()
            + self.alerts.len()
    }

    /// Folds a later batch into this one.
    pub fn merge(&mut self, later: OutputBatch) {
        debug_assert!(self.replayed == later.replayed, "replayed batches are never merged with new ones");
        self.upto = later.upto;
        if later.checkpoint.is_some() {
            self.checkpoint = later.checkpoint;
        }
        self.windows.merge(later.windows);
        self.samples.merge(later.samples);
        self.abusers.merge(later.abusers);
        self.rejects.extend(later.rejects);
        self.alerts.extend(later.alerts);
        self.detectors.merge(later.detectors);
        self.alerts_next_minute = later.alerts_next_minute.or(self.alerts_next_minute);
        self.live_keys = later.live_keys;
    }
}

/// Everything that travels to the closing worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Update {
    Window(DomainWindow, Time, #[serde(with = "shared_row")] (Arc<WindowRow>, i64)),
    Sample(DomainWindow, Time, Traffic),
    Abusers(Window, Time, (Vec<RankedClient>, i64)),
    Reject(RejectRow, Time),
    Progress(i32, PartitionProgress),
}

/// Serde for a shared row with its count: the row's contents.
mod shared_row {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::aggregate::WindowRow;

    pub fn serialize<S: Serializer>(value: &(Arc<WindowRow>, i64), serializer: S) -> Result<S::Ok, S::Error> {
        (&*value.0, value.1).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(Arc<WindowRow>, i64), D::Error> {
        let (row, count) = <(WindowRow, i64)>::deserialize(deserializer)?;
        Ok((Arc::new(row), count))
    }
}

type Retire<K> = Box<dyn Fn(&K) -> Time>;

/// The closing worker's state: absolute values of live keys, rejects and partition progress
/// waiting for their epochs to close.
struct EpochCloser {
    windows: Materializer<DomainWindow, Latest<Arc<WindowRow>>, Retire<DomainWindow>>,
    samples: Materializer<DomainWindow, Sum<Traffic>, Retire<DomainWindow>>,
    abusers: Materializer<Window, Latest<Vec<RankedClient>>, Retire<Window>>,
    rejects: BTreeMap<Time, Vec<RejectRow>>,
    /// The latest progress of every partition (one worker reads a partition, so they
    /// arrive in order).
    progress: BTreeMap<i32, PartitionProgress>,
}

fn retire_by<K: Windowed + ?Sized>(policy: WindowPolicy) -> Retire<K> {
    Box::new(move |key: &K| policy.retire_time(key.window()))
}

impl EpochCloser {
    fn new(policy: WindowPolicy) -> EpochCloser {
        EpochCloser {
            windows: Materializer::new(retire_by(policy)),
            samples: Materializer::new(retire_by(policy)),
            abusers: Materializer::new(retire_by(policy)),
            rejects: BTreeMap::new(),
            progress: BTreeMap::new(),
        }
    }

    fn push(&mut self, update: Update) {
        match update {
            Update::Window(k, t, d) => self.windows.push(k, t, d),
            Update::Sample(k, t, r) => self.samples.push(k, t, r),
            Update::Abusers(k, t, d) => self.abusers.push(k, t, d),
            Update::Reject(row, t) => self.rejects.entry(t).or_default().push(row),
            Update::Progress(partition, progress) => {
                self.progress.insert(partition, progress);
            }
        }
    }

    /// The changes of every epoch before `until` (`None`: all), with the checkpoint that
    /// commits them unless they were `replayed`.
    fn close(&mut self, until: Option<Time>, replayed: bool) -> OutputBatch {
        let still_open = match until {
            Some(f) => self.rejects.split_off(&f),
            None => Default::default(),
        };
        let closed_rejects = std::mem::replace(&mut self.rejects, still_open);
        // Drained input: restart where the sources' watermarks stood, which is where the
        // frontier would be had they kept running (epochs after it are simply rewritten).
        let committed = until.or_else(|| self.progress.values().map(|p| p.clock().watermark).min());
        let checkpoint = committed.filter(|_| !replayed).map(|committed| Checkpoint {
            committed_upto: committed,
            partitions: self
                .progress
                .iter()
                .map(|(&p, progress)| (p, PartitionCheckpoint { resume_offset: progress.next_offset(), replay: progress.replay_point(committed) }))
                .collect(),
        });
        let mut batch = OutputBatch {
            upto: until,
            replayed,
            windows: self.windows.close(until),
            samples: self.samples.close(until),
            abusers: self.abusers.close(until),
            rejects: closed_rejects.into_iter().flat_map(|(t, rows)| rows.into_iter().map(move |r| (r, t))).collect(),
            checkpoint,
            ..Default::default()
        };
        batch.live_keys = self.windows.live_keys() + self.samples.live_keys() + self.abusers.live_keys();
        batch
    }
}

/// Closes epochs on worker 0 and emits their changes. After a restart, `resume` is the
/// committed frontier: the epochs before it come out as `replayed` batches (they rebuild
/// state; the sink writes nothing for them), the first of them closing exactly there.
pub fn close_epochs<'s>(outputs: Outputs<'s>, policy: WindowPolicy, resume: Option<Time>) -> StreamVec<'s, Time, OutputBatch> {
    let is_writer = outputs.rejects.scope().index() == 0;
    let updates = outputs
        .windows
        .map(|change| match change {
            WindowChange::Row((k, v), t, r) => Update::Window(k, t, (v, r as i64)),
            WindowChange::Sample(k, t, r) => Update::Sample(k, t, r),
        })
        .concat(outputs.abusers.inner.map(|((k, v), t, r)| Update::Abusers(k, t, (v, r as i64))))
        .concat(outputs.rejects.map(|(row, t)| Update::Reject(row, t)))
        .concat(outputs.progress.map(|(p, progress)| Update::Progress(p, progress)));

    updates.unary_frontier::<CapacityContainerBuilder<Vec<OutputBatch>>, _, _, _>(
        Exchange::new(|_: &Update| 0),
        "CloseEpochs",
        move |capability, _info| {
            let mut capability = Some(capability);
            let mut closer = EpochCloser::new(policy);
            let mut resume = resume;
            move |(input, frontier), output| {
                input.for_each(|_cap, data| {
                    for update in data.drain(..) {
                        closer.push(update);
                    }
                });
                let Some(cap) = capability.as_mut() else { return };
                let upto = frontier.frontier().iter().next().copied();
                if upto.is_some_and(|f| f <= *cap.time()) {
                    return;
                }
                let mut closes = Vec::with_capacity(2);
                match resume {
                    Some(committed) if upto.is_some_and(|f| f <= committed) => closes.push((upto, true)),
                    Some(committed) => {
                        if committed > *cap.time() {
                            closes.push((Some(committed), true));
                        }
                        closes.push((upto, false));
                        resume = None;
                    }
                    None => closes.push((upto, false)),
                }
                for (until, replayed) in closes {
                    let batch = closer.close(until, replayed);
                    // Sent even when empty: the frontier alone makes minutes final for the
                    // alerts, and moves the checkpoints on.
                    if is_writer || batch.rows() > 0 {
                        output.session(&*cap).give(batch);
                    }
                }
                match upto {
                    Some(f) => cap.downgrade(&f),
                    None => capability = None,
                }
            }
        },
    )
}

/// Feeds the minute series of each closed batch to the alert stage (worker 0, after
/// `close_epochs`) and adds the alerts and detector changes to the batch, so they commit in
/// the same transaction as the epochs that caused them.
pub fn detect_alerts<'s>(batches: StreamVec<'s, Time, OutputBatch>, mut stage: AlertStage, policy: WindowPolicy) -> StreamVec<'s, Time, OutputBatch> {
    batches.map(move |mut batch| {
        for (key, row) in &batch.windows.0 {
            if key.window.kind == WindowKind::Minute {
                let start = key.window.start;
                stage.observe(&key.domain, start, row.as_ref().map(|r| minute_stats(start, &r.traffic)));
            }
        }
        // A drained input (end of a file, SIGTERM) judges only the minutes final at the
        // sources' watermarks, as a job that kept running would: a restart then continues
        // exactly, and late records can still reach the rest.
        let frontier = batch.upto.or(batch.checkpoint.as_ref().map(|c| c.committed_upto));
        let until = frontier.map(|f| policy.first_open_minute(f));
        if let Some(until) = until {
            let (alerts, detectors) = stage.finalize(until);
            batch.alerts = alerts;
            batch.detectors = detectors;
        }
        batch.alerts_next_minute = stage.next_minute();
        batch
    })
}

/// What the alert detectors read from a minute row.
pub fn minute_stats(minute_start: u64, traffic: &Traffic) -> MinuteStats {
    let count = |n: i64| n.max(0) as u64;
    let cache_known = traffic.cache_known() > 0;
    MinuteStats {
        minute_start,
        requests: count(traffic.requests),
        status_5xx: count(traffic.status_class[4]),
        cache_hit: cache_known.then(|| count(traffic.cache[0])),
        cache_miss: cache_known.then(|| count(traffic.cache[1])),
    }
}

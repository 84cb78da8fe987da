//! The sink: writes the batches `dataflows::output::close_epochs` emits on worker 0 to MySQL,
//! one transaction per batch, on a writer thread of its own so the worker keeps computing
//! while MySQL commits. Batches arriving while a commit is in flight, or within
//! `min_commit_interval_ms` of the last one, are merged and committed together (later values
//! win), so a fast backfill writes each row about once per commit, not once per epoch. Each
//! transaction also carries the job's progress (checkpoints, alert state), so results and
//! progress commit together. The operator's capability is the committed frontier: it moves
//! only when a commit is acknowledged, which is what back-pressure and exactly-once rely on.
//! With `SinkTarget::Null` batches are acknowledged without writing (for benchmarks).

pub mod checkpoint;
pub mod datetime;
pub mod mysql;
pub mod schema;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use dataflows::output::OutputBatch;
use dataflows::window::{Time, WindowPolicy};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;
use tracing::{error, info, warn};

use self::mysql::{CommitError, MysqlWriter};
use self::schema::SchemaError;
use crate::config::SinkConfig;
use crate::notify::{Dispatcher, NotifyConfig};
use crate::telemetry::METRICS;

/// Where committed batches go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkTarget {
    /// MySQL or MariaDB, at `[mysql] url`.
    Mysql,
    /// Nowhere: every batch is acknowledged at once (measures the job without the database).
    Null,
}

/// Where and how to write.
#[derive(Clone, Debug)]
pub struct SinkSettings {
    pub target: SinkTarget,
    pub mysql_url: String,
    pub source_name: String,
    pub config: SinkConfig,
    pub policy: WindowPolicy,
    pub notify: NotifyConfig,
    /// This instance's generation (see `checkpoint::take_over`).
    pub generation: u64,
}

/// The writer thread: takes one batch at a time and answers with the commit's outcome.
struct CommitThread {
    batches: mpsc::SyncSender<OutputBatch>,
    outcomes: mpsc::Receiver<Result<OutputBatch, CommitError>>,
}

impl CommitThread {
    fn spawn(settings: &SinkSettings) -> Result<CommitThread, SchemaError> {
        let writer = match settings.target {
            SinkTarget::Mysql => Some(MysqlWriter::new(&settings.mysql_url, settings.source_name.clone(), settings.config.clone(), settings.policy, settings.generation)?),
            SinkTarget::Null => None,
        };
        let (batches, incoming) = mpsc::sync_channel::<OutputBatch>(1);
        let (done, outcomes) = mpsc::channel();
        let spawned = std::thread::Builder::new().name("mysql-writer".into()).spawn(move || {
            for batch in incoming {
                let outcome = match &writer {
                    Some(writer) => writer.commit(&batch).map(|()| batch),
                    None => {
                        METRICS.commits.inc();
                        METRICS.rows_written.add(batch.rows() as u64);
                        Ok(batch)
                    }
                };
                if done.send(outcome).is_err() {
                    break;
                }
            }
        });
        spawned.expect("spawning the sink's writer thread");
        Ok(CommitThread { batches, outcomes })
    }
}

/// How often the sink looks for the writer's answer while a commit is in flight.
const COMMIT_POLL: Duration = Duration::from_millis(2);

/// Attaches the writer to the closed-epoch batches. The returned stream carries no data: its
/// frontier is the committed frontier (every epoch before it is in MySQL), which the sources
/// use to prune their progress and to hold back when commits fall behind.
pub fn write_batches<'s>(batches: StreamVec<'s, Time, OutputBatch>, settings: SinkSettings) -> StreamVec<'s, Time, ()> {
    let scope = batches.scope();
    batches.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, "Sink", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut committed = Some(capability);
        let mut thread: Option<CommitThread> = None;
        let mut notifications: Option<Option<Dispatcher>> = None;
        let mut pending: Option<OutputBatch> = None;
        // The epochs of the batch being committed: `Some(upto)`, or `None` for the last one.
        let mut in_flight: Option<Option<Time>> = None;
        let mut last_commit = Instant::now() - Duration::from_secs(3600);
        let min_interval = Duration::from_millis(settings.config.min_commit_interval_ms);
        move |(input, frontier), _output| {
            input.for_each(|_cap, data| {
                for batch in data.drain(..) {
                    METRICS.live_keys_peak.raise_to(batch.live_keys as u64);
                    if batch.replayed {
                        // Committed before the restart: the replay only rebuilt state.
                        continue;
                    }
                    match pending.as_mut() {
                        Some(held) => held.merge(batch),
                        None => pending = Some(batch),
                    }
                }
            });
            // A commit answered: the committed frontier moves to its epochs.
            if let (Some(upto), Some(writer)) = (in_flight, thread.as_ref()) {
                match writer.outcomes.try_recv() {
                    Ok(Ok(batch)) => {
                        in_flight = None;
                        last_commit = Instant::now();
                        notify(&mut notifications, &settings, &batch);
                        match upto {
                            Some(upto) => advance(&mut committed, upto),
                            None => finish(&mut committed, &mut notifications),
                        }
                    }
                    Ok(Err(fenced @ CommitError::Fenced { .. })) => {
                        // A newer instance owns the job: stop before doing anything else.
                        error!(error = %fenced, "stopping: fenced out by a newer instance");
                        std::process::exit(FENCED_EXIT_CODE);
                    }
                    Ok(Err(err)) => {
                        // Retrying cannot help and skipping would lose the batch: stop
                        // without its checkpoint, loudly.
                        error!(error = %err, "stopping: the batch cannot be written");
                        std::process::exit(1);
                    }
                    Err(mpsc::TryRecvError::Empty) => {
                        activator.activate_after(COMMIT_POLL);
                        return;
                    }
                    Err(mpsc::TryRecvError::Disconnected) => panic!("the sink's writer thread ended"),
                }
            }
            let input_done = frontier.is_empty();
            if let Some(batch) = pending.take() {
                if !input_done && last_commit.elapsed() < min_interval {
                    activator.activate_after(min_interval - last_commit.elapsed());
                    pending = Some(batch);
                    return;
                }
                if batch.rows() > 0 || batch.checkpoint.is_some() || !batch.detectors.is_empty() {
                    let writer = thread.get_or_insert_with(|| CommitThread::spawn(&settings).expect("mysql url validated at start-up"));
                    in_flight = Some(batch.upto);
                    writer.batches.send(batch).expect("the sink's writer thread is running");
                    activator.activate_after(COMMIT_POLL);
                    return;
                }
                match batch.upto {
                    Some(upto) => advance(&mut committed, upto),
                    None => finish(&mut committed, &mut notifications),
                }
            }
            // Nothing held or in flight: every epoch before the input frontier is committed.
            match frontier.frontier().iter().next() {
                Some(&upto) => advance(&mut committed, upto),
                None => finish(&mut committed, &mut notifications),
            }
        }
    })
}

/// Moves the committed frontier to `upto`.
fn advance(committed: &mut Option<Capability<Time>>, upto: Time) {
    if let Some(cap) = committed.as_mut() {
        if upto > *cap.time() {
            cap.downgrade(&upto);
        }
    }
}

/// The input is complete and committed: flush notifications and release the frontier.
fn finish(committed: &mut Option<Capability<Time>>, notifications: &mut Option<Option<Dispatcher>>) {
    if committed.take().is_some() {
        info!("sink drained: input complete");
        if let Some(Some(dispatcher)) = notifications.take() {
            dispatcher.close(NOTIFY_DRAIN_LIMIT);
        }
    }
}

/// Hands a committed batch's alerts to the webhook dispatcher (started on first use).
fn notify(notifications: &mut Option<Option<Dispatcher>>, settings: &SinkSettings, batch: &OutputBatch) {
    if settings.target == SinkTarget::Null || (batch.alerts.is_empty() && notifications.is_some()) {
        return;
    }
    let dispatcher = notifications.get_or_insert_with(|| match Dispatcher::spawn(&settings.notify, &settings.mysql_url) {
        Ok(dispatcher) => dispatcher,
        Err(err) => {
            warn!(error = %err, "alert notifications disabled");
            None
        }
    });
    if let Some(dispatcher) = dispatcher {
        for event in &batch.alerts {
            dispatcher.send(event.clone());
        }
    }
}

/// How long a finishing job waits for queued alert notifications.
const NOTIFY_DRAIN_LIMIT: Duration = Duration::from_secs(15);

/// Exit status of an instance fenced out by a newer one.
pub const FENCED_EXIT_CODE: i32 = 75;

//! The sink: writes the batches `dataflows::output::close_epochs` emits on worker 0 to MySQL,
//! one transaction per batch, on a writer thread of its own so the worker keeps computing
//! while MySQL commits. Batches arriving while a commit is in flight, or within
//! `min_commit_interval_ms` of the last one, are merged and committed together (later values
//! win), so a fast backfill writes each row about once per commit, not once per epoch. Each
//! transaction also carries the job's progress (checkpoints, alert state), so results and
//! progress commit together. The operator's capability is the committed frontier: it moves
//! only when a commit is acknowledged, which is what back-pressure and exactly-once rely on.
//! With `SinkTarget::Null` batches are acknowledged without writing (for benchmarks).
//!
//! A commit that must not be retried (fenced out by a newer instance, a batch that cannot be
//! written) stops the sink: it sends a [`SinkError`] to `SinkSettings::failures`, commits
//! nothing more and holds the committed frontier where it is; `job::run` returns the error
//! and `main` turns it into the exit status.

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
    /// Where the sink reports the error that stopped it (see the module doc).
    pub failures: mpsc::Sender<SinkError>,
}

/// Why the sink stopped: nothing after the last acknowledged commit was written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A newer instance took the job over (`job_state.generation` moved on).
    #[error(transparent)]
    Fenced(CommitError),
    /// Retrying cannot help and skipping would lose the batch.
    // Causes are in the messages, not chained as sources: logs show them whole.
    #[error("the batch cannot be written: {0}")]
    Commit(CommitError),
    #[error("starting the mysql writer: {0}")]
    Start(SchemaError),
    #[error("spawning the sink's writer thread: {0}")]
    Thread(std::io::Error),
    #[error("the sink's writer thread ended unexpectedly")]
    WriterGone,
}

impl From<CommitError> for SinkError {
    fn from(err: CommitError) -> SinkError {
        match err {
            fenced @ CommitError::Fenced { .. } => SinkError::Fenced(fenced),
            other => SinkError::Commit(other),
        }
    }
}

/// The writer thread: takes one batch at a time and answers with the commit's outcome.
struct CommitThread {
    batches: mpsc::SyncSender<OutputBatch>,
    outcomes: mpsc::Receiver<Result<OutputBatch, CommitError>>,
}

impl CommitThread {
    fn spawn(settings: &SinkSettings) -> Result<CommitThread, SinkError> {
        let writer = match settings.target {
            SinkTarget::Mysql => Some(
                MysqlWriter::new(&settings.mysql_url, settings.source_name.clone(), settings.config.clone(), settings.policy, settings.generation)
                    .map_err(SinkError::Start)?,
            ),
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
        spawned.map_err(SinkError::Thread)?;
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
        // Set once the sink has stopped (module doc): input is dropped from then on.
        let mut stopped = false;
        move |(input, frontier), _output| {
            if stopped {
                input.for_each(|_cap, data| data.clear());
                return;
            }
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
                    Ok(Err(err)) => {
                        // A newer instance owns the job, or retrying cannot help and skipping
                        // would lose the batch: stop without its checkpoint, loudly.
                        stop(&mut stopped, &settings, SinkError::from(err));
                        return;
                    }
                    Err(mpsc::TryRecvError::Empty) => {
                        activator.activate_after(COMMIT_POLL);
                        return;
                    }
                    Err(mpsc::TryRecvError::Disconnected) => {
                        stop(&mut stopped, &settings, SinkError::WriterGone);
                        return;
                    }
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
                    if thread.is_none() {
                        match CommitThread::spawn(&settings) {
                            Ok(spawned) => thread = Some(spawned),
                            Err(err) => return stop(&mut stopped, &settings, err),
                        }
                    }
                    let Some(writer) = thread.as_ref() else { return };
                    in_flight = Some(batch.upto);
                    if writer.batches.send(batch).is_err() {
                        return stop(&mut stopped, &settings, SinkError::WriterGone);
                    }
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

/// Stops the sink with `err` (module doc). The committed frontier stays held: a stopped
/// sink must not look like a drained one.
fn stop(stopped: &mut bool, settings: &SinkSettings, err: SinkError) {
    match &err {
        SinkError::Fenced(_) => error!(error = %err, "stopping: fenced out by a newer instance"),
        _ => error!(error = %err, "stopping: the sink cannot commit"),
    }
    *stopped = true;
    // `job::run` owns the receiver until the job ends; if it is gone, nothing waits.
    let _ = settings.failures.send(err);
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

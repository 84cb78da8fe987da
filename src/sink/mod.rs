//! The sink: writes the batches `dataflows::output::close_epochs` emits on worker 0 to MySQL,
//! one transaction per batch. Batches arriving within `min_commit_interval_ms` of the last
//! commit are merged and committed together (later values win), so a fast backfill does not
//! pay one transaction per second of event time. Each transaction also carries the job's
//! progress (checkpoints, alert state), so results and progress commit together.

pub mod checkpoint;
pub mod datetime;
pub mod mysql;
pub mod schema;

use std::time::{Duration, Instant};

use dataflows::output::OutputBatch;
use dataflows::window::{Time, WindowPolicy};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;
use tracing::{error, info, warn};

use self::mysql::{CommitError, MysqlWriter};
use crate::config::SinkConfig;
use crate::notify::{Dispatcher, NotifyConfig};
use crate::telemetry::METRICS;

/// Where and how to write.
#[derive(Clone, Debug)]
pub struct SinkSettings {
    pub mysql_url: String,
    pub source_name: String,
    pub config: SinkConfig,
    pub policy: WindowPolicy,
    pub notify: NotifyConfig,
    /// This instance's generation (see `checkpoint::take_over`).
    pub generation: u64,
}

/// Attaches the MySQL writer to the closed-epoch batches. The returned stream carries no
/// data: its frontier is the committed frontier (every epoch before it is in MySQL), which
/// the sources use to prune their progress and to hold back when commits fall behind.
pub fn write_to_mysql<'s>(batches: StreamVec<'s, Time, OutputBatch>, settings: SinkSettings) -> StreamVec<'s, Time, ()> {
    let scope = batches.scope();
    batches.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, "MysqlSink", move |capability, info| {
        // The activator re-runs the sink when a batch was held back by `min_commit_interval_ms`.
        let activator = scope.activator_for(info.address);
        let mut committed = Some(capability);
        let mut writer: Option<MysqlWriter> = None;
        let mut notifications: Option<Option<Dispatcher>> = None;
        let mut pending: Option<OutputBatch> = None;
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
            let input_done = frontier.is_empty();
            if let Some(batch) = pending.as_ref() {
                if !input_done && last_commit.elapsed() < min_interval {
                    activator.activate_after(min_interval - last_commit.elapsed());
                    return;
                }
                if batch.rows() > 0 || batch.checkpoint.is_some() || !batch.detectors.is_empty() {
                    let writer = writer.get_or_insert_with(|| {
                        MysqlWriter::new(&settings.mysql_url, settings.source_name.clone(), settings.config.clone(), settings.policy, settings.generation)
                            .expect("mysql url validated at start-up")
                    });
                    match writer.commit(batch) {
                        Ok(()) => {}
                        Err(fenced @ CommitError::Fenced { .. }) => {
                            // A newer instance owns the job: stop before doing anything else.
                            error!(error = %fenced, "stopping: fenced out by a newer instance");
                            std::process::exit(FENCED_EXIT_CODE);
                        }
                        Err(err) => {
                            // Retrying cannot help and skipping would lose the batch: stop
                            // without its checkpoint, loudly.
                            error!(error = %err, "stopping: the batch cannot be written");
                            std::process::exit(1);
                        }
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
                if batch.upto.is_none() {
                    info!("sink drained: input complete");
                    if let Some(Some(dispatcher)) = notifications.take() {
                        dispatcher.close(NOTIFY_DRAIN_LIMIT);
                    }
                }
                pending = None;
                last_commit = Instant::now();
            }
            // Nothing is held: every epoch before the input frontier is committed.
            match frontier.frontier().iter().next() {
                Some(&upto) => {
                    if let Some(cap) = committed.as_mut() {
                        if upto > *cap.time() {
                            cap.downgrade(&upto);
                        }
                    }
                }
                None => committed = None,
            }
        }
    })
}

/// How long a finishing job waits for queued alert notifications.
const NOTIFY_DRAIN_LIMIT: Duration = Duration::from_secs(15);

/// Exit status of an instance fenced out by a newer one.
pub const FENCED_EXIT_CODE: i32 = 75;

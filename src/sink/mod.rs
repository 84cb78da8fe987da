//! The sink: writes the batches `dataflows::output::close_epochs` emits on worker 0 to MySQL,
//! one transaction per batch. Batches arriving within `min_commit_interval_ms` of the last
//! commit are merged and committed together (later values win), so a fast backfill does not
//! pay one transaction per second of event time.

pub mod mysql;
pub mod schema;

use std::time::{Duration, Instant};

use dataflows::output::OutputBatch;
use dataflows::window::{Time, WindowPolicy};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;
use tracing::info;

use self::mysql::MysqlWriter;
use crate::config::SinkConfig;

/// Where and how to write.
#[derive(Clone, Debug)]
pub struct SinkSettings {
    pub mysql_url: String,
    pub source_name: String,
    pub config: SinkConfig,
    pub policy: WindowPolicy,
}

/// Attaches the MySQL writer to the closed-epoch batches.
pub fn write_to_mysql(batches: StreamVec<'_, Time, OutputBatch>, settings: SinkSettings) {
    let scope = batches.scope();
    batches.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, "MysqlSink", move |_capability, info| {
        // No output: the capability is dropped here, and the activator re-runs the sink when
        // a batch was held back by `min_commit_interval_ms`.
        let activator = scope.activator_for(info.address);
        let mut writer: Option<MysqlWriter> = None;
        let mut pending: Option<OutputBatch> = None;
        let mut last_commit = Instant::now() - Duration::from_secs(3600);
        let min_interval = Duration::from_millis(settings.config.min_commit_interval_ms);
        move |(input, frontier), _output| {
            input.for_each(|_cap, data| {
                for batch in data.drain(..) {
                    match pending.as_mut() {
                        Some(held) => held.merge(batch),
                        None => pending = Some(batch),
                    }
                }
            });
            let input_done = frontier.is_empty();
            let Some(batch) = pending.as_ref() else { return };
            if !input_done && last_commit.elapsed() < min_interval {
                activator.activate_after(min_interval - last_commit.elapsed());
                return;
            }
            if batch.rows() > 0 {
                let writer = writer.get_or_insert_with(|| {
                    MysqlWriter::new(&settings.mysql_url, settings.source_name.clone(), settings.config.clone(), settings.policy)
                        .expect("mysql url validated at start-up")
                });
                writer.commit(batch);
            }
            if batch.upto.is_none() {
                info!("sink drained: input complete");
            }
            pending = None;
            last_commit = Instant::now();
        }
    });
}

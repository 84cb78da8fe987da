//! The sink: all output changes go to one writer worker, which waits until the frontier has
//! passed an epoch and then writes that epoch's changes in one MySQL transaction.
//! (`inspect` would see updates in arbitrary time order; only the frontier says an epoch is
//! complete.)

pub mod mysql;
pub mod schema;

use std::time::{Duration, Instant};

use dataflows::aggregate::Traffic;
use dataflows::changes::Materializer;
use dataflows::ingest::RejectRow;
use dataflows::key::DomainWindow;
use dataflows::pipeline::Outputs;
use dataflows::window::{Time, WindowPolicy};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Map;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::{Concat, Operator};
use timely::progress::frontier::AntichainRef;
use tracing::info;

use self::mysql::{EpochBatch, MysqlWriter};
use crate::config::SinkConfig;

/// What travels to the writer worker.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum SinkItem {
    DomainMinute(DomainWindow, Time, Traffic),
    Reject(RejectRow, Time),
}

/// Where and how to write.
#[derive(Clone, Debug)]
pub struct SinkSettings {
    pub mysql_url: String,
    pub source_name: String,
    pub config: SinkConfig,
    pub policy: WindowPolicy,
}

/// Attaches the MySQL sink to the pipeline's outputs.
pub fn write_to_mysql(outputs: Outputs<'_>, settings: SinkSettings) {
    let domain_minutes = outputs.domain_minutes.inner.map(|(key, time, diff)| SinkItem::DomainMinute(key, time, diff));
    let rejects = outputs.rejects.map(|(row, time)| SinkItem::Reject(row, time));
    let policy = settings.policy;
    let scope = domain_minutes.scope();
    let stream = domain_minutes.concat(rejects);
    stream.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Exchange::new(|_: &SinkItem| 0), "MysqlSink", move |_capability, info| {
        // No output: the capability is dropped here, and the activator re-runs the sink when
        // a batch was held back by `min_commit_interval_ms`.
        let activator = scope.activator_for(info.address);
        let mut writer: Option<MysqlWriter> = None;
        let mut minutes = Materializer::new(move |key: &DomainWindow| policy.retire_time(&key.window));
        let mut rejects: std::collections::BTreeMap<Time, Vec<RejectRow>> = Default::default();
        let mut last_commit = Instant::now();
        let min_interval = Duration::from_millis(settings.config.min_commit_interval_ms);
        let mut done = false;
        move |(input, frontier), _output| {
            input.for_each(|_cap, data| {
                for item in data.drain(..) {
                    match item {
                        SinkItem::DomainMinute(key, time, diff) => minutes.push(key, time, diff),
                        SinkItem::Reject(row, time) => rejects.entry(time).or_default().push(row),
                    }
                }
            });
            if done {
                return;
            }
            let frontier = first_time(frontier.frontier());
            let earliest = [minutes.earliest_pending(), rejects.keys().next().copied()].into_iter().flatten().min();
            let closable = earliest.is_some_and(|t| frontier.is_none_or(|f| t < f));
            // Batch closed epochs for at least `min_interval`, except at the very end.
            if !closable {
                return;
            }
            if frontier.is_some() && last_commit.elapsed() < min_interval {
                activator.activate_after(min_interval - last_commit.elapsed());
                return;
            }
            let mut batch = EpochBatch { upto: frontier, domain_minutes: minutes.close(frontier), rejects: Vec::new() };
            let still_open = match frontier {
                Some(f) => rejects.split_off(&f),
                None => Default::default(),
            };
            for (time, rows) in std::mem::replace(&mut rejects, still_open) {
                batch.rejects.extend(rows.into_iter().map(|row| (row, time)));
            }
            if batch.rows() > 0 {
                let writer = writer.get_or_insert_with(|| {
                    MysqlWriter::new(&settings.mysql_url, settings.source_name.clone(), settings.config.clone())
                        .expect("mysql url validated at start-up")
                });
                writer.commit(&batch);
            }
            last_commit = Instant::now();
            if frontier.is_none() {
                info!(live_keys = minutes.live_keys(), "sink drained: input complete");
                done = true;
            }
        }
    });
}

fn first_time(frontier: AntichainRef<'_, Time>) -> Option<Time> {
    frontier.iter().next().copied()
}

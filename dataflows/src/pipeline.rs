//! The whole dataflow on one screen: what the sources' `Ingest` emits goes through the stages
//! in flow order, and `Outputs` is what `output::close_epochs` turns into table changes.
//!
//! ```text
//! source (I/O, root crate) ── Ingest: parse → clean → stamp → key
//!        │ Vec<Ingested>
//!        ▼
//!   split ─┬─ hits + names ─► by domain ─► panes: minute panes, windows ──────► Outputs::windows
//!          │                                (traffic, statuses, distinct and top 10 clients,
//!          │                                 latency percentiles, busiest second)
//!          ├─ client hits ─► by client ─► per-worker top 20 per minute
//!          │                  ─► by minute ─► merged ───────────────────────► Outputs::abusers
//!          ├─ rejects ──────────────────────────────────────────────────────► Outputs::rejects
//!          └─ progress (replay points per partition) ──────────────────────► Outputs::progress
//! ```
//! The window engines keep their state in minute panes and emit each changed row once per
//! frontier advance, as differential updates; nothing funnels records to one worker.

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::Partition;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

use crate::abuse;
use crate::aggregate::RankedClient;
use crate::ingest::{Ingested, RejectRow};
use crate::panes::{self, WindowChange};
use crate::progress::PartitionProgress;
use crate::window::{Time, Window, WindowPolicy};

/// The streams the closing stage turns into table changes. Every series is a stream of
/// differential updates `(data, time, diff)`.
pub struct Outputs<'scope> {
    /// Changes of the per-(domain, window) rows: traffic, statuses, clients, latency, peaks.
    pub windows: StreamVec<'scope, Time, WindowChange>,
    /// Top clients per minute across all domains.
    pub abusers: VecCollection<'scope, Time, (Window, Vec<RankedClient>), isize>,
    /// Rejected messages with the epoch they belong to.
    pub rejects: StreamVec<'scope, Time, (RejectRow, Time)>,
    /// Each partition's latest progress, for the checkpoints.
    pub progress: StreamVec<'scope, Time, (i32, PartitionProgress)>,
}

/// Which stream an ingested item goes to.
fn route(item: &Ingested) -> u64 {
    match item {
        Ingested::Hit(_) | Ingested::Name(..) => 0,
        Ingested::ClientHit(_) => 1,
        Ingested::Reject(_) | Ingested::Progress(..) => 2,
    }
}

/// Builds the stages after the sources.
pub fn build<'scope>(ingested: StreamVec<'scope, Time, Ingested>, policy: WindowPolicy) -> Outputs<'scope> {
    let mut parts = ingested.partition::<CapacityContainerBuilder<Vec<Ingested>>, _, _>(3, |item| (route(&item), item)).into_iter();
    let mut next = || parts.next().expect("one stream per route");
    let (domain_hits, client_hits, control) = (next(), next(), next());

    Outputs {
        windows: panes::domain_windows(domain_hits, policy),
        abusers: abuse::rank_clients(client_hits, policy).as_collection(),
        rejects: control.clone().flat_map(|i| if let Ingested::Reject(reject) = i { Some(*reject) } else { None }),
        progress: control.flat_map(|i| if let Ingested::Progress(partition, progress) = i { Some((partition, *progress)) } else { None }),
    }
}

//! The whole dataflow on one screen: what the sources' `Ingest` emits goes through the stages
//! in flow order, and `Outputs` is what `output::close_epochs` turns into table changes.
//!
//! ```text
//! source (I/O, root crate) ── Ingest: parse → clean → stamp → key → local combine
//!        │ Vec<Ingested>
//!        ▼
//!   split by output ─┬─ traffic  ─► consolidate ─────────────────► Outputs::traffic
//!                    ├─ status   ─► consolidate ─────────────────► Outputs::status
//!                    ├─ clients  ─► reduce: distinct + top 10 ────► Outputs::clients
//!                    ├─ latency  ─► reduce: p50/p95/p99 ─────────► Outputs::latency
//!                    ├─ seconds  ─► reduce: busiest second ──────► Outputs::peaks
//!                    ├─ abusers  ─► reduce: top 20 per minute ────► Outputs::abusers
//!                    ├─ rejects ─────────────────────────────────► Outputs::rejects
//!                    └─ progress (replay points per partition) ──► Outputs::progress
//! ```
//! Every collection exchanges by key inside its differential operator; the retractions the
//! combiner scheduled at each window's retirement keep every arrangement bounded by the live
//! windows.

use std::net::IpAddr;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::Partition;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

use crate::aggregate::{
    peak_second, summarize_clients, summarize_latency, top_clients, ClientSummary, ClientTraffic, LatencyMetric,
    LatencySummary, RankedClient, Traffic, TOP_ABUSERS,
};
use crate::ingest::{Ingested, RejectRow};
use crate::key::DomainWindow;
use crate::progress::PartitionProgress;
use crate::window::{Time, Window};

/// The collections and streams the sink writes.
pub struct Outputs<'scope> {
    /// Totals per (domain, window) for every window kind.
    pub traffic: VecCollection<'scope, Time, DomainWindow, Traffic>,
    /// Requests per (domain, minute, status code).
    pub status: VecCollection<'scope, Time, (DomainWindow, u16), i64>,
    /// Distinct clients and top clients per (domain, window).
    pub clients: VecCollection<'scope, Time, (DomainWindow, ClientSummary), isize>,
    /// Latency percentiles per (domain, window).
    pub latency: VecCollection<'scope, Time, (DomainWindow, LatencySummary), isize>,
    /// Bytes of the busiest second per (domain, window).
    pub peaks: VecCollection<'scope, Time, (DomainWindow, u64), isize>,
    /// Top clients per minute across all domains.
    pub abusers: VecCollection<'scope, Time, (Window, Vec<RankedClient>), isize>,
    /// Rejected messages with the epoch they belong to.
    pub rejects: StreamVec<'scope, Time, (RejectRow, Time)>,
    /// Each partition's latest progress, for the checkpoints.
    pub progress: StreamVec<'scope, Time, (i32, PartitionProgress)>,
}

/// Builds the stages after the sources.
pub fn build<'scope>(ingested: StreamVec<'scope, Time, Ingested>) -> Outputs<'scope> {
    let mut parts = ingested
        .partition::<CapacityContainerBuilder<Vec<Ingested>>, _, _>(Ingested::OUTPUTS, |item| (item.output_index(), item))
        .into_iter();
    let mut next = || parts.next().expect("one stream per output");
    let (traffic, status, clients, latency, seconds, abusers, rejects, progress) =
        (next(), next(), next(), next(), next(), next(), next(), next());
    Outputs {
        traffic: sum_traffic(traffic.flat_map(|i| match i {
            Ingested::Traffic(k, t, r) => Some((k, t, r)),
            _ => None,
        })),
        status: count_statuses(status.flat_map(|i| match i {
            Ingested::Status(k, t, r) => Some((k, t, r)),
            _ => None,
        })),
        clients: summarize_window_clients(clients.flat_map(|i| match i {
            Ingested::Client(k, t, r) => Some((k, t, r)),
            _ => None,
        })),
        latency: latency_percentiles(latency.flat_map(|i| match i {
            Ingested::Latency(k, t, r) => Some((k, t, r)),
            _ => None,
        })),
        peaks: peak_seconds(seconds.flat_map(|i| match i {
            Ingested::Second(k, t, r) => Some((k, t, r)),
            _ => None,
        })),
        abusers: rank_abusers(abusers.flat_map(|i| match i {
            Ingested::Abuser(k, t, r) => Some((k, t, r)),
            _ => None,
        })),
        rejects: rejects.flat_map(|i| match i {
            Ingested::Reject(row, t) => Some((row, t)),
            _ => None,
        }),
        progress: progress.flat_map(|i| match i {
            Ingested::Progress(partition, progress) => Some((partition, progress)),
            _ => None,
        }),
    }
}

/// Exchanges the per-worker deltas by key and consolidates them: one update per key and time.
fn sum_traffic<'s>(updates: StreamVec<'s, Time, (DomainWindow, Time, Traffic)>) -> VecCollection<'s, Time, DomainWindow, Traffic> {
    updates.as_collection().consolidate()
}

fn count_statuses<'s>(
    updates: StreamVec<'s, Time, ((DomainWindow, u16), Time, i64)>,
) -> VecCollection<'s, Time, (DomainWindow, u16), i64> {
    updates.as_collection().consolidate()
}

fn summarize_window_clients<'s>(
    updates: StreamVec<'s, Time, ((DomainWindow, IpAddr), Time, ClientTraffic)>,
) -> VecCollection<'s, Time, (DomainWindow, ClientSummary), isize> {
    updates.as_collection().reduce_named("ClientSummary", |_key, group, output| output.push((summarize_clients(group), 1)))
}

fn latency_percentiles<'s>(
    updates: StreamVec<'s, Time, ((DomainWindow, (LatencyMetric, u16)), Time, i64)>,
) -> VecCollection<'s, Time, (DomainWindow, LatencySummary), isize> {
    updates.as_collection().reduce_named("LatencyPercentiles", |_key, group, output| output.push((summarize_latency(group), 1)))
}

fn peak_seconds<'s>(updates: StreamVec<'s, Time, ((DomainWindow, u64), Time, i64)>) -> VecCollection<'s, Time, (DomainWindow, u64), isize> {
    updates.as_collection().reduce_named("PeakSecond", |_key, group, output| output.push((peak_second(group), 1)))
}

fn rank_abusers<'s>(
    updates: StreamVec<'s, Time, ((Window, IpAddr), Time, ClientTraffic)>,
) -> VecCollection<'s, Time, (Window, Vec<RankedClient>), isize> {
    updates
        .as_collection()
        .reduce_named("TopAbusers", |_minute, group, output| output.push((top_clients(group, TOP_ABUSERS, |t| t.requests), 1)))
}

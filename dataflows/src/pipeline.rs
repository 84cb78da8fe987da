//! The whole dataflow on one screen: what the sources' `Ingest` emits goes through the stages
//! in flow order, and `Outputs` is what the sink writes.
//!
//! ```text
//! source (I/O, root crate) ── Ingest: parse → clean → stamp → key → local combine
//!        │ Vec<Ingested>
//!        ▼
//!   split ──► rejects ──────────────────────────────────────────────► Outputs::rejects
//!     └────► traffic updates ─► aggregate (exchange by key, consolidate) ─► Outputs::domain_minutes
//! ```

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::StreamVec;

use crate::aggregate::Traffic;
use crate::ingest::{Ingested, RejectRow};
use crate::key::DomainWindow;
use crate::window::Time;

/// The collections and streams a sink writes.
pub struct Outputs<'scope> {
    /// Request, byte and status-class totals per (domain, minute).
    pub domain_minutes: VecCollection<'scope, Time, DomainWindow, Traffic>,
    /// Rejected messages with the epoch they belong to.
    pub rejects: StreamVec<'scope, Time, (RejectRow, Time)>,
}

/// Builds the stages after the sources.
pub fn build<'scope>(ingested: StreamVec<'scope, Time, Ingested>) -> Outputs<'scope> {
    let (traffic, rejects) = split(ingested);
    let domain_minutes = aggregate_traffic(traffic.as_collection());
    Outputs { domain_minutes, rejects }
}

/// Separates rejects from updates; both keep the times `Ingest` gave them.
fn split<'scope>(
    ingested: StreamVec<'scope, Time, Ingested>,
) -> (StreamVec<'scope, Time, (DomainWindow, Time, Traffic)>, StreamVec<'scope, Time, (RejectRow, Time)>) {
    ingested.ok_err(|item| match item {
        Ingested::Traffic(key, time, diff) => Ok((key, time, diff)),
        Ingested::Reject(row, time) => Err((row, time)),
    })
}

/// Exchanges the per-worker deltas by key and consolidates them: one update per key and time.
fn aggregate_traffic<'scope>(
    updates: VecCollection<'scope, Time, DomainWindow, Traffic>,
) -> VecCollection<'scope, Time, DomainWindow, Traffic> {
    updates.consolidate()
}

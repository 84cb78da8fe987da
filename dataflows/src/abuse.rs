//! The abuse view: the top clients of each minute across all domains, in two stages.
//!
//! - [`ClientMinutes`] (routed by client, so each worker owns disjoint clients): per (minute,
//!   client) totals and, per minute, the worker's own top [`TOP_ABUSERS`] by requests, kept
//!   incrementally (`topk`). A ranking that changed leaves as `(minute, worker, ranking)`.
//! - [`MergeRankings`] (routed by minute): the latest ranking of each worker per minute;
//!   the top of their union is exactly the top of the minute, because the workers' client
//!   sets are disjoint. Emits `(Window, ranking)` updates with diffs ±1.
//!
//! Both emit at the latest stamp of the lines that changed a ranking and drop a minute once
//! the frontier passes its retirement.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rustc_hash::FxHashMap;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::StreamVec;

use crate::aggregate::{RankedClient, TOP_ABUSERS};
use crate::frontier::{self, Stage};
use crate::ingest::Ingested;
use crate::panes::Dirty;
use crate::topk::{RankBy, TopK};
use crate::window::{Time, Window, WindowKind, WindowPolicy};

/// One worker's ranking of a minute, stamped.
pub type PartialRanking = (u64, usize, Vec<RankedClient>, Time);
/// A change of a minute's ranking: `((window, ranking), time, diff)`.
pub type RankingChange = ((Window, Vec<RankedClient>), Time, isize);

#[derive(Default)]
struct MinuteClients {
    totals: FxHashMap<IpAddr, (u64, u64)>,
    top: TopK,
    /// Whether `top` changed since the last emission (see `panes::Dirty`).
    changed: Dirty,
}

/// Stage one: per-worker rankings of disjoint clients.
pub struct ClientMinutes {
    policy: WindowPolicy,
    worker: usize,
    minutes: BTreeMap<u64, MinuteClients>,
}

impl Stage for ClientMinutes {
    type In = Ingested;
    type Out = PartialRanking;

    // Out of line so a profile shows the per-line cost of the abuse view by name.
    #[inline(never)]
    fn apply(&mut self, item: Ingested) {
        let Ingested::ClientHit(hit) = item else { return };
        let minute = self.minutes.entry(hit.minute).or_default();
        let total = minute.totals.entry(hit.client).or_default();
        total.0 += 1;
        total.1 += hit.bytes;
        if minute.top.offer(TOP_ABUSERS, RankBy::Requests, hit.client, total.0, total.1) {
            minute.changed.mark(hit.stamp);
        }
    }

    fn emit(&mut self, out: &mut Vec<PartialRanking>) {
        for (&start, minute) in &mut self.minutes {
            if let Some(stamp) = minute.changed.take() {
                out.push((start, self.worker, minute.top.ranked().to_vec(), stamp));
            }
        }
    }

    fn retire(&mut self, frontier: Option<Time>) {
        retire_minutes(&mut self.minutes, &self.policy, frontier);
    }
}

#[derive(Default)]
struct MinuteRankings {
    parts: BTreeMap<usize, Vec<RankedClient>>,
    emitted: Option<Vec<RankedClient>>,
    changed: Dirty,
}

/// Stage two: the rankings of every worker merged per minute.
pub struct MergeRankings {
    policy: WindowPolicy,
    minutes: BTreeMap<u64, MinuteRankings>,
}

impl Stage for MergeRankings {
    type In = PartialRanking;
    type Out = RankingChange;

    fn apply(&mut self, (start, worker, ranking, stamp): PartialRanking) {
        let minute = self.minutes.entry(start).or_default();
        minute.parts.insert(worker, ranking);
        minute.changed.mark(stamp);
    }

    fn emit(&mut self, out: &mut Vec<RankingChange>) {
        for (&start, minute) in &mut self.minutes {
            let Some(stamp) = minute.changed.take() else { continue };
            let merged = TopK::merge_disjoint(TOP_ABUSERS, RankBy::Requests, minute.parts.values().map(Vec::as_slice));
            if minute.emitted.as_ref() == Some(&merged) {
                continue;
            }
            let window = Window { kind: WindowKind::Minute, start };
            if let Some(old) = minute.emitted.take() {
                out.push(((window, old), stamp, -1));
            }
            out.push(((window, merged.clone()), stamp, 1));
            minute.emitted = Some(merged);
        }
    }

    fn retire(&mut self, frontier: Option<Time>) {
        retire_minutes(&mut self.minutes, &self.policy, frontier);
    }
}

/// Drops the minutes whose window retires at or before `frontier` (`None`: all).
fn retire_minutes<V>(minutes: &mut BTreeMap<u64, V>, policy: &WindowPolicy, frontier: Option<Time>) {
    let Some(frontier) = frontier else {
        minutes.clear();
        return;
    };
    while let Some((&start, _)) = minutes.first_key_value() {
        if policy.retire_time(&Window { kind: WindowKind::Minute, start }) > frontier {
            break;
        }
        minutes.pop_first();
    }
}

/// The abuse view: client hits in, ranking changes per minute out.
pub fn rank_clients<'s>(hits: StreamVec<'s, Time, Ingested>, policy: WindowPolicy) -> StreamVec<'s, Time, RankingChange> {
    let by_client = |item: &Ingested| match item {
        Ingested::ClientHit(hit) => hit.route(),
        _ => 0,
    };
    let partial = frontier::run(hits, Exchange::new(by_client), "ClientMinutes", |worker| ClientMinutes { policy, worker, minutes: BTreeMap::new() });
    frontier::run(partial, Exchange::new(|p: &PartialRanking| p.0 / 60), "MergeRankings", |_| MergeRankings { policy, minutes: BTreeMap::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ClientHit;

    #[test]
    fn minutes_retire_with_their_window() {
        let policy = WindowPolicy { allowed_lateness_secs: 30, ..WindowPolicy::default() };
        let mut minutes: BTreeMap<u64, ()> = [(60, ()), (120, ())].into_iter().collect();
        retire_minutes(&mut minutes, &policy, Some(149));
        assert_eq!(minutes.len(), 2);
        retire_minutes(&mut minutes, &policy, Some(150));
        assert_eq!(minutes.keys().copied().collect::<Vec<_>>(), vec![120]);
        retire_minutes(&mut minutes, &policy, None);
        assert!(minutes.is_empty());
    }

    #[test]
    fn worker_rankings_merge_into_the_minute_ranking() {
        let policy = WindowPolicy::default();
        let ip = |i: u8| IpAddr::from([198, 51, 100, i]);
        let mut workers = [ClientMinutes { policy, worker: 0, minutes: BTreeMap::new() }, ClientMinutes { policy, worker: 1, minutes: BTreeMap::new() }];
        for (i, requests) in [(1u8, 3), (2, 5), (3, 1), (4, 5)] {
            for _ in 0..requests {
                workers[usize::from(i % 2)].apply(Ingested::ClientHit(ClientHit { client: ip(i), stamp: 70, minute: 60, bytes: 10 }));
            }
        }
        let mut merge = MergeRankings { policy, minutes: BTreeMap::new() };
        let mut partials = Vec::new();
        for worker in &mut workers {
            worker.emit(&mut partials);
        }
        for partial in partials {
            merge.apply(partial);
        }
        let mut changes = Vec::new();
        merge.emit(&mut changes);
        let ((window, ranking), time, diff) = &changes[0];
        assert_eq!((window.start, *time, *diff), (60, 70, 1));
        assert_eq!(ranking.iter().map(|c| (c.ip, c.requests)).collect::<Vec<_>>(), vec![(ip(2), 5), (ip(4), 5), (ip(1), 3), (ip(3), 1)]);
        // Nothing new: nothing emitted.
        changes.clear();
        merge.emit(&mut changes);
        assert!(changes.is_empty());
    }
}

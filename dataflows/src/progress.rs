//! Per-partition progress for exactly-once restarts (shared/DESIGN.md §4).
//!
//! The job keeps no state of its own across a crash: MySQL holds the results of every epoch
//! before the committed frontier `F`, and for each partition a [`ReplayPoint`]: an offset and
//! the partition's clock there. A restart reads every partition again from its replay point,
//! which rebuilds the window state exactly (time assignment depends only on the partition's
//! own sequence, see `window`), and suppresses the epochs before `F`.
//!
//! The replay point for `F` is the smallest offset of any record whose output reaches an
//! epoch at or after `F`: the retirement of its last live window, the epoch of its reject,
//! or the end of its de-duplication horizon. Records before it have all their updates
//! before `F`, which is committed.
//!
//! [`PartitionProgress`] finds that offset without knowing `F` in advance: it keeps the
//! footprints `(offset, last epoch reached)` of the records read, minus those dominated by
//! an earlier record reaching at least as far (that earlier offset is the answer whenever
//! the later one would be). What is kept has strictly increasing offsets and last epochs, so
//! the answer is the first footprint reaching `F`, and footprints before the frontier the
//! sink has committed can be dropped: it is bounded by the live windows.
//!
//! Idle partitions follow the wall clock (see `window`), which a replay cannot reproduce by
//! itself: every idle advance is recorded as an [`IdleMark`] at the offset it preceded and
//! replayed there.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::window::{PartitionClock, Time};

/// An idle advance of a partition's watermark, made before the message at `offset` was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleMark {
    pub offset: i64,
    pub watermark: Time,
}

/// Where to restart a partition and with what state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayPoint {
    /// First offset to read; `None`: the beginning of the partition.
    pub offset: Option<i64>,
    /// The partition's clock just before `offset`.
    pub clock: PartitionClock,
    /// Idle advances to replay, made at or after `offset`, oldest first.
    pub idle_marks: Vec<IdleMark>,
}

/// One record that may still reach an uncommitted epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Footprint {
    offset: i64,
    /// The last epoch the record's updates reach.
    last_time: Time,
    /// The clock before the record was stamped.
    clock_before: PartitionClock,
}

/// What one partition has read, in the shape needed to compute replay points.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProgress {
    /// One past the last offset read; `None` before the first message.
    next_offset: Option<i64>,
    /// The clock after everything read and every idle advance.
    clock: PartitionClock,
    /// Undominated footprints: offsets and last times strictly increasing.
    footprints: VecDeque<Footprint>,
    /// Idle advances at or after the first footprint (or the next offset), oldest first.
    idle_marks: VecDeque<IdleMark>,
    /// Idle advances from a replay point still to be applied, oldest first.
    replaying: VecDeque<IdleMark>,
}

impl PartitionProgress {
    /// Progress resuming at `point`: the clock there, with its idle marks applied as the
    /// replay reaches their offsets.
    pub fn resume(point: &ReplayPoint) -> PartitionProgress {
        let mut progress =
            PartitionProgress { next_offset: point.offset, clock: point.clock, replaying: point.idle_marks.iter().copied().collect(), ..Default::default() };
        progress.apply_marks_before(point.offset.unwrap_or(0));
        progress
    }

    pub fn clock(&self) -> PartitionClock {
        self.clock
    }

    pub fn clock_mut(&mut self) -> &mut PartitionClock {
        &mut self.clock
    }

    pub fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }

    /// Applies the replayed idle advances made before `offset` (call before stamping it).
    pub fn apply_marks_before(&mut self, offset: i64) {
        while let Some(mark) = self.replaying.front().copied().filter(|m| m.offset <= offset) {
            self.replaying.pop_front();
            self.clock.watermark = self.clock.watermark.max(mark.watermark);
            self.idle_marks.push_back(mark);
        }
    }

    /// Records that the message at `offset`, stamped with the clock `clock_before`, reaches
    /// epochs up to `last_time`. The caller has already moved `clock_mut()` past it.
    pub fn record(&mut self, offset: i64, clock_before: PartitionClock, last_time: Time) {
        self.next_offset = Some(offset + 1);
        if self.footprints.back().is_none_or(|last| last_time > last.last_time) {
            self.footprints.push_back(Footprint { offset, last_time, clock_before });
        }
    }

    /// Records an idle advance of the watermark to `watermark` before the next message.
    pub fn idle_advance(&mut self, watermark: Time) {
        if watermark <= self.clock.watermark {
            return;
        }
        self.clock.watermark = watermark;
        // A replay that has not yet reached its own marks must not record this one out of
        // order; it happens only after the replay caught up, so the queue is empty then.
        let offset = self.next_offset.unwrap_or(0);
        self.idle_marks.push_back(IdleMark { offset, watermark });
    }

    /// Forgets what cannot matter once every epoch before `committed` is in MySQL.
    pub fn prune(&mut self, committed: Time) {
        while self.footprints.front().is_some_and(|f| f.last_time < committed) {
            self.footprints.pop_front();
        }
        let from = self.footprints.front().map(|f| f.offset).or(self.next_offset).unwrap_or(0);
        // Marks before the replay offset are already in the clock the replay starts with.
        while self.idle_marks.front().is_some_and(|m| m.offset < from) {
            self.idle_marks.pop_front();
        }
    }

    /// Where a restart must begin so that every epoch at or after `committed` is rebuilt.
    pub fn replay_point(&self, committed: Time) -> ReplayPoint {
        let (offset, clock) = match self.footprints.iter().find(|f| f.last_time >= committed) {
            Some(first) => (Some(first.offset), first.clock_before),
            None => (self.next_offset, self.clock),
        };
        let from = offset.unwrap_or(0);
        // Marks at `from` are in a footprint's clock already, but applying one twice is
        // harmless (a watermark only moves forward) and keeps the rule simple.
        let idle_marks = self.idle_marks.iter().chain(&self.replaying).filter(|m| m.offset >= from).copied().collect();
        ReplayPoint { offset, clock, idle_marks }
    }

    /// Number of footprints held (for metrics and the bounded-state tests).
    pub fn footprints(&self) -> usize {
        self.footprints.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(max: u64, watermark: Time) -> PartitionClock {
        PartitionClock { max_event_sec: Some(max), watermark }
    }

    /// Reads records `(offset, last_time)` with a made-up clock per record.
    fn read(records: &[(i64, Time)]) -> PartitionProgress {
        let mut progress = PartitionProgress::default();
        for &(offset, last) in records {
            let before = progress.clock();
            *progress.clock_mut() = clock(offset as u64 * 10, offset as u64);
            progress.record(offset, before, last);
        }
        progress
    }

    #[test]
    fn replay_starts_at_the_first_record_reaching_the_frontier() {
        let progress = read(&[(0, 100), (1, 50), (2, 160), (3, 120), (4, 200)]);
        // Offset 1 and 3 are dominated by 0 and 2.
        assert_eq!(progress.footprints(), 3);
        assert_eq!(progress.replay_point(90).offset, Some(0));
        assert_eq!(progress.replay_point(101).offset, Some(2));
        assert_eq!(progress.replay_point(161).offset, Some(4));
        // The clock is the one before the replayed record.
        assert_eq!(progress.replay_point(161).clock, clock(30, 3));
        // Nothing reaches 201: resume after the last record with the current clock.
        assert_eq!(progress.replay_point(201), ReplayPoint { offset: Some(5), clock: clock(40, 4), idle_marks: vec![] });
    }

    #[test]
    fn pruning_keeps_every_answer_at_or_after_the_committed_frontier() {
        let mut progress = read(&[(0, 100), (1, 150), (2, 160), (3, 170)]);
        let before: Vec<_> = (120..=200).map(|f| progress.replay_point(f)).collect();
        progress.prune(120);
        assert_eq!(progress.footprints(), 3);
        let after: Vec<_> = (120..=200).map(|f| progress.replay_point(f)).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn a_partition_never_read_restarts_at_the_beginning() {
        let progress = PartitionProgress::default();
        assert_eq!(progress.replay_point(500), ReplayPoint::default());
    }

    #[test]
    fn idle_advances_are_replayed_at_the_offset_they_preceded() {
        let mut progress = read(&[(0, 100), (1, 150)]);
        progress.idle_advance(90);
        let before = progress.clock();
        *progress.clock_mut() = clock(95, 90);
        progress.record(2, before, 200);
        let point = progress.replay_point(120);
        assert_eq!(point.offset, Some(1));
        assert_eq!(point.idle_marks, vec![IdleMark { offset: 2, watermark: 90 }]);

        // The replay applies the mark just before offset 2, not at the start.
        let mut replay = PartitionProgress::resume(&point);
        assert_eq!(replay.clock().watermark, 0);
        replay.apply_marks_before(1);
        assert_eq!(replay.clock().watermark, 0);
        replay.apply_marks_before(2);
        assert_eq!(replay.clock().watermark, 90);
    }

    #[test]
    fn an_idle_partition_keeps_its_advance_across_restarts() {
        let mut progress = PartitionProgress::default();
        progress.idle_advance(1000);
        let point = progress.replay_point(10);
        assert_eq!(point.offset, None);
        let resumed = PartitionProgress::resume(&point);
        assert_eq!(resumed.clock().watermark, 1000);
    }

    #[test]
    fn replay_points_survive_serialization() {
        let progress = read(&[(7, 100)]);
        let point = progress.replay_point(50);
        let text = serde_json::to_string(&point).unwrap();
        assert_eq!(serde_json::from_str::<ReplayPoint>(&text).unwrap(), point);
    }
}

//! Per-partition progress for exactly-once restarts (README, "Exactly once, across crashes,
//! restarts and outages").
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
//!
//! The same holds for the rejects decided by something other than the partition's own
//! sequence (see `time_guard`): `future_time` (the wall clock) and `time_outlier` for a jump
//! still held when the input ended. They are recorded as [`Decided`] offsets; a replay of
//! an offset below `read_until` (read before the checkpoint) repeats them, and decides
//! nothing else by the wall clock. Offsets never read before are decided afresh.
//!
//! A held time jump pins the replay point: until it is decided, a restart must read the
//! first held record again with the clock before it, so every record processed or decided
//! meanwhile leaves its footprint at that pin (see [`PartitionProgress::record_at`]).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::record::RejectReason;
use crate::window::{PartitionClock, Time};

/// An idle advance of a partition's watermark, made before the message at `offset` was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleMark {
    pub offset: i64,
    pub watermark: Time,
}

/// A reject a replay cannot derive from the partition's sequence, made at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub offset: i64,
    pub reason: RejectReason,
}

/// Where footprints go: an offset and the clock before it (a record's own, or a hold's pin).
pub type Pin = (i64, PartitionClock);

/// Where to restart a partition and with what state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayPoint {
    /// First offset to read; `None`: the beginning of the partition.
    pub offset: Option<i64>,
    /// The partition's clock just before `offset`.
    pub clock: PartitionClock,
    /// Idle advances to replay, made at or after `offset`, oldest first.
    pub idle_marks: Vec<IdleMark>,
    /// Offsets below this were read before: their wall-clock decisions are `decided`.
    /// Absent in checkpoints written before it existed: everything is decided afresh.
    #[serde(default)]
    pub read_until: Option<i64>,
    /// Decisions to repeat at or after `offset`, by offset.
    #[serde(default)]
    pub decided: Vec<Decided>,
    /// Offsets (first, last) whose bounded decisions were not recorded (see
    /// [`PartitionProgress::decide_bounded`]): a replay decides them afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unrecorded: Option<(i64, i64)>,
}

/// Most decisions a checkpoint carries (its JSON must fit `checkpoints.replay_state`, a TEXT
/// of 64 KiB, at about 45 bytes a decision).
pub const MAX_RECORDED_DECISIONS: usize = 512;

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
    /// Decisions at or after the first footprint (or the pin, or the next offset), with
    /// those of the replay point still ahead.
    decided: BTreeMap<i64, RejectReason>,
    /// Offsets below this are decided by `decided`, not afresh (see the module docs).
    read_until: Option<i64>,
    /// The first held record of an open time jump and the clock before it.
    pin: Option<Pin>,
    /// Offsets whose bounded decisions were not recorded: (first, last).
    unrecorded: Option<(i64, i64)>,
}

impl PartitionProgress {
    /// Progress resuming at `point`: the clock there, with its idle marks applied as the
    /// replay reaches their offsets.
    pub fn resume(point: &ReplayPoint) -> PartitionProgress {
        let mut progress = PartitionProgress {
            next_offset: point.offset,
            clock: point.clock,
            replaying: point.idle_marks.iter().copied().collect(),
            decided: point.decided.iter().map(|d| (d.offset, d.reason)).collect(),
            read_until: point.read_until,
            unrecorded: point.unrecorded,
            ..Default::default()
        };
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

    /// Notes that the message at `offset` was read, whatever becomes of it (a held record
    /// leaves its footprint only when decided).
    pub fn note_read(&mut self, offset: i64) {
        self.next_offset = Some(self.next_offset.map_or(offset + 1, |next| next.max(offset + 1)));
    }

    /// Records that the message at `offset`, stamped with the clock `clock_before`, reaches
    /// epochs up to `last_time`. The caller has already moved `clock_mut()` past it.
    pub fn record(&mut self, offset: i64, clock_before: PartitionClock, last_time: Time) {
        self.record_at(offset, (offset, clock_before), last_time);
    }

    /// Records that the message at `offset` reaches epochs up to `last_time`, with its
    /// footprint at `at`: its own offset and clock, or the pin of a time jump that was open
    /// when it was processed (a replay must start there to process it the same way).
    pub fn record_at(&mut self, offset: i64, at: Pin, last_time: Time) {
        // Records released from a hold come after later offsets were read.
        self.note_read(offset);
        self.insert_footprint(Footprint { offset: at.0, last_time, clock_before: at.1 });
    }

    /// Adds `new` unless an earlier-or-equal offset reaches at least as far, and drops the
    /// footprints it dominates, so offsets and last times stay strictly increasing.
    fn insert_footprint(&mut self, new: Footprint) {
        let footprints = &mut self.footprints;
        // The common case: a record at a new offset, in order.
        if footprints.back().is_none_or(|last| last.offset < new.offset) {
            if footprints.back().is_none_or(|last| new.last_time > last.last_time) {
                footprints.push_back(new);
            }
            return;
        }
        let mut at = footprints.partition_point(|f| f.offset <= new.offset);
        if at > 0 {
            let before = footprints[at - 1];
            if before.last_time >= new.last_time {
                return;
            }
            if before.offset == new.offset {
                at -= 1;
            }
        }
        let mut end = at;
        while end < footprints.len() && footprints[end].last_time <= new.last_time {
            end += 1;
        }
        footprints.drain(at..end);
        footprints.insert(at, new);
    }

    /// How the first run decided `offset` if it was read before the replay point was taken:
    /// `Some(None)` means no recorded reject. `None`: not read before, decide afresh.
    pub fn replayed_decision(&self, offset: i64) -> Option<Option<RejectReason>> {
        self.read_until.filter(|&until| offset < until).map(|_| self.decided.get(&offset).copied())
    }

    /// Like [`Self::replayed_decision`] for a decision recorded with
    /// [`Self::decide_bounded`]: `None` also where it may not have been recorded.
    pub fn replayed_bounded_decision(&self, offset: i64) -> Option<Option<RejectReason>> {
        match self.unrecorded {
            Some((first, last)) if (first..=last).contains(&offset) => None,
            _ => self.replayed_decision(offset),
        }
    }

    /// Records a reject a replay should repeat, unless the checkpoint already carries
    /// [`MAX_RECORDED_DECISIONS`]: then it notes the offset as unrecorded, and a replay
    /// decides it afresh (exactly as the first run only if it rebuilds the same state).
    pub fn decide_bounded(&mut self, offset: i64, reason: RejectReason) {
        if self.decided.len() < MAX_RECORDED_DECISIONS {
            self.decided.insert(offset, reason);
        } else {
            self.unrecorded = Some(self.unrecorded.map_or((offset, offset), |(first, last)| (first.min(offset), last.max(offset))));
        }
    }

    /// Records a reject at `offset` that a replay must repeat rather than derive.
    pub fn decide(&mut self, offset: i64, reason: RejectReason) {
        self.decided.insert(offset, reason);
    }

    /// Pins the replay point at an open time jump's first held record, or unpins it.
    pub fn set_pin(&mut self, pin: Option<Pin>) {
        self.pin = pin;
    }

    /// The first offset a replay may need: the first footprint's, the pin's, or the next.
    fn replay_from(&self) -> i64 {
        let first = self.footprints.front().map(|f| f.offset).or(self.next_offset).unwrap_or(0);
        self.pin.map_or(first, |(offset, _)| first.min(offset))
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
        let from = self.replay_from();
        // Marks before the replay offset are already in the clock the replay starts with.
        while self.idle_marks.front().is_some_and(|m| m.offset < from) {
            self.idle_marks.pop_front();
        }
        // Decisions before it are never replayed.
        self.decided = self.decided.split_off(&from);
        if self.unrecorded.is_some_and(|(_, last)| last < from) {
            self.unrecorded = None;
        }
    }

    /// Where a restart must begin so that every epoch at or after `committed` is rebuilt.
    pub fn replay_point(&self, committed: Time) -> ReplayPoint {
        let first = self.footprints.iter().find(|f| f.last_time >= committed).map(|f| (f.offset, f.clock_before));
        // An open time jump must be read again from its first held record.
        let (offset, clock) = match (first, self.pin) {
            (Some(first), Some(pin)) if first.0 <= pin.0 => (Some(first.0), first.1),
            (_, Some(pin)) => (Some(pin.0), pin.1),
            (Some(first), None) => (Some(first.0), first.1),
            (None, None) => (self.next_offset, self.clock),
        };
        let from = offset.unwrap_or(0);
        // Marks at `from` are in a footprint's clock already, but applying one twice is
        // harmless (a watermark only moves forward) and keeps the rule simple.
        let idle_marks = self.idle_marks.iter().chain(&self.replaying).filter(|m| m.offset >= from).copied().collect();
        let decided = self.decided.range(from..).map(|(&offset, &reason)| Decided { offset, reason }).collect();
        // A replay still below the previous run's reach keeps that reach.
        let read_until = match (self.next_offset, self.read_until) {
            (Some(next), Some(until)) => Some(next.max(until)),
            (next, until) => next.or(until),
        };
        let unrecorded = self.unrecorded.filter(|&(_, last)| last >= from);
        ReplayPoint { offset, clock, idle_marks, read_until, decided, unrecorded }
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
        assert_eq!(
            progress.replay_point(201),
            ReplayPoint { offset: Some(5), clock: clock(40, 4), read_until: Some(5), ..Default::default() }
        );
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
    fn a_footprint_inserted_at_an_earlier_offset_keeps_offsets_and_last_times_increasing() {
        let mut progress = read(&[(0, 100), (2, 150), (4, 170), (6, 300)]);
        // At offset 2, reaching 200: replaces the footprint at 2 and dominates the one at 4.
        progress.record_at(7, (2, clock(5, 5)), 200);
        assert_eq!(progress.footprints.iter().map(|f| (f.offset, f.last_time)).collect::<Vec<_>>(), vec![(0, 100), (2, 200), (6, 300)]);
        assert_eq!(progress.footprints[1].clock_before, clock(5, 5));
        // Dominated by offset 0: nothing changes.
        progress.record_at(8, (1, clock(6, 6)), 90);
        assert_eq!(progress.footprints(), 3);
        // Inserted between 0 and 2.
        progress.record_at(9, (1, clock(6, 6)), 120);
        assert_eq!(progress.footprints.iter().map(|f| (f.offset, f.last_time)).collect::<Vec<_>>(), vec![(0, 100), (1, 120), (2, 200), (6, 300)]);
        assert_eq!(progress.next_offset(), Some(10));
        // A record released late never moves the next offset back.
        progress.record_at(3, (2, clock(5, 5)), 0);
        assert_eq!(progress.next_offset(), Some(10));
    }

    #[test]
    fn an_open_hold_pins_the_replay_point_and_what_pruning_keeps() {
        let mut progress = read(&[(0, 100), (1, 150)]);
        progress.note_read(2);
        progress.set_pin(Some((2, clock(15, 1))));
        progress.record_at(3, (2, clock(15, 1)), 160);
        progress.note_read(4);
        progress.decide(4, RejectReason::FutureTime);
        // Nothing reaches 500, but the held record at 2 must be read again.
        let point = progress.replay_point(500);
        assert_eq!((point.offset, point.clock, point.read_until), (Some(2), clock(15, 1), Some(5)));
        assert_eq!(point.decided, vec![Decided { offset: 4, reason: RejectReason::FutureTime }]);
        assert_eq!(progress.replay_point(120).offset, Some(1));
        progress.prune(500);
        assert_eq!(progress.replay_point(500), point);
        // Decided: pruning then forgets the decision with the footprints before it.
        progress.set_pin(None);
        let point = progress.replay_point(500);
        assert_eq!((point.offset, point.decided), (Some(5), vec![]));
        progress.prune(500);
        assert!(progress.decided.is_empty());
    }

    #[test]
    fn recorded_decisions_are_replayed_only_below_the_offset_read_before() {
        let point = ReplayPoint {
            offset: Some(10),
            read_until: Some(20),
            decided: vec![Decided { offset: 12, reason: RejectReason::FutureTime }],
            ..Default::default()
        };
        let replay = PartitionProgress::resume(&point);
        assert_eq!(replay.replayed_decision(11), Some(None));
        assert_eq!(replay.replayed_decision(12), Some(Some(RejectReason::FutureTime)));
        assert_eq!(replay.replayed_decision(20), None);
        // The replay point of a replay still below the first run's reach keeps that reach.
        assert_eq!(replay.replay_point(0).read_until, Some(20));
    }

    #[test]
    fn bounded_decisions_past_the_limit_are_left_to_the_replay_and_the_checkpoint_stays_small() {
        let mut progress = read(&[(0, 1_000_000)]);
        for offset in 1..20_000 {
            progress.note_read(offset);
            progress.decide_bounded(offset, RejectReason::DomainFlood);
        }
        let point = progress.replay_point(500);
        assert_eq!(point.decided.len(), MAX_RECORDED_DECISIONS);
        assert_eq!(point.unrecorded, Some((MAX_RECORDED_DECISIONS as i64 + 1, 19_999)));
        assert!(serde_json::to_string(&point).unwrap().len() < 32 * 1024, "fits checkpoints.replay_state");
        let replay = PartitionProgress::resume(&point);
        assert_eq!(replay.replayed_bounded_decision(5), Some(Some(RejectReason::DomainFlood)));
        assert_eq!(replay.replayed_bounded_decision(600), None, "decided afresh");
        assert_eq!(replay.replayed_bounded_decision(0), Some(None));
    }

    #[test]
    fn checkpoints_written_before_decisions_existed_still_load() {
        let text = r#"{"offset":7,"clock":{"max_event_sec":100,"watermark":90},"idle_marks":[]}"#;
        let point: ReplayPoint = serde_json::from_str(text).unwrap();
        assert_eq!((point.read_until, point.decided.len()), (None, 0));
        assert_eq!(PartitionProgress::resume(&point).replayed_decision(7), None);
    }

    #[test]
    fn replay_points_survive_serialization() {
        let progress = read(&[(7, 100)]);
        let point = progress.replay_point(50);
        let text = serde_json::to_string(&point).unwrap();
        assert_eq!(serde_json::from_str::<ReplayPoint>(&text).unwrap(), point);
    }
}

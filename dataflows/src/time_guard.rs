//! Guards between a record's event time and its partition's clock (see `window`):
//!
//! - `future_time`: a record more than `max_future_secs` ahead of the wall clock is rejected
//!   and never touches the clock (`WindowPolicy::is_future`; `Ingest` applies it, because the
//!   wall clock enters as data and its decisions are recorded for replays, see `progress`).
//! - `time_outlier`: a record more than `max_time_jump_secs` ahead of its partition's newest
//!   event time opens a [`Hold`] instead of moving the clock. While it is open:
//!   - a record that is itself a jump and lands within `max_time_jump_secs` of the held
//!     candidate confirms it; after `time_jump_confirmations` of them the jump is real (a
//!     backfill gap, concatenated logs): the candidate is stamped, moving the clock, and
//!     the other held records and the confirming one are checked again in offset order;
//!   - any other record passes without confirming: one at the old time is processed
//!     normally, a jump elsewhere is held too; after `time_jump_patience` of them the
//!     candidate and its confirmers are rejected as `time_outlier`, and the other held
//!     records are checked again in offset order (one of them may open the next hold).
//!
//!   When the input ends (end of file, a drain on shutdown) or the partition goes idle, an
//!   open hold is decided by the rule that could not confirm it: every record it holds is
//!   rejected as `time_outlier`. That decision depends on where the input ended, not on the
//!   sequence, so it is recorded for replays like `future_time`.
//!
//! Everything here depends only on the partition's sequence and the policy, so a replay from
//! the hold's first record (the replay point is pinned there while it is open) repeats it.
//! A partition's first record has nothing to jump from and is never held.

use crate::progress::Pin;
use crate::window::{PartitionClock, Time, WindowPolicy};

/// A record kept by a hold: its message as received (decoding is pure, so it is decoded
/// again when released) and what was known when it was first seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub offset: i64,
    pub payload: Vec<u8>,
    pub event_sec: u64,
    /// The partition's clock when the record was first seen; a reject is written at its
    /// watermark, as a replay that repeats the reject there would.
    pub clock_before: PartitionClock,
    /// The event time until which its Filebeat identity is remembered (see `dedup`).
    pub remembered: Time,
}

/// A time jump waiting for later records to confirm or refute it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// Where every footprint goes until this is decided: the first held record and the clock
    /// before it, inherited from the hold whose decision re-checked the candidate.
    pub pin: Pin,
    candidate: Held,
    confirmers: Vec<Held>,
    /// Jumps that do not confirm the candidate.
    others: Vec<Held>,
    /// Records that passed without confirming.
    passed: u32,
}

/// What became of the record shown to [`observe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Not a jump: process it now.
    Pass,
    /// Taken by the hold (or by the resolution it caused).
    Held,
}

/// A hold decided by a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Stamp `candidate` (the clock jumps), then check `recheck` again, in offset order.
    Confirmed { pin: Pin, candidate: Held, recheck: Vec<Held> },
    /// Reject `rejected` as `time_outlier`, then check `recheck` again, in offset order.
    Refuted { pin: Pin, rejected: Vec<Held>, recheck: Vec<Held> },
}

impl Hold {
    /// The first offset held (every held offset is at or after it).
    pub fn first_offset(&self) -> i64 {
        self.candidate.offset
    }

    /// Every record held, in offset order: what the end of input rejects.
    pub fn into_held(self) -> Vec<Held> {
        let mut held = self.confirmers;
        held.push(self.candidate);
        held.extend(self.others);
        held.sort_by_key(|h| h.offset);
        held
    }

    fn refute(self) -> Resolution {
        let mut rejected = vec![self.candidate];
        rejected.extend(self.confirmers);
        Resolution::Refuted { pin: self.pin, rejected, recheck: self.others }
    }
}

/// Shows a record at `event_sec` to the partition's hold, given the partition's current
/// `clock`. `take` builds the held copy (only called if the record is held). A hold opened
/// now is pinned at `inherited`, else at the record itself.
pub fn observe(
    hold: &mut Option<Hold>,
    policy: &WindowPolicy,
    clock: &PartitionClock,
    event_sec: u64,
    inherited: Option<Pin>,
    take: impl FnOnce() -> Held,
) -> (Fate, Option<Resolution>) {
    let jump = policy.is_time_jump(clock, event_sec);
    let Some(open) = hold.as_mut() else {
        if !jump {
            return (Fate::Pass, None);
        }
        let candidate = take();
        let pin = inherited.unwrap_or((candidate.offset, candidate.clock_before));
        *hold = Some(Hold { pin, candidate, confirmers: Vec::new(), others: Vec::new(), passed: 0 });
        return (Fate::Held, None);
    };
    if jump && policy.confirms_jump(open.candidate.event_sec, event_sec) {
        if open.confirmers.len() + 1 < policy.time_jump_confirmations as usize {
            open.confirmers.push(take());
            return (Fate::Held, None);
        }
        let Hold { pin, candidate, mut confirmers, others, .. } = hold.take().expect("open");
        confirmers.extend(others);
        confirmers.push(take());
        confirmers.sort_by_key(|h| h.offset);
        return (Fate::Held, Some(Resolution::Confirmed { pin, candidate, recheck: confirmers }));
    }
    let fate = if jump {
        open.others.push(take());
        Fate::Held
    } else {
        Fate::Pass
    };
    (fate, pass_unconfirmed(hold, policy))
}

/// Counts a record that passed an open hold without confirming it (also one whose
/// `time_outlier` reject is replayed); refutes the hold once patience runs out.
pub fn pass_unconfirmed(hold: &mut Option<Hold>, policy: &WindowPolicy) -> Option<Resolution> {
    let open = hold.as_mut()?;
    open.passed += 1;
    if open.passed < policy.time_jump_patience {
        return None;
    }
    hold.take().map(Hold::refute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> WindowPolicy {
        WindowPolicy { max_time_jump_secs: 1000, time_jump_confirmations: 2, time_jump_patience: 3, ..Default::default() }
    }

    fn clock(max: u64) -> PartitionClock {
        PartitionClock { max_event_sec: Some(max), watermark: max - 10 }
    }

    fn held(offset: i64, event_sec: u64) -> Held {
        Held { offset, payload: offset.to_string().into_bytes(), event_sec, clock_before: clock(10_000), remembered: 0 }
    }

    /// Shows `(offset, event_sec)` records against a clock that stays at 10 000.
    fn show(hold: &mut Option<Hold>, records: &[(i64, u64)]) -> Vec<(Fate, Option<Resolution>)> {
        let p = policy();
        records.iter().map(|&(offset, sec)| observe(hold, &p, &clock(10_000), sec, None, || held(offset, sec))).collect()
    }

    #[test]
    fn records_at_the_clock_pass_and_a_jump_is_held() {
        let mut hold = None;
        let steps = show(&mut hold, &[(1, 10_500), (2, 11_000), (3, 11_001)]);
        assert_eq!(steps[0], (Fate::Pass, None));
        assert_eq!(steps[1], (Fate::Pass, None));
        assert_eq!(steps[2], (Fate::Held, None));
        let open = hold.unwrap();
        assert_eq!(open.pin, (3, clock(10_000)));
        assert_eq!(open.first_offset(), 3);
    }

    #[test]
    fn two_records_near_the_candidate_confirm_the_jump() {
        let mut hold = None;
        let steps = show(&mut hold, &[(1, 20_000), (2, 10_005), (3, 20_900), (4, 19_100)]);
        assert_eq!(steps[1], (Fate::Pass, None));
        assert_eq!(steps[2], (Fate::Held, None));
        let (fate, Some(Resolution::Confirmed { pin, candidate, recheck })) = steps[3].clone() else { panic!("{:?}", steps[3]) };
        assert_eq!(fate, Fate::Held);
        assert_eq!(pin.0, 1);
        assert_eq!(candidate.offset, 1);
        assert_eq!(recheck.iter().map(|h| h.offset).collect::<Vec<_>>(), vec![3, 4]);
        assert!(hold.is_none());
    }

    #[test]
    fn a_jump_nobody_follows_is_refuted_after_the_patience() {
        let mut hold = None;
        // 2: a confirmer; 3: a jump elsewhere (held, unconfirming); 4, 5: the old time.
        let steps = show(&mut hold, &[(1, 20_000), (2, 20_100), (3, 40_000), (4, 10_001), (5, 10_002)]);
        assert_eq!(steps[2], (Fate::Held, None));
        assert_eq!(steps[3], (Fate::Pass, None));
        let (fate, Some(Resolution::Refuted { pin, rejected, recheck })) = steps[4].clone() else { panic!("{:?}", steps[4]) };
        assert_eq!(fate, Fate::Pass);
        assert_eq!(pin.0, 1);
        assert_eq!(rejected.iter().map(|h| h.offset).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(recheck.iter().map(|h| h.offset).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn a_hold_opened_by_a_recheck_keeps_the_earlier_pin() {
        let p = policy();
        let mut hold = None;
        let pin = (1, clock(9_000));
        observe(&mut hold, &p, &clock(10_000), 40_000, Some(pin), || held(3, 40_000));
        assert_eq!(hold.as_ref().unwrap().pin, pin);
        assert_eq!(hold.unwrap().into_held().iter().map(|h| h.offset).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn the_first_record_of_a_partition_is_never_held() {
        let p = policy();
        let mut hold = None;
        let (fate, _) = observe(&mut hold, &p, &PartitionClock::default(), 4_000_000_000, None, || held(0, 4_000_000_000));
        assert_eq!(fate, Fate::Pass);
    }
}

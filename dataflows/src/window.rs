//! Time policy: how event time becomes timely time, when a window retires, and when a record
//! is too late. Every decision about time lives here, and it takes its clock as data (event
//! times, or an explicit `now` for idle partitions), so tests pin time exactly.
//!
//! Contract:
//! - Timely time = Unix seconds, aligned down to `tick_secs`.
//! - Each partition keeps a low watermark: `max event time seen − out_of_orderness`. A record
//!   is stamped `max(event time, watermark)` (aligned); its data keeps the true event time.
//!   The watermark depends only on the partition's own sequence, so a replay of the
//!   partition reproduces the same stamps.
//! - A window `[start, end)` retires at `end + allowed_lateness`. Windows are whole minutes
//!   (minute panes are the unit of state, see `panes`); state is dropped at retirement, so it
//!   holds only live windows.
//! - A record whose window retires at or before its stamp is too late: it could never be
//!   seen, so it is rejected (`too_late`) instead of being silently dropped.
//! - Idle partitions: a partition at the end of its log for `idle_timeout_secs` stops holding
//!   the frontier back: its watermark follows the wall clock (`now − out_of_orderness`, via
//!   `PartitionClock::advance_idle`), which also covers partitions that never had data. A
//!   record that arrives there later is stamped at that advanced watermark and may therefore
//!   be too late; that is the price of live results when one partition goes quiet, and it is
//!   counted and recorded, never silent. (In a live deployment event time tracks the wall
//!   clock, so only records delayed by more than the allowed lateness are affected.)
//! - Guards before the clock (see `time_guard`): a record more than `max_future_secs` ahead
//!   of the wall clock is rejected (`future_time`), and one more than `max_time_jump_secs`
//!   ahead of its partition's newest event time is held until later records confirm the
//!   jump or refute it (`time_outlier`), so one bad line cannot drag the watermark forward.

use serde::{Deserialize, Serialize};

/// Timely timestamps: Unix seconds aligned to the tick.
pub type Time = u64;

/// The window families the pipeline computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WindowKind {
    /// Tumbling one-minute windows: the minute series.
    Minute,
    /// Sliding windows of `sliding_window_secs`, one starting every `slide_secs`.
    Sliding,
    /// Tumbling five-minute windows: the bandwidth samples CDN bills are computed from.
    Sample5m,
}

/// Length of a billing bandwidth sample: 288 samples a day.
pub const SAMPLE_SECS: u64 = 300;

/// Validated window and watermark settings (see config/edgeflow.toml, `[window]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowPolicy {
    /// Granularity of timely time in seconds; coarser ticks mean fewer, larger epochs.
    pub tick_secs: u64,
    /// How far behind the newest record of a partition a record may be and still be stamped
    /// with its own event time.
    pub out_of_orderness_secs: u64,
    /// How long after its end a window still accepts corrections.
    pub allowed_lateness_secs: u64,
    /// After this long at the end of its log, a partition stops holding the frontier back.
    pub idle_timeout_secs: u64,
    /// Length of the sliding windows.
    pub sliding_window_secs: u64,
    /// A sliding window starts every `slide_secs`; must divide `sliding_window_secs`.
    pub slide_secs: u64,
    /// A record more than this far ahead of the wall clock is rejected as `future_time`.
    pub max_future_secs: u64,
    /// A record more than this far ahead of its partition's newest event time is a jump: it
    /// does not move the clock until confirmed.
    pub max_time_jump_secs: u64,
    /// Further records landing within `max_time_jump_secs` of a held jump that confirm it.
    pub time_jump_confirmations: u32,
    /// Records passing without confirmation after which a held jump is rejected.
    pub time_jump_patience: u32,
}

impl Default for WindowPolicy {
    fn default() -> Self {
        WindowPolicy {
            tick_secs: 1,
            out_of_orderness_secs: 1,
            allowed_lateness_secs: 60,
            idle_timeout_secs: 10,
            sliding_window_secs: 300,
            slide_secs: 60,
            max_future_secs: 300,
            max_time_jump_secs: 1800,
            time_jump_confirmations: 2,
            time_jump_patience: 16,
        }
    }
}

/// A window a record falls in, identified by its kind and start (Unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    pub kind: WindowKind,
    pub start: u64,
}

impl Window {
    pub fn end(&self, policy: &WindowPolicy) -> u64 {
        self.start + policy.length_secs(self.kind)
    }
}

impl WindowPolicy {
    /// Checks the settings; returns every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.tick_secs == 0 || 60 % self.tick_secs != 0 {
            problems.push(format!("window.tick_secs must divide 60, got {}", self.tick_secs));
        }
        if self.slide_secs == 0 || self.sliding_window_secs == 0 || self.sliding_window_secs % self.slide_secs != 0 {
            problems.push(format!(
                "window.slide_secs ({}) must be positive and divide window.sliding_window_secs ({})",
                self.slide_secs, self.sliding_window_secs
            ));
        } else if self.slide_secs % 60 != 0 {
            // Windows are assembled from minute panes (see `panes`).
            problems.push(format!("window.slide_secs must be a whole number of minutes, got {}", self.slide_secs));
        } else if self.sliding_window_secs / self.slide_secs > 60 {
            problems.push("window.sliding_window_secs / window.slide_secs must be at most 60 windows per record".to_string());
        }
        if self.idle_timeout_secs == 0 {
            problems.push("window.idle_timeout_secs must be at least 1".to_string());
        }
        // A jump threshold inside the out-of-orderness would hold ordinary disorder.
        if self.max_time_jump_secs <= self.out_of_orderness_secs {
            problems.push(format!(
                "window.max_time_jump_secs ({}) must exceed window.out_of_orderness_secs ({})",
                self.max_time_jump_secs, self.out_of_orderness_secs
            ));
        }
        if self.time_jump_confirmations == 0 || self.time_jump_patience == 0 {
            problems.push("window.time_jump_confirmations and window.time_jump_patience must be at least 1".to_string());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    pub fn length_secs(&self, kind: WindowKind) -> u64 {
        match kind {
            WindowKind::Minute => 60,
            WindowKind::Sliding => self.sliding_window_secs,
            WindowKind::Sample5m => SAMPLE_SECS,
        }
    }

    /// The windows of `kind` containing `event_sec`, oldest first.
    pub fn windows_of(&self, kind: WindowKind, event_sec: u64) -> impl Iterator<Item = Window> {
        let (len, step) = match kind {
            WindowKind::Sliding => (self.sliding_window_secs, self.slide_secs),
            _ => (self.length_secs(kind), self.length_secs(kind)),
        };
        // The latest window starting at or before the event, and those before it that still
        // cover it.
        let last = event_sec - event_sec % step;
        let count = len / step;
        (0..count).rev().filter_map(move |i| last.checked_sub(i * step)).map(move |start| Window { kind, start })
    }

    pub fn align(&self, secs: u64) -> Time {
        secs - secs % self.tick_secs
    }

    /// The time at which a window's contribution is retracted from the live state.
    pub fn retire_time(&self, window: &Window) -> Time {
        // Aligned up, so a window never retires before `end + lateness`.
        let t = window.end(self) + self.allowed_lateness_secs;
        t.div_ceil(self.tick_secs) * self.tick_secs
    }

    /// The first minute that is not final at `frontier`: every minute before it has retired,
    /// so no update can change it any more.
    pub fn first_open_minute(&self, frontier: Time) -> u64 {
        let retire_after_start = self.retire_time(&Window { kind: WindowKind::Minute, start: 0 });
        match frontier.checked_sub(retire_after_start) {
            Some(last_final) => (last_final / 60 + 1) * 60,
            None => 0,
        }
    }

    /// True if the window still accepts contributions stamped at `time`.
    pub fn is_live(&self, window: &Window, time: Time) -> bool {
        time < self.retire_time(window)
    }

    /// True if `event_sec` is more than `max_future_secs` ahead of the wall clock `now_sec`.
    pub fn is_future(&self, event_sec: u64, now_sec: u64) -> bool {
        event_sec > now_sec.saturating_add(self.max_future_secs)
    }

    /// True if `event_sec` is more than `max_time_jump_secs` ahead of the newest event time of
    /// the partition; never for its first record, which has nothing to jump from.
    pub fn is_time_jump(&self, clock: &PartitionClock, event_sec: u64) -> bool {
        clock.max_event_sec.is_some_and(|max| event_sec > max.saturating_add(self.max_time_jump_secs))
    }

    /// True if `event_sec` lands within `max_time_jump_secs` of a held jump to `candidate_sec`.
    pub fn confirms_jump(&self, candidate_sec: u64, event_sec: u64) -> bool {
        event_sec.abs_diff(candidate_sec) <= self.max_time_jump_secs
    }
}

/// Watermark state of one partition: everything needed to reproduce its time assignment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionClock {
    /// Newest event second seen on the partition.
    pub max_event_sec: Option<u64>,
    /// Low watermark (aligned): no record of this partition is stamped below it.
    pub watermark: Time,
}

impl PartitionClock {
    /// Stamps a record with event time `event_sec`, then advances the watermark.
    pub fn stamp(&mut self, event_sec: u64, policy: &WindowPolicy) -> Time {
        let time = policy.align(event_sec.max(self.watermark));
        let max = self.max_event_sec.map_or(event_sec, |m| m.max(event_sec));
        self.max_event_sec = Some(max);
        let candidate = policy.align(max.saturating_sub(policy.out_of_orderness_secs));
        self.watermark = self.watermark.max(candidate);
        time
    }

    /// Moves the watermark of an idle partition forward to `to` (never backwards).
    pub fn advance_idle(&mut self, to: Time, policy: &WindowPolicy) {
        self.watermark = self.watermark.max(policy.align(to));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> WindowPolicy {
        WindowPolicy { tick_secs: 1, out_of_orderness_secs: 10, allowed_lateness_secs: 30, idle_timeout_secs: 5, ..Default::default() }
    }

    fn minute(sec: u64) -> Window {
        policy().windows_of(WindowKind::Minute, sec).next().unwrap()
    }

    #[test]
    fn minute_window_contains_its_seconds() {
        let p = policy();
        let w = minute(1_000_059);
        assert_eq!(w.start, 1_000_020);
        assert_eq!(w.end(&p), 1_000_080);
        assert_eq!(minute(1_000_080).start, 1_000_080);
        assert_eq!(p.windows_of(WindowKind::Minute, 5).count(), 1);
    }

    #[test]
    fn sliding_windows_cover_the_record() {
        let p = policy();
        let starts: Vec<u64> = p.windows_of(WindowKind::Sliding, 1_000_030).map(|w| w.start).collect();
        assert_eq!(starts, vec![999_780, 999_840, 999_900, 999_960, 1_000_020]);
        for start in starts {
            assert!(start <= 1_000_030 && 1_000_030 < start + 300);
        }
        // Near the epoch, windows that would start before 0 do not exist.
        assert_eq!(p.windows_of(WindowKind::Sliding, 90).count(), 2);
        let samples: Vec<u64> = p.windows_of(WindowKind::Sample5m, 1_000_030).map(|w| w.start).collect();
        assert_eq!(samples, vec![999_900]);
    }

    #[test]
    fn sliding_settings_are_validated() {
        assert!(WindowPolicy { slide_secs: 70, ..policy() }.validate().is_err());
        assert!(WindowPolicy { slide_secs: 0, ..policy() }.validate().is_err());
        assert!(WindowPolicy { sliding_window_secs: 600, slide_secs: 60, ..policy() }.validate().is_ok());
    }

    #[test]
    fn in_order_records_keep_their_event_time() {
        let p = policy();
        let mut clock = PartitionClock::default();
        assert_eq!(clock.stamp(1000, &p), 1000);
        assert_eq!(clock.watermark, 990);
        assert_eq!(clock.stamp(1005, &p), 1005);
        assert_eq!(clock.watermark, 995);
    }

    #[test]
    fn records_behind_the_watermark_are_stamped_at_it() {
        let p = policy();
        let mut clock = PartitionClock::default();
        clock.stamp(1000, &p);
        // Within the out-of-orderness: own time.
        assert_eq!(clock.stamp(992, &p), 992);
        // Behind the watermark: clamped, and the watermark does not move back.
        assert_eq!(clock.stamp(900, &p), 990);
        assert_eq!(clock.watermark, 990);
    }

    #[test]
    fn retirement_and_liveness() {
        let p = policy();
        let w = minute(960); // [960, 1020)
        assert_eq!(p.retire_time(&w), 1050);
        assert!(p.is_live(&w, 1049));
        assert!(!p.is_live(&w, 1050));
    }

    #[test]
    fn coarse_ticks_align_down_and_retire_up() {
        let p = WindowPolicy { tick_secs: 20, out_of_orderness_secs: 0, allowed_lateness_secs: 5, ..policy() };
        let mut clock = PartitionClock::default();
        assert_eq!(clock.stamp(1019, &p), 1000);
        let w = minute(960);
        assert_eq!(p.retire_time(&w), 1040);
        assert!(p.validate().is_ok());
        assert!(WindowPolicy { tick_secs: 7, ..p }.validate().is_err());
    }

    #[test]
    fn replaying_a_partition_reproduces_its_stamps() {
        let p = policy();
        let events = [1000, 995, 1020, 1003, 1050, 1010, 1049, 1100, 1001];
        let run = || {
            let mut clock = PartitionClock::default();
            events.iter().map(|&e| clock.stamp(e, &p)).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        assert_eq!(run(), vec![1000, 995, 1020, 1010, 1050, 1040, 1049, 1100, 1090]);
    }

    #[test]
    fn minutes_are_final_once_retired() {
        let p = policy();
        // Minute 960 retires at 960 + 60 + 30 = 1050.
        assert_eq!(p.first_open_minute(1049), 960);
        assert_eq!(p.first_open_minute(1050), 1020);
        assert_eq!(p.first_open_minute(10), 0);
    }

    #[test]
    fn future_and_jump_thresholds_are_exclusive() {
        let p = WindowPolicy { max_future_secs: 300, max_time_jump_secs: 1800, ..policy() };
        assert!(!p.is_future(1300, 1000));
        assert!(p.is_future(1301, 1000));
        let mut clock = PartitionClock::default();
        assert!(!p.is_time_jump(&clock, u64::MAX), "a first record has nothing to jump from");
        clock.stamp(1000, &p);
        assert!(!p.is_time_jump(&clock, 2800));
        assert!(p.is_time_jump(&clock, 2801));
        assert!(p.confirms_jump(5000, 3200) && p.confirms_jump(5000, 6800));
        assert!(!p.confirms_jump(5000, 6801));
    }

    #[test]
    fn jump_settings_are_validated() {
        assert!(policy().validate().is_ok());
        assert!(WindowPolicy { max_time_jump_secs: 10, ..policy() }.validate().is_err());
        assert!(WindowPolicy { time_jump_confirmations: 0, ..policy() }.validate().is_err());
        assert!(WindowPolicy { time_jump_patience: 0, ..policy() }.validate().is_err());
    }

    #[test]
    fn idle_advance_never_moves_back() {
        let p = policy();
        let mut clock = PartitionClock::default();
        clock.stamp(1000, &p);
        clock.advance_idle(980, &p);
        assert_eq!(clock.watermark, 990);
        clock.advance_idle(2000, &p);
        assert_eq!(clock.watermark, 2000);
        // A record arriving after the idle advance is stamped at the advanced watermark.
        assert_eq!(clock.stamp(1500, &p), 2000);
    }
}

//! From differential updates to the rows a sink writes: absolute values per key, per closed
//! epoch.
//!
//! Contract: `push` takes updates `(key, time, diff)` in any order; `close(frontier)` applies
//! every update at a time strictly before `frontier`, in time order, and returns the keys
//! whose value changed as upserts of their new absolute value, plus deletes for keys that
//! truly vanished. Once `frontier` has passed a key's retirement time the key can change no
//! more (the window engines emit nothing for a retired window): it leaves memory and its
//! last value stays in the table. A retraction at or after the retirement time (the
//! differential idiom for leaving a window) is likewise not a deletion.
//!
//! Two kinds of outputs: additive ones (the diff is the value: `Sum`), and summaries (top
//! clients, percentiles, busiest second) whose data carries the value with a count of ±1 as
//! it changes (`Latest`): the window engines retract the old value and insert the new one.

use std::collections::BTreeMap;

use differential_dataflow::difference::Monoid;
use smallvec::SmallVec;

use crate::window::Time;

/// Changed keys of one or more closed epochs: `Some(value)` to upsert, `None` to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes<K, V>(pub BTreeMap<K, Option<V>>);

impl<K, V> Default for Changes<K, V> {
    fn default() -> Self {
        Changes(BTreeMap::new())
    }
}

impl<K: Ord, V> Changes<K, V> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Folds in the changes of later epochs: the later state of a key wins.
    pub fn merge(&mut self, later: Changes<K, V>) {
        self.0.extend(later.0);
    }

    pub fn upserts(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }

    pub fn deletes(&self) -> impl Iterator<Item = &K> {
        self.0.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k)
    }
}

/// How a key's updates accumulate into its value.
pub trait Accumulator: Default {
    type Diff;
    type Value: Clone;
    fn apply(&mut self, diff: Self::Diff);
    /// The current value; `None` when the key has no contribution left.
    fn value(&self) -> Option<Self::Value>;
    /// True when nothing is held: not even a retraction waiting for its insertion.
    fn is_empty(&self) -> bool;
}

/// Additive outputs: the value is the sum of the diffs.
#[derive(Default)]
pub struct Sum<R>(R);

impl<R: Monoid + Clone + Default> Accumulator for Sum<R> {
    type Diff = R;
    type Value = R;
    fn apply(&mut self, diff: R) {
        self.0.plus_equals(&diff);
    }
    fn value(&self) -> Option<R> {
        (!self.0.is_zero()).then(|| self.0.clone())
    }
    fn is_empty(&self) -> bool {
        self.0.is_zero()
    }
}

/// Summary outputs: data `(key, value)` with counts; the value is the one present. A key
/// holds one value at rest and two or three during a change, so a short list compared by
/// equality beats an ordered map compared field by field.
pub struct Latest<V>(SmallVec<[(V, i64); 2]>);

impl<V> Default for Latest<V> {
    fn default() -> Self {
        Latest(SmallVec::new())
    }
}

impl<V: PartialEq + Clone> Accumulator for Latest<V> {
    type Diff = (V, i64);
    type Value = V;
    fn apply(&mut self, (value, count): (V, i64)) {
        match self.0.iter().position(|(v, _)| *v == value) {
            Some(at) => {
                self.0[at].1 += count;
                if self.0[at].1 == 0 {
                    self.0.swap_remove(at);
                }
            }
            None => self.0.push((value, count)),
        }
    }
    fn value(&self) -> Option<V> {
        // One value per key is present; during a change both may be pending in one
        // epoch, but after consolidation only the new one has a positive count.
        self.0.iter().find(|(_, c)| *c > 0).map(|(v, _)| v.clone())
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Absolute values of the live keys, and updates waiting for their epoch to close.
pub struct Materializer<K, A: Accumulator, F> {
    values: BTreeMap<K, A>,
    pending: BTreeMap<Time, Vec<(K, A::Diff)>>,
    retire_time: F,
}

impl<K, A, F> Materializer<K, A, F>
where
    K: Ord + Clone,
    A: Accumulator,
    F: Fn(&K) -> Time,
{
    /// `retire_time(key)` is when the key's window retires (see `window::WindowPolicy`).
    pub fn new(retire_time: F) -> Self {
        Materializer { values: BTreeMap::new(), pending: BTreeMap::new(), retire_time }
    }

    pub fn push(&mut self, key: K, time: Time, diff: A::Diff) {
        self.pending.entry(time).or_default().push((key, diff));
    }

    /// Number of live keys held.
    pub fn live_keys(&self) -> usize {
        self.values.len()
    }

    /// Number of updates waiting for their epoch to close.
    pub fn pending_updates(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }

    /// The least time with pending updates.
    pub fn earliest_pending(&self) -> Option<Time> {
        self.pending.keys().next().copied()
    }

    /// Applies all updates at times before `frontier` (`None`: the input is complete) and
    /// returns what changed.
    pub fn close(&mut self, frontier: Option<Time>) -> Changes<K, A::Value> {
        let mut dirty: BTreeMap<K, ()> = BTreeMap::new();
        let mut changes = Changes::default();
        let closed: Vec<Time> = self.pending.keys().copied().take_while(|t| frontier.is_none_or(|f| *t < f)).collect();
        for time in closed {
            for (key, diff) in self.pending.remove(&time).unwrap_or_default() {
                let retiring = time >= (self.retire_time)(&key);
                if retiring && dirty.remove(&key).is_some() {
                    // The retirement retraction: keep the last value if it is still unwritten.
                    if let Some(value) = self.values.get(&key).and_then(A::value) {
                        changes.0.insert(key.clone(), Some(value));
                    }
                }
                let state = self.values.entry(key.clone()).or_default();
                state.apply(diff);
                if state.is_empty() {
                    self.values.remove(&key);
                }
                if !retiring {
                    dirty.insert(key, ());
                }
            }
        }
        for (key, ()) in dirty {
            let value = self.values.get(&key).and_then(A::value);
            changes.0.insert(key, value);
        }
        let retire_time = &self.retire_time;
        self.values.retain(|key, _| frontier.is_some_and(|f| retire_time(key) > f));
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Keys are (name, retire time) so the tests control retirement directly.
    type Key = (&'static str, Time);
    fn retire(key: &Key) -> Time {
        key.1
    }
    fn sums() -> Materializer<Key, Sum<i64>, fn(&Key) -> Time> {
        Materializer::new(retire)
    }
    fn upserts<V: Clone>(changes: &Changes<Key, V>) -> Vec<(Key, V)> {
        changes.upserts().map(|(k, v)| (*k, v.clone())).collect()
    }

    #[test]
    fn upserts_absolute_values_of_closed_epochs_only() {
        let mut m = sums();
        m.push(("a", 100), 10, 2);
        m.push(("a", 100), 11, 3);
        m.push(("b", 100), 12, 1);
        let changes = m.close(Some(12));
        assert_eq!(upserts(&changes), vec![(("a", 100), 5)]);
        assert_eq!(changes.deletes().count(), 0);
        assert_eq!(upserts(&m.close(Some(13))), vec![(("b", 100), 1)]);
        m.push(("a", 100), 20, -1);
        assert_eq!(upserts(&m.close(Some(21))), vec![(("a", 100), 4)]);
    }

    #[test]
    fn retirement_keeps_the_last_value_and_frees_the_key() {
        let mut m = sums();
        m.push(("a", 50), 10, 4);
        assert_eq!(upserts(&m.close(Some(11))), vec![(("a", 50), 4)]);
        m.push(("a", 50), 50, -4);
        let changes = m.close(Some(51));
        assert!(changes.is_empty(), "retirement is not a change: {changes:?}");
        assert_eq!(m.live_keys(), 0);
    }

    #[test]
    fn a_window_born_and_retired_in_one_batch_is_still_written() {
        let mut m = sums();
        m.push(("a", 50), 10, 4);
        m.push(("a", 50), 20, 1);
        m.push(("a", 50), 50, -5);
        assert_eq!(upserts(&m.close(None)), vec![(("a", 50), 5)]);
        assert_eq!(m.live_keys(), 0);
    }

    #[test]
    fn keys_leave_memory_once_the_frontier_passes_their_retirement() {
        let mut m = sums();
        m.push(("a", 50), 10, 4);
        m.push(("b", 80), 10, 1);
        assert_eq!(upserts(&m.close(Some(50))), vec![(("a", 50), 4), (("b", 80), 1)]);
        assert_eq!(m.live_keys(), 1);
        assert!(m.close(Some(81)).is_empty());
        assert_eq!(m.live_keys(), 0);
    }

    #[test]
    fn a_value_returning_to_zero_before_retirement_is_deleted() {
        let mut m = sums();
        m.push(("a", 50), 10, 1);
        m.close(Some(11));
        m.push(("a", 50), 12, -1);
        let changes = m.close(Some(13));
        assert_eq!(changes.deletes().collect::<Vec<_>>(), vec![&("a", 50)]);
        assert_eq!(changes.upserts().count(), 0);
    }

    #[test]
    fn updates_arriving_out_of_time_order_are_applied_in_order() {
        let mut m = sums();
        m.push(("a", 50), 30, -3);
        m.push(("a", 50), 10, 3);
        m.push(("a", 50), 40, 7);
        assert_eq!(m.earliest_pending(), Some(10));
        assert_eq!(upserts(&m.close(Some(41))), vec![(("a", 50), 7)]);
    }

    #[test]
    fn reduce_outputs_track_the_present_value() {
        let mut m: Materializer<Key, Latest<&'static str>, fn(&Key) -> Time> = Materializer::new(retire);
        m.push(("a", 50), 10, ("first", 1));
        assert_eq!(upserts(&m.close(Some(11))), vec![(("a", 50), "first")]);
        m.push(("a", 50), 12, ("first", -1));
        m.push(("a", 50), 12, ("second", 1));
        assert_eq!(upserts(&m.close(Some(13))), vec![(("a", 50), "second")]);
        m.push(("a", 50), 50, ("second", -1));
        assert!(m.close(Some(51)).is_empty());
        assert_eq!(m.live_keys(), 0);
    }

    #[test]
    fn a_retraction_applied_before_its_insertion_is_kept() {
        let mut m: Materializer<Key, Latest<&'static str>, fn(&Key) -> Time> = Materializer::new(retire);
        // Emitted out of time order: "first" at 20, then replaced by "second" at 10.
        m.push(("a", 50), 20, ("first", 1));
        m.push(("a", 50), 10, ("first", -1));
        m.push(("a", 50), 10, ("second", 1));
        assert_eq!(upserts(&m.close(Some(11))), vec![(("a", 50), "second")]);
        assert_eq!(upserts(&m.close(Some(21))), vec![(("a", 50), "second")]);
    }

    #[test]
    fn later_changes_win_when_merged() {
        let mut first: Changes<Key, i64> = Changes::default();
        first.0.insert(("a", 1), Some(1));
        first.0.insert(("b", 1), Some(2));
        let mut later = Changes::default();
        later.0.insert(("a", 1), None);
        first.merge(later);
        assert_eq!(first.0.get(&("a", 1)), Some(&None));
        assert_eq!(first.0.get(&("b", 1)), Some(&Some(2)));
    }
}

//! From differential updates to the rows a sink writes: absolute values per key, per closed
//! epoch.
//!
//! Contract: `push` takes updates `(key, time, diff)` in any order; `close(frontier)` applies
//! every update at a time strictly before `frontier`, in time
//! order, and returns the keys whose value changed as upserts of their new absolute value,
//! plus deletes for keys that truly vanished. A key's retraction at its window's retirement
//! time is not a deletion: the last value stays in the table and the key leaves memory.
//! When one batch holds both a window's last changes and its retirement, the value just
//! before retirement is what gets written.

use std::collections::BTreeMap;

use differential_dataflow::difference::Monoid;

use crate::window::Time;

/// The changes of one or more closed epochs, ready for one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes<K, R> {
    /// Keys whose absolute value changed, with that value, in key order.
    pub upserts: Vec<(K, R)>,
    /// Keys whose value returned to zero before their retirement.
    pub deletes: Vec<K>,
}

impl<K, R> Default for Changes<K, R> {
    fn default() -> Self {
        Changes { upserts: Vec::new(), deletes: Vec::new() }
    }
}

impl<K, R> Changes<K, R> {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }
}

/// Absolute values of the live keys, and updates waiting for their epoch to close.
pub struct Materializer<K, R, F> {
    values: BTreeMap<K, R>,
    pending: BTreeMap<Time, Vec<(K, R)>>,
    retire_time: F,
}

impl<K, R, F> Materializer<K, R, F>
where
    K: Ord + Clone,
    R: Monoid + Clone,
    F: Fn(&K) -> Time,
{
    /// `retire_time(key)` is when the key's window retires (see `window::WindowPolicy`).
    pub fn new(retire_time: F) -> Self {
        Materializer { values: BTreeMap::new(), pending: BTreeMap::new(), retire_time }
    }

    pub fn push(&mut self, key: K, time: Time, diff: R) {
        self.pending.entry(time).or_default().push((key, diff));
    }

    /// Number of live keys held.
    pub fn live_keys(&self) -> usize {
        self.values.len()
    }

    /// The least time with pending updates.
    pub fn earliest_pending(&self) -> Option<Time> {
        self.pending.keys().next().copied()
    }

    /// Applies all updates at times before `frontier` (`None`: the input is complete) and
    /// returns what changed.
    pub fn close(&mut self, frontier: Option<Time>) -> Changes<K, R> {
        let mut dirty: BTreeMap<K, ()> = BTreeMap::new();
        let mut retired_values: BTreeMap<K, R> = BTreeMap::new();
        let closed: Vec<Time> = self.pending.keys().copied().take_while(|t| frontier.is_none_or(|f| *t < f)).collect();
        for time in closed {
            let updates = self.pending.remove(&time).unwrap_or_default();
            for (key, diff) in updates {
                let retiring = time >= (self.retire_time)(&key);
                if retiring {
                    // The retirement retraction: keep the last value if it is still unwritten.
                    if dirty.remove(&key).is_some() {
                        if let Some(value) = self.values.get(&key) {
                            retired_values.insert(key.clone(), value.clone());
                        }
                    }
                }
                let value = self.values.entry(key.clone()).or_insert_with(R::zero);
                value.plus_equals(&diff);
                if value.is_zero() {
                    self.values.remove(&key);
                }
                if !retiring {
                    dirty.insert(key, ());
                }
            }
        }
        let mut changes = Changes::default();
        let mut upserts: BTreeMap<K, R> = retired_values;
        for (key, ()) in dirty {
            match self.values.get(&key) {
                Some(value) => {
                    upserts.insert(key, value.clone());
                }
                None => changes.deletes.push(key),
            }
        }
        changes.upserts = upserts.into_iter().collect();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Keys are (name, retire time) so the test controls retirement directly.
    fn materializer() -> Materializer<(&'static str, Time), i64, fn(&(&'static str, Time)) -> Time> {
        Materializer::new(|key: &(&'static str, Time)| key.1)
    }

    #[test]
    fn upserts_absolute_values_of_closed_epochs_only() {
        let mut m = materializer();
        m.push(("a", 100), 10, 2);
        m.push(("a", 100), 11, 3);
        m.push(("b", 100), 12, 1);
        let changes = m.close(Some(12));
        assert_eq!(changes.upserts, vec![(("a", 100), 5)]);
        assert!(changes.deletes.is_empty());
        let changes = m.close(Some(13));
        assert_eq!(changes.upserts, vec![(("b", 100), 1)]);
        m.push(("a", 100), 20, -1);
        assert_eq!(m.close(Some(21)).upserts, vec![(("a", 100), 4)]);
    }

    #[test]
    fn retirement_keeps_the_last_value_and_frees_the_key() {
        let mut m = materializer();
        m.push(("a", 50), 10, 4);
        assert_eq!(m.close(Some(11)).upserts, vec![(("a", 50), 4)]);
        m.push(("a", 50), 50, -4);
        let changes = m.close(Some(51));
        assert!(changes.is_empty(), "retirement is not a change: {changes:?}");
        assert_eq!(m.live_keys(), 0);
    }

    #[test]
    fn a_window_born_and_retired_in_one_batch_is_still_written() {
        let mut m = materializer();
        m.push(("a", 50), 10, 4);
        m.push(("a", 50), 20, 1);
        m.push(("a", 50), 50, -5);
        let changes = m.close(None);
        assert_eq!(changes.upserts, vec![(("a", 50), 5)]);
        assert_eq!(m.live_keys(), 0);
    }

    #[test]
    fn a_value_returning_to_zero_before_retirement_is_deleted() {
        let mut m = materializer();
        m.push(("a", 50), 10, 1);
        m.close(Some(11));
        m.push(("a", 50), 12, -1);
        let changes = m.close(Some(13));
        assert_eq!(changes.deletes, vec![("a", 50)]);
        assert!(changes.upserts.is_empty());
    }

    #[test]
    fn updates_arriving_out_of_time_order_are_applied_in_order() {
        let mut m = materializer();
        m.push(("a", 50), 30, -3);
        m.push(("a", 50), 10, 3);
        m.push(("a", 50), 40, 7);
        assert_eq!(m.earliest_pending(), Some(10));
        assert_eq!(m.close(Some(41)).upserts, vec![(("a", 50), 7)]);
    }
}

//! The per-worker local combine before the exchange: records fold into one delta per
//! (cell, time), so differential sees deltas per key rather than per line.
//!
//! Cells are keyed by small `Copy` keys with the domain interned to an id, so adding a record
//! whose cells exist allocates nothing and hashes a few words. Ids are local to a worker and
//! never leave it: `drain` turns them back into domain names.

use std::collections::HashMap;
use std::hash::Hash;

use differential_dataflow::difference::Semigroup;
use rustc_hash::FxBuildHasher;

use crate::window::Time;

/// A worker-local id of a domain name.
pub type DomainId = u32;

/// Interns domain names. Cleared whenever the cells are empty and it has grown past
/// `MAX_INTERNED`, so hostile Host headers cannot grow it without bound.
#[derive(Default)]
pub struct Interner {
    ids: HashMap<Box<str>, DomainId, FxBuildHasher>,
    names: Vec<Box<str>>,
}

const MAX_INTERNED: usize = 100_000;

impl Interner {
    pub fn id(&mut self, name: &str) -> DomainId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as DomainId;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub fn name(&self, id: DomainId) -> &str {
        &self.names[id as usize]
    }

    /// Forgets every id; only call when no cell refers to one.
    pub fn clear_if_large(&mut self) {
        if self.names.len() > MAX_INTERNED {
            self.ids.clear();
            self.names.clear();
        }
    }
}

/// Deltas per (cell, time).
pub struct Cells<K, R> {
    cells: HashMap<(K, Time), R, FxBuildHasher>,
}

impl<K, R> Default for Cells<K, R> {
    fn default() -> Self {
        Cells { cells: HashMap::default() }
    }
}

impl<K: Hash + Eq + Copy, R: Semigroup + Copy> Cells<K, R> {
    pub fn add(&mut self, key: K, time: Time, delta: R) {
        match self.cells.get_mut(&(key, time)) {
            Some(cell) => cell.plus_equals(&delta),
            None => {
                self.cells.insert((key, time), delta);
            }
        }
    }

    /// Adds `delta` at `time` and its retraction at `retire`: the delayed retraction that
    /// keeps state bounded by the live windows.
    pub fn add_until(&mut self, key: K, time: Time, retire: Time, delta: R, negated: R) {
        self.add(key, time, delta);
        self.add(key, retire, negated);
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Moves the non-zero deltas out, converting keys with `owned`.
    pub fn drain<O>(&mut self, mut owned: impl FnMut(K) -> O, out: &mut Vec<(O, Time, R)>) {
        for ((key, time), delta) in self.cells.drain() {
            if !delta.is_zero() {
                out.push((owned(key), time, delta));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_fold_per_key_and_time_and_drop_zeros() {
        let mut cells: Cells<(u32, u16), i64> = Cells::default();
        cells.add((1, 200), 10, 1);
        cells.add((1, 200), 10, 2);
        cells.add((1, 200), 11, 1);
        cells.add_until((2, 404), 10, 70, 1, -1);
        cells.add((3, 500), 10, 1);
        cells.add((3, 500), 10, -1);
        assert_eq!(cells.len(), 5);
        let mut out = Vec::new();
        cells.drain(|(d, s)| format!("{d}:{s}"), &mut out);
        out.sort();
        assert_eq!(
            out,
            vec![("1:200".to_string(), 10, 3), ("1:200".to_string(), 11, 1), ("2:404".to_string(), 10, 1), ("2:404".to_string(), 70, -1)]
        );
        assert!(cells.is_empty());
    }

    #[test]
    fn interner_round_trips_and_resets() {
        let mut interner = Interner::default();
        let a = interner.id("a.example");
        let b = interner.id("b.example");
        assert_ne!(a, b);
        assert_eq!(interner.id("a.example"), a);
        assert_eq!(interner.name(b), "b.example");
        interner.clear_if_large();
        assert_eq!(interner.name(a), "a.example");
    }
}

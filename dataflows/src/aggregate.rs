//! Aggregates that form a commutative group and therefore ride inside differential's
//! difference type: adding two `Traffic` values is merging two sets of lines, negating one is
//! retracting them. This keeps the per-(domain, window) totals incremental without a
//! per-record allocation or a `reduce`.
//!
//! `LocalCombiner` is the per-worker pre-aggregation before the exchange: it folds records
//! into one delta per (key, time), so differential sees deltas per key, not per line.

use std::collections::HashMap;

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Semigroup};
use serde::{Deserialize, Serialize};

use crate::key::DomainWindow;
use crate::record::CleanRecord;
use crate::window::{Time, Window};

/// Request and byte totals of a set of lines. Signed, because a retraction is a negative set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Traffic {
    pub requests: i64,
    /// Response bytes (see `CleanRecord::bytes`).
    pub bytes: i64,
    /// Requests by status class: index 0 is 1xx, 1 is 2xx, … 4 is 5xx.
    pub status_class: [i64; 5],
}

impl Traffic {
    pub fn of(record: &CleanRecord<'_>) -> Traffic {
        let mut status_class = [0; 5];
        // Cleaning guarantees 100..=599.
        let class = usize::from(record.status / 100).clamp(1, 5) - 1;
        status_class[class] = 1;
        Traffic { requests: 1, bytes: i64::try_from(record.bytes).unwrap_or(i64::MAX), status_class }
    }

    pub fn negated(mut self) -> Traffic {
        self.negate();
        self
    }
}

impl IsZero for Traffic {
    fn is_zero(&self) -> bool {
        *self == Traffic::default()
    }
}

impl Semigroup for Traffic {
    fn plus_equals(&mut self, rhs: &Self) {
        self.requests += rhs.requests;
        self.bytes += rhs.bytes;
        for (mine, theirs) in self.status_class.iter_mut().zip(rhs.status_class.iter()) {
            *mine += theirs;
        }
    }
}

impl Monoid for Traffic {
    fn zero() -> Self {
        Traffic::default()
    }
}

impl Abelian for Traffic {
    fn negate(&mut self) {
        self.requests = -self.requests;
        self.bytes = -self.bytes;
        for count in self.status_class.iter_mut() {
            *count = -*count;
        }
    }
}

/// Folds records into one `Traffic` delta per (domain, window, time) between drains.
///
/// Domains are looked up by `&str`, so a record for a domain already in the map allocates
/// nothing. The outer map keeps its domain strings across drains (they recur), and forgets
/// those idle for a whole drain so memory follows the live key set.
#[derive(Default)]
pub struct LocalCombiner {
    by_domain: HashMap<String, DomainCells>,
    pending: usize,
}

#[derive(Default)]
struct DomainCells {
    cells: HashMap<(Window, Time), Traffic>,
    idle_drains: u32,
}

impl LocalCombiner {
    /// Adds `delta` to the cell (domain, window) at `time`.
    pub fn add(&mut self, domain: &str, window: Window, time: Time, delta: Traffic) {
        let cells = match self.by_domain.get_mut(domain) {
            Some(cells) => cells,
            None => self.by_domain.entry(domain.to_owned()).or_default(),
        };
        let cell = cells.cells.entry((window, time)).or_insert_with(|| {
            self.pending += 1;
            Traffic::default()
        });
        cell.plus_equals(&delta);
    }

    /// Number of distinct (key, time) cells waiting to be drained.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Moves every non-zero delta into `out` as differential updates `(key, time, diff)`.
    pub fn drain_into(&mut self, out: &mut Vec<(DomainWindow, Time, Traffic)>) {
        self.by_domain.retain(|domain, cells| {
            if cells.cells.is_empty() {
                cells.idle_drains += 1;
                return cells.idle_drains < 2;
            }
            cells.idle_drains = 0;
            for ((window, time), diff) in cells.cells.drain() {
                if !diff.is_zero() {
                    out.push((DomainWindow { domain: domain.clone(), window }, time, diff));
                }
            }
            true
        });
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowKind;

    fn traffic(requests: i64, bytes: i64, class: usize) -> Traffic {
        let mut status_class = [0; 5];
        status_class[class] = requests;
        Traffic { requests, bytes, status_class }
    }

    #[test]
    fn traffic_is_an_abelian_group() {
        let a = traffic(1, 100, 1);
        let b = traffic(2, 50, 3);
        let mut sum = a;
        sum.plus_equals(&b);
        assert_eq!(sum, Traffic { requests: 3, bytes: 150, status_class: [0, 1, 0, 2, 0] });
        let mut back = sum;
        back.plus_equals(&b.negated());
        assert_eq!(back, a);
        let mut zero = a;
        zero.plus_equals(&a.negated());
        assert!(zero.is_zero());
    }

    #[test]
    fn combiner_folds_per_key_and_time() {
        let w = WindowKind::Minute.containing(120);
        let mut combiner = LocalCombiner::default();
        combiner.add("a.example", w, 120, traffic(1, 10, 1));
        combiner.add("a.example", w, 120, traffic(1, 5, 3));
        combiner.add("a.example", w, 121, traffic(1, 7, 1));
        combiner.add("b.example", w, 120, traffic(1, 1, 4));
        assert_eq!(combiner.pending(), 3);
        let mut out = Vec::new();
        combiner.drain_into(&mut out);
        out.sort();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].0.domain, "a.example");
        assert_eq!(out[0].1, 120);
        assert_eq!(out[0].2, Traffic { requests: 2, bytes: 15, status_class: [0, 1, 0, 1, 0] });
        assert_eq!(out[1].1, 121);
        assert_eq!(out[2].0.domain, "b.example");
        assert_eq!(combiner.pending(), 0);
    }

    #[test]
    fn combiner_drops_cancelled_cells_and_forgets_idle_domains() {
        let w = WindowKind::Minute.containing(0);
        let mut combiner = LocalCombiner::default();
        combiner.add("a.example", w, 0, traffic(1, 10, 1));
        combiner.add("a.example", w, 0, traffic(1, 10, 1).negated());
        let mut out = Vec::new();
        combiner.drain_into(&mut out);
        assert!(out.is_empty());
        combiner.drain_into(&mut out);
        combiner.drain_into(&mut out);
        assert!(combiner.by_domain.is_empty());
    }
}

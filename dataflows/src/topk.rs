//! Incremental top-k for counts that only grow.
//!
//! Inside a live window a client's requests and bytes only ever increase (records are never
//! retracted from a window; a record too late for a window is rejected, not subtracted), so
//! the k largest are maintained exactly with O(k) work per change: a client outside the
//! ranking can only enter it through its own increase, which is exactly when it is offered.
//! Ties rank by address, ascending, so the result does not depend on arrival order (the same
//! order as `aggregate::top_clients`, the batch definition).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::aggregate::RankedClient;

/// Which of a client's totals ranks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankBy {
    Requests,
    Bytes,
}

/// The `k` largest clients by one metric, best first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopK {
    ranked: Vec<RankedClient>,
}

impl TopK {
    fn metric(by: RankBy, client: &RankedClient) -> u64 {
        match by {
            RankBy::Requests => client.requests,
            RankBy::Bytes => client.bytes,
        }
    }

    /// True if `a` ranks before `b`.
    fn before(by: RankBy, a: &RankedClient, b: &RankedClient) -> bool {
        let (ma, mb) = (Self::metric(by, a), Self::metric(by, b));
        ma > mb || (ma == mb && a.ip < b.ip)
    }

    /// Offers a client's new totals (each at least its previous totals). Returns true if the
    /// ranking changed.
    pub fn offer(&mut self, k: usize, by: RankBy, ip: IpAddr, requests: u64, bytes: u64) -> bool {
        let client = RankedClient { ip, requests, bytes };
        // A ranked client's metric is at least the last one's, and metrics only grow: below
        // the last of a full ranking, the client is neither in it nor entering it.
        if self.ranked.len() >= k && self.ranked.last().is_some_and(|last| Self::metric(by, &client) < Self::metric(by, last)) {
            return false;
        }
        // The slot the client moves up from: its own, the last one's (which it displaces),
        // or a new one at the end.
        let from = match self.ranked.iter().position(|c| c.ip == ip) {
            Some(at) if self.ranked[at] == client => return false,
            Some(at) => at,
            None if self.ranked.len() >= k => match self.ranked.last() {
                Some(last) if Self::before(by, &client, last) => self.ranked.len() - 1,
                _ => return false,
            },
            None => {
                if self.ranked.capacity() == 0 {
                    // One allocation for the ranking's whole life instead of one per doubling.
                    self.ranked.reserve_exact(k);
                }
                self.ranked.push(client.clone());
                self.ranked.len() - 1
            }
        };
        // Totals only grow, so the client's place is at or before `from`: shift the clients
        // between down by one instead of removing and re-inserting.
        let to = self.ranked[..from].iter().position(|c| Self::before(by, &client, c)).unwrap_or(from);
        self.ranked[to..=from].rotate_right(1);
        self.ranked[to] = client;
        true
    }

    pub fn ranked(&self) -> &[RankedClient] {
        &self.ranked
    }

    /// Merges rankings of disjoint client sets (e.g. one per worker) into the top `k`.
    pub fn merge_disjoint<'a>(k: usize, by: RankBy, parts: impl IntoIterator<Item = &'a [RankedClient]>) -> Vec<RankedClient> {
        let mut all: Vec<RankedClient> = parts.into_iter().flatten().cloned().collect();
        all.sort_by(|a, b| match (Self::before(by, a, b), Self::before(by, b, a)) {
            (true, _) => std::cmp::Ordering::Less,
            (_, true) => std::cmp::Ordering::Greater,
            _ => std::cmp::Ordering::Equal,
        });
        all.truncate(k);
        all
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::aggregate::{top_clients, ClientTraffic};

    fn ip(i: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, i])
    }

    #[test]
    fn a_growing_client_climbs_and_ties_rank_by_address() {
        let mut top = TopK::default();
        assert!(top.offer(2, RankBy::Requests, ip(3), 1, 10));
        assert!(top.offer(2, RankBy::Requests, ip(2), 1, 5));
        assert_eq!(top.ranked().iter().map(|c| c.ip).collect::<Vec<_>>(), vec![ip(2), ip(3)]);
        // Full, and ip(4) only ties the last: it does not enter.
        assert!(!top.offer(2, RankBy::Requests, ip(4), 1, 99));
        assert!(top.offer(2, RankBy::Requests, ip(4), 2, 100));
        assert_eq!(top.ranked().iter().map(|c| c.ip).collect::<Vec<_>>(), vec![ip(4), ip(2)]);
        // An unchanged offer changes nothing.
        assert!(!top.offer(2, RankBy::Requests, ip(4), 2, 100));
    }

    proptest! {
        /// Any sequence of increments gives the batch ranking of the final totals.
        #[test]
        fn increments_give_the_batch_ranking(steps in proptest::collection::vec((0u8..30, 1u64..4, 0u64..2000), 1..300), k in 1usize..12) {
            let mut totals: HashMap<IpAddr, ClientTraffic> = HashMap::new();
            let mut by_requests = TopK::default();
            let mut by_bytes = TopK::default();
            for (client, requests, bytes) in steps {
                let t = totals.entry(ip(client)).or_default();
                t.requests += requests as i64;
                t.bytes += bytes as i64;
                by_requests.offer(k, RankBy::Requests, ip(client), t.requests as u64, t.bytes as u64);
                by_bytes.offer(k, RankBy::Bytes, ip(client), t.requests as u64, t.bytes as u64);
            }
            let group: Vec<(&IpAddr, ClientTraffic)> = totals.iter().map(|(ip, t)| (ip, *t)).collect();
            prop_assert_eq!(by_requests.ranked(), &top_clients(&group, k, |t| t.requests)[..]);
            prop_assert_eq!(by_bytes.ranked(), &top_clients(&group, k, |t| t.bytes)[..]);
        }

        /// Rankings of disjoint parts merge into the ranking of the whole.
        #[test]
        fn disjoint_parts_merge_exactly(steps in proptest::collection::vec((0u8..40, 1u64..5, 0u64..500), 1..200), k in 1usize..12) {
            let mut totals: HashMap<IpAddr, ClientTraffic> = HashMap::new();
            let mut parts = [TopK::default(), TopK::default(), TopK::default()];
            for (client, requests, bytes) in steps {
                let t = totals.entry(ip(client)).or_default();
                t.requests += requests as i64;
                t.bytes += bytes as i64;
                parts[client as usize % 3].offer(k, RankBy::Requests, ip(client), t.requests as u64, t.bytes as u64);
            }
            let group: Vec<(&IpAddr, ClientTraffic)> = totals.iter().map(|(ip, t)| (ip, *t)).collect();
            let merged = TopK::merge_disjoint(k, RankBy::Requests, parts.iter().map(|p| p.ranked()));
            prop_assert_eq!(merged, top_clients(&group, k, |t| t.requests));
        }
    }
}

//! Keys: the compact records the window engine consumes, and the cells of its output.
//!
//! Contract:
//! - A domain travels as a [`DomainKey`], SipHash-1-3 of its name under a [`DomainSeed`]
//!   the whole cluster agrees on at start-up (so exchange routes agree between processes);
//!   the name itself is sent once per source batch (`Ingested::Name`) to the worker that
//!   owns the domain. Collisions are detected where names are interned (`ingest`), never
//!   assumed away.
//! - Host names are attacker-controlled. With a seed nobody outside the job knows, nobody
//!   can pick names that land on one worker or collide in a hash table. The job draws a
//!   fresh random seed per run (process 0, worker 0) and broadcasts it before the dataflow
//!   is built (`src/job.rs`): no key is ever persisted (checkpoints, the known-domain memory
//!   of `domain_gate` and the window state are rebuilt by the replay), so nothing depends
//!   on a key surviving a restart, and there is no secret for an operator to manage.
//! - [`Hit`] and [`ClientHit`] are plain `Copy` records: nothing is allocated per line.
//! - Output keys ([`DomainWindow`]) order by a hash of the domain, then window, then domain:
//!   the closing worker sorts them, and comparing domain strings first was slow.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::record::{CacheStatus, CleanRecord};
use crate::window::{Time, Window};

/// A domain's key: SipHash-1-3 of its name under the run's [`DomainSeed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DomainKey(pub u64);

/// The two SipHash keys every worker of a run hashes domain names with (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSeed(pub [u64; 2]);

impl DomainSeed {
    /// Zero keys: for tests and tools that never meet hostile names. The job uses a random
    /// seed agreed by the cluster.
    pub const FIXED: DomainSeed = DomainSeed([0, 0]);

    /// The key of `name` under this seed.
    pub fn key(&self, name: &str) -> DomainKey {
        let mut hasher = siphasher::sip::SipHasher13::new_with_keys(self.0[0], self.0[1]);
        hasher.write(name.as_bytes());
        DomainKey(hasher.finish())
    }
}

impl DomainKey {
    /// The key of `name` under [`DomainSeed::FIXED`] (tests).
    #[cfg(test)]
    pub fn of(name: &str) -> DomainKey {
        DomainSeed::FIXED.key(name)
    }

    /// The worker-routing hash (exchange pacts take a u64).
    pub fn route(self) -> u64 {
        self.0
    }
}

/// Cache outcome of a line, as the traffic totals count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CacheOutcome {
    /// HIT, STALE, UPDATING, REVALIDATED.
    Hit,
    /// MISS, EXPIRED.
    Miss,
    /// BYPASS, `-`.
    Other,
    /// The format has no cache field.
    Unknown,
}

impl CacheOutcome {
    pub fn of(status: Option<CacheStatus>) -> CacheOutcome {
        match status {
            None => CacheOutcome::Unknown,
            Some(s) if s.is_hit() => CacheOutcome::Hit,
            Some(CacheStatus::Miss | CacheStatus::Expired) => CacheOutcome::Miss,
            Some(_) => CacheOutcome::Other,
        }
    }
}

/// One accepted line, as the per-domain window engine needs it. Routed by domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    pub domain: DomainKey,
    /// The timely time the line was stamped with (see `window::PartitionClock`).
    pub stamp: Time,
    /// The line's own event second: which minute pane it lands in.
    pub event_sec: u64,
    pub client: IpAddr,
    pub bytes: u64,
    pub status: u16,
    pub cache: CacheOutcome,
    pub request_time_us: Option<u32>,
    pub upstream_time_us: Option<u32>,
}

impl Hit {
    pub fn new(domain: DomainKey, stamp: Time, event_sec: u64, record: &CleanRecord<'_>) -> Hit {
        Hit {
            domain,
            stamp,
            event_sec,
            client: record.client_ip,
            bytes: record.bytes,
            status: record.status,
            cache: CacheOutcome::of(record.cache),
            request_time_us: record.request_time_us,
            upstream_time_us: record.upstream_time_us,
        }
    }

    /// The start of the line's minute.
    pub fn minute(&self) -> u64 {
        self.event_sec - self.event_sec % 60
    }
}

/// One accepted line, as the cross-domain client view (the abuse ranking) needs it. Routed by
/// client, so each worker owns disjoint clients and per-worker rankings merge exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHit {
    pub client: IpAddr,
    pub stamp: Time,
    pub minute: u64,
    pub bytes: u64,
}

impl ClientHit {
    /// The worker-routing hash of the client.
    pub fn route(&self) -> u64 {
        client_route(&self.client)
    }
}

/// A well-mixed hash of a client address for routing.
pub fn client_route(ip: &IpAddr) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(ip).rotate_left(26)
}

/// One cell of a per-domain window series. Field order is the sort order (see above).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DomainWindow {
    /// FxHash of `domain` (the same in every process).
    domain_hash: u64,
    pub window: Window,
    /// Shared with the window engine's name table: a key is cloned for every change it
    /// leaves with, and a reference count is cheaper than a copy of the name.
    #[serde(with = "shared_str")]
    pub domain: Arc<str>,
}

/// Serde for a shared name: as its text.
mod shared_str {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(deserializer).map(Arc::from)
    }
}

impl DomainWindow {
    pub fn new(domain: impl Into<Arc<str>>, window: Window) -> DomainWindow {
        let domain = domain.into();
        DomainWindow { domain_hash: rustc_hash::FxBuildHasher.hash_one(domain.as_bytes()), window, domain }
    }
}

/// Anything keyed by a window, so the sink can tell a retirement from a deletion.
pub trait Windowed {
    fn window(&self) -> &Window;
}

impl Windowed for DomainWindow {
    fn window(&self) -> &Window {
        &self.window
    }
}

impl Windowed for Window {
    fn window(&self) -> &Window {
        self
    }
}

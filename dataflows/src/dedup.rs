//! Shipper re-sends: an event delivered twice (Filebeat, rsyslog, Vector and Fluent Bit are
//! at-least-once: they re-send what they did not see acknowledged) must count once.
//!
//! An event is identified by its origin (shipper, file path, byte offset of the line) plus
//! the line's event time, bytes and status: the extra fields keep a log rotated by
//! `copytruncate`, whose new lines reuse the old offsets, from being taken for re-sends.
//! Identities are remembered for `horizon_secs` of the partition's event time (until the
//! partition watermark passes `event time + horizon`), so memory is about 40 bytes per event
//! in the horizon. Re-sends that arrive later than that count again; set the horizon above
//! the longest re-send delay of your shippers.
//!
//! Per partition and deterministic (it depends only on the partition's own sequence), so a
//! replay after a restart makes the same decisions; `progress` keeps a record in the replay
//! while its identity is remembered.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use crate::record::{CleanRecord, Origin};
use crate::window::Time;

/// 128 bits: two independent 64-bit hashes, so an accidental collision in a horizon of
/// millions of events is out of reach.
type Identity = u128;

#[derive(Clone, Debug, Default)]
pub struct ResendFilter {
    horizon_secs: u64,
    seen: HashSet<Identity>,
    /// Identities in arrival order with the watermark past which they are forgotten.
    expiry: VecDeque<(Time, Identity)>,
}

impl ResendFilter {
    pub fn new(horizon_secs: u64) -> ResendFilter {
        ResendFilter { horizon_secs, ..Default::default() }
    }

    /// The event time until which an event at `event_sec` is remembered.
    pub fn remembered_until(&self, event_sec: u64) -> Time {
        event_sec.saturating_add(self.horizon_secs)
    }

    /// True if the event was seen within the horizon; otherwise remembers it. `watermark`
    /// is the partition's watermark before the event, which forgets older identities first.
    pub fn is_resend(&mut self, origin: &Origin<'_>, record: &CleanRecord<'_>, event_sec: u64, watermark: Time) -> bool {
        while let Some(&(until, identity)) = self.expiry.front() {
            if until >= watermark {
                break;
            }
            self.expiry.pop_front();
            self.seen.remove(&identity);
        }
        let identity = identity(origin, record);
        if !self.seen.insert(identity) {
            return true;
        }
        self.expiry.push_back((self.remembered_until(event_sec), identity));
        false
    }

    /// Identities remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

fn identity(origin: &Origin<'_>, record: &CleanRecord<'_>) -> Identity {
    let half = |salt: u64| {
        // `DefaultHasher::new()` has fixed keys: the same identity in every process.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut hasher);
        origin.shipper.hash(&mut hasher);
        origin.path.hash(&mut hasher);
        origin.offset.hash(&mut hasher);
        record.event_ms.hash(&mut hasher);
        record.bytes.hash(&mut hasher);
        record.status.hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(half(0x9e37_79b9_7f4a_7c15)) << 64) | u128::from(half(0xc2b2_ae3d_27d4_eb4f))
}

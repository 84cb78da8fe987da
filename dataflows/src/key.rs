//! Keys: which cells a clean record updates. Every output collection is keyed by a window
//! (with its domain, for the per-domain series), so the sink knows each key's retirement.
//!
//! Contract: keys order by a hash of the domain, then window, then domain: sorting and
//! merging keys is most of differential's work, and comparing domain strings there (memcmp)
//! took almost half the job's time. Exchange is by differential's hash of the whole key, so
//! one busy domain still spreads its windows over the workers.

use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

use crate::window::{Window, WindowKind};

/// One cell of a per-domain window series. Field order is the sort order (see above).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DomainWindow {
    /// FxHash of `domain` (the same in every process).
    domain_hash: u64,
    pub window: Window,
    pub domain: String,
}

impl DomainWindow {
    pub fn new(domain: String, window: Window) -> DomainWindow {
        DomainWindow { domain_hash: rustc_hash::FxBuildHasher.hash_one(domain.as_bytes()), window, domain }
    }
}

/// Which window kinds feed which output.
pub mod series {
    use super::WindowKind;

    /// Request, byte, status-class and cache totals.
    pub const TRAFFIC: [WindowKind; 3] = [WindowKind::Minute, WindowKind::Sliding, WindowKind::Sample5m];

    /// Clients, latency and peak-second statistics (not needed for billing samples).
    pub fn has_window_statistics(kind: WindowKind) -> bool {
        matches!(kind, WindowKind::Minute | WindowKind::Sliding)
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

impl<K: Windowed, V> Windowed for (K, V) {
    fn window(&self) -> &Window {
        self.0.window()
    }
}

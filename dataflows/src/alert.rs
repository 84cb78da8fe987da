//! Traffic alerts per domain, computed from the closed minute series.

use serde::{Deserialize, Serialize};

/// `[alerts]` thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertPolicy {
    /// Trailing minutes the request-rate baseline is taken over.
    pub baseline_minutes: u32,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy { baseline_minutes: 30 }
    }
}

//! Keys: which (domain, window) cells a clean record updates.
//!
//! Contract: `DomainWindow` is the exchange and arrangement key of the domain series (routed
//! by differential's hash of the whole key, so one busy domain still spreads its windows over
//! the workers). Keys order by domain, then window, so sink batches come out sorted.

use serde::{Deserialize, Serialize};

use crate::window::{Window, WindowKind};

/// One cell of a per-domain window series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DomainWindow {
    pub domain: String,
    pub window: Window,
}

/// The window kinds every record is keyed into, in output order.
pub const DOMAIN_SERIES: [WindowKind; 1] = [WindowKind::Minute];

/// The domain-series cells a record at `event_sec` falls in, one per kind in `DOMAIN_SERIES`.
pub fn domain_windows(event_sec: u64) -> impl Iterator<Item = Window> {
    DOMAIN_SERIES.into_iter().map(move |kind| kind.containing(event_sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_falls_in_its_minute() {
        let windows: Vec<_> = domain_windows(3_725).collect();
        assert_eq!(windows, vec![Window { kind: WindowKind::Minute, start: 3_720 }]);
    }
}

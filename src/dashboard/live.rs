//! The live feed: one task asks MySQL for a change fingerprint every `live_poll_ms` while at
//! least one browser listens, and bumps a version that `/api/events` (server-sent events)
//! pushes to every listener; the page then fetches its panels again. One cheap query per
//! interval serves any number of browsers, and none runs while nobody watches.
//!
//! No change is lost between a page's first load and its subscription: the page fetches
//! again on every `hello` (each (re)connection), and the prober reports any difference from
//! the last fingerprint it saw, including on its first probe.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::db::Db;

pub struct Live {
    version: watch::Sender<u64>,
}

impl Default for Live {
    fn default() -> Self {
        Live { version: watch::channel(0).0 }
    }
}

impl Live {
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Marks the data as changed (the prober does this; tests may too).
    pub fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Starts the prober on the current tokio runtime.
    pub fn spawn_prober(self: &Arc<Self>, db: Db, every: Duration) -> JoinHandle<()> {
        let live = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last: Option<String> = None;
            let mut failing = false;
            loop {
                ticker.tick().await;
                if live.version.receiver_count() == 0 {
                    // Nobody listens. The old fingerprint stays: the first probe after a
                    // listener arrives reports whatever changed meanwhile.
                    continue;
                }
                match db.change_probe().await {
                    Ok(fingerprint) => {
                        if failing {
                            warn!("dashboard live probe recovered");
                            failing = false;
                        }
                        // Also on the very first probe: a page that connected before it
                        // may have loaded its data before a commit the probe already sees.
                        if last.as_ref() != Some(&fingerprint) {
                            debug!(%fingerprint, "dashboard data changed");
                            live.bump();
                            last = Some(fingerprint);
                        }
                    }
                    Err(error) => {
                        if !failing {
                            warn!(error = %error, "dashboard live probe failed");
                            failing = true;
                        }
                    }
                }
            }
        })
    }
}

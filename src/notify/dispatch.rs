//! [`Dispatcher`]: the thread that delivers alert events, off the sink's commit path.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use dataflows::alert::AlertEvent;
use mysql_async::Pool;
use tracing::warn;

use super::{Delivery, MysqlDeliveryLog, Notifier, NotifyConfig, NotifyError};

/// Delivers alert events on a thread of its own, off the sink's commit path: a slow or dead
/// webhook never holds back an epoch. Events are queued in memory and sent one at a time in
/// commit order, so `opened` precedes `resolved`. Events still queued when the process dies
/// are not sent (the `alerts` table has them).
pub struct Dispatcher {
    sender: mpsc::Sender<AlertEvent>,
    thread: std::thread::JoinHandle<()>,
}

impl Dispatcher {
    /// Starts the delivery thread; `None` when no webhook is configured.
    pub fn spawn(config: &NotifyConfig, mysql_url: &str) -> Result<Option<Dispatcher>, NotifyError> {
        // Settings problems surface here, on the caller's thread, not in the delivery thread.
        config.validate().map_err(NotifyError::Config)?;
        if config.webhook_url.is_none() {
            return Ok(None);
        }
        let opts = crate::sink::schema::connection_opts(mysql_url).map_err(|err| NotifyError::Config(vec![err.to_string()]))?;
        let config = config.clone();
        let (sender, receiver) = mpsc::channel::<AlertEvent>();
        let spawned = std::thread::Builder::new().name("notify".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(err) => return warn!(error = %err, "alert notifications disabled: no runtime"),
            };
            // The pool spawns its recycler on the runtime it is created in.
            let notifier = runtime.block_on(async { Notifier::new(&config, MysqlDeliveryLog { pool: Pool::new(opts) }) });
            let notifier = match notifier {
                Ok(Some(notifier)) => notifier,
                Ok(None) => return,
                Err(err) => return warn!(error = %err, "alert notifications disabled"),
            };
            for event in receiver {
                match runtime.block_on(notifier.notify(&event)) {
                    Ok(Delivery::Failed { attempts, last_error }) => {
                        warn!(domain = %event.domain, kind = %event.kind, endpoint = %notifier.endpoint(), attempts, error = %last_error, "alert notification failed")
                    }
                    Ok(_) => {}
                    Err(err) => warn!(domain = %event.domain, error = %err, "alert notification not recorded"),
                }
            }
        });
        let thread = spawned.map_err(NotifyError::Thread)?;
        Ok(Some(Dispatcher { sender, thread }))
    }

    /// Lets the queued events go out, waiting at most `limit`, when the job finishes.
    pub fn close(self, limit: Duration) {
        drop(self.sender);
        let deadline = Instant::now() + limit;
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !self.thread.is_finished() {
            warn!(limit_ms = limit.as_millis() as u64, "alert notifications still queued at exit were not sent");
        }
    }

    /// Queues `event` for delivery.
    pub fn send(&self, event: AlertEvent) {
        // The thread only ends with the process; a send error means it failed to start.
        let _ = self.sender.send(event);
    }
}

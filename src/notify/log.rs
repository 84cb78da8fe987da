//! Where delivery attempts are recorded: `alert_notifications` in production, memory in tests.

use std::future::Future;
use std::sync::Mutex;

use mysql_async::prelude::Queryable;
use mysql_async::Pool;

use super::{NotificationKey, NotifyError};
use crate::sink::datetime::datetime;

/// Where delivery attempts are recorded: `alert_notifications` ([`MysqlDeliveryLog`]) in
/// production, memory ([`MemoryDeliveryLog`]) in tests.
pub trait DeliveryLog {
    /// Whether `key` was delivered before.
    fn was_delivered(&self, key: &NotificationKey) -> impl Future<Output = Result<bool, NotifyError>> + Send;
    /// Records one attempt: `Ok` delivered, `Err` the error (already redacted).
    fn record_attempt(&self, key: &NotificationKey, result: &Result<(), String>) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// `alert_notifications` through a pool (connections must use `schema::connection_opts`).
pub struct MysqlDeliveryLog {
    pub pool: Pool,
}

/// `alert_notifications.last_error` is a `VARCHAR(255)`.
const LAST_ERROR_CHARS: usize = 255;

impl DeliveryLog for MysqlDeliveryLog {
    async fn was_delivered(&self, key: &NotificationKey) -> Result<bool, NotifyError> {
        let mut conn = self.pool.get_conn().await?;
        let delivered: Option<bool> = conn
            .exec_first(
                "SELECT delivered_at IS NOT NULL FROM alert_notifications \
                 WHERE domain = ? AND kind = ? AND opened_minute = ? AND event = ?",
                (key.domain.as_str(), key.kind, datetime(key.opened_minute)?, key.event.as_str()),
            )
            .await?;
        Ok(delivered.unwrap_or(false))
    }

    fn record_attempt(&self, key: &NotificationKey, result: &Result<(), String>) -> impl Future<Output = Result<(), NotifyError>> + Send {
        let delivered = result.is_ok();
        let error: Option<String> = result.as_ref().err().map(|e| e.chars().take(LAST_ERROR_CHARS).collect());
        async move {
            let mut conn = self.pool.get_conn().await?;
            conn.exec_drop(
                "INSERT INTO alert_notifications (domain, kind, opened_minute, event, attempts, delivered_at, last_error) \
                 VALUES (?, ?, ?, ?, 1, IF(?, NOW(3), NULL), ?) \
                 ON DUPLICATE KEY UPDATE attempts = attempts + 1, delivered_at = VALUES(delivered_at), \
                 last_error = COALESCE(VALUES(last_error), last_error)",
                (key.domain.as_str(), key.kind, datetime(key.opened_minute)?, key.event.as_str(), delivered, error),
            )
            .await?;
            Ok(())
        }
    }
}

/// Attempts in memory, for tests: `(key, result)` in order.
#[derive(Debug, Default)]
pub struct MemoryDeliveryLog {
    pub attempts: Mutex<Vec<(NotificationKey, Result<(), String>)>>,
}

impl DeliveryLog for MemoryDeliveryLog {
    fn was_delivered(&self, key: &NotificationKey) -> impl Future<Output = Result<bool, NotifyError>> + Send {
        let delivered = self.attempts.lock().map(|a| a.iter().any(|(k, r)| k == key && r.is_ok())).unwrap_or(false);
        async move { Ok(delivered) }
    }

    fn record_attempt(&self, key: &NotificationKey, result: &Result<(), String>) -> impl Future<Output = Result<(), NotifyError>> + Send {
        if let Ok(mut attempts) = self.attempts.lock() {
            attempts.push((key.clone(), result.clone()));
        }
        async { Ok(()) }
    }
}

//! Alert notifications: a webhook POST per opened and resolved alert, with retries, and a
//! record of every delivery attempt in `alert_notifications`.
//!
//! | file | what it owns |
//! |---|---|
//! | `config.rs` | `[notify]` settings, their validation, the webhook endpoint (URL and its redacted form) |
//! | `payload.rs` | the request bodies: generic JSON, Slack incoming-webhook text |
//! | `log.rs` | where attempts are recorded: `alert_notifications`, or memory in tests |
//! | `client.rs` | [`Notifier`]: the HTTP(S) client, retries and the outcome of one notification |
//! | `dispatch.rs` | [`Dispatcher`]: the delivery thread fed by the sink |
//!
//! Contract:
//! - One `POST` per [`AlertEvent`](dataflows::alert::AlertEvent) to `notify.webhook_url`
//!   (`http://` or `https://`), `Content-Type: application/json`, with a body in the shape
//!   `notify.format` names:
//!   - `json` (default):
//!     ```json
//!     {"id": "shop.example.com/traffic_collapse/1772359200/opened",
//!      "domain": "shop.example.com", "kind": "traffic_collapse", "event": "opened",
//!      "opened_minute": "2026-03-01T10:00:00+00:00", "resolved_minute": null,
//!      "observed": 100.0, "baseline": 1000.0,
//!      "detail": "requests 100/min vs baseline 1000/min (-90%), collapse at x0.3"}
//!     ```
//!     `kind` is `traffic_spike`, `traffic_collapse`, `error_rate` or `cache_collapse`;
//!     `event` is `opened` or `resolved`; minutes are UTC RFC 3339, `resolved_minute` is set
//!     on `resolved`; `observed`/`baseline` are requests per minute or ratios (see
//!     `dataflows::alert`).
//!   - `slack`: a Slack incoming webhook's `{"text": "..."}`, one line per event (see
//!     `payload.rs`); also accepted by receivers that take Slack-compatible hooks
//!     (Mattermost, Rocket.Chat).
//!
//!   `id` is also sent as the `Idempotency-Key` header: it is the same on every retry, so a
//!   receiver can drop duplicates.
//! - TLS through rustls: the server certificate is checked against the system's trust store
//!   (Debian: the `ca-certificates` package) plus the PEM certificates in `notify.ca_file`,
//!   for receivers behind a private CA. Proxies come from `HTTPS_PROXY` / `HTTP_PROXY` /
//!   `NO_PROXY`.
//! - A 2xx answer is delivery. Connection errors, timeouts (`timeout_ms` per attempt, from
//!   connecting until the answer's headers), 408, 429 and 5xx are retried up to
//!   `max_attempts` in all, waiting `backoff_initial_ms`, doubling up to `backoff_max_ms`.
//!   A certificate the client does not trust and any other status (redirects are not
//!   followed, 4xx) fail at once: resending the same request cannot succeed.
//! - Every attempt is recorded before the next one: the row `(domain, kind, opened_minute,
//!   event)` of `alert_notifications` counts `attempts`, sets `delivered_at` on success and
//!   keeps the `last_error` seen (kept after a later success, so retried deliveries stay
//!   visible). A notification already delivered is not sent again, so re-emitting events
//!   after a restart does not notify twice.
//! - The webhook URL is a secret (Slack's carries its token in the path): errors, logs and
//!   `last_error` show only its scheme, host and port ([`Endpoint`]).
//! - [`Notifier::notify`] may take up to `max_attempts × timeout_ms` plus the back-off: run it
//!   off the sink's commit path ([`Dispatcher`]), after the alert row is committed, and one
//!   event at a time per incident so `opened` precedes `resolved`.

mod client;
mod config;
mod dispatch;
mod log;
mod payload;

use dataflows::alert::{AlertEvent, Transition};

pub use self::client::Notifier;
pub use self::config::{Endpoint, NotifyConfig, PayloadFormat};
pub use self::dispatch::Dispatcher;
pub use self::log::{DeliveryLog, MemoryDeliveryLog, MysqlDeliveryLog};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("invalid notify settings: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("starting the notify thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("mysql: {0}")]
    Mysql(#[from] mysql_async::Error),
    #[error("{0}")]
    Datetime(#[from] crate::sink::datetime::DatetimeError),
}

/// Identifies one notification: the `alert_notifications` primary key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NotificationKey {
    pub domain: String,
    /// `alerts.kind` value.
    pub kind: &'static str,
    /// Unix seconds.
    pub opened_minute: u64,
    pub event: Transition,
}

impl NotificationKey {
    pub fn of(event: &AlertEvent) -> NotificationKey {
        NotificationKey {
            domain: event.domain.clone(),
            kind: event.kind.as_str(),
            opened_minute: event.opened_minute,
            event: event.transition(),
        }
    }

    /// `domain/kind/opened_minute/event`: the body's `id` and the `Idempotency-Key`.
    pub fn id(&self) -> String {
        format!("{}/{}/{}/{}", self.domain, self.kind, self.opened_minute, self.event.as_str())
    }
}

/// What became of a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Delivered { attempts: u32 },
    /// Delivered before (e.g. before a restart): not sent again.
    AlreadyDelivered,
    /// Gave up: attempts exhausted, or an answer that retrying cannot change.
    Failed { attempts: u32, last_error: String },
}

/// The alert the unit tests of `client` and `payload` send.
#[cfg(test)]
pub(crate) mod fixtures {
    use dataflows::alert::{AlertEvent, AlertKind};

    /// 2026-03-01T10:00:00Z.
    pub const OPENED: u64 = 1_772_359_200;

    pub fn collapse(resolved: Option<u64>) -> AlertEvent {
        AlertEvent {
            domain: "shop.example.com".into(),
            kind: AlertKind::TrafficCollapse,
            opened_minute: OPENED,
            resolved_minute: resolved,
            observed: 100.0,
            baseline: 1000.0,
            detail: "requests 100/min vs baseline 1000/min (-90%), collapse at x0.3".into(),
        }
    }
}

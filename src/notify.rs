//! Alert notifications: a webhook POST per opened and resolved alert, with retries, and a
//! record of every delivery attempt in `alert_notifications`.
//!
//! Contract:
//! - One HTTP/1.1 `POST` per [`AlertEvent`] to `notify.webhook_url`, body JSON
//!   (`Content-Type: application/json`):
//!   ```json
//!   {"id": "shop.example.com/traffic_collapse/1772359200/opened",
//!    "domain": "shop.example.com", "kind": "traffic_collapse", "event": "opened",
//!    "opened_minute": "2026-03-01T10:00:00+00:00", "resolved_minute": null,
//!    "observed": 100.0, "baseline": 1000.0,
//!    "detail": "requests 100/min vs baseline 1000/min (-90%), collapse at x0.3"}
//!   ```
//!   `kind` is `traffic_spike`, `traffic_collapse`, `error_rate` or `cache_collapse`; `event`
//!   is `opened` or `resolved`; minutes are UTC RFC 3339, `resolved_minute` is set on
//!   `resolved`; `observed`/`baseline` are requests per minute or ratios (see
//!   `dataflows::alert`). `id` is also sent as the `Idempotency-Key` header: it is the same
//!   on every retry, so a receiver can drop duplicates.
//! - A 2xx answer is delivery. Connection errors, timeouts (`timeout_ms` per attempt, for
//!   connect + send + the response's status line), 408, 429 and 5xx are retried up to
//!   `max_attempts` in all, waiting `backoff_initial_ms`, doubling up to `backoff_max_ms`.
//!   Any other status (redirects are not followed, 4xx) fails at once: resending the same
//!   body cannot succeed.
//! - Every attempt is recorded before the next one: the row `(domain, kind, opened_minute,
//!   event)` of `alert_notifications` counts `attempts`, sets `delivered_at` on success and
//!   keeps the `last_error` seen (kept after a later success, so retried deliveries stay
//!   visible). A notification already delivered is not sent again, so re-emitting events
//!   after a restart does not notify twice.
//! - Plain `http://` only, through `tokio::net::TcpStream`: no TLS stack to compile. For an
//!   https endpoint, point `webhook_url` at a local relay or TLS-terminating reverse proxy
//!   (e.g. nginx `proxy_pass https://…`).
//! - [`Notifier::notify`] may take up to `max_attempts × timeout_ms` plus the back-off: run it
//!   off the sink's commit path (a task fed by a channel), after the alert row is committed,
//!   and one event at a time per incident so `opened` precedes `resolved`.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use dataflows::alert::{AlertEvent, Transition};
use dataflows::parse::time::format_time_iso8601;
use mysql_async::prelude::Queryable;
use mysql_async::Pool;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::sink::datetime::datetime;

/// `[notify]` settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Webhook URL receiving a JSON POST per opened and resolved alert; unset disables it.
    /// `http://` only (see the module doc for https).
    pub webhook_url: Option<String>,
    /// Limit per attempt: connect, send, and read the response's status line.
    pub timeout_ms: u64,
    /// Attempts per notification, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles per retry up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// An extra request header, `Name: value`, e.g. `Authorization: Bearer s3cret`.
    pub auth_header: Option<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhook_url: None,
            timeout_ms: 5_000,
            max_attempts: 5,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            auth_header: None,
        }
    }
}

impl NotifyConfig {
    /// Every problem with the settings, as `notify.<key> ...` messages.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Some(url) = &self.webhook_url {
            if let Err(problem) = Endpoint::parse(url) {
                problems.push(format!("notify.webhook_url: {problem}"));
            }
        }
        if self.timeout_ms == 0 {
            problems.push("notify.timeout_ms must be at least 1".into());
        }
        if self.max_attempts == 0 {
            problems.push("notify.max_attempts must be at least 1".into());
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            problems.push("notify.backoff_max_ms must be at least notify.backoff_initial_ms".into());
        }
        if let Some(header) = &self.auth_header {
            if let Err(problem) = parse_header(header) {
                problems.push(format!("notify.auth_header: {problem}"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("invalid notify settings: {}", .0.join("; "))]
    Config(Vec<String>),
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
    /// Gave up: attempts exhausted, or a status that retrying cannot fix.
    Failed { attempts: u32, last_error: String },
}

/// Where delivery attempts are recorded: `alert_notifications` ([`MysqlDeliveryLog`]) in
/// production, memory in tests.
pub trait DeliveryLog {
    /// Whether `key` was delivered before.
    fn was_delivered(&self, key: &NotificationKey) -> impl Future<Output = Result<bool, NotifyError>> + Send;
    /// Records one attempt: `Ok` delivered, `Err` the error.
    fn record_attempt(&self, key: &NotificationKey, result: &Result<(), String>) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// `alert_notifications` through a pool (connections must use `schema::connection_opts`).
pub struct MysqlDeliveryLog {
    pub pool: Pool,
}

impl DeliveryLog for MysqlDeliveryLog {
    fn was_delivered(&self, key: &NotificationKey) -> impl Future<Output = Result<bool, NotifyError>> + Send {
        async move {
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
    }

    fn record_attempt(&self, key: &NotificationKey, result: &Result<(), String>) -> impl Future<Output = Result<(), NotifyError>> + Send {
        let delivered = result.is_ok();
        let error: Option<String> = result.as_ref().err().map(|e| e.chars().take(255).collect());
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

/// Delivers alert events on a thread of its own, off the sink's commit path: a slow or dead
/// webhook never holds back an epoch. Events are queued in memory and sent one at a time in
/// commit order, so `opened` precedes `resolved`. Events still queued when the process dies
/// are not sent (the `alerts` table has them).
pub struct Dispatcher {
    sender: std::sync::mpsc::Sender<AlertEvent>,
    thread: std::thread::JoinHandle<()>,
}

impl Dispatcher {
    /// Starts the delivery thread; `None` when no webhook is configured.
    pub fn spawn(config: &NotifyConfig, mysql_url: &str) -> Result<Option<Dispatcher>, NotifyError> {
        config.validate().map_err(NotifyError::Config)?;
        if config.webhook_url.is_none() {
            return Ok(None);
        }
        let opts = crate::sink::schema::connection_opts(mysql_url).map_err(|err| NotifyError::Config(vec![err.to_string()]))?;
        let config = config.clone();
        let (sender, receiver) = std::sync::mpsc::channel::<AlertEvent>();
        let spawned = std::thread::Builder::new().name("notify".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(err) => return warn!(error = %err, "notifications disabled: no runtime"),
            };
            // The pool spawns its recycler on the runtime it is created in.
            let notifier = runtime.block_on(async { Notifier::new(&config, MysqlDeliveryLog { pool: Pool::new(opts) }) });
            let Ok(Some(notifier)) = notifier else { return };
            for event in receiver {
                match runtime.block_on(notifier.notify(&event)) {
                    Ok(Delivery::Failed { attempts, last_error }) => {
                        warn!(domain = %event.domain, kind = %event.kind, attempts, error = %last_error, "alert notification failed")
                    }
                    Ok(_) => {}
                    Err(err) => warn!(domain = %event.domain, error = %err, "alert notification not recorded"),
                }
            }
        });
        let thread = spawned.map_err(|err| NotifyError::Config(vec![format!("starting the notify thread: {err}")]))?;
        Ok(Some(Dispatcher { sender, thread }))
    }

    /// Lets the queued events go out, waiting at most `limit`, when the job finishes.
    pub fn close(self, limit: Duration) {
        drop(self.sender);
        let deadline = std::time::Instant::now() + limit;
        while !self.thread.is_finished() && std::time::Instant::now() < deadline {
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

/// The webhook body (module doc).
#[derive(Debug, Serialize)]
struct WebhookBody<'a> {
    id: String,
    domain: &'a str,
    kind: &'static str,
    event: &'static str,
    opened_minute: String,
    resolved_minute: Option<String>,
    observed: f64,
    baseline: f64,
    detail: &'a str,
}

fn rfc3339(unix_secs: u64) -> String {
    format_time_iso8601(i64::try_from(unix_secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000), 0)
}

/// Sends notifications for one webhook; see the module doc.
pub struct Notifier<L: DeliveryLog = MysqlDeliveryLog> {
    endpoint: Endpoint,
    auth_header: Option<(String, String)>,
    timeout: Duration,
    max_attempts: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
    log: L,
}

impl<L: DeliveryLog> Notifier<L> {
    /// A notifier for `config`, or `None` when no webhook is configured.
    pub fn new(config: &NotifyConfig, log: L) -> Result<Option<Notifier<L>>, NotifyError> {
        config.validate().map_err(NotifyError::Config)?;
        let Some(url) = &config.webhook_url else { return Ok(None) };
        let endpoint = Endpoint::parse(url).map_err(|problem| NotifyError::Config(vec![problem]))?;
        let auth_header = match &config.auth_header {
            Some(header) => Some(parse_header(header).map_err(|problem| NotifyError::Config(vec![problem]))?),
            None => None,
        };
        Ok(Some(Notifier {
            endpoint,
            auth_header,
            timeout: Duration::from_millis(config.timeout_ms),
            max_attempts: config.max_attempts.max(1),
            backoff_initial: Duration::from_millis(config.backoff_initial_ms),
            backoff_max: Duration::from_millis(config.backoff_max_ms),
            log,
        }))
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    /// Delivers `event` (retrying) and records every attempt. Errors are the log's (MySQL)
    /// only; a failed delivery is a [`Delivery::Failed`] value.
    pub async fn notify(&self, event: &AlertEvent) -> Result<Delivery, NotifyError> {
        let key = NotificationKey::of(event);
        if self.log.was_delivered(&key).await? {
            return Ok(Delivery::AlreadyDelivered);
        }
        let id = key.id();
        let body = WebhookBody {
            id: id.clone(),
            domain: &event.domain,
            kind: key.kind,
            event: key.event.as_str(),
            opened_minute: rfc3339(event.opened_minute),
            resolved_minute: event.resolved_minute.map(rfc3339),
            observed: event.observed,
            baseline: event.baseline,
            detail: &event.detail,
        };
        // Strings and numbers only: serialisation cannot fail.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let request = self.request(&id, &body);

        let mut delay = self.backoff_initial;
        let mut attempt = 1;
        loop {
            let outcome = self.post_once(&request).await;
            let result = match &outcome {
                Outcome::Delivered => Ok(()),
                Outcome::Retry(error) | Outcome::GiveUp(error) => Err(error.clone()),
            };
            self.log.record_attempt(&key, &result).await?;
            match outcome {
                Outcome::Delivered => {
                    info!(id = %id, attempts = attempt, "alert notification delivered");
                    return Ok(Delivery::Delivered { attempts: attempt });
                }
                Outcome::Retry(error) if attempt < self.max_attempts => {
                    warn!(id = %id, attempt, error = %error, retry_in_ms = delay.as_millis() as u64, "alert notification failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.backoff_max);
                    attempt += 1;
                }
                Outcome::Retry(error) | Outcome::GiveUp(error) => {
                    warn!(id = %id, attempts = attempt, error = %error, "alert notification not delivered; giving up");
                    return Ok(Delivery::Failed { attempts: attempt, last_error: error });
                }
            }
        }
    }

    /// The whole request, identical on every attempt.
    fn request(&self, id: &str, body: &[u8]) -> Vec<u8> {
        let endpoint = &self.endpoint;
        // The id comes from a validated domain; dropping control characters keeps the
        // header well-formed whatever it holds.
        let id: String = id.chars().filter(|c| !c.is_control()).collect();
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: edgeflow/{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nIdempotency-Key: {id}\r\nConnection: close\r\n",
            endpoint.path,
            endpoint.host_header,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        if let Some((name, value)) = &self.auth_header {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        request
    }

    async fn post_once(&self, request: &[u8]) -> Outcome {
        let exchange = async {
            let endpoint = &self.endpoint;
            let mut stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(|err| format!("connect {}: {err}", endpoint.host_header))?;
            stream.write_all(request).await.map_err(|err| format!("send: {err}"))?;
            read_status(&mut stream).await
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Outcome::Retry(format!("timed out after {} ms", self.timeout.as_millis())),
            Ok(Err(error)) => Outcome::Retry(error),
            Ok(Ok(status)) if (200..300).contains(&status) => Outcome::Delivered,
            Ok(Ok(status)) if status == 408 || status == 429 || status >= 500 => Outcome::Retry(format!("http {status}")),
            Ok(Ok(status)) => Outcome::GiveUp(format!("http {status}")),
        }
    }
}

enum Outcome {
    Delivered,
    Retry(String),
    GiveUp(String),
}

/// Reads up to the end of the status line and returns the status code.
async fn read_status(stream: &mut TcpStream) -> Result<u16, String> {
    const MAX_STATUS_LINE: usize = 8 * 1024;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        if head.len() > MAX_STATUS_LINE {
            return Err("response status line too long".into());
        }
        let read = stream.read(&mut chunk).await.map_err(|err| format!("receive: {err}"))?;
        if read == 0 {
            return Err("connection closed before a response".into());
        }
        head.extend_from_slice(&chunk[..read]);
    }
    // `HTTP/1.1 204 No Content`
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    match (parts.next(), parts.next().and_then(|code| code.parse::<u16>().ok())) {
        (Some(version), Some(status)) if version.starts_with("HTTP/") => Ok(status),
        _ => Err(format!("not an HTTP response: {:?}", line.chars().take(64).collect::<String>())),
    }
}

/// Where an `http://` URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    /// Host to connect to (an IPv6 literal without brackets).
    host: String,
    port: u16,
    /// `Host` header value: the URL's authority.
    host_header: String,
    /// Path and query; `/` when the URL has none.
    path: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, String> {
        let shown = redact_url(url);
        let scheme_end = url.find("://").ok_or_else(|| format!("{shown} is not a URL"))?;
        let scheme = &url[..scheme_end];
        if scheme.eq_ignore_ascii_case("https") {
            return Err(format!("{shown}: https is not supported; use an http:// relay or TLS-terminating reverse proxy"));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!("{shown}: only http:// URLs are supported"));
        }
        let rest = &url[scheme_end + 3..];
        let rest = rest.split('#').next().unwrap_or_default();
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(format!("{shown}: credentials in the URL are not supported; use notify.auth_header"));
        }
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("{shown}: the path has spaces or control characters"));
        }
        let (host, port) = if let Some(literal) = authority.strip_prefix('[') {
            let (address, after) = literal.split_once(']').ok_or_else(|| format!("{shown}: unclosed IPv6 literal"))?;
            (address, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b)) {
            return Err(format!("{shown}: invalid host"));
        }
        let port = match port {
            None => 80,
            Some(port) => port.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| format!("{shown}: invalid port"))?,
        };
        let path = match path {
            "" => "/".to_string(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_string(),
        };
        Ok(Endpoint { host: host.to_string(), port, host_header: authority.to_string(), path })
    }
}

/// `Name: value` into its parts; the name must be an HTTP token, the value without control
/// characters (no header injection).
fn parse_header(header: &str) -> Result<(String, String), String> {
    let (name, value) = header.split_once(':').ok_or("expected `Name: value`")?;
    let (name, value) = (name.trim(), value.trim());
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
        return Err(format!("invalid header name {name:?}"));
    }
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err("the header value is empty or has control characters".into());
    }
    Ok((name.to_string(), value.to_string()))
}

/// `url` for messages: scheme and host only. The path and query (where webhook secrets live,
/// e.g. Slack's) and any credentials become `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "the value".into() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (credentials, host) = match authority.rsplit_once('@') {
        Some((_, host)) => ("***@", host),
        None => ("", authority),
    };
    let tail = if end < rest.len() { "/***" } else { "" };
    format!("{scheme}://{credentials}{host}{tail}")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dataflows::alert::AlertKind;
    use tokio::net::TcpListener;

    use super::*;

    /// One request as the receiver saw it.
    #[derive(Debug, Clone)]
    struct Received {
        head: String,
        body: serde_json::Value,
    }

    /// A webhook receiver on 127.0.0.1: answers the n-th request with `statuses[n]` (the
    /// last one repeated; 0 = never answer); returns its URL and what it received.
    async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Received>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hooks/edgeflow?team=ops", listener.local_addr().expect("address"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        tokio::spawn(async move {
            let mut served = 0;
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let status = statuses[served.min(statuses.len() - 1)];
                served += 1;
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    let mut chunk = [0u8; 1024];
                    // Read the head, then Content-Length bytes of body.
                    let (head, body) = loop {
                        let read = stream.read(&mut chunk).await.unwrap_or(0);
                        if read == 0 {
                            return;
                        }
                        data.extend_from_slice(&chunk[..read]);
                        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&data[..end]).to_string();
                            let length: usize = head
                                .lines()
                                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                                .unwrap_or(0);
                            while data.len() < end + 4 + length {
                                let read = stream.read(&mut chunk).await.unwrap_or(0);
                                if read == 0 {
                                    return;
                                }
                                data.extend_from_slice(&chunk[..read]);
                            }
                            break (head, data[end + 4..end + 4 + length].to_vec());
                        }
                    };
                    log.lock().unwrap().push(Received { head, body: serde_json::from_slice(&body).unwrap() });
                    if status == 0 {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    let answer = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        (url, received)
    }

    fn config(url: &str) -> NotifyConfig {
        NotifyConfig {
            webhook_url: Some(url.to_string()),
            timeout_ms: 2_000,
            max_attempts: 4,
            backoff_initial_ms: 10,
            backoff_max_ms: 40,
            auth_header: Some("Authorization: Bearer s3cret".into()),
        }
    }

    fn notifier(config: &NotifyConfig) -> Notifier<MemoryDeliveryLog> {
        Notifier::new(config, MemoryDeliveryLog::default()).expect("valid").expect("configured")
    }

    /// 2026-03-01T10:00:00Z.
    const OPENED: u64 = 1_772_359_200;

    fn collapse(resolved: Option<u64>) -> AlertEvent {
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

    fn results(notifier: &Notifier<MemoryDeliveryLog>) -> Vec<Result<(), String>> {
        notifier.log().attempts.lock().unwrap().iter().map(|(_, r)| r.clone()).collect()
    }

    #[tokio::test]
    async fn posts_the_documented_json_with_headers() {
        let (url, received) = receiver(vec![204]).await;
        let notifier = notifier(&config(&url));
        assert_eq!(notifier.notify(&collapse(None)).await.unwrap(), Delivery::Delivered { attempts: 1 });
        assert_eq!(notifier.notify(&collapse(Some(OPENED + 180))).await.unwrap(), Delivery::Delivered { attempts: 1 });
        let received = received.lock().unwrap().clone();
        assert_eq!(received.len(), 2);
        let head = &received[0].head;
        assert!(head.starts_with("POST /hooks/edgeflow?team=ops HTTP/1.1\r\n"), "{head}");
        for header in [
            "Content-Type: application/json",
            "Authorization: Bearer s3cret",
            "Idempotency-Key: shop.example.com/traffic_collapse/1772359200/opened",
        ] {
            assert!(head.contains(header), "{header} missing in {head}");
        }
        assert_eq!(
            received[0].body,
            serde_json::json!({
                "id": "shop.example.com/traffic_collapse/1772359200/opened",
                "domain": "shop.example.com", "kind": "traffic_collapse", "event": "opened",
                "opened_minute": "2026-03-01T10:00:00+00:00", "resolved_minute": null,
                "observed": 100.0, "baseline": 1000.0,
                "detail": "requests 100/min vs baseline 1000/min (-90%), collapse at x0.3",
            })
        );
        assert_eq!(received[1].body["event"], "resolved");
        assert_eq!(received[1].body["resolved_minute"], "2026-03-01T10:03:00+00:00");
        assert_eq!(results(&notifier), [Ok(()), Ok(())]);
    }

    #[tokio::test]
    async fn retries_a_failing_receiver_until_it_accepts() {
        let (url, received) = receiver(vec![500, 503, 200]).await;
        let notifier = notifier(&config(&url));
        assert_eq!(notifier.notify(&collapse(None)).await.unwrap(), Delivery::Delivered { attempts: 3 });
        let received = received.lock().unwrap().clone();
        assert_eq!(received.len(), 3);
        assert!(received.iter().all(|r| r.body == received[0].body), "every retry sends the same body");
        assert_eq!(results(&notifier), [Err("http 500".to_string()), Err("http 503".to_string()), Ok(())]);
        // Delivered once: a re-emitted event is not sent again.
        assert_eq!(notifier.notify(&collapse(None)).await.unwrap(), Delivery::AlreadyDelivered);
        assert_eq!(notifier.log().attempts.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_receiver_that_is_down_is_recorded_as_failed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let notifier = notifier(&config(&url));
        match notifier.notify(&collapse(None)).await.unwrap() {
            Delivery::Failed { attempts: 4, last_error } => assert!(last_error.starts_with("connect 127.0.0.1:"), "{last_error}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(results(&notifier).len(), 4);
        assert!(results(&notifier).iter().all(Result::is_err));
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let (url, received) = receiver(vec![400]).await;
        let notifier = notifier(&config(&url));
        assert_eq!(notifier.notify(&collapse(None)).await.unwrap(), Delivery::Failed { attempts: 1, last_error: "http 400".into() });
        assert_eq!(received.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_silent_receiver_times_out() {
        let (url, _received) = receiver(vec![0]).await;
        let notifier = notifier(&NotifyConfig { timeout_ms: 100, max_attempts: 2, ..config(&url) });
        assert_eq!(
            notifier.notify(&collapse(None)).await.unwrap(),
            Delivery::Failed { attempts: 2, last_error: "timed out after 100 ms".into() }
        );
    }

    #[test]
    fn urls() {
        let parse = |url: &str| Endpoint::parse(url);
        assert_eq!(
            parse("http://hooks.example.com:8080/a/b?x=1#frag"),
            Ok(Endpoint { host: "hooks.example.com".into(), port: 8080, host_header: "hooks.example.com:8080".into(), path: "/a/b?x=1".into() })
        );
        assert_eq!(parse("HTTP://127.0.0.1").map(|e| (e.port, e.path)), Ok((80, "/".into())));
        assert_eq!(parse("http://[::1]:9000?q").map(|e| (e.host, e.port, e.path)), Ok(("::1".into(), 9000, "/?q".into())));
        for bad in ["https://x.example/", "ftp://x", "x.example", "http://u:p@x.example/", "http://x.example:0/", "http:///", "http://x y/", "http://x/a b"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("https://x.example/").unwrap_err().contains("reverse proxy"));
    }

    #[test]
    fn webhook_urls_are_redacted_in_errors() {
        let secret = "T000/B000/XXXXsecretXXXX";
        for bad in [format!("https://hooks.slack.com/services/{secret}"), format!("http://u:{secret}@x.example/{secret}"), format!("http://bad host/{secret}?k={secret}"), secret.to_string()] {
            let err = Endpoint::parse(&bad).unwrap_err();
            assert!(!err.contains("secret"), "{err}");
        }
        assert_eq!(redact_url("https://hooks.slack.com/services/T/B/X"), "https://hooks.slack.com/***");
        assert_eq!(redact_url("http://u:p@x.example:81?k=v"), "http://***@x.example:81/***");
        assert_eq!(redact_url("http://x.example"), "http://x.example");
    }

    #[test]
    fn settings_are_validated() {
        assert_eq!(NotifyConfig::default().validate(), Ok(()));
        let bad = NotifyConfig {
            webhook_url: Some("https://x.example".into()),
            timeout_ms: 0,
            max_attempts: 0,
            backoff_initial_ms: 10,
            backoff_max_ms: 5,
            auth_header: Some("Authorization: x\r\nEvil: 1".into()),
        };
        let problems = bad.validate().unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems.iter().all(|p| p.starts_with("notify.")));
        assert_eq!(parse_header("X-Api-Key:  k1 "), Ok(("X-Api-Key".into(), "k1".into())));
        assert!(Notifier::new(&NotifyConfig::default(), MemoryDeliveryLog::default()).unwrap().is_none());
    }
}

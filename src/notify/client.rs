//! [`Notifier`]: delivers one notification over HTTP(S) with retries, recording every
//! attempt; and the `reqwest` client it uses.

use std::time::Duration;

use dataflows::alert::AlertEvent;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Certificate, StatusCode};
use tracing::{info, warn};

use super::config::{Endpoint, Webhook};
use super::log::{DeliveryLog, MysqlDeliveryLog};
use super::{payload, Delivery, NotificationKey, NotifyConfig, NotifyError};

/// The HTTP client for `endpoint`: rustls trusting the system's roots plus `trusted`; redirects not followed (a redirected webhook is a misconfiguration, and a
/// redirect would resend the body elsewhere); `timeout` per request until the answer's
/// headers.
pub(super) fn http_client(endpoint: &Endpoint, trusted: Vec<Certificate>, timeout: Duration) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("edgeflow/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout);
    // A plain-http endpoint needs no roots: do not require a system trust store for it.
    let builder = if endpoint.is_https() { builder.tls_certs_merge(trusted) } else { builder.tls_certs_only(trusted) };
    builder.build().map_err(|err| chain(&err))
}

/// Sends notifications for one webhook; see the module doc of `notify`.
pub struct Notifier<L: DeliveryLog = MysqlDeliveryLog> {
    webhook: Webhook,
    log: L,
}

/// How one attempt ended.
enum Outcome {
    Delivered,
    Retry(String),
    GiveUp(String),
}

/// At most this much of a refusal's body goes into `last_error` (Slack explains a 4xx in
/// it: `invalid_payload`, `no_service`).
const ERROR_BODY_CHARS: usize = 120;

impl<L: DeliveryLog> Notifier<L> {
    /// A notifier for `config`, or `None` when no webhook is configured.
    pub fn new(config: &NotifyConfig, log: L) -> Result<Option<Notifier<L>>, NotifyError> {
        let webhook = config.build().map_err(NotifyError::Config)?;
        Ok(webhook.map(|webhook| Notifier { webhook, log }))
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    /// The webhook, redacted.
    pub fn endpoint(&self) -> &Endpoint {
        &self.webhook.endpoint
    }

    /// Delivers `event` (retrying) and records every attempt. Errors are the log's (MySQL)
    /// only; a failed delivery is a [`Delivery::Failed`] value.
    pub async fn notify(&self, event: &AlertEvent) -> Result<Delivery, NotifyError> {
        let key = NotificationKey::of(event);
        if self.log.was_delivered(&key).await? {
            return Ok(Delivery::AlreadyDelivered);
        }
        let id = key.id();
        let body = payload::body(self.webhook.format, &key, event);
        let endpoint = &self.webhook.endpoint;
        let mut delay = self.webhook.backoff_initial;
        let mut attempt = 1;
        loop {
            let outcome = self.post_once(&id, &body).await;
            let result = match &outcome {
                Outcome::Delivered => Ok(()),
                Outcome::Retry(error) | Outcome::GiveUp(error) => Err(error.clone()),
            };
            self.log.record_attempt(&key, &result).await?;
            match outcome {
                Outcome::Delivered => {
                    info!(id = %id, %endpoint, attempts = attempt, "alert notification delivered");
                    return Ok(Delivery::Delivered { attempts: attempt });
                }
                Outcome::Retry(error) if attempt < self.webhook.max_attempts => {
                    warn!(id = %id, %endpoint, attempt, error = %error, retry_in_ms = delay.as_millis() as u64, "alert notification failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.webhook.backoff_max);
                    attempt += 1;
                }
                Outcome::Retry(error) | Outcome::GiveUp(error) => {
                    warn!(id = %id, %endpoint, attempts = attempt, error = %error, "alert notification not delivered; giving up");
                    return Ok(Delivery::Failed { attempts: attempt, last_error: error });
                }
            }
        }
    }

    /// One POST; the request is the same on every attempt.
    async fn post_once(&self, id: &str, body: &[u8]) -> Outcome {
        let webhook = &self.webhook;
        let mut request = webhook
            .client
            .post(webhook.endpoint.url().clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.to_vec());
        // The id comes from a validated domain; a header value that is not visible ASCII
        // is left out rather than sent mangled.
        if let Ok(value) = HeaderValue::from_str(id) {
            request = request.header("Idempotency-Key", value);
        }
        if let Some((name, value)) = &webhook.auth_header {
            request = request.header(name.clone(), value.clone());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => return self.failed(err),
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Delivered;
        }
        // The body only explains a refusal; the client's timeout still bounds reading it.
        let explanation = match response.bytes().await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).chars().filter(|c| !c.is_control()).take(ERROR_BODY_CHARS).collect::<String>(),
            Err(_) => String::new(),
        };
        let error = match explanation.trim() {
            "" => format!("http {}", status.as_u16()),
            text => format!("http {}: {text}", status.as_u16()),
        };
        if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Outcome::Retry(error)
        } else {
            Outcome::GiveUp(error)
        }
    }

    /// A request that got no answer, classified; the message never holds the URL.
    fn failed(&self, err: reqwest::Error) -> Outcome {
        let err = err.without_url();
        let authority = self.webhook.endpoint.authority();
        if err.is_timeout() {
            return Outcome::Retry(format!("timed out after {} ms", self.webhook.timeout.as_millis()));
        }
        // A certificate the client does not trust stays untrusted on the next attempt.
        if let Some(tls) = find_rustls_error(&err) {
            let error = format!("tls {authority}: {tls}");
            return if matches!(tls, rustls::Error::InvalidCertificate(_)) { Outcome::GiveUp(error) } else { Outcome::Retry(error) };
        }
        if err.is_connect() {
            return Outcome::Retry(format!("connect {authority}: {}", root_cause(&err)));
        }
        Outcome::Retry(format!("send to {authority}: {}", chain(&err)))
    }
}

/// The causes of `err`, outermost first, each once; `io::Error` wrappers are looked into
/// (their `source` skips the error they carry).
fn causes<'a>(err: &'a (dyn std::error::Error + 'static)) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut causes = Vec::new();
    let mut next = Some(err);
    while let Some(current) = next {
        causes.push(current);
        next = match current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    causes
}

fn find_rustls_error(err: &reqwest::Error) -> Option<&rustls::Error> {
    causes(err).into_iter().find_map(|cause| cause.downcast_ref::<rustls::Error>())
}

/// The innermost cause's message: `Connection refused (os error 111)`.
fn root_cause(err: &reqwest::Error) -> String {
    causes(err).last().map(|cause| cause.to_string()).unwrap_or_default()
}

/// Every cause's message, `: `-separated, repeats dropped.
fn chain(err: &reqwest::Error) -> String {
    let mut messages: Vec<String> = Vec::new();
    for cause in causes(err) {
        let message = cause.to_string();
        if messages.last().is_none_or(|last| !last.contains(&message)) {
            messages.push(message);
        }
    }
    messages.join(": ")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::super::{MemoryDeliveryLog, PayloadFormat};
    use super::*;

    /// One request as the receiver saw it.
    #[derive(Debug, Clone)]
    struct Received {
        /// Request line and headers, header names lower-case.
        head: String,
        body: serde_json::Value,
    }

    /// A plain-http webhook receiver on 127.0.0.1: answers the n-th request with
    /// `statuses[n]` (the last one repeated; 0 = never answer) and `answer_body`; returns
    /// its URL and what it received.
    async fn receiver(statuses: Vec<u16>, answer_body: &'static str) -> (String, Arc<Mutex<Vec<Received>>>) {
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
                    let answer = format!(
                        "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer_body}",
                        answer_body.len()
                    );
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
            ..NotifyConfig::default()
        }
    }

    fn notifier(config: &NotifyConfig) -> Notifier<MemoryDeliveryLog> {
        Notifier::new(config, MemoryDeliveryLog::default()).expect("valid").expect("configured")
    }

    use crate::notify::fixtures::{collapse, OPENED};

    fn results(notifier: &Notifier<MemoryDeliveryLog>) -> Vec<Result<(), String>> {
        notifier.log().attempts.lock().unwrap().iter().map(|(_, r)| r.clone()).collect()
    }

    #[tokio::test]
    async fn posts_the_configured_body_with_headers() {
        let (url, received) = receiver(vec![204], "").await;
        let notifier = notifier(&config(&url));
        assert_eq!(notifier.notify(&collapse(None)).await.unwrap(), Delivery::Delivered { attempts: 1 });
        assert_eq!(notifier.notify(&collapse(Some(OPENED + 180))).await.unwrap(), Delivery::Delivered { attempts: 1 });
        let received = received.lock().unwrap().clone();
        assert_eq!(received.len(), 2);
        let head = received[0].head.to_ascii_lowercase();
        assert!(head.starts_with("post /hooks/edgeflow?team=ops http/1.1\r\n"), "{head}");
        for header in [
            "content-type: application/json",
            "authorization: bearer s3cret",
            "idempotency-key: shop.example.com/traffic_collapse/1772359200/opened",
            "user-agent: edgeflow/",
        ] {
            assert!(head.contains(header), "{header} missing in {head}");
        }
        assert_eq!(received[0].body["id"], "shop.example.com/traffic_collapse/1772359200/opened");
        assert_eq!(received[1].body["event"], "resolved");
        assert_eq!(results(&notifier), [Ok(()), Ok(())]);

        let (url, received) = receiver(vec![200], "ok").await;
        let slack = notifier_with(&NotifyConfig { format: PayloadFormat::Slack, ..config(&url) });
        assert_eq!(slack.notify(&collapse(None)).await.unwrap(), Delivery::Delivered { attempts: 1 });
        let body = received.lock().unwrap()[0].body.clone();
        assert!(body["text"].as_str().is_some_and(|t| t.starts_with(":rotating_light: traffic collapse on *shop.example.com*")), "{body}");
    }

    fn notifier_with(config: &NotifyConfig) -> Notifier<MemoryDeliveryLog> {
        notifier(config)
    }

    #[tokio::test]
    async fn retries_a_failing_receiver_until_it_accepts() {
        let (url, received) = receiver(vec![500, 503, 200], "").await;
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
        let port = listener.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/services/T0/B0/s3cretToken");
        drop(listener);
        let notifier = notifier(&config(&url));
        match notifier.notify(&collapse(None)).await.unwrap() {
            Delivery::Failed { attempts: 4, last_error } => {
                assert!(last_error.starts_with(&format!("connect 127.0.0.1:{port}: ")), "{last_error}");
                assert!(last_error.to_ascii_lowercase().contains("refused"), "{last_error}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(results(&notifier).len(), 4);
        assert!(results(&notifier).iter().all(|r| r.as_ref().is_err_and(|e| !e.contains("s3cret") && !e.contains("/services"))));
    }

    #[tokio::test]
    async fn client_errors_are_not_retried_and_keep_the_receivers_reason() {
        let (url, received) = receiver(vec![404], "no_service").await;
        let notifier = notifier(&config(&url));
        assert_eq!(
            notifier.notify(&collapse(None)).await.unwrap(),
            Delivery::Failed { attempts: 1, last_error: "http 404: no_service".into() }
        );
        assert_eq!(received.lock().unwrap().len(), 1);
        // Redirects are refusals too: the body is not resent elsewhere.
        let (url, received) = receiver(vec![302], "").await;
        let notifier = notifier_with(&config(&url));
        assert_eq!(notifier.notify(&collapse(None)).await.unwrap(), Delivery::Failed { attempts: 1, last_error: "http 302".into() });
        assert_eq!(received.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_silent_receiver_times_out() {
        let (url, _received) = receiver(vec![0], "").await;
        let notifier = notifier(&NotifyConfig { timeout_ms: 100, max_attempts: 2, ..config(&url) });
        assert_eq!(
            notifier.notify(&collapse(None)).await.unwrap(),
            Delivery::Failed { attempts: 2, last_error: "timed out after 100 ms".into() }
        );
    }
}

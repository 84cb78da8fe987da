//! `[notify]` settings, validated into the webhook they describe ([`Webhook`]), and the
//! endpoint's redacted form for messages.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Certificate, Url};
use serde::Deserialize;

/// `[notify]` settings (documented in `config/edgeflow.toml`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Webhook URL receiving a POST per opened and resolved alert; unset disables it.
    pub webhook_url: Option<String>,
    /// Shape of the request body.
    pub format: PayloadFormat,
    /// PEM file of CA certificates trusted beside the system's, for receivers behind a
    /// private CA.
    pub ca_file: Option<PathBuf>,
    /// Limit per attempt: from connecting until the answer's headers.
    pub timeout_ms: u64,
    /// Attempts per notification, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles per retry up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// An extra request header, `Name: value`, e.g. `Authorization: Bearer s3cret`.
    pub auth_header: Option<String>,
}

/// What the request body looks like (see the module doc of `notify`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// Every field of the event, as JSON.
    #[default]
    Json,
    /// A Slack incoming webhook's `{"text": ...}`.
    Slack,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhook_url: None,
            format: PayloadFormat::Json,
            ca_file: None,
            timeout_ms: 5_000,
            max_attempts: 5,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            auth_header: None,
        }
    }
}

// The URL and the header are secrets: a settings dump shows neither.
impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.webhook_url.as_deref().map(|url| Endpoint::parse(url).map_or_else(|_| "<invalid>".to_string(), |e| e.to_string()));
        let header = self.auth_header.as_deref().map(|h| format!("{}: ***", h.split(':').next().unwrap_or_default().trim()));
        f.debug_struct("NotifyConfig")
            .field("webhook_url", &url)
            .field("format", &self.format)
            .field("ca_file", &self.ca_file)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_initial_ms", &self.backoff_initial_ms)
            .field("backoff_max_ms", &self.backoff_max_ms)
            .field("auth_header", &header)
            .finish()
    }
}

/// The validated settings of a configured webhook: what [`Notifier`](super::Notifier) uses.
pub(super) struct Webhook {
    pub endpoint: Endpoint,
    pub client: reqwest::Client,
    pub format: PayloadFormat,
    pub auth_header: Option<(HeaderName, HeaderValue)>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl NotifyConfig {
    /// Every problem with the settings, as `notify.<key> ...` messages.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        self.build().map(|_| ())
    }

    /// The webhook these settings describe, `None` when none is configured, or every
    /// problem at once.
    pub(super) fn build(&self) -> Result<Option<Webhook>, Vec<String>> {
        let mut problems = Vec::new();
        let endpoint = match self.webhook_url.as_deref().map(Endpoint::parse) {
            Some(Ok(endpoint)) => Some(endpoint),
            Some(Err(problem)) => {
                problems.push(format!("notify.webhook_url: {problem}"));
                None
            }
            None => None,
        };
        if self.timeout_ms == 0 {
            problems.push("notify.timeout_ms must be at least 1".into());
        }
        if self.max_attempts == 0 {
            problems.push("notify.max_attempts must be at least 1".into());
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            problems.push("notify.backoff_max_ms must be at least notify.backoff_initial_ms".into());
        }
        let auth_header = match self.auth_header.as_deref().map(parse_header) {
            Some(Ok(header)) => Some(header),
            Some(Err(problem)) => {
                problems.push(format!("notify.auth_header: {problem}"));
                None
            }
            None => None,
        };
        let trusted = match &self.ca_file {
            Some(path) => match read_certificates(path) {
                Ok(certs) => certs,
                Err(problem) => {
                    problems.push(format!("notify.ca_file: {problem}"));
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let timeout = Duration::from_millis(self.timeout_ms);
        let client = match &endpoint {
            Some(endpoint) if problems.is_empty() => match super::client::http_client(endpoint, trusted, timeout) {
                Ok(client) => Some(client),
                Err(problem) => {
                    problems.push(format!("notify: building the HTTP client for {endpoint}: {problem}"));
                    None
                }
            },
            _ => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let (Some(endpoint), Some(client)) = (endpoint, client) else { return Ok(None) };
        Ok(Some(Webhook {
            endpoint,
            client,
            format: self.format,
            auth_header,
            timeout,
            max_attempts: self.max_attempts,
            backoff_initial: Duration::from_millis(self.backoff_initial_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
        }))
    }
}

/// A webhook URL, and how it is shown: scheme, host and port only, since the path or query
/// often is the credential (Slack's `/services/T…/B…/<token>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: Url,
    redacted: String,
}

impl Endpoint {
    /// An `http://` or `https://` URL with a host and no credentials. Messages never
    /// repeat the URL.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let mut url = Url::parse(text.trim()).map_err(|err| format!("not a URL: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("only http:// and https:// URLs are supported, not {}://", url.scheme()));
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()).map(str::to_string) else {
            return Err("the URL has no host".into());
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in the URL are not supported; use notify.auth_header".into());
        }
        url.set_fragment(None);
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let tail = if url.path() == "/" && url.query().is_none() { "/" } else { "/***" };
        let redacted = format!("{}://{host}{port}{tail}", url.scheme());
        Ok(Endpoint { url, redacted })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// `host:port`, for connection errors.
    pub fn authority(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }

    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }
}

/// The redacted form: `https://hooks.slack.com/***`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.redacted)
    }
}

/// `Name: value` into a header; the name must be an HTTP token, the value free of control
/// characters (no header injection). Messages never repeat the value.
fn parse_header(header: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = header.split_once(':').ok_or("expected `Name: value`")?;
    let (name, value) = (name.trim(), value.trim());
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
    let mut value = match HeaderValue::from_str(value) {
        Ok(value) if !value.is_empty() => value,
        _ => return Err("the header value is empty or has control characters".into()),
    };
    value.set_sensitive(true);
    Ok((name, value))
}

/// The certificates of a PEM file (one or more).
fn read_certificates(path: &std::path::Path) -> Result<Vec<Certificate>, String> {
    let pem = std::fs::read(path).map_err(|err| format!("reading {}: {err}", path.display()))?;
    let certs = Certificate::from_pem_bundle(&pem).map_err(|err| format!("{}: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_shown_without_path_or_query() {
        let shown = |url: &str| Endpoint::parse(url).map(|e| e.to_string());
        assert_eq!(shown("https://hooks.slack.com/services/T0/B0/s3cretToken"), Ok("https://hooks.slack.com/***".into()));
        assert_eq!(shown("http://hooks.example.com:8080/a/b?x=1#frag"), Ok("http://hooks.example.com:8080/***".into()));
        assert_eq!(shown("https://relay.example/?token=abc"), Ok("https://relay.example/***".into()));
        assert_eq!(shown("HTTP://127.0.0.1"), Ok("http://127.0.0.1/".into()));
        assert_eq!(shown("http://[::1]:9000/hook"), Ok("http://[::1]:9000/***".into()));
        let endpoint = Endpoint::parse("https://hooks.slack.com/services/x").unwrap();
        assert_eq!((endpoint.authority().as_str(), endpoint.is_https()), ("hooks.slack.com:443", true));
        assert_eq!(format!("{endpoint:?}"), "Endpoint(https://hooks.slack.com/***)");
        assert!(!endpoint.url().as_str().contains('#'));
        for bad in ["ftp://x.example/", "x.example/hook", "http:///", "http://x y/", "https://u:p@x.example/secret", "http://x.example:0x/"] {
            let problem = Endpoint::parse(bad).unwrap_err();
            assert!(!problem.contains("secret") && !problem.contains(bad), "{bad}: {problem}");
        }
    }

    #[test]
    fn settings_are_validated_all_at_once_without_repeating_secrets() {
        assert_eq!(NotifyConfig::default().validate(), Ok(()));
        assert!(NotifyConfig::default().build().unwrap().is_none());
        let bad = NotifyConfig {
            webhook_url: Some("hxxps://hooks.example/T0/s3cret".into()),
            timeout_ms: 0,
            max_attempts: 0,
            backoff_initial_ms: 10,
            backoff_max_ms: 5,
            auth_header: Some("Authorization: s3cret\r\nEvil: 1".into()),
            ca_file: Some("/nonexistent/ca.pem".into()),
            format: PayloadFormat::Slack,
        };
        let problems = bad.validate().unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(problems.iter().all(|p| p.starts_with("notify.") && !p.contains("s3cret")), "{problems:?}");
        let shown = format!("{bad:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn the_auth_header_is_parsed_and_marked_sensitive() {
        let (name, value) = parse_header("X-Api-Key:  k1 ").unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap(), value.is_sensitive()), ("x-api-key", "k1", true));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: v").is_err());
        assert!(parse_header("X-Empty:   ").is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let config = NotifyConfig { webhook_url: Some("https://127.0.0.1/".into()), ca_file: Some(path), ..NotifyConfig::default() };
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("notify.ca_file: ") && problems[0].contains("no PEM certificate"), "{problems:?}");
    }

    #[test]
    fn the_shipped_config_documents_every_notify_option_at_its_default() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join("edgeflow.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let notify: NotifyConfig = table["notify"].clone().try_into().unwrap();
        assert_eq!(notify, NotifyConfig::default());
        let section = &text[text.find("[notify]").unwrap()..];
        let section = &section[..section[1..].find("\n[").map_or(section.len(), |end| end + 1)];
        for option in ["webhook_url", "format", "ca_file", "timeout_ms", "max_attempts", "backoff_initial_ms", "backoff_max_ms", "auth_header"] {
            assert!(section.contains(&format!("{option} =")), "{option} is not in the [notify] section of edgeflow.toml");
        }
    }

    #[test]
    fn the_payload_format_is_read_from_toml() {
        let config: NotifyConfig = toml::from_str("format = \"slack\"\nca_file = \"/etc/edgeflow/ca.pem\"").unwrap();
        assert_eq!((config.format, config.ca_file.as_deref()), (PayloadFormat::Slack, Some(std::path::Path::new("/etc/edgeflow/ca.pem"))));
        assert!(toml::from_str::<NotifyConfig>("format = \"teams\"").is_err());
    }
}

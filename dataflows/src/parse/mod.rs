//! Parse: one Kafka message (or file line) -> a [`CleanRecord`] and its shipper's [`Origin`], or
//! a [`Reject`].
//!
//! [`Decoder`] is built once from `[parse]` and `[clean]`; [`Decoder::decode`] is pure apart
//! from caches, allocation-free for raw lines that are accepted (a shipper's event allocates
//! only for JSON strings with escapes; the matcher's line buffer only for a line longer than
//! 4 KiB and than any before), and never panics on any input.
//!
//! | file          | what it owns                                                           |
//! |---------------|------------------------------------------------------------------------|
//! | `mod.rs`      | `ParseConfig`, `Decoder` (size limits, envelope detection, wiring)     |
//! | `format.rs`   | the `log_format` compiler and line matcher, `Fields`, `Var`            |
//! | `plan.rs`     | the matcher's fast path for the common line (straight-line steps)      |
//! | `directive.rs`| reading a pasted `log_format name escape=... '...';` directive        |
//! | `escape.rs`   | nginx's `escape=default/json/none`: write and undo                     |
//! | `presets.rs`  | `combined`, `main`, `cdn`, `json`                                      |
//! | `envelope.rs` | shipper events around a line: Filebeat, rsyslog, Vector, Fluent Bit   |
//! | `time.rs`     | `$time_local`, `$time_iso8601`, `$msec` -> UTC ms; civil-date maths    |
//! | `net.rs`      | IP addresses, CIDR sets, host names                                    |
//! | `values.rs`   | status, byte counts, durations, cache status, request line             |
//!
//! The policy that turns fields into a record (trusted proxies, domains, accounts) is in
//! `crate::clean`.
//!
//! Decode order, cheapest check first:
//! 1. longer than `max_line_bytes` -> `too_long`, before looking at a byte;
//! 2. one trailing `\n` or `\r\n` dropped; nothing but whitespace -> `empty`;
//! 3. starts (after whitespace) with `{`: a shipper's event (Filebeat, rsyslog, Vector, Fluent
//!    Bit, detected by their keys) whose `message` or `log` is the line. If the format itself
//!    is a JSON object (the `json` preset), the message is first tried as an nginx line, and
//!    an object without a line is reported as that line's mismatch;
//! 4. the line is matched against the format (`bad_format`), then cleaned.

pub mod directive;
pub mod envelope;
pub mod escape;
pub mod format;
pub mod net;
mod plan;
pub mod presets;
pub mod time;
pub mod values;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use self::escape::Escape;
pub use self::format::{Fields, FormatError, LogFormat, Var};
pub use self::plan::LineBuffer;
use self::directive::{is_directive, parse_directive, DirectiveError};
use self::envelope::EnvelopeError;
use self::net::{CidrError, HostError};
use crate::clean::{clean, CleanCache, CleanConfig, CleanRules};
use crate::record::{CleanRecord, Origin, Reject, RejectReason};

/// Which byte count is billed as bandwidth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BytesField {
    /// `$bytes_sent`: everything sent to the client, headers included (what CDNs bill).
    BytesSent,
    /// `$body_bytes_sent`: the response body only.
    BodyBytesSent,
}

impl BytesField {
    pub fn var(self) -> Var {
        match self {
            BytesField::BytesSent => Var::BytesSent,
            BytesField::BodyBytesSent => Var::BodyBytesSent,
        }
    }
}

/// The `[parse]` section of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParseConfig {
    /// A preset name (`combined`, `main`, `cdn`, `json`), the text of an nginx `log_format`
    /// (what is between the quotes), or a whole pasted `log_format name ... '...';` directive.
    /// Default `cdn`.
    pub format: String,
    /// The `escape=` nginx writes the format with. Unset: the directive's `escape=`, else the
    /// preset's (`json` for the json preset), else `default`. Contradicting a directive's
    /// explicit `escape=` or the json preset is an error; the other presets may be overridden
    /// (e.g. `cdn` written with `escape=none`).
    pub escape: Option<Escape>,
    /// Longer messages are rejected `too_long` without being read. Default 65536.
    pub max_line_bytes: usize,
    /// The byte count billed as bandwidth. Unset: `bytes_sent` if the format has it, else
    /// `body_bytes_sent`.
    pub bytes_field: Option<BytesField>,
}

pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;

impl Default for ParseConfig {
    fn default() -> ParseConfig {
        ParseConfig { format: presets::CDN.name.to_owned(), escape: None, max_line_bytes: DEFAULT_MAX_LINE_BYTES, bytes_field: None }
    }
}

impl ParseConfig {
    /// The format text and escaping this configuration selects.
    pub fn resolve_format(&self) -> Result<(String, Escape), ConfigError> {
        let text = self.format.trim();
        // `required`: an escaping the format text cannot do without (a directive's explicit
        // `escape=`, the json preset); otherwise it is only the default.
        let (format, implied, required) = if is_directive(text) {
            let directive = parse_directive(text)?;
            (directive.format, directive.escape, directive.escape.is_some())
        } else if text.contains('$') {
            (self.format.clone(), None, false)
        } else {
            let preset =
                presets::find(text).ok_or_else(|| ConfigError::UnknownPreset { name: text.to_owned(), known: presets::names() })?;
            (preset.format.to_owned(), Some(preset.escape), preset.escape == Escape::Json)
        };
        let escape = match (self.escape, implied) {
            (Some(configured), Some(format)) if required && configured != format => {
                return Err(ConfigError::EscapeConflict { configured: configured.as_str(), format: format.as_str() });
            }
            (configured, implied) => configured.or(implied).unwrap_or_default(),
        };
        Ok((format, escape))
    }
}

/// A problem with `[parse]` or `[clean]`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("parse.format: unknown preset {name:?} (presets: {known}; a custom format contains $variables)")]
    UnknownPreset { name: String, known: String },
    #[error("parse.format: {0}")]
    Directive(#[from] DirectiveError),
    #[error("parse.format: {0}")]
    Format(#[from] FormatError),
    #[error("parse.escape = {configured} contradicts the format's escape={format}")]
    EscapeConflict { configured: &'static str, format: &'static str },
    #[error("parse.max_line_bytes must be at least 1")]
    MaxLineBytes,
    #[error("log format lacks {needed}")]
    MissingVariable { needed: &'static str },
    #[error("parse.bytes_field = {field} but the log format lacks ${field}")]
    BytesFieldMissing { field: &'static str },
    #[error("clean.trusted_proxies: {0}")]
    TrustedProxy(#[from] CidrError),
    #[error("clean.accounts: invalid domain {domain:?}: {error}")]
    AccountDomain { domain: String, error: HostError },
    #[error("clean.accounts: {domain:?} listed twice (domains are compared lower-cased)")]
    DuplicateAccount { domain: String },
    #[error("clean.accounts: empty account name for {domain:?}")]
    EmptyAccount { domain: String },
    #[error("clean.default_domain: invalid domain {domain:?}: {error}")]
    DefaultDomain { domain: String, error: HostError },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<ConfigError>),
}

impl ConfigError {
    /// One error for a list of problems (the list must not be empty to mean anything).
    fn from_problems(mut problems: Vec<ConfigError>) -> ConfigError {
        if problems.len() == 1 {
            problems.remove(0)
        } else {
            ConfigError::Several(problems)
        }
    }

    /// Every individual problem.
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(problems) => problems.iter().collect(),
            single => vec![single],
        }
    }
}

/// A decoded message: the record and, for a shipper's event, where its line came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded<'a> {
    pub record: CleanRecord<'a>,
    pub origin: Option<Origin<'a>>,
}

/// The compiled `[parse]` + `[clean]` configuration and per-stream caches.
#[derive(Clone, Debug)]
pub struct Decoder {
    format: LogFormat,
    rules: CleanRules,
    max_line_bytes: usize,
    cache: CleanCache,
    /// Holds a shipper event's line that had JSON escapes, so records can borrow it.
    message: String,
    /// The matcher's copy of the line (see [`LineBuffer`]).
    buffer: LineBuffer,
}

impl Decoder {
    /// Compiles the format and validates both sections, reporting every problem found.
    pub fn new(parse: &ParseConfig, clean: &CleanConfig) -> Result<Decoder, ConfigError> {
        let mut problems = Vec::new();
        if parse.max_line_bytes == 0 {
            problems.push(ConfigError::MaxLineBytes);
        }
        let format = parse.resolve_format().and_then(|(text, escape)| Ok(LogFormat::compile(&text, escape)?));
        let format = match format {
            Ok(format) => format,
            Err(error) => {
                problems.push(error);
                // Still validate [clean] so every problem is reported at once.
                let placeholder = LogFormat::compile(presets::CDN.format, Escape::Default)?;
                if let Err(more) = CleanRules::new(clean, &placeholder, None) {
                    problems.extend(more);
                }
                return Err(ConfigError::from_problems(problems));
            }
        };
        match CleanRules::new(clean, &format, parse.bytes_field) {
            Ok(rules) if problems.is_empty() => Ok(Decoder {
                format,
                rules,
                max_line_bytes: parse.max_line_bytes,
                cache: CleanCache::default(),
                message: String::new(),
                buffer: LineBuffer::default(),
            }),
            Ok(_) => Err(ConfigError::from_problems(problems)),
            Err(more) => {
                problems.extend(more);
                Err(ConfigError::from_problems(problems))
            }
        }
    }

    pub fn format(&self) -> &LogFormat {
        &self.format
    }

    pub fn rules(&self) -> &CleanRules {
        &self.rules
    }

    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Decodes one Kafka message or file line: a shipper's JSON event or a raw line.
    pub fn decode<'a>(&'a mut self, payload: &'a [u8]) -> Result<Decoded<'a>, Reject> {
        if payload.len() > self.max_line_bytes {
            return Err(Reject::new(
                RejectReason::TooLong,
                format!("message is {} bytes, limit is {}", payload.len(), self.max_line_bytes),
            ));
        }
        let line = strip_line_end(payload);
        let Some(start) = line.iter().position(|byte| !byte.is_ascii_whitespace()) else {
            return Err(Reject::new(RejectReason::Empty, "empty message"));
        };
        let Decoder { format, rules, cache, message, buffer, .. } = self;
        let format: &'a LogFormat = format;
        let rules: &'a CleanRules = rules;

        let mut fields = Fields::new(format.escape());
        if line[start] != b'{' {
            format.parse_into(line, &mut fields, buffer)?;
            return Ok(Decoded { record: clean(&fields, rules, cache)?, origin: None });
        }

        let json = &line[start..];
        let nginx_json = format.is_json_object();
        let line_attempt = if nginx_json { Some(format.parse_into(line, &mut fields, buffer)) } else { None };
        if let Some(Ok(())) = line_attempt {
            return Ok(Decoded { record: clean(&fields, rules, cache)?, origin: None });
        }
        let event = match envelope::decode(json, message) {
            Ok(event) => event,
            Err(error) => {
                return Err(match (line_attempt, error) {
                    // An nginx JSON line that did not match is reported as such.
                    (Some(Err(mismatch)), EnvelopeError::NoMessage) => mismatch,
                    (_, EnvelopeError::NoMessage) => {
                        Reject::new(RejectReason::BadEnvelope, "json object without a message or log line (not a shipper event)")
                    }
                    (_, EnvelopeError::Json(error)) if std::str::from_utf8(json).is_err() => {
                        Reject::new(RejectReason::BadUtf8, format!("invalid utf-8 in json event ({error})"))
                    }
                    (_, error) => Reject::new(RejectReason::BadEnvelope, error.to_string()),
                });
            }
        };
        let inner = strip_line_end(event.line.as_bytes());
        if inner.iter().all(u8::is_ascii_whitespace) {
            return Err(Reject::new(RejectReason::Empty, "shipper event with an empty message"));
        }
        format.parse_into(inner, &mut fields, buffer)?;
        Ok(Decoded { record: clean(&fields, rules, cache)?, origin: event.origin })
    }
}

/// The line without one trailing `\n` or `\r\n`.
fn strip_line_end(payload: &[u8]) -> &[u8] {
    let payload = payload.strip_suffix(b"\n").unwrap_or(payload);
    payload.strip_suffix(b"\r").unwrap_or(payload)
}

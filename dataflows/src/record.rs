//! Record types shared by the stages: what `parse` + `clean` hand to `key`, and what a
//! rejected message turns into.
//!
//! `CleanRecord` borrows from the message it came from so the hot path (parse, clean, local
//! combine) allocates nothing for records whose keys are already known.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A validated access-log record in UTC, ready to be keyed and windowed.
#[derive(Clone, Debug, PartialEq)]
pub struct CleanRecord<'a> {
    /// Request time from the log line (never Kafka's or Filebeat's), UTC, Unix milliseconds.
    pub event_ms: i64,
    /// Host name: lower-cased, port stripped.
    pub domain: Cow<'a, str>,
    /// Billing account the domain maps to, if the configuration maps it.
    pub account: Option<&'a str>,
    /// Client address after the trusted-proxy rule.
    pub client_ip: IpAddr,
    pub method: Method,
    /// HTTP status, 100..=599.
    pub status: u16,
    /// Response bytes counted for bandwidth (`$bytes_sent` or `$body_bytes_sent`, per config).
    pub bytes: u64,
    /// `$request_time` in microseconds, if the format has it.
    pub request_time_us: Option<u32>,
    /// `$upstream_response_time` in microseconds (last upstream tried), if present and not `-`.
    pub upstream_time_us: Option<u32>,
    /// `$upstream_cache_status`, `None` if the format lacks it.
    pub cache: Option<CacheStatus>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Connect,
    Trace,
    /// A syntactically valid token nginx accepted that is not one of the above (e.g. PROPFIND).
    Other,
}

/// nginx's `$upstream_cache_status` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CacheStatus {
    Hit,
    Miss,
    Bypass,
    Expired,
    Stale,
    Updating,
    Revalidated,
    /// `-`: the request was not eligible for caching.
    None,
}

impl CacheStatus {
    /// HIT-like statuses served from cache without touching the origin.
    pub fn is_hit(self) -> bool {
        matches!(self, CacheStatus::Hit | CacheStatus::Stale | CacheStatus::Updating | CacheStatus::Revalidated)
    }
}

/// Where a shipper's event came from; with the offset it identifies one line, which is how
/// re-sent events are recognised (the keys per shipper: `parse::envelope`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin<'a> {
    /// Filebeat's `agent.id`, else the host name (`host.name`, `host`, `hostname`,
    /// `beat.hostname` in 5.x).
    pub shipper: Cow<'a, str>,
    /// `log.file.path`, else `file` (rsyslog, Vector, Fluent Bit), else `source` (Filebeat 5.x).
    pub path: Cow<'a, str>,
    /// `log.offset`, else `offset`: the byte offset of the line in its file.
    pub offset: u64,
}

/// Why a message could not be used. The code (`as_str`) is what the rejects table and the
/// `edgeflow_rejects_total{reason}` counter carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RejectReason {
    /// Zero-length (or whitespace-only) message.
    Empty,
    /// Longer than the configured maximum line length.
    TooLong,
    /// Not valid UTF-8 where text was required.
    BadUtf8,
    /// Looked like a shipper's JSON event but was not valid JSON or lacked the line.
    BadEnvelope,
    /// The line does not match the configured log_format.
    BadFormat,
    /// The timestamp field is missing or unparseable.
    BadTime,
    /// No usable client address.
    BadIp,
    /// No usable domain (`$host`/`$server_name` empty or invalid).
    BadDomain,
    /// Request line or method unusable.
    BadRequest,
    /// Status missing or outside 100..=599.
    BadStatus,
    /// Byte count missing or not a number.
    BadBytes,
    /// A timing field present but not a number.
    BadTiming,
    /// The record's window had already retired when it arrived.
    TooLate,
    /// The event time is more than `window.max_future_secs` ahead of the wall clock.
    FutureTime,
    /// The event time jumped more than `window.max_time_jump_secs` ahead of its partition and
    /// later records did not confirm the jump.
    TimeOutlier,
    /// `clean.domains` is set and the domain is not in it.
    UnknownDomain,
    /// The partition had admitted `clean.new_domains_per_minute` new domains in this minute.
    DomainFlood,
}

impl RejectReason {
    pub const ALL: [RejectReason; 17] = [
        RejectReason::Empty,
        RejectReason::TooLong,
        RejectReason::BadUtf8,
        RejectReason::BadEnvelope,
        RejectReason::BadFormat,
        RejectReason::BadTime,
        RejectReason::BadIp,
        RejectReason::BadDomain,
        RejectReason::BadRequest,
        RejectReason::BadStatus,
        RejectReason::BadBytes,
        RejectReason::BadTiming,
        RejectReason::TooLate,
        RejectReason::FutureTime,
        RejectReason::TimeOutlier,
        RejectReason::UnknownDomain,
        RejectReason::DomainFlood,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Empty => "empty",
            RejectReason::TooLong => "too_long",
            RejectReason::BadUtf8 => "bad_utf8",
            RejectReason::BadEnvelope => "bad_envelope",
            RejectReason::BadFormat => "bad_format",
            RejectReason::BadTime => "bad_time",
            RejectReason::BadIp => "bad_ip",
            RejectReason::BadDomain => "bad_domain",
            RejectReason::BadRequest => "bad_request",
            RejectReason::BadStatus => "bad_status",
            RejectReason::BadBytes => "bad_bytes",
            RejectReason::BadTiming => "bad_timing",
            RejectReason::TooLate => "too_late",
            RejectReason::FutureTime => "future_time",
            RejectReason::TimeOutlier => "time_outlier",
            RejectReason::UnknownDomain => "unknown_domain",
            RejectReason::DomainFlood => "domain_flood",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected message: the reason code and a human-readable detail for the rejects table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    pub detail: Cow<'static, str>,
}

impl Reject {
    pub fn new(reason: RejectReason, detail: impl Into<Cow<'static, str>>) -> Self {
        Reject { reason, detail: detail.into() }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for Reject {}

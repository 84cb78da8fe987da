//! Scalar log values: status, byte counts, durations, cache status, the request line.
//!
//! Contract: each function reads the raw text nginx wrote for one variable and either returns
//! the typed value or a [`ValueError`]; none allocates. Digits only, no signs, no spaces:
//! nginx writes these values itself, so anything else means a misaligned or forged line.
//! `-` (nginx's "no value") is `None` for durations, an error for status and bytes (nginx
//! always writes a number there, `0` when nothing was sent).

use thiserror::Error;

use crate::record::{CacheStatus, Method};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("not a number")]
    NotANumber,
    #[error("status outside 100..=599")]
    StatusRange,
    #[error("number too large")]
    Overflow,
    #[error("not a duration in seconds")]
    NotADuration,
    #[error("unknown cache status")]
    UnknownCacheStatus,
}

/// An HTTP status, 100..=599.
pub fn parse_status(raw: &[u8]) -> Result<u16, ValueError> {
    let &[hundreds, tens, ones] = raw else {
        return Err(if raw.iter().all(u8::is_ascii_digit) && !raw.is_empty() { ValueError::StatusRange } else { ValueError::NotANumber });
    };
    if !(hundreds.is_ascii_digit() && tens.is_ascii_digit() && ones.is_ascii_digit()) {
        return Err(ValueError::NotANumber);
    }
    let status = u16::from(hundreds - b'0') * 100 + u16::from(tens - b'0') * 10 + u16::from(ones - b'0');
    if (100..=599).contains(&status) {
        Ok(status)
    } else {
        Err(ValueError::StatusRange)
    }
}

/// A byte count (`$bytes_sent`, `$body_bytes_sent`).
pub fn parse_bytes(raw: &[u8]) -> Result<u64, ValueError> {
    if raw.is_empty() {
        return Err(ValueError::NotANumber);
    }
    // Up to 19 digits cannot overflow: no checked arithmetic per digit.
    if raw.len() <= 19 {
        let mut value = 0u64;
        for &byte in raw {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                return Err(ValueError::NotANumber);
            }
            value = value * 10 + u64::from(digit);
        }
        return Ok(value);
    }
    raw.iter().try_fold(0u64, |acc, &byte| {
        if !byte.is_ascii_digit() {
            return Err(ValueError::NotANumber);
        }
        acc.checked_mul(10).and_then(|acc| acc.checked_add(u64::from(byte - b'0'))).ok_or(ValueError::Overflow)
    })
}

const US_PER_SECOND: u64 = 1_000_000;

/// Seconds with a decimal fraction (`0.012`, as nginx writes `$request_time`) in microseconds,
/// saturating at `u32::MAX` (about 71 minutes); digits past the sixth decimal are dropped.
/// `-` or empty (no value) is `None`.
pub fn parse_duration_us(raw: &[u8]) -> Result<Option<u32>, ValueError> {
    if matches!(raw, b"-" | b"") {
        return Ok(None);
    }
    // What nginx writes: one whole-seconds digit and milliseconds (`0.012`).
    if let &[whole, b'.', a, b, c] = raw {
        let digits = [whole, a, b, c].map(|byte| byte.wrapping_sub(b'0'));
        if digits.iter().all(|&digit| digit <= 9) {
            let [whole, a, b, c] = digits.map(u32::from);
            return Ok(Some(whole * 1_000_000 + (a * 100 + b * 10 + c) * 1_000));
        }
    }
    // One pass: whole seconds, then up to six decimals; saturates instead of overflowing.
    let mut seconds = 0u64;
    let mut micros = 0u64;
    let mut whole_digits = 0;
    let mut fraction_digits = None;
    for &byte in raw {
        match (byte, &mut fraction_digits) {
            (b'0'..=b'9', None) => {
                seconds = seconds.saturating_mul(10).saturating_add(u64::from(byte - b'0'));
                whole_digits += 1;
            }
            (b'0'..=b'9', Some(count)) => {
                if *count < 6 {
                    micros = micros * 10 + u64::from(byte - b'0');
                }
                *count += 1;
            }
            (b'.', None) if whole_digits > 0 => fraction_digits = Some(0),
            _ => return Err(ValueError::NotADuration),
        }
    }
    if whole_digits == 0 || fraction_digits == Some(0) {
        return Err(ValueError::NotADuration);
    }
    // `micros` holds the first `kept` decimals: scale them to six.
    let kept = fraction_digits.unwrap_or(0).min(6);
    let micros = micros * [1_000_000, 100_000, 10_000, 1_000, 100, 10, 1][kept];
    let total = seconds.saturating_mul(US_PER_SECOND).saturating_add(micros);
    Ok(Some(u32::try_from(total).unwrap_or(u32::MAX)))
}

/// `$upstream_response_time`: one duration per upstream tried, separated by `, ` (next upstream
/// after a failure) or ` : ` (internal redirect to another upstream group). The last one is
/// the upstream that produced the response; its `-` (not connected) is `None`.
pub fn parse_upstream_time_us(raw: &[u8]) -> Result<Option<u32>, ValueError> {
    // A loop, not memrchr2: the text is a few bytes and the call would cost more.
    let last = match raw.iter().rposition(|&byte| byte == b',' || byte == b':') {
        Some(separator) => raw[separator + 1..].trim_ascii(),
        None => raw,
    };
    parse_duration_us(last)
}

/// `$upstream_cache_status`, case-insensitive; `-` or empty (not cacheable) is
/// [`CacheStatus::None`].
pub fn parse_cache_status(raw: &[u8]) -> Result<CacheStatus, ValueError> {
    // As nginx writes them.
    match raw {
        b"HIT" => return Ok(CacheStatus::Hit),
        b"MISS" => return Ok(CacheStatus::Miss),
        b"-" => return Ok(CacheStatus::None),
        b"EXPIRED" => return Ok(CacheStatus::Expired),
        b"STALE" => return Ok(CacheStatus::Stale),
        _ => {}
    }
    // The length alone leaves one candidate.
    let (name, status): (&[u8], CacheStatus) = match raw.len() {
        0 => return Ok(CacheStatus::None),
        1 => (b"-", CacheStatus::None),
        3 => (b"HIT", CacheStatus::Hit),
        4 => (b"MISS", CacheStatus::Miss),
        5 => (b"STALE", CacheStatus::Stale),
        6 => (b"BYPASS", CacheStatus::Bypass),
        7 => (b"EXPIRED", CacheStatus::Expired),
        8 => (b"UPDATING", CacheStatus::Updating),
        11 => (b"REVALIDATED", CacheStatus::Revalidated),
        _ => return Err(ValueError::UnknownCacheStatus),
    };
    if raw.eq_ignore_ascii_case(name) {
        Ok(status)
    } else {
        Err(ValueError::UnknownCacheStatus)
    }
}

/// The first word of a request line: what [`parse_method`] reads.
pub fn request_method(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"GET ") {
        return &raw[..3];
    }
    match raw.iter().position(|&byte| byte == b' ') {
        Some(space) => &raw[..space],
        None => raw,
    }
}

/// The method token, as nginx's request parser accepts it (`A-Z`, `_`, `-`); case matters.
/// Anything else, including a known method in lower case, is [`Method::Other`].
pub fn parse_method(token: &[u8]) -> Method {
    match token {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        b"POST" => Method::Post,
        b"PUT" => Method::Put,
        b"DELETE" => Method::Delete,
        b"PATCH" => Method::Patch,
        b"OPTIONS" => Method::Options,
        b"CONNECT" => Method::Connect,
        b"TRACE" => Method::Trace,
        _ => Method::Other,
    }
}

/// `$request` split into its parts. nginx logs the raw request line, so for requests it
/// rejected (status 400, 408, ...) this can be anything: `-`, empty, TLS bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLine<'l> {
    /// Up to the first space (the whole text if there is none).
    pub method: &'l [u8],
    /// Between the method and the protocol; may contain spaces (nginx tolerates them).
    pub uri: &'l [u8],
    /// The last word if it starts with `HTTP/`; `None` for HTTP/0.9 and garbage.
    pub protocol: Option<&'l [u8]>,
}

pub fn split_request(raw: &[u8]) -> RequestLine<'_> {
    let Some(first_space) = memchr::memchr(b' ', raw) else {
        return RequestLine { method: raw, uri: b"", protocol: None };
    };
    let method = &raw[..first_space];
    let rest = &raw[first_space + 1..];
    match memchr::memrchr(b' ', rest) {
        Some(last_space) if rest[last_space + 1..].starts_with(b"HTTP/") => {
            RequestLine { method, uri: &rest[..last_space], protocol: Some(&rest[last_space + 1..]) }
        }
        _ => RequestLine { method, uri: rest, protocol: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status() {
        assert_eq!(parse_status(b"200"), Ok(200));
        assert_eq!(parse_status(b"100"), Ok(100));
        assert_eq!(parse_status(b"599"), Ok(599));
        assert_eq!(parse_status(b"499"), Ok(499));
        assert_eq!(parse_status(b"099"), Err(ValueError::StatusRange));
        assert_eq!(parse_status(b"000"), Err(ValueError::StatusRange));
        assert_eq!(parse_status(b"600"), Err(ValueError::StatusRange));
        assert_eq!(parse_status(b"1000"), Err(ValueError::StatusRange));
        assert_eq!(parse_status(b"20"), Err(ValueError::StatusRange));
        assert_eq!(parse_status(b"-"), Err(ValueError::NotANumber));
        assert_eq!(parse_status(b""), Err(ValueError::NotANumber));
        assert_eq!(parse_status(b"2x0"), Err(ValueError::NotANumber));
        assert_eq!(parse_status(b" 200"), Err(ValueError::NotANumber));
    }

    #[test]
    fn nginx_durations_all_read_right() {
        for whole in 0..10u32 {
            for millis in 0..1000u32 {
                let text = format!("{whole}.{millis:03}");
                assert_eq!(parse_duration_us(text.as_bytes()), Ok(Some(whole * 1_000_000 + millis * 1_000)), "{text}");
            }
        }
        assert_eq!(parse_duration_us(b"0.0x2"), Err(ValueError::NotADuration));
        assert_eq!(parse_duration_us(b"x.012"), Err(ValueError::NotADuration));
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes(b"0"), Ok(0));
        assert_eq!(parse_bytes(b"1048576"), Ok(1_048_576));
        assert_eq!(parse_bytes(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_bytes(b"18446744073709551616"), Err(ValueError::Overflow));
        assert_eq!(parse_bytes(b"-"), Err(ValueError::NotANumber));
        assert_eq!(parse_bytes(b""), Err(ValueError::NotANumber));
        assert_eq!(parse_bytes(b"-1"), Err(ValueError::NotANumber));
        assert_eq!(parse_bytes(b"+1"), Err(ValueError::NotANumber));
        assert_eq!(parse_bytes(b"1.5"), Err(ValueError::NotANumber));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us(b"0.012"), Ok(Some(12_000)));
        assert_eq!(parse_duration_us(b"0.000"), Ok(Some(0)));
        assert_eq!(parse_duration_us(b"12.345"), Ok(Some(12_345_000)));
        assert_eq!(parse_duration_us(b"1"), Ok(Some(1_000_000)));
        assert_eq!(parse_duration_us(b"0.5"), Ok(Some(500_000)));
        assert_eq!(parse_duration_us(b"0.1234567"), Ok(Some(123_456)));
        assert_eq!(parse_duration_us(b"4294.967295"), Ok(Some(u32::MAX)));
        assert_eq!(parse_duration_us(b"4294.967296"), Ok(Some(u32::MAX)));
        assert_eq!(parse_duration_us(b"99999999999999999999999.000"), Ok(Some(u32::MAX)));
        assert_eq!(parse_duration_us(b"-"), Ok(None));
        assert_eq!(parse_duration_us(b""), Ok(None));
        for bad in [&b"abc"[..], b"1.", b".5", b"1.2.3", b"-1", b"1 ", b"0,012"] {
            assert_eq!(parse_duration_us(bad), Err(ValueError::NotADuration), "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn upstream_times_take_the_last_upstream() {
        assert_eq!(parse_upstream_time_us(b"0.034"), Ok(Some(34_000)));
        assert_eq!(parse_upstream_time_us(b"0.012, 0.034"), Ok(Some(34_000)));
        assert_eq!(parse_upstream_time_us(b"0.012 : 0.020"), Ok(Some(20_000)));
        assert_eq!(parse_upstream_time_us(b"0.001, 0.002 : 0.003"), Ok(Some(3_000)));
        assert_eq!(parse_upstream_time_us(b"0.012, -"), Ok(None));
        assert_eq!(parse_upstream_time_us(b"-"), Ok(None));
        assert_eq!(parse_upstream_time_us(b"0.012,"), Ok(None));
        assert_eq!(parse_upstream_time_us(b"0.012, x"), Err(ValueError::NotADuration));
    }

    #[test]
    fn cache_status() {
        assert_eq!(parse_cache_status(b"HIT"), Ok(CacheStatus::Hit));
        assert_eq!(parse_cache_status(b"hit"), Ok(CacheStatus::Hit));
        assert_eq!(parse_cache_status(b"Revalidated"), Ok(CacheStatus::Revalidated));
        assert_eq!(parse_cache_status(b"STALE"), Ok(CacheStatus::Stale));
        assert_eq!(parse_cache_status(b"UPDATING"), Ok(CacheStatus::Updating));
        assert_eq!(parse_cache_status(b"EXPIRED"), Ok(CacheStatus::Expired));
        assert_eq!(parse_cache_status(b"BYPASS"), Ok(CacheStatus::Bypass));
        assert_eq!(parse_cache_status(b"MISS"), Ok(CacheStatus::Miss));
        assert_eq!(parse_cache_status(b"-"), Ok(CacheStatus::None));
        assert_eq!(parse_cache_status(b""), Ok(CacheStatus::None));
        assert_eq!(parse_cache_status(b"HITS"), Err(ValueError::UnknownCacheStatus));
        assert_eq!(parse_cache_status(b"HIX"), Err(ValueError::UnknownCacheStatus));
        assert_eq!(parse_cache_status(b"+"), Err(ValueError::UnknownCacheStatus));
    }

    #[test]
    fn methods() {
        assert_eq!(parse_method(b"GET"), Method::Get);
        assert_eq!(parse_method(b"OPTIONS"), Method::Options);
        assert_eq!(parse_method(b"PROPFIND"), Method::Other);
        assert_eq!(parse_method(b"get"), Method::Other);
        assert_eq!(parse_method(b"-"), Method::Other);
        assert_eq!(parse_method(b""), Method::Other);
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            split_request(b"GET /static/app.js HTTP/1.1"),
            RequestLine { method: b"GET", uri: b"/static/app.js", protocol: Some(b"HTTP/1.1") }
        );
        assert_eq!(split_request(b"GET /a b HTTP/2.0"), RequestLine { method: b"GET", uri: b"/a b", protocol: Some(b"HTTP/2.0") });
        assert_eq!(split_request(b"GET /"), RequestLine { method: b"GET", uri: b"/", protocol: None });
        assert_eq!(split_request(b"-"), RequestLine { method: b"-", uri: b"", protocol: None });
        assert_eq!(split_request(b""), RequestLine { method: b"", uri: b"", protocol: None });
        for raw in [&b"GET /a b HTTP/2.0"[..], b"GET", b"", b" x"] {
            assert_eq!(request_method(raw), split_request(raw).method);
        }
        let tls = split_request(b"\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03");
        assert_eq!(parse_method(tls.method), Method::Other);
    }
}

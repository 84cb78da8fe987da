//! Scalar log values: status, byte counts, durations, cache status, the request line.
//!
//! Contract: each function reads the raw text nginx wrote for one variable and either returns
//! the typed value or a [`ValueError`]; none allocates. Digits only, no signs, no spaces:
//! nginx writes these values itself, so anything else means a misaligned or forged line.
//! `-` (nginx's "no value") is `None` for durations and an error for status. A byte count of
//! `-` is 0: nginx always writes a number there, but Apache's `%b` and other servers' and CDN
//! exporters' combined logs write `-` for a response without a body (mostly 304s), and those
//! requests must be counted.

use std::hint::select_unpredictable;

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

/// Each byte of a word: `0x01` times the byte (SWAR constants).
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of each byte of a word.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `word` that is an ASCII digit, exactly (no carries cross
/// bytes: the arithmetic is done on the low seven bits of each byte).
#[inline(always)]
pub(crate) const fn digit_bits(word: u64) -> u64 {
    let low = word & !HIGH;
    // High bit set iff the low seven bits are >= '0': `| HIGH` keeps every byte from borrowing.
    let at_least_zero = (low | HIGH).wrapping_sub(b'0' as u64 * ONES);
    // High bit set iff the low seven bits are > '9': at most 0x7f + 0x46, no carry out.
    let above_nine = low + (0x80 - b'9' as u64 - 1) * ONES;
    at_least_zero & !above_nine & !word & HIGH
}

/// The high bit of every byte of `word` equal to `byte`, exactly.
#[inline(always)]
pub(crate) const fn byte_bits(word: u64, byte: u8) -> u64 {
    let diff = word ^ (byte as u64 * ONES);
    // High bit set iff the byte is non-zero: low seven bits + 0x7f cannot carry out of a byte.
    !(((diff & !HIGH) + (!HIGH)) | diff) & HIGH
}

/// One bit per byte (bit `i` for byte `i`) of a word from [`digit_bits`] / [`byte_bits`].
#[inline(always)]
pub(crate) const fn byte_mask(bits: u64) -> u32 {
    // Bit 8i moves to bit 56 + i (the multiplier's bits 7(8 - i)); no two products overlap.
    ((bits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

/// The first `len` bytes of a word (`len` in 0..=8).
#[inline(always)]
pub(crate) const fn low_bytes(len: usize) -> u64 {
    if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * len)) - 1
    }
}

/// `raw` (at most 8 bytes) as a little-endian word, zero-padded; reads only inside `raw`.
#[inline(always)]
pub(crate) fn word_upto8(raw: &[u8]) -> u64 {
    let len = raw.len();
    debug_assert!(len <= 8);
    if len >= 4 {
        // Two 4-byte reads, overlapping unless `len` is 8.
        let head = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let tail = u32::from_le_bytes([raw[len - 4], raw[len - 3], raw[len - 2], raw[len - 1]]);
        u64::from(head) | u64::from(tail) << (8 * (len - 4))
    } else if len > 0 {
        // First, middle and last byte: every byte of 1 to 3, some of them twice.
        u64::from(raw[0]) | u64::from(raw[len / 2]) << (8 * (len / 2)) | u64::from(raw[len - 1]) << (8 * (len - 1))
    } else {
        0
    }
}

/// The 8 bytes of `raw` at `at` as a little-endian word.
#[inline(always)]
pub(crate) fn word_at(raw: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&raw[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The number written by 8 decimal digit values (0..=9, one per byte, the first byte the most
/// significant digit).
#[inline(always)]
const fn eight_digits(digits: u64) -> u64 {
    // Pairs, then quads, then all eight; each step multiplies two neighbours at once.
    let pairs = digits.wrapping_mul(10 << 8 | 1) >> 8 & 0x00ff_00ff_00ff_00ff;
    let quads = pairs.wrapping_mul(100 << 16 | 1) >> 16 & 0x0000_ffff_0000_ffff;
    quads.wrapping_mul(10_000 << 32 | 1) >> 32
}

/// The value of `raw`, 1 to 8 bytes, if all are ASCII digits.
#[inline(always)]
fn digits_upto8(raw: &[u8]) -> Option<u64> {
    let len = raw.len();
    debug_assert!((1..=8).contains(&len));
    let word = word_upto8(raw);
    let used = low_bytes(len);
    if digit_bits(word) & used != HIGH & used {
        return None;
    }
    // Digit values, moved up so the padding becomes leading zeros.
    Some(eight_digits(((word ^ (b'0' as u64 * ONES)) & used) << (64 - 8 * len)))
}

/// A byte count (`$bytes_sent`, `$body_bytes_sent`); `-` (nothing sent, as Apache writes it)
/// is 0.
pub fn parse_bytes(raw: &[u8]) -> Result<u64, ValueError> {
    let len = raw.len();
    // 1 to 8 digits (every realistic count): one word.
    if len.wrapping_sub(1) < 8 {
        return match digits_upto8(raw) {
            Some(value) => Ok(value),
            None => not_digits(raw),
        };
    }
    // 9 to 16 digits: the last 8, then what comes before them.
    if len.wrapping_sub(9) < 8 {
        let tail = word_at(raw, len - 8);
        return match (digits_upto8(&raw[..len - 8]), digit_bits(tail) == HIGH) {
            (Some(head), true) => Ok(head * 100_000_000 + eight_digits(tail ^ (b'0' as u64 * ONES))),
            _ => Err(ValueError::NotANumber),
        };
    }
    parse_bytes_slow(raw)
}

/// [`parse_bytes`] for 1 to 8 bytes that are not all digits: only `-` is a count. Out of line, so
/// the digits path stays one word-sized check.
#[cold]
#[inline(never)]
fn not_digits(raw: &[u8]) -> Result<u64, ValueError> {
    if raw == b"-" {
        Ok(0)
    } else {
        Err(ValueError::NotANumber)
    }
}

/// [`parse_bytes`] for empty text and 17 or more bytes.
#[cold]
#[inline(never)]
fn parse_bytes_slow(raw: &[u8]) -> Result<u64, ValueError> {
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

/// `d.ddd` (what nginx writes: one whole-seconds digit and milliseconds) in microseconds, read
/// from the five bytes as one word: `None` for any other length or shape.
#[inline(always)]
fn nginx_duration_us(raw: &[u8]) -> Option<u32> {
    let &[whole, dot, a, b, c] = raw else {
        return None;
    };
    // Digit values, and 0 where the dot belongs.
    let digits = u32::from_le_bytes([whole, dot, a, b]) ^ u32::from_le_bytes(*b"0.00");
    let last = c.wrapping_sub(b'0');
    // A byte above 9 gets its high bit set by the addition (or had it already).
    let bad = (digits.wrapping_add(0x7676_7676) | digits) & 0x8080_8080 | digits & 0xff00 | u32::from(last > 9);
    if bad != 0 {
        return None;
    }
    let millis = (digits >> 16 & 0xff) * 100 + (digits >> 24) * 10 + u32::from(last);
    Some((digits & 0xff) * 1_000_000 + millis * 1_000)
}

/// Seconds with a decimal fraction (`0.012`, as nginx writes `$request_time`) in microseconds,
/// saturating at `u32::MAX` (about 71 minutes); digits past the sixth decimal are dropped.
/// `-` or empty (no value) is `None`.
#[inline]
pub fn parse_duration_us(raw: &[u8]) -> Result<Option<u32>, ValueError> {
    if let Some(us) = nginx_duration_us(raw) {
        return Ok(Some(us));
    }
    parse_duration_other(raw)
}

/// [`parse_duration_us`] for everything but `d.ddd`.
#[inline(never)]
fn parse_duration_other(raw: &[u8]) -> Result<Option<u32>, ValueError> {
    if matches!(raw, b"-" | b"") {
        return Ok(None);
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
#[inline]
pub fn parse_upstream_time_us(raw: &[u8]) -> Result<Option<u32>, ValueError> {
    // One upstream (the common case): no separator to look for.
    if let Some(us) = nginx_duration_us(raw) {
        return Ok(Some(us));
    }
    if raw == b"-" {
        return Ok(None);
    }
    parse_upstream_list(raw)
}

/// [`parse_upstream_time_us`] for a list, or a value not in nginx's `d.ddd` shape.
#[inline(never)]
fn parse_upstream_list(raw: &[u8]) -> Result<Option<u32>, ValueError> {
    // A loop, not memrchr2: the text is a few bytes and the call would cost more.
    let last = match raw.iter().rposition(|&byte| byte == b',' || byte == b':') {
        Some(separator) => raw[separator + 1..].trim_ascii(),
        None => raw,
    };
    parse_duration_us(last)
}

/// `$upstream_cache_status`, case-insensitive; `-` or empty (not cacheable) is
/// [`CacheStatus::None`].
#[inline]
pub fn parse_cache_status(raw: &[u8]) -> Result<CacheStatus, ValueError> {
    let len = raw.len();
    if len <= 8 {
        // The length alone leaves one candidate: compare it as one word, letters folded to
        // lower case (`| 0x20` only equates a letter with its other case).
        let (name, fold, status) = CACHE_BY_LEN[len];
        return match status {
            Some(status) if word_upto8(raw) | fold == name => Ok(status),
            _ => Err(ValueError::UnknownCacheStatus),
        };
    }
    if raw.eq_ignore_ascii_case(b"REVALIDATED") {
        Ok(CacheStatus::Revalidated)
    } else {
        Err(ValueError::UnknownCacheStatus)
    }
}

/// By length (0..=8): the lower-cased name as a word, the case-folding bits of its letters,
/// and the status; `None` where no status has that length.
const CACHE_BY_LEN: [(u64, u64, Option<CacheStatus>); 9] = {
    const fn entry(name: &[u8], status: CacheStatus) -> (u64, u64, Option<CacheStatus>) {
        let mut word = 0u64;
        let mut fold = 0u64;
        let mut at = 0;
        while at < name.len() {
            let letter = if name[at].is_ascii_alphabetic() { 0x20 } else { 0 };
            word |= ((name[at] | letter) as u64) << (8 * at);
            fold |= (letter as u64) << (8 * at);
            at += 1;
        }
        (word, fold, Some(status))
    }
    let none = (0, 0, None);
    [
        entry(b"", CacheStatus::None),
        entry(b"-", CacheStatus::None),
        none,
        entry(b"HIT", CacheStatus::Hit),
        entry(b"MISS", CacheStatus::Miss),
        entry(b"STALE", CacheStatus::Stale),
        entry(b"BYPASS", CacheStatus::Bypass),
        entry(b"EXPIRED", CacheStatus::Expired),
        entry(b"UPDATING", CacheStatus::Updating),
    ]
};

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
#[inline]
pub fn parse_method(token: &[u8]) -> Method {
    if token.len() > 7 {
        return Method::Other;
    }
    method_of_word(word_upto8(token), token.len())
}

/// The method of the first word of `$request` (what `parse_method(request_method(raw))`
/// gives), reading the first 8 bytes as one word when there are that many.
#[inline]
pub fn parse_request_method(raw: &[u8]) -> Method {
    if raw.len() < 8 {
        return parse_method(request_method(raw));
    }
    let word = word_at(raw, 0);
    // No space in the first 8 bytes: a token of 8 or more bytes, no method we know.
    let len = byte_mask(byte_bits(word, b' ')).trailing_zeros() as usize;
    if len > 7 {
        return Method::Other;
    }
    method_of_word(word & low_bytes(len), len)
}

/// The method whose name is `word` (zero-padded, `len` of 0..=7 bytes): both candidates of that
/// length compared at once, no branch on the bytes.
#[inline(always)]
fn method_of_word(word: u64, len: usize) -> Method {
    let [(first, first_method), (second, second_method)] = METHODS_BY_LEN[len & 7];
    // Selects, not branches: which method comes next is up to the clients.
    select_unpredictable(word == first, first_method, select_unpredictable(word == second, second_method, Method::Other))
}

/// By length (0..=7): the (at most two) method names of that length as zero-padded words.
/// Unused slots hold `u64::MAX`, which no padded word of 7 bytes or fewer equals.
const METHODS_BY_LEN: [[(u64, Method); 2]; 8] = {
    const fn word(name: &[u8]) -> u64 {
        let mut word = 0u64;
        let mut at = 0;
        while at < name.len() {
            word |= (name[at] as u64) << (8 * at);
            at += 1;
        }
        word
    }
    let none = (u64::MAX, Method::Other);
    [
        [none, none],
        [none, none],
        [none, none],
        [(word(b"GET"), Method::Get), (word(b"PUT"), Method::Put)],
        [(word(b"HEAD"), Method::Head), (word(b"POST"), Method::Post)],
        [(word(b"PATCH"), Method::Patch), (word(b"TRACE"), Method::Trace)],
        [(word(b"DELETE"), Method::Delete), none],
        [(word(b"OPTIONS"), Method::Options), (word(b"CONNECT"), Method::Connect)],
    ]
};

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
        assert_eq!(parse_bytes(b"-"), Ok(0), "Apache's %b for no body");
        assert_eq!(parse_bytes(b""), Err(ValueError::NotANumber));
        assert_eq!(parse_bytes(b"--"), Err(ValueError::NotANumber));
        assert_eq!(parse_bytes(b"- "), Err(ValueError::NotANumber));
        assert_eq!(parse_bytes(b"-0"), Err(ValueError::NotANumber));
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
    fn swar_byte_classes_are_exact() {
        // Every byte value at every position, next to bytes that would carry or borrow.
        for byte in 0..=255u8 {
            for at in 0..8 {
                for filler in [0u8, b'0', b'9', b'.', 0x7f, 0x80, 0xff] {
                    let mut bytes = [filler; 8];
                    bytes[at] = byte;
                    let word = u64::from_le_bytes(bytes);
                    let digits = bytes.iter().enumerate().fold(0, |mask, (i, b)| mask | u32::from(b.is_ascii_digit()) << i);
                    let dots = bytes.iter().enumerate().fold(0, |mask, (i, &b)| mask | u32::from(b == b'.') << i);
                    assert_eq!(byte_mask(digit_bits(word)), digits, "{bytes:?}");
                    assert_eq!(byte_mask(byte_bits(word, b'.')), dots, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn short_reads_cover_every_length() {
        let text = b"12345678";
        for len in 0..=8 {
            let mut padded = [0u8; 8];
            padded[..len].copy_from_slice(&text[..len]);
            assert_eq!(word_upto8(&text[..len]), u64::from_le_bytes(padded), "{len}");
        }
    }

    /// The digit loop the word-at-a-time [`parse_bytes`] replaced, with `-` as 0: the reference.
    fn parse_bytes_reference(raw: &[u8]) -> Result<u64, ValueError> {
        if raw == b"-" {
            return Ok(0);
        }
        if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
            return Err(ValueError::NotANumber);
        }
        raw.iter().try_fold(0u64, |acc, &byte| {
            acc.checked_mul(10).and_then(|acc| acc.checked_add(u64::from(byte - b'0'))).ok_or(ValueError::Overflow)
        })
    }

    #[test]
    fn bytes_at_every_length() {
        let digits = b"98765432109876543210";
        for len in 0..=digits.len() {
            let raw = &digits[..len];
            assert_eq!(parse_bytes(raw), parse_bytes_reference(raw), "{}", raw.escape_ascii());
            // One non-digit at each position, the first and last byte included.
            for at in 0..len {
                let mut bad = raw.to_vec();
                for byte in [b'/', b':', b' ', b'-', 0, 0x80 | b'5'] {
                    bad[at] = byte;
                    // A lone `-` is Apache's "no body"; every other text with a non-digit is refused.
                    let expected = if bad == b"-" { Ok(0) } else { Err(ValueError::NotANumber) };
                    assert_eq!(parse_bytes(&bad), expected, "{}", bad.escape_ascii());
                }
            }
        }
        assert_eq!(parse_bytes(b"12345678"), Ok(12_345_678));
        assert_eq!(parse_bytes(b"123456789"), Ok(123_456_789));
        assert_eq!(parse_bytes(b"00000001"), Ok(1));
        assert_eq!(parse_bytes(b"9999999999999999"), Ok(9_999_999_999_999_999));
        assert_eq!(parse_bytes(b"12345678901234567"), Ok(12_345_678_901_234_567));
    }

    /// The cache-status reader before the table: the reference.
    fn cache_status_reference(raw: &[u8]) -> Result<CacheStatus, ValueError> {
        let names: [(&[u8], CacheStatus); 9] = [
            (b"", CacheStatus::None),
            (b"-", CacheStatus::None),
            (b"HIT", CacheStatus::Hit),
            (b"MISS", CacheStatus::Miss),
            (b"STALE", CacheStatus::Stale),
            (b"BYPASS", CacheStatus::Bypass),
            (b"EXPIRED", CacheStatus::Expired),
            (b"UPDATING", CacheStatus::Updating),
            (b"REVALIDATED", CacheStatus::Revalidated),
        ];
        names.iter().find(|(name, _)| raw.eq_ignore_ascii_case(name)).map(|&(_, status)| status).ok_or(ValueError::UnknownCacheStatus)
    }

    /// The method reader before the table: the reference.
    fn method_reference(token: &[u8]) -> Method {
        let names: [(&[u8], Method); 9] = [
            (b"GET", Method::Get),
            (b"HEAD", Method::Head),
            (b"POST", Method::Post),
            (b"PUT", Method::Put),
            (b"DELETE", Method::Delete),
            (b"PATCH", Method::Patch),
            (b"OPTIONS", Method::Options),
            (b"CONNECT", Method::Connect),
            (b"TRACE", Method::Trace),
        ];
        names.iter().find(|(name, _)| token == *name).map_or(Method::Other, |&(_, method)| method)
    }

    #[test]
    fn cache_status_folds_letters_only() {
        for raw in [&b"\r"[..], b"\x0d", b"hi\x14", b"h\x09t", b"MISS\0", b"-\0", b"\0", b"UPDATINGS", b"REVALIDATE"] {
            assert_eq!(parse_cache_status(raw), Err(ValueError::UnknownCacheStatus), "{}", raw.escape_ascii());
        }
        assert_eq!(parse_cache_status(b"rEvAlIdAtEd"), Ok(CacheStatus::Revalidated));
        assert_eq!(parse_cache_status(b"Updating"), Ok(CacheStatus::Updating));
    }

    #[test]
    fn request_methods_at_every_length() {
        for line in [
            &b"GET / HTTP/1.1"[..],
            b"OPTIONS * HTTP/1.1",
            b"CONNECT a:443 HTTP/1.1",
            b"OPTIONSX / HTTP/1.1",
            b"GETX",
            b"GET",
            b"",
            b"-",
            b" GET /",
            b"PUT /",
            b"DELETE /",
            b"PATCH /a",
            b"TRACE /",
            b"HEAD /",
            b"POST /",
            b"get / HTTP/1.1",
            b"GET\t/ HTTP/1.1",
            b"ABCDEFGH",
            b"ABCDEFG ",
        ] {
            assert_eq!(parse_request_method(line), method_reference(request_method(line)), "{}", line.escape_ascii());
        }
    }

    proptest::proptest! {
        #[test]
        fn bytes_agree_with_the_digit_loop(text in "[0-9]{0,21}|[0-9a+ .-]{0,21}", number in proptest::prelude::any::<u64>()) {
            proptest::prop_assert_eq!(parse_bytes(text.as_bytes()), parse_bytes_reference(text.as_bytes()), "{:?}", text);
            proptest::prop_assert_eq!(parse_bytes(number.to_string().as_bytes()), Ok(number));
        }

        #[test]
        fn durations_agree_with_the_general_reader(text in "[0-9][.,][0-9]{3}|[0-9.x-]{0,7}") {
            // The `d.ddd` fast path against the one-pass reader it short-cuts.
            proptest::prop_assert_eq!(parse_duration_us(text.as_bytes()), parse_duration_other(text.as_bytes()), "{:?}", text);
            let upstream = format!("0.5, {text}");
            proptest::prop_assert_eq!(parse_upstream_time_us(text.as_bytes()), parse_upstream_list(text.as_bytes()), "{:?}", text);
            proptest::prop_assert_eq!(parse_upstream_time_us(upstream.as_bytes()), parse_upstream_list(upstream.as_bytes()), "{:?}", upstream);
        }

        #[test]
        fn cache_status_agrees_with_the_name_list(text in "[-a-zA-Z\\r\\x00\\x0d ]{0,12}|(hit|miss|stale|bypass|expired|updating|revalidated|-)") {
            proptest::prop_assert_eq!(parse_cache_status(text.as_bytes()), cache_status_reference(text.as_bytes()), "{:?}", text);
            let upper = text.to_ascii_uppercase();
            proptest::prop_assert_eq!(parse_cache_status(upper.as_bytes()), cache_status_reference(upper.as_bytes()), "{:?}", upper);
        }

        #[test]
        fn methods_agree_with_the_name_list(token in "[A-Za-z_ -]{0,9}|(GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS|CONNECT|TRACE)[ /A-Z]{0,3}", rest in "[ -~]{0,12}") {
            proptest::prop_assert_eq!(parse_method(token.as_bytes()), method_reference(token.as_bytes()), "{:?}", token);
            let line = format!("{token}{rest}");
            proptest::prop_assert_eq!(parse_request_method(line.as_bytes()), method_reference(request_method(line.as_bytes())), "{:?}", line);
        }
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

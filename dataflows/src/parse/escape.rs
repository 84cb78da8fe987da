//! nginx's `escape=` modes for variable values in access logs: how a value is written, how to
//! undo it, and what is written for a variable that is not found.
//!
//! Contract (mirrors `ngx_http_log_module.c`):
//! - `default`: `"`, `\`, bytes below 0x20 and from 0x7f up are written as `\xHH` (upper-case
//!   hex); a variable that is not found is written as `-`.
//! - `json`: `"` and `\` are backslash-escaped, `\n \r \t \b \f` by name, other bytes below 0x20
//!   as `\u00hh`; everything else (UTF-8 included) raw; a missing variable writes nothing.
//! - `none`: raw bytes; a missing variable writes nothing.
//!
//! nginx's own built-in log variables (`$status`, `$time_local`, `$bytes_sent`, ...) are never
//! escaped, but their values contain nothing escapable, so `write` is correct for them too.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The `escape=` parameter of nginx's `log_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Escape {
    #[default]
    Default,
    Json,
    None,
}

impl Escape {
    /// The name nginx uses (`escape=<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Escape::Default => "default",
            Escape::Json => "json",
            Escape::None => "none",
        }
    }

    pub fn from_name(name: &str) -> Option<Escape> {
        match name {
            "default" => Some(Escape::Default),
            "json" => Some(Escape::Json),
            "none" => Some(Escape::None),
            _ => None,
        }
    }

    /// What nginx writes for a variable that is not found (a missing header, no upstream).
    pub fn not_found(self) -> &'static [u8] {
        match self {
            Escape::Default => b"-",
            Escape::Json | Escape::None => b"",
        }
    }

    /// Appends `value` to `out` exactly as nginx writes it in this mode.
    pub fn write(self, value: &[u8], out: &mut Vec<u8>) {
        match self {
            Escape::Default => write_default(value, out),
            Escape::Json => write_json(value, out),
            Escape::None => out.extend_from_slice(value),
        }
    }

    /// Reverses [`Escape::write`]; borrows when the text holds no escape sequence. Malformed
    /// sequences are kept as they are (nginx never writes them, so they are data).
    pub fn unescape(self, raw: &[u8]) -> Cow<'_, [u8]> {
        match self {
            Escape::Default => unescape_default(raw),
            Escape::Json => unescape_json(raw),
            Escape::None => Cow::Borrowed(raw),
        }
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn needs_default_escape(byte: u8) -> bool {
    !(0x20..0x7f).contains(&byte) || byte == b'"' || byte == b'\\'
}

fn write_default(value: &[u8], out: &mut Vec<u8>) {
    for &byte in value {
        if needs_default_escape(byte) {
            out.extend_from_slice(&[b'\\', b'x', HEX_UPPER[usize::from(byte >> 4)], HEX_UPPER[usize::from(byte & 0xf)]]);
        } else {
            out.push(byte);
        }
    }
}

fn write_json(value: &[u8], out: &mut Vec<u8>) {
    for &byte in value {
        match byte {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', byte]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            // nginx writes the last digit in lower case (`'a' + ch - 10`).
            0..0x20 => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', b'0' + (byte >> 4), b"0123456789abcdef"[usize::from(byte & 0xf)]]),
            _ => out.push(byte),
        }
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn unescape_default(raw: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\\', raw).is_none() {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && raw.get(i + 1) == Some(&b'x') {
            if let (Some(high), Some(low)) = (raw.get(i + 2).and_then(|&b| hex_value(b)), raw.get(i + 3).and_then(|&b| hex_value(b))) {
                out.push(high << 4 | low);
                i += 4;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    Cow::Owned(out)
}

fn parse_hex4(digits: Option<&[u8]>) -> Option<u32> {
    let digits = digits?;
    digits.iter().try_fold(0u32, |acc, &b| Some(acc << 4 | u32::from(hex_value(b)?)))
}

fn unescape_json(raw: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\\', raw).is_none() {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' || i + 1 == raw.len() {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let simple = match raw[i + 1] {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            i += 2;
            continue;
        }
        if raw[i + 1] == b'u' {
            if let Some(unit) = parse_hex4(raw.get(i + 2..i + 6)) {
                // A surrogate pair spans two `\uXXXX` escapes.
                let low = (0xd800..0xdc00).contains(&unit).then(|| {
                    (raw.get(i + 6) == Some(&b'\\') && raw.get(i + 7) == Some(&b'u'))
                        .then(|| parse_hex4(raw.get(i + 8..i + 12)))
                        .flatten()
                        .filter(|low| (0xdc00..0xe000).contains(low))
                });
                let (code, used) = match low {
                    Some(Some(low)) => (0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00), 12),
                    _ => (unit, 6),
                };
                if let Some(ch) = char::from_u32(code) {
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                    i += used;
                    continue;
                }
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// Whether the byte at `at` is preceded by an odd number of backslashes inside
/// `haystack[floor..at]`, i.e. is itself escaped in JSON-escaped text.
pub(crate) fn is_backslash_escaped(haystack: &[u8], floor: usize, at: usize) -> bool {
    let backslashes = haystack[floor..at].iter().rev().take_while(|&&b| b == b'\\').count();
    backslashes % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(escape: Escape, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        escape.write(value, &mut out);
        out
    }

    #[test]
    fn default_escapes_quotes_backslashes_controls_and_high_bytes_as_upper_hex() {
        assert_eq!(written(Escape::Default, b"a\"b\\c\td\x7f\xc3\xa9"), b"a\\x22b\\x5Cc\\x09d\\x7F\\xC3\\xA9");
        assert_eq!(written(Escape::Default, b"Mozilla/5.0 (X11)"), b"Mozilla/5.0 (X11)");
    }

    #[test]
    fn json_escapes_like_nginx() {
        assert_eq!(written(Escape::Json, b"a\"b\\c\n\r\t\x08\x0c\x01\x1f"), b"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f");
        assert_eq!(written(Escape::Json, "caf\u{e9}\x7f".as_bytes()), "caf\u{e9}\x7f".as_bytes());
    }

    #[test]
    fn none_writes_raw() {
        assert_eq!(written(Escape::None, b"a\"b\x00"), b"a\"b\x00");
    }

    #[test]
    fn unescape_reverses_write_for_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        for escape in [Escape::Default, Escape::Json, Escape::None] {
            let raw = written(escape, &all);
            assert_eq!(escape.unescape(&raw).as_ref(), &all[..], "{escape:?}");
        }
    }

    #[test]
    fn unescape_borrows_when_nothing_is_escaped() {
        assert!(matches!(Escape::Default.unescape(b"plain text"), Cow::Borrowed(_)));
        assert!(matches!(Escape::Json.unescape(b"plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn unescape_default_keeps_malformed_sequences() {
        assert_eq!(Escape::Default.unescape(b"a\\x2").as_ref(), b"a\\x2");
        assert_eq!(Escape::Default.unescape(b"\\xZZ\\").as_ref(), b"\\xZZ\\");
        assert_eq!(Escape::Default.unescape(b"\\x5c").as_ref(), b"\\");
    }

    #[test]
    fn unescape_json_handles_unicode_and_surrogate_pairs() {
        assert_eq!(Escape::Json.unescape(b"\\u00e9\\ud83d\\ude00\\/").as_ref(), "\u{e9}\u{1f600}/".as_bytes());
        // A lone surrogate is not a character: kept as written.
        assert_eq!(Escape::Json.unescape(b"\\ud83d!").as_ref(), b"\\ud83d!");
        assert_eq!(Escape::Json.unescape(b"end\\").as_ref(), b"end\\");
    }

    #[test]
    fn backslash_parity() {
        assert!(is_backslash_escaped(b"ab\\\"", 0, 3));
        assert!(!is_backslash_escaped(b"ab\\\\\"", 0, 4));
        // Backslashes before the floor belong to someone else.
        assert!(!is_backslash_escaped(b"\\\"", 1, 1));
    }
}

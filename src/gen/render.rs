//! Rendering, exactly as nginx writes it: the four line formats with `escape=default` (`\xHH`
//! for `"`, `\`, control bytes, DEL and bytes >= 0x80; `-` for an empty variable) or
//! `escape=json` (JSON escapes, `""` for an empty variable), and the Filebeat 8.x envelope.
//! Everything appends to a reused `String`; no `format!` on the hot path.

use super::civil::{push_utc_millis, TimeCache};
use super::model::{Catalog, Request, TextScratch};
use super::OutputFormat;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

const PAIR_BYTES: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};
/// "000102…9899": two digits per entry.
const PAIRS: &str = match std::str::from_utf8(&PAIR_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("digit pairs are ASCII"),
};

#[inline]
fn push_pair(out: &mut String, p: usize) {
    out.push_str(&PAIRS[2 * p..2 * p + 2]);
}

/// Decimal digits of `v`.
#[inline]
pub fn push_u64(out: &mut String, mut v: u64) {
    let mut pairs = [0u8; 10];
    let mut n = 0;
    while v >= 100 {
        pairs[n] = (v % 100) as u8;
        n += 1;
        v /= 100;
    }
    if v >= 10 {
        push_pair(out, v as usize);
    } else {
        out.push(char::from(b'0' + v as u8));
    }
    for &p in pairs[..n].iter().rev() {
        push_pair(out, usize::from(p));
    }
}

/// `v` zero-padded to at least `width` digits.
#[inline]
pub fn push_padded(out: &mut String, v: u64, width: usize) {
    let mut digits = 1;
    let mut x = v / 10;
    while x > 0 {
        digits += 1;
        x /= 10;
    }
    for _ in digits..width {
        out.push('0');
    }
    push_u64(out, v);
}

/// Two digits, zero-padded (`v` < 100).
#[inline]
pub fn push_2(out: &mut String, v: u32) {
    push_pair(out, (v % 100) as usize);
}

/// Three digits, zero-padded (`v` < 1000).
#[inline]
pub fn push_3(out: &mut String, v: u32) {
    out.push(char::from(b'0' + (v / 100 % 10) as u8));
    push_2(out, v % 100);
}

/// Milliseconds as nginx's `%T.%03M`: seconds with three decimals (`1234` -> `1.234`).
#[inline]
pub fn push_secs_ms(out: &mut String, ms: u64) {
    push_u64(out, ms / 1000);
    out.push('.');
    push_3(out, (ms % 1000) as u32);
}

/// `digits` lower-case hex digits of `v`.
pub fn push_hex(out: &mut String, v: u64, digits: u32) {
    for i in (0..digits).rev() {
        out.push(char::from(HEX_LOWER[((v >> (4 * i)) & 0xf) as usize]));
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` that is zero. Exact up to and including the lowest flagged
/// byte (a borrow only starts at a true match), which is all the scanner uses.
#[inline]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(LO) & !w & HI
}

/// High bit set in each byte of `w` below `n` (n <= 128); exact like [`zero_bytes`].
#[inline]
fn bytes_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(LO * u64::from(n)) & !w & HI
}

#[inline]
fn needs_default_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b >= 0x7f
}

#[inline]
fn default_escape_bytes(w: u64) -> u64 {
    (w & HI)
        | bytes_below(w, 0x20)
        | zero_bytes(w ^ (LO * 0x22))
        | zero_bytes(w ^ (LO * 0x5c))
        | zero_bytes(w ^ (LO * 0x7f))
}

#[inline]
fn needs_json_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

#[inline]
fn json_escape_bytes(w: u64) -> u64 {
    bytes_below(w, 0x20) | zero_bytes(w ^ (LO * 0x22)) | zero_bytes(w ^ (LO * 0x5c))
}

/// Appends `s` to `out`, passing each byte for which `needs` holds to `escape` instead.
/// `flags` marks such bytes in an 8-byte little-endian word (its lowest flag must be exact), so
/// the scan jumps from one escaped byte to the next and copies the clean runs whole. Escaped
/// bytes must be ASCII, so every run starts and ends on a char boundary.
#[inline]
fn push_escaped_with(
    out: &mut String,
    s: &str,
    needs: impl Fn(u8) -> bool,
    flags: impl Fn(u64) -> u64,
    escape: impl Fn(&mut String, u8),
) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while let Some(block) = bytes.get(i..i + 8) {
        let m = flags(u64::from_le_bytes(block.try_into().unwrap_or([0; 8])));
        if m == 0 {
            i += 8;
            continue;
        }
        let j = i + (m.trailing_zeros() / 8) as usize;
        if start < j {
            out.push_str(&s[start..j]);
        }
        escape(out, bytes[j]);
        start = j + 1;
        i = j + 1;
    }
    while i < bytes.len() {
        let b = bytes[i];
        if needs(b) {
            if start < i {
                out.push_str(&s[start..i]);
            }
            escape(out, b);
            start = i + 1;
        }
        i += 1;
    }
    if start < bytes.len() {
        out.push_str(&s[start..]);
    }
}

/// nginx `escape=default` (`ngx_http_log_escape`): `"`, `\`, bytes < 0x20, 0x7f and >= 0x80
/// become `\xHH` with upper-case hex. The result is always ASCII.
pub fn push_escaped_default(out: &mut String, s: &str) {
    push_escaped_with(
        out,
        s,
        needs_default_escape,
        default_escape_bytes,
        |out, b| {
            out.push_str("\\x");
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0xf)]));
        },
    );
}

/// nginx `escape=json` (`ngx_escape_json`): `"` and `\` get a backslash; `\n \r \t \b \f` their
/// short forms; other bytes < 0x20 `\u00HH` with upper-case hex. Bytes >= 0x20 (DEL and UTF-8
/// included) pass unchanged.
pub fn push_escaped_nginx_json(out: &mut String, s: &str) {
    push_escaped_with(out, s, needs_json_escape, json_escape_bytes, |out, b| {
        push_json_escape(out, b, HEX_UPPER)
    });
}

/// A JSON string body as Filebeat's encoder writes it (lower-case `\u00hh`, no HTML escaping).
pub fn push_json_string_body(out: &mut String, s: &str) {
    push_escaped_with(out, s, needs_json_escape, json_escape_bytes, |out, b| {
        push_json_escape(out, b, HEX_LOWER)
    });
}

#[inline]
fn push_json_escape(out: &mut String, b: u8, hex: &[u8; 16]) {
    match b {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        _ => {
            out.push_str("\\u00");
            out.push(char::from(hex[usize::from(b >> 4)]));
            out.push(char::from(hex[usize::from(b & 0xf)]));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    Default,
    Json,
}

#[inline]
fn push_esc(out: &mut String, esc: Escape, s: &str) {
    match esc {
        Escape::Default => push_escaped_default(out, s),
        Escape::Json => push_escaped_nginx_json(out, s),
    }
}

/// A variable that may be empty: `-` under `escape=default`, nothing under `escape=json`.
#[inline]
fn push_var(out: &mut String, esc: Escape, s: Option<&str>) {
    match s {
        Some(s) if !s.is_empty() => push_esc(out, esc, s),
        _ => {
            if esc == Escape::Default {
                out.push('-');
            }
        }
    }
}

/// Addresses of the two load balancers in front of the web servers.
pub const LOAD_BALANCERS: [&str; 2] = ["10.0.0.2", "10.0.0.3"];

fn push_request(out: &mut String, esc: Escape, req: &Request, text: &TextScratch) {
    out.push_str(req.method.as_str());
    out.push(' ');
    push_esc(out, esc, &text.path);
    out.push(' ');
    out.push_str(req.proto.as_str());
}

fn push_upstream_times(out: &mut String, esc: Escape, req: &Request) {
    if req.upstreams == 0 {
        push_var(out, esc, None);
        return;
    }
    for i in 0..usize::from(req.upstreams) {
        if i > 0 {
            out.push_str(", ");
        }
        push_secs_ms(out, req.upstream_ms[i]);
    }
}

fn push_xff(out: &mut String, text: &TextScratch, client: &str) {
    // Addresses only: nothing to escape.
    out.push_str(&text.xff_prefix);
    out.push_str(client);
}

/// Renders one access-log line (no newline) into `out`.
pub(super) fn render_line(
    out: &mut String,
    format: OutputFormat,
    time: &mut TimeCache,
    event_ms: i64,
    req: &Request,
    cat: &Catalog,
    text: &TextScratch,
) {
    let client = cat.clients[req.client].text();
    let ua = usize::from(req.ua);
    let host = &*cat.domains[req.domain].name;
    let lb = LOAD_BALANCERS[usize::from(req.lb)];
    let referer = (!text.referer.is_empty()).then_some(text.referer.as_str());
    if format == OutputFormat::Json {
        let e = Escape::Json;
        // Key order of the parser's `json` preset: the line is matched by its literal text.
        out.push_str("{\"time_iso8601\":\"");
        time.push(out, event_ms);
        out.push_str("\",\"remote_addr\":\"");
        out.push_str(lb);
        out.push_str("\",\"request\":\"");
        push_request(out, e, req, text);
        out.push_str("\",\"status\":\"");
        push_u64(out, u64::from(req.status));
        out.push_str("\",\"body_bytes_sent\":\"");
        push_u64(out, req.body);
        out.push_str("\",\"bytes_sent\":\"");
        push_u64(out, req.bytes_sent);
        out.push_str("\",\"http_referer\":\"");
        push_var(out, e, referer);
        out.push_str("\",\"http_user_agent\":\"");
        out.push_str(&cat.ua_json[ua]);
        out.push_str("\",\"http_x_forwarded_for\":\"");
        push_xff(out, text, client);
        out.push_str("\",\"http_x_real_ip\":\"");
        out.push_str(client);
        out.push_str("\",\"host\":\"");
        out.push_str(host);
        out.push_str("\",\"request_time\":\"");
        push_secs_ms(out, req.request_ms);
        out.push_str("\",\"upstream_response_time\":\"");
        push_upstream_times(out, e, req);
        out.push_str("\",\"upstream_cache_status\":\"");
        push_var(out, e, req.cache.as_nginx());
        out.push_str("\"}");
        return;
    }
    let e = Escape::Default;
    // combined: the web server faces clients; the others sit behind the load balancers.
    out.push_str(if format == OutputFormat::Combined {
        client
    } else {
        lb
    });
    out.push_str(" - ");
    push_var(out, e, req.remote_user);
    out.push_str(" [");
    time.push(out, event_ms);
    out.push_str("] \"");
    push_request(out, e, req, text);
    out.push_str("\" ");
    push_u64(out, u64::from(req.status));
    out.push(' ');
    push_u64(out, req.body);
    out.push_str(" \"");
    push_var(out, e, referer);
    out.push_str("\" \"");
    out.push_str(&cat.ua_default[ua]);
    out.push('"');
    if format == OutputFormat::Combined {
        return;
    }
    out.push_str(" \"");
    push_xff(out, text, client);
    out.push('"');
    if format == OutputFormat::Main {
        return;
    }
    out.push_str(" \"");
    out.push_str(client);
    out.push_str("\" ");
    out.push_str(host);
    out.push(' ');
    push_secs_ms(out, req.request_ms);
    out.push(' ');
    push_upstream_times(out, e, req);
    out.push(' ');
    push_var(out, e, req.cache.as_nginx());
    out.push(' ');
    push_u64(out, req.bytes_sent);
}

/// Filebeat's version and the file every host's nginx writes.
pub const FILEBEAT_VERSION: &str = "8.15.0";
pub const ACCESS_LOG_PATH: &str = "/var/log/nginx/access.log";

/// Everything of a host's Filebeat event after `message`, precomputed per host.
pub(super) fn filebeat_tail(host_name: &str, agent_id: &str, ephemeral_id: &str) -> String {
    let mut s = String::with_capacity(256);
    s.push_str("\",\"input\":{\"type\":\"filestream\"},\"ecs\":{\"version\":\"8.0.0\"},\"host\":{\"name\":\"");
    s.push_str(host_name);
    s.push_str("\"},\"agent\":{\"type\":\"filebeat\",\"version\":\"");
    s.push_str(FILEBEAT_VERSION);
    s.push_str("\",\"ephemeral_id\":\"");
    s.push_str(ephemeral_id);
    s.push_str("\",\"id\":\"");
    s.push_str(agent_id);
    s.push_str("\",\"name\":\"");
    s.push_str(host_name);
    s.push_str("\"}}");
    s
}

/// A Filebeat 8.x event as its Kafka output's JSON codec writes it.
pub(super) fn render_filebeat(out: &mut String, read_ms: i64, offset: u64, line: &str, tail: &str) {
    out.push_str("{\"@timestamp\":\"");
    push_utc_millis(out, read_ms);
    out.push_str("\",\"@metadata\":{\"beat\":\"filebeat\",\"type\":\"_doc\",\"version\":\"");
    out.push_str(FILEBEAT_VERSION);
    out.push_str("\"},\"log\":{\"offset\":");
    push_u64(out, offset);
    out.push_str(",\"file\":{\"path\":\"");
    out.push_str(ACCESS_LOG_PATH);
    out.push_str("\"}},\"message\":\"");
    push_json_string_body(out, line);
    out.push_str(tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl Fn(&mut String)) -> String {
        let mut s = String::new();
        f(&mut s);
        s
    }

    #[test]
    fn numbers() {
        assert_eq!(with(|s| push_u64(s, 0)), "0");
        assert_eq!(with(|s| push_u64(s, u64::MAX)), u64::MAX.to_string());
        assert_eq!(with(|s| push_padded(s, 42, 5)), "00042");
        assert_eq!(with(|s| push_padded(s, 123_456, 5)), "123456");
        assert_eq!(with(|s| push_secs_ms(s, 0)), "0.000");
        assert_eq!(with(|s| push_secs_ms(s, 12)), "0.012");
        assert_eq!(with(|s| push_secs_ms(s, 60_001)), "60.001");
        assert_eq!(with(|s| push_hex(s, 0xbeef, 8)), "0000beef");
    }

    #[test]
    fn nginx_default_escape() {
        let ua = "Mozilla/5.0 (compatible; \"x\"; C:\\a)\t\u{7f}é";
        assert_eq!(
            with(|s| push_escaped_default(s, ua)),
            "Mozilla/5.0 (compatible; \\x22x\\x22; C:\\x5Ca)\\x09\\x7F\\xC3\\xA9"
        );
        assert_eq!(with(|s| push_escaped_default(s, "plain")), "plain");
    }

    /// The block-skipping escapers against byte-at-a-time references, on random strings of
    /// every ASCII byte and some multi-byte characters, at every alignment.
    #[test]
    fn block_escapers_match_byte_references() {
        use rand::{Rng, SeedableRng};
        let reference = |s: &str, needs: fn(u8) -> bool, esc: &dyn Fn(&mut String, u8)| {
            let mut out = String::new();
            for c in s.chars() {
                let mut buf = [0u8; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    if needs(b) {
                        esc(&mut out, b);
                    } else {
                        out.push(char::from(b)); // only ASCII passes unescaped under default
                    }
                }
            }
            out
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let extra = ['é', '€', '😀', '\u{80}', '\u{7ff}'];
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let s: String = (0..len)
                .map(|_| {
                    if rng.random_range(0..10) == 0 {
                        extra[rng.random_range(0..extra.len())]
                    } else if rng.random_range(0..3) == 0 {
                        char::from(rng.random_range(0..128u8))
                    } else {
                        char::from(rng.random_range(b'a'..=b'z'))
                    }
                })
                .collect();
            let want = reference(&s, needs_default_escape, &|out, b| {
                out.push_str("\\x");
                out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
                out.push(char::from(HEX_UPPER[usize::from(b & 0xf)]));
            });
            assert_eq!(with(|o| push_escaped_default(o, &s)), want, "{s:?}");
            // JSON: non-ASCII passes whole, so compare by decoding instead.
            let got = with(|o| push_escaped_nginx_json(o, &s));
            let back: String = serde_json::from_str(&format!("\"{got}\"")).unwrap();
            assert_eq!(back, s);
            let mut naive = String::new();
            for c in s.chars() {
                if c.is_ascii() && needs_json_escape(c as u8) {
                    push_json_escape(&mut naive, c as u8, HEX_UPPER);
                } else {
                    naive.push(c);
                }
            }
            assert_eq!(got, naive);
        }
    }

    #[test]
    fn nginx_json_escape() {
        let ua = "a\"b\\c\nd\te\u{1}f\u{1f}\u{7f}é";
        let got = with(|s| push_escaped_nginx_json(s, ua));
        assert_eq!(got, "a\\\"b\\\\c\\nd\\te\\u0001f\\u001F\u{7f}é");
        let back: String = serde_json::from_str(&format!("\"{got}\"")).unwrap();
        assert_eq!(back, ua);
        let got = with(|s| push_json_string_body(s, ua));
        let back: String = serde_json::from_str(&format!("\"{got}\"")).unwrap();
        assert_eq!(back, ua);
    }
}

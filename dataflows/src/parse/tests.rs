//! Decoder-level tests: the shared samples, every preset end to end, adversarial input, and
//! property tests (no input panics; a line rendered from random fields decodes back to them).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::time::{format_msec, format_time_iso8601, format_time_local};
use super::*;
use crate::clean::CleanConfig;
use crate::record::{CacheStatus, Method};

const SAMPLES: &str = include_str!("../../tests/fixtures/filebeat-events.jsonl");

/// The samples' format: `combined` plus the client address the load balancer passes on.
const SAMPLE_FORMAT: &str =
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_real_ip""#;

/// 2026-11-20T08:15:39Z
const SAMPLE_MS: i64 = 1_795_162_539_000;

fn decoder(parse: ParseConfig, clean: CleanConfig) -> Decoder {
    Decoder::new(&parse, &clean).expect("valid config")
}

fn decoder_for(format: &str) -> Decoder {
    let clean = CleanConfig { default_domain: Some("www.example.com".into()), ..CleanConfig::default() };
    decoder(ParseConfig { format: format.into(), ..ParseConfig::default() }, clean)
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn rejected(decoder: &mut Decoder, payload: &[u8]) -> (RejectReason, String) {
    let reject = decoder.decode(payload).expect_err("rejected");
    (reject.reason, reject.detail.into_owned())
}

#[test]
fn shared_samples_decode_with_origin_and_line_time() {
    let mut decoder = decoder_for(SAMPLE_FORMAT);
    let agent_8 = "5b0e6a3e-92f4-4b1b-8a0e-2d7f55c2a1b9";
    let expected = [
        ((agent_8, "/var/log/nginx/access.log", 0), SAMPLE_MS, "203.0.113.7", Method::Get, 200, 5120),
        ((agent_8, "/var/log/nginx/access.log", 159), SAMPLE_MS + 1_000, "198.51.100.23", Method::Post, 401, 64),
        (("b7c1f0aa-1e0b-4a44-9c6b-4f1d8d2e7e10", "/var/log/nginx/access.log.1", 4096), SAMPLE_MS + 2_000, "2001:db8::5", Method::Get, 206, 1_048_576),
        (("web-3", "/var/log/nginx/access.log", 912), SAMPLE_MS + 5_000, "192.0.2.44", Method::Get, 304, 0),
    ];
    let lines: Vec<&str> = SAMPLES.lines().collect();
    assert_eq!(lines.len(), expected.len());
    for (line, ((shipper, path, offset), event_ms, client, method, status, bytes)) in lines.into_iter().zip(expected) {
        let decoded = decoder.decode(line.as_bytes()).expect(line);
        let origin = decoded.origin.expect("filebeat origin");
        assert_eq!((origin.shipper.as_ref(), origin.path.as_ref(), origin.offset), (shipper, path, offset));
        // Unescaped JSON strings are borrowed from the message, not copied.
        assert!(matches!((&origin.shipper, &origin.path), (Cow::Borrowed(_), Cow::Borrowed(_))));
        let record = decoded.record;
        assert_eq!(record.event_ms, event_ms, "time comes from the line, not @timestamp");
        assert_eq!(record.client_ip, ip(client));
        assert_eq!((record.method, record.status, record.bytes), (method, status, bytes));
        assert_eq!((record.domain.as_ref(), record.account), ("www.example.com", None));
        assert_eq!((record.request_time_us, record.upstream_time_us, record.cache), (None, None, None));
    }
}

/// The same five lines of one file (the last one after a restart of the shipper), as rsyslog,
/// Vector and Fluent Bit send them: each decodes to the line's record and the shipper's origin.
#[test]
fn every_shipper_envelope_decodes_with_its_origin() {
    let expected = [
        (0, SAMPLE_MS, "203.0.113.7", 200, 5120),
        (159, SAMPLE_MS + 1_000, "198.51.100.23", 401, 64),
        (273, SAMPLE_MS + 2_000, "2001:db8::5", 206, 1_048_576),
        // Apache-style `\"` in the user agent and a `-` byte count.
        (404, SAMPLE_MS + 5_000, "192.0.2.44", 304, 0),
        (560, SAMPLE_MS + 6_000, "198.51.100.9", 200, 612),
    ];
    for (fixture, events, shipper) in [
        ("rsyslog", include_str!("../../tests/fixtures/rsyslog-events.jsonl"), "web-1"),
        ("vector", include_str!("../../tests/fixtures/vector-events.jsonl"), "web-2"),
        ("fluent-bit", include_str!("../../tests/fixtures/fluent-bit-events.jsonl"), "web-3"),
    ] {
        let mut decoder = decoder_for(SAMPLE_FORMAT);
        let events: Vec<&str> = events.split_inclusive('\n').collect();
        assert_eq!(events.len(), expected.len(), "{fixture}");
        for (event, &(offset, event_ms, client, status, bytes)) in events.into_iter().zip(&expected) {
            let decoded = decoder.decode(event.as_bytes()).unwrap_or_else(|reject| panic!("{fixture}: {reject:?}: {event}"));
            let origin = decoded.origin.unwrap_or_else(|| panic!("{fixture}: no origin: {event}"));
            assert_eq!((origin.shipper.as_ref(), origin.path.as_ref(), origin.offset), (shipper, "/var/log/nginx/access.log", offset), "{fixture}");
            let record = decoded.record;
            assert_eq!((record.event_ms, record.client_ip, record.status, record.bytes), (event_ms, ip(client), status, bytes), "{fixture}: {event}");
        }
    }
}

#[test]
fn sample_messages_decode_as_raw_lines_too() {
    let mut decoder = decoder_for(SAMPLE_FORMAT);
    for event in SAMPLES.lines() {
        let value: serde_json::Value = serde_json::from_str(event).expect("sample is json");
        let line = value["message"].as_str().expect("message");
        let decoded = decoder.decode(line.as_bytes()).expect(line);
        assert_eq!(decoded.origin, None);
    }
}

const CDN_LINE: &str = concat!(
    r#"10.0.0.2 - - [20/Nov/2026:16:15:39 +0800] "GET /video/seg-0042.ts HTTP/1.1" 206 1048576 "-" "Mozilla/5.0 \x22quoted\x22" "#,
    r#""198.51.100.1, 203.0.113.7, 10.0.0.1" "-" Video.Example.COM:443 0.120 0.050, 0.060 HIT 1049000"#
);

#[test]
fn cdn_preset_end_to_end() {
    let clean = CleanConfig { accounts: BTreeMap::from([("*.example.com".into(), "acme".into())]), ..CleanConfig::default() };
    let mut decoder = decoder(ParseConfig::default(), clean);
    let payload = format!("{CDN_LINE}\r\n");
    let record = decoder.decode(payload.as_bytes()).expect("decodes").record;
    assert_eq!(record.event_ms, SAMPLE_MS);
    assert_eq!(record.domain, "video.example.com");
    assert_eq!(record.account, Some("acme"));
    assert_eq!(record.client_ip, ip("203.0.113.7"));
    assert_eq!(record.bytes, 1_049_000, "bytes_sent is the default when the format has it");
    assert_eq!(record.request_time_us, Some(120_000));
    assert_eq!(record.upstream_time_us, Some(60_000));
    assert_eq!(record.cache, Some(CacheStatus::Hit));
}

#[test]
fn main_and_combined_presets() {
    let mut main = decoder_for("main");
    let line = r#"10.0.0.2 - bob [20/Nov/2026:16:15:39 +0800] "HEAD / HTTP/1.0" 200 0 "-" "-" "198.51.100.7""#;
    let record = main.decode(line.as_bytes()).expect("decodes").record;
    assert_eq!((record.client_ip, record.method, record.bytes), (ip("198.51.100.7"), Method::Head, 0));

    let mut combined = decoder_for("combined");
    let line = r#"192.0.2.1 - - [20/Nov/2026:16:15:39 +0800] "-" 400 150 "-" "-""#;
    let record = combined.decode(line.as_bytes()).expect("odd request lines are kept").record;
    assert_eq!((record.method, record.status), (Method::Other, 400));
    let line = r#"192.0.2.1 - - [20/Nov/2026:16:15:39 +0800] "\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03" 400 157 "-" "-""#;
    assert_eq!(combined.decode(line.as_bytes()).map(|d| d.record.method), Ok(Method::Other));
}

/// Apache combined lines (`%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`): `%b` writes
/// `-` for a response without a body.
#[test]
fn a_dash_byte_count_is_zero_and_counted() {
    let mut combined = decoder_for("combined");
    for (line, status) in [
        (r#"198.51.100.4 - - [20/Nov/2026:16:15:39 +0800] "GET /img/logo.png HTTP/1.1" 304 - "https://www.example.com/" "Mozilla/5.0""#, 304),
        (r#"198.51.100.4 - - [20/Nov/2026:16:15:39 +0800] "HEAD / HTTP/1.0" 200 - "-" "check_http/v2.3""#, 200),
        (r#"198.51.100.4 - - [20/Nov/2026:16:15:39 +0800] "GET /gone HTTP/1.1" 204 - "-" "-""#, 204),
    ] {
        let record = combined.decode(line.as_bytes()).expect(line).record;
        assert_eq!((record.status, record.bytes), (status, 0), "{line}");
    }
    // Broken counts are still rejected.
    for bytes in ["--", "-5", "12a", "1.5", "0x10", "+3"] {
        let line = format!(r#"198.51.100.4 - - [20/Nov/2026:16:15:39 +0800] "GET / HTTP/1.1" 200 {bytes} "-" "-""#);
        assert_eq!(rejected(&mut combined, line.as_bytes()), (RejectReason::BadBytes, format!("$body_bytes_sent '{bytes}': not a number")));
    }

    // `$bytes_sent` too; the other numeric variables nginx may write as `-` (`$request_length`,
    // `$upstream_connect_time`, `$upstream_status`, `$upstream_response_time`) are placed and
    // read as no value.
    let format = r#"$remote_addr [$time_local] "$request" $status $bytes_sent $request_length $host $request_time $upstream_connect_time $upstream_status $upstream_response_time"#;
    let mut decoder = decoder_for(format);
    let line = r#"203.0.113.9 [20/Nov/2026:16:15:39 +0800] "GET / HTTP/1.1" 499 - - a.example.com 0.000 - - -"#;
    let record = decoder.decode(line.as_bytes()).expect("every value is `-`").record;
    assert_eq!((record.status, record.bytes, record.request_time_us, record.upstream_time_us), (499, 0, Some(0), None));
    let line = r#"203.0.113.9 [20/Nov/2026:16:15:39 +0800] "GET / HTTP/1.1" 502 157 411 a.example.com 0.031 0.001, - 502, 502 0.030, -"#;
    let record = decoder.decode(line.as_bytes()).expect("failed upstreams").record;
    assert_eq!((record.bytes, record.upstream_time_us), (157, None));
}

#[test]
fn a_line_cut_off_inside_its_last_quoted_value_is_rejected_with_that_reason() {
    let mut combined = decoder_for("combined");
    let line = r#"198.51.100.4 - - [20/Nov/2026:16:15:39 +0800] "GET / HTTP/1.1" 200 512 "-" "Mozilla/5.0 (Windows NT 10.0; Wi"#;
    let (reason, detail) = rejected(&mut combined, format!("{line}\n").as_bytes());
    assert_eq!(reason, RejectReason::BadFormat);
    assert_eq!(detail, format!("line ended inside the quoted value of $http_user_agent (no closing quote after byte {})", line.find("Mozilla").expect("ua")));
}

const JSON_LINE: &str = concat!(
    r#"{"time_iso8601":"2026-11-20T16:15:39+08:00","remote_addr":"10.0.0.2","request":"GET /a?q=\"x\" HTTP/2.0","#,
    r#""status":"200","body_bytes_sent":"10","bytes_sent":"300","http_referer":"","http_user_agent":"UA \"1\"\\\n","#,
    r#""http_x_forwarded_for":"","http_x_real_ip":"2001:db8::9","host":"img.example.com","request_time":"0.001","#,
    r#""upstream_response_time":"","upstream_cache_status":""}"#
);

#[test]
fn json_preset_raw_and_in_a_filebeat_event() {
    let mut decoder = decoder_for("json");
    assert_eq!(decoder.format().escape(), Escape::Json);
    let raw = decoder.decode(JSON_LINE.as_bytes()).expect("raw json line");
    assert_eq!(raw.origin, None);
    let record = raw.record;
    assert_eq!((record.event_ms, record.client_ip, record.bytes), (SAMPLE_MS, ip("2001:db8::9"), 300));
    assert_eq!((record.domain.as_ref(), record.request_time_us), ("img.example.com", Some(1_000)));
    // escape=json writes nothing for a missing variable.
    assert_eq!((record.upstream_time_us, record.cache), (None, Some(CacheStatus::None)));

    let event = serde_json::json!({"message": JSON_LINE, "log": {"offset": 5, "file": {"path": "/x"}}, "agent": {"id": "a"}});
    let payload = event.to_string();
    let decoded = decoder.decode(payload.as_bytes()).expect("json line in an event");
    assert_eq!(decoded.origin.map(|o| o.offset), Some(5));
    assert_eq!(decoded.record.event_ms, SAMPLE_MS);

    // An object that is neither the format nor an event reports the format mismatch.
    let (reason, detail) = rejected(&mut decoder, br#"{"time_iso8601":"2026-11-20T16:15:39+08:00"}"#);
    assert_eq!(reason, RejectReason::BadFormat);
    assert!(detail.starts_with("expected '"), "{detail}");
}

#[test]
fn envelope_rejects() {
    let mut decoder = decoder_for(SAMPLE_FORMAT);
    assert_eq!(
        rejected(&mut decoder, br#"{"@timestamp":"2026-11-20T08:15:42.118Z"}"#),
        (RejectReason::BadEnvelope, "json object without a message or log line (not a shipper event)".into())
    );
    assert_eq!(rejected(&mut decoder, b"{not json").0, RejectReason::BadEnvelope);
    assert_eq!(rejected(&mut decoder, br#"  {"message": 7}"#).0, RejectReason::BadEnvelope);
    assert_eq!(rejected(&mut decoder, b"{\"message\":\"\xff\xfe\"}").0, RejectReason::BadUtf8);
    assert_eq!(rejected(&mut decoder, br#"{"message":""}"#).0, RejectReason::Empty);
    assert_eq!(rejected(&mut decoder, br#"{"message":"\n"}"#).0, RejectReason::Empty);
    assert_eq!(rejected(&mut decoder, br#"{"message":"garbage"}"#).0, RejectReason::BadFormat);
}

#[test]
fn size_and_blank_rejects() {
    let mut decoder = decoder_for(SAMPLE_FORMAT);
    for blank in [&b""[..], b"\n", b"\r\n", b"   \t ", b" \n"] {
        assert_eq!(rejected(&mut decoder, blank).0, RejectReason::Empty, "{}", blank.escape_ascii());
    }

    let huge = vec![b'{'; 10 << 20];
    let started = Instant::now();
    assert_eq!(rejected(&mut decoder, &huge), (RejectReason::TooLong, "message is 10485760 bytes, limit is 65536".into()));
    assert!(started.elapsed() < Duration::from_millis(100), "too_long is decided without reading the message");

    let mut exact = decoder_for(SAMPLE_FORMAT);
    let line = SAMPLES.lines().next().expect("sample");
    exact.max_line_bytes = line.len();
    assert!(exact.decode(line.as_bytes()).is_ok(), "a message of exactly the limit is accepted");
    exact.max_line_bytes = line.len() - 1;
    assert_eq!(rejected(&mut exact, line.as_bytes()).0, RejectReason::TooLong);
}

#[test]
fn a_10_mb_line_within_a_raised_limit_is_rejected_in_bounded_time() {
    let parse = ParseConfig { format: SAMPLE_FORMAT.into(), max_line_bytes: 16 << 20, ..ParseConfig::default() };
    let mut decoder = decoder(parse, CleanConfig { default_domain: Some("a.example".into()), ..CleanConfig::default() });
    let mut line = b"1.2.3.4 - ".to_vec();
    line.extend(std::iter::repeat_n(b" [\"", 3_500_000).flatten());
    let started = Instant::now();
    assert_eq!(rejected(&mut decoder, &line).0, RejectReason::BadFormat);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn binary_garbage_and_nuls_are_rejected_not_panicked_on() {
    let mut decoder = decoder_for("cdn");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert!(decoder.decode(&garbage).is_err());
    assert_eq!(rejected(&mut decoder, &[0u8; 100]).0, RejectReason::BadFormat);
    let with_nul = CDN_LINE.replace("GET", "G\0T");
    assert_eq!(decoder.decode(with_nul.as_bytes()).map(|d| d.record.method), Ok(Method::Other));
    let with_nul_host = CDN_LINE.replace("Video.Example.COM", "vid\0eo.example.com");
    assert_eq!(rejected(&mut decoder, with_nul_host.as_bytes()).0, RejectReason::BadDomain);
}

#[test]
fn invalid_utf8_matters_only_in_used_fields() {
    let mut decoder = decoder(ParseConfig { format: "cdn".into(), escape: Some(Escape::None), ..ParseConfig::default() }, CleanConfig::default());
    let unused = CDN_LINE.as_bytes().to_vec();
    let at = CDN_LINE.find("Mozilla").expect("ua");
    let mut line = unused.clone();
    line.splice(at..at + 7, b"Moz\xff\xfe\xc3\x28".iter().copied());
    let record = decoder.decode(&line).expect("raw bytes in the user agent are fine").record;
    assert_eq!(record.status, 206);

    let at = CDN_LINE.find("Video").expect("host");
    let mut line = unused;
    line.splice(at..at + 5, b"V\xffdeo".iter().copied());
    assert_eq!(rejected(&mut decoder, &line), (RejectReason::BadUtf8, "invalid utf-8 in $host: 'V\\xffdeo.Example.COM:443'".into()));
}

#[test]
fn trailing_line_ends_are_stripped_once() {
    let mut decoder = decoder_for("cdn");
    assert!(decoder.decode(format!("{CDN_LINE}\n").as_bytes()).is_ok());
    assert!(decoder.decode(format!("{CDN_LINE}\r\n").as_bytes()).is_ok());
    // Only one: the second newline is part of the last value.
    assert_eq!(rejected(&mut decoder, format!("{CDN_LINE}\n\n").as_bytes()).0, RejectReason::BadBytes);
}

#[test]
fn config_options() {
    let directive = "log_format main '$remote_addr [$time_local] \"$request\" '\n '$status $body_bytes_sent $host';";
    let mut from_directive = decoder(ParseConfig { format: directive.into(), ..ParseConfig::default() }, CleanConfig::default());
    let line = r#"1.2.3.4 [20/Nov/2026:16:15:39 +0800] "GET / HTTP/1.1" 200 7 a.example"#;
    assert_eq!(from_directive.decode(line.as_bytes()).map(|d| d.record.bytes), Ok(7));

    let config: ParseConfig = serde_json::from_str(r#"{"format":"combined","bytes_field":"body_bytes_sent","escape":"default"}"#).expect("valid");
    assert_eq!(config.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
    assert_eq!(config.bytes_field, Some(BytesField::BodyBytesSent));
    assert!(serde_json::from_str::<ParseConfig>(r#"{"formats":"cdn"}"#).is_err());
    assert_eq!(ParseConfig::default().format, "cdn");
}

#[test]
fn config_errors_are_typed_and_all_reported() {
    let error = |parse: ParseConfig, clean: CleanConfig| Decoder::new(&parse, &clean).expect_err("invalid").to_string();
    let with = |format: &str| ParseConfig { format: format.into(), ..ParseConfig::default() };
    assert_eq!(
        error(with("apache"), CleanConfig::default()),
        "parse.format: unknown preset \"apache\" (presets: combined, main, cdn, json; a custom format contains $variables)"
    );
    assert!(error(with("$remote_addr$status"), CleanConfig::default()).contains("$remote_addr and $status (byte 12 of the log format) have no literal text between them"));
    assert_eq!(
        error(ParseConfig { escape: Some(Escape::Default), ..with("json") }, CleanConfig::default()),
        "parse.escape = default contradicts the format's escape=json"
    );
    assert_eq!(error(with("log_format x escape=xml '$status';"), CleanConfig::default()), "parse.format: unknown log format escaping \"xml\" (expected default, json or none)");
    assert_eq!(error(with("$remote_addr $status \"$request\" $bytes_sent"), CleanConfig::default()), "log format lacks a time variable ($time_local, $time_iso8601 or $msec)");

    let several = Decoder::new(
        &ParseConfig { max_line_bytes: 0, ..with("apache") },
        &CleanConfig { trusted_proxies: vec!["10.0.0.0/99".into()], ..CleanConfig::default() },
    )
    .expect_err("invalid");
    assert_eq!(several.problems().len(), 3, "{several}");
    assert!(matches!(several.problems()[..], [ConfigError::MaxLineBytes, ConfigError::UnknownPreset { .. }, ConfigError::TrustedProxy(_)]));
}

#[test]
fn every_preset_compiles_with_a_complete_layout() {
    for preset in presets::ALL {
        let decoder = decoder_for(preset.name);
        assert_eq!(decoder.format().escape(), preset.escape, "{}", preset.name);
        assert_eq!(decoder.format().ignored_variables().count(), 0, "{}", preset.name);
    }
}

// ---- property tests ----------------------------------------------------------------------

/// Formats the round-trip property renders lines with. `host_port`: whether `$host` may carry a
/// port in this format (not where `:` is the next literal).
struct RoundTripFormat {
    format: &'static str,
    escape: Escape,
    host_port: bool,
}

const ROUND_TRIP_FORMATS: [RoundTripFormat; 7] = [
    RoundTripFormat { format: presets::COMBINED.format, escape: Escape::Default, host_port: true },
    RoundTripFormat { format: presets::MAIN.format, escape: Escape::Default, host_port: true },
    RoundTripFormat { format: presets::CDN.format, escape: Escape::Default, host_port: true },
    RoundTripFormat { format: presets::JSON.format, escape: Escape::Json, host_port: true },
    RoundTripFormat { format: SAMPLE_FORMAT, escape: Escape::Default, host_port: true },
    RoundTripFormat {
        format: r#"${msec} $remote_addr $host:$server_port "$request_method $request_uri" $status $bytes_sent rt=$request_time urt="$upstream_response_time" cs=$upstream_cache_status "$http_user_agent" xff="$http_x_forwarded_for""#,
        escape: Escape::Default,
        host_port: false,
    },
    // escape=none cannot represent a `"` or `|` inside a value: the generator avoids them here.
    RoundTripFormat {
        format: r#"$remote_addr|$time_iso8601|$request|$status|$body_bytes_sent|$server_name|"$http_user_agent"|$http_x_real_ip"#,
        escape: Escape::None,
        host_port: false,
    },
];

#[derive(Clone, Debug)]
struct Request {
    remote_addr: IpAddr,
    remote_user: Option<Vec<u8>>,
    utc_ms: i64,
    offset_minutes: i32,
    method: &'static str,
    uri: Vec<u8>,
    status: u16,
    body_bytes: u64,
    bytes: u64,
    referer: Option<Vec<u8>>,
    user_agent: Option<Vec<u8>>,
    forwarded_for: Vec<IpAddr>,
    real_ip: Option<IpAddr>,
    host: String,
    port: Option<u16>,
    request_time_ms: u32,
    upstream_ms: Vec<Option<u32>>,
    upstream_separator: &'static str,
    cache: Option<&'static str>,
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|bits| IpAddr::V4(Ipv4Addr::from(bits))),
        any::<u128>().prop_map(|bits| IpAddr::V6(Ipv6Addr::from(bits))),
        // Private and mapped addresses exercise the trusted-proxy walk and canonicalisation.
        (any::<u16>()).prop_map(|low| IpAddr::V4(Ipv4Addr::new(10, 0, (low >> 8) as u8, low as u8))),
        any::<u32>().prop_map(|bits| IpAddr::V6(Ipv4Addr::from(bits).to_ipv6_mapped())),
    ]
}

/// Pieces of the formats' literal text, so values collide with delimiters far more often than
/// random bytes would.
const TRICKY: [&[u8]; 14] =
    [b"\"", b" ", b" [", b"] \"", b"\" \"", b"\\", b"\\x22", b"-", b", ", b" - ", b"\",\"", b"\":\"", b"|", b"\n"];

/// Value bytes; for escape=none without the bytes that would make the line ambiguous.
fn any_text(max: usize, raw_safe: bool) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => any::<u8>().prop_map(|b| vec![b]),
        1 => prop::sample::select(&TRICKY[..]).prop_map(<[u8]>::to_vec),
    ];
    prop::collection::vec(piece, 0..max).prop_map(move |pieces| {
        let mut bytes = pieces.concat();
        if raw_safe {
            bytes.retain(|b| !matches!(b, b'"' | b'|'));
        }
        bytes
    })
}

const METHODS: [&str; 11] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "PROPFIND", "get"];
const CACHE: [&str; 8] = ["HIT", "MISS", "BYPASS", "EXPIRED", "STALE", "UPDATING", "REVALIDATED", "hit"];

fn any_request(raw_safe: bool, host_port: bool) -> impl Strategy<Value = Request> {
    let addresses = (any_ip(), prop::collection::vec(any_ip(), 0..4), prop::option::of(any_ip()));
    let time = (86_400_000i64..253_402_300_799_000 - 86_400_000, -18 * 60..=18 * 60i32);
    let request = (prop::sample::select(&METHODS[..]), any_text(40, raw_safe), 100u16..=599, any::<u64>(), any::<u64>());
    let texts = (prop::option::of(any_text(12, raw_safe)), prop::option::of(any_text(60, raw_safe)), prop::option::of(any_text(60, raw_safe)));
    let host = (prop::collection::vec("[a-zA-Z0-9][a-zA-Z0-9_-]{0,9}", 1..4), prop::option::of(any::<u16>()));
    let timings = (
        // Below u32::MAX microseconds, where the parser saturates.
        0u32..4_000_000,
        prop::collection::vec(prop::option::of(0u32..4_000_000), 0..4),
        prop::sample::select(&[", ", " : "][..]),
        prop::option::of(prop::sample::select(&CACHE[..])),
    );
    (addresses, time, request, texts, host, timings).prop_map(
        move |(
            (remote_addr, forwarded_for, real_ip),
            (utc_ms, offset_minutes),
            (method, uri, status, body_bytes, bytes),
            (remote_user, referer, user_agent),
            (labels, port),
            (request_time_ms, upstream_ms, upstream_separator, cache),
        )| Request {
            remote_addr,
            remote_user,
            utc_ms,
            offset_minutes,
            method,
            uri,
            status,
            body_bytes,
            bytes,
            referer,
            user_agent,
            forwarded_for,
            real_ip,
            host: labels.join("."),
            port: port.filter(|_| host_port),
            request_time_ms,
            upstream_ms,
            upstream_separator,
            cache,
        },
    )
}

fn millis(ms: u32) -> Vec<u8> {
    format!("{}.{:03}", ms / 1000, ms % 1000).into_bytes()
}

impl Request {
    /// The unescaped value nginx has for a variable (`None`: not found).
    fn value(&self, name: &str) -> Option<Vec<u8>> {
        let text = |s: String| Some(s.into_bytes());
        match name {
            "remote_addr" => text(self.remote_addr.to_string()),
            "remote_user" => self.remote_user.clone(),
            "time_local" => text(format_time_local(self.utc_ms, self.offset_minutes)),
            "time_iso8601" => text(format_time_iso8601(self.utc_ms, self.offset_minutes)),
            "msec" => text(format_msec(self.utc_ms)),
            "request" => Some([self.method.as_bytes(), b" ", &self.uri, b" HTTP/1.1"].concat()),
            "request_method" => text(self.method.to_owned()),
            "request_uri" => Some(self.uri.clone()),
            "status" => text(self.status.to_string()),
            "body_bytes_sent" => text(self.body_bytes.to_string()),
            "bytes_sent" => text(self.bytes.to_string()),
            "http_referer" => self.referer.clone(),
            "http_user_agent" => self.user_agent.clone(),
            "http_x_forwarded_for" if self.forwarded_for.is_empty() => None,
            "http_x_forwarded_for" => text(self.forwarded_for.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
            "http_x_real_ip" => self.real_ip.map(|ip| ip.to_string().into_bytes()),
            "host" | "server_name" => text(match self.port {
                Some(port) => format!("{}:{port}", self.host),
                None => self.host.clone(),
            }),
            "server_port" => text("443".into()),
            "request_time" => Some(millis(self.request_time_ms)),
            "upstream_response_time" if self.upstream_ms.is_empty() => None,
            "upstream_response_time" => Some(
                self.upstream_ms
                    .iter()
                    .map(|ms| ms.map_or(b"-".to_vec(), millis))
                    .collect::<Vec<_>>()
                    .join(self.upstream_separator.as_bytes()),
            ),
            "upstream_cache_status" => self.cache.map(|c| c.as_bytes().to_vec()),
            _ => None,
        }
    }

    /// The record the pipeline should produce for this request in `format`, computed without
    /// the code under test.
    fn expected(&self, format: &LogFormat) -> CleanRecord<'static> {
        let trusted = |address: &IpAddr| match address {
            IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        };
        let canonical = |address: IpAddr| match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        let chain: Vec<IpAddr> = if format.has(Var::HttpXForwardedFor) { self.forwarded_for.iter().copied().map(canonical).collect() } else { vec![] };
        let from_chain = chain.iter().rev().find(|a| !trusted(a)).or(chain.first()).copied();
        let real_ip = self.real_ip.filter(|_| format.has(Var::HttpXRealIp)).map(canonical);
        let client_ip = real_ip.or(from_chain).unwrap_or_else(|| canonical(self.remote_addr));

        let time_var = [Var::Msec, Var::TimeIso8601, Var::TimeLocal].into_iter().find(|&var| format.has(var));
        let event_ms = if time_var == Some(Var::Msec) { self.utc_ms } else { self.utc_ms.div_euclid(1000) * 1000 };
        let has_domain = format.has(Var::Host) || format.has(Var::ServerName);
        let method = match self.method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            "CONNECT" => Method::Connect,
            "TRACE" => Method::Trace,
            _ => Method::Other,
        };
        let cache = format.has(Var::UpstreamCacheStatus).then(|| match self.cache.map(str::to_ascii_uppercase).as_deref() {
            Some("HIT") => CacheStatus::Hit,
            Some("MISS") => CacheStatus::Miss,
            Some("BYPASS") => CacheStatus::Bypass,
            Some("EXPIRED") => CacheStatus::Expired,
            Some("STALE") => CacheStatus::Stale,
            Some("UPDATING") => CacheStatus::Updating,
            Some("REVALIDATED") => CacheStatus::Revalidated,
            _ => CacheStatus::None,
        });
        CleanRecord {
            event_ms,
            domain: Cow::Owned(if has_domain { self.host.to_ascii_lowercase() } else { "default.example".into() }),
            account: None,
            client_ip,
            method,
            status: self.status,
            bytes: if format.has(Var::BytesSent) { self.bytes } else { self.body_bytes },
            request_time_us: format.has(Var::RequestTime).then_some(self.request_time_ms * 1000),
            upstream_time_us: if format.has(Var::UpstreamResponseTime) { self.upstream_ms.last().copied().flatten().map(|ms| ms * 1000) } else { None },
            cache,
        }
    }
}

fn round_trip_case() -> impl Strategy<Value = (usize, Request, Option<u64>)> {
    (0..ROUND_TRIP_FORMATS.len()).prop_flat_map(|index| {
        let spec = &ROUND_TRIP_FORMATS[index];
        (Just(index), any_request(spec.escape == Escape::None, spec.host_port), prop::option::of(any::<u64>()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A line rendered from random values, escaped as nginx escapes them, parses back to the
    /// same values and cleans to the record they describe, raw or inside a Filebeat event.
    #[test]
    fn rendered_lines_decode_back_to_their_fields((index, request, envelope_offset) in round_trip_case()) {
        let spec = &ROUND_TRIP_FORMATS[index];
        let format = LogFormat::compile(spec.format, spec.escape).expect("compiles");
        let mut line = Vec::new();
        let values: BTreeMap<&str, Option<Vec<u8>>> = format.variables().map(|name| (name, request.value(name))).collect();
        format.render(|name| values.get(name).and_then(|v| v.as_deref()), &mut line);

        let fields = format.parse(&line).map_err(|r| TestCaseError::fail(format!("{r} in {}", line.escape_ascii())))?;
        for name in format.variables() {
            if let Some(var) = Var::from_name(name) {
                let expected = values[name].clone().unwrap_or_else(|| spec.escape.not_found().to_vec());
                prop_assert_eq!(fields.unescaped(var).map(|v| v.into_owned()), Some(expected), "${} in {}", name, line.escape_ascii());
            }
        }

        let clean = CleanConfig { default_domain: Some("default.example".into()), ..CleanConfig::default() };
        let mut decoder = decoder(ParseConfig { format: spec.format.into(), escape: Some(spec.escape), ..ParseConfig::default() }, clean);
        let expected = request.expected(&format);
        let payload = match envelope_offset {
            None => line.clone(),
            Some(offset) => {
                // Filebeat carries text: only lines that are UTF-8 can travel in an event.
                let Ok(text) = std::str::from_utf8(&line) else { return Ok(()) };
                serde_json::json!({"message": text, "log": {"offset": offset, "file": {"path": "/l"}}, "agent": {"id": "x"}}).to_string().into_bytes()
            }
        };
        let decoded = decoder.decode(&payload).map_err(|r| TestCaseError::fail(format!("{r} in {}", line.escape_ascii())))?;
        prop_assert_eq!(&decoded.record, &expected, "{}", line.escape_ascii());
        prop_assert_eq!(decoded.origin.map(|o| o.offset), envelope_offset);
    }

    #[test]
    fn arbitrary_bytes_never_panic(format in 0..ROUND_TRIP_FORMATS.len(), payload in prop::collection::vec(any::<u8>(), 0..600), json in any::<bool>()) {
        let spec = &ROUND_TRIP_FORMATS[format];
        let parse = ParseConfig { format: spec.format.into(), escape: Some(spec.escape), max_line_bytes: 512, ..ParseConfig::default() };
        let mut decoder = decoder(parse, CleanConfig::default());
        let payload = if json { [b"{\"message\":\"".as_slice(), &payload].concat() } else { payload };
        let _ = decoder.decode(&payload);
    }

    /// Valid lines with a few bytes changed: close to every branch of the matcher and cleaner.
    #[test]
    fn mutated_lines_never_panic(
        (index, request, _) in round_trip_case(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let spec = &ROUND_TRIP_FORMATS[index];
        let format = LogFormat::compile(spec.format, spec.escape).expect("compiles");
        let mut line = Vec::new();
        let values: BTreeMap<&str, Option<Vec<u8>>> = format.variables().map(|name| (name, request.value(name))).collect();
        format.render(|name| values.get(name).and_then(|v| v.as_deref()), &mut line);
        for (at, byte, kind) in edits {
            if line.is_empty() { break }
            let at = at.index(line.len());
            match kind {
                0 => line[at] = byte,
                1 => line.insert(at, byte),
                _ => { line.remove(at); }
            }
        }
        let mut decoder = decoder(ParseConfig { format: spec.format.into(), escape: Some(spec.escape), ..ParseConfig::default() }, CleanConfig::default());
        let _ = decoder.decode(&line);
    }
}

//! Fuzz target: arbitrary bytes through `Decoder::decode` for every preset and for formats
//! that exercise the matcher's harder paths (escape=none backtracking, JSON escapes, `$msec`).
//! The first byte picks the configuration, the rest is the message. Any panic is a bug.
//!
//! Run from `dataflows/`: `cargo +nightly fuzz run decode -- -max_total_time=300`.

#![no_main]

use std::sync::OnceLock;

use dataflows::clean::CleanConfig;
use dataflows::parse::{Decoder, Escape, ParseConfig};
use libfuzzer_sys::fuzz_target;

const FORMATS: [(&str, Option<Escape>); 7] = [
    ("combined", None),
    ("main", None),
    ("cdn", None),
    ("json", None),
    ("cdn", Some(Escape::None)),
    (r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_real_ip""#, None),
    (r#"${msec} $host:$server_port "$request_method $request_uri" $status $bytes_sent $request_time "$upstream_response_time" $upstream_cache_status "$http_x_forwarded_for" $time_iso8601"#, Some(Escape::Json)),
];

fn decoders() -> Vec<Decoder> {
    let clean = CleanConfig {
        accounts: [("*.example.com".to_owned(), "acme".to_owned())].into(),
        default_domain: Some("default.example".into()),
        ..CleanConfig::default()
    };
    FORMATS
        .iter()
        .map(|&(format, escape)| {
            let parse = ParseConfig { format: format.into(), escape, max_line_bytes: 8192, ..ParseConfig::default() };
            Decoder::new(&parse, &clean).expect("fuzz configs are valid")
        })
        .collect()
}

static TEMPLATES: OnceLock<Vec<Decoder>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    // Decoders keep caches, so each input gets a fresh clone of a compiled one.
    let mut decoder = TEMPLATES.get_or_init(decoders)[usize::from(selector) % FORMATS.len()].clone();
    let _ = decoder.decode(message);
    // The same message twice: the second run goes through the time cache.
    let _ = decoder.decode(message);
});

//! Regression: `Decoder::decode` allocates nothing on the happy path (accepted raw lines, and
//! Filebeat events whose strings have no JSON escapes). Its own test binary, because it
//! installs a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dataflows::clean::CleanConfig;
use dataflows::parse::{Decoder, ParseConfig};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations made on this thread while running `work`.
fn allocations_during(work: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    work();
    ALLOCATIONS.with(Cell::get) - before
}

fn decoder(format: &str) -> Decoder {
    let parse = ParseConfig { format: format.into(), ..ParseConfig::default() };
    let clean = CleanConfig {
        accounts: [("cdn.example.com".to_owned(), "acme".to_owned())].into(),
        default_domain: Some("www.example.com".into()),
        ..CleanConfig::default()
    };
    Decoder::new(&parse, &clean).expect("valid config")
}

const CDN_LINES: [&str; 3] = [
    r#"10.0.0.2 - - [20/Nov/2026:16:15:39 +0800] "GET /a.js HTTP/1.1" 200 5120 "https://www.example.com/" "Mozilla/5.0 \x22x\x22" "-" "203.0.113.7" cdn.example.com 0.012 0.010 HIT 5400"#,
    r#"10.0.0.3 - bob [20/Nov/2026:16:15:40 +0800] "POST /api HTTP/2.0" 502 0 "-" "curl/8.5.0" "198.51.100.1, 10.0.0.1" "-" img.example.com:8443 1.500 0.700, 0.800 - 310"#,
    r#"2001:db8::1 - - [20/Nov/2026:16:16:00 +0800] "-" 400 0 "-" "-" "-" "-" cdn.example.com 0.000 - - 150"#,
];

#[test]
fn accepted_raw_lines_allocate_nothing() {
    let mut decoder = decoder("cdn");
    for line in CDN_LINES {
        let allocations = allocations_during(|| {
            let decoded = decoder.decode(line.as_bytes()).expect("accepted");
            std::hint::black_box(decoded);
        });
        assert_eq!(allocations, 0, "{line}");
    }
}

#[test]
fn a_line_longer_than_any_before_grows_the_line_buffer_once() {
    let mut decoder = decoder("cdn");
    let long_agent = "x".repeat(6000);
    let line = CDN_LINES[0].replace("Mozilla/5.0", &long_agent);
    for expected in [1, 0] {
        let allocations = allocations_during(|| {
            std::hint::black_box(decoder.decode(line.as_bytes()).expect("accepted"));
        });
        assert_eq!(allocations, expected);
    }
}

#[test]
fn accepted_json_lines_allocate_nothing() {
    let mut decoder = decoder("json");
    let line = r#"{"time_iso8601":"2026-11-20T16:15:39+08:00","remote_addr":"10.0.0.2","request":"GET /a?q=\"x\" HTTP/2.0","status":"200","body_bytes_sent":"10","bytes_sent":"300","http_referer":"","http_user_agent":"UA","http_x_forwarded_for":"","http_x_real_ip":"2001:db8::9","host":"img.example.com","request_time":"0.001","upstream_response_time":"","upstream_cache_status":""}"#;
    let allocations = allocations_during(|| {
        std::hint::black_box(decoder.decode(line.as_bytes()).expect("accepted"));
    });
    assert_eq!(allocations, 0);
}

#[test]
fn filebeat_events_without_escapes_allocate_nothing() {
    let mut decoder = decoder("$remote_addr [$time_local] $request_method $status $bytes_sent $host");
    let event = r#"{"@timestamp":"2026-11-20T08:15:42.118Z","@metadata":{"beat":"filebeat","version":"8.15.0"},"log":{"offset":4096,"file":{"path":"/var/log/nginx/access.log"}},"message":"203.0.113.7 [20/Nov/2026:16:15:39 +0800] GET 200 5120 cdn.example.com","host":{"name":"web-1"},"agent":{"id":"5b0e6a3e","type":"filebeat"},"tags":["a",1,null]}"#;
    let allocations = allocations_during(|| {
        let decoded = decoder.decode(event.as_bytes()).expect("accepted");
        assert_eq!(decoded.origin.map(|origin| origin.offset), Some(4096));
    });
    assert_eq!(allocations, 0);
}

#[test]
fn an_upper_case_host_costs_exactly_its_lower_cased_copy() {
    let mut decoder = decoder("cdn");
    let line = CDN_LINES[0].replace("cdn.example.com", "CDN.example.com");
    let allocations = allocations_during(|| {
        let decoded = decoder.decode(line.as_bytes()).expect("accepted");
        assert_eq!(decoded.record.domain, "cdn.example.com");
    });
    assert_eq!(allocations, 1);
}

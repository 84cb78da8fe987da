//! The `log_format` compiler: turns an nginx format string into a matcher that splits a line
//! into the raw text of each variable, with no regex and no allocation per line.
//!
//! Contract:
//! - `LogFormat::compile` accepts what nginx accepts (`$name`, `${name}`, any literal text) and
//!   refuses what cannot be matched back: two variables with no literal between them.
//! - `LogFormat::parse` returns `Fields`: for each variable the pipeline knows ([`Var`]), the
//!   text nginx wrote for it, still escaped (nothing we keep ever needs unescaping: valid IPs,
//!   hosts, numbers and times contain no escapable byte). Variables we do not know are matched
//!   and dropped. A variable the format lacks is `None`.
//! - Matching: each variable ends at the next occurrence of the literal that follows it; the
//!   last variable ends where the line's closing literal starts. That first split is tried
//!   by the straight-line plan in `plan.rs`, the backtracking matcher here runs only if it
//!   fails. Where that leftmost split is wrong (a `$upstream_response_time` of
//!   `0.012, 0.034` in a space-separated format, raw quotes with `escape=none`), the value's
//!   shape (e.g. "no spaces" for `$status`) rejects it and the matcher tries the next
//!   occurrence, within a fixed budget, so hostile lines cost bounded time. `$time_local` and
//!   `$time_iso8601` have a fixed width, so they are located without a search; only if no
//!   split works is a second pass made that lets them have any width (the line then fails
//!   as `bad_time`, naming the value, instead of `bad_format`).
//! - With `escape=json` a `"` preceded by an odd number of backslashes is part of the value.
//! - `LogFormat::render` writes a line exactly as nginx would (used by tests, benches and the
//!   traffic generator).

use std::borrow::Cow;
use std::fmt;

use memchr::memchr;
use thiserror::Error;

use super::escape::{is_backslash_escaped, Escape};
use super::plan::{LineBuffer, Plan};
use crate::record::{Reject, RejectReason};

macro_rules! vars {
    ($($variant:ident => $name:literal,)*) => {
        /// The nginx variables the pipeline reads. Any other variable in a format is matched and
        /// ignored.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Var { $($variant,)* }

        impl Var {
            pub const ALL: [Var; [$($name),*].len()] = [$(Var::$variant),*];
            pub const COUNT: usize = Var::ALL.len();

            /// The variable's nginx name, without `$`.
            pub fn name(self) -> &'static str {
                match self { $(Var::$variant => $name,)* }
            }

            pub fn from_name(name: &str) -> Option<Var> {
                match name { $($name => Some(Var::$variant),)* _ => None }
            }
        }
    };
}

vars! {
    RemoteAddr => "remote_addr",
    RemoteUser => "remote_user",
    TimeLocal => "time_local",
    TimeIso8601 => "time_iso8601",
    Msec => "msec",
    Request => "request",
    RequestMethod => "request_method",
    RequestUri => "request_uri",
    Status => "status",
    BodyBytesSent => "body_bytes_sent",
    BytesSent => "bytes_sent",
    HttpReferer => "http_referer",
    HttpUserAgent => "http_user_agent",
    HttpXForwardedFor => "http_x_forwarded_for",
    HttpXRealIp => "http_x_real_ip",
    Host => "host",
    ServerName => "server_name",
    RequestTime => "request_time",
    UpstreamResponseTime => "upstream_response_time",
    UpstreamCacheStatus => "upstream_cache_status",
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.name())
    }
}

/// What text a variable can have; lets the matcher reject a wrong split and try the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    /// Anything (headers, the request line, unknown variables).
    Any,
    /// No space: values nginx generates as one token (numbers, addresses, `$host`).
    Token,
    /// Always this many bytes (`$time_local`, `$time_iso8601`): located without searching.
    Fixed(usize),
    /// A per-upstream list such as `0.012, 0.034` or `0.012 : 0.020` or `-`.
    UpstreamList,
}

/// How a candidate value fits its variable's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fit {
    Yes,
    /// Not this value, but a longer one might (e.g. `0.012,` before ` 0.034`).
    NotYet,
    /// Neither this value nor any longer one (e.g. a space in a token).
    Never,
}

impl Shape {
    fn of(name: &str) -> Shape {
        match name {
            "time_local" => Shape::Fixed(TIME_LOCAL_WIDTH),
            "time_iso8601" => Shape::Fixed(TIME_ISO8601_WIDTH),
            "remote_addr" | "remote_port" | "server_addr" | "server_port" | "status" | "body_bytes_sent" | "bytes_sent" | "msec"
            | "request_time" | "request_length" | "request_method" | "upstream_cache_status" | "host" | "server_name" | "pipe"
            | "connection" | "connection_requests" | "scheme" | "server_protocol" | "request_id" | "ssl_protocol" | "ssl_cipher" => {
                Shape::Token
            }
            "upstream_response_time" | "upstream_connect_time" | "upstream_header_time" | "upstream_status" => Shape::UpstreamList,
            _ => Shape::Any,
        }
    }

    /// Whether `value` fits, when found by searching for the following literal. `lenient`
    /// lets a fixed-width value have any width (the second pass, see `LogFormat::parse`).
    pub(super) fn fit(self, value: &[u8], lenient: bool) -> Fit {
        match self {
            Shape::Any => Fit::Yes,
            Shape::Fixed(_) if lenient => Fit::Yes,
            Shape::Fixed(width) => match value.len().cmp(&width) {
                std::cmp::Ordering::Equal => Fit::Yes,
                std::cmp::Ordering::Less => Fit::NotYet,
                std::cmp::Ordering::Greater => Fit::Never,
            },
            Shape::Token => {
                // Not `contains`: that calls memchr, slower than a loop on a few bytes.
                if !value.iter().all(|&byte| byte != b' ') {
                    Fit::Never
                } else {
                    Fit::Yes
                }
            }
            Shape::UpstreamList => {
                if !value.iter().all(|&b| b.is_ascii_digit() || matches!(b, b'.' | b',' | b':' | b' ' | b'-')) {
                    Fit::Never
                } else if value.first() == Some(&b' ') || matches!(value.last(), Some(b',' | b':' | b' ')) {
                    Fit::NotYet
                } else {
                    Fit::Yes
                }
            }
        }
    }
}

/// `dd/Mon/yyyy:hh:mm:ss +hhmm`
pub const TIME_LOCAL_WIDTH: usize = 26;
/// `yyyy-mm-ddThh:mm:ss+hh:mm`
pub const TIME_ISO8601_WIDTH: usize = 25;

/// Formats with more variables than this are refused (keeps the matcher's recursion shallow).
pub const MAX_VARIABLES: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FormatError {
    #[error("log format has no variables")]
    NoVariables,
    #[error("'$' at byte {at} of the log format is not followed by a variable name")]
    BadVariable { at: usize },
    #[error("the closing bracket of the variable at byte {at} of the log format is missing")]
    UnclosedBrace { at: usize },
    #[error(
        "${first} and ${second} (byte {at} of the log format) have no literal text between them, so nothing \
         in a line marks where one ends and the next begins; put a separator such as a space between them"
    )]
    AdjacentVariables { first: String, second: String, at: usize },
    #[error("log format has more than {MAX_VARIABLES} variables")]
    TooManyVariables,
}

/// Literal bytes with a precomputed word, so checking "does the text start with these" is one
/// masked 8-byte compare for literals up to 8 bytes (nearly all of them).
#[derive(Clone, Debug, Default)]
pub(super) struct Pattern {
    bytes: Box<[u8]>,
    word: u64,
    mask: u64,
    /// At most 8 bytes and none of them NUL (see `is_prefix_of_word`).
    padding_safe: bool,
}

impl Pattern {
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn new(bytes: &[u8]) -> Pattern {
        let mut word = [0u8; 8];
        let mut mask = [0u8; 8];
        if bytes.len() <= 8 {
            word[..bytes.len()].copy_from_slice(bytes);
            mask[..bytes.len()].fill(0xff);
        }
        let padding_safe = bytes.len() <= 8 && !bytes.contains(&0);
        Pattern { bytes: bytes.into(), word: u64::from_le_bytes(word), mask: u64::from_le_bytes(mask), padding_safe }
    }

    #[inline(always)]
    pub(super) fn is_prefix_of(&self, text: &[u8]) -> bool {
        if self.bytes.len() <= 8 {
            if let Some(chunk) = text.first_chunk::<8>() {
                return u64::from_le_bytes(*chunk) & self.mask == self.word;
            }
        }
        has_prefix(text, &self.bytes)
    }

    /// Whether `line[at..]` starts with these bytes, given `word`: the 8 bytes at `at`, zeros
    /// past the line's end. Up to 8 bytes without a NUL (nearly every literal) is one masked
    /// compare: such a pattern cannot match the zeros, so it needs no length check.
    #[inline(always)]
    pub(super) fn is_prefix_of_word(&self, word: u64, line: &[u8], at: usize) -> bool {
        if self.padding_safe {
            word & self.mask == self.word
        } else {
            line.get(at..).is_some_and(|text| has_prefix(text, &self.bytes))
        }
    }
}

/// Literal text that ends a variable's value.
#[derive(Clone, Debug)]
pub(super) struct Literal {
    /// The whole literal.
    pub(super) whole: Pattern,
    /// The literal after its first byte, checked where the first byte was found.
    pub(super) rest: Pattern,
    /// `escape=json` and the literal starts with `"`: a backslash-escaped quote is value text.
    pub(super) skip_escaped_quotes: bool,
}

impl Literal {
    fn new(bytes: Vec<u8>, escape: Escape) -> Literal {
        let skip_escaped_quotes = escape == Escape::Json && bytes.first() == Some(&b'"');
        Literal { rest: Pattern::new(bytes.get(1..).unwrap_or_default()), whole: Pattern::new(&bytes), skip_escaped_quotes }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.whole.bytes
    }

    /// The first occurrence at or after `from` of this literal that can end a value starting
    /// at `value_start`. Always inlined: it runs once per variable per line.
    #[inline(always)]
    fn find(&self, line: &[u8], value_start: usize, mut from: usize) -> Option<usize> {
        let &first = self.whole.bytes.first()?;
        loop {
            let at = from + find_byte(first, line.get(from..)?)?;
            if self.rest.is_prefix_of(line.get(at + 1..)?) && !(self.skip_escaped_quotes && is_backslash_escaped(line, value_start, at)) {
                return Some(at);
            }
            from = at + 1;
        }
    }
}

/// A variable and the literal that follows it (empty only for the last one).
#[derive(Clone, Debug)]
pub(super) struct Segment {
    name: Box<str>,
    pub(super) var: Option<Var>,
    pub(super) shape: Shape,
    pub(super) literal: Literal,
}

/// A compiled nginx `log_format`.
#[derive(Clone, Debug)]
pub struct LogFormat {
    source: Box<str>,
    escape: Escape,
    prefix: Pattern,
    segments: Box<[Segment]>,
    /// The leftmost match as straight-line steps (see [`Plan`]).
    plan: Plan,
}

/// The raw text of each known variable in one line, borrowed from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields<'l> {
    values: [Option<&'l [u8]>; Var::COUNT],
    escape: Escape,
}

impl<'l> Fields<'l> {
    /// Empty fields, for building by hand (tests, other sources).
    pub fn new(escape: Escape) -> Fields<'l> {
        Fields { values: [None; Var::COUNT], escape }
    }

    /// Sets `var`'s raw text (as nginx wrote it, escaped).
    pub fn set(&mut self, var: Var, raw: &'l [u8]) {
        self.values[var as usize] = Some(raw);
    }

    /// The text nginx wrote for `var` (still escaped), `None` if the format lacks it.
    pub fn get(&self, var: Var) -> Option<&'l [u8]> {
        self.values[var as usize]
    }

    /// Like `get`, but `None` also for nginx's "no value" (`-`, or empty with escape=json/none).
    pub fn value(&self, var: Var) -> Option<&'l [u8]> {
        self.get(var).filter(|&raw| !matches!(raw, b"-" | b""))
    }

    /// `var`'s text with nginx's escaping undone.
    pub fn unescaped(&self, var: Var) -> Option<Cow<'l, [u8]>> {
        self.get(var).map(|raw| self.escape.unescape(raw))
    }

    pub fn escape(&self) -> Escape {
        self.escape
    }
}

/// Why a line did not match, at the point where matching got furthest.
#[derive(Clone, Copy, Debug)]
enum Miss {
    Prefix,
    /// The literal after segment `segment` was not found after byte `start`.
    Literal { segment: usize, start: usize },
    /// No end for segment `segment`'s value starting at `start` gave it a valid shape.
    Shape { segment: usize, start: usize },
    /// The line does not end with the format's closing literal (last value from `start`).
    Ending { start: usize },
    Budget,
}

impl Miss {
    fn position(self) -> usize {
        match self {
            Miss::Prefix | Miss::Budget => 0,
            Miss::Literal { start, .. } | Miss::Shape { start, .. } | Miss::Ending { start } => start,
        }
    }
}

/// Bounds the number of value placements per line. A line that needs no backtracking uses one
/// per variable; this leaves ample room for real ambiguity and caps hostile input.
const PLACEMENT_BUDGET: u32 = 256;

struct Matcher<'f, 'l, 'v> {
    format: &'f LogFormat,
    line: &'l [u8],
    values: &'v mut [Option<&'l [u8]>; Var::COUNT],
    budget: u32,
    exhausted: bool,
    lenient: bool,
    furthest: Option<Miss>,
}

impl<'f, 'l, 'v> Matcher<'f, 'l, 'v> {
    fn new(format: &'f LogFormat, line: &'l [u8], lenient: bool, values: &'v mut [Option<&'l [u8]>; Var::COUNT]) -> Self {
        Matcher { format, line, values, budget: PLACEMENT_BUDGET, exhausted: false, lenient, furthest: None }
    }

    fn miss(&mut self, miss: Miss) -> bool {
        if self.furthest.is_none_or(|seen| miss.position() >= seen.position()) {
            self.furthest = Some(miss);
        }
        false
    }

    fn place(&mut self, segment: &Segment, value: &'l [u8]) -> bool {
        if self.budget == 0 {
            self.exhausted = true;
            return false;
        }
        self.budget -= 1;
        if let Some(var) = segment.var {
            self.values[var as usize] = Some(value);
        }
        true
    }

    /// Matches segments `index..` against `line[start..]`; true once the whole line matched.
    fn match_from(&mut self, index: usize, start: usize) -> bool {
        let format = self.format;
        let line = self.line;
        let segment = &format.segments[index];
        let literal = &segment.literal.whole;

        if index + 1 == format.segments.len() {
            let Some(end) = line.len().checked_sub(literal.bytes.len()).filter(|&end| end >= start && literal.is_prefix_of(&line[end..])) else {
                return self.miss(Miss::Ending { start });
            };
            let value = &line[start..end];
            if segment.shape.fit(value, self.lenient) != Fit::Yes {
                return self.miss(Miss::Shape { segment: index, start });
            }
            return self.place(segment, value);
        }

        if let Shape::Fixed(width) = segment.shape {
            let end = start + width;
            if line.get(end..).is_some_and(|rest| literal.is_prefix_of(rest)) {
                if !self.place(segment, &line[start..end]) {
                    return false;
                }
                if self.match_from(index + 1, end + literal.bytes.len()) {
                    return true;
                }
            }
        }

        let mut from = start;
        loop {
            if self.exhausted {
                return false;
            }
            let Some(end) = segment.literal.find(line, start, from) else {
                return self.miss(Miss::Literal { segment: index, start });
            };
            let value = &line[start..end];
            match segment.shape.fit(value, self.lenient) {
                Fit::Yes => {
                    if !self.place(segment, value) {
                        return false;
                    }
                    if self.match_from(index + 1, end + literal.bytes.len()) {
                        return true;
                    }
                }
                Fit::NotYet => {}
                Fit::Never => return self.miss(Miss::Shape { segment: index, start }),
            }
            from = end + 1;
        }
    }
}

/// Where `needle` first occurs. Values are mostly tens of bytes long, where memchr's call and
/// dispatch cost more than the search itself: the first bytes are scanned here 16 at a time
/// (SSE2, part of every x86-64 CPU) or 8 at a time (SWAR) elsewhere, and memchr takes over
/// for long values.
#[inline(always)]
fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    const INLINE_BYTES: usize = 64;
    let mut at = 0;
    while let Some(block) = haystack.get(at..at + BLOCK).and_then(|block| <&[u8; BLOCK]>::try_from(block).ok()) {
        if let Some(offset) = block_search(needle, block) {
            return Some(at + offset);
        }
        at += BLOCK;
        if at >= INLINE_BYTES {
            return memchr(needle, &haystack[at..]).map(|offset| at + offset);
        }
    }
    haystack[at..].iter().position(|&byte| byte == needle).map(|offset| at + offset)
}

#[cfg(target_arch = "x86_64")]
const BLOCK: usize = 16;

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_search(needle: u8, block: &[u8; BLOCK]) -> Option<usize> {
    // SAFETY: SSE2 is part of the x86-64 baseline, so every x86-64 CPU has it.
    unsafe { find_in_block(needle, block) }
}

/// The first `needle` in a 16-byte block: one compare and one movemask.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn find_in_block(needle: u8, block: &[u8; BLOCK]) -> Option<usize> {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8, _mm_set_epi64x};
    // A safe 16-byte load; the compiler turns it into one unaligned vector load.
    let word = u128::from_le_bytes(*block);
    let bytes = _mm_set_epi64x((word >> 64) as i64, word as i64);
    let mask = _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(needle as i8))) as u32;
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

#[cfg(not(target_arch = "x86_64"))]
const BLOCK: usize = 8;

/// The first `needle` in an 8-byte block, SWAR: flag bytes equal to the needle.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn block_search(needle: u8, block: &[u8; BLOCK]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let diff = u64::from_le_bytes(*block) ^ (ONES * u64::from(needle));
    // Has-zero-byte: the lowest flag is exact (higher ones may be borrow artefacts).
    let flags = diff.wrapping_sub(ONES) & !diff & HIGHS;
    (flags != 0).then(|| flags.trailing_zeros() as usize / 8)
}

/// `text.starts_with(prefix)` without a call to memcmp: literals are a few bytes long.
#[inline(always)]
fn has_prefix(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text.iter().zip(prefix).all(|(a, b)| a == b)
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Shows a short piece of a line or format in a reject detail or error.
pub(crate) fn show(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let shown: String = bytes.iter().take(MAX).flat_map(|b| b.escape_ascii()).map(char::from).collect();
    if bytes.len() > MAX {
        format!("{shown}...")
    } else {
        shown
    }
}

impl LogFormat {
    /// Compiles an nginx `log_format` string (the text between the quotes, concatenated).
    pub fn compile(format: &str, escape: Escape) -> Result<LogFormat, FormatError> {
        let bytes = format.as_bytes();
        let mut prefix: Option<Vec<u8>> = None;
        let mut segments: Vec<Segment> = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                literal.push(bytes[i]);
                i += 1;
                continue;
            }
            let dollar = i;
            i += 1;
            let braced = bytes.get(i) == Some(&b'{');
            if braced {
                i += 1;
            }
            let name_start = i;
            while i < bytes.len() && is_name_byte(bytes[i]) {
                i += 1;
            }
            let name = &format[name_start..i];
            if braced {
                if bytes.get(i) != Some(&b'}') {
                    return Err(FormatError::UnclosedBrace { at: dollar });
                }
                i += 1;
            }
            if name.is_empty() {
                return Err(FormatError::BadVariable { at: dollar });
            }
            let text = std::mem::take(&mut literal);
            match segments.last_mut() {
                None => prefix = Some(text),
                Some(previous) if text.is_empty() => {
                    return Err(FormatError::AdjacentVariables { first: previous.name.to_string(), second: name.to_owned(), at: dollar });
                }
                Some(previous) => previous.literal = Literal::new(text, escape),
            }
            if segments.len() == MAX_VARIABLES {
                return Err(FormatError::TooManyVariables);
            }
            segments.push(Segment {
                name: name.into(),
                var: Var::from_name(name),
                shape: Shape::of(name),
                literal: Literal::new(Vec::new(), escape),
            });
        }
        let Some(last) = segments.last_mut() else {
            return Err(FormatError::NoVariables);
        };
        last.literal = Literal::new(literal, escape);
        let plan = Plan::new(&segments);
        Ok(LogFormat {
            source: format.into(),
            escape,
            prefix: Pattern::new(&prefix.unwrap_or_default()),
            segments: segments.into_boxed_slice(),
            plan,
        })
    }

    /// Splits `line` (without its newline) into fields; `bad_format` if it does not match.
    /// (Allocates a [`LineBuffer`]; a stream of lines goes through [`LogFormat::parse_into`].)
    pub fn parse<'l>(&self, line: &'l [u8]) -> Result<Fields<'l>, Reject> {
        let mut fields = Fields::new(self.escape);
        self.parse_into(line, &mut fields, &mut LineBuffer::default())?;
        Ok(fields)
    }

    /// [`LogFormat::parse`] into caller-provided fields (saves moving them on the hot path),
    /// with a buffer reused from line to line.
    pub fn parse_into<'l>(&self, line: &'l [u8], fields: &mut Fields<'l>, buffer: &mut LineBuffer) -> Result<(), Reject> {
        fields.escape = self.escape;
        fields.values = [None; Var::COUNT];
        if !self.prefix.is_prefix_of(line) {
            return Err(self.describe(Miss::Prefix, line));
        }
        if self.match_leftmost(line, &mut fields.values, buffer) {
            return Ok(());
        }
        let mut strict = Matcher::new(self, line, false, &mut fields.values);
        if strict.match_from(0, self.prefix.bytes.len()) {
            return Ok(());
        }
        if strict.exhausted {
            return Err(self.describe(Miss::Budget, line));
        }
        let furthest = strict.furthest;
        // Second pass: a time of the wrong width is still placed, so the line is rejected as
        // bad_time (with the value shown) rather than bad_format.
        let mut lenient = Matcher::new(self, line, true, &mut fields.values);
        if lenient.match_from(0, self.prefix.bytes.len()) {
            return Ok(());
        }
        Err(self.describe(furthest.unwrap_or(Miss::Ending { start: 0 }), line))
    }

    /// The common case without recursion: each value ends at the first occurrence of its
    /// literal and fits its shape. This is the first path `Matcher` would explore, so when it
    /// succeeds the answer is the same; when it does not, `Matcher` starts over.
    fn match_leftmost<'l>(&self, line: &'l [u8], values: &mut [Option<&'l [u8]>; Var::COUNT], buffer: &mut LineBuffer) -> bool {
        self.plan.run(line, self.prefix.bytes.len(), values, buffer)
    }

    fn describe(&self, miss: Miss, line: &[u8]) -> Reject {
        // A line cut off (a full disk, a truncated copy) inside a quoted value fails wherever the
        // backtracking got furthest, often well past the cut; naming the open quote is clearer.
        if !matches!(miss, Miss::Prefix | Miss::Budget) {
            if let Some((segment, start)) = self.open_quoted_value(line) {
                let name = &self.segments[segment].name;
                return Reject::new(
                    RejectReason::BadFormat,
                    format!("line ended inside the quoted value of ${name} (no closing quote after byte {start})"),
                );
            }
        }
        let detail = match miss {
            Miss::Prefix => format!("expected '{}' at byte 0", show(&self.prefix.bytes)),
            Miss::Literal { segment, start } => {
                let segment = &self.segments[segment];
                format!("expected '{}' after ${} at byte {start}", show(segment.literal.bytes()), segment.name)
            }
            Miss::Shape { segment, start } => {
                let name = &self.segments[segment].name;
                let rest = line.get(start..).unwrap_or_default();
                format!("unexpected text for ${name} at byte {start}: '{}'", show(rest))
            }
            Miss::Ending { .. } => match self.segments.last() {
                Some(last) if !last.literal.bytes().is_empty() => format!("expected the line to end with '{}'", show(last.literal.bytes())),
                _ => "line does not match the log format".to_owned(),
            },
            Miss::Budget => format!("ambiguous line: no consistent split after {PLACEMENT_BUDGET} tries"),
        };
        Reject::new(RejectReason::BadFormat, detail)
    }

    /// The quoted value a line ends inside of, and where it starts: the line has an odd number
    /// of quotes (not counting backslash-escaped ones, which nginx's `escape=json` and Apache
    /// write inside values; nginx's `escape=default` writes `\x22`), the format an even one,
    /// and the line's last quote is the format's opening quote of that value. `None` with
    /// `escape=none`, where values may hold raw quotes.
    fn open_quoted_value(&self, line: &[u8]) -> Option<(usize, usize)> {
        if self.escape == Escape::None {
            return None;
        }
        let mut count = 0;
        let mut last = 0;
        for at in memchr::memchr_iter(b'"', line) {
            if !is_backslash_escaped(line, 0, at) {
                count += 1;
                last = at;
            }
        }
        let literals = std::iter::once(self.prefix.bytes()).chain(self.segments.iter().map(|segment| segment.literal.bytes()));
        let format_quotes: usize = literals.clone().map(|literal| memchr::memchr_iter(b'"', literal).count()).sum();
        if count % 2 == 0 || format_quotes % 2 != 0 {
            return None;
        }
        // The literal holding the format's `count`-th quote must end with it and open a value
        // that a quote closes.
        let mut seen = 0;
        for (index, literal) in literals.enumerate() {
            seen += memchr::memchr_iter(b'"', literal).count();
            if seen >= count {
                let opens = seen == count && literal.last() == Some(&b'"');
                let segment = self.segments.get(index)?;
                return (opens && segment.literal.bytes().first() == Some(&b'"')).then_some((index, last + 1));
            }
        }
        None
    }

    /// Appends the line nginx would write, taking each variable's unescaped value from
    /// `value_of` (by name, without `$`); `None` is a variable nginx did not find.
    pub fn render<'v>(&self, mut value_of: impl FnMut(&str) -> Option<&'v [u8]>, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix.bytes);
        for segment in self.segments.iter() {
            match value_of(&segment.name) {
                Some(value) => self.escape.write(value, out),
                None => out.extend_from_slice(self.escape.not_found()),
            }
            out.extend_from_slice(segment.literal.bytes());
        }
    }

    /// The format text this was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn escape(&self) -> Escape {
        self.escape
    }

    /// Whether the format has `var`.
    pub fn has(&self, var: Var) -> bool {
        self.segments.iter().any(|segment| segment.var == Some(var))
    }

    /// Every variable name in the format, in order, without `$`.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(|segment| &*segment.name)
    }

    /// The variables the pipeline does not read (matched and dropped); worth logging at start-up
    /// since a typo such as `$remote_adr` lands here.
    pub fn ignored_variables(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter(|segment| segment.var.is_none()).map(|segment| &*segment.name)
    }

    /// Whether lines are JSON objects (the format starts with `{`).
    pub fn is_json_object(&self) -> bool {
        self.prefix.bytes.trim_ascii_start().starts_with(b"{")
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::presets;

    fn compile(format: &str) -> LogFormat {
        LogFormat::compile(format, Escape::Default).expect("format compiles")
    }

    fn field<'l>(fields: &Fields<'l>, var: Var) -> &'l str {
        std::str::from_utf8(fields.get(var).expect("field present")).expect("utf-8")
    }

    const CDN_LINE: &str = r#"203.0.113.7 - - [20/Nov/2026:16:15:39 +0800] "GET /static/app.js HTTP/1.1" 200 5120 "https://www.example.com/" "Mozilla/5.0 (X11; Linux x86_64)" "203.0.113.7, 10.0.0.2" "203.0.113.7" cdn.example.com 0.012 0.010, 0.002 HIT 5400"#;

    #[test]
    fn cdn_line_splits_into_fields() {
        let format = compile(presets::CDN.format);
        let fields = format.parse(CDN_LINE.as_bytes()).expect("matches");
        assert_eq!(field(&fields, Var::RemoteAddr), "203.0.113.7");
        assert_eq!(field(&fields, Var::RemoteUser), "-");
        assert_eq!(field(&fields, Var::TimeLocal), "20/Nov/2026:16:15:39 +0800");
        assert_eq!(field(&fields, Var::Request), "GET /static/app.js HTTP/1.1");
        assert_eq!(field(&fields, Var::Status), "200");
        assert_eq!(field(&fields, Var::BodyBytesSent), "5120");
        assert_eq!(field(&fields, Var::HttpReferer), "https://www.example.com/");
        assert_eq!(field(&fields, Var::HttpUserAgent), "Mozilla/5.0 (X11; Linux x86_64)");
        assert_eq!(field(&fields, Var::HttpXForwardedFor), "203.0.113.7, 10.0.0.2");
        assert_eq!(field(&fields, Var::HttpXRealIp), "203.0.113.7");
        assert_eq!(field(&fields, Var::Host), "cdn.example.com");
        assert_eq!(field(&fields, Var::RequestTime), "0.012");
        // Two upstreams, space-separated format: the leftmost split is wrong and is retried.
        assert_eq!(field(&fields, Var::UpstreamResponseTime), "0.010, 0.002");
        assert_eq!(field(&fields, Var::UpstreamCacheStatus), "HIT");
        assert_eq!(field(&fields, Var::BytesSent), "5400");
        assert_eq!(fields.get(Var::ServerName), None);
        assert_eq!(fields.get(Var::Msec), None);
    }

    proptest::proptest! {
        /// The leftmost fast path is only a shortcut: whenever it succeeds, the backtracking
        /// matcher finds the same split.
        #[test]
        fn fast_path_agrees_with_the_backtracking_matcher(
            tokens in proptest::collection::vec("[0-9a-z .,:\\-\"\\[\\]]{0,12}", 6),
            upstream in "[0-9., :-]{0,10}",
            time_local in proptest::bool::ANY,
            long_agent in 0usize..600,
        ) {
            let format = compile(r#"$remote_addr - [$time_local] "$http_user_agent" $status $upstream_response_time $bytes_sent"#);
            let time = if time_local { "20/Nov/2026:16:15:39 +0800" } else { tokens[5].as_str() };
            // Long values take several probes.
            let agent = format!("{}{}", tokens[1], "a b".repeat(long_agent / 3));
            let line = format!("{} - [{time}] \"{agent}\" {} {} {}", tokens[0], tokens[2], upstream, tokens[4]);
            let mut fast = [None; Var::COUNT];
            if format.match_leftmost(line.as_bytes(), &mut fast, &mut LineBuffer::default()) {
                let mut slow = [None; Var::COUNT];
                let mut matcher = Matcher::new(&format, line.as_bytes(), false, &mut slow);
                proptest::prop_assert!(matcher.match_from(0, 0), "{}", line);
                proptest::prop_assert_eq!(fast, slow, "{}", line);
            }
        }
    }

    #[test]
    fn a_literal_with_a_nul_is_not_matched_against_the_padding_past_the_line() {
        let format = compile("$status\0x$body_bytes_sent\0");
        assert_eq!(field(&format.parse(b"200\0x5\0").expect("matches"), Var::BodyBytesSent), "5");
        assert!(format.parse(b"200\0x5").is_err());
        let format = compile("$status\0$body_bytes_sent");
        assert!(format.parse(b"200\0").is_ok_and(|fields| fields.get(Var::BodyBytesSent) == Some(b"")));
        assert!(format.parse(b"200").is_err());
    }

    #[test]
    fn a_token_with_a_space_does_not_match_even_before_a_longer_literal() {
        let format = compile("$remote_addr - $status");
        let reject = format.parse(b"1.2.3.4 x - 200").expect_err("space in an address");
        assert_eq!(reject.detail, "unexpected text for $remote_addr at byte 0: '1.2.3.4 x - 200'");
        let fields = compile("$status $body_bytes_sent").parse(b"200 5").expect("matches");
        assert_eq!(field(&fields, Var::BodyBytesSent), "5");
    }

    #[test]
    fn upstream_lists_with_colons_and_dashes_are_placed() {
        let format = compile("$upstream_response_time $upstream_cache_status $status");
        for (line, urt) in [
            ("0.012 : 0.020 MISS 200", "0.012 : 0.020"),
            ("- - 502", "-"),
            ("0.001, 0.002, - MISS 200", "0.001, 0.002, -"),
            ("0.001 MISS 200", "0.001"),
        ] {
            let fields = format.parse(line.as_bytes()).expect(line);
            assert_eq!(field(&fields, Var::UpstreamResponseTime), urt, "{line}");
        }
    }

    #[test]
    fn braced_variables_and_adjacent_literals() {
        let format = compile("${remote_addr}|${status}xx$body_bytes_sent");
        let fields = format.parse(b"1.2.3.4|200xx17").expect("matches");
        assert_eq!(field(&fields, Var::RemoteAddr), "1.2.3.4");
        assert_eq!(field(&fields, Var::Status), "200");
        assert_eq!(field(&fields, Var::BodyBytesSent), "17");
        assert_eq!(format.variables().collect::<Vec<_>>(), ["remote_addr", "status", "body_bytes_sent"]);
    }

    #[test]
    fn unknown_variables_consume_their_text_and_are_listed() {
        let format = compile("$remote_addr $connection [$geoip_country_code] $status");
        let fields = format.parse(b"1.2.3.4 77 [New Zealand] 404").expect("matches");
        assert_eq!(field(&fields, Var::Status), "404");
        assert_eq!(format.ignored_variables().collect::<Vec<_>>(), ["connection", "geoip_country_code"]);
        assert!(format.has(Var::Status));
        assert!(!format.has(Var::Host));
    }

    #[test]
    fn fixed_width_time_with_a_space_is_not_split_by_a_space_separator() {
        let format = compile("$time_local $status $body_bytes_sent");
        let fields = format.parse(b"20/Nov/2026:16:15:39 +0800 200 512").expect("matches");
        assert_eq!(field(&fields, Var::TimeLocal), "20/Nov/2026:16:15:39 +0800");
        assert_eq!(field(&fields, Var::Status), "200");
    }

    #[test]
    fn malformed_time_is_still_placed_so_it_can_be_rejected_as_bad_time() {
        let format = compile(presets::COMBINED.format);
        let fields = format.parse(br#"1.2.3.4 - - [yesterday] "GET / HTTP/1.1" 200 1 "-" "-""#).expect("matches");
        assert_eq!(field(&fields, Var::TimeLocal), "yesterday");
    }

    #[test]
    fn default_escaped_quotes_do_not_end_a_value() {
        let format = compile(presets::COMBINED.format);
        let line = br#"1.2.3.4 - - [20/Nov/2026:16:15:39 +0800] "GET /a\x22b HTTP/1.1" 200 1 "-" "Evil \x22UA\x22 \x5C""#;
        let fields = format.parse(line).expect("matches");
        assert_eq!(field(&fields, Var::HttpUserAgent), r#"Evil \x22UA\x22 \x5C"#);
        assert_eq!(fields.unescaped(Var::HttpUserAgent).as_deref(), Some(&br#"Evil "UA" \"#[..]));
        assert_eq!(fields.unescaped(Var::Request).as_deref(), Some(&br#"GET /a"b HTTP/1.1"#[..]));
    }

    #[test]
    fn json_escaped_quotes_do_not_end_a_value() {
        let format = LogFormat::compile(r#"{"ua":"$http_user_agent","s":"$status"}"#, Escape::Json).expect("compiles");
        let fields = format.parse(br#"{"ua":"a\",\"s\":\"b \\","s":"200"}"#).expect("matches");
        assert_eq!(field(&fields, Var::HttpUserAgent), r#"a\",\"s\":\"b \\"#);
        assert_eq!(fields.unescaped(Var::HttpUserAgent).as_deref(), Some(&br#"a","s":"b \"#[..]));
        assert_eq!(field(&fields, Var::Status), "200");
        assert!(format.is_json_object());
    }

    #[test]
    fn escape_none_with_raw_quotes_backtracks_to_a_consistent_split() {
        let format = LogFormat::compile(r#""$http_user_agent" "$http_referer" $status"#, Escape::None).expect("compiles");
        let fields = format.parse(br#""say "hi" there" "-" 200"#).expect("matches");
        assert_eq!(field(&fields, Var::HttpUserAgent), r#"say "hi" there"#);
        assert_eq!(field(&fields, Var::HttpReferer), "-");
    }

    #[test]
    fn mismatches_say_where() {
        let format = compile(presets::COMBINED.format);
        let reject = format.parse(b"1.2.3.4 - frank").expect_err("too short");
        assert_eq!(reject.reason, RejectReason::BadFormat);
        assert_eq!(reject.detail, "expected ' [' after $remote_user at byte 10");

        let reject = compile("[$status]").parse(b"200]").expect_err("no prefix");
        assert_eq!(reject.detail, "expected '[' at byte 0");

        let reject = compile("$status $body_bytes_sent").parse(b"200 1 2").expect_err("space in bytes");
        assert_eq!(reject.detail, "unexpected text for $body_bytes_sent at byte 4: '1 2'");

        let reject = compile("$status \"$http_user_agent\"").parse(b"200 \"curl\" x").expect_err("text after the closing quote");
        assert_eq!(reject.detail, "expected the line to end with '\\\"'");
    }

    #[test]
    fn a_line_cut_off_inside_a_quoted_value_says_so() {
        let combined = compile(presets::COMBINED.format);
        let whole = r#"192.0.2.1 - - [20/Nov/2026:16:15:39 +0800] "GET /a HTTP/1.1" 304 - "https://example.com/" "Mozilla/5.0 (X11; Linux)""#;
        assert!(combined.parse(whole.as_bytes()).is_ok());
        let referer = whole.find("https").expect("referer");
        let agent = whole.find("Mozilla").expect("agent");
        let inside = |name: &str, start: usize| format!("line ended inside the quoted value of ${name} (no closing quote after byte {start})");
        // Cut inside the last value (also just before its closing quote), inside an earlier one,
        // and right after an opening quote.
        for (cut, name, start) in
            [(agent + 7, "http_user_agent", agent), (whole.len() - 1, "http_user_agent", agent), (referer + 5, "http_referer", referer), (referer, "http_referer", referer)]
        {
            let reject = combined.parse(&whole.as_bytes()[..cut]).expect_err("cut off");
            assert_eq!((reject.reason, reject.detail.into_owned()), (RejectReason::BadFormat, inside(name, start)));
        }
        // Cut right after a closing quote, or between values: not inside a quoted value.
        let reject = combined.parse(&whole.as_bytes()[..agent - 2]).expect_err("cut after the referer");
        assert_eq!(reject.detail, format!("expected '\\\" \\\"' after $http_referer at byte {referer}"));
        let reject = combined.parse(&whole.as_bytes()[..referer - 2]).expect_err("cut before the referer");
        assert_eq!(reject.detail, format!("expected ' \\\"' after $body_bytes_sent at byte {}", referer - 3));
        // escape=json: an escaped quote does not close the value.
        let json = LogFormat::compile("$status \"$http_user_agent\"", Escape::Json).expect("compiles");
        let reject = json.parse(br#"200 "UA \"1\"#).expect_err("cut off");
        assert_eq!(reject.detail, inside("http_user_agent", 5));
    }

    #[test]
    fn hostile_lines_stop_at_the_budget() {
        let format = LogFormat::compile(r#""$http_referer" "$http_user_agent" "$request" $status"#, Escape::None).expect("compiles");
        let line = "\" \"".repeat(5_000);
        let reject = format.parse(line.as_bytes()).expect_err("no status");
        assert_eq!(reject.reason, RejectReason::BadFormat);
    }

    #[test]
    fn find_byte_agrees_with_a_plain_search() {
        for len in 0..150usize {
            for at in (0..len).step_by(3).chain([len.saturating_sub(1)]) {
                let mut haystack = vec![b'a'; len];
                if len > 0 {
                    haystack[at] = b'"';
                    // A byte that differs from the needle only in the high bit must not match.
                    haystack[(at + 1) % len] = b'"' | 0x80;
                }
                let expected = haystack.iter().position(|&b| b == b'"');
                assert_eq!(find_byte(b'"', &haystack), expected, "len {len} at {at}");
            }
            assert_eq!(find_byte(b'"', &vec![0x22 ^ 0x01; len]), None);
        }
        assert_eq!(find_byte(0, &[1, 0, 0, 1]), Some(1));
        assert_eq!(find_byte(0xff, &[0xfe, 0xff]), Some(1));
    }

    #[test]
    fn compile_errors() {
        assert_eq!(LogFormat::compile("plain text", Escape::Default).unwrap_err(), FormatError::NoVariables);
        assert_eq!(LogFormat::compile("a $ b", Escape::Default).unwrap_err(), FormatError::BadVariable { at: 2 });
        assert_eq!(LogFormat::compile("${}", Escape::Default).unwrap_err(), FormatError::BadVariable { at: 0 });
        assert_eq!(LogFormat::compile("x ${status", Escape::Default).unwrap_err(), FormatError::UnclosedBrace { at: 2 });
        assert_eq!(LogFormat::compile("${a-b}", Escape::Default).unwrap_err(), FormatError::UnclosedBrace { at: 0 });
        let adjacent = LogFormat::compile("$remote_addr$remote_user", Escape::Default).unwrap_err();
        assert_eq!(adjacent, FormatError::AdjacentVariables { first: "remote_addr".into(), second: "remote_user".into(), at: 12 });
        assert!(adjacent.to_string().contains("nothing in a line marks where one ends"));
        let many = "$a ".repeat(MAX_VARIABLES + 1);
        assert_eq!(LogFormat::compile(&many, Escape::Default).unwrap_err(), FormatError::TooManyVariables);
    }

    #[test]
    fn render_writes_what_nginx_writes() {
        let format = compile(presets::COMBINED.format);
        let mut line = Vec::new();
        format.render(
            |name| match name {
                "remote_addr" => Some(b"1.2.3.4"),
                "time_local" => Some(b"20/Nov/2026:16:15:39 +0800"),
                "request" => Some(b"GET / HTTP/1.1"),
                "status" => Some(b"200"),
                "body_bytes_sent" => Some(b"5"),
                "http_user_agent" => Some(b"say \"hi\""),
                _ => None,
            },
            &mut line,
        );
        assert_eq!(line, br#"1.2.3.4 - - [20/Nov/2026:16:15:39 +0800] "GET / HTTP/1.1" 200 5 "-" "say \x22hi\x22""#);
        let fields = format.parse(&line).expect("round trip");
        assert_eq!(fields.value(Var::RemoteUser), None);
        assert_eq!(fields.unescaped(Var::HttpUserAgent).as_deref(), Some(&b"say \"hi\""[..]));
    }
}

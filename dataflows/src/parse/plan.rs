//! The matcher's fast path: the leftmost split of a line (each value ends at the first
//! occurrence of the literal after it, and fits its shape) as straight-line steps.
//!
//! The line is first copied into a zero-padded stack buffer, so every step can load 32 bytes
//! at its search position and 8 at its literal without checking how much line is left: a
//! value's end is found 32 bytes per probe (two SSE2 compares and a trailing-zero count),
//! and a literal of up to 9 bytes is checked with one compare of its first byte and one
//! masked 8-byte compare of the rest. Most values (addresses, numbers, host names, short
//! quoted strings) end within the first probe.
//!
//! Contract: [`Plan::run`] places exactly the values `LogFormat::match_segments` would, for
//! every segment but the last, and returns where the last value starts; `None` means the
//! leftmost split does not work (or the line is longer than [`MAX_PLANNED_BYTES`]) and the
//! caller falls back to the general matcher, which gives the same answer or a reject.

use super::escape::is_backslash_escaped;
use super::format::{Fit, Pattern, Segment, Shape, Var};

/// Lines up to this long take the fast path (copied to a stack buffer); longer ones, rare
/// (very long URLs or headers), take the segment-by-segment path.
pub(super) const MAX_PLANNED_BYTES: usize = 512;

/// Bytes a probe reads at once.
const PROBE: usize = 32;

/// Zero bytes after the line in the buffer: a probe at the line's end or a literal check
/// just before it stays inside.
const PADDING: usize = PROBE + 8;

/// How a [`Step`] finds the end of its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepKind {
    /// `Shape::Fixed`: the literal follows at exactly this width, or the fast path gives up.
    Fixed(usize),
    /// A token whose literal starts with a space: the value ends at the first space, and the
    /// literal must start there (any later occurrence would leave a space in the token).
    TokenToSpace,
    /// The first occurrence of the literal where the value fits its shape.
    Search,
}

/// One segment, flattened so the loop touches one small struct per value.
#[derive(Clone, Debug)]
struct Step {
    kind: StepKind,
    shape: Shape,
    var: Option<Var>,
    /// The literal's first byte, and repeated across a probe (loaded, not rebuilt, per line).
    first: u8,
    splat: [u8; 16],
    /// The literal after its first byte.
    rest: Pattern,
    literal_len: usize,
    skip_escaped_quotes: bool,
}

/// Compiled fast path of one log format.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    steps: Box<[Step]>,
}

impl Plan {
    /// The plan for `segments` (`None` for a format of one variable: nothing to split).
    pub(super) fn new(segments: &[Segment]) -> Option<Plan> {
        let (_, init) = segments.split_last()?;
        let steps = init
            .iter()
            .map(|segment| {
                let literal = &segment.literal;
                let &first = literal.bytes().first()?;
                let kind = match segment.shape {
                    Shape::Fixed(width) => StepKind::Fixed(width),
                    Shape::Token if first == b' ' => StepKind::TokenToSpace,
                    _ => StepKind::Search,
                };
                Some(Step {
                    kind,
                    shape: segment.shape,
                    var: segment.var,
                    first,
                    splat: [first; 16],
                    rest: literal.rest.clone(),
                    literal_len: literal.bytes().len(),
                    skip_escaped_quotes: literal.skip_escaped_quotes,
                })
            })
            .collect::<Option<Box<[Step]>>>()?;
        (!steps.is_empty()).then_some(Plan { steps })
    }

    /// Places every value but the last, as `LogFormat::match_segments` would (plus skipping
    /// `Fit::NotYet` ends, as `Matcher` does); where the last value starts.
    #[inline]
    pub(super) fn run<'l>(&self, line: &'l [u8], mut start: usize, values: &mut [Option<&'l [u8]>; Var::COUNT]) -> Option<usize> {
        let len = line.len();
        if len > MAX_PLANNED_BYTES || start > len {
            return None;
        }
        let mut padded = [0u8; MAX_PLANNED_BYTES + PADDING];
        padded[..len].copy_from_slice(line);
        for step in self.steps.iter() {
            let end = match step.kind {
                StepKind::Fixed(width) => {
                    let end = start + width;
                    if end >= len || padded[end] != step.first || !step.rest.is_prefix_at(&padded, line, end + 1) {
                        return None;
                    }
                    end
                }
                StepKind::TokenToSpace => {
                    let end = find(&padded, &step.splat, start, len)?;
                    if !step.rest.is_prefix_at(&padded, line, end + 1) {
                        return None;
                    }
                    end
                }
                StepKind::Search => {
                    let mut from = start;
                    loop {
                        let at = find(&padded, &step.splat, from, len)?;
                        if step.rest.is_prefix_at(&padded, line, at + 1) && !(step.skip_escaped_quotes && is_backslash_escaped(line, start, at)) {
                            match step.shape.fit(&line[start..at], false) {
                                Fit::Yes => break at,
                                Fit::NotYet => {}
                                Fit::Never => return None,
                            }
                        }
                        from = at + 1;
                    }
                }
            };
            if let Some(var) = step.var {
                values[var as usize] = Some(&line[start..end]);
            }
            start = end + step.literal_len;
            if start > len {
                return None;
            }
        }
        Some(start)
    }
}

/// The first `needle` in `padded[from..len]`, where `padded` extends `len` bytes of line by
/// at least [`PROBE`] bytes and `from <= len`.
#[inline(always)]
fn find(padded: &[u8], needle: &[u8; 16], mut from: usize, len: usize) -> Option<usize> {
    loop {
        let probe: &[u8; PROBE] = padded.get(from..from + PROBE)?.try_into().expect("probe-sized slice");
        let bits = probe_bits(needle, probe);
        if bits != 0 {
            let at = from + bits.trailing_zeros() as usize;
            return (at < len).then_some(at);
        }
        from += PROBE;
        if from >= len {
            return None;
        }
    }
}

/// Bit `i` set where `probe[i]` is `needle`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn probe_bits(needle: &[u8; 16], probe: &[u8; PROBE]) -> u32 {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8};
    // SAFETY: SSE2 is part of the x86-64 baseline; the loads read 16 bytes of a 16-byte array
    // and 2 x 16 bytes of a 32-byte array.
    unsafe {
        let needle = _mm_loadu_si128(needle.as_ptr().cast::<__m128i>());
        let low = _mm_loadu_si128(probe.as_ptr().cast::<__m128i>());
        let high = _mm_loadu_si128(probe.as_ptr().add(16).cast::<__m128i>());
        let low_bits = _mm_movemask_epi8(_mm_cmpeq_epi8(low, needle)) as u32 & 0xffff;
        let high_bits = _mm_movemask_epi8(_mm_cmpeq_epi8(high, needle)) as u32 & 0xffff;
        low_bits | high_bits << 16
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn probe_bits(needle: &[u8; 16], probe: &[u8; PROBE]) -> u32 {
    probe.iter().enumerate().fold(0, |bits, (at, &byte)| bits | u32::from(byte == needle[0]) << at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length up to the limit and every start, needles at the probe edges, in the
    /// padding's reach, and a zero needle (which the padding must not fake).
    #[test]
    fn find_agrees_with_a_plain_search() {
        for len in 0..=MAX_PLANNED_BYTES {
            let line: Vec<u8> = (0..len).map(|at| [b'a', b' ', b'"', 0, b'x', 0x80 | b' '][at * 7 % 11 % 6]).collect();
            let mut padded = vec![0u8; MAX_PLANNED_BYTES + PADDING];
            padded[..len].copy_from_slice(&line);
            for needle in [b' ', b'"', 0, b']'] {
                for from in 0..=len {
                    let expected = line[from..].iter().position(|&byte| byte == needle).map(|offset| from + offset);
                    assert_eq!(find(&padded, &[needle; 16], from, len), expected, "len {len} from {from} needle {needle}");
                }
            }
        }
    }
}

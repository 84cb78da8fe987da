//! The matcher's fast path: the leftmost split of a line (each value ends at the first
//! occurrence of the literal after it, and fits its shape) as straight-line steps.
//!
//! The line is first copied into a reused buffer with zero bytes after it ([`LineBuffer`]),
//! so every step loads 32 bytes at its search position and 8 at its literal without checking
//! how much line is left. A value's end is found 32 bytes per probe (two SSE2 compares and a
//! trailing-zero count), and a literal of up to 9 bytes is checked with one compare of its
//! first byte and one masked 8-byte compare of the rest. Most values (addresses, numbers,
//! host names, short quoted strings) end within the first probe.
//!
//! Contract: [`Plan::run`] places every value exactly as the first path of the backtracking
//! `Matcher` would; `false` means that path does not work and the caller falls back to the
//! `Matcher`, which gives the same answer or a reject.

use super::escape::is_backslash_escaped;
use super::format::{Fit, Pattern, Segment, Shape, Var};

/// Bytes a probe reads at once.
const PROBE: usize = 32;

/// Zero bytes after the line in a [`LineBuffer`]: a probe from the line's end or a literal
/// check just before it stays inside.
const PADDING: usize = PROBE + 8;

/// A copy of the line being matched, followed by `PADDING` (40) zero bytes. Reused from line to
/// line and never cleared whole; it starts with room for [`LineBuffer::START_BYTES`] and
/// grows (allocates) only for a line longer than any before.
#[derive(Clone, Debug)]
pub struct LineBuffer {
    bytes: Vec<u8>,
}

impl Default for LineBuffer {
    fn default() -> LineBuffer {
        LineBuffer { bytes: vec![0; LineBuffer::START_BYTES + PADDING] }
    }
}

impl LineBuffer {
    /// Room for nearly every access-log line from the start.
    pub const START_BYTES: usize = 4096;

    /// `line` then `PADDING` zero bytes.
    #[inline(always)]
    fn load(&mut self, line: &[u8]) -> &[u8] {
        let padded = line.len() + PADDING;
        if self.bytes.len() < padded {
            self.bytes.resize(padded, 0);
        }
        let (copy, padding) = self.bytes[..padded].split_at_mut(line.len());
        copy.copy_from_slice(line);
        padding.fill(0);
        &self.bytes[..padded]
    }
}

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

/// The last segment: its value runs to where the line's closing literal starts.
#[derive(Clone, Debug)]
struct Last {
    shape: Shape,
    var: Option<Var>,
    closing: Pattern,
}

/// Compiled fast path of one log format.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    steps: Box<[Step]>,
    last: Option<Last>,
}

/// A space across a probe: the needle of `Shape::Token` checks.
const SPACES: [u8; 16] = [b' '; 16];

impl Plan {
    /// The plan for `segments` (every one but the last has a literal after it).
    pub(super) fn new(segments: &[Segment]) -> Plan {
        let (last, init) = match segments.split_last() {
            Some((last, init)) => (Some(Last { shape: last.shape, var: last.var, closing: last.literal.whole.clone() }), init),
            None => (None, &[][..]),
        };
        let steps = init
            .iter()
            .map(|segment| {
                let literal = &segment.literal;
                debug_assert!(!literal.bytes().is_empty(), "compile refuses adjacent variables");
                let first = literal.bytes().first().copied().unwrap_or_default();
                let kind = match segment.shape {
                    Shape::Fixed(width) => StepKind::Fixed(width),
                    Shape::Token if first == b' ' => StepKind::TokenToSpace,
                    _ => StepKind::Search,
                };
                Step {
                    kind,
                    shape: segment.shape,
                    var: segment.var,
                    first,
                    splat: [first; 16],
                    rest: literal.rest.clone(),
                    literal_len: literal.bytes().len(),
                    skip_escaped_quotes: literal.skip_escaped_quotes,
                }
            })
            .collect();
        Plan { steps, last }
    }

    /// Places every value at the first end that fits (as `Matcher`'s first path does);
    /// whether the whole line matched that way. `start` is where the first value starts.
    #[inline]
    pub(super) fn run<'l>(
        &self,
        line: &'l [u8],
        start: usize,
        values: &mut [Option<&'l [u8]>; Var::COUNT],
        buffer: &mut LineBuffer,
    ) -> bool {
        self.place(line, start, values, buffer).is_some()
    }

    #[inline(always)]
    fn place<'l>(&self, line: &'l [u8], mut start: usize, values: &mut [Option<&'l [u8]>; Var::COUNT], buffer: &mut LineBuffer) -> Option<()> {
        let len = line.len();
        if start > len {
            return None;
        }
        let padded = buffer.load(line);
        for step in self.steps.iter() {
            let end = match step.kind {
                StepKind::Fixed(width) => {
                    let end = start + width;
                    if end >= len || line[end] != step.first || !step.rest.is_prefix_of_word(word_at(padded, end + 1), line, end + 1) {
                        return None;
                    }
                    end
                }
                StepKind::TokenToSpace => {
                    let end = find(padded, &step.splat, start, len)?;
                    if !step.rest.is_prefix_of_word(word_at(padded, end + 1), line, end + 1) {
                        return None;
                    }
                    end
                }
                StepKind::Search => {
                    let mut from = start;
                    loop {
                        let at = find(padded, &step.splat, from, len)?;
                        if step.rest.is_prefix_of_word(word_at(padded, at + 1), line, at + 1) && !(step.skip_escaped_quotes && is_backslash_escaped(line, start, at)) {
                            // Quoted values (`Shape::Any`) fit whatever they hold.
                            if step.shape == Shape::Any {
                                break at;
                            }
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
        let last = self.last.as_ref()?;
        let end = len.checked_sub(last.closing.bytes().len()).filter(|&end| end >= start && last.closing.is_prefix_of(&line[end..]))?;
        let fits = match last.shape {
            // One probe instead of a byte loop for the common case (a number at the line's end).
            Shape::Token => find(padded, &SPACES, start, end).is_none(),
            shape => shape.fit(&line[start..end], false) == Fit::Yes,
        };
        if !fits {
            return None;
        }
        if let Some(var) = last.var {
            values[var as usize] = Some(&line[start..end]);
        }
        Some(())
    }
}

/// The 8 bytes at `at` of a padded line (`at <= len + 1`), as a word.
#[inline(always)]
fn word_at(padded: &[u8], at: usize) -> u64 {
    padded.get(at..at + 8).map_or(0, |bytes| u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
}

/// The first `needle` (repeated 16 times) in `padded[from..len]`, where `padded` is a line of
/// `len` bytes and its padding, and `from <= len`.
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

    /// Every length up to past a few probes and every start, needles at the probe edges, in
    /// the padding's reach, and a zero needle (which the padding must not fake); the buffer
    /// reused from longer to shorter lines.
    #[test]
    fn find_agrees_with_a_plain_search() {
        let mut buffer = LineBuffer::default();
        for len in (0..=4 * PROBE + 3).rev() {
            let line: Vec<u8> = (0..len).map(|at| [b'a', b' ', b'"', 0, b'x', 0x80 | b' '][at * 7 % 11 % 6]).collect();
            let padded = buffer.load(&line);
            for needle in [b' ', b'"', 0, b']'] {
                for from in 0..=len {
                    let expected = line[from..].iter().position(|&byte| byte == needle).map(|offset| from + offset);
                    assert_eq!(find(padded, &[needle; 16], from, len), expected, "len {len} from {from} needle {needle}");
                }
            }
            for at in 0..=len {
                let mut expected = [0u8; 8];
                let inside = line.len().min(at + 8) - at;
                expected[..inside].copy_from_slice(&line[at..at + inside]);
                assert_eq!(word_at(padded, at), u64::from_le_bytes(expected), "len {len} at {at}");
            }
        }
    }
}

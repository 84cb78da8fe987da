//! Client addresses, trusted-proxy ranges and host names, read from the bytes nginx logged.
//!
//! Contract:
//! - [`parse_ip`] accepts an IPv4 address (byte-level fast path, no leading zeros, like std),
//!   an IPv6 address (std's parser), `v4:port`, `[v6]` and `[v6]:port` (some proxies put ports
//!   in X-Forwarded-For; a bare IPv6 address cannot carry one). IPv4-mapped IPv6 addresses
//!   (`::ffff:203.0.113.7`, what a dual-stack listener logs) become the IPv4 address, so one
//!   client is one key whichever socket it came in on. Zone ids (`fe80::1%eth0`) are refused.
//! - [`CidrSet`] holds trusted-proxy ranges (`10.0.0.0/8`, `::1/128`, or a bare address) and
//!   refuses ranges with host bits set, which are almost always typos.
//! - [`normalize_host`] strips a port (also after an IPv6 literal, `[::1]:8080`) and one
//!   trailing dot, validates hostname characters (letters, digits, `-`, `_`, `.`; labels of
//!   1..=63 bytes, 253 bytes in all; `_` alone is nginx's catch-all server name and no domain),
//!   and lower-cases, borrowing unless there was an upper-case letter.

use std::borrow::Cow;
use std::hint::select_unpredictable;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use memchr::memchr;
use thiserror::Error;

use super::values::{byte_mask, digit_bits, word_at, word_upto8};

/// Reads an IPv4 address at the start of `raw`; returns it and the bytes it used. Each octet is
/// 1 to 3 digits without a leading zero, at most 255; digits after the third of the last
/// octet are left for the caller (who expects a `:port` or the end there).
#[inline]
fn ipv4_prefix(raw: &[u8]) -> Option<(Ipv4Addr, usize)> {
    let len = raw.len();
    if len >= 8 {
        // The first 16 bytes (zero-padded): two 8-byte reads, overlapping below 16 bytes.
        let window = len.min(16);
        let low = word_at(raw, 0);
        let high = word_at(raw, window - 8);
        // Bytes below 8 (read twice) shifted out, in two steps: the shift may be 64.
        let shift = 4 * (16 - window) as u32;
        ipv4_in_window(low, high >> shift >> shift)
    } else if len >= 7 {
        // Exactly 7 bytes (`1.2.3.4`).
        ipv4_in_window(word_upto8(raw), 0)
    } else {
        // No address fits in fewer than 7 bytes.
        None
    }
}

/// [`ipv4_prefix`] on the first 16 bytes of the text (`low` bytes 0..8, `high` bytes 8..16,
/// little-endian, zero past the end), without a branch on the digits: the non-digits become a
/// bit mask, the first three must be the dots, and every check is folded into one flag.
/// 16 bytes always suffice: the third dot is at most at 11 and the last octet's third digit
/// at 14.
#[inline(always)]
fn ipv4_in_window(low: u64, high: u64) -> Option<(Ipv4Addr, usize)> {
    // Bit i set where byte i is no digit; bits 16.. stand for the bytes past the window.
    let others = !(byte_mask(digit_bits(low)) | byte_mask(digit_bits(high)) << 8);
    // The first four non-digits: three dots, then whatever ends the last octet.
    let first = others.trailing_zeros();
    let rest = others & (others - 1);
    let second = rest.trailing_zeros();
    let rest = rest & (rest - 1);
    let third = rest.trailing_zeros();
    let rest = rest & (rest - 1);
    let fourth = rest.trailing_zeros();
    // Digit values, one per byte (`.` becomes 0x1e).
    let bytes = ((u128::from(high) << 64 | u128::from(low)) ^ u128::from_le_bytes([b'0'; 16])).to_le_bytes();
    let is_dot = |at: u32| bytes[at as usize & 15] == b'.' ^ b'0';
    let mut bad = !(is_dot(first) & is_dot(second) & is_dot(third)) | (third > 11);
    // Octets: where each starts and how many digits it has (at most 3 taken from the last).
    let octets = [(0, first), (first + 1, second - first - 1), (second + 1, third - second - 1), (third + 1, (fourth - third - 1).min(3))];
    let mut address = [0u8; 4];
    for (octet, (start, digits)) in address.iter_mut().zip(octets) {
        let digit = |at: u32| u32::from(bytes[(start + at) as usize & 15]);
        let one = digit(0);
        let two = one * 10 + digit(1);
        let three = two * 10 + digit(2);
        // Selected without a branch: octet lengths vary from address to address.
        let value = select_unpredictable(digits == 1, one, select_unpredictable(digits == 2, two, three));
        // 1 to 3 digits, no leading zero, at most 255.
        bad |= (digits.wrapping_sub(1) > 2) | (digits > 1 && one == 0) | (value > 255);
        *octet = value as u8;
    }
    if bad {
        return None;
    }
    Some((Ipv4Addr::from(address), (fourth.min(third + 4)) as usize))
}

/// An IPv4 address, exactly (no port, no surrounding text).
pub fn parse_ipv4(raw: &[u8]) -> Option<Ipv4Addr> {
    match ipv4_prefix(raw) {
        Some((address, used)) if used == raw.len() => Some(address),
        _ => None,
    }
}

/// An IPv6 address, exactly as std's parser accepts it (groups of 1 to 4 hex digits, one `::`
/// standing for at least one zero group, an embedded IPv4 address in the last 32 bits), but
/// on bytes and several times faster: IPv6 clients are common.
pub fn parse_ipv6(raw: &[u8]) -> Option<Ipv6Addr> {
    let mut groups = [0u16; 8];
    let mut count = 0;
    // How many groups came before the `::`, if there is one.
    let mut gap: Option<usize> = None;
    let mut at = 0;
    if raw.starts_with(b"::") {
        gap = Some(0);
        at = 2;
        if raw.len() == 2 {
            return Some(Ipv6Addr::UNSPECIFIED);
        }
    }
    // A `::` stands for at least one group.
    let room = |gap: Option<usize>| if gap.is_some() { 7 } else { 8 };
    loop {
        let start = at;
        let mut value = 0u16;
        while at < raw.len() && at - start < 4 {
            let Some(digit) = char::from(raw[at]).to_digit(16) else { break };
            value = value << 4 | digit as u16;
            at += 1;
        }
        if raw.get(at) == Some(&b'.') {
            // An embedded IPv4 address: the last 32 bits, taking two groups.
            let (v4, used) = ipv4_prefix(&raw[start..])?;
            if start + used != raw.len() || count + 2 > room(gap) {
                return None;
            }
            let [a, b, c, d] = v4.octets();
            groups[count] = u16::from_be_bytes([a, b]);
            groups[count + 1] = u16::from_be_bytes([c, d]);
            count += 2;
            break;
        }
        if at == start || count == room(gap) {
            return None;
        }
        groups[count] = value;
        count += 1;
        match raw.get(at) {
            None => break,
            Some(b':') => at += 1,
            Some(_) => return None,
        }
        if raw.get(at) == Some(&b':') {
            if gap.is_some() {
                return None;
            }
            gap = Some(count);
            at += 1;
            if at == raw.len() {
                break;
            }
        } else if at == raw.len() {
            return None;
        }
    }
    match gap {
        None if count != 8 => return None,
        None => {}
        Some(_) if count > 7 => return None,
        Some(before) => {
            // Move the groups after the `::` to the end; zeros fill the gap.
            let after = count - before;
            groups.copy_within(before..count, 8 - after);
            groups[before..8 - after].fill(0);
        }
    }
    Some(Ipv6Addr::from(groups))
}

/// A TCP port: 1 to 5 digits, at most 65535.
fn is_port(raw: &[u8]) -> bool {
    (1..=5).contains(&raw.len()) && raw.iter().all(u8::is_ascii_digit) && raw.iter().fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0')) <= 65_535
}

/// The IPv4 address inside an IPv4-mapped IPv6 address, else the address itself.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// A client or proxy address as logged (see the module doc for the accepted forms).
pub fn parse_ip(raw: &[u8]) -> Option<IpAddr> {
    match *raw.first()? {
        b'[' => {
            let close = memchr(b']', raw)?;
            let address = parse_ipv6(&raw[1..close])?;
            let rest = &raw[close + 1..];
            (rest.is_empty() || rest.strip_prefix(b":").is_some_and(is_port)).then(|| canonical(IpAddr::V6(address)))
        }
        b'0'..=b'9' => match ipv4_prefix(raw) {
            Some((address, used)) => {
                let rest = &raw[used..];
                (rest.is_empty() || rest.strip_prefix(b":").is_some_and(is_port)).then_some(IpAddr::V4(address))
            }
            None => parse_ipv6(raw).map(|address| canonical(IpAddr::V6(address))),
        },
        _ => parse_ipv6(raw).map(|address| canonical(IpAddr::V6(address))),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CidrError {
    #[error("invalid address in {0:?}")]
    Address(String),
    #[error("invalid prefix length in {0:?}")]
    Prefix(String),
    #[error("{cidr:?} has host bits set (did you mean {suggestion}?)")]
    HostBits { cidr: String, suggestion: String },
}

/// An address range (`network/prefix`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl Cidr {
    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => u32::from(address) & mask_v4(self.prefix) == u32::from(network),
            (IpAddr::V6(network), IpAddr::V6(address)) => u128::from(address) & mask_v6(self.prefix) == u128::from(network),
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| CidrError::Address(text.to_owned()))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix.trim().parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(|| CidrError::Prefix(text.to_owned()))?,
        };
        // Addresses are compared after `canonical`, so a mapped range becomes an IPv4 range.
        let (network, prefix) = match network {
            IpAddr::V6(v6) if prefix >= 96 => v6.to_ipv4_mapped().map_or((network, prefix), |v4| (IpAddr::V4(v4), prefix - 96)),
            _ => (network, prefix),
        };
        let masked = match network {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_v4(prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(prefix))),
        };
        if masked != network {
            return Err(CidrError::HostBits { cidr: text.to_owned(), suggestion: format!("{masked}/{prefix}") });
        }
        Ok(Cidr { network, prefix })
    }
}

/// A set of address ranges, checked by linear scan (trusted-proxy lists are short).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CidrSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl CidrSet {
    pub fn insert(&mut self, cidr: Cidr) {
        match cidr.network {
            IpAddr::V4(network) => self.v4.push((u32::from(network), mask_v4(cidr.prefix))),
            IpAddr::V6(network) => self.v6.push((u128::from(network), mask_v6(cidr.prefix))),
        }
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match address {
            IpAddr::V4(address) => {
                let address = u32::from(address);
                self.v4.iter().any(|&(network, mask)| address & mask == network)
            }
            IpAddr::V6(address) => {
                let address = u128::from(address);
                self.v6.iter().any(|&(network, mask)| address & mask == network)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

impl FromIterator<Cidr> for CidrSet {
    fn from_iter<I: IntoIterator<Item = Cidr>>(iter: I) -> CidrSet {
        let mut set = CidrSet::default();
        for cidr in iter {
            set.insert(cidr);
        }
        set
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    #[error("host longer than 253 bytes")]
    TooLong,
    #[error("host label longer than 63 bytes")]
    LabelTooLong,
    #[error("empty label in host")]
    EmptyLabel,
    #[error("invalid character in host")]
    Character,
    #[error("invalid port in host")]
    Port,
    #[error("invalid ipv6 literal in host")]
    Ipv6,
    #[error("catch-all server name '_' is no domain")]
    CatchAll,
}

const MAX_HOST: usize = 253;
const MAX_LABEL: usize = 63;

fn lower_cased(text: &str, has_upper: bool) -> Cow<'_, str> {
    if has_upper {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

/// A domain from `$host`/`$server_name`/config: port stripped, validated, lower-cased.
pub fn normalize_host(raw: &[u8]) -> Result<Cow<'_, str>, HostError> {
    if raw.first() == Some(&b'[') {
        let close = memchr(b']', raw).ok_or(HostError::Ipv6)?;
        parse_ipv6(&raw[1..close]).ok_or(HostError::Ipv6)?;
        let rest = &raw[close + 1..];
        if !(rest.is_empty() || rest.strip_prefix(b":").is_some_and(is_port)) {
            return Err(HostError::Port);
        }
        let literal = std::str::from_utf8(&raw[..=close]).map_err(|_| HostError::Ipv6)?;
        return Ok(lower_cased(literal, literal.bytes().any(|b| b.is_ascii_uppercase())));
    }
    // One pass: classify each byte until the end or a `:` (the port).
    let mut has_upper = false;
    let mut label = 0;
    let mut end = raw.len();
    for (at, &byte) in raw.iter().enumerate() {
        match HOST_CLASS[usize::from(byte)] {
            LABEL => label += 1,
            UPPER => {
                has_upper = true;
                label += 1;
            }
            DOT if label == 0 => return Err(if at == 0 && raw.len() == 1 { HostError::Empty } else { HostError::EmptyLabel }),
            DOT => label = 0,
            COLON => {
                end = at;
                break;
            }
            _ => return Err(HostError::Character),
        }
        if label > MAX_LABEL {
            return Err(HostError::LabelTooLong);
        }
    }
    if end < raw.len() {
        let port = &raw[end + 1..];
        if port.contains(&b':') {
            return Err(HostError::Ipv6);
        }
        if !is_port(port) {
            return Err(HostError::Port);
        }
    }
    let mut host = &raw[..end];
    // One trailing dot (`example.com.`) names the same host.
    if label == 0 && host.len() > 1 {
        host = &host[..host.len() - 1];
    }
    // `-` is what nginx writes for "no value".
    if host.is_empty() || host == b"-" || host == b"." {
        return Err(HostError::Empty);
    }
    if host.len() > MAX_HOST {
        return Err(HostError::TooLong);
    }
    if host == b"_" {
        return Err(HostError::CatchAll);
    }
    // SAFETY: every byte passed `HOST_CLASS` above, which admits ASCII bytes only, and ASCII is
    // valid UTF-8. (The checked conversion was measurable on the hot path.)
    let text = unsafe { std::str::from_utf8_unchecked(host) };
    Ok(lower_cased(text, has_upper))
}

const INVALID: u8 = 0;
const LABEL: u8 = 1;
const UPPER: u8 = 2;
const DOT: u8 = 3;
const COLON: u8 = 4;

/// Character classes of host name bytes, one lookup per byte.
const HOST_CLASS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = match byte as u8 {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => LABEL,
            b'A'..=b'Z' => UPPER,
            b'.' => DOT,
            b':' => COLON,
            _ => INVALID,
        };
        byte += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn ipv4_fast_path_agrees_with_std() {
        for text in ["0.0.0.0", "1.2.3.4", "255.255.255.255", "10.0.0.1", "192.168.100.200"] {
            assert_eq!(parse_ipv4(text.as_bytes()), text.parse().ok(), "{text}");
        }
        for text in ["256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "1..3.4", "1.2.3.4 ", " 1.2.3.4", "1.2.3.1000", "", "a.b.c.d", "1.2.3.-1"] {
            assert_eq!(parse_ipv4(text.as_bytes()), None, "{text}");
            assert_eq!(text.parse::<Ipv4Addr>().ok(), None, "std agrees on {text}");
        }
    }

    /// The byte-at-a-time reader the word-at-a-time [`ipv4_prefix`] replaced: the reference.
    fn ipv4_prefix_reference(raw: &[u8]) -> Option<(Ipv4Addr, usize)> {
        let digit_at = |at: usize| raw.get(at).map(|byte| byte.wrapping_sub(b'0')).filter(|&digit| digit <= 9);
        let octet = |at: usize| -> Option<(u8, usize)> {
            let first = digit_at(at)?;
            let Some(second) = digit_at(at + 1) else {
                return Some((first, at + 1));
            };
            if first == 0 {
                return None;
            }
            let Some(third) = digit_at(at + 2) else {
                return Some((first * 10 + second, at + 2));
            };
            let value = u16::from(first) * 100 + u16::from(second) * 10 + u16::from(third);
            Some((u8::try_from(value).ok()?, at + 3))
        };
        let (a, mut at) = octet(0)?;
        let mut octets = [a, 0, 0, 0];
        for slot in &mut octets[1..] {
            if raw.get(at) != Some(&b'.') {
                return None;
            }
            let (value, end) = octet(at + 1)?;
            *slot = value;
            at = end;
        }
        Some((Ipv4Addr::from(octets), at))
    }

    #[test]
    fn ipv4_prefix_at_every_length() {
        // 7 bytes (the short read), 8 (one word), 9..=15 (overlapping words), 16 and more.
        let cases: [(&str, Option<([u8; 4], usize)>); 22] = [
            ("1.2.3.4", Some(([1, 2, 3, 4], 7))),
            ("1.2.3.0", Some(([1, 2, 3, 0], 7))),
            ("1.2.3.a", None),
            ("1.2..34", None),
            ("10.2.3.4", Some(([10, 2, 3, 4], 8))),
            ("1.2.3.45", Some(([1, 2, 3, 45], 8))),
            ("1.2.3.04", None),
            ("100.20.3.4", Some(([100, 20, 3, 4], 10))),
            ("203.0.113.7:51234", Some(([203, 0, 113, 7], 11))),
            ("255.255.255.25", Some(([255, 255, 255, 25], 14))),
            ("255.255.255.255", Some(([255, 255, 255, 255], 15))),
            ("255.255.255.256", None),
            ("255.255.255.2555", Some(([255, 255, 255, 255], 15))),
            ("255.255.255.255:", Some(([255, 255, 255, 255], 15))),
            ("255.255.255.255:8080", Some(([255, 255, 255, 255], 15))),
            ("1.2.3.4567890123456", None),
            ("1.2.3.1000", Some(([1, 2, 3, 100], 9))),
            ("1.2.3.4.5.6.7.8.9", Some(([1, 2, 3, 4], 7))),
            ("1234.1.1.1", None),
            ("0.0.0.0", Some(([0, 0, 0, 0], 7))),
            ("00.0.0.0", None),
            ("1.2.3.\u{ff}4", None),
        ];
        for (text, expected) in cases {
            let got = ipv4_prefix(text.as_bytes()).map(|(address, used)| (address.octets(), used));
            assert_eq!(got, expected, "{text:?}");
            assert_eq!(ipv4_prefix(text.as_bytes()), ipv4_prefix_reference(text.as_bytes()), "{text:?}");
        }
        for short in ["", "1", "1.2.3.", "1.2.34"] {
            assert_eq!(ipv4_prefix(short.as_bytes()), None, "{short:?}");
        }
    }

    #[test]
    fn ipv6_parser_agrees_with_std_on_tricky_input() {
        for text in [
            "::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1::8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7",
            ":1::", "1:::2", "1::2::3", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4", "1::1.2.3.4",
            "::1.2.3", "::1.2.3.4.5", "::01.2.3.4", "::1.2.3.4:1", "00000::1", "0000::1", "fFfF::", "g::", "1:", ":1", ":", "",
            "1::2:", "::2:3:4:5:6:7:1.2.3.4", "1:2:3:4:5:6::1.2.3.4", "1:2:3:4:5::1.2.3.4", "::ffff:255.255.255.256", "1.2.3.4",
            "::12345", "12345::", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "1:2:3:4::5:6:7:8",
        ] {
            assert_eq!(parse_ipv6(text.as_bytes()), text.parse().ok(), "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn ipv4_parser_agrees_with_std(text in "[0-9.]{0,17}", v4 in proptest::prelude::any::<u32>()) {
            proptest::prop_assert_eq!(parse_ipv4(text.as_bytes()), text.parse().ok(), "{:?}", text);
            let address = Ipv4Addr::from(v4);
            proptest::prop_assert_eq!(parse_ipv4(address.to_string().as_bytes()), Some(address));
        }

        #[test]
        fn ipv4_prefix_agrees_with_the_byte_reader(text in "[0-9.:a\\x00\\x80\\xff]{0,20}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24)) {
            proptest::prop_assert_eq!(ipv4_prefix(text.as_bytes()), ipv4_prefix_reference(text.as_bytes()), "{:?}", text);
            proptest::prop_assert_eq!(ipv4_prefix(&bytes), ipv4_prefix_reference(&bytes), "{:?}", bytes);
        }

        #[test]
        fn ipv4_prefix_reads_addresses_followed_by_anything(v4 in proptest::prelude::any::<u32>(), tail in "[0-9.:a]{0,6}") {
            let text = format!("{}{tail}", Ipv4Addr::from(v4));
            proptest::prop_assert_eq!(ipv4_prefix(text.as_bytes()), ipv4_prefix_reference(text.as_bytes()), "{:?}", text);
        }

        #[test]
        fn ipv6_parser_agrees_with_std(text in "[0-9a-fA-F:.]{0,45}") {
            proptest::prop_assert_eq!(parse_ipv6(text.as_bytes()), text.parse().ok(), "{:?}", text);
        }

        #[test]
        fn ipv6_parser_reads_what_std_writes(bits in proptest::prelude::any::<u128>(), v4 in proptest::prelude::any::<u32>()) {
            for address in [Ipv6Addr::from(bits), Ipv4Addr::from(v4).to_ipv6_mapped(), Ipv6Addr::from(bits & 0xffff_0000_ffff)] {
                proptest::prop_assert_eq!(parse_ipv6(address.to_string().as_bytes()), Some(address));
            }
        }
    }

    #[test]
    fn ip_forms() {
        assert_eq!(parse_ip(b"203.0.113.7"), Some(ip("203.0.113.7")));
        assert_eq!(parse_ip(b"203.0.113.7:51234"), Some(ip("203.0.113.7")));
        assert_eq!(parse_ip(b"2001:db8::5"), Some(ip("2001:db8::5")));
        assert_eq!(parse_ip(b"2001:DB8::5"), Some(ip("2001:db8::5")));
        assert_eq!(parse_ip(b"[2001:db8::5]"), Some(ip("2001:db8::5")));
        assert_eq!(parse_ip(b"[2001:db8::5]:443"), Some(ip("2001:db8::5")));
        assert_eq!(parse_ip(b"1::"), Some(ip("1::")));
        assert_eq!(parse_ip(b"::1"), Some(ip("::1")));
        assert_eq!(parse_ip(b"::ffff:203.0.113.7"), Some(ip("203.0.113.7")));
        assert_eq!(parse_ip(b"[::ffff:203.0.113.7]:80"), Some(ip("203.0.113.7")));
    }

    #[test]
    fn ip_rejects() {
        for text in [
            "", "-", "unknown", "203.0.113.7:", "203.0.113.7:99999", "203.0.113.7:http", "[2001:db8::5", "[2001:db8::5]x",
            "2001:db8::5:", "fe80::1%eth0", "1.2.3.4, 5.6.7.8", "\\x22", "[1.2.3.4]", "1.2.3.4\0",
        ] {
            assert_eq!(parse_ip(text.as_bytes()), None, "{text:?}");
        }
        assert_eq!(parse_ip(b"\xff\xfe"), None);
    }

    #[test]
    fn cidrs() {
        let private: Cidr = "10.0.0.0/8".parse().expect("valid");
        assert!(private.contains(ip("10.255.0.1")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(!private.contains(ip("::1")));
        let host: Cidr = "192.0.2.1".parse().expect("valid");
        assert_eq!(host.prefix(), 32);
        assert!(host.contains(ip("192.0.2.1")) && !host.contains(ip("192.0.2.2")));
        let everything: Cidr = "0.0.0.0/0".parse().expect("valid");
        assert!(everything.contains(ip("8.8.8.8")));
        let v6: Cidr = "fc00::/7".parse().expect("valid");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().expect("valid");
        assert_eq!((mapped.network(), mapped.prefix()), (ip("10.0.0.0"), 8));
    }

    #[test]
    fn cidr_errors() {
        assert_eq!("10.0.0.1/8".parse::<Cidr>(), Err(CidrError::HostBits { cidr: "10.0.0.1/8".into(), suggestion: "10.0.0.0/8".into() }));
        assert_eq!("10.0.0.0/33".parse::<Cidr>(), Err(CidrError::Prefix("10.0.0.0/33".into())));
        assert_eq!("::/129".parse::<Cidr>(), Err(CidrError::Prefix("::/129".into())));
        assert_eq!("10.0.0/8".parse::<Cidr>(), Err(CidrError::Address("10.0.0/8".into())));
        assert_eq!("10.0.0.0/x".parse::<Cidr>(), Err(CidrError::Prefix("10.0.0.0/x".into())));
    }

    #[test]
    fn cidr_set() {
        let set: CidrSet = ["10.0.0.0/8", "::1/128"].iter().map(|text| text.parse().expect("valid")).collect();
        assert!(set.contains(ip("10.1.2.3")) && set.contains(ip("::1")));
        assert!(!set.contains(ip("203.0.113.7")) && !set.contains(ip("::2")));
        assert!(CidrSet::default().is_empty() && !set.is_empty());
    }

    #[test]
    fn hosts_are_lower_cased_and_lose_their_port() {
        assert_eq!(normalize_host(b"cdn.example.com"), Ok(Cow::Borrowed("cdn.example.com")));
        assert!(matches!(normalize_host(b"cdn.example.com"), Ok(Cow::Borrowed(_))));
        assert_eq!(normalize_host(b"CDN.Example.COM:8080").as_deref(), Ok("cdn.example.com"));
        assert!(matches!(normalize_host(b"CDN.example.com"), Ok(Cow::Owned(_))));
        assert_eq!(normalize_host(b"example.com.").as_deref(), Ok("example.com"));
        assert_eq!(normalize_host(b"10.0.0.1:80").as_deref(), Ok("10.0.0.1"));
        assert_eq!(normalize_host(b"my_host.internal").as_deref(), Ok("my_host.internal"));
        assert_eq!(normalize_host(b"[::1]:8080").as_deref(), Ok("[::1]"));
        assert_eq!(normalize_host(b"[2001:DB8::1]").as_deref(), Ok("[2001:db8::1]"));
    }

    #[test]
    fn bad_hosts() {
        let long_label = "a".repeat(64);
        let long_host = ["abcdefghij"; 26].join(".");
        let cases: [(&[u8], HostError); 14] = [
            (b"", HostError::Empty),
            (b".", HostError::Empty),
            (b":80", HostError::Empty),
            (b"_", HostError::CatchAll),
            (b"-", HostError::Empty),
            (b"a..b", HostError::EmptyLabel),
            (b".a", HostError::EmptyLabel),
            (b"a b", HostError::Character),
            (b"caf\xc3\xa9.com", HostError::Character),
            (b"a\\x22b", HostError::Character),
            (b"example.com:", HostError::Port),
            (b"example.com:http", HostError::Port),
            (b"::1", HostError::Ipv6),
            (b"[::1", HostError::Ipv6),
        ];
        for (raw, error) in cases {
            assert_eq!(normalize_host(raw), Err(error), "{}", raw.escape_ascii());
        }
        assert_eq!(normalize_host(long_label.as_bytes()), Err(HostError::LabelTooLong));
        assert_eq!(normalize_host(long_host.as_bytes()), Err(HostError::TooLong));
        assert_eq!(normalize_host(b"[::1]x"), Err(HostError::Port));
        assert_eq!(normalize_host(b"a.."), Err(HostError::EmptyLabel));
        assert_eq!(normalize_host(b"[zz]"), Err(HostError::Ipv6));
    }
}

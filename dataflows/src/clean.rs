//! Clean: the fields of one parsed line become a validated [`CleanRecord`] or a [`Reject`].
//!
//! Contract (the policy; the syntax of each value lives in `parse::{time, net, values}`):
//! - Event time from the line: `$msec` if the format has it (millisecond resolution), else
//!   `$time_iso8601`, else `$time_local`; UTC Unix ms. Unusable -> `bad_time`.
//! - Client IP, for logs written behind a load balancer that sets the headers: `X-Real-IP` if
//!   it is a valid address; else X-Forwarded-For walked from the right, skipping trusted proxies,
//!   the first untrusted address being the client (all trusted: the leftmost; an unparsable
//!   entry ends the walk as if the list started after it); else `$remote_addr`. Nothing valid
//!   -> `bad_ip`. The headers are client-controlled where nginx faces clients directly: for such
//!   edge logs use a format without them.
//! - Domain: `$host`, else `$server_name`, else `clean.default_domain` (only for formats with
//!   neither variable); port stripped, lower-cased, validated; `_` (nginx's catch-all server
//!   name) is no domain. Unusable -> `bad_domain`. Then the account: exact match in
//!   `clean.accounts`, else the nearest `*.parent` wildcard entry.
//! - Method from `$request_method`, else the first word of `$request`. An odd request line (a
//!   400's `-`, TLS bytes, a lower-case method) is real traffic: it becomes `Method::Other`,
//!   never a reject, so `bad_request` is not produced here.
//! - Status 100..=599 else `bad_status`; bytes digits-only u64 else `bad_bytes`, except `-`,
//!   which is 0 (nginx writes `0`, Apache's `%b` and others `-` for a response without a
//!   body); `$request_time` / `$upstream_response_time` (last upstream) in µs,
//!   `-` -> `None`, garbage -> `bad_timing`; cache status case-insensitive, `-` ->
//!   `CacheStatus::None`, an unknown word -> `bad_format` (the fields are misaligned).
//! - A field the format lacks is `None`, never a default.
//! - Only the fields used must be UTF-8: a used field that fails validation and is not valid
//!   UTF-8 is `bad_utf8`; invalid UTF-8 in the user agent, referer or URI is never looked at.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::domain_gate::{DomainGate, DomainGateError, DEFAULT_NEW_DOMAINS_PER_MINUTE, DEFAULT_NEW_DOMAIN_MEMORY_SECS};
use crate::parse::format::{show, Fields, LogFormat, Var};
use crate::parse::net::{normalize_host, parse_ip, Cidr, CidrSet};
use crate::parse::time::{parse_msec, TimeCache};
use crate::parse::values::{
    parse_bytes, parse_cache_status, parse_duration_us, parse_method, parse_request_method, parse_status, parse_upstream_time_us, word_at,
};
use crate::parse::{BytesField, ConfigError};
use crate::record::{CleanRecord, Method, Reject, RejectReason};

/// The `[clean]` section of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanConfig {
    /// Proxies whose X-Forwarded-For entries are skipped when looking for the client, as CIDRs
    /// or single addresses. Default: loopback, RFC 1918 private ranges, link-local, IPv6 unique
    /// local (`DEFAULT_TRUSTED_PROXIES`): where load balancers live. `[]` trusts no one (the
    /// rightmost entry is the client).
    pub trusted_proxies: Vec<String>,
    /// Domain -> billing account. Keys are domains (compared lower-cased, without port) or
    /// `*.example.com`, which matches every subdomain of example.com but not example.com.
    pub accounts: BTreeMap<String, String>,
    /// The domain of every line when the format has neither `$host` nor `$server_name` (e.g.
    /// plain `combined` on a single-site server). Unset: such lines are rejected `bad_domain`.
    pub default_domain: Option<String>,
    /// Known domains (compared lower-cased, without port; `*.example.com` matches every
    /// subdomain of example.com). Set: every other domain is rejected as `unknown_domain`.
    /// Empty: any domain, within `new_domains_per_minute`. See `domain_gate`.
    pub domains: Vec<String>,
    /// Without `domains`: per partition, most domains not seen within
    /// `new_domain_memory_secs` admitted per minute of its watermark; the rest are rejected
    /// as `domain_flood`. 0: no cap.
    pub new_domains_per_minute: u32,
    /// How long a domain stays known after the minute of its latest line, for the cap.
    pub new_domain_memory_secs: u64,
}

/// Loopback, private (RFC 1918), link-local, and IPv6 unique-local ranges.
pub const DEFAULT_TRUSTED_PROXIES: [&str; 7] =
    ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "::1/128", "fc00::/7"];

impl Default for CleanConfig {
    fn default() -> CleanConfig {
        CleanConfig {
            trusted_proxies: DEFAULT_TRUSTED_PROXIES.iter().map(|cidr| cidr.to_string()).collect(),
            accounts: BTreeMap::new(),
            default_domain: None,
            domains: Vec::new(),
            new_domains_per_minute: DEFAULT_NEW_DOMAINS_PER_MINUTE,
            new_domain_memory_secs: DEFAULT_NEW_DOMAIN_MEMORY_SECS,
        }
    }
}

impl CleanConfig {
    /// The validated domain rules (`domains`, `new_domains_per_minute`,
    /// `new_domain_memory_secs`), every problem reported.
    pub fn domain_gate(&self) -> Result<DomainGate, Vec<DomainGateError>> {
        DomainGate::new(&self.domains, self.new_domains_per_minute, self.new_domain_memory_secs)
    }
}

/// A fast hash for short keys. The maps are built from configuration only, so the HashDoS
/// resistance of the default hasher buys nothing here and costs a SipHash per line.
#[derive(Clone, Copy, Debug, Default)]
struct DomainHasher(u64);

impl Hasher for DomainHasher {
    fn write(&mut self, mut bytes: &[u8]) {
        const SEED: u64 = 0x517c_c1b7_2722_0a95;
        while let Some((word, rest)) = bytes.split_first_chunk::<8>() {
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(*word)).wrapping_mul(SEED);
            bytes = rest;
        }
        let mut tail = [0u8; 8];
        tail[..bytes.len()].copy_from_slice(bytes);
        self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(tail) ^ bytes.len() as u64).wrapping_mul(SEED);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Domain -> index of the account name in `Accounts::names`.
type DomainMap = HashMap<Box<str>, AccountId, BuildHasherDefault<DomainHasher>>;

/// An index into `Accounts::names` (what the host cache stores instead of a borrow).
type AccountId = u32;

/// Domain -> account, exact names first, then `*.` wildcards by parent domain.
#[derive(Clone, Debug, Default)]
struct Accounts {
    exact: DomainMap,
    wildcard: DomainMap,
    names: Vec<Box<str>>,
}

impl Accounts {
    /// Maps `domain` (normalised) in `map` to `account`; false if it was already there.
    fn insert(&mut self, wildcard: bool, domain: &str, account: &str) -> bool {
        let id = self.names.len() as AccountId;
        let map = if wildcard { &mut self.wildcard } else { &mut self.exact };
        if map.contains_key(domain) {
            return false;
        }
        map.insert(domain.into(), id);
        self.names.push(account.into());
        true
    }

    fn name(&self, id: AccountId) -> Option<&str> {
        self.names.get(id as usize).map(|name| &**name)
    }

    fn lookup(&self, domain: &str) -> Option<&str> {
        self.lookup_id(domain).and_then(|id| self.name(id))
    }

    fn lookup_id(&self, domain: &str) -> Option<AccountId> {
        if !self.exact.is_empty() {
            if let Some(&account) = self.exact.get(domain) {
                return Some(account);
            }
        }
        if self.wildcard.is_empty() {
            return None;
        }
        let mut parent = domain;
        while let Some(dot) = parent.bytes().position(|byte| byte == b'.') {
            parent = &parent[dot + 1..];
            if let Some(&account) = self.wildcard.get(parent) {
                return Some(account);
            }
        }
        None
    }
}

/// Where the record's fields come from in this format; decided once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `$msec`, `$time_iso8601` or `$time_local`.
    pub time: Var,
    /// `$bytes_sent` or `$body_bytes_sent`.
    pub bytes: Var,
    /// `$request_method` or `$request`.
    pub method: Var,
    /// The format has `$host` or `$server_name`.
    pub has_domain: bool,
}

impl Layout {
    /// Picks the variables for `format`; every missing one is a problem.
    pub fn for_format(format: &LogFormat, bytes_field: Option<BytesField>) -> Result<Layout, Vec<ConfigError>> {
        let mut problems = Vec::new();
        let required = |candidates: &[Var], needed: &'static str, problems: &mut Vec<ConfigError>| {
            let found = candidates.iter().copied().find(|&var| format.has(var));
            if found.is_none() {
                problems.push(ConfigError::MissingVariable { needed });
            }
            found
        };
        let time =
            required(&[Var::Msec, Var::TimeIso8601, Var::TimeLocal], "a time variable ($time_local, $time_iso8601 or $msec)", &mut problems);
        let method = required(&[Var::RequestMethod, Var::Request], "$request or $request_method", &mut problems);
        required(&[Var::Status], "$status", &mut problems);
        required(
            &[Var::HttpXRealIp, Var::HttpXForwardedFor, Var::RemoteAddr],
            "a client address ($remote_addr, $http_x_real_ip or $http_x_forwarded_for)",
            &mut problems,
        );
        let bytes = match bytes_field {
            Some(field) => {
                let var = field.var();
                if !format.has(var) {
                    problems.push(ConfigError::BytesFieldMissing { field: var.name() });
                }
                Some(var)
            }
            None => required(&[Var::BytesSent, Var::BodyBytesSent], "a byte count ($bytes_sent or $body_bytes_sent)", &mut problems),
        };
        match (time, method, bytes) {
            (Some(time), Some(method), Some(bytes)) if problems.is_empty() => {
                Ok(Layout { time, bytes, method, has_domain: format.has(Var::Host) || format.has(Var::ServerName) })
            }
            _ => Err(problems),
        }
    }
}

/// The validated `[clean]` configuration plus the format's [`Layout`].
#[derive(Clone, Debug)]
pub struct CleanRules {
    layout: Layout,
    trusted_proxies: CidrSet,
    accounts: Accounts,
    default_domain: Option<Box<str>>,
}

impl CleanRules {
    /// Validates `config` for `format`, reporting every problem found.
    pub fn new(config: &CleanConfig, format: &LogFormat, bytes_field: Option<BytesField>) -> Result<CleanRules, Vec<ConfigError>> {
        let layout = Layout::for_format(format, bytes_field);
        let mut problems = layout.as_ref().err().cloned().unwrap_or_default();

        let mut trusted_proxies = CidrSet::default();
        for text in &config.trusted_proxies {
            match text.parse::<Cidr>() {
                Ok(cidr) => trusted_proxies.insert(cidr),
                Err(error) => problems.push(ConfigError::TrustedProxy(error)),
            }
        }

        let mut accounts = Accounts::default();
        for (domain, account) in &config.accounts {
            let (wildcard, name) = match domain.strip_prefix("*.") {
                Some(parent) => (true, parent),
                None => (false, domain.as_str()),
            };
            match normalize_host(name.as_bytes()) {
                Err(error) => problems.push(ConfigError::AccountDomain { domain: domain.clone(), error }),
                Ok(_) if account.trim().is_empty() => problems.push(ConfigError::EmptyAccount { domain: domain.clone() }),
                Ok(normalized) => {
                    if !accounts.insert(wildcard, &normalized, account) {
                        problems.push(ConfigError::DuplicateAccount { domain: domain.clone() });
                    }
                }
            }
        }

        let default_domain = match &config.default_domain {
            None => None,
            Some(domain) => match normalize_host(domain.as_bytes()) {
                Ok(normalized) => Some(normalized.into()),
                Err(error) => {
                    problems.push(ConfigError::DefaultDomain { domain: domain.clone(), error });
                    None
                }
            },
        };

        match layout {
            Ok(layout) if problems.is_empty() => Ok(CleanRules { layout, trusted_proxies, accounts, default_domain }),
            _ => Err(problems),
        }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether lines will get a domain at all (the format has `$host`/`$server_name` or a
    /// default domain is configured). Worth a warning at start-up when false.
    pub fn has_domain_source(&self) -> bool {
        self.layout.has_domain || self.default_domain.is_some()
    }

    /// The billing account for a normalised domain.
    pub fn account(&self, domain: &str) -> Option<&str> {
        self.accounts.lookup(domain)
    }

    pub fn trusted_proxies(&self) -> &CidrSet {
        &self.trusted_proxies
    }
}

/// A reject for a used field: `bad_utf8` if the text is not UTF-8, else `reason`. Cold: the
/// formatting stays out of `clean`'s hot path.
#[cold]
#[inline(never)]
fn field_reject(reason: RejectReason, var: Var, raw: &[u8], problem: impl Display) -> Reject {
    if std::str::from_utf8(raw).is_err() {
        return Reject::new(RejectReason::BadUtf8, format!("invalid utf-8 in {var}: '{}'", show(raw)));
    }
    Reject::new(reason, format!("{var} '{}': {problem}", show(raw)))
}

#[inline(always)]
fn required<'l>(fields: &Fields<'l>, var: Var, reason: RejectReason) -> Result<&'l [u8], Reject> {
    match fields.get(var) {
        Some(raw) => Ok(raw),
        None => Err(missing(var, reason)),
    }
}

#[cold]
#[inline(never)]
fn missing(var: Var, reason: RejectReason) -> Reject {
    Reject::new(reason, format!("missing {var}"))
}

/// The client address after the trusted-proxy rule (see the module doc).
pub fn client_ip(fields: &Fields<'_>, trusted_proxies: &CidrSet) -> Result<IpAddr, Reject> {
    if let Some(address) = fields.value(Var::HttpXRealIp).and_then(parse_ip) {
        return Ok(address);
    }
    if let Some(address) = fields.value(Var::HttpXForwardedFor).and_then(|chain| forwarded_client(chain, trusted_proxies)) {
        return Ok(address);
    }
    match fields.value(Var::RemoteAddr) {
        Some(raw) => parse_ip(raw).ok_or_else(|| field_reject(RejectReason::BadIp, Var::RemoteAddr, raw, "invalid address")),
        None => Err(Reject::new(RejectReason::BadIp, "no client address in x-real-ip, x-forwarded-for or $remote_addr")),
    }
}

/// The client in an X-Forwarded-For chain: walking from the right (the entry our nearest proxy
/// appended), the first address not in `trusted_proxies`.
pub fn forwarded_client(chain: &[u8], trusted_proxies: &CidrSet) -> Option<IpAddr> {
    let mut leftmost_trusted = None;
    for entry in chain.rsplit(|&byte| byte == b',') {
        let entry = entry.trim_ascii();
        if entry.is_empty() {
            continue;
        }
        let Some(address) = parse_ip(entry) else {
            break;
        };
        if !trusted_proxies.contains(address) {
            return Some(address);
        }
        leftmost_trusted = Some(address);
    }
    leftmost_trusted
}

/// The normalised domain and its account (see the module doc), through `hosts`.
fn domain_and_account<'a>(
    fields: &Fields<'a>,
    rules: &'a CleanRules,
    hosts: &mut HostCache,
) -> Result<(Cow<'a, str>, Option<&'a str>), Reject> {
    let (var, raw) = match (fields.value(Var::Host), fields.value(Var::ServerName)) {
        (Some(host), _) => (Var::Host, host),
        (None, Some(server_name)) => (Var::ServerName, server_name),
        (None, None) if rules.layout.has_domain => {
            return Err(Reject::new(RejectReason::BadDomain, "no $host or $server_name value"));
        }
        (None, None) => {
            return match &rules.default_domain {
                Some(domain) => Ok((Cow::Borrowed(domain), rules.accounts.lookup(domain))),
                None => Err(Reject::new(
                    RejectReason::BadDomain,
                    "the log format has no $host or $server_name and clean.default_domain is unset",
                )),
            };
        }
    };
    if let Some((domain_len, account)) = hosts.get(raw) {
        let domain = &raw[..domain_len];
        debug_assert_eq!(normalize_host(raw).as_deref(), Ok(std::str::from_utf8(domain).expect("ascii")));
        // SAFETY: `raw` is byte for byte a host that `normalize_host` accepted, borrowing its
        // first `domain_len` bytes as a `str`, so those bytes are valid UTF-8 (ASCII, in fact).
        let domain = unsafe { std::str::from_utf8_unchecked(domain) };
        return Ok((Cow::Borrowed(domain), account.and_then(|id| rules.accounts.name(id))));
    }
    let domain = normalize_host(raw).map_err(|error| field_reject(RejectReason::BadDomain, var, raw, error))?;
    let account = rules.accounts.lookup_id(&domain);
    if let Cow::Borrowed(text) = domain {
        if text.as_ptr() == raw.as_ptr() {
            hosts.insert(raw, text.len(), account);
        }
    }
    Ok((domain, account.and_then(|id| rules.accounts.name(id))))
}

/// Hosts seen recently -> (domain length, account): `$host` takes few distinct values, and
/// validating and looking one up costs far more than recognising it. Two-way set-associative
/// by a hash of the bytes (direct-mapped, 200 hosts missed ~10% of the time on collisions);
/// only hosts that normalise to a prefix of themselves (no upper case) are kept. A stream of
/// distinct hosts (forged Host headers) only evicts entries.
#[derive(Clone)]
struct HostCache {
    slots: Box<[HostEntry]>,
}

const HOST_SLOTS: usize = 1024;
/// Entries per set: a new host goes first and pushes the set's other entry out.
const HOST_WAYS: usize = 2;
/// Longer hosts are not cached.
const HOST_KEY_BYTES: usize = 46;
const NO_ACCOUNT: AccountId = AccountId::MAX;

#[derive(Clone, Copy)]
struct HostEntry {
    key: [u8; HOST_KEY_BYTES],
    /// Length of the key; 0 for an empty slot (an empty host is never cached).
    len: u8,
    /// Length of the domain: the key without its port or trailing dot.
    domain_len: u8,
    account: AccountId,
}

impl Default for HostCache {
    fn default() -> HostCache {
        let empty = HostEntry { key: [0; HOST_KEY_BYTES], len: 0, domain_len: 0, account: NO_ACCOUNT };
        HostCache { slots: vec![empty; HOST_SLOTS].into_boxed_slice() }
    }
}

impl std::fmt::Debug for HostCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCache").field("cached", &self.slots.iter().filter(|entry| entry.len > 0).count()).finish()
    }
}

impl HostEntry {
    /// Whether this entry's key is `raw` (1 to `HOST_KEY_BYTES` bytes long).
    #[inline(always)]
    fn holds(&self, raw: &[u8]) -> bool {
        let len = raw.len();
        if usize::from(self.len) != len {
            return false;
        }
        let key = &self.key[..len];
        if len >= 8 {
            // Every byte is covered: whole words, then the last 8 bytes (overlapping).
            let mut at = 0;
            let mut same = true;
            while at + 8 < len {
                same &= word_at(key, at) == word_at(raw, at);
                at += 8;
            }
            same && word_at(key, len - 8) == word_at(raw, len - 8)
        } else {
            key == raw
        }
    }
}

impl HostCache {
    /// The first slot of `raw`'s set: a multiplicative hash of its words (overlapping at the end).
    #[inline(always)]
    fn set(raw: &[u8]) -> usize {
        const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
        let len = raw.len();
        let mut hash = (len as u64).wrapping_mul(SEED);
        if len >= 8 {
            let mut at = 0;
            while at + 8 < len {
                hash = (hash.rotate_left(23) ^ word_at(raw, at)).wrapping_mul(SEED);
                at += 8;
            }
            hash = (hash.rotate_left(23) ^ word_at(raw, len - 8)).wrapping_mul(SEED);
        } else {
            let tail = raw.iter().enumerate().fold(0, |word, (at, &byte)| word | u64::from(byte) << (8 * at));
            hash = (hash.rotate_left(23) ^ tail).wrapping_mul(SEED);
        }
        const SETS: usize = HOST_SLOTS / HOST_WAYS;
        (hash >> (64 - SETS.trailing_zeros())) as usize * HOST_WAYS
    }

    /// The cached domain length and account of `raw`.
    #[inline]
    fn get(&self, raw: &[u8]) -> Option<(usize, Option<AccountId>)> {
        let len = raw.len();
        if len > HOST_KEY_BYTES || len == 0 {
            return None;
        }
        let set = Self::set(raw) % HOST_SLOTS;
        let entry = self.slots[set..set + HOST_WAYS].iter().find(|entry| entry.holds(raw))?;
        Some((usize::from(entry.domain_len), Some(entry.account).filter(|&id| id != NO_ACCOUNT)))
    }

    fn insert(&mut self, raw: &[u8], domain_len: usize, account: Option<AccountId>) {
        let len = raw.len();
        if len > HOST_KEY_BYTES || len == 0 {
            return;
        }
        let set = Self::set(raw) % HOST_SLOTS;
        let ways = &mut self.slots[set..set + HOST_WAYS];
        ways.copy_within(..HOST_WAYS - 1, 1);
        let entry = &mut ways[0];
        entry.key[..len].copy_from_slice(raw);
        entry.len = len as u8;
        entry.domain_len = domain_len as u8;
        entry.account = account.unwrap_or(NO_ACCOUNT);
    }
}

/// What `clean` remembers between lines of one stream: the last minute converted and recent
/// hosts. Use one per [`CleanRules`] (the host cache holds account ids of those rules).
#[derive(Clone, Debug, Default)]
pub struct CleanCache {
    times: TimeCache,
    hosts: HostCache,
}

fn method(fields: &Fields<'_>, layout: &Layout) -> Method {
    match fields.get(layout.method) {
        Some(raw) if layout.method == Var::Request => parse_request_method(raw),
        Some(raw) => parse_method(raw),
        None => Method::Other,
    }
}

/// Validates one line's fields against `rules`; `cache` carries conversions across lines.
pub fn clean<'a>(fields: &Fields<'a>, rules: &'a CleanRules, cache: &mut CleanCache) -> Result<CleanRecord<'a>, Reject> {
    let layout = &rules.layout;
    let times = &mut cache.times;

    let time_raw = required(fields, layout.time, RejectReason::BadTime)?;
    let event_ms = match layout.time {
        Var::Msec => parse_msec(time_raw),
        Var::TimeIso8601 => times.time_iso8601(time_raw),
        _ => times.time_local(time_raw),
    }
    .map_err(|error| field_reject(RejectReason::BadTime, layout.time, time_raw, error))?;

    let (domain, account) = domain_and_account(fields, rules, &mut cache.hosts)?;
    let client_ip = client_ip(fields, &rules.trusted_proxies)?;

    let status_raw = required(fields, Var::Status, RejectReason::BadStatus)?;
    let status = parse_status(status_raw).map_err(|error| field_reject(RejectReason::BadStatus, Var::Status, status_raw, error))?;

    let bytes_raw = required(fields, layout.bytes, RejectReason::BadBytes)?;
    let bytes = parse_bytes(bytes_raw).map_err(|error| field_reject(RejectReason::BadBytes, layout.bytes, bytes_raw, error))?;

    let request_time_us = match fields.get(Var::RequestTime) {
        Some(raw) => parse_duration_us(raw).map_err(|error| field_reject(RejectReason::BadTiming, Var::RequestTime, raw, error))?,
        None => None,
    };
    let upstream_time_us = match fields.get(Var::UpstreamResponseTime) {
        Some(raw) => parse_upstream_time_us(raw)
            .map_err(|error| field_reject(RejectReason::BadTiming, Var::UpstreamResponseTime, raw, error))?,
        None => None,
    };
    let cache = match fields.get(Var::UpstreamCacheStatus) {
        Some(raw) => Some(
            parse_cache_status(raw).map_err(|error| field_reject(RejectReason::BadFormat, Var::UpstreamCacheStatus, raw, error))?,
        ),
        None => None,
    };

    Ok(CleanRecord {
        event_ms,
        domain,
        account,
        client_ip,
        method: method(fields, layout),
        status,
        bytes,
        request_time_us,
        upstream_time_us,
        cache,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::escape::Escape;
    use crate::parse::presets;
    use crate::record::CacheStatus;

    fn rules_for(format: &LogFormat, config: &CleanConfig) -> CleanRules {
        CleanRules::new(config, format, None).expect("valid rules")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn trusted(cidrs: &[&str]) -> CidrSet {
        cidrs.iter().map(|text| text.parse().expect("valid cidr")).collect()
    }

    fn cdn() -> LogFormat {
        LogFormat::compile(presets::CDN.format, Escape::Default).expect("preset compiles")
    }

    /// A cdn-format fields set with overrides.
    fn cdn_fields<'l>(overrides: &[(Var, &'l str)]) -> Fields<'l> {
        let mut fields = Fields::new(Escape::Default);
        let defaults: [(Var, &'l str); 15] = [
            (Var::RemoteAddr, "10.0.0.2"),
            (Var::RemoteUser, "-"),
            (Var::TimeLocal, "20/Nov/2026:16:15:39 +0800"),
            (Var::Request, "GET / HTTP/1.1"),
            (Var::Status, "200"),
            (Var::BodyBytesSent, "100"),
            (Var::HttpReferer, "-"),
            (Var::HttpUserAgent, "curl"),
            (Var::HttpXForwardedFor, "-"),
            (Var::HttpXRealIp, "-"),
            (Var::Host, "cdn.example.com"),
            (Var::RequestTime, "0.012"),
            (Var::UpstreamResponseTime, "0.010"),
            (Var::UpstreamCacheStatus, "MISS"),
            (Var::BytesSent, "350"),
        ];
        for (var, value) in defaults.iter().chain(overrides) {
            fields.set(*var, value.as_bytes());
        }
        fields
    }

    fn cleaned<'a>(fields: &Fields<'a>, rules: &'a CleanRules) -> Result<CleanRecord<'a>, Reject> {
        clean(fields, rules, &mut CleanCache::default())
    }

    fn reject(fields: &Fields<'_>, rules: &CleanRules) -> (RejectReason, String) {
        let reject = cleaned(fields, rules).expect_err("rejected");
        (reject.reason, reject.detail.into_owned())
    }


    #[test]
    fn host_cache_keeps_a_cdn_worth_of_hosts_and_evicts_the_older_of_a_set() {
        let hosts: Vec<String> =
            (0..40).flat_map(|n| ["img", "video", "static", "www", "api"].map(|name| format!("{name}.cdn{n}.example.com"))).collect();
        let mut cache = HostCache::default();
        for host in &hosts {
            cache.insert(host.as_bytes(), host.len(), None);
        }
        let kept = hosts.iter().filter(|host| cache.get(host.as_bytes()) == Some((host.len(), None))).count();
        assert!(kept >= 196, "{kept} of 200 hosts kept");
        // Three hosts of one set: the first in is the first out.
        let mut same_set = (0..).map(|n| format!("h{n}.example.net")).filter(|host| HostCache::set(host.as_bytes()) == 0);
        let [first, second, third] = [(); 3].map(|()| same_set.next().expect("hosts hash everywhere"));
        for host in [&first, &second, &third] {
            cache.insert(host.as_bytes(), host.len(), Some(7));
        }
        assert_eq!(cache.get(first.as_bytes()), None);
        assert_eq!(cache.get(second.as_bytes()), Some((second.len(), Some(7))));
        assert_eq!(cache.get(third.as_bytes()), Some((third.len(), Some(7))));
    }

    #[test]
    fn a_full_cdn_record() {
        let config = CleanConfig { accounts: BTreeMap::from([("cdn.example.com".into(), "acme".into())]), ..CleanConfig::default() };
        let rules = rules_for(&cdn(), &config);
        let fields = cdn_fields(&[(Var::HttpXRealIp, "203.0.113.7")]);
        let record = cleaned(&fields, &rules).expect("clean");
        assert_eq!(
            record,
            CleanRecord {
                event_ms: 1_795_162_539_000,
                domain: Cow::Borrowed("cdn.example.com"),
                account: Some("acme"),
                client_ip: ip("203.0.113.7"),
                method: Method::Get,
                status: 200,
                bytes: 350,
                request_time_us: Some(12_000),
                upstream_time_us: Some(10_000),
                cache: Some(CacheStatus::Miss),
            }
        );
    }

    #[test]
    fn client_ip_prefers_x_real_ip_then_forwarded_for_then_remote_addr() {
        let proxies = trusted(&DEFAULT_TRUSTED_PROXIES);
        let of = |overrides: &[(Var, &str)]| client_ip(&cdn_fields(overrides), &proxies);
        assert_eq!(of(&[(Var::HttpXRealIp, "203.0.113.7"), (Var::HttpXForwardedFor, "198.51.100.1")]), Ok(ip("203.0.113.7")));
        assert_eq!(of(&[(Var::HttpXRealIp, "[2001:db8::1]:443")]), Ok(ip("2001:db8::1")));
        // An unusable X-Real-IP falls through.
        assert_eq!(of(&[(Var::HttpXRealIp, "garbage"), (Var::HttpXForwardedFor, "198.51.100.1")]), Ok(ip("198.51.100.1")));
        assert_eq!(of(&[(Var::HttpXForwardedFor, "198.51.100.1, 10.0.0.3")]), Ok(ip("198.51.100.1")));
        assert_eq!(of(&[]), Ok(ip("10.0.0.2")));
        assert_eq!(of(&[(Var::HttpXRealIp, "")]), Ok(ip("10.0.0.2")));
        assert_eq!(of(&[(Var::RemoteAddr, "::ffff:192.0.2.9")]), Ok(ip("192.0.2.9")));
        let bad = of(&[(Var::RemoteAddr, "nope")]).expect_err("bad ip");
        assert_eq!((bad.reason, bad.detail.as_ref()), (RejectReason::BadIp, "$remote_addr 'nope': invalid address"));
        let bad = of(&[(Var::RemoteAddr, "-")]).expect_err("no ip");
        assert_eq!(bad.reason, RejectReason::BadIp);
        let bad = of(&[(Var::RemoteAddr, "\u{1}\u{2}")]).expect_err("bad ip");
        assert_eq!(bad.detail, "$remote_addr '\\x01\\x02': invalid address");
    }

    #[test]
    fn forwarded_for_walks_from_the_right_past_trusted_proxies() {
        let proxies = trusted(&["10.0.0.0/8", "192.168.0.0/16", "2001:db8:ffff::/48"]);
        let walk = |chain: &str| forwarded_client(chain.as_bytes(), &proxies);
        // Spoofed entries left of the real client are ignored.
        assert_eq!(walk("1.1.1.1, 203.0.113.7, 10.0.0.1, 192.168.1.1"), Some(ip("203.0.113.7")));
        assert_eq!(walk("203.0.113.7"), Some(ip("203.0.113.7")));
        assert_eq!(walk("2001:db8::7, 2001:db8:ffff::1"), Some(ip("2001:db8::7")));
        assert_eq!(walk("[2001:db8::7]:1234,10.0.0.1"), Some(ip("2001:db8::7")));
        assert_eq!(walk("203.0.113.7:5555 , 10.0.0.1"), Some(ip("203.0.113.7")));
        // All trusted: the leftmost.
        assert_eq!(walk("10.0.0.9, 10.0.0.1, 192.168.1.1"), Some(ip("10.0.0.9")));
        // Garbage ends the walk: the leftmost trusted address right of it, or nothing.
        assert_eq!(walk("unknown, 10.0.0.5, 10.0.0.1"), Some(ip("10.0.0.5")));
        assert_eq!(walk("203.0.113.7, unknown"), None);
        assert_eq!(walk(" , 203.0.113.7,, "), Some(ip("203.0.113.7")));
        assert_eq!(walk(""), None);
        // Trusting no one: the rightmost entry.
        assert_eq!(forwarded_client(b"1.1.1.1, 10.0.0.1", &CidrSet::default()), Some(ip("10.0.0.1")));
    }

    #[test]
    fn domains() {
        let rules = rules_for(&cdn(), &CleanConfig::default());
        let domain_of = |host: &str| cleaned(&cdn_fields(&[(Var::Host, host)]), &rules).map(|r| r.domain.into_owned());
        assert_eq!(domain_of("CDN.Example.com:8443"), Ok("cdn.example.com".to_owned()));
        assert_eq!(domain_of("[::1]:8080"), Ok("[::1]".to_owned()));
        for bad in ["_", "-", "", "a b", "x..y"] {
            assert_eq!(domain_of(bad).map_err(|r| r.reason), Err(RejectReason::BadDomain), "{bad:?}");
        }
        assert_eq!(domain_of("caf\u{e9}.com").map_err(|r| r.detail), Err("$host 'caf\\xc3\\xa9.com': invalid character in host".into()));
    }

    #[test]
    fn server_name_is_the_fallback_and_default_domain_only_for_formats_without_either() {
        let format = LogFormat::compile("$remote_addr [$time_local] \"$request\" $status $bytes_sent $server_name", Escape::Default)
            .expect("compiles");
        let with_default = CleanConfig { default_domain: Some("Fallback.example".into()), ..CleanConfig::default() };
        let rules = rules_for(&format, &with_default);
        let fields = format.parse(b"1.2.3.4 [20/Nov/2026:16:15:39 +0800] \"GET / HTTP/1.1\" 200 5 www.Example.com").expect("parses");
        assert_eq!(cleaned(&fields, &rules).map(|r| r.domain.into_owned()), Ok("www.example.com".into()));
        let fields = format.parse(b"1.2.3.4 [20/Nov/2026:16:15:39 +0800] \"GET / HTTP/1.1\" 200 5 _").expect("parses");
        assert_eq!(cleaned(&fields, &rules).map_err(|r| r.reason), Err(RejectReason::BadDomain));

        let combined = LogFormat::compile(presets::COMBINED.format, Escape::Default).expect("compiles");
        let line = b"1.2.3.4 - - [20/Nov/2026:16:15:39 +0800] \"GET / HTTP/1.1\" 200 5 \"-\" \"-\"";
        let rules = rules_for(&combined, &with_default);
        let fields = combined.parse(line).expect("parses");
        let record = cleaned(&fields, &rules).expect("clean");
        assert_eq!(record.domain, "fallback.example");
        assert!(matches!(record.domain, Cow::Borrowed(_)));
        let rules = rules_for(&combined, &CleanConfig::default());
        assert!(!rules.has_domain_source());
        assert_eq!(
            reject(&fields, &rules),
            (RejectReason::BadDomain, "the log format has no $host or $server_name and clean.default_domain is unset".into())
        );
    }

    #[test]
    fn accounts_exact_then_wildcard() {
        let config = CleanConfig {
            accounts: BTreeMap::from([
                ("Shop.Example.com".into(), "shop".into()),
                ("*.example.com".into(), "example".into()),
                ("*.img.example.com".into(), "images".into()),
            ]),
            ..CleanConfig::default()
        };
        let rules = rules_for(&cdn(), &config);
        assert_eq!(rules.account("shop.example.com"), Some("shop"));
        assert_eq!(rules.account("www.example.com"), Some("example"));
        assert_eq!(rules.account("a.b.example.com"), Some("example"));
        assert_eq!(rules.account("a.img.example.com"), Some("images"));
        assert_eq!(rules.account("example.com"), None);
        assert_eq!(rules.account("example.org"), None);
    }

    #[test]
    fn status_bytes_timings_cache() {
        let rules = rules_for(&cdn(), &CleanConfig::default());
        let check = |overrides: &[(Var, &str)]| reject(&cdn_fields(overrides), &rules);
        assert_eq!(check(&[(Var::Status, "000")]), (RejectReason::BadStatus, "$status '000': status outside 100..=599".into()));
        assert_eq!(check(&[(Var::Status, "abc")]).0, RejectReason::BadStatus);
        assert_eq!(check(&[(Var::BytesSent, "-1")]), (RejectReason::BadBytes, "$bytes_sent '-1': not a number".into()));
        assert_eq!(check(&[(Var::BytesSent, "")]).0, RejectReason::BadBytes);
        assert_eq!(cleaned(&cdn_fields(&[(Var::BytesSent, "-")]), &rules).map(|r| r.bytes), Ok(0), "a `-` byte count is 0");
        assert_eq!(check(&[(Var::RequestTime, "soon")]).0, RejectReason::BadTiming);
        assert_eq!(check(&[(Var::UpstreamResponseTime, "0.1, x")]).0, RejectReason::BadTiming);
        assert_eq!(check(&[(Var::UpstreamCacheStatus, "WAT")]).0, RejectReason::BadFormat);
        assert_eq!(check(&[(Var::TimeLocal, "20/Nov/2026:16:15:39 +9900")]).0, RejectReason::BadTime);

        let timings = |overrides: &[(Var, &str)]| {
            cleaned(&cdn_fields(overrides), &rules).map(|r| (r.request_time_us, r.upstream_time_us, r.cache))
        };
        assert_eq!(
            timings(&[(Var::RequestTime, "-"), (Var::UpstreamResponseTime, "-"), (Var::UpstreamCacheStatus, "-")]),
            Ok((None, None, Some(CacheStatus::None)))
        );
        assert_eq!(
            timings(&[(Var::UpstreamResponseTime, "0.012 : 0.020"), (Var::UpstreamCacheStatus, "hit")]),
            Ok((Some(12_000), Some(20_000), Some(CacheStatus::Hit)))
        );
        let method = |overrides: &[(Var, &str)]| cleaned(&cdn_fields(overrides), &rules).map(|r| r.method);
        assert_eq!(method(&[(Var::Request, "-"), (Var::Status, "400")]), Ok(Method::Other));
        assert_eq!(method(&[(Var::Request, "PROPFIND /dav HTTP/1.1")]), Ok(Method::Other));
        assert_eq!(method(&[(Var::Request, "DELETE /x HTTP/1.1")]), Ok(Method::Delete));
    }

    #[test]
    fn bytes_field_choice() {
        let format = cdn();
        let fields = cdn_fields(&[]);
        let auto = CleanRules::new(&CleanConfig::default(), &format, None).expect("valid");
        assert_eq!(cleaned(&fields, &auto).map(|r| r.bytes), Ok(350));
        let body = CleanRules::new(&CleanConfig::default(), &format, Some(BytesField::BodyBytesSent)).expect("valid");
        assert_eq!(cleaned(&fields, &body).map(|r| r.bytes), Ok(100));
        let combined = LogFormat::compile(presets::COMBINED.format, Escape::Default).expect("compiles");
        assert_eq!(CleanRules::new(&CleanConfig::default(), &combined, None).map(|r| r.layout().bytes).ok(), Some(Var::BodyBytesSent));
        let problems = CleanRules::new(&CleanConfig::default(), &combined, Some(BytesField::BytesSent)).expect_err("missing");
        assert_eq!(problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["parse.bytes_field = bytes_sent but the log format lacks $bytes_sent"]);
    }

    #[test]
    fn used_fields_must_be_utf8_unused_ones_need_not() {
        let rules = rules_for(&cdn(), &CleanConfig::default());
        let mut fields = cdn_fields(&[]);
        fields.set(Var::HttpUserAgent, b"\xff\xfe raw bytes");
        fields.set(Var::Request, b"GET /\xc3\x28 HTTP/1.1");
        assert!(cleaned(&fields, &rules).is_ok());
        fields.set(Var::Host, b"bad\xff.example.com");
        assert_eq!(reject(&fields, &rules), (RejectReason::BadUtf8, "invalid utf-8 in $host: 'bad\\xff.example.com'".into()));
    }

    #[test]
    fn config_problems_are_all_reported() {
        let format = LogFormat::compile("$remote_user $http_referer", Escape::Default).expect("compiles");
        let config = CleanConfig {
            trusted_proxies: vec!["10.0.0.1/8".into(), "nope".into()],
            accounts: BTreeMap::from([("bad host".into(), "x".into()), ("ok.example".into(), " ".into())]),
            default_domain: Some("_".into()),
            ..CleanConfig::default()
        };
        let problems: Vec<String> = CleanRules::new(&config, &format, None).expect_err("invalid").iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "log format lacks a time variable ($time_local, $time_iso8601 or $msec)",
                "log format lacks $request or $request_method",
                "log format lacks $status",
                "log format lacks a client address ($remote_addr, $http_x_real_ip or $http_x_forwarded_for)",
                "log format lacks a byte count ($bytes_sent or $body_bytes_sent)",
                "clean.trusted_proxies: \"10.0.0.1/8\" has host bits set (did you mean 10.0.0.0/8?)",
                "clean.trusted_proxies: invalid address in \"nope\"",
                "clean.accounts: invalid domain \"bad host\": invalid character in host",
                "clean.accounts: empty account name for \"ok.example\"",
                "clean.default_domain: invalid domain \"_\": catch-all server name '_' is no domain",
            ]
        );
        let duplicate = CleanConfig {
            accounts: BTreeMap::from([("A.example".into(), "x".into()), ("a.example".into(), "y".into())]),
            ..CleanConfig::default()
        };
        let problems = CleanRules::new(&duplicate, &cdn(), None).expect_err("duplicate");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().contains("listed twice"));
    }

    #[test]
    fn config_deserializes_with_defaults_and_denies_unknown_fields() {
        let config: CleanConfig = serde_json::from_str(r#"{"accounts":{"a.example":"acme"}}"#).expect("valid");
        assert_eq!(config.trusted_proxies.len(), DEFAULT_TRUSTED_PROXIES.len());
        assert_eq!(config.default_domain, None);
        assert!(serde_json::from_str::<CleanConfig>(r#"{"trusted_proxy":[]}"#).is_err());
    }
}

//! Bounded cardinality: which domains may create rows (and alert detectors) at all.
//!
//! `Host` headers are client-controlled, so without a bound every random host would become
//! rows in five tables and an alert detector. Two rules, applied per line after its time is
//! settled (`ingest`, before the domain is interned):
//!
//! - **Known domains** (`clean.domains`): when the list is set, a domain that is in it (exact
//!   name, or a subdomain of a `*.example.com` entry) passes and any other is rejected as
//!   `unknown_domain`. A pure function of the name: a replay repeats it by itself.
//! - **New domains per minute** (`clean.new_domains_per_minute`, when no list is set; 0 turns
//!   it off): per partition, at most that many domains that partition has not seen within
//!   `clean.new_domain_memory_secs` are admitted while its watermark is in one minute; the
//!   rest are rejected as `domain_flood`. An admitted domain stays known for the memory after
//!   the minute of its latest line, so steady domains never count against the cap. The cap
//!   is per partition: a topic of P partitions admits at most P × the cap new domains per
//!   minute of event time, and since each minute's rows and each detector need an admitted
//!   domain, a flood creates at most that many new domains' rows per minute.
//!
//! Determinism (see `progress`): the cap depends on the partition's sequence only (its
//! watermark, the order of its lines), but a replay starts part-way, without the memory of
//! the lines before its replay point. Two things make a replay decide alike:
//! - While a replay is below the offset the first run had read (`read_until`), it repeats
//!   the first run's decisions: `domain_flood` rejects are recorded like `future_time`, and
//!   every other line there was admitted. Its memory is rebuilt from the lines it admits.
//! - Every line that renews a domain's memory leaves a footprint reaching the end of that
//!   memory plus a minute, so the replay point is never after it while the memory could
//!   matter to an epoch at or after the committed frontier (which the partition's watermark
//!   has passed when the checkpoint is taken). Memory ends are whole minutes after the
//!   minute a domain was last renewed in, so a replay that starts part-way through a minute
//!   renews to the same end. When the replay reaches `read_until`, its memory and count for
//!   the current minute are the first run's, and fresh decisions agree from there on.
//!
//! Limit: a checkpoint carries at most `progress::MAX_RECORDED_DECISIONS` recorded decisions
//! (`checkpoints.replay_state` is a 64 KiB TEXT). Past that, during a flood larger than the
//! bound within one replay horizon, further `domain_flood` decisions are noted only as an
//! unrecorded range, which a replay decides afresh from the memory it rebuilt: the cap still
//! holds, but a restart in the middle of such a flood may admit other flood domains than
//! the first run did. Exact replays of any flood need the decisions stored apart from the
//! checkpoint row (a table of their own), which is future work.
//!
//! The price is the replay horizon: a restart reads at least `new_domain_memory_secs` plus a
//! minute of event time again (with the cap off, or a domain list set, nothing changes).

use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};
use crate::key::DomainKey;
use crate::parse::net::{normalize_host, HostError};
use crate::window::Time;

/// Default of `clean.new_domains_per_minute`: well above the new domains a partition of a
/// large CDN sees in a minute, far below what a flood of random hosts brings.
pub const DEFAULT_NEW_DOMAINS_PER_MINUTE: u32 = 1000;
/// Default of `clean.new_domain_memory_secs`: as long as the Filebeat re-send horizon, so a
/// restart's replay grows by about a minute with Filebeat input.
pub const DEFAULT_NEW_DOMAIN_MEMORY_SECS: u64 = 600;
/// The memory is at least a minute (the cap counts per minute) and at most a day (the
/// replay horizon grows with it).
pub const NEW_DOMAIN_MEMORY_RANGE: std::ops::RangeInclusive<u64> = 60..=86_400;

/// A problem with the domain settings of `[clean]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainGateError {
    #[error("clean.domains: invalid domain {pattern:?}: {error}")]
    InvalidDomain { pattern: String, error: HostError },
    #[error("clean.domains: {pattern:?} listed twice (domains are compared lower-cased)")]
    Duplicate { pattern: String },
    #[error("clean.new_domain_memory_secs must be in 60..=86400, got {secs}")]
    Memory { secs: u64 },
}

/// What the gate admits: the validated `clean.domains`, `clean.new_domains_per_minute` and
/// `clean.new_domain_memory_secs`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainGate {
    /// `Some`: only these domains pass (the cap is then off).
    known: Option<KnownDomains>,
    new_per_minute: u32,
    memory_secs: u64,
}

/// `clean.domains`: exact names and `*.parent` entries, normalised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KnownDomains {
    exact: FxHashSet<Box<str>>,
    /// Parents of `*.parent` entries.
    parents: FxHashSet<Box<str>>,
}

impl KnownDomains {
    fn contains(&self, domain: &str) -> bool {
        if self.exact.contains(domain) {
            return true;
        }
        let mut parent = domain;
        while let Some(dot) = parent.find('.') {
            parent = &parent[dot + 1..];
            if self.parents.contains(parent) {
                return true;
            }
        }
        false
    }
}

/// Why the gate turned a line away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not in `clean.domains`.
    Unknown,
    /// Over the partition's cap of new domains in this minute.
    Flood,
}

impl DomainGate {
    /// Validates the settings, reporting every problem.
    pub fn new(domains: &[String], new_per_minute: u32, memory_secs: u64) -> Result<DomainGate, Vec<DomainGateError>> {
        let mut problems = Vec::new();
        if !NEW_DOMAIN_MEMORY_RANGE.contains(&memory_secs) {
            problems.push(DomainGateError::Memory { secs: memory_secs });
        }
        let mut known = KnownDomains::default();
        for pattern in domains {
            let (wildcard, name) = match pattern.strip_prefix("*.") {
                Some(parent) => (true, parent),
                None => (false, pattern.as_str()),
            };
            match normalize_host(name.as_bytes()) {
                Err(error) => problems.push(DomainGateError::InvalidDomain { pattern: pattern.clone(), error }),
                Ok(normalized) => {
                    let set = if wildcard { &mut known.parents } else { &mut known.exact };
                    if !set.insert(normalized.into()) {
                        problems.push(DomainGateError::Duplicate { pattern: pattern.clone() });
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let known = (!domains.is_empty()).then_some(known);
        Ok(DomainGate { known, new_per_minute, memory_secs })
    }

    /// A gate that admits everything (no list, no cap).
    pub fn open() -> DomainGate {
        DomainGate { known: None, new_per_minute: 0, memory_secs: DEFAULT_NEW_DOMAIN_MEMORY_SECS }
    }

    /// Whether the per-partition cap is in force (no domain list, a non-zero cap).
    pub fn caps_new_domains(&self) -> bool {
        self.known.is_none() && self.new_per_minute > 0
    }

    pub fn new_per_minute(&self) -> u32 {
        self.new_per_minute
    }

    /// `unknown_domain`: the list is set and `domain` (normalised) is not in it.
    pub fn check_known(&self, domain: &str) -> Result<(), Refusal> {
        match &self.known {
            Some(known) if !known.contains(domain) => Err(Refusal::Unknown),
            _ => Ok(()),
        }
    }
}

/// One partition's memory of the domains it admitted, for the cap (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct NewDomains {
    /// Domain -> the watermark until which it is known (a memory end, see `admit`).
    known: FxHashMap<DomainKey, Time>,
    /// Memory ends in the order they were set; an entry is stale when the domain was renewed.
    expiry: VecDeque<(Time, DomainKey)>,
    /// The minute (of the watermark) the count is for.
    minute: Time,
    /// New domains admitted in `minute`.
    admitted: u32,
}

/// An admitted line: `reach` is the epoch its footprint must reach (`None`: it renewed
/// nothing, so nothing later depends on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub reach: Option<Time>,
}

impl NewDomains {
    /// Decides a line of `domain` seen when the partition's watermark is `watermark`.
    /// `replayed`: `Some(first run rejected it)` while a replay repeats the first run's
    /// decisions, `None` to decide afresh. The memory and the count move the same either way.
    pub fn admit(&mut self, gate: &DomainGate, domain: DomainKey, watermark: Time, replayed: Option<bool>) -> Result<Admitted, Refusal> {
        while let Some(&(until, key)) = self.expiry.front() {
            if until >= watermark {
                break;
            }
            self.expiry.pop_front();
            if self.known.get(&key) == Some(&until) {
                self.known.remove(&key);
            }
        }
        let minute = watermark - watermark % 60;
        if minute != self.minute {
            self.minute = minute;
            self.admitted = 0;
        }
        // Whole minutes: a replay renewing at its first line of a minute reaches the same end
        // as the first run's first line of that minute.
        let until = minute + gate.memory_secs;
        let renewed = match self.known.get_mut(&domain) {
            Some(known_until) if *known_until >= until => return Ok(Admitted { reach: None }),
            Some(known_until) => {
                *known_until = until;
                true
            }
            None => false,
        };
        if !renewed {
            let flood = replayed.unwrap_or(self.admitted >= gate.new_per_minute);
            if flood {
                return Err(Refusal::Flood);
            }
            self.admitted += 1;
            self.known.insert(domain, until);
        }
        self.expiry.push_back((until, domain));
        // A minute more: while the watermark is in the minute after the memory ends, the
        // count of that minute may still have depended on this domain being known.
        Ok(Admitted { reach: Some(until + 60) })
    }

    /// Domains remembered (a state-size gauge for tests and metrics).
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::DomainSeed;

    fn key(name: &str) -> DomainKey {
        DomainSeed::FIXED.key(name)
    }

    #[test]
    fn known_domains_match_exact_names_and_subdomains_of_wildcards() {
        let gate = DomainGate::new(&["WWW.Example.com".into(), "*.cdn.example.net".into()], 5, 600).unwrap();
        assert_eq!(gate.check_known("www.example.com"), Ok(()));
        assert_eq!(gate.check_known("a.b.cdn.example.net"), Ok(()));
        assert_eq!(gate.check_known("cdn.example.net"), Err(Refusal::Unknown), "the wildcard covers subdomains only");
        assert_eq!(gate.check_known("example.com"), Err(Refusal::Unknown));
        assert!(!gate.caps_new_domains(), "a list turns the cap off");
        assert!(DomainGate::new(&[], 5, 600).unwrap().caps_new_domains());
        assert!(!DomainGate::new(&[], 0, 600).unwrap().caps_new_domains());
    }

    #[test]
    fn every_problem_with_the_settings_is_reported() {
        let problems = DomainGate::new(&["bad host".into(), "a.example".into(), "A.example".into()], 5, 10).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(matches!(problems[0], DomainGateError::Memory { secs: 10 }));
        assert!(problems[1].to_string().starts_with("clean.domains: invalid domain \"bad host\""));
        assert!(problems[2].to_string().contains("listed twice"));
    }

    #[test]
    fn at_most_the_cap_of_new_domains_per_minute_and_known_ones_always_pass() {
        let gate = DomainGate::new(&[], 3, 600).unwrap();
        let mut seen = NewDomains::default();
        let t0 = 1_772_323_200;
        let verdicts: Vec<bool> = (0..10).map(|i| seen.admit(&gate, key(&format!("d{i}")), t0 + i, None).is_ok()).collect();
        assert_eq!(verdicts, [true, true, true, false, false, false, false, false, false, false]);
        // Admitted domains pass whatever the count; the next minute has a fresh count.
        assert!(seen.admit(&gate, key("d0"), t0 + 30, None).is_ok());
        assert!(seen.admit(&gate, key("d9"), t0 + 60, None).is_ok());
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn a_domain_quiet_for_longer_than_the_memory_counts_as_new_again() {
        let gate = DomainGate::new(&[], 1, 120).unwrap();
        let mut seen = NewDomains::default();
        let t0 = 1_772_323_200;
        assert_eq!(seen.admit(&gate, key("a"), t0, None), Ok(Admitted { reach: Some(t0 + 180) }));
        // Renewed once per minute, not per line.
        assert_eq!(seen.admit(&gate, key("a"), t0 + 59, None), Ok(Admitted { reach: None }));
        assert_eq!(seen.admit(&gate, key("a"), t0 + 60, None), Ok(Admitted { reach: Some(t0 + 240) }));
        // Known until t0 + 180: "b" takes the slot of minute t0 + 180, and "a" is new again
        // at t0 + 181 with no slot left.
        assert!(seen.admit(&gate, key("b"), t0 + 180, None).is_ok());
        assert_eq!(seen.admit(&gate, key("a"), t0 + 181, None), Err(Refusal::Flood));
    }

    #[test]
    fn a_replayed_decision_overrides_the_count() {
        let gate = DomainGate::new(&[], 1, 600).unwrap();
        let mut seen = NewDomains::default();
        let t0 = 1_772_323_200;
        assert!(seen.admit(&gate, key("a"), t0, Some(false)).is_ok());
        assert!(seen.admit(&gate, key("b"), t0, Some(false)).is_ok(), "the first run admitted it");
        assert_eq!(seen.admit(&gate, key("c"), t0, Some(true)), Err(Refusal::Flood));
        assert_eq!(seen.admit(&gate, key("d"), t0, None), Err(Refusal::Flood), "fresh decisions count what the replay admitted");
    }
}

//! The billing page's numbers: month-to-date 95th percentile and traffic, per domain and per
//! account, from the 5-minute samples of `domain_bandwidth_5m` (DESIGN §7, the vendor method).
//!
//! A sample's bandwidth is `bytes × 8 / 300` bit/s. With N intervals, sort the samples in
//! descending order, drop the top M = ⌊0.05·N⌋ and bill the (M+1)-th; intervals without a
//! sample count as zero. For a past month N = 288 × days in the month; for the current month
//! N = the 5-minute intervals that have started so far (month to date). An account's
//! bandwidth is the sum of its domains' samples per interval, then the same percentile.
//!
//! `edgeflow billing` (src/billing.rs) implements the full set of vendor variants; this is
//! the one the dashboard shows.

use std::collections::BTreeMap;

use serde::Serialize;

use super::range::Month;

/// Seconds per bandwidth sample.
pub const SAMPLE_SECS: i64 = 300;

/// Bit/s of a 5-minute sample of `bytes`.
pub fn sample_bps(bytes: u64) -> f64 {
    bytes as f64 * 8.0 / SAMPLE_SECS as f64
}

/// The 5-minute intervals of `month` that count at wall-clock `now`: all of them for a past
/// month, those that have started for the current month, none for a future one.
pub fn intervals(month: Month, now: i64) -> u64 {
    let (start, end) = (month.start(), month.end());
    let elapsed = now.clamp(start, end) - start;
    ((elapsed + SAMPLE_SECS - 1) / SAMPLE_SECS) as u64
}

/// The vendor 95th percentile (`crate::billing::percentile_95`, the method of `edgeflow
/// billing`) of per-interval byte counts (any order) over `n` intervals, missing ones
/// counting as zero: the billed sample's bytes. `n` smaller than the number of samples is
/// raised to it.
pub fn percentile_95(samples: &[u64], n: u64) -> u64 {
    let n = n.max(samples.len() as u64) as usize;
    // Interval starts only break ties, which do not change the billed bytes.
    let padded = samples.iter().copied().chain(std::iter::repeat(0)).take(n).zip(0..).collect();
    crate::billing::percentile_95(padded).map_or(0, |p| p.billed_bytes)
}

/// One billed unit: a domain or an account.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bill {
    /// Domain or account name; `None` is the account of domains not mapped to one.
    pub name: Option<String>,
    /// The account of a domain (domain bills only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Domains of an account (account bills only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    /// Month-to-date 95th percentile, bit/s.
    pub p95_bps: f64,
    /// The same in Mbit/s (10^6 bit/s).
    pub p95_mbit_per_s: f64,
    /// Highest 5-minute sample, bit/s.
    pub max_bps: f64,
    /// Response bytes in the month so far.
    pub bytes: u64,
    /// Traffic in GB (10^9 bytes).
    pub traffic_gb: f64,
    /// 5-minute samples with traffic.
    pub samples: u64,
    /// N: intervals counted (missing ones are zero).
    pub intervals: u64,
    /// M = ⌊0.05·N⌋: top samples dropped.
    pub dropped: u64,
}

/// Bills of a month: per domain and per account.
#[derive(Clone, Debug, Serialize)]
pub struct MonthBills {
    pub month: String,
    pub month_start: i64,
    pub month_end: i64,
    /// Samples up to this instant count (the end of the month, or now).
    pub as_of: i64,
    pub intervals: u64,
    pub domains: Vec<Bill>,
    pub accounts: Vec<Bill>,
}

/// An account's domains and its summed bytes per sample start.
type AccountSamples = (Vec<String>, BTreeMap<i64, u64>);

/// Computes the bills of `month` from `(domain, sample_start, bytes)` rows.
pub fn month_bills(
    month: Month,
    now: i64,
    rows: &[(String, i64, u64)],
    account_of: impl Fn(&str) -> Option<String>,
) -> MonthBills {
    let n = intervals(month, now);
    let mut per_domain: BTreeMap<&str, Vec<(i64, u64)>> = BTreeMap::new();
    for (domain, start, bytes) in rows {
        per_domain.entry(domain.as_str()).or_default().push((*start, *bytes));
    }
    let mut per_account: BTreeMap<Option<String>, AccountSamples> = BTreeMap::new();
    let mut domains = Vec::with_capacity(per_domain.len());
    for (domain, samples) in &per_domain {
        let account = account_of(domain);
        let entry = per_account.entry(account.clone()).or_default();
        entry.0.push((*domain).to_owned());
        for (start, bytes) in samples {
            *entry.1.entry(*start).or_default() += bytes;
        }
        let mut bill = bill(samples.iter().map(|(_, b)| *b), n);
        bill.name = Some((*domain).to_owned());
        bill.account = account;
        domains.push(bill);
    }
    let accounts = per_account
        .into_iter()
        .map(|(account, (names, samples))| {
            let mut bill = bill(samples.into_values(), n);
            bill.name = account;
            bill.domains = Some(names);
            bill
        })
        .collect();
    let by_p95 = |a: &Bill, b: &Bill| b.p95_bps.total_cmp(&a.p95_bps).then_with(|| a.name.cmp(&b.name));
    domains.sort_by(by_p95);
    let mut accounts: Vec<Bill> = accounts;
    accounts.sort_by(by_p95);
    MonthBills {
        month: month.to_string(),
        month_start: month.start(),
        month_end: month.end(),
        as_of: now.clamp(month.start(), month.end()),
        intervals: n,
        domains,
        accounts,
    }
}

fn bill(samples: impl Iterator<Item = u64>, n: u64) -> Bill {
    let bytes_per_sample: Vec<u64> = samples.filter(|b| *b > 0).collect();
    let bps: Vec<f64> = bytes_per_sample.iter().map(|b| sample_bps(*b)).collect();
    let n = n.max(bps.len() as u64);
    let p95 = sample_bps(percentile_95(&bytes_per_sample, n));
    let bytes: u64 = bytes_per_sample.iter().sum();
    Bill {
        name: None,
        account: None,
        domains: None,
        p95_bps: p95,
        p95_mbit_per_s: p95 / 1e6,
        max_bps: bps.iter().copied().fold(0.0, f64::max),
        bytes,
        traffic_gb: bytes as f64 / 1e9,
        samples: bps.len() as u64,
        intervals: n,
        dropped: n / 20,
    }
}

/// CSV export of the bills (`by` = domains or accounts), RFC 4180 quoting. Text cells that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) get a leading `'`.
pub fn csv(bills: &MonthBills, accounts: bool) -> String {
    let mut out = String::new();
    let header = if accounts {
        "month,account,domains,p95_mbit_per_s,traffic_gb,bytes,max_mbit_per_s,samples,intervals,dropped\r\n"
    } else {
        "month,domain,account,p95_mbit_per_s,traffic_gb,bytes,max_mbit_per_s,samples,intervals,dropped\r\n"
    };
    out.push_str(header);
    let list = if accounts { &bills.accounts } else { &bills.domains };
    for bill in list {
        let second = if accounts {
            bill.domains.as_deref().map(|d| d.join(" ")).unwrap_or_default()
        } else {
            bill.account.clone().unwrap_or_default()
        };
        let cells = [
            bills.month.clone(),
            csv_text(bill.name.as_deref().unwrap_or("")),
            csv_text(&second),
            format!("{:.6}", bill.p95_mbit_per_s),
            format!("{:.6}", bill.traffic_gb),
            bill.bytes.to_string(),
            format!("{:.6}", bill.max_bps / 1e6),
            bill.samples.to_string(),
            bill.intervals.to_string(),
            bill.dropped.to_string(),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_text(text: &str) -> String {
    let guarded = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_31_day_month_bills_the_447th_sample() {
        let month = Month::parse("2026-12").unwrap();
        let n = intervals(month, month.end() + 10);
        assert_eq!(n, 8_928);
        // Samples of 1..=8928 bytes: the 447th largest is 8928 - 446.
        let samples: Vec<u64> = (1..=8_928).collect();
        assert_eq!(percentile_95(&samples, n), 8_482);
        let month = Month::parse("2026-11").unwrap();
        let n = intervals(month, month.end());
        assert_eq!(n, 8_640);
        let samples: Vec<u64> = (1..=8_640).collect();
        assert_eq!(percentile_95(&samples, n), 8_640 - 432, "the 433rd of a 30-day month");
    }

    #[test]
    fn month_to_date_counts_started_intervals_and_missing_ones_as_zero() {
        let month = Month::parse("2026-11").unwrap();
        assert_eq!(intervals(month, month.start()), 0);
        assert_eq!(intervals(month, month.start() + 1), 1);
        assert_eq!(intervals(month, month.start() + 300), 1);
        assert_eq!(intervals(month, month.start() + 301), 2);
        assert_eq!(intervals(month, month.start() - 5), 0);
        // 100 intervals, 3 samples: M = 5 ≥ 3 samples, so the bill is zero.
        assert_eq!(percentile_95(&[9, 8, 7], 100), 0);
        // 40 intervals, M = 2: the third largest.
        assert_eq!(percentile_95(&[1, 9, 8, 7], 40), 7);
        // Fewer than 20 intervals: nothing dropped.
        assert_eq!(percentile_95(&[5, 6], 19), 6);
        assert_eq!(percentile_95(&[], 0), 0);
    }

    #[test]
    fn accounts_sum_their_domains_per_interval() {
        let month = Month::parse("2026-11").unwrap();
        let t0 = month.start();
        let rows = vec![
            ("a.example".to_string(), t0, 300u64),
            ("a.example".to_string(), t0 + 300, 600),
            ("b.example".to_string(), t0, 3_000),
            ("c.example".to_string(), t0 + 300, 30),
        ];
        let bills = month_bills(month, t0 + 600, &rows, |d| (d != "c.example").then(|| "acme".to_string()));
        assert_eq!(bills.intervals, 2);
        let acme = bills.accounts.iter().find(|b| b.name.as_deref() == Some("acme")).unwrap();
        assert_eq!(acme.bytes, 3_900);
        // Per interval: 3300 and 600 bytes; N = 2, M = 0: the largest.
        assert_eq!(acme.p95_bps, sample_bps(3_300));
        assert_eq!(acme.domains.as_deref().unwrap(), ["a.example", "b.example"]);
        let unmapped = bills.accounts.iter().find(|b| b.name.is_none()).unwrap();
        assert_eq!(unmapped.bytes, 30);
        let b = bills.domains.iter().find(|b| b.name.as_deref() == Some("b.example")).unwrap();
        assert_eq!((b.samples, b.p95_bps, b.traffic_gb), (1, 80.0, 3e-6));
        assert_eq!(bills.domains[0].name.as_deref(), Some("b.example"), "sorted by p95, highest first");
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let month = Month::parse("2026-11").unwrap();
        let rows = vec![("=cmd|' /C calc'!A0".to_string(), month.start(), 1u64), ("a,\"b\".example".to_string(), month.start(), 2)];
        let text = csv(&month_bills(month, month.end(), &rows, |_| None), false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("month,domain,account,p95_mbit_per_s"));
        assert!(text.contains("2026-11,'=cmd|' /C calc'!A0,,"), "{text}");
        assert!(text.contains("2026-11,\"a,\"\"b\"\".example\",,"), "{text}");
    }
}

//! `edgeflow billing`: 95th-percentile CDN bills from the 5-minute bandwidth samples
//! (the method below). This file is the pure computation: samples in, bills out, no I/O;
//! `store` reads `domain_bandwidth_5m`, `report` renders table, CSV or JSON.
//!
//! The vendor method, as computed here:
//! - A sample is one 5-minute interval (`sample_start` a multiple of 300 s, UTC) and its
//!   response bytes; its bandwidth is `bytes × 8 / 300` bit/s, shown in Mbit/s (10⁶ bit/s).
//! - N = the intervals of the billing period (288 a day: 8928 for 31 days, 8640 for 30, 8064
//!   for 28, 8352 for 29). An interval without a sample counts as zero bandwidth.
//! - Rank the N samples by bandwidth, highest first; equal values rank earliest interval first,
//!   so the billed time is well defined under ties (the value is the same whichever tied
//!   sample is billed). Drop the top M = ⌊0.05·N⌋ (exact integer arithmetic: N / 20) and bill
//!   the (M+1)-th: its value and its interval start are reported.
//! - Variant "days with traffic": only the UTC days of the period with at least one sample
//!   above zero bytes count; N = their intervals (288 each), missing samples in those days
//!   are still zero.
//! - Daily peak: the highest sample of each UTC day of the period (zero for a day without
//!   samples); the report shows the month's highest and the average of the daily peaks.
//! - Traffic: bytes of the period's samples, in GB = 10⁹ bytes (decimal).
//! - An account's bandwidth is the sum of its domains' samples per interval, and the
//!   percentile is taken of that sum, as vendors bill an account; never the sum of the
//!   domains' percentiles.
//!
//! The billing period and the effective-days factor (partial months):
//! - By default a domain is billed over the days it was in service this month. It started
//!   mid-month if its first sample ever falls in the month: the period then starts at 00:00
//!   UTC of that day. It ended mid-month if the month is over and its last sample ever falls
//!   in the month: the period then ends at 24:00 UTC of that day. Otherwise the period is the
//!   whole month. For the current month the period ends at the start of the interval after
//!   the last one that has started (month to date, as the dashboard counts it).
//! - effective days = N / 288 (whole days except month to date); the effective-days factor =
//!   effective days / days in the month, the share of a monthly commitment the period owes.
//! - An account's period spans its domains' periods (earliest start to latest end).
//! - "Ended" is inferred from the data: a domain that merely had no traffic for the last days
//!   of a closed month, and none since, is treated as ended. [`Proration::WholeMonth`]
//!   (`--whole-month`) bills every subject over the whole month instead.
//!
//! Logs count application bytes, so these figures read about 10% below a vendor's bill
//! (TCP/IP overhead and retransmissions are not in the logs).

pub mod report;
pub mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use dataflows::parse::net::normalize_host;
use dataflows::parse::time::{civil_from_days, days_from_civil, days_in_month};

/// Seconds per bandwidth sample.
pub const SAMPLE_SECS: i64 = 300;
/// Samples per day.
pub const SAMPLES_PER_DAY: i64 = 288;
const DAY_SECS: i64 = 86_400;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("invalid month {0:?}: expected YYYY-MM")]
    BadMonth(String),
    #[error("month {0} has not started yet")]
    NotStarted(Month),
    #[error("invalid domain {domain:?}: {reason}")]
    BadDomain { domain: String, reason: String },
    #[error("sample of {subject} at {start} is not on a 5-minute boundary")]
    Unaligned { subject: String, start: i64 },
}

/// A calendar month, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    /// 1..=12
    pub month: u32,
}

impl Month {
    pub fn days(self) -> u32 {
        days_in_month(i64::from(self.year), self.month)
    }

    /// Unix seconds of the first instant of the month.
    pub fn start(self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, 1) * DAY_SECS
    }

    /// Unix seconds of the first instant of the next month.
    pub fn end(self) -> i64 {
        self.start() + i64::from(self.days()) * DAY_SECS
    }
}

impl FromStr for Month {
    type Err = BillingError;

    fn from_str(text: &str) -> Result<Month, BillingError> {
        let bad = || BillingError::BadMonth(text.to_string());
        let (year, month) = text.trim().split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 || !year.bytes().chain(month.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (year, month) = (year.parse().map_err(|_| bad())?, month.parse().map_err(|_| bad())?);
        if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A half-open span `[start, end)` of whole 5-minute intervals, Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: i64,
    pub end: i64,
}

impl Period {
    /// N: the 5-minute intervals in the period.
    pub fn samples(self) -> u32 {
        u32::try_from((self.end - self.start).max(0) / SAMPLE_SECS).unwrap_or(u32::MAX)
    }

    /// N / 288.
    pub fn effective_days(self) -> f64 {
        f64::from(self.samples()) / SAMPLES_PER_DAY as f64
    }
}

/// The first and last sample a domain has ever had (any month), Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activity {
    pub first_sample: i64,
    pub last_sample: i64,
}

/// Whether partial months are prorated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proration {
    /// Bill over the days the domain was in service (see the module doc).
    ByActivity,
    /// Bill every subject over the whole month (month to date for the current one).
    WholeMonth,
}

/// One 5-minute sample: interval start (Unix seconds) and response bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub start: i64,
    pub bytes: u64,
}

/// Bit/s of a 5-minute sample of `bytes`.
pub fn bits_per_sec(bytes: u64) -> f64 {
    bytes as f64 * 8.0 / SAMPLE_SECS as f64
}

/// Mbit/s (10⁶ bit/s) of a 5-minute sample of `bytes`.
pub fn mbit_per_sec(bytes: u64) -> f64 {
    bits_per_sec(bytes) / 1e6
}

/// Decimal gigabytes (10⁹ bytes).
pub fn gigabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

/// The period a domain is billed over in `month`, as of wall-clock `now` (module doc).
pub fn billing_period(month: Month, activity: Option<Activity>, now: i64, proration: Proration) -> Result<Period, BillingError> {
    if now < month.start() {
        return Err(BillingError::NotStarted(month));
    }
    let month_over = now >= month.end();
    // Month to date: the intervals that have started (as the dashboard counts them).
    let until = if month_over { month.end() } else { ceil_to(now, SAMPLE_SECS).min(month.end()) };
    let whole = Period { start: month.start(), end: until };
    let Some(activity) = activity.filter(|_| proration == Proration::ByActivity) else {
        return Ok(whole);
    };
    let mut period = whole;
    if activity.first_sample >= month.start() {
        period.start = floor_to(activity.first_sample, DAY_SECS);
    }
    if month_over && activity.last_sample < month.end() {
        period.end = floor_to(activity.last_sample, DAY_SECS) + DAY_SECS;
    }
    // Started after the month or ended before it: nothing to bill.
    period.start = period.start.clamp(whole.start, whole.end);
    period.end = period.end.clamp(period.start, whole.end);
    Ok(period)
}

/// The spans of several periods: earliest start to latest end (an account's period).
pub fn span(periods: impl IntoIterator<Item = Period>) -> Option<Period> {
    periods.into_iter().filter(|p| p.end > p.start).reduce(|a, b| Period { start: a.start.min(b.start), end: a.end.max(b.end) })
}

/// A 95th percentile by the vendor method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentile95 {
    /// N: samples ranked, missing ones as zero.
    pub samples: u32,
    /// M = ⌊0.05·N⌋: the highest samples dropped.
    pub dropped: u32,
    /// The billed, (M+1)-th highest sample: its bytes and interval start.
    pub billed_bytes: u64,
    pub billed_start: i64,
}

impl Percentile95 {
    /// The billed sample's rank, M + 1.
    pub fn billed_rank(&self) -> u32 {
        self.dropped + 1
    }

    pub fn billed_mbit_per_sec(&self) -> f64 {
        mbit_per_sec(self.billed_bytes)
    }
}

/// The highest sample of a UTC day of the period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyPeak {
    /// 00:00 UTC of the day.
    pub day_start: i64,
    pub peak_bytes: u64,
    /// The earliest interval with the peak (the day's first interval in the period when the
    /// day had no traffic).
    pub peak_start: i64,
}

/// Everything billed for one domain or account over one period.
#[derive(Clone, Debug, PartialEq)]
pub struct Bill {
    pub month: Month,
    pub period: Period,
    /// N / 288.
    pub effective_days: f64,
    /// effective days / days in the month.
    pub effective_days_factor: f64,
    /// All days of the period; `None` when the period is empty.
    pub all_days: Option<Percentile95>,
    /// Only the days with traffic; `None` when no day had any.
    pub traffic_days: Option<Percentile95>,
    pub days_with_traffic: u32,
    /// One per UTC day of the period, in order.
    pub daily_peaks: Vec<DailyPeak>,
    /// The highest daily peak (the period's highest sample), earliest day first on ties.
    pub peak: Option<DailyPeak>,
    /// Mean of `daily_peaks`, bytes per 5 minutes (0 for an empty period).
    pub average_daily_peak_bytes: f64,
    /// Bytes of the period's samples.
    pub traffic_bytes: u64,
}

impl Bill {
    pub fn average_daily_peak_mbit_per_sec(&self) -> f64 {
        self.average_daily_peak_bytes * 8.0 / SAMPLE_SECS as f64 / 1e6
    }
}

/// Bills `samples` over `period`. Samples of the same interval are added (an account's
/// domains); samples outside the period are ignored; an unaligned one is an error.
pub fn compute(subject: &str, month: Month, period: Period, samples: &[Sample]) -> Result<Bill, BillingError> {
    let n = period.samples() as usize;
    let mut dense = vec![0u64; n];
    let mut traffic_bytes = 0u64;
    for sample in samples {
        if sample.start.rem_euclid(SAMPLE_SECS) != 0 {
            return Err(BillingError::Unaligned { subject: subject.to_string(), start: sample.start });
        }
        if sample.start < period.start || sample.start >= period.end {
            continue;
        }
        let index = ((sample.start - period.start) / SAMPLE_SECS) as usize;
        dense[index] = dense[index].saturating_add(sample.bytes);
        traffic_bytes = traffic_bytes.saturating_add(sample.bytes);
    }
    let start_of = |index: usize| period.start + index as i64 * SAMPLE_SECS;

    // Days of the period: [day start, first index, end index) of each UTC day.
    let mut days: Vec<(i64, usize, usize)> = Vec::new();
    let mut index = 0;
    while index < n {
        let day_start = floor_to(start_of(index), DAY_SECS);
        let end = (((day_start + DAY_SECS - period.start) / SAMPLE_SECS) as usize).min(n);
        days.push((day_start, index, end));
        index = end;
    }

    let daily_peaks: Vec<DailyPeak> = days
        .iter()
        .map(|&(day_start, from, to)| {
            // The first maximum: earliest interval on ties.
            let (peak_index, peak_bytes) =
                dense[from..to].iter().enumerate().fold((0, 0u64), |best, (i, &bytes)| if bytes > best.1 { (i, bytes) } else { best });
            DailyPeak { day_start, peak_bytes, peak_start: start_of(from + peak_index) }
        })
        .collect();
    let peak = daily_peaks.iter().copied().reduce(|best, day| if day.peak_bytes > best.peak_bytes { day } else { best });
    let average_daily_peak_bytes = if daily_peaks.is_empty() {
        0.0
    } else {
        daily_peaks.iter().map(|d| d.peak_bytes as f64).sum::<f64>() / daily_peaks.len() as f64
    };

    let all_days = percentile_95((0..n).map(|i| (dense[i], start_of(i))).collect());
    let traffic_day_ranges: Vec<_> = days.iter().filter(|&&(_, from, to)| dense[from..to].iter().any(|&b| b > 0)).collect();
    let traffic_days =
        percentile_95(traffic_day_ranges.iter().flat_map(|&&(_, from, to)| (from..to).map(|i| (dense[i], start_of(i)))).collect());

    let effective_days = period.effective_days();
    Ok(Bill {
        month,
        period,
        effective_days,
        effective_days_factor: effective_days / f64::from(month.days()),
        all_days,
        traffic_days,
        days_with_traffic: traffic_day_ranges.len() as u32,
        daily_peaks,
        peak,
        average_daily_peak_bytes,
        traffic_bytes,
    })
}

/// The vendor 95th percentile of `(bytes, interval start)` samples, one per interval
/// (missing intervals as zero bytes); `None` when empty. The dashboard uses it too.
pub fn percentile_95(mut samples: Vec<(u64, i64)>) -> Option<Percentile95> {
    let n = samples.len();
    if n == 0 {
        return None;
    }
    let dropped = n / 20; // ⌊0.05·N⌋ without floating point
    // Highest first, earliest first among equals: a total order, so the pick is deterministic.
    let (_, &mut (billed_bytes, billed_start), _) =
        samples.select_nth_unstable_by(dropped, |a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    Some(Percentile95 { samples: n as u32, dropped: dropped as u32, billed_bytes, billed_start })
}

/// Who a bill is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    Domain(String),
    Account(String),
}

impl Subject {
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Domain(_) => "domain",
            Subject::Account(_) => "account",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Subject::Domain(name) | Subject::Account(name) => name,
        }
    }
}

/// What to bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every domain with samples in the month, then every account.
    All,
    Domain(String),
    /// The account, then each of its domains.
    Account(String),
}

impl Scope {
    /// `--domain`: normalised as the job normalises `$host` (lower-cased, port stripped).
    pub fn domain(raw: &str) -> Result<Scope, BillingError> {
        normalize_host(raw.trim().as_bytes())
            .map(|domain| Scope::Domain(domain.into_owned()))
            .map_err(|err| BillingError::BadDomain { domain: raw.to_string(), reason: err.to_string() })
    }
}

/// One domain's data for a month, as the store reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainSeries {
    pub domain: String,
    /// From `clean.accounts`.
    pub account: Option<String>,
    /// `None` when the domain has no samples at all.
    pub activity: Option<Activity>,
    /// The month's samples.
    pub samples: Vec<Sample>,
}

/// A bill and who it is for.
#[derive(Clone, Debug, PartialEq)]
pub struct SubjectBill {
    pub subject: Subject,
    /// The account of a domain bill.
    pub account: Option<String>,
    /// The domains summed into an account bill (just the domain for a domain bill).
    pub domains: Vec<String>,
    pub bill: Bill,
}

/// The bills of `scope` for `month` from each domain's `series`, as of wall-clock `now`:
/// domain bills in name order, account bills in name order (each before its domains for
/// `Scope::Account`). Series of domains outside the scope are ignored.
pub fn bill_month(
    month: Month,
    now: i64,
    proration: Proration,
    scope: &Scope,
    series: &[DomainSeries],
) -> Result<Vec<SubjectBill>, BillingError> {
    let mut sorted: Vec<&DomainSeries> = series
        .iter()
        .filter(|s| match scope {
            Scope::All => true,
            Scope::Domain(domain) => &s.domain == domain,
            Scope::Account(account) => s.account.as_ref() == Some(account),
        })
        .collect();
    sorted.sort_by(|a, b| a.domain.cmp(&b.domain));

    let mut domain_bills = Vec::with_capacity(sorted.len());
    let mut accounts: BTreeMap<&str, Vec<(&DomainSeries, Period)>> = BTreeMap::new();
    for series in &sorted {
        let period = billing_period(month, series.activity, now, proration)?;
        domain_bills.push(SubjectBill {
            subject: Subject::Domain(series.domain.clone()),
            account: series.account.clone(),
            domains: vec![series.domain.clone()],
            bill: compute(&series.domain, month, period, &series.samples)?,
        });
        if let Some(account) = &series.account {
            accounts.entry(account).or_default().push((series, period));
        }
    }
    if matches!(scope, Scope::Domain(_)) {
        return Ok(domain_bills);
    }

    let mut account_bills = Vec::with_capacity(accounts.len());
    for (account, members) in accounts {
        let whole = billing_period(month, None, now, proration)?;
        let period = span(members.iter().map(|(_, p)| *p)).unwrap_or(Period { start: whole.start, end: whole.start });
        let samples: Vec<Sample> = members.iter().flat_map(|(s, _)| s.samples.iter().copied()).collect();
        account_bills.push(SubjectBill {
            subject: Subject::Account(account.to_string()),
            account: None,
            domains: members.iter().map(|(s, _)| s.domain.clone()).collect(),
            bill: compute(account, month, period, &samples)?,
        });
    }
    Ok(match scope {
        Scope::Account(_) => account_bills.into_iter().chain(domain_bills).collect(),
        _ => domain_bills.into_iter().chain(account_bills).collect(),
    })
}

/// `2026-03-14T10:05:00Z` for Unix seconds.
pub fn format_utc(secs: i64) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(DAY_SECS));
    let second_of_day = secs.rem_euclid(DAY_SECS);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// `2026-03-14` for Unix seconds.
pub fn format_date(secs: i64) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(DAY_SECS));
    format!("{year:04}-{month:02}-{day:02}")
}

fn floor_to(value: i64, step: i64) -> i64 {
    value - value.rem_euclid(step)
}

fn ceil_to(value: i64, step: i64) -> i64 {
    floor_to(value + step - 1, step)
}

#[cfg(test)]
mod tests;

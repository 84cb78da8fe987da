//! Time ranges: the `range`/`from`/`to` query parameters every page and API endpoint takes,
//! the bucket width of their charts, and the little civil-date arithmetic they need (UTC only).
//!
//! - `range=15m|1h|6h|24h|7d|30d` — a preset ending now (the end is rounded up to the next
//!   whole minute, so the current minute is included).
//! - `from=…&to=…` — a custom range; each is Unix seconds, `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM`,
//!   `YYYY-MM-DDTHH:MM:SS` (a space may replace the `T`; a trailing `Z` is allowed; always
//!   UTC). `from` is rounded down and `to` up to whole minutes; `to` defaults to now.
//! - Neither: the last hour.
//!
//! Rows are selected by `start >= from AND start < to`; rates over a range divide by
//! `to - from`. Chart buckets start at `from` and are [`TimeRange::step`] seconds wide.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Presets of the time-range selector, in order.
pub const PRESETS: [(&str, i64); 6] =
    [("15m", 900), ("1h", 3_600), ("6h", 21_600), ("24h", 86_400), ("7d", 604_800), ("30d", 2_592_000)];

/// The preset used when a request names no range.
pub const DEFAULT_PRESET: &str = "1h";

/// Bucket widths a chart may use, narrowest first.
const STEPS: [i64; 10] = [60, 300, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400];

/// Most points of a chart series; the narrowest step that stays under it is used.
pub const MAX_POINTS: i64 = 720;
/// Most points of an overview sparkline.
pub const MAX_SPARK_POINTS: i64 = 90;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RangeParams {
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("unknown range `{0}`: use 15m, 1h, 6h, 24h, 7d or 30d, or from/to")]
    UnknownPreset(String),
    #[error("cannot read `{0}` as a time: use Unix seconds or YYYY-MM-DD[THH:MM[:SS]] (UTC)")]
    BadTime(String),
    #[error("`from` must be before `to`")]
    Empty,
    #[error("the range is longer than the {0} days allowed")]
    TooLong(u32),
    #[error("`to` given without `from`")]
    ToWithoutFrom,
}

/// A resolved range: whole minutes, `from < to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimeRange {
    /// Unix seconds, inclusive.
    pub from: i64,
    /// Unix seconds, exclusive.
    pub to: i64,
    /// The preset it came from, if any.
    pub preset: Option<&'static str>,
}

impl TimeRange {
    /// Resolves request parameters at wall-clock time `now` (Unix seconds).
    pub fn resolve(params: &RangeParams, now: i64, max_days: u32) -> Result<TimeRange, RangeError> {
        let blank = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let (from, to, range) = (blank(&params.from), blank(&params.to), blank(&params.range));
        let resolved = match (from, to) {
            (Some(from), to) => {
                let from = floor_to(parse_time(&from)?, 60);
                let to = match to {
                    Some(to) => ceil_to(parse_time(&to)?, 60),
                    None => ceil_to(now, 60),
                };
                TimeRange { from, to, preset: None }
            }
            (None, Some(_)) => return Err(RangeError::ToWithoutFrom),
            (None, None) => {
                let name = range.as_deref().unwrap_or(DEFAULT_PRESET);
                let (preset, secs) =
                    PRESETS.iter().find(|(p, _)| *p == name).ok_or_else(|| RangeError::UnknownPreset(name.into()))?;
                let to = ceil_to(now + 1, 60);
                TimeRange { from: to - secs, to, preset: Some(preset) }
            }
        };
        if resolved.from >= resolved.to {
            return Err(RangeError::Empty);
        }
        if resolved.to - resolved.from > i64::from(max_days) * 86_400 {
            return Err(RangeError::TooLong(max_days));
        }
        Ok(resolved)
    }

    pub fn secs(&self) -> i64 {
        self.to - self.from
    }

    /// Bucket width of a chart over this range with at most `max_points` points.
    pub fn step(&self, max_points: i64) -> i64 {
        let secs = self.secs();
        STEPS.iter().copied().find(|step| (secs + step - 1) / step <= max_points).unwrap_or(86_400 * ((secs / 86_400 / max_points) + 1))
    }

    /// Start of every bucket of width `step`.
    pub fn buckets(&self, step: i64) -> impl Iterator<Item = i64> + '_ {
        (self.from..self.to).step_by(step as usize)
    }

    /// Seconds of bucket `start` that lie inside the range (the last one may be cut short).
    pub fn bucket_len(&self, start: i64, step: i64) -> i64 {
        (self.to.min(start + step) - start).max(1)
    }
}

pub fn floor_to(t: i64, unit: i64) -> i64 {
    t - t.rem_euclid(unit)
}

pub fn ceil_to(t: i64, unit: i64) -> i64 {
    floor_to(t + unit - 1, unit)
}

/// Reads Unix seconds or an ISO-like UTC date-time (see the module docs).
pub fn parse_time(text: &str) -> Result<i64, RangeError> {
    let bad = || RangeError::BadTime(text.chars().take(40).collect());
    let s = text.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().map_err(|_| bad()).and_then(|v| if v < 253_402_300_800 { Ok(v) } else { Err(bad()) });
    }
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')).unwrap_or(s);
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let num = |part: &str, len: usize| -> Result<i64, RangeError> {
        if part.len() == len && part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let mut d = date.split('-');
    let (year, month, day) = match (d.next(), d.next(), d.next(), d.next()) {
        (Some(y), Some(m), Some(dd), None) => (num(y, 4)?, num(m, 2)?, num(dd, 2)?),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month as u32) as i64 {
        return Err(bad());
    }
    let (hour, minute, second) = match time {
        None => (0, 0, 0),
        Some(t) => {
            let t = t.split('.').next().unwrap_or(t);
            let mut p = t.split(':');
            match (p.next(), p.next(), p.next(), p.next()) {
                (Some(h), Some(m), None, None) => (num(h, 2)?, num(m, 2)?, 0),
                (Some(h), Some(m), Some(s), None) => (num(h, 2)?, num(m, 2)?, num(s, 2)?),
                _ => return Err(bad()),
            }
        }
    };
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    Ok(days_from_civil(year, month as u32, day as u32) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// A UTC calendar month, `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i64,
    pub month: u32,
}

impl Month {
    pub fn containing(t: i64) -> Month {
        let (year, month, _) = civil_from_days(t.div_euclid(86_400));
        Month { year, month }
    }

    pub fn parse(text: &str) -> Option<Month> {
        let (y, m) = text.trim().split_once('-')?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let month: u32 = m.parse().ok()?;
        if !(1..=12).contains(&month) {
            return None;
        }
        Some(Month { year: y.parse().ok()?, month })
    }

    /// Unix seconds of the first instant of the month.
    pub fn start(self) -> i64 {
        days_from_civil(self.year, self.month, 1) * 86_400
    }

    /// Unix seconds of the first instant of the next month.
    pub fn end(self) -> i64 {
        self.start() + i64::from(days_in_month(self.year, self.month)) * 86_400
    }

    pub fn days(self) -> u32 {
        days_in_month(self.year, self.month)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso(t: i64) -> String {
    let (y, mo, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3_600, s / 60 % 60, s % 60)
}

pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_895_081; // 2026-11-28T19:44:41Z

    fn params(range: Option<&str>, from: Option<&str>, to: Option<&str>) -> RangeParams {
        RangeParams { range: range.map(Into::into), from: from.map(Into::into), to: to.map(Into::into) }
    }

    #[test]
    fn presets_end_at_the_next_whole_minute() {
        let r = TimeRange::resolve(&params(Some("15m"), None, None), NOW, 400).unwrap();
        assert_eq!(iso(r.to), "2026-11-28T19:45:00Z");
        assert_eq!(r.secs(), 900);
        assert_eq!(r.preset, Some("15m"));
        let default = TimeRange::resolve(&params(None, None, None), NOW, 400).unwrap();
        assert_eq!(default.secs(), 3_600);
        // On a minute boundary the minute that just started is included.
        let r = TimeRange::resolve(&params(Some("1h"), None, None), 1_795_895_040, 400).unwrap();
        assert_eq!(iso(r.to), "2026-11-28T19:45:00Z");
    }

    #[test]
    fn custom_ranges_round_outwards_to_minutes() {
        let r = TimeRange::resolve(&params(Some("7d"), Some("2026-11-20T10:00:30Z"), Some("2026-11-20 10:30:01")), NOW, 400)
            .unwrap();
        assert_eq!((iso(r.from), iso(r.to)), ("2026-11-20T10:00:00Z".into(), "2026-11-20T10:31:00Z".into()));
        assert_eq!(r.preset, None);
        let r = TimeRange::resolve(&params(None, Some("1795887000"), None), NOW, 400).unwrap();
        assert_eq!(r.to, 1_795_895_100);
        assert_eq!(TimeRange::resolve(&params(None, Some("2026-11-20"), Some("2026-11-21")), NOW, 400).unwrap().secs(), 86_400);
    }

    #[test]
    fn bad_ranges_are_errors_not_guesses() {
        let err = |p| TimeRange::resolve(&p, NOW, 31).unwrap_err();
        assert_eq!(err(params(Some("2h"), None, None)), RangeError::UnknownPreset("2h".into()));
        assert!(matches!(err(params(None, Some("yesterday"), None)), RangeError::BadTime(_)));
        assert!(matches!(err(params(None, Some("2026-02-30"), None)), RangeError::BadTime(_)));
        assert!(matches!(err(params(None, Some("2026-11-20T25:00"), None)), RangeError::BadTime(_)));
        assert!(matches!(err(params(None, Some("'; DROP TABLE x; --"), None)), RangeError::BadTime(_)));
        assert_eq!(err(params(None, Some("2026-11-21"), Some("2026-11-20"))), RangeError::Empty);
        assert_eq!(err(params(None, Some("2026-01-01"), Some("2026-11-20"))), RangeError::TooLong(31));
        assert_eq!(err(params(None, None, Some("2026-11-20"))), RangeError::ToWithoutFrom);
    }

    #[test]
    fn steps_keep_charts_under_their_point_budget() {
        let step = |secs: i64| TimeRange { from: 0, to: secs, preset: None }.step(MAX_POINTS);
        assert_eq!(step(900), 60);
        assert_eq!(step(3_600), 60);
        assert_eq!(step(21_600), 60);
        assert_eq!(step(86_400), 300);
        assert_eq!(step(604_800), 900);
        assert_eq!(step(2_592_000), 3_600);
        let r = TimeRange { from: 0, to: 150, preset: None };
        assert_eq!(r.buckets(60).collect::<Vec<_>>(), vec![0, 60, 120]);
        assert_eq!(r.bucket_len(120, 60), 30);
    }

    #[test]
    fn months() {
        let m = Month::containing(NOW);
        assert_eq!(m.to_string(), "2026-11");
        assert_eq!(iso(m.start()), "2026-11-01T00:00:00Z");
        assert_eq!(iso(m.end()), "2026-12-01T00:00:00Z");
        assert_eq!(Month::parse("2024-02").unwrap().days(), 29);
        assert_eq!(Month::parse("2026-13"), None);
        assert_eq!(Month::parse("26-1"), None);
        for days in [-800_000, -1, 0, 1, 20_000, 3_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}

//! nginx timestamps to UTC Unix milliseconds, with the civil-date arithmetic done here.
//!
//! Contract:
//! - `$time_local` `20/Nov/2026:16:15:39 +0800` (English month abbreviation as nginx writes it),
//!   `$time_iso8601` `2026-11-20T16:15:39+08:00` (also accepted: a `.fff` fraction, `Z`, and
//!   `+hhmm`, which other shippers write), `$msec` `1795162539.123`.
//! - Every component is range-checked (day against the month and leap years, hour 0..=23,
//!   minute and second 0..=59, zone offset up to ±18:00, years 1970..=9999); anything else is
//!   a [`TimeError`].
//! - [`TimeCache`] remembers the last minute it converted per format: consecutive lines share
//!   the minute, so the common case is a 23-byte compare plus two digits.

use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum TimeError {
    #[error("expected dd/Mon/yyyy:hh:mm:ss +hhmm")]
    LocalShape,
    #[error("expected yyyy-mm-ddThh:mm:ss+hh:mm")]
    IsoShape,
    #[error("expected seconds.milliseconds")]
    MsecShape,
    #[error("unknown month")]
    Month,
    #[error("day out of range for the month")]
    Day,
    #[error("hour out of range")]
    Hour,
    #[error("minute out of range")]
    Minute,
    #[error("second out of range")]
    Second,
    #[error("zone offset out of range")]
    Offset,
    #[error("year outside 1970..=9999")]
    Year,
}

const MS_PER_SECOND: i64 = 1000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_DAY: i64 = 86_400 * MS_PER_SECOND;
/// 9999-12-31T23:59:59.999Z
const MAX_MS: i64 = 253_402_300_799_999;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

pub fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digit(raw: &[u8], at: usize) -> Option<u32> {
    let byte = *raw.get(at)?;
    byte.is_ascii_digit().then(|| u32::from(byte - b'0'))
}

fn two_digits(raw: &[u8], at: usize) -> Option<u32> {
    Some(digit(raw, at)? * 10 + digit(raw, at + 1)?)
}

fn four_digits(raw: &[u8], at: usize) -> Option<u32> {
    Some(two_digits(raw, at)? * 100 + two_digits(raw, at + 2)?)
}

fn month_number(name: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    MONTHS.iter().position(|month| &month[..] == name).map(|index| index as u32 + 1)
}

/// A validated local date and time of day, up to the minute, with its zone offset.
struct Minute {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    offset_minutes: i64,
}

impl Minute {
    /// UTC milliseconds at the start of this local minute.
    fn utc_ms(&self) -> Result<i64, TimeError> {
        if !(1970..=9999).contains(&self.year) {
            return Err(TimeError::Year);
        }
        if !(1..=12).contains(&self.month) {
            return Err(TimeError::Month);
        }
        if self.day == 0 || self.day > days_in_month(i64::from(self.year), self.month) {
            return Err(TimeError::Day);
        }
        if self.hour > 23 {
            return Err(TimeError::Hour);
        }
        if self.minute > 59 {
            return Err(TimeError::Minute);
        }
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        let local = days * MS_PER_DAY + i64::from(self.hour * 60 + self.minute) * MS_PER_MINUTE;
        Ok(local - self.offset_minutes * MS_PER_MINUTE)
    }
}

/// `+hhmm` or `+hh:mm` (with `colon`) at `at`; ±18:00 at most.
fn zone_offset(raw: &[u8], at: usize, colon: bool) -> Result<i64, TimeError> {
    let sign = match raw.get(at) {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(TimeError::Offset),
    };
    let minutes_at = if colon { at + 4 } else { at + 3 };
    if colon && raw.get(at + 3) != Some(&b':') {
        return Err(TimeError::Offset);
    }
    let (Some(hours), Some(minutes)) = (two_digits(raw, at + 1), two_digits(raw, minutes_at)) else {
        return Err(TimeError::Offset);
    };
    let total = i64::from(hours * 60 + minutes);
    if minutes > 59 || total > 18 * 60 {
        return Err(TimeError::Offset);
    }
    Ok(sign * total)
}

fn seconds(raw: &[u8], at: usize, shape: TimeError) -> Result<i64, TimeError> {
    let seconds = two_digits(raw, at).ok_or(shape)?;
    if seconds > 59 {
        return Err(TimeError::Second);
    }
    Ok(i64::from(seconds) * MS_PER_SECOND)
}

/// Byte positions in `dd/Mon/yyyy:hh:mm:ss +hhmm`.
const LOCAL_SECONDS: usize = 18;
const LOCAL_ZONE: usize = 21;

fn time_local_minute(raw: &[u8]) -> Result<i64, TimeError> {
    let separators = [(2, b'/'), (6, b'/'), (11, b':'), (14, b':'), (17, b':'), (20, b' ')];
    if raw.len() != 26 || separators.iter().any(|&(at, byte)| raw[at] != byte) {
        return Err(TimeError::LocalShape);
    }
    let shape = TimeError::LocalShape;
    Minute {
        day: two_digits(raw, 0).ok_or(shape)?,
        month: month_number(&raw[3..6]).ok_or(TimeError::Month)?,
        year: four_digits(raw, 7).ok_or(shape)?,
        hour: two_digits(raw, 12).ok_or(shape)?,
        minute: two_digits(raw, 15).ok_or(shape)?,
        offset_minutes: zone_offset(raw, LOCAL_ZONE, false)?,
    }
    .utc_ms()
}

/// `$time_local` to UTC Unix milliseconds.
pub fn parse_time_local(raw: &[u8]) -> Result<i64, TimeError> {
    let minute = time_local_minute(raw)?;
    Ok(minute + seconds(raw, LOCAL_SECONDS, TimeError::LocalShape)?)
}

/// Byte positions in `yyyy-mm-ddThh:mm:ss+hh:mm`.
const ISO_SECONDS: usize = 17;
const ISO_AFTER_SECONDS: usize = 19;

fn iso_minute(raw: &[u8], offset_minutes: i64) -> Result<i64, TimeError> {
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if raw.len() < ISO_AFTER_SECONDS || separators.iter().any(|&(at, byte)| raw[at] != byte) {
        return Err(TimeError::IsoShape);
    }
    let shape = TimeError::IsoShape;
    Minute {
        year: four_digits(raw, 0).ok_or(shape)?,
        month: two_digits(raw, 5).ok_or(shape)?,
        day: two_digits(raw, 8).ok_or(shape)?,
        hour: two_digits(raw, 11).ok_or(shape)?,
        minute: two_digits(raw, 14).ok_or(shape)?,
        offset_minutes,
    }
    .utc_ms()
}

/// Milliseconds in an optional `.fraction` at `at` (`.5` is 500, digits past the third are
/// dropped), and where the fraction ends. A `.` without digits is left unconsumed, so the
/// caller's end-of-input check rejects it.
fn fraction_ms(raw: &[u8], at: usize) -> (i64, usize) {
    if raw.get(at) != Some(&b'.') {
        return (0, at);
    }
    let digits = &raw[at + 1..];
    let count = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if count == 0 {
        return (0, at);
    }
    let ms = (0..3).fold(0, |acc, i| acc * 10 + if i < count { i64::from(digits[i] - b'0') } else { 0 });
    (ms, at + 1 + count)
}

/// `$time_iso8601` to UTC Unix milliseconds.
pub fn parse_time_iso8601(raw: &[u8]) -> Result<i64, TimeError> {
    let (fraction, zone_at) = fraction_ms(raw, ISO_AFTER_SECONDS);
    let offset = match raw.get(zone_at) {
        Some(b'Z') if raw.len() == zone_at + 1 => 0,
        Some(_) if raw.len() == zone_at + 6 => zone_offset(raw, zone_at, true)?,
        Some(_) if raw.len() == zone_at + 5 => zone_offset(raw, zone_at, false)?,
        _ => return Err(TimeError::IsoShape),
    };
    let minute = iso_minute(raw, offset)?;
    Ok(minute + seconds(raw, ISO_SECONDS, TimeError::IsoShape)? + fraction)
}

/// `$msec` (seconds since the epoch with a millisecond fraction) to Unix milliseconds.
pub fn parse_msec(raw: &[u8]) -> Result<i64, TimeError> {
    let digits = raw.iter().take_while(|b| b.is_ascii_digit()).count();
    // 12 digits reach past year 9999; more could overflow.
    if digits == 0 || digits > 12 {
        return Err(TimeError::MsecShape);
    }
    let seconds = raw[..digits].iter().fold(0i64, |acc, &b| acc * 10 + i64::from(b - b'0'));
    let (fraction, end) = fraction_ms(raw, digits);
    if end != raw.len() {
        return Err(TimeError::MsecShape);
    }
    let ms = seconds * MS_PER_SECOND + fraction;
    if ms > MAX_MS {
        return Err(TimeError::Year);
    }
    Ok(ms)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (inverse of
/// [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Local civil time of `utc_ms` at `offset_minutes` east of UTC:
/// (year, month, day, hour, minute, second).
fn local_civil(utc_ms: i64, offset_minutes: i32) -> (i64, u32, u32, i64, i64, i64) {
    let local_seconds = utc_ms.div_euclid(MS_PER_SECOND) + i64::from(offset_minutes) * 60;
    let (year, month, day) = civil_from_days(local_seconds.div_euclid(86_400));
    let second_of_day = local_seconds.rem_euclid(86_400);
    (year, month, day, second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60)
}

fn sign_of(offset_minutes: i32) -> char {
    if offset_minutes < 0 {
        '-'
    } else {
        '+'
    }
}

/// `utc_ms` as nginx writes `$time_local` in a zone `offset_minutes` east of UTC (for
/// generators and tests; the reverse of [`parse_time_local`]).
pub fn format_time_local(utc_ms: i64, offset_minutes: i32) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (year, month, day, hour, minute, second) = local_civil(utc_ms, offset_minutes);
    let name = MONTHS[(month as usize).saturating_sub(1) % 12];
    let offset = offset_minutes.unsigned_abs();
    format!("{day:02}/{name}/{year}:{hour:02}:{minute:02}:{second:02} {}{:02}{:02}", sign_of(offset_minutes), offset / 60, offset % 60)
}

/// `utc_ms` as nginx writes `$time_iso8601` in a zone `offset_minutes` east of UTC.
pub fn format_time_iso8601(utc_ms: i64, offset_minutes: i32) -> String {
    let (year, month, day, hour, minute, second) = local_civil(utc_ms, offset_minutes);
    let offset = offset_minutes.unsigned_abs();
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{}{:02}:{:02}", sign_of(offset_minutes), offset / 60, offset % 60)
}

/// `utc_ms` as nginx writes `$msec`.
pub fn format_msec(utc_ms: i64) -> String {
    format!("{}.{:03}", utc_ms.div_euclid(MS_PER_SECOND), utc_ms.rem_euclid(MS_PER_SECOND))
}

/// The last minute converted, keyed by the bytes that determine it.
#[derive(Clone, Debug)]
struct CachedMinute<const DATE: usize> {
    date: [u8; DATE],
    zone: [u8; 6],
    utc_ms: i64,
}

impl<const DATE: usize> CachedMinute<DATE> {
    fn new(date: &[u8], zone: &[u8], utc_ms: i64) -> Option<Self> {
        Some(CachedMinute { date: date.try_into().ok()?, zone: zone.try_into().ok()?, utc_ms })
    }

    /// The cached minute if `date` and `zone` are the cached ones. Compared as arrays, which
    /// the compiler does inline, rather than slices (a memcmp call).
    fn get(cached: &Option<Self>, date: &[u8], zone: &[u8]) -> Option<i64> {
        let cached = cached.as_ref()?;
        let date: &[u8; DATE] = date.try_into().ok()?;
        let zone: &[u8; 6] = zone.try_into().ok()?;
        (cached.date == *date && cached.zone == *zone).then_some(cached.utc_ms)
    }
}

/// Remembers the last `$time_local` / `$time_iso8601` minute converted.
#[derive(Clone, Debug, Default)]
pub struct TimeCache {
    local: Option<CachedMinute<17>>,
    iso: Option<CachedMinute<16>>,
}

impl TimeCache {
    /// [`parse_time_local`], reusing the previous line's minute when it is the same.
    pub fn time_local(&mut self, raw: &[u8]) -> Result<i64, TimeError> {
        if raw.len() != 26 || raw[17] != b':' {
            return Err(TimeError::LocalShape);
        }
        let (date, zone) = (&raw[..17], &raw[20..26]);
        let minute = match CachedMinute::get(&self.local, date, zone) {
            Some(utc_ms) => utc_ms,
            None => {
                let utc_ms = time_local_minute(raw)?;
                self.local = CachedMinute::new(date, zone, utc_ms);
                utc_ms
            }
        };
        Ok(minute + seconds(raw, LOCAL_SECONDS, TimeError::LocalShape)?)
    }

    /// [`parse_time_iso8601`], reusing the previous line's minute for nginx's exact layout.
    pub fn time_iso8601(&mut self, raw: &[u8]) -> Result<i64, TimeError> {
        if raw.len() != 25 || raw[16] != b':' || !matches!(raw[ISO_AFTER_SECONDS], b'+' | b'-') {
            return parse_time_iso8601(raw);
        }
        let (date, zone) = (&raw[..16], &raw[19..25]);
        let minute = match CachedMinute::get(&self.iso, date, zone) {
            Some(utc_ms) => utc_ms,
            None => {
                let utc_ms = iso_minute(raw, zone_offset(raw, ISO_AFTER_SECONDS, true)?)?;
                self.iso = CachedMinute::new(date, zone, utc_ms);
                utc_ms
            }
        };
        Ok(minute + seconds(raw, ISO_SECONDS, TimeError::IsoShape)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-20T08:15:39Z, the first sample line's request time.
    const SAMPLE_MS: i64 = 1_795_162_539_000;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 20), 20_777);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        // Consecutive days stay consecutive across every month end of a 400-year cycle.
        let mut expected = days_from_civil(2000, 1, 1);
        for year in 2000..2400 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(year, month, day), expected, "{year}-{month}-{day}");
                    expected += 1;
                }
            }
        }
        assert_eq!(expected - days_from_civil(2000, 1, 1), 146_097);
    }

    #[test]
    fn civil_from_days_inverts_days_from_civil() {
        for days in (-800_000..3_000_000).step_by(997).chain([0, -1, 20_777, 11_016, 11_017]) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days, "{year}-{month}-{day}");
        }
        assert_eq!(civil_from_days(20_777), (2026, 11, 20));
    }

    #[test]
    fn formatting_round_trips() {
        assert_eq!(format_time_local(SAMPLE_MS, 480), "20/Nov/2026:16:15:39 +0800");
        assert_eq!(format_time_local(SAMPLE_MS, -345), "20/Nov/2026:02:30:39 -0545");
        assert_eq!(format_time_iso8601(SAMPLE_MS, 480), "2026-11-20T16:15:39+08:00");
        assert_eq!(format_msec(SAMPLE_MS + 7), "1795162539.007");
        for offset in [-1080, -345, 0, 330, 345, 1080] {
            for ms in [0, SAMPLE_MS, 951_782_400_000, 4_107_542_399_000] {
                let ms = ms + 86_400_000;
                assert_eq!(parse_time_local(format_time_local(ms, offset).as_bytes()), Ok(ms), "{offset} {ms}");
                assert_eq!(parse_time_iso8601(format_time_iso8601(ms, offset).as_bytes()), Ok(ms), "{offset} {ms}");
            }
        }
    }

    #[test]
    fn leap_years() {
        assert!(is_leap_year(2024) && is_leap_year(2000) && is_leap_year(2400));
        assert!(!is_leap_year(2026) && !is_leap_year(1900) && !is_leap_year(2100));
        assert_eq!(days_in_month(2028, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
    }

    #[test]
    fn time_local_with_zones() {
        assert_eq!(parse_time_local(b"20/Nov/2026:16:15:39 +0800"), Ok(SAMPLE_MS));
        assert_eq!(parse_time_local(b"20/Nov/2026:08:15:39 +0000"), Ok(SAMPLE_MS));
        assert_eq!(parse_time_local(b"20/Nov/2026:03:15:39 -0500"), Ok(SAMPLE_MS));
        // Nepal's +05:45 and India's +05:30: minutes in the offset matter.
        assert_eq!(parse_time_local(b"20/Nov/2026:14:00:39 +0545"), Ok(SAMPLE_MS));
        assert_eq!(parse_time_local(b"20/Nov/2026:13:45:39 +0530"), Ok(SAMPLE_MS));
        // The zone moves the UTC date back across a year end.
        assert_eq!(parse_time_local(b"01/Jan/2027:07:00:00 +0800"), Ok(days_from_civil(2026, 12, 31) * MS_PER_DAY + 23 * 3_600_000));
        assert_eq!(parse_time_local(b"01/Jan/1970:00:00:00 +0000"), Ok(0));
    }

    #[test]
    fn time_local_validates_ranges() {
        assert_eq!(parse_time_local(b"29/Feb/2028:00:00:00 +0000"), Ok(days_from_civil(2028, 2, 29) * MS_PER_DAY));
        assert_eq!(parse_time_local(b"29/Feb/2026:00:00:00 +0000"), Err(TimeError::Day));
        assert_eq!(parse_time_local(b"31/Apr/2026:00:00:00 +0000"), Err(TimeError::Day));
        assert_eq!(parse_time_local(b"00/Apr/2026:00:00:00 +0000"), Err(TimeError::Day));
        assert_eq!(parse_time_local(b"20/nov/2026:16:15:39 +0800"), Err(TimeError::Month));
        assert_eq!(parse_time_local(b"20/Nov/2026:24:15:39 +0800"), Err(TimeError::Hour));
        assert_eq!(parse_time_local(b"20/Nov/2026:16:60:39 +0800"), Err(TimeError::Minute));
        assert_eq!(parse_time_local(b"20/Nov/2026:16:15:60 +0800"), Err(TimeError::Second));
        assert_eq!(parse_time_local(b"20/Nov/2026:16:15:39 +1900"), Err(TimeError::Offset));
        assert_eq!(parse_time_local(b"20/Nov/2026:16:15:39 +0860"), Err(TimeError::Offset));
        assert_eq!(parse_time_local(b"20/Nov/2026:16:15:39 0800"), Err(TimeError::LocalShape));
        assert_eq!(parse_time_local(b"20/Nov/1969:16:15:39 +0800"), Err(TimeError::Year));
        assert_eq!(parse_time_local(b"20/Nov/2026:16:15:3x +0800"), Err(TimeError::LocalShape));
        assert_eq!(parse_time_local(b"2026-11-20T16:15:39+08:00"), Err(TimeError::LocalShape));
        assert_eq!(parse_time_local(b""), Err(TimeError::LocalShape));
    }

    #[test]
    fn iso8601_variants() {
        assert_eq!(parse_time_iso8601(b"2026-11-20T16:15:39+08:00"), Ok(SAMPLE_MS));
        assert_eq!(parse_time_iso8601(b"2026-11-20T02:30:39-05:45"), Ok(SAMPLE_MS));
        assert_eq!(parse_time_iso8601(b"2026-11-20T08:15:39Z"), Ok(SAMPLE_MS));
        assert_eq!(parse_time_iso8601(b"2026-11-20T08:15:39.5Z"), Ok(SAMPLE_MS + 500));
        assert_eq!(parse_time_iso8601(b"2026-11-20T08:15:39.1234Z"), Ok(SAMPLE_MS + 123));
        assert_eq!(parse_time_iso8601(b"2026-11-20T16:15:39.042+0800"), Ok(SAMPLE_MS + 42));
        assert_eq!(parse_time_iso8601(b"2026-11-20T16:15:39"), Err(TimeError::IsoShape));
        assert_eq!(parse_time_iso8601(b"2026-11-20T16:15:39.+08:00"), Err(TimeError::IsoShape));
        assert_eq!(parse_time_iso8601(b"2026-13-20T16:15:39+08:00"), Err(TimeError::Month));
        assert_eq!(parse_time_iso8601(b"2026-11-20 16:15:39+08:00"), Err(TimeError::IsoShape));
        assert_eq!(parse_time_iso8601(b"2026-11-20T16:15:39+08-00"), Err(TimeError::Offset));
    }

    #[test]
    fn msec() {
        assert_eq!(parse_msec(b"1795162539.123"), Ok(SAMPLE_MS + 123));
        assert_eq!(parse_msec(b"1795162539"), Ok(SAMPLE_MS));
        assert_eq!(parse_msec(b"1795162539.1"), Ok(SAMPLE_MS + 100));
        assert_eq!(parse_msec(b"0.000"), Ok(0));
        assert_eq!(parse_msec(b"253402300799.999"), Ok(MAX_MS));
        assert_eq!(parse_msec(b"253402300800.000"), Err(TimeError::Year));
        assert_eq!(parse_msec(b"9999999999999"), Err(TimeError::MsecShape));
        assert_eq!(parse_msec(b"-1.000"), Err(TimeError::MsecShape));
        assert_eq!(parse_msec(b"1795162539."), Err(TimeError::MsecShape));
        assert_eq!(parse_msec(b"1795162539.12x"), Err(TimeError::MsecShape));
        assert_eq!(parse_msec(b""), Err(TimeError::MsecShape));
    }

    #[test]
    fn cache_gives_the_same_answers_as_the_plain_parsers() {
        let mut cache = TimeCache::default();
        let inputs: [&[u8]; 7] = [
            b"20/Nov/2026:16:15:39 +0800",
            b"20/Nov/2026:16:15:40 +0800",
            b"20/Nov/2026:16:15:61 +0800",
            b"20/Nov/2026:16:15:41 +0900",
            b"20/Nov/2026:16:16:00 +0800",
            b"29/Feb/2026:16:16:00 +0800",
            b"20/Nov/2026:16:16:0",
        ];
        for _ in 0..2 {
            for raw in inputs {
                assert_eq!(cache.time_local(raw), parse_time_local(raw), "{}", raw.escape_ascii());
            }
        }
        let isos: [&[u8]; 5] =
            [b"2026-11-20T16:15:39+08:00", b"2026-11-20T16:15:59+08:00", b"2026-11-20T16:15:59+09:00", b"2026-11-20T08:15:39.1234Z", b"2026-11-20T16:15:99+08:00"];
        for _ in 0..2 {
            for raw in isos {
                assert_eq!(cache.time_iso8601(raw), parse_time_iso8601(raw), "{}", raw.escape_ascii());
            }
        }
    }
}

//! Civil dates without a date library: the proleptic Gregorian calendar over Unix time, and the
//! three timestamp shapes the generator writes. Each `push_*` appends to a reused `String` and
//! never allocates beyond growing it.
//!
//! - `$time_local`   `20/Nov/2026:16:15:39 +0800` (nginx `"%02d/%s/%d:%02d:%02d:%02d %c%02i%02i"`)
//! - `$time_iso8601` `2026-11-20T16:15:39+08:00`  (nginx `"%4d-%02d-%02dT%02d:%02d:%02d%c%02i:%02i"`)
//! - Filebeat `@timestamp` `2026-11-20T08:15:39.412Z` (UTC, milliseconds)
//!
//! Both nginx variables have whole-second resolution: the millisecond part of an event time is
//! dropped (floored, also before 1970).

use super::render::{push_2, push_3, push_u64};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A broken-down civil time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

/// Days since 1970-01-01 to (year, month, day). Howard Hinnant's `civil_from_days`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) to days since 1970-01-01. Inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 }; // [0, 11]
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Unix milliseconds to UTC civil time.
pub fn civil_from_unix_ms(ms: i64) -> Civil {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: sod / 3600,
        minute: sod / 60 % 60,
        second: sod % 60,
        millis: ms.rem_euclid(1000) as u32,
    }
}

fn push_year(out: &mut String, year: i64) {
    if (0..10_000).contains(&year) {
        push_2(out, (year / 100) as u32);
        push_2(out, (year % 100) as u32);
    } else {
        // Out of any realistic range; keep it readable rather than exact.
        if year < 0 {
            out.push('-');
        }
        push_u64(out, year.unsigned_abs());
    }
}

fn push_zone(out: &mut String, tz_offset_minutes: i32, colon: bool) {
    out.push(if tz_offset_minutes < 0 { '-' } else { '+' });
    let abs = tz_offset_minutes.unsigned_abs();
    push_2(out, abs / 60);
    if colon {
        out.push(':');
    }
    push_2(out, abs % 60);
}

/// nginx `$time_local`: `20/Nov/2026:16:15:39 +0800`.
pub fn push_time_local(out: &mut String, unix_ms: i64, tz_offset_minutes: i32) {
    let c = civil_from_unix_ms(unix_ms + i64::from(tz_offset_minutes) * 60_000);
    push_2(out, c.day);
    out.push('/');
    out.push_str(MONTHS[c.month as usize - 1]);
    out.push('/');
    push_year(out, c.year);
    out.push(':');
    push_2(out, c.hour);
    out.push(':');
    push_2(out, c.minute);
    out.push(':');
    push_2(out, c.second);
    out.push(' ');
    push_zone(out, tz_offset_minutes, false);
}

/// nginx `$time_iso8601`: `2026-11-20T16:15:39+08:00`.
pub fn push_time_iso8601(out: &mut String, unix_ms: i64, tz_offset_minutes: i32) {
    let c = civil_from_unix_ms(unix_ms + i64::from(tz_offset_minutes) * 60_000);
    push_date_time(out, &c);
    push_zone(out, tz_offset_minutes, true);
}

/// Filebeat's `@timestamp`: `2026-11-20T08:15:39.412Z`.
pub fn push_utc_millis(out: &mut String, unix_ms: i64) {
    let c = civil_from_unix_ms(unix_ms);
    push_date_time(out, &c);
    out.push('.');
    push_3(out, c.millis);
    out.push('Z');
}

/// `$time_local` or `$time_iso8601` of recent seconds, rendered once each: consecutive lines
/// mostly share a second. Direct-mapped by the second, so a few seconds of disorder still hit.
pub struct TimeCache {
    iso8601: bool,
    tz_offset_minutes: i32,
    slots: [(i64, String); 4],
}

impl TimeCache {
    pub fn new(iso8601: bool, tz_offset_minutes: i32) -> Self {
        TimeCache {
            iso8601,
            tz_offset_minutes,
            slots: std::array::from_fn(|_| (i64::MIN, String::new())),
        }
    }

    #[inline]
    pub fn push(&mut self, out: &mut String, unix_ms: i64) {
        let sec = unix_ms.div_euclid(1000);
        let slot = &mut self.slots[(sec & 3) as usize];
        if slot.0 != sec {
            slot.1.clear();
            if self.iso8601 {
                push_time_iso8601(&mut slot.1, sec * 1000, self.tz_offset_minutes);
            } else {
                push_time_local(&mut slot.1, sec * 1000, self.tz_offset_minutes);
            }
            slot.0 = sec;
        }
        out.push_str(&slot.1);
    }
}

fn push_date_time(out: &mut String, c: &Civil) {
    push_year(out, c.year);
    out.push('-');
    push_2(out, c.month);
    out.push('-');
    push_2(out, c.day);
    out.push('T');
    push_2(out, c.hour);
    out.push(':');
    push_2(out, c.minute);
    out.push(':');
    push_2(out, c.second);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(ms: i64, tz: i32) -> String {
        let mut s = String::new();
        push_time_local(&mut s, ms, tz);
        s
    }

    fn iso(ms: i64, tz: i32) -> String {
        let mut s = String::new();
        push_time_iso8601(&mut s, ms, tz);
        s
    }

    fn unix_ms(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
        (days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * 1000
    }

    #[test]
    fn epoch_and_known_instants() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        // 2026-11-20T08:15:39Z, the samples' instant.
        let t = unix_ms(2026, 11, 20, 8, 15, 39);
        assert_eq!(t, 1_795_162_539_000);
        assert_eq!(local(t + 412, 480), "20/Nov/2026:16:15:39 +0800");
        assert_eq!(iso(t + 412, 480), "2026-11-20T16:15:39+08:00");
        let mut s = String::new();
        push_utc_millis(&mut s, t + 412);
        assert_eq!(s, "2026-11-20T08:15:39.412Z");
    }

    #[test]
    fn zone_conversion_crosses_day_month_and_year() {
        // 2026-12-31T20:30:00Z is already 2027 in +0800 and still 2026 in -0530.
        let t = unix_ms(2026, 12, 31, 20, 30, 0);
        assert_eq!(local(t, 480), "01/Jan/2027:04:30:00 +0800");
        assert_eq!(local(t, -330), "31/Dec/2026:15:00:00 -0530");
        assert_eq!(iso(t, -330), "2026-12-31T15:00:00-05:30");
        assert_eq!(local(t, 0), "31/Dec/2026:20:30:00 +0000");
        assert_eq!(iso(t, 0), "2026-12-31T20:30:00+00:00");
        // +0545 (Nepal) and +1400 (Kiribati).
        assert_eq!(local(t, 345), "01/Jan/2027:02:15:00 +0545");
        assert_eq!(local(t, 840), "01/Jan/2027:10:30:00 +1400");
    }

    #[test]
    fn time_cache_matches_direct_rendering() {
        let mut local_cache = TimeCache::new(false, -330);
        let mut iso_cache = TimeCache::new(true, 480);
        let t0 = unix_ms(2028, 2, 28, 23, 59, 50);
        for (i, dt) in [0, 999, 1000, 5, 7000, 3000, 11_000, 1, -1, 4000, 8000]
            .into_iter()
            .enumerate()
        {
            let t = t0 + dt + i as i64;
            let (mut a, mut b) = (String::new(), String::new());
            local_cache.push(&mut a, t);
            iso_cache.push(&mut b, t);
            assert_eq!(a, local(t, -330));
            assert_eq!(b, iso(t, 480));
        }
    }

    #[test]
    fn leap_years() {
        let t = unix_ms(2028, 2, 29, 12, 0, 0);
        assert_eq!(local(t, 0), "29/Feb/2028:12:00:00 +0000");
        assert_eq!(local(t + 12 * 3_600_000, 0), "01/Mar/2028:00:00:00 +0000");
        assert_eq!(
            local(unix_ms(2028, 2, 28, 23, 59, 59), 60),
            "29/Feb/2028:00:59:59 +0100"
        );
        // 2100 is not a leap year, 2000 is.
        assert_eq!(
            civil_from_days(days_from_civil(2100, 2, 28) + 1),
            (2100, 3, 1)
        );
        assert_eq!(
            civil_from_days(days_from_civil(2000, 2, 28) + 1),
            (2000, 2, 29)
        );
        assert_eq!(
            civil_from_days(days_from_civil(2027, 2, 28) + 1),
            (2027, 3, 1)
        );
    }

    #[test]
    fn milliseconds_are_floored_also_before_1970() {
        assert_eq!(local(-1, 0), "31/Dec/1969:23:59:59 +0000");
        assert_eq!(local(999, 0), "01/Jan/1970:00:00:00 +0000");
        let mut s = String::new();
        push_utc_millis(&mut s, -1);
        assert_eq!(s, "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn round_trip_every_day_for_six_centuries() {
        let from = days_from_civil(1700, 1, 1);
        let to = days_from_civil(2300, 12, 31);
        let mut expect = (1700, 1, 1);
        for d in from..=to {
            let got = civil_from_days(d);
            assert_eq!(got, expect, "day {d}");
            assert_eq!(days_from_civil(got.0, got.1, got.2), d);
            let (y, m, dd) = got;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            expect = if dd < len[m as usize - 1] {
                (y, m, dd + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }
}

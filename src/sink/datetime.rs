//! Unix seconds → MySQL `DATETIME` values, converted here instead of by `FROM_UNIXTIME(?)`:
//! that function returns NULL past 2038-01-19 on older servers (a NOT NULL column then fails
//! the whole commit), so a time MySQL cannot store is refused here, typed, and never reaches
//! the server. The value is UTC civil time, which is what `FROM_UNIXTIME` produced in the
//! sessions edgeflow opens (`time_zone = '+00:00'`, see `schema::connection_opts`), so stored
//! values are unchanged.

use dataflows::parse::time::civil_from_days;
use mysql_async::Value;

/// 9999-12-31 23:59:59 UTC: the last second a `DATETIME` holds.
pub const MAX_DATETIME_SECS: u64 = 253_402_300_799;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DatetimeError {
    #[error("Unix time {0} is past 9999-12-31, the end of MySQL's DATETIME range")]
    OutOfRange(u64),
    #[error("a DATETIME column was given {0}, not Unix seconds")]
    NotSeconds(&'static str),
}

/// The `DATETIME` value of Unix second `secs`, UTC.
pub fn datetime(secs: u64) -> Result<Value, DatetimeError> {
    if secs > MAX_DATETIME_SECS {
        return Err(DatetimeError::OutOfRange(secs));
    }
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let second_of_day = secs % 86_400;
    let (hour, minute, second) = (second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60);
    Ok(Value::Date(year as u16, month as u8, day as u8, hour as u8, minute as u8, second as u8, 0))
}

/// Converts a statement parameter holding Unix seconds (or NULL) for a `DATETIME` column.
pub fn datetime_param(value: Value) -> Result<Value, DatetimeError> {
    match value {
        Value::NULL => Ok(Value::NULL),
        Value::UInt(secs) => datetime(secs),
        Value::Int(secs) => u64::try_from(secs).map_err(|_| DatetimeError::NotSeconds("a negative number")).and_then(datetime),
        Value::Date(..) => Ok(value),
        _ => Err(DatetimeError::NotSeconds("a non-integer value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_become_utc_civil_times() {
        assert_eq!(datetime(0), Ok(Value::Date(1970, 1, 1, 0, 0, 0, 0)));
        // 2026-03-01T00:00:00Z and a second before it.
        assert_eq!(datetime(1_772_323_200), Ok(Value::Date(2026, 3, 1, 0, 0, 0, 0)));
        assert_eq!(datetime(1_772_323_199), Ok(Value::Date(2026, 2, 28, 23, 59, 59, 0)));
        // Past FROM_UNIXTIME's old limit (2038-01-19T03:14:07Z): 2040-02-29T12:34:56Z.
        assert_eq!(datetime(2_214_131_696), Ok(Value::Date(2040, 2, 29, 12, 34, 56, 0)));
    }

    #[test]
    fn times_past_the_datetime_range_are_refused() {
        assert_eq!(datetime(MAX_DATETIME_SECS), Ok(Value::Date(9999, 12, 31, 23, 59, 59, 0)));
        assert_eq!(datetime(MAX_DATETIME_SECS + 1), Err(DatetimeError::OutOfRange(MAX_DATETIME_SECS + 1)));
        assert_eq!(datetime_param(Value::from(u64::MAX)), Err(DatetimeError::OutOfRange(u64::MAX)));
    }

    #[test]
    fn parameters_convert_by_type() {
        assert_eq!(datetime_param(Value::NULL), Ok(Value::NULL));
        assert_eq!(datetime_param(Value::Int(60)), Ok(Value::Date(1970, 1, 1, 0, 1, 0, 0)));
        assert!(datetime_param(Value::Int(-1)).is_err());
        assert!(datetime_param(Value::from("x")).is_err());
    }
}

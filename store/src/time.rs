//! The one clock and the one calendar: every "now" and every day number in teiten comes from
//! here. Days are UTC and written as `YYYYMMDD` numbers (the partition key of the day tables,
//! `exchange_log.day`, the digests); the calendar is chrono's.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

/// Seconds in a (UTC, leap-second-free) day.
pub const DAY: i64 = 86_400;

/// Now, in Unix seconds.
pub fn now() -> i64 {
    Utc::now().timestamp()
}

/// Now, in Unix microseconds.
pub fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

/// `YYYYMMDD` of a date.
pub fn date_number(date: NaiveDate) -> u32 {
    // Years 0 to 9999: every date this program handles (years before 1 or after 9999 never
    // reach here: times are u32 seconds or i64 microseconds of the ClickHouse DateTime range).
    let year = u32::try_from(date.year()).unwrap_or(0).min(9999);
    year * 10_000 + date.month() * 100 + date.day()
}

/// The date of a `YYYYMMDD` number, if it is one.
pub fn number_date(day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(
        i32::try_from(day / 10_000).ok()?,
        day / 100 % 100,
        day % 100,
    )
}

/// The UTC date at Unix time `ts` (seconds).
pub fn date_of(ts: i64) -> NaiveDate {
    DateTime::from_timestamp(ts.div_euclid(DAY) * DAY, 0)
        .unwrap_or_default()
        .date_naive()
}

/// The day (`YYYYMMDD`, UTC) of a time in seconds.
pub fn day_number(ts: i64) -> u32 {
    date_number(date_of(ts))
}

/// The day (`YYYYMMDD`, UTC) of a time in microseconds.
pub fn day_of_us(ts_us: i64) -> u32 {
    day_number(ts_us.div_euclid(1_000_000))
}

/// The start (Unix seconds, UTC midnight) of a day given as `YYYYMMDD`; 0 if it is no date.
pub fn day_start(day: u32) -> i64 {
    number_date(day)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(0, |t| t.and_utc().timestamp())
}

/// UTC midnight at or before `ts`.
pub fn midnight(ts: i64) -> i64 {
    ts.div_euclid(DAY) * DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers() {
        assert_eq!(day_number(0), 19_700_101);
        assert_eq!(day_number(20_413 * DAY), 20_251_121);
        assert_eq!(day_number(19_782 * DAY + 86_399), 20_240_229);
        assert_eq!(day_number(-1), 19_691_231);
        assert_eq!(day_of_us(1_709_164_800_000_000), 20_240_229);
    }

    #[test]
    fn day_numbers_round_trip() {
        for ts in [0, 951_782_400, 1_709_164_800, 1_795_306_560, 4_102_444_800] {
            assert_eq!(day_start(day_number(ts)), midnight(ts), "{ts}");
        }
        assert_eq!(day_start(20_240_229), 1_709_164_800);
        assert_eq!(day_start(20_230_229), 0, "no such date");
        assert_eq!(
            number_date(20_251_121),
            NaiveDate::from_ymd_opt(2025, 11, 21)
        );
    }

    #[test]
    fn clock() {
        let (s, us) = (now(), now_us());
        assert!(s > 1_700_000_000 && (us / 1_000_000 - s).abs() <= 1);
    }
}

//! Fast, allocation-free date and time parsing for the line parser: RFC 3339 times, epoch
//! milliseconds, and the pieces of an RFC 3164 syslog date (`Nov 23 18:05:00`).
//!
//! Times are `(seconds, nanoseconds)` since the Unix epoch, UTC, nanoseconds in `0..1e9`.
//! Hand-written rather than `time::OffsetDateTime::parse` because syslog headers and
//! `event_time` columns are parsed for every line.

/// Seconds and nanoseconds since the Unix epoch.
pub(crate) type Time = (i64, i32);

const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a time given in seconds since the Unix epoch (UTC).
pub(crate) fn year_of(seconds: i64) -> i64 {
    let z = seconds.div_euclid(SECS_PER_DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    yoe + era * 400 + i64::from(mp >= 10)
}

/// Number of days in `month` (1-12) of `year`.
pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Seconds since the epoch of a UTC date and time whose fields are already range-checked,
/// `None` when the day does not exist in that month.
pub(crate) fn to_epoch(year: i64, month: u32, day: u32, hms: (u32, u32, u32)) -> Option<i64> {
    (day >= 1 && day <= days_in_month(year, month)).then(|| {
        days_from_civil(year, month, day) * SECS_PER_DAY
            + i64::from(hms.0) * 3600
            + i64::from(hms.1) * 60
            + i64::from(hms.2)
    })
}

/// The value of the two ASCII digits at `b[i]` and `b[i + 1]`.
#[inline]
fn two_digits<const N: usize>(b: &[u8; N], i: usize) -> Option<u32> {
    let (hi, lo) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
    (hi < 10 && lo < 10).then(|| u32::from(hi) * 10 + u32::from(lo))
}

/// `HH:MM:SS` at the start of `b`, range-checked (no leap second).
pub(crate) fn hms(b: &[u8]) -> Option<(u32, u32, u32)> {
    let b: &[u8; 8] = b.get(..8)?.try_into().ok()?;
    let (h, m, s) = (two_digits(b, 0)?, two_digits(b, 3)?, two_digits(b, 6)?);
    (b[2] == b':' && b[5] == b':' && h < 24 && m < 60 && s < 60).then_some((h, m, s))
}

/// An optional fraction of a second (`.123`) at the start of `b`: nanoseconds and bytes used.
/// Digits beyond the ninth are read and dropped.
pub(crate) fn fraction(b: &[u8]) -> Option<(i32, usize)> {
    let Some((b'.', digits)) = b.split_first() else {
        return Some((0, 0));
    };
    let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let mut nanos = 0i32;
    for i in 0..9 {
        nanos = nanos * 10 + digits.get(i).filter(|_| i < n).map_or(0, |&d| i32::from(d - b'0'));
    }
    Some((nanos, 1 + n))
}

/// An RFC 3339 time at the start of `b` (`2026-11-23T18:05:00.123456+01:00`, `T`/`t`, `Z`/`z`,
/// any number of fractional digits): the time and the bytes it used.
pub(crate) fn rfc3339_prefix(b: &[u8]) -> Option<(Time, usize)> {
    let head: &[u8; 19] = b.get(..19)?.try_into().ok()?;
    let year = two_digits(head, 0)? * 100 + two_digits(head, 2)?;
    let (month, day) = (two_digits(head, 5)?, two_digits(head, 8)?);
    if head[4] != b'-' || head[7] != b'-' || !matches!(head[10], b'T' | b't') || !(1..=12).contains(&month) {
        return None;
    }
    let hms = hms(&head[11..])?;
    let (nanos, frac_len) = fraction(&b[19..])?;
    let mut pos = 19 + frac_len;
    let offset = match *b.get(pos)? {
        b'Z' | b'z' => {
            pos += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let off: &[u8; 5] = b.get(pos + 1..pos + 6)?.try_into().ok()?;
            let (oh, om) = (two_digits(off, 0)?, two_digits(off, 3)?);
            if off[2] != b':' || oh > 23 || om > 59 {
                return None;
            }
            pos += 6;
            let secs = i64::from(oh * 3600 + om * 60);
            if sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let secs = to_epoch(i64::from(year), month, day, hms)? - offset;
    Some(((secs, nanos), pos))
}

/// A whole string that is an RFC 3339 time.
pub(crate) fn rfc3339(s: &str) -> Option<Time> {
    rfc3339_prefix(s.as_bytes()).and_then(|(t, used)| (used == s.len()).then_some(t))
}

/// A time written as RFC 3339 text or as integer milliseconds since the Unix epoch.
pub(crate) fn rfc3339_or_millis(s: &str) -> Option<Time> {
    match s.as_bytes().get(4) {
        Some(b'-') => rfc3339(s),
        _ => s.parse::<i64>().ok().map(from_millis),
    }
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_millis(ms: i64) -> Time {
    (ms.div_euclid(1000), (ms.rem_euclid(1000) * 1_000_000) as i32)
}

/// The month (1-12) of an English three-letter abbreviation (`Jan`, case as syslog writes it).
pub(crate) fn month_abbrev(b: &[u8]) -> Option<u32> {
    Some(match b.get(..3)? {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

/// Remembers the last computations of [`infer_year`], which consecutive lines of a file almost
/// always share: the year of the read time's day, and the day number of the last date.
#[derive(Debug, Clone, Default)]
pub(crate) struct DateCache {
    read_day: Option<(i64, i64)>,
    date: Option<((i64, u32, u32), Option<i64>)>,
}

impl DateCache {
    /// [`year_of`], remembered per day.
    fn year_of(&mut self, seconds: i64) -> i64 {
        let day = seconds.div_euclid(SECS_PER_DAY);
        match self.read_day {
            Some((d, year)) if d == day => year,
            _ => {
                let year = year_of(seconds);
                self.read_day = Some((day, year));
                year
            }
        }
    }

    /// [`to_epoch`], with the day number of the last date remembered.
    fn epoch(&mut self, year: i64, month: u32, day: u32, hms: (u32, u32, u32)) -> Option<i64> {
        let days = match self.date {
            Some((date, days)) if date == (year, month, day) => days,
            _ => {
                let days = to_epoch(year, month, day, (0, 0, 0)).map(|t| t / SECS_PER_DAY);
                self.date = Some(((year, month, day), days));
                days
            }
        };
        days.map(|d| d * SECS_PER_DAY + i64::from(hms.0) * 3600 + i64::from(hms.1) * 60 + i64::from(hms.2))
    }
}

/// The time of a year-less date (RFC 3164) seen at `read_time`: the latest of the years around
/// `read_time`'s that does not put it more than one day after `read_time`. So a December line
/// read in January belongs to the previous year, and a line stamped just after midnight on
/// New Year by a clock slightly ahead belongs to the next one. `None` when the date exists in
/// none of those years (29 February).
pub(crate) fn infer_year(
    cache: &mut DateCache,
    read_time: i64,
    month: u32,
    day: u32,
    hms: (u32, u32, u32),
) -> Option<i64> {
    let year = cache.year_of(read_time);
    let limit = read_time + SECS_PER_DAY;
    match cache.epoch(year, month, day, hms) {
        // The date of the next year is at least 365 days later, so it can be the one only when
        // this year's is that far in the past (rare: one computation in the common case).
        Some(t) if t <= limit => Some(
            Some(t)
                .filter(|t| t + 365 * SECS_PER_DAY <= limit)
                .and_then(|_| to_epoch(year + 1, month, day, hms))
                .filter(|&next| next <= limit)
                .unwrap_or(t),
        ),
        // Too late this year (or 29 February of a common year): then it is not next year's.
        _ => to_epoch(year - 1, month, day, hms).filter(|&t| t <= limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn infer(read_time: i64, month: u32, day: u32, hms: (u32, u32, u32)) -> Option<i64> {
        infer_year(&mut DateCache::default(), read_time, month, day, hms)
    }

    #[test]
    fn rfc3339_forms() {
        let t = 1_795_457_100; // 2026-11-23T18:05:00Z
        assert_eq!(rfc3339("2026-11-23T18:05:00Z"), Some((t, 0)));
        assert_eq!(rfc3339("2026-11-23t18:05:00z"), Some((t, 0)));
        assert_eq!(rfc3339("2026-11-23T19:05:00.5+01:00"), Some((t, 500_000_000)));
        assert_eq!(rfc3339("2026-11-23T17:35:00.123456789-00:30"), Some((t, 123_456_789)));
        assert_eq!(rfc3339("2026-11-23T18:05:00.1234567891Z"), Some((t, 123_456_789)));
        assert_eq!(rfc3339("1969-12-31T23:59:59.25Z"), Some((-1, 250_000_000)));
        for bad in [
            "2026-11-23 18:05:00Z",
            "2026-11-23T18:05:00",
            "2026-11-23T18:05:00.Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T18:60:00Z",
            "2026-11-23T18:05:00+1:00",
            "2026-11-23T18:05:00Zjunk",
            "2026-11-23T18:05",
            "",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
        assert_eq!(rfc3339("2028-02-29T00:00:00Z").map(|t| t.0), Some(1_835_395_200));
    }

    #[test]
    fn millis_and_text() {
        assert_eq!(rfc3339_or_millis("1795457100123"), Some((1_795_457_100, 123_000_000)));
        assert_eq!(rfc3339_or_millis("-1"), Some((-1, 999_000_000)));
        assert_eq!(rfc3339_or_millis("2026-11-23T18:05:00Z"), Some((1_795_457_100, 0)));
        assert_eq!(rfc3339_or_millis("soon"), None);
        assert_eq!(rfc3339_or_millis("1.5"), None);
    }

    #[test]
    fn year_inference() {
        let jan_1_2027 = rfc3339("2027-01-01T00:00:10Z").expect("t").0;
        let dec_31 = infer(jan_1_2027, 12, 31, (23, 59, 59));
        assert_eq!(dec_31, rfc3339("2026-12-31T23:59:59Z").map(|t| t.0));
        let jan_2 = infer(jan_1_2027, 1, 2, (0, 0, 10));
        assert_eq!(jan_2, rfc3339("2027-01-02T00:00:10Z").map(|t| t.0), "exactly one day ahead is kept");
        let jan_2_late = infer(jan_1_2027, 1, 2, (0, 0, 11));
        assert_eq!(jan_2_late, rfc3339("2026-01-02T00:00:11Z").map(|t| t.0));
        let dec_31_2026 = rfc3339("2026-12-31T23:59:58Z").expect("t").0;
        let new_year = infer(dec_31_2026, 1, 1, (0, 0, 1));
        assert_eq!(new_year, rfc3339("2027-01-01T00:00:01Z").map(|t| t.0));
        assert_eq!(infer(dec_31_2026, 2, 29, (0, 0, 0)), None);
        let in_2028 = rfc3339("2028-03-01T00:00:00Z").expect("t").0;
        assert_eq!(infer(in_2028, 2, 29, (1, 2, 3)), rfc3339("2028-02-29T01:02:03Z").map(|t| t.0));
    }

    proptest! {
        #[test]
        fn infer_year_picks_the_latest_year_not_more_than_a_day_ahead(
            read_time in 0i64..4_102_444_800,
            month in 1u32..=12,
            day in 1u32..=31,
            h in 0u32..24,
        ) {
            let year = year_of(read_time);
            let naive = [year + 1, year, year - 1]
                .into_iter()
                .filter_map(|y| to_epoch(y, month, day, (h, 0, 0)))
                .find(|&t| t <= read_time + SECS_PER_DAY);
            prop_assert_eq!(infer(read_time, month, day, (h, 0, 0)), naive);
        }

        #[test]
        fn the_cache_changes_nothing(
            cases in proptest::collection::vec(
                (1_798_500_000i64..1_798_900_000, 1u32..=12, prop_oneof![Just(1u32), Just(31)], 0u32..24),
                1..40,
            ),
        ) {
            let mut cache = DateCache::default();
            for (read_time, month, day, h) in cases {
                prop_assert_eq!(infer_year(&mut cache, read_time, month, day, (h, 0, 0)), infer(read_time, month, day, (h, 0, 0)));
            }
        }

        #[test]
        fn agrees_with_event_model(
            secs in 0i64..253_402_300_799,
            nanos in 0u32..1_000_000_000,
            digits in 0usize..=9,
            offset_min in -1439i32..=1439,
        ) {
            let t = time::OffsetDateTime::from_unix_timestamp(secs).expect("in range")
                .to_offset(time::UtcOffset::from_whole_seconds(offset_min * 60).expect("offset"));
            let frac = if digits == 0 { String::new() } else {
                format!(".{:09}", nanos)[..=digits].to_owned()
            };
            let off = if offset_min == 0 { "Z".to_owned() } else {
                let a = offset_min.unsigned_abs();
                format!("{}{:02}:{:02}", if offset_min < 0 { '-' } else { '+' }, a / 60, a % 60)
            };
            let text = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{off}",
                t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second()
            );
            let want = event_model::parse_rfc3339(&text).map(|ts| (ts.seconds, ts.nanos));
            prop_assert_eq!(rfc3339(&text), want, "{}", text);
        }

        #[test]
        fn civil_days_match_the_time_crate(days in -700_000i64..2_932_000) {
            let date = time::Date::from_julian_day((days + 2_440_588) as i32).expect("date");
            let (y, m, d) = (i64::from(date.year()), u8::from(date.month()) as u32, u32::from(date.day()));
            prop_assert_eq!(days_from_civil(y, m, d), days);
            prop_assert_eq!(year_of(days * 86_400 + 3_600), y);
        }
    }
}

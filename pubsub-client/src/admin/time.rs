//! RFC 3339 timestamps as the REST API writes them (`2026-12-03T14:00:00Z`,
//! `2026-12-03T14:00:00.123456789+01:00`), to and from [`SystemTime`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Formats a time as RFC 3339 in UTC (`2026-12-03T14:00:00Z`), with 9 fractional digits when
/// the time has a sub-second part (`2026-12-03T14:00:00.250000000Z`), as protobuf's JSON
/// `Timestamp` is written.
///
/// Years outside 0000-9999 cannot be written in RFC 3339; such times are clamped to
/// `0000-01-01T00:00:00Z` and `9999-12-31T23:59:59.999999999Z`.
pub fn format_rfc3339(time: SystemTime) -> String {
    let (secs, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (secs, 0),
                n => (secs - 1, 1_000_000_000 - n),
            }
        }
    };
    let (secs, nanos) = if secs < MIN_SECS {
        (MIN_SECS, 0)
    } else if secs > MAX_SECS {
        (MAX_SECS, 999_999_999)
    } else {
        (secs, nanos)
    };
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    if nanos == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{nanos:09}Z")
    }
}

/// Parses an RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of up to 9
/// digits, then `Z` or an offset `±HH:MM` (`t`, `z` and a space for `T` are accepted too).
///
/// Fails with [`Error::InvalidConfig`] naming the input when it is not such a timestamp.
pub fn parse_rfc3339(s: &str) -> Result<SystemTime> {
    parse(s).ok_or_else(|| {
        Error::InvalidConfig(format!(
            "{s:?} is not an RFC 3339 timestamp such as 2026-12-03T14:00:00Z or 2026-12-03T15:00:00+01:00"
        ))
    })
}

/// Seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z relative to the epoch.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

fn parse(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mi, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || hh > 23 || mi > 59 || ss > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(start..i)? * 10i64.pow(u32::try_from(9 - digits).ok()?);
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    // A leap second (ss == 60) is read as the first second of the next minute.
    let secs = days_from_civil(y, mo, d) * 86_400 + hh * 3600 + mi * 60 + ss - offset;
    let nanos = u32::try_from(nanos).ok()?;
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(u64::try_from(secs).ok()?, nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Serde for an optional protobuf JSON timestamp.
pub(super) mod timestamp_opt {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(in crate::admin) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub(in crate::admin) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => super::parse(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {s:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn known_instants_format_and_parse() {
        let cases = [
            (at(0, 0), "1970-01-01T00:00:00Z"),
            (at(1_764_770_400, 0), "2025-12-03T14:00:00Z"),
            (at(951_782_400, 0), "2000-02-29T00:00:00Z"),
            (at(1_798_761_599, 250_000_000), "2026-12-31T23:59:59.250000000Z"),
        ];
        for (time, text) in cases {
            assert_eq!(format_rfc3339(time), text);
            assert_eq!(parse_rfc3339(text).expect(text), time, "{text}");
        }
    }

    #[test]
    fn offsets_fractions_and_lowercase_are_read() {
        let utc = parse_rfc3339("2026-12-03T14:00:00Z").expect("utc");
        assert_eq!(parse_rfc3339("2026-12-03T15:30:00+01:30").expect("plus"), utc);
        assert_eq!(parse_rfc3339("2026-12-03t09:00:00-05:00").expect("minus"), utc);
        assert_eq!(parse_rfc3339("2026-12-03 14:00:00z").expect("space"), utc);
        assert_eq!(parse_rfc3339("2026-12-03T14:00:00.5Z").expect("frac"), utc + Duration::from_millis(500));
        assert_eq!(
            parse_rfc3339("2026-12-03T14:00:00.000000001Z").expect("ns"),
            utc + Duration::from_nanos(1)
        );
        // The emulator's millisecond form.
        assert_eq!(parse_rfc3339("2026-12-10T22:59:13.334Z").expect("ms"), at(1_796_943_553, 334_000_000));
    }

    #[test]
    fn times_before_the_epoch_round_trip() {
        let t = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(format_rfc3339(t), "1969-12-31T23:59:58.500000000Z");
        assert_eq!(parse_rfc3339("1969-12-31T23:59:58.5Z").expect("ok"), t);
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        for day in (-146_097 * 2..146_097 * 2).step_by(17) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for bad in [
            "",
            "2026-12-03",
            "2026-12-03T14:00:00",
            "2026-12-03T14:00:00+0100",
            "2026-13-03T14:00:00Z",
            "2026-02-29T14:00:00Z",
            "2026-12-03T24:00:00Z",
            "2026-12-03T14:00:00.Z",
            "2026-12-03T14:00:00.1234567891Z",
            "2026-12-03T14:00:00Zjunk",
            "２０２６-12-03T14:00:00Z",
        ] {
            let err = parse_rfc3339(bad).expect_err(bad);
            assert!(err.to_string().contains("RFC 3339"), "{bad}: {err}");
        }
    }
}

//! Timestamps: RFC 3339 text and protobuf `Timestamp`.

use std::time::{SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 time (`2026-11-23T18:05:00.123Z`, any offset).
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    let nanos = t.unix_timestamp_nanos();
    Some(Timestamp {
        seconds: i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?,
        nanos: i32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?,
    })
}

/// Formats a timestamp as RFC 3339 in UTC with millisecond precision
/// (`2026-11-23T18:05:00.123Z`).
pub fn format_rfc3339(ts: &Timestamp) -> String {
    let nanos = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => String::new(),
    }
}

/// The protobuf timestamp of a system time.
pub fn timestamp_from_system_time(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 },
        Err(e) => {
            let d = e.duration();
            let mut ts = Timestamp { seconds: -(d.as_secs() as i64), nanos: -(d.subsec_nanos() as i32) };
            ts.normalize();
            ts
        }
    }
}

/// A timestamp from milliseconds since the Unix epoch.
pub(crate) fn timestamp_from_millis(ms: i64) -> Timestamp {
    Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// Whether a timestamp lies in the years 1970-9999, the range the pipeline accepts.
pub(crate) fn in_range(ts: &Timestamp) -> bool {
    (0..253_402_300_800).contains(&ts.seconds) && (0..1_000_000_000).contains(&ts.nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_in_utc() {
        let ts = parse_rfc3339("2026-11-23T19:05:00.123+01:00").expect("parses");
        assert_eq!(format_rfc3339(&ts), "2026-11-23T18:05:00.123Z");
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("2026-11-23 18:05:00").is_none());
    }

    #[test]
    fn millis_and_system_time_agree() {
        let ts = timestamp_from_millis(1_795_000_000_123);
        assert_eq!((ts.seconds, ts.nanos), (1_795_000_000, 123_000_000));
        let st = UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123);
        assert_eq!(timestamp_from_system_time(st), ts);
        assert!(in_range(&ts));
        assert!(!in_range(&timestamp_from_millis(-1)));
    }
}

//! Hour buckets: (event type, UTC hour of the event time).

use std::fmt;

use crate::proto::Event;

/// The bucket an event belongs to in the hourly output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HourBucket {
    /// Event type.
    pub event_type: String,
    /// Start of the hour, in hours since the Unix epoch (UTC).
    pub hour: i64,
}

impl HourBucket {
    /// The bucket of an event (by its event time; an event without one falls in hour 0).
    pub fn of(event: &Event) -> Self {
        let secs = event.event_time.as_ref().map_or(0, |t| t.seconds);
        HourBucket { event_type: event.r#type.clone(), hour: secs.div_euclid(3600) }
    }

    /// The bucket of `event_type` holding the instant `unix_seconds`.
    pub fn at(event_type: &str, unix_seconds: i64) -> Self {
        HourBucket { event_type: event_type.to_owned(), hour: unix_seconds.div_euclid(3600) }
    }

    /// Start of the hour, seconds since the Unix epoch.
    pub fn start_seconds(&self) -> i64 {
        self.hour * 3600
    }

    /// End of the hour (exclusive), seconds since the Unix epoch.
    pub fn end_seconds(&self) -> i64 {
        self.start_seconds() + 3600
    }

    /// The output path `<type>/<YYYY-MM-DD>/<HH>`.
    pub fn path(&self) -> String {
        let (date, hour) = self.date_and_hour();
        format!("{}/{date}/{hour:02}", self.event_type)
    }

    fn date_and_hour(&self) -> (String, u8) {
        match time::OffsetDateTime::from_unix_timestamp(self.start_seconds()) {
            Ok(t) => (format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()), t.hour()),
            Err(_) => ("invalid".to_owned(), 0),
        }
    }
}

impl fmt::Display for HourBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;

    #[test]
    fn events_fall_in_the_utc_hour_of_their_event_time() {
        let mut e = Event { r#type: "play".into(), ..Default::default() };
        e.event_time = Some(Timestamp { seconds: 1_795_457_100, nanos: 0 }); // 2026-11-23T18:05:00Z
        let b = HourBucket::of(&e);
        assert_eq!(b.path(), "play/2026-11-23/18");
        assert_eq!(b.end_seconds() - b.start_seconds(), 3600);
        assert_eq!(HourBucket::at("play", b.start_seconds()), b);
        assert_eq!(HourBucket::at("play", b.start_seconds() - 1).path(), "play/2026-11-23/17");
        assert_eq!(HourBucket::at("play", 0).path(), "play/1970-01-01/00");
    }
}

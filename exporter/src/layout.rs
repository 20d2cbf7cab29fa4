//! Where every object of the exporter lives. One table, in ARCHITECTURE.md too:
//!
//! ```text
//! <type>/<YYYY-MM-DD>/<HH>/data-<closer>-a<n>-<k>.avro   final data files (what readers glob)
//! <type>/<YYYY-MM-DD>/<HH>/_ids-<closer>-a<n>             sorted ids of the hour (dedup record)
//! <type>/<YYYY-MM-DD>/<HH>/_commit                        the commit record (create-only, kept)
//! <type>/<YYYY-MM-DD>/<HH>/_SUCCESS                       the manifest, written last
//! _dedup/<type>/<YYYY-MM-DD>/<HH>/late-<landing>-<closer>-a<n>   ids of this hour's events that landed
//!                                                          late in the hour <landing> (dedup record)
//! _staging/<type>/<YYYY-MM-DD>/<HH>/part-<writer>-<seq>.avro     parts of an open hour
//! _staging/<type>/<YYYY-MM-DD>/<HH>/_seal-<gen>                  seals (create-only, highest holds)
//! _staging/<type>/<YYYY-MM-DD>/<HH>/merged-<closer>-a<n>-<k>.avro, ids-…, late-…  a closer's output
//! _staging/_fleet/heartbeats/<writer>.json                        one heartbeat per running process
//! _staging/_fleet/cursors/<type>.json                             hours before it are all closed
//! ```
//!
//! `<writer>` is `<replica>-<incarnation>`: the replica name (config or hostname) and a fresh
//! random id per process start, so no two processes ever write the same name. Everything under
//! `_staging/` is work in progress and is deleted once its hour is closed; an hour folder holds
//! only the data files its `_SUCCESS` lists plus `_`-prefixed metadata.

use event_model::HourBucket;
use object_store::path::Path;

/// Top-level prefix of work in progress.
pub const STAGING: &str = "_staging";
/// Top-level prefix of the late-event dedup records.
pub const DEDUP: &str = "_dedup";
/// The manifest, in an hour folder.
pub const MANIFEST: &str = "_SUCCESS";
/// The commit record, in an hour folder.
pub const COMMIT: &str = "_commit";
/// Name prefix of seals in an hour's staging folder.
pub const SEAL_PREFIX: &str = "_seal-";
/// Name prefix of part files in an hour's staging folder.
pub const PART_PREFIX: &str = "part-";

/// (event type, hour start in Unix seconds).
pub type HourKey = (String, i64);

/// The hour folder of `key`, e.g. `play/2026-11-23/18`.
pub fn hour_dir(key: &HourKey) -> String {
    HourBucket::at(&key.0, key.1).path()
}

/// `name` in the hour folder of `key`.
pub fn hour_object(key: &HourKey, name: &str) -> Path {
    Path::from(format!("{}/{name}", hour_dir(key)))
}

/// The staging folder of `key`, e.g. `_staging/play/2026-11-23/18`.
pub fn staging_dir(key: &HourKey) -> String {
    format!("{STAGING}/{}", hour_dir(key))
}

/// `name` in the staging folder of `key`.
pub fn staging_object(key: &HourKey, name: &str) -> Path {
    Path::from(format!("{}/{name}", staging_dir(key)))
}

/// The staging folder of every hour of `event_type`.
pub fn staging_type_dir(event_type: &str) -> Path {
    Path::from(format!("{STAGING}/{event_type}"))
}

/// The dedup-record folder of `key`: ids of its events that landed in later hours.
pub fn dedup_dir(key: &HourKey) -> Path {
    Path::from(format!("{DEDUP}/{}", hour_dir(key)))
}

/// The folder of heartbeats.
pub fn heartbeats_dir() -> Path {
    Path::from(format!("{STAGING}/_fleet/heartbeats"))
}

/// The heartbeat of the process `writer`.
pub fn heartbeat(writer: &str) -> Path {
    Path::from(format!("{STAGING}/_fleet/heartbeats/{writer}.json"))
}

/// The closed-hours cursor of `event_type`.
pub fn cursor(event_type: &str) -> Path {
    Path::from(format!("{STAGING}/_fleet/cursors/{event_type}.json"))
}

/// A short form of an hour for object names: `2026-11-23T18`.
pub fn hour_tag(hour: i64) -> String {
    let p = HourBucket::at("x", hour).path();
    let mut it = p.split('/').skip(1);
    format!("{}T{}", it.next().unwrap_or_default(), it.next().unwrap_or_default())
}

/// The hour a path `<type>/<YYYY-MM-DD>/<HH>` (or a staging folder's tail) names, if any.
pub fn parse_hour(date: &str, hh: &str) -> Option<i64> {
    let d = time::Date::parse(date, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    let h: i64 = hh.parse().ok().filter(|h| (0..24).contains(h))?;
    Some(d.midnight().assume_utc().unix_timestamp() + h * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let key = ("play".to_owned(), 1_795_428_000);
        assert_eq!(hour_dir(&key), "play/2026-11-23/10");
        assert_eq!(
            staging_object(&key, "part-a-1.avro").as_ref(),
            "_staging/play/2026-11-23/10/part-a-1.avro"
        );
        assert_eq!(dedup_dir(&key).as_ref(), "_dedup/play/2026-11-23/10");
        assert_eq!(hour_tag(key.1), "2026-11-23T10");
        assert_eq!(parse_hour("2026-11-23", "10"), Some(key.1));
        assert_eq!(parse_hour("2026-11-23", "24"), None);
        assert_eq!(parse_hour("x", "10"), None);
    }
}

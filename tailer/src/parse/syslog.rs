//! Syslog headers, as syslog daemons write them to files.
//!
//! * RFC 3164 / traditional file format: `Nov 23 18:05:00 host app[123]: payload` (day
//!   space-padded or not, optional fraction of a second). There is no year and no zone: the time
//!   is read as UTC in the year [`infer_year`](super::datetime::infer_year) picks from the
//!   time the line was read.
//! * RFC 3339 / rsyslog high-precision format: `2026-11-23T18:05:00.123456+01:00 host app: payload`.
//! * RFC 5424: `<34>1 2026-11-23T18:05:00Z host app procid msgid [sd] payload` (`-` for nil
//!   fields; the app name is the tag).
//!
//! Each may start with a `<PRI>`. The tag ends at `:` and loses its `[pid]`; one space after the
//! colon is not part of the payload.

use super::datetime::{self, DateCache, Time};

/// The parts of a syslog line the parser needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    /// The header's time, `None` for an RFC 5424 nil time (`-`).
    pub(crate) time: Option<Time>,
    /// The program tag, without `[pid]` (RFC 5424: the app name, empty when nil).
    pub(crate) tag: &'a str,
    /// The rest of the line.
    pub(crate) payload: &'a str,
}

const BAD_PRI: &str = "expected `<PRI>` (1-3 digits and `>`) at the start of the line";
const BAD_TIME: &str = "expected a syslog time (`Nov 23 18:05:00` or RFC 3339) at the start of the line";
const BAD_3164_DATE: &str = "expected a valid date and time `Mmm dd hh:mm:ss` at the start of the line";
const NO_HOST: &str = "expected a host name after the time";
const NO_TAG: &str = "expected a program tag ending in `:` after the host name";
const BAD_5424: &str =
    "expected RFC 5424 `VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA` after `<PRI>`";
const BAD_SD: &str = "expected RFC 5424 structured data (`-` or `[id ...]`) after the message id";

/// Parses the header of `line`, read at `read_time` (seconds since the epoch; the year of an
/// RFC 3164 date comes from it). The error names what was expected.
pub(crate) fn parse<'a>(
    line: &'a str,
    read_time: i64,
    dates: &mut DateCache,
) -> Result<Header<'a>, &'static str> {
    let b = line.as_bytes();
    let mut pos = 0;
    if b.first() == Some(&b'<') {
        let close = b.iter().take(5).position(|&c| c == b'>').ok_or(BAD_PRI)?;
        if close < 2 || !b[1..close].iter().all(u8::is_ascii_digit) {
            return Err(BAD_PRI);
        }
        pos = close + 1;
        if let Some(version_len) = rfc5424_version(&b[pos..]) {
            return rfc5424(line, pos + version_len + 1);
        }
    }
    let (time, used) = match b.get(pos) {
        Some(c) if c.is_ascii_digit() => datetime::rfc3339_prefix(&b[pos..]).ok_or(BAD_TIME)?,
        Some(_) => rfc3164_time(&b[pos..], read_time, dates)?,
        None => return Err(BAD_TIME),
    };
    pos += used;
    let host = field(line, pos + 1).filter(|_| b.get(pos) == Some(&b' ')).ok_or(NO_HOST)?;
    let rest = &line[host.end + 1..];
    let colon = memchr::memchr2(b':', b' ', rest.as_bytes())
        .filter(|&i| i > 0 && rest.as_bytes()[i] == b':')
        .ok_or(NO_TAG)?;
    let tag = &rest[..colon];
    let tag = memchr::memchr(b'[', tag.as_bytes()).map_or(tag, |i| &tag[..i]);
    let payload = &rest[colon + 1..];
    Ok(Header { time: Some(time), tag, payload: payload.strip_prefix(' ').unwrap_or(payload) })
}

/// The byte range of the space-free field of `line` that starts at `start` and is followed by a
/// space; `None` when empty or missing.
fn field(line: &str, start: usize) -> Option<std::ops::Range<usize>> {
    let len = memchr::memchr(b' ', line.as_bytes().get(start..)?)?;
    (len > 0).then_some(start..start + len)
}

/// An RFC 3164 date (`Nov 23 18:05:00`, `Nov  3 ...`, `Nov 3 ...`, optional `.fraction`):
/// the time and the bytes used.
fn rfc3164_time(b: &[u8], read_time: i64, dates: &mut DateCache) -> Result<(Time, usize), &'static str> {
    let month = datetime::month_abbrev(b).ok_or(BAD_TIME)?;
    if b.get(3) != Some(&b' ') {
        return Err(BAD_TIME);
    }
    let mut pos = if b.get(4) == Some(&b' ') { 5 } else { 4 };
    let day_len = b[pos.min(b.len())..].iter().take(3).take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&day_len) || b.get(pos + day_len) != Some(&b' ') {
        return Err(BAD_3164_DATE);
    }
    let day = b[pos..pos + day_len].iter().fold(0, |d, c| d * 10 + u32::from(c - b'0'));
    pos += day_len + 1;
    let hms = datetime::hms(&b[pos..]).ok_or(BAD_3164_DATE)?;
    pos += 8;
    let (nanos, frac_len) = datetime::fraction(&b[pos..]).ok_or(BAD_3164_DATE)?;
    let secs = datetime::infer_year(dates, read_time, month, day, hms).ok_or(BAD_3164_DATE)?;
    Ok(((secs, nanos), pos + frac_len))
}

/// The length of an RFC 5424 version (1-2 digits, not 0) when `b` starts with one and a space.
fn rfc5424_version(b: &[u8]) -> Option<usize> {
    let n = b.iter().take(3).take_while(|c| c.is_ascii_digit()).count();
    ((1..=2).contains(&n) && b[0] != b'0' && b.get(n) == Some(&b' ')).then_some(n)
}

/// The rest of an RFC 5424 header, from the timestamp at `pos`.
fn rfc5424(line: &str, pos: usize) -> Result<Header<'_>, &'static str> {
    let b = line.as_bytes();
    let time_range = field(line, pos).ok_or(BAD_5424)?;
    let time = match &line[time_range.clone()] {
        "-" => None,
        text => Some(datetime::rfc3339(text).ok_or(BAD_TIME)?),
    };
    let host = field(line, time_range.end + 1).ok_or(BAD_5424)?;
    let app = field(line, host.end + 1).ok_or(BAD_5424)?;
    let procid = field(line, app.end + 1).ok_or(BAD_5424)?;
    let msgid = field(line, procid.end + 1).ok_or(BAD_5424)?;
    let mut pos = msgid.end + 1;
    match b.get(pos) {
        Some(b'-') => pos += 1,
        Some(b'[') => {
            while b.get(pos) == Some(&b'[') {
                pos = sd_element_end(b, pos).ok_or(BAD_SD)?;
            }
        }
        _ => return Err(BAD_SD),
    }
    let payload = match b.get(pos) {
        None => "",
        Some(b' ') => &line[pos + 1..],
        Some(_) => return Err(BAD_SD),
    };
    let tag = match &line[app] {
        "-" => "",
        app => app,
    };
    Ok(Header { time, tag, payload: payload.strip_prefix('\u{feff}').unwrap_or(payload) })
}

/// The position after the `]` closing the structured-data element that opens at `start`
/// (`\]` inside a parameter value is escaped).
fn sd_element_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    let mut quoted = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b']' if !quoted => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23T20:00:00Z.
    const READ: i64 = 1_795_464_000;
    /// 2026-11-23T18:05:00Z.
    const T: i64 = 1_795_457_100;

    fn ok(line: &str) -> Header<'_> {
        parse(line, READ, &mut DateCache::default()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn rfc3164_lines() {
        let h = ok("Nov 23 18:05:00 web-1 app[123]: play\tu=1");
        assert_eq!(h, Header { time: Some((T, 0)), tag: "app", payload: "play\tu=1" });
        let h = ok("<13>Nov  3 18:05:00 web-1 cron: x");
        assert_eq!((h.time, h.tag, h.payload), (Some((T - 20 * 86_400, 0)), "cron", "x"));
        assert_eq!(ok("Nov 3 18:05:00 h a: x").time, Some((T - 20 * 86_400, 0)));
        assert_eq!(ok("Nov 23 18:05:00.25 h a:x").time, Some((T, 250_000_000)));
        assert_eq!(ok("Nov 23 18:05:00 h a:  two spaces").payload, " two spaces");
        assert_eq!(ok("Nov 23 18:05:00 h a:").payload, "");
        assert_eq!(ok("Nov 23 18:05:00 h a: x: y").payload, "x: y");
    }

    #[test]
    fn rfc3339_lines() {
        let h = ok("2026-11-23T19:05:00.123456+01:00 web-1 app[9]: hello");
        assert_eq!(h, Header { time: Some((T, 123_456_000)), tag: "app", payload: "hello" });
        assert_eq!(ok("<34>2026-11-23T18:05:00Z h app: x").time, Some((T, 0)));
        assert_eq!(ok("2026-11-23T18:05:00.123456789Z h a: x").time, Some((T, 123_456_789)));
    }

    #[test]
    fn rfc5424_lines() {
        let h = ok("<34>1 2026-11-23T18:05:00.5Z web-1 app 123 ID47 - play\tu=1");
        assert_eq!(h, Header { time: Some((T, 500_000_000)), tag: "app", payload: "play\tu=1" });
        let h = ok(r#"<34>1 - h - - - [ex@1 a="x\] y" b="]"][other] {"a":1}"#);
        assert_eq!(h, Header { time: None, tag: "", payload: r#"{"a":1}"# });
        assert_eq!(ok("<34>1 2026-11-23T18:05:00Z h a p m -").payload, "");
        assert_eq!(ok("<34>1 2026-11-23T18:05:00Z h a p m - \u{feff}bom").payload, "bom");
    }

    #[test]
    fn bad_headers_say_what_was_expected() {
        let cases = [
            ("", BAD_TIME),
            ("hello world", BAD_TIME),
            ("<13 Nov 23 18:05:00 h a: x", BAD_PRI),
            ("<>Nov 23 18:05:00 h a: x", BAD_PRI),
            ("<1x>Nov 23 18:05:00 h a: x", BAD_PRI),
            ("Nov 23 25:05:00 h a: x", BAD_3164_DATE),
            ("Nov 31 18:05:00 h a: x", BAD_3164_DATE),
            ("Nov 123 18:05:00 h a: x", BAD_3164_DATE),
            ("Nov 23 18:05", BAD_3164_DATE),
            ("Nov 23 18:05:00", NO_HOST),
            ("Nov 23 18:05:00 ", NO_HOST),
            ("Nov 23 18:05:00 h", NO_HOST),
            ("Nov 23 18:05:00 h no tag here", NO_TAG),
            ("Nov 23 18:05:00 h : x", NO_TAG),
            ("Nov 23 18:05:00 h app", NO_TAG),
            ("2026-11-23 18:05:00 h a: x", BAD_TIME),
            ("2026-11-23T18:05:00Zh a: x", NO_HOST),
            ("<34>1 2026-11-23T18:05:00Z h a p", BAD_5424),
            ("<34>1 yesterday h a p m - x", BAD_TIME),
            ("<34>1 2026-11-23T18:05:00Z h a p m x", BAD_SD),
            ("<34>1 2026-11-23T18:05:00Z h a p m [x a=\"]", BAD_SD),
            ("<34>1 2026-11-23T18:05:00Z h a p m -x", BAD_SD),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line, READ, &mut DateCache::default()), Err(want), "{line:?}");
        }
    }

    #[test]
    fn december_lines_read_in_january_are_last_year() {
        let jan_1_2027 = datetime::rfc3339("2027-01-01T00:10:00Z").expect("t").0;
        let dec = parse("Dec 31 23:59:00 h a: x", jan_1_2027, &mut DateCache::default()).expect("parses");
        assert_eq!(dec.time.map(|t| t.0), datetime::rfc3339("2026-12-31T23:59:00Z").map(|t| t.0));
        let jan = parse("Jan  1 00:09:00 h a: x", jan_1_2027, &mut DateCache::default()).expect("parses");
        assert_eq!(jan.time.map(|t| t.0), datetime::rfc3339("2027-01-01T00:09:00Z").map(|t| t.0));
    }
}

//! Request bodies: encodings, bounded gzip decompression, and splitting into events with the
//! count checked as the split goes.

use std::io::Read;

use event_model::ingest::{CONTENT_TYPE_JSON, CONTENT_TYPE_NDJSON, CONTENT_TYPE_PROTOBUF};
use event_model::{ArrayItemsError, json_array_items_at_most, ndjson_lines};

use crate::budget::Reservation;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json`: a JSON array of events.
    JsonArray,
    /// `application/x-ndjson`: one JSON event per line.
    Ndjson,
    /// `application/x-protobuf`: an `EventBatch`.
    Protobuf,
}

impl Encoding {
    /// The encoding named by a `Content-Type`, if supported.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
            CONTENT_TYPE_JSON => Some(Encoding::JsonArray),
            CONTENT_TYPE_NDJSON | "application/ndjson" | "application/jsonl" | "application/x-jsonlines" => {
                Some(Encoding::Ndjson)
            }
            CONTENT_TYPE_PROTOBUF | "application/protobuf" => Some(Encoding::Protobuf),
            _ => None,
        }
    }
}

/// One event as it arrived, undecoded: its bytes are what goes to the dead-letter topic when
/// it is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEvent<'a> {
    /// A JSON event.
    Json(&'a [u8]),
    /// A protobuf `Event` (one `events` entry of an `EventBatch`).
    Proto(&'a [u8]),
}

/// Why a body could not be split into events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// The framing is broken (not a JSON array, not an `EventBatch`).
    Invalid(String),
    /// More events than the limit: splitting stopped at the first one past it.
    TooMany {
        /// The limit.
        limit: usize,
    },
}

/// Splits a decoded body into at most `max_events` events, counting as it goes (a small body
/// of empty entries never becomes a vector larger than the limit). Fails for the whole body
/// when its framing is broken or it holds more events than `max_events`.
pub fn split_body<'a>(
    body: &'a [u8],
    encoding: Encoding,
    max_events: usize,
) -> Result<Vec<RawEvent<'a>>, SplitError> {
    let mut out = Vec::new();
    let push = |e: RawEvent<'a>, out: &mut Vec<RawEvent<'a>>| {
        if out.len() == max_events {
            return Err(SplitError::TooMany { limit: max_events });
        }
        out.push(e);
        Ok(())
    };
    match encoding {
        Encoding::JsonArray => {
            let items = json_array_items_at_most(body, max_events).map_err(|e| match e {
                ArrayItemsError::TooMany(limit) => SplitError::TooMany { limit },
                e => SplitError::Invalid(e.to_string()),
            })?;
            out.extend(items.into_iter().map(|r| RawEvent::Json(r.get().as_bytes())));
        }
        Encoding::Ndjson => {
            for line in ndjson_lines(body) {
                push(RawEvent::Json(line), &mut out)?;
            }
        }
        Encoding::Protobuf => {
            for entry in BatchEntries(body) {
                let entry = entry
                    .map_err(|e| SplitError::Invalid(format!("body is not a protobuf EventBatch: {e}")))?;
                push(RawEvent::Proto(entry), &mut out)?;
            }
        }
    }
    Ok(out)
}

/// The bytes of each `events` entry (field 1) of an `EventBatch`, without decoding them, so a
/// bad event is rejected on its own and a rejected one keeps its original bytes for free.
struct BatchEntries<'a>(&'a [u8]);

impl<'a> Iterator for BatchEntries<'a> {
    type Item = Result<&'a [u8], String>;

    fn next(&mut self) -> Option<Self::Item> {
        use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
        let body = &mut self.0;
        while !body.is_empty() {
            let step = (|| {
                let (tag, wire_type) = decode_key(body).map_err(|e| e.to_string())?;
                if tag == 1 && wire_type == WireType::LengthDelimited {
                    let len = usize::try_from(decode_varint(body).map_err(|e| e.to_string())?)
                        .unwrap_or(usize::MAX);
                    if len > body.len() {
                        return Err("an event runs past the end of the body".to_owned());
                    }
                    let (entry, rest) = body.split_at(len);
                    *body = rest;
                    Ok(Some(entry))
                } else {
                    skip_field(wire_type, tag, body, DecodeContext::default()).map_err(|e| e.to_string())?;
                    Ok(None)
                }
            })();
            match step {
                Ok(Some(entry)) => return Some(Ok(entry)),
                Ok(None) => {}
                Err(e) => {
                    *body = &[];
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Why a gzip body could not be decompressed.
#[derive(Debug)]
pub(crate) enum GunzipError {
    /// More than the limit decompressed.
    TooLarge,
    /// The byte budget of the service had no room for the decompressed bytes.
    NoBudget,
    /// Not gzip, or cut short.
    Corrupt(std::io::Error),
}

/// Decompresses at most `limit` bytes, taking every byte written from `budget` (in 64 KiB
/// steps, before writing them): a small bomb can neither fill memory nor exceed the service's
/// budget. The buffer is allocated once at its largest size and never moved; only the pages
/// written become resident, so what is resident is what the budget holds.
pub(crate) fn gunzip(
    data: &[u8],
    limit: usize,
    budget: &mut Reservation<'_>,
) -> Result<Vec<u8>, GunzipError> {
    const CHUNK: usize = 64 * 1024;
    let mut out: Vec<u8> = Vec::with_capacity(limit + 1);
    let mut reader = flate2::read::MultiGzDecoder::new(data).take(limit as u64 + 1);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(GunzipError::Corrupt(e)),
        };
        if out.len() + n > limit {
            return Err(GunzipError::TooLarge);
        }
        if !budget.hold_at_least((out.len() + n).next_multiple_of(CHUNK).min(limit)) {
            return Err(GunzipError::NoBudget);
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn content_types_map_to_encodings() {
        assert_eq!(Encoding::from_content_type("application/json; charset=utf-8"), Some(Encoding::JsonArray));
        assert_eq!(Encoding::from_content_type("application/x-ndjson"), Some(Encoding::Ndjson));
        assert_eq!(Encoding::from_content_type("Application/X-Protobuf"), Some(Encoding::Protobuf));
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }

    #[test]
    fn batch_entries_are_the_events_own_bytes() {
        use event_model::{Event, EventBatch};
        let events: Vec<Event> = (0..3)
            .map(|i| Event { id: format!("e{i}"), r#type: "play".into(), ..Default::default() })
            .collect();
        let body = EventBatch { events: events.clone() }.encode_to_vec();
        let entries = split_body(&body, Encoding::Protobuf, 10).expect("valid batch");
        assert_eq!(entries.len(), 3);
        for (entry, e) in entries.iter().zip(&events) {
            assert_eq!(*entry, RawEvent::Proto(e.encode_to_vec().as_slice()));
        }
        let cut = split_body(&body[..body.len() - 1], Encoding::Protobuf, 10);
        assert!(matches!(cut, Err(SplitError::Invalid(_))), "a truncated body is refused");
        assert_eq!(split_body(&[], Encoding::Protobuf, 10).expect("empty").len(), 0);
    }

    #[test]
    fn splitting_stops_at_the_first_event_past_the_limit() {
        // A million empty protobuf entries in 2 MB: the split never holds more than the limit.
        let body = [0x0a, 0x00].repeat(1_000_000);
        assert_eq!(split_body(&body, Encoding::Protobuf, 10), Err(SplitError::TooMany { limit: 10 }));
        assert_eq!(split_body(&body[..20], Encoding::Protobuf, 10).expect("ten").len(), 10);
        let lines = "{}\n".repeat(11);
        assert_eq!(
            split_body(lines.as_bytes(), Encoding::Ndjson, 10),
            Err(SplitError::TooMany { limit: 10 })
        );
        let array = format!("[{}]", ["{}"; 11].join(","));
        assert_eq!(
            split_body(array.as_bytes(), Encoding::JsonArray, 10),
            Err(SplitError::TooMany { limit: 10 })
        );
        let ten = format!("[{}]", ["{\"a\":1}"; 10].join(","));
        let items = split_body(ten.as_bytes(), Encoding::JsonArray, 10).expect("ten");
        assert_eq!(items[9], RawEvent::Json(b"{\"a\":1}"));
    }

    #[test]
    fn gzip_bombs_stop_at_the_limit_and_at_the_budget() {
        use tokio::sync::Semaphore;
        let data = vec![0u8; 1_000_000];
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut enc, &data).expect("write");
        let packed = enc.finish().expect("finish");
        let slots = Semaphore::new(4_000_000);
        let gauge = prometheus_client::metrics::gauge::Gauge::default();
        {
            let mut r = Reservation::new(&slots, &gauge);
            assert!(matches!(gunzip(&packed, 1000, &mut r), Err(GunzipError::TooLarge)));
        }
        let mut r = Reservation::new(&slots, &gauge);
        assert_eq!(gunzip(&packed, 1_000_000, &mut r).ok().map(|v| v.len()), Some(1_000_000));
        let held = r.held();
        assert!((1_000_000..=1_000_000 + 64 * 1024).contains(&held), "what was written is held: {held}");
        assert_eq!(gauge.get() as usize, held);
        drop(r);
        assert_eq!((slots.available_permits(), gauge.get()), (4_000_000, 0), "given back");
        let small = Semaphore::new(200_000);
        let mut r = Reservation::new(&small, &gauge);
        assert!(matches!(gunzip(&packed, 1_000_000, &mut r), Err(GunzipError::NoBudget)));
        let mut r = Reservation::new(&slots, &gauge);
        assert!(matches!(gunzip(b"not gzip", 1000, &mut r), Err(GunzipError::Corrupt(_))));
    }
}

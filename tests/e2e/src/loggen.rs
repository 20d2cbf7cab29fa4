//! The sample log: syslog lines carrying `play` and `search` events (7:3) spread over whole
//! hours of event time, with a share of bad lines, and the record of what was written.
//!
//! A valid line looks like
//! `2026-11-23T18:05:00.123Z e2e-host eventlog: play<TAB>user=u7<TAB>track=t123<TAB>ms_played=5000`.
//! Every valid event carries its sequence number (`track=t<seq>` for `play`,
//! `query=q<seq>` for `search`), which is how [`verify`](crate::verify) finds it in the
//! buckets without knowing the ids the tailer gives it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, Result};

/// Seconds in an hour.
pub const HOUR: i64 = 3600;

/// The kinds of bad line the sample holds, in the order they are cycled through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadKind {
    /// Not a syslog line at all: the tailer skips it (`lines_skipped{reason="malformed"}`).
    Malformed,
    /// A well-formed line of a type the registry does not know: the event-service rejects it.
    UnknownType,
    /// A `play` without its required `track`: the event-service rejects it.
    MissingField,
    /// A line longer than the tailer's `max_line_bytes`: skipped (`reason="too_long"`).
    Huge,
}

const BAD_KINDS: [BadKind; 4] =
    [BadKind::Malformed, BadKind::UnknownType, BadKind::MissingField, BadKind::Huge];

/// One valid event of the sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// `play` or `search`.
    pub event_type: &'static str,
    /// Start of its event-time hour, Unix seconds.
    pub hour: i64,
    /// When its line was written, Unix milliseconds.
    pub written_ms: i64,
}

/// Settings of the sample.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LogOptions {
    /// Start of the first event-time hour (Unix seconds, a multiple of 3600).
    pub first_hour: i64,
    /// Number of consecutive hours event times are spread over. Default 2.
    pub hours: u32,
    /// One line in this many is a bad line (0 = none). Default 100.
    pub bad_every: u64,
    /// One valid event in this many has invalid UTF-8 in its `user` (0 = none). Default 250.
    pub invalid_utf8_every: u64,
    /// Length of a [`BadKind::Huge`] line; must exceed the tailer's `max_line_bytes`.
    pub huge_line_bytes: usize,
    /// The `host` of the syslog lines.
    pub host: String,
    /// Seed of the generator (types, times).
    pub seed: u64,
}

impl LogOptions {
    /// Two hours starting at `first_hour`, the default shares of bad lines.
    pub fn new(first_hour: i64) -> LogOptions {
        LogOptions {
            first_hour,
            hours: 2,
            bad_every: 100,
            invalid_utf8_every: 250,
            huge_line_bytes: 20_000,
            host: "e2e-host".to_owned(),
            seed: 42,
        }
    }
}

/// Writes the sample log and remembers every valid event and bad line written.
#[derive(Debug)]
pub struct LogGen {
    path: PathBuf,
    file: File,
    opts: LogOptions,
    rng: fastrand::Rng,
    lines: u64,
    written: Vec<Written>,
    bad: Vec<BadKind>,
    rotations: u32,
    buf: Vec<u8>,
}

impl LogGen {
    /// Creates (or appends to) the log at `path`.
    pub fn create(path: &Path, opts: LogOptions) -> Result<LogGen> {
        let file = open(path)?;
        let rng = fastrand::Rng::with_seed(opts.seed);
        Ok(LogGen {
            path: path.to_path_buf(),
            file,
            opts,
            rng,
            lines: 0,
            written: Vec::new(),
            bad: Vec::new(),
            rotations: 0,
            buf: Vec::with_capacity(1 << 20),
        })
    }

    /// Writes `n` valid events (with the bad lines that fall between them) in one `write`.
    pub fn write(&mut self, n: u64) -> Result<()> {
        self.buf.clear();
        let mut pending = Vec::with_capacity(n as usize);
        for _ in 0..n {
            self.lines += 1;
            if self.opts.bad_every > 0 && self.lines.is_multiple_of(self.opts.bad_every) {
                let kind = BAD_KINDS[self.bad.len() % BAD_KINDS.len()];
                self.bad_line(kind);
                self.bad.push(kind);
                self.lines += 1;
            }
            let seq = (self.written.len() + pending.len()) as u64;
            pending.push(self.good_line(seq));
        }
        self.file.write_all(&self.buf).map_err(|e| Error::io(&self.path, e))?;
        let now = unix_ms(SystemTime::now());
        self.written.extend(pending.into_iter().map(|(event_type, hour)| Written {
            event_type,
            hour,
            written_ms: now,
        }));
        Ok(())
    }

    /// Rotates by rename, as logrotate's `create` mode does: the log becomes
    /// `<log>.<n>` and a new, empty log takes its place.
    pub fn rotate(&mut self) -> Result<()> {
        self.rotations += 1;
        let to = PathBuf::from(format!("{}.{}", self.path.display(), self.rotations));
        std::fs::rename(&self.path, &to).map_err(|e| Error::io(&to, e))?;
        self.file = open(&self.path)?;
        Ok(())
    }

    /// From now on, spreads event times over `hours` hours from `first_hour` (Unix seconds,
    /// a multiple of 3600), so a run can move its event time forward and let hours close while
    /// it writes.
    pub fn set_window(&mut self, first_hour: i64, hours: u32) {
        self.opts.first_hour = first_hour;
        self.opts.hours = hours;
    }

    /// The valid events written so far, indexed by sequence number.
    pub fn written(&self) -> &[Written] {
        &self.written
    }

    /// The bad lines written so far.
    pub fn bad(&self) -> &[BadKind] {
        &self.bad
    }

    /// Valid events written with invalid UTF-8 in their `user`.
    pub fn invalid_utf8_written(&self) -> u64 {
        match self.opts.invalid_utf8_every {
            0 => 0,
            every => (self.written.len() as u64).div_ceil(every),
        }
    }

    /// How often the log was rotated.
    pub fn rotations(&self) -> u32 {
        self.rotations
    }

    /// The (type, hour) buckets the valid events belong to.
    pub fn buckets(&self) -> std::collections::BTreeSet<(&'static str, i64)> {
        self.written.iter().map(|w| (w.event_type, w.hour)).collect()
    }

    fn event_time(&mut self) -> (i64, String) {
        let hour = self.opts.first_hour + HOUR * i64::from(self.rng.u32(..self.opts.hours.max(1)));
        let ms = self.rng.i64(0..HOUR * 1000);
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(hour * 1000 + ms) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        (hour, t.format(&Rfc3339).unwrap_or_default())
    }

    fn good_line(&mut self, seq: u64) -> (&'static str, i64) {
        let (hour, ts) = self.event_time();
        let host = &self.opts.host;
        let user = seq % 1000;
        let event_type = if self.rng.u8(..10) < 7 { "play" } else { "search" };
        let _ = write!(self.buf, "{ts} {host} eventlog: {event_type}\tuser=u{user}");
        if self.opts.invalid_utf8_every > 0 && seq.is_multiple_of(self.opts.invalid_utf8_every) {
            self.buf.extend_from_slice(b"\xff\xfe");
        }
        let _ = match event_type {
            "play" => {
                writeln!(self.buf, "\ttrack=t{seq}\tms_played={}\tshuffle=true", self.rng.u32(..600_000))
            }
            _ => writeln!(self.buf, "\tquery=q{seq}\tresults={}", self.rng.u32(..100)),
        };
        (event_type, hour)
    }

    fn bad_line(&mut self, kind: BadKind) {
        let (_, ts) = self.event_time();
        let host = self.opts.host.clone();
        let n = self.lines;
        let _ = match kind {
            BadKind::Malformed => writeln!(self.buf, "this is no syslog line #{n}"),
            BadKind::UnknownType => writeln!(self.buf, "{ts} {host} eventlog: bogus\tuser=u1\tline={n}"),
            BadKind::MissingField => writeln!(self.buf, "{ts} {host} eventlog: play\tuser=u1\tms_played={n}"),
            BadKind::Huge => {
                let _ = write!(self.buf, "{ts} {host} eventlog: play\tuser=u{n}\ttrack=");
                let pad = self.opts.huge_line_bytes;
                self.buf.extend(std::iter::repeat_n(b'x', pad));
                writeln!(self.buf)
            }
        };
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

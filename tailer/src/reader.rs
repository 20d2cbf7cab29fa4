//! The reading thread: reads new bytes of every followed file in turn, splits them into lines,
//! turns lines into events and hands full batches to the sender, waiting while the sender is
//! saturated (that wait is the tailer's back-pressure; memory stays bounded).
//!
//! Behaviour at the edges, each counted in a metric:
//! * a line longer than `read.max_line_bytes` is skipped up to its newline and logged
//!   (`lines_skipped{reason="too_long"}`);
//! * invalid UTF-8 is replaced by U+FFFD and the event is sent (`lines_invalid_utf8`);
//! * a trailing `\r` is dropped (CRLF files);
//! * an unfinished last line of a followed file waits for its newline; the unfinished last line
//!   of a file that was rotated away, deleted or truncated is sent as a line when the file is
//!   let go (`partial_lines`);
//! * a line the rule cannot parse is logged and skipped (`lines_skipped{reason="malformed"}`).

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use event_model::EventIds;
use tokio::sync::mpsc;

use crate::batch::Batch;
use crate::checkpoint::Saver;
use crate::config::Config;
use crate::files::{Files, Globs, Tracked};
use crate::fingerprint::Fingerprint;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::parse::{LineError, LineMeta, LineParser};

/// Everything the reading thread owns.
pub(crate) struct Reader {
    config: Arc<Config>,
    globs: Vec<Globs>,
    files: Files,
    emitter: Emitter,
    stop: Arc<AtomicBool>,
    chunk: Vec<u8>,
    saver: Arc<Saver>,
}

/// Turns lines into events and batches.
struct Emitter {
    parsers: Vec<LineParser>,
    ids: EventIds,
    host: String,
    scratch: Vec<u8>,
    batch: Batch,
    batch_started: Option<Instant>,
    next_id: u64,
    max_events: usize,
    max_bytes: usize,
    max_line: usize,
    ledger: Arc<Mutex<Ledger>>,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Batch>,
    closed: bool,
    read_time: (i64, i32),
    lines: u64,
    malformed_logged: u64,
}

impl Reader {
    /// A reader of the configured sources.
    pub(crate) fn new(
        config: Arc<Config>,
        parsers: Vec<LineParser>,
        ledger: Arc<Mutex<Ledger>>,
        metrics: Arc<Metrics>,
        tx: mpsc::Sender<Batch>,
        stop: Arc<AtomicBool>,
        saver: Arc<Saver>,
    ) -> Self {
        let globs = config.sources.iter().map(|s| Globs::new(&s.include, &s.exclude)).collect();
        let emitter = Emitter {
            parsers,
            ids: EventIds::new(&config.host),
            host: config.host.clone(),
            scratch: Vec::with_capacity(4096),
            batch: Batch::default(),
            batch_started: None,
            next_id: 1,
            max_events: config.batch.max_events,
            max_bytes: config.batch.max_bytes,
            max_line: config.read.max_line_bytes,
            ledger,
            metrics,
            tx,
            closed: false,
            read_time: (0, 0),
            lines: 0,
            malformed_logged: 0,
        };
        Reader {
            chunk: vec![0; config.read.read_chunk_bytes],
            config,
            globs,
            files: Files::default(),
            emitter,
            stop,
            saver,
        }
    }

    /// Runs until `stop` is set or the sender goes away.
    pub(crate) fn run(mut self) {
        let glob_interval = Duration::from_millis(self.config.read.glob_interval_ms.max(1));
        let rotated_idle = Duration::from_millis(self.config.read.rotated_idle_ms);
        let max_delay = Duration::from_millis(self.config.batch.max_delay_ms);
        let poll = self.config.poll_interval();
        let mut next_scan = Instant::now();
        while !self.stop.load(Ordering::Relaxed) && !self.emitter.closed {
            let now = Instant::now();
            if now >= next_scan {
                self.files.scan(&self.globs, &self.emitter.ledger, &self.emitter.metrics);
                self.files.retain_known(&self.emitter.ledger.lock().unwrap_or_else(|e| e.into_inner()));
                if std::mem::take(&mut self.files.identities_changed) {
                    self.save_identities();
                }
                next_scan = now + glob_interval;
            }
            let (read, truncated) = self.read_pass();
            if truncated {
                next_scan = Instant::now();
            }
            self.release_idle(rotated_idle);
            let age = self.emitter.batch_started.map_or(Duration::ZERO, |t| t.elapsed());
            if !self.emitter.batch.is_empty() && (read == 0 || age >= max_delay) {
                self.emitter.flush();
            }
            if read == 0 && !truncated {
                std::thread::park_timeout(poll.min(next_scan.saturating_duration_since(Instant::now())));
            }
        }
        tracing::debug!("reader stopped");
    }

    /// Makes the checkpoint durable now that files were newly identified, before any of their
    /// lines is sent: a file's fingerprint (its ids) depends on the inode it was first seen at,
    /// so after a crash a copy of it (copytruncate) must be recognised from the checkpoint, not
    /// taken for a new file with new ids. A failed write is counted and delivery goes on (the
    /// periodic checkpoint retries it).
    fn save_identities(&mut self) {
        match self.saver.save() {
            Ok(_) => {
                self.emitter.metrics.checkpoint_writes.inc();
            }
            Err(e) => {
                self.emitter.metrics.checkpoint_failures.inc();
                tracing::error!(error = %e, "checkpoint of newly followed files not saved; retrying at the next interval");
            }
        }
    }

    /// Reads one chunk of every open file. Returns the bytes read and whether a truncation
    /// was seen.
    fn read_pass(&mut self) -> (usize, bool) {
        let mut total = 0;
        let mut truncated = false;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.emitter.read_time = (now.as_secs() as i64, now.subsec_nanos() as i32);
        let fps: Vec<Fingerprint> =
            self.files.by_fp.iter().filter(|(_, t)| t.file.is_some()).map(|(fp, _)| *fp).collect();
        for fp in fps {
            if self.emitter.closed {
                break;
            }
            match self.read_file(fp) {
                Read::Bytes(n) => total += n,
                Read::Eof => {}
                Read::Truncated => {
                    truncated = true;
                    self.emitter.metrics.truncations.inc();
                    if let Some(t) = self.files.by_fp.get(&fp) {
                        tracing::warn!(path = %t.path.display(), offset = t.offset, "file truncated; \
                            its remaining lines are read from a copy if one appears");
                    }
                    self.files.detach(fp);
                }
            }
        }
        self.emitter.metrics.bytes_read.inc_by(total as u64);
        self.emitter.metrics.lines_read.inc_by(std::mem::take(&mut self.emitter.lines));
        (total, truncated)
    }

    fn read_file(&mut self, fp: Fingerprint) -> Read {
        let Some(t) = self.files.by_fp.get_mut(&fp) else { return Read::Eof };
        let Some(file) = &t.file else { return Read::Eof };
        let (size, mtime) = match file.metadata() {
            Ok(m) => (m.len(), m.modified().ok()),
            Err(_) => return Read::Eof,
        };
        if size == t.offset && mtime == t.mtime {
            t.idle_since.get_or_insert_with(Instant::now);
            return Read::Eof;
        }
        // Grown, or written to without growing (truncated and rewritten to the same size).
        if !self.files.check(fp, size, &self.emitter.ledger) {
            return Read::Truncated;
        }
        if std::mem::take(&mut self.files.identities_changed) {
            self.save_identities();
        }
        let Some(t) = self.files.by_fp.get_mut(&fp) else { return Read::Eof };
        t.mtime = mtime;
        let Some(file) = &t.file else { return Read::Eof };
        if size == t.offset {
            t.idle_since.get_or_insert_with(Instant::now);
            return Read::Eof;
        }
        let want = ((size - t.offset) as usize).min(self.chunk.len());
        let mut n = 0;
        while n < want {
            match file.read_at(&mut self.chunk[n..want], t.offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(path = %t.path.display(), error = %e, "read failed; retrying");
                    break;
                }
            }
        }
        if n == 0 {
            return Read::Eof;
        }
        t.idle_since = None;
        self.emitter.lines_of(t, &self.chunk[..n]);
        t.offset += n as u64;
        self.emitter.ledger.lock().unwrap_or_else(|e| e.into_inner()).seen(fp, &t.path, size, unix_secs());
        Read::Bytes(n)
    }

    /// Lets go of files that left the globs (or were truncated) and stayed idle at their end.
    fn release_idle(&mut self, idle: Duration) {
        let due: Vec<Fingerprint> = self
            .files
            .by_fp
            .values()
            .filter(|t| !t.released && !t.matched && t.idle_since.is_some_and(|s| s.elapsed() >= idle))
            .map(|t| t.fp)
            .collect();
        for fp in due {
            if let Some(t) = self.files.by_fp.get_mut(&fp) {
                self.emitter.finish_partial(t);
                tracing::info!(path = %t.path.display(), offset = t.offset, "file read to its end and let go");
            }
            self.files.release(fp, &self.emitter.ledger);
            self.emitter.metrics.files_released.inc();
        }
    }
}

enum Read {
    Bytes(usize),
    Eof,
    Truncated,
}

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Emitter {
    /// Splits `data` (the bytes of `t` from `t.offset`) into lines.
    fn lines_of(&mut self, t: &mut Tracked, data: &[u8]) {
        let base = t.offset;
        let mut pos = 0;
        while pos < data.len() {
            let nl = memchr::memchr(b'\n', &data[pos..]);
            if t.discarding {
                match nl {
                    Some(i) => {
                        t.discarding = false;
                        t.line_start = base + (pos + i + 1) as u64;
                        self.batch_skip(t.fp, t, t.line_start);
                        pos += i + 1;
                    }
                    None => pos = data.len(),
                }
                continue;
            }
            match nl {
                Some(i) => {
                    let end = base + (pos + i + 1) as u64;
                    let start = t.line_start;
                    if t.carry.is_empty() {
                        self.line(t, start, &data[pos..pos + i], end);
                    } else {
                        let mut carry = std::mem::take(&mut t.carry);
                        carry.extend_from_slice(&data[pos..pos + i]);
                        self.line(t, start, &carry, end);
                        carry.clear();
                        t.carry = carry;
                    }
                    t.line_start = end;
                    pos += i + 1;
                }
                None => {
                    let rest = &data[pos..];
                    if t.carry.len() + rest.len() > self.max_line {
                        self.too_long(t, t.line_start);
                        t.carry.clear();
                        t.discarding = true;
                    } else {
                        t.carry.extend_from_slice(rest);
                    }
                    pos = data.len();
                }
            }
        }
    }

    /// Sends the unfinished last line of a file being let go.
    fn finish_partial(&mut self, t: &mut Tracked) {
        if t.discarding {
            t.discarding = false;
            self.batch_skip(t.fp, t, t.offset);
        } else if !t.carry.is_empty() {
            let carry = std::mem::take(&mut t.carry);
            self.metrics.partial_lines.inc();
            self.line(t, t.line_start, &carry, t.offset);
        }
        t.line_start = t.offset;
    }

    fn too_long(&mut self, t: &Tracked, offset: u64) {
        self.metrics.skipped("too_long", 1);
        tracing::warn!(path = %t.path.display(), offset, limit = self.max_line, "line longer than the limit skipped");
    }

    fn batch_skip(&mut self, fp: Fingerprint, t: &Tracked, end: u64) {
        self.batch.skip(fp, &t.path, end);
        self.batch_started.get_or_insert_with(Instant::now);
    }

    /// One complete line (without its newline) at `offset`, ending before `end`.
    fn line(&mut self, t: &Tracked, offset: u64, mut line: &[u8], end: u64) {
        self.lines += 1;
        if line.len() > self.max_line {
            self.too_long(t, offset);
            self.batch_skip(t.fp, t, end);
            return;
        }
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        let text = match std::str::from_utf8(line) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => {
                self.metrics.lines_invalid_utf8.inc();
                String::from_utf8_lossy(line)
            }
        };
        let id = self.ids.id(t.fp, offset);
        let meta = LineMeta {
            id: std::str::from_utf8(&id).unwrap_or_default(),
            source: &self.host,
            read_time: self.read_time,
        };
        self.scratch.clear();
        let Some(parser) = self.parsers.get_mut(t.source) else { return };
        match parser.encode(&text, &meta, &mut self.scratch) {
            Ok(()) => {
                if self.batch.events() >= self.max_events
                    || (self.batch.events() > 0
                        && self.batch.body.len() + self.scratch.len() + 8 > self.max_bytes)
                {
                    self.flush();
                }
                self.batch.push(t.fp, &t.path, offset, end, &self.scratch);
                self.batch_started.get_or_insert_with(Instant::now);
            }
            Err(LineError::Skipped(reason)) => {
                self.metrics.skipped(reason, 1);
                self.batch_skip(t.fp, t, end);
            }
            Err(LineError::Malformed(reason)) => {
                self.metrics.skipped("malformed", 1);
                self.malformed_logged += 1;
                if self.malformed_logged <= 100 || self.malformed_logged.is_power_of_two() {
                    tracing::warn!(path = %t.path.display(), offset, %reason, total = self.malformed_logged,
                        "line cannot be parsed; skipped");
                }
                self.batch_skip(t.fp, t, end);
            }
        }
    }

    /// Registers the batch with the ledger and hands it to the sender, waiting while the
    /// sender is saturated.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        self.batch_started = None;
        batch.id = self.next_id;
        self.next_id += 1;
        {
            let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
            for f in &batch.files {
                ledger.add(f.fp, batch.id, f.end);
            }
            if batch.events() == 0 {
                ledger.ack(batch.id, batch.files.iter().map(|f| f.fp));
                return;
            }
        }
        self.metrics.events_sent.inc_by(batch.events() as u64);
        match self.tx.try_send(batch) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(batch)) => {
                let waited = Instant::now();
                if self.tx.blocking_send(batch).is_err() {
                    self.closed = true;
                }
                self.metrics.read_paused_seconds.inc_by(waited.elapsed().as_secs_f64());
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.closed = true,
        }
    }
}

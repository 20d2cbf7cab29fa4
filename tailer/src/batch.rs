//! A batch of encoded events on its way to the event-service, and where each came from.

use std::path::PathBuf;

use crate::encode::append_batch_entry;
use crate::fingerprint::Fingerprint;

/// Where an event's line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    /// Index into [`Batch::files`].
    pub file: u32,
    /// Byte offset of the line.
    pub offset: u64,
}

/// Lines of one file in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileSpan {
    /// The file.
    pub fp: Fingerprint,
    /// Its path when read, for logs.
    pub path: PathBuf,
    /// Offset just past the last line of this file in the batch (sent or skipped).
    pub end: u64,
}

/// Encoded events (an `EventBatch` body) and the file ranges they close.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Sequence number; grows with every batch.
    pub id: u64,
    /// The protobuf `EventBatch`.
    pub body: Vec<u8>,
    /// Where each event came from, in body order.
    pub origins: Vec<Origin>,
    /// Files with lines in this batch.
    pub files: Vec<FileSpan>,
}

impl Batch {
    /// Number of events.
    pub(crate) fn events(&self) -> usize {
        self.origins.len()
    }

    /// True when it holds neither events nor skipped lines.
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn span(&mut self, fp: Fingerprint, path: &std::path::Path, end: u64) -> u32 {
        // Lines of one file arrive together, so the last span is almost always the one.
        if let Some(i) = self.files.iter().rposition(|f| f.fp == fp) {
            self.files[i].end = end;
            return i as u32;
        }
        self.files.push(FileSpan { fp, path: path.to_owned(), end });
        (self.files.len() - 1) as u32
    }

    /// Adds an encoded event for the line of `fp` at `offset` that ends before `end`.
    pub(crate) fn push(
        &mut self,
        fp: Fingerprint,
        path: &std::path::Path,
        offset: u64,
        end: u64,
        event: &[u8],
    ) {
        let file = self.span(fp, path, end);
        append_batch_entry(&mut self.body, event);
        self.origins.push(Origin { file, offset });
    }

    /// Records a line of `fp` ending before `end` that produced no event.
    pub(crate) fn skip(&mut self, fp: Fingerprint, path: &std::path::Path, end: u64) {
        self.span(fp, path, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn spans_follow_the_last_line_of_each_file() {
        let mut b = Batch::default();
        assert!(b.is_empty());
        b.push(1, Path::new("/a"), 0, 10, b"x");
        b.skip(1, Path::new("/a"), 20);
        b.push(2, Path::new("/b"), 0, 5, b"yy");
        b.push(1, Path::new("/a"), 20, 30, b"z");
        assert_eq!(b.events(), 3);
        assert_eq!(b.files.iter().map(|f| (f.fp, f.end)).collect::<Vec<_>>(), [(1, 30), (2, 5)]);
        assert_eq!(b.origins[2], Origin { file: 0, offset: 20 });
        assert_eq!(b.body, [0x0a, 1, b'x', 0x0a, 2, b'y', b'y', 0x0a, 1, b'z']);
    }
}

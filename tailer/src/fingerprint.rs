//! File identity by content: a hash of the first line.
//!
//! A file renamed by rotation keeps its fingerprint, so it is recognised at its new path and
//! read on from its checkpoint; a new file created at the old path has another first line and
//! is read from the start; a copy made by copytruncate has the fingerprint of the original, so
//! the lines the original lost to the truncation are read from the copy. Files whose first
//! lines are byte-for-byte identical cannot be told apart (log lines normally start with a
//! timestamp); the tailer logs a warning when it sees two at once.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use xxhash_rust::xxh3::xxh3_64;

use crate::limits::FINGERPRINT_MAX_BYTES;

/// The identity of a file's content.
pub(crate) type Fingerprint = u64;

/// The fingerprint of `file`, or `None` while its first line is unfinished and shorter than
/// [`FINGERPRINT_MAX_BYTES`].
pub(crate) fn fingerprint(file: &File) -> io::Result<Option<Fingerprint>> {
    let mut buf = [0u8; FINGERPRINT_MAX_BYTES];
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(of_prefix(&buf[..n]))
}

/// The fingerprint of a file that starts with `prefix` (its first bytes, up to
/// [`FINGERPRINT_MAX_BYTES`]).
pub(crate) fn of_prefix(prefix: &[u8]) -> Option<Fingerprint> {
    let prefix = &prefix[..prefix.len().min(FINGERPRINT_MAX_BYTES)];
    let end = match memchr::memchr(b'\n', prefix) {
        Some(i) => i + 1,
        None if prefix.len() == FINGERPRINT_MAX_BYTES => prefix.len(),
        None => return None,
    };
    Some(xxh3_64(&prefix[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn first_line_decides() {
        assert_eq!(of_prefix(b""), None);
        assert_eq!(of_prefix(b"partial first line"), None);
        let a = of_prefix(b"line one\n").expect("a line");
        assert_eq!(of_prefix(b"line one\nline two\n"), Some(a));
        assert_ne!(of_prefix(b"line 1\n"), Some(a));
        let long = vec![b'x'; FINGERPRINT_MAX_BYTES + 10];
        let l = of_prefix(&long).expect("long enough");
        assert_eq!(of_prefix(&long[..FINGERPRINT_MAX_BYTES]), Some(l));
        assert_eq!(of_prefix(&long[..FINGERPRINT_MAX_BYTES - 1]), None);
    }

    #[test]
    fn of_a_file() {
        let mut f = tempfile::tempfile().expect("temp file");
        assert_eq!(fingerprint(&f).expect("read"), None);
        f.write_all(b"first\nsecond").expect("write");
        assert_eq!(fingerprint(&f).expect("read"), of_prefix(b"first\n"));
    }
}

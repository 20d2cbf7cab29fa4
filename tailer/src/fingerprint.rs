//! What a file's content looks like at its start: its head (the first
//! [`FINGERPRINT_MAX_BYTES`] bytes, or fewer while the file is shorter), the hash of a prefix of
//! it, and the fingerprint that names the file in event ids.
//!
//! The fingerprint is a hash of the file's first line together with its device, inode and a
//! generation (how many earlier files this inode held while followed), so two files with equal
//! first lines (a CSV header, a W3C `#Fields` line, a start banner written after `O_TRUNC`) never
//! share ids. Whether a file is still the one followed is decided by [`crate::identity`] from
//! the head, not from the fingerprint.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use xxhash_rust::xxh3::xxh3_64;

use crate::limits::FINGERPRINT_MAX_BYTES;

/// The name of a followed file in event ids and in the checkpoint.
pub(crate) type Fingerprint = u64;

/// (device, inode) of a file.
pub(crate) type InodeKey = (u64, u64);

/// The first bytes of `file`, up to [`FINGERPRINT_MAX_BYTES`].
pub(crate) fn read_head(file: &File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; FINGERPRINT_MAX_BYTES];
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// The complete first line of a file starting with `head` (with its newline), or the whole
/// head when it is [`FINGERPRINT_MAX_BYTES`] long without a newline; `None` while the first line
/// is unfinished.
pub(crate) fn first_line(head: &[u8]) -> Option<&[u8]> {
    let head = &head[..head.len().min(FINGERPRINT_MAX_BYTES)];
    match memchr::memchr(b'\n', head) {
        Some(i) => Some(&head[..=i]),
        None if head.len() == FINGERPRINT_MAX_BYTES => Some(head),
        None => None,
    }
}

/// The hash of `head[..len]`, or `None` when `head` is shorter than `len`.
pub(crate) fn prefix_hash(head: &[u8], len: usize) -> Option<u64> {
    head.get(..len).map(xxh3_64)
}

/// The fingerprint of the `generation`th file followed at `inode` whose first line is `line`.
pub(crate) fn fingerprint(line: &[u8], inode: InodeKey, generation: u32) -> Fingerprint {
    let mut key = Vec::with_capacity(line.len() + 20);
    key.extend_from_slice(line);
    key.extend_from_slice(&inode.0.to_le_bytes());
    key.extend_from_slice(&inode.1.to_le_bytes());
    key.extend_from_slice(&generation.to_le_bytes());
    xxh3_64(&key)
}

/// The fingerprint checkpoints written before the inode was part of a file's identity used:
/// the hash of the first line alone.
pub(crate) fn legacy_fingerprint(line: &[u8]) -> Fingerprint {
    xxh3_64(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn first_line_and_prefix() {
        assert_eq!(first_line(b""), None);
        assert_eq!(first_line(b"partial first line"), None);
        assert_eq!(first_line(b"line one\nline two\n"), Some(&b"line one\n"[..]));
        let long = vec![b'x'; FINGERPRINT_MAX_BYTES + 10];
        assert_eq!(first_line(&long).map(<[u8]>::len), Some(FINGERPRINT_MAX_BYTES));
        assert_eq!(first_line(&long[..FINGERPRINT_MAX_BYTES - 1]), None);
        assert_eq!(prefix_hash(b"abc", 4), None);
        assert_eq!(prefix_hash(b"abcd", 3), prefix_hash(b"abc", 3));
    }

    #[test]
    fn equal_first_lines_at_other_inodes_or_generations_differ() {
        let a = fingerprint(b"#Fields: date time\n", (1, 10), 0);
        assert_eq!(a, fingerprint(b"#Fields: date time\n", (1, 10), 0));
        assert_ne!(a, fingerprint(b"#Fields: date time\n", (1, 11), 0));
        assert_ne!(a, fingerprint(b"#Fields: date time\n", (2, 10), 0));
        assert_ne!(a, fingerprint(b"#Fields: date time\n", (1, 10), 1));
        assert_ne!(a, fingerprint(b"#Fields: date\n", (1, 10), 0));
    }

    #[test]
    fn head_of_a_file() {
        let mut f = tempfile::tempfile().expect("temp file");
        assert_eq!(read_head(&f).expect("read"), b"");
        f.write_all(b"first\nsecond").expect("write");
        assert_eq!(read_head(&f).expect("read"), b"first\nsecond");
        f.write_all(&vec![b'y'; 2 * FINGERPRINT_MAX_BYTES]).expect("write");
        assert_eq!(read_head(&f).expect("read").len(), FINGERPRINT_MAX_BYTES);
    }
}

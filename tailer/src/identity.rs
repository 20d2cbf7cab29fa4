//! The rules that decide what a file is, from its device/inode and its head (its first bytes,
//! up to [`FINGERPRINT_MAX_BYTES`](crate::limits::FINGERPRINT_MAX_BYTES)).
//!
//! * At the inode of a followed file: the same file (grown, renamed) when it still starts with
//!   the head known for it and is not shorter than what was read; otherwise its content was
//!   replaced (copytruncate, `O_TRUNC`, a rewrite) and the inode holds a new file.
//! * At another inode, against a followed file whose inode still holds its content: a file
//!   whose head is a prefix of the followed file's head may be a copy being made
//!   (copytruncate copies first and truncates after) or a new file that has so far only written
//!   the same header: it is left undecided and looked at again at the next scan. Any other file,
//!   however equal its first line (a CSV header, a W3C `#Fields` line, a start banner), is a new
//!   file.
//! * At another inode, against a followed file whose inode lost its content (truncated): a file
//!   that starts with the whole known head is that file's copy, and the followed file's rest is
//!   read from it; one that starts with part of it may still be being copied.
//!
//! The known head is the bytes themselves while the file is followed, and after a restart the
//! hash of its first `len` bytes from the checkpoint.

use crate::fingerprint::prefix_hash;

/// What is known of a followed file's head.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Known<'a> {
    /// The head's bytes.
    Bytes(&'a [u8]),
    /// The hash of the first `len` bytes (from the checkpoint).
    Hash {
        /// Bytes hashed.
        len: usize,
        /// Their hash.
        hash: u64,
    },
}

impl Known<'_> {
    /// Whether a file whose head is `head` starts with all of this.
    fn starts(&self, head: &[u8]) -> bool {
        match *self {
            Known::Bytes(k) => head.starts_with(k),
            Known::Hash { len, hash } => prefix_hash(head, len) == Some(hash),
        }
    }
}

/// What the inode of a followed file now holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtInode {
    /// The same file, perhaps grown or renamed.
    Same,
    /// Other content: the followed file was truncated or replaced; the inode holds a new file.
    Replaced,
}

/// Whether the inode of a followed file, read up to `offset`, still holds it, now that it is
/// `size` bytes long and starts with `head`.
pub(crate) fn at_inode(known: Known<'_>, offset: u64, head: &[u8], size: u64) -> AtInode {
    if size >= offset && known.starts(head) { AtInode::Same } else { AtInode::Replaced }
}

/// The state of a followed file a file at another inode is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Its inode still holds its content.
    Holding,
    /// Its inode lost its content; the rest may be in a copy.
    Truncated,
}

/// What a file at another inode is to a followed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Other {
    /// The followed file's copy: its rest is read from it.
    Copy,
    /// Cannot be told yet (a copy being made, or a new file so far equal to its start).
    Undecided,
    /// Another file.
    Distinct,
}

/// What a file at another inode starting with `head` is to a followed file in `state`.
pub(crate) fn at_other_inode(known: Known<'_>, state: State, head: &[u8]) -> Other {
    match known {
        Known::Bytes(k) => {
            let n = k.len().min(head.len());
            if n == 0 || k[..n] != head[..n] {
                return Other::Distinct;
            }
            match state {
                // A copy is never longer than its original.
                State::Holding if head.len() > k.len() => Other::Distinct,
                State::Holding => Other::Undecided,
                State::Truncated if head.len() >= k.len() => Other::Copy,
                State::Truncated => Other::Undecided,
            }
        }
        Known::Hash { len, .. } => {
            if head.len() < len {
                return Other::Undecided;
            }
            if !known.starts(head) {
                return Other::Distinct;
            }
            match state {
                State::Holding => Other::Undecided,
                State::Truncated => Other::Copy,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = b"#Fields: date time cs-method cs-uri\n";

    fn with_header(rest: &str) -> Vec<u8> {
        [HEADER, rest.as_bytes()].concat()
    }

    #[test]
    fn equal_first_lines_at_another_inode_are_another_file() {
        let old = with_header("2026-12-03 10:00:00 GET /a\n2026-12-03 10:00:01 GET /b\n");
        let new = with_header("2026-12-03 11:00:00 GET /c\n");
        assert_eq!(at_other_inode(Known::Bytes(&old), State::Holding, &new), Other::Distinct);
        assert_eq!(at_other_inode(Known::Bytes(&old), State::Truncated, &new), Other::Distinct);
        let h = Known::Hash { len: old.len(), hash: prefix_hash(&old, old.len()).expect("hash") };
        assert_eq!(
            at_other_inode(h, State::Truncated, &[new.clone(), new.clone()].concat()),
            Other::Distinct
        );
        // A new file that so far holds only the header cannot be told from a copy being made.
        assert_eq!(at_other_inode(Known::Bytes(&old), State::Holding, HEADER), Other::Undecided);
        // A header-only followed file and a longer file starting with it: not a copy (a copy
        // is never longer than its original).
        assert_eq!(at_other_inode(Known::Bytes(HEADER), State::Holding, &new), Other::Distinct);
    }

    #[test]
    fn a_copy_is_recognised() {
        let old = with_header("2026-12-03 10:00:00 GET /a\n");
        let copying = &old[..10];
        assert_eq!(at_other_inode(Known::Bytes(&old), State::Holding, &old), Other::Undecided);
        assert_eq!(at_other_inode(Known::Bytes(&old), State::Truncated, copying), Other::Undecided);
        assert_eq!(at_other_inode(Known::Bytes(&old), State::Truncated, &old), Other::Copy);
        let grown = [old.as_slice(), b"2026-12-03 10:00:05 GET /z\n"].concat();
        assert_eq!(at_other_inode(Known::Bytes(&old), State::Truncated, &grown), Other::Copy);
        let h = Known::Hash { len: old.len(), hash: prefix_hash(&old, old.len()).expect("hash") };
        assert_eq!(at_other_inode(h, State::Truncated, &grown), Other::Copy);
        assert_eq!(at_other_inode(h, State::Truncated, copying), Other::Undecided);
        assert_eq!(at_other_inode(h, State::Holding, &grown), Other::Undecided);
    }

    #[test]
    fn same_inode_grown_is_the_same_file() {
        let old = with_header("a\n");
        let grown = with_header("a\nb\n");
        assert_eq!(at_inode(Known::Bytes(&old), old.len() as u64, &grown, grown.len() as u64), AtInode::Same);
        let h = Known::Hash { len: old.len(), hash: prefix_hash(&old, old.len()).expect("hash") };
        assert_eq!(at_inode(h, old.len() as u64, &grown, grown.len() as u64), AtInode::Same);
    }

    #[test]
    fn same_inode_truncated_is_replaced() {
        let old = with_header("a line of the old file\n");
        // Truncated to nothing, or to less than was read.
        assert_eq!(at_inode(Known::Bytes(&old), old.len() as u64, b"", 0), AtInode::Replaced);
        // Truncated and rewritten past the read offset with the same banner (O_TRUNC).
        let rewritten = with_header("another line, longer than the old one\n");
        let size = rewritten.len() as u64;
        assert_eq!(at_inode(Known::Bytes(&old), old.len() as u64, &rewritten, size), AtInode::Replaced);
        let h = Known::Hash { len: old.len(), hash: prefix_hash(&old, old.len()).expect("hash") };
        assert_eq!(at_inode(h, old.len() as u64, &rewritten, size), AtInode::Replaced);
        // Truncated and rewritten with the very same first bytes but shorter than the offset.
        assert_eq!(at_inode(Known::Bytes(HEADER), 500, &old, old.len() as u64), AtInode::Replaced);
    }

    #[test]
    fn a_new_file_at_the_old_path_is_another_file() {
        // The path is not part of the identity: a new file at the old path has another inode,
        // and is compared with the renamed original (still holding its content).
        let renamed = with_header("2026-12-03 10:00:00 GET /a\n");
        let new = with_header("2026-12-03 10:00:09 GET /n\n");
        assert_eq!(at_other_inode(Known::Bytes(&renamed), State::Holding, &new), Other::Distinct);
        // Unrelated first lines are always distinct.
        assert_eq!(at_other_inode(Known::Bytes(&renamed), State::Truncated, b"x\n"), Other::Distinct);
    }
}

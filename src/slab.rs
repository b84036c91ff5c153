//! Short response header values (the request id, a `RateLimit` value) cut
//! from a per-thread chunk instead of allocated one by one.
//!
//! Each value is a [`Bytes`] slice of a 1 KiB chunk that the thread fills
//! in turn: cutting one costs a copy and a reference count, and a new chunk
//! is allocated once the last one is full (about every 28 request ids). A
//! chunk is freed when the last slice of it is dropped, so a header value
//! kept for a long time keeps its chunk alive: at most 1 KiB per value
//! kept. That is why only short values that are rarely kept come from here;
//! a request's URI, which handlers often keep, gets an allocation of its
//! own.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// The chunk size.
const CHUNK: usize = 1024;
/// Strings longer than this get an allocation of their own.
const MAX: usize = 64;

thread_local! {
    static CHUNK_BUF: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The concatenation of `parts`, as shared bytes.
pub(crate) fn copy(parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let own = || {
        let mut b = BytesMut::with_capacity(len);
        for p in parts {
            b.extend_from_slice(p);
        }
        b.freeze()
    };
    if len > MAX {
        return own();
    }
    CHUNK_BUF
        .try_with(|cell| {
            // Never re-entered, but a borrow failure must not panic.
            let Ok(mut chunk) = cell.try_borrow_mut() else {
                return own();
            };
            if chunk.capacity() < len {
                *chunk = BytesMut::with_capacity(CHUNK);
            }
            for p in parts {
                chunk.extend_from_slice(p);
            }
            chunk.split().freeze()
        })
        .unwrap_or_else(|_| own())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_independent_and_exact() {
        let a = copy(&[b"abc", b"-", b"def"]);
        let b = copy(&[b"xyz"]);
        assert_eq!(&a[..], b"abc-def");
        assert_eq!(&b[..], b"xyz");
        // Past a chunk's end a new one starts; earlier slices stay intact.
        let many: Vec<Bytes> = (0..1000u32)
            .map(|i| copy(&[i.to_string().as_bytes(), b"/0123456789abcdef0123456789"]))
            .collect();
        for (i, s) in many.iter().enumerate() {
            assert_eq!(&s[..], format!("{i}/0123456789abcdef0123456789").as_bytes());
        }
        assert_eq!(&a[..], b"abc-def");
        let long = vec![b'x'; MAX + 1];
        assert_eq!(copy(&[&long]).len(), MAX + 1);
        assert!(copy(&[]).is_empty());
    }
}

//! The byte pattern scenarios write into frames, shared by every client implementation.
//!
//! Byte `i` of a frame touched with pattern `p` is `p + (i mod 251)` (wrapping): a
//! frame that overlaps another, or a write that lands shifted, shows up as a mismatch.

/// The byte at `offset` of a frame filled with `pattern`.
#[must_use]
#[allow(clippy::cast_possible_truncation)] // offset % 251 < 256.
pub const fn pattern_byte(pattern: u8, offset: usize) -> u8 {
    pattern.wrapping_add((offset % 251) as u8)
}

/// Fills `bytes` with the pattern and reads it back; whether every byte held.
pub fn fill(bytes: &mut [u8], pattern: u8) -> bool {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = pattern_byte(pattern, i);
    }
    // Keep the compiler from answering the read-back from what it just wrote: the
    // point is to read the memory.
    verify(core::hint::black_box(bytes), pattern)
}

/// Whether `bytes` holds the pattern.
#[must_use]
pub fn verify(bytes: &[u8], pattern: u8) -> bool {
    bytes
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern_byte(pattern, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_then_verify_and_detect_a_shift() {
        let mut a = [0u8; 600];
        assert!(fill(&mut a, 7));
        assert!(verify(&a, 7));
        assert!(!verify(&a, 8));
        assert!(!verify(&a[1..], 7), "a shifted frame does not verify");
        a[599] ^= 1;
        assert!(!verify(&a, 7));
    }
}
